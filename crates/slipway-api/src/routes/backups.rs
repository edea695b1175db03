//! Backups: made per database (`POST /servers/{server}/databases/{database}/backups`), listed
//! per database and across the organisation (`GET /backups?status=&type=`). A backup is a job
//! (follow `operation_id`); it is `completed` only once the storage holds every byte.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::time::now;
use slipway_engine::backups::{BACKUP_DATABASE, BackupJob, Manifest, job_resource, object_key};
use slipway_engine::items::DatabaseSpec;
use slipway_store::{Backup, BackupFilter};
use utoipa::{IntoParams, ToSchema};

use super::items::OnItem;
use super::items::databases::DatabaseRoutes;
use crate::audit::AuditSlot;
use crate::auth::{Authorized, OrganizationCaller, Shared, SharedRecord};
use crate::envelope::{Accepted, Data, Paginated};
use crate::error::ApiError;
use crate::extract::{Json, Page, Query};
use crate::jobs::enqueue;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct BackupResource {
    pub id: String,
    pub organization_id: String,
    /// `database` or `application`.
    #[serde(rename = "type")]
    pub kind: String,
    pub server_id: String,
    pub database_id: Option<String>,
    pub site_id: Option<String>,
    pub storage_id: String,
    /// Where it is in the storage (under its prefix or directory).
    pub object_key: String,
    /// `pending`, `in_progress`, `completed`, `failed` (see `error`) or `restored`.
    pub status: String,
    pub size_bytes: Option<i64>,
    /// Hex SHA-256 of the stored object.
    pub sha256: Option<String>,
    /// The tables and their row counts at dump time.
    pub manifest: Option<Manifest>,
    pub error: Option<String>,
    /// The job that makes it (`GET /operations/{id}` and its log).
    pub operation_id: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl From<&Backup> for BackupResource {
    fn from(b: &Backup) -> Self {
        BackupResource {
            id: b.id.clone(),
            organization_id: b.organization_id.clone(),
            kind: b.kind.clone(),
            server_id: b.server_id.clone(),
            database_id: b.database_id.clone(),
            site_id: b.site_id.clone(),
            storage_id: b.storage_id.clone(),
            object_key: b.object_key.clone(),
            status: b.status.clone(),
            size_bytes: b.size_bytes,
            sha256: b.sha256.clone(),
            manifest: b.manifest.as_deref().and_then(|m| serde_json::from_str(m).ok()),
            error: b.error.clone(),
            operation_id: b.job_id.clone(),
            started_at: b.started_at,
            finished_at: b.finished_at,
            duration_seconds: b.started_at.zip(b.finished_at).map(|(s, f)| (f - s).num_seconds()),
            created_at: b.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBackup {
    /// The backup storage to write to (one of the organisation's).
    pub storage_id: String,
}

/// Back up the database now, to a storage: 202 with the backup `pending`; follow
/// `operation_id`. It ends `completed` (with size, SHA-256 and manifest) or `failed` with the
/// reason, leaving nothing partial in the storage.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/databases/{database}/backups", tag = "backups",
    params(("server" = String, Path), ("database" = String, Path)),
    request_body = CreateBackup,
    security(("token" = ["backup:create"])),
    responses((status = 202, body = Accepted<BackupResource>))
)]
pub async fn create_database_backup(
    State(state): State<AppState>,
    v: Authorized<OnItem<DatabaseRoutes>>,
    audit: AuditSlot,
    Json(body): Json<CreateBackup>,
) -> Result<Accepted<BackupResource>, ApiError> {
    let database: DatabaseSpec = super::items::spec(&v.item)?;
    let storage = state.store.backup_storage(&body.storage_id).await?;
    let Some(storage) = storage.filter(|s| s.organization_id == v.server.organization_id) else {
        return Err(ApiError::validation("storage_id", "No backup storage with this id in the server's organisation."));
    };
    if v.item.status != "installed" {
        return Err(ApiError::Conflict(format!(
            "The database {} is not active ({}); back it up once it is.",
            database.name, v.item.status
        )));
    }
    super::items::require_provisioned(&v.server)?;
    let id = slipway_core::new_id();
    let mut backup = Backup {
        id: id.clone(),
        organization_id: v.server.organization_id.clone(),
        kind: "database".into(),
        server_id: v.server.id.clone(),
        database_id: Some(v.item.id.clone()),
        site_id: None,
        storage_id: storage.id.clone(),
        object_key: String::new(),
        status: "pending".into(),
        size_bytes: None,
        sha256: None,
        manifest: None,
        error: None,
        job_id: Some(slipway_core::new_id()),
        started_at: None,
        finished_at: None,
        created_at: now(),
    };
    backup.object_key = object_key(&backup, &database.name, &database.engine);
    state.store.insert_backup(&backup).await?;
    let spec = slipway_jobs::JobSpec::new(BACKUP_DATABASE.name, BackupJob { backup_id: id })
        .resource(job_resource(&v.server, &v.item.id))
        .organization(&v.server.organization_id)
        .with_id(backup.job_id.clone().unwrap_or_default());
    enqueue(&state, spec).await?;
    audit.note(|n| {
        n.organization_id = Some(backup.organization_id.clone());
        n.resource_id = Some(backup.id.clone());
        n.detail = Some(format!("database {} on server {}", database.name, v.server.id));
    });
    Ok(Accepted { message: "Backing up the database.".into(), data: (&backup).into() })
}

/// The database's backups, newest first.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/databases/{database}/backups", tag = "backups",
    params(("server" = String, Path), ("database" = String, Path), crate::extract::PageParams),
    security(("token" = ["backup:read"])),
    responses((status = 200, body = Paginated<BackupResource>))
)]
pub async fn list_database_backups(
    State(state): State<AppState>,
    v: Authorized<OnItem<DatabaseRoutes>>,
    Page(cursor): Page,
) -> Result<Paginated<BackupResource>, ApiError> {
    let filter = BackupFilter { database_id: Some(v.item.id.clone()), ..Default::default() };
    let orgs = [v.server.organization_id.clone()];
    let (rows, total) = state.store.backups_of(&orgs, &filter, cursor.request).await?;
    Ok(cursor.page(rows.iter().map(BackupResource::from).collect(), total))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BackupQuery {
    /// `pending`, `in_progress`, `completed`, `failed` or `restored`.
    pub status: Option<String>,
    /// `application` or `database`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// Every backup of your organizations, newest first; `?status=` and `?type=` narrow it.
#[utoipa::path(
    get, path = "/api/v1/backups", tag = "backups",
    params(BackupQuery),
    security(("token" = ["backup:read"])),
    responses((status = 200, body = Paginated<BackupResource>))
)]
pub async fn list_backups(
    State(state): State<AppState>,
    caller: OrganizationCaller,
    Query(query): Query<BackupQuery>,
    Page(cursor): Page,
) -> Result<Paginated<BackupResource>, ApiError> {
    if query
        .status
        .as_deref()
        .is_some_and(|s| !["pending", "in_progress", "completed", "failed", "restored"].contains(&s))
    {
        return Err(ApiError::validation(
            "status",
            "The status is pending, in_progress, completed, failed or restored.",
        ));
    }
    if query.kind.as_deref().is_some_and(|k| !["application", "database"].contains(&k)) {
        return Err(ApiError::validation("type", "The type is application or database."));
    }
    let orgs = caller.organizations(&state).await?;
    let filter = BackupFilter { status: query.status, kind: query.kind, database_id: None };
    let (rows, total) = state.store.backups_of(&orgs, &filter, cursor.request).await?;
    Ok(cursor.page(rows.iter().map(BackupResource::from).collect(), total))
}

