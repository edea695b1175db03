# After a failed or cancelled deploy: removes the half-built release and stops its app if it was
# started (never the one serving). Inputs: DEPLOY_USER, ROOT, RELEASE (empty for a rollback), PROGRAM (empty
# when no app was started).
current=$(readlink "$ROOT/current" 2>/dev/null || true)
# A conversion that did not switch loses the release it copied the in-place tree into (below):
# its marker goes too, so that no prune takes that tree for one kept in a release.
# shellcheck disable=SC2016 # expanded by the site user's shell
as_user sh -c 'rm -f "$1"/.slipway/slipway-repo-*; [ "$2" != live ] || rm -f "$1/.slipway/live-adopted"' sh "$ROOT" "$current"
if [ -n "$PROGRAM" ]; then
    supervisorctl stop "$PROGRAM" >/dev/null 2>&1 || true
    rm -f "/etc/supervisor/conf.d/$PROGRAM.conf"
    supervisorctl update >/dev/null 2>&1 || true
fi
if [ -n "$RELEASE" ] && [ "$current" != "releases/$RELEASE" ]; then
    as_user rm -rf -- "$ROOT/releases/$RELEASE" "$ROOT/.slipway/deploy-$RELEASE.sh" \
        "$ROOT/.slipway/deploy-$RELEASE.sh.exit" "$ROOT/.slipway/env-$RELEASE.sh"
fi
step "cleaned up; the previous release keeps serving"
