//! The work Slipway does on servers, as job handlers: each reaches a server through
//! `slipway-remote`, reports in the job's log, and records the true outcome on the server.
//! The API only enqueues; `slipway serve` runs these in its job worker.

pub mod audit;
pub mod backup_restore;
pub mod backup_schedules;
pub mod backup_storage;
pub mod backups;
pub mod deploy;
pub mod items;
pub mod keys;
pub mod notify;
pub mod probe;
pub mod provision;
pub mod restart;
pub mod script;
pub mod session;
pub mod sites;
pub mod tls_probe;
pub mod verify;

#[cfg(test)]
mod test_support;

use std::sync::Arc;
use std::time::Duration;

use slipway_core::SecretsKey;
use slipway_jobs::{JobSpec, Registry};
use slipway_store::{Server, Site, Store};

pub use deploy::SITE_DEPLOY;
pub use provision::SERVER_PROVISION;
pub use restart::SERVER_RESTART;
pub use sites::{SITE_APPLY, SITE_ENV_PULL, SITE_REMOVE};
pub use verify::{SERVER_VERIFY, VerifyServer};

/// A kind of job, declared once beside its handler: the name it is registered and queued under,
/// and how many times it may be tried (more than once only when running it twice is safe).
/// What it locks follows from what it is about: `server:<id>` or `site:<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobKind {
    pub name: &'static str,
    pub attempts: i64,
}

impl JobKind {
    /// A job of this kind about a server: one at a time per server (`server:<id>`).
    pub fn about_server(self, server: &Server, payload: impl serde::Serialize) -> JobSpec {
        self.spec(payload, format!("server:{}", server.id), &server.organization_id).on_server(&server.id)
    }

    /// A job of this kind about a site: one at a time per site (`site:<id>`).
    pub fn about_site(self, site: &Site, payload: impl serde::Serialize) -> JobSpec {
        self.spec(payload, format!("site:{}", site.id), &site.organization_id).on_server(&site.server_id)
    }

    fn spec(self, payload: impl serde::Serialize, lock: String, organization_id: &str) -> JobSpec {
        let spec = JobSpec::new(self.name, payload).resource(lock).organization(organization_id);
        if self.attempts > 1 { spec.idempotent(self.attempts) } else { spec }
    }
}

/// What every handler needs.
#[derive(Debug, Clone)]
pub struct Engine {
    pub store: Arc<dyn Store>,
    pub secrets: SecretsKey,
    pub ssh: slipway_remote::SshTimeouts,
    /// Longest silence from a remote command before it is stopped.
    pub command_idle: Duration,
    /// The ACME server certificates are issued by.
    pub acme: items::acme::AcmeSettings,
    /// How often every active certificate is checked and due renewals are queued.
    pub certificate_check_interval: Duration,
    /// How often cron jobs, queue workers and daemons are read and their failures reported.
    pub process_check_interval: Duration,
    /// SSH connections kept open between jobs, one per server.
    pub connections: Arc<session::ConnectionPool>,
    /// How events leave Slipway (webhooks, Slack, Discord, email).
    pub notify: notify::NotifySettings,
    /// Wakes this process's job worker, so that a job queued here starts at once rather than at
    /// the worker's next poll.
    pub jobs_enqueued: Arc<tokio::sync::Notify>,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, secrets: SecretsKey) -> Self {
        Engine {
            store,
            secrets,
            ssh: slipway_remote::SshTimeouts::default(),
            command_idle: Duration::from_secs(300),
            acme: items::acme::AcmeSettings::default(),
            certificate_check_interval: items::certificates::DEFAULT_CHECK_INTERVAL,
            process_check_interval: items::watch::DEFAULT_CHECK_INTERVAL,
            connections: Arc::default(),
            notify: notify::NotifySettings::default(),
            jobs_enqueued: Arc::default(),
        }
    }

    /// Tells this process's job worker that a job was queued.
    pub fn wake_worker(&self) {
        self.jobs_enqueued.notify_one();
    }

    /// Every job kind Slipway knows, for the worker.
    pub fn registry(&self) -> Registry {
        let registry = Registry::new()
            .register(SERVER_VERIFY.name, VerifyServer(self.clone()))
            .register(SERVER_PROVISION.name, provision::ProvisionServer(self.clone()))
            .register(SERVER_RESTART.name, restart::RestartServer(self.clone()))
            .register(SITE_APPLY.name, sites::ApplySite(self.clone()))
            .register(SITE_REMOVE.name, sites::RemoveSite(self.clone()))
            .register(SITE_DEPLOY.name, deploy::DeploySite(self.clone()))
            .register(SITE_ENV_PULL.name, sites::PullEnv(self.clone()))
            .register(backups::BACKUP_DATABASE.name, backups::BackUpDatabase(self.clone()))
            .register(backups::BACKUP_APPLICATION.name, backups::BackUpDatabase(self.clone()))
            .register(backup_restore::BACKUP_RESTORE.name, backup_restore::RestoreBackup(self.clone()))
            .register(backup_restore::BACKUP_VERIFY.name, backup_restore::VerifyBackup(self.clone()))
            .register(backup_schedules::BACKUP_SCHEDULED.name, backup_schedules::ScheduledBackup(self.clone()))
            .register(items::supervised::PROGRAM_RESTART.name, items::supervised::RestartProgramJob(self.clone()))
            .register(
                items::certificates::CERTIFICATE_ACTIVATE.name,
                items::certificates::ActivateCertificate(self.clone()),
            )
            .register(items::certificates::WATCH_JOB, items::certificates::WatchCertificates(self.clone()))
            .register(items::watch::WATCH_JOB, items::watch::WatchItems(self.clone()))
            .register(items::acme::CERTIFICATE_ISSUE.name, items::acme::IssueCertificate(self.clone()))
            .register(items::acme::CERTIFICATE_REVOKE.name, items::acme::RevokeCertificate(self.clone()))
            .register(items::databases::DATABASE_IMPORT.name, items::databases::ImportDatabases(self.clone()))
            .register(notify::deliver::DISPATCH.name, notify::deliver::Dispatch(self.clone()))
            .register(notify::deliver::DELIVER.name, notify::deliver::Deliver(self.clone()))
            .register(notify::tokens::CHECK_JOB, notify::tokens::CheckTokens(self.clone()));
        items::KINDS.iter().fold(registry, |registry, &kind| {
            registry.register(kind.sync_job().name, items::SyncItems { engine: self.clone(), kind })
        })
    }
}
