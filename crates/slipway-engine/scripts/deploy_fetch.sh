# Fetches the repository into the site's mirror, then unpacks the commit as a new release (or,
# for an in-place site, checks it out in the live working tree). Prints
# "slipway-commit SHA<TAB>AUTHOR<TAB>SUBJECT".
# Inputs: DEPLOY_USER, ROOT, RELEASE, REPO_URL (without credentials), GIT_USERNAME and
# GIT_PASSWORD (for HTTP(S); empty for none), BRANCH, COMMIT (a pushed commit to deploy; empty
# for the branch's newest), LIVE_COMMIT (the live release's commit, if known), IN_PLACE (yes for
# an in-place site), DEPLOY_KEY (base64 private key; empty for none) and KEY_NAME (its file name).
[ -d "$ROOT/releases" ] || fail "the site's directory is missing; apply the site again"
step "fetching $BRANCH"
# A key left by a fetch that was killed (a cancel, a timeout) goes now.
as_user sh -c 'rm -f "$1"/.slipway/slipway-repo-*' sh "$ROOT"
ssh_command='ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new'
if [ -n "$DEPLOY_KEY" ]; then
    key="$ROOT/.slipway/$KEY_NAME"
    # The key is on disk only while git fetches: removed on every way out of this script.
    trap 'as_user rm -f "$key"' EXIT
    put_user_file "$key" 600 "$DEPLOY_KEY"
    # Where ssh keeps the git host's key (the site's user's home is the site's directory).
    as_user sh -c 'umask 077; mkdir -p "$HOME/.ssh"'
    ssh_command="$ssh_command -o IdentitiesOnly=yes -i $key"
fi
# HTTP credentials come from a helper that reads them from the environment (which only the
# site's user and root can read), never from git's command line or the mirror's config.
credential_helper=
if [ -n "$GIT_USERNAME" ]; then
    export SLIPWAY_GIT_USERNAME="$GIT_USERNAME" SLIPWAY_GIT_PASSWORD="$GIT_PASSWORD"
    # shellcheck disable=SC2016 # expanded by the helper's shell, from its environment
    credential_helper='!f() { [ "$1" = get ] && printf "username=%s\npassword=%s\n" "$SLIPWAY_GIT_USERNAME" "$SLIPWAY_GIT_PASSWORD"; }; f'
fi
as_deploy_user() {
    as_user env GIT_TERMINAL_PROMPT=0 GIT_SSH_COMMAND="$ssh_command" GIT_CONFIG_COUNT=2 \
        GIT_CONFIG_KEY_0=credential.helper GIT_CONFIG_VALUE_0= \
        GIT_CONFIG_KEY_1=credential.helper GIT_CONFIG_VALUE_1="$credential_helper" "$@"
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
if [ -n "$DEPLOY_KEY" ]; then as_user rm -f "$key"; fi
git_mirror() { as_user git -C "$ROOT/repo.git" "$@"; }
sha=$(git_mirror rev-parse --verify --quiet "refs/heads/$BRANCH^{commit}") ||
    fail "the repository has no branch $BRANCH"
if [ -n "$COMMIT" ]; then
    # The pushed commit, which must be on the branch (a later push may have moved it on).
    pushed=$(git_mirror rev-parse --verify --quiet "$COMMIT^{commit}") ||
        fail "the pushed commit $COMMIT is not in the repository"
    git_mirror merge-base --is-ancestor "$pushed" "$sha" ||
        fail "the pushed commit $COMMIT is not on branch $BRANCH"
    # Behind what is live and no longer the branch's head: a replayed or late push, which must
    # not take the site back (a force-push that moves the branch back is still deployed).
    if [ -n "$LIVE_COMMIT" ] && [ "$pushed" != "$sha" ] && [ "$pushed" != "$LIVE_COMMIT" ] &&
        git_mirror merge-base --is-ancestor "$pushed" "$LIVE_COMMIT" 2>/dev/null; then
        fail "the pushed commit $COMMIT is older than the live commit $LIVE_COMMIT; a replayed or out-of-order push is not deployed"
    fi
    sha=$pushed
fi
if [ -n "$IN_PLACE" ]; then
    step "checking out $sha in place"
    if [ -e "$ROOT/live" ] && [ ! -d "$ROOT/live/.git" ]; then
        fail "$ROOT/live is not a git working tree (was .git removed?); it is left as it is"
    fi
    if [ ! -d "$ROOT/live" ]; then
        as_user rm -rf "$ROOT/live.partial"
        as_user git clone --quiet --no-checkout "$ROOT/repo.git" "$ROOT/live.partial" ||
            fail "git could not create the working tree"
        as_user mv "$ROOT/live.partial" "$ROOT/live"
    fi
    as_user git -C "$ROOT/live" fetch --quiet --prune --force origin "+refs/heads/*:refs/remotes/origin/*" ||
        fail "git could not update the working tree"
    # Tracked files follow the commit; untracked ones (dependencies, uploads, .env) stay.
    as_user git -C "$ROOT/live" checkout --quiet --force --detach "$sha" || fail "git could not check out $sha"
else
    step "unpacking $sha"
    # One session as the site's user (each costs a PAM session): a fresh directory, the tree.
    as_user sh -c 'set -e; rm -rf "$3"; mkdir "$3"; git -C "$1" archive --format=tar "$2" | tar -x -C "$3"' \
        sh "$ROOT/repo.git" "$sha" "$ROOT/releases/$RELEASE"
fi
printf 'slipway-commit %s\n' "$(git_mirror log -1 --format='%H%x09%an <%ae>%x09%s' "$sha")"
