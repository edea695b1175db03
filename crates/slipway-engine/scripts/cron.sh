# Makes the server run exactly the cron jobs in JOBS among Slipway's (/etc/cron.d/PREFIX-*); a
# job whose user does not exist is not installed, and reported. Other cron entries are never
# touched.
# Inputs: PREFIX (slipway-cron), RUNNER (cron-run, base64), RUNNER_PATH, WRAPPER_DIR, RUNS_DIR,
# JOBS (one line per job: job-name item-id user cron-file-b64 wrapper-b64; every value was
# checked by Slipway, and no user text is in a cron file).
[ -x /usr/sbin/cron ] || command -v cron >/dev/null || fail "cron is not installed; provision the server first"
put_file "$RUNNER_PATH" 0755 "$RUNNER"
mkdir -p "$WRAPPER_DIR" "$RUNS_DIR"
chmod 755 /etc/slipway "$WRAPPER_DIR" "$RUNS_DIR"
wanted=
while read -r job item user cron wrapper; do
    [ -n "$job" ] || continue
    if ! id "$user" >/dev/null 2>&1; then
        # cron would skip the line; Slipway marks the job failed instead of leaving it silent.
        echo "slipway-item-failed $item the user $user does not exist on the server"
        echo "cron job $job: the user $user does not exist on the server; not installing it" >&2
        continue
    fi
    wanted="$wanted$job
"
    # The command is in the wrapper: root's, readable by the job's group only.
    put_file "$WRAPPER_DIR/$job.sh" 0750 "$wrapper"
    chgrp "$(id -gn "$user")" "$WRAPPER_DIR/$job.sh"
    # The runs are recorded by the job's user, and read by nobody else (output may hold secrets).
    mkdir -p "$RUNS_DIR/$job"
    chown -h "$user:$(id -gn "$user")" "$RUNS_DIR/$job"
    chmod 700 "$RUNS_DIR/$job"
    # Written only when it changes: its time is when cron started to follow this schedule.
    file="/etc/cron.d/$PREFIX-$job"
    if ! printf '%s' "$cron" | base64 -d | cmp -s - "$file"; then
        put_file "$file" 0644 "$cron"
    fi
done <<JOBS_END
$JOBS
JOBS_END
# Jobs removed from Slipway: their cron file, wrapper and records go (whichever is left).
for file in /etc/cron.d/"$PREFIX"-* "$WRAPPER_DIR"/*.sh "$RUNS_DIR"/*; do
    [ -e "$file" ] || continue
    case "$file" in
        /etc/cron.d/*) job=${file#/etc/cron.d/"$PREFIX"-} ;;
        *) job=$(basename "$file" .sh) ;;
    esac
    if ! printf '%s' "$wanted" | grep -qxF "$job"; then
        step "removing cron job $job"
        rm -f "/etc/cron.d/$PREFIX-$job" "$WRAPPER_DIR/$job.sh"
        rm -rf "${RUNS_DIR:?}/$job"
    fi
done
service_up cron
step "cron jobs $PREFIX-* in place"
