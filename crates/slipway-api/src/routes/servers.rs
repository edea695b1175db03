//! Servers (bring your own: provider `custom`): register one, see how to authorise Slipway's
//! key on it, read and edit it, follow its operations, remove it.
//! Removing a server forgets it in Slipway; nothing on the machine is touched.

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use slipway_core::ServerStatus;
use slipway_core::server_input::{Host, UnixUser};
use slipway_core::time::now;
use slipway_core::{FieldErrors, identity, shell};
use slipway_store::{Server, ServerChanges};
use utoipa::ToSchema;

pub use crate::resources::{Authorization, CreatedServer, OperationResource, ServerResource};

use crate::audit::AuditSlot;
use crate::auth::{Authorized, Caller, Principal, Target};
use crate::envelope::{Data, Paginated};
use crate::error::ApiError;
use crate::extract::{Json, Page};
use crate::jobs::{enqueue, note_operation};
use crate::state::AppState;

/// The resources of these servers, with how many sites each has (one query for all): for a
/// token restricted to sites, how many of those, as its lists of them count.
async fn server_resources(
    state: &AppState,
    principal: &Principal,
    servers: &[Server],
) -> Result<Vec<ServerResource>, ApiError> {
    let ids: Vec<String> = servers.iter().map(|s| s.id.clone()).collect();
    let counts: std::collections::HashMap<String, i64> = match &principal.site_ids {
        None => state.store.site_counts(&ids).await?.into_iter().collect(),
        Some(site_ids) => {
            let mut orgs: Vec<String> = servers.iter().map(|s| s.organization_id.clone()).collect();
            orgs.sort_unstable();
            orgs.dedup();
            let mut counts = std::collections::HashMap::new();
            for site in sites_of_token(state, &orgs, site_ids).await? {
                *counts.entry(site.server_id).or_insert(0) += 1;
            }
            counts
        }
    };
    Ok(servers
        .iter()
        .map(|s| ServerResource {
            sites_count: counts.get(&s.id).copied().unwrap_or(0).try_into().unwrap_or(0),
            ..crate::resources::server(s)
        })
        .collect())
}

/// A server named by the `{server}` path segment that the caller may act on as the route
/// requires, or 404 / 403.
pub type VisibleServer = Authorized<OnServer>;

/// The server itself: refused (403) to a token restricted to some of its sites, which reaches it
/// only through them (see [`Principal::may_act_on_server`]).
#[derive(Debug)]
pub struct OnServer {
    pub server: Server,
}

impl Target for OnServer {
    async fn load(parts: &mut Parts, state: &AppState, principal: &Principal) -> Result<Self, ApiError> {
        let (key, server) = server_in_path(parts, state, principal).await?;
        if principal.may_act_on_server(&server.id) {
            return Ok(OnServer { server });
        }
        if principal.hosts_its_sites(state, &server.id).await? {
            return Err(ApiError::Forbidden(
                "This token is restricted to some sites: it may act on them, not on the server they are on \
                 (its SSH keys, firewall, daemons, databases and operations)."
                    .into(),
            ));
        }
        Err(missing_server(&key))
    }

    fn organization_id(&self) -> &str {
        &self.server.organization_id
    }
}

/// A server the caller may read: one it may act on, or one that hosts a site a site-restricted
/// token may touch (to see where its sites are, and list them).
#[derive(Debug)]
pub struct SeenServer {
    pub server: Server,
}

impl Target for SeenServer {
    async fn load(parts: &mut Parts, state: &AppState, principal: &Principal) -> Result<Self, ApiError> {
        let (key, server) = server_in_path(parts, state, principal).await?;
        if principal.may_act_on_server(&server.id) || principal.hosts_its_sites(state, &server.id).await? {
            return Ok(SeenServer { server });
        }
        Err(missing_server(&key))
    }

    fn organization_id(&self) -> &str {
        &self.server.organization_id
    }
}

/// The server the `{server}` segment names, within the token's server restriction, and the key it
/// was named by. Its site restriction is for the caller to apply: a site's routes check the site.
pub(crate) async fn server_in_path(
    parts: &mut Parts,
    state: &AppState,
    principal: &Principal,
) -> Result<(String, Server), ApiError> {
    let key = crate::extract::path_param(parts, state, "server").await?;
    let server = find_server(state, principal, &key).await?;
    Ok((key, server))
}

