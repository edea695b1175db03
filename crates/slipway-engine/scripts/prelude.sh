# Shared by every Slipway script. Values from Slipway arrive as the quoted variable
# assignments above this line; nothing below is built from user input.
set -eu
umask 022
# The login's home (/root) is closed to the users scripts act as; / is open to all of them.
cd /
export DEBIAN_FRONTEND=noninteractive LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# A step heading, shown as progress.
step() { printf '==> %s\n' "$*"; }
# Ends the script; Slipway reports the text as the reason.
fail() { printf 'slipway-error: %s\n' "$*" >&2; exit 1; }

has_systemd() { [ -d /run/systemd/system ]; }

# Starts a service and enables it at boot; leaves a running one alone.
service_up() {
    if has_systemd; then
        systemctl enable --now "$1" >/dev/null
    elif ! service "$1" status >/dev/null 2>&1; then
        service "$1" start
    fi
}

# Makes a running service read its configuration again (starting it if it is down).
service_reload() {
    if has_systemd; then
        systemctl reload-or-restart "$1"
    elif service "$1" status >/dev/null 2>&1; then
        service "$1" reload
    else
        service "$1" start
    fi
}

# Reloads nginx gracefully and waits (up to 5 s) until the new configuration answers: workers
# started after the reload was asked for run, and the old ones have stopped accepting (they
# finish their requests as "shutting down"). Starts nginx when it is not running. Leaves the old
# workers' PIDs in nginx_old_workers (empty when nginx was started), for nginx_drained. Returns 1,
# saying nothing, when no worker started within 5 s: nginx did not reload (its master is busy,
# stopped, or refused the files) and still serves what it served before.
nginx_reloaded() {
    nginx_old_workers=
    master=$(cat /run/nginx.pid 2>/dev/null || true)
    if [ -z "$master" ] || ! kill -0 "$master" 2>/dev/null; then
        service_up nginx
        return
    fi
    before=$(pgrep -P "$master" | sort)
    nginx_old_workers=$before
    # Only a worker started from now on has read the files as they are now: one that another
    # job's reload started a moment ago may have read them before they were written. (The start
    # of this awk, in the clock the workers' start times use.)
    asked=$(awk '{ print $22 }' /proc/self/stat)
    service_reload nginx || return 1
    tries=0
    started=
    while [ "$tries" -lt 100 ]; do
        tries=$((tries + 1))
        now_master=$(cat /run/nginx.pid 2>/dev/null || true)
        if [ "$now_master" != "$master" ] && [ -n "$now_master" ] && kill -0 "$now_master" 2>/dev/null; then
            # Restarted rather than reloaded: a new master read every file.
            return 0
        fi
        if [ -z "$started" ]; then
            for pid in $(pgrep -P "$master" || true); do
                printf '%s\n' "$before" | grep -qxF "$pid" && continue
                since=$(awk '{ print $22 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
                [ "${since:-0}" -ge "$asked" ] && started=yes
            done
        fi
        if [ -n "$started" ]; then
            accepting=
            for pid in $before; do
                if [ -r "/proc/$pid/cmdline" ] && ! tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q 'shutting down'; then
                    accepting=yes
                fi
            done
            [ -z "$accepting" ] && return 0
        fi
        sleep 0.05
    done
    [ -n "$started" ] || return 1
    echo "warning: nginx was asked to reload but its old workers still accepted requests after 5 s" >&2
}

# nginx_reloaded, failing the script when nginx did not reload.
nginx_reload() {
    nginx_reloaded ||
        fail "nginx did not reload within 5 s (no worker with the new configuration started); it still serves the previous configuration"
}

# nginx_drained SECONDS PORT: waits until no request can still be on its way to the app on PORT,
# which the last nginx_reload took traffic from, for at most SECONDS (fails then). That is when
# the nginx workers the reload replaced have exited (each exits once its requests are answered;
# those another job's reload replaced meanwhile are "shutting down" by now and count too), or
# when no connection to PORT has been open for 2 s: a worker kept by a long connection to
# another site (a websocket) does not hold the deploy, and a request still uploading its body
# to an old worker (nginx connects upstream once it has the body) gets the 2 s the drain always
# gave it.
nginx_drained() {
    drain_deadline=$(( $(date +%s) + $1 ))
    port_hex=$(printf '%04X' "$2")
    draining=${nginx_old_workers:-}
    master=$(cat /run/nginx.pid 2>/dev/null || true)
    if [ -n "$draining" ] && [ -n "$master" ]; then
        for pid in $(pgrep -P "$master" || true); do
            if { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | grep -q 'shutting down'; then
                draining="$draining $pid"
            fi
        done
    fi
    quiet=0
    while :; do
        open=
        for pid in $draining; do
            # A PID is only that worker while its command line still says nginx.
            if { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | grep -q '^nginx'; then
                open=yes
            fi
        done
        [ -z "$open" ] && return 0
        # Connecting or connected to 127.0.0.1:PORT (rem_address, state 01 or 02).
        if grep -q "^ *[0-9]*: [0-9A-F]*:[0-9A-F]* 0100007F:$port_hex 0[12] " /proc/net/tcp 2>/dev/null; then
            quiet=0
        else
            quiet=$((quiet + 1))
            [ "$quiet" -ge 40 ] && return 0
        fi
        [ "$(date +%s)" -lt "$drain_deadline" ] || return 1
        sleep 0.05
    done
}

# After changing files nginx reads: reloads when nginx accepts the whole configuration, else calls
# the caller's `restore` (which puts the previous files back) and fails with nginx's first error.
# nginx_apply_or_restore WHAT ("these redirects")
nginx_apply_or_restore() {
    if ! nginx_test_out=$(nginx -t 2>&1); then
        restore
        fail "nginx refuses the configuration with $1, so the previous one stays: $(printf '%s\n' "$nginx_test_out" | grep -m1 -E 'emerg|error' || printf '%s' "$nginx_test_out" | tail -n1)"
    fi
    # Not reloaded: the previous files go back, so what is on disk is what nginx serves.
    if ! nginx_reloaded; then
        restore
        fail "nginx did not reload within 5 s, so it still serves the configuration without $1"
    fi
}

service_restart() {
    if has_systemd; then systemctl restart "$1"; else service "$1" restart; fi
}

# Writes a file atomically from base64 (so any bytes arrive intact): put_file PATH MODE BASE64.
# The temporary file has a name of its own, so two jobs writing one file at once both succeed
# (the last rename wins) instead of one renaming the other's half-written file away.
put_file() {
    mkdir -p "$(dirname "$1")"
    put_file_tmp=$(mktemp "$1.slipway-XXXXXX")
    printf '%s' "$3" | base64 -d > "$put_file_tmp"
    chmod "$2" "$put_file_tmp"
    mv -f "$put_file_tmp" "$1"
}

# put_nginx_site PATH BASE64: a site's server block. On a host without IPv6 its IPv6 listen line
# goes (nginx would refuse the whole configuration).
put_nginx_site() {
    put_file "$1" 644 "$2"
    [ -f /proc/net/if_inet6 ] || sed -i '/^    listen \[::\]:80;$/d' "$1"
}

# Runs a command as the deploy user (for a site: the site's own user). Everything in its tree is
# touched only this way: as root, a symlink it planted (`.env.new -> /etc/passwd`) would redirect
# the write. runuser sets HOME (and USER, LOGNAME, SHELL) from the user's entry itself. Not
# setpriv, though it starts faster: runuser's PAM session gives the user a session keyring of its
# own (pam_keyinit), where setpriv's would keep root's login keyring and its keys, and applies
# the user's limits (pam_limits).
as_user() {
    runuser -u "$DEPLOY_USER" -- "$@"
}

# put_user_file PATH MODE BASE64: put_file, done by the deploy user inside its own tree.
put_user_file() {
    printf '%s\n' "$3" | put_user_files "$2:$1"
}

# put_user_files MODE:PATH...: put_user_file for several files in one session as the deploy user
# (each costs a PAM session); their contents, base64, one line each in order, on standard input.
# A file replaces whatever is at PATH, a symlink itself (never its target) or a directory. Meant
# for the files of one job (deploys of a site run one at a time): a second writer of a new path
# at the same moment fails rather than mix its content in.
# shellcheck disable=SC2016 # expanded by the deploy user's shell
put_user_files_sh='umask 077
set -C
for file in "$@"; do
    # A last line without its newline still counts; no line at all is an error.
    data=; IFS= read -r data || [ -n "$data" ] || exit 1
    path=${file#*:} mode=${file%%:*}
    # Where something is, a copy with a name of its own (this shell) replaces it in one rename:
    # a reader sees the old file or the new one, never half. Where nothing is (the files of a
    # new release), the file is written in place. Either is created only where nothing is
    # (noclobber: a link planted meanwhile is not followed to a file), and opened before it is
    # written, so that what is removed after a failure is only ever this file (a failed open
    # ends the shell). Each process saved counts, as every deploy writes three files.
    if [ -e "$path" ] || [ -L "$path" ]; then t="$path.slipway-$$"; else t=$path; fi
    exec 3>"$t"
    # What fails on the way leaves no partial copy (a .env holds secrets).
    base64 -d >&3 <<EOF || { exec 3>&-; rm -f "$t"; exit 1; }
$data
EOF
    exec 3>&-
    if [ "$mode" != 600 ]; then chmod "$mode" "$t" || { rm -f "$t"; exit 1; }; fi
    [ "$t" != "$path" ] || continue
    if [ -d "$path" ] && [ ! -L "$path" ]; then rm -rf "$path" || { rm -f "$t"; exit 1; }; fi
    mv -fT "$t" "$path" || { rm -f "$t"; exit 1; }
done'
put_user_files() {
    as_user sh -c "$put_user_files_sh" sh "$@"
}

# Installs the packages that are not installed yet (installed ones are left at their version,
# so running provisioning again neither upgrades nor needs the network).
apt_install() {
    missing=
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
            missing="$missing $package"
    done
    [ -n "$missing" ] || return 0
    step "installing:$missing"
    # shellcheck disable=SC2086 # a list of package names chosen by Slipway
    apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $missing
}
