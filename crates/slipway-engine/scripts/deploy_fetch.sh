# Fetches the repository into the site's mirror, then unpacks the commit as a new release (or,
# for an in-place site, checks it out in the live working tree). Prints
# "slipway-commit SHA<TAB>AUTHOR<TAB>SUBJECT".
# Inputs: DEPLOY_USER, ROOT, RELEASE, REPO_URL (without credentials), GIT_USERNAME and
# GIT_PASSWORD (for HTTP(S); empty for none), BRANCH, COMMIT (a pushed commit to deploy; empty
# for the branch's newest), LIVE_COMMIT (the live release's commit, if known), IN_PLACE (yes for
# an in-place site), DEPLOY_KEY (base64 private key; empty for none) and KEY_NAME (its file name).
[ -d "$ROOT/releases" ] || fail "the site's directory is missing; apply the site again"
step "fetching $BRANCH"
ssh_command='ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new'
key=
if [ -n "$DEPLOY_KEY" ]; then
    key="$ROOT/.slipway/$KEY_NAME"
    # The key is on disk only while git fetches: removed on every way out of this script.
    trap 'as_user rm -f "$key"' EXIT
    put_user_file "$key" 600 "$DEPLOY_KEY"
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
# The git work runs in one session as the site's user (each session costs a PAM session, and a
# deploy is mostly waiting on them otherwise). It reports progress and failures as this script
# does; its values arrive as arguments, never inside its text.
# shellcheck disable=SC2016 # expanded by the site user's shell
fetch_as_user='set -u
fail() { printf "slipway-error: %s\n" "$*" >&2; exit 1; }
step() { printf "==> %s\n" "$*"; }
root=$1 release=$2 url=$3 branch=$4 commit=$5 live_commit=$6 in_place=$7 key=$8
mirror="$root/repo.git"
# A key left by a fetch that was killed (a cancel, a timeout) goes now.
for old in "$root"/.slipway/slipway-repo-*; do [ "$old" = "$key" ] || rm -f "$old"; done
# Where ssh keeps the key of the git host (the home of the site user is the site directory).
if [ -n "$key" ]; then (umask 077; mkdir -p "$HOME/.ssh"); fi
if [ -d "$mirror" ]; then
    git -C "$mirror" remote set-url origin "$url" &&
        git -C "$mirror" fetch --quiet --prune --force origin "+refs/heads/*:refs/heads/*" ||
        fail "git could not fetch the repository"
else
    git clone --quiet --mirror "$url" "$mirror.partial" ||
        { rm -rf "$mirror.partial"; fail "git could not clone the repository"; }
    mv "$mirror.partial" "$mirror" || fail "the mirror could not be moved into place"
fi
if [ -n "$key" ]; then rm -f "$key"; fi
sha=$(git -C "$mirror" rev-parse --verify --quiet "refs/heads/$branch^{commit}") ||
    fail "the repository has no branch $branch"
if [ -n "$commit" ]; then
    # The pushed commit, which must be on the branch (a later push may have moved it on).
    pushed=$(git -C "$mirror" rev-parse --verify --quiet "$commit^{commit}") ||
        fail "the pushed commit $commit is not in the repository"
    git -C "$mirror" merge-base --is-ancestor "$pushed" "$sha" ||
        fail "the pushed commit $commit is not on branch $branch"
    # Behind what is live and no longer the head of the branch: a replayed or late push, which must
    # not take the site back (a force-push that moves the branch back is still deployed).
    if [ -n "$live_commit" ] && [ "$pushed" != "$sha" ] && [ "$pushed" != "$live_commit" ] &&
        git -C "$mirror" merge-base --is-ancestor "$pushed" "$live_commit" 2>/dev/null; then
        fail "the pushed commit $commit is older than the live commit $live_commit; a replayed or out-of-order push is not deployed"
    fi
    sha=$pushed
fi
if [ -n "$in_place" ]; then
    step "checking out $sha in place"
    if [ -e "$root/live" ] && [ ! -d "$root/live/.git" ]; then
        fail "$root/live is not a git working tree (was .git removed?); it is left as it is"
    fi
    if [ ! -d "$root/live" ]; then
        rm -rf "$root/live.partial"
        git clone --quiet --no-checkout "$mirror" "$root/live.partial" ||
            fail "git could not create the working tree"
        mv "$root/live.partial" "$root/live" || fail "the working tree could not be moved into place"
    fi
    git -C "$root/live" fetch --quiet --prune --force origin "+refs/heads/*:refs/remotes/origin/*" ||
        fail "git could not update the working tree"
    # Tracked files follow the commit; untracked ones (dependencies, uploads, .env) stay.
    git -C "$root/live" checkout --quiet --force --detach "$sha" || fail "git could not check out $sha"
else
    step "unpacking $sha"
    dir="$root/releases/$release"
    rm -rf "$dir" && mkdir "$dir" || fail "the release directory could not be created"
    git -C "$mirror" archive --format=tar "$sha" | tar -x -C "$dir" || fail "git could not unpack $sha"
fi
printf "slipway-commit %s\n" "$(git -C "$mirror" log -1 --format="%H%x09%an <%ae>%x09%s" "$sha")"'
as_user env GIT_TERMINAL_PROMPT=0 GIT_SSH_COMMAND="$ssh_command" GIT_CONFIG_COUNT=2 \
    GIT_CONFIG_KEY_0=credential.helper GIT_CONFIG_VALUE_0= \
    GIT_CONFIG_KEY_1=credential.helper GIT_CONFIG_VALUE_1="$credential_helper" \
    sh -c "$fetch_as_user" sh "$ROOT" "$RELEASE" "$REPO_URL" "$BRANCH" "$COMMIT" "$LIVE_COMMIT" "$IN_PLACE" "$key" ||
    exit 1
