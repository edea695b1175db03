//! Backup storages: where an organisation's backups go, an S3-compatible bucket or a directory
//! on one of its servers. Abilities `backup:*`; a storage serves the whole organisation, so
//! tokens restricted to some servers or sites cannot reach it. `POST …/test` proves one works.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::time::now;
use slipway_core::{FieldErrors, identity};
use slipway_engine::backup_storage::{
    LocalSettings, ProbeStep, S3Settings, Storage, bucket_problem, endpoint_problem, key_problem, local_path_problem,
    prefix_problem, region_problem, secret_context,
};
use slipway_store::BackupStorage;
use utoipa::ToSchema;

use crate::audit::AuditSlot;
use crate::auth::{Authorized, OrganizationCaller, Shared, SharedRecord};
use crate::envelope::{Data, Paginated};
use crate::error::ApiError;
use crate::extract::{Json, Page};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct BackupStorageResource {
    pub id: String,
    pub organization_id: String,
    #[schema(example = "Offsite (Backblaze)")]
    pub name: String,
    /// `s3` or `local`.
    pub kind: String,
    /// S3: the endpoint (`null` for AWS).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub path_style: Option<bool>,
    pub access_key_id: Option<String>,
    /// S3: whether a secret access key is stored (it is never shown again).
    pub has_secret_access_key: bool,
    /// Local: the server and directory.
    pub server_id: Option<String>,
    pub path: Option<String>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl From<&BackupStorage> for BackupStorageResource {
    fn from(s: &BackupStorage) -> Self {
        let s3 = (s.kind == "s3").then(|| serde_json::from_str::<S3Settings>(&s.config).ok()).flatten();
        let local = (s.kind == "local").then(|| serde_json::from_str::<LocalSettings>(&s.config).ok()).flatten();
        BackupStorageResource {
            id: s.id.clone(),
            organization_id: s.organization_id.clone(),
            name: s.name.clone(),
            kind: s.kind.clone(),
            endpoint: s3.as_ref().and_then(|c| c.endpoint.clone()),
            region: s3.as_ref().map(|c| c.region.clone()),
            bucket: s3.as_ref().map(|c| c.bucket.clone()),
            prefix: s3.as_ref().map(|c| c.prefix.clone()),
            path_style: s3.as_ref().map(|c| c.path_style),
            access_key_id: s3.as_ref().map(|c| c.access_key_id.clone()),
            has_secret_access_key: s.secret.is_some(),
            server_id: local.as_ref().map(|c| c.server_id.clone()),
            path: local.map(|c| c.path),
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// A storage named by `{backup_storage}` that the caller may act on, or 404 / 403.
pub type VisibleStorage = Authorized<Shared<BackupStorage>>;

impl SharedRecord for BackupStorage {
    const PARAM: &'static str = "backup_storage";

    async fn find(state: &AppState, id: &str) -> Result<Option<Self>, slipway_store::StoreError> {
        state.store.backup_storage(id).await
    }

    fn organization_id(&self) -> &str {
        &self.organization_id
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupStorageInput {
    #[schema(example = "Offsite", min_length = 1, max_length = 255)]
    pub name: String,
    /// `s3` (any S3-compatible store) or `local` (a directory on one of your servers). Fixed once
    /// created.
    #[schema(example = "s3")]
    pub kind: String,
    /// S3: `https://host[:port]` of a store other than AWS (Backblaze, Wasabi, MinIO, R2, …).
    #[schema(example = "https://s3.eu-central-003.backblazeb2.com")]
    pub endpoint: Option<String>,
    /// S3: the region (default `us-east-1`).
    pub region: Option<String>,
    /// S3: the bucket (it must exist).
    pub bucket: Option<String>,
    /// S3: objects go under this prefix (default none).
    pub prefix: Option<String>,
    /// S3: path-style requests (`endpoint/bucket/key`), which most self-hosted stores need
    /// (default `false`: virtual-hosted style).
    pub path_style: Option<bool>,
    pub access_key_id: Option<String>,
    /// Stored encrypted and never shown again. On update, leave it out to keep the stored one.
    pub secret_access_key: Option<String>,
    /// Local: a server of the same organisation.
    pub server_id: Option<String>,
    /// Local: an absolute directory on it (created root-only if missing).
    #[schema(example = "/var/backups/slipway")]
    pub path: Option<String>,
    /// For a new storage: the organisation (default: your only one).
    pub organization_id: Option<String>,
}

/// Checks `input` for organisation `org`; returns the name, config JSON and the new secret.
async fn checked(
    state: &AppState,
    org: &str,
    input: &BackupStorageInput,
    keeps_secret: bool,
) -> Result<(String, String, Option<String>), ApiError> {
    let mut errors = FieldErrors::new();
    identity::check_label(&mut errors, "name", &input.name);
    let s3_fields = [
        ("endpoint", input.endpoint.is_some()),
        ("region", input.region.is_some()),
        ("bucket", input.bucket.is_some()),
        ("prefix", input.prefix.is_some()),
        ("path_style", input.path_style.is_some()),
        ("access_key_id", input.access_key_id.is_some()),
        ("secret_access_key", input.secret_access_key.is_some()),
    ];
    let local_fields = [("server_id", input.server_id.is_some()), ("path", input.path.is_some())];
    let refuse_other = |errors: &mut FieldErrors, fields: &[(&str, bool)], kind: &str| {
        for (field, given) in fields {
            if *given {
                errors.add(*field, format!("Not a setting of a {kind} storage."));
            }
        }
    };
    let config = match input.kind.as_str() {
        "s3" => {
            refuse_other(&mut errors, &local_fields, "s3");
            let endpoint = input.endpoint.clone().filter(|e| !e.is_empty());
            if let Some(why) = endpoint.as_deref().and_then(endpoint_problem) {
                errors.add("endpoint", why);
            }
            let region = input.region.clone().unwrap_or_else(|| "us-east-1".into());
            if let Some(why) = region_problem(&region) {
                errors.add("region", why);
            }
            let bucket = input.bucket.clone().unwrap_or_default();
            if let Some(why) = bucket_problem(&bucket) {
                errors.add("bucket", why);
            }
            let prefix = input.prefix.clone().unwrap_or_default().trim_end_matches('/').to_string();
            if let Some(why) = prefix_problem(&prefix) {
                errors.add("prefix", why);
            }
            let access_key_id = input.access_key_id.clone().unwrap_or_default();
            if let Some(why) = key_problem(&access_key_id) {
                errors.add("access_key_id", why);
            }
            match &input.secret_access_key {
                Some(secret) => {
                    if let Some(why) = key_problem(secret) {
                        errors.add("secret_access_key", why);
                    }
                }
                None if !keeps_secret => errors.add("secret_access_key", "Give the secret access key."),
                None => {}
            }
            let settings = S3Settings {
                endpoint,
                region,
                bucket,
                prefix,
                path_style: input.path_style.unwrap_or(false),
                access_key_id,
            };
            serde_json::to_string(&settings).map_err(ApiError::internal)?
        }
        "local" => {
            refuse_other(&mut errors, &s3_fields, "local");
            let path = input.path.clone().unwrap_or_default();
            if let Some(why) = local_path_problem(&path) {
                errors.add("path", why);
            }
            let server_id = input.server_id.clone().unwrap_or_default();
            match state.store.server(&server_id).await? {
                Some(server) if server.organization_id == org => {}
                _ => errors.add("server_id", "No server with this id in the storage's organisation."),
            }
            serde_json::to_string(&LocalSettings { server_id, path: path.trim_end_matches('/').to_string() })
                .map_err(ApiError::internal)?
        }
        _ => {
            errors.add("kind", "The kind is s3 or local.");
            String::new()
        }
    };
    errors.into_result()?;
    Ok((input.name.trim().to_string(), config, input.secret_access_key.clone()))
}

/// Backup storages of your organizations.
#[utoipa::path(
    get, path = "/api/v1/backup-storages", tag = "backups",
    params(crate::extract::PageParams),
    security(("token" = ["backup:read"])),
    responses((status = 200, body = Paginated<BackupStorageResource>))
)]
pub async fn list_backup_storages(
    State(state): State<AppState>,
    caller: OrganizationCaller,
    Page(cursor): Page,
) -> Result<Paginated<BackupStorageResource>, ApiError> {
    let orgs = caller.organizations(&state).await?;
    let (rows, total) = state.store.backup_storages_of(&orgs, cursor.request).await?;
    Ok(cursor.page(rows.iter().map(BackupStorageResource::from).collect(), total))
}

/// Add a backup storage. Nothing is contacted: `POST …/test` proves it works.
#[utoipa::path(
    post, path = "/api/v1/backup-storages", tag = "backups",
    request_body = BackupStorageInput,
    security(("token" = ["backup:create"])),
    responses((status = 201, body = Data<BackupStorageResource>))
)]
pub async fn create_backup_storage(
    State(state): State<AppState>,
    caller: OrganizationCaller,
    audit: AuditSlot,
    Json(body): Json<BackupStorageInput>,
) -> Result<(StatusCode, Data<BackupStorageResource>), ApiError> {
    let org = caller.organization_for_new(&state, body.organization_id.as_deref()).await?;
    let (name, config, secret) = checked(&state, &org, &body, false).await?;
    let id = slipway_core::new_id();
    let storage = BackupStorage {
        secret: secret.map(|s| state.secrets.seal(&secret_context(&id), s.as_bytes())),
        id,
        organization_id: org,
        name,
        kind: body.kind,
        config,
        created_at: now(),
        updated_at: now(),
    };
    state.store.insert_backup_storage(&storage).await?;
    note(&audit, &storage);
    Ok((StatusCode::CREATED, Data { data: (&storage).into() }))
}

fn note(audit: &AuditSlot, storage: &BackupStorage) {
    audit.note(|n| {
        n.organization_id = Some(storage.organization_id.clone());
        n.resource_id = Some(storage.id.clone());
    });
}

/// One backup storage.
#[utoipa::path(
    get, path = "/api/v1/backup-storages/{backup_storage}", tag = "backups",
    params(("backup_storage" = String, Path)),
    security(("token" = ["backup:read"])),
    responses((status = 200, body = Data<BackupStorageResource>))
)]
pub async fn get_backup_storage(v: VisibleStorage) -> Result<Data<BackupStorageResource>, ApiError> {
    Ok(Data { data: v.record().into() })
}

