//! Secrets Slipway shows once: a new access token, a notification channel's signing secret, a
//! database user's password. The API returns such a secret in the answer to the request that
//! made it and never again; the dashboard carries it, sealed, in a short-lived cookie from that
//! POST to the page that shows it, so a reload or the back button never shows it again and never
//! makes another.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use slipway_api::AppState;

use crate::api::Web;
use crate::error::WebError;
use crate::session::{Session, cookie, set_cookie};
use crate::view::{Layout, Me, render};

const COOKIE: &str = "slipway_shown_once";
const CONTEXT: &str = "dashboard:shown-once";

/// What the page says about the secret, and the secret.
#[derive(Debug, Serialize, Deserialize)]
pub struct Secret {
    /// What it is, in a sentence: "the token", "the signing secret of Ops on-call".
    pub what: String,
    pub value: String,
    /// Where to go afterwards.
    pub back: String,
    /// The page's navigation section.
    pub section: String,
}

/// Sends the browser to `page` (a route served by [`show`]) carrying `secret`, sealed to this
/// session: another session's page cannot open it.
pub fn redirect(state: &AppState, web: &Web, session: &Session, page: &str, secret: &Secret) -> Response {
    let json = serde_json::to_vec(secret).expect("a secret serializes");
    let sealed = state.secrets.seal(&format!("{CONTEXT}:{}", session.token_id), &json);
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed);
    let mut response = Redirect::to(page).into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(web, COOKIE, &value, Some(120)));
    response
}

#[derive(Template)]
#[template(path = "shown_once.html")]
struct ShownOncePage {
    layout: Layout,
    secret: Option<Secret>,
    /// The `id` of the element holding the secret (`new-token` for tokens).
    element: &'static str,
}

/// Shows the carried secret, once: this answer removes the cookie.
pub async fn show(
    State(state): State<AppState>,
    axum::Extension(web): axum::Extension<Web>,
    headers: HeaderMap,
    session: Session,
) -> Result<Response, WebError> {
    let me = Me::load(&session).await?;
    let secret = cookie(&headers, COOKIE)
        .and_then(|v| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v).ok())
        .and_then(|sealed| state.secrets.open(&format!("{CONTEXT}:{}", session.token_id), &sealed).ok())
        .and_then(|bytes| serde_json::from_slice::<Secret>(&bytes).ok());
    let (title, section) = match &secret {
        Some(s) if s.section == "tokens" => ("New access token", "tokens"),
        Some(s) if s.section == "integrations" => ("Shown once", "integrations"),
        Some(_) => ("Shown once", "servers"),
        None => ("Shown once", ""),
    };
    let element = if section == "tokens" { "new-token" } else { "new-secret" };
    let page = ShownOncePage { layout: Layout::new(title, section, &me, &session), secret, element };
    let mut response = render(&page)?.into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(&web, COOKIE, "", Some(0)));
    Ok(response)
}
