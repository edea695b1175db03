//! Sites on a server: where they live, the nginx, php-fpm and supervisor files Slipway renders
//! for them (from validated values only), and the jobs that apply and remove a site.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use slipway_core::InstallStatus;
use slipway_core::site_input::Domain;
use slipway_jobs::{JobContext, JobError, JobHandler};
use slipway_store::{Server, Site};

use crate::items::DEPLOY_USER;
use crate::script::Script;
use crate::session::{abandoned_reason, connect, reason_to_record, run_script, run_script_with, store_error};
use crate::{Engine, JobKind};

/// Retried: applying a site is safe to run twice.
pub const SITE_APPLY: JobKind = JobKind { name: "site.apply", attempts: 3 };
/// Retried: removing a site is safe to run twice.
pub const SITE_REMOVE: JobKind = JobKind { name: "site.remove", attempts: 3 };

/// The Unix user a site's files, deploy script, PHP and app run as: one per site, so that one
/// site's code cannot read another's files (`.env`, deploy keys). `s` and the lowercased id.
pub fn site_user(site_id: &str) -> Result<String, JobError> {
    if site_id.is_empty() || site_id.len() > 31 || !site_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(JobError::failed("invalid site id"));
    }
    Ok(format!("s{}", site_id.to_ascii_lowercase()))
}

/// Where a site's pieces are on the server, all derived from its validated domain and id.
#[derive(Debug, Clone)]
pub struct SitePaths {
    pub domain: String,
    /// The site's own Unix user (see [`site_user`]).
    pub user: String,
    /// `/home/slipway/<domain>`.
    pub root: String,
    /// The nginx server block's (and php-fpm pool's) file name.
    pub conf_name: String,
    /// Prefix of the site's supervisor programs; one per port.
    pub program_prefix: String,
    /// Where its app's output goes: root-owned, outside the deploy user's reach (supervisord
    /// opens these files as root).
    pub log_dir: String,
}

impl SitePaths {
    pub fn of(site: &Site) -> Result<SitePaths, JobError> {
        let domain = Domain::parse(&site.domain).map_err(|e| JobError::failed(format!("invalid domain: {e}")))?;
        let domain = domain.as_str().to_string();
        Ok(SitePaths {
            root: format!("/home/{DEPLOY_USER}/{domain}"),
            conf_name: format!("slipway-{domain}.conf"),
            program_prefix: format!("slipway-{}", domain.replace('.', "_")),
            log_dir: format!("/var/log/slipway/{domain}"),
            user: site_user(&site.id)?,
            domain,
        })
    }

    pub fn program(&self, port: i64) -> String {
        format!("{}-{port}", self.program_prefix)
    }

    fn php_socket(&self, version: &str) -> String {
        format!("/run/php/php{version}-fpm-{}.sock", self.domain)
    }
}

/// Where a deployment's files are under the site's root: a release directory of its own, or, for
/// an in-place site, the one working tree `live` that every deploy updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseDir {
    /// Relative to the site's root: `releases/<id>` or `live`.
    pub path: String,
    /// Names the release's files in `.slipway/` (`env-<name>.sh`).
    pub name: String,
}

impl ReleaseDir {
    pub fn release(id: &str) -> ReleaseDir {
        ReleaseDir { path: format!("releases/{id}"), name: id.to_string() }
    }

    pub fn in_place() -> ReleaseDir {
        ReleaseDir { path: "live".into(), name: "live".into() }
    }
}

/// The site's shared paths (validated again here), one per line for the scripts.
pub fn shared_paths(site: &Site) -> Result<String, JobError> {
    let paths: Vec<String> =
        serde_json::from_str(&site.shared_paths).map_err(|e| JobError::failed(format!("invalid shared paths: {e}")))?;
    let paths = slipway_core::site_input::shared_paths(&paths)
        .map_err(|e| JobError::failed(format!("the shared paths {e}")))?;
    Ok(paths.iter().map(|p| format!("{p}\n")).collect())
}

