//! The web dashboard: server-rendered pages in the same binary as the API.
//!
//! Every page and every action goes through the API itself, in process: a page reads what
//! the API answers to the session's token, and a form posts what the API accepts. So a page
//! or an action is allowed exactly when the API operation behind it is, and authorization,
//! validation, auditing and events stay in one place. The dashboard adds what a browser needs:
//! a session cookie, CSRF checks, HTML, and a strict Content-Security-Policy.

mod api;
mod assets;
mod csrf;
mod error;
mod model;
mod pages;
mod session;
mod view;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use slipway_api::AppState;

pub use api::InProcessApi;

/// Only Slipway's own origin: no inline script or style, no frames, no plug-ins; forms post
/// only here. The QR code for two-factor enrolment is inline SVG markup, which needs nothing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The dashboard's routes. `api` is the API application the pages call in process (the same
/// router `slipway serve` answers with, conventions included).
pub fn router(api: axum::Router, public_url: &str) -> Router<AppState> {
    let web = api::Web::new(api, public_url);
    use pages::*;
    Router::new()
        .route("/", get(home::show))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/servers", get(servers::list).post(servers::create))
        .route("/servers/new", get(servers::new_form))
        .route("/servers/{server}", get(servers::show))
        .route("/servers/{server}/verify", post(servers::verify))
        .route("/servers/{server}/provision", post(servers::provision))
        .route("/servers/{server}/databases/{database}", get(items::database))
        .route("/integrations", get(items::integrations))
        .route("/servers/{server}/sites", post(sites::create))
        .route("/servers/{server}/sites/new", get(sites::new_form))
        .route("/servers/{server}/sites/{site}", get(sites::show))
        .route("/servers/{server}/sites/{site}/deploy", post(sites::deploy))
        .route("/servers/{server}/sites/{site}/rollback", post(sites::rollback))
        .route("/servers/{server}/sites/{site}/state", get(sites::state))
        .route("/servers/{server}/sites/{site}/suspend", post(sites::suspend))
        .route("/servers/{server}/sites/{site}/resume", post(sites::resume))
        .route("/servers/{server}/sites/{site}/schedule-deploy", post(sites::schedule))
        .route("/servers/{server}/sites/{site}/cancel-scheduled-deploy", post(sites::cancel_scheduled))
        .route("/servers/{server}/sites/{site}/deployments/{deployment}/cancel", post(deployments::cancel))
        .route("/servers/{server}/sites/{site}/env", get(sites::env).post(sites::set_env))
        .route("/servers/{server}/sites/{site}/deployments/{deployment}", get(deployments::show))
        .route("/servers/{server}/sites/{site}/deployments/{deployment}/events", get(deployments::events))
        .route("/operations/{operation}", get(operations::show))
        .route("/operations/{operation}/log", get(operations::log))
        .route("/sites", get(sites::list))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/created", get(once::show))
        .route("/shown-once", get(once::show))
        .route("/tokens/{token}/revoke", post(tokens::revoke))
        .route("/tokens/{token}/rotate", post(tokens::rotate))
        .route("/organizations/{organization}/tokens", post(tokens::create_for_organization))
        .route("/organizations/{organization}/tokens/{token}/revoke", post(tokens::revoke_for_organization))
        .route("/account", get(account::show))
        .route("/account/password", post(account::change_password))
        .route("/account/two-factor", post(account::enrol))
        .route("/account/two-factor/confirm", post(account::confirm))
        .route("/account/two-factor/disable", post(account::disable))
        .route("/organization", get(organization::show))
        .route("/organizations/{organization}/members", post(organization::add_member))
        .route("/organizations/{organization}/members/{user}/role", post(organization::change_role))
        .route("/organizations/{organization}/members/{user}/remove", post(organization::remove_member))
        .merge(item_routes())
        .route("/assets/{file}", get(assets::serve))
        .route("/favicon.ico", get(assets::favicon))
        .layer(axum::middleware::from_fn(csrf::guard))
        .layer(axum::middleware::from_fn(plain_paths))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::Extension(web))
}

/// The same item pages and actions wherever items live: on a server, a site, a database, or in
/// the organization's integrations.
fn item_routes() -> Router<AppState> {
    use pages::items::*;
    let mut router = Router::new();
    for place in [
        "/servers/{server}",
        "/servers/{server}/sites/{site}",
        "/servers/{server}/databases/{database}",
        "/integrations",
    ] {
        router = router
            .route(&format!("{place}/items/{{kind}}/new"), get(new_form))
            .route(&format!("{place}/items/{{kind}}"), post(create))
            .route(&format!("{place}/items/{{kind}}/{{item}}/edit"), get(edit_form))
            .route(&format!("{place}/items/{{kind}}/{{item}}"), post(update))
            .route(&format!("{place}/items/{{kind}}/{{item}}/delete"), post(delete))
            .route(&format!("{place}/items/{{kind}}/{{item}}/do/{{action}}"), post(act));
    }
    router
}

/// Dashboard paths are made of ids and names (`/servers/01J…/sites/01J…`): nothing in them
/// needs percent-encoding. Refusing any other character keeps a crafted path segment (an
/// encoded `/` or `?`) from reaching a different API route when a page builds its API path.
async fn plain_paths(request: Request, next: Next) -> Response {
    let plain = request.uri().path().bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
    if !plain || request.uri().path().contains("..") {
        let page = view::error_page("Not found", "There is nothing here, or it is not visible to you.");
        return (axum::http::StatusCode::NOT_FOUND, page).into_response();
    }
    next.run(request).await
}

/// Headers every dashboard response carries: the CSP, no sniffing, no framing, no referrer
/// outside Slipway, and pages never cached (they hold what the session may see).
async fn security_headers(request: Request, next: Next) -> Response {
    let asset = request.uri().path().starts_with("/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
