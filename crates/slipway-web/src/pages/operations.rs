//! An operation (verify, provision, …): its status and log, polled while it runs.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query};
use axum::response::Html;
use serde::{Deserialize, Serialize};

use crate::error::WebError;
use crate::model::{LogLine, Operation};
use crate::session::Session;
use crate::view::{Layout, Me, render, when};

#[derive(Template)]
#[template(path = "operation.html")]
struct OperationPage {
    layout: Layout,
    operation: Operation,
    started: String,
    lines: Vec<LogLine>,
    last_seq: i64,
    back: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct OperationQuery {
    server: Option<String>,
}

pub async fn show(
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<OperationQuery>,
) -> Result<Html<String>, WebError> {
    let me = Me::load(&session).await?;
    let operation: Operation = session.api.get(&format!("/api/v1/operations/{id}")).await?.data()?;
    let lines: Vec<LogLine> = session.api.get(&format!("/api/v1/operations/{id}/log")).await?.data()?;
    let last_seq = lines.last().map(|l| l.seq).unwrap_or(0);
    // Only an id goes into the link back, never text from the query.
    let back = q.server.filter(|s| s.chars().all(|c| c.is_ascii_alphanumeric())).map(|s| format!("/servers/{s}"));
    let layout = Layout::new(format!("Operation {}", operation.kind), "servers", &me, &session);
    let started = when(&operation.created_at);
    render(&OperationPage { layout, operation, started, lines, last_seq, back })
}

#[derive(Debug, Deserialize)]
pub struct After {
    after: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct Progress {
    status: String,
    failure_reason: Option<String>,
    lines: Vec<Line>,
}

#[derive(Debug, Serialize)]
struct Line {
    seq: i64,
    stream: String,
    line: String,
}

/// New log lines and the status, for the page's script to poll.
pub async fn log(session: Session, Path(id): Path<String>, Query(q): Query<After>) -> Result<Json<Progress>, WebError> {
    let after = q.after.unwrap_or(0).max(0);
    // Read the status first: lines written before it ended are then all in the read after it.
    let operation: Operation = session.api.get(&format!("/api/v1/operations/{id}")).await?.data()?;
    let lines: Vec<LogLine> = session.api.get(&format!("/api/v1/operations/{id}/log?after={after}")).await?.data()?;
    Ok(Json(Progress {
        status: operation.status,
        failure_reason: operation.failure_reason,
        lines: lines.into_iter().map(|l| Line { seq: l.seq, stream: l.stream, line: l.line }).collect(),
    }))
}
