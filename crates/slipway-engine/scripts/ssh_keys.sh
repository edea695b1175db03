# Replaces the block of keys Slipway manages in the deploy user's authorized_keys, keeping every
# other line. Inputs: DEPLOY_USER, KEYS (base64 of the managed block).
id "$DEPLOY_USER" >/dev/null 2>&1 || fail "the deploy user $DEPLOY_USER does not exist; provision the server first"
# Everything here runs as the deploy user, in its own ~/.ssh (see as_user).
printf '%s' "$KEYS" | base64 -d | as_user sh -c '
    set -eu
    umask 077
    [ ! -L "$HOME/.ssh" ] || { echo "slipway-error: ~/.ssh of the deploy user is a symlink; refusing to follow it" >&2; exit 1; }
    mkdir -p "$HOME/.ssh"
    chmod 700 "$HOME/.ssh"
    file="$HOME/.ssh/authorized_keys"
    new=$(mktemp "$file.XXXXXX")
    if [ -f "$file" ]; then
        # A BEGIN without an END would drop every line after it: refuse instead.
        awk "/^# BEGIN slipway-managed keys/ { skip = 1 } !skip { print } /^# END slipway-managed keys/ { skip = 0 } END { if (skip) exit 3 }" "$file" > "$new" ||
            { rm -f "$new"; echo "slipway-error: authorized_keys has a Slipway BEGIN marker without its END; fix the file by hand" >&2; exit 1; }
    fi
    cat >> "$new"
    chmod 600 "$new"
    mv -f "$new" "$file"
'
step "authorized keys of $DEPLOY_USER updated"
