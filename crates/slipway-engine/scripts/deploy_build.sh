# Links the shared paths, writes the release's environment and runs the deploy script in it as
# the deploy user. Each release has its own .env (and shell exports for its app), so a deploy
# that fails or is cancelled never changes the variables of the release that is live.
# Inputs: DEPLOY_USER, ROOT, DIR (the release's directory under ROOT: releases/ID, or live for an
# in-place site), NAME (names its files in .slipway), SHARED (shared paths, one per line; empty
# in place, where everything persists anyway), DOTENV and ENV_SH (base64), SCRIPT (base64).
release="$ROOT/$DIR"
[ -d "$release" ] || fail "the release directory is missing"
link_shared "$release"
step "writing the environment"
# One session as the deploy user (each costs a PAM session) writes the release's files, their
# contents on standard input as for put_user_files, then runs the deploy script in the release
# with the variables in its environment and nothing on its standard input. It says why it
# failed itself. A .env the repository holds (a file, a link, a directory) gives way to the
# site's.
# shellcheck disable=SC2016 # expanded by the deploy user's shell
build_as_user='put=$1 release=$2 env_sh=$3 script=$4
shift 4
sh -c "$put" sh "$@" ||
    { echo "slipway-error: the environment and deploy script of the release could not be written" >&2; exit 1; }
echo "==> running the deploy script"
cd "$release" || exit 1
( . "$env_sh" && sh -e "$script" ) </dev/null
code=$?
rm -f "$script"
[ "$code" -eq 0 ] || { echo "slipway-error: the deploy script failed (exit $code)" >&2; exit 1; }'
printf '%s\n%s\n%s\n' "$DOTENV" "$ENV_SH" "$SCRIPT" |
    as_user sh -c "$build_as_user" sh "$put_user_files_sh" "$release" \
        "$ROOT/.slipway/env-$NAME.sh" "$ROOT/.slipway/deploy-$NAME.sh" \
        "600:$release/.env" "600:$ROOT/.slipway/env-$NAME.sh" "700:$ROOT/.slipway/deploy-$NAME.sh" ||
    exit 1
step "deploy script done"
