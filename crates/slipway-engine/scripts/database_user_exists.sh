# Says whether the server's engine has a user (any host) named USER_NAME:
# "slipway-user-exists yes|no". Inputs: ENGINE (mysql or postgres), USER_NAME (checked by Slipway
# to [a-z0-9_], and again here).
case "$USER_NAME" in '' | *[!a-z0-9_]*) fail "refusing an unexpected user name" ;; esac
case "$ENGINE" in
    mysql) found=$(printf '%s\n' "SELECT COUNT(*) FROM mysql.user WHERE User = '$USER_NAME'" | mysql --protocol=socket -uroot -N -B 2>&1) ;;
    postgres) found=$(printf '%s\n' "SELECT COUNT(*) FROM pg_roles WHERE rolname = '$USER_NAME'" | runuser -u postgres -- psql -X -q -A -t -d postgres 2>&1) ;;
    *) fail "unknown database engine $ENGINE" ;;
esac || fail "could not ask the database engine: $found"
case "$found" in
    0) echo "slipway-user-exists no" ;;
    [0-9]*) echo "slipway-user-exists yes" ;;
    *) fail "unexpected answer from the database engine: $found" ;;
esac
