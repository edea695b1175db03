//! CSRF protection for every state-changing dashboard request, in one place.
//!
//! A form carries a `csrf` field: for a session, an HMAC of the session token (a third party
//! cannot compute it without the token, which is in an `HttpOnly` cookie); for the login form,
//! the value of a random cookie set with the form (double submit). Requests whose `Origin` or
//! `Sec-Fetch-Site` says they come from another site are refused before that. The session
//! cookie is also `SameSite=Lax`, so a form posted from another site does not carry it.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{KeyInit, Mac};
use http_body_util::BodyExt;

use crate::api::Web;
use crate::session::{cookie, login_cookie, session_cookie};
use crate::view;

/// The largest form the dashboard reads (environment variables are the largest).
const MAX_FORM_BYTES: usize = 1024 * 1024;

/// The CSRF value of a session's forms.
pub fn for_session(session_token: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(session_token.as_bytes()).expect("any key length");
    mac.update(b"slipway dashboard csrf v1");
    slipway_core::hex::encode(mac.finalize().into_bytes())
}

/// A fresh random value (for the login form's cookie).
pub fn random_value() -> String {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the OS random source works");
    slipway_core::hex::encode(bytes)
}

fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn refused(reason: &str) -> Response {
    tracing::info!(reason, "dashboard form refused (CSRF check)");
    let page = view::error_page(
        "This form cannot be accepted",
        "It has expired or did not come from this Slipway. Go back, reload the page and try again.",
    );
    (StatusCode::FORBIDDEN, page).into_response()
}

/// Whether the browser says the request comes from another site: `Sec-Fetch-Site`, or an
/// `Origin` that is neither this request's host nor Slipway's public URL.
fn cross_site(request: &Request, web: &Web) -> bool {
    let headers = request.headers();
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site" || v == "same-site")
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return false };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or(origin);
    origin == "null" || !(origin_host.eq_ignore_ascii_case(host) || origin.eq_ignore_ascii_case(&web.origin))
}

pub async fn guard(request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let web = request.extensions().get::<Web>().cloned().expect("the dashboard router adds Web");
    if cross_site(&request, &web) {
        return refused("cross-site request");
    }
    let expected = if request.uri().path() == "/login" {
        cookie(request.headers(), login_cookie(&web))
    } else {
        cookie(request.headers(), session_cookie(&web)).map(|token| for_session(&token))
    };
    let (parts, body) = request.into_parts();
    let bytes: Bytes = match http_body_util::Limited::new(body, MAX_FORM_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, view::error_page("Too large", "The form is too large."))
                .into_response();
        }
    };
    let given = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .ok()
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "csrf").map(|(_, v)| v));
    match (expected, given) {
        (Some(expected), Some(given)) if expected.len() >= 32 && equal(&expected, &given) => {
            next.run(Request::from_parts(parts, Body::from(bytes))).await
        }
        (None, _) if parts.uri.path() != "/login" => {
            // No session at all: the form cannot do anything; go and log in.
            axum::response::Redirect::to("/login").into_response()
        }
        _ => refused("missing or wrong CSRF value"),
    }
}
