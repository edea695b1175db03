//! SSH keys that may log in to a server as the deploy user (`slipway`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::server_input::SshPublicKey;
use slipway_core::{FieldErrors, identity};
use slipway_engine::items::{ItemKind, SshKeySpec, SshKeys};
use slipway_store::{Server, ServerItem};
use utoipa::ToSchema;

use super::{ItemRoutes, spec};
use crate::error::ApiError;

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
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSshKey {
    #[schema(example = "ana's laptop", min_length = 1, max_length = 255)]
    pub name: String,
    /// One public key in `authorized_keys` form (`ssh-ed25519 AAAA… comment`); options such as
    /// `command=` are refused.
    #[schema(min_length = 1)]
    pub public_key: String,
}

#[derive(Debug)]
pub struct SshKeyRoutes;

impl ItemRoutes for SshKeyRoutes {
    const KIND: &'static dyn ItemKind = &SshKeys;
    const PARAM: &'static str = "ssh_key";
    const AUDIT: &'static str = "ssh-key";
    const REMOVING: &'static str = "Removing the key.";
    type Spec = SshKeySpec;
    type Create = CreateSshKey;
    type Resource = SshKeyResource;

    fn validate(_: &Server, body: CreateSshKey, existing: &[ServerItem]) -> Result<(String, SshKeySpec), ApiError> {
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
        if existing.iter().any(|i| spec::<SshKeySpec>(i).is_ok_and(|s| s.fingerprint == fingerprint)) {
            return Err(ApiError::validation("public_key", "This key is already on the server."));
        }
        Ok((body.name, SshKeySpec { public_key, fingerprint }))
    }

    fn resource(item: &ServerItem, spec: SshKeySpec, operation_id: Option<String>) -> SshKeyResource {
        SshKeyResource {
            id: item.id.clone(),
            server_id: item.server_id.clone(),
            name: item.name.clone(),
            public_key: spec.public_key,
            fingerprint: spec.fingerprint,
            status: item.shown_status().into(),
            status_reason: item.status_reason.clone(),
            operation_id,
            created_at: item.created_at,
            updated_at: item.updated_at,
        }
    }
}

crate::server_item_routes! {
    routes: SshKeyRoutes, input: CreateSshKey, resource: SshKeyResource, tag: "ssh-keys",
    collection: "/api/v1/servers/{server}/ssh-keys", item: "/api/v1/servers/{server}/ssh-keys/{ssh_key}",
    param: "ssh_key", read: "ssh-key:read", create: "ssh-key:create", update: "ssh-key:update", delete: "ssh-key:delete",
    list: list_ssh_keys = "Keys that may log in to the server as the deploy user (`slipway`).",
    create: create_ssh_key = "Let the holder of a key log in as the deploy user. Answers 201 with the key `installing`;\nfollow `operation_id` (or the key's status) to see it applied.",
    show: get_ssh_key = "One key.",
    update: update_ssh_key = "Replace a key (or rename it): the same fields as adding it. Answers 200 with the key
`installing`; follow `operation_id`.",
    delete: delete_ssh_key = "Stop a key from logging in: it is removed from the deploy user's `authorized_keys`.\nAnswers 202 with the key `removing`; it disappears once the server no longer has it.",
}
