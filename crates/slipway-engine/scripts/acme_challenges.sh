# Publishes ACME HTTP-01 answers where every site block serves /.well-known/acme-challenge/, or
# removes them all when ANSWERS is empty.
# Inputs: ANSWERS (one line per challenge: token key-authorization; both checked by Slipway to
# the ACME alphabet), ACME_WEBROOT.
dir="$ACME_WEBROOT/.well-known/acme-challenge"
install -d -m 755 "$ACME_WEBROOT" "$ACME_WEBROOT/.well-known" "$dir"
if [ -z "$ANSWERS" ]; then
    find "$dir" -mindepth 1 -maxdepth 1 -type f -delete
    exit 0
fi
while read -r token authorization; do
    [ -n "$token" ] || continue
    printf '%s' "$authorization" > "$dir/$token.tmp"
    chmod 644 "$dir/$token.tmp"
    mv -f "$dir/$token.tmp" "$dir/$token"
done <<ANSWERS_END
$ANSWERS
ANSWERS_END
step "answers to $(printf '%s\n' "$ANSWERS" | grep -c .) ACME challenge(s) published"
