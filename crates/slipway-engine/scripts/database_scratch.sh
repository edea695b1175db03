# Makes or drops a scratch database for a verification. Inputs: ENGINE, NAME (checked by Slipway
# to slpverify_ followed by [a-z0-9], and again here), CHARSET (the verified database's character
# set or encoding, so that its data fits), ACTION (create or drop). Only a name of that form is
# ever created or dropped here.
case "$NAME" in slpverify_*) ;; *) fail "refusing a scratch database name that is not slpverify_…" ;; esac
case "$NAME" in *[!a-z0-9_]*) fail "refusing an unexpected database name" ;; esac
case "$CHARSET" in '' | *[!A-Za-z0-9_]*) fail "refusing an unexpected character set" ;; esac
sql() {
    case "$ENGINE" in
        mysql) printf '%s\n' "$1" | mysql --protocol=socket -uroot -N -B 2>&1 ;;
        postgres) runuser -u postgres -- psql -X -q -A -t -v ON_ERROR_STOP=1 -d postgres -c "$1" 2>&1 ;;
        *) echo "unknown database engine $ENGINE"; return 1 ;;
    esac
}
case "$ACTION:$ENGINE" in
    create:mysql) out=$(sql "CREATE DATABASE \`$NAME\` CHARACTER SET $CHARSET") || fail "could not create $NAME: $out" ;;
    create:postgres) out=$(sql "CREATE DATABASE \"$NAME\" TEMPLATE template0 ENCODING '$CHARSET'") || fail "could not create $NAME: $out" ;;
    drop:mysql) out=$(sql "DROP DATABASE IF EXISTS \`$NAME\`") || fail "could not drop $NAME: $out" ;;
    drop:postgres) out=$(sql "DROP DATABASE IF EXISTS \"$NAME\" WITH (FORCE)") || fail "could not drop $NAME: $out" ;;
    *) fail "unknown action $ACTION on $ENGINE" ;;
esac
step "scratch database $NAME: $ACTION done"
