//! Audit events for what Slipway does on its own, with no request behind it (a scheduled
//! certificate renewal, say). They are recorded under the organization that owns the resource,
//! so its owners and admins find them in the audit log beside the requests.

use crate::Engine;

/// Records `action` on `resource_id` in `organization_id` with `outcome` (`success` or
/// `failure`) and a `detail` for people. A store error is logged, never raised: the work it
/// describes is done either way.
pub async fn record(
    engine: &Engine,
    organization_id: &str,
    action: &str,
    resource_id: &str,
    outcome: &str,
    detail: Option<String>,
) {
    let event = slipway_store::AuditEvent {
        id: slipway_core::new_id(),
        occurred_at: slipway_core::time::now(),
        actor_user_id: None,
        token_id: None,
        organization_id: Some(organization_id.to_string()),
        action: action.to_string(),
        method: None,
        route: None,
        resource_id: Some(resource_id.to_string()),
        status: None,
        outcome: outcome.to_string(),
        client_ip: None,
        user_agent: None,
        request_id: None,
        detail,
    };
    if let Err(e) = engine.store.insert_audit_event(&event).await {
        tracing::error!(error = %e, action, "could not write the audit event");
    }
}
