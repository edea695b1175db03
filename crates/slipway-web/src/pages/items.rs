//! What runs on a server or a site besides its sites and deployments (SSH keys, firewall rules,
//! daemons, cron jobs, databases; workers, redirects, certificates, backup schedules, webhook
//! deliveries), shown as one table per kind with each item's state. Adding, changing and
//! removing them is in the API and the CLI; the dashboard shows where each stands.

use askama::Template;
use axum::extract::{Form, Path};
use axum::http::Method;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::Value;

use crate::error::WebError;
use crate::session::Session;
use crate::view::{FieldErrors, Layout, Me, render};

/// One kind of item: where the API lists it (under the server's or the site's API path), how a
/// row names it, and the form that adds one (none: added with the API or the CLI only).
pub struct Kind {
    pub title: &'static str,
    pub path: &'static str,
    pub label: fn(&Value) -> String,
    pub detail: fn(&Value) -> String,
    /// The ability resource (`daemon`) whose `create` and `delete` the buttons need.
    pub resource: &'static str,
    /// The fields of its creation form, as the API names them.
    pub fields: &'static [Field],
    /// What one is called in a sentence ("a daemon").
    pub one: &'static str,
}

/// A form field of an item kind.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub number: bool,
    pub required: bool,
    pub hint: &'static str,
}

const fn text(name: &'static str, label: &'static str, required: bool, hint: &'static str) -> Field {
    Field { name, label, number: false, required, hint }
}

const fn number(name: &'static str, label: &'static str, hint: &'static str) -> Field {
    Field { name, label, number: true, required: false, hint }
}

pub struct Row {
    pub id: String,
    pub label: String,
    pub status: String,
    pub detail: String,
    pub problem: Option<String>,
}

pub struct Section {
    pub title: &'static str,
    pub path: &'static str,
    pub one: &'static str,
    pub rows: Vec<Row>,
    pub can_create: bool,
    pub can_delete: bool,
}

