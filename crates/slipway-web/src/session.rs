//! Dashboard sessions. A session is a token the API issued at login (`created_via`
//! `dashboard`), carried in an `HttpOnly`, `SameSite=Lax` cookie; the API accepts it only from
//! the dashboard. The token's expiry is the
//! session's absolute lifetime; its last use (recorded by the API) gives the idle expiry; and
//! logging out revokes it, so a session ends on the server, not only in the browser.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use slipway_api::AppState;
use slipway_api::auth::principal;
use slipway_core::token::PlainToken;

use crate::api::{InProcessApi, Web, encode};
use crate::error::WebError;

/// The token issued for a dashboard login says so; only such tokens are sessions.
pub const CREATED_VIA: &str = "dashboard";

/// The cookie holding the session token. Over HTTPS it has the `__Host-` prefix, which the
/// browser accepts only from this host, on `/`, with `Secure`.
pub fn session_cookie(web: &Web) -> &'static str {
    if web.secure { "__Host-slipway_session" } else { "slipway_session" }
}

/// The cookie holding the login form's CSRF value (there is no session yet to derive it from).
pub fn login_cookie(web: &Web) -> &'static str {
    if web.secure { "__Host-slipway_login" } else { "slipway_login" }
}

/// A `Set-Cookie` value with the flags every dashboard cookie has. `SameSite=Lax`: a link to a
/// dashboard page from a chat message or an email opens it logged in; a form posted from
/// another site still carries no cookie (and every form needs its CSRF value besides).
pub fn set_cookie(web: &Web, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(seconds) = max_age {
        cookie.push_str(&format!("; Max-Age={seconds}"));
    }
    if web.secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).expect("cookie values are tokens or hex")
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// A logged-in browser: the API as its token sees it, and the CSRF value its forms carry.
#[derive(Debug)]
pub struct Session {
    pub api: InProcessApi,
    pub csrf: String,
    pub token_id: String,
}

/// Why there is no session (shown on the login form).
#[derive(Debug, Clone, Copy)]
pub enum Ended {
    None,
    Expired,
    Idle,
}

impl Ended {
    pub fn query(self) -> &'static str {
        match self {
            Ended::None => "",
            Ended::Expired => "ended=expired",
            Ended::Idle => "ended=idle",
        }
    }
}

/// Back to the login form, forgetting the cookie; a page asked for by GET comes back after.
fn to_login(web: &Web, parts: &Parts, ended: Ended) -> Response {
    let mut query: Vec<String> = vec![];
    if !ended.query().is_empty() {
        query.push(ended.query().into());
    }
    if parts.method == axum::http::Method::GET {
        let wanted = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        if wanted != "/" {
            query.push(format!("next={}", encode(wanted)));
        }
    }
    let target = if query.is_empty() { "/login".to_string() } else { format!("/login?{}", query.join("&")) };
    let mut response = Redirect::to(&target).into_response();
    if ended.query() != "" {
        response.headers_mut().append(header::SET_COOKIE, set_cookie(web, session_cookie(web), "", Some(0)));
    }
    response
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let web = parts.extensions.get::<Web>().cloned().expect("the dashboard router adds Web");
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        let Some(token) = cookie(&parts.headers, session_cookie(&web)) else {
            return Err(to_login(&web, parts, Ended::None));
        };
        let Ok(plain) = PlainToken::parse(&token) else { return Err(to_login(&web, parts, Ended::Expired)) };
        let row = state
            .store
            .token_by_hash(&plain.hash())
            .await
            .map_err(|e| WebError::Internal(format!("reading the session: {e}")).into_response())?;
        let now = slipway_core::time::now();
        let Some(row) = row.filter(|r| r.created_via == CREATED_VIA && principal::is_active(r, now)) else {
            return Err(to_login(&web, parts, Ended::Expired));
        };
        // Last use is recorded at most once a minute, so idleness is known to within a minute.
        let last = row.last_used_at.unwrap_or(row.created_at);
        let idle = chrono::Duration::from_std(state.config.session_idle).unwrap_or(chrono::Duration::MAX);
        if now - last > idle {
            if let Err(e) = state.store.revoke_token(&row.id, now).await {
                tracing::warn!(error = %e, "could not revoke an idle dashboard session");
            }
            return Err(to_login(&web, parts, Ended::Idle));
        }
        // One page is one request against the session's API rate limit, whatever it reads. The
        // pages' own polls (a log while it runs, a site while it installs) have a budget of
        // their own, so following a long provisioning never locks the person out of the pages.
        let (policy, limit) = if is_poll(parts.uri.path()) {
            ("dashboard-poll", state.config.rate_limits.api_per_minute.saturating_mul(4).max(240))
        } else {
            ("api", state.config.rate_limits.api_per_minute)
        };
        let decision = state
            .limiter
            .hit(policy, &principal::subject_key(&row.id), limit, 60)
            .await
            .map_err(|e| WebError::Internal(format!("rate limit: {e}")).into_response())?;
        if !decision.allowed {
            let seconds = decision.retry_after();
            let message = format!("Too many requests. Retry after {seconds} seconds.");
            let mut refused = WebError::Api(StatusCode::TOO_MANY_REQUESTS, message).into_response();
            refused.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
            return Err(refused);
        }
        state.usage.record(&row.id, peer.map(|p| p.ip()));
        Ok(Session {
            api: web.caller(Some(&token), peer),
            csrf: crate::csrf::for_session(&token),
            token_id: row.id.clone(),
        })
    }
}

/// The dashboard routes its scripts poll while something runs (see `assets/app.js`).
fn is_poll(path: &str) -> bool {
    path.starts_with("/operations/") && path.ends_with("/log")
        || path.starts_with("/servers/") && path.ends_with("/state")
}

/// The browser's address (the TCP peer), when known.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)))
    }
}
