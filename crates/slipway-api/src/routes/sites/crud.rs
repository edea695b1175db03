//! Creating, reading, editing, suspending and deleting sites.

use axum::extract::State;
use axum::http::StatusCode;
use slipway_core::time::now;
use slipway_core::{FieldErrors, InstallStatus, RunStatus};
use slipway_engine::deploy::repository_context;
use slipway_engine::sites::SiteJob;
use slipway_store::{Site, SiteChanges};

use crate::audit::AuditSlot;
use crate::envelope::{Accepted, Data, Paginated};
use crate::error::ApiError;
use crate::extract::{Json, Page};
use crate::jobs::enqueue;
use crate::routes::servers::VisibleServer;
use crate::state::AppState;

use super::*;

/// Filters of the list of all sites.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SitesQuery {
    /// Only sites in this state.
    pub status: Option<InstallStatus>,
    /// Only sites whose last deployment is in this state (`failed` lists the sites that need a
    /// look).
    pub deployment_status: Option<RunStatus>,
}

/// Every site of your organizations, on every server (oldest first); a token restricted to some
/// servers or sites lists only those.
#[utoipa::path(
    get, path = "/api/v1/sites", tag = "sites",
    params(crate::extract::PageParams, crate::extract::CursorParams, SitesQuery),
    security(("token" = ["site:read"])),
    responses((status = 200, body = Paginated<SiteResource>))
)]
pub async fn list_all_sites(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
    Page(cursor): Page,
    crate::extract::Query(query): crate::extract::Query<SitesQuery>,
) -> Result<Paginated<SiteResource>, ApiError> {
    let organization_ids = caller.organizations(&state).await?;
    let filter = slipway_store::SiteFilter {
        organization_ids: &organization_ids,
        server_ids: caller.principal.server_ids.as_deref(),
        site_ids: caller.principal.site_ids.as_deref(),
        status: query.status,
        deployment_status: query.deployment_status,
    };
    let (rows, total) = state.store.sites_where(filter, cursor.seeking()).await?;
    Ok(cursor.seek_page(rows.iter().map(|s| site_resource(&state, s, None)).collect(), total, |s| &s.id))
}

