# Removes releases beyond those kept (never the current one), and after a conversion to releases
# the old in-place working tree. Inputs: DEPLOY_USER, ROOT, KEEP (space-separated release ids to
# keep), REMOVE_LIVE (yes after a conversion). Slipway has already marked the others gone.
current=$(readlink "$ROOT/current" 2>/dev/null || true)
if [ -n "$REMOVE_LIVE" ] && [ "$current" != live ]; then
    step "removing the in-place working tree"
    as_user rm -rf -- "$ROOT/live" "$ROOT/.slipway/env-live.sh"
fi
for dir in "$ROOT"/releases/*; do
    [ -d "$dir" ] || continue
    id=${dir##*/}
    case " $KEEP " in *" $id "*) continue ;; esac
    [ "releases/$id" = "$current" ] && continue
    as_user rm -rf -- "$dir" "$ROOT/.slipway/env-$id.sh"
done
