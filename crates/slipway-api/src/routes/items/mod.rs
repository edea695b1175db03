//! What Slipway keeps on a server, as kinds of item (SSH keys, network rules, …), all served the
//! same way. Each change is stored first, then applied by an operation that puts all of the
//! server's items of that kind in place at once; an item's `status` says whether the server has
//! it yet (`installing`, `installed`, `failed`, `removing`). On a server that is not provisioned
//! yet, items wait and provisioning applies them.
//!
//! A kind is one module: a type implementing [`ItemRoutes`] (its input, validation and resource)
//! and one [`server_item_routes!`] call that writes its list/create/show/delete handlers with
//! their OpenAPI entries. Registering it is one line in `api_routes`.

pub mod certificates;
pub mod crontabs;
pub mod daemons;
pub mod database_users;
pub mod databases;
pub mod network_rules;
pub mod queue_workers;
pub mod redirects;
pub mod ssh_keys;

use slipway_core::ServerStatus;
use slipway_core::{InstallStatus, ItemState};
use std::marker::PhantomData;

use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;
use slipway_core::time::now;
use slipway_engine::items::ItemKind;
use slipway_store::{Server, ServerItem};

use super::servers::OnServer;
use crate::audit::AuditSlot;
use crate::auth::{Principal, Target};
use crate::envelope::{Accepted, Data, PageCursor, Paginated};
use crate::error::ApiError;
use crate::jobs::enqueue;
use crate::state::AppState;

/// Most items of one kind a server may have (each sync renders them all).
pub const MAX_ITEMS: u64 = 500;

/// How one kind of item is served.
pub trait ItemRoutes: Send + Sync + 'static {
    /// The kind on the server side: its stored name and its sync job.
    const KIND: &'static dyn ItemKind;
    /// The `{…}` path segment naming one item (`ssh_key`).
    const PARAM: &'static str;
    /// The audit action prefix (`ssh-key`): `ssh-key.create`, `ssh-key.delete`.
    const AUDIT: &'static str;
    /// What the answer to a delete says (`Removing the key.`).
    const REMOVING: &'static str;

    /// What the answer to deleting `spec` says: [`Self::REMOVING`], unless the kind has a
    /// consequence to warn about (a certificate the site was serving).
    fn removing_message(_spec: &Self::Spec) -> String {
        Self::REMOVING.into()
    }

    type Spec: Serialize + DeserializeOwned + Send;
    type Create: DeserializeOwned + Send;
    type Resource: Serialize + Send;

    /// The new item's name and spec from the request body, or field errors. `existing` holds the
    /// server's items of this kind (for duplicates). Kinds created under another resource (a
    /// site's workers, a database's users) keep the default: their own create handler checks
    /// the input against that resource, which this cannot see.
    fn validate(
        _server: &Server,
        _input: Self::Create,
        _existing: &[ServerItem],
    ) -> Result<(String, Self::Spec), ApiError> {
        Err(ApiError::NotFound)
    }

    /// Checks that need the server itself (a user that must exist there), made when the server
    /// can be asked, and what the spec takes from other resources (a site's user); none by
    /// default.
    fn check_on_server(
        _state: &AppState,
        _server: &Server,
        _spec: &mut Self::Spec,
    ) -> impl std::future::Future<Output = Result<(), ApiError>> + Send {
        async { Ok(()) }
    }

    /// The API's view of a stored item.
    fn resource(item: &ServerItem, spec: Self::Spec, operation_id: Option<String>) -> Self::Resource;
}

/// An item's label: `name` when given, else the start of its command; checked into `errors`.
pub fn label_or_command(errors: &mut slipway_core::FieldErrors, name: Option<String>, command: &str) -> String {
    let name = name.unwrap_or_else(|| command.trim().chars().take(255).collect());
    slipway_core::identity::check_label(errors, "name", &name);
    name
}

/// The user a command runs as must exist on the server: a 422 on `user` when the server says it
/// does not. When the server cannot be asked (not provisioned yet, unreachable), it is accepted,
/// and the sync says so if the user is missing.
pub async fn check_user(state: &AppState, server: &Server, user: &str) -> Result<(), ApiError> {
    if slipway_engine::items::user_exists(&state.engine, server, user).await == Some(false) {
        return Err(ApiError::validation(
            "user",
            format!(
                "The user {user} does not exist on the server; create it first, or leave user out to run as slipway."
            ),
        ));
    }
    Ok(())
}

