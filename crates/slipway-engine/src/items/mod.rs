//! What Slipway keeps on a server besides its base setup, as kinds of item: SSH keys of the
//! deploy user ([`ssh_keys`]), firewall rules ([`network_rules`]), daemons ([`daemons`]), cron
//! jobs ([`cron`]), sites' TLS certificates ([`certificates`]), databases ([`databases`], the one kind
//! whose sync drops only what is being deleted) and their users ([`database_users`]). Every kind is applied the same way: render everything the server should have
//! (every item not being removed) and replace Slipway's part on the server in one step, so a sync
//! is idempotent and a failed one leaves the previous state in place.
//!
//! A kind is one module implementing [`ItemKind`], listed once in [`KINDS`]: its sync job is
//! registered, provisioning applies it, and the API's item routes find it by name.

pub mod acme;
pub mod certificates;
pub mod cron;
pub mod daemons;
pub mod database_users;
pub mod databases;
pub mod network_rules;
pub mod queue_workers;
pub mod redirects;
pub mod ssh_keys;
pub mod supervised;
pub mod watch;

use async_trait::async_trait;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use slipway_core::InstallStatus;
use slipway_jobs::{JobContext, JobError, JobHandler};
use slipway_remote::SshConnection;
use slipway_store::{Server, ServerItem};

use crate::script::Script;
use crate::session::{abandoned_reason, connect, load_server, reason_to_record, run_script_with, store_error};
use crate::verify::ServerJob;
use crate::{Engine, JobKind};

pub use certificates::{CertificateSpec, Certificates};
pub use cron::CronJobs;
pub use daemons::{DAEMON_PREFIX, Daemons};
pub use database_users::{DatabaseUserSpec, DatabaseUsers};
pub use databases::{DatabaseSpec, Databases};
pub use network_rules::{NetworkRuleSpec, NetworkRules, Protocol, RuleAction};
pub use queue_workers::{QueueWorkerSpec, QueueWorkers, WORKER_PREFIX};
pub use redirects::{RedirectSpec, Redirects};
pub use ssh_keys::{SshKeySpec, SshKeys};

/// The user sites run as and people log in as to deploy by hand.
pub const DEPLOY_USER: &str = "slipway";

/// A kind of server item: how it is stored and how the whole set goes onto the server.
#[async_trait]
pub trait ItemKind: std::fmt::Debug + Send + Sync + 'static {
    /// The `kind` column of its rows.
    fn name(&self) -> &'static str;

    /// The line provisioning logs before applying this kind.
    fn progress(&self) -> &'static str;

    /// The job that applies the whole set (`server.sync-…`; safe to retry: it converges).
    fn sync_job(&self) -> JobKind;

    /// The script that makes the server hold exactly `items` (each with its id), given as stored.
    /// (`engine` opens what is sealed: a certificate's key.)
    fn sync_script(&self, engine: &Engine, server: &Server, items: &[&ServerItem]) -> Result<Script, String>;

    /// The script a sync runs: [`ItemKind::sync_script`] of the items to keep, for kinds whose
    /// items go from the server by being left out. Kinds whose items the server keeps unless
    /// told otherwise (databases are never dropped for being absent) get `removing` as well.
    fn apply_script(
        &self,
        engine: &Engine,
        server: &Server,
        keep: &[&ServerItem],
        _removing: &[&ServerItem],
    ) -> Result<Script, String> {
        self.sync_script(engine, server, keep)
    }

    /// For kinds that run as supervisor programs: the programs' name prefix (their live status,
    /// log and restart then come from supervisor).
    fn program_prefix(&self) -> Option<&'static str> {
        None
    }

    /// Replaces the stored `installed` of `items` with what the server says now (a program that
    /// died, a cron job that failed or never ran), read over SSH when they are read: a status
    /// that is only remembered could hide it. Items whose state cannot be read say so
    /// (`unknown`). Kinds whose `installed` says it all keep the default: nothing to read.
    async fn live_status(&self, _engine: &Engine, _server: &Server, _items: &mut [ServerItem]) {}

    /// What follows from `installed` being on the server now (a linked site's variables), after
    /// a sync; what cannot be done is logged, the items stay installed. Nothing by default.
    async fn applied(&self, _engine: &Engine, _ctx: &JobContext, _installed: &[&ServerItem]) {}
}

/// Every kind, in the order provisioning applies them (the firewall before the keys, programs
/// and cron jobs last: they may need the users and files the others set up).
pub static KINDS: &[&dyn ItemKind] = &[
    &NetworkRules,
    &SshKeys,
    &Databases,
    &DatabaseUsers,
    &Daemons,
    &QueueWorkers,
    &Redirects,
    &Certificates,
    &CronJobs,
];

/// The site an item of a site-level kind (queue workers, redirects, a site's cron jobs) belongs to.
#[derive(Debug, Deserialize)]
pub struct SiteOf {
    pub site_id: String,
}

/// Kinds whose items belong to a site and go when it goes.
pub static SITE_KINDS: &[&dyn ItemKind] = &[&QueueWorkers, &Redirects, &Certificates, &CronJobs];

