//! A deployment's log as server-sent events.

use axum::extract::State;

use crate::error::ApiError;
use crate::extract::Query;
use crate::state::AppState;

use super::*;

/// Reads that may fail in a row (a database restart) before the stream reports the error.
const READ_ATTEMPTS: u32 = 4;

fn stream_error(message: &str) -> axum::response::sse::Event {
    axum::response::sse::Event::default().event("error").data(serde_json::json!({ "message": message }).to_string())
}

/// The deployment's log as server-sent events: one `line` event per log line (its data is the
/// line as JSON, with `seq`), as they arrive, then one `end` event with the deployment. If the
/// log cannot be read (the database is unreachable for a while, the deployment was deleted),
/// the stream ends with an `error` event (`{"message": …}`) instead: `end` always means the
/// deployment ended. Resume with `?after=SEQ` (or the `Last-Event-ID` header).
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/sites/{site}/deployments/{deployment}/log/stream", tag = "deployments",
    params(("server" = String, Path), ("site" = String, Path), ("deployment" = String, Path), LogQuery),
    security(("token" = ["site:read"]), ("token" = ["site:deploy"])),
    responses((status = 200, content_type = "text/event-stream", description = "Server-sent events"))
)]
pub async fn deployment_log_stream(
    State(state): State<AppState>,
    v: VisibleSite,
    ids: axum::extract::Path<(String, String, String)>,
    headers: axum::http::HeaderMap,
    Query(query): Query<LogQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    use axum::response::sse::{Event, KeepAlive, Sse};
    let d = find_deployment(&state, &v, &ids.2).await?;
    let resume = headers.get("last-event-id").and_then(|h| h.to_str().ok()).and_then(|s| s.parse::<i64>().ok());
    let after = query.after.map(|a| a.0).or(resume).unwrap_or(0).max(0);
    /// Where the stream is: the last line sent, and whether the end was sent.
    struct Cursor {
        state: AppState,
        deployment_id: String,
        job_id: String,
        after: i64,
        done: bool,
        /// Consecutive failed reads; the stream gives up after `READ_ATTEMPTS`.
        failures: u32,
        pending: std::collections::VecDeque<Event>,
        /// Wakes the stream when a line of its log or the deployment's status is written.
        activity: tokio::sync::watch::Receiver<u64>,
    }
    let cursor = Cursor {
        activity: state.store.job_activity(&d.job_id),
        state,
        deployment_id: d.id,
        job_id: d.job_id,
        after,
        done: false,
        failures: 0,
        pending: Default::default(),
    };
    let stream = futures_util::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(event) = c.pending.pop_front() {
                return Some((Ok::<Event, std::convert::Infallible>(event), c));
            }
            if c.done {
                return None;
            }
            // Read the deployment first: lines written before it ended are then all visible.
            let read = async {
                let deployment = c.state.store.deployment(&c.deployment_id).await?;
                let lines = c.state.store.job_log(&c.job_id, c.after, 500).await?;
                Ok::<_, slipway_store::StoreError>((deployment, lines))
            };
            let (deployment, lines) = match read.await {
                Ok((Some(deployment), lines)) => {
                    c.failures = 0;
                    (deployment, lines)
                }
                Ok((None, _)) => {
                    c.pending.push_back(stream_error("The deployment no longer exists."));
                    c.done = true;
                    continue;
                }
                Err(e) => {
                    c.failures += 1;
                    if c.failures >= READ_ATTEMPTS {
                        tracing::warn!(error = %e, deployment = %c.deployment_id, "deployment log stream gave up");
                        c.pending.push_back(stream_error(&format!(
                            "The log could not be read ({e}); reconnect with Last-Event-ID to resume."
                        )));
                        c.done = true;
                    } else {
                        tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(c.failures))).await;
                    }
                    continue;
                }
            };
            for line in &lines {
                c.after = line.seq;
                let data =
                    serde_json::json!({"seq": line.seq, "at": line.at, "stream": line.stream, "line": line.line});
                c.pending.push_back(Event::default().event("line").id(line.seq.to_string()).data(data.to_string()));
            }
            let ended = deployment.status.is_finished();
            if ended && lines.is_empty() {
                let data = serde_json::to_string(&crate::resources::deployment(&deployment)).unwrap_or_default();
                c.pending.push_back(Event::default().event("end").data(data));
                c.done = true;
            } else if lines.is_empty() {
                // Woken by any replica's write for this job (`job_activity`); the poll covers
                // a wake-up lost between replicas.
                let _ = tokio::time::timeout(std::time::Duration::from_millis(300), c.activity.changed()).await;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}
