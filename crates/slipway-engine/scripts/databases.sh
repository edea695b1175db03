# Creates the databases listed that do not exist yet and drops those being deleted, on the
# server's own engine, as its administrator over the local socket. It drops nothing else.
# Inputs: ENGINE (mysql, postgres, or none when WORK is empty), WORK (one line per database:
# "create id name charset collation" or "drop id name charset collation"; every value was
# checked by Slipway and is checked again here). A database that cannot be created is reported
# (`slipway-item-failed id reason`) and the others go on; a drop that fails fails the sync, so a
# database is never forgotten while it still exists.
if [ -z "$WORK" ]; then
    step "no databases to change"
    exit 0
fi
plain() {
    case "$1" in '' | *[!A-Za-z0-9_-]*) return 1 ;; esac
}
sql() {
    case "$ENGINE" in
        mysql) mysql --protocol=socket -uroot -N -B -e "$1" 2>&1 ;;
        postgres) runuser -u postgres -- psql -X -q -A -t -v ON_ERROR_STOP=1 -d postgres -c "$1" 2>&1 ;;
        *) echo "unknown database engine $ENGINE"; return 1 ;;
    esac
}
case "$ENGINE" in
    mysql) ready=$(mysqladmin --protocol=socket -uroot ping 2>&1) ;;
    postgres) ready=$(pg_isready -h /var/run/postgresql 2>&1) ;;
    *) fail "unknown database engine $ENGINE" ;;
esac || fail "the database engine does not answer on its socket: $ready"
drops=
while read -r action id name charset collation; do
    [ -n "$action" ] || continue
    if ! plain "$id" || ! plain "$name" || ! plain "$charset" || ! plain "$collation"; then
        fail "refusing a database line with unexpected characters"
    fi
    if [ "$action" = drop ]; then
        drops="$drops$id $name
"
        continue
    fi
    case "$ENGINE" in
        mysql)
            collate=
            [ "$collation" = - ] || collate=" COLLATE $collation"
            out=$(sql "CREATE DATABASE IF NOT EXISTS \`$name\` CHARACTER SET $charset$collate")
            ;;
        postgres)
            if [ "$(sql "SELECT 1 FROM pg_database WHERE datname = '$name'")" = 1 ]; then
                out=
            else
                out=$(sql "CREATE DATABASE \"$name\" ENCODING '$charset' TEMPLATE template0")
            fi
            ;;
    esac || {
        # The engine's error line (the client may echo the statement around it).
        why=$(printf '%s\n' "$out" | grep -m1 '^ERROR' || printf '%s' "$out" | tr '\n' ' ')
        echo "slipway-item-failed $id $why"
        continue
    }
    step "database $name is there"
done <<WORK_END
$WORK
WORK_END
while read -r id name; do
    [ -n "$id" ] || continue
    case "$ENGINE" in
        mysql) out=$(sql "DROP DATABASE IF EXISTS \`$name\`") ;;
        postgres) out=$(sql "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)") ;;
    esac || fail "could not drop the database $name: $out"
    step "database $name dropped"
done <<DROPS_END
$drops
DROPS_END
