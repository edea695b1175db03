# Starts the release and checks its health before any traffic reaches it.
# Static and PHP sites: the web directory must exist (and the health path, if not "/").
# Apps: a supervisor program runs the app on PORT; GET HEALTH_PATH on it must answer
# HEALTH_STATUS within HEALTH_TIMEOUT seconds.
# Inputs: DEPLOY_USER, ROOT, LOG_DIR, DIR (the release's directory under ROOT), KIND (files/app), WEB_DIR, HEALTH_PATH, HEALTH_STATUS, HEALTH_TIMEOUT,
# PORT, PROGRAM, PROGRAM_CONF and START (base64).
release="$ROOT/$DIR"
[ -d "$release" ] || fail "the release directory is missing"
if [ "$KIND" = files ]; then
    step "checking the release"
    # Checked as the site's user (through a symlink in the release, root would see other
    # sites), in one session: exit 3 when the web directory is missing, 4 the health path.
    path=${HEALTH_PATH%%\?*}
    code=0
    # shellcheck disable=SC2016 # expanded by the site user's shell
    as_user sh -c 'test -d "$1" || exit 3; [ "$2" = / ] || test -e "$1$2" || exit 4' sh \
        "$release/$WEB_DIR" "$path" || code=$?
    case $code in
        0) exit 0 ;;
        3) fail "health check failed: the web directory ${WEB_DIR:-.} does not exist in the release" ;;
        4) fail "health check failed: $HEALTH_PATH does not exist in the release" ;;
        *) fail "health check failed: the release could not be checked as the site's user (exit $code)" ;;
    esac
fi
step "starting the release on port $PORT"
conf="/etc/supervisor/conf.d/$PROGRAM.conf"
# A program left on this port by an interrupted deploy is replaced (in place: the live app is
# restarted, which is the downtime an in-place site accepts). Each supervisorctl call starts a
# Python interpreter, so there are only as many as needed.
known=
if [ -e "$conf" ]; then
    known=yes
    supervisorctl stop "$PROGRAM" >/dev/null 2>&1 || true
fi
put_user_file "$ROOT/.slipway/start-$PORT.sh" 700 "$START"
put_file "$conf" 644 "$PROGRAM_CONF"
# `update` rereads the configuration and starts a program it adds (autostart); one it knew
# already, with the same configuration, stays stopped until `start`.
supervisorctl update "$PROGRAM" >/dev/null 2>&1 || supervisorctl update >/dev/null
if [ -n "$known" ]; then supervisorctl start "$PROGRAM" >/dev/null 2>&1 || true; fi
step "health check: GET $HEALTH_PATH on port $PORT, expecting $HEALTH_STATUS"
deadline=$(( $(date +%s) + HEALTH_TIMEOUT ))
code=none
last_said=$(date +%s)
while [ "$(date +%s)" -lt "$deadline" ]; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT$HEALTH_PATH" || true)
    [ "$code" = "$HEALTH_STATUS" ] && { step "healthy"; exit 0; }
    # A line now and then: a long wait is progress, not a silent (stalled) command.
    if [ $(( $(date +%s) - last_said )) -ge 10 ]; then
        echo "still waiting: answered ${code:-nothing} so far"
        last_said=$(date +%s)
    fi
    sleep 0.1
done
tail -n 5 "$LOG_DIR/app-$PORT.log" 2>/dev/null | sed 's/^/app: /' >&2 || true
fail "health check failed: GET $HEALTH_PATH on the new release answered ${code:-nothing}, expected $HEALTH_STATUS within ${HEALTH_TIMEOUT}s"
