//! Backups: made per database (`POST /servers/{server}/databases/{database}/backups`), listed
//! per database and across the organisation (`GET /backups?status=&type=`). A backup is a job
//! (follow `operation_id`); it is `completed` only once the storage holds every byte.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::{BackupStatus, InstallStatus};
use slipway_engine::backup_restore::{BACKUP_RESTORE, BACKUP_VERIFY, RestoreJob, RestoreMode, VerifyJob};
use slipway_engine::backups::{Manifest, job_resource};
use slipway_engine::items::{DatabaseSpec, Databases, ItemKind};
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
use crate::routes::servers::OperationResource;
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
    #[serde(serialize_with = "slipway_wire::time::rfc3339_option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339_option")]
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<i64>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// When a verification last restored it into a scratch database and found the tables and
    /// rows of its manifest (`POST /backups/{id}/verify`).
    #[serde(serialize_with = "slipway_wire::time::rfc3339_option")]
    pub verified_at: Option<DateTime<Utc>>,
    /// What the last verification found wrong; the backup is then `failed`.
    pub verification_error: Option<String>,
    /// When it was last restored.
    #[serde(serialize_with = "slipway_wire::time::rfc3339_option")]
    pub restored_at: Option<DateTime<Utc>>,
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
            status: b.status.to_string(),
            size_bytes: b.size_bytes,
            sha256: b.sha256.clone(),
            manifest: b.manifest.as_deref().and_then(|m| serde_json::from_str(m).ok()),
            error: b.error.clone(),
            operation_id: b.job_id.clone(),
            started_at: b.started_at,
            finished_at: b.finished_at,
            duration_seconds: b.started_at.zip(b.finished_at).map(|(s, f)| (f - s).num_seconds()),
            created_at: b.created_at,
            verified_at: b.verified_at,
            verification_error: b.verification_error.clone(),
            restored_at: b.restored_at,
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
    if v.item.status != InstallStatus::Installed {
        return Err(ApiError::Conflict(format!(
            "The database {} is not active ({}); back it up once it is.",
            database.name, v.item.status
        )));
    }
    super::items::require_provisioned(&v.server)?;
    let backup = slipway_engine::backups::start_database_backup(
        state.store.as_ref(),
        &v.server,
        &v.item,
        &database,
        &storage.id,
        None,
    )
    .await?;
    // Queued by the engine: the worker is woken here rather than at its next poll.
    state.engine.wake_worker();
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
    let status = query.status.as_deref().map(str::parse::<BackupStatus>).transpose();
    let status = status.map_err(|e| ApiError::validation("status", format!("The status is {}.", e.expected)))?;
    if query.kind.as_deref().is_some_and(|k| !["application", "database"].contains(&k)) {
        return Err(ApiError::validation("type", "The type is application or database."));
    }
    let orgs = caller.organizations(&state).await?;
    let filter = BackupFilter { status, kind: query.kind, ..Default::default() };
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
/// size and `X-Checksum-SHA256` its SHA-256 (check it). An application backup (it holds the
/// site's `.env`) also needs `site:update`, as revealing the values does. 409 unless it is `completed` or
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
    // An application backup holds the site's `.env`: whoever may not reveal its values (that
    // needs `site:update`) may not download them either.
    if v.record().site_id.is_some() {
        v.require_also(slipway_core::Ability::new(slipway_core::Resource::Site, slipway_core::Action::Update))?;
    }
    let limit = state.config.rate_limits.backup_download_per_hour;
    let decision = state.limiter.hit("backup-download", &v.principal.subject_key, limit, 3600).await?;
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreTarget {
    /// A database on the backup's server. One Slipway manages has its tables replaced (give
    /// `confirm`); a new name is created, empty, and restored into.
    #[schema(example = "shop_restored")]
    pub database: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBackup {
    /// Where to restore; by default the database that was backed up.
    pub target: Option<RestoreTarget>,
    /// The name of the database restored into, again, when it exists: its tables are replaced
    /// by the backup's.
    #[schema(example = "shop")]
    pub confirm: Option<String>,
}

/// 409 unless `backup`'s object was stored whole (it has a SHA-256), and for a verification a
/// database backup (there is no manifest of files to compare). A restore also needs it good
/// (`completed` or `restored`); a verification may try a `failed` one again.
fn restorable(backup: &Backup, doing: &str) -> Result<(), ApiError> {
    if doing == "verified" && backup.kind != "database" {
        return Err(ApiError::Conflict(
            "Only database backups are verified (restored into a scratch database); download an application backup to check it.".into(),
        ));
    }
    let good = matches!(backup.status.as_str(), "completed" | "restored");
    if backup.sha256.is_none() || !(good || doing == "verified" && backup.status == BackupStatus::Failed) {
        let why = backup.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
        return Err(ApiError::Conflict(format!(
            "The backup is {}{why}; only a completed backup can be {doing}.",
            backup.status
        )));
    }
    Ok(())
}

/// The backup's server, provisioned, with a database engine.
async fn server_of(state: &AppState, backup: &Backup) -> Result<slipway_store::Server, ApiError> {
    let server = state
        .store
        .server(&backup.server_id)
        .await?
        .ok_or_else(|| ApiError::Conflict("The backup's server was deleted.".into()))?;
    super::items::require_provisioned(&server)?;
    if slipway_engine::items::databases::engine_of(&server.database_type).is_none() {
        return Err(ApiError::Conflict("The backup's server has no database engine any more.".into()));
    }
    Ok(server)
}

/// An application backup goes back into its site's shared paths, once the site's domain is given
/// in `confirm`.
async fn restore_application(
    state: &AppState,
    backup: &Backup,
    body: RestoreBackup,
    audit: &AuditSlot,
) -> Result<Accepted<OperationResource>, ApiError> {
    if body.target.is_some() {
        return Err(ApiError::validation(
            "target",
            "An application backup goes back to its own site; leave out target.",
        ));
    }
    let site = match backup.site_id.as_deref() {
        Some(id) => state.store.site(id).await?,
        None => None,
    }
    .ok_or_else(|| ApiError::Conflict("The backup's site was deleted.".into()))?;
    if body.confirm.as_deref() != Some(site.domain.as_str()) {
        return Err(ApiError::validation(
            "confirm",
            format!("Give the site's domain ({}) to confirm: restoring writes over its shared files.", site.domain),
        ));
    }
    let payload = RestoreJob {
        backup_id: backup.id.clone(),
        database_id: String::new(),
        mode: RestoreMode::Overwrite,
        created: false,
    };
    let job = enqueue(state, BACKUP_RESTORE.about_site(&site, payload)).await?;
    audit.note(|n| {
        n.organization_id = Some(backup.organization_id.clone());
        n.resource_id = Some(backup.id.clone());
        n.detail = Some(format!("into the shared paths of {}, operation {}", site.domain, job.id));
    });
    Ok(Accepted {
        message: format!("Restoring the backup into the shared paths of {}.", site.domain),
        data: crate::resources::operation(&job),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApplicationBackup {
    /// The site whose shared paths and `.env` are backed up.
    pub site_id: String,
    /// The backup storage to write to (one of the site's organisation's).
    pub storage_id: String,
}

/// Back up a site's shared paths (`shared/`: uploads, storage) and its live `.env` as one
/// gzipped tar, streamed to a storage: 202 with the backup `pending`; follow `operation_id`. It
/// runs between the site's deploys, never during one.
#[utoipa::path(
    post, path = "/api/v1/backups/application", tag = "backups",
    request_body = CreateApplicationBackup,
    security(("token" = ["backup:create"])),
    responses((status = 202, body = Accepted<BackupResource>))
)]
pub async fn create_application_backup(
    State(state): State<AppState>,
    caller: OrganizationCaller,
    audit: AuditSlot,
    Json(body): Json<CreateApplicationBackup>,
) -> Result<Accepted<BackupResource>, ApiError> {
    let site = state.store.site(&body.site_id).await?;
    let Some(site) = site else {
        return Err(ApiError::validation("site_id", "No site with this id among yours."));
    };
    match caller.authorize_in(&state, &site.organization_id).await {
        Err(ApiError::NotFound) => return Err(ApiError::validation("site_id", "No site with this id among yours.")),
        other => other?,
    };
    let storage = state.store.backup_storage(&body.storage_id).await?;
    if storage.is_none_or(|s| s.organization_id != site.organization_id) {
        return Err(ApiError::validation("storage_id", "No backup storage with this id in the site's organisation."));
    }
    let server = state.store.server(&site.server_id).await?.ok_or(ApiError::NotFound)?;
    super::items::require_provisioned(&server)?;
    let backup =
        slipway_engine::backups::start_application_backup(state.store.as_ref(), &site, &body.storage_id, None).await?;
    state.engine.wake_worker();
    audit.note(|n| {
        n.organization_id = Some(backup.organization_id.clone());
        n.resource_id = Some(backup.id.clone());
        n.detail = Some(format!("site {}", site.domain));
    });
    Ok(Accepted { message: "Backing up the site's shared paths and .env.".into(), data: (&backup).into() })
}

/// Restore a backup. A database backup goes, on its server, into the database that was backed
/// up (name it in `confirm`: its tables are replaced), into another database Slipway manages
/// there (likewise), or into a new one (`{"target": {"database": "shop_restored"}}`, created for
/// it; this also needs `database:create`). An application backup goes into its site's shared
/// paths (`confirm`: the site's domain). 202 with the operation; follow it for the log. The stored
/// object's SHA-256 is checked first; restored tables are then compared with the manifest (a
/// missing table fails it; row counts that differ are a warning). It ends with the backup
/// `restored`, or the operation `failed` with the reason (a new database that the restore had
/// begun to fill is dropped again).
#[utoipa::path(
    post, path = "/api/v1/backups/{backup}/restore", tag = "backups",
    params(("backup" = String, Path)),
    request_body = RestoreBackup,
    security(("token" = ["backup:update", "database:update"])),
    responses((status = 202, body = Accepted<OperationResource>))
)]
pub async fn restore_backup(
    State(state): State<AppState>,
    v: Authorized<Shared<Backup>>,
    audit: AuditSlot,
    Json(body): Json<RestoreBackup>,
) -> Result<Accepted<OperationResource>, ApiError> {
    let backup = v.record();
    restorable(backup, "restored")?;
    if backup.kind == "application" {
        return restore_application(&state, backup, body, &audit).await;
    }
    let server = server_of(&state, backup).await?;
    let (databases, _) = state.store.server_items(&server.id, Databases.name(), None).await?;
    let source = backup.database_id.as_deref().and_then(|id| databases.iter().find(|d| d.id == id));
    let name = match (&body.target, source) {
        (Some(target), _) => target.database.clone(),
        (None, Some(source)) => source.name.clone(),
        (None, None) => {
            return Err(ApiError::validation(
                "target.database",
                "The database that was backed up is gone; name a database to restore into.",
            ));
        }
    };
    let (database_id, mode, created) = match databases.iter().find(|d| d.name == name) {
        Some(existing) => {
            if body.confirm.as_deref() != Some(name.as_str()) {
                return Err(ApiError::validation(
                    "confirm",
                    format!("Give the database's name ({name}) to confirm: restoring replaces its tables."),
                ));
            }
            if existing.status != InstallStatus::Installed {
                return Err(ApiError::Conflict(format!(
                    "The database {name} is not active ({}); restore into it once it is.",
                    existing.status
                )));
            }
            (existing.id.clone(), RestoreMode::Overwrite, false)
        }
        None => {
            // Making a database is more than restoring into one.
            v.require_also(slipway_core::Ability::new(slipway_core::Resource::Database, slipway_core::Action::Create))?;
            let engine = slipway_engine::items::databases::engine_of(&server.database_type).unwrap_or_default();
            if let Some(why) = slipway_engine::items::databases::name_problem(engine, &name) {
                return Err(ApiError::validation("target.database", why));
            }
            // A database Slipway does not manage is never restored over, nor taken over.
            let exists = slipway_engine::items::databases::exists_on_server(&state.engine, &server, &name)
                .await
                .map_err(|why| ApiError::Unavailable(format!("The server cannot be asked about {name}: {why}")))?;
            if exists {
                return Err(ApiError::validation(
                    "target.database",
                    format!(
                        "The server has a database named {name} that Slipway does not manage: import it first \
                         (POST /api/v1/servers/{}/databases/sync) and confirm restoring over it, or choose another name.",
                        server.id
                    ),
                ));
            }
            // The new database takes the character set of the one backed up, so its data fits.
            let from: Option<DatabaseSpec> = source.map(super::items::spec).transpose()?;
            let spec = DatabaseSpec {
                name: name.clone(),
                engine: engine.into(),
                charset: from.as_ref().map_or_else(
                    || if engine == "postgres" { "UTF8".into() } else { "utf8mb4".into() },
                    |f| f.charset.clone(),
                ),
                collation: from.and_then(|f| f.collation),
                imported: false,
            };
            let item = super::items::new_item::<DatabaseRoutes>(&server, &name, &spec, InstallStatus::Installing)?;
            state.store.insert_server_item(&item).await?;
            super::items::sync(&state, &server, &Databases).await?;
            (item.id, RestoreMode::Empty, true)
        }
    };
    let payload = RestoreJob { backup_id: backup.id.clone(), database_id, mode, created };
    // After the database's own sync (same lock, queued first), so a new database exists.
    let job = enqueue(&state, BACKUP_RESTORE.about_server(&server, payload)).await?;
    audit.note(|n| {
        n.organization_id = Some(backup.organization_id.clone());
        n.resource_id = Some(backup.id.clone());
        let into = if created { "new database" } else { "database" };
        n.detail = Some(format!("into {into} {name} on server {}, operation {}", server.id, job.id));
    });
    Ok(Accepted { message: format!("Restoring the backup into {name}."), data: crate::resources::operation(&job) })
}

