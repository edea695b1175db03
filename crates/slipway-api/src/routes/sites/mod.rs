//! Sites on a server, their deployments, releases and environment variables. Everything that
//! touches the server runs as an operation: applying the site (`site.apply`), removing it
//! (`site.remove`) and deploying or rolling back (`site.deploy`, one at a time per site: a
//! second deploy waits behind the first).

mod crud;
mod deployments;
mod env;
mod input;
mod log_stream;

pub use crud::*;
pub use deployments::*;
pub use env::*;
pub use input::*;
pub use log_stream::*;

pub use crate::resources::{HealthCheck, Repository, SiteResource};

use axum::http::request::Parts;
use slipway_core::site_input::{self};
use slipway_engine::deploy::repository_context;
use slipway_engine::sites::{self as engine_sites, SiteJob};
use slipway_store::{Server, Site};

use crate::audit::AuditSlot;
use crate::auth::{Authorized, Principal, Target};
use crate::error::ApiError;
use crate::jobs::enqueue;
use crate::state::AppState;

/// A site named by `{server}` and `{site}` that the caller may act on as the route requires,
/// or 404 / 403.
pub type VisibleSite = Authorized<OnSite>;

#[derive(Debug)]
pub struct OnSite {
    pub site: Site,
    pub server: Server,
}

impl Target for OnSite {
    async fn load(parts: &mut Parts, state: &AppState, principal: &Principal) -> Result<Self, ApiError> {
        // The site restriction is checked on the site: a site-restricted token reaches its
        // server's sites, not the server itself.
        let (_, server) = crate::routes::servers::server_in_path(parts, state, principal).await?;
        // By id or by domain: `…/servers/web-1/sites/shop.example.com/deploy` works.
        let key = crate::extract::path_param(parts, state, "site").await?;
        let site = match state.store.site(&key).await? {
            Some(site) => Some(site),
            None => state.store.site_by_domain(&server.id, &key.to_ascii_lowercase()).await?,
        };
        match site {
            Some(site) if site.server_id == server.id && principal.may_touch_site(&site.id) => {
                Ok(OnSite { site, server })
            }
            _ => Err(ApiError::Missing(format!("No site with the id or domain {key:?} on this server."))),
        }
    }

    fn organization_id(&self) -> &str {
        &self.server.organization_id
    }
}

pub(crate) fn site_resource(state: &AppState, s: &Site, operation_id: Option<String>) -> SiteResource {
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
        project_type: s.project_type.to_string(),
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
        status: s.status.to_string(),
        status_reason: s.status_reason.clone(),
        suspended: s.suspended,
        deployment_status: s.deployment_status.map(|d| d.to_string()),
        last_deployed_at: s.last_deployed_at,
        current_release: s.current_release.clone(),
        operation_id,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

pub(crate) async fn apply_site(state: &AppState, site: &Site) -> Result<String, ApiError> {
    // Applying renders the whole site again, so it is safe to retry.
    let spec = slipway_engine::SITE_APPLY.about_site(site, SiteJob { site_id: site.id.clone() });
    Ok(enqueue(state, spec).await?.id)
}

pub(crate) fn audit_site(audit: &AuditSlot, site: &Site, action: &str, detail: Option<String>) {
    audit.note(|n| {
        n.action = Some(action.into());
        n.organization_id = Some(site.organization_id.clone());
        n.resource_id = Some(site.id.clone());
        n.detail = detail;
    });
}

/// Whether the site has something to deploy from.
pub(crate) fn has_repository(site: &Site) -> bool {
    site.repository_url.is_some() || site.git_repository_id.is_some()
}