fn missing_server(key: &str) -> ApiError {
    ApiError::Missing(format!("No server with the id or name {key:?} among yours."))
}

/// The server `{server}` names, by id or by name among the caller's servers. Names need not be
/// unique: several servers with the name are a 409 listing their ids.
async fn find_server(state: &AppState, principal: &Principal, key: &str) -> Result<Server, ApiError> {
    let missing = || missing_server(key);
    if let Some(server) = state.store.server(key).await? {
        // Another organisation's server answers exactly like one that does not exist.
        let visible = principal.may_touch_server(&server.id)
            && match principal.role_in(state, &server.organization_id).await {
                Ok(_) => true,
                Err(ApiError::NotFound) => false,
                Err(e) => return Err(e),
            };
        return if visible { Ok(server) } else { Err(missing()) };
    }
    let organizations: Vec<String> = principal.organizations(state).await?.into_iter().map(|(id, _)| id).collect();
    let mut named = Vec::new();
    for server in state.store.servers_named(&organizations, key).await? {
        // A token restricted to sites knows only the servers they are on: another server of
        // the same name is not there for it (and makes no ambiguity).
        let reachable = principal.may_act_on_server(&server.id)
            || (principal.may_touch_server(&server.id) && principal.hosts_its_sites(state, &server.id).await?);
        if reachable {
            named.push(server);
        }
    }
    match named.len() {
        0 => Err(missing()),
        1 => Ok(named.remove(0)),
        _ => {
            let ids: Vec<&str> = named.iter().map(|s| s.id.as_str()).collect();
            Err(ApiError::Conflict(format!(
                "Several of your servers are named {key:?} ({}); use the id.",
                ids.join(", ")
            )))
        }
    }
}

fn authorize_command(public_key: &str) -> String {
    let line = shell::quote(&format!("{public_key} slipway")).expect("a public key has no NUL");
    format!(
        "mkdir -p ~/.ssh && chmod 700 ~/.ssh && printf '\\n%s\\n' {line} >> ~/.ssh/authorized_keys && chmod 600 ~/.ssh/authorized_keys"
    )
}

/// Servers of your organizations (and only those your token may touch).
#[utoipa::path(
    get, path = "/api/v1/servers", tag = "servers",
    params(crate::extract::PageParams, crate::extract::CursorParams),
    security(("token" = ["server:read"])),
    responses((status = 200, body = Paginated<ServerResource>))
)]
pub async fn list_servers(
    State(state): State<AppState>,
    caller: Caller,
    Page(cursor): Page,
) -> Result<Paginated<ServerResource>, ApiError> {
    let orgs = caller.organizations(&state).await?;
    let hosting_its_sites;
    let only = match (&caller.principal.server_ids, &caller.principal.site_ids) {
        (Some(ids), _) => Some(ids.as_slice()),
        // A token restricted to some sites sees the servers they are on.
        (None, Some(site_ids)) => {
            hosting_its_sites = servers_of_sites(&state, &orgs, site_ids).await?;
            Some(hosting_its_sites.as_slice())
        }
        (None, None) => None,
    };
    let (rows, total) = state.store.servers_of(&orgs, only, cursor.seeking()).await?;
    Ok(cursor.seek_page(server_resources(&state, &caller.principal, &rows).await?, total, |s| &s.id))
}

/// The sites a token restricted to `site_ids` may touch in these organisations (it holds at most
/// 100: one page).
async fn sites_of_token(
    state: &AppState,
    orgs: &[String],
    site_ids: &[String],
) -> Result<Vec<slipway_store::Site>, ApiError> {
    let filter = slipway_store::SiteFilter {
        organization_ids: orgs,
        server_ids: None,
        site_ids: Some(site_ids),
        status: None,
        deployment_status: None,
    };
    Ok(state.store.sites_where(filter, slipway_core::PageRequest::new(1, 100)).await?.0)
}