/// Change a storage: the same fields as creating it (its kind stays); leave
/// `secret_access_key` out to keep the stored one.
#[utoipa::path(
    put, path = "/api/v1/backup-storages/{backup_storage}", tag = "backups",
    params(("backup_storage" = String, Path)),
    request_body = BackupStorageInput,
    security(("token" = ["backup:update"])),
    responses((status = 200, body = Data<BackupStorageResource>))
)]
pub async fn update_backup_storage(
    State(state): State<AppState>,
    v: VisibleStorage,
    audit: AuditSlot,
    Json(body): Json<BackupStorageInput>,
) -> Result<Data<BackupStorageResource>, ApiError> {
    let current = v.record();
    if body.kind != current.kind {
        return Err(ApiError::validation(
            "kind",
            format!("A storage's kind stays {}; add a new storage.", current.kind),
        ));
    }
    if body.organization_id.as_deref().is_some_and(|o| o != current.organization_id) {
        return Err(ApiError::validation("organization_id", "A storage stays in its organisation."));
    }
    let (name, config, secret) = checked(&state, &current.organization_id, &body, current.secret.is_some()).await?;
    let storage = BackupStorage {
        name,
        config,
        secret: match secret {
            Some(s) => Some(state.secrets.seal(&secret_context(&current.id), s.as_bytes())),
            None => current.secret.clone(),
        },
        updated_at: now(),
        ..current.clone()
    };
    if !state.store.update_backup_storage(&storage).await? {
        return Err(ApiError::NotFound);
    }
    note(&audit, &storage);
    Ok(Data { data: (&storage).into() })
}

