//! `site.deploy`: a deployment, or a rollback to a kept release. The steps, run on the server in
//! one session (the prepare script, then the switch sent to the same shell once it is ready):
//! fetch (mirror the repository, unpack the commit as a new release), build (environment, shared
//! `.env`, the deploy script as the deploy user), start (apps: a new process on the other port of
//! the site's pair; every kind: a health check) — all before any traffic moves — then switch
//! (nginx to the new port with a graceful reload, `current` by atomic rename, drain and stop the
//! old process); the site's queue workers restart on it, and old releases are pruned after the
//! deployment reports success, in the same session. A failure or cancel before the switch
//! removes what was built and leaves the previous release serving; the switch itself is never
//! cut short.
//!
//! An in-place site (`zero_downtime: false`) has one working tree, `live`, that each deploy
//! checks out and builds where it is (an app restarts on its one port): quicker and lighter,
//! but a failing deploy leaves it as far as it got. `enable-zero-downtime` copies that tree into
//! a first release and switches to it like any deploy, with no moment without a site.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use slipway_core::time::now;
use slipway_core::{InstallStatus, RunStatus};
use slipway_jobs::{JobContext, JobError, JobHandler, StopReason};
use slipway_remote::SshConnection;
use slipway_store::{Deployment, DeploymentUpdate, Server, Site, SiteChanges};
use slipway_wire::DeploymentStep;

use crate::script::Script;
use crate::session::{Connection, OpenSession, connect, run_script_with, store_error};
use crate::sites::{
    ReleaseDir, SitePaths, load_site_and_server, nginx_conf, shared_paths, start_script, supervisor_program,
};
use crate::{Engine, JobKind};

/// Not retried: a deployment interrupted half-way is reported, and the user deploys again.
pub const SITE_DEPLOY: JobKind = JobKind { name: "site.deploy", attempts: 1 };

/// What a deployment does (`Deployment::action`).
pub const ACTION_DEPLOY: &str = "deploy";
pub const ACTION_ROLLBACK: &str = "rollback";
pub const ACTION_ENABLE_ZERO_DOWNTIME: &str = "enable-zero-downtime";

/// The longest the previous app keeps running after the switch, for requests already sent to it:
/// it is stopped as soon as the nginx workers that could send it one have exited (usually within
/// milliseconds) or no connection to it has been open for 2 s, or after this many seconds when
/// a long request still holds one.
const DRAIN_SECONDS: &str = "10";

/// The switch script's exit status when it failed and left nothing switched (nginx back on the
/// previous block, `current` untouched). No command the switch runs exits with it on its own
/// (sysexits' EX_TEMPFAIL; the commands there fail with 1 to 6).
const SWITCH_UNDONE_EXIT: i64 = 75;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployJob {
    pub deployment_id: String,
}

/// How to read a site's sealed values; shared with the API, which seals them.
pub fn repository_context(site_id: &str) -> String {
    format!("site-repository:{site_id}")
}

pub fn env_context(site_id: &str, key: &str) -> String {
    format!("site-env:{site_id}:{key}")
}

/// A git repository's URL and deploy key, sealed by the API.
pub fn repository_url_context(repository_id: &str) -> String {
    format!("git-repository-url:{repository_id}")
}

pub fn deploy_key_context(repository_id: &str) -> String {
    format!("git-repository-key:{repository_id}")
}

/// Where a repository comes from for one deploy.
struct Source {
    url: String,
    /// The private key to fetch with (OpenSSH form), when the repository has a deploy key.
    deploy_key: Option<String>,
    /// Names the key file on the server.
    key_name: String,
}

#[derive(Debug)]
pub struct DeploySite(pub Engine);

/// What a deployment has done so far: its steps with their times (recorded on the deployment),
/// and what the cleanup after a failure must know.
#[derive(Debug, Default)]
struct Progress {
    steps: Vec<DeploymentStep>,
    /// The supervisor program the health check step starts for the new release (an app not
    /// deployed in place).
    new_program: Option<String>,
    /// `new_program` once the health check began: the cleanup after a failure stops it. Never
    /// earlier: until then that port may still run an app a failed switch left to nginx.
    started_program: Option<String>,
    switched: bool,
    /// The switch began: from here on, what is live is whatever the server says.
    switch_started: bool,
}

impl Progress {
    /// Ends the step running (it succeeded) and starts `step`.
    fn begin(&mut self, step: &'static str) {
        let at = now();
        if let Some(last) = self.steps.last_mut() {
            last.end("succeeded", at);
        }
        if step == "health check" {
            self.started_program = self.new_program.take();
        }
        self.steps.push(DeploymentStep::start(step, at));
    }

    /// The step running (or the last one).
    fn step(&self) -> &str {
        self.steps.last().map_or("connect", |s| s.name.as_str())
    }

    /// How the deployment ends when `e` stopped it in the step running, which ends so too.
    fn failed(&mut self, e: &JobError) -> DeploymentUpdate {
        let mut update = failed_update(e, self.step());
        self.end(update.status.unwrap_or(RunStatus::Failed));
        update.steps = self.recorded();
        update
    }

    /// Ends the step running with `status`.
    fn end(&mut self, status: RunStatus) {
        if let Some(last) = self.steps.last_mut() {
            last.end(status.as_str(), now());
        }
    }