/// The names nginx answers to: the domain, then the aliases (validated again here).
fn server_names(site: &Site) -> Result<Vec<String>, JobError> {
    let aliases: Vec<String> =
        serde_json::from_str(&site.aliases).map_err(|e| JobError::failed(format!("invalid aliases: {e}")))?;
    let mut names = vec![site.domain.clone()];
    for alias in aliases {
        let alias = Domain::parse_alias(&alias).map_err(|e| JobError::failed(format!("invalid alias: {e}")))?;
        names.push(alias.as_str().to_string());
    }
    Ok(names)
}

/// The site's nginx server block. `app_port` is the port an app is proxied to (apps only).
pub fn nginx_conf(site: &Site, php_version: Option<&str>, app_port: Option<i64>) -> Result<String, JobError> {
    let paths = SitePaths::of(site)?;
    let web_dir = slipway_core::site_input::relative_path(&site.web_directory)
        .map_err(|e| JobError::failed(format!("invalid web directory: {e}")))?;
    let root = if web_dir.is_empty() {
        format!("{}/current", paths.root)
    } else {
        format!("{}/current/{web_dir}", paths.root)
    };
    let mut out = format!(
        "# Managed by Slipway for site {id}; edits are overwritten.\nserver {{\n    listen 80;\n    listen [::]:80;\n\
         \x20   server_name {names};\n\
         \x20   root {root};\n\
         \x20   # nginx reads every site (through their groups): a link in one site's files may only lead to\n\
         \x20   # files of the same owner, never into another site.\n    disable_symlinks if_not_owner from=$document_root;\n    index index.html index.htm index.php;\n    charset utf-8;\n    client_max_body_size 64m;\n\
         \x20   # HTTPS, when the site has an active certificate (managed through Slipway's API).\n\
         \x20   include {tls}/*.conf;\n\
         \x20   # ACME challenges are answered here whatever the site serves (also while suspended).\n\
         \x20   location ^~ /.well-known/acme-challenge/ {{ root {acme}; default_type text/plain; try_files $uri =404; }}\n\
         \x20   # Dotfiles (.env, .git) are never served.\n    location ~ /\\.(?!well-known) {{ deny all; }}\n",
        id = site.id,
        names = server_names(site)?.join(" "),
        tls = crate::items::certificates::tls_conf_dir(&paths.domain),
        acme = crate::items::certificates::ACME_WEBROOT,
    );
    if site.suspended {
        out.push_str(
            "    # Suspended: every request gets the maintenance page.\n    error_page 503 /slipway-maintenance.html;\n\
             \x20   location = /slipway-maintenance.html { root /var/www/slipway-default; internal; }\n\
             \x20   location / { return 503; }\n}\n",
        );
        return Ok(out);
    }
    // Redirects come before what the site serves (regex locations are tried in file order); a
    // suspended site answers only with its maintenance page.
    out.push_str(&format!(
        "    # Redirects (managed through Slipway's API).\n    include {}/*.conf;\n",
        crate::items::redirects::redirects_dir(&paths.domain)
    ));
    match site.project_type {
        t if t.is_app() => {
            let port = app_port.unwrap_or(site.app_port);
            out.push_str(&format!(
                "    location / {{\n        proxy_pass http://127.0.0.1:{port};\n        proxy_http_version 1.1;\n\
                 \x20       proxy_set_header Host $host;\n        proxy_set_header X-Real-IP $remote_addr;\n\
                 \x20       proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                 \x20       proxy_set_header X-Forwarded-Proto $scheme;\n        proxy_set_header Connection \"\";\n    }}\n"
            ));
        }
        t if t.uses_php() => {
            let version = php_version
                .ok_or_else(|| JobError::failed("the server has no PHP; provision it with a php_version"))?;
            out.push_str(&format!(
                "    location / {{ try_files $uri $uri/ /index.php?$query_string; }}\n    location ~ \\.php$ {{\n\
                 \x20       include snippets/fastcgi-php.conf;\n        fastcgi_pass unix:{};\n\
                 \x20       fastcgi_param SCRIPT_FILENAME $realpath_root$fastcgi_script_name;\n\
                 \x20       fastcgi_param DOCUMENT_ROOT $realpath_root;\n    }}\n",
                paths.php_socket(version)
            ));
        }
        _ => out.push_str("    location / { try_files $uri $uri/ =404; }\n"),
    }
    out.push_str("}\n");
    Ok(out)
}

