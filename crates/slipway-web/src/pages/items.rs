//! What runs on a server or a site besides its sites and deployments, what belongs to a
//! database, and what an organization connects Slipway to: one table per kind (declared in
//! `kinds.rs`) with each item's state, and the forms and buttons that add, change, delete and
//! act on them through the API.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::Value;
use slipway_api::AppState;

use super::kinds::{Choices, DATABASE_KINDS, Field, INTEGRATION_KINDS, Input, Kind, Removal, SERVER_KINDS, SITE_KINDS};
use super::once::Secret;
use crate::api::{Reply, Web, encode};
use crate::error::WebError;
use crate::session::Session;
use crate::view::{FieldErrors, Layout, Me, render};

pub use super::kinds::field;

/// Where items live: on a server, on one of its sites or databases, or in the organization.
pub struct Place {
    /// The API path the kinds' paths hang from.
    api: String,
    /// The dashboard page that shows them.
    page: String,
    kinds: &'static [Kind],
    server: Option<String>,
    section: &'static str,
}

impl Place {
    /// On a server, or below it (`/sites/{site}`): the API path is the page's under `/api/v1`.
    fn on_server(server: &str, below: String, kinds: &'static [Kind], section: &'static str) -> Place {
        let page = format!("/servers/{server}{below}");
        Place { api: format!("/api/v1{page}"), page, kinds, server: Some(server.into()), section }
    }

    pub fn server(server: &str) -> Place {
        Place::on_server(server, String::new(), SERVER_KINDS, "servers")
    }

    pub fn site(server: &str, site: &str) -> Place {
        Place::on_server(server, format!("/sites/{site}"), SITE_KINDS, "sites")
    }

    pub fn database(server: &str, database: &str) -> Place {
        Place::on_server(server, format!("/databases/{database}"), DATABASE_KINDS, "servers")
    }

    pub fn integrations() -> Place {
        Place {
            api: "/api/v1".into(),
            page: "/integrations".into(),
            kinds: INTEGRATION_KINDS,
            server: None,
            section: "integrations",
        }
    }

    /// The place a dashboard URL names (its path parameters; the dashboard's paths are plain,
    /// so they are safe in an API path).
    fn of(params: &HashMap<String, String>) -> Place {
        match (params.get("server"), params.get("site"), params.get("database")) {
            (Some(server), _, Some(database)) => Place::database(server, database),
            (Some(server), Some(site), _) => Place::site(server, site),
            (Some(server), ..) => Place::server(server),
            _ => Place::integrations(),
        }
    }

    /// The kind named in the path.
    fn kind(&self, path: &str) -> Result<&'static Kind, WebError> {
        self.kinds.iter().find(|k| k.path == path).ok_or_else(not_found)
    }

    /// The kind named in the path, if it has a form.
    fn kind_with_form(&self, path: &str) -> Result<&'static Kind, WebError> {
        Some(self.kind(path)?).filter(|k| !k.fields.is_empty()).ok_or_else(not_found)
    }

    fn list_api(&self, kind: &Kind) -> String {
        format!("{}/{}", self.api, kind.path)
    }

    fn item_api(&self, kind: &Kind, item: &str) -> String {
        match kind.item_api {
            Some(base) => format!("{base}/{}", encode(item)),
            None => format!("{}/{}/{}", self.api, kind.path, encode(item)),
        }
    }

    fn item_page(&self, kind: &Kind, item: &str) -> String {
        format!("{}/items/{}/{item}", self.page, kind.path)
    }
}

fn not_found() -> WebError {
    WebError::Api(StatusCode::NOT_FOUND, "No such kind.".into())
}

fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Result<&'a str, WebError> {
    params.get(name).map(String::as_str).ok_or_else(not_found)
}

pub struct RowAction {
    pub label: &'static str,
    pub url: String,
}

pub struct Row {
    pub id: String,
    pub label: String,
    pub href: Option<String>,
    pub status: String,
    pub detail: String,
    pub problem: Option<String>,
    pub can_edit: bool,
    pub can_delete: bool,
    pub actions: Vec<RowAction>,
}

