//! Sites on a server, their deployments, releases and environment variables. Everything that
//! touches the server runs as an operation: applying the site (`site.apply`), removing it
//! (`site.remove`) and deploying or rolling back (`site.deploy`, one at a time per site: a
//! second deploy waits behind the first).

use axum::extract::{FromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::site_input::{self, Domain};
use slipway_core::time::now;
use slipway_core::{Ability, Action, FieldErrors, Resource};
use slipway_engine::deploy::{
    ACTION_DEPLOY, ACTION_ENABLE_ZERO_DOWNTIME, ACTION_ROLLBACK, DeployJob, env_context, repository_context,
};
use slipway_engine::sites::{self as engine_sites, SiteJob};
use slipway_store::{Deployment, Server, Site, SiteChanges};
use utoipa::{IntoParams, ToSchema};

use super::servers::VisibleServer;
use crate::audit::AuditSlot;
use crate::auth::Principal;
use crate::envelope::{Accepted, Data, Paginated};
use crate::error::ApiError;
use crate::extract::{Json, Page};
use crate::state::AppState;

const fn ability(action: Action) -> Ability {
    Ability::new(Resource::Site, action)
}

/// A site the caller can see, from `{server}` and `{site}`, or 404.
#[derive(Debug)]
pub struct VisibleSite {
    pub site: Site,
    pub server: Server,
    pub principal: Principal,
}

impl FromRequestParts<AppState> for VisibleSite {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let VisibleServer { server, principal } = VisibleServer::from_request_parts(parts, state).await?;
        let id = crate::extract::path_param(parts, state, "site").await?;
        let site = state.store.site(&id).await?.ok_or(ApiError::NotFound)?;
        if site.server_id != server.id || !principal.may_touch_site(&site.id) {
            return Err(ApiError::NotFound);
        }
        Ok(VisibleSite { site, server, principal })
    }
}

