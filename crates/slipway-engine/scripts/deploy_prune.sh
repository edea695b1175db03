# Removes releases beyond those kept (never the current one). Inputs: DEPLOY_USER, ROOT, KEEP (space-separated
# release ids to keep). Prints "slipway-pruned ID" for each one removed.
current=$(readlink "$ROOT/current" 2>/dev/null || true)
for dir in "$ROOT"/releases/*; do
    [ -d "$dir" ] || continue
    id=${dir##*/}
    case " $KEEP " in *" $id "*) continue ;; esac
    [ "releases/$id" = "$current" ] && continue
    as_user rm -rf -- "$dir" "$ROOT/.slipway/env-$id.sh"
    printf 'slipway-pruned %s\n' "$id"
done
