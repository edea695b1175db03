# Fetches the repository into the site's mirror and unpacks the branch's newest commit as a new
# release. Prints "slipway-commit SHA<TAB>AUTHOR<TAB>SUBJECT". Inputs: DEPLOY_USER, ROOT,
# RELEASE, REPO_URL, BRANCH.
[ -d "$ROOT/releases" ] || fail "the site's directory is missing; apply the site again"
step "fetching $BRANCH"
as_deploy_user() {
    runuser -u "$DEPLOY_USER" -- env HOME="/home/$DEPLOY_USER" GIT_TERMINAL_PROMPT=0 \
        GIT_SSH_COMMAND='ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new' "$@"
}
if [ -d "$ROOT/repo.git" ]; then
    as_deploy_user git -C "$ROOT/repo.git" remote set-url origin "$REPO_URL"
    as_deploy_user git -C "$ROOT/repo.git" fetch --quiet --prune --force origin "+refs/heads/*:refs/heads/*" ||
        fail "git could not fetch the repository"
else
    as_deploy_user git clone --quiet --mirror "$REPO_URL" "$ROOT/repo.git.partial" ||
        { rm -rf "$ROOT/repo.git.partial"; fail "git could not clone the repository"; }
    mv "$ROOT/repo.git.partial" "$ROOT/repo.git"
fi
sha=$(as_deploy_user git -C "$ROOT/repo.git" rev-parse --verify --quiet "refs/heads/$BRANCH^{commit}") ||
    fail "the repository has no branch $BRANCH"
step "unpacking $sha"
rm -rf "$ROOT/releases/$RELEASE"
as_deploy_user mkdir "$ROOT/releases/$RELEASE"
as_deploy_user sh -c 'git -C "$1" archive --format=tar "$2" | tar -x -C "$3"' sh "$ROOT/repo.git" "$sha" "$ROOT/releases/$RELEASE"
printf 'slipway-commit %s\n' "$(as_deploy_user git -C "$ROOT/repo.git" log -1 --format='%H%x09%an <%ae>%x09%s' "$sha")"
