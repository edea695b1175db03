//! What runs on a server or a site besides its sites and deployments (SSH keys, firewall rules,
//! daemons, cron jobs, databases; workers, redirects, certificates, backup schedules, webhook
//! deliveries), shown as one table per kind with each item's state. Adding, changing and
//! removing them is in the API and the CLI; the dashboard shows where each stands.

use serde_json::Value;

use crate::error::WebError;
use crate::session::Session;

/// One kind of item: where the API lists it (under the server's or the site's API path) and
/// how a row names it.
pub struct Kind {
    pub title: &'static str,
    pub path: &'static str,
    pub label: fn(&Value) -> String,
    pub detail: fn(&Value) -> String,
}

pub struct Row {
    pub label: String,
    pub status: String,
    pub detail: String,
    pub problem: Option<String>,
}

pub struct Section {
    pub title: &'static str,
    pub rows: Vec<Row>,
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
    Kind { title: "SSH keys", path: "ssh-keys", label: name, detail: |v| field(v, "fingerprint") },
    Kind {
        title: "Network rules",
        path: "network-rules",
        label: name,
        detail: |v| {
            format!("{} {}/{} from {}", field(v, "action"), field(v, "port"), field(v, "protocol"), field(v, "from"))
        },
    },
    Kind { title: "Daemons", path: "daemons", label: name, detail: |v| field(v, "command") },
    Kind {
        title: "Cron jobs",
        path: "crontabs",
        label: name,
        detail: |v| format!("{} · {}", field(v, "schedule"), field(v, "command")),
    },
    Kind { title: "Databases", path: "databases", label: name, detail: |v| field(v, "engine") },
];

pub const SITE_KINDS: &[Kind] = &[
    Kind {
        title: "Queue workers",
        path: "queues",
        label: |v| format!("{} ({})", field(v, "queue"), field(v, "connection")),
        detail: |v| format!("{} processes", field(v, "processes")),
    },
    Kind {
        title: "Redirects",
        path: "redirects",
        label: |v| format!("{} → {}", field(v, "from"), field(v, "to")),
        detail: |v| field(v, "type"),
    },
    Kind {
        title: "Certificates",
        path: "certificates",
        label: |v| {
            let domains = v.get("domains").and_then(Value::as_array).cloned().unwrap_or_default();
            domains.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
        },
        detail: |v| format!("{}, expires {}", field(v, "type"), field(v, "not_after")),
    },
    Kind {
        title: "Backup schedules",
        path: "backup-schedules",
        label: |v| format!("{} {}", field(v, "frequency"), field(v, "type")),
        detail: |v| {
            let stale = if v.get("stale").and_then(Value::as_bool) == Some(true) { "stale; " } else { "" };
            format!("{stale}last good backup {}", field(v, "last_good_backup_at"))
        },
    },
    Kind {
        title: "Webhook deliveries",
        path: "webhooks",
        label: |v| format!("{} {}", field(v, "event"), field(v, "branch")),
        detail: |v| format!("{} {}", field(v, "received_at"), field(v, "reason")),
    },
];

/// Each kind's items under `base` (an API path); a kind the session may not read is left out.
pub async fn sections(session: &Session, base: &str, kinds: &[Kind]) -> Result<Vec<Section>, WebError> {
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
                    label: (kind.label)(item),
                    problem: (!reason.is_empty() && status == "failed").then_some(reason),
                    status,
                    detail: (kind.detail)(item),
                }
            })
            .collect();
        sections.push(Section { title: kind.title, rows });
    }
    Ok(sections)
}
