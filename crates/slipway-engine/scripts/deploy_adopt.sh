# Turns an in-place site into releases without downtime, first step: the shared paths move out of
# the live working tree into shared/ (each replaced by a link, so the live site keeps writing to
# the same data), then the tree is copied (without its .git) into a new release. The build step
# (environment, deploy script) follows, then the usual start, health check and atomic switch.
# Prints "slipway-commit …" for the commit it holds.
# Inputs: DEPLOY_USER, ROOT, RELEASE, SHARED (shared paths, one per line).
[ -d "$ROOT/live/.git" ] || fail "the site has no in-place working tree to convert"
printf '%s\n' "$SHARED" | while IFS= read -r path; do
    [ -n "$path" ] || continue
    as_user sh -c 'set -e
        live="$1/live/$2"; shared="$1/shared/$2"
        [ ! -L "$live" ] || exit 0
        [ ! -e "$shared" ] && [ ! -L "$shared" ] || { echo "shared/$2 exists already; not replacing it" >&2; exit 3; }
        mkdir -p "$(dirname "$shared")"
        if [ -e "$live" ]; then
            # A rename (same file system): the data is never copied or left behind.
            mv -- "$live" "$shared"
        else
            mkdir -p "$shared" "$(dirname "$live")"
        fi
        ln -s "$shared" "$live"' sh "$ROOT" "$path" || fail "could not move $path into shared/"
    step "moved $path into shared/"
done
step "copying the live site into release $RELEASE"
as_user rm -rf "$ROOT/releases/$RELEASE"
as_user cp -a "$ROOT/live" "$ROOT/releases/$RELEASE"
as_user rm -rf "$ROOT/releases/$RELEASE/.git"
commit=$(as_user git -C "$ROOT/live" log -1 --format='%H%x09%an <%ae>%x09%s' HEAD 2>/dev/null || true)
[ -z "$commit" ] || printf 'slipway-commit %s\n' "$commit"