    /// The steps as the deployment stores them.
    fn recorded(&self) -> Option<String> {
        serde_json::to_string(&self.steps).ok()
    }
}

/// The scripts of a deploy before and at the switch, for [`DeploySite::prepare_and_switch`].
struct Stages<'a> {
    /// The steps the prepare script runs, the first begun already.
    steps: &'a [&'static str],
    prepare: &'a Script,
    switch: &'a Script,
    /// Follows `slipway-prepared` and `slipway-switched` in the lines that count.
    mark: &'a str,
    /// An in-place site's tree becomes its first release.
    adopting: bool,
}

/// What went live.
struct Live {
    release: String,
    port: Option<i64>,
    /// It is a release kept for rollback (not an in-place working tree).
    kept: bool,
}

impl DeploySite {
    /// The site's environment, decrypted, with every value registered as a secret of the job.
    async fn environment(&self, ctx: &JobContext, site: &Site) -> Result<Vec<(String, String)>, JobError> {
        let engine = &self.0;
        let mut vars = Vec::new();
        for var in engine.store.site_env(&site.id).await.map_err(store_error)? {
            let value = engine
                .secrets
                .open(&env_context(&site.id, &var.key), &var.value)
                .map_err(|e| JobError::failed(format!("environment variable {} cannot be read: {e}", var.key)))?;
            let value = String::from_utf8(value).map_err(|_| JobError::failed("an environment value is not UTF-8"))?;
            for line in value.lines() {
                ctx.add_secret(line);
            }
            ctx.add_secret(value.clone());
            vars.push((var.key, value));
        }
        Ok(vars)
    }

    /// The URL (and deploy key) to fetch: the site's git repository, else its own URL. Any
    /// credentials are registered as secrets of the job, so they are masked in its log.
    async fn source(&self, ctx: &JobContext, site: &Site) -> Result<Source, JobError> {
        let secrets = &self.0.secrets;
        let open = |context: &str, sealed: &[u8], what: &str| {
            secrets
                .open(context, sealed)
                .map_err(|e| JobError::failed(format!("the {what} cannot be read: {e}")))
                .and_then(|b| String::from_utf8(b).map_err(|_| JobError::failed(format!("the {what} is not UTF-8"))))
        };
        let source = match &site.git_repository_id {
            Some(id) => {
                let repo = self
                    .0
                    .store
                    .git_repository(id)
                    .await
                    .map_err(store_error)?
                    .ok_or_else(|| JobError::failed("the site's git repository was deleted"))?;
                let key = match &repo.deploy_key_private {
                    Some(sealed) => Some(open(&deploy_key_context(&repo.id), sealed, "deploy key")?),
                    None => None,
                };
                Source {
                    url: open(&repository_url_context(&repo.id), &repo.url, "repository URL")?,
                    deploy_key: key,
                    key_name: format!("slipway-repo-{}", repo.id),
                }
            }
            None => {
                let sealed = site.repository_url.as_ref().ok_or_else(|| {
                    JobError::failed(
                        "the site has no repository (its git repository was deleted?): give it a repository_url \
                         or a git_repository_id",
                    )
                })?;
                Source {
                    url: open(&repository_context(&site.id), sealed, "repository URL")?,
                    deploy_key: None,
                    key_name: String::new(),
                }
            }
        };
        if let Some((_, rest)) = source.url.split_once("://")
            && let Some((userinfo, _)) = rest.split_once('@')
        {
            ctx.add_secret(userinfo);
            if let Some((_, password)) = userinfo.split_once(':') {
                ctx.add_secret(password);
            }
        }
        Ok(source)
    }

