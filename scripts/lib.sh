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

# rss_kib PID: the resident memory of process PID, in KiB.
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# setup_owner WORKDIR URL: completes the first-run setup of the server started by start_slipway
# in WORKDIR (through the setup code it printed) and prints its owner's API token.
setup_owner() {
  local code
  code=$(sed -n 's/.*\/setup?code=\([A-Za-z0-9]*\).*/\1/p' "$1/stdout")
  curl -fsS -X POST "$2/api/v1/setup" -H 'content-type: application/json' \
    -d "{\"code\":\"$code\",\"email\":\"bench@example.com\",\"name\":\"Bench\",\"password\":\"bench-password-123\",\"organization\":\"Bench\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"]["plain_text_token"])'
}

# wrk_load URL PATH [WRK ARGS…]: runs wrk against URL PATH (threads, connections and seconds
# from $threads, $connections and $seconds) and prints "requests_per_second p50_ms p99_ms errors",
# errors being non-2xx answers and socket errors.
wrk_load() {
  local out url=$1 path=$2
  shift 2
  out=$(wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency "$@" "$url$path")
  echo "$out" | awk '
    function ms(v) {
      if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
      if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
      if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
      return v
    }
    /Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { errors += $NF }
    /Socket errors:/ { errors += $4 + $6 + $8 + $10 }
    END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, errors + 0 }'
}
