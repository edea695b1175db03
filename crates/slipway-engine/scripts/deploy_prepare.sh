# Prepares a release before any traffic moves, as one script: fetch (mirror the repository and
# unpack the commit as a new release, or check it out in an in-place site's working tree; or, to
# convert an in-place site, adopt its tree as the release), build (shared paths, the release's
# environment, the deploy script as the site's user) and health check (files: the web directory
# and health path exist; apps: a new process on PORT answers HEALTH_PATH). The user's part of all
# of it runs in one session as the site's user (each session costs a PAM session).
# Prints "slipway-step build" and "slipway-step health check" as those steps begin (the first
# step Slipway begins itself), and "slipway-commit SHA<TAB>AUTHOR<TAB>SUBJECT" for the commit.
# The deploy script's own lines that start with "slipway-" are shown indented, never read as
# these. It never exits on success: it ends by printing "slipway-prepared MARK", and its shell
# then waits for what Slipway sends next on the same session (the switch, or the end of input
# after a cancel). MARK is a random word only Slipway and this shell know: the site's own
# processes (which could write to this session's output) cannot say it.
# Inputs: DEPLOY_USER, ROOT, RELEASE (the deployment's id), DIR (the release's directory under
# ROOT: releases/ID, or live in place), NAME (names its files in .slipway), SOURCE (fetch, adopt,
# or empty for a rollback, whose release is built), BUILD (yes to build), KIND (files or app).
# fetch: REPO_URL (without credentials), GIT_USERNAME and GIT_PASSWORD (HTTP(S); empty for
# none), BRANCH, COMMIT (a pushed commit; empty for the branch's newest), LIVE_COMMIT (the live
# release's commit, if known), IN_PLACE (yes in place), DEPLOY_KEY (base64 private key; empty for
# none) and KEY_NAME. build: SHARED (shared paths, one per line), DOTENV, ENV_SH and SCRIPT
# (base64). health check: WEB_DIR, HEALTH_PATH, HEALTH_STATUS, HEALTH_TIMEOUT, LOG_DIR; apps:
# PORT, PROGRAM, PROGRAM_CONF and START (base64). MARK.
# All of it reads its standard input from /dev/null: the session's input holds what Slipway
# sends next (the shell reads the whole group before it runs any of it).
{
release="$ROOT/$DIR"

if [ "$SOURCE" = adopt ]; then
    # The shared paths move out of the live working tree into shared/ (each replaced by a link,
    # so the live site keeps writing to the same data), then the tree is copied (without .git).
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
    # The marker says the tree is in a release now: only then may a prune remove it.
    # shellcheck disable=SC2016 # expanded by the site user's shell
    as_user sh -c 'rm -rf "$2" && cp -a "$1/live" "$2" && rm -rf "$2/.git" && : >"$1/.slipway/live-adopted"' \
        sh "$ROOT" "$release" || fail "the live site could not be copied into the release"
    commit=$(as_user git -C "$ROOT/live" log -1 --format='%H%x09%an <%ae>%x09%s' HEAD 2>/dev/null || true)
    [ -z "$commit" ] || printf 'slipway-commit %s\n' "$commit"
fi

ssh_command='ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new'
key=
credential_helper=
if [ "$SOURCE" = fetch ]; then
    [ -d "$ROOT/releases" ] || fail "the site's directory is missing; apply the site again"
    step "fetching $BRANCH"
    if [ -n "$DEPLOY_KEY" ]; then
        key="$ROOT/.slipway/$KEY_NAME"
        # The key is on disk only while git fetches: removed on every way out of this script.
        trap 'as_user rm -f "$key"' EXIT
        put_user_file "$key" 600 "$DEPLOY_KEY"
        ssh_command="$ssh_command -o IdentitiesOnly=yes -i $key"
    fi
    # HTTP credentials come from a helper that reads them from the environment (which only the
    # site's user and root can read), never from git's command line or the mirror's config.
    if [ -n "$GIT_USERNAME" ]; then
        export SLIPWAY_GIT_USERNAME="$GIT_USERNAME" SLIPWAY_GIT_PASSWORD="$GIT_PASSWORD"
        # shellcheck disable=SC2016 # expanded by the helper's shell, from its environment
        credential_helper='!f() { [ "$1" = get ] && printf "username=%s\npassword=%s\n" "$SLIPWAY_GIT_USERNAME" "$SLIPWAY_GIT_PASSWORD"; }; f'
    fi
fi

# The site user's part, in one session: its values arrive as arguments, never inside its text;
# the release's files (base64, one line each) on standard input. Git and its credentials are
# gone from the environment before the deploy script runs.
# shellcheck disable=SC2016 # expanded by the site user's shell
prepare_as_user='set -u
fail() { printf "slipway-error: %s\n" "$*" >&2; exit 1; }
step() { printf "==> %s\n" "$*"; }
# Sets inode to the inode number of the pipe on file descriptor $1 of this shell: read from
# fdinfo (Linux 5.14 and later: no process started), else from the link of the descriptor.
pipe_inode() {
    inode=
    if [ -r "/proc/self/fdinfo/$1" ]; then
        while read -r key value; do
            if [ "$key" = ino: ]; then inode=$value; fi
        done <"/proc/self/fdinfo/$1"
    fi
    if [ -z "$inode" ]; then
        inode=$(readlink "/proc/self/fd/$1" 2>/dev/null) || inode=
        inode=${inode#pipe:?}; inode=${inode%?}
    fi
}
# The processes other than $4 holding pipe number $1 or $2 open for writing ("/proc/PID/fd"
# lines), once none does or after $3 waits of 0.2 s.
writers_after() {
    tries=0
    while
        held=$(find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 -perm -u=w ! -path "/proc/$4/fd/*" \
            \( -lname "pipe:?$1?" -o -lname "pipe:?$2?" \) -printf "%h\n" 2>/dev/null)
        [ -n "$held" ] && [ "$tries" -lt "$3" ]
    do
        sleep 0.2
        tries=$((tries + 1))
    done
    printf "%s" "$held"
}
# Whether $1 is a number.
number() {
    case $1 in "" | *[!0-9]*) return 1 ;; esac
}
# The process ids in such lines, each once.
pids_of() {
    ids=
    for held in $1; do
        id=${held#/proc/}; id=${id%/fd}
        case " $ids " in *" $id "*) ;; *) ids="$ids $id" ;; esac
    done
    printf "%s" "${ids# }"
}
put=$1 root=$2 release=$3 dir=$4 fetch=$5 build=$6 check=$7 url=$8 branch=$9
shift 9
commit=$1 live_commit=$2 in_place=$3 key=$4 shared=$5 web_dir=$6 health_path=$7 env_sh=$8 script=$9
shift 9
work="$root/$dir"
if [ -n "$fetch" ]; then
    mirror="$root/repo.git"
    # A key left by a fetch that was killed (a cancel, a timeout) goes now.
    for old in "$root"/.slipway/slipway-repo-*; do
        if [ -e "$old" ] && [ "$old" != "$key" ]; then rm -f "$old"; fi
    done
    # Where ssh keeps the key of the git host (the home of the site user is the site directory).
    if [ -n "$key" ]; then (umask 077; mkdir -p "$HOME/.ssh"); fi
    if [ -d "$mirror" ]; then
        # From the URL itself: the mirror follows a repository that moved without a config write.
        git -C "$mirror" fetch --quiet --prune --force "$url" "+refs/heads/*:refs/heads/*" </dev/null ||
            fail "git could not fetch the repository"
    else
        git clone --quiet --mirror "$url" "$mirror.partial" </dev/null ||
            { rm -rf "$mirror.partial"; fail "git could not clone the repository"; }
        mv "$mirror.partial" "$mirror" || fail "the mirror could not be moved into place"
    fi
    if [ -n "$key" ]; then rm -f "$key"; fi
    # The commit and what Slipway records of it, in one read: the id ends at the first tab.
    format="%H%x09%an <%ae>%x09%s"
    info=$(git -C "$mirror" log -1 --format="$format" "refs/heads/$branch" -- 2>/dev/null) ||
        fail "the repository has no branch $branch"
    sha=${info%%[!0-9a-f]*}
    if [ -n "$commit" ]; then
        # The pushed commit, which must be on the branch (a later push may have moved it on).
        pushed=$(git -C "$mirror" rev-parse --verify --quiet "$commit^{commit}") ||
            fail "the pushed commit $commit is not in the repository"
        git -C "$mirror" merge-base --is-ancestor "$pushed" "$sha" ||
            fail "the pushed commit $commit is not on branch $branch"
        # Behind what is live and no longer the head of the branch: a replayed or late push,
        # which must not take the site back (a force-push that moves the branch back is still
        # deployed).
        if [ -n "$live_commit" ] && [ "$pushed" != "$sha" ] && [ "$pushed" != "$live_commit" ] &&
            git -C "$mirror" merge-base --is-ancestor "$pushed" "$live_commit" 2>/dev/null; then
            fail "the pushed commit $commit is older than the live commit $live_commit; a replayed or out-of-order push is not deployed"
        fi
        sha=$pushed
        info=$(git -C "$mirror" log -1 --format="$format" "$sha" --) || fail "git could not read $sha"
    fi
    if [ -n "$in_place" ]; then
        step "checking out $sha in place"
        if [ -e "$root/live" ] && [ ! -d "$root/live/.git" ]; then
            fail "$root/live is not a git working tree (was .git removed?); it is left as it is"
        fi
        if [ ! -d "$root/live" ]; then
            rm -rf "$root/live.partial"
            git clone --quiet --no-checkout "$mirror" "$root/live.partial" </dev/null ||
                fail "git could not create the working tree"
            mv "$root/live.partial" "$root/live" || fail "the working tree could not be moved into place"
        fi
        git -C "$root/live" fetch --quiet --prune --force origin "+refs/heads/*:refs/remotes/origin/*" </dev/null ||
            fail "git could not update the working tree"
        # Tracked files follow the commit; untracked ones (dependencies, uploads, .env) stay.
        git -C "$root/live" checkout --quiet --force --detach "$sha" || fail "git could not check out $sha"
    else
        step "unpacking $sha"
        dir_new="$root/releases/$release"
        # What an interrupted try left goes first (rm only then: every process of a deploy counts).
        if [ -e "$dir_new" ] || [ -L "$dir_new" ]; then rm -rf "$dir_new"; fi
        mkdir "$dir_new" || fail "the release directory could not be created"
        git -C "$mirror" archive --format=tar "$sha" | tar -x -C "$dir_new" || fail "git could not unpack $sha"
    fi
    printf "slipway-commit %s\n" "$info"
