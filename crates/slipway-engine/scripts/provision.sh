# Provisioning: the deploy user, nginx with a default site, git, supervisor, cron, nftables,
# the requested runtime and database. Safe to run again on a provisioned server.
# Inputs: DEPLOY_USER, PHP_VERSION ('' for none), NODE (yes/no), DATABASE
# (mysql/mariadb/postgres/none). The firewall and SSH keys are applied after it, by their own
# scripts (firewall.sh, ssh_keys.sh).

. /etc/os-release
case "${ID:-} ${VERSION_ID:-}" in
    "debian 12" | "debian 13" | "ubuntu 22.04" | "ubuntu 24.04") ;;
    *) fail "unsupported operating system: ${PRETTY_NAME:-unknown}; Slipway provisions Debian 12/13 and Ubuntu 22.04/24.04" ;;
esac
[ "$(id -u)" = 0 ] || fail "provisioning needs root (log in as root, or as a user with passwordless sudo)"

step "updating package lists"
if ! apt-get update -q -o DPkg::Lock::Timeout=600 -o Acquire::Retries=1; then
    echo "warning: apt-get update failed; using the package lists already on the server" >&2
fi

packages="nginx git supervisor cron nftables curl ca-certificates unzip procps"
if [ -n "$PHP_VERSION" ]; then
    apt-cache show "php$PHP_VERSION-fpm" >/dev/null 2>&1 ||
        fail "PHP $PHP_VERSION is not available on $PRETTY_NAME (no package php$PHP_VERSION-fpm)"
    for ext in fpm cli common curl mbstring xml zip bcmath intl mysql pgsql sqlite3; do
        packages="$packages php$PHP_VERSION-$ext"
    done
fi
[ "$NODE" = yes ] && packages="$packages nodejs npm"
case "$DATABASE" in
    mariadb) packages="$packages mariadb-server"; database_service=mariadb ;;
    mysql)
        [ "$ID" = ubuntu ] || fail "$PRETTY_NAME does not package MySQL; choose mariadb"
        packages="$packages mysql-server"; database_service=mysql ;;
    postgres) packages="$packages postgresql"; database_service=postgresql ;;
    none) database_service= ;;
    *) fail "unknown database type: $DATABASE" ;;
esac
step "checking packages: $packages"
# shellcheck disable=SC2086 # a list of package names chosen above
apt_install $packages

step "creating the deploy user $DEPLOY_USER"
if ! id "$DEPLOY_USER" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash --user-group "$DEPLOY_USER"
fi
# No password, but not locked: a locked account ('!') refuses key logins too where sshd runs
# without PAM.
case "$(getent shadow "$DEPLOY_USER" | cut -d: -f2)" in
    '!'*) usermod -p '*' "$DEPLOY_USER" ;;
esac
# The deploy user must not be able to become root: refuse to adopt a privileged account.
if [ "$(id -u "$DEPLOY_USER")" -lt 1000 ] || id -nG "$DEPLOY_USER" | grep -qwE 'sudo|admin|wheel|root'; then
    fail "the existing user $DEPLOY_USER is privileged (uid below 1000, or in sudo/admin/wheel); Slipway will not use it as the deploy user"
fi
home=$(getent passwd "$DEPLOY_USER" | cut -d: -f6)
[ "$home" = "/home/$DEPLOY_USER" ] || fail "the deploy user's home is $home; Slipway expects /home/$DEPLOY_USER"
# Root's, 751: the sites in it are made by root, so the login user can neither plant nor swap a
# site's directory; each site's own user reaches its directory, and nobody can list them. The
# login user writes in ~/.ssh.
[ ! -L "$home/.ssh" ] || fail "$home/.ssh is a symlink; refusing to follow it"
install -d -m 751 -o root -g "$DEPLOY_USER" "$home"
install -d -m 700 -o "$DEPLOY_USER" -g "$DEPLOY_USER" "$home/.ssh"
as_user sh -c 'umask 077; touch "$HOME/.ssh/authorized_keys"'
install -d -m 755 /var/log/slipway
# nginx (www-data) reads the sites in the deploy user's home through the group.
usermod -a -G "$DEPLOY_USER" www-data

step "configuring nginx with a default site"
mkdir -p /var/www/slipway-default
printf '%s\n' '<!doctype html><title>Slipway</title><p>This server is managed by Slipway.</p>' \
    > /var/www/slipway-default/index.html
listen6=
[ -f /proc/net/if_inet6 ] && listen6='listen [::]:80 default_server;'
cat > /etc/nginx/sites-available/slipway-default.conf <<NGINX
# Managed by Slipway: answers requests for names no site claims.
server {
    listen 80 default_server;
    $listen6
    server_name _;
    root /var/www/slipway-default;
    index index.html;
    location / { try_files \$uri \$uri/ =404; }
}
NGINX
printf '%s\n' '# Managed by Slipway.' 'server_tokens off;' > /etc/nginx/conf.d/slipway.conf
ln -sfn ../sites-available/slipway-default.conf /etc/nginx/sites-enabled/slipway-default.conf
rm -f /etc/nginx/sites-enabled/default
nginx -t -q || fail "the nginx configuration does not pass nginx -t"
service_up nginx
nginx_reload

step "starting supervisor and cron"
service_up supervisor
service_up cron
if [ -n "$PHP_VERSION" ]; then
    step "starting PHP $PHP_VERSION FPM"
    # Every deploy's switch reloads php-fpm (a fresh opcache for the new release). With
    # php-fpm's default process_control_timeout of 0 a reload kills the workers at once, and the
    # requests they are serving get 502; with a timeout they finish first.
    fpm_conf="/etc/php/$PHP_VERSION/fpm/php-fpm.conf"
    fpm_changed=
    if ! grep -q '^process_control_timeout = 20s$' "$fpm_conf"; then
        sed -i 's/^;\{0,1\}process_control_timeout = .*/process_control_timeout = 20s/' "$fpm_conf"
        grep -q '^process_control_timeout = 20s$' "$fpm_conf" ||
            fail "could not set process_control_timeout in $fpm_conf"
        "php-fpm$PHP_VERSION" -t >/dev/null 2>&1 || fail "php-fpm rejects $fpm_conf"
        fpm_changed=yes
    fi
    service_up "php$PHP_VERSION-fpm"
    # A php-fpm that was already running reads the setting now, not at the next deploy's reload.
    if [ -n "$fpm_changed" ]; then
        service_reload "php$PHP_VERSION-fpm"
    fi
fi
# An engine already answering on its socket is running: nothing to start. (Debian's init
# scripts check MariaDB over TCP 127.0.0.1:3306, which a server in a network of its own may not
# reach; they would then call it broken and start a second one on the same data.)
database_answers() {
    case "$DATABASE" in
        mariadb | mysql) mysqladmin --protocol=socket -uroot ping >/dev/null 2>&1 ;;
        postgres) pg_isready -q -h /var/run/postgresql ;;
        *) return 1 ;;
    esac
}
if [ -n "$database_service" ]; then
    if database_answers; then
        step "$DATABASE is running"
        # Started at boot too.
        if has_systemd; then systemctl enable "$database_service" >/dev/null 2>&1 || true; fi
    else
        step "starting $DATABASE"
        service_up "$database_service"
    fi
fi

step "provisioned: $PRETTY_NAME, nginx $(nginx -v 2>&1 | sed 's/.*nginx\///')"
