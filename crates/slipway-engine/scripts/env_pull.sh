# Prints the live site's .env as one base64 line after the `slipway-env ` marker. The job
# marks this script's output secret: it is read, never written to the log.
f="$ROOT/current/.env"
[ -f "$f" ] || fail "there is no .env on the server yet (deploy once first)"
printf 'slipway-env '
as_user head -c 1048576 "$f" | base64 -w0
echo
