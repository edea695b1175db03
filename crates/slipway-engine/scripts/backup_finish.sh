# Ends a backup written by backup_receive: with KEEP=yes, keeps DIR/NAME.partial as DIR/NAME if
# its SHA-256 is SHA256 (what Slipway sent), else removes it and fails; with KEEP=no (the dump
# or the transfer failed) removes it.
case "$DIR/$NAME" in *[!A-Za-z0-9/._-]* | *..*) fail "refusing an unexpected directory or name" ;; esac
target="$DIR/$NAME"
if [ "$KEEP" != yes ]; then
    rm -f "$target.partial"
    step "the partial backup file was removed"
    exit 0
fi
written=$(sha256sum "$target.partial" 2>&1) || fail "could not read the backup file: $written"
written=${written%% *}
if [ "$written" != "$SHA256" ]; then
    rm -f "$target.partial"
    fail "the file written has SHA-256 $written, not $SHA256 as sent; removed"
fi
mv "$target.partial" "$target"
step "stored $target (SHA-256 checked on the storage's server)"