/// The stored spec of an item.
pub fn spec<T: DeserializeOwned>(item: &ServerItem) -> Result<T, ApiError> {
    serde_json::from_str(&item.spec).map_err(ApiError::internal)
}

pub(crate) fn resource<K: ItemRoutes>(
    item: &ServerItem,
    operation_id: Option<String>,
) -> Result<K::Resource, ApiError> {
    Ok(K::resource(item, spec(item)?, operation_id))
}

/// One item of kind `K` named by the path, on a server the caller may act on.
#[derive(Debug)]
pub struct OnItem<K> {
    pub server: Server,
    pub item: ServerItem,
    kind: PhantomData<K>,
}

impl<K: ItemRoutes> Target for OnItem<K> {
    async fn load(parts: &mut Parts, state: &AppState, principal: &Principal) -> Result<Self, ApiError> {
        let OnServer { server } = OnServer::load(parts, state, principal).await?;
        let id = crate::extract::path_param(parts, state, K::PARAM).await?;
        match state.store.server_item(&id).await? {
            Some(item) if item.server_id == server.id && item.kind == K::KIND.name() => {
                Ok(OnItem { server, item, kind: PhantomData })
            }
            _ => Err(ApiError::NotFound),
        }
    }

    fn organization_id(&self) -> &str {
        &self.server.organization_id
    }
}

/// One item of a site-level kind `K` (queue workers, redirects) of the site named by the path.
#[derive(Debug)]
pub struct OnSiteItem<K> {
    pub server: Server,
    pub site: slipway_store::Site,
    pub item: ServerItem,
    kind: PhantomData<K>,
}

impl<K: ItemRoutes> Target for OnSiteItem<K> {
    async fn load(parts: &mut Parts, state: &AppState, principal: &Principal) -> Result<Self, ApiError> {
        let crate::routes::sites::OnSite { site, server } =
            crate::routes::sites::OnSite::load(parts, state, principal).await?;
        let id = crate::extract::path_param(parts, state, K::PARAM).await?;
        match state.store.server_item(&id).await? {
            Some(item)
                if item.server_id == server.id
                    && item.kind == K::KIND.name()
                    && slipway_engine::items::of_site(std::slice::from_ref(&item), &site.id).len() == 1 =>
            {
                Ok(OnSiteItem { server, site, item, kind: PhantomData })
            }
            _ => Err(ApiError::NotFound),
        }
    }

    fn organization_id(&self) -> &str {
        &self.server.organization_id
    }
}

/// Queues the sync of a kind of item on a provisioned server; `None` when provisioning will.
pub(crate) async fn sync(state: &AppState, server: &Server, kind: &dyn ItemKind) -> Result<Option<String>, ApiError> {
    if server.provisioned_at.is_none() {
        return Ok(None);
    }
    let payload = slipway_engine::verify::ServerJob { server_id: server.id.clone() };
    // A sync renders the whole state, so running it again is harmless.
    let job = enqueue(state, kind.sync_job().about_server(server, payload)).await?;
    Ok(Some(job.id))
}

pub(crate) fn audit_item(audit: &AuditSlot, server: &Server, action: String, item: &ServerItem) {
    audit.note(|n| {
        n.action = Some(action);
        n.organization_id = Some(server.organization_id.clone());
        n.resource_id = Some(item.id.clone());
        n.detail = Some(format!("server {}", server.id));
    });
}

pub async fn list<K: ItemRoutes>(
    state: &AppState,
    server: &Server,
    cursor: PageCursor,
) -> Result<Paginated<K::Resource>, ApiError> {
    let (mut rows, total) = state.store.server_items(&server.id, K::KIND.name(), Some(cursor.request)).await?;
    K::KIND.live_status(&state.engine, server, &mut rows).await;
    let data = rows.iter().map(|i| resource::<K>(i, None)).collect::<Result<_, _>>()?;
    Ok(cursor.page(data, total))
}

