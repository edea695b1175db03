# Removes a site from the server: its app processes, nginx block, PHP pool and directory.
# Inputs: DEPLOY_USER (the site's user), ROOT, LOG_DIR, NGINX_NAME, PROGRAM_PREFIX,
# PORTS (the site's two app ports), PHP_VERSION, WORKER_PROGRAMS (its queue workers' programs),
# REDIRECTS_DIR (its redirect rules).
step "stopping the site's processes"
# Exactly this site's two programs (a glob would also match a site whose domain extends this one).
for port in $PORTS; do
    rm -f "/etc/supervisor/conf.d/$PROGRAM_PREFIX-$port.conf"
done
for program in $WORKER_PROGRAMS; do
    rm -f "/etc/supervisor/conf.d/$program.conf" "/etc/slipway/programs/$program.sh"
done
command -v supervisorctl >/dev/null && supervisorctl update >/dev/null 2>&1 || true
step "removing the nginx block"
rm -f "/etc/nginx/sites-enabled/$NGINX_NAME" "/etc/nginx/sites-available/$NGINX_NAME"
rm -rf -- "$REDIRECTS_DIR"
if nginx -t -q 2>/dev/null; then nginx_reload; fi
if [ -n "$PHP_VERSION" ] && [ -e "/etc/php/$PHP_VERSION/fpm/pool.d/$NGINX_NAME" ]; then
    rm -f "/etc/php/$PHP_VERSION/fpm/pool.d/$NGINX_NAME"
    service_reload "php$PHP_VERSION-fpm"
fi
step "removing $ROOT"
if id "$DEPLOY_USER" >/dev/null 2>&1; then
    # Nothing of the site may outlive its user: a process left running (started outside
    # supervisor, a PHP worker finishing) would own the next site that gets the same uid.
    tries=0
    while pkill -KILL -u "$DEPLOY_USER" 2>/dev/null; do
        tries=$((tries + 1))
        [ "$tries" -lt 50 ] || fail "processes of $DEPLOY_USER keep running; the site is not removed"
        sleep 0.1
    done
    # The site's user empties its directory (read-only directories, such as module caches,
    # made writable first); the directory itself is an entry of a root-owned directory (rmdir
    # never follows a symlink).
    if [ -d "$ROOT" ]; then
        as_user chmod -R u+rwX -- "$ROOT"
        as_user find "$ROOT" -mindepth 1 -delete
        rmdir -- "$ROOT"
    fi
    userdel "$DEPLOY_USER"
    groupdel "$DEPLOY_USER" 2>/dev/null || true
elif [ -d "$ROOT" ]; then
    # A directory without its user (from before sites had their own).
    rm -rf -- "$ROOT"
fi
rm -rf -- "$LOG_DIR"
step "site removed"