impl SharedRecord for Backup {
    const PARAM: &'static str = "backup";

    async fn find(state: &AppState, id: &str) -> Result<Option<Self>, slipway_store::StoreError> {
        state.store.backup(id).await
    }

    fn organization_id(&self) -> &str {
        &self.organization_id
    }
}

/// One backup.
#[utoipa::path(
    get, path = "/api/v1/backups/{backup}", tag = "backups",
    params(("backup" = String, Path)),
    security(("token" = ["backup:read"])),
    responses((status = 200, body = Data<BackupResource>))
)]
pub async fn get_backup(v: Authorized<Shared<Backup>>) -> Result<Data<BackupResource>, ApiError> {
    Ok(Data { data: v.record().into() })
}

/// Download a backup's object, streamed from its storage as it is read: `Content-Length` is its
/// size and `X-Checksum-SHA256` its SHA-256 (check it). 409 unless it is `completed` or
/// `restored`; 503 when the storage cannot give it (gone, or not the size recorded). At most 10
/// downloads per hour per token (`rate_limit_backup_download`).
#[utoipa::path(
    get, path = "/api/v1/backups/{backup}/download", tag = "backups",
    params(("backup" = String, Path)),
    security(("token" = ["backup:read"])),
    responses(
        (status = 200, description = "The backup's bytes", content_type = "application/octet-stream"),
        (status = 429, body = crate::error::ErrorBody)
    )
)]
pub async fn download_backup(
    State(state): State<AppState>,
    v: Authorized<Shared<Backup>>,
    report: Option<axum::Extension<crate::ratelimit::RateLimitReport>>,
) -> Result<axum::response::Response, ApiError> {
    let limit = state.config.rate_limits.backup_download_per_hour;
    let decision =
        state.limiter.hit("backup-download", &format!("token:{}", v.principal.token_id), limit, 3600).await?;
    if let Some(report) = report.as_deref() {
        report.record(&decision);
    }
    if !decision.allowed {
        return Err(decision.into_error());
    }
    let backup = v.record();
    let (Some(size), Some(sha256)) = (backup.size_bytes, &backup.sha256) else {
        return Err(ApiError::Conflict(format!(
            "The backup is {}; only a completed backup can be downloaded.",
            backup.status
        )));
    };
    if !matches!(backup.status.as_str(), "completed" | "restored") {
        return Err(ApiError::Conflict(format!(
            "The backup is {}; only a completed backup can be downloaded.",
            backup.status
        )));
    }
    let chunks = slipway_engine::backups::open_download(&state.engine, backup)
        .await
        .map_err(|why| ApiError::Unavailable(format!("The storage cannot give the backup: {why}")))?;
    let body = futures_util::stream::unfold(chunks, |mut chunks| async move {
        let next = chunks.recv().await?;
        Some((next.map(axum::body::Bytes::from).map_err(std::io::Error::other), chunks))
    });
    let file = backup.object_key.rsplit('/').next().unwrap_or("backup");
    axum::response::Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "application/octet-stream")
        .header(axum::http::header::CONTENT_LENGTH, size)
        .header(axum::http::header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\""))
        .header("x-checksum-sha256", sha256)
        .body(axum::body::Body::from_stream(body))
        .map_err(ApiError::internal)
}

pub fn router(router: utoipa_axum::router::OpenApiRouter<AppState>) -> utoipa_axum::router::OpenApiRouter<AppState> {
    router
        .routes(utoipa_axum::routes!(list_database_backups, create_database_backup))
        .routes(utoipa_axum::routes!(list_backups))
        .routes(utoipa_axum::routes!(get_backup))
        .routes(utoipa_axum::routes!(download_backup))
}