/// A php-fpm pool that runs the site's PHP as the deploy user.
pub fn php_pool(site: &Site, version: &str) -> Result<String, JobError> {
    let paths = SitePaths::of(site)?;
    Ok(format!(
        "; Managed by Slipway for site {id}.\n[{name}]\nuser = {user}\ngroup = {user}\nlisten = {sock}\n\
         listen.owner = www-data\nlisten.group = www-data\nlisten.mode = 0660\npm = dynamic\npm.max_children = 5\n\
         pm.start_servers = 1\npm.min_spare_servers = 1\npm.max_spare_servers = 3\n",
        id = site.id,
        name = paths.program_prefix,
        user = paths.user,
        sock = paths.php_socket(version),
    ))
}

/// The supervisor program that runs an app release on `port`.
pub fn supervisor_program(paths: &SitePaths, release: &ReleaseDir, port: i64) -> String {
    format!(
        "; Managed by Slipway.\n[program:{name}]\ncommand={root}/.slipway/start-{port}.sh\ndirectory={root}/{dir}\n\
         user={user}\nautostart=true\nautorestart=true\nstartsecs=1\nstopasgroup=true\nkillasgroup=true\n\
         stopsignal=TERM\nstopwaitsecs=10\nstdout_logfile={logs}/app-{port}.log\nstdout_logfile_maxbytes=5MB\n\
         stdout_logfile_backups=1\nredirect_stderr=true\n",
        name = paths.program(port),
        user = paths.user,
        root = paths.root,
        dir = release.path,
        logs = paths.log_dir,
    )
}

/// The script supervisor starts: the release's environment, `PORT`, then the app's command.
pub fn start_script(paths: &SitePaths, release: &ReleaseDir, port: i64, command: &str) -> String {
    let command = slipway_core::shell::quote(command).expect("commands hold no NUL");
    format!(
        "#!/bin/sh\n# Managed by Slipway.\nset -a\n. {root}/.slipway/env-{name}.sh\nset +a\nexport PORT={port}\n\
         cd {root}/{dir} || exit 1\nexec sh -c {command}\n",
        root = paths.root,
        name = release.name,
        dir = release.path,
    )
}

pub const MAINTENANCE_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Down for maintenance</title>\
    </head><body><h1>Down for maintenance</h1><p>This site is temporarily unavailable. Please try again soon.</p></body></html>\n";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteJob {
    pub site_id: String,
}

/// A site job's site and the server it is on.
pub(crate) async fn load_site_and_server(engine: &Engine, site_id: &str) -> Result<(Site, Server), JobError> {
    let site = engine
        .store
        .site(site_id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| JobError::failed("the site was deleted"))?;
    let server = crate::session::load_server(engine, &site.server_id).await?;
    Ok((site, server))
}

/// `site.apply`: creates or updates the site on its server (directories, nginx, PHP pool), and
/// also suspends and resumes it.
#[derive(Debug)]
pub struct ApplySite(pub Engine);

impl ApplySite {
    pub fn script(site: &Site, server: &Server, app_port: Option<i64>) -> Result<Script, JobError> {
        let paths = SitePaths::of(site)?;
        let php = site.project_type.uses_php().then_some(server.php_version.as_deref()).flatten();
        let pool = match php {
            Some(v) => php_pool(site, v)?,
            None => String::new(),
        };
        Ok(Script::new("site setup", include_str!("../scripts/site_apply.sh"))
            .var("DEPLOY_USER", &paths.user)
            .var("BASE_USER", DEPLOY_USER)
            .var("DOMAIN", &paths.domain)
            .var("ROOT", &paths.root)
            .var("LOG_DIR", &paths.log_dir)
            .var("NGINX_NAME", &paths.conf_name)
            .file_var("NGINX_CONF", nginx_conf(site, php, app_port)?.as_bytes())
            .var("PHP_VERSION", php.unwrap_or(""))
            .file_var("PHP_POOL", pool.as_bytes())
            .file_var("MAINTENANCE", MAINTENANCE_PAGE.as_bytes()))
    }
}