    #[allow(clippy::too_many_arguments)]
    async fn pipeline(
        &self,
        ctx: &JobContext,
        connection: &Connection,
        server: &Server,
        site: &Site,
        deployment: &Deployment,
        progress: &mut Progress,
    ) -> Result<(Live, OpenSession), JobError> {
        let paths = SitePaths::of(site)?;
        let php = site.project_type.uses_php().then_some(server.php_version.as_deref()).flatten();
        // An in-place site deploys into its one working tree; `enable-zero-downtime` adopts that
        // tree as its first release; a rollback's release was built when it was deployed.
        let in_place = deploys_in_place(site, deployment);
        let adopting = deployment.action == ACTION_ENABLE_ZERO_DOWNTIME;
        let rollback = deployment.release_of.is_some();
        let shared = if in_place { String::new() } else { shared_paths(site)? };
        let (release, dir) = match &deployment.release_of {
            Some(release) => {
                ctx.log("info", format!("==> rolling back to release {release}"));
                (release.clone(), ReleaseDir::release(release))
            }
            None if in_place => (deployment.id.clone(), ReleaseDir::in_place()),
            None => (deployment.id.clone(), ReleaseDir::release(&deployment.id)),
        };
        // Everything before the switch is one script (the prepare script), which says when each
        // step after the first begins.
        let steps: &[&'static str] = if rollback { &["health check"] } else { &["fetch", "build", "health check"] };
        let app = site.project_type.is_app();
        // Apps alternate between the two ports of their pair; in place, the one app restarts.
        let port = app.then(|| {
            if in_place || site.active_port != Some(site.app_port) { site.app_port } else { site.app_port + 1 }
        });
        // In place, the program is the live app itself: a failure never stops it.
        progress.new_program = port.filter(|_| !in_place).map(|port| paths.program(port));
        self.begin(deployment, progress, steps[0]).await;
        let source_kind = match (rollback, adopting) {
            (true, _) => "",
            (false, true) => "adopt",
            (false, false) => "fetch",
        };
        // Says the script is ready, then that the switch is done; unknown to the site's processes.
        let mark = slipway_core::token::random_base62(22);
        let mut prepare = Script::new("prepare", include_str!("../scripts/deploy_prepare.sh"))
            .var("MARK", &mark)
            .var("DEPLOY_USER", &paths.user)
            .var("ROOT", &paths.root)
            .var("RELEASE", &deployment.id)
            .var("DIR", &dir.path)
            .var("NAME", &dir.name)
            .var("SOURCE", source_kind)
            .var("BUILD", if rollback { "" } else { "yes" })
            .var("SHARED", &shared);
        if rollback || adopting {
            prepare = prepare.blank(&[
                "REPO_URL",
                "GIT_USERNAME",
                "GIT_PASSWORD",
                "BRANCH",
                "COMMIT",
                "LIVE_COMMIT",
                "IN_PLACE",
                "KEY_NAME",
                "DEPLOY_KEY",
            ]);
        } else {
            let source = self.source(ctx, site).await?;
            let commit = match &deployment.requested_commit {
                Some(c) if c.len() <= 64 && c.bytes().all(|b| b.is_ascii_hexdigit()) => c.clone(),
                Some(_) => return Err(JobError::failed("the requested commit is not a commit id")),
                None => String::new(),
            };
            // Credentials reach git through a credential helper, never its arguments.
            let credentials = slipway_core::site_input::url_credentials(&source.url);
            if let Some(c) = &credentials {
                ctx.add_secret(c.password.clone());
            }
            prepare = prepare
                .var("REPO_URL", credentials.as_ref().map_or(&source.url, |c| &c.url))
                .var("GIT_USERNAME", credentials.as_ref().map_or("", |c| &c.username))
                .var("GIT_PASSWORD", credentials.as_ref().map_or("", |c| &c.password))
                .var("BRANCH", &site.repository_branch)
                .var("COMMIT", &commit)
                .var("LIVE_COMMIT", &self.live_commit(site).await?)
                .var("IN_PLACE", if in_place { "yes" } else { "" })
                .var("KEY_NAME", &source.key_name)
                .file_var("DEPLOY_KEY", source.deploy_key.as_deref().unwrap_or("").as_bytes());
        }
        if rollback {
            prepare = prepare.blank(&["DOTENV", "ENV_SH", "SCRIPT"]);
        } else {
            let env = self.environment(ctx, site).await?;
            let dotenv = slipway_core::dotenv::render(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let mut env_sh = String::from("# Managed by Slipway.\n");
            for (key, value) in &env {
                let assign = slipway_core::shell::env_assign(key, value)
                    .map_err(|_| JobError::failed(format!("environment variable {key} holds a NUL byte")))?;
                env_sh.push_str(&format!("export {assign}\n"));
            }
            prepare = prepare
                .file_var("DOTENV", dotenv.as_bytes())
                .file_var("ENV_SH", env_sh.as_bytes())
                .file_var("SCRIPT", site.deploy_script.as_bytes());
        }

        prepare = prepare
            .var("KIND", if app { "app" } else { "files" })
            .var("LOG_DIR", &paths.log_dir)
            .var("WEB_DIR", &slipway_core::site_input::relative_path(&site.web_directory).map_err(JobError::failed)?)
            .var("HEALTH_PATH", &site.health_check_path)
            .var("HEALTH_STATUS", &site.health_check_status.to_string())
            .var("HEALTH_TIMEOUT", &site.health_check_timeout.to_string());
        if let Some(port) = port {
            let command = site.app_command.as_deref().unwrap_or("npm start");
            prepare = prepare
                .var("PORT", &port.to_string())
                .var("PROGRAM", &paths.program(port))
                .file_var("PROGRAM_CONF", supervisor_program(&paths, &dir, port).as_bytes())
                .file_var("START", start_script(&paths, &dir, port, command).as_bytes());
        } else {
            prepare = prepare.blank(&["PORT", "PROGRAM", "PROGRAM_CONF", "START"]);
        }

        // The switch is built before anything runs: what cannot be built fails the deploy before
        // the server is touched.
        let (old_program, old_port) = match (port, site.active_port) {
            (Some(new), Some(old)) if new != old => (paths.program(old), old.to_string()),
            _ => (String::new(), String::new()),
        };
        // Files sites keep their nginx block (it points at `current`); apps get the new port.
        let conf = if app && !in_place { nginx_conf(site, php, port)? } else { String::new() };
        let switch = Script::new("switch", include_str!("../scripts/deploy_switch.sh"))
            .var("DEPLOY_USER", &paths.user)
            .var("ROOT", &paths.root)
            .var("DIR", &dir.path)
            .var("NGINX_NAME", &paths.conf_name)
            .file_var("NGINX_CONF", conf.as_bytes())
            .var("PHP_VERSION", php.unwrap_or(""))
            .var("OLD_PROGRAM", &old_program)
            .var("OLD_PORT", &old_port)
            .var("NEW_PORT", &port.map(|p| p.to_string()).unwrap_or_default())
            .var("DRAIN_SECONDS", DRAIN_SECONDS)
            .var("UNDONE_EXIT", &SWITCH_UNDONE_EXIT.to_string())
            .var("MARK", &mark);
        let stages = Stages { steps, prepare: &prepare, switch: &switch, mark: &mark, adopting };
        match self.prepare_and_switch(ctx, connection, site, deployment, progress, stages).await {
            Ok(session) => {
                progress.switched = true;
                Ok((Live { release, port, kept: !in_place }, session))
            }
            Err(e) => {
                // The switch undid its part and said so: nothing of this release is live, so it
                // is cleaned up as after any earlier step.
                if progress.switch_started && matches!(e, JobError::Failed { exit_code: Some(SWITCH_UNDONE_EXIT), .. })
                {
                    progress.switch_started = false;
                }
                Err(e)
            }
        }
    }

    /// Runs the prepare script and then, in the same session, the switch (one session on the
    /// server's connection, not one for each). Each step is recorded as the script says it begins
    /// (so a deployment read meanwhile shows where it is, and a failure names its step), and the
    /// commit the fetch reports. Only the next step of `steps` is taken from a marker, and a
    /// commit only during the fetch: the deploy script's lines that look like markers are
    /// indented by the script.
    ///
    /// The prepare script ends by saying it is ready and waits: the switch is sent only then,
    /// unless a cancel came first (the last moment one is honoured: the input ends instead, and
    /// nothing moves). A cancel stops the session until the switch is sent, never after: the
    /// switch runs to its end. Once the switch says the release is live, the session is
    /// returned still open, for what follows a deploy.
    async fn prepare_and_switch(
        &self,
        ctx: &JobContext,
        connection: &Connection,
        site: &Site,
        deployment: &Deployment,
        progress: &mut Progress,
        stages: Stages<'_>,
    ) -> Result<OpenSession, JobError> {
        let Stages { steps, prepare, switch, mark, adopting } = stages;
        let (prepared, switched) = (format!("slipway-prepared {mark}"), format!("slipway-switched {mark}"));
        // Follows the switch in the shell's input: a switch that ended without saying the
        // release is live, and without exiting, is known at once (not after the idle timeout).
        let switch_ended = format!("slipway-switch-ended {mark}");
        let mut session = OpenSession::start(&self.0, ctx, connection, prepare, mark);
        let mut recorded = Ok(());
        let mut next = 1;
        // A cancel is forwarded once (the session then ends, and the loop with it).
        let mut stopped = false;
        let mut ready = false;
        let mut cancelled_when_ready = false;
        loop {
            let line = tokio::select! {
                line = session.marker() => match line {
                    Some(line) => line,
                    None => break,
                },
                () = ctx.cancelled(), if !ready && !stopped => {
                    stopped = true;
                    session.stop();
                    continue;
                }
            };
            if let Some(step) = line.strip_prefix("slipway-step ") {
                if steps.get(next) == Some(&step) {
                    self.begin(deployment, progress, steps[next]).await;
                    next += 1;
                }
            } else if let Some(commit) = line.strip_prefix("slipway-commit ")
                && progress.step() == "fetch"
                && recorded.is_ok()
            {
                recorded = self.record_commit(deployment, commit).await;
            } else if line == prepared && !ready {
                ready = true;
                // A session that ended meanwhile (its run reports why) gets no switch.
                if session.open() && recorded.is_ok() {
                    match self.begin_switch(ctx, site, deployment, progress, adopting).await {
                        Ok(true) => {
                            let text = format!("{}echo \"{switch_ended}\"\n", switch.text_continuing());
                            progress.switch_started = session.send(text);
                        }
                        Ok(false) => cancelled_when_ready = true,
                        Err(e) => recorded = Err(e),
                    }
                }
                // Unless the switch was sent, the input ends, and the shell with it.
                if !progress.switch_started {
                    session.end_input();
                }
            } else if line == switched && progress.switch_started {
                return Ok(session);
            } else if line == switch_ended {
                session.end_input();
            }
        }
        let ran = session.ended().await;
        // The reason names the step that failed, as its own script's did.
        let named = |reason: String| match reason.strip_prefix("prepare") {
            Some(rest) => format!("{}{rest}", progress.step()),
            None => reason,
        };
        ran.map_err(|e| match e {
            JobError::Failed { reason, exit_code } => JobError::Failed { reason: named(reason), exit_code },
            JobError::Retryable { reason } => JobError::Retryable { reason: named(reason) },
            other => other,
        })?;
        recorded?;
        if cancelled_when_ready {
            return Err(JobError::Cancelled);
        }
        // Status never lies: a script that ended well without saying so did not do its part.
        if !progress.switch_started {
            return Err(JobError::failed(format!("{} ended without the release being ready", progress.step())));
        }
        Err(JobError::failed("switch ended without saying the release is live"))
    }

    /// What follows a switch that went through: the deployment and the site record what is
    /// live, the site's queue workers restart on it, old releases are marked gone, the
    /// deployment reports `succeeded`, then the old releases' directories are removed. The
    /// scripts run in the deploy's `session`; none of it undoes the deployment (a failure is
    /// logged), except a write to the database that fails.
    #[allow(clippy::too_many_arguments)]
    async fn after_switch(
        &self,
        ctx: &JobContext,
        session: &mut OpenSession,
        site: &Site,
        server: &Server,
        deployment: &Deployment,
        progress: &mut Progress,
        live: Live,
    ) -> Result<(), JobError> {
        let engine = &self.0;
        // Live now: recorded at once, so that pruning keeps this release.
        let update = DeploymentUpdate {
            port: live.port,
            release_present: Some(live.kept && deployment.release_of.is_none()),
            ..Default::default()
        };
        engine.store.update_deployment(&deployment.id, &update).await.map_err(store_error)?;
        engine
            .store
            .record_site_deployment(&site.id, RunStatus::Running, Some((&live.release, live.port)), Some(now()))
            .await
            .map_err(store_error)?;
        let adopted = deployment.action == ACTION_ENABLE_ZERO_DOWNTIME;
        self.begin(deployment, progress, "finish").await;
        if adopted {
            ctx.log("info", "==> the site now deploys as releases with an atomic switch");
        }
        crate::items::queue_workers::restart_after_deploy(engine, ctx, session, site, server).await;
        let kept = if live.kept { self.retire_releases(ctx, site, &live.release).await } else { None };
        // A conversion ends with the in-place tree gone; old releases are removed once the
        // deployment has said it is live (their removal never changes how it ended, and they
        // are no longer listed).
        if adopted && let Some(keep) = &kept {
            self.remove_releases(ctx, session, site, keep).await;
        }
        ctx.log("info", format!("==> deployed: release {} is live", live.release));
        // The whole log is stored before the deployment says it ended.
        ctx.flush_log().await;
        progress.end(RunStatus::Succeeded);
        let update = DeploymentUpdate {
            status: Some(RunStatus::Succeeded),
            finished_at: Some(now()),
            steps: progress.recorded(),
            ..Default::default()
        };
        finish(engine, deployment, update).await?;
        if !adopted && let Some(keep) = &kept {
            self.remove_releases(ctx, session, site, keep).await;
        }
        Ok(())
    }

    /// At the ready marker: begins the switch step, unless a cancel came first, and records a
    /// conversion before anything moves. False when a cancel came, before those records or
    /// during them (the last moment one is honoured).
    async fn begin_switch(
        &self,
        ctx: &JobContext,
        site: &Site,
        deployment: &Deployment,
        progress: &mut Progress,
        adopting: bool,
    ) -> Result<bool, JobError> {
        if ctx.is_cancelled() {
            return Ok(false);
        }
        self.begin(deployment, progress, "switch").await;
        if adopting {
            // Whatever happens to the switch from here, the next deploy builds a release (from
            // an in-place tree still live, that is a normal deploy; recorded in place while a
            // release serves, it would strand nginx on a stopped port).
            let changes = SiteChanges { zero_downtime: Some(true), ..Default::default() };
            self.0.store.update_site(&site.id, &changes).await.map_err(store_error)?;
        }
        Ok(!ctx.is_cancelled())
    }

    /// Starts `step` and records the steps so far on the deployment (so a deployment read while
    /// it runs shows where it is, and one that is interrupted keeps what it did). The record is
    /// informative: a write that fails never fails the deploy (the final update writes the
    /// steps again).
    async fn begin(&self, deployment: &Deployment, progress: &mut Progress, step: &'static str) {
        progress.begin(step);
        let update = DeploymentUpdate { steps: progress.recorded(), ..Default::default() };
        if let Err(e) = self.0.store.update_deployment(&deployment.id, &update).await {
            tracing::warn!(deployment.id = %deployment.id, error = %e, "could not record the deployment's steps");
        }
    }

    /// Stores the commit a fetch (or adoption) reported (`SHA<TAB>AUTHOR<TAB>SUBJECT`) on the
    /// deployment.
    async fn record_commit(&self, deployment: &Deployment, commit: &str) -> Result<(), JobError> {
        let mut parts = commit.splitn(3, '\t');
        let update = DeploymentUpdate {
            commit_sha: parts.next().map(str::to_string),
            commit_author: parts.next().map(str::to_string),
            commit_message: parts.next().map(str::to_string),
            ..Default::default()
        };
        self.0.store.update_deployment(&deployment.id, &update).await.map_err(store_error)
    }

    /// The commit of the live release, when Slipway knows it (a pushed commit behind it is not
    /// deployed).
    async fn live_commit(&self, site: &Site) -> Result<String, JobError> {
        let Some(current) = &site.current_release else { return Ok(String::new()) };
        let deployment = self.0.store.deployment(current).await.map_err(store_error)?;
        let sha = deployment.and_then(|d| d.commit_sha).unwrap_or_default();
        Ok(if sha.bytes().all(|b| b.is_ascii_hexdigit()) { sha } else { String::new() })
    }

    /// Records which releases are kept (the newest `keep_releases`, and the live one) and marks
    /// the others gone; returns the kept ones, for [`Self::remove_releases`]. A deployment that
    /// reports its end after this never lists a release that is about to be removed. A failure
    /// is reported but does not undo a deployment that is live.
    async fn retire_releases(&self, ctx: &JobContext, site: &Site, live: &str) -> Option<Vec<String>> {
        let store = &self.0.store;
        let result = async {
            let releases = store.releases_of_site(&site.id).await.map_err(store_error)?;
            let keep_count = usize::try_from(site.keep_releases.max(1)).unwrap_or(1);
            let mut keep: Vec<String> = releases.iter().take(keep_count).map(|d| d.id.clone()).collect();
            keep.push(live.to_string());
            for release in releases.iter().filter(|r| !keep.contains(&r.id)) {
                let update = DeploymentUpdate { release_present: Some(false), ..Default::default() };
                store.update_deployment(&release.id, &update).await.map_err(store_error)?;
            }
            Ok::<_, JobError>(keep)
        }
        .await;
        result.map_err(|e| ctx.log("stderr", format!("pruning old releases failed (the deployment is live): {e}"))).ok()
    }

    /// Removes the release directories on the server that are not in `keep` (never the live
    /// one: the script checks `current` itself), and the in-place tree of a converted site.
    /// A failure is reported; the next deploy removes what is left.
    async fn remove_releases(&self, ctx: &JobContext, session: &mut OpenSession, site: &Site, keep: &[String]) {
        let result = match SitePaths::of(site) {
            Ok(paths) => {
                let prune = Script::new("prune", include_str!("../scripts/deploy_prune.sh"))
                    .var("DEPLOY_USER", &paths.user)
                    .var("ROOT", &paths.root)
                    .var("KEEP", &keep.join(" "));
                session.run(&prune).await
            }
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = result {
            ctx.log("stderr", format!("removing old releases failed (the deployment is live): {e}"));
        }
    }

    async fn cleanup(
        &self,
        ctx: &JobContext,
        connection: &SshConnection,
        site: &Site,
        deployment: &Deployment,
        progress: &Progress,
        uncancellable: &tokio::sync::watch::Receiver<bool>,
    ) {
        if progress.switched {
            return;
        }
        let Ok(paths) = SitePaths::of(site) else { return };
        if progress.switch_started {
            // Part of the switch may have happened: never stop the new app or remove the new
            // release (nginx may already send traffic there); record what is live instead.
            self.reconcile(ctx, connection, site, &paths, uncancellable).await;
            return;
        }
        let release = if deployment.release_of.is_some() { "" } else { deployment.id.as_str() };
        let script = Script::new("cleanup", include_str!("../scripts/deploy_cleanup.sh"))
            .var("DEPLOY_USER", &paths.user)
            .var("ROOT", &paths.root)
            .var("RELEASE", release)
            .var("PROGRAM", progress.started_program.as_deref().unwrap_or(""));
        if let Err(e) = run_script_with(&self.0, ctx, connection, &script, uncancellable.clone()).await {
            ctx.log("stderr", format!("cleaning up failed: {e}"));
        }
    }
}

impl DeploySite {
    /// Reads what the server serves now (the release `current` points at, the port nginx
    /// proxies to) and records it on the site, after a switch that did not finish.
    async fn reconcile(
        &self,
        ctx: &JobContext,
        connection: &SshConnection,
        site: &Site,
        paths: &SitePaths,
        uncancellable: &tokio::sync::watch::Receiver<bool>,
    ) {
        let script = Script::new(
            "reading what is live",
            "release=$(readlink \"$ROOT/current\" 2>/dev/null | sed 's|^releases/||')\n\
             port=$(grep -o 'proxy_pass http://127.0.0.1:[0-9]*' \"/etc/nginx/sites-available/$NGINX_NAME\" 2>/dev/null | grep -o '[0-9]*$' || true)\n\
             printf 'slipway-live %s %s\\n' \"$release\" \"$port\"\n",
        )
        .var("ROOT", &paths.root)
        .var("NGINX_NAME", &paths.conf_name);
        let Ok(lines) = run_script_with(&self.0, ctx, connection, &script, uncancellable.clone()).await else {
            ctx.log("stderr", "could not read what is live after the failed switch; check the site");
            return;
        };
        let Some(live) = lines.iter().find_map(|l| l.strip_prefix("slipway-live ")) else { return };
        let mut parts = live.split(' ');
        let release = parts.next().unwrap_or("").to_string();
        let port = parts.next().and_then(|p| p.parse::<i64>().ok());
        // `live` is an in-place working tree: the site is as it was before the conversion began.
        if release.is_empty() || release == "live" || !release.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return;
        }
        ctx.log("stderr", format!("the switch did not finish; live now: release {release}, port {port:?}"));
        let status = site.deployment_status.unwrap_or(RunStatus::Running);
        let _ = self.0.store.record_site_deployment(&site.id, status, Some((&release, port)), None).await;
    }
}

/// Whether this deployment updates the site's one working tree (an in-place site's deploy).
fn deploys_in_place(site: &Site, deployment: &Deployment) -> bool {
    !site.zero_downtime && deployment.action == ACTION_DEPLOY
}

/// Records a deployment's end on its site and on it, and announces it. The site first: a
/// deployment that reads as ended has its site's record written (`run` ends one still running).
async fn finish(engine: &Engine, deployment: &Deployment, update: DeploymentUpdate) -> Result<(), JobError> {
    // A deployment's end always says how it ended; `failed` if an update ever did not.
    let status = update.status.unwrap_or(RunStatus::Failed);
    engine.store.record_site_deployment(&deployment.site_id, status, None, None).await.map_err(store_error)?;
    engine.store.update_deployment(&deployment.id, &update).await.map_err(store_error)?;
    announce(engine, &deployment.id).await;
    Ok(())
}

/// Emits the event for a deployment's status as stored now (started, or how it ended).
async fn announce(engine: &Engine, deployment_id: &str) {
    let Ok(Some(deployment)) = engine.store.deployment(deployment_id).await else { return };
    let Ok(Some(site)) = engine.store.site(&deployment.site_id).await else { return };
    let what = if deployment.action == ACTION_ROLLBACK { "Rollback" } else { "Deployment" };
    let domain = &site.domain;
    let (event_type, summary) = match deployment.status {
        RunStatus::Running => ("deployment.started", format!("{what} of {domain} started")),
        RunStatus::Succeeded => ("deployment.succeeded", format!("{what} of {domain} succeeded")),
        RunStatus::Cancelled => ("deployment.cancelled", format!("{what} of {domain} was cancelled")),
        RunStatus::Failed => {
            let step = deployment.failed_step.as_deref().map(|s| format!(" at {s}")).unwrap_or_default();
            let why = deployment.failure_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
            ("deployment.failed", format!("{what} of {domain} failed{step}{why}"))
        }
        RunStatus::Queued => return,
    };
    let data = serde_json::json!({
        "action": deployment.action,
        "status": deployment.status,
        "trigger": deployment.trigger_kind,
        "commit": deployment.commit_sha,
        "failed_step": deployment.failed_step,
        "failure_reason": deployment.failure_reason,
    });
    let subject = crate::notify::Subject::deployment(&site, &deployment.id);
    let event = crate::notify::EventSpec::new(event_type, &deployment.organization_id, subject, summary).data(data);
    crate::notify::emit(engine, event).await;
}

impl DeploySite {
    /// Runs deployment `deployment_id` to its end, which it records.
    async fn deploy(&self, ctx: &JobContext, deployment_id: &str) -> Result<(), JobError> {
        let engine = &self.0;
        let deployment = engine
            .store
            .deployment(deployment_id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| JobError::failed("the deployment was deleted"))?;
        let (site, server) = load_site_and_server(engine, &deployment.site_id).await?;
        let started =
            DeploymentUpdate { status: Some(RunStatus::Running), started_at: Some(now()), ..Default::default() };
        engine.store.update_deployment(&deployment.id, &started).await.map_err(store_error)?;
        engine.store.record_site_deployment(&site.id, RunStatus::Running, None, None).await.map_err(store_error)?;
        announce(engine, &deployment.id).await;

        // Deploying onto a site whose nginx block and directories were never made would report
        // success for a site nobody can reach.
        if site.status != InstallStatus::Installed {
            let why = site.status_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
            let e = JobError::failed(format!(
                "the site is not installed (its status is {}{why}); update the site to install it again, then deploy",
                site.status
            ));
            ctx.log("error", format!("==> {e}"));
            ctx.flush_log().await;
            finish_or_leave_to_run(engine, &deployment, failed_update(&e, "install")).await;
            return Err(e);
        }
        let (_keep_open, uncancellable) = tokio::sync::watch::channel(false);
        let mut progress = Progress::default();
        self.begin(&deployment, &mut progress, "connect").await;
        let connection = match connect(engine, ctx, &server).await {
            Ok(c) => c,
            Err(e) => {
                let e = stopped_as(ctx, e);
                ctx.flush_log().await;
                if owns_its_end(ctx) {
                    finish_or_leave_to_run(engine, &deployment, progress.failed(&e)).await;
                }
                return Err(e);
            }
        };
        let outcome = self.pipeline(ctx, &connection, &server, &site, &deployment, &mut progress).await;
        match outcome {
            Ok((live, mut session)) => {
                let release = live.release.clone();
                // Only a write to the database fails what follows the switch: the new release
                // serves all the same, and the reason says so.
                let ended = self
                    .after_switch(ctx, &mut session, &site, &server, &deployment, &mut progress, live)
                    .await
                    .map_err(|e| match e {
                        JobError::Cancelled => e,
                        e => JobError::failed(format!("release {release} is live, but recording it failed: {e}")),
                    });
                // Always waited for, so that the shell, which waits for input, never outlives the
                // job. The release is live whatever happened to the session since the switch: a
                // session that ended badly is reported, nothing more (a cancel is, by its part).
                match session.ended().await {
                    Ok(()) | Err(JobError::Cancelled) => {}
                    Err(e) => ctx.log("stderr", format!("the deploy's session on the server ended with an error: {e}")),
                }
                ended
            }
            Err(e) => {
                let e = stopped_as(ctx, e);
                if deploys_in_place(&site, &deployment) {
                    // Nothing to clean up or fall back to: the working tree is the live site.
                    ctx.log(
                        "stderr",
                        format!(
                            "==> {} failed; this site deploys in place, so it may be partly updated \
                             (enable zero-downtime deploys to keep the previous release serving)",
                            progress.step()
                        ),
                    );
                } else {
                    if progress.switch_started {
                        ctx.log("stderr", "==> the switch failed part-way; what is live is recorded below");
                    } else {
                        let after = if site.current_release.is_some() {
                            "the previous release keeps serving"
                        } else {
                            "nothing was live before, so the site serves nothing yet"
                        };
                        ctx.log("stderr", format!("==> {} failed; {after}", progress.step()));
                    }
                    self.cleanup(ctx, &connection, &site, &deployment, &progress, &uncancellable).await;
                }
                ctx.flush_log().await;
                if owns_its_end(ctx) {
                    finish_or_leave_to_run(engine, &deployment, progress.failed(&e)).await;
                }
                Err(e)
            }
        }
    }
}

#[async_trait]
impl JobHandler for DeploySite {
    async fn abandoned(&self, job: &slipway_store::Job) {
        let engine = &self.0;
        if let Ok(Some(deployment)) = engine.store.deployment_by_job(&job.id).await
            && matches!(deployment.status, RunStatus::Queued | RunStatus::Running)
        {
            // A user had asked to stop it (the reaper then ends the job cancelled): it is
            // cancelled. Otherwise the step it was in failed.
            let (status, reason) = match job.status {
                RunStatus::Cancelled => (RunStatus::Cancelled, "cancelled by request"),
                _ => (RunStatus::Failed, "interrupted"),
            };
            record_unfinished(engine, &deployment, status, reason).await;
        }
    }

    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let job: DeployJob = ctx.payload()?;
        let result = self.deploy(ctx, &job.deployment_id).await;
        // Every way a deploy ends records its end, but a write to the database that fails on the
        // way skips that: the deployment must not stay `running` (nor the site say it deploys).
        if let Err(e) = &result
            && owns_its_end(ctx)
            && let Ok(Some(deployment)) = self.0.store.deployment(&job.deployment_id).await
            && matches!(deployment.status, RunStatus::Queued | RunStatus::Running)
        {
            let (status, reason) = how_it_ended(e);
            ctx.log("stderr", format!("==> {reason}"));
            ctx.flush_log().await;
            record_unfinished(&self.0, &deployment, status, &reason).await;
        }
        result
    }
}

/// Records how a failed deployment ended. A write that fails is logged and left to `run`, which
/// tries again with the same error: the failure's own reason is kept, not the database's.
async fn finish_or_leave_to_run(engine: &Engine, deployment: &Deployment, update: DeploymentUpdate) {
    if let Err(e) = finish(engine, deployment, update).await {
        tracing::warn!(deployment.id = %deployment.id, error = %e, "could not record how the deployment ended");
    }
}

/// Ends a deployment whose run did not: the step it was in ends with `status` (how long it ran
/// is not known). Best effort: a failure to record is logged.
async fn record_unfinished(engine: &Engine, deployment: &Deployment, status: RunStatus, reason: &str) {
    let mut steps: Vec<DeploymentStep> =
        deployment.steps.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
    for step in steps.iter_mut().filter(|s| s.status == "running") {
        step.status = status.as_str().into();
    }
    let update = DeploymentUpdate {
        status: Some(status),
        failed_step: steps.iter().find(|s| s.status == status.as_str()).map(|s| s.name.clone()),
        failure_reason: Some(reason.into()),
        finished_at: Some(now()),
        steps: serde_json::to_string(&steps).ok(),
        ..Default::default()
    };
    if let Err(e) = finish(engine, deployment, update).await {
        tracing::warn!(deployment.id = %deployment.id, error = %e, "could not record how the deployment ended");
    }
}

/// What a deployment stopped before its end records: a user's cancel is `cancelled`, but a
/// shutdown of Slipway (a restart, an upgrade) interrupts it, which nobody asked for.
fn stopped_as(ctx: &JobContext, e: JobError) -> JobError {
    match (e, ctx.stop_reason()) {
        (JobError::Cancelled, Some(StopReason::Shutdown)) => {
            ctx.log("stderr", "==> Slipway is shutting down: the deploy is interrupted");
            JobError::failed(slipway_jobs::INTERRUPTED_BY_SHUTDOWN)
        }
        (e, _) => e,
    }
}

/// Whether this run may record how its deployment ended: not after its lease was lost, when the
/// worker that reaped the job has recorded it as interrupted (and may be deploying again).
fn owns_its_end(ctx: &JobContext) -> bool {
    ctx.stop_reason() != Some(StopReason::LeaseLost)
}

/// The status and reason of a deployment that ended in `e`.
fn how_it_ended(e: &JobError) -> (RunStatus, String) {
    match e {
        JobError::Cancelled => (RunStatus::Cancelled, "cancelled by request".to_string()),
        other => (RunStatus::Failed, other.to_string()),
    }
}

/// How a deployment that failed (or was cancelled) at `step` ends.
fn failed_update(e: &JobError, step: &str) -> DeploymentUpdate {
    let (status, reason) = how_it_ended(e);
    DeploymentUpdate {
        status: Some(status),
        failed_step: Some(step.into()),
        failure_reason: Some(reason),
        finished_at: Some(now()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::Progress;

    /// The cleanup after a failure stops the new release's app only once the step that starts
    /// it has begun: a fetch or build that fails leaves whatever runs on that port alone (an
    /// app a failed switch left running, which nginx may still send requests to).
    #[test]
    fn the_new_app_counts_as_started_only_from_the_health_check() {
        let mut progress = Progress { new_program: Some("slipway-shop-3001".into()), ..Default::default() };
        progress.begin("fetch");
        progress.begin("build");
        assert_eq!(progress.started_program, None);
        progress.begin("health check");
        assert_eq!(progress.started_program.as_deref(), Some("slipway-shop-3001"));
        assert_eq!(progress.step(), "health check");
    }
}
