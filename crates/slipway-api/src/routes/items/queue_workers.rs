//! A site's queue workers: supervisor programs running as the site's user in its live release.
//! They are server items (their programs are the server's) that name their site; the routes
//! live under the site, and a token limited to the site may manage them.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::FieldErrors;
use slipway_core::site_input::ProjectType;
use slipway_engine::items::queue_workers::{LaravelWorker, name_problem};
use slipway_engine::items::supervised::{ProgramSpec, command_problem};
use slipway_engine::items::{ItemKind, QueueWorkerSpec, QueueWorkers};
use slipway_engine::sites::{SitePaths, site_user};
use slipway_store::{Server, ServerItem, Site};
use utoipa::{IntoParams, ToSchema};

use super::{ItemRoutes, MAX_ITEMS, OnSiteItem, ProgramLog};
use crate::audit::AuditSlot;
use crate::auth::Authorized;
use crate::envelope::{Accepted, Data};
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::routes::sites::VisibleSite;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueWorkerResource {
    pub id: String,
    pub server_id: String,
    pub site_id: String,
    /// Laravel's queue connection (`null` for other sites and for the app's default).
    pub connection: Option<String>,
    /// Laravel queues, comma-separated, highest priority first.
    pub queue: Option<String>,
    pub processes: u32,
    pub timeout: Option<u32>,
    pub sleep: Option<u32>,
    pub tries: Option<u32>,
    pub max_jobs: Option<u32>,
    pub max_time: Option<u32>,
    pub memory: Option<u32>,
    /// What runs, in the site's live release (`current`), as the site's user.
    pub command: String,
    /// `installing` (being written, or starting), `running`, `stopped`, `failed` (with
    /// supervisor's reason), `removing`, `removed`, or `unknown` when the server could not be
    /// asked. Read from supervisor when the worker is read.
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
pub struct CreateQueueWorker {
    /// Laravel: the queue connection (default: the app's default connection).
    #[schema(example = "redis", max_length = 255)]
    pub connection: Option<String>,
    /// Laravel: queues to work, comma-separated, highest priority first (default `default`).
    #[schema(example = "high,default", max_length = 255)]
    pub queue: Option<String>,
    /// Processes (1–32, default 1).
    #[schema(minimum = 1, maximum = 32)]
    pub processes: Option<u32>,
    /// Laravel: seconds a job may run (0–86400, default 60). Stopping waits this long plus 10 s.
    #[schema(minimum = 0, maximum = 86400)]
    pub timeout: Option<u32>,
    /// Laravel: seconds to sleep when no job is waiting (0–3600, default 3).
    #[schema(minimum = 0, maximum = 3600)]
    pub sleep: Option<u32>,
    /// Laravel: attempts per job (0–1000, default 1; 0 is unlimited).
    #[schema(minimum = 0, maximum = 1000)]
    pub tries: Option<u32>,
    /// Laravel: jobs before the worker restarts (0 is unlimited, the default).
    #[schema(minimum = 0, maximum = 1000000)]
    pub max_jobs: Option<u32>,
    /// Laravel: seconds before the worker restarts (0 is unlimited, the default).
    #[schema(minimum = 0, maximum = 604800)]
    pub max_time: Option<u32>,
    /// Laravel: megabytes of memory before the worker restarts (16–65536, default 128).
    #[schema(minimum = 16, maximum = 65536)]
    pub memory: Option<u32>,
    /// Other sites (required there): the command, one line, run with `sh -c` in the live release.
    /// On a Laravel site it replaces `php artisan queue:work …`.
    #[schema(example = "node worker.js", max_length = 4096)]
    pub command: Option<String>,
}

#[derive(Debug)]
pub struct QueueWorkerRoutes;

impl ItemRoutes for QueueWorkerRoutes {
    const KIND: &'static dyn ItemKind = &QueueWorkers;
    const PARAM: &'static str = "queue";
    const AUDIT: &'static str = "queue-worker";
    const REMOVING: &'static str = "Stopping and removing the worker.";
    type Spec = QueueWorkerSpec;
    type Create = CreateQueueWorker;
    type Resource = QueueWorkerResource;

    fn resource(item: &ServerItem, spec: QueueWorkerSpec, operation_id: Option<String>) -> QueueWorkerResource {
        let laravel = spec.laravel.as_ref();
        let pick = |f: fn(&LaravelWorker) -> u32| laravel.map(f);
        QueueWorkerResource {
            id: item.id.clone(),
            server_id: item.server_id.clone(),
            site_id: spec.site_id.clone(),
            connection: laravel.map(|l| l.connection.clone()).filter(|c| !c.is_empty()),
            queue: laravel.map(|l| l.queue.clone()),
            processes: spec.program.processes,
            timeout: pick(|l| l.timeout),
            sleep: pick(|l| l.sleep),
            tries: pick(|l| l.tries),
            max_jobs: pick(|l| l.max_jobs),
            max_time: pick(|l| l.max_time),
            memory: pick(|l| l.memory),
            command: spec.program.command,
            status: item.shown_status().into(),
            status_reason: item.status_reason.clone(),
            operation_id,
            created_at: item.created_at,
            updated_at: item.updated_at,
        }
    }
}

/// The worker's name and spec from the request, for this site, or field errors.
fn worker_spec(server: &Server, site: &Site, body: CreateQueueWorker) -> Result<(String, QueueWorkerSpec), ApiError> {
    let mut errors = FieldErrors::new();
    let mut range = |field: &str, value: Option<u32>, default: u32, low: u32, high: u32| {
        let value = value.unwrap_or(default);
        if !(low..=high).contains(&value) {
            errors.add(field, format!("The {field} must be between {low} and {high}."));
        }
        value
    };
    let processes = range("processes", body.processes, 1, 1, 32);
    let laravel = LaravelWorker {
        connection: body.connection.clone().unwrap_or_default(),
        queue: body.queue.clone().unwrap_or_else(|| "default".into()),
        timeout: range("timeout", body.timeout, 60, 0, 86_400),
        sleep: range("sleep", body.sleep, 3, 0, 3600),
        tries: range("tries", body.tries, 1, 0, 1000),
        max_jobs: range("max_jobs", body.max_jobs, 0, 0, 1_000_000),
        max_time: range("max_time", body.max_time, 0, 0, 604_800),
        memory: range("memory", body.memory, 128, 16, 65_536),
    };
    if let Some(connection) = &body.connection
        && let Some(why) = name_problem("connection", connection, false)
    {
        errors.add("connection", why);
    }
    if let Some(why) = name_problem("queue", &laravel.queue, true) {
        errors.add("queue", why);
    }
    let is_laravel_site = site.project_type == ProjectType::Laravel;
    let laravel_only = [
        ("connection", body.connection.is_some()),
        ("queue", body.queue.is_some()),
        ("timeout", body.timeout.is_some()),
        ("sleep", body.sleep.is_some()),
        ("tries", body.tries.is_some()),
        ("max_jobs", body.max_jobs.is_some()),
        ("max_time", body.max_time.is_some()),
        ("memory", body.memory.is_some()),
    ];
    let command = match (&body.command, is_laravel_site) {
        (Some(command), _) => {
            if let Some(why) = command_problem(command) {
                errors.add("command", why);
            }
            command.clone()
        }
        (None, true) => match server.php_version.as_deref() {
            Some(php) => laravel.command(php).unwrap_or_default(),
            None => {
                errors.add("command", "The server has no PHP; give the worker's command.");
                String::new()
            }
        },
        (None, false) => {
            errors.add("command", format!("A {} site's worker needs its command.", site.project_type));
            String::new()
        }
    };
    if !is_laravel_site || body.command.is_some() {
        for (field, given) in laravel_only {
            if given {
                errors.add(field, "Only for a Laravel site's `php artisan queue:work` (leave out command).");
            }
        }
    }
    errors.into_result()?;
    let paths = SitePaths::of(site).map_err(ApiError::internal)?;
    let user = site_user(&site.id).map_err(ApiError::internal)?;
    let program = ProgramSpec {
        command: command.clone(),
        directory: format!("{}/current", paths.root),
        user,
        processes,
        start_seconds: 1,
        // A job in progress gets its timeout to finish before the process is killed.
        stop_wait_seconds: laravel.timeout.clamp(1, 3590) + 10,
        stop_signal: "TERM".into(),
        site_root: Some(paths.root),
    };
    if let Some((field, why)) = program.problems().into_iter().next() {
        return Err(ApiError::validation(field, why));
    }
    let uses_laravel = is_laravel_site && body.command.is_none();
    let name = if uses_laravel { format!("queue {}", laravel.queue) } else { command.chars().take(255).collect() };
    let spec = QueueWorkerSpec { site_id: site.id.clone(), laravel: uses_laravel.then_some(laravel), program };
    Ok((name, spec))
}

/// Run a queue worker for the site: a supervisor program, as the site's user, in its live
/// release; deploys restart it on the new release. Laravel sites get `php artisan queue:work`
/// with the options given; other sites give the command. Answers 201 with the worker
/// `installing`; follow `operation_id`, then read the worker for its live status.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/queues", tag = "queue-workers",
    params(("server" = String, Path), ("site" = String, Path)),
    request_body = CreateQueueWorker,
    security(("token" = ["queue-worker:create"])),
    responses((status = 201, body = Data<QueueWorkerResource>))
)]
pub async fn create_queue_worker(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
    Json(body): Json<CreateQueueWorker>,
) -> Result<(StatusCode, Data<QueueWorkerResource>), ApiError> {
    let (name, spec) = worker_spec(&v.server, &v.site, body)?;
    let (_, count) = state.store.server_items(&v.server.id, QueueWorkers.name(), Some(Default::default())).await?;
    if count >= MAX_ITEMS {
        return Err(ApiError::validation("processes", format!("A server can have at most {MAX_ITEMS} workers.")));
    }
    let (item, operation) = super::insert::<QueueWorkerRoutes>(&state, &v.server, &audit, &name, &spec).await?;
    Ok((StatusCode::CREATED, Data { data: QueueWorkerRoutes::resource(&item, spec, operation) }))
}

