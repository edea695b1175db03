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
# A .env the repository holds (a file, a link, a directory) gives way to the site's.
printf '%s\n%s\n%s\n' "$DOTENV" "$ENV_SH" "$SCRIPT" | put_user_files "600:$release/.env" \
    "600:$ROOT/.slipway/env-$NAME.sh" "700:$ROOT/.slipway/deploy-$NAME.sh" ||
    fail "the release's environment and deploy script could not be written"
step "running the deploy script"
cd "$release"
# shellcheck disable=SC2016 # expanded by the deploy user's shell
as_user sh -c '. "$1" && sh -e "$2"; code=$?; rm -f "$2"; exit "$code"' sh \
    "$ROOT/.slipway/env-$NAME.sh" "$ROOT/.slipway/deploy-$NAME.sh" || fail "the deploy script failed (exit $?)"
step "deploy script done"
