# Fetches the repository into the site's mirror and unpacks the branch's newest commit as a new
# release. Prints "slipway-commit SHA<TAB>AUTHOR<TAB>SUBJECT". Inputs: DEPLOY_USER, ROOT,
# RELEASE, REPO_URL, BRANCH, COMMIT (a pushed commit to deploy; empty for the branch's newest),
# DEPLOY_KEY (base64 private key; empty for none) and KEY_NAME (its file name in ~/.ssh).
[ -d "$ROOT/releases" ] || fail "the site's directory is missing; apply the site again"
step "fetching $BRANCH"
ssh_command='ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new'
if [ -n "$DEPLOY_KEY" ]; then
    key="/home/$DEPLOY_USER/.ssh/$KEY_NAME"
    as_user mkdir -p "/home/$DEPLOY_USER/.ssh"
    put_user_file "$key" 600 "$DEPLOY_KEY"
    ssh_command="$ssh_command -o IdentitiesOnly=yes -i $key"
fi
as_deploy_user() {
    as_user env GIT_TERMINAL_PROMPT=0 GIT_SSH_COMMAND="$ssh_command" "$@"
}
if [ -d "$ROOT/repo.git" ]; then
    as_deploy_user git -C "$ROOT/repo.git" remote set-url origin "$REPO_URL"
    as_deploy_user git -C "$ROOT/repo.git" fetch --quiet --prune --force origin "+refs/heads/*:refs/heads/*" ||
        fail "git could not fetch the repository"
else
    as_deploy_user git clone --quiet --mirror "$REPO_URL" "$ROOT/repo.git.partial" ||
        { as_user rm -rf "$ROOT/repo.git.partial"; fail "git could not clone the repository"; }
    as_user mv "$ROOT/repo.git.partial" "$ROOT/repo.git"
fi
sha=$(as_deploy_user git -C "$ROOT/repo.git" rev-parse --verify --quiet "refs/heads/$BRANCH^{commit}") ||
    fail "the repository has no branch $BRANCH"
if [ -n "$COMMIT" ]; then
    # The pushed commit, which must be on the branch (a later push may have moved it on).
    pushed=$(as_deploy_user git -C "$ROOT/repo.git" rev-parse --verify --quiet "$COMMIT^{commit}") ||
        fail "the pushed commit $COMMIT is not in the repository"
    as_deploy_user git -C "$ROOT/repo.git" merge-base --is-ancestor "$pushed" "$sha" ||
        fail "the pushed commit $COMMIT is not on branch $BRANCH"
    sha=$pushed
fi
step "unpacking $sha"
as_user rm -rf "$ROOT/releases/$RELEASE"
as_deploy_user mkdir "$ROOT/releases/$RELEASE"
as_deploy_user sh -c 'git -C "$1" archive --format=tar "$2" | tar -x -C "$3"' sh "$ROOT/repo.git" "$sha" "$ROOT/releases/$RELEASE"
printf 'slipway-commit %s\n' "$(as_deploy_user git -C "$ROOT/repo.git" log -1 --format='%H%x09%an <%ae>%x09%s' "$sha")"
