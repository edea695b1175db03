//! The site's environment variables, encrypted at rest, and importing them from the server.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::site_input::{self};
use slipway_core::{Ability, Action, FieldErrors, Resource};
use slipway_engine::deploy::env_context;
use slipway_engine::sites::SiteJob;
use utoipa::{IntoParams, ToSchema};

use crate::audit::AuditSlot;
use crate::envelope::{Accepted, Data, Paginated};
use crate::error::ApiError;
use crate::extract::{Json, Page, Query};
use crate::jobs::enqueue;
use crate::resources::OperationResource;
use crate::state::AppState;

const fn ability(action: Action) -> Ability {
    Ability::new(Resource::Site, action)
}

use super::*;

#[derive(Debug, Serialize, ToSchema)]
pub struct EnvVarResource {
    pub key: String,
    /// `null` unless asked for with `?reveal=true` (needs `site:update`).
    pub value: Option<String>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct RevealQuery {
    /// Include the values (needs `site:update`).
    pub reveal: Option<bool>,
}

fn open_env(state: &AppState, site_id: &str, key: &str, sealed: &[u8]) -> Result<String, ApiError> {
    let bytes = state.secrets.open(&env_context(site_id, key), sealed).map_err(ApiError::internal)?;
    String::from_utf8(bytes).map_err(ApiError::internal)
}

/// The site's environment variables, by key; values only with `?reveal=true`.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/sites/{site}/environment-variables", tag = "environment",
    params(("server" = String, Path), ("site" = String, Path), RevealQuery, crate::extract::PageParams),
    security(("token" = ["site:read"])),
    responses((status = 200, body = Paginated<EnvVarResource>))
)]
pub async fn list_env(
    State(state): State<AppState>,
    v: VisibleSite,
    Query(query): Query<RevealQuery>,
    Page(cursor): Page,
) -> Result<Paginated<EnvVarResource>, ApiError> {
    let reveal = query.reveal.unwrap_or(false);
    if reveal {
        v.require_also(ability(Action::Update))?;
    }
    // Read whole (a site has a few dozen), paged here; only the page's values are opened.
    let all = state.store.site_env(&v.site.id).await?;
    let mut data = Vec::new();
    for var in cursor.slice(&all) {
        let value = if reveal { Some(open_env(&state, &v.site.id, &var.key, &var.value)?) } else { None };
        data.push(EnvVarResource {
            key: var.key.clone(),
            value,
            created_at: var.created_at,
            updated_at: var.updated_at,
        });
    }
    Ok(cursor.page(data, all.len() as u64))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetEnvVars {
    /// Variables to set (created or replaced): `{"APP_KEY": "…", "DEBUG": "false"}`.
    pub variables: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeployQuery {
    /// Deploy the site once the change is stored.
    pub deploy: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnvChange {
    /// The keys now set.
    pub keys: Vec<String>,
    /// The deployment started with `?deploy=true`.
    pub deployment: Option<DeploymentResource>,
}

/// With `?deploy=true`, the change also needs `site:deploy` and a site that can deploy:
/// checked before anything is written, so a refused deploy leaves the variables as they were.
fn deploy_allowed(v: &VisibleSite, query: &DeployQuery) -> Result<(), ApiError> {
    if query.deploy == Some(true) {
        v.require_also(ability(Action::Deploy))?;
        super::deployments::refuse_unless_deployable(&v.site)?;
    }
    Ok(())
}

/// The deployment `?deploy=true` asks for, once the change is stored.
async fn deploy_if_asked(
    state: &AppState,
    v: &VisibleSite,
    query: &DeployQuery,
) -> Result<Option<DeploymentResource>, ApiError> {
    if query.deploy != Some(true) || !has_repository(&v.site) {
        return Ok(None);
    }
    let plan = Plan::Deploy { commit: None };
    Ok(Some(start_deployment(state, &v.site, Some(&v.principal), "api", plan, None).await?.data))
}

/// Set variables (values of any text; NUL is refused). They reach the server with the next
/// deploy; `?deploy=true` starts one.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/environment-variables", tag = "environment",
    params(("server" = String, Path), ("site" = String, Path), DeployQuery),
    request_body = SetEnvVars,
    security(("token" = ["site:update"])),
    responses((status = 200, body = Data<EnvChange>))
)]
pub async fn set_env(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
    Query(query): Query<DeployQuery>,
    Json(body): Json<SetEnvVars>,
) -> Result<Data<EnvChange>, ApiError> {
    deploy_allowed(&v, &query)?;
    let mut errors = FieldErrors::new();
    if body.variables.is_empty() {
        errors.add("variables", "Give at least one variable.");
    }
    if body.variables.len() > 500 {
        errors.add("variables", "At most 500 variables at once.");
    }
    for (key, value) in &body.variables {
        if let Err(m) = site_input::env_key(key) {
            errors.add("variables", format!("The key {key:?} {m}."));
        }
        if value.contains('\0') {
            errors.add("variables", format!("The value of {key} contains a NUL byte, which no environment can hold."));
        }
        if value.len() > 64 * 1024 {
            errors.add("variables", format!("The value of {key} is longer than 64 KiB."));
        }
    }
    errors.into_result()?;
    for (key, value) in &body.variables {
        let sealed = state.secrets.seal(&env_context(&v.site.id, key), value.as_bytes());
        state.store.put_site_env(&v.site.id, key, &sealed).await?;
    }
    let keys: Vec<String> = body.variables.keys().cloned().collect();
    audit_site(&audit, &v.site, "site.env.set", Some(format!("keys {}", keys.join(", "))));
    let deployment = deploy_if_asked(&state, &v, &query).await?;
    Ok(Data { data: EnvChange { keys, deployment } })
}

/// Remove a variable (from the next deploy on; `?deploy=true` starts one).
#[utoipa::path(
    delete, path = "/api/v1/servers/{server}/sites/{site}/environment-variables/{key}", tag = "environment",
    params(("server" = String, Path), ("site" = String, Path), ("key" = String, Path), DeployQuery),
    security(("token" = ["site:update"])),
    responses(
        (status = 200, body = Data<EnvChange>),
        (status = 409, description = "`?deploy=true` on a site whose installation failed", body = crate::error::ErrorBody),
    )
)]
pub async fn delete_env(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
    ids: axum::extract::Path<(String, String, String)>,
    Query(query): Query<DeployQuery>,
) -> Result<Data<EnvChange>, ApiError> {
    deploy_allowed(&v, &query)?;
    if !state.store.delete_site_env(&v.site.id, &ids.2).await? {
        return Err(ApiError::NotFound);
    }
    audit_site(&audit, &v.site, "site.env.delete", Some(format!("key {}", ids.2)));
    let deployment = deploy_if_asked(&state, &v, &query).await?;
    Ok(Data { data: EnvChange { keys: vec![], deployment } })
}

/// Import the variables in the `.env` on the server (the site's shared `.env`) into Slipway,
/// replacing those with the same keys. Runs as an operation; values never appear in its log.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/environment-variables/pull", tag = "environment",
    params(("server" = String, Path), ("site" = String, Path)),
    security(("token" = ["site:update"])),
    responses((status = 202, body = Accepted<OperationResource>, description = "The operation that imports it"))
)]
pub async fn pull_env(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
) -> Result<Accepted<OperationResource>, ApiError> {
    let spec = slipway_engine::SITE_ENV_PULL.about_site(&v.site, SiteJob { site_id: v.site.id.clone() });
    let job = enqueue(&state, spec).await?;
    audit_site(&audit, &v.site, "site.env.pull", Some(format!("operation {}", job.id)));
    Ok(Accepted { message: "Reading .env from the server.".into(), data: crate::resources::operation(&job) })
}
