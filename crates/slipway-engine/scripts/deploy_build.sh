# Writes the environment, links shared files, and runs the deploy script in the new release as
# the deploy user. Inputs: DEPLOY_USER, ROOT, RELEASE, DOTENV and ENV_SH (base64), SCRIPT (base64).
release="$ROOT/releases/$RELEASE"
[ -d "$release" ] || fail "the release directory is missing"
step "writing the environment"
put_user_file "$ROOT/shared/.env" 600 "$DOTENV"
put_user_file "$ROOT/.slipway/env.sh" 600 "$ENV_SH"
put_user_file "$ROOT/.slipway/deploy-$RELEASE.sh" 700 "$SCRIPT"
as_user sh -c 'rm -rf "$1/.env" && ln -s ../../shared/.env "$1/.env"' sh "$release"
step "running the deploy script"
cd "$release"
as_user sh -c '. "$1" && exec sh -e "$2"' sh \
    "$ROOT/.slipway/env.sh" "$ROOT/.slipway/deploy-$RELEASE.sh" || fail "the deploy script failed (exit $?)"
as_user rm -f "$ROOT/.slipway/deploy-$RELEASE.sh"
step "deploy script done"