/// A server's sites.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/sites", tag = "sites",
    params(("server" = String, Path), crate::extract::PageParams, crate::extract::CursorParams),
    security(("token" = ["site:read"])),
    responses((status = 200, body = Paginated<SiteResource>))
)]
pub async fn list_sites(
    State(state): State<AppState>,
    v: crate::auth::Authorized<crate::routes::servers::SeenServer>,
    Page(cursor): Page,
) -> Result<Paginated<SiteResource>, ApiError> {
    // Filtered in the query, so that `meta.total` and the pages count only what the token sees.
    let only = v.principal.site_ids.as_deref();
    let (rows, total) = state.store.sites_of_server(&v.server.id, only, Some(cursor.seeking())).await?;
    Ok(cursor.seek_page(rows.iter().map(|s| site_resource(&state, s, None)).collect(), total, |s| &s.id))
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
    // Everything about the input alone, then what depends on the server and organization:
    // every problem is reported at once.
    let (new, mut errors) = match NewSite::try_from(body) {
        Ok(new) => (Some(new), FieldErrors::new()),
        Err(errors) => (None, errors),
    };
    if new.as_ref().is_some_and(|n| n.git_repository_id.is_some()) {
        refuse_repository_to_restricted(&v.principal)?;
    }
    let repository = match new.as_ref().and_then(|n| n.git_repository_id.as_deref()) {
        Some(id) => match state.store.git_repository(id).await? {
            Some(r) if r.organization_id == v.server.organization_id => Some(r),
            _ => {
                errors.add("git_repository_id", "No such git repository in this server's organization.");
                None
            }
        },
        None => None,
    };
    if v.server.provisioned_at.is_none() {
        errors.add("domain", "The server is not provisioned yet; provision it first.");
    }
    if new.as_ref().is_some_and(|n| n.project_type.uses_php()) && v.server.php_version.is_none() {
        errors.add("project_type", "The server has no PHP; choose php_version when creating a server.");
    }
    if let Some(new) = &new {
        let domain = new.domain.as_str();
        let others = OtherNames::of(&state, &v.principal, &v.server.id, None).await?;
        // Another site's domain has its own message below (also for a concurrent create).
        if others.names.iter().all(|(_, owner)| owner != domain)
            && let Some(whose) = others.taken(domain)
        {
            errors.add("domain", format!("The domain is a name of {whose}."));
        }
        check_aliases_free(&mut errors, &others, &new.aliases);
    }
    errors.into_result()?;
    let new = new.expect("valid when there are no errors");
    let branch = new.branch.clone().unwrap_or_else(|| repository.as_ref().map_or("main", |r| r.branch.as_str()).into());
    let id = slipway_core::new_id();
    let at = now();
    let site = Site {
        id: id.clone(),
        server_id: v.server.id.clone(),
        organization_id: v.server.organization_id.clone(),
        domain: new.domain.as_str().to_string(),
        aliases: serde_json::to_string(&new.aliases).map_err(ApiError::internal)?,
        project_type: new.project_type,
        web_directory: new.web_directory,
        repository_url: new.repository_url.map(|u| state.secrets.seal(&repository_context(&id), u.as_bytes())),
        repository_branch: branch,
        deploy_script: new.deploy_script,
        app_command: new.app_command,
        health_check_path: new.health.path,
        health_check_status: i64::from(new.health.status),
        health_check_timeout: i64::from(new.health.timeout),
        zero_downtime: new.zero_downtime,
        keep_releases: i64::from(new.keep_releases),
        app_port: 0,
        status: InstallStatus::Installing,
        status_reason: None,
        suspended: false,
        deployment_status: None,
        last_deployed_at: None,
        current_release: None,
        active_port: None,
        git_repository_id: repository.map(|r| r.id),
        created_at: at,
        updated_at: at,
        shared_paths: serde_json::to_string(&new.shared_paths).map_err(ApiError::internal)?,
    };
    let taken = |state: &AppState| {
        let (server_id, domain) = (site.server_id.clone(), site.domain.clone());
        let store = state.store.clone();
        async move { Ok::<bool, ApiError>(store.site_by_domain(&server_id, &domain).await?.is_some()) }
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

/// The names (domain and aliases) the other sites of a server answer to. A server has at most a
/// few thousand sites: read whole.
struct OtherNames {
    names: Vec<(String, String)>,
    /// The caller may learn the other site's domain (a token restricted to sites may not).
    say_which: bool,
}

impl OtherNames {
    async fn of(
        state: &AppState,
        principal: &crate::auth::Principal,
        server_id: &str,
        except: Option<&str>,
    ) -> Result<Self, ApiError> {
        let (sites, _) = state.store.sites_of_server(server_id, None, None).await?;
        let mut names = Vec::new();
        for site in sites.into_iter().filter(|s| Some(s.id.as_str()) != except) {
            let aliases: Vec<String> = serde_json::from_str(&site.aliases).unwrap_or_default();
            for name in aliases.into_iter().chain([site.domain.clone()]) {
                names.push((name, site.domain.clone()));
            }
        }
        Ok(OtherNames { names, say_which: principal.site_ids.is_none() })
    }

    /// Why `name` is not free: another site answers to it, or to a wildcard that covers it, or
    /// it is a wildcard covering one of theirs (nginx would pick one of the two sites for that
    /// host, and the taker could get its certificates).
    fn taken(&self, name: &str) -> Option<String> {
        let (_, owner) = self.names.iter().find(|(other, _)| names_overlap(other, name))?;
        Some(if self.say_which {
            format!("another site on this server ({owner})")
        } else {
            "another site on this server".into()
        })
    }
}

/// Whether two host names (each maybe a wildcard `*.example.com`) answer for a same host.
fn names_overlap(a: &str, b: &str) -> bool {
    // `*.d` covers every name with more labels ending in `.d` (not `d` itself), wildcards included.
    let covers = |wild: &str, name: &str| {
        wild.strip_prefix("*.")
            .is_some_and(|base| name.strip_suffix(base).is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')))
    };
    a == b || covers(a, b) || covers(b, a)
}

/// One name serves one site on a server.
fn check_aliases_free(errors: &mut FieldErrors, others: &OtherNames, aliases: &[String]) {
    for alias in aliases {
        if let Some(whose) = others.taken(alias) {
            errors.add("aliases", format!("The alias {alias} is a name of {whose}."));
        }
    }
}

/// Repositories (and their deploy keys) are the organization's: a token restricted to servers or
/// sites cannot point a site at one, which would put its key on a server the token controls.
fn refuse_repository_to_restricted(principal: &crate::auth::Principal) -> Result<(), ApiError> {
    if principal.server_ids.is_some() || principal.site_ids.is_some() {
        return Err(ApiError::Forbidden(
            "This token is restricted to some servers or sites, so it cannot give a site a git repository: \
             repositories (and their deploy keys) are shared across the organization."
                .into(),
        ));
    }
    Ok(())
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

/// Edit a site. Changes to aliases or the web directory are applied to the server at once;
/// the others take effect with the next deploy.
#[utoipa::path(
    put, path = "/api/v1/servers/{server}/sites/{site}", tag = "sites",
    params(("server" = String, Path), ("site" = String, Path)),
    request_body = Option<UpdateSite>,
    security(("token" = ["site:update"])),
    responses((status = 200, body = Data<SiteResource>))
)]
pub async fn update_site(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
    Json(body): Json<UpdateSite>,
) -> Result<Data<SiteResource>, ApiError> {
    let edit = SiteEdit::try_from(body)?;
    if edit.app_command.is_some() && !v.site.project_type.is_app() {
        return Err(ApiError::validation("app_command", "Only node and generic sites run an app command."));
    }
    if let Some(aliases) = &edit.aliases {
        let mut errors = FieldErrors::new();
        let others = OtherNames::of(&state, &v.principal, &v.site.server_id, Some(&v.site.id)).await?;
        check_aliases_free(&mut errors, &others, aliases);
        errors.into_result()?;
    }
    // What the site deploys: one source at a time, the one given last.
    let (repository_url, git_repository_id, branch) = match (edit.repository_url, edit.git_repository_id) {
        (Some(url), _) => {
            (Some(Some(state.secrets.seal(&repository_context(&v.site.id), url.as_bytes()))), Some(None), edit.branch)
        }
        (None, Some(id)) => {
            refuse_repository_to_restricted(&v.principal)?;
            let repository = match state.store.git_repository(&id).await? {
                Some(r) if r.organization_id == v.site.organization_id => r,
                _ => {
                    return Err(ApiError::validation(
                        "git_repository_id",
                        "No such git repository in this site's organization.",
                    ));
                }
            };
            (Some(None), Some(Some(repository.id)), Some(edit.branch.unwrap_or(repository.branch)))
        }
        (None, None) => (None, None, edit.branch),
    };
    let reapply = edit.aliases.is_some() || edit.web_directory.is_some();
    let changes = SiteChanges {
        aliases: edit.aliases.map(|a| serde_json::to_string(&a)).transpose().map_err(ApiError::internal)?,
        web_directory: edit.web_directory,
        repository_url,
        repository_branch: branch,
        deploy_script: edit.deploy_script,
        app_command: edit.app_command.map(Some),
        health_check_path: edit.health_check_path,
        health_check_status: edit.health_check_status.map(i64::from),
        health_check_timeout: edit.health_check_timeout.map(i64::from),
        keep_releases: edit.keep_releases.map(i64::from),
        suspended: None,
        git_repository_id,
        shared_paths: edit.shared_paths.map(|p| serde_json::to_string(&p)).transpose().map_err(ApiError::internal)?,
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
    state.store.set_site_status(&v.site.id, InstallStatus::Removing, None).await?;
    let operation =
        enqueue(&state, slipway_engine::SITE_REMOVE.about_site(&v.site, SiteJob { site_id: v.site.id.clone() }))
            .await?
            .id;
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

#[cfg(test)]
mod tests {
    use super::names_overlap;

    #[test]
    fn wildcards_overlap_the_names_they_cover() {
        for (a, b) in [
            ("shop.example.com", "shop.example.com"),
            ("*.shop.example.com", "api.shop.example.com"),
            ("*.shop.example.com", "a.b.shop.example.com"),
            ("*.shop.example.com", "*.api.shop.example.com"),
            ("*.shop.example.com", "*.shop.example.com"),
        ] {
            assert!(names_overlap(a, b) && names_overlap(b, a), "{a} {b}");
        }
        for (a, b) in [
            ("*.shop.example.com", "shop.example.com"),
            ("*.shop.example.com", "xshop.example.com"),
            ("*.shop.example.com", "api.example.com"),
            ("shop.example.com", "www.shop.example.com"),
        ] {
            assert!(!names_overlap(a, b) && !names_overlap(b, a), "{a} {b}");
        }
    }
}
