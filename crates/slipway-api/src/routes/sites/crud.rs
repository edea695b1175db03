//! Creating, reading, editing, suspending and deleting sites.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use slipway_core::FieldErrors;
use slipway_core::site_input::{self, Domain};
use slipway_core::time::now;
use slipway_engine::deploy::repository_context;
use slipway_engine::sites::{self as engine_sites, SiteJob};
use slipway_store::{Site, SiteChanges};
use utoipa::ToSchema;

use crate::audit::AuditSlot;
use crate::envelope::{Accepted, Data, Paginated};
use crate::error::ApiError;
use crate::extract::{Json, Page};
use crate::jobs::enqueue_site_job;
use crate::routes::servers::VisibleServer;
use crate::state::AppState;

use super::*;

/// A server's sites.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/sites", tag = "sites",
    params(("server" = String, Path), crate::extract::PageParams),
    security(("token" = ["site:read"])),
    responses((status = 200, body = Paginated<SiteResource>))
)]
pub async fn list_sites(
    State(state): State<AppState>,
    v: VisibleServer,
    Page(cursor): Page,
) -> Result<Paginated<SiteResource>, ApiError> {
    // Filtered in the query, so that `meta.total` and the pages count only what the token sees.
    let only = v.principal.site_ids.as_deref();
    let (rows, total) = state.store.sites_of_server(&v.server.id, only, Some(cursor.request)).await?;
    Ok(cursor.page(rows.iter().map(|s| site_resource(&state, s, None)).collect(), total))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSite {
    #[schema(example = "shop.example.com")]
    pub domain: String,
    /// Other names nginx answers to (`www.shop.example.com`, `*.shop.example.com`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `static`, `php`, `laravel`, `node` or `generic` (any command that listens on `$PORT`).
    #[schema(example = "static")]
    pub project_type: String,
    /// Served directory inside a release (`public`, `dist`); default the release itself
    /// (`public` for laravel).
    pub web_directory: Option<String>,
    /// Git URL the server fetches: `https://…`, `ssh://…`, `git@host:path`, `git://…` or an
    /// absolute path on the server. Credentials in it are stored encrypted.
    pub repository_url: Option<String>,
    /// A repository from `/git-repositories` (with its deploy key and push webhook) instead of
    /// `repository_url`.
    pub git_repository_id: Option<String>,
    /// Default `main` (or the git repository's branch).
    pub branch: Option<String>,
    /// Runs in each new release as the deploy user before it goes live; a default per type.
    pub deploy_script: Option<String>,
    /// Required for `generic` (default `npm start` for `node`); must listen on `$PORT`.
    pub app_command: Option<String>,
    /// Default `/`.
    pub health_check_path: Option<String>,
    /// Default 200.
    #[schema(minimum = 100, maximum = 599)]
    pub health_check_status: Option<u16>,
    /// Seconds, default 30.
    #[schema(minimum = 1, maximum = 600)]
    pub health_check_timeout: Option<u32>,
    /// Default `true`: each deploy builds a new release, health-checks it and switches to it
    /// atomically. `false` deploys in place into one working tree (no releases, no rollback, and
    /// an app restarts); convert later with `enable-zero-downtime`.
    pub zero_downtime: Option<bool>,
    /// Paths kept across releases (`storage`, `public/uploads`), linked into each release from
    /// `shared/`; the first release that has one seeds it. Default `["storage"]` for laravel.
    pub shared_paths: Option<Vec<String>>,
    /// Releases kept for rollback, 1 to 50; default 5.
    #[schema(minimum = 1, maximum = 50)]
    pub keep_releases: Option<u32>,
}

fn check_aliases(errors: &mut FieldErrors, aliases: &[String]) -> Vec<String> {
    if aliases.len() > 20 {
        errors.add("aliases", "A site may have at most 20 aliases.");
    }
    aliases
        .iter()
        .filter_map(|a| match Domain::parse_alias(a) {
            Ok(d) => Some(d.as_str().to_string()),
            Err(m) => {
                errors.add("aliases", format!("The alias {a:?} {m}."));
                None
            }
        })
        .collect()
}

/// Applies a parse rule to an optional value, recording a field error when it fails.
fn checked(
    errors: &mut FieldErrors,
    field: &str,
    value: Option<&str>,
    rule: fn(&str) -> Result<String, String>,
) -> Option<String> {
    let value = value?;
    match rule(value) {
        Ok(v) => Some(v),
        Err(m) => {
            errors.add(field, format!("The {field} {m}."));
            None
        }
    }
}

/// The numeric settings shared by create and update: health check status and timeout, releases kept.
fn check_numbers(errors: &mut FieldErrors, status: Option<u16>, timeout: Option<u32>, keep: Option<u32>) {
    if status.is_some_and(|s| !(100..=599).contains(&s)) {
        errors.add("health_check_status", "The health_check_status must be an HTTP status (100-599).");
    }
    if timeout.is_some_and(|t| !(1..=600).contains(&t)) {
        errors.add("health_check_timeout", "The health_check_timeout must be between 1 and 600 seconds.");
    }
    if keep.is_some_and(|k| !(1..=50).contains(&k)) {
        errors.add("keep_releases", "The keep_releases must be between 1 and 50.");
    }
}

/// Shared paths, validated and without duplicates, as stored (a JSON array).
fn check_shared(errors: &mut FieldErrors, paths: &[String]) -> String {
    match site_input::shared_paths(paths) {
        Ok(valid) => serde_json::to_string(&valid).unwrap_or_else(|_| "[]".into()),
        Err(m) => {
            errors.add("shared_paths", format!("The shared_paths {m}."));
            "[]".into()
        }
    }
}

fn check_script(errors: &mut FieldErrors, field: &str, text: &str) {
    if text.contains('\0') {
        errors.add(field, format!("The {field} may not contain NUL bytes."));
    }
    if text.len() > 64 * 1024 {
        errors.add(field, format!("The {field} may not be longer than 64 KiB."));
    }
}

/// Create a site: answers 201 with the site `installing` and the operation that makes it real
/// on the server (directories, nginx block, PHP pool). Deploy it next.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites", tag = "sites",
    params(("server" = String, Path)),
    request_body = CreateSite,
    security(("token" = ["site:create"])),
    responses((status = 201, body = Data<SiteResource>))
)]
pub async fn create_site(
    State(state): State<AppState>,
    v: VisibleServer,
    audit: AuditSlot,
    Json(body): Json<CreateSite>,
) -> Result<(StatusCode, Data<SiteResource>), ApiError> {
    if v.principal.site_ids.is_some() {
        return Err(ApiError::Forbidden("A token restricted to some sites cannot create sites.".into()));
    }
    let mut errors = FieldErrors::new();
    let domain = Domain::parse(&body.domain).map_err(|m| errors.add("domain", format!("The domain {m}."))).ok();
    let aliases = check_aliases(&mut errors, &body.aliases);
    let project_type = body.project_type.as_str();
    if !engine_sites::PROJECT_TYPES.contains(&project_type) {
        errors.add(
            "project_type",
            format!("The project_type must be one of {}.", engine_sites::PROJECT_TYPES.join(", ")),
        );
    }
    let web_directory = checked(
        &mut errors,
        "web_directory",
        Some(body.web_directory.as_deref().unwrap_or_else(|| engine_sites::default_web_directory(project_type))),
        site_input::relative_path,
    )
    .unwrap_or_default();
    let url = checked(&mut errors, "repository_url", body.repository_url.as_deref(), site_input::git_url);
    let repository = match &body.git_repository_id {
        Some(id) => match state.store.git_repository(id).await? {
            Some(r) if r.organization_id == v.server.organization_id => Some(r),
            _ => {
                errors.add("git_repository_id", "No such git repository in this server's organization.");
                None
            }
        },
        None => None,
    };
    if url.is_some() && body.git_repository_id.is_some() {
        errors.add("repository_url", "Give repository_url or git_repository_id, not both.");
    }
    let default_branch = repository.as_ref().map_or("main", |r| r.branch.as_str());
    let branch =
        checked(&mut errors, "branch", Some(body.branch.as_deref().unwrap_or(default_branch)), site_input::git_branch)
            .unwrap_or_default();
    let deploy_script =
        body.deploy_script.clone().unwrap_or_else(|| engine_sites::default_deploy_script(project_type).to_string());
    check_script(&mut errors, "deploy_script", &deploy_script);
    let app_command = match (project_type, body.app_command.as_deref().map(str::trim)) {
        ("generic", None | Some("")) => {
            errors.add(
                "app_command",
                "The app_command is required for a generic site: the command that listens on $PORT.",
            );
            None
        }
        ("node", None | Some("")) => Some("npm start".to_string()),
        (t, Some(c)) if engine_sites::is_app(t) => {
            check_script(&mut errors, "app_command", c);
            Some(c.to_string())
        }
        (_, Some(c)) if !c.is_empty() => {
            errors.add("app_command", "Only node and generic sites run an app command.");
            None
        }
        _ => None,
    };
    let health_path = checked(
        &mut errors,
        "health_check_path",
        Some(body.health_check_path.as_deref().unwrap_or("/")),
        site_input::http_path,
    )
    .unwrap_or_default();
    let (health_status, health_timeout) =
        (body.health_check_status.unwrap_or(200), body.health_check_timeout.unwrap_or(30));
    let keep = body.keep_releases.unwrap_or(5);
    check_numbers(&mut errors, Some(health_status), Some(health_timeout), Some(keep));
    let shared_paths = match &body.shared_paths {
        Some(paths) => check_shared(&mut errors, paths),
        None if project_type == "laravel" => r#"["storage"]"#.to_string(),
        None => "[]".to_string(),
    };
    if v.server.provisioned_at.is_none() {
        errors.add("domain", "The server is not provisioned yet; provision it first.");
    }
    if engine_sites::uses_php(project_type) && v.server.php_version.is_none() {
        errors.add("project_type", "The server has no PHP; choose php_version when creating a server.");
    }
    errors.into_result()?;
    let domain = domain.expect("valid");
    let id = slipway_core::new_id();
    let at = now();
    let site = Site {
        id: id.clone(),
        server_id: v.server.id.clone(),
        organization_id: v.server.organization_id.clone(),
        domain: domain.as_str().to_string(),
        aliases: serde_json::to_string(&aliases).map_err(ApiError::internal)?,
        project_type: project_type.to_string(),
        web_directory,
        repository_url: url.map(|u| state.secrets.seal(&repository_context(&id), u.as_bytes())),
        repository_branch: branch,
        deploy_script,
        app_command,
        health_check_path: health_path,
        health_check_status: i64::from(health_status),
        health_check_timeout: i64::from(health_timeout),
        zero_downtime: body.zero_downtime.unwrap_or(true),
        keep_releases: i64::from(keep),
        app_port: 0,
        status: "installing".into(),
        status_reason: None,
        suspended: false,
        deployment_status: None,
        last_deployed_at: None,
        current_release: None,
        active_port: None,
        git_repository_id: repository.map(|r| r.id),
        created_at: at,
        updated_at: at,
        shared_paths,
    };
    let taken = |state: &AppState| {
        let (server_id, domain) = (site.server_id.clone(), site.domain.clone());
        let store = state.store.clone();
        async move {
            let (sites, _) = store.sites_of_server(&server_id, None, None).await?;
            Ok::<bool, ApiError>(sites.iter().any(|s| s.domain == domain))
        }
    };
    if taken(&state).await? {
        return Err(ApiError::validation("domain", "This server already has a site with this domain."));
    }
    // A conflict here is a concurrent create: of the same domain, or of another site that took
    // the same port pair (then once more picks the next pair).
    let site = match state.store.insert_site(&site).await {
        Err(slipway_store::StoreError::Conflict(_)) if taken(&state).await? => {
            return Err(ApiError::validation("domain", "This server already has a site with this domain."));
        }
        Err(slipway_store::StoreError::Conflict(_)) => state.store.insert_site(&site).await?,
        other => other?,
    };
    let operation = apply_site(&state, &site).await?;
    audit_site(&audit, &site, "site.create", None);
    Ok((StatusCode::CREATED, Data { data: site_resource(&state, &site, Some(operation)) }))
}

