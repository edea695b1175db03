# Restarts the chosen services, or reboots. Inputs: SERVICES (space-separated service names
# chosen by Slipway from a fixed list), REBOOT (yes/no).
for service in $SERVICES; do
    step "restarting $service"
    service_restart "$service"
done
if [ "$REBOOT" = yes ]; then
    step "rebooting in 2 seconds"
    # Detached, so that this script can report before the connection goes away.
    setsid sh -c 'sleep 2; exec reboot' </dev/null >/dev/null 2>&1 &
fi
