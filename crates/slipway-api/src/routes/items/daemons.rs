//! Daemons: long-running commands a server keeps running under supervisor.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::FieldErrors;
use slipway_engine::items::supervised::{MAX_COMMAND, MAX_PROCESSES, MAX_SECONDS, ProgramSpec, STOP_SIGNALS};
use slipway_engine::items::{DEPLOY_USER, Daemons, ItemKind};
use slipway_store::{Server, ServerItem};
use utoipa::{IntoParams, ToSchema};

use super::{ItemRoutes, OnItem, ProgramLog};
use crate::audit::AuditSlot;
use crate::auth::Authorized;
use crate::envelope::{Accepted, Data};
use crate::error::ApiError;
use crate::extract::Query;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct DaemonResource {
    pub id: String,
    pub server_id: String,
    pub name: String,
    /// Run with `sh -c` in `directory` as `user`, exactly as written.
    #[schema(example = "node /home/slipway/ws/server.js")]
    pub command: String,
    pub directory: String,
    pub user: String,
    pub processes: u32,
    /// How long a process must stay up to count as started.
    pub start_seconds: u32,
    /// How long a stopping process gets before it is killed.
    pub stop_wait_seconds: u32,
    pub stop_signal: String,
    /// `installing` (being written, or starting), `running`, `stopped`, `failed` (with
    /// supervisor's reason, e.g. `FATAL Exited too quickly`), `removing`, `removed`, or `unknown`
    /// when the server could not be asked. Read from supervisor when the daemon is read.
    pub status: String,
    pub status_reason: Option<String>,
    pub operation_id: Option<String>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDaemon {
    /// A label; defaults to the command.
    #[schema(example = "websockets", max_length = 255)]
    pub name: Option<String>,
    /// One line, run with `sh -c` (its own quoting is kept).
    #[schema(example = "node server.js --port 6001", min_length = 1, max_length = 4096)]
    pub command: String,
    /// Absolute path it runs in; default the deploy user's home (`/home/slipway`).
    #[schema(example = "/home/slipway/example.com/current")]
    pub directory: Option<String>,
    /// The Unix user it runs as; default `slipway`. It must exist on the server; `root` only
    /// when asked for here.
    #[schema(example = "slipway")]
    pub user: Option<String>,
    /// Default 1.
    #[schema(minimum = 1, maximum = 32)]
    pub processes: Option<u32>,
    /// Default 1.
    #[schema(minimum = 0, maximum = 3600)]
    pub start_seconds: Option<u32>,
    /// Default 10.
    #[schema(minimum = 1, maximum = 3600)]
    pub stop_wait_seconds: Option<u32>,
    /// `TERM` (default), `INT`, `QUIT`, `HUP`, `KILL`, `USR1` or `USR2`.
    pub stop_signal: Option<StopSignal>,
}

/// A signal a daemon may be stopped with.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum StopSignal {
    Term,
    Int,
    Quit,
    Hup,
    Kill,
    Usr1,
    Usr2,
}

impl StopSignal {
    pub fn as_str(self) -> &'static str {
        match self {
            StopSignal::Term => "TERM",
            StopSignal::Int => "INT",
            StopSignal::Quit => "QUIT",
            StopSignal::Hup => "HUP",
            StopSignal::Kill => "KILL",
            StopSignal::Usr1 => "USR1",
            StopSignal::Usr2 => "USR2",
        }
    }
}

#[derive(Debug)]
pub struct DaemonRoutes;

impl ItemRoutes for DaemonRoutes {
    const KIND: &'static dyn ItemKind = &Daemons;
    const PARAM: &'static str = "daemon";
    const AUDIT: &'static str = "daemon";
    const REMOVING: &'static str = "Stopping and removing the daemon.";
    type Spec = ProgramSpec;
    type Create = CreateDaemon;
    type Resource = DaemonResource;

    fn validate(_: &Server, body: CreateDaemon, _: &[ServerItem]) -> Result<(String, ProgramSpec), ApiError> {
        let mut errors = FieldErrors::new();
        let name = super::label_or_command(&mut errors, body.name, &body.command);
        let spec = ProgramSpec {
            command: body.command,
            directory: body.directory.unwrap_or_else(|| format!("/home/{DEPLOY_USER}")),
            user: body.user.unwrap_or_else(|| DEPLOY_USER.into()),
            processes: body.processes.unwrap_or(1),
            start_seconds: body.start_seconds.unwrap_or(1),
            stop_wait_seconds: body.stop_wait_seconds.unwrap_or(10),
            stop_signal: body.stop_signal.map_or("TERM", StopSignal::as_str).into(),
            site_root: None,
        };
        for (field, why) in spec.problems() {
            errors.add(field, why);
        }
        errors.into_result()?;
        Ok((name, spec))
    }