/// One site.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/sites/{site}", tag = "sites",
    params(("server" = String, Path), ("site" = String, Path)),
    security(("token" = ["site:read"])),
    responses((status = 200, body = Data<SiteResource>))
)]
pub async fn get_site(State(state): State<AppState>, v: VisibleSite) -> Result<Data<SiteResource>, ApiError> {
    Ok(Data { data: site_resource(&state, &v.site, None) })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSite {
    pub aliases: Option<Vec<String>>,
    pub web_directory: Option<String>,
    /// A new URL; `null` keeps the current one.
    pub repository_url: Option<String>,
    pub branch: Option<String>,
    pub deploy_script: Option<String>,
    pub app_command: Option<String>,
    pub health_check_path: Option<String>,
    #[schema(minimum = 100, maximum = 599)]
    pub health_check_status: Option<u16>,
    #[schema(minimum = 1, maximum = 600)]
    pub health_check_timeout: Option<u32>,
    #[schema(minimum = 1, maximum = 50)]
    pub keep_releases: Option<u32>,
    pub shared_paths: Option<Vec<String>>,
}

/// Edit a site. Changes to aliases or the web directory are applied to the server at once;
/// the others take effect with the next deploy.
#[utoipa::path(
    put, path = "/api/v1/servers/{server}/sites/{site}", tag = "sites",
    params(("server" = String, Path), ("site" = String, Path)),
    request_body = UpdateSite,
    security(("token" = ["site:update"])),
    responses((status = 200, body = Data<SiteResource>))
)]
pub async fn update_site(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
    Json(body): Json<UpdateSite>,
) -> Result<Data<SiteResource>, ApiError> {
    let mut errors = FieldErrors::new();
    let aliases = body.aliases.as_ref().map(|a| check_aliases(&mut errors, a));
    let web_directory = checked(&mut errors, "web_directory", body.web_directory.as_deref(), site_input::relative_path);
    let url = checked(&mut errors, "repository_url", body.repository_url.as_deref(), site_input::git_url);
    let branch = checked(&mut errors, "branch", body.branch.as_deref(), site_input::git_branch);
    if let Some(script) = &body.deploy_script {
        check_script(&mut errors, "deploy_script", script);
    }
    if let Some(command) = &body.app_command {
        check_script(&mut errors, "app_command", command);
        if !engine_sites::is_app(&v.site.project_type) {
            errors.add("app_command", "Only node and generic sites run an app command.");
        } else if command.trim().is_empty() {
            errors.add("app_command", "The app_command may not be empty.");
        }
    }
    let health_path =
        checked(&mut errors, "health_check_path", body.health_check_path.as_deref(), site_input::http_path);
    check_numbers(&mut errors, body.health_check_status, body.health_check_timeout, body.keep_releases);
    let shared_paths = body.shared_paths.as_ref().map(|p| check_shared(&mut errors, p));
    errors.into_result()?;
    let reapply = aliases.is_some() || web_directory.is_some();
    let changes = SiteChanges {
        aliases: aliases.map(|a| serde_json::to_string(&a)).transpose().map_err(ApiError::internal)?,
        web_directory,
        repository_url: url.map(|u| Some(state.secrets.seal(&repository_context(&v.site.id), u.as_bytes()))),
        repository_branch: branch,
        deploy_script: body.deploy_script,
        app_command: body.app_command.map(|c| Some(c.trim().to_string())),
        health_check_path: health_path,
        health_check_status: body.health_check_status.map(i64::from),
        health_check_timeout: body.health_check_timeout.map(i64::from),
        keep_releases: body.keep_releases.map(i64::from),
        suspended: None,
        git_repository_id: None,
        shared_paths,
        zero_downtime: None,
    };
    state.store.update_site(&v.site.id, &changes).await?;
    let site = state.store.site(&v.site.id).await?.ok_or(ApiError::NotFound)?;
    let operation = if reapply { Some(apply_site(&state, &site).await?) } else { None };
    audit_site(&audit, &site, "site.update", None);
    Ok(Data { data: site_resource(&state, &site, operation) })
}

