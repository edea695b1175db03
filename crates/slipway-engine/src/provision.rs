//! `server.provision`: make a fresh Debian or Ubuntu server ready for sites (see
//! `scripts/provision.sh` for what is installed), then apply its SSH keys and firewall rules.
//! Safe to run again on a provisioned server; the status moves `provisioning → active`, or
//! `failed` with the reason.

use async_trait::async_trait;
use slipway_core::ServerStatus;
use slipway_core::time::now;
use slipway_jobs::{Ending, JobContext, JobError, JobHandler};
use slipway_store::Server;

use crate::items::{self, DEPLOY_USER};
use crate::notify::{EventSpec, Subject};
use crate::script::Script;
use crate::session::{abandoned_reason, connect, load_server, run_script, store_error};
use crate::verify::{SUPPORTED_OS, ServerJob, detect_os};
use crate::{Engine, JobKind};

/// Retried after a crash or a dropped connection: every step is safe to run twice.
pub const SERVER_PROVISION: JobKind = JobKind { name: "server.provision", attempts: 3 };

#[derive(Debug)]
pub struct ProvisionServer(pub Engine);

/// The provisioning script for a server's settings (checked again here: they reach a package
/// list).
pub fn provision_script(server: &Server) -> Result<Script, JobError> {
    let php_ok = server.php_version.as_deref().is_none_or(|v| {
        v.len() <= 5
            && v.split_once('.').is_some_and(|(a, b)| {
                !a.is_empty() && !b.is_empty() && (a.to_owned() + b).bytes().all(|c| c.is_ascii_digit())
            })
    });
    if !php_ok || !["mysql", "mariadb", "postgres", "none"].contains(&server.database_type.as_str()) {
        return Err(JobError::failed("the server's php_version or database_type is invalid"));
    }
    Ok(Script::new("provisioning", include_str!("../scripts/provision.sh"))
        .var("DEPLOY_USER", DEPLOY_USER)
        .var("PHP_VERSION", server.php_version.as_deref().unwrap_or(""))
        .var("NODE", if server.node { "yes" } else { "no" })
        .var("DATABASE", &server.database_type))
}

impl ProvisionServer {
    async fn provision(&self, ctx: &JobContext, server: &Server) -> Result<(), JobError> {
        let engine = &self.0;
        let connection = connect(engine, ctx, server).await?;
        async {
            let os = detect_os(engine, ctx, &connection).await?;
            engine.store.record_server_contact(&server.id, None, os.as_deref()).await.map_err(store_error)?;
            match os.as_deref() {
                Some(os) if SUPPORTED_OS.contains(&os) => {}
                other => {
                    return Err(JobError::failed(format!(
                        "unsupported operating system: {}; Slipway provisions {}",
                        other.unwrap_or("unknown"),
                        SUPPORTED_OS.join(", ")
                    )));
                }
            }
            run_script(engine, ctx, &connection, &provision_script(server)?).await?;
            for &kind in items::KINDS {
                ctx.log("info", kind.progress());
                items::apply(engine, ctx, &connection, server, kind).await?;
            }
            Ok(())
        }
        .await
    }
}

async fn provision_failed(engine: &Engine, server: &slipway_store::Server, reason: &str) {
    let summary = format!("Provisioning {} failed: {reason}", server.name);
    let event = EventSpec::new("server.provision_failed", &server.organization_id, Subject::server(server), summary)
        .data(serde_json::json!({ "reason": reason }));
    crate::notify::emit(engine, event).await;
}

#[async_trait]
impl JobHandler for ProvisionServer {
    async fn abandoned(&self, job: &slipway_store::Job) {
        let Ok(payload) = serde_json::from_str::<ServerJob>(&job.payload) else { return };
        if let Ok(Some(server)) = self.0.store.server(&payload.server_id).await
            && server.status == ServerStatus::Provisioning
        {
            let reason = format!("provisioning was {}; provision again", abandoned_reason(job));
            if let Err(e) = self.0.store.set_server_status(&server.id, ServerStatus::Failed, Some(&reason)).await {
                tracing::warn!(server.id = %server.id, error = %e, "could not record the interrupted provisioning");
            }
            provision_failed(&self.0, &server, &reason).await;
        }
    }

    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let job: ServerJob = ctx.payload()?;
        let store = &self.0.store;
        let server = load_server(&self.0, &job.server_id).await?;
        store.set_server_status(&server.id, ServerStatus::Provisioning, None).await.map_err(store_error)?;
        match self.provision(ctx, &server).await {
            Ok(()) => {
                store.mark_provisioned(&server.id, now()).await.map_err(store_error)?;
                items::resync_pending(&self.0, &server).await?;
                ctx.log("info", "the server is active");
                let summary = format!("{} is provisioned and active", server.name);
                let event =
                    EventSpec::new("server.provisioned", &server.organization_id, Subject::server(&server), summary);
                crate::notify::emit(&self.0, event).await;
                Ok(())
            }
            Err(e) => {
                let reason = match ctx.ending(&e) {
                    // It runs again when Slipway starts: the server is still being provisioned.
                    Ending::Resumes => return Err(e),
                    // The worker that reaped the job records it, and may be running it again.
                    Ending::NotOurs => return Err(e),
                    Ending::Stopped(how) => format!("provisioning was {how}"),
                    Ending::Failed(reason) => reason,
                };
                // A server that could not be reached keeps saying so; anything else failed.
                let current = store.server(&server.id).await.map_err(store_error)?;
                if current.is_some_and(|s| s.status == ServerStatus::Provisioning) {
                    store
                        .set_server_status(&server.id, ServerStatus::Failed, Some(&reason))
                        .await
                        .map_err(store_error)?;
                    provision_failed(&self.0, &server, &reason).await;
                }
                Err(e)
            }
        }
    }
}