fi
unset SLIPWAY_GIT_USERNAME SLIPWAY_GIT_PASSWORD GIT_TERMINAL_PROMPT GIT_SSH_COMMAND GIT_CONFIG_COUNT \
    GIT_CONFIG_KEY_0 GIT_CONFIG_VALUE_0 GIT_CONFIG_KEY_1 GIT_CONFIG_VALUE_1
if [ -n "$build" ]; then
    echo "slipway-step build"
    [ -d "$work" ] || fail "the release directory is missing"
    # Each shared path becomes a link to shared/PATH; the first release that has it seeds it.
    # One per line: split at newlines only, never globbed (no process for a site without any).
    set -f
    IFS="
"
    for path in $shared; do
        step "linking shared/$path"
        (
            set -e
            target="$work/$path"; parent=$(dirname "$path"); link="$root/shared/$path"
            # The link goes where the path says: no directory on the way is a symlink.
            want=$(realpath -- "$work"); [ "$parent" = . ] || want="$want/$parent"
            [ "$(realpath -m -- "$work/$parent")" = "$want" ] || { echo "a directory above $path is a symlink" >&2; exit 3; }
            if [ ! -e "$link" ] && [ ! -L "$link" ]; then
                mkdir -p "$(dirname "$link")"
                if [ -e "$target" ]; then cp -a "$target" "$link"; else mkdir -p "$link"; fi
            fi
            rm -rf "$target"
            mkdir -p "$(dirname "$target")"
            ln -s "$link" "$target"
        ) || fail "could not link the shared path $path"
    done
    unset IFS
    set +f
    step "writing the environment"
    sh -c "$put" sh "$@" || fail "the environment and deploy script of the release could not be written"
    step "running the deploy script"
    # Its standard output passes through sed so that none of its lines reads as a marker above;
    # both its streams go through pipes of their own (standard error through the swap of 1 and
    # 3), which tell what the script left running: a process that still holds them after the
    # script has exited would hold the deploy (and the session) for as long as it runs. It is
    # waited for, its output still shown, for at most 10 s, then stopped, and the deploy fails.
    # The file beside the script gets its exit status (dash has no pipefail) and what was stopped.
    code_file="$script.exit"
    {
        {
            # (Through 4: inside a command substitution, 1 is its own.)
            exec 4>&1
            pipe_inode 4; err=$inode
            pipe_inode 3; out=$inode
            exec 4>&-
            ( cd "$work" && . "$env_sh" && exec sh -e "$script" ) </dev/null 2>&1 >&3 3>&-
            echo "exit $?" >"$code_file"
            # Neither this shell nor what it starts holds them now; the shell that waits for it
            # and its reader still holds the pipe of standard output (and is skipped).
            exec >/dev/null 3>&-
            read -r _ _ _ parent _ </proc/self/stat || parent=
            left=
            if number "$out" && number "$err" && number "$parent"; then
                left=$(writers_after "$out" "$err" 0 "$parent")
            fi
            if [ -n "$left" ]; then
                echo "the deploy script has exited; waiting up to 10 s for what it left running that still holds its output (processes $(pids_of "$left"))" >&2
                left=$(writers_after "$out" "$err" 50 "$parent")
            fi
            if [ -n "$left" ]; then
                pids=$(pids_of "$left")
                echo "the deploy script left processes running that still hold its output 10 s after it exited; they are stopped:" >&2
                ps -o pid=,args= -p "$pids" >&2 || true
                echo "stopped $pids" >>"$code_file"
                kill $pids 2>/dev/null || true
                left=$(writers_after "$out" "$err" 10 "$parent")
                [ -z "$left" ] || kill -KILL $(pids_of "$left") 2>/dev/null || true
            fi
        } | cat >&2 3>&-
    } 3>&1 | sed -u "s/^slipway-/ slipway-/"
    code= stopped=
    while read -r word rest; do
        case $word in exit) code=$rest ;; stopped) stopped=$rest ;; esac
    done <"$code_file"
    rm -f "$script" "$code_file"
    [ "$code" = 0 ] || fail "the deploy script failed (exit ${code:-unknown})"
    [ -z "$stopped" ] || fail "the deploy script left processes running that still held its output 10 s after it exited (stopped: $stopped); wait for them in the script, or start a long-running process as a daemon or with its output sent elsewhere"
    step "deploy script done"