pub struct Section {
    pub title: &'static str,
    pub path: &'static str,
    pub one: &'static str,
    /// The dashboard page of the place (`/servers/{id}`), which the forms hang from.
    pub base: String,
    pub rows: Vec<Row>,
    pub can_create: bool,
    /// The delete button asks for the item's name again.
    pub confirm_delete: bool,
    /// Whether any row has a button (for the table's last column).
    pub has_buttons: bool,
}

/// Each kind's items at `place`; a kind the session may not read is left out. `organization`
/// is the place's organization (none for the organization-wide integrations, whose items each
/// carry theirs); the user's role there decides which buttons show.
pub async fn sections(
    session: &Session,
    me: &Me,
    place: &Place,
    organization: Option<&str>,
) -> Result<Vec<Section>, WebError> {
    let mut sections = vec![];
    for kind in place.kinds {
        let reply = session.api.get(&format!("{}?per_page=100", place.list_api(kind))).await?;
        if reply.status == StatusCode::FORBIDDEN {
            continue;
        }
        let (items, _) = reply.page::<Value>()?;
        let rows: Vec<Row> = items.iter().map(|item| row(me, place, kind, item, organization)).collect();
        let can_create = !kind.fields.is_empty()
            && match organization {
                Some(org) => me.may(org, &format!("{}:create", kind.resource)),
                None => me.organizations.iter().any(|o| me.may(&o.id, &format!("{}:create", kind.resource))),
            };
        sections.push(Section {
            title: kind.title,
            path: kind.path,
            one: kind.one,
            base: place.page.clone(),
            has_buttons: rows.iter().any(|r| r.can_edit || r.can_delete || !r.actions.is_empty()),
            rows,
            can_create,
            confirm_delete: kind.removal == Removal::Confirmed,
        });
    }
    Ok(sections)
}

fn row(me: &Me, place: &Place, kind: &Kind, item: &Value, organization: Option<&str>) -> Row {
    let id = field(item, "id");
    let own = field(item, "organization_id");
    let org = organization.unwrap_or(&own);
    let may = |ability: &str| me.may(org, ability);
    // Webhook deliveries have an outcome rather than a status.
    let status = Some(field(item, "status")).filter(|s| !s.is_empty()).unwrap_or_else(|| field(item, "outcome"));
    let reason = field(item, "status_reason");
    let actions = kind
        .actions
        .iter()
        .filter(|a| may(a.ability) && (a.applies)(item))
        .map(|a| RowAction { label: a.label, url: format!("{}/do/{}", place.item_page(kind, &id), a.path) })
        .collect();
    Row {
        label: (kind.label)(item),
        href: kind.opens.then(|| format!("{}/{}/{id}", place.page, kind.path)),
        problem: (!reason.is_empty() && status == "failed").then_some(reason),
        status,
        detail: (kind.detail)(item),
        can_edit: kind.editable && may(&format!("{}:update", kind.resource)),
        can_delete: kind.removal != Removal::Not && may(&format!("{}:delete", kind.resource)),
        actions,
        id,
    }
}

/// A field as the form shows it.
pub struct FormField {
    pub field: &'static Field,
    /// `text`, `password`, `textarea`, `checkbox` or `select`.
    pub widget: &'static str,
    pub value: String,
    pub checked: bool,
    /// (value, label, selected)
    pub options: Vec<(String, String, bool)>,
    pub error: String,
}

#[derive(Template)]
#[template(path = "item_form.html")]
struct FormPage {
    layout: Layout,
    back: String,
    action: String,
    submit: &'static str,
    fields: Vec<FormField>,
    other_errors: Vec<String>,
}

/// What a form is for: a new item, or changing the one with this id.
#[derive(Clone, Copy)]
enum Purpose<'a> {
    Add,
    Edit(&'a str),
}

impl Purpose<'_> {
    /// Whether the field can be changed on this form (a field fixed once created is carried
    /// unchanged on an edit form, since the API's `PUT` takes the whole item).
    fn changes(&self, field: &Field) -> bool {
        matches!(self, Purpose::Add) || !field.create_only
    }
}

