# Restores a dump made by database_dump.sh, read from standard input (after this script), into
# database NAME: MySQL/MariaDB SQL gzipped, PostgreSQL pg_dump's custom format. Inputs: ENGINE,
# NAME (checked by Slipway to [a-z0-9_], and again here), MODE:
#   empty      NAME exists and holds no table yet (a new database, or a scratch one): a database
#              that already holds tables is refused, so nothing is ever restored over by mistake;
#   overwrite  NAME's tables are replaced by the dump's (the caller confirmed it by name); tables
#              that are not in the dump are left as they are.
# PostgreSQL restores in one transaction: a restore that fails changes nothing. MySQL applies
# the dump statement by statement. Either way a failure ends the script with the engine's words.
case "$NAME" in '' | *[!a-z0-9_]*) fail "refusing an unexpected database name" ;; esac
case "$MODE" in empty | overwrite) ;; *) fail "unknown restore mode $MODE" ;; esac
case "$ENGINE" in
    mysql)
        tables=$(printf '%s\n' "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$NAME'" |
            mysql --protocol=socket -uroot -N -B 2>&1) || fail "could not look into $NAME: $tables"
        exists=$(printf '%s\n' "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '$NAME'" |
            mysql --protocol=socket -uroot -N -B 2>&1) || fail "could not look into $NAME: $exists"
        ;;
    postgres)
        exists=$(runuser -u postgres -- psql -X -q -A -t -v ON_ERROR_STOP=1 -d postgres \
            -c "SELECT COUNT(*) FROM pg_database WHERE datname = '$NAME'" 2>&1) || fail "could not look for $NAME: $exists"
        tables=0
        if [ "$exists" = 1 ]; then
            tables=$(runuser -u postgres -- psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$NAME" \
                -c "SELECT COUNT(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')" 2>&1) ||
                fail "could not look into $NAME: $tables"
        fi
        ;;
    *) fail "unknown database engine $ENGINE" ;;
esac
[ "$exists" = 1 ] || fail "the database $NAME does not exist on the server"
if [ "$MODE" = empty ] && [ "$tables" != 0 ]; then
    fail "the database $NAME already holds $tables table(s); restore into a new database, or confirm replacing its tables"
fi
step "restoring into $NAME"
# The restore tools print nothing until they end; a line a minute shows the restore is alive
# (and keeps the connection from being taken for idle).
# sleep writes nowhere: once the loop is killed, nothing holds the output open.
(while sleep 60 >/dev/null 2>&1; do echo "still restoring"; done) &
heartbeat=$!
trap 'kill "$heartbeat" 2>/dev/null || true' EXIT
case "$ENGINE" in
    mysql)
        # gunzip's failure (a damaged or cut object) must fail the restore even when mysql ran
        # every statement it was given: each side reports on descriptor 3.
        failed=$({ { gunzip -c || echo "gunzip exited $?" >&3; } |
            { mysql --protocol=socket -uroot --binary-mode "$NAME" >&2 || echo "mysql exited $?" >&3; }; } 3>&1)
        [ -z "$failed" ] || fail "the restore failed: $(printf '%s' "$failed" | tr '\n' ' ')"
        ;;
    postgres)
        clean=
        [ "$MODE" = empty ] || clean="--clean --if-exists"
        # shellcheck disable=SC2086 # two fixed words, or none
        runuser -u postgres -- pg_restore --dbname="$NAME" --single-transaction --exit-on-error --no-privileges $clean ||
            fail "pg_restore exited $? (nothing was changed)"
        ;;
esac
step "restored"