impl VisibleSite {
    async fn authorize(&self, state: &AppState, action: Action) -> Result<(), ApiError> {
        self.principal.authorize_in(state, &self.server.organization_id, ability(action)).await.map(|_| ())
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Repository {
    /// The URL with any credentials replaced by `***`.
    pub url: Option<String>,
    pub branch: String,
    /// The git repository it deploys, when it uses one.
    pub git_repository_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthCheck {
    pub path: String,
    pub expected_status: i64,
    /// Seconds the new release has to answer as expected.
    pub timeout: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SiteResource {
    pub id: String,
    pub server_id: String,
    pub domain: String,
    pub aliases: Vec<String>,
    /// `static`, `php`, `laravel`, `node` or `generic`.
    pub project_type: String,
    pub web_directory: String,
    pub repository: Repository,
    pub deploy_script: String,
    /// The command that runs the app (node, generic); it must listen on `$PORT`.
    pub app_command: Option<String>,
    pub health_check: HealthCheck,
    /// Releases with an atomic switch (`true`), or one working tree updated in place (`false`;
    /// see `enable-zero-downtime`).
    pub zero_downtime: bool,
    pub keep_releases: i64,
    /// Paths kept across releases, linked into each from the site's `shared/` directory.
    pub shared_paths: Vec<String>,
    /// The site's own Unix user on the server: its files, deploy script, PHP and app run as it,
    /// so one site's code cannot read another's.
    pub unix_user: String,
    /// `installing`, `installed`, `failed` or `removing`.
    pub status: String,
    pub status_reason: Option<String>,
    pub suspended: bool,
    /// The last deployment's status: `queued`, `running`, `succeeded`, `failed`, `cancelled`.
    pub deployment_status: Option<String>,
    pub last_deployed_at: Option<DateTime<Utc>>,
    /// The id of the release that is live (a deployment id).
    pub current_release: Option<String>,
    /// The operation applying the last change, when this request queued one.
    pub operation_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn site_resource(state: &AppState, s: &Site, operation_id: Option<String>) -> SiteResource {
    let url = s
        .repository_url
        .as_ref()
        .and_then(|sealed| state.secrets.open(&repository_context(&s.id), sealed).ok())
        .map(|bytes| site_input::redact_url(&String::from_utf8_lossy(&bytes)));
    SiteResource {
        id: s.id.clone(),
        server_id: s.server_id.clone(),
        domain: s.domain.clone(),
        aliases: serde_json::from_str(&s.aliases).unwrap_or_default(),
        project_type: s.project_type.clone(),
        web_directory: s.web_directory.clone(),
        repository: Repository {
            url,
            branch: s.repository_branch.clone(),
            git_repository_id: s.git_repository_id.clone(),
        },
        deploy_script: s.deploy_script.clone(),
        app_command: s.app_command.clone(),
        health_check: HealthCheck {
            path: s.health_check_path.clone(),
            expected_status: s.health_check_status,
            timeout: s.health_check_timeout,
        },
        zero_downtime: s.zero_downtime,
        keep_releases: s.keep_releases,
        shared_paths: serde_json::from_str(&s.shared_paths).unwrap_or_default(),
        unix_user: engine_sites::site_user(&s.id).unwrap_or_default(),
        status: s.status.clone(),
        status_reason: s.status_reason.clone(),
        suspended: s.suspended,
        deployment_status: s.deployment_status.clone(),
        last_deployed_at: s.last_deployed_at,
        current_release: s.current_release.clone(),
        operation_id,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

/// Queues a job about a site (one at a time per site).
async fn enqueue_site_job(
    state: &AppState,
    site: &Site,
    kind: &str,
    payload: impl Serialize,
    attempts: i64,
    id: Option<String>,
) -> Result<String, ApiError> {
    enqueue_site_job_at(state, site, kind, payload, attempts, id, None).await
}

async fn enqueue_site_job_at(
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

async fn apply_site(state: &AppState, site: &Site) -> Result<String, ApiError> {
    // Applying renders the whole site again, so it is safe to retry.
    enqueue_site_job(state, site, slipway_engine::SITE_APPLY, SiteJob { site_id: site.id.clone() }, 3, None).await
}

fn audit_site(audit: &AuditSlot, site: &Site, action: &str, detail: Option<String>) {
    audit.note(|n| {
        n.action = Some(action.into());
        n.organization_id = Some(site.organization_id.clone());
        n.resource_id = Some(site.id.clone());
        n.detail = detail;
    });
}

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
    v.principal.authorize_in(&state, &v.server.organization_id, ability(Action::Read)).await?;
    let (rows, total) = state.store.sites_of_server(&v.server.id, Some(cursor.request)).await?;
    let visible: Vec<SiteResource> =
        rows.iter().filter(|s| v.principal.may_touch_site(&s.id)).map(|s| site_resource(&state, s, None)).collect();
    Ok(cursor.page(visible, total))
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
    v.principal.authorize_in(&state, &v.server.organization_id, ability(Action::Create)).await?;
    if v.principal.site_ids.is_some() {
        return Err(ApiError::validation("domain", "A token restricted to some sites cannot create sites."));
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
            let (sites, _) = store.sites_of_server(&server_id, None).await?;
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
    v.authorize(&state, Action::Read).await?;
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
    v.authorize(&state, Action::Update).await?;
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
    v.authorize(&state, Action::Delete).await?;
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
    v.authorize(state, Action::Update).await?;
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

// --- deployments ---

#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentResource {
    pub id: String,
    pub site_id: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// `deploy` (a new release, or in place), `rollback` or `enable-zero-downtime`.
    pub action: String,
    /// `api`, `webhook`, `schedule`, `rollback`, `cli` or `dashboard`.
    pub trigger: String,
    pub triggered_by_user: Option<String>,
    pub triggered_by_token: Option<String>,
    /// For a rollback: the release it went back to.
    pub release: Option<String>,
    pub commit_sha: Option<String>,
    pub commit_message: Option<String>,
    pub commit_author: Option<String>,
    /// The step that failed: `connect`, `fetch`, `build`, `health check` or `switch`.
    pub failed_step: Option<String>,
    pub failure_reason: Option<String>,
    /// The operation running it (its log is the deployment's log).
    pub operation_id: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Seconds from start to finish.
    pub duration: Option<f64>,
}

impl From<&Deployment> for DeploymentResource {
    fn from(d: &Deployment) -> Self {
        DeploymentResource {
            id: d.id.clone(),
            site_id: d.site_id.clone(),
            status: d.status.clone(),
            action: d.action.clone(),
            trigger: d.trigger_kind.clone(),
            triggered_by_user: d.triggered_by_user.clone(),
            triggered_by_token: d.triggered_by_token.clone(),
            release: d.release_of.clone(),
            commit_sha: d.commit_sha.clone(),
            commit_message: d.commit_message.clone(),
            commit_author: d.commit_author.clone(),
            failed_step: d.failed_step.clone(),
            failure_reason: d.failure_reason.clone(),
            operation_id: d.job_id.clone(),
            created_at: d.created_at,
            started_at: d.started_at,
            finished_at: d.finished_at,
            duration: match (d.started_at, d.finished_at) {
                (Some(s), Some(f)) => Some((f - s).num_milliseconds() as f64 / 1000.0),
                _ => None,
            },
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// What started it: `api` (default), `cli` or `dashboard`.
    pub trigger: Option<String>,
}

/// Who started a deployment by hand: `api` (default), `cli` or `dashboard`.
fn checked_trigger(trigger: Option<String>) -> Result<String, ApiError> {
    let trigger = trigger.unwrap_or_else(|| "api".into());
    if !["api", "cli", "dashboard"].contains(&trigger.as_str()) {
        return Err(ApiError::validation("trigger", "The trigger must be api, cli or dashboard."));
    }
    Ok(trigger)
}

fn has_repository(site: &Site) -> bool {
    site.repository_url.is_some() || site.git_repository_id.is_some()
}

/// What a deployment is to do.
pub(crate) enum Plan {
    /// Build the branch's newest commit, or `commit` (a pushed one).
    Deploy {
        commit: Option<String>,
    },
    Rollback {
        release: String,
    },
    EnableZeroDowntime,
}

/// Queues a deployment (or rollback) of a site; the message says whether it waits behind one.
pub(crate) async fn start_deployment(
    state: &AppState,
    site: &Site,
    principal: Option<&Principal>,
    trigger: &str,
    plan: Plan,
    run_at: Option<slipway_core::time::Timestamp>,
) -> Result<Accepted<DeploymentResource>, ApiError> {
    let (action, release_of, requested_commit) = match plan {
        Plan::Deploy { commit } => (ACTION_DEPLOY, None, commit),
        Plan::Rollback { release } => (ACTION_ROLLBACK, Some(release), None),
        Plan::EnableZeroDowntime => (ACTION_ENABLE_ZERO_DOWNTIME, None, None),
    };
    let (busy, _) =
        state.store.deployments_of_site(&site.id, slipway_core::PageRequest { page: 1, per_page: 1 }).await?;
    let waiting = busy.first().is_some_and(|d| matches!(d.status.as_str(), "queued" | "running"));
    let deployment = Deployment {
        id: slipway_core::new_id(),
        site_id: site.id.clone(),
        server_id: site.server_id.clone(),
        organization_id: site.organization_id.clone(),
        job_id: slipway_core::new_id(),
        status: "queued".into(),
        trigger_kind: trigger.into(),
        triggered_by_user: principal.and_then(|p| p.user_id.clone()),
        triggered_by_token: principal.map(|p| p.token_id.clone()),
        release_of,
        commit_sha: None,
        commit_message: None,
        commit_author: None,
        port: None,
        failed_step: None,
        failure_reason: None,
        release_present: false,
        created_at: now(),
        started_at: None,
        finished_at: None,
        requested_commit,
        action: action.into(),
    };
    state.store.insert_deployment(&deployment).await?;
    state.store.record_site_deployment(&site.id, "queued", None, None).await?;
    // Not retried: a deployment interrupted half-way is reported, and the user deploys again.
    let payload = DeployJob { deployment_id: deployment.id.clone() };
    enqueue_site_job_at(state, site, slipway_engine::SITE_DEPLOY, payload, 1, Some(deployment.job_id.clone()), run_at)
        .await?;
    let message = if let Some(at) = run_at {
        format!("Deployment scheduled for {}.", at.to_rfc3339())
    } else if waiting {
        "Queued behind the deployment in progress; it starts when that one ends.".to_string()
    } else {
        "Deployment queued.".to_string()
    };
    Ok(Accepted { message, data: (&deployment).into() })
}

/// Deploy the site's branch: fetch, build, start and health-check the new release, then switch
/// to it atomically. One deployment runs at a time per site; another request waits behind it
/// (the message says so). Follow the deployment (or its log) for the outcome.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/deploy", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path)),
    request_body = DeployRequest,
    security(("token" = ["site:deploy"])),
    responses((status = 202, body = Accepted<DeploymentResource>))
)]
pub async fn deploy_site(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
    Json(body): Json<DeployRequest>,
) -> Result<Accepted<DeploymentResource>, ApiError> {
    v.authorize(&state, Action::Deploy).await?;
    let trigger = checked_trigger(body.trigger)?;
    if !has_repository(&v.site) {
        return Err(ApiError::validation(
            "repository_url",
            "The site has no repository to deploy; set repository_url or git_repository_id.",
        ));
    }
    if v.site.status == "removing" {
        return Err(ApiError::validation("site", "The site is being removed."));
    }
    let accepted =
        start_deployment(&state, &v.site, Some(&v.principal), &trigger, Plan::Deploy { commit: None }, None).await?;
    audit_site(&audit, &v.site, "site.deploy", Some(format!("deployment {}", accepted.data.id)));
    Ok(accepted)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The release to go back to (see `releases`); default the one before the live one.
    pub release: Option<String>,
}

/// Switch back to a kept release (health-checked first, like a deploy).
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/rollback", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path)),
    request_body = RollbackRequest,
    security(("token" = ["site:deploy"])),
    responses((status = 202, body = Accepted<DeploymentResource>))
)]
pub async fn rollback_site(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
    Json(body): Json<RollbackRequest>,
) -> Result<Accepted<DeploymentResource>, ApiError> {
    v.authorize(&state, Action::Deploy).await?;
    if !v.site.zero_downtime {
        return Err(ApiError::validation(
            "release",
            "This site deploys in place and keeps no releases; enable zero-downtime deploys to roll back.",
        ));
    }
    let releases = state.store.releases_of_site(&v.site.id).await?;
    let current = v.site.current_release.as_deref();
    let wanted = body.release;
    let target = match wanted {
        Some(id) => releases.iter().find(|r| r.id == id).ok_or_else(|| {
            ApiError::validation("release", "No such release is kept on the server; see GET …/releases.")
        })?,
        None => {
            // The newest kept release older than the live one.
            let current_index = releases.iter().position(|r| Some(r.id.as_str()) == current);
            let candidates = match current_index {
                Some(i) => &releases[i + 1..],
                None => &releases[..],
            };
            candidates
                .first()
                .ok_or_else(|| ApiError::validation("release", "There is no earlier release to roll back to."))?
        }
    };
    if Some(target.id.as_str()) == current {
        return Err(ApiError::validation("release", "This release is already live."));
    }
    let plan = Plan::Rollback { release: target.id.clone() };
    let accepted = start_deployment(&state, &v.site, Some(&v.principal), "rollback", plan, None).await?;
    audit_site(&audit, &v.site, "site.rollback", Some(format!("to release {}", target.id)));
    Ok(accepted)
}

/// Convert an in-place site to releases with an atomic switch, without downtime: the live
/// working tree is copied into a first release, which is started and health-checked next to the
/// running site, then switched to like any deploy (the answer is that deployment). A site never
/// deployed is converted at once (200). Needs `site:update` and `site:deploy`.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/enable-zero-downtime", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path)),
    request_body = DeployRequest,
    security(("token" = ["site:update", "site:deploy"])),
    responses(
        (status = 202, body = Accepted<DeploymentResource>),
        (status = 200, description = "A site never deployed, converted at once", body = Data<SiteResource>)
    )
)]
pub async fn enable_zero_downtime(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
    Json(body): Json<DeployRequest>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    v.authorize(&state, Action::Update).await?;
    v.authorize(&state, Action::Deploy).await?;
    let trigger = checked_trigger(body.trigger)?;
    if v.site.zero_downtime {
        return Err(ApiError::validation("zero_downtime", "This site already deploys with zero downtime."));
    }
    if v.site.status == "removing" {
        return Err(ApiError::validation("site", "The site is being removed."));
    }
    // Any deployment not ended (scheduled ones included) would run in place after the conversion.
    let (recent, _) =
        state.store.deployments_of_site(&v.site.id, slipway_core::PageRequest { page: 1, per_page: 100 }).await?;
    if recent.iter().any(|d| matches!(d.status.as_str(), "queued" | "running")) {
        return Err(ApiError::Conflict(
            "A deployment is queued, scheduled or running; convert the site when it ends (or cancel it).".into(),
        ));
    }
    if v.site.current_release.is_none() {
        let changes = SiteChanges { zero_downtime: Some(true), ..Default::default() };
        state.store.update_site(&v.site.id, &changes).await?;
        let site = state.store.site(&v.site.id).await?.ok_or(ApiError::NotFound)?;
        audit_site(&audit, &site, "site.enable-zero-downtime", None);
        return Ok(Data { data: site_resource(&state, &site, None) }.into_response());
    }
    let mut accepted =
        start_deployment(&state, &v.site, Some(&v.principal), &trigger, Plan::EnableZeroDowntime, None).await?;
    accepted.message = "Converting to zero-downtime releases: the live site is copied into a first release, \
                        health-checked and switched to."
        .into();
    audit_site(&audit, &v.site, "site.enable-zero-downtime", Some(format!("deployment {}", accepted.data.id)));
    Ok(accepted.into_response())
}

/// The site's deployments, newest first.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/sites/{site}/deployments", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path), crate::extract::PageParams),
    security(("token" = ["site:read"])),
    responses((status = 200, body = Paginated<DeploymentResource>))
)]
pub async fn list_deployments(
    State(state): State<AppState>,
    v: VisibleSite,
    Page(cursor): Page,
) -> Result<Paginated<DeploymentResource>, ApiError> {
    v.authorize(&state, Action::Read).await?;
    let (rows, total) = state.store.deployments_of_site(&v.site.id, cursor.request).await?;
    Ok(cursor.page(rows.iter().map(DeploymentResource::from).collect(), total))
}

/// A deployment of this site, from `{deployment}`, or 404.
async fn find_deployment(state: &AppState, v: &VisibleSite, parts_id: &str) -> Result<Deployment, ApiError> {
    match state.store.deployment(parts_id).await? {
        Some(d) if d.site_id == v.site.id => Ok(d),
        _ => Err(ApiError::NotFound),
    }
}

/// One deployment.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/sites/{site}/deployments/{deployment}", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path), ("deployment" = String, Path)),
    security(("token" = ["site:read"])),
    responses((status = 200, body = Data<DeploymentResource>))
)]
pub async fn get_deployment(
    State(state): State<AppState>,
    v: VisibleSite,
    ids: axum::extract::Path<(String, String, String)>,
) -> Result<Data<DeploymentResource>, ApiError> {
    v.authorize(&state, Action::Read).await?;
    let d = find_deployment(&state, &v, &ids.2).await?;
    Ok(Data { data: (&d).into() })
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct LogQuery {
    /// Only lines after this `seq` (to follow a running deployment).
    pub after: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogLine {
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// `stdout`, `stderr` or `info`.
    pub stream: String,
    pub line: String,
}

/// The deployment's log (secrets masked), oldest first, up to 1000 lines after `after`.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/sites/{site}/deployments/{deployment}/log", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path), ("deployment" = String, Path), LogQuery),
    security(("token" = ["site:read"])),
    responses((status = 200, body = Data<Vec<LogLine>>))
)]
pub async fn deployment_log(
    State(state): State<AppState>,
    v: VisibleSite,
    ids: axum::extract::Path<(String, String, String)>,
    Query(query): Query<LogQuery>,
) -> Result<Data<Vec<LogLine>>, ApiError> {
    v.authorize(&state, Action::Read).await?;
    let d = find_deployment(&state, &v, &ids.2).await?;
    let lines = state.store.job_log(&d.job_id, query.after.unwrap_or(0).max(0), 1000).await?;
    let data = lines.into_iter().map(|l| LogLine { seq: l.seq, at: l.at, stream: l.stream, line: l.line }).collect();
    Ok(Data { data })
}

