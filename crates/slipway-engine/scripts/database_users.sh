# Puts the database users Slipway lists on the server's own engine, as its administrator over
# the local socket. Inputs: ENGINE (mysql, postgres, or none when WORK is empty), WORK (lines
# "<id> <step> <database> <payload>", rendered by Slipway from checked values):
#   sql                 run the payload as SQL (on PostgreSQL, in <database>)
#   mysql-prune         "name host…": drop the user's accounts on hosts not listed
#   mysql-prune-grants  "name host db…": revoke the account's grants on databases not listed
#   pg-prune            "name db…": revoke the role's rights in databases not listed
#   drop-mysql / drop-pg "name": remove the user (PostgreSQL: what it owns goes to postgres)
# SQL goes to the client on its standard input, never on a command line (it holds passwords).
# A user whose step fails is reported (`slipway-item-failed id reason`) and its other steps are
# skipped; a drop that fails fails the sync, so a user is never forgotten while it exists.
if [ -z "$WORK" ]; then
    step "no database users to change"
    exit 0
fi
# Payloads are split into words below: no word may become a file name.
set -f
word() {
    case "$1" in '' | *[!A-Za-z0-9_.:%-]*) return 1 ;; esac
}
# Runs SQL from standard input in database $1 (PostgreSQL) and prints the engine's words.
sql_in() {
    case "$ENGINE" in
        mysql) mysql --protocol=socket -uroot -N -B 2>&1 ;;
        postgres) runuser -u postgres -- psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$1" 2>&1 ;;
    esac
}
query() {
    printf '%s\n' "$2" | sql_in "$1"
}
case "$ENGINE" in
    mysql) ready=$(mysqladmin --protocol=socket -uroot ping 2>&1) ;;
    postgres) ready=$(pg_isready -h /var/run/postgresql 2>&1) ;;
    *) fail "unknown database engine $ENGINE" ;;
esac || fail "the database engine does not answer on its socket: $ready"

listed() { # listed <word> <list…>: whether the word is among the list
    needle=$1
    shift
    for candidate in "$@"; do [ "$candidate" = "$needle" ] && return 0; done
    return 1
}
# The databases (PostgreSQL) where role $1 holds a right of its own.
pg_databases_of() {
    query postgres "SELECT DISTINCT d.datname FROM pg_database d, aclexplode(d.datacl) a, pg_roles r WHERE r.rolname = '$1' AND a.grantee = r.oid AND d.datallowconn"
}
# Runs SQL $2 in database $1, where a database dropped meanwhile counts as done: it holds
# nothing of anyone's any more. A forced drop ends the sessions in it before it commits, so the
# first look may still find it; a second connection waits for the drop to finish (it holds the
# database's lock), so the next look is sure. Other failures are tried again, then reported.
pg_in_or_gone() { # pg_in_or_gone <database> <sql>
    for _ in 1 2 3; do
        out=$(query "$1" "$2") && return 0
        gone=$(query postgres "SELECT 1 FROM pg_database WHERE datname = '$1'") && [ -z "$gone" ] && return 0
    done
    echo "$out"
    return 1
}
pg_revoke_in() { # pg_revoke_in <database> <role>
    pg_in_or_gone "$1" "BEGIN; REVOKE ALL ON ALL TABLES IN SCHEMA public FROM \"$2\"; REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM \"$2\"; REVOKE ALL ON SCHEMA public FROM \"$2\"; REVOKE ALL ON DATABASE \"$1\" FROM \"$2\"; COMMIT"
}

step_of() { # step_of <step> <database> <payload…>: runs one step, printing the engine's words on failure
    step=$1
    db=$2
    shift 2
    case "$step" in
        mysql-prune)
            name=$1
            shift
            hosts=$(query - "SELECT Host FROM mysql.user WHERE User = '$name'") || { echo "$hosts"; return 1; }
            for host in $hosts; do
                word "$host" || { echo "unexpected host $host"; return 1; }
                listed "$host" "$@" || query - "DROP USER IF EXISTS '$name'@'$host'" || return 1
            done
            ;;
        mysql-prune-grants)
            name=$1
            host=$2
            shift 2
            dbs=$(query - "SELECT Db FROM mysql.db WHERE User = '$name' AND Host = '$host'") || { echo "$dbs"; return 1; }
            for granted in $dbs; do
                word "$granted" || continue
                listed "$granted" "$@" || query - "REVOKE ALL PRIVILEGES ON \`$granted\`.* FROM '$name'@'$host'" || return 1
            done
            ;;
        pg-prune)
            name=$1
            shift
            dbs=$(pg_databases_of "$name") || { echo "$dbs"; return 1; }
            for granted in $dbs; do
                word "$granted" || continue
                listed "$granted" "$@" || pg_revoke_in "$granted" "$name" || return 1
            done
            ;;
        drop-mysql)
            hosts=$(query - "SELECT Host FROM mysql.user WHERE User = '$1'") || { echo "$hosts"; return 1; }
            for host in $hosts; do
                word "$host" || { echo "unexpected host $host"; return 1; }
                query - "DROP USER IF EXISTS '$1'@'$host'" || return 1
            done
            ;;
        drop-pg)
            exists=$(query postgres "SELECT 1 FROM pg_roles WHERE rolname = '$1'") || { echo "$exists"; return 1; }
            [ "$exists" = 1 ] || return 0
            # What the role owns or may do, in every database: owned objects go to postgres.
            dbs=$(query postgres "SELECT datname FROM pg_database WHERE datallowconn") || { echo "$dbs"; return 1; }
            for in_db in $dbs; do
                word "$in_db" || continue
                pg_in_or_gone "$in_db" "BEGIN; REASSIGN OWNED BY \"$1\" TO postgres; DROP OWNED BY \"$1\"; COMMIT" || return 1
            done
            query postgres "DROP ROLE IF EXISTS \"$1\"" || return 1
            ;;
        *) echo "unknown step $step"; return 1 ;;
    esac
}

failed_ids=" "
while read -r id action db payload; do
    [ -n "$id" ] || continue
    word "$id" && word "$action" && word "$db" || fail "refusing a database user line with unexpected characters"
    case "$failed_ids" in *" $id "*) continue ;; esac
    case "$action" in
        sql) out=$(query "$db" "$payload") ;;
        *) out=$(step_of "$action" "$db" $payload) ;;
    esac && continue
    # The engine's error line (the client may print more around it).
    why=$(printf '%s\n' "$out" | grep -m1 -i 'error' || printf '%s' "$out" | tr '\n' ' ')
    case "$action" in
        drop-*) fail "could not drop the database user $payload: $why" ;;
    esac
    echo "slipway-item-failed $id $why"
    failed_ids="$failed_ids$id "
done <<WORK_END
$WORK
WORK_END
step "database users are in place"