/// Change a worker: the same fields as creating it, all of them. Its program is rewritten and
/// supervisor restarts it. Answers 200 with the worker `installing`; follow `operation_id`.
#[utoipa::path(
    put, path = "/api/v1/servers/{server}/sites/{site}/queues/{queue}", tag = "queue-workers",
    params(("server" = String, Path), ("site" = String, Path), ("queue" = String, Path)),
    request_body = CreateQueueWorker,
    security(("token" = ["queue-worker:update"])),
    responses((status = 200, body = Data<QueueWorkerResource>))
)]
pub async fn update_queue_worker(
    State(state): State<AppState>,
    v: Authorized<OnSiteItem<QueueWorkerRoutes>>,
    audit: AuditSlot,
    Json(body): Json<CreateQueueWorker>,
) -> Result<Data<QueueWorkerResource>, ApiError> {
    let (name, spec) = worker_spec(&v.server, &v.site, body)?;
    super::replace::<QueueWorkerRoutes>(&state, &v.server, &v.item, &audit, &name, &spec).await
}

/// Restart every process of a worker (as an operation). 409 while it is not installed.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/queues/{queue}/restart", tag = "queue-workers",
    params(("server" = String, Path), ("site" = String, Path), ("queue" = String, Path)),
    security(("token" = ["queue-worker:update"])),
    responses((status = 202, body = Accepted<QueueWorkerResource>))
)]
pub async fn restart_queue_worker(
    State(state): State<AppState>,
    v: Authorized<OnSiteItem<QueueWorkerRoutes>>,
    audit: AuditSlot,
) -> Result<Accepted<QueueWorkerResource>, ApiError> {
    super::restart::<QueueWorkerRoutes>(&state, &v.server, &v.item, &audit).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkerLogParams {
    /// How many lines (per process) from the end; 1 to 1,000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub lines: Option<u32>,
}

/// The last lines the worker's processes wrote, read from the server. 503 when the server
/// cannot be reached.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/sites/{site}/queues/{queue}/log", tag = "queue-workers",
    params(("server" = String, Path), ("site" = String, Path), ("queue" = String, Path), WorkerLogParams),
    security(("token" = ["queue-worker:read"])),
    responses(
        (status = 200, body = Data<ProgramLog>),
        (status = 503, description = "The server could not be reached or read.", body = crate::error::ErrorBody),
    )
)]
pub async fn queue_worker_log(
    State(state): State<AppState>,
    v: Authorized<OnSiteItem<QueueWorkerRoutes>>,
    Query(params): Query<WorkerLogParams>,
) -> Result<Data<ProgramLog>, ApiError> {
    super::log::<QueueWorkerRoutes>(&state, &v.server, &v.item, params.lines.unwrap_or(100)).await
}

crate::site_item_routes! {
    routes: QueueWorkerRoutes, resource: QueueWorkerResource, tag: "queue-workers",
    collection: "/api/v1/servers/{server}/sites/{site}/queues",
    item: "/api/v1/servers/{server}/sites/{site}/queues/{queue}", param: "queue",
    read: "queue-worker:read", delete: "queue-worker:delete",
    list: list_queue_workers = "The site's queue workers, each with its live status read from supervisor.",
    show: get_queue_worker = "One worker, with its live status read from supervisor.",
    delete: delete_queue_worker = "Stop a worker and remove its program. Answers 202 with the worker `removing`.",
}

pub fn router(router: utoipa_axum::router::OpenApiRouter<AppState>) -> utoipa_axum::router::OpenApiRouter<AppState> {
    router
        .routes(utoipa_axum::routes!(list_queue_workers, create_queue_worker))
        .routes(utoipa_axum::routes!(get_queue_worker, update_queue_worker, delete_queue_worker))
        .routes(utoipa_axum::routes!(restart_queue_worker))
        .routes(utoipa_axum::routes!(queue_worker_log))
}