/// The ids of `items` that belong to site `site_id`.
pub fn of_site(items: &[ServerItem], site_id: &str) -> Vec<String> {
    items
        .iter()
        .filter(|i| serde_json::from_str::<SiteOf>(&i.spec).is_ok_and(|s| s.site_id == site_id))
        .map(|i| i.id.clone())
        .collect()
}

/// The kind stored as `name`; an unknown name is an error, never another kind's sync.
pub fn kind(name: &str) -> Result<&'static dyn ItemKind, JobError> {
    KINDS
        .iter()
        .copied()
        .find(|k| k.name() == name)
        .ok_or_else(|| JobError::failed(format!("unknown item kind {name:?}")))
}

/// The stored specs of `items`, each with its id.
pub fn specs<T: DeserializeOwned>(items: &[&ServerItem]) -> Result<Vec<(String, T)>, String> {
    items
        .iter()
        .map(|i| serde_json::from_str(&i.spec).map(|s| (i.id.clone(), s)).map_err(|e| format!("item {}: {e}", i.id)))
        .collect()
}

/// Most bytes of a command run with `sh -c` (daemons, cron jobs).
pub const MAX_COMMAND: usize = 4096;

/// A command runs through `sh -c`, so its own quoting is kept as written; it is one line of
/// printable text (a newline or NUL could not be what the user meant to run, and `%` is only
/// text: it reaches no configuration file).
pub fn command_problem(command: &str) -> Option<String> {
    if command.trim().is_empty() {
        return Some("The command cannot be empty.".into());
    }
    if command.len() > MAX_COMMAND {
        return Some(format!("The command can be at most {MAX_COMMAND} bytes."));
    }
    if command.chars().any(char::is_control) {
        return Some("The command must be one line without control characters (newlines, tabs, NUL).".into());
    }
    None
}

/// The root-owned script that runs a user's command (`exec sh -c <command>`, optionally in
/// `directory`): the one place a command is written on a server, as one shell-quoted word, so
/// the files that start it (a supervisor program, a cron line) hold no user text. `label` names
/// it in a comment and must be Slipway's own text.
pub fn wrapper_script(
    label: &str,
    directory: Option<&str>,
    command: &str,
    site_root: Option<&str>,
) -> Result<String, String> {
    let quote = |v: &str| slipway_core::shell::quote(v).map_err(|_| format!("{label}: a value holds NUL"));
    let environment = match site_root {
        // A site's program: the live release's own environment, as the site's app gets it.
        Some(root) => format!(
            "release=$(basename \"$(readlink {current})\")\nif [ -r {root}/.slipway/env-\"$release\".sh ]; then\n    \
             set -a\n    . {root}/.slipway/env-\"$release\".sh\n    set +a\nfi\n",
            current = quote(&format!("{root}/current"))?,
            root = quote(root)?,
        ),
        None => String::new(),
    };
    let enter = match directory {
        // The directory is checked plain text (see the callers), so it may be named in the message.
        Some(dir) => format!("cd {q} || {{ echo \"slipway: cannot enter {dir}\" >&2; exit 1; }}\n", q = quote(dir)?),
        None => String::new(),
    };
    Ok(format!("#!/bin/sh\n# Managed by Slipway: {label}.\n{environment}{enter}exec sh -c {}\n", quote(command)?))
}

/// Whether Unix user `user` exists on the server: `None` when the server could not be asked.
pub async fn user_exists(engine: &Engine, server: &Server, user: &str) -> Option<bool> {
    let script = Script::new("user check", "if id -u \"$USER_NAME\" >/dev/null 2>&1; then echo yes; else echo no; fi")
        .var("USER_NAME", user);
    let lines = crate::probe::read(engine, server, &script, std::time::Duration::from_secs(10)).await.ok()?;
    lines.iter().rev().find_map(|l| match l.as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    })
}

/// Ids reach configuration files; they are Slipway's own ULIDs, checked anyway.
pub fn check_id(what: &str, id: &str) -> Result<(), String> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("invalid {what} id {id:?}"));
    }
    Ok(())
}

