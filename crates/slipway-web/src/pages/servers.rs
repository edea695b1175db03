//! Servers: the list, adding one (with the command that lets Slipway in), and a server's page.

use askama::Template;
use axum::extract::{Form, Path, Query};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::WebError;
use crate::model::{OperationView, Server, ServerView, Site, SiteView};
use crate::session::Session;
use crate::view::{FieldErrors, Layout, Me, Membership, PageQuery, optional, render};

#[derive(Template)]
#[template(path = "servers.html")]
struct ServersPage {
    layout: Layout,
    servers: Vec<Server>,
    page: u32,
    more: bool,
    can_add: bool,
}

const PER_PAGE: u32 = 50;

pub async fn list(session: Session, Query(q): Query<PageQuery>) -> Result<Html<String>, WebError> {
    let me = Me::load(&session).await?;
    let page = q.number();
    let path = format!("/api/v1/servers?page={page}&per_page={PER_PAGE}");
    let (servers, more) = session.api.get(&path).await?.page::<Server>()?;
    let can_add = me.organizations.iter().any(|o| me.may(&o.id, "server:create"));
    render(&ServersPage { layout: Layout::new("Servers", "servers", &me, &session), servers, page, more, can_add })
}

#[derive(Debug, Default, Deserialize)]
pub struct NewServer {
    #[serde(default)]
    name: String,
    #[serde(default)]
    ip_address: String,
    #[serde(default)]
    ssh_port: String,
    #[serde(default)]
    ssh_user: String,
    #[serde(default)]
    php_version: String,
    #[serde(default)]
    database_type: String,
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    organization_id: String,
}

#[derive(Template)]
#[template(path = "server_new.html")]
struct NewServerPage {
    layout: Layout,
    form: NewServer,
    organizations: Vec<Membership>,
    errors: FieldErrors,
}

fn new_server_page(me: Me, session: &Session, form: NewServer, errors: FieldErrors) -> Result<Html<String>, WebError> {
    let layout = Layout::new("Add a server", "servers", &me, session);
    let organizations = me.organizations.into_iter().collect();
    render(&NewServerPage { layout, form, organizations, errors })
}

pub async fn new_form(session: Session) -> Result<Html<String>, WebError> {
    let me = Me::load(&session).await?;
    let form = NewServer {
        ssh_port: "22".into(),
        ssh_user: "root".into(),
        database_type: "none".into(),
        ..Default::default()
    };
    new_server_page(me, &session, form, FieldErrors::default())
}

pub async fn create(session: Session, Form(form): Form<NewServer>) -> Result<Response, WebError> {
    let port = match form.ssh_port.trim() {
        "" => Value::Null,
        p => match p.parse::<u32>() {
            Ok(n) => json!(n),
            Err(_) => {
                let me = Me::load(&session).await?;
                let errors = FieldErrors(vec![(
                    "ssh_port".into(),
                    vec!["The SSH port must be a number from 1 to 65535.".into()],
                )]);
                return Ok(new_server_page(me, &session, form, errors)?.into_response());
            }
        },
    };
    let body = json!({
        "name": form.name.trim(), "provider": "custom", "ip_address": form.ip_address.trim(),
        "ssh_port": port, "ssh_user": optional(&form.ssh_user), "php_version": optional(&form.php_version),
        "database_type": optional(&form.database_type), "node": form.node.is_some(),
        "organization_id": optional(&form.organization_id),
    });
    let reply = session.api.post("/api/v1/servers", body).await?;
    if reply.status.as_u16() == 422 {
        let me = Me::load(&session).await?;
        return Ok(new_server_page(me, &session, form, FieldErrors(reply.field_errors()))?.into_response());
    }
    let server: Server = reply.data()?;
    Ok(Redirect::to(&format!("/servers/{}", server.id)).into_response())
}

#[derive(Debug, Deserialize)]
struct Authorization {
    command: String,
}

#[derive(Template)]
#[template(path = "server.html")]
struct ServerPage {
    layout: Layout,
    server: Server,
    sites: Vec<Site>,
    authorization: Option<String>,
    can_update: bool,
    can_add_site: bool,
    sections: Vec<super::items::Section>,
    operations: Vec<OperationRow>,
}

pub struct OperationRow {
    pub o: crate::model::Operation,
    pub when: String,
    pub stuck: Option<String>,
}

pub async fn show(session: Session, Path(id): Path<String>) -> Result<Html<String>, WebError> {
    let me = Me::load(&session).await?;
    let server: Server = session.api.get(&format!("/api/v1/servers/{id}")).await?.data()?;
    let sites = session.api.get(&format!("/api/v1/servers/{id}/sites?per_page=100")).await?.page::<Site>()?.0;
    // The command that lets Slipway in matters until the server is provisioned.
    let authorization = if server.provisioned_at.is_none() {
        let reply = session.api.get(&format!("/api/v1/servers/{id}/authorization")).await?;
        if reply.is_success() { Some(reply.data::<Authorization>()?.command) } else { None }
    } else {
        None
    };
    let (operations, _) =
        session.api.get(&format!("/api/v1/servers/{id}/logs?per_page=10")).await?.page::<crate::model::Operation>()?;
    let now = slipway_core::time::now();
    let stuck: Vec<Option<String>> = operations.iter().map(|o| o.stuck_among(&operations, now)).collect();
    let operations = operations
        .into_iter()
        .zip(stuck)
        .map(|(o, stuck)| OperationRow { when: crate::view::when(&o.created_at), stuck, o })
        .collect();
    let place = super::items::Place::server(&id);
    let sections = super::items::sections(&session, &me, &place, Some(&server.organization_id)).await?;
    let can_update = me.may(&server.organization_id, "server:update");
    let can_add_site = me.may(&server.organization_id, "site:create");
    let layout = Layout::new(format!("Server {}", server.name), "servers", &me, &session);
    render(&ServerPage { layout, server, sites, authorization, can_update, can_add_site, sections, operations })
}

/// Starts an operation on the server and shows its live log.
async fn start(session: Session, id: &str, action: &str) -> Result<Response, WebError> {
    let reply = session.api.post(&format!("/api/v1/servers/{id}/{action}"), json!({})).await?;
    let operation: crate::model::Operation = reply.data()?;
    Ok(Redirect::to(&format!("/operations/{}?server={id}", operation.id)).into_response())
}

pub async fn verify(session: Session, Path(id): Path<String>) -> Result<Response, WebError> {
    start(session, &id, "verify").await
}

pub async fn provision(session: Session, Path(id): Path<String>) -> Result<Response, WebError> {
    start(session, &id, "provision").await
}
