//! What Slipway keeps on a server: SSH keys that let people log in as the deploy user, and
//! firewall rules. Each change is stored first, then applied by an operation that puts all of
//! the server's items of that kind in place at once; an item's `status` says whether the
//! server has it yet (`installing`, `installed`, `failed`, `removing`). On a server that is not
//! provisioned yet, items wait and provisioning applies them.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::server_input::{Cidr, PortRange, SshPublicKey};
use slipway_core::time::now;
use slipway_core::{Ability, Action, FieldErrors, Resource, identity};
use slipway_engine::items::{NETWORK_RULE, NetworkRuleSpec, Protocol, RuleAction, SSH_KEY, SshKeySpec, sync_job_kind};
use slipway_store::{Server, ServerItem};
use utoipa::ToSchema;

use super::servers::{VisibleServer, enqueue_server_job};
use crate::audit::AuditSlot;
use crate::envelope::{Accepted, Data, Paginated};
use crate::error::ApiError;
use crate::extract::{Json, Page};
use crate::state::AppState;

/// Most items of one kind a server may have (each sync renders them all).
const MAX_ITEMS: u64 = 500;

/// Stores a new item and queues the sync that applies it (when the server is provisioned).
async fn add_item(
    state: &AppState,
    server: &Server,
    kind: &str,
    name: &str,
    spec: &impl Serialize,
) -> Result<(ServerItem, Option<String>), ApiError> {
    let (_, count) =
        state.store.server_items(&server.id, kind, Some(slipway_core::PageRequest { page: 1, per_page: 1 })).await?;
    if count >= MAX_ITEMS {
        return Err(ApiError::validation("name", format!("A server can have at most {MAX_ITEMS} of these.")));
    }
    let at = now();
    let item = ServerItem {
        id: slipway_core::new_id(),
        server_id: server.id.clone(),
        kind: kind.into(),
        name: name.trim().to_string(),
        spec: serde_json::to_string(spec).map_err(ApiError::internal)?,
        status: "installing".into(),
        status_reason: None,
        created_at: at,
        updated_at: at,
    };
    state.store.insert_server_item(&item).await?;
    let operation = sync(state, server, kind).await?;
    Ok((item, operation))
}

/// Queues the sync of a kind of item on a provisioned server; `None` when provisioning will.
async fn sync(state: &AppState, server: &Server, kind: &str) -> Result<Option<String>, ApiError> {
    if server.provisioned_at.is_none() {
        return Ok(None);
    }
    let payload = slipway_engine::verify::ServerJob { server_id: server.id.clone() };
    // A sync renders the whole state, so running it again is harmless.
    let job = enqueue_server_job(state, server, sync_job_kind(kind), payload, 3).await?;
    Ok(Some(job.id))
}

/// The item `{id}` of this server and kind, or 404.
async fn find_item(state: &AppState, server: &Server, kind: &str, id: &str) -> Result<ServerItem, ApiError> {
    match state.store.server_item(id).await? {
        Some(item) if item.server_id == server.id && item.kind == kind => Ok(item),
        _ => Err(ApiError::NotFound),
    }
}

/// Marks an item for removal and queues the sync; on a server not provisioned yet, it goes at once.
async fn remove_item(state: &AppState, server: &Server, item: &mut ServerItem) -> Result<Option<String>, ApiError> {
    // While the first provisioning runs it may already have put the item on the server: mark it
    // instead, and provisioning syncs again when it ends.
    if server.provisioned_at.is_none() && server.status != "provisioning" {
        state.store.set_server_items_status(std::slice::from_ref(&item.id), "removing", None).await?;
        state.store.delete_removed_server_items(std::slice::from_ref(&item.id)).await?;
        item.status = "removed".into();
        return Ok(None);
    }
    state.store.set_server_items_status(std::slice::from_ref(&item.id), "removing", None).await?;
    item.status = "removing".into();
    sync(state, server, &item.kind).await
}

fn audit_item(audit: &AuditSlot, server: &Server, action: &str, item: &ServerItem) {
    audit.note(|n| {
        n.action = Some(action.into());
        n.organization_id = Some(server.organization_id.clone());
        n.resource_id = Some(item.id.clone());
        n.detail = Some(format!("server {}", server.id));
    });
}

fn spec<T: serde::de::DeserializeOwned>(item: &ServerItem) -> Result<T, ApiError> {
    serde_json::from_str(&item.spec).map_err(ApiError::internal)
}

// --- SSH keys ---

