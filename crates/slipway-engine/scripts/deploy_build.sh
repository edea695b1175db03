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
as_user rm -rf "$release/.env"
put_user_file "$release/.env" 600 "$DOTENV"
put_user_file "$ROOT/.slipway/env-$NAME.sh" 600 "$ENV_SH"
put_user_file "$ROOT/.slipway/deploy-$NAME.sh" 700 "$SCRIPT"
step "running the deploy script"
cd "$release"
as_user sh -c '. "$1" && exec sh -e "$2"' sh \
    "$ROOT/.slipway/env-$NAME.sh" "$ROOT/.slipway/deploy-$NAME.sh" || fail "the deploy script failed (exit $?)"
as_user rm -f "$ROOT/.slipway/deploy-$NAME.sh"
step "deploy script done"
