//! The organization: its members and roles, and the audit log with filters.

use askama::Template;
use axum::extract::{Form, Path, Query};
use axum::http::Method;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::api::encode;
use crate::error::WebError;
use crate::session::Session;
use crate::view::{FieldErrors, Layout, Me, render, when};

#[derive(Debug, Deserialize)]
pub struct Member {
    pub user_id: String,
    pub name: String,
    pub email: String,
    pub role: String,
}

#[derive(Debug, Deserialize)]
pub struct AuditEvent {
    pub occurred_at: DateTime<Utc>,
    pub action: String,
    pub outcome: String,
    pub actor_user_id: Option<String>,
    pub resource_id: Option<String>,
    pub client_ip: Option<String>,
    pub detail: Option<String>,
}

pub struct AuditRow {
    pub e: AuditEvent,
    pub when: String,
}

/// The audit log's filters, as the form sends them and the API takes them.
#[derive(Debug, Default, Deserialize)]
pub struct AuditFilters {
    #[serde(default)]
    pub organization: String,
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

#[derive(Template)]
#[template(path = "organization.html")]
struct OrganizationPage {
    layout: Layout,
    organization_id: String,
    others: Vec<(String, String)>,
    members: Vec<Member>,
    audit: Option<Vec<AuditRow>>,
    filters: AuditFilters,
    /// Owners and admins manage the members.
    manages: bool,
    /// Why the last change to the members was refused.
    errors: FieldErrors,
}

pub async fn show(session: Session, Query(filters): Query<AuditFilters>) -> Result<Html<String>, WebError> {
    organization_page(&session, filters, FieldErrors::default()).await
}

async fn organization_page(
    session: &Session,
    filters: AuditFilters,
    errors: FieldErrors,
) -> Result<Html<String>, WebError> {
    let me = Me::load(session).await?;
    let Some(org) = me.organizations.iter().find(|o| o.id == filters.organization).or(me.organizations.first()) else {
        return Err(WebError::Api(axum::http::StatusCode::NOT_FOUND, "You are in no organization.".into()));
    };
    let members_path = format!("/api/v1/organizations/{}/members?per_page=100", encode(&org.id));
    let members = session.api.get(&members_path).await?.page::<Member>()?.0;
    let mut query = vec!["per_page=50".to_string()];
    for (name, value) in [("actor", &filters.actor), ("action", &filters.action), ("resource", &filters.resource)] {
        if !value.trim().is_empty() {
            query.push(format!("{name}={}", encode(value.trim())));
        }
    }
    // Dates from the form are whole days, in UTC.
    if !filters.from.trim().is_empty() {
        query.push(format!("from={}", encode(&format!("{}T00:00:00Z", filters.from.trim()))));
    }
    if !filters.to.trim().is_empty() {
        query.push(format!("to={}", encode(&format!("{}T23:59:59Z", filters.to.trim()))));
    }
    // The audit log needs `audit:read`, which a member's or viewer's role may lack: then the
    // section says so instead of the page failing.
    let reply = session.api.get(&format!("/api/v1/audit-events?{}", query.join("&"))).await?;
    let audit = match reply.status.as_u16() {
        403 => None,
        422 => {
            return Err(WebError::Api(
                reply.status,
                reply.field_errors().into_iter().flat_map(|(_, m)| m).collect::<Vec<_>>().join(" "),
            ));
        }
        _ => Some(
            reply.page::<AuditEvent>()?.0.into_iter().map(|e| AuditRow { when: when(&e.occurred_at), e }).collect(),
        ),
    };
    let others = me.organizations.iter().map(|o| (o.id.clone(), o.name.clone())).collect();
    let layout = Layout::new(format!("Organization {}", org.name), "organization", &me, session);
    let manages = me.manages(&org.id);
    render(&OrganizationPage {
        layout,
        organization_id: org.id.clone(),
        others,
        members,
        audit,
        filters,
        manages,
        errors,
    })
}

/// After a change to the members: the organization's page again, or its refusal.
async fn after_change(session: &Session, organization: String, reply: crate::api::Reply) -> Result<Response, WebError> {
    if reply.status.as_u16() == 422 || reply.status.as_u16() == 409 {
        let mut errors = reply.field_errors();
        if errors.is_empty() {
            errors.push(("members".into(), vec![reply.message()]));
        }
        let filters = AuditFilters { organization, ..Default::default() };
        return Ok(organization_page(session, filters, FieldErrors(errors)).await?.into_response());
    }
    reply.success()?;
    Ok(Redirect::to(&format!("/organization?organization={}", encode(&organization))).into_response())
}

#[derive(Debug, Deserialize)]
pub struct NewMember {
    email: String,
    role: String,
}

pub async fn add_member(
    session: Session,
    Path(organization): Path<String>,
    Form(form): Form<NewMember>,
) -> Result<Response, WebError> {
    let path = format!("/api/v1/organizations/{}/members", encode(&organization));
    let reply = session.api.post(&path, json!({"email": form.email.trim(), "role": form.role})).await?;
    after_change(&session, organization, reply).await
}

#[derive(Debug, Deserialize)]
pub struct RoleForm {
    role: String,
}

pub async fn change_role(
    session: Session,
    Path((organization, user)): Path<(String, String)>,
    Form(form): Form<RoleForm>,
) -> Result<Response, WebError> {
    let path = format!("/api/v1/organizations/{}/members/{}", encode(&organization), encode(&user));
    let reply = session.api.send(Method::PATCH, &path, Some(json!({"role": form.role}))).await?;
    after_change(&session, organization, reply).await
}

pub async fn remove_member(
    session: Session,
    Path((organization, user)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let path = format!("/api/v1/organizations/{}/members/{}", encode(&organization), encode(&user));
    let reply = session.api.send(Method::DELETE, &path, None).await?;
    after_change(&session, organization, reply).await
}