/// The servers these sites are on.
async fn servers_of_sites(state: &AppState, orgs: &[String], site_ids: &[String]) -> Result<Vec<String>, ApiError> {
    let mut servers: Vec<String> =
        sites_of_token(state, orgs, site_ids).await?.into_iter().map(|s| s.server_id).collect();
    servers.sort_unstable();
    servers.dedup();
    Ok(servers)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServer {
    #[schema(example = "web-1", min_length = 1, max_length = 255)]
    pub name: String,
    #[schema(value_type = crate::schema::ServerProvider)]
    pub provider: String,
    /// IP address or host name Slipway connects to.
    #[schema(example = "203.0.113.10", min_length = 1, max_length = 253)]
    pub ip_address: String,
    /// Default 22.
    #[schema(minimum = 1, maximum = 65535)]
    pub ssh_port: Option<u16>,
    /// The user Slipway logs in as; needs passwordless sudo, or root. Default `root`.
    #[schema(min_length = 1, max_length = 32)]
    pub ssh_user: Option<String>,
    /// Required when you belong to more than one organization.
    pub organization_id: Option<String>,
    #[schema(min_length = 1, max_length = 255)]
    pub region: Option<String>,
    #[schema(min_length = 1, max_length = 255)]
    pub size: Option<String>,
    /// PHP-FPM version to install, or none.
    #[schema(value_type = Option<crate::schema::PhpVersion>)]
    pub php_version: Option<String>,
    /// Default `none`.
    #[schema(value_type = Option<crate::schema::DatabaseType>)]
    pub database_type: Option<String>,
    /// Install Node.js from the operating system's packages. Default false.
    pub node: Option<bool>,
    pub monitoring_enabled: Option<bool>,
}

pub(crate) const PHP_VERSIONS: [&str; 4] = ["8.1", "8.2", "8.3", "8.4"];
pub(crate) const DATABASES: [&str; 4] = ["mysql", "mariadb", "postgres", "none"];
/// Where servers come from; cloud providers come later.
pub(crate) const PROVIDERS: [&str; 1] = ["custom"];

/// A PHP version Slipway installs and, when the server's system is known, one it offers.
fn check_php_version(errors: &mut FieldErrors, php: &str, os: Option<&str>) {
    if !PHP_VERSIONS.contains(&php) {
        errors.add("php_version", format!("The php_version must be one of {}.", PHP_VERSIONS.join(", ")));
    } else if let Some(why) = os.and_then(|os| slipway_core::server_input::php_unavailable(php, os)) {
        errors.add("php_version", format!("{why}."));
    }
}

/// Register a server you already have. Answers 201 with the server `pending` and the public key
/// to authorise on it, with a one-line command that does so.
#[utoipa::path(
    post, path = "/api/v1/servers", tag = "servers",
    request_body = CreateServer,
    security(("token" = ["server:create"])),
    responses((status = 201, body = Data<CreatedServer>))
)]
pub async fn create_server(
    State(state): State<AppState>,
    caller: crate::auth::OrganizationCaller,
    audit: AuditSlot,
    Json(body): Json<CreateServer>,
) -> Result<(StatusCode, Data<CreatedServer>), ApiError> {
    let organization_id = caller.organization_for_new(&state, body.organization_id.as_deref()).await?;
    let mut errors = FieldErrors::new();
    identity::check_label(&mut errors, "name", &body.name);
    if !PROVIDERS.contains(&body.provider.as_str()) {
        errors.add("provider", "The provider must be custom (cloud providers are not available yet).");
    }
    let host =
        Host::parse(body.ip_address.trim()).map_err(|m| errors.add("ip_address", format!("The ip_address {m}."))).ok();
    let user = UnixUser::parse(body.ssh_user.as_deref().unwrap_or("root"))
        .map_err(|m| errors.add("ssh_user", format!("The ssh_user {m}.")))
        .ok();
    if user.as_ref().is_some_and(|u| u.as_str() == slipway_engine::items::DEPLOY_USER) {
        errors.add(
            "ssh_user",
            "The ssh_user cannot be slipway: that is the deploy user, whose keys are managed through the API; log in as root or an admin user.",
        );
    }
    if body.ssh_port == Some(0) {
        errors.add("ssh_port", "The ssh_port must be between 1 and 65535.");
    }
    if let Some(php) = &body.php_version {
        check_php_version(&mut errors, php, None);
    }
    let database = body.database_type.clone().unwrap_or_else(|| "none".into());
    if !DATABASES.contains(&database.as_str()) {
        errors.add("database_type", format!("The database_type must be one of {}.", DATABASES.join(", ")));
    }
    for (field, value) in [("region", &body.region), ("size", &body.size)] {
        if let Some(v) = value {
            identity::check_label(&mut errors, field, v);
        }
    }
    errors.into_result()?;
    let (host, user) = (host.expect("valid"), user.expect("valid"));
    let keypair = slipway_engine::keys::organization_keypair(state.store.as_ref(), &state.secrets, &organization_id)
        .await
        .map_err(ApiError::internal)?;
    let at = now();
    let server = Server {
        id: slipway_core::new_id(),
        organization_id: organization_id.clone(),
        name: body.name.trim().to_string(),
        provider: body.provider,
        ip_address: host.as_str().to_string(),
        ssh_port: i64::from(body.ssh_port.unwrap_or(22)),
        ssh_user: user.as_str().to_string(),
        region: body.region,
        size: body.size,
        php_version: body.php_version,
        database_type: database,
        webserver: "nginx".into(),
        status: ServerStatus::Pending,
        status_reason: None,
        monitoring_enabled: body.monitoring_enabled.unwrap_or(false),
        os: None,
        host_key: None,
        offered_host_key: None,
        node: body.node.unwrap_or(false),
        provisioned_at: None,
        created_at: at,
        updated_at: at,
    };
    state.store.insert_server(&server).await?;
    audit.note(|n| {
        n.organization_id = Some(organization_id);
        n.resource_id = Some(server.id.clone());
    });
    let authorization = Authorization {
        command: authorize_command(keypair.public_openssh()),
        public_key: keypair.public_openssh().into(),
    };
    Ok((StatusCode::CREATED, Data { data: CreatedServer { server: crate::resources::server(&server), authorization } }))
}

