//! Databases on a server's own engine (MariaDB/MySQL or PostgreSQL, as provisioned). Created
//! and dropped for real by an operation; a delete must name the database again, and databases
//! Slipway did not create are left alone until they are imported with `POST …/databases/sync`.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::FieldErrors;
use slipway_engine::items::databases::{DATABASE_IMPORT, charset_problem, engine_of, name_problem};
use slipway_engine::items::{DatabaseSpec, DatabaseUserSpec, DatabaseUsers, Databases, ItemKind};
use slipway_store::{Server, ServerItem};
use utoipa::ToSchema;

use super::{ItemRoutes, OnItem};
use crate::audit::AuditSlot;
use crate::auth::Authorized;
use crate::envelope::{Accepted, Data, Paginated};
use crate::error::ApiError;
use crate::extract::{Json, Page};
use crate::jobs::enqueue;
use crate::routes::servers::{OperationResource, VisibleServer};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseResource {
    pub id: String,
    pub server_id: String,
    #[schema(example = "shop")]
    pub name: String,
    /// `mysql` (MariaDB or MySQL) or `postgres`.
    pub engine: String,
    /// MySQL: the character set; PostgreSQL: the encoding.
    #[schema(example = "utf8mb4")]
    pub charset: String,
    /// MySQL: the collation; null for PostgreSQL.
    #[schema(example = "utf8mb4_unicode_ci")]
    pub collation: Option<String>,
    /// It was on the server before Slipway managed it (imported by `POST …/databases/sync`).
    pub imported: bool,
    /// `installing`, `active`, `failed` (with the engine's error in `status_reason`) or
    /// `removing`.
    pub status: String,
    pub status_reason: Option<String>,
    pub operation_id: Option<String>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDatabase {
    /// Lowercase letters, digits and `_`, starting with a letter; at most 64 characters (63 on
    /// PostgreSQL). The engine's own names (`mysql`, `sys`, `postgres`, `template0`, `pg_…`) are
    /// refused.
    #[schema(example = "shop")]
    pub name: String,
    /// MySQL: the character set (default `utf8mb4`); PostgreSQL: the encoding (default `UTF8`).
    pub charset: Option<String>,
    /// MySQL only: the collation (default `utf8mb4_unicode_ci` with `utf8mb4`, else the
    /// character set's default).
    pub collation: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteDatabase {
    /// The database's name, again: deleting drops it with every table in it.
    #[schema(example = "shop")]
    pub confirm: String,
}

#[derive(Debug)]
pub struct DatabaseRoutes;

impl ItemRoutes for DatabaseRoutes {
    const KIND: &'static dyn ItemKind = &Databases;
    const PARAM: &'static str = "database";
    const AUDIT: &'static str = "database";
    const REMOVING: &'static str = "Dropping the database.";
    type Spec = DatabaseSpec;
    type Create = CreateDatabase;
    type Resource = DatabaseResource;

    fn validate(
        server: &Server,
        input: CreateDatabase,
        existing: &[ServerItem],
    ) -> Result<(String, DatabaseSpec), ApiError> {
        let engine = engine_of(&server.database_type).ok_or_else(|| {
            ApiError::Conflict(
                "The server has no database engine (database_type none); set one and provision it first.".into(),
            )
        })?;
        let mut errors = FieldErrors::new();
        if let Some(why) = name_problem(engine, &input.name) {
            errors.add("name", why);
        } else if existing.iter().any(|i| i.name == input.name) {
            errors.add("name", format!("The server already has a database named {}.", input.name));
        }
        let (charset, collation) = match engine {
            "postgres" => {
                if input.collation.is_some() {
                    errors.add("collation", "PostgreSQL databases take an encoding (charset) only.");
                }
                (input.charset.unwrap_or_else(|| "UTF8".into()), None)
            }
            _ => {
                let charset = input.charset.unwrap_or_else(|| "utf8mb4".into());
                let collation = input.collation.or_else(|| (charset == "utf8mb4").then(|| "utf8mb4_unicode_ci".into()));
                (charset, collation)
            }
        };
        if let Some(why) = charset_problem(&charset) {
            errors.add("charset", why);
        }
        if let Some(why) = collation.as_deref().and_then(charset_problem) {
            errors.add("collation", why);
        }
        errors.into_result()?;
        let spec =
            DatabaseSpec { name: input.name.clone(), engine: engine.into(), charset, collation, imported: false };
        Ok((input.name, spec))
    }

    fn resource(item: &ServerItem, spec: DatabaseSpec, operation_id: Option<String>) -> DatabaseResource {
        let status = super::installed_as(item, "active");
        DatabaseResource {
            id: item.id.clone(),
            server_id: item.server_id.clone(),
            name: spec.name,
            engine: spec.engine,
            charset: spec.charset,
            collation: spec.collation,
            imported: spec.imported,
            status: status.into(),
            status_reason: item.status_reason.clone(),
            operation_id,
            created_at: item.created_at,
            updated_at: item.updated_at,
        }
    }
}

/// The server's databases (those Slipway manages: created here, or imported).
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/databases", tag = "databases",
    params(("server" = String, Path), crate::extract::PageParams),
    security(("token" = ["database:read"])),
    responses((status = 200, body = Paginated<DatabaseResource>))
)]
pub async fn list_databases(
    State(state): State<AppState>,
    v: VisibleServer,
    Page(cursor): Page,
) -> Result<Paginated<DatabaseResource>, ApiError> {
    super::list::<DatabaseRoutes>(&state, &v.server, cursor).await
}

