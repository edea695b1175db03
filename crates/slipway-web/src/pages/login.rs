//! Logging in and out.

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;
use slipway_api::AppState;

use crate::api::Web;
use crate::csrf;
use crate::error::WebError;
use crate::session::{Peer, Session, login_cookie, session_cookie, set_cookie};
use crate::view::{FieldErrors, Layout, render};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    csrf: String,
    next: String,
    email: String,
    notice: String,
    errors: FieldErrors,
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    ended: Option<String>,
}

/// Only a path on this site is a place to go back to after login: it starts with one `/`, and
/// holds only characters a dashboard URL has (no `\\`, no whitespace or control character,
/// which browsers strip: `/\t/elsewhere` would become `//elsewhere`).
fn safe_next(next: Option<&str>) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/-_.?=&%".contains(c);
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && n.chars().all(allowed) => n.to_string(),
        _ => "/".into(),
    }
}

fn login_page(web: &Web, next: String, email: String, notice: String, errors: FieldErrors) -> Response {
    let value = csrf::random_value();
    let page = LoginPage { layout: Layout::public("Log in"), csrf: value.clone(), next, email, notice, errors };
    match render(&page) {
        Ok(html) => {
            let mut response = html.into_response();
            // A day: a login tab left open over lunch still works.
            response.headers_mut().append(header::SET_COOKIE, set_cookie(web, login_cookie(web), &value, Some(86_400)));
            response
        }
        Err(e) => e.into_response(),
    }
}

pub async fn form(Extension(web): Extension<Web>, Query(q): Query<LoginQuery>) -> Response {
    let notice = match q.ended.as_deref() {
        Some("idle") => "Your session ended after a while without activity. Log in again.",
        Some("expired") => "Your session has ended. Log in again.",
        Some("out") => "You are logged out.",
        _ => "",
    };
    login_page(&web, safe_next(q.next.as_deref()), String::new(), notice.into(), FieldErrors::default())
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    otp: String,
    #[serde(default)]
    next: String,
}

/// Logs in through `POST /api/v1/login` (its rate limit, its audit entries), asking for a
/// token that lasts the session's absolute lifetime.
pub async fn submit(
    State(state): State<AppState>,
    Extension(web): Extension<Web>,
    Peer(peer): Peer,
    headers: axum::http::HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, WebError> {
    let lifetime = chrono::Duration::from_std(state.config.session_lifetime).unwrap_or(chrono::Duration::hours(12));
    let expires_at = slipway_core::time::now() + lifetime;
    let otp = Some(f.otp.trim()).filter(|c| !c.is_empty());
    let body = json!({
        "email": f.email, "password": f.password, "otp": otp,
        "name": "Dashboard session", "expires_at": expires_at,
    });
    let reply = web.caller(None, peer).post("/api/v1/login", body).await?;
    let next = safe_next(Some(&f.next));
    if reply.status == axum::http::StatusCode::UNPROCESSABLE_ENTITY {
        let errors = FieldErrors(reply.field_errors());
        return Ok(login_page(&web, next, f.email, String::new(), errors));
    }
    if !reply.is_success() {
        let errors = FieldErrors(vec![("login".into(), vec![reply.message()])]);
        return Ok(login_page(&web, next, f.email, String::new(), errors));
    }
    let token = reply.body.pointer("/data/plain_text_token").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    if token.is_empty() {
        return Err(WebError::Internal("the login answer had no token".into()));
    }
    // Logging in again replaces the session the browser had: that one ends on the server.
    if let Some(old) = crate::session::cookie(&headers, session_cookie(&web))
        && let Ok(old) = slipway_core::token::PlainToken::parse(&old)
        && let Ok(Some(row)) = state.store.token_by_hash(&old.hash()).await
        && row.created_via == crate::session::CREATED_VIA
        && let Err(e) = state.store.revoke_token(&row.id, slipway_core::time::now()).await
    {
        tracing::warn!(error = %e, "could not end the session a new login replaces");
    }
    let mut response = Redirect::to(&next).into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, set_cookie(&web, session_cookie(&web), &token, None));
    headers.append(header::SET_COOKIE, set_cookie(&web, login_cookie(&web), "", Some(0)));
    Ok(response)
}

/// Ends the session on the server (its token is revoked), then in the browser.
pub async fn logout(Extension(web): Extension<Web>, session: Session) -> Response {
    let revoked = session.api.send(axum::http::Method::DELETE, "/api/v1/tokens/current", None).await;
    if let Err(e) = revoked.and_then(|r| r.success()) {
        // Keep the cookie: the session is still live on the server, and the user must know.
        tracing::warn!(error = ?e, "logout could not revoke the session token");
        return e.into_response();
    }
    let mut response = Redirect::to("/login?ended=out").into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(&web, session_cookie(&web), "", Some(0)));
    response
}
