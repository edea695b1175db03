# Restarts the chosen services, or reboots. Inputs: SERVICES (space-separated service names
# chosen by Slipway from a fixed list), REBOOT (yes/no).
for service in $SERVICES; do
    # A broken configuration would keep the service down after the restart: check it first.
    case "$service" in
        nginx) nginx -t -q 2>/dev/null || fail "nginx -t fails; not restarting nginx with a broken configuration" ;;
        php*-fpm)
            version=${service#php}
            "php-fpm${version%-fpm}" -t >/dev/null 2>&1 || fail "$service rejects its configuration; not restarting it" ;;
    esac
    step "restarting $service"
    service_restart "$service"
done
if [ "$REBOOT" = yes ]; then
    step "rebooting in 2 seconds"
    # Detached, so that this script can report before the connection goes away.
    setsid sh -c 'sleep 2; exec reboot' </dev/null >/dev/null 2>&1 &
fi