fn field(v: &Value, name: &str) -> String {
    match v.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn name(v: &Value) -> String {
    field(v, "name")
}

pub const SERVER_KINDS: &[Kind] = &[
    Kind {
        title: "SSH keys",
        path: "ssh-keys",
        label: name,
        detail: |v| field(v, "fingerprint"),
        resource: "ssh-key",
        one: "an SSH key",
        fields: &[
            text("name", "Name", true, "whose key it is"),
            text("public_key", "Public key", true, "one line: ssh-ed25519 AAAA… or ssh-rsa AAAA…"),
        ],
    },
    Kind {
        title: "Network rules",
        path: "network-rules",
        label: name,
        detail: |v| {
            format!("{} {}/{} from {}", field(v, "action"), field(v, "port"), field(v, "protocol"), field(v, "from"))
        },
        resource: "network-rule",
        one: "a network rule",
        fields: &[
            text("name", "Name", true, ""),
            number("port", "Port", "1 to 65535"),
            text("from", "From", false, "an address or CIDR range; empty for anywhere"),
        ],
    },
    Kind {
        title: "Daemons",
        path: "daemons",
        label: name,
        detail: |v| field(v, "command"),
        resource: "daemon",
        one: "a daemon",
        fields: &[
            text("name", "Name", false, "default: from the command"),
            text("command", "Command", true, "runs under supervisor and is restarted when it stops"),
            text("directory", "Directory", false, "absolute path; default the user's home"),
            text("user", "User", false, "default the deploy user"),
            number("processes", "Processes", "default 1"),
        ],
    },
    Kind {
        title: "Cron jobs",
        path: "crontabs",
        label: name,
        detail: |v| format!("{} · {}", field(v, "schedule"), field(v, "command")),
        resource: "crontab",
        one: "a cron job",
        fields: &[
            text("name", "Name", false, ""),
            text("command", "Command", true, ""),
            text("frequency", "Frequency", true, "minutely, hourly, nightly, weekly, monthly, or a cron expression"),
            text("user", "User", false, "default the deploy user"),
        ],
    },
    Kind {
        title: "Databases",
        path: "databases",
        label: name,
        detail: |v| field(v, "engine"),
        resource: "database",
        one: "a database",
        fields: &[],
    },
];

pub const SITE_KINDS: &[Kind] = &[
    Kind {
        title: "Queue workers",
        path: "queues",
        label: |v| format!("{} ({})", field(v, "queue"), field(v, "connection")),
        detail: |v| format!("{} processes", field(v, "processes")),
        resource: "queue-worker",
        one: "a queue worker",
        fields: &[
            text("connection", "Connection", false, "default the app's"),
            text("queue", "Queues", false, "comma-separated, in priority order: high,default"),
            number("processes", "Processes", "default 1"),
            text("command", "Command", false, "for non-Laravel sites: what runs the worker"),
        ],
    },
    Kind {
        title: "Redirects",
        path: "redirects",
        label: |v| format!("{} → {}", field(v, "from"), field(v, "to")),
        detail: |v| field(v, "type"),
        resource: "redirect",
        one: "a redirect",
        fields: &[
            text("from", "From", true, "a path on this site: /old or /blog/*"),
            text("to", "To", true, "a path or a URL: /new or https://blog.example.com/*"),
            number("type", "Status", "301 (default) or 302"),
        ],
    },
    Kind {
        title: "Certificates",
        path: "certificates",
        label: |v| {
            let domains = v.get("domains").and_then(Value::as_array).cloned().unwrap_or_default();
            domains.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
        },
        detail: |v| format!("{}, expires {}", field(v, "type"), field(v, "not_after")),
        resource: "certificate",
        one: "a certificate",
        fields: &[],
    },
    Kind {
        title: "Backup schedules",
        path: "backup-schedules",
        label: |v| format!("{} {}", field(v, "frequency"), field(v, "type")),
        detail: |v| {
            let stale = if v.get("stale").and_then(Value::as_bool) == Some(true) { "stale; " } else { "" };
            format!("{stale}last good backup {}", field(v, "last_good_backup_at"))
        },
        resource: "backup",
        one: "a backup schedule",
        fields: &[],
    },
    Kind {
        title: "Webhook deliveries",
        path: "webhooks",
        label: |v| format!("{} {}", field(v, "event"), field(v, "branch")),
        detail: |v| format!("{} {}", field(v, "received_at"), field(v, "reason")),
        resource: "site",
        one: "a webhook delivery",
        fields: &[],
    },
];

/// Each kind's items under `base` (an API path); a kind the session may not read is left out.
/// `may` says whether the user's role allows an ability (for the add and delete buttons).
pub async fn sections(
    session: &Session,
    base: &str,
    kinds: &[Kind],
    may: impl Fn(&str) -> bool,
) -> Result<Vec<Section>, WebError> {
    let mut sections = vec![];
    for kind in kinds {
        let reply = session.api.get(&format!("{base}/{}?per_page=100", kind.path)).await?;
        if reply.status.as_u16() == 403 {
            continue;
        }
        let reply = reply.success()?;
        let items = reply.body.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
        let rows = items
            .iter()
            .map(|item| {
                // Webhook deliveries have an outcome rather than a status.
                let status =
                    Some(field(item, "status")).filter(|s| !s.is_empty()).unwrap_or_else(|| field(item, "outcome"));
                let reason = field(item, "status_reason");
                Row {
                    id: field(item, "id"),
                    label: (kind.label)(item),
                    problem: (!reason.is_empty() && status == "failed").then_some(reason),
                    status,
                    detail: (kind.detail)(item),
                }
            })
            .collect();
        let editable = !kind.fields.is_empty();
        sections.push(Section {
            title: kind.title,
            path: kind.path,
            one: kind.one,
            rows,
            can_create: editable && may(&format!("{}:create", kind.resource)),
            can_delete: editable && may(&format!("{}:delete", kind.resource)),
        });
    }
    Ok(sections)
}

/// Where items live: on a server, or on one of its sites.
struct Place {
    api: String,
    page: String,
    kinds: &'static [Kind],
}

impl Place {
    fn server(server: &str) -> Place {
        Place { api: format!("/api/v1/servers/{server}"), page: format!("/servers/{server}"), kinds: SERVER_KINDS }
    }

    fn site(server: &str, site: &str) -> Place {
        Place {
            api: format!("/api/v1/servers/{server}/sites/{site}"),
            page: format!("/servers/{server}/sites/{site}"),
            kinds: SITE_KINDS,
        }
    }

    /// The kind named in the path, if it has a form.
    fn kind(&self, path: &str) -> Result<&'static Kind, WebError> {
        self.kinds
            .iter()
            .find(|k| k.path == path && !k.fields.is_empty())
            .ok_or_else(|| WebError::Api(axum::http::StatusCode::NOT_FOUND, "No such kind.".into()))
    }
}

pub struct FormField {
    pub field: &'static Field,
    pub value: String,
    pub error: String,
}

#[derive(Template)]
#[template(path = "item_new.html")]
struct NewItemPage {
    layout: Layout,
    back: String,
    action: String,
    fields: Vec<FormField>,
    other_errors: Vec<String>,
}