#[derive(Debug, Serialize, ToSchema)]
pub struct SshKeyResource {
    pub id: String,
    pub server_id: String,
    pub name: String,
    /// The key as installed (Slipway replaces its comment with its own marker).
    pub public_key: String,
    #[schema(example = "SHA256:…")]
    pub fingerprint: String,
    /// `installing`, `installed`, `failed`, `removing`, or `removed` (deleted at once because
    /// the server was not provisioned).
    pub status: String,
    pub status_reason: Option<String>,
    /// The operation applying the last change, when one was queued by this request.
    pub operation_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn ssh_key_resource(item: &ServerItem, operation_id: Option<String>) -> Result<SshKeyResource, ApiError> {
    let spec: SshKeySpec = spec(item)?;
    Ok(SshKeyResource {
        id: item.id.clone(),
        server_id: item.server_id.clone(),
        name: item.name.clone(),
        public_key: spec.public_key,
        fingerprint: spec.fingerprint,
        status: item.status.clone(),
        status_reason: item.status_reason.clone(),
        operation_id,
        created_at: item.created_at,
        updated_at: item.updated_at,
    })
}

const fn ssh_key_ability(action: Action) -> Ability {
    Ability::new(Resource::SshKey, action)
}

/// Keys that may log in to the server as the deploy user (`slipway`).
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/ssh-keys", tag = "ssh-keys",
    params(("server" = String, Path), crate::extract::PageParams),
    security(("token" = ["ssh-key:read"])),
    responses((status = 200, body = Paginated<SshKeyResource>))
)]
pub async fn list_ssh_keys(
    State(state): State<AppState>,
    v: VisibleServer,
    Page(cursor): Page,
) -> Result<Paginated<SshKeyResource>, ApiError> {
    v.principal.authorize_in(&state, &v.server.organization_id, ssh_key_ability(Action::Read)).await?;
    let (rows, total) = state.store.server_items(&v.server.id, SSH_KEY, Some(cursor.request)).await?;
    let data = rows.iter().map(|i| ssh_key_resource(i, None)).collect::<Result<_, _>>()?;
    Ok(cursor.page(data, total))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSshKey {
    #[schema(example = "ana's laptop")]
    pub name: String,
    /// One public key in `authorized_keys` form (`ssh-ed25519 AAAA… comment`); options such as
    /// `command=` are refused.
    pub public_key: String,
}

/// Let the holder of a key log in as the deploy user. Answers 201 with the key `installing`;
/// follow `operation_id` (or the key's status) to see it applied.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/ssh-keys", tag = "ssh-keys",
    params(("server" = String, Path)),
    request_body = CreateSshKey,
    security(("token" = ["ssh-key:create"])),
    responses((status = 201, body = Data<SshKeyResource>))
)]
pub async fn create_ssh_key(
    State(state): State<AppState>,
    v: VisibleServer,
    audit: AuditSlot,
    Json(body): Json<CreateSshKey>,
) -> Result<(StatusCode, Data<SshKeyResource>), ApiError> {
    v.principal.authorize_in(&state, &v.server.organization_id, ssh_key_ability(Action::Create)).await?;
    let mut errors = FieldErrors::new();
    identity::check_label(&mut errors, "name", &body.name);
    let key = SshPublicKey::parse(&body.public_key)
        .map_err(|m| errors.add("public_key", format!("The public_key {m}.")))
        .ok();
    errors.into_result()?;
    let key = key.expect("valid");
    let public_key = format!("{} {}", key.algorithm, key.blob);
    let fingerprint = slipway_remote::fingerprint(&public_key)
        .ok_or_else(|| ApiError::validation("public_key", "The public_key is not a key OpenSSH can read."))?;
    let (existing, _) = state.store.server_items(&v.server.id, SSH_KEY, None).await?;
    if existing.iter().any(|i| spec::<SshKeySpec>(i).is_ok_and(|s| s.fingerprint == fingerprint)) {
        return Err(ApiError::validation("public_key", "This key is already on the server."));
    }
    let (item, operation) =
        add_item(&state, &v.server, SSH_KEY, &body.name, &SshKeySpec { public_key, fingerprint }).await?;
    audit_item(&audit, &v.server, "ssh-key.create", &item);
    Ok((StatusCode::CREATED, Data { data: ssh_key_resource(&item, operation)? }))
}

