//! Backup schedules: a database, or a site's shared paths and `.env`, backed up on a cron-like
//! frequency to one storage, with retention (keep the last N, and the newest of each of the last
//! days, weeks and months). Made per database (`…/databases/{database}/backup-schedules`) or
//! site (`…/sites/{site}/backup-schedules`), then addressed by id (`/backup-schedules/{id}`). A
//! schedule with no good backup within twice its period is `stale`.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::FieldErrors;
use slipway_core::time::now;
use slipway_engine::backup_schedules::{ensure_queued, is_stale, next_run};
use slipway_store::{BackupSchedule, BackupTarget, Server};
use utoipa::ToSchema;

use super::backups::BackupResource;
use super::items::OnItem;
use super::items::databases::DatabaseRoutes;
use super::sites::VisibleSite;
use crate::audit::AuditSlot;
use crate::auth::{Authorized, Shared, SharedRecord};
use crate::envelope::{Accepted, Data, Paginated};
use crate::error::ApiError;
use crate::extract::{Json, Page};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct BackupScheduleResource {
    pub id: String,
    pub organization_id: String,
    /// `database` or `application` (a site's shared paths and `.env`).
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub kind: String,
    pub server_id: String,
    /// The database it backs up (`database` schedules).
    pub database_id: Option<String>,
    /// The site it backs up (`application` schedules).
    pub site_id: Option<String>,
    pub storage_id: String,
    /// `minutely`, `hourly`, `nightly`, `weekly`, `monthly`, or five cron fields; in UTC.
    #[schema(example = "0 3 * * *")]
    pub frequency: String,
    pub keep_last: i64,
    pub keep_daily: i64,
    pub keep_weekly: i64,
    pub keep_monthly: i64,
    /// Each backup is verified once stored (restored into a scratch database and compared).
    pub verify: bool,
    #[serde(serialize_with = "slipway_wire::time::rfc3339_option")]
    pub next_run_at: Option<DateTime<Utc>>,
    /// When its newest good backup (verified, when it verifies) was made.
    #[serde(serialize_with = "slipway_wire::time::rfc3339_option")]
    pub last_good_backup_at: Option<DateTime<Utc>>,
    /// No good backup within twice its period: look at its failed backups.
    pub stale: bool,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupScheduleInput {
    /// The backup storage to write to (one of the organisation's).
    pub storage_id: String,
    /// `minutely`, `hourly`, `nightly`, `weekly`, `monthly`, or five cron fields
    /// (`0 3 * * *`); in UTC.
    #[schema(example = "0 3 * * *")]
    pub frequency: String,
    /// How many of the newest good backups to keep (1 to 1,000; default 7).
    pub keep_last: Option<i64>,
    /// Besides: the newest good backup of each of the last this many days (0 to 1,000;
    /// default 0).
    pub keep_daily: Option<i64>,
    /// … of each of the last this many ISO weeks (default 0).
    pub keep_weekly: Option<i64>,
    /// … of each of the last this many months (default 0).
    pub keep_monthly: Option<i64>,
    /// Verify each backup once stored (default false; database schedules only).
    pub verify: Option<bool>,
}

impl SharedRecord for BackupSchedule {
    const PARAM: &'static str = "backup_schedule";

    async fn find(state: &AppState, id: &str) -> Result<Option<Self>, slipway_store::StoreError> {
        state.store.backup_schedule(id).await
    }

    fn organization_id(&self) -> &str {
        &self.organization_id
    }
}

/// The schedule with the input's settings, checked field by field (its next run set).
async fn apply_input(
    state: &AppState,
    input: BackupScheduleInput,
    mut schedule: BackupSchedule,
) -> Result<BackupSchedule, ApiError> {
    let mut errors = FieldErrors::new();
    let storage = state.store.backup_storage(&input.storage_id).await?;
    if storage.is_none_or(|s| s.organization_id != schedule.organization_id) {
        errors.add("storage_id", "No backup storage with this id in the server's organisation.");
    }
    let next = next_run(&input.frequency, now());
    if let Err(why) = &next {
        errors.add("frequency", why.clone());
    }
    let verify = input.verify.unwrap_or(false);
    if verify && matches!(schedule.target(), BackupTarget::Site(_)) {
        errors.add(
            "verify",
            "Only database backups are verified (restored into a scratch database); an application backup is checked by its SHA-256.",
        );
    }
    let mut count = |field: &'static str, value: Option<i64>, default: i64, least: i64| {
        let value = value.unwrap_or(default);
        if !(least..=1000).contains(&value) {
            errors.add(field, format!("Between {least} and 1000."));
        }
        value
    };
    schedule.keep_last = count("keep_last", input.keep_last, 7, 1);
    schedule.keep_daily = count("keep_daily", input.keep_daily, 0, 0);
    schedule.keep_weekly = count("keep_weekly", input.keep_weekly, 0, 0);
    schedule.keep_monthly = count("keep_monthly", input.keep_monthly, 0, 0);
    errors.into_result()?;
    schedule.storage_id = input.storage_id;
    schedule.frequency = input.frequency;
    schedule.verify = verify;
    schedule.next_run_at = next.ok();
    schedule.updated_at = now();
    Ok(schedule)
}