fi
if [ -n "$check" ]; then
    echo "slipway-step health check"
    # Checked as the site user (through a symlink in the release, root would see other sites).
    step "checking the release"
    test -d "$work/$web_dir" || fail "health check failed: the web directory ${web_dir:-.} does not exist in the release"
    path=${health_path%%\?*}
    [ "$path" = / ] || test -e "$work/$web_dir$path" || fail "health check failed: $health_path does not exist in the release"
fi'

check=
[ "$KIND" != files ] || check=yes
if [ -n "$SOURCE$BUILD$check" ]; then
    fetch=
    [ "$SOURCE" != fetch ] || fetch=yes
    printf '%s\n%s\n%s\n' "$DOTENV" "$ENV_SH" "$SCRIPT" |
        as_user env GIT_TERMINAL_PROMPT=0 GIT_SSH_COMMAND="$ssh_command" GIT_CONFIG_COUNT=2 \
            GIT_CONFIG_KEY_0=credential.helper GIT_CONFIG_VALUE_0= \
            GIT_CONFIG_KEY_1=credential.helper GIT_CONFIG_VALUE_1="$credential_helper" \
            sh -c "$prepare_as_user" sh "$put_user_files_sh" "$ROOT" "$RELEASE" "$DIR" "$fetch" "$BUILD" "$check" \
            "$REPO_URL" "$BRANCH" "$COMMIT" "$LIVE_COMMIT" "$IN_PLACE" "$key" "$SHARED" "$WEB_DIR" "$HEALTH_PATH" \
            "$ROOT/.slipway/env-$NAME.sh" "$ROOT/.slipway/deploy-$NAME.sh" \
            "600:$release/.env" "600:$ROOT/.slipway/env-$NAME.sh" "600:$ROOT/.slipway/deploy-$NAME.sh" ||
        exit 1
