# Puts every site's redirect rules in place, checked by nginx before it reloads; when nginx
# refuses the result, the previous rules are put back and nginx keeps serving as before.
# Inputs: SITES (one line per site with redirects: domain item-ids(comma-separated) rules-b64;
# every value was checked by Slipway). Sites not listed have no redirects.
base=/etc/nginx/slipway/redirects
mkdir -p "$base"
backup=$(mktemp -d)
cp -a "$base/." "$backup/"
restore() {
    find "$base" -mindepth 1 -delete
    cp -a "$backup/." "$base/"
    rm -rf "$backup"
}
wanted=
while read -r domain ids rules; do
    [ -n "$domain" ] || continue
    site_conf="/etc/nginx/sites-available/slipway-$domain.conf"
    if ! grep -qF "include $base/$domain/*.conf;" "$site_conf" 2>/dev/null; then
        # A site configured before redirects existed: its block does not read them yet.
        for id in $(printf '%s' "$ids" | tr ',' ' '); do
            echo "slipway-item-failed $id the site's nginx configuration does not include redirects yet; update the site to apply it again"
        done
        continue
    fi
    wanted="$wanted$domain
"
    put_file "$base/$domain/redirects.conf" 0644 "$rules"
done <<SITES_END
$SITES
SITES_END
for dir in "$base"/*; do
    [ -d "$dir" ] || continue
    if ! printf '%s' "$wanted" | grep -qxF "$(basename "$dir")"; then
        rm -f "$dir/redirects.conf"
        rmdir "$dir" 2>/dev/null || true
    fi
done
nginx_apply_or_restore "these redirects"
rm -rf "$backup"
step "redirects in place"
