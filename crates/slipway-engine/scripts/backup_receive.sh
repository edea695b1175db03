# Writes standard input (a backup, as it streams) to DIR/NAME.partial, root-only; backup_finish
# keeps it once its SHA-256 is the one Slipway computed, or removes it. Inputs: DIR (checked by
# Slipway), NAME (Slipway's own key).
case "$DIR/$NAME" in *[!A-Za-z0-9/._-]* | *..*) fail "refusing an unexpected directory or name" ;; esac
target="$DIR/$NAME"
umask 077
mkdir -p "$(dirname "$target")"
cat > "$target.partial"