/// The form with `values` in it (what was typed, or the item's current values) and `errors`
/// next to their fields.
async fn form_page(
    session: &Session,
    me: &Me,
    place: &Place,
    kind: &'static Kind,
    purpose: Purpose<'_>,
    values: &[(String, String)],
    errors: FieldErrors,
) -> Result<Html<String>, WebError> {
    let value_of = |name: &str| values.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut fields = vec![];
    for field in kind.fields {
        let value = if field.secret { String::new() } else { value_of(field.name).unwrap_or_default() };
        let checked = match field.input {
            Input::Flag(default) if values.is_empty() => default,
            Input::Flag(_) => value_of(field.name).is_some_and(|v| v == "true" || v == "on"),
            _ => false,
        };
        let options = match &field.input {
            Input::Choice(choices) => options(session, me, place, kind, choices, field.required, &value).await?,
            _ => vec![],
        };
        let widget = match (&field.input, field.secret) {
            _ if !purpose.changes(field) => "fixed",
            (Input::Multiline, _) => "textarea",
            (Input::Flag(_), _) => "checkbox",
            (Input::Choice(_), _) => "select",
            (_, true) => "password",
            _ => "text",
        };
        fields.push(FormField { field, widget, value, checked, options, error: errors.of(field.name) });
    }
    let shown: Vec<&str> = fields.iter().map(|f| f.field.name).collect();
    let (title, action, submit) = match purpose {
        Purpose::Add => (format!("Add {}", kind.one), format!("{}/items/{}", place.page, kind.path), "Add"),
        Purpose::Edit(id) => (format!("Change {}", kind.one), place.item_page(kind, id), "Save"),
    };
    render(&FormPage {
        layout: Layout::new(title, place.section, me, session),
        back: place.page.clone(),
        action,
        submit,
        other_errors: errors.other(&shown.join(",")),
        fields,
    })
}

/// A choice's options, the current value selected; an optional choice starts with "default".
async fn options(
    session: &Session,
    me: &Me,
    place: &Place,
    kind: &Kind,
    choices: &Choices,
    required: bool,
    current: &str,
) -> Result<Vec<(String, String, bool)>, WebError> {
    let mut pairs: Vec<(String, String)> = match choices {
        Choices::Fixed(pairs) => pairs.iter().map(|(v, l)| (v.to_string(), l.to_string())).collect(),
        Choices::Organizations => me
            .organizations
            .iter()
            .filter(|o| me.may(&o.id, &format!("{}:create", kind.resource)))
            .map(|o| (o.id.clone(), o.name.clone()))
            .collect(),
        Choices::Api(path, label) => {
            let path = path.replace("{server}", place.server.as_deref().unwrap_or_default());
            let reply = session.api.get(&format!("{path}?per_page=100")).await?;
            if reply.is_success() {
                let (items, _) = reply.page::<Value>()?;
                items.iter().map(|i| (field(i, "id"), field(i, label))).collect()
            } else {
                vec![]
            }
        }
    };
    if !required {
        pairs.insert(0, (String::new(), "Default".into()));
    }
    Ok(pairs.into_iter().map(|(v, l)| (v.clone(), l, v == current)).collect())
}