/// A new schedule of `target` on `server`, with the input's settings: stored, its first run
/// queued, and noted in the audit log.
async fn create(
    state: &AppState,
    server: &Server,
    target: BackupTarget<'_>,
    input: BackupScheduleInput,
    audit: &AuditSlot,
    what: String,
) -> Result<(StatusCode, Data<BackupScheduleResource>), ApiError> {
    let at = now();
    let (database_id, site_id) = target.ids();
    let blank = BackupSchedule {
        id: slipway_core::new_id(),
        organization_id: server.organization_id.clone(),
        server_id: server.id.clone(),
        database_id,
        site_id,
        storage_id: String::new(),
        frequency: String::new(),
        keep_last: 0,
        keep_daily: 0,
        keep_weekly: 0,
        keep_monthly: 0,
        verify: false,
        next_run_at: None,
        created_at: at,
        updated_at: at,
    };
    let schedule = apply_input(state, input, blank).await?;
    state.store.insert_backup_schedule(&schedule).await?;
    ensure_queued(state.store.as_ref(), schedule.clone()).await?;
    audit.note(|n| {
        n.organization_id = Some(schedule.organization_id.clone());
        n.resource_id = Some(schedule.id.clone());
        n.detail = Some(format!("{} of {what} on server {}", schedule.frequency, server.id));
    });
    Ok((StatusCode::CREATED, Data { data: resource(state, &schedule).await? }))
}

/// The schedules of `target`, a page of them.
async fn list(
    state: &AppState,
    target: BackupTarget<'_>,
    cursor: crate::envelope::PageCursor,
) -> Result<Paginated<BackupScheduleResource>, ApiError> {
    // A database or site has a handful of schedules: paged here rather than in SQL.
    let all = state.store.backup_schedules_of(target).await?;
    let mut data = Vec::new();
    for schedule in cursor.slice(&all) {
        data.push(resource(state, schedule).await?);
    }
    Ok(cursor.page(data, all.len() as u64))
}

/// The API's view of a schedule: with its newest good backup and whether it is stale.
async fn resource(state: &AppState, schedule: &BackupSchedule) -> Result<BackupScheduleResource, ApiError> {
    let last_good = slipway_engine::backup_schedules::last_good(state.store.as_ref(), schedule).await?;
    Ok(BackupScheduleResource {
        id: schedule.id.clone(),
        organization_id: schedule.organization_id.clone(),
        kind: schedule.target().kind().into(),
        server_id: schedule.server_id.clone(),
        database_id: schedule.database_id.clone(),
        site_id: schedule.site_id.clone(),
        storage_id: schedule.storage_id.clone(),
        frequency: schedule.frequency.clone(),
        keep_last: schedule.keep_last,
        keep_daily: schedule.keep_daily,
        keep_weekly: schedule.keep_weekly,
        keep_monthly: schedule.keep_monthly,
        verify: schedule.verify,
        next_run_at: schedule.next_run_at,
        last_good_backup_at: last_good,
        stale: is_stale(schedule, last_good, now()),
        created_at: schedule.created_at,
        updated_at: schedule.updated_at,
    })
}

