//! `server.verify`: connect to a server with the organisation's key, pin its host key at first
//! contact (or refuse a changed one), and find its operating system. Provisioning starts with
//! the same steps.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use slipway_core::server_input::{Host, UnixUser};
use slipway_jobs::{JobContext, JobError, JobHandler};
use slipway_remote::{RemoteError, SshConnection, SshTarget, Transport};
use slipway_store::Server;

use crate::Engine;

pub const SERVER_VERIFY: &str = "server.verify";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerJob {
    pub server_id: String,
}

#[derive(Debug)]
pub struct VerifyServer(pub Engine);

/// `ID VERSION_ID` from /etc/os-release, e.g. `debian 12`.
pub fn parse_os_release(text: &str) -> Option<String> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_string())
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
    };
    Some(format!("{} {}", field("ID")?, field("VERSION_ID")?))
}

impl VerifyServer {
    /// Connects and records what first contact learns; marks the server unreachable (with the
    /// reason) when it cannot be reached.
    pub async fn connect(&self, ctx: &JobContext, server: &Server) -> Result<SshConnection, JobError> {
        let engine = &self.0;
        let keypair =
            crate::keys::organization_keypair(engine.store.as_ref(), &engine.secrets, &server.organization_id)
                .await
                .map_err(|e| JobError::failed(e.to_string()))?;
        let target = SshTarget {
            host: Host::parse(&server.ip_address).map_err(|e| JobError::failed(format!("invalid address: {e}")))?,
            port: u16::try_from(server.ssh_port).map_err(|_| JobError::failed("invalid SSH port"))?,
            user: UnixUser::parse(&server.ssh_user).map_err(|e| JobError::failed(format!("invalid SSH user: {e}")))?,
            pinned_host_key: server.host_key.clone(),
        };
        ctx.log("info", format!("connecting to {}@{}:{}", server.ssh_user, server.ip_address, server.ssh_port));
        match SshConnection::connect(&target, &keypair, &engine.ssh).await {
            Ok(connection) => {
                if server.host_key.is_none() {
                    engine
                        .store
                        .record_server_contact(&server.id, Some(&connection.host_key), None)
                        .await
                        .map_err(store_error)?;
                    let fingerprint = slipway_remote::fingerprint(&connection.host_key).unwrap_or_default();
                    ctx.log("info", format!("first contact: pinned host key {fingerprint}"));
                }
                Ok(connection)
            }
            Err(e) => {
                let reason = e.to_string();
                ctx.log("stderr", reason.clone());
                engine.store.set_server_status(&server.id, "unreachable", Some(&reason)).await.map_err(store_error)?;
                Err(match e {
                    RemoteError::Connect { .. } | RemoteError::Disconnected(_) => JobError::Retryable { reason },
                    _ => JobError::failed(reason),
                })
            }
        }
    }
}

fn store_error(e: slipway_store::StoreError) -> JobError {
    JobError::Retryable { reason: format!("database error: {e}") }
}

#[async_trait]
impl JobHandler for VerifyServer {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let job: ServerJob = ctx.payload()?;
        let store = &self.0.store;
        let server = store
            .server(&job.server_id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| JobError::failed("the server was deleted"))?;
        let connection = self.connect(ctx, &server).await?;
        let mut release = String::new();
        let exit = connection
            .run(
                "head -c 65536 /etc/os-release\n",
                &mut |_, line| {
                    // A hostile server could answer with anything; keep at most 64 KiB.
                    if release.len() < 64 * 1024 {
                        release.push_str(line);
                        release.push('\n');
                    }
                },
                ctx_cancel(ctx),
                self.0.command_idle,
            )
            .await
            .map_err(|e| JobError::Retryable { reason: e.to_string() })?;
        connection.close().await;
        let os = exit.success().then(|| parse_os_release(&release)).flatten();
        ctx.log("info", format!("operating system: {}", os.as_deref().unwrap_or("unknown")));
        store.record_server_contact(&server.id, None, os.as_deref()).await.map_err(store_error)?;
        // Reachable again: back to what it was before it became unreachable.
        let status = if server.provisioned_at.is_some() {
            "active"
        } else if server.status == "unreachable" {
            "pending"
        } else {
            &server.status
        };
        store.set_server_status(&server.id, status, None).await.map_err(store_error)?;
        Ok(())
    }
}

/// A receiver that follows the job's cancellation.
fn ctx_cancel(ctx: &JobContext) -> tokio::sync::watch::Receiver<bool> {
    ctx.cancel_receiver()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release() {
        let debian =
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";
        assert_eq!(parse_os_release(debian).as_deref(), Some("debian 12"));
        let ubuntu = "ID=ubuntu\nVERSION_ID=\"24.04\"\n";
        assert_eq!(parse_os_release(ubuntu).as_deref(), Some("ubuntu 24.04"));
        assert_eq!(parse_os_release("ID=arch\n"), None);
        assert_eq!(parse_os_release("ID=\"x; rm -rf /\"\nVERSION_ID=1\n"), None, "odd values are not believed");
    }
}