/// Puts right a site whose setup or removal (`during`) ended without recording it: a site
/// still `during` is `failed`, saying why.
async fn site_abandoned(engine: &Engine, job: &slipway_store::Job, during: InstallStatus) {
    let Ok(payload) = serde_json::from_str::<SiteJob>(&job.payload) else { return };
    if let Ok(Some(site)) = engine.store.site(&payload.site_id).await
        && site.status == during
    {
        let reason = abandoned_reason(job);
        if let Err(e) = engine.store.set_site_status(&site.id, InstallStatus::Failed, Some(reason)).await {
            tracing::warn!(site.id = %site.id, error = %e, "could not record how the site's job ended");
        }
    }
}

#[async_trait]
impl JobHandler for ApplySite {
    async fn abandoned(&self, job: &slipway_store::Job) {
        site_abandoned(&self.0, job, InstallStatus::Installing).await;
    }

    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let job: SiteJob = ctx.payload()?;
        let engine = &self.0;
        let (site, server) = load_site_and_server(engine, &job.site_id).await?;
        let result = async {
            let script = Self::script(&site, &server, site.active_port)?;
            let connection = connect(engine, ctx, &server).await?;
            run_script(engine, ctx, &connection, &script).await
        }
        .await;
        let (status, reason) = match &result {
            Ok(()) => (InstallStatus::Installed, None),
            Err(e) => match reason_to_record(ctx, e) {
                Some(reason) => (InstallStatus::Failed, Some(reason)),
                None => return result,
            },
        };
        engine.store.set_site_status(&site.id, status, reason.as_deref()).await.map_err(store_error)?;
        result
    }
}

/// `site.remove`: removes the site from the server, then from Slipway.
#[derive(Debug)]
pub struct RemoveSite(pub Engine);

