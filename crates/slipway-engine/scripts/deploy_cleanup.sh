# After a failed or cancelled deploy: removes the half-built release and stops its app if it was
# started (never the one serving). Inputs: DEPLOY_USER, ROOT, RELEASE (empty for a rollback), PROGRAM (empty
# when no app was started).
as_user sh -c 'rm -f "$1"/.slipway/slipway-repo-*' sh "$ROOT"
if [ -n "$PROGRAM" ]; then
    supervisorctl stop "$PROGRAM" >/dev/null 2>&1 || true
    rm -f "/etc/supervisor/conf.d/$PROGRAM.conf"
    supervisorctl update >/dev/null 2>&1 || true
fi
if [ -n "$RELEASE" ] && [ "$(readlink "$ROOT/current" 2>/dev/null)" != "releases/$RELEASE" ]; then
    as_user rm -rf -- "$ROOT/releases/$RELEASE" "$ROOT/.slipway/deploy-$RELEASE.sh" \
        "$ROOT/.slipway/deploy-$RELEASE.sh.exit" "$ROOT/.slipway/env-$RELEASE.sh"
fi
step "cleaned up; the previous release keeps serving"
