//! The work Slipway does on servers, as job handlers: each reaches a server through
//! `slipway-remote`, reports in the job's log, and records the true outcome on the server.
//! The API only enqueues; `slipway serve` runs these in its job worker.

pub mod deploy;
pub mod items;
pub mod keys;
pub mod provision;
pub mod restart;
pub mod script;
pub mod session;
pub mod sites;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use slipway_core::SecretsKey;
use slipway_jobs::Registry;
use slipway_store::Store;

pub use deploy::SITE_DEPLOY;
pub use provision::SERVER_PROVISION;
pub use restart::SERVER_RESTART;
pub use sites::{SITE_APPLY, SITE_ENV_PULL, SITE_REMOVE};
pub use verify::{SERVER_VERIFY, VerifyServer};

/// What every handler needs.
#[derive(Debug, Clone)]
pub struct Engine {
    pub store: Arc<dyn Store>,
    pub secrets: SecretsKey,
    pub ssh: slipway_remote::SshTimeouts,
    /// Longest silence from a remote command before it is stopped.
    pub command_idle: Duration,
    /// SSH connections kept open between jobs, one per server.
    pub connections: Arc<session::ConnectionPool>,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, secrets: SecretsKey) -> Self {
        Engine {
            store,
            secrets,
            ssh: slipway_remote::SshTimeouts::default(),
            command_idle: Duration::from_secs(300),
            connections: Arc::default(),
        }
    }

    /// Every job kind Slipway knows, for the worker.
    pub fn registry(&self) -> Registry {
        let registry = Registry::new()
            .register(SERVER_VERIFY, VerifyServer(self.clone()))
            .register(SERVER_PROVISION, provision::ProvisionServer(self.clone()))
            .register(SERVER_RESTART, restart::RestartServer(self.clone()))
            .register(SITE_APPLY, sites::ApplySite(self.clone()))
            .register(SITE_REMOVE, sites::RemoveSite(self.clone()))
            .register(SITE_DEPLOY, deploy::DeploySite(self.clone()))
            .register(SITE_ENV_PULL, sites::PullEnv(self.clone()));
        items::KINDS.iter().fold(registry, |registry, &kind| {
            registry.register(kind.sync_job(), items::SyncItems { engine: self.clone(), kind })
        })
    }
}
