# Removes a site from the server: its app processes, nginx block, PHP pool and directory.
# Inputs: DEPLOY_USER, ROOT, LOG_DIR, NGINX_NAME, PROGRAM_PREFIX, PORTS (the site's two app
# ports), PHP_VERSION.
step "stopping the site's processes"
# Exactly this site's two programs (a glob would also match a site whose domain extends this one).
for port in $PORTS; do
    rm -f "/etc/supervisor/conf.d/$PROGRAM_PREFIX-$port.conf"
done
command -v supervisorctl >/dev/null && supervisorctl update >/dev/null 2>&1 || true
step "removing the nginx block"
rm -f "/etc/nginx/sites-enabled/$NGINX_NAME" "/etc/nginx/sites-available/$NGINX_NAME"
if nginx -t -q 2>/dev/null; then nginx_reload; fi
if [ -n "$PHP_VERSION" ] && [ -e "/etc/php/$PHP_VERSION/fpm/pool.d/$NGINX_NAME" ]; then
    rm -f "/etc/php/$PHP_VERSION/fpm/pool.d/$NGINX_NAME"
    service_reload "php$PHP_VERSION-fpm"
fi
step "removing $ROOT"
if id "$DEPLOY_USER" >/dev/null 2>&1; then
    # The site's user empties its directory; the directory itself is an entry of the deploy
    # user's home (rmdir never follows a symlink).
    [ ! -d "$ROOT" ] || as_user find "$ROOT" -mindepth 1 -delete
    [ ! -d "$ROOT" ] || rmdir -- "$ROOT"
    # Its processes have been stopped above; -f in case a PHP worker is still finishing.
    userdel -f "$DEPLOY_USER" 2>/dev/null || true
    groupdel "$DEPLOY_USER" 2>/dev/null || true
fi
rm -rf -- "$LOG_DIR"
step "site removed"