/// One server.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}", tag = "servers",
    params(("server" = String, Path)),
    security(("token" = ["server:read"])),
    responses((status = 200, body = Data<ServerResource>))
)]
pub async fn get_server(
    State(state): State<AppState>,
    v: Authorized<SeenServer>,
) -> Result<Data<ServerResource>, ApiError> {
    Ok(Data { data: server_resources(&state, &v.principal, std::slice::from_ref(&v.server)).await?.remove(0) })
}

/// How to let Slipway in, again: the organization's public key and the command that installs it
/// on the server (as printed when the server was created). Neither is secret.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/authorization", tag = "servers",
    params(("server" = String, Path)),
    security(("token" = ["server:read"])),
    responses((status = 200, body = Data<Authorization>))
)]
pub async fn get_server_authorization(
    State(state): State<AppState>,
    v: VisibleServer,
) -> Result<Data<Authorization>, ApiError> {
    let keypair =
        slipway_engine::keys::organization_keypair(state.store.as_ref(), &state.secrets, &v.server.organization_id)
            .await
            .map_err(ApiError::internal)?;
    let public_key = keypair.public_openssh();
    Ok(Data { data: Authorization { command: authorize_command(public_key), public_key: public_key.into() } })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateServer {
    #[schema(min_length = 1, max_length = 255)]
    pub name: Option<String>,
    #[schema(min_length = 1, max_length = 253)]
    pub ip_address: Option<String>,
    #[schema(minimum = 1, maximum = 65535)]
    pub ssh_port: Option<u16>,
    pub monitoring_enabled: Option<bool>,
    /// The PHP version to install (`8.1`–`8.4`), before the server is provisioned; once the
    /// operating system is known it must be one that system offers.
    pub php_version: Option<String>,
}

/// Rename a server, change how Slipway reaches it, or (before provisioning) its PHP version.
#[utoipa::path(
    put, path = "/api/v1/servers/{server}", tag = "servers",
    params(("server" = String, Path)),
    request_body = Option<UpdateServer>,
    security(("token" = ["server:update"])),
    responses((status = 200, body = Data<ServerResource>))
)]
pub async fn update_server(
    State(state): State<AppState>,
    v: VisibleServer,
    audit: AuditSlot,
    Json(body): Json<UpdateServer>,
) -> Result<Data<ServerResource>, ApiError> {
    let mut errors = FieldErrors::new();
    if let Some(name) = &body.name {
        identity::check_label(&mut errors, "name", name);
    }
    let ip = body
        .ip_address
        .as_deref()
        .map(|ip| Host::parse(ip.trim()).map_err(|m| errors.add("ip_address", format!("The ip_address {m}."))));
    if body.ssh_port == Some(0) {
        errors.add("ssh_port", "The ssh_port must be between 1 and 65535.");
    }
    if let Some(php) = &body.php_version {
        check_php_version(&mut errors, php, v.server.os.as_deref());
        if v.server.provisioned_at.is_some() && v.server.php_version.as_deref() != Some(php.as_str()) {
            return Err(ApiError::Conflict(
                "The server is provisioned with its PHP version; changing it afterwards is not supported yet.".into(),
            ));
        }
    }
    errors.into_result()?;
    let changes = ServerChanges {
        name: body.name.map(|n| n.trim().to_string()),
        ip_address: ip.and_then(Result::ok).map(|h| h.as_str().to_string()),
        ssh_port: body.ssh_port.map(i64::from),
        monitoring_enabled: body.monitoring_enabled,
        php_version: body.php_version,
    };
    state.store.update_server(&v.server.id, &changes).await?;
    audit.note(|n| {
        n.organization_id = Some(v.server.organization_id.clone());
        n.resource_id = Some(v.server.id.clone());
    });
    let fresh = state.store.server(&v.server.id).await?.ok_or(ApiError::NotFound)?;
    Ok(Data { data: server_resources(&state, &v.principal, &[fresh]).await?.remove(0) })
}