/// Stop a deployment: a queued one never starts; a running one has its remote process killed,
/// its half-built release removed and the site unlocked, with the previous release serving.
/// Once the switch has begun it runs to its end (the answer is then 409 or the deploy succeeds).
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/deployments/{deployment}/cancel", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path), ("deployment" = String, Path)),
    security(("token" = ["site:deploy"])),
    responses((status = 202, body = Accepted<DeploymentResource>))
)]
pub async fn cancel_deployment(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
    ids: axum::extract::Path<(String, String, String)>,
) -> Result<Accepted<DeploymentResource>, ApiError> {
    v.authorize(&state, Action::Deploy).await?;
    let d = find_deployment(&state, &v, &ids.2).await?;
    let message = match state.store.cancel_job(&d.job_id, now()).await? {
        slipway_store::CancelOutcome::Cancelled => {
            let update = slipway_store::DeploymentUpdate {
                status: Some("cancelled".into()),
                failure_reason: Some("cancelled before it started".into()),
                finished_at: Some(now()),
                ..Default::default()
            };
            state.store.update_deployment(&d.id, &update).await?;
            state.store.record_site_deployment(&v.site.id, "cancelled", None, None).await?;
            "Cancelled before it started."
        }
        slipway_store::CancelOutcome::Requested => "Cancellation requested; the deployment stops within seconds.",
        slipway_store::CancelOutcome::AlreadyFinished => {
            return Err(ApiError::Conflict("The deployment has already finished.".into()));
        }
        slipway_store::CancelOutcome::NotFound => return Err(ApiError::NotFound),
    };
    audit_site(&audit, &v.site, "deployment.cancel", Some(format!("deployment {}", d.id)));
    let d = state.store.deployment(&d.id).await?.ok_or(ApiError::NotFound)?;
    Ok(Accepted { message: message.into(), data: (&d).into() })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReleaseResource {
    /// The release id (the deployment that built it).
    pub id: String,
    pub commit_sha: Option<String>,
    pub commit_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub current: bool,
}

/// Releases kept on the server, newest first, and which one is live.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/sites/{site}/releases", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path)),
    security(("token" = ["site:read"])),
    responses((status = 200, body = Data<Vec<ReleaseResource>>))
)]
pub async fn list_releases(
    State(state): State<AppState>,
    v: VisibleSite,
) -> Result<Data<Vec<ReleaseResource>>, ApiError> {
    v.authorize(&state, Action::Read).await?;
    let releases = state.store.releases_of_site(&v.site.id).await?;
    let data = releases
        .iter()
        .map(|r| ReleaseResource {
            id: r.id.clone(),
            commit_sha: r.commit_sha.clone(),
            commit_message: r.commit_message.clone(),
            created_at: r.created_at,
            current: v.site.current_release.as_deref() == Some(r.id.as_str()),
        })
        .collect();
    Ok(Data { data })
}

