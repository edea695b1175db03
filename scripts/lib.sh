# Shell helpers shared by scripts/ and bench/ (source this file).

# start_slipway BIN WORKDIR [ENV=VALUE…]: starts `BIN serve` on 127.0.0.1:0 with a fresh data
# directory under WORKDIR and the caller's SLIPWAY_* database, key and config settings removed;
# waits (20 s at most) for its "listening" line. Sets SLIPWAY_PID and SLIPWAY_URL; the server's
# stdout and stderr are in WORKDIR/stdout and WORKDIR/stderr.
start_slipway() {
  local bin=$1 work=$2
  shift 2
  env -u SLIPWAY_DATABASE_URL -u SLIPWAY_SECRET_KEY -u SLIPWAY_CONFIG "$@" \
    "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/stdout" 2>"$work/stderr" &
  SLIPWAY_PID=$!
  SLIPWAY_URL=""
  for _ in $(seq 1 100); do
    SLIPWAY_URL=$(sed -n 's/^Slipway listening on \(http:\/\/[^ ]*\).*/\1/p' "$work/stdout")
    [ -n "$SLIPWAY_URL" ] && return 0
    if ! kill -0 "$SLIPWAY_PID" 2>/dev/null; then
      cat "$work/stderr" >&2
      echo "slipway exited during start-up" >&2
      return 1
    fi
    sleep 0.2
  done
  cat "$work/stderr" >&2
  echo "slipway did not start within 20 s" >&2
  return 1
}

# stop_slipway: ends the server started by start_slipway (by its PID) and waits for it.
stop_slipway() {
  if [ -n "${SLIPWAY_PID:-}" ]; then
    kill "$SLIPWAY_PID" 2>/dev/null || true
    wait "$SLIPWAY_PID" 2>/dev/null || true
    SLIPWAY_PID=""
  fi
}
