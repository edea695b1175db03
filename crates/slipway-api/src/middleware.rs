//! Cross-cutting request handling: request ids, one access-log line and one metric sample per
//! request, and a safety net that gives every error response the JSON envelope.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::error::ApiError;
use crate::metrics::UNMATCHED_ROUTE;
use crate::state::AppState;

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being handled, also sent back in `X-Request-Id`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The route template that matched (`/api/v1/tokens/{id}`), carried from the router back out
/// to [`observe`] in the response extensions.
#[derive(Debug, Clone)]
struct RouteTemplate(String);

/// A caller's request id is kept when it is short and made of safe characters (so it can go
/// into logs verbatim); otherwise a new ULID is used.
pub fn accept_request_id(value: Option<&HeaderValue>) -> Option<String> {
    let text = value?.to_str().ok()?;
    let sane = !text.is_empty()
        && text.len() <= 128
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    sane.then(|| text.to_string())
}

/// Outermost layer: assigns the request id, runs the request inside a span carrying it, then
/// logs the request once and records its metrics.
pub async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = accept_request_id(request.headers().get(&REQUEST_ID)).unwrap_or_else(slipway_core::new_id);
    request.extensions_mut().insert(RequestId(request_id.clone()));
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let span = tracing::info_span!("request", request_id = %request_id);

    let mut response = next.run(request).instrument(span.clone()).await;

    let route = response.extensions().get::<RouteTemplate>().map(|r| r.0.as_str()).unwrap_or(UNMATCHED_ROUTE);
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    state.metrics.observe(method.as_str(), route, status, elapsed);
    span.in_scope(|| {
        tracing::info!(
            method = %method,
            route,
            path = %path,
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    response
}

/// Route layer: runs only for matched routes and notes which template matched.
pub async fn record_route(request: Request, next: Next) -> Response {
    let template = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let mut response = next.run(request).await;
    if let Some(template) = template {
        response.extensions_mut().insert(RouteTemplate(template));
    }
    response
}

/// Any error response that is not already JSON (a framework rejection, a layer's plain-text
/// answer) is rewritten into the standard envelope; headers such as `Allow` are kept.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) || is_html(&response) {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let message = match status.as_u16() {
        400 => "The request could not be understood.",
        404 => "Not found.",
        405 => "This method is not supported for this route.",
        408 => "The request took too long to arrive.",
        413 => "The request body is too large.",
        415 => "The request body must be JSON, sent with Content-Type: application/json.",
        422 => "The given data was invalid.",
        _ if status.is_server_error() => "Server error.",
        _ => status.canonical_reason().unwrap_or("Request failed."),
    };
    let body = serde_json::json!({ "message": message }).to_string();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// The dashboard's error pages are HTML on purpose; they stay as they are.
fn is_html(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"))
}

/// A handler that panicked answers an opaque 500; the panic is logged once, here.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(non-string panic payload)");
    ApiError::internal(format!("handler panicked: {detail}")).into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

pub async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed(request.method().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_from_callers_are_kept_only_when_safe() {
        let h = |v: &str| accept_request_id(Some(&HeaderValue::from_str(v).unwrap()));
        assert_eq!(h("abc-123_X.y:z").as_deref(), Some("abc-123_X.y:z"));
        assert_eq!(h("3f2b8c1e-9d4a-4c6e-8f1a-2b3c4d5e6f70").as_deref(), Some("3f2b8c1e-9d4a-4c6e-8f1a-2b3c4d5e6f70"));
        assert_eq!(h(""), None);
        assert_eq!(h("has space"), None);
        assert_eq!(h("quote\"inject"), None);
        assert_eq!(h(&"a".repeat(129)), None);
        assert_eq!(accept_request_id(None), None);
    }
}