// --- environment variables ---

#[derive(Debug, Serialize, ToSchema)]
pub struct EnvVarResource {
    pub key: String,
    /// `null` unless asked for with `?reveal=true` (needs `site:update`).
    pub value: Option<String>,
    pub created_at: DateTime<Utc>,
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
    params(("server" = String, Path), ("site" = String, Path), RevealQuery),
    security(("token" = ["site:read"])),
    responses((status = 200, body = Data<Vec<EnvVarResource>>))
)]
pub async fn list_env(
    State(state): State<AppState>,
    v: VisibleSite,
    Query(query): Query<RevealQuery>,
) -> Result<Data<Vec<EnvVarResource>>, ApiError> {
    v.authorize(&state, Action::Read).await?;
    let reveal = query.reveal.unwrap_or(false);
    if reveal {
        v.authorize(&state, Action::Update).await?;
    }
    let mut data = Vec::new();
    for var in state.store.site_env(&v.site.id).await? {
        let value = if reveal { Some(open_env(&state, &v.site.id, &var.key, &var.value)?) } else { None };
        data.push(EnvVarResource { key: var.key, value, created_at: var.created_at, updated_at: var.updated_at });
    }
    Ok(Data { data })
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
    v.authorize(&state, Action::Update).await?;
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
    if query.deploy == Some(true) {
        v.authorize(&state, Action::Deploy).await?;
    }
    errors.into_result()?;
    for (key, value) in &body.variables {
        let sealed = state.secrets.seal(&env_context(&v.site.id, key), value.as_bytes());
        state.store.put_site_env(&v.site.id, key, &sealed).await?;
    }
    let keys: Vec<String> = body.variables.keys().cloned().collect();
    audit_site(&audit, &v.site, "site.env.set", Some(format!("keys {}", keys.join(", "))));
    let deployment = if query.deploy == Some(true) && has_repository(&v.site) {
        Some(
            start_deployment(&state, &v.site, Some(&v.principal), "api", Plan::Deploy { commit: None }, None)
                .await?
                .data,
        )
    } else {
        None
    };
    Ok(Data { data: EnvChange { keys, deployment } })
}

