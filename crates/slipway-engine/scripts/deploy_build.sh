# Writes the environment, links shared files, and runs the deploy script in the new release as
# the deploy user. Inputs: DEPLOY_USER, ROOT, RELEASE, DOTENV and ENV_SH (base64), SCRIPT (base64).
release="$ROOT/releases/$RELEASE"
[ -d "$release" ] || fail "the release directory is missing"
step "writing the environment"
put_file "$ROOT/shared/.env" 600 "$DOTENV"
put_file "$ROOT/.slipway/env.sh" 600 "$ENV_SH"
put_file "$ROOT/.slipway/deploy-$RELEASE.sh" 700 "$SCRIPT"
chown "$DEPLOY_USER:$DEPLOY_USER" "$ROOT/shared/.env" "$ROOT/.slipway/env.sh" "$ROOT/.slipway/deploy-$RELEASE.sh"
rm -rf "$release/.env"
ln -s ../../shared/.env "$release/.env"
step "running the deploy script"
cd "$release"
runuser -u "$DEPLOY_USER" -- env HOME="/home/$DEPLOY_USER" sh -c '. "$1" && exec sh -e "$2"' sh \
    "$ROOT/.slipway/env.sh" "$ROOT/.slipway/deploy-$RELEASE.sh" || fail "the deploy script failed (exit $?)"
rm -f "$ROOT/.slipway/deploy-$RELEASE.sh"
step "deploy script done"