async fn form_page(
    session: &Session,
    place: &Place,
    kind: &'static Kind,
    values: &[(String, String)],
    errors: FieldErrors,
) -> Result<Html<String>, WebError> {
    let me = Me::load(session).await?;
    let shown: Vec<&str> = kind.fields.iter().map(|f| f.name).collect();
    let fields = kind
        .fields
        .iter()
        .map(|field| FormField {
            field,
            value: values.iter().find(|(k, _)| k == field.name).map(|(_, v)| v.clone()).unwrap_or_default(),
            error: errors.of(field.name),
        })
        .collect();
    let layout = Layout::new(format!("Add {}", kind.one), "servers", &me, session);
    render(&NewItemPage {
        layout,
        back: place.page.clone(),
        action: format!("{}/items/{}", place.page, kind.path),
        fields,
        other_errors: errors.other(&shown.join(",")),
    })
}

/// The API's JSON for a submitted form: text as given (trimmed; empty optional fields left
/// out), numbers parsed, or the fields that are not numbers.
fn body_of(kind: &Kind, values: &[(String, String)]) -> Result<Value, FieldErrors> {
    let mut body = serde_json::Map::new();
    let mut errors = vec![];
    for field in kind.fields {
        let value = values.iter().find(|(k, _)| k == field.name).map(|(_, v)| v.trim()).unwrap_or_default();
        if value.is_empty() && !field.required {
            continue;
        }
        if field.number {
            match value.parse::<i64>() {
                Ok(n) => {
                    body.insert(field.name.into(), Value::from(n));
                }
                Err(_) => {
                    errors.push((field.name.to_string(), vec![format!("{} must be a whole number.", field.label)]))
                }
            }
        } else {
            body.insert(field.name.into(), Value::String(value.to_string()));
        }
    }
    if errors.is_empty() { Ok(Value::Object(body)) } else { Err(FieldErrors(errors)) }
}

async fn new_form(session: Session, place: Place, kind: &str) -> Result<Html<String>, WebError> {
    let kind = place.kind(kind)?;
    form_page(&session, &place, kind, &[], FieldErrors::default()).await
}

async fn create(
    session: Session,
    place: Place,
    kind: &str,
    values: Vec<(String, String)>,
) -> Result<Response, WebError> {
    let kind = place.kind(kind)?;
    let body = match body_of(kind, &values) {
        Ok(body) => body,
        Err(errors) => return Ok(form_page(&session, &place, kind, &values, errors).await?.into_response()),
    };
    let reply = session.api.post(&format!("{}/{}", place.api, kind.path), body).await?;
    if reply.status.as_u16() == 422 {
        let errors = FieldErrors(reply.field_errors());
        return Ok(form_page(&session, &place, kind, &values, errors).await?.into_response());
    }
    reply.success()?;
    Ok(Redirect::to(&place.page).into_response())
}

async fn delete(session: Session, place: Place, kind: &str, item: &str) -> Result<Response, WebError> {
    let kind = place.kind(kind)?;
    let path = format!("{}/{}/{}", place.api, kind.path, crate::api::encode(item));
    session.api.send(Method::DELETE, &path, None).await?.success()?;
    Ok(Redirect::to(&place.page).into_response())
}

pub async fn server_new(
    session: Session,
    Path((server, kind)): Path<(String, String)>,
) -> Result<Html<String>, WebError> {
    new_form(session, Place::server(&server), &kind).await
}

pub async fn server_create(
    session: Session,
    Path((server, kind)): Path<(String, String)>,
    Form(values): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    create(session, Place::server(&server), &kind, values).await
}

pub async fn server_delete(
    session: Session,
    Path((server, kind, item)): Path<(String, String, String)>,
) -> Result<Response, WebError> {
    delete(session, Place::server(&server), &kind, &item).await
}

pub async fn site_new(
    session: Session,
    Path((server, site, kind)): Path<(String, String, String)>,
) -> Result<Html<String>, WebError> {
    new_form(session, Place::site(&server, &site), &kind).await
}

pub async fn site_create(
    session: Session,
    Path((server, site, kind)): Path<(String, String, String)>,
    Form(values): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    create(session, Place::site(&server, &site), &kind, values).await
}

pub async fn site_delete(
    session: Session,
    Path((server, site, kind, item)): Path<(String, String, String, String)>,
) -> Result<Response, WebError> {
    delete(session, Place::site(&server, &site), &kind, &item).await
}
