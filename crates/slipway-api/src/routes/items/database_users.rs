//! Database users, under the database they were made for: a generated password returned once
//! (stored sealed), grants on that database and others of the server, allowed hosts, and an
//! optional site whose `DB_*` environment variables follow the user.

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::FieldErrors;
use slipway_core::InstallStatus;
use slipway_engine::items::database_users::{Access, Grant, LOCAL_HOSTS, host_problem, name_problem, new_password};
use slipway_engine::items::{DatabaseSpec, DatabaseUserSpec, DatabaseUsers, Databases, ItemKind};
use slipway_store::{Server, ServerItem};
use utoipa::ToSchema;

use super::databases::DatabaseRoutes;
use super::{ItemRoutes, OnItem};
use crate::audit::AuditSlot;
use crate::auth::{Authorized, Principal, Target};
use crate::envelope::{Accepted, Data, Paginated};
use crate::error::ApiError;
use crate::extract::{Json, Page};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseUserResource {
    pub id: String,
    pub server_id: String,
    /// The database it was created under.
    pub database_id: String,
    #[schema(example = "shop_app")]
    pub name: String,
    /// `mysql` or `postgres`.
    pub engine: String,
    /// What it may do, per database; the first is its own database.
    pub grants: Vec<Grant>,
    /// The hosts it may connect from (MySQL); `localhost` on PostgreSQL.
    pub hosts: Vec<String>,
    /// The site whose `DB_*` environment variables are this user's.
    pub site_id: Option<String>,
    /// The password: only in the answer to creating the user or rotating its password, never
    /// again (Slipway keeps it sealed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
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
pub struct CreateDatabaseUser {
    /// Lowercase letters, digits and `_`, starting with a letter; at most 32 characters. Names
    /// the engine keeps (`root`, `postgres`, `mysql…`, `pg_…`) and users already on the server are
    /// refused.
    #[schema(example = "shop_app")]
    pub name: String,
    /// What it may do in this database (default `read_write`).
    pub access: Option<Access>,
    /// Grants on other databases of the server, by name.
    #[serde(default)]
    pub grants: Vec<Grant>,
    /// MySQL: the hosts it may connect from: `localhost`, `%` (anywhere), an IP address, a prefix
    /// like `10.0.%` or a host name. Default: this server only (`localhost`, `127.0.0.1`).
    /// PostgreSQL users connect from this server only.
    pub hosts: Option<Vec<String>>,
    /// A site on this server: its `DB_CONNECTION`, `DB_HOST`, `DB_PORT`, `DB_DATABASE`,
    /// `DB_USERNAME` and `DB_PASSWORD` are set from this user once it exists (and again when its
    /// password is rotated); they reach the app with its next deploy.
    pub site_id: Option<String>,
}

/// Most grants and hosts one user may have.
const MAX_GRANTS: usize = 50;
const MAX_HOSTS: usize = 20;

#[derive(Debug)]
pub struct DatabaseUserRoutes;

impl ItemRoutes for DatabaseUserRoutes {
    const KIND: &'static dyn ItemKind = &DatabaseUsers;
    const PARAM: &'static str = "database_user";
    const AUDIT: &'static str = "database-user";
    const REMOVING: &'static str = "Dropping the user (what it owns stays, owned by the administrator).";
    type Spec = DatabaseUserSpec;
    type Create = CreateDatabaseUser;
    type Resource = DatabaseUserResource;

    fn resource(item: &ServerItem, spec: DatabaseUserSpec, operation_id: Option<String>) -> DatabaseUserResource {
        let status = super::installed_as(item, "active");
        DatabaseUserResource {
            id: item.id.clone(),
            server_id: item.server_id.clone(),
            database_id: spec.database_id,
            name: spec.name,
            engine: spec.engine,
            grants: spec.grants,
            hosts: spec.hosts,
            site_id: spec.site_id,
            password: None,
            status: status.into(),
            status_reason: item.status_reason.clone(),
            operation_id,
            created_at: item.created_at,
            updated_at: item.updated_at,
        }
    }
}

/// One user of the database named by the path.
#[derive(Debug)]
pub struct OnDatabaseUser {
    pub server: Server,
    pub database: ServerItem,
    pub item: ServerItem,
}

impl Target for OnDatabaseUser {
    async fn load(parts: &mut Parts, state: &AppState, principal: &Principal) -> Result<Self, ApiError> {
        let database = OnItem::<DatabaseRoutes>::load(parts, state, principal).await?;
        let id = crate::extract::path_param(parts, state, DatabaseUserRoutes::PARAM).await?;
        match state.store.server_item(&id).await? {
            Some(item)
                if item.server_id == database.server.id
                    && item.kind == DatabaseUsers.name()
                    && super::spec::<DatabaseUserSpec>(&item)?.database_id == database.item.id =>
            {
                Ok(OnDatabaseUser { server: database.server, database: database.item, item })
            }
            _ => Err(ApiError::NotFound),
        }
    }

    fn organization_id(&self) -> &str {
        &self.server.organization_id
    }
}

/// The checked spec of a new user of `database` (its password not set yet), or field errors.
async fn new_user(
    state: &AppState,
    server: &Server,
    database: &ServerItem,
    input: CreateDatabaseUser,
) -> Result<DatabaseUserSpec, ApiError> {
    let own: DatabaseSpec = super::spec(database)?;
    if database.status != InstallStatus::Installed {
        return Err(ApiError::Conflict(format!(
            "The database {} is not active ({}); add users once it is.",
            own.name, database.status
        )));
    }
    let (databases, _) = state.store.server_items(&server.id, Databases.name(), None).await?;
    let (users, count) = state.store.server_items(&server.id, DatabaseUsers.name(), None).await?;
    let mut errors = FieldErrors::new();
    if let Some(why) = name_problem(&input.name) {
        errors.add("name", why);
    } else if users.iter().any(|u| u.name == input.name) {
        errors.add("name", format!("The server already has a database user named {}.", input.name));
    }
    if count >= super::MAX_ITEMS {
        errors.add("name", format!("A server can have at most {} database users.", super::MAX_ITEMS));
    }
    let mut grants = vec![Grant { database: own.name.clone(), access: input.access.unwrap_or(Access::ReadWrite) }];
    if input.grants.len() >= MAX_GRANTS {
        errors.add("grants", format!("At most {MAX_GRANTS} grants."));
    }
    for grant in input.grants {
        let known = databases.iter().find(|d| d.name == grant.database);
        if grants.iter().any(|g| g.database == grant.database) {
            errors.add("grants", format!("{} is granted twice.", grant.database));
        } else if known.is_none_or(|d| d.status != InstallStatus::Installed) {
            errors.add("grants", format!("The server has no active database named {:?}.", grant.database));
        } else {
            grants.push(grant);
        }
    }
    let hosts = match (own.engine.as_str(), input.hosts) {
        ("postgres", None) => vec!["localhost".to_string()],
        ("postgres", Some(hosts)) if hosts.iter().all(|h| h == "localhost") && !hosts.is_empty() => hosts[..1].to_vec(),
        ("postgres", Some(_)) => {
            errors.add(
                "hosts",
                "PostgreSQL users connect from this server only; leave hosts out (remote access needs pg_hba.conf, \
                 which Slipway does not manage yet).",
            );
            Vec::new()
        }
        (_, None) => LOCAL_HOSTS.iter().map(|h| h.to_string()).collect(),
        (_, Some(hosts)) => {
            if hosts.is_empty() || hosts.len() > MAX_HOSTS {
                errors.add("hosts", format!("Give 1 to {MAX_HOSTS} hosts, or leave hosts out for this server only."));
            }
            for host in &hosts {
                if let Some(why) = host_problem(host) {
                    errors.add("hosts", why);
                }
            }
            let mut unique: Vec<String> = Vec::new();
            for host in hosts {
                if !unique.contains(&host) {
                    unique.push(host);
                }
            }
            unique
        }
    };
    if let Some(site_id) = &input.site_id {
        match state.store.site(site_id).await? {
            Some(site) if site.server_id == server.id => {
                let linked = users
                    .iter()
                    .filter_map(|u| super::spec::<DatabaseUserSpec>(u).ok())
                    .find(|u| u.site_id.as_deref() == Some(site_id));
                if let Some(other) = linked {
                    errors.add("site_id", format!("The site's DB_* variables already follow the user {}.", other.name));
                }
            }
            _ => errors.add("site_id", "No site with this id on this server."),
        }
    }
    errors.into_result()?;
    // Slipway does not take over a user it did not create: its password and grants would change.
    match slipway_engine::items::database_users::exists_on_server(&state.engine, server, &own.engine, &input.name).await
    {
        Ok(false) => {}
        Ok(true) => {
            return Err(ApiError::validation(
                "name",
                format!("A user named {} already exists on the database engine; choose another name.", input.name),
            ));
        }
        Err(why) => return Err(ApiError::Unavailable(format!("Could not ask the server's database engine: {why}"))),
    }
    Ok(DatabaseUserSpec {
        name: input.name,
        engine: own.engine,
        database_id: database.id.clone(),
        database: own.name,
        grants,
        hosts,
        sealed_password: String::new(),
        site_id: input.site_id,
    })
}

/// The database's users.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/databases/{database}/users", tag = "database-users",
    params(("server" = String, Path), ("database" = String, Path), crate::extract::PageParams),
    security(("token" = ["database:read"])),
    responses((status = 200, body = Paginated<DatabaseUserResource>))
)]
pub async fn list_database_users(
    State(state): State<AppState>,
    v: Authorized<OnItem<DatabaseRoutes>>,
    Page(cursor): Page,
) -> Result<Paginated<DatabaseUserResource>, ApiError> {
    let database_id = v.item.id.clone();
    super::list_where::<DatabaseUserRoutes>(&state, &v.server, cursor, |s| s.database_id == database_id).await
}

