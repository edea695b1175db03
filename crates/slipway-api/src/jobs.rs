//! Queuing operations: the durable jobs behind every action on a server or a site. A server's
//! jobs run one at a time (`server:<id>`), and so do a site's (`site:<id>`); every enqueue wakes
//! the worker at once instead of waiting for its next poll.

use serde::Serialize;
use slipway_store::{Job, Server, Site};

use crate::audit::AuditSlot;
use crate::error::ApiError;
use crate::state::AppState;

/// Queues a job about a server and wakes the worker. `attempts` above 1 makes the job retried
/// after a crash or a dropped connection (only for jobs safe to run twice).
pub(crate) async fn enqueue_server_job(
    state: &AppState,
    server: &Server,
    kind: &str,
    payload: impl Serialize,
    attempts: i64,
) -> Result<Job, ApiError> {
    let spec = slipway_jobs::JobSpec::new(kind, payload)
        .resource(format!("server:{}", server.id))
        .organization(server.organization_id.clone())
        .idempotent(attempts);
    let id = slipway_jobs::enqueue(state.store.as_ref(), spec).await?;
    state.jobs_enqueued.notify_one();
    state.store.job(&id).await?.ok_or(ApiError::NotFound)
}

pub(crate) fn note_operation(audit: &AuditSlot, server: &Server, action: &str, job: &Job) {
    audit.note(|n| {
        n.action = Some(action.into());
        n.organization_id = Some(server.organization_id.clone());
        n.resource_id = Some(server.id.clone());
        n.detail = Some(format!("operation {}", job.id));
    });
}

/// Queues a job about a site (one at a time per site).
pub(crate) async fn enqueue_site_job(
    state: &AppState,
    site: &Site,
    kind: &str,
    payload: impl Serialize,
    attempts: i64,
    id: Option<String>,
) -> Result<String, ApiError> {
    enqueue_site_job_at(state, site, kind, payload, attempts, id, None).await
}

pub(crate) async fn enqueue_site_job_at(
    state: &AppState,
    site: &Site,
    kind: &str,
    payload: impl Serialize,
    attempts: i64,
    id: Option<String>,
    run_at: Option<slipway_core::time::Timestamp>,
) -> Result<String, ApiError> {
    let mut spec = slipway_jobs::JobSpec::new(kind, payload)
        .resource(format!("site:{}", site.id))
        .organization(site.organization_id.clone());
    if let Some(at) = run_at {
        spec = spec.at(at);
    }
    if attempts > 1 {
        spec = spec.idempotent(attempts);
    }
    if let Some(id) = id {
        spec = spec.with_id(id);
    }
    let id = slipway_jobs::enqueue(state.store.as_ref(), spec).await?;
    state.jobs_enqueued.notify_one();
    Ok(id)
}