/// Forget a server. Nothing on the machine is changed: remove Slipway's key from its
/// `authorized_keys` yourself if you no longer want it there.
#[utoipa::path(
    delete, path = "/api/v1/servers/{server}", tag = "servers",
    params(("server" = String, Path)),
    security(("token" = ["server:delete"])),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete_server(
    State(state): State<AppState>,
    v: VisibleServer,
    audit: AuditSlot,
) -> Result<StatusCode, ApiError> {
    state.store.delete_server(&v.server.id).await?;
    audit.note(|n| {
        n.organization_id = Some(v.server.organization_id.clone());
        n.resource_id = Some(v.server.id.clone());
    });
    Ok(StatusCode::NO_CONTENT)
}

/// The server's operations (provisioning, restarts, key and firewall changes), newest first.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/logs", tag = "servers",
    params(("server" = String, Path), crate::extract::PageParams),
    security(("token" = ["server:read"])),
    responses((status = 200, body = Paginated<OperationResource>))
)]
pub async fn server_logs(
    State(state): State<AppState>,
    v: VisibleServer,
    Page(cursor): Page,
) -> Result<Paginated<OperationResource>, ApiError> {
    let (rows, total) = state.store.jobs_for_resource(&format!("server:{}", v.server.id), cursor.request).await?;
    Ok(cursor.page(rows.iter().map(crate::resources::operation).collect(), total))
}

/// Check that Slipway can reach the server: connect with the organization's key, pin the host
/// key at first contact (or refuse a changed one), and find the operating system. Runs as an
/// operation; poll it, or the server's `status`.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/verify", tag = "servers",
    params(("server" = String, Path)),
    security(("token" = ["server:update"])),
    responses((status = 202, body = crate::envelope::Accepted<OperationResource>))
)]
pub async fn verify_server(
    State(state): State<AppState>,
    v: VisibleServer,
    audit: AuditSlot,
) -> Result<crate::envelope::Accepted<OperationResource>, ApiError> {
    let payload = slipway_engine::verify::ServerJob { server_id: v.server.id.clone() };
    // Safe to repeat, but a check a user asked for should answer now, not after backoff.
    let job = enqueue(&state, slipway_engine::SERVER_VERIFY.about_server(&v.server, payload)).await?;
    note_operation(&audit, &v.server, "server.verify", &job);
    Ok(crate::envelope::Accepted {
        message: "Checking the connection.".into(),
        data: crate::resources::operation(&job),
    })
}