/// Back the database up on a schedule: 201 with the schedule and its `next_run_at`. Each run
/// is a backup like any other (`GET /backups`); once one is stored (and verified, with
/// `verify`), the retention deletes the schedule's older backups from the storage for real.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/databases/{database}/backup-schedules", tag = "backups",
    params(("server" = String, Path), ("database" = String, Path)),
    request_body = BackupScheduleInput,
    security(("token" = ["backup:create"])),
    responses((status = 201, body = Data<BackupScheduleResource>))
)]
pub async fn create_backup_schedule(
    State(state): State<AppState>,
    v: Authorized<OnItem<DatabaseRoutes>>,
    audit: AuditSlot,
    Json(body): Json<BackupScheduleInput>,
) -> Result<(StatusCode, Data<BackupScheduleResource>), ApiError> {
    let what = format!("database {}", v.item.name);
    create(&state, &v.server, BackupTarget::Database(&v.item.id), body, &audit, what).await
}

/// Back the site's shared paths and `.env` up on a schedule (as `POST /backups/application`
/// does once): 201 with the schedule and its `next_run_at`. Once one of its backups is stored,
/// the retention deletes its older ones from the storage for real. `verify` is refused: only
/// database backups are verified.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/backup-schedules", tag = "backups",
    params(("server" = String, Path), ("site" = String, Path)),
    request_body = BackupScheduleInput,
    security(("token" = ["backup:create"])),
    responses((status = 201, body = Data<BackupScheduleResource>))
)]
pub async fn create_site_backup_schedule(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
    Json(body): Json<BackupScheduleInput>,
) -> Result<(StatusCode, Data<BackupScheduleResource>), ApiError> {
    let what = format!("site {}", v.site.domain);
    create(&state, &v.server, BackupTarget::Site(&v.site.id), body, &audit, what).await
}

/// The database's backup schedules, oldest first.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/databases/{database}/backup-schedules", tag = "backups",
    params(("server" = String, Path), ("database" = String, Path), crate::extract::PageParams),
    security(("token" = ["backup:read"])),
    responses((status = 200, body = Paginated<BackupScheduleResource>))
)]
pub async fn list_backup_schedules(
    State(state): State<AppState>,
    v: Authorized<OnItem<DatabaseRoutes>>,
    Page(cursor): Page,
) -> Result<Paginated<BackupScheduleResource>, ApiError> {
    list(&state, BackupTarget::Database(&v.item.id), cursor).await
}

/// The site's backup schedules, oldest first.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/sites/{site}/backup-schedules", tag = "backups",
    params(("server" = String, Path), ("site" = String, Path), crate::extract::PageParams),
    security(("token" = ["backup:read"])),
    responses((status = 200, body = Paginated<BackupScheduleResource>))
)]
pub async fn list_site_backup_schedules(
    State(state): State<AppState>,
    v: VisibleSite,
    Page(cursor): Page,
) -> Result<Paginated<BackupScheduleResource>, ApiError> {
    list(&state, BackupTarget::Site(&v.site.id), cursor).await
}

/// One backup schedule, with its newest good backup and whether it is `stale`.
#[utoipa::path(
    get, path = "/api/v1/backup-schedules/{backup_schedule}", tag = "backups",
    params(("backup_schedule" = String, Path)),
    security(("token" = ["backup:read"])),
    responses((status = 200, body = Data<BackupScheduleResource>))
)]
pub async fn get_backup_schedule(
    State(state): State<AppState>,
    v: Authorized<Shared<BackupSchedule>>,
) -> Result<Data<BackupScheduleResource>, ApiError> {
    Ok(Data { data: resource(&state, v.record()).await? })
}

/// Refuses to change a schedule whose database or site was deleted.
async fn require_target(state: &AppState, schedule: &BackupSchedule) -> Result<(), ApiError> {
    let exists = match schedule.target() {
        BackupTarget::Database(id) => state.store.server_item(id).await?.is_some(),
        BackupTarget::Site(id) => state.store.site(id).await?.is_some(),
    };
    if !exists {
        return Err(ApiError::Conflict("What the schedule backs up was deleted; delete the schedule.".into()));
    }
    Ok(())
}