/// Create a database on the server's engine: 201 with it `installing`; follow `operation_id`
/// (it ends `active`, or `failed` with the engine's error). 409 on a server without an engine.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/databases", tag = "databases",
    params(("server" = String, Path)),
    request_body = CreateDatabase,
    security(("token" = ["database:create"])),
    responses((status = 201, body = Data<DatabaseResource>))
)]
pub async fn create_database(
    State(state): State<AppState>,
    v: VisibleServer,
    audit: AuditSlot,
    Json(body): Json<CreateDatabase>,
) -> Result<(StatusCode, Data<DatabaseResource>), ApiError> {
    super::create::<DatabaseRoutes>(&state, &v.server, &audit, body).await
}

/// One database.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/databases/{database}", tag = "databases",
    params(("server" = String, Path), ("database" = String, Path)),
    security(("token" = ["database:read"])),
    responses((status = 200, body = Data<DatabaseResource>))
)]
pub async fn get_database(
    State(state): State<AppState>,
    v: Authorized<OnItem<DatabaseRoutes>>,
) -> Result<Data<DatabaseResource>, ApiError> {
    super::show::<DatabaseRoutes>(&state, &v.server, &v.item).await
}

/// Drop a database, with every table in it: the body names it again (`{"confirm": "shop"}`),
/// else 422. 202 with it `removing`; follow `operation_id`. If the engine refuses, it stays,
/// with the reason.
#[utoipa::path(
    delete, path = "/api/v1/servers/{server}/databases/{database}", tag = "databases",
    params(("server" = String, Path), ("database" = String, Path)),
    request_body = DeleteDatabase,
    security(("token" = ["database:delete"])),
    responses((status = 202, body = Accepted<DatabaseResource>))
)]
pub async fn delete_database(
    State(state): State<AppState>,
    v: Authorized<OnItem<DatabaseRoutes>>,
    audit: AuditSlot,
    Json(body): Json<DeleteDatabase>,
) -> Result<Accepted<DatabaseResource>, ApiError> {
    let v = v.target;
    let spec: DatabaseSpec = super::spec(&v.item)?;
    if body.confirm != spec.name {
        return Err(ApiError::validation(
            "confirm",
            format!("Give the database's name ({}) to confirm: deleting drops it with every table in it.", spec.name),
        ));
    }
    // Users of it would keep grants on a database that is gone, or lose their own database.
    let (users, _) = state.store.server_items(&v.server.id, DatabaseUsers.name(), None).await?;
    let users: Vec<String> = users
        .iter()
        .filter(|u| {
            super::spec::<DatabaseUserSpec>(u)
                .is_ok_and(|s| s.database_id == v.item.id || s.grants.iter().any(|g| g.database == spec.name))
        })
        .map(|u| u.name.clone())
        .collect();
    if !users.is_empty() {
        return Err(ApiError::Conflict(format!(
            "These database users have grants on {}: {}. Delete them first.",
            spec.name,
            users.join(", ")
        )));
    }
    // Its backup schedules go with it (its backups stay, to be restored elsewhere).
    for schedule in state.store.backup_schedules_of(slipway_store::BackupTarget::Database(&v.item.id)).await? {
        state.store.delete_backup_schedule(&schedule.id).await?;
    }
    super::delete::<DatabaseRoutes>(&state, &v.server, v.item, &audit).await
}

/// Import the databases already on the server that Slipway does not manage yet (system
/// databases and names Slipway would not create are left alone, and listed in the log). 202
/// with the operation.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/databases/sync", tag = "databases",
    params(("server" = String, Path)),
    security(("token" = ["database:create"])),
    responses((status = 202, body = Accepted<OperationResource>))
)]
pub async fn sync_databases(
    State(state): State<AppState>,
    v: VisibleServer,
    audit: AuditSlot,
) -> Result<Accepted<OperationResource>, ApiError> {
    if engine_of(&v.server.database_type).is_none() {
        return Err(ApiError::Conflict("The server has no database engine (database_type none).".into()));
    }
    super::require_provisioned(&v.server)?;
    let payload = slipway_engine::verify::ServerJob { server_id: v.server.id.clone() };
    let job = enqueue(&state, DATABASE_IMPORT.about_server(&v.server, payload)).await?;
    crate::jobs::note_operation(&audit, &v.server, "database.sync", &job);
    Ok(Accepted { message: "Importing the server's databases.".into(), data: crate::resources::operation(&job) })
}

pub fn router(router: utoipa_axum::router::OpenApiRouter<AppState>) -> utoipa_axum::router::OpenApiRouter<AppState> {
    router
        .routes(utoipa_axum::routes!(list_databases, create_database))
        .routes(utoipa_axum::routes!(get_database, delete_database))
        .routes(utoipa_axum::routes!(sync_databases))
}
