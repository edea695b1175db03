# Writes a gzipped tar of a site's shared paths (ROOT/shared) and its live .env
# (ROOT/current/.env, when there is one) to standard output, and nothing else. A tar that fails
# says so on stderr ("slipway-dump-failed …"); files that changed while they were read (a live
# site's uploads) are a warning, not a failure. Input: ROOT (the site's root, Slipway's own path).
case "$ROOT" in /home/*/*) ;; *) fail "refusing an unexpected site root" ;; esac
case "$ROOT" in *..* | *[!A-Za-z0-9/._-]*) fail "refusing an unexpected site root" ;; esac
[ -d "$ROOT/shared" ] || fail "the site has no shared directory yet: apply the site first"
cd "$ROOT"
set -- shared
[ -f current/.env ] && set -- "$@" current/.env
status=0
tar -czf - --numeric-owner "$@" || status=$?
if [ "$status" -gt 1 ]; then
    echo "slipway-dump-failed tar exited $status" >&2
    exit 1
fi
