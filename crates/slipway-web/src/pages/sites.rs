//! Sites: the list, adding one, a site's page (deploy, deployments, releases and rollback,
//! environment variables).

use askama::Template;
use axum::extract::{Form, Path, Query};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::encode;
use crate::error::WebError;
use crate::model::{Deployment, DeploymentView, Release, Server, Site, SiteView};
use crate::session::Session;
use crate::view::{FieldErrors, Layout, Me, PageQuery, optional, render, when};

#[derive(Template)]
#[template(path = "sites.html")]
struct SitesPage {
    layout: Layout,
    sites: Vec<Site>,
    page: u32,
    more: bool,
}

const PER_PAGE: u32 = 50;

/// Every site the session may see, across servers, a page at a time.
pub async fn list(session: Session, Query(q): Query<PageQuery>) -> Result<Html<String>, WebError> {
    let me = Me::load(&session).await?;
    let page = q.number();
    let path = format!("/api/v1/sites?page={page}&per_page={PER_PAGE}");
    let (sites, more) = session.api.get(&path).await?.page::<Site>()?;
    render(&SitesPage { layout: Layout::new("Sites", "sites", &me, &session), sites, page, more })
}

#[derive(Debug, Default, Deserialize)]
pub struct NewSite {
    #[serde(default)]
    domain: String,
    #[serde(default)]
    project_type: String,
    #[serde(default)]
    repository_url: String,
    #[serde(default)]
    branch: String,
    #[serde(default)]
    web_directory: String,
}

#[derive(Template)]
#[template(path = "site_new.html")]
struct NewSitePage {
    layout: Layout,
    server: Server,
    form: NewSite,
    errors: FieldErrors,
}

async fn new_site_page(
    session: &Session,
    server_id: &str,
    form: NewSite,
    errors: FieldErrors,
) -> Result<Html<String>, WebError> {
    let me = Me::load(session).await?;
    let server: Server = session.api.get(&format!("/api/v1/servers/{server_id}")).await?.data()?;
    let layout = Layout::new(format!("Add a site to {}", server.name), "sites", &me, session);
    render(&NewSitePage { layout, server, form, errors })
}

pub async fn new_form(session: Session, Path(server): Path<String>) -> Result<Html<String>, WebError> {
    let form = NewSite { project_type: "static".into(), branch: "main".into(), ..Default::default() };
    new_site_page(&session, &server, form, FieldErrors::default()).await
}

pub async fn create(
    session: Session,
    Path(server): Path<String>,
    Form(form): Form<NewSite>,
) -> Result<Response, WebError> {
    let body = json!({
        "domain": form.domain.trim(), "project_type": form.project_type.trim(),
        "repository_url": optional(&form.repository_url), "branch": optional(&form.branch),
        "web_directory": optional(&form.web_directory),
    });
    let reply = session.api.post(&format!("/api/v1/servers/{server}/sites"), body).await?;
    if reply.status.as_u16() == 422 {
        let errors = FieldErrors(reply.field_errors());
        return Ok(new_site_page(&session, &server, form, errors).await?.into_response());
    }
    let site: Site = reply.data()?;
    Ok(Redirect::to(&site.url()).into_response())
}

pub struct DeploymentRow {
    pub d: Deployment,
    pub when: String,
}

pub struct ReleaseRow {
    pub r: Release,
    pub when: String,
}

#[derive(Debug, Deserialize)]
pub struct EnvVar {
    pub key: String,
    pub value: Option<String>,
}

#[derive(Template)]
#[template(path = "site.html")]
struct SitePage {
    layout: Layout,
    server: Server,
    site: Site,
    deployments: Vec<DeploymentRow>,
    releases: Vec<ReleaseRow>,
    env: Vec<EnvVar>,
    revealed: bool,
    sections: Vec<super::items::Section>,
    can_deploy: bool,
    can_update: bool,
    /// Messages of a refused form on this page (environment variables, scheduling).
    errors: FieldErrors,
}

#[derive(Debug, Default, Deserialize)]
pub struct SiteQuery {
    #[serde(default)]
    reveal: Option<String>,
}

async fn site_page(
    session: &Session,
    server_id: &str,
    site_id: &str,
    reveal: bool,
    errors: FieldErrors,
) -> Result<Html<String>, WebError> {
    let me = Me::load(session).await?;
    let base = format!("/api/v1/servers/{server_id}/sites/{site_id}");
    let server: Server = session.api.get(&format!("/api/v1/servers/{server_id}")).await?.data()?;
    let site: Site = session.api.get(&base).await?.data()?;
    let (deployments, _) = session.api.get(&format!("{base}/deployments?per_page=20")).await?.page::<Deployment>()?;
    let releases: Vec<Release> = session.api.every(&format!("{base}/releases")).await?;
    let env_path = format!("{base}/environment-variables{}", if reveal { "?reveal=true" } else { "" });
    // Revealing needs `site:update`: the API says no to anyone else, and so does this page.
    let env: Vec<EnvVar> = session.api.every(&env_path).await?;
    let place = super::items::Place::site(server_id, site_id);
    let sections = super::items::sections(session, &me, &place, Some(&server.organization_id)).await?;
    let layout = Layout::new(site.domain.clone(), "sites", &me, session);
    render(&SitePage {
        can_deploy: me.may(&server.organization_id, "site:deploy"),
        can_update: me.may(&server.organization_id, "site:update"),
        layout,
        server,
        site,
        deployments: deployments.into_iter().map(|d| DeploymentRow { when: when(&d.created_at), d }).collect(),
        releases: releases.into_iter().map(|r| ReleaseRow { when: when(&r.created_at), r }).collect(),
        env,
        revealed: reveal,
        sections,
        errors,
    })
}

