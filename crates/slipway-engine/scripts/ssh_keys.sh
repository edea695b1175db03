# Replaces the block of keys Slipway manages in the deploy user's authorized_keys, keeping every
# other line. Inputs: DEPLOY_USER, KEYS (base64 of the managed block).
id "$DEPLOY_USER" >/dev/null 2>&1 || fail "the deploy user $DEPLOY_USER does not exist; provision the server first"
home=$(getent passwd "$DEPLOY_USER" | cut -d: -f6)
file="$home/.ssh/authorized_keys"
install -d -m 700 -o "$DEPLOY_USER" -g "$DEPLOY_USER" "$home/.ssh"
touch "$file"
{
    awk '/^# BEGIN slipway-managed keys/ { skip = 1 } !skip { print } /^# END slipway-managed keys/ { skip = 0 }' "$file"
    printf '%s' "$KEYS" | base64 -d
} > "$file.slipway-new"
chown "$DEPLOY_USER:$DEPLOY_USER" "$file.slipway-new"
chmod 600 "$file.slipway-new"
mv -f "$file.slipway-new" "$file"
step "authorized keys of $DEPLOY_USER updated"
