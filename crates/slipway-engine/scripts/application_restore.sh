# Restores a site's shared paths from an archive made by application_archive.sh, read from
# standard input (after this script): the files under shared/ are written into ROOT/shared as
# the site's deploy user, over what is there (files that are not in the archive stay). The
# archive's .env is not restored: the site's environment variables in Slipway stay the source.
# Inputs: ROOT (the site's root), DEPLOY_USER (its user).
case "$ROOT" in /home/*/*) ;; *) fail "refusing an unexpected site root" ;; esac
case "$ROOT" in *..* | *[!A-Za-z0-9/._-]*) fail "refusing an unexpected site root" ;; esac
[ -d "$ROOT/shared" ] || fail "the site has no shared directory: apply the site first"
step "restoring into $ROOT/shared"
# The restore tools print nothing until they end; a line a minute shows the restore is alive
# (and keeps the connection from being taken for idle).
# sleep writes nowhere: once the loop is killed, nothing holds the output open.
(while sleep 60 >/dev/null 2>&1; do echo "still restoring"; done) &
heartbeat=$!
trap 'kill "$heartbeat" 2>/dev/null || true' EXIT
# As the deploy user: nothing in the archive can write outside what that user may write.
as_user tar -xzf - -C "$ROOT" --no-same-owner shared || fail "tar exited $? (some files may be restored)"
step "restored"
