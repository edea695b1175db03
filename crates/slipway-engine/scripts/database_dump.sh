# Writes a dump of database NAME to standard output, and nothing else: MySQL/MariaDB as SQL from
# `mysqldump --single-transaction` (one consistent snapshot, tables not locked), gzipped;
# PostgreSQL in pg_dump's custom format (compressed). A dump that fails says so on stderr
# ("slipway-dump-failed …"): the pipe into gzip would otherwise hide it. The dump has no CREATE
# DATABASE, so it restores into any database. Inputs: ENGINE, NAME (checked again here).
case "$NAME" in '' | *[!a-z0-9_]*) fail "refusing an unexpected database name" ;; esac
case "$ENGINE" in
    mysql)
        {
            mysqldump --protocol=socket -uroot --single-transaction --quick --routines --triggers --events \
                --hex-blob "$NAME" || echo "slipway-dump-failed mysqldump exited $?" >&2
        } | gzip -c
        ;;
    postgres)
        runuser -u postgres -- pg_dump -Fc -d "$NAME" || {
            echo "slipway-dump-failed pg_dump exited $?" >&2
            exit 1
        }
        ;;
    *) fail "unknown database engine $ENGINE" ;;
esac
