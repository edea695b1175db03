# Prints what the server knows of the cron jobs in JOBS (one line per job: job-name user): the
# server's time, whether each job's cron file is there (and since when), and its runs, newest
# first (OFFSET and LIMIT of them; with OUTPUT=yes, their output in base64). A read: changes
# nothing. Lines: `now EPOCH +HHMM`, `job NAME INSTALLED|- ok|nouser`, `total NAME N`,
# `run NAME START ALIVE END|- CODE|-`, then `out NAME BASE64` lines of that run's output.
printf 'now %s %s\n' "$(date +%s)" "$(date +%z)"
# The records are written by each job's user: they are read as that user, so a link planted
# there cannot make root read another file.
reader='job=$1 dir=$2 offset=$3 limit=$4 output=$5
runs=$(ls -1 "$dir" 2>/dev/null | grep -E "^[0-9]+-[0-9]+\$" | sort -t- -k1,1nr -k2,2nr || true)
echo "total $job $(printf "%s" "$runs" | grep -c . || true)"
printf "%s\n" "$runs" | tail -n +$((offset + 1)) | head -n "$limit" | while read -r run; do
    [ -n "$run" ] || continue
    start=${run%%-*} pid=${run#*-} end=- code=- alive=0
    if [ -f "$dir/$run/result" ]; then
        read -r end code < "$dir/$run/result" || true
        case "$end" in "" | *[!0-9]*) end=- code=- ;; esac
        case "$code" in "" | *[!0-9]*) end=- code=- ;; esac
    elif kill -0 "$pid" 2>/dev/null && grep -q cron-run "/proc/$pid/cmdline" 2>/dev/null; then
        alive=1
    fi
    echo "run $job $start $alive $end $code"
    if [ "$output" = yes ] && [ -f "$dir/$run/output" ]; then
        base64 -w 12000 < "$dir/$run/output" | sed "s/^/out $job /"
    fi
done'
me=$(id -un)
while read -r job user; do
    [ -n "$job" ] || continue
    installed=$(stat -c %Y "/etc/cron.d/$PREFIX-$job" 2>/dev/null) || installed=-
    if ! id "$user" >/dev/null 2>&1; then
        echo "job $job $installed nouser"
        continue
    fi
    echo "job $job $installed ok"
    [ -d "$RUNS_DIR/$job" ] || continue
    if [ "$user" = "$me" ]; then
        sh -c "$reader" sh "$job" "$RUNS_DIR/$job" "$OFFSET" "$LIMIT" "$OUTPUT"
    else
        runuser -u "$user" -- sh -c "$reader" sh "$job" "$RUNS_DIR/$job" "$OFFSET" "$LIMIT" "$OUTPUT"
    fi
done <<JOBS_END
$JOBS
JOBS_END