fi

# An app's release starts on its port and must answer its health check; returns once it does.
start_and_check_app() {
    echo "slipway-step health check"
    [ -d "$release" ] || fail "the release directory is missing"
    step "starting the release on port $PORT"
    conf="/etc/supervisor/conf.d/$PROGRAM.conf"
    # A program left on this port by an interrupted deploy is replaced (in place: the live app
    # is restarted, which is the downtime an in-place site accepts). Each supervisorctl call
    # starts a Python interpreter, so there are only as many as needed.
    known=
    if [ -e "$conf" ]; then
        known=yes
        supervisorctl stop "$PROGRAM" >/dev/null 2>&1 || true
    fi
    put_user_file "$ROOT/.slipway/start-$PORT.sh" 700 "$START"
    put_file "$conf" 644 "$PROGRAM_CONF"
    # `update` rereads the configuration and starts a program it adds (autostart); one it knew
    # already, with the same configuration, stays stopped until `start`.
    supervisorctl update "$PROGRAM" >/dev/null 2>&1 || supervisorctl update >/dev/null
    if [ -n "$known" ]; then supervisorctl start "$PROGRAM" >/dev/null 2>&1 || true; fi
    step "health check: GET $HEALTH_PATH on port $PORT, expecting $HEALTH_STATUS"
    deadline=$(($(date +%s) + HEALTH_TIMEOUT))
    code=none
    last_said=$(date +%s)
    while [ "$(date +%s)" -lt "$deadline" ]; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT$HEALTH_PATH" || true)
        if [ "$code" = "$HEALTH_STATUS" ]; then
            step "healthy"
            return 0
        fi
        # A line now and then: a long wait is progress, not a silent (stalled) command.
        if [ $(($(date +%s) - last_said)) -ge 10 ]; then
            echo "still waiting: answered ${code:-nothing} so far"
            last_said=$(date +%s)
        fi
        sleep 0.1
    done
    tail -n 5 "$LOG_DIR/app-$PORT.log" 2>/dev/null | sed 's/^/app: /' >&2 || true
    fail "health check failed: GET $HEALTH_PATH on the new release answered ${code:-nothing}, expected $HEALTH_STATUS within ${HEALTH_TIMEOUT}s"
}
if [ "$KIND" = app ]; then start_and_check_app; fi
} </dev/null

# Ready to switch: nothing of the fetch is left for what comes next (the key is gone already).
unset SLIPWAY_GIT_USERNAME SLIPWAY_GIT_PASSWORD
trap - EXIT
echo "slipway-prepared $MARK"