/// Replace a schedule's settings (the whole input, as for create): 200; its next run follows
/// the new frequency.
#[utoipa::path(
    put, path = "/api/v1/backup-schedules/{backup_schedule}", tag = "backups",
    params(("backup_schedule" = String, Path)),
    request_body = BackupScheduleInput,
    security(("token" = ["backup:update"])),
    responses((status = 200, body = Data<BackupScheduleResource>))
)]
pub async fn update_backup_schedule(
    State(state): State<AppState>,
    v: Authorized<Shared<BackupSchedule>>,
    audit: AuditSlot,
    Json(body): Json<BackupScheduleInput>,
) -> Result<Data<BackupScheduleResource>, ApiError> {
    require_target(&state, v.record()).await?;
    let schedule = apply_input(&state, body, v.record().clone()).await?;
    if !state.store.update_backup_schedule(&schedule).await? {
        return Err(ApiError::NotFound);
    }
    // The run planned before is superseded: it finds another next_run_at and does nothing.
    ensure_queued(state.store.as_ref(), schedule.clone()).await?;
    audit.note(|n| {
        n.organization_id = Some(schedule.organization_id.clone());
        n.resource_id = Some(schedule.id.clone());
        n.detail = Some(schedule.frequency.clone());
    });
    Ok(Data { data: resource(&state, &schedule).await? })
}

/// Delete a schedule: it runs no more. Its backups stay (delete them one by one, or keep them).
#[utoipa::path(
    delete, path = "/api/v1/backup-schedules/{backup_schedule}", tag = "backups",
    params(("backup_schedule" = String, Path)),
    security(("token" = ["backup:delete"])),
    responses((status = 204))
)]
pub async fn delete_backup_schedule(
    State(state): State<AppState>,
    v: Authorized<Shared<BackupSchedule>>,
    audit: AuditSlot,
) -> Result<StatusCode, ApiError> {
    let schedule = v.record();
    state.store.delete_backup_schedule(&schedule.id).await?;
    audit.note(|n| {
        n.organization_id = Some(schedule.organization_id.clone());
        n.resource_id = Some(schedule.id.clone());
    });
    Ok(StatusCode::NO_CONTENT)
}

/// Run a schedule now: a backup like its scheduled ones (202 with it `pending`; follow
/// `operation_id`), after which its retention applies. The planned runs are unchanged.
#[utoipa::path(
    post, path = "/api/v1/backup-schedules/{backup_schedule}/run", tag = "backups",
    params(("backup_schedule" = String, Path)),
    security(("token" = ["backup:create"])),
    responses((status = 202, body = Accepted<BackupResource>))
)]
pub async fn run_backup_schedule(
    State(state): State<AppState>,
    v: Authorized<Shared<BackupSchedule>>,
    audit: AuditSlot,
) -> Result<Accepted<BackupResource>, ApiError> {
    let schedule = v.record();
    let backup = slipway_engine::backup_schedules::start_scheduled(state.store.as_ref(), schedule)
        .await?
        .map_err(|why| ApiError::Conflict(format!("The backup cannot start: {why}.")))?;
    state.engine.wake_worker();
    audit.note(|n| {
        n.organization_id = Some(schedule.organization_id.clone());
        n.resource_id = Some(schedule.id.clone());
        n.detail = Some(format!("backup {}", backup.id));
    });
    Ok(Accepted { message: "Backing up.".into(), data: (&backup).into() })
}

pub fn router(router: utoipa_axum::router::OpenApiRouter<AppState>) -> utoipa_axum::router::OpenApiRouter<AppState> {
    router
        .routes(utoipa_axum::routes!(list_backup_schedules, create_backup_schedule))
        .routes(utoipa_axum::routes!(list_site_backup_schedules, create_site_backup_schedule))
        .routes(utoipa_axum::routes!(get_backup_schedule, update_backup_schedule, delete_backup_schedule))
        .routes(utoipa_axum::routes!(run_backup_schedule))
}