/// The items of a server that `belongs` accepts (a site's workers), a page of them.
pub async fn list_where<K: ItemRoutes>(
    state: &AppState,
    server: &Server,
    cursor: PageCursor,
    belongs: impl Fn(&K::Spec) -> bool,
) -> Result<Paginated<K::Resource>, ApiError> {
    // A server has at most MAX_ITEMS of a kind: filtering them here is cheap.
    let (rows, _) = state.store.server_items(&server.id, K::KIND.name(), None).await?;
    let rows: Vec<ServerItem> = rows.into_iter().filter(|i| spec::<K::Spec>(i).is_ok_and(|s| belongs(&s))).collect();
    let total = rows.len() as u64;
    let mut page = cursor.slice(&rows).to_vec();
    K::KIND.live_status(&state.engine, server, &mut page).await;
    let data = page.iter().map(|i| resource::<K>(i, None)).collect::<Result<_, _>>()?;
    Ok(cursor.page(data, total))
}

/// Stores a new item and queues the sync that applies it (when the server is provisioned).
pub async fn create<K: ItemRoutes>(
    state: &AppState,
    server: &Server,
    audit: &AuditSlot,
    input: K::Create,
) -> Result<(StatusCode, Data<K::Resource>), ApiError> {
    let (existing, count) = state.store.server_items(&server.id, K::KIND.name(), None).await?;
    let (name, mut spec) = K::validate(server, input, &existing)?;
    if count >= MAX_ITEMS {
        return Err(ApiError::validation("name", format!("A server can have at most {MAX_ITEMS} of these.")));
    }
    K::check_on_server(state, server, &mut spec).await?;
    let (item, operation) = insert::<K>(state, server, audit, &name, &spec).await?;
    Ok((StatusCode::CREATED, Data { data: K::resource(&item, spec, operation) }))
}

/// A new item of kind `K` on `server`, not stored yet.
pub(crate) fn new_item<K: ItemRoutes>(
    server: &Server,
    name: &str,
    spec: &K::Spec,
    status: InstallStatus,
) -> Result<ServerItem, ApiError> {
    let at = now();
    Ok(ServerItem {
        id: slipway_core::new_id(),
        server_id: server.id.clone(),
        kind: K::KIND.name().into(),
        name: name.trim().to_string(),
        spec: serde_json::to_string(spec).map_err(ApiError::internal)?,
        status,
        status_reason: None,
        created_at: at,
        updated_at: at,
        state: None,
    })
}