/// Create a user of this database with a generated password, returned in this answer only.
/// 201 with it `installing`; follow `operation_id` (it ends `active`, or `failed` with the
/// engine's error). 409 while the database is not active; 422 for a name already on the engine.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/databases/{database}/users", tag = "database-users",
    params(("server" = String, Path), ("database" = String, Path)),
    request_body = CreateDatabaseUser,
    security(("token" = ["database:create"])),
    responses((status = 201, body = Data<DatabaseUserResource>))
)]
pub async fn create_database_user(
    State(state): State<AppState>,
    v: Authorized<OnItem<DatabaseRoutes>>,
    audit: AuditSlot,
    Json(body): Json<CreateDatabaseUser>,
) -> Result<(StatusCode, Data<DatabaseUserResource>), ApiError> {
    let mut spec = new_user(&state, &v.server, &v.item, body).await?;
    let password = new_password(&state.secrets, &v.server.id, &mut spec);
    let name = spec.name.clone();
    let (item, operation) = super::insert::<DatabaseUserRoutes>(&state, &v.server, &audit, &name, &spec).await?;
    let mut data = DatabaseUserRoutes::resource(&item, spec, operation);
    data.password = Some(password);
    Ok((StatusCode::CREATED, Data { data }))
}

/// One user.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/databases/{database}/users/{database_user}", tag = "database-users",
    params(("server" = String, Path), ("database" = String, Path), ("database_user" = String, Path)),
    security(("token" = ["database:read"])),
    responses((status = 200, body = Data<DatabaseUserResource>))
)]
pub async fn get_database_user(
    State(state): State<AppState>,
    v: Authorized<OnDatabaseUser>,
) -> Result<Data<DatabaseUserResource>, ApiError> {
    super::show::<DatabaseUserRoutes>(&state, &v.server, &v.item).await
}

