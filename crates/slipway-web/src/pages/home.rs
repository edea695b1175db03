//! The home page: what needs attention now, each item linking to where it can be fixed.

use askama::Template;
use axum::response::Html;

use crate::error::WebError;
use crate::model::{Event, Operation, OperationView, Server, ServerView, Site, SiteView};
use crate::session::Session;
use crate::view::{Layout, Me, render, when};

/// Failure events older than this are history, not news.
const RECENT_DAYS: i64 = 7;

pub struct Item {
    pub what: String,
    pub link: String,
    pub problem: String,
}

pub struct Recent {
    pub when: String,
    pub kind: String,
    pub summary: String,
    pub link: Option<String>,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    items: Vec<Item>,
    recent: Vec<Recent>,
    servers: usize,
    can_add_server: bool,
}

pub async fn show(session: Session) -> Result<Html<String>, WebError> {
    let me = Me::load(&session).await?;
    let (servers, _) = session.api.get("/api/v1/servers?per_page=100").await?.page::<Server>()?;
    let mut items = vec![];
    // Servers that are failed or unreachable, or whose host key changed.
    for server in &servers {
        if let Some(problem) = server.problem() {
            items.push(Item {
                what: format!("Server {}", server.name),
                link: format!("/servers/{}", server.id),
                problem,
            });
        }
    }
    // Operations that look stuck: a server's newest few are where one would be.
    let now = slipway_core::time::now();
    for server in &servers {
        let reply = session.api.get(&format!("/api/v1/servers/{}/logs?per_page=5", server.id)).await?;
        if !reply.is_success() {
            continue;
        }
        let operations = reply.page::<Operation>()?.0;
        for operation in &operations {
            if let Some(problem) = operation.stuck_among(&operations, now) {
                items.push(Item {
                    what: format!("Operation {} on {}", operation.kind, server.name),
                    link: format!("/operations/{}?server={}", operation.id, server.id),
                    problem,
                });
            }
        }
    }
    // Sites whose installation or last deployment failed (the API filters them).
    for filter in ["status=failed", "deployment_status=failed"] {
        let (sites, _) = session.api.get(&format!("/api/v1/sites?{filter}&per_page=100")).await?.page::<Site>()?;
        for site in sites {
            if let Some(problem) = site.problem() {
                items.push(Item { what: format!("Site {}", site.domain), link: site.url(), problem });
            }
        }
    }
    // Recent failures of every kind (deployments, operations, certificates, backups, cron…).
    let since = now - chrono::Duration::days(RECENT_DAYS);
    let events = session.api.get("/api/v1/events?per_page=50").await?;
    let recent = if events.is_success() {
        let (events, _) = events.page::<Event>()?;
        events
            .into_iter()
            .filter(|e| e.is_problem() && e.occurred_at >= since)
            .map(|e| Recent { when: when(&e.occurred_at), link: e.link(), kind: e.kind, summary: e.summary })
            .collect()
    } else {
        vec![]
    };
    let can_add_server = me.organizations.iter().any(|o| me.may(&o.id, "server:create"));
    let page = HomePage {
        layout: Layout::new("Needs attention", "home", &me, &session),
        items,
        recent,
        servers: servers.len(),
        can_add_server,
    };
    render(&page)
}
