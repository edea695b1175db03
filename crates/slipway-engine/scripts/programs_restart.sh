# Restarts every process of PROGRAM; supervisorctl waits for each to start (or says why not).
out=$(supervisorctl restart "$PROGRAM:*" 2>&1) || true
printf '%s\n' "$out"
case "$out" in
    *ERROR*|*"no such"*) fail "$(printf '%s' "$out" | grep -m1 -E 'ERROR|no such')" ;;
esac
step "restarted $PROGRAM"