/// A new generated password, returned in this answer only. 202 with the user `installing`;
/// the old password works until the operation has set the new one (follow `operation_id`). A
/// linked site's `DB_PASSWORD` follows once the server has it.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/databases/{database}/users/{database_user}/rotate-password", tag = "database-users",
    params(("server" = String, Path), ("database" = String, Path), ("database_user" = String, Path)),
    security(("token" = ["database:update"])),
    responses((status = 202, body = Accepted<DatabaseUserResource>))
)]
pub async fn rotate_database_user_password(
    State(state): State<AppState>,
    v: Authorized<OnDatabaseUser>,
    audit: AuditSlot,
) -> Result<Accepted<DatabaseUserResource>, ApiError> {
    let mut spec: DatabaseUserSpec = super::spec(&v.item)?;
    let password = new_password(&state.secrets, &v.server.id, &mut spec);
    let mut data =
        super::replace::<DatabaseUserRoutes>(&state, &v.server, &v.item, &audit, &v.item.name, &spec).await?.data;
    audit.note(|n| n.action = Some("database-user.rotate-password".into()));
    data.password = Some(password);
    Ok(Accepted { message: "Setting the new password.".into(), data })
}

/// Drop the user from the engine: its grants go; on PostgreSQL what it owns (tables it made)
/// passes to the administrator, so no data goes with it. 202 with it `removing`.
#[utoipa::path(
    delete, path = "/api/v1/servers/{server}/databases/{database}/users/{database_user}", tag = "database-users",
    params(("server" = String, Path), ("database" = String, Path), ("database_user" = String, Path)),
    security(("token" = ["database:delete"])),
    responses((status = 202, body = Accepted<DatabaseUserResource>))
)]
pub async fn delete_database_user(
    State(state): State<AppState>,
    v: Authorized<OnDatabaseUser>,
    audit: AuditSlot,
) -> Result<Accepted<DatabaseUserResource>, ApiError> {
    let v = v.target;
    super::delete::<DatabaseUserRoutes>(&state, &v.server, v.item, &audit).await
}

pub fn router(router: utoipa_axum::router::OpenApiRouter<AppState>) -> utoipa_axum::router::OpenApiRouter<AppState> {
    router
        .routes(utoipa_axum::routes!(list_database_users, create_database_user))
        .routes(utoipa_axum::routes!(get_database_user, delete_database_user))
        .routes(utoipa_axum::routes!(rotate_database_user_password))
}
