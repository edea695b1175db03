#!/bin/sh
# Managed by Slipway: runs cron job $1 (its command is in @WRAPPER_DIR@/$1.sh) and records the
# run in @RUNS_DIR@/$1/<start>-<pid>/: the exit code and end time (`result`, written last) and
# the last @OUTPUT_BYTES@ bytes of its output. Keeps the last @KEEP@ runs.
set -u
umask 077
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
job=${1:-}
case "$job" in
    '' | *[!a-z0-9]*) echo "slipway cron-run: invalid job name" >&2; exit 2 ;;
esac
dir=@RUNS_DIR@/$job
run=$dir/$(date +%s)-$$
mkdir "$run" || { echo "slipway cron-run: cannot record the run in $dir" >&2; exit 1; }
# Runs beyond the last @KEEP@ go (newest first by start time).
ls -1 "$dir" | grep -E '^[0-9]+-[0-9]+$' | sort -t- -k1,1nr -k2,2nr | tail -n +$((@KEEP@ + 1)) |
    while read -r old; do rm -rf "${dir:?}/$old"; done
{
    sh "@WRAPPER_DIR@/$job.sh" </dev/null 2>&1
    echo "$?" > "$run/code"
} | tail -c @OUTPUT_BYTES@ > "$run/output"
code=$(cat "$run/code" 2>/dev/null) || code=
rm -f "$run/code"
case "$code" in
    '' | *[!0-9]*) exit 1 ;;
esac
printf '%s %s\n' "$(date +%s)" "$code" > "$run/result.new" && mv -f "$run/result.new" "$run/result"
exit "$code"
