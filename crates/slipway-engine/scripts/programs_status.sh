# Prints supervisor's status lines for programs named PREFIX-* (a read; changes nothing).
command -v supervisorctl >/dev/null || fail "supervisor is not installed on the server"
# supervisorctl exits 3 when some program is not running; its lines say which.
out=$(supervisorctl status 2>&1) || true
case "$out" in
    *"refused connection"*|*"no such file"*) fail "supervisor is not running on the server" ;;
esac
printf '%s\n' "$out" | grep "^$PREFIX-" || true
