//! An operation (verify, provision, …): its status and log, polled while it runs.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query};
use axum::response::Html;
use serde::{Deserialize, Serialize};

use crate::error::WebError;
use crate::model::{LogLine, Operation, OperationView};
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
    back: Option<(String, &'static str)>,
}

#[derive(Debug, Deserialize)]
pub struct OperationQuery {
    server: Option<String>,
    site: Option<String>,
}

/// Where the page links back to: the site or the server the operation was started from.
/// Only ids go into the link, never other text from the query.
fn back_link(q: OperationQuery) -> Option<(String, &'static str)> {
    let id = |s: Option<String>| s.filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()));
    let server = id(q.server)?;
    Some(match id(q.site) {
        Some(site) => (format!("/servers/{server}/sites/{site}"), "Back to the site"),
        None => (format!("/servers/{server}"), "Back to the server"),
    })
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
    let back = back_link(q);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn query(server: Option<&str>, site: Option<&str>) -> OperationQuery {
        OperationQuery { server: server.map(str::to_string), site: site.map(str::to_string) }
    }

    #[test]
    fn the_link_back_goes_to_the_site_or_server_and_takes_only_ids() {
        assert_eq!(back_link(query(Some("srv1"), None)).unwrap().0, "/servers/srv1");
        assert_eq!(
            back_link(query(Some("srv1"), Some("site2"))).unwrap(),
            ("/servers/srv1/sites/site2".into(), "Back to the site")
        );
        assert_eq!(back_link(query(Some("srv1"), Some("../x"))).unwrap().0, "/servers/srv1");
        assert_eq!(back_link(query(Some("javascript:x"), Some("site2"))), None);
        assert_eq!(back_link(query(None, Some("site2"))), None);
    }
}
