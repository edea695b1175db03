# Turns an in-place site into releases without downtime: copies the live working tree (without
# its .git) and its environment into a new release, which then gets the usual start, health
# check and atomic switch. Prints "slipway-commit …" for the commit it holds.
# Inputs: DEPLOY_USER, ROOT, RELEASE, SHARED (shared paths, one per line).
[ -d "$ROOT/live" ] || fail "the site has no in-place deployment to convert"
step "copying the live site into release $RELEASE"
as_user rm -rf "$ROOT/releases/$RELEASE"
as_user cp -a "$ROOT/live" "$ROOT/releases/$RELEASE"
as_user rm -rf "$ROOT/releases/$RELEASE/.git"
if [ -f "$ROOT/.slipway/env-live.sh" ]; then
    as_user cp -p "$ROOT/.slipway/env-live.sh" "$ROOT/.slipway/env-$RELEASE.sh"
else
    put_user_file "$ROOT/.slipway/env-$RELEASE.sh" 600 ""
fi
link_shared "$ROOT/releases/$RELEASE"
commit=$(as_user git -C "$ROOT/live" log -1 --format='%H%x09%an <%ae>%x09%s' HEAD 2>/dev/null || true)
[ -z "$commit" ] || printf 'slipway-commit %s\n' "$commit"