#[async_trait]
impl JobHandler for RemoveSite {
    async fn abandoned(&self, job: &slipway_store::Job) {
        site_abandoned(&self.0, job, InstallStatus::Removing).await;
    }

    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let job: SiteJob = ctx.payload()?;
        let engine = &self.0;
        let (site, server) = load_site_and_server(engine, &job.site_id).await?;
        let paths = SitePaths::of(&site)?;
        let php = site.project_type.uses_php().then_some(server.php_version.as_deref()).flatten();
        let script = Script::new("site removal", include_str!("../scripts/site_remove.sh"))
            .var("DEPLOY_USER", &paths.user)
            .var("ROOT", &paths.root)
            .var("LOG_DIR", &paths.log_dir)
            .var("NGINX_NAME", &paths.conf_name)
            .var("PROGRAM_PREFIX", &paths.program_prefix)
            .var("PORTS", &format!("{} {}", site.app_port, site.app_port + 1))
            .var("PHP_VERSION", php.unwrap_or(""));
        // The site's queue workers and redirects go with it (workers run as the site's user).
        let mut site_items = Vec::new();
        let mut programs = Vec::new();
        let mut kinds_to_sync = Vec::new();
        for &kind in crate::items::SITE_KINDS {
            let (items, _) = engine.store.server_items(&server.id, kind.name(), None).await.map_err(store_error)?;
            let ids = crate::items::of_site(&items, &site.id);
            if !ids.is_empty() {
                kinds_to_sync.push(kind);
            }
            site_items.extend(ids);
            if let Some(prefix) = kind.program_prefix() {
                for id in crate::items::of_site(&items, &site.id) {
                    programs.push(crate::items::supervised::program_name(prefix, &id));
                }
            }
        }
        let script = script
            .var("WORKER_PROGRAMS", &programs.join(" "))
            .var("REDIRECTS_DIR", &crate::items::redirects::redirects_dir(&paths.domain));
        // An unreachable server is recorded on the site like a failed removal.
        let result = match connect(engine, ctx, &server).await {
            Ok(connection) => run_script(engine, ctx, &connection, &script).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                engine
                    .store
                    .set_server_items_status(&site_items, InstallStatus::Removing, None)
                    .await
                    .map_err(store_error)?;
                engine.store.delete_removed_server_items(&site_items).await.map_err(store_error)?;
                engine.store.delete_site(&site.id).await.map_err(store_error)?;
                // Its backup schedules go with it; its backups stay, to be restored elsewhere.
                let schedules = slipway_store::BackupTarget::Site(&site.id);
                for schedule in engine.store.backup_schedules_of(schedules).await.map_err(store_error)? {
                    engine.store.delete_backup_schedule(&schedule.id).await.map_err(store_error)?;
                }
                // What the removal script did not take away itself (a site's cron files) goes
                // with the next sync of its kind, which renders the server without them.
                for kind in kinds_to_sync {
                    let spec = kind
                        .sync_job()
                        .about_server(&server, crate::verify::ServerJob { server_id: server.id.clone() });
                    slipway_jobs::enqueue(engine.store.as_ref(), spec).await.map_err(store_error)?;
                }
                Ok(())
            }
            Err(e) => {
                if let Some(reason) = reason_to_record(ctx, &e) {
                    engine
                        .store
                        .set_site_status(&site.id, InstallStatus::Failed, Some(&reason))
                        .await
                        .map_err(store_error)?;
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(project_type: &str) -> Site {
        let now = slipway_core::time::now();
        Site {
            id: "01SITE".into(),
            server_id: "01SERVER".into(),
            organization_id: "01ORG".into(),
            domain: "shop.example.com".into(),
            aliases: r#"["www.shop.example.com","*.shop.example.com"]"#.into(),
            project_type: project_type.parse().expect("a project type"),
            web_directory: "public".into(),
            repository_url: None,
            repository_branch: "main".into(),
            deploy_script: "true".into(),
            app_command: Some("node server.js".into()),
            health_check_path: "/".into(),
            health_check_status: 200,
            health_check_timeout: 30,
            zero_downtime: true,
            keep_releases: 5,
            app_port: 20000,
            status: InstallStatus::Installing,
            status_reason: None,
            suspended: false,
            deployment_status: None,
            last_deployed_at: None,
            current_release: None,
            active_port: None,
            git_repository_id: None,
            created_at: now,
            updated_at: now,
            shared_paths: "[]".into(),
        }
    }

    /// Every rendered block passes `nginx -t` (nginx is installed for the test suite).
    #[test]
    fn nginx_accepts_every_kind_of_block() {
        let dir = std::env::temp_dir().join(format!("slipway-nginx-{}", slipway_core::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Includes are relative to the configuration's directory, as under /etc/nginx.
        for shared in ["snippets", "fastcgi.conf"] {
            std::os::unix::fs::symlink(format!("/etc/nginx/{shared}"), dir.join(shared)).unwrap();
        }
        let mut blocks = vec![
            nginx_conf(&site("static"), None, None).unwrap(),
            nginx_conf(&site("generic"), None, Some(20001)).unwrap(),
            nginx_conf(&Site { suspended: true, ..site("static") }, None, None).unwrap(),
        ];
        let mut php = site("laravel");
        php.domain = "php.example.com".into();
        php.aliases = "[]".into();
        blocks.push(nginx_conf(&php, Some("8.2"), None).unwrap());
        for (i, block) in blocks.iter().enumerate() {
            let conf = dir.join(format!("nginx-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\naccess_log off;\n{block}}}\n",
                    d = dir.display()
                ),
            )
            .unwrap();
            let out =
                std::process::Command::new("nginx").arg("-t").arg("-q").arg("-c").arg(&conf).output().expect("nginx");
            assert!(out.status.success(), "{block}\n{}", String::from_utf8_lossy(&out.stderr));
        }
        assert!(blocks[1].contains("proxy_pass http://127.0.0.1:20001;"));
        assert!(blocks[0].contains("server_name shop.example.com www.shop.example.com *.shop.example.com;"));
        assert!(blocks[2].contains("return 503"));
        assert!(blocks.iter().all(|b| b.contains("    listen 80;\n    listen [::]:80;\n")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hostile_stored_values_are_refused_before_rendering() {
        let mut bad = site("static");
        bad.domain = "x.com; include /etc/passwd".into();
        assert!(nginx_conf(&bad, None, None).is_err());
        let mut bad = site("static");
        bad.aliases = r#"["ok.com", "evil.com;\n}"]"#.into();
        assert!(nginx_conf(&bad, None, None).is_err());
        let mut bad = site("static");
        bad.web_directory = "../../etc".into();
        assert!(nginx_conf(&bad, None, None).is_err());
    }

    #[test]
    fn the_start_script_runs_the_command_as_one_quoted_word() {
        let paths = SitePaths::of(&site("generic")).unwrap();
        let script = start_script(&paths, &ReleaseDir::release("01REL"), 20001, "echo '$HOME'; node server.js");
        assert!(script.ends_with("exec sh -c 'echo '\\''$HOME'\\''; node server.js'\n"), "{script}");
        assert!(script.contains("cd /home/slipway/shop.example.com/releases/01REL ||"), "{script}");
        let program = supervisor_program(&paths, &ReleaseDir::in_place(), 20001);
        assert!(program.contains("[program:slipway-shop_example_com-20001]"));
        assert!(program.contains("directory=/home/slipway/shop.example.com/live\n"), "{program}");
        assert!(program.contains("\nuser=s01site\n"), "{program}");
        assert!(php_pool(&site("php"), "8.2").unwrap().contains("\nuser = s01site\ngroup = s01site\n"));
        assert!(site_user("01SITE; rm").is_err());
    }
}

/// Not retried: the user asks again.
pub const SITE_ENV_PULL: JobKind = JobKind { name: "site.env-pull", attempts: 1 };

/// `site.env-pull`: reads the live release's `.env` on the server and stores its variables
/// (sealed), replacing those with the same keys. The file's content is never logged.
#[derive(Debug)]
pub struct PullEnv(pub Engine);

#[async_trait]
impl JobHandler for PullEnv {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let job: SiteJob = ctx.payload()?;
        let engine = &self.0;
        let (site, server) = load_site_and_server(engine, &job.site_id).await?;
        let paths = SitePaths::of(&site)?;
        let script = Script::new("env pull", include_str!("../scripts/env_pull.sh"))
            .var("DEPLOY_USER", &paths.user)
            .var("ROOT", &paths.root)
            .with_secret_output();
        let connection = connect(engine, ctx, &server).await?;
        let reported = run_script_with(engine, ctx, &connection, &script, ctx.cancel_receiver()).await?;
        let encoded = reported
            .iter()
            .find_map(|l| l.strip_prefix("slipway-env").map(str::trim))
            .ok_or_else(|| JobError::failed("the server did not send the .env"))?;
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_bytes())
            .map_err(|_| JobError::failed("the server's answer was not readable"))?;
        let text = String::from_utf8(bytes).map_err(|_| JobError::failed("the .env on the server is not UTF-8"))?;
        let vars = slipway_core::dotenv::parse(&text)
            .map_err(|e| JobError::failed(format!("the .env cannot be read: {e}")))?;
        let mut imported = 0;
        for (key, value) in vars {
            if slipway_core::site_input::env_key(&key).is_err() || value.contains('\0') {
                ctx.log("stderr", format!("skipped {key:?}: not a valid variable"));
                continue;
            }
            let sealed = engine.secrets.seal(&crate::deploy::env_context(&site.id, &key), value.as_bytes());
            engine.store.put_site_env(&site.id, &key, &sealed).await.map_err(store_error)?;
            imported += 1;
        }
        ctx.log("info", format!("imported {imported} variables from the server's .env"));
        Ok(())
    }
}
