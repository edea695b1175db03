//! A site's redirects: nginx rules answered before anything the site serves.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::FieldErrors;
use slipway_engine::items::redirects::{STATUSES, from_problem, to_problem};
use slipway_engine::items::{ItemKind, RedirectSpec, Redirects};
use slipway_store::{ServerItem, Site};
use utoipa::ToSchema;

use super::{ItemRoutes, MAX_ITEMS, OnSiteItem, spec};
use crate::audit::AuditSlot;
use crate::auth::Authorized;
use crate::envelope::Data;
use crate::error::ApiError;
use crate::extract::Json;
use crate::routes::sites::VisibleSite;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct RedirectResource {
    pub id: String,
    pub server_id: String,
    pub site_id: String,
    #[schema(example = "/blog/*")]
    pub from: String,
    #[schema(example = "https://blog.example.com/*")]
    pub to: String,
    /// 301, 302, 307 or 308.
    #[serde(rename = "type")]
    #[schema(example = 301)]
    pub status_code: u16,
    pub preserve_query: bool,
    /// `installing`, `installed`, `failed` (with the reason), `removing` or `removed`.
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
pub struct CreateRedirect {
    /// A path (`/old`), or a prefix ending in `*` (`/blog/*`: it and everything under it).
    /// Letters, digits and `/ . _ ~ -`.
    #[schema(example = "/blog/*", min_length = 1, max_length = 1024)]
    pub from: String,
    /// A path or an absolute http(s) URL. With a `from` ending in `*`, a `to` ending in `*` gets
    /// what the `*` matched.
    #[schema(example = "https://blog.example.com/*", min_length = 1, max_length = 2048)]
    pub to: String,
    /// 301 (default), 302, 307 or 308.
    #[serde(rename = "type")]
    #[schema(example = 301)]
    pub status_code: Option<u16>,
    /// Keep the request's query string (default true).
    pub preserve_query: Option<bool>,
}

#[derive(Debug)]
pub struct RedirectRoutes;

impl ItemRoutes for RedirectRoutes {
    const KIND: &'static dyn ItemKind = &Redirects;
    const PARAM: &'static str = "redirect";
    const AUDIT: &'static str = "redirect";
    const REMOVING: &'static str = "Removing the redirect.";
    type Spec = RedirectSpec;
    type Create = CreateRedirect;
    type Resource = RedirectResource;

    fn resource(item: &ServerItem, spec: RedirectSpec, operation_id: Option<String>) -> RedirectResource {
        RedirectResource {
            id: item.id.clone(),
            server_id: item.server_id.clone(),
            site_id: spec.site_id,
            from: spec.from,
            to: spec.to,
            status_code: spec.status,
            preserve_query: spec.preserve_query,
            status: item.shown_status().into(),
            status_reason: item.status_reason.clone(),
            operation_id,
            created_at: item.created_at,
            updated_at: item.updated_at,
        }
    }
}

/// The redirect the body asks for on `site`, or field errors; `existing` holds the server's
/// redirects other than the one being changed (a site redirects a path once).
fn redirect_spec(site: &Site, body: CreateRedirect, existing: &[ServerItem]) -> Result<RedirectSpec, ApiError> {
    let preserve_query = body.preserve_query.unwrap_or(true);
    let status = body.status_code.unwrap_or(301);
    let mut errors = FieldErrors::new();
    if let Some(why) = from_problem(&body.from) {
        errors.add("from", why);
    }
    if let Some(why) = to_problem(&body.to, &body.from, preserve_query) {
        errors.add("to", why);
    }
    if !STATUSES.contains(&status) {
        errors.add("type", "The type must be 301, 302, 307 or 308.");
    }
    errors.into_result()?;
    if existing.iter().any(|i| spec::<RedirectSpec>(i).is_ok_and(|s| s.site_id == site.id && s.from == body.from)) {
        return Err(ApiError::validation("from", "The site already redirects this path."));
    }
    Ok(RedirectSpec {
        site_id: site.id.clone(),
        domain: site.domain.clone(),
        from: body.from,
        to: body.to,
        status,
        preserve_query,
    })
}

/// Redirect a path of the site, for static, PHP and app sites alike. nginx checks the result
/// before it reloads; if it refuses, the previous rules stay and the redirect shows `failed`.
/// Answers 201 with the redirect `installing`; follow `operation_id`.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/redirects", tag = "redirects",
    params(("server" = String, Path), ("site" = String, Path)),
    request_body = CreateRedirect,
    security(("token" = ["redirect:create"])),
    responses((status = 201, body = Data<RedirectResource>))
)]
pub async fn create_redirect(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
    Json(body): Json<CreateRedirect>,
) -> Result<(StatusCode, Data<RedirectResource>), ApiError> {
    let (existing, count) = state.store.server_items(&v.server.id, Redirects.name(), None).await?;
    let spec = redirect_spec(&v.site, body, &existing)?;
    if count >= MAX_ITEMS {
        return Err(ApiError::validation("from", format!("A server can have at most {MAX_ITEMS} redirects.")));
    }
    let (item, operation) = super::insert::<RedirectRoutes>(&state, &v.server, &audit, &spec.from, &spec).await?;
    Ok((StatusCode::CREATED, Data { data: RedirectRoutes::resource(&item, spec, operation) }))
}

/// Change a redirect: the same fields as creating it, all of them. Answers 200 with the redirect
/// `installing`; follow `operation_id`.
#[utoipa::path(
    put, path = "/api/v1/servers/{server}/sites/{site}/redirects/{redirect}", tag = "redirects",
    params(("server" = String, Path), ("site" = String, Path), ("redirect" = String, Path)),
    request_body = CreateRedirect,
    security(("token" = ["redirect:update"])),
    responses((status = 200, body = Data<RedirectResource>))
)]
pub async fn update_redirect(
    State(state): State<AppState>,
    v: Authorized<OnSiteItem<RedirectRoutes>>,
    audit: AuditSlot,
    Json(body): Json<CreateRedirect>,
) -> Result<Data<RedirectResource>, ApiError> {
    let (existing, _) = state.store.server_items(&v.server.id, Redirects.name(), None).await?;
    let others: Vec<ServerItem> = existing.into_iter().filter(|i| i.id != v.item.id).collect();
    let spec = redirect_spec(&v.site, body, &others)?;
    super::replace::<RedirectRoutes>(&state, &v.server, &v.item, &audit, &spec.from, &spec).await
}

crate::site_item_routes! {
    routes: RedirectRoutes, resource: RedirectResource, tag: "redirects",
    collection: "/api/v1/servers/{server}/sites/{site}/redirects",
    item: "/api/v1/servers/{server}/sites/{site}/redirects/{redirect}", param: "redirect",
    read: "redirect:read", delete: "redirect:delete",
    list: list_redirects = "The site's redirects.",
    show: get_redirect = "One redirect.",
    delete: delete_redirect = "Remove a redirect. Answers 202 with the redirect `removing`.",
}

pub fn router(router: utoipa_axum::router::OpenApiRouter<AppState>) -> utoipa_axum::router::OpenApiRouter<AppState> {
    router.routes(utoipa_axum::routes!(list_redirects, create_redirect)).routes(utoipa_axum::routes!(
        get_redirect,
        update_redirect,
        delete_redirect
    ))
}