/// Provision the server (again): install and configure what it needs, then apply its SSH keys
/// and firewall rules. Safe on an active server. The status moves to `provisioning`, then
/// `active`, or `failed` with the reason; follow the operation for the log.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/provision", tag = "servers",
    params(("server" = String, Path)),
    security(("token" = ["server:update"])),
    responses((status = 202, body = crate::envelope::Accepted<OperationResource>))
)]
pub async fn provision_server(
    State(state): State<AppState>,
    v: VisibleServer,
    audit: AuditSlot,
) -> Result<crate::envelope::Accepted<OperationResource>, ApiError> {
    let payload = slipway_engine::verify::ServerJob { server_id: v.server.id.clone() };
    // Provisioning is idempotent: after a crash it is simply run again.
    let job = enqueue(&state, slipway_engine::SERVER_PROVISION.about_server(&v.server, payload)).await?;
    note_operation(&audit, &v.server, "server.provision", &job);
    Ok(crate::envelope::Accepted { message: "Provisioning queued.".into(), data: crate::resources::operation(&job) })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct RestartServer {
    /// Services to restart; at least one unless `reboot` is true.
    #[serde(default)]
    #[schema(value_type = Vec<crate::schema::RestartableService>)]
    pub services: Vec<String>,
    /// Reboot the server (after restarting any listed services).
    #[serde(default)]
    pub reboot: bool,
}

/// Restart managed services, or reboot the server.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/restart", tag = "servers",
    params(("server" = String, Path)),
    request_body = RestartServer,
    security(("token" = ["server:update"])),
    responses((status = 202, body = crate::envelope::Accepted<OperationResource>))
)]
pub async fn restart_server(
    State(state): State<AppState>,
    v: VisibleServer,
    audit: AuditSlot,
    Json(body): Json<RestartServer>,
) -> Result<crate::envelope::Accepted<OperationResource>, ApiError> {
    let mut errors = FieldErrors::new();
    if body.services.is_empty() && !body.reboot {
        errors.add("services", "Name at least one service to restart, or set reboot to true.");
    }
    let mut services: Vec<String> = Vec::new();
    for name in &body.services {
        if !slipway_engine::restart::SERVICES.contains(&name.as_str()) {
            errors.add(
                "services",
                format!("Unknown service; choose from {}.", slipway_engine::restart::SERVICES.join(", ")),
            );
        } else if let Err(why) = slipway_engine::restart::system_service(&v.server, name) {
            errors.add("services", format!("Cannot restart {name}: {why}."));
        } else if !services.contains(name) {
            services.push(name.clone());
        }
    }
    if v.server.provisioned_at.is_none() {
        errors.add("services", "The server is not provisioned yet.");
    }
    errors.into_result()?;
    let payload = slipway_engine::restart::RestartJob { server_id: v.server.id.clone(), services, reboot: body.reboot };
    // Not retried: a second reboot after a dropped connection is not what anyone asked for.
    let job = enqueue(&state, slipway_engine::SERVER_RESTART.about_server(&v.server, payload)).await?;
    let action = if body.reboot { "server.reboot" } else { "server.restart" };
    note_operation(&audit, &v.server, action, &job);
    let message = if body.reboot { "Reboot queued." } else { "Restart queued." };
    Ok(crate::envelope::Accepted { message: message.into(), data: crate::resources::operation(&job) })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptHostKey {
    /// The `offered_host_key_fingerprint` of the server, confirming which key you accept.
    #[schema(example = "SHA256:k3bO8Tm2…", min_length = 1)]
    pub fingerprint: String,
}

/// Accept the host key a server presented instead of the pinned one (after a reinstall), then
/// check the connection again. Only do this when you know why the key changed.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/accept-host-key", tag = "servers",
    params(("server" = String, Path)),
    request_body = AcceptHostKey,
    security(("token" = ["server:update"])),
    responses((status = 202, body = crate::envelope::Accepted<OperationResource>))
)]
pub async fn accept_host_key(
    State(state): State<AppState>,
    v: VisibleServer,
    audit: AuditSlot,
    Json(body): Json<AcceptHostKey>,
) -> Result<crate::envelope::Accepted<OperationResource>, ApiError> {
    let Some(offered) = v.server.offered_host_key.as_deref() else {
        return Err(ApiError::validation("fingerprint", "The server has not presented another host key."));
    };
    if slipway_remote::fingerprint(offered).as_deref() != Some(body.fingerprint.trim()) {
        return Err(ApiError::validation(
            "fingerprint",
            "The fingerprint is not the one the server presented; read offered_host_key_fingerprint again.",
        ));
    }
    state.store.replace_host_key(&v.server.id, Some(offered)).await?;
    let payload = slipway_engine::verify::ServerJob { server_id: v.server.id.clone() };
    let job = enqueue(&state, slipway_engine::SERVER_VERIFY.about_server(&v.server, payload)).await?;
    note_operation(&audit, &v.server, "server.accept-host-key", &job);
    Ok(crate::envelope::Accepted {
        message: "Host key accepted; checking the connection.".into(),
        data: crate::resources::operation(&job),
    })
}