/// Delete a site: its processes, nginx block, PHP pool and directory are removed from the
/// server, then the site from Slipway. Answers 202; the site shows `removing` until then.
#[utoipa::path(
    delete, path = "/api/v1/servers/{server}/sites/{site}", tag = "sites",
    params(("server" = String, Path), ("site" = String, Path)),
    security(("token" = ["site:delete"])),
    responses((status = 202, body = Accepted<SiteResource>))
)]
pub async fn delete_site(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
) -> Result<Accepted<SiteResource>, ApiError> {
    state.store.set_site_status(&v.site.id, "removing", None).await?;
    let operation =
        enqueue_site_job(&state, &v.site, slipway_engine::SITE_REMOVE, SiteJob { site_id: v.site.id.clone() }, 3, None)
            .await?;
    audit_site(&audit, &v.site, "site.delete", None);
    let site = state.store.site(&v.site.id).await?.ok_or(ApiError::NotFound)?;
    Ok(Accepted { message: "Removing the site.".into(), data: site_resource(&state, &site, Some(operation)) })
}

async fn set_suspended(
    state: &AppState,
    v: &VisibleSite,
    audit: &AuditSlot,
    suspended: bool,
) -> Result<Accepted<SiteResource>, ApiError> {
    let changes = SiteChanges { suspended: Some(suspended), ..Default::default() };
    state.store.update_site(&v.site.id, &changes).await?;
    let site = state.store.site(&v.site.id).await?.ok_or(ApiError::NotFound)?;
    let operation = apply_site(state, &site).await?;
    audit_site(audit, &site, if suspended { "site.suspend" } else { "site.resume" }, None);
    let message = if suspended { "Suspending: the site will answer 503." } else { "Resuming the site." };
    Ok(Accepted { message: message.into(), data: site_resource(state, &site, Some(operation)) })
}

/// Suspend a site: nginx answers every request with 503 and a maintenance page.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/suspend", tag = "sites",
    params(("server" = String, Path), ("site" = String, Path)),
    security(("token" = ["site:update"])),
    responses((status = 202, body = Accepted<SiteResource>))
)]
pub async fn suspend_site(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
) -> Result<Accepted<SiteResource>, ApiError> {
    set_suspended(&state, &v, &audit, true).await
}

/// Resume a suspended site.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/resume", tag = "sites",
    params(("server" = String, Path), ("site" = String, Path)),
    security(("token" = ["site:update"])),
    responses((status = 202, body = Accepted<SiteResource>))
)]
pub async fn resume_site(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
) -> Result<Accepted<SiteResource>, ApiError> {
    set_suspended(&state, &v, &audit, false).await
}
