//! Slipway's HTTP API: the axum router, its conventions (envelopes, errors, pagination,
//! request ids, metrics) and the OpenAPI document generated from the same code.

pub mod audit;
pub mod auth;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod jobs;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod ratelimit;
pub mod resources;
pub mod routes;
pub mod schema;
pub mod state;
pub mod unread_body;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::{Config as SwaggerConfig, SwaggerUi};

pub use auth::middleware::InProcess;
pub use error::ApiError;
pub use state::{ApiConfig, AppState};

use crate::extract::BodyLimit;
use crate::routes::index::IndexBody;

pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// Every route with its spec entry. Add new resources here.
fn api_routes() -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi());
    // Server items: one line per kind.
    let router = routes::items::ssh_keys::router(router);
    let router = routes::items::network_rules::router(router);
    let router = routes::items::databases::router(router);
    let router = routes::items::database_users::router(router);
    let router = routes::backup_storages::router(router);
    let router = routes::notifications::router(router);
    let router = routes::backups::router(router);
    let router = routes::backup_schedules::router(router);
    let router = routes::items::daemons::router(router);
    let router = routes::items::daemons::extra_router(router);
    let router = routes::items::queue_workers::router(router);
    let router = routes::items::redirects::router(router);
    let router = routes::items::certificates::router(router);
    let router = routes::items::crontabs::router(router);
    let router = routes::items::crontabs::extra_router(router);
    router
        .routes(routes!(routes::ops::healthz))
        .routes(routes!(routes::ops::readyz))
        .routes(routes!(routes::ops::metrics))
        .routes(routes!(routes::index::index))
        .routes(routes!(routes::account::setup))
        .routes(routes!(routes::account::register))
        .routes(routes!(routes::account::login))
        .routes(routes!(routes::tokens::logout))
        .routes(routes!(routes::account::current_user))
        .routes(routes!(routes::account::enrol_two_factor))
        .routes(routes!(routes::account::confirm_two_factor))
        .routes(routes!(routes::account::disable_two_factor))
        .routes(routes!(routes::account::change_password))
        .routes(routes!(routes::tokens::list_tokens, routes::tokens::create_token))
        .routes(routes!(routes::tokens::current_token, routes::tokens::revoke_current_token))
        .routes(routes!(routes::tokens::get_token, routes::tokens::update_token, routes::tokens::revoke_token))
        .routes(routes!(routes::tokens::rotate_token))
        .routes(routes!(routes::jwt_exchange::exchange))
        .routes(routes!(routes::jwt_exchange::refresh))
        .routes(routes!(routes::organizations::list_organizations))
        .routes(routes!(routes::organizations::get_organization, routes::organizations::update_organization))
        .routes(routes!(routes::organizations::list_members, routes::organizations::add_member))
        .routes(routes!(routes::organizations::change_member, routes::organizations::remove_member))
        .routes(routes!(
            routes::organizations::list_organization_tokens,
            routes::organizations::create_organization_token
        ))
        .routes(routes!(routes::organizations::revoke_organization_token))
        .routes(routes!(routes::audit_events::list_audit_events))
        .routes(routes!(routes::servers::list_servers, routes::servers::create_server))
        .routes(routes!(routes::servers::get_server, routes::servers::update_server, routes::servers::delete_server))
        .routes(routes!(routes::servers::get_server_authorization))
        .routes(routes!(routes::servers::server_logs))
        .routes(routes!(routes::servers::verify_server))
        .routes(routes!(routes::servers::provision_server))
        .routes(routes!(routes::servers::restart_server))
        .routes(routes!(routes::servers::accept_host_key))
        .routes(routes!(routes::sites::list_all_sites))
        .routes(routes!(routes::sites::list_sites, routes::sites::create_site))
        .routes(routes!(routes::sites::get_site, routes::sites::update_site, routes::sites::delete_site))
        .routes(routes!(routes::sites::suspend_site))
        .routes(routes!(routes::sites::resume_site))
        .routes(routes!(routes::sites::deploy_site))
        .routes(routes!(routes::sites::rollback_site))
        .routes(routes!(routes::sites::enable_zero_downtime))
        .routes(routes!(routes::sites::list_releases))
        .routes(routes!(routes::sites::list_deployments))
        .routes(routes!(routes::sites::get_deployment))
        .routes(routes!(routes::sites::deployment_log))
        .routes(routes!(routes::sites::cancel_deployment))
        .routes(routes!(routes::sites::list_env, routes::sites::set_env))
        .routes(routes!(routes::sites::delete_env))
        .routes(routes!(routes::sites::schedule_deploy))
        .routes(routes!(routes::sites::cancel_scheduled_deploy))
        .routes(routes!(routes::sites::deployment_log_stream))
        .routes(routes!(routes::sites::pull_env))
        .routes(routes!(routes::git::list_git_providers, routes::git::create_git_provider))
        .routes(routes!(routes::git::get_git_provider, routes::git::delete_git_provider))
        .routes(routes!(routes::git::list_git_repositories, routes::git::create_git_repository))
        .routes(routes!(routes::git::get_git_repository, routes::git::delete_git_repository))
        .routes(routes!(routes::git::setup_deploy_key))
        .routes(routes!(routes::git::enable_auto_deploy))
        .routes(routes!(routes::git::disable_auto_deploy))
        .routes(routes!(routes::git::receive_push))
        .routes(routes!(routes::git::site_webhooks))
        .routes(routes!(routes::operations::get_operation))
        .routes(routes!(routes::operations::operation_log))
        .routes(routes!(routes::operations::cancel_operation))
}

