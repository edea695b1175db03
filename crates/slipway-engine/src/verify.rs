//! `server.verify`: connect to a server with the organisation's key, pin its host key at first
//! contact (or refuse a changed one), and find its operating system. Provisioning starts with
//! the same steps.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use slipway_core::ServerStatus;
use slipway_jobs::{JobContext, JobError, JobHandler};
use slipway_remote::{SshConnection, Transport};

use crate::session::{connect_new, load_server, store_error};
use crate::{Engine, JobKind};

/// Not retried: the user asks again (its answer is the point).
pub const SERVER_VERIFY: JobKind = JobKind { name: "server.verify", attempts: 1 };

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

/// Operating systems provisioning supports, as `parse_os_release` names them.
pub const SUPPORTED_OS: [&str; 4] = ["debian 12", "debian 13", "ubuntu 22.04", "ubuntu 24.04"];

/// Reads the server's operating system (`None` when it does not say in a way we believe).
pub async fn detect_os(
    engine: &Engine,
    ctx: &JobContext,
    connection: &SshConnection,
) -> Result<Option<String>, JobError> {
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
            ctx.cancel_receiver(),
            engine.command_idle,
        )
        .await
        .map_err(|e| JobError::Retryable { reason: e.to_string() })?;
    let os = exit.success().then(|| parse_os_release(&release)).flatten();
    ctx.log("info", format!("operating system: {}", os.as_deref().unwrap_or("unknown")));
    Ok(os)
}

#[async_trait]
impl JobHandler for VerifyServer {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let job: ServerJob = ctx.payload()?;
        let store = &self.0.store;
        let server = load_server(&self.0, &job.server_id).await?;
        let connection = connect_new(&self.0, ctx, &server).await?;
        let os = detect_os(&self.0, ctx, &connection).await?;
        connection.close().await;
        store.record_server_contact(&server.id, None, os.as_deref()).await.map_err(store_error)?;
        // Reachable: an unreachable server is back to what it was (connecting recorded that).
        // A failed provisioning stays failed, with its reason, until provisioning succeeds.
        let status = match server.status {
            ServerStatus::Unreachable => crate::session::reachable_again(&server),
            status => status,
        };
        // Provisioning would fail on a PHP version the system does not offer: say so now.
        let unavailable = (server.provisioned_at.is_none())
            .then_some(server.php_version.as_deref())
            .flatten()
            .zip(os.as_deref())
            .and_then(|(php, os)| slipway_core::server_input::php_unavailable(php, os));
        if let Some(why) = unavailable {
            let reason = format!("{why}; change the server's php_version, then verify again");
            ctx.log("error", format!("==> {reason}"));
            store.set_server_status(&server.id, status, Some(&reason)).await.map_err(store_error)?;
            return Err(JobError::failed(reason));
        }
        if status != ServerStatus::Failed {
            store.set_server_status(&server.id, status, None).await.map_err(store_error)?;
        }
        Ok(())
    }
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