/// The status an item shows, with `installed` called `word` (a database is `active`).
pub(crate) fn installed_as(item: &ServerItem, word: &'static str) -> &'static str {
    match (item.state, item.status) {
        (None, InstallStatus::Installed) => word,
        _ => item.shown_status(),
    }
}

/// Stores a validated item, queues its sync and notes it in the audit log; returns the item and
/// the sync's operation.
pub async fn insert<K: ItemRoutes>(
    state: &AppState,
    server: &Server,
    audit: &AuditSlot,
    name: &str,
    spec: &K::Spec,
) -> Result<(ServerItem, Option<String>), ApiError> {
    let item = new_item::<K>(server, name, spec, InstallStatus::Installing)?;
    state.store.insert_server_item(&item).await?;
    let operation = sync(state, server, K::KIND).await?;
    audit_item(audit, server, format!("{}.create", K::AUDIT), &item);
    Ok((item, operation))
}

pub async fn show<K: ItemRoutes>(
    state: &AppState,
    server: &Server,
    item: &ServerItem,
) -> Result<Data<K::Resource>, ApiError> {
    let mut item = item.clone();
    K::KIND.live_status(&state.engine, server, std::slice::from_mut(&mut item)).await;
    Ok(Data { data: resource::<K>(&item, None)? })
}

/// Replaces an item with what the body says (the same fields as creating it) and queues the
/// sync that applies the change.
pub async fn update<K: ItemRoutes>(
    state: &AppState,
    server: &Server,
    item: &ServerItem,
    audit: &AuditSlot,
    input: K::Create,
) -> Result<Data<K::Resource>, ApiError> {
    let (existing, _) = state.store.server_items(&server.id, K::KIND.name(), None).await?;
    let others: Vec<ServerItem> = existing.into_iter().filter(|i| i.id != item.id).collect();
    let (name, mut spec) = K::validate(server, input, &others)?;
    K::check_on_server(state, server, &mut spec).await?;
    replace::<K>(state, server, item, audit, &name, &spec).await
}

/// Stores an item's new name and spec, queues its sync and notes it in the audit log.
pub async fn replace<K: ItemRoutes>(
    state: &AppState,
    server: &Server,
    item: &ServerItem,
    audit: &AuditSlot,
    name: &str,
    spec: &K::Spec,
) -> Result<Data<K::Resource>, ApiError> {
    let text = serde_json::to_string(spec).map_err(ApiError::internal)?;
    if !state.store.update_server_item(&item.id, name.trim(), &text).await? {
        return Err(ApiError::Conflict("It is being removed; create a new one instead.".into()));
    }
    let operation = sync(state, server, K::KIND).await?;
    audit_item(audit, server, format!("{}.update", K::AUDIT), item);
    let item = state.store.server_item(&item.id).await?.ok_or(ApiError::NotFound)?;
    Ok(Data { data: resource::<K>(&item, operation)? })
}

/// Restarts an item's supervisor program, as an operation (202); 409 while it is not installed.
pub async fn restart<K: ItemRoutes>(
    state: &AppState,
    server: &Server,
    item: &ServerItem,
    audit: &AuditSlot,
) -> Result<Accepted<K::Resource>, ApiError> {
    let prefix = K::KIND.program_prefix().ok_or(ApiError::NotFound)?;
    if item.status != InstallStatus::Installed {
        return Err(ApiError::Conflict(format!(
            "It is {} on the server; restart it once it is installed.",
            item.status
        )));
    }
    let program = slipway_engine::items::supervised::program_name(prefix, &item.id);
    let payload = slipway_engine::items::supervised::RestartProgram { server_id: server.id.clone(), program };
    let job = enqueue(state, slipway_engine::items::supervised::PROGRAM_RESTART.about_server(server, payload)).await?;
    audit_item(audit, server, format!("{}.restart", K::AUDIT), item);
    Ok(Accepted { message: "Restarting.".into(), data: resource::<K>(item, Some(job.id))? })
}

/// Reads from a server need one Slipway has reached: a server not provisioned yet has nothing
/// to read, which is the caller's to fix (409), not the server's failing (503).
pub fn require_provisioned(server: &Server) -> Result<(), ApiError> {
    if server.provisioned_at.is_none() {
        return Err(ApiError::Conflict(
            "The server is not provisioned yet, so there is nothing to read; provision it first.".into(),
        ));
    }
    Ok(())
}

/// The last lines an item's supervisor program wrote (every process), read over SSH.
pub async fn log<K: ItemRoutes>(
    state: &AppState,
    server: &Server,
    item: &ServerItem,
    lines: u32,
) -> Result<Data<ProgramLog>, ApiError> {
    if !(1..=1000).contains(&lines) {
        return Err(ApiError::validation("lines", "Between 1 and 1000 lines."));
    }
    let prefix = K::KIND.program_prefix().ok_or(ApiError::NotFound)?;
    require_provisioned(server)?;
    let program = slipway_engine::items::supervised::program_name(prefix, &item.id);
    let lines = slipway_engine::items::supervised::log_tail(&state.engine, server, &program, lines)
        .await
        .map_err(|why| ApiError::Unavailable(format!("Could not read the log from the server: {why}")))?;
    Ok(Data { data: ProgramLog { lines } })
}

/// The tail of a program's log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProgramLog {
    /// Oldest first; with several processes, each process's lines in turn.
    pub lines: Vec<String>,
}

/// Marks an item for removal and queues the sync; on a server not provisioned yet, it goes at once.
pub async fn delete<K: ItemRoutes>(
    state: &AppState,
    server: &Server,
    mut item: ServerItem,
    audit: &AuditSlot,
) -> Result<Accepted<K::Resource>, ApiError> {
    let message = K::removing_message(&spec::<K::Spec>(&item)?);
    let ids = std::slice::from_ref(&item.id);
    state.store.set_server_items_status(ids, InstallStatus::Removing, None).await?;
    // While the first provisioning runs it may already have put the item on the server: mark it
    // instead, and provisioning syncs again when it ends.
    let operation = if server.provisioned_at.is_none() && server.status != ServerStatus::Provisioning {
        state.store.delete_removed_server_items(ids).await?;
        item.state = Some(ItemState::Removed);
        None
    } else {
        item.status = InstallStatus::Removing;
        sync(state, server, K::KIND).await?
    };
    audit_item(audit, server, format!("{}.delete", K::AUDIT), &item);
    Ok(Accepted { message, data: resource::<K>(&item, operation)? })
}