/// The finished OpenAPI document, as served and as committed in `docs/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let api = described_routes();
    let mut document = serde_json::to_value(&api).expect("the OpenAPI document serialises");
    resources::require_non_null_fields(&mut document);
    serde_json::from_value(document).expect("the OpenAPI document reads back")
}

/// The routes as the document describes them (operations, scopes, responses), without the
/// publishing pass: what the guard's rules and the collections are derived from.
pub(crate) fn described_routes() -> utoipa::openapi::OpenApi {
    let (_, mut api) = api_routes().split_for_parts();
    openapi::finish(&mut api);
    api
}

/// The complete application: API routes, the interactive reference at `/docs`, and the
/// layers that apply the conventions to every response.
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new())
}

/// The application with extra routes (the dashboard, test routes) held to the same
/// conventions as the API.
pub fn app_with(state: AppState, extra: Router<AppState>) -> Router {
    let (router, mut api) = api_routes().split_for_parts();
    openapi::finish(&mut api);
    let index = Arc::new(IndexBody::new(&api, &state.config.public_url));
    // Served as bytes made once: the document as a tree of values holds about 14 MB for the
    // life of the process (most of an idle server's heap), its JSON about 0.4 MB.
    let document = openapi::Document::of(&api);
    drop(api);
    // The validator would fetch a badge from the internet; the reference must work offline.
    let swagger = SwaggerUi::new("/docs").config(SwaggerConfig::new([OPENAPI_PATH]).validator_url("none"));
    let document = Router::new().route(OPENAPI_PATH, axum::routing::get(move || std::future::ready(document.clone())));
    with_conventions(
        router.merge(document).merge(swagger).merge(routes::setup_page::router()).merge(extra),
        state,
        Extension(index),
    )
}

/// Applies the conventions every route follows: JSON 404/405 fallbacks, the body limit,
/// panic containment, the JSON error envelope, request ids, access logs and metrics.
fn with_conventions(router: Router<AppState>, state: AppState, index: Extension<Arc<IndexBody>>) -> Router {
    let limit = state.config.max_body_bytes;
    // The layers that need the matched route (its rules, its audit) wrap each route; they run
    // outside-in in the reverse order they are added here.
    let routed = router
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), idempotency::idempotency))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::middleware::guard))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), audit::record))
        .route_layer(axum::middleware::from_fn(middleware::record_route))
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .with_state(state.clone());
    // The rest wrap the whole router once, outermost first. `Router::layer` would wrap every
    // route instead, and each request then copied that route's whole stack of boxed layers
    // (about a hundred allocations a request, two fifths of what a health check cost).
    let around = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::observe))
        .layer(axum::middleware::from_fn_with_state(state, unread_body::settle))
        .layer(axum::middleware::from_fn(middleware::json_errors))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(DefaultBodyLimit::max(limit))
        .layer(Extension(BodyLimit(limit)))
        .layer(index)
        .service(routed);
    Router::new().fallback_service(around)
}
