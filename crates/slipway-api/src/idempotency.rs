//! `Idempotency-Key` on an authenticated POST: the first response for a key (per token, for 24
//! hours) is stored and returned again for retries, so a CI pipeline that retries a request does
//! the work once. The same key with a different request is a 422; while the first is still
//! running, a 409. A claimed key is never left behind: the request runs in a task of its own
//! (a client that gives up cannot cut it short), and a holder that died (kill -9) stops
//! refreshing its heartbeat, so the key is released after `HOLDER_GONE_AFTER_SECONDS`. Stored responses can hold new secrets (a rotated token), so they are sealed
//! with the secrets key. Unauthenticated requests (login, refresh) ignore the header: callers
//! behind one proxy address would share a key space.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use slipway_core::token::sha256_hex;
use slipway_store::IdempotencyBegin;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::BodyLimit;
use crate::state::AppState;

pub const HEADER: &str = "idempotency-key";
const RETENTION_HOURS: i64 = 24;
/// How often a request holding a key says it is still working on it.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);
/// A key in progress whose holder has been silent this long is released: its process died
/// (kill -9, a crash) before it could store a response or let the key go.
const HOLDER_GONE_AFTER_SECONDS: i64 = 20;
/// Stored responses larger than this are not kept (the request is then simply not idempotent).
const MAX_STORED_BODY: usize = 256 * 1024;

fn seal_context(principal: &str, key: &str) -> String {
    format!("idempotency:{principal}:{key}")
}

pub async fn idempotency(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(HEADER).map(|v| v.to_str().map(str::to_string)) else {
        return next.run(request).await;
    };
    match handle(state, key.ok(), request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn handle(state: AppState, key: Option<String>, request: Request, next: Next) -> Result<Response, Response> {
    let key = key.filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic())).ok_or_else(
        || {
            ApiError::validation("Idempotency-Key", "The Idempotency-Key must be 1 to 255 visible ASCII characters.")
                .into_response()
        },
    )?;
    let Some(principal) = request.extensions().get::<Principal>().map(|p| p.subject_key.clone()) else {
        return Ok(next.run(request).await);
    };
    let limit = request.extensions().get::<BodyLimit>().map(|l| l.0).unwrap_or(1024 * 1024);
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, limit).await.map_err(|_| ApiError::PayloadTooLarge(limit).into_response())?;
    let fingerprint = {
        let mut text = format!("{} {}\n", parts.method, parts.uri.path());
        text.push_str(&String::from_utf8_lossy(&bytes));
        sha256_hex(&text)
    };
    // From the claim on, everything runs in a task of its own: a client that gives up half-way
    // (a timeout, a dropped connection) drops only its wait. The claim is never left without a
    // holder, the request runs to its end, and its response is stored (or the key released),
    // so a retry replays what was done instead of meeting a stuck 409.
    let request = Request::from_parts(parts, Body::from(bytes));
    let work = tokio::spawn(claim_and_run(state.clone(), principal.clone(), key.clone(), fingerprint, request, next));
    match work.await {
        Ok(response) => Ok(response),
        Err(e) => {
            // The handler panicked (the catch-panic layer is outside this task): free the key.
            let _ = state.store.idempotency_abandon(&principal, &key).await;
            Err(ApiError::internal(format!("idempotent request failed: {e}")).into_response())
        }
    }
}

/// Claims the key, then replays, refuses, or runs the request and stores its response.
async fn claim_and_run(
    state: AppState,
    principal: String,
    key: String,
    fingerprint: String,
    request: Request,
    next: Next,
) -> Response {
    let now = slipway_core::time::now();
    let not_before = now - chrono::Duration::hours(RETENTION_HOURS);
    let holder_gone = now - chrono::Duration::seconds(HOLDER_GONE_AFTER_SECONDS);
    let begin = match state.store.idempotency_begin(&principal, &key, &fingerprint, now, not_before, holder_gone).await
    {
        Ok(begin) => begin,
        Err(e) => return ApiError::from(e).into_response(),
    };
    match begin {
        IdempotencyBegin::Started => run_and_store(state, principal, key, request, next).await,
        IdempotencyBegin::Replay { status, content_type, body } => {
            let body = match state.secrets.open(&seal_context(&principal, &key), &body) {
                Ok(body) => body,
                Err(e) => {
                    return ApiError::internal(format!("stored idempotent response does not open: {e}"))
                        .into_response();
                }
            };
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            if let Some(ct) = content_type.and_then(|ct| HeaderValue::from_str(&ct).ok()) {
                response.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            response
        }
        IdempotencyBegin::Mismatch => {
            ApiError::validation("Idempotency-Key", "This Idempotency-Key was already used with a different request.")
                .into_response()
        }
        IdempotencyBegin::InProgress => {
            ApiError::Conflict("A request with this Idempotency-Key is still being processed.".into()).into_response()
        }
    }
}

/// Runs the request while refreshing the key's heartbeat, then stores its response for replay
/// (or releases the key when the response is not one to replay).
async fn run_and_store(state: AppState, principal: String, key: String, request: Request, next: Next) -> Response {
    let heartbeat = {
        let (state, principal, key) = (state.clone(), principal.clone(), key.clone());
        async move {
            let mut every = tokio::time::interval(HEARTBEAT);
            every.tick().await;
            loop {
                every.tick().await;
                if let Err(e) = state.store.idempotency_heartbeat(&principal, &key, slipway_core::time::now()).await {
                    tracing::warn!(error = %e, "could not refresh an Idempotency-Key in progress");
                }
            }
        }
    };
    let response = tokio::select! {
        response = next.run(request) => response,
        () = heartbeat => unreachable!("the heartbeat never ends"),
    };
    let (parts, body) = response.into_parts();
    let bytes = match to_bytes(body, MAX_STORED_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let _ = state.store.idempotency_abandon(&principal, &key).await;
            tracing::warn!("response too large to store for Idempotency-Key; not kept");
            return ApiError::internal("response too large to replay").into_response();
        }
    };
    // Failures that did no work (server errors, rate limits) are not replayed: a retry may succeed.
    let keep = parts.status.as_u16() < 500 && parts.status != StatusCode::TOO_MANY_REQUESTS;
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let stored = if keep {
        let sealed = state.secrets.seal(&seal_context(&principal, &key), &bytes);
        state.store.idempotency_finish(&principal, &key, parts.status.as_u16(), content_type, &sealed).await
    } else {
        state.store.idempotency_abandon(&principal, &key).await
    };
    if let Err(e) = stored {
        tracing::error!(error = %e, "could not store the idempotent response");
    }
    Response::from_parts(parts, Body::from(bytes))
}
