//! Queue workers: a site's background job processes (`php artisan queue:work` for Laravel, any
//! command for other sites), each a supervisor program running as the site's own user in its
//! live release. Stored as server items (their program is a server's program) that name their
//! site; deploys restart them on the new release.

use serde::{Deserialize, Serialize};
use slipway_core::InstallStatus;
use slipway_jobs::JobContext;
use slipway_store::{Server, ServerItem, Site};

use super::supervised::{self, ProgramSpec};
use super::{ItemKind, specs};
use crate::script::Script;
use crate::session::OpenSession;
use crate::{Engine, JobKind};
use slipway_core::site_input::ProjectType;

#[derive(Debug)]
pub struct QueueWorkers;

/// Workers' supervisor programs are `slipway-worker-<id>`.
pub const WORKER_PREFIX: &str = "slipway-worker";

#[async_trait::async_trait]
impl ItemKind for QueueWorkers {
    fn name(&self) -> &'static str {
        "queue_worker"
    }

    fn progress(&self) -> &'static str {
        "==> installing queue workers"
    }

    fn sync_job(&self) -> JobKind {
        JobKind { name: "server.sync-queue-workers", attempts: 3 }
    }

    fn sync_script(&self, _: &Engine, _: &Server, items: &[&ServerItem]) -> Result<Script, String> {
        let programs: Vec<(String, ProgramSpec)> =
            specs::<QueueWorkerSpec>(items)?.into_iter().map(|(id, w)| (id, w.program)).collect();
        supervised::sync_script(WORKER_PREFIX, &programs)
    }

    fn program_prefix(&self) -> Option<&'static str> {
        Some(WORKER_PREFIX)
    }

    async fn live_status(&self, engine: &Engine, server: &Server, items: &mut [ServerItem]) {
        supervised::live_status(engine, server, self, items).await;
    }
}

/// A worker as stored: what the user asked for (shown back) and the program that runs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueWorkerSpec {
    pub site_id: String,
    /// Laravel's `queue:work` options; `None` for a site of another type (it has `command`).
    pub laravel: Option<LaravelWorker>,
    pub program: ProgramSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaravelWorker {
    pub connection: String,
    /// Comma-separated queue names, highest priority first.
    pub queue: String,
    pub timeout: u32,
    pub sleep: u32,
    pub tries: u32,
    pub max_jobs: u32,
    pub max_time: u32,
    pub memory: u32,
}

/// Names of queue connections and queues: what Laravel configurations use, and nothing a shell
/// would read.
pub fn name_problem(field: &str, value: &str, list: bool) -> Option<String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_.-:".contains(c) || (list && c == ',');
    if value.is_empty() || value.len() > 255 || !value.chars().all(plain) || value.split(',').any(str::is_empty) {
        let what = if list { "comma-separated names" } else { "a name" };
        return Some(format!("The {field} must be {what} of letters, digits and _ . - : (at most 255 characters)."));
    }
    None
}

impl LaravelWorker {
    /// `php<version> artisan queue:work …` from checked values only.
    pub fn command(&self, php_version: &str) -> Result<String, String> {
        for (field, value, list) in [("connection", &self.connection, false), ("queue", &self.queue, true)] {
            if let Some(why) = name_problem(field, value, list) {
                return Err(why);
            }
        }
        if !php_version.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(format!("invalid PHP version {php_version:?}"));
        }
        Ok(format!(
            "php{php_version} artisan queue:work {} --queue={} --timeout={} --sleep={} --tries={} --max-jobs={} \
             --max-time={} --memory={}",
            self.connection,
            self.queue,
            self.timeout,
            self.sleep,
            self.tries,
            self.max_jobs,
            self.max_time,
            self.memory
        ))
    }
}

/// After a deploy's switch: Laravel workers are told to finish their job and exit
/// (`queue:restart`), other workers are restarted (each process gets its stop period to drain);
/// supervisor starts them all again on the new release. Recorded in the deploy's log; a worker
/// that does not come back is reported there and shows `failed` with supervisor's reason, but
/// the deploy, already live, is not undone. Runs in the deploy's own session.
pub(crate) async fn restart_after_deploy(
    engine: &Engine,
    ctx: &JobContext,
    session: &mut OpenSession,
    site: &Site,
    server: &Server,
) {
    let items = match engine.store.server_items(&server.id, QueueWorkers.name(), None).await {
        Ok((items, _)) => items,
        Err(e) => {
            ctx.log("stderr", format!("could not list the site's queue workers: {e}"));
            return;
        }
    };
    let installed: Vec<ServerItem> = items.into_iter().filter(|i| i.status == InstallStatus::Installed).collect();
    let programs: Vec<String> =
        super::of_site(&installed, &site.id).iter().map(|id| supervised::program_name(WORKER_PREFIX, id)).collect();
    if programs.is_empty() {
        return;
    }
    let laravel = site.project_type == ProjectType::Laravel;
    let php = server.php_version.clone().unwrap_or_default();
    let paths = match crate::sites::SitePaths::of(site) {
        Ok(paths) => paths,
        Err(e) => {
            ctx.log("stderr", format!("queue workers not restarted: {e}"));
            return;
        }
    };
    ctx.log("info", format!("==> restarting {} queue worker(s) on the new release", programs.len()));
    let script = Script::new("queue worker restart", include_str!("../../scripts/workers_restart.sh"))
        .var("PROGRAMS", &programs.join(" "))
        .var("LARAVEL", if laravel && !php.is_empty() { "yes" } else { "" })
        .var("PHP", &format!("php{php}"))
        .var("SITE_USER", &paths.user)
        .var("ROOT", &paths.root);
    // Never cut short by a cancel: the deployment is live, and its workers must follow it.
    if let Err(e) = session.run_to_its_end(&script).await {
        ctx.log("stderr", format!("queue workers: {e}; the release is live, see each worker's status and log"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker() -> LaravelWorker {
        LaravelWorker {
            connection: "redis".into(),
            queue: "high,default".into(),
            timeout: 60,
            sleep: 3,
            tries: 1,
            max_jobs: 0,
            max_time: 0,
            memory: 128,
        }
    }

    #[test]
    fn laravel_workers_run_artisan_with_checked_options_only() {
        assert_eq!(
            worker().command("8.2").unwrap(),
            "php8.2 artisan queue:work redis --queue=high,default --timeout=60 --sleep=3 --tries=1 --max-jobs=0 \
             --max-time=0 --memory=128"
        );
        for (connection, queue) in
            [("redis; touch /tmp/x", "default"), ("redis", "a b"), ("redis", "$(id)"), ("redis", "a,,b"), ("", "x")]
        {
            let bad = LaravelWorker { connection: connection.into(), queue: queue.into(), ..worker() };
            assert!(bad.command("8.2").is_err(), "{connection:?} {queue:?}");
        }
        assert!(worker().command("8.2; id").is_err());
        assert!(name_problem("queue", "emails,default", true).is_none());
        assert!(name_problem("connection", "emails,default", false).is_some());
    }
}
