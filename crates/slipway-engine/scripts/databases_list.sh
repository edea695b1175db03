# Lists the databases on the server's own engine, one line each:
# "slipway-database name charset collation" (collation "-" for PostgreSQL). System databases are
# left out. Input: ENGINE (mysql or postgres).
case "$ENGINE" in
    mysql)
        list=$(mysql --protocol=socket -uroot -N -B -e "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')" 2>&1) ||
            fail "could not list the databases: $list"
        printf '%s\n' "$list" | tr '\t' ' ' | sed -n 's/^\(..*\)$/slipway-database \1/p'
        ;;
    postgres)
        list=$(runuser -u postgres -- psql -X -q -A -t -F ' ' -d postgres -c "SELECT datname, pg_encoding_to_char(encoding) FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'" 2>&1) ||
            fail "could not list the databases: $list"
        printf '%s\n' "$list" | sed -n 's/^\(..*\)$/slipway-database \1 -/p'
        ;;
    *) fail "unknown database engine $ENGINE" ;;
esac