/// Applies every item of `kind` the server should have, then records the outcome on the items
/// that were part of it (items added meanwhile wait for their own sync).
pub async fn apply(
    engine: &Engine,
    ctx: &JobContext,
    connection: &SshConnection,
    server: &Server,
    kind: &dyn ItemKind,
) -> Result<(), JobError> {
    let store = &engine.store;
    let (items, _) = store.server_items(&server.id, kind.name(), None).await.map_err(store_error)?;
    let (removing, keep): (Vec<&ServerItem>, Vec<&ServerItem>) =
        items.iter().partition(|i| i.status == InstallStatus::Removing);
    let ids = |list: &[&ServerItem]| list.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    let outcome = match kind.apply_script(engine, server, &keep, &removing) {
        Ok(script) => run_script_with(engine, ctx, connection, &script, ctx.cancel_receiver()).await,
        Err(e) => Err(JobError::failed(e)),
    };
    match &outcome {
        Ok(reported) => {
            // A script may leave out an item it cannot apply (a daemon whose user is gone) rather
            // than hold back every other one: `slipway-item-failed <id> <reason>`.
            let left_out: Vec<(&str, &str)> =
                reported.iter().filter_map(|line| line.strip_prefix("slipway-item-failed ")?.split_once(' ')).collect();
            let (failed, installed): (Vec<&ServerItem>, Vec<&ServerItem>) =
                keep.iter().partition(|i| left_out.iter().any(|(id, _)| *id == i.id));
            store
                .set_server_items_status(&ids(&installed), InstallStatus::Installed, None)
                .await
                .map_err(store_error)?;
            kind.applied(engine, ctx, &installed).await;
            for item in failed {
                let reason = left_out.iter().find(|(id, _)| *id == item.id).map(|(_, why)| *why);
                ctx.log("stderr", format!("{} {}: {}", kind.name(), item.id, reason.unwrap_or("not applied")));
                store
                    .set_server_items_status(std::slice::from_ref(&item.id), InstallStatus::Failed, reason)
                    .await
                    .map_err(store_error)?;
            }
            store.delete_removed_server_items(&ids(&removing)).await.map_err(store_error)?;
        }
        Err(e) => record_not_applied(engine, ctx, &items, e).await?,
    }
    outcome.map(|_| ())
}

/// Connects to the server and [`apply`]s `kind`. A server that cannot be reached is recorded on
/// the items waiting for it as a failed apply is, not left `installing` for good.
pub(crate) async fn connect_and_apply(
    engine: &Engine,
    ctx: &JobContext,
    server: &Server,
    kind: &dyn ItemKind,
) -> Result<(), JobError> {
    match connect(engine, ctx, server).await {
        Ok(connection) => apply(engine, ctx, &connection, server, kind).await,
        Err(e) => {
            let (items, _) = engine.store.server_items(&server.id, kind.name(), None).await.map_err(store_error)?;
            record_not_applied(engine, ctx, &items, &e).await?;
            Err(e)
        }
    }
}

/// Says why on the items of a sync that did not apply them (the script failed, or the server
/// could not be reached): those waiting to be applied are `failed`, those waiting to be removed
/// stay `removing`, each with the reason. Items a resumed run will apply keep waiting for it.
async fn record_not_applied(
    engine: &Engine,
    ctx: &JobContext,
    items: &[ServerItem],
    e: &JobError,
) -> Result<(), JobError> {
    let Some(reason) = reason_to_record(ctx, e) else { return Ok(()) };
    let (removing, pending): (Vec<&ServerItem>, Vec<&ServerItem>) = items
        .iter()
        .filter(|i| i.status != InstallStatus::Installed)
        .partition(|i| i.status == InstallStatus::Removing);
    let ids = |list: &[&ServerItem]| list.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    let store = &engine.store;
    store.set_server_items_status(&ids(&pending), InstallStatus::Failed, Some(&reason)).await.map_err(store_error)?;
    store
        .set_server_items_status(&ids(&removing), InstallStatus::Removing, Some(&reason))
        .await
        .map_err(store_error)?;
    Ok(())
}

/// Queues a sync for each kind of item that changed while it could not be applied (during the
/// first provisioning, which had already read its list).
pub async fn resync_pending(engine: &Engine, server: &Server) -> Result<(), JobError> {
    for kind in KINDS {
        let (items, _) = engine.store.server_items(&server.id, kind.name(), None).await.map_err(store_error)?;
        if items.iter().any(|i| i.status != InstallStatus::Installed) {
            let spec = kind.sync_job().about_server(server, ServerJob { server_id: server.id.clone() });
            slipway_jobs::enqueue(engine.store.as_ref(), spec).await.map_err(store_error)?;
        }
    }
    Ok(())
}

/// The sync job of one kind (`server.sync-ssh-keys`, `server.sync-network-rules`, …).
#[derive(Debug)]
pub struct SyncItems {
    pub engine: Engine,
    pub kind: &'static dyn ItemKind,
}

#[async_trait]
impl JobHandler for SyncItems {
    async fn abandoned(&self, job: &slipway_store::Job) {
        // It will not run again (its worker died with no retries left, or it was cancelled):
        // say so on the items still waiting.
        let Ok(payload) = serde_json::from_str::<ServerJob>(&job.payload) else { return };
        if let Ok((items, _)) = self.engine.store.server_items(&payload.server_id, self.kind.name(), None).await {
            let waiting: Vec<String> =
                items.iter().filter(|i| i.status == InstallStatus::Installing).map(|i| i.id.clone()).collect();
            let reason = format!("{}; add it again or provision the server", abandoned_reason(job));
            let _ = self.engine.store.set_server_items_status(&waiting, InstallStatus::Failed, Some(&reason)).await;
        }
    }

    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let job: ServerJob = ctx.payload()?;
        let server = load_server(&self.engine, &job.server_id).await?;
        if server.provisioned_at.is_none() {
            // Provisioning applies them; nothing to reach yet.
            ctx.log("info", "the server is not provisioned yet; provisioning will apply this");
            return Ok(());
        }
        connect_and_apply(&self.engine, ctx, &server, self.kind).await
    }
}
