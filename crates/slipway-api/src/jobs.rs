//! Queuing operations: the durable jobs behind every action on a server or a site. A server's
//! jobs run one at a time (`server:<id>`), and so do a site's (`site:<id>`); every enqueue wakes
//! the worker at once instead of waiting for its next poll.

use slipway_store::{Job, Server};

use crate::audit::AuditSlot;
use crate::error::ApiError;
use crate::state::AppState;

/// Queues a job (made by `JobKind::about_server` or `about_site`, which say its lock and how
/// often it may be tried) and wakes the worker; returns the job as an operation.
pub(crate) async fn enqueue(state: &AppState, spec: slipway_jobs::JobSpec) -> Result<Job, ApiError> {
    let id = slipway_jobs::enqueue(state.store.as_ref(), spec).await?;
    state.engine.wake_worker();
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
