//! Reading from a server while a request waits (a program's live status, a log tail), as opposed
//! to jobs, which change servers in the background. A read is bounded in time and output, uses
//! the kept connection when there is one, and fails with a reason in words.

use std::time::Duration;

use slipway_remote::{RemoteError, Stream, Transport};
use slipway_store::Server;

use crate::Engine;
use crate::script::Script;
use crate::session::{FailureTracker, Quiet, connect};

/// Most stdout lines a read keeps (a log tail asks for at most 1,000).
const MAX_LINES: usize = 5_000;

/// Runs `script` as root and returns its stdout lines, or why it could not. A server that was
/// never reached (no pinned host key) is not contacted: a read does not do first contact.
pub async fn read(engine: &Engine, server: &Server, script: &Script, limit: Duration) -> Result<Vec<String>, String> {
    if server.host_key.is_none() || server.provisioned_at.is_none() {
        return Err("the server is not provisioned yet".into());
    }
    let work = async {
        let connection = connect(engine, &Quiet, server).await.map_err(|e| e.to_string())?;
        let mut lines = Vec::new();
        let mut failure = FailureTracker::default();
        let (_never, no_cancel) = tokio::sync::watch::channel(false);
        let exit = connection
            .run(
                &script.text(),
                &mut |stream, line| {
                    failure.observe(stream, line);
                    if stream == Stream::Stdout && lines.len() < MAX_LINES {
                        lines.push(line.to_string());
                    }
                },
                no_cancel,
                limit,
            )
            .await
            .map_err(|e: RemoteError| format!("{}: {e}", script.name))?;
        if exit.success() { Ok(lines) } else { Err(failure.reason()) }
    };
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or_else(|_| Err(format!("the server did not answer within {} s", limit.as_secs())))
}
