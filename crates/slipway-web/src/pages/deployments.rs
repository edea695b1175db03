//! A deployment: its steps and its log, followed live while it runs.

use askama::Template;
use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::{Html, Response};
use serde::Deserialize;

use crate::error::WebError;
use crate::model::{Deployment, DeploymentView, LogLine, Site, SiteView};
use crate::session::Session;
use crate::view::{Layout, Me, render, when};

#[derive(Template)]
#[template(path = "deployment.html")]
struct DeploymentPage {
    layout: Layout,
    site: Site,
    deployment: Deployment,
    started: String,
    lines: Vec<LogLine>,
    last_seq: i64,
    can_cancel: bool,
}

pub async fn show(
    session: Session,
    Path((server, site, id)): Path<(String, String, String)>,
) -> Result<Html<String>, WebError> {
    let me = Me::load(&session).await?;
    let base = format!("/api/v1/servers/{server}/sites/{site}");
    let site: Site = session.api.get(&base).await?.data()?;
    let deployment: Deployment = session.api.get(&format!("{base}/deployments/{id}")).await?.data()?;
    let lines: Vec<LogLine> = session.api.get(&format!("{base}/deployments/{id}/log")).await?.data()?;
    let last_seq = lines.last().map(|l| l.seq).unwrap_or(0);
    let layout = Layout::new(format!("Deployment of {}", site.domain), "sites", &me, &session);
    let started = when(&deployment.created_at);
    let server: crate::model::Server = session.api.get(&format!("/api/v1/servers/{server}")).await?.data()?;
    let can_cancel = deployment.running() && me.may(&server.organization_id, "site:deploy");
    render(&DeploymentPage { layout, site, deployment, started, lines, last_seq, can_cancel })
}

#[derive(Debug, Deserialize)]
pub struct After {
    after: Option<i64>,
}

/// The API's server-sent events for this deployment's log, passed on as they come.
pub async fn events(
    session: Session,
    Path((server, site, id)): Path<(String, String, String)>,
    Query(q): Query<After>,
) -> Result<Response, WebError> {
    let after = q.after.unwrap_or(0).max(0);
    let path = format!("/api/v1/servers/{server}/sites/{site}/deployments/{id}/log/stream?after={after}");
    let response = session.api.raw(Method::GET, &path, None).await?;
    if !response.status().is_success() {
        return Err(WebError::Api(response.status(), "The log cannot be followed.".into()));
    }
    Ok(response)
}

/// Cancels a running deployment (the API stops it at a safe point), then shows it.
pub async fn cancel(
    session: Session,
    Path((server, site, id)): Path<(String, String, String)>,
) -> Result<axum::response::Response, WebError> {
    use axum::response::IntoResponse;
    let path = format!("/api/v1/servers/{server}/sites/{site}/deployments/{id}/cancel");
    session.api.post(&path, serde_json::json!({})).await?.success()?;
    Ok(axum::response::Redirect::to(&format!("/servers/{server}/sites/{site}/deployments/{id}")).into_response())
}