/// Writes the four handlers of a server item kind, with their OpenAPI entries, and a `router`
/// function that registers them. Paths and scopes are literals because the OpenAPI attributes
/// need them so.
#[macro_export]
macro_rules! server_item_routes {
    (
        routes: $routes:ident, input: $input:ident, resource: $resource:ident, tag: $tag:literal,
        collection: $collection:literal, item: $item:literal, param: $param:literal,
        read: $read:literal, create: $create:literal, update: $update:literal, delete: $delete:literal,
        list: $list_fn:ident = $list_doc:literal,
        create: $create_fn:ident = $create_doc:literal,
        show: $show_fn:ident = $show_doc:literal,
        update: $update_fn:ident = $update_doc:literal,
        delete: $delete_fn:ident = $delete_doc:literal $(,)?
    ) => {
        #[doc = $list_doc]
        #[utoipa::path(
                                            get, path = $collection, tag = $tag,
                                            params(("server" = String, Path), $crate::extract::PageParams),
                                            security(("token" = [$read])),
                                            responses((status = 200, body = $crate::envelope::Paginated<$resource>))
                                        )]
        pub async fn $list_fn(
            axum::extract::State(state): axum::extract::State<$crate::state::AppState>,
            v: $crate::routes::servers::VisibleServer,
            $crate::extract::Page(cursor): $crate::extract::Page,
        ) -> Result<$crate::envelope::Paginated<$resource>, $crate::error::ApiError> {
            $crate::routes::items::list::<$routes>(&state, &v.server, cursor).await
        }

        #[doc = $create_doc]
        #[utoipa::path(
                                            post, path = $collection, tag = $tag,
                                            params(("server" = String, Path)),
                                            request_body = $input,
                                            security(("token" = [$create])),
                                            responses((status = 201, body = $crate::envelope::Data<$resource>))
                                        )]
        pub async fn $create_fn(
            axum::extract::State(state): axum::extract::State<$crate::state::AppState>,
            v: $crate::routes::servers::VisibleServer,
            audit: $crate::audit::AuditSlot,
            $crate::extract::Json(body): $crate::extract::Json<$input>,
        ) -> Result<(axum::http::StatusCode, $crate::envelope::Data<$resource>), $crate::error::ApiError> {
            $crate::routes::items::create::<$routes>(&state, &v.server, &audit, body).await
        }

        #[doc = $show_doc]
        #[utoipa::path(
                                            get, path = $item, tag = $tag,
                                            params(("server" = String, Path), ($param = String, Path)),
                                            security(("token" = [$read])),
                                            responses((status = 200, body = $crate::envelope::Data<$resource>))
                                        )]
        pub async fn $show_fn(
            axum::extract::State(state): axum::extract::State<$crate::state::AppState>,
            v: $crate::auth::Authorized<$crate::routes::items::OnItem<$routes>>,
        ) -> Result<$crate::envelope::Data<$resource>, $crate::error::ApiError> {
            $crate::routes::items::show::<$routes>(&state, &v.server, &v.item).await
        }

        #[doc = $update_doc]
        #[utoipa::path(
                                            put, path = $item, tag = $tag,
                                            params(("server" = String, Path), ($param = String, Path)),
                                            request_body = $input,
                                            security(("token" = [$update])),
                                            responses((status = 200, body = $crate::envelope::Data<$resource>))
                                        )]
        pub async fn $update_fn(
            axum::extract::State(state): axum::extract::State<$crate::state::AppState>,
            v: $crate::auth::Authorized<$crate::routes::items::OnItem<$routes>>,
            audit: $crate::audit::AuditSlot,
            $crate::extract::Json(body): $crate::extract::Json<$input>,
        ) -> Result<$crate::envelope::Data<$resource>, $crate::error::ApiError> {
            $crate::routes::items::update::<$routes>(&state, &v.server, &v.item, &audit, body).await
        }

        #[doc = $delete_doc]
        #[utoipa::path(
                                            delete, path = $item, tag = $tag,
                                            params(("server" = String, Path), ($param = String, Path)),
                                            security(("token" = [$delete])),
                                            responses((status = 202, body = $crate::envelope::Accepted<$resource>))
                                        )]
        pub async fn $delete_fn(
            axum::extract::State(state): axum::extract::State<$crate::state::AppState>,
            v: $crate::auth::Authorized<$crate::routes::items::OnItem<$routes>>,
            audit: $crate::audit::AuditSlot,
        ) -> Result<$crate::envelope::Accepted<$resource>, $crate::error::ApiError> {
            let v = v.target;
            $crate::routes::items::delete::<$routes>(&state, &v.server, v.item, &audit).await
        }

        /// Registers this kind's routes.
        pub fn router(
            router: utoipa_axum::router::OpenApiRouter<$crate::state::AppState>,
        ) -> utoipa_axum::router::OpenApiRouter<$crate::state::AppState> {
            // The path segment the loader reads must be the one the paths declare.
            assert_eq!(<$routes as $crate::routes::items::ItemRoutes>::PARAM, $param, "{}", $item);
            router
                .routes(utoipa_axum::routes!($list_fn, $create_fn))
                .routes(utoipa_axum::routes!($show_fn, $update_fn, $delete_fn))
        }
    };
}

