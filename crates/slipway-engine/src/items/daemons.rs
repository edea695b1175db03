//! Daemons: long-running commands of the server's own (a websocket server, Horizon), each a
//! supervisor program Slipway writes, keeps running and reports on (see [`super::supervised`]).

use async_trait::async_trait;
use slipway_store::{Server, ServerItem};

use super::supervised::{self, ProgramSpec};
use super::{ItemKind, specs};
use crate::script::Script;
use crate::{Engine, JobKind};

#[derive(Debug)]
pub struct Daemons;

/// Daemons' supervisor programs are `slipway-daemon-<id>`.
pub const DAEMON_PREFIX: &str = "slipway-daemon";

#[async_trait]
impl ItemKind for Daemons {
    fn name(&self) -> &'static str {
        "daemon"
    }

    fn progress(&self) -> &'static str {
        "==> installing daemons"
    }

    fn sync_job(&self) -> JobKind {
        JobKind { name: "server.sync-daemons", attempts: 3 }
    }

    fn sync_script(&self, _: &Engine, _: &Server, items: &[&ServerItem]) -> Result<Script, String> {
        supervised::sync_script(DAEMON_PREFIX, &specs::<ProgramSpec>(items)?)
    }

    fn program_prefix(&self) -> Option<&'static str> {
        Some(DAEMON_PREFIX)
    }

    async fn live_status(&self, engine: &Engine, server: &Server, items: &mut [ServerItem]) {
        supervised::live_status(engine, server, self, items).await;
    }
}