/// The API's JSON for a submitted form: text as given (trimmed; empty optional fields left
/// out, so the API's default applies, or on an edit, for a secret, the stored one stays),
/// numbers parsed, lists split, checkboxes as `Input::Flag` says; or the fields that are not
/// numbers.
fn body_of(kind: &Kind, values: &[(String, String)]) -> Result<Value, FieldErrors> {
    let mut body = serde_json::Map::new();
    let mut errors = vec![];
    for field in kind.fields {
        let value = values.iter().find(|(k, _)| k == field.name).map(|(_, v)| v.trim()).unwrap_or_default();
        if let Input::Flag(default) = field.input {
            // Sent when it says something: checked, or unchecked where the API's default is
            // true (a flag that does not apply, like S3's path style on a local storage, is
            // refused even when false).
            let checked = value == "true" || value == "on";
            if checked || default {
                body.insert(field.name.into(), Value::Bool(checked));
            }
            continue;
        }
        if value.is_empty() && !field.required {
            continue;
        }
        let json = match field.input {
            Input::Number => match value.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => {
                    errors.push((field.name.to_string(), vec![format!("{} must be a whole number.", field.label)]));
                    continue;
                }
            },
            Input::List => {
                let items = value.split([',', '\n']).map(str::trim).filter(|v| !v.is_empty());
                Value::Array(items.map(|v| Value::String(v.into())).collect())
            }
            _ => Value::String(value.to_string()),
        };
        body.insert(field.name.into(), json);
    }
    if errors.is_empty() { Ok(Value::Object(body)) } else { Err(FieldErrors(errors)) }
}

/// An item's current values as form values (secrets left out).
fn values_of(kind: &Kind, item: &Value) -> Vec<(String, String)> {
    kind.fields
        .iter()
        .filter(|f| !f.secret)
        .map(|f| {
            let value = match (&f.input, item.get(f.name)) {
                (Input::Flag(_), Some(Value::Bool(b))) => b.to_string(),
                _ => field(item, f.name),
            };
            (f.name.to_string(), value)
        })
        .collect()
}

/// After a change: the page showing the secret the API answered once, or the place's page.
fn after(
    state: &AppState,
    web: &Web,
    session: &Session,
    place: &Place,
    kind: &Kind,
    label: String,
    reply: &Reply,
) -> Response {
    let data = reply.body.get("data").unwrap_or(&Value::Null);
    if let Some((name, what)) = kind.shown_once
        && let Some(value) = data.get(name).and_then(Value::as_str)
    {
        let secret = Secret {
            what: format!("{what} of {label}"),
            value: value.into(),
            back: place.page.clone(),
            section: place.section.into(),
        };
        return super::once::redirect(state, web, session, "/shown-once", &secret);
    }
    Redirect::to(&place.page).into_response()
}

async fn refused_or(
    session: &Session,
    place: &Place,
    kind: &'static Kind,
    purpose: Purpose<'_>,
    values: &[(String, String)],
    reply: Reply,
) -> Result<Result<Reply, Response>, WebError> {
    if reply.status == StatusCode::UNPROCESSABLE_ENTITY {
        let me = Me::load(session).await?;
        let errors = FieldErrors(reply.field_errors());
        return Ok(Err(form_page(session, &me, place, kind, purpose, values, errors).await?.into_response()));
    }
    Ok(Ok(reply.success()?))
}

pub async fn new_form(session: Session, Path(params): Path<HashMap<String, String>>) -> Result<Html<String>, WebError> {
    let place = Place::of(&params);
    let kind = place.kind_with_form(param(&params, "kind")?)?;
    let me = Me::load(&session).await?;
    form_page(&session, &me, &place, kind, Purpose::Add, &[], FieldErrors::default()).await
}

pub async fn create(
    State(state): State<AppState>,
    axum::Extension(web): axum::Extension<Web>,
    session: Session,
    Path(params): Path<HashMap<String, String>>,
    Form(values): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let place = Place::of(&params);
    let kind = place.kind_with_form(param(&params, "kind")?)?;
    let body = match body_of(kind, &values) {
        Ok(body) => body,
        Err(errors) => {
            let me = Me::load(&session).await?;
            return Ok(form_page(&session, &me, &place, kind, Purpose::Add, &values, errors).await?.into_response());
        }
    };
    let reply = session.api.post(&place.list_api(kind), body).await?;
    match refused_or(&session, &place, kind, Purpose::Add, &values, reply).await? {
        Ok(reply) => {
            let label = reply.body.get("data").map(kind.label).unwrap_or_default();
            Ok(after(&state, &web, &session, &place, kind, label, &reply))
        }
        Err(page) => Ok(page),
    }
}

