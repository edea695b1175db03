//! Operations: the durable jobs behind every action on a server, with their status and log.
//! An operation is visible exactly when its server is.

use axum::extract::State;
use axum::http::request::Parts;
use serde::Deserialize;
use slipway_store::{CancelOutcome, Job};
use utoipa::IntoParams;

use crate::audit::AuditSlot;
use crate::auth::{Authorized, Principal, Target};
use crate::envelope::{Accepted, Data};
use crate::error::ApiError;
use crate::extract::{After, Query};
use crate::resources::{LogLine, OperationResource};
use crate::state::AppState;

/// An operation named by `{operation}` that the caller may act on, or 404 / 403.
pub type VisibleOperation = Authorized<OnOperation>;

#[derive(Debug)]
pub struct OnOperation {
    pub job: Job,
    pub organization_id: String,
    /// A server's operation seen by a token restricted to sites on that server: it may follow
    /// the server's operations (the changes of its sites, a redirect say, are synced by them) but
    /// not cancel them.
    pub through_sites: bool,
}

impl Target for OnOperation {
    async fn load(parts: &mut Parts, state: &AppState, principal: &Principal) -> Result<Self, ApiError> {
        let id = &crate::extract::path_param(parts, state, "operation").await?;
        let job = state.store.job(id).await?.ok_or(ApiError::NotFound)?;
        let organization_id = job.organization_id.clone().ok_or(ApiError::NotFound)?;
        let mut through_sites = false;
        if let Some(site_id) = job.resource_key.as_deref().and_then(|k| k.strip_prefix("site:")) {
            // A site's operation (its deploys included) is visible where the site is: a token
            // restricted to some sites or servers sees theirs only.
            if !principal.may_touch_site(site_id) {
                return Err(ApiError::NotFound);
            }
            if principal.server_ids.is_some() {
                // The site may be gone (its removal's operation is still read).
                let server = match server_of(&job) {
                    Some(server) => Some(server.to_string()),
                    None => state.store.site(site_id).await?.map(|site| site.server_id),
                };
                if !server.is_some_and(|server| principal.may_touch_server(&server)) {
                    return Err(ApiError::NotFound);
                }
            }
        } else if principal.server_ids.is_some() || principal.site_ids.is_some() {
            // Any other operation is its server's (a sync, a database's backup), or the
            // organisation's, which a restricted token never reaches.
            match server_of(&job) {
                Some(server) if principal.may_act_on_server(server) => {}
                Some(server) if principal.hosts_its_sites(state, server).await? => through_sites = true,
                _ => return Err(ApiError::NotFound),
            }
        }
        Ok(OnOperation { job, organization_id, through_sites })
    }

    fn organization_id(&self) -> &str {
        &self.organization_id
    }
}

/// The server a job works on: its `server_key`, or for a job queued before that was recorded,
/// what its lock names (`server:<id>`, `database-backup:<server>:<database>`).
fn server_of(job: &Job) -> Option<&str> {
    if let Some(key) = &job.server_key {
        return key.strip_prefix("server:");
    }
    let key = job.resource_key.as_deref()?;
    key.strip_prefix("server:").or_else(|| key.strip_prefix("database-backup:").and_then(|rest| rest.split(':').next()))
}

/// One operation: what it is, where it stands, and why it failed if it did.
#[utoipa::path(
    get, path = "/api/v1/operations/{operation}", tag = "operations",
    params(("operation" = String, Path)),
    security(("token" = ["server:read"])),
    responses((status = 200, body = Data<OperationResource>))
)]
pub async fn get_operation(op: VisibleOperation) -> Result<Data<OperationResource>, ApiError> {
    Ok(Data { data: crate::resources::operation(&op.job) })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Only lines after this sequence number (for following a running operation).
    #[param(value_type = Option<i64>, minimum = 0)]
    pub after: Option<After>,
    /// At most this many lines (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
}

/// The operation's output, oldest first. Poll with `?after=` the last `seq` to follow it.
#[utoipa::path(
    get, path = "/api/v1/operations/{operation}/log", tag = "operations",
    params(("operation" = String, Path), LogQuery),
    security(("token" = ["server:read"])),
    responses((status = 200, body = Data<Vec<LogLine>>))
)]
pub async fn operation_log(
    State(state): State<AppState>,
    op: VisibleOperation,
    Query(q): Query<LogQuery>,
) -> Result<Data<Vec<LogLine>>, ApiError> {
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::validation("limit", "The limit must be between 1 and 10000."));
    }
    let lines = state.store.job_log(&op.job.id, q.after.unwrap_or_default().0, limit).await?;
    Ok(Data { data: lines.into_iter().map(crate::resources::log_line).collect() })
}

/// Cancel an operation: one that has not started never will; a running one is stopped (its
/// remote process killed) within seconds.
#[utoipa::path(
    post, path = "/api/v1/operations/{operation}/cancel", tag = "operations",
    params(("operation" = String, Path)),
    security(("token" = ["server:update"])),
    responses((status = 202, body = Accepted<OperationResource>), (status = 409, body = crate::error::ErrorBody))
)]
pub async fn cancel_operation(
    State(state): State<AppState>,
    op: VisibleOperation,
    audit: AuditSlot,
) -> Result<Accepted<OperationResource>, ApiError> {
    if op.through_sites {
        return Err(ApiError::Forbidden(
            "This token is restricted to some sites: it may follow the operations on their server, not cancel them."
                .into(),
        ));
    }
    let outcome = state.store.cancel_job(&op.job.id, slipway_core::time::now()).await?;
    let message = match outcome {
        CancelOutcome::Cancelled => "Cancelled before it started.",
        CancelOutcome::Requested => "Cancellation requested; the operation stops within seconds.",
        CancelOutcome::AlreadyFinished => return Err(ApiError::Conflict("The operation has already finished.".into())),
        CancelOutcome::NotFound => return Err(ApiError::NotFound),
    };
    audit.note(|n| {
        n.organization_id = Some(op.organization_id.clone());
        n.resource_id = Some(op.job.id.clone());
    });
    let job = state.store.job(&op.job.id).await?.ok_or(ApiError::NotFound)?;
    if outcome == CancelOutcome::Cancelled
        && let Some(handler) = state.engine.registry().get(&job.kind)
    {
        // What it would have worked on waits for it (a server `provisioning`, a site
        // `installing`); it will never run, so its handler says so. Not in the request: a
        // handler may have something to remove on a server.
        let ended = job.clone();
        tokio::spawn(async move { handler.abandoned(&ended).await });
    }
    Ok(Accepted { message: message.into(), data: crate::resources::operation(&job) })
}