/// Remove a storage from Slipway (what it holds stays where it is).
#[utoipa::path(
    delete, path = "/api/v1/backup-storages/{backup_storage}", tag = "backups",
    params(("backup_storage" = String, Path)),
    security(("token" = ["backup:delete"])),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete_backup_storage(
    State(state): State<AppState>,
    v: VisibleStorage,
    audit: AuditSlot,
) -> Result<StatusCode, ApiError> {
    state.store.delete_backup_storage(&v.record().id).await?;
    note(&audit, v.record());
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StorageTest {
    /// Every step passed.
    pub ok: bool,
    /// Write a probe object, read it back and compare, delete it: each with its outcome and,
    /// when it failed, the storage's own words.
    pub steps: Vec<ProbeStep>,
}

/// Prove a storage works as a backup will use it: write a small probe object, read it back,
/// delete it. 200 with each step's outcome (`ok: false` and the storage's words when one failed).
#[utoipa::path(
    post, path = "/api/v1/backup-storages/{backup_storage}/test", tag = "backups",
    params(("backup_storage" = String, Path)),
    security(("token" = ["backup:update"])),
    responses((status = 200, body = Data<StorageTest>))
)]
pub async fn test_backup_storage(
    State(state): State<AppState>,
    v: VisibleStorage,
) -> Result<Data<StorageTest>, ApiError> {
    let steps = match Storage::open(&state.engine, v.record()).await {
        Ok(storage) => storage.probe(&state.engine).await,
        Err(why) => vec![ProbeStep { step: "write".into(), status: "failed".into(), error: Some(why) }],
    };
    let ok = steps.iter().all(|s| s.status == "passed");
    Ok(Data { data: StorageTest { ok, steps } })
}

pub fn router(router: utoipa_axum::router::OpenApiRouter<AppState>) -> utoipa_axum::router::OpenApiRouter<AppState> {
    router
        .routes(utoipa_axum::routes!(list_backup_storages, create_backup_storage))
        .routes(utoipa_axum::routes!(get_backup_storage, update_backup_storage, delete_backup_storage))
        .routes(utoipa_axum::routes!(test_backup_storage))
}
