//! Daemons: long-running commands of the server's own (a websocket server, Horizon), each a
//! supervisor program Slipway writes, keeps running and reports on (see [`super::supervised`]).

use slipway_store::{Server, ServerItem};

use super::supervised::{self, ProgramSpec};
use super::{ItemKind, specs};
use crate::JobKind;
use crate::script::Script;

#[derive(Debug)]
pub struct Daemons;

/// Daemons' supervisor programs are `slipway-daemon-<id>`.
pub const DAEMON_PREFIX: &str = "slipway-daemon";

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

    fn sync_script(&self, _: &Server, items: &[&ServerItem]) -> Result<Script, String> {
        supervised::sync_script(DAEMON_PREFIX, &specs::<ProgramSpec>(items)?)
    }

    fn program_prefix(&self) -> Option<&'static str> {
        Some(DAEMON_PREFIX)
    }
}