/// One key.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/ssh-keys/{ssh_key}", tag = "ssh-keys",
    params(("server" = String, Path), ("ssh_key" = String, Path)),
    security(("token" = ["ssh-key:read"])),
    responses((status = 200, body = Data<SshKeyResource>))
)]
pub async fn get_ssh_key(
    State(state): State<AppState>,
    v: VisibleServer,
    ids: axum::extract::Path<(String, String)>,
) -> Result<Data<SshKeyResource>, ApiError> {
    v.principal.authorize_in(&state, &v.server.organization_id, ssh_key_ability(Action::Read)).await?;
    let item = find_item(&state, &v.server, SSH_KEY, &ids.1).await?;
    Ok(Data { data: ssh_key_resource(&item, None)? })
}

/// Stop a key from logging in: it is removed from the deploy user's `authorized_keys`.
/// Answers 202 with the key `removing`; it disappears once the server no longer has it.
#[utoipa::path(
    delete, path = "/api/v1/servers/{server}/ssh-keys/{ssh_key}", tag = "ssh-keys",
    params(("server" = String, Path), ("ssh_key" = String, Path)),
    security(("token" = ["ssh-key:delete"])),
    responses((status = 202, body = Accepted<SshKeyResource>))
)]
pub async fn delete_ssh_key(
    State(state): State<AppState>,
    v: VisibleServer,
    audit: AuditSlot,
    ids: axum::extract::Path<(String, String)>,
) -> Result<Accepted<SshKeyResource>, ApiError> {
    v.principal.authorize_in(&state, &v.server.organization_id, ssh_key_ability(Action::Delete)).await?;
    let mut item = find_item(&state, &v.server, SSH_KEY, &ids.1).await?;
    let operation = remove_item(&state, &v.server, &mut item).await?;
    audit_item(&audit, &v.server, "ssh-key.delete", &item);
    Ok(Accepted { message: "Removing the key.".into(), data: ssh_key_resource(&item, operation)? })
}

// --- network rules ---

#[derive(Debug, Serialize, ToSchema)]
pub struct NetworkRuleResource {
    pub id: String,
    pub server_id: String,
    pub name: String,
    /// A port (`80`) or an inclusive range (`8000-8100`).
    #[schema(example = "3306")]
    pub port: String,
    pub protocol: Protocol,
    /// `any`, or an address or network in CIDR form.
    #[schema(example = "203.0.113.0/24")]
    pub from: String,
    pub action: RuleAction,
    /// `installing`, `installed`, `failed`, `removing`, or `removed`.
    pub status: String,
    pub status_reason: Option<String>,
    pub operation_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn rule_resource(item: &ServerItem, operation_id: Option<String>) -> Result<NetworkRuleResource, ApiError> {
    let spec: NetworkRuleSpec = spec(item)?;
    Ok(NetworkRuleResource {
        id: item.id.clone(),
        server_id: item.server_id.clone(),
        name: item.name.clone(),
        port: spec.ports.to_string(),
        protocol: spec.protocol,
        from: spec.from.unwrap_or_else(|| "any".into()),
        action: spec.action,
        status: item.status.clone(),
        status_reason: item.status_reason.clone(),
        operation_id,
        created_at: item.created_at,
        updated_at: item.updated_at,
    })
}

const fn rule_ability(action: Action) -> Ability {
    Ability::new(Resource::NetworkRule, action)
}

/// The server's firewall rules. Inbound traffic is dropped unless allowed: Slipway's SSH port is
/// always open, 80 and 443 are open unless a deny rule closes them, and deny rules are checked
/// before allow rules.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/network-rules", tag = "network-rules",
    params(("server" = String, Path), crate::extract::PageParams),
    security(("token" = ["network-rule:read"])),
    responses((status = 200, body = Paginated<NetworkRuleResource>))
)]
pub async fn list_network_rules(
    State(state): State<AppState>,
    v: VisibleServer,
    Page(cursor): Page,
) -> Result<Paginated<NetworkRuleResource>, ApiError> {
    v.principal.authorize_in(&state, &v.server.organization_id, rule_ability(Action::Read)).await?;
    let (rows, total) = state.store.server_items(&v.server.id, NETWORK_RULE, Some(cursor.request)).await?;
    let data = rows.iter().map(|i| rule_resource(i, None)).collect::<Result<_, _>>()?;
    Ok(cursor.page(data, total))
}

