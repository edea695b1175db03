# Removes releases beyond those kept (never the current one), and the in-place working tree of a
# site converted to releases (by the conversion, or by a later deploy if that removal failed).
# Inputs: DEPLOY_USER, ROOT, KEEP (space-separated release ids to keep). Slipway has already
# marked the others gone.
current=$(readlink "$ROOT/current" 2>/dev/null || true)
if { [ -e "$ROOT/live" ] || [ -L "$ROOT/live" ]; } && [ "$current" != live ]; then
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
