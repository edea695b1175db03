//! The audit log: every mutating request (and so every authentication event, which are all
//! POSTs) is recorded with who, which token, what, where from, and the outcome. Handlers add
//! what only they know (the organisation, the resource, a detail) through [`AuditSlot`].
//! Request bodies are never recorded, so secrets cannot enter the log.

use std::sync::{Arc, Mutex};

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use slipway_store::AuditEvent;

use crate::auth::middleware::client_ip;
use crate::middleware::RequestId;
use crate::state::AppState;

#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    /// Overrides the default action (the route's operation id), e.g. `login.failed`.
    pub action: Option<String>,
    pub actor_user_id: Option<String>,
    pub token_id: Option<String>,
    pub organization_id: Option<String>,
    pub resource_id: Option<String>,
    pub detail: Option<String>,
}

/// Where the guard and handlers leave what the audit record should say.
#[derive(Debug, Clone, Default)]
pub struct AuditSlot(Arc<Mutex<AuditNote>>);

impl AuditSlot {
    pub fn note(&self, f: impl FnOnce(&mut AuditNote)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn take(&self) -> AuditNote {
        std::mem::take(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuditSlot {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Outside a recorded request (a GET) notes go nowhere, which is what we want.
        Ok(parts.extensions.get::<AuditSlot>().cloned().unwrap_or_default())
    }
}

fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

pub async fn record(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    if !is_mutating(&method) {
        return next.run(request).await;
    }
    let Some(template) = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()) else {
        return next.run(request).await;
    };
    let Some(rule) = state.rules.get(method.as_str(), &template).cloned() else {
        return next.run(request).await;
    };
    let slot = AuditSlot::default();
    request.extensions_mut().insert(slot.clone());
    let ip = client_ip(&request).map(|ip| ip.to_string());
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(512).collect::<String>());
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone());

    let response = next.run(request).await;

    let note = slot.take();
    let status = response.status();
    let outcome = match status.as_u16() {
        s if s < 400 => "success",
        401 | 403 => "denied",
        429 => "rate_limited",
        _ => "failure",
    };
    let event = AuditEvent {
        id: slipway_core::new_id(),
        occurred_at: slipway_core::time::now(),
        actor_user_id: note.actor_user_id,
        token_id: note.token_id,
        organization_id: note.organization_id,
        action: note.action.unwrap_or_else(|| rule.operation_id.clone()),
        method: Some(method.to_string()),
        route: Some(template),
        resource_id: note.resource_id,
        status: Some(i64::from(status.as_u16())),
        outcome: outcome.into(),
        client_ip: ip,
        user_agent,
        request_id,
        detail: note.detail,
    };
    if let Err(e) = state.store.insert_audit_event(&event).await {
        tracing::error!(error = %e, action = %event.action, "could not write the audit event");
    }
    response
}
