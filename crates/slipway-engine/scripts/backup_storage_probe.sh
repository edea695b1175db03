# Proves a backup directory works: makes it (root only) and lists it, writes a probe file, reads
# it back, deletes it. Reports "slipway-probe-passed", or "slipway-probe-failed <step> <reason>"
# (step list, write, read or delete).
# Inputs: DIR (an absolute directory Slipway checked), NAME (the probe file's name), CONTENT.
case "$DIR$NAME" in *[!A-Za-z0-9/._-]*) fail "refusing an unexpected directory or name" ;; esac
probe="$DIR/$NAME"
if ! out=$( (umask 077 && mkdir -p "$DIR" && ls "$DIR" > /dev/null) 2>&1); then
    echo "slipway-probe-failed list $(printf '%s' "$out" | tr '\n' ' ')"
    exit 0
fi
if ! out=$( (umask 077 && printf '%s' "$CONTENT" > "$probe") 2>&1); then
    echo "slipway-probe-failed write $(printf '%s' "$out" | tr '\n' ' ')"
    rm -f "$probe"
    exit 0
fi
if ! back=$(cat "$probe" 2>&1) || [ "$back" != "$CONTENT" ]; then
    echo "slipway-probe-failed read the file read back differs from the one written: $(printf '%s' "$back" | head -c 200 | tr '\n' ' ')"
    rm -f "$probe"
    exit 0
fi
if ! out=$(rm "$probe" 2>&1); then
    echo "slipway-probe-failed delete $(printf '%s' "$out" | tr '\n' ' ')"
    exit 0
fi
echo "slipway-probe-passed"
