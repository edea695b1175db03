# Puts every site's active certificate in place, checked by nginx before it reloads; when nginx
# refuses the result, the previous files are put back and nginx keeps serving as before.
# Inputs: SITES (one line per site with an active certificate: domain certificate-id
# fullchain-b64 key-b64 conf-b64; every value was checked by Slipway), ACME_WEBROOT. Sites not
# listed serve plain HTTP only.
files=/etc/slipway/tls
confs=/etc/nginx/slipway/tls
install -d -m 755 /etc/slipway "$confs"
install -d -m 700 "$files"
# The ACME challenge answers: readable by nginx, written by Slipway only.
install -d -m 755 "$ACME_WEBROOT" "$ACME_WEBROOT/.well-known" "$ACME_WEBROOT/.well-known/acme-challenge"
# The copy holds private keys: it stays beside them, root's only, never in /tmp.
backup=$(mktemp -d /etc/slipway/.tls-backup.XXXXXX)
mkdir "$backup/files" "$backup/confs"
cp -a "$files/." "$backup/files/"
cp -a "$confs/." "$backup/confs/"
restore() {
    find "$files" "$confs" -mindepth 1 -delete
    cp -a "$backup/files/." "$files/"
    cp -a "$backup/confs/." "$confs/"
    rm -rf "$backup"
}
wanted=
while read -r domain id chain key conf; do
    [ -n "$domain" ] || continue
    site_conf="/etc/nginx/sites-available/slipway-$domain.conf"
    if ! grep -qF "include $confs/$domain/*.conf;" "$site_conf" 2>/dev/null; then
        # A site configured before HTTPS existed: its block does not read the settings yet.
        echo "slipway-item-failed $id the site's nginx configuration does not include HTTPS settings yet; update the site to apply it again"
        # Whatever the site had stays as it was.
        wanted="$wanted$domain
"
        continue
    fi
    wanted="$wanted$domain
"
    install -d -m 700 "$files/$domain"
    install -d -m 755 "$confs/$domain"
    put_file "$files/$domain/fullchain.pem" 0644 "$chain"
    put_file "$files/$domain/key.pem" 0600 "$key"
    put_file "$confs/$domain/tls.conf" 0644 "$conf"
done <<SITES_END
$SITES
SITES_END
for dir in "$confs"/* "$files"/*; do
    [ -d "$dir" ] || continue
    if ! printf '%s' "$wanted" | grep -qxF "$(basename "$dir")"; then
        rm -rf "$dir"
    fi
done
nginx_apply_or_restore "these certificates"
rm -rf "$backup"
step "certificates in place"
