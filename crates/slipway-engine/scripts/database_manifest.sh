# Lists the tables of database NAME with their exact row counts, one line each:
# "slipway-table <table> <rows>". Inputs: ENGINE (mysql or postgres), NAME (checked by Slipway to
# [a-z0-9_], and again here). Table names come from the engine and reach SQL only quoted as
# identifiers.
case "$NAME" in '' | *[!a-z0-9_]*) fail "refusing an unexpected database name" ;; esac
case "$ENGINE" in
    mysql)
        tables=$(printf '%s\n' "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$NAME' AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME" |
            mysql --protocol=socket -uroot -N -B 2>&1) || fail "could not list the tables: $tables"
        while IFS= read -r table; do
            [ -n "$table" ] || continue
            quoted=$(printf '%s' "$table" | sed 's/`/``/g')
            rows=$(printf '%s\n' "SELECT COUNT(*) FROM \`$NAME\`.\`$quoted\`" | mysql --protocol=socket -uroot -N -B 2>&1) ||
                fail "could not count the rows of $table: $rows"
            echo "slipway-table $table $rows"
        done <<TABLES_END
$tables
TABLES_END
        ;;
    postgres)
        tables=$(runuser -u postgres -- psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$NAME" -c "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1" 2>&1) ||
            fail "could not list the tables: $tables"
        while IFS= read -r table; do
            [ -n "$table" ] || continue
            rows=$(printf '%s\n' "SELECT COUNT(*) FROM $table" | runuser -u postgres -- psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$NAME" 2>&1) ||
                fail "could not count the rows of $table: $rows"
            echo "slipway-table $table $rows"
        done <<TABLES_END
$tables
TABLES_END
        ;;
    *) fail "unknown database engine $ENGINE" ;;
esac
