# Restarts a site's queue workers on the release `current` now points at.
# Inputs: PROGRAMS (supervisor program names), LARAVEL (yes: ask the workers to finish their job
# and exit, with `artisan queue:restart`), PHP (php8.2), SITE_USER, ROOT.
DEPLOY_USER=$SITE_USER
if [ -n "$LARAVEL" ]; then
    # Each worker exits after its current job; supervisor starts it again in the new release.
    if ! ( cd "$ROOT/current" && as_user "$PHP" artisan queue:restart ); then
        echo "artisan queue:restart failed; restarting the workers instead" >&2
        LARAVEL=
    fi
fi
failed=
for program in $PROGRAMS; do
    if [ -n "$LARAVEL" ]; then
        supervisorctl start "$program:*" >/dev/null 2>&1 || true
        step "$program: asked to finish its job and restart on the new release"
    else
        out=$(supervisorctl restart "$program:*" 2>&1) || true
        case "$out" in
            *ERROR*) echo "$program did not start: $out" >&2; failed=yes ;;
            *) step "$program restarted on the new release" ;;
        esac
    fi
done
[ -z "$failed" ] || fail "some queue workers did not start on the new release"
