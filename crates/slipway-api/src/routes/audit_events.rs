//! Reading the audit log: members see their own events, owners and admins their
//! organisations' events too.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::Role;
use slipway_store::{AuditEvent, AuditFilter};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::auth::principal::TokenKind;
use crate::envelope::Paginated;
use crate::error::ApiError;
use crate::extract::{Page, Query};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventResource {
    pub id: String,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub occurred_at: DateTime<Utc>,
    pub actor_user_id: Option<String>,
    pub token_id: Option<String>,
    pub organization_id: Option<String>,
    #[schema(example = "token.create")]
    pub action: String,
    pub method: Option<String>,
    pub route: Option<String>,
    pub resource_id: Option<String>,
    pub status: Option<i64>,
    /// How the request ended: `success`, `denied`, `rate_limited` or `failure`.
    #[schema(value_type = Outcome)]
    pub outcome: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub detail: Option<String>,
}

impl From<AuditEvent> for AuditEventResource {
    fn from(e: AuditEvent) -> Self {
        AuditEventResource {
            id: e.id,
            occurred_at: e.occurred_at,
            actor_user_id: e.actor_user_id,
            token_id: e.token_id,
            organization_id: e.organization_id,
            action: e.action,
            method: e.method,
            route: e.route,
            resource_id: e.resource_id,
            status: e.status,
            outcome: e.outcome,
            client_ip: e.client_ip,
            user_agent: e.user_agent,
            request_id: e.request_id,
            detail: e.detail,
        }
    }
}

/// How a recorded request ended: `success` (2xx, 3xx), `denied` (401, 403), `rate_limited`
/// (429) or `failure` (any other error, invalid input included).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Denied,
    RateLimited,
    Failure,
}

impl Outcome {
    pub fn of_status(status: u16) -> Outcome {
        match status {
            s if s < 400 => Outcome::Success,
            401 | 403 => Outcome::Denied,
            429 => Outcome::RateLimited,
            _ => Outcome::Failure,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::RateLimited => "rate_limited",
            Outcome::Failure => "failure",
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only events by this user id.
    pub actor: Option<String>,
    /// Only events made with this token id.
    pub token: Option<String>,
    /// Only this action and its sub-events: `login` finds `login`, `login.failed` and
    /// `login.2fa_failed`; `login.failed` finds only those.
    pub action: Option<String>,
    /// Only events that ended this way.
    pub outcome: Option<Outcome>,
    /// Only events about this resource id.
    pub resource: Option<String>,
    /// Only events at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Only events at or before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Only events older than this event id: a cursor. Pass the last id of the page you read
    /// (with page 1) to get the next page; new events and pruning cannot shift it.
    pub before: Option<String>,
}

/// Audit events, newest first: your own, plus every event of the organizations you own or
/// administer.
#[utoipa::path(
    get, path = "/api/v1/audit-events", tag = "audit",
    params(crate::extract::PageParams, crate::extract::CursorParams, AuditQuery),
    security(("token" = ["audit:read"])),
    responses((status = 200, body = Paginated<AuditEventResource>))
)]
pub async fn list_audit_events(
    State(state): State<AppState>,
    principal: Principal,
    Page(cursor): Page,
    Query(q): Query<AuditQuery>,
) -> Result<Paginated<AuditEventResource>, ApiError> {
    let mut filter = AuditFilter {
        actor: q.actor,
        token: q.token,
        action: q.action,
        outcome: q.outcome.map(|o| o.as_str().to_string()),
        resource: q.resource,
        from: q.from,
        to: q.to,
        before: q.before,
        ..Default::default()
    };
    match principal.kind {
        TokenKind::Personal => {
            let user = principal.user_id()?.to_string();
            let orgs = state.store.memberships_of(&user).await?;
            filter.organization_ids = orgs
                .iter()
                .filter(|o| Role::parse(&o.role).is_some_and(Role::manages_organization))
                .filter(|o| principal.organization_id.as_ref().is_none_or(|only| *only == o.id))
                .map(|o| o.id.clone())
                .collect();
            filter.own_user_id = Some(user);
        }
        TokenKind::Organization => filter.organization_ids = principal.organization_id.clone().into_iter().collect(),
    }
    // A token restricted to some servers or sites reads its own user's events only, never the
    // organisation's (which would show what its restriction withholds).
    if principal.refuse_if_restricted().is_err() {
        filter.organization_ids.clear();
    }
    let (rows, total) = state.store.audit_events(&filter, cursor.seeking()).await?;
    Ok(cursor.seek_page(rows.into_iter().map(AuditEventResource::from).collect(), total, |e| &e.id))
}
