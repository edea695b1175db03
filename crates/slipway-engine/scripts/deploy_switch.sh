# Sent to the shell of the prepare script once it says it is ready (where the prelude is
# defined already), after its own variables. Moves traffic to the release: apps first get the
# nginx block that proxies to the new port (checked, then a graceful reload); then "current" is
# pointed at the release by an atomic rename; the old app is stopped once the requests sent to
# it have been answered (at most DRAIN_SECONDS).
# Inputs: DEPLOY_USER, ROOT, DIR (the release's directory under ROOT: releases/ID or live), NGINX_NAME, NGINX_CONF (base64; empty for files), PHP_VERSION,
# OLD_PROGRAM and OLD_PORT (empty when none), NEW_PORT, DRAIN_SECONDS, UNDONE_EXIT, MARK (as
# the prepare script's: the last line, "slipway-switched MARK", says the switch is done).
# Exits with UNDONE_EXIT when it failed but nothing is left switched (nginx is on the previous
# block and nothing else moved): Slipway then removes the new release and stops its app.
release="$ROOT/$DIR"
[ -d "$release" ] || fail "the release directory is missing"
undone() { printf 'slipway-error: %s\n' "$*" >&2; exit "$UNDONE_EXIT"; }
if [ -n "$NGINX_CONF" ]; then
    step "switching nginx to the new release"
    available="/etc/nginx/sites-available/$NGINX_NAME"
    cp -p "$available" "$available.slipway-previous"
    put_nginx_site "$available" "$NGINX_CONF"
    if ! nginx -t -q 2>/dev/null; then
        mv -f "$available.slipway-previous" "$available"
        undone "nginx rejects the new configuration; the previous release keeps serving"
    fi
    # Until nginx runs the new block, it sends requests to the previous release: then the
    # previous block goes back and the switch stops here, before anything else moves.
    if ! nginx_reloaded; then
        mv -f "$available.slipway-previous" "$available"
        # Asked again: a reload taken from now on reads the previous block, whatever nginx made
        # of the first request. Once one is, the new app can only get requests a replaced
        # worker still holds, so it is stopped after those.
        step "nginx did not reload within 5 s; asking it again with the previous block back"
        if nginx_reloaded; then
            nginx_drained "$DRAIN_SECONDS" "$NEW_PORT" || true
            undone "nginx did not reload within 5 s; it has reloaded since with the previous block, so the previous release keeps serving"
        fi
        fail "nginx did not reload within 5 s, so requests still go to the previous release, which keeps serving (the new release's app keeps running until nginx reloads; the next deploy replaces it)"
    fi
    rm -f "$available.slipway-previous"
fi
step "pointing current at $DIR"
as_user sh -c 'ln -sfn "$2" "$1/current.slipway-new" && mv -Tf "$1/current.slipway-new" "$1/current"' \
    sh "$ROOT" "$DIR"
if [ -n "$PHP_VERSION" ]; then
    service_reload "php$PHP_VERSION-fpm"
fi
if [ -n "$OLD_PROGRAM" ]; then
    # Requests reach the old app only through the nginx workers the reload replaced.
    step "draining the previous release (at most ${DRAIN_SECONDS}s)"
    nginx_drained "$DRAIN_SECONDS" "$OLD_PORT" ||
        echo "warning: requests to the previous release were still open after ${DRAIN_SECONDS}s; stopping it anyway" >&2
    # Stopped first: `update` would stop it too, but waits about a second longer for it.
    supervisorctl stop "$OLD_PROGRAM" >/dev/null 2>&1 || true
    rm -f "/etc/supervisor/conf.d/$OLD_PROGRAM.conf"
    supervisorctl update >/dev/null 2>&1 || true
fi
step "live"
echo "slipway-switched $MARK"