    /// The user must exist on the server (see [`super::check_user`]).
    async fn check_on_server(state: &AppState, server: &Server, spec: &mut ProgramSpec) -> Result<(), ApiError> {
        super::check_user(state, server, &spec.user).await
    }

    fn resource(item: &ServerItem, spec: ProgramSpec, operation_id: Option<String>) -> DaemonResource {
        DaemonResource {
            id: item.id.clone(),
            server_id: item.server_id.clone(),
            name: item.name.clone(),
            command: spec.command,
            directory: spec.directory,
            user: spec.user,
            processes: spec.processes,
            start_seconds: spec.start_seconds,
            stop_wait_seconds: spec.stop_wait_seconds,
            stop_signal: spec.stop_signal,
            status: item.shown_status().into(),
            status_reason: item.status_reason.clone(),
            operation_id,
            created_at: item.created_at,
            updated_at: item.updated_at,
        }
    }
}

// The limits the schema states are the ones the engine checks.
const _: () = assert!(MAX_PROCESSES == 32 && MAX_SECONDS == 3600 && MAX_COMMAND == 4096 && STOP_SIGNALS.len() == 7);

crate::server_item_routes! {
    routes: DaemonRoutes, input: CreateDaemon, resource: DaemonResource, tag: "daemons",
    collection: "/api/v1/servers/{server}/daemons", item: "/api/v1/servers/{server}/daemons/{daemon}",
    param: "daemon", read: "daemon:read", create: "daemon:create", update: "daemon:update", delete: "daemon:delete",
    list: list_daemons = "The server's daemons, each with its live status read from supervisor.",
    create: create_daemon = "Run a command for good: Slipway writes a supervisor program that starts it, restarts it when\nit exits and keeps its output. Answers 201 with the daemon `installing`; follow\n`operation_id`, then read the daemon for its live status.",
    show: get_daemon = "One daemon, with its live status read from supervisor.",
    update: update_daemon = "Change a daemon: the same fields as creating it, all of them. Its program is rewritten and
supervisor restarts it. Answers 200 with the daemon `installing`; follow `operation_id`.",
    delete: delete_daemon = "Stop a daemon and remove its program. Answers 202 with the daemon `removing`.",
}

/// Restart every process of a daemon (as an operation). 409 while it is not installed.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/daemons/{daemon}/restart", tag = "daemons",
    params(("server" = String, Path), ("daemon" = String, Path)),
    security(("token" = ["daemon:update"])),
    responses((status = 202, body = crate::envelope::Accepted<DaemonResource>))
)]
pub async fn restart_daemon(
    State(state): State<AppState>,
    v: Authorized<OnItem<DaemonRoutes>>,
    audit: AuditSlot,
) -> Result<Accepted<DaemonResource>, ApiError> {
    super::restart::<DaemonRoutes>(&state, &v.server, &v.item, &audit).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// How many lines (per process) from the end; 1 to 1,000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub lines: Option<u32>,
}

/// The last lines the daemon's processes wrote (stdout and stderr), read from the server.
/// 503 when the server cannot be reached.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/daemons/{daemon}/log", tag = "daemons",
    params(("server" = String, Path), ("daemon" = String, Path), LogParams),
    security(("token" = ["daemon:read"])),
    responses(
        (status = 200, body = crate::envelope::Data<ProgramLog>),
        (status = 503, description = "The server could not be reached or read.", body = crate::error::ErrorBody),
    )
)]
pub async fn daemon_log(
    State(state): State<AppState>,
    v: Authorized<OnItem<DaemonRoutes>>,
    Query(params): Query<LogParams>,
) -> Result<Data<ProgramLog>, ApiError> {
    super::log::<DaemonRoutes>(&state, &v.server, &v.item, params.lines.unwrap_or(100)).await
}

/// Registers the daemon routes beyond the four every item kind has.
pub fn extra_router(
    router: utoipa_axum::router::OpenApiRouter<AppState>,
) -> utoipa_axum::router::OpenApiRouter<AppState> {
    router.routes(utoipa_axum::routes!(restart_daemon)).routes(utoipa_axum::routes!(daemon_log))
}
