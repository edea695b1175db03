# Says whether database NAME exists on the server's own engine: "slipway-exists 1" or
# "slipway-exists 0". Inputs: ENGINE (mysql or postgres), NAME (checked by Slipway to [a-z0-9_],
# and again here).
case "$NAME" in '' | *[!a-z0-9_]*) fail "refusing an unexpected database name" ;; esac
case "$ENGINE" in
    mysql) found=$(printf '%s\n' "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '$NAME'" |
        mysql --protocol=socket -uroot -N -B 2>&1) ;;
    postgres) found=$(runuser -u postgres -- psql -X -q -A -t -v ON_ERROR_STOP=1 -d postgres \
        -c "SELECT COUNT(*) FROM pg_database WHERE datname = '$NAME'" 2>&1) ;;
    *) fail "unknown database engine $ENGINE" ;;
esac || fail "could not look for the database $NAME: $found"
echo "slipway-exists $found"