pub async fn show(
    session: Session,
    Path((server, site)): Path<(String, String)>,
    Query(q): Query<SiteQuery>,
) -> Result<Html<String>, WebError> {
    site_page(&session, &server, &site, q.reveal.is_some(), FieldErrors::default()).await
}

/// The environment variables with their values: the site page, revealed.
pub async fn env(session: Session, Path((server, site)): Path<(String, String)>) -> Result<Html<String>, WebError> {
    site_page(&session, &server, &site, true, FieldErrors::default()).await
}

fn deployment_url(server: &str, site: &str, deployment: &Deployment) -> String {
    format!("/servers/{server}/sites/{site}/deployments/{}", deployment.id)
}

pub async fn deploy(session: Session, Path((server, site)): Path<(String, String)>) -> Result<Response, WebError> {
    let path = format!("/api/v1/servers/{server}/sites/{site}/deploy");
    let deployment: Deployment = session.api.post(&path, json!({"trigger": "dashboard"})).await?.data()?;
    Ok(Redirect::to(&deployment_url(&server, &site, &deployment)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct RollbackForm {
    release: String,
}

pub async fn rollback(
    session: Session,
    Path((server, site)): Path<(String, String)>,
    Form(form): Form<RollbackForm>,
) -> Result<Response, WebError> {
    let path = format!("/api/v1/servers/{server}/sites/{site}/rollback");
    let deployment: Deployment = session.api.post(&path, json!({"release": form.release})).await?.data()?;
    Ok(Redirect::to(&deployment_url(&server, &site, &deployment)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct EnvForm {
    key: String,
    value: String,
    #[serde(default)]
    deploy: Option<String>,
}

pub async fn set_env(
    session: Session,
    Path((server, site)): Path<(String, String)>,
    Form(form): Form<EnvForm>,
) -> Result<Response, WebError> {
    let deploy = form.deploy.is_some();
    let path = format!("/api/v1/servers/{server}/sites/{site}/environment-variables?deploy={deploy}");
    let mut variables = serde_json::Map::new();
    variables.insert(form.key.trim().to_string(), Value::String(form.value));
    let reply = session.api.post(&path, json!({ "variables": variables })).await?;
    if reply.status.as_u16() == 422 {
        let errors = FieldErrors(reply.field_errors());
        return Ok(site_page(&session, &server, &site, false, errors).await?.into_response());
    }
    let change = reply.success()?;
    if let Some(id) = change.body.pointer("/data/deployment/id").and_then(Value::as_str) {
        return Ok(Redirect::to(&format!("/servers/{server}/sites/{site}/deployments/{id}")).into_response());
    }
    Ok(Redirect::to(&format!("/servers/{server}/sites/{site}#environment")).into_response())
}

/// Starts an action on the site that needs no input. When it queued work on the server
/// (suspending, resuming), shows that operation's live log, so the page never says "done"
/// before nginx has the change; otherwise shows the site again.
async fn site_action(session: Session, server: &str, site: &str, action: &str) -> Result<Response, WebError> {
    let path = format!("/api/v1/servers/{server}/sites/{site}/{action}");
    let reply = session.api.post(&path, json!({})).await?.success()?;
    if let Some(operation) = reply.body.pointer("/data/operation_id").and_then(Value::as_str) {
        let to = format!("/operations/{}?server={}&site={}", encode(operation), encode(server), encode(site));
        return Ok(Redirect::to(&to).into_response());
    }
    Ok(Redirect::to(&format!("/servers/{server}/sites/{site}")).into_response())
}

pub async fn suspend(session: Session, Path((server, site)): Path<(String, String)>) -> Result<Response, WebError> {
    site_action(session, &server, &site, "suspend").await
}

pub async fn resume(session: Session, Path((server, site)): Path<(String, String)>) -> Result<Response, WebError> {
    site_action(session, &server, &site, "resume").await
}

pub async fn cancel_scheduled(
    session: Session,
    Path((server, site)): Path<(String, String)>,
) -> Result<Response, WebError> {
    site_action(session, &server, &site, "cancel-scheduled-deploy").await
}

#[derive(Debug, Deserialize)]
pub struct ScheduleForm {
    /// From a `datetime-local` field, read as UTC.
    at: String,
}

pub async fn schedule(
    session: Session,
    Path((server, site)): Path<(String, String)>,
    Form(form): Form<ScheduleForm>,
) -> Result<Response, WebError> {
    let at = form.at.trim();
    // `datetime-local` gives minutes; the API wants RFC 3339.
    let at = if at.len() == 16 { format!("{at}:00Z") } else { at.to_string() };
    let path = format!("/api/v1/servers/{server}/sites/{site}/schedule-deploy");
    let reply = session.api.post(&path, json!({ "at": at })).await?;
    if reply.status.as_u16() == 422 {
        let errors = FieldErrors(reply.field_errors());
        return Ok(site_page(&session, &server, &site, false, errors).await?.into_response());
    }
    reply.success()?;
    Ok(Redirect::to(&format!("/servers/{server}/sites/{site}")).into_response())
}

/// Whether the site is still being changed on its server, for the page's script to poll:
/// `running` while it is installing or being removed, else `done`.
pub async fn state(
    session: Session,
    Path((server, site)): Path<(String, String)>,
) -> Result<axum::Json<Value>, WebError> {
    let site: Site = session.api.get(&format!("/api/v1/servers/{server}/sites/{site}")).await?.data()?;
    let status = if site.changing() { "running" } else { "done" };
    Ok(axum::Json(json!({ "status": status })))
}
