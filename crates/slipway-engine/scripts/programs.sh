# Makes the server run exactly the supervisor programs in PROGRAMS among those named PREFIX-*
# (a program whose user does not exist is not run, and reported).
# Inputs: PREFIX (slipway-daemon), LOG_DIR, PROGRAMS (one line per program: name item-id user
# conf-b64 wrapper-b64; every value was checked by Slipway). Other programs are never touched.
command -v supervisorctl >/dev/null || fail "supervisor is not installed; provision the server first"
mkdir -p /etc/slipway/programs "$LOG_DIR"
chmod 755 /etc/slipway /etc/slipway/programs
wanted=
while read -r name item user conf wrapper; do
    [ -n "$name" ] || continue
    if ! id "$user" >/dev/null 2>&1; then
        # supervisor refuses to read a file naming an unknown user, which would stop every
        # other program from applying: this one is removed (Slipway marks it failed).
        echo "slipway-item-failed $item the user $user does not exist on the server"
        echo "$name: the user $user does not exist on the server; not running it" >&2
        continue
    fi
    wanted="$wanted$name
"
    # The wrapper is root's, readable by the program's group only (it holds the command).
    put_file "/etc/slipway/programs/$name.sh" 0750 "$wrapper"
    chgrp "$(id -gn "$user")" "/etc/slipway/programs/$name.sh"
    put_file "/etc/supervisor/conf.d/$name.conf" 0644 "$conf"
done <<PROGRAMS_END
$PROGRAMS
PROGRAMS_END
for conf in /etc/supervisor/conf.d/"$PREFIX"-*.conf; do
    [ -e "$conf" ] || continue
    name=$(basename "$conf" .conf)
    # Only PREFIX-<id> (letters and digits): a site's own programs (slipway-<domain>-<port>)
    # can start with the same words and are never this script's.
    case "${name#"$PREFIX"-}" in
        "" | *[!a-z0-9]*) continue ;;
    esac
    if ! printf '%s' "$wanted" | grep -qxF "$name"; then
        step "removing $name"
        rm -f "$conf" "/etc/slipway/programs/$name.sh"
    fi
done
service_up supervisor
# supervisord may still be creating its socket right after a start.
tries=0
until supervisorctl pid >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 50 ] || fail "supervisor does not answer on its socket"
    sleep 0.1
done
supervisorctl reread >/dev/null
supervisorctl update
step "supervisor programs $PREFIX-* in place"
