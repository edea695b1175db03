# Makes a site real on the server (or updates it): its own Unix user, its directories, its nginx
# server block, and for PHP a php-fpm pool of its own. Safe to run again.
# Inputs: DEPLOY_USER (the site's user), BASE_USER (the server's deploy user, whose home holds
# the sites), DOMAIN, ROOT (the site's directory), LOG_DIR (root-owned, for its app's output),
# NGINX_NAME (file name of the server block), NGINX_CONF (base64), PHP_VERSION and PHP_POOL
# (base64; empty when the site has no PHP), MAINTENANCE (base64 of the 503 page).
id "$BASE_USER" >/dev/null 2>&1 || fail "the deploy user $BASE_USER does not exist; provision the server first"
step "preparing the site's user $DEPLOY_USER and $ROOT"
if ! id "$DEPLOY_USER" >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --home-dir "$ROOT" --shell /usr/sbin/nologin \
        --comment "Slipway site $DOMAIN" "$DEPLOY_USER"
fi
# No logins as a site's user (Slipway runs commands as it with runuser, which needs no shell).
usermod -s /usr/sbin/nologin "$DEPLOY_USER"
# nginx reads the site through its group, and so may the people who log in as the deploy user;
# other sites cannot. The deploy user's home only lets each site reach its own directory.
usermod -a -G "$DEPLOY_USER" www-data
usermod -a -G "$DEPLOY_USER" "$BASE_USER"
# Root's (also on servers provisioned before this was so): nobody else can add or swap entries.
chown root:"$BASE_USER" "/home/$BASE_USER"
chmod 751 "/home/$BASE_USER"
[ ! -L "$ROOT" ] || fail "$ROOT is a symlink; refusing to use it"
[ -d "$ROOT" ] || install -d -m 750 -o "$DEPLOY_USER" -g "$DEPLOY_USER" "$ROOT"
if [ "$(stat -c %U "$ROOT")" != "$DEPLOY_USER" ]; then
    # Also a site directory from before sites had their own users: hand all of it over.
    chown -R -h "$DEPLOY_USER:$DEPLOY_USER" "$ROOT"
fi
as_user sh -c 'umask 027; chmod 750 "$1"; mkdir -p "$1/releases" "$1/shared" "$1/.slipway"' sh "$ROOT"
install -d -m 755 /var/log/slipway
install -d -m 750 "$LOG_DIR"
put_file /var/www/slipway-default/slipway-maintenance.html 644 "$MAINTENANCE"

if [ -n "$PHP_VERSION" ]; then
    step "configuring the PHP $PHP_VERSION pool"
    pool="/etc/php/$PHP_VERSION/fpm/pool.d/$NGINX_NAME"
    [ -e "$pool" ] && cp -p "$pool" "$pool.slipway-previous"
    put_file "$pool" 644 "$PHP_POOL"
    if ! "php-fpm$PHP_VERSION" -t >/dev/null 2>&1; then
        # Put the previous pool back (or none), so the site's PHP keeps running.
        if [ -e "$pool.slipway-previous" ]; then mv -f "$pool.slipway-previous" "$pool"; else rm -f "$pool"; fi
        fail "php-fpm rejects the configuration; the previous pool is kept"
    fi
    rm -f "$pool.slipway-previous"
    service_reload "php$PHP_VERSION-fpm"
fi

step "configuring nginx"
available="/etc/nginx/sites-available/$NGINX_NAME"
[ -e "$available" ] && cp -p "$available" "$available.slipway-previous"
put_nginx_site "$available" "$NGINX_CONF"
ln -sfn "../sites-available/$NGINX_NAME" "/etc/nginx/sites-enabled/$NGINX_NAME"
if ! nginx -t -q 2>/dev/null; then
    # Put the previous block back so nginx keeps serving everything else.
    if [ -e "$available.slipway-previous" ]; then
        mv -f "$available.slipway-previous" "$available"
    else
        rm -f "$available" "/etc/nginx/sites-enabled/$NGINX_NAME"
    fi
    nginx -t 2>&1 | tail -n 3 >&2 || true
    fail "nginx rejects the site's configuration; the previous one is kept"
fi
rm -f "$available.slipway-previous"
nginx_reload
step "site ready"