pub async fn edit_form(
    session: Session,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Html<String>, WebError> {
    let place = Place::of(&params);
    let kind = place.kind_with_form(param(&params, "kind")?)?;
    if !kind.editable {
        return Err(not_found());
    }
    let id = param(&params, "item")?;
    let mut item: Value = session.api.get(&place.item_api(kind, id)).await?.data()?;
    (kind.tidy)(&mut item);
    let me = Me::load(&session).await?;
    form_page(&session, &me, &place, kind, Purpose::Edit(id), &values_of(kind, &item), FieldErrors::default()).await
}

pub async fn update(
    State(state): State<AppState>,
    axum::Extension(web): axum::Extension<Web>,
    session: Session,
    Path(params): Path<HashMap<String, String>>,
    Form(values): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let place = Place::of(&params);
    let kind = place.kind_with_form(param(&params, "kind")?)?;
    if !kind.editable {
        return Err(not_found());
    }
    let id = param(&params, "item")?;
    let purpose = Purpose::Edit(id);
    let mut body = match body_of(kind, &values) {
        Ok(body) => body,
        Err(errors) => {
            let me = Me::load(&session).await?;
            return Ok(form_page(&session, &me, &place, kind, purpose, &values, errors).await?.into_response());
        }
    };
    if !kind.kept.is_empty() {
        let current: Value = session.api.get(&place.item_api(kind, id)).await?.data()?;
        for name in kind.kept {
            if let Some(value) = current.get(*name).filter(|v| !v.is_null()) {
                body[*name] = value.clone();
            }
        }
    }
    let reply = session.api.send(Method::PUT, &place.item_api(kind, id), Some(body)).await?;
    match refused_or(&session, &place, kind, purpose, &values, reply).await? {
        Ok(reply) => {
            let label = reply.body.get("data").map(kind.label).unwrap_or_default();
            Ok(after(&state, &web, &session, &place, kind, label, &reply))
        }
        Err(page) => Ok(page),
    }
}

pub async fn delete(
    session: Session,
    Path(params): Path<HashMap<String, String>>,
    Form(values): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let place = Place::of(&params);
    let kind = place.kind(param(&params, "kind")?)?;
    let body = match kind.removal {
        Removal::Not => return Err(not_found()),
        Removal::Plain => None,
        Removal::Confirmed => {
            let typed = values.iter().find(|(k, _)| k == "confirm").map(|(_, v)| v.trim()).unwrap_or_default();
            Some(serde_json::json!({ "confirm": typed }))
        }
    };
    let path = place.item_api(kind, param(&params, "item")?);
    session.api.send(Method::DELETE, &path, body).await?.success()?;
    Ok(Redirect::to(&place.page).into_response())
}

#[derive(Template)]
#[template(path = "item_result.html")]
struct ResultPage {
    layout: Layout,
    back: String,
    ok: bool,
    facts: Vec<(String, String)>,
}

/// Runs one of a kind's actions on an item: its secret shown once, its operation's live log,
/// or what the API answered (a test's outcome).
pub async fn act(
    State(state): State<AppState>,
    axum::Extension(web): axum::Extension<Web>,
    session: Session,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let place = Place::of(&params);
    let kind = place.kind(param(&params, "kind")?)?;
    let name = param(&params, "action")?;
    let action = kind.actions.iter().find(|a| a.path == name).ok_or_else(not_found)?;
    let item_path = place.item_api(kind, param(&params, "item")?);
    let item: Value = session.api.get(&item_path).await?.data()?;
    if !(action.applies)(&item) {
        return Err(not_found());
    }
    let path = format!("{item_path}/{}", action.path);
    let reply = session.api.post(&path, (action.body)(&item)).await?.success()?;
    let data = reply.body.get("data").cloned().unwrap_or(Value::Null);
    if kind.shown_once.is_some_and(|(field, _)| data.get(field).is_some_and(|v| v.is_string())) {
        return Ok(after(&state, &web, &session, &place, kind, (kind.label)(&data), &reply));
    }
    if let Some(operation) = data.get("operation_id").and_then(Value::as_str) {
        let server = place.server.as_deref().map(|s| format!("?server={s}")).unwrap_or_default();
        return Ok(Redirect::to(&format!("/operations/{}{server}", encode(operation))).into_response());
    }
    // A test: `{ok, steps}` (storages) or `{status, error}` (channels).
    let failed = data.get("ok") == Some(&Value::Bool(false)) || data.get("error").is_some_and(|e| !e.is_null());
    let me = Me::load(&session).await?;
    let page = ResultPage {
        layout: Layout::new(format!("{}: {}", action.label, (kind.label)(&item)), place.section, &me, &session),
        back: place.page.clone(),
        ok: !failed,
        facts: facts(&data),
    };
    Ok(render(&page)?.into_response())
}

/// The fields of a test's answer that say how it went, as label and text; a list of steps
/// becomes one line each. Only these: an answer is shown in full nowhere, so that a field
/// added to it later cannot put a secret on a page.
const OUTCOME_FIELDS: &[&str] = &["ok", "status", "error", "response", "duration_ms", "steps"];

fn facts(data: &Value) -> Vec<(String, String)> {
    let Some(object) = data.as_object() else { return vec![] };
    let mut facts = vec![];
    for (key, value) in object.iter().filter(|(k, _)| OUTCOME_FIELDS.contains(&k.as_str())) {
        match value {
            Value::Array(steps) => {
                for step in steps {
                    // A step is `{name or step, outcome, error}`: its name first, then the rest.
                    let line = match step.as_object() {
                        Some(o) => {
                            let mut parts: Vec<(bool, String)> = o
                                .iter()
                                .filter(|(_, v)| !v.is_null())
                                .map(|(k, v)| {
                                    let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
                                    (k != "name" && k != "step", text)
                                })
                                .collect();
                            parts.sort_by_key(|(later, _)| *later);
                            parts.into_iter().map(|(_, text)| text).collect::<Vec<_>>().join(": ")
                        }
                        None => step.to_string(),
                    };
                    facts.push((key.trim_end_matches('s').to_string(), line));
                }
            }
            Value::Null => {}
            Value::String(s) => facts.push((key.clone(), s.clone())),
            other => facts.push((key.clone(), other.to_string())),
        }
    }
    facts
}

#[derive(Template)]
#[template(path = "place.html")]
struct PlacePage {
    layout: Layout,
    back: Option<(String, String)>,
    facts: Vec<(&'static str, String)>,
    problem: Option<String>,
    sections: Vec<Section>,
}

/// A database's page: what it is, its users, backup schedules and backups.
pub async fn database(
    session: Session,
    Path((server, database)): Path<(String, String)>,
) -> Result<Html<String>, WebError> {
    let me = Me::load(&session).await?;
    let place = Place::database(&server, &database);
    let db: Value = session.api.get(&place.api).await?.data()?;
    let owner: crate::model::Server = session.api.get(&format!("/api/v1/servers/{server}")).await?.data()?;
    let sections = sections(&session, &me, &place, Some(&owner.organization_id)).await?;
    let facts = vec![
        ("Status", field(&db, "status")),
        ("Engine", field(&db, "engine")),
        ("Character set", field(&db, "charset")),
        ("Collation", Some(field(&db, "collation")).filter(|c| !c.is_empty()).unwrap_or_else(|| "the default".into())),
    ];
    let problem = Some(field(&db, "status_reason")).filter(|r| !r.is_empty() && field(&db, "status") == "failed");
    render(&PlacePage {
        layout: Layout::new(format!("Database {}", field(&db, "name")), "servers", &me, &session),
        back: Some((format!("/servers/{server}"), format!("Server {}", owner.name))),
        facts,
        problem,
        sections,
    })
}

/// The organization's integrations: notification channels, backup storages, git providers.
pub async fn integrations(session: Session) -> Result<Html<String>, WebError> {
    let me = Me::load(&session).await?;
    let sections = sections(&session, &me, &Place::integrations(), None).await?;
    render(&PlacePage {
        layout: Layout::new("Integrations", "integrations", &me, &session),
        back: None,
        facts: vec![],
        problem: None,
        sections,
    })
}