/// Writes the list, show and delete handlers of a site-level item kind (queue workers,
/// redirects), with their OpenAPI entries; create and update stay with the kind, which checks
/// its input against the site.
#[macro_export]
macro_rules! site_item_routes {
    (
        routes: $routes:ident, resource: $resource:ident, tag: $tag:literal,
        collection: $collection:literal, item: $item:literal, param: $param:literal,
        read: $read:literal, delete: $delete:literal,
        list: $list_fn:ident = $list_doc:literal,
        show: $show_fn:ident = $show_doc:literal,
        delete: $delete_fn:ident = $delete_doc:literal $(,)?
    ) => {
        #[doc = $list_doc]
        #[utoipa::path(
                            get, path = $collection, tag = $tag,
                            params(("server" = String, Path), ("site" = String, Path), $crate::extract::PageParams),
                            security(("token" = [$read])),
                            responses((status = 200, body = $crate::envelope::Paginated<$resource>))
                        )]
        pub async fn $list_fn(
            axum::extract::State(state): axum::extract::State<$crate::state::AppState>,
            v: $crate::routes::sites::VisibleSite,
            $crate::extract::Page(cursor): $crate::extract::Page,
        ) -> Result<$crate::envelope::Paginated<$resource>, $crate::error::ApiError> {
            let site_id = v.site.id.clone();
            $crate::routes::items::list_where::<$routes>(&state, &v.server, cursor, |s| s.site_id == site_id).await
        }

        #[doc = $show_doc]
        #[utoipa::path(
                            get, path = $item, tag = $tag,
                            params(("server" = String, Path), ("site" = String, Path), ($param = String, Path)),
                            security(("token" = [$read])),
                            responses((status = 200, body = $crate::envelope::Data<$resource>))
                        )]
        pub async fn $show_fn(
            axum::extract::State(state): axum::extract::State<$crate::state::AppState>,
            v: $crate::auth::Authorized<$crate::routes::items::OnSiteItem<$routes>>,
        ) -> Result<$crate::envelope::Data<$resource>, $crate::error::ApiError> {
            $crate::routes::items::show::<$routes>(&state, &v.server, &v.item).await
        }

        #[doc = $delete_doc]
        #[utoipa::path(
                            delete, path = $item, tag = $tag,
                            params(("server" = String, Path), ("site" = String, Path), ($param = String, Path)),
                            security(("token" = [$delete])),
                            responses((status = 202, body = $crate::envelope::Accepted<$resource>))
                        )]
        pub async fn $delete_fn(
            axum::extract::State(state): axum::extract::State<$crate::state::AppState>,
            v: $crate::auth::Authorized<$crate::routes::items::OnSiteItem<$routes>>,
            audit: $crate::audit::AuditSlot,
        ) -> Result<$crate::envelope::Accepted<$resource>, $crate::error::ApiError> {
            let v = v.target;
            $crate::routes::items::delete::<$routes>(&state, &v.server, v.item, &audit).await
        }
    };
}