/// Remove a variable (from the next deploy on; `?deploy=true` starts one).
#[utoipa::path(
    delete, path = "/api/v1/servers/{server}/sites/{site}/environment-variables/{key}", tag = "environment",
    params(("server" = String, Path), ("site" = String, Path), ("key" = String, Path), DeployQuery),
    security(("token" = ["site:update"])),
    responses((status = 200, body = Data<EnvChange>))
)]
pub async fn delete_env(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
    ids: axum::extract::Path<(String, String, String)>,
    Query(query): Query<DeployQuery>,
) -> Result<Data<EnvChange>, ApiError> {
    v.authorize(&state, Action::Update).await?;
    if query.deploy == Some(true) {
        v.authorize(&state, Action::Deploy).await?;
    }
    if !state.store.delete_site_env(&v.site.id, &ids.2).await? {
        return Err(ApiError::NotFound);
    }
    audit_site(&audit, &v.site, "site.env.delete", Some(format!("key {}", ids.2)));
    let deployment = if query.deploy == Some(true) && has_repository(&v.site) {
        Some(
            start_deployment(&state, &v.site, Some(&v.principal), "api", Plan::Deploy { commit: None }, None)
                .await?
                .data,
        )
    } else {
        None
    };
    Ok(Data { data: EnvChange { keys: vec![], deployment } })
}