/// Verify a database backup: its object is read from the storage, its SHA-256 checked, and it
/// is restored into a scratch database on its server whose tables and rows are compared with
/// the manifest; the scratch database is then dropped. 202 with the operation. It records
/// `verified_at`, or the exact mismatch in `verification_error` with the backup `failed`.
#[utoipa::path(
    post, path = "/api/v1/backups/{backup}/verify", tag = "backups",
    params(("backup" = String, Path)),
    security(("token" = ["backup:update"])),
    responses((status = 202, body = Accepted<OperationResource>))
)]
pub async fn verify_backup(
    State(state): State<AppState>,
    v: Authorized<Shared<Backup>>,
    audit: AuditSlot,
) -> Result<Accepted<OperationResource>, ApiError> {
    let backup = v.record();
    restorable(backup, "verified")?;
    if backup.manifest.is_none() {
        return Err(ApiError::Conflict("The backup has no manifest to compare a restore with.".into()));
    }
    let server = server_of(&state, backup).await?;
    let spec = slipway_jobs::JobSpec::new(BACKUP_VERIFY.name, VerifyJob { backup_id: backup.id.clone() })
        .resource(job_resource(&server, backup.database_id.as_deref().unwrap_or_default()))
        .on_server(&server.id)
        .organization(&server.organization_id);
    let job = enqueue(&state, spec).await?;
    audit.note(|n| {
        n.organization_id = Some(backup.organization_id.clone());
        n.resource_id = Some(backup.id.clone());
        n.detail = Some(format!("operation {}", job.id));
    });
    Ok(Accepted { message: "Verifying the backup.".into(), data: crate::resources::operation(&job) })
}

pub fn router(router: utoipa_axum::router::OpenApiRouter<AppState>) -> utoipa_axum::router::OpenApiRouter<AppState> {
    router
        .routes(utoipa_axum::routes!(list_database_backups, create_database_backup))
        .routes(utoipa_axum::routes!(list_backups))
        .routes(utoipa_axum::routes!(get_backup))
        .routes(utoipa_axum::routes!(download_backup))
        .routes(utoipa_axum::routes!(restore_backup))
        .routes(utoipa_axum::routes!(create_application_backup))
        .routes(utoipa_axum::routes!(verify_backup))
}
