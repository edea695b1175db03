# Removes releases beyond those kept (never the current one), and the in-place working tree of a
# site converted to releases once the conversion has copied it into a release (its marker, which
# goes last): by the conversion, or by a later deploy if that removal failed. A tree that was
# never copied (a site converted before any deploy succeeded) holds data found nowhere else: kept.
# Inputs: DEPLOY_USER, ROOT, KEEP (space-separated release ids to keep). Slipway has already
# marked the others gone.
current=$(readlink "$ROOT/current" 2>/dev/null || true)
if [ -e "$ROOT/.slipway/live-adopted" ] && [ "$current" != live ]; then
    step "removing the in-place working tree"
    # shellcheck disable=SC2016 # expanded by the site user's shell
    as_user sh -c 'rm -rf -- "$1/live" "$1/.slipway/env-live.sh" && rm -f -- "$1/.slipway/live-adopted"' sh "$ROOT"
fi
for dir in "$ROOT"/releases/*; do
    [ -d "$dir" ] || continue
    id=${dir##*/}
    case " $KEEP " in *" $id "*) continue ;; esac
    [ "releases/$id" = "$current" ] && continue
    as_user rm -rf -- "$dir" "$ROOT/.slipway/env-$id.sh"
done