/// A port as a number or as text (`"8000-8100"`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PortInput {
    Number(u64),
    Text(String),
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNetworkRule {
    #[schema(example = "MySQL from the office")]
    pub name: String,
    /// A port (`3306`) or an inclusive range (`"8000-8100"`).
    pub port: PortInput,
    /// `tcp` (default) or `udp`.
    pub protocol: Option<Protocol>,
    /// `any` (default), or an address or network in CIDR form.
    pub from: Option<String>,
    /// `allow` (default) or `deny`.
    pub action: Option<RuleAction>,
}

/// Add a firewall rule. A rule that would block Slipway's own SSH access is refused (422).
/// Answers 201 with the rule `installing`; follow `operation_id` to see it applied.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/network-rules", tag = "network-rules",
    params(("server" = String, Path)),
    request_body = CreateNetworkRule,
    security(("token" = ["network-rule:create"])),
    responses((status = 201, body = Data<NetworkRuleResource>))
)]
pub async fn create_network_rule(
    State(state): State<AppState>,
    v: VisibleServer,
    audit: AuditSlot,
    Json(body): Json<CreateNetworkRule>,
) -> Result<(StatusCode, Data<NetworkRuleResource>), ApiError> {
    v.principal.authorize_in(&state, &v.server.organization_id, rule_ability(Action::Create)).await?;
    let mut errors = FieldErrors::new();
    identity::check_label(&mut errors, "name", &body.name);
    let port_text = match &body.port {
        PortInput::Number(n) => n.to_string(),
        PortInput::Text(t) => t.clone(),
    };
    let ports = PortRange::parse(&port_text).map_err(|m| errors.add("port", format!("The port {m}."))).ok();
    let from = match body.from.as_deref().map(str::trim) {
        None | Some("any") => None,
        Some(text) => {
            Cidr::parse(text).map_err(|m| errors.add("from", format!("The from {m}."))).ok().map(|c| c.to_string())
        }
    };
    errors.into_result()?;
    let spec = NetworkRuleSpec {
        ports: ports.expect("valid"),
        protocol: body.protocol.unwrap_or(Protocol::Tcp),
        from,
        action: body.action.unwrap_or(RuleAction::Allow),
    };
    let ssh_port = u16::try_from(v.server.ssh_port).unwrap_or(22);
    if spec.locks_out_ssh(ssh_port) {
        return Err(ApiError::validation(
            "port",
            format!(
                "This rule would block SSH on port {ssh_port}, which Slipway needs to manage the server; \
                 Slipway keeps that port open."
            ),
        ));
    }
    let (item, operation) = add_item(&state, &v.server, NETWORK_RULE, &body.name, &spec).await?;
    audit_item(&audit, &v.server, "network-rule.create", &item);
    Ok((StatusCode::CREATED, Data { data: rule_resource(&item, operation)? }))
}

/// One rule.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/network-rules/{network_rule}", tag = "network-rules",
    params(("server" = String, Path), ("network_rule" = String, Path)),
    security(("token" = ["network-rule:read"])),
    responses((status = 200, body = Data<NetworkRuleResource>))
)]
pub async fn get_network_rule(
    State(state): State<AppState>,
    v: VisibleServer,
    ids: axum::extract::Path<(String, String)>,
) -> Result<Data<NetworkRuleResource>, ApiError> {
    v.principal.authorize_in(&state, &v.server.organization_id, rule_ability(Action::Read)).await?;
    let item = find_item(&state, &v.server, NETWORK_RULE, &ids.1).await?;
    Ok(Data { data: rule_resource(&item, None)? })
}

/// Remove a firewall rule. Answers 202 with the rule `removing`.
#[utoipa::path(
    delete, path = "/api/v1/servers/{server}/network-rules/{network_rule}", tag = "network-rules",
    params(("server" = String, Path), ("network_rule" = String, Path)),
    security(("token" = ["network-rule:delete"])),
    responses((status = 202, body = Accepted<NetworkRuleResource>))
)]
pub async fn delete_network_rule(
    State(state): State<AppState>,
    v: VisibleServer,
    audit: AuditSlot,
    ids: axum::extract::Path<(String, String)>,
) -> Result<Accepted<NetworkRuleResource>, ApiError> {
    v.principal.authorize_in(&state, &v.server.organization_id, rule_ability(Action::Delete)).await?;
    let mut item = find_item(&state, &v.server, NETWORK_RULE, &ids.1).await?;
    let operation = remove_item(&state, &v.server, &mut item).await?;
    audit_item(&audit, &v.server, "network-rule.delete", &item);
    Ok(Accepted { message: "Removing the rule.".into(), data: rule_resource(&item, operation)? })
}