// --- scheduled deploys ---

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDeploy {
    /// When to deploy, RFC 3339 (e.g. `2026-12-01T02:00:00Z`); within a year from now.
    pub at: String,
}

/// Deploy at a given time. The deployment is `queued` until then (listed with the others), and
/// runs like any deploy; `cancel-scheduled-deploy` drops it.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/schedule-deploy", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path)),
    request_body = ScheduleDeploy,
    security(("token" = ["site:deploy"])),
    responses((status = 202, body = Accepted<DeploymentResource>))
)]
pub async fn schedule_deploy(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
    Json(body): Json<ScheduleDeploy>,
) -> Result<Accepted<DeploymentResource>, ApiError> {
    v.authorize(&state, Action::Deploy).await?;
    let at = chrono::DateTime::parse_from_rfc3339(body.at.trim())
        .map_err(|_| ApiError::validation("at", "The at field must be an RFC 3339 time, e.g. 2026-12-01T02:00:00Z."))?
        .with_timezone(&Utc);
    if at <= now() || at > now() + chrono::Duration::days(366) {
        return Err(ApiError::validation("at", "The at field must be in the future, within a year."));
    }
    if !has_repository(&v.site) {
        return Err(ApiError::validation("repository_url", "The site has no repository to deploy."));
    }
    let accepted =
        start_deployment(&state, &v.site, Some(&v.principal), "schedule", Plan::Deploy { commit: None }, Some(at))
            .await?;
    audit_site(&audit, &v.site, "site.schedule-deploy", Some(format!("deployment {} at {at}", accepted.data.id)));
    Ok(accepted)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CancelledSchedule {
    /// The scheduled deployments that were cancelled.
    pub cancelled: Vec<String>,
}

/// Cancel the site's scheduled deployments that have not started.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/cancel-scheduled-deploy", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path)),
    security(("token" = ["site:deploy"])),
    responses((status = 200, body = Data<CancelledSchedule>))
)]
pub async fn cancel_scheduled_deploy(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
) -> Result<Data<CancelledSchedule>, ApiError> {
    v.authorize(&state, Action::Deploy).await?;
    let mut cancelled = Vec::new();
    let mut page = 1;
    loop {
        let (rows, _) =
            state.store.deployments_of_site(&v.site.id, slipway_core::PageRequest { page, per_page: 100 }).await?;
        if rows.is_empty() {
            break;
        }
        for d in rows.iter().filter(|d| d.trigger_kind == "schedule" && d.status == "queued") {
            if state.store.cancel_job(&d.job_id, now()).await? == slipway_store::CancelOutcome::Cancelled {
                let update = slipway_store::DeploymentUpdate {
                    status: Some("cancelled".into()),
                    failure_reason: Some("scheduled deploy cancelled".into()),
                    finished_at: Some(now()),
                    ..Default::default()
                };
                state.store.update_deployment(&d.id, &update).await?;
                cancelled.push(d.id.clone());
            }
        }
        page += 1;
    }
    audit_site(&audit, &v.site, "site.cancel-scheduled-deploy", Some(format!("{} cancelled", cancelled.len())));
    Ok(Data { data: CancelledSchedule { cancelled } })
}

// --- live log ---

/// The deployment's log as server-sent events: one `line` event per log line (its data is the
/// line as JSON, with `seq`), as they arrive, then one `end` event with the deployment. Resume
/// with `?after=SEQ` (or the `Last-Event-ID` header).
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/sites/{site}/deployments/{deployment}/log/stream", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path), ("deployment" = String, Path), LogQuery),
    security(("token" = ["site:read"])),
    responses((status = 200, content_type = "text/event-stream", description = "Server-sent events"))
)]
pub async fn deployment_log_stream(
    State(state): State<AppState>,
    v: VisibleSite,
    ids: axum::extract::Path<(String, String, String)>,
    headers: axum::http::HeaderMap,
    Query(query): Query<LogQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    use axum::response::sse::{Event, KeepAlive, Sse};
    v.authorize(&state, Action::Read).await?;
    let d = find_deployment(&state, &v, &ids.2).await?;
    let resume = headers.get("last-event-id").and_then(|h| h.to_str().ok()).and_then(|s| s.parse::<i64>().ok());
    let after = query.after.or(resume).unwrap_or(0).max(0);
    /// Where the stream is: the last line sent, and whether the end was sent.
    struct Cursor {
        state: AppState,
        deployment_id: String,
        job_id: String,
        after: i64,
        done: bool,
        pending: std::collections::VecDeque<Event>,
    }
    let cursor =
        Cursor { state, deployment_id: d.id, job_id: d.job_id, after, done: false, pending: Default::default() };
    let stream = futures_util::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(event) = c.pending.pop_front() {
                return Some((Ok::<Event, std::convert::Infallible>(event), c));
            }
            if c.done {
                return None;
            }
            // Read the deployment first: lines written before it ended are then all visible.
            let deployment = c.state.store.deployment(&c.deployment_id).await.ok().flatten();
            let lines = c.state.store.job_log(&c.job_id, c.after, 500).await.unwrap_or_default();
            for line in &lines {
                c.after = line.seq;
                let data =
                    serde_json::json!({"seq": line.seq, "at": line.at, "stream": line.stream, "line": line.line});
                c.pending.push_back(Event::default().event("line").id(line.seq.to_string()).data(data.to_string()));
            }
            let ended =
                deployment.as_ref().is_none_or(|d| matches!(d.status.as_str(), "succeeded" | "failed" | "cancelled"));
            if ended && lines.is_empty() {
                let data = deployment
                    .as_ref()
                    .map(|d| serde_json::to_string(&DeploymentResource::from(d)).unwrap_or_default());
                c.pending.push_back(Event::default().event("end").data(data.unwrap_or_else(|| "{}".into())));
                c.done = true;
            } else if lines.is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

// --- pulling the environment from the server ---

/// Import the variables in the `.env` on the server (the site's shared `.env`) into Slipway,
/// replacing those with the same keys. Runs as an operation; values never appear in its log.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/environment-variables/pull", tag = "environment",
    params(("server" = String, Path), ("site" = String, Path)),
    security(("token" = ["site:update"])),
    responses((status = 202, body = Accepted<String>, description = "The operation id"))
)]
pub async fn pull_env(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
) -> Result<Accepted<String>, ApiError> {
    v.authorize(&state, Action::Update).await?;
    let operation = enqueue_site_job(
        &state,
        &v.site,
        slipway_engine::SITE_ENV_PULL,
        SiteJob { site_id: v.site.id.clone() },
        1,
        None,
    )
    .await?;
    audit_site(&audit, &v.site, "site.env.pull", Some(format!("operation {operation}")));
    Ok(Accepted { message: "Reading .env from the server.".into(), data: operation })
}
