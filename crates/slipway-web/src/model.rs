//! What the pages read from the API's JSON answers. Servers, sites, deployments, releases,
//! operations and log lines are the API's own resource types (`slipway-wire`, through
//! `slipway_api::resources`); the `…View` traits add what the pages ask of them. Events and
//! tokens are read here in the parts the pages show.

use chrono::{DateTime, Utc};
use serde::Deserialize;
pub use slipway_api::resources::{
    DeploymentResource as Deployment, LogLine, OperationResource as Operation, ReleaseResource as Release,
    ServerResource as Server, SiteResource as Site,
};

/// Whether an operation's or a deployment's status has not reached its end.
fn unfinished(status: &str) -> bool {
    !slipway_wire::ended(status)
}

pub trait ServerView {
    /// Why this server needs someone, if it does.
    fn problem(&self) -> Option<String>;
}

impl ServerView for Server {
    fn problem(&self) -> Option<String> {
        if let Some(offered) = &self.offered_host_key_fingerprint {
            return Some(format!("presented another host key ({offered}); accept it only if you changed it"));
        }
        match self.status.as_str() {
            "failed" | "unreachable" => {
                Some(format!("{}: {}", self.status, self.status_reason.as_deref().unwrap_or("no reason recorded")))
            }
            _ => None,
        }
    }
}

pub trait SiteView {
    fn problem(&self) -> Option<String>;
    /// The last deployment's status, or that there was none.
    fn deployment(&self) -> &str;
    /// The site's page.
    fn url(&self) -> String;
    /// Whether the site is still being changed on its server (installed or removed).
    fn changing(&self) -> bool;
}

impl SiteView for Site {
    fn problem(&self) -> Option<String> {
        if self.status == "failed" {
            return Some(format!(
                "installation failed: {}",
                self.status_reason.as_deref().unwrap_or("no reason recorded")
            ));
        }
        (self.deployment_status.as_deref() == Some("failed")).then(|| "the last deployment failed".to_string())
    }

    fn deployment(&self) -> &str {
        self.deployment_status.as_deref().unwrap_or("never deployed")
    }

    fn url(&self) -> String {
        format!("/servers/{}/sites/{}", self.server_id, self.id)
    }

    fn changing(&self) -> bool {
        matches!(self.status.as_str(), "installing" | "removing")
    }
}

pub trait DeploymentView {
    fn short_sha(&self) -> &str;
    fn running(&self) -> bool;
    fn took(&self) -> String;
}

impl DeploymentView for Deployment {
    fn short_sha(&self) -> &str {
        self.commit_sha.as_deref().map(|s| &s[..s.len().min(8)]).unwrap_or("")
    }

    fn running(&self) -> bool {
        unfinished(&self.status)
    }

    fn took(&self) -> String {
        self.duration.map(|d| format!("{d:.1} s")).unwrap_or_default()
    }
}

/// An operation still queued this long after it was asked for has no job worker taking it.
const QUEUED_TOO_LONG: i64 = 10;
/// Provisioning, the longest routine operation, takes minutes; an hour is a hang.
const RUNNING_TOO_LONG: i64 = 60;

pub trait OperationView {
    fn running(&self) -> bool;
    /// Why this operation of a server looks stuck at `now`, if it does. `others` are that
    /// server's other recent operations: one queued behind another that is running (and not
    /// stuck itself) is waiting its turn, since a server runs one operation at a time.
    fn stuck_among(&self, others: &[Operation], now: DateTime<Utc>) -> Option<String>;
    /// Why this operation looks stuck at `now`, if it does.
    fn stuck(&self, now: DateTime<Utc>) -> Option<String>;
}

impl OperationView for Operation {
    fn running(&self) -> bool {
        unfinished(&self.status)
    }

    fn stuck_among(&self, others: &[Operation], now: DateTime<Utc>) -> Option<String> {
        let busy = others.iter().any(|o| o.id != self.id && o.status == "running" && o.stuck(now).is_none());
        if self.status == "queued" && busy { None } else { self.stuck(now) }
    }

    fn stuck(&self, now: DateTime<Utc>) -> Option<String> {
        let minutes = |since: DateTime<Utc>| (now - since).num_minutes();
        // Waiting is counted from when it was due (a retry waits out its backoff first).
        let due = self.run_at.max(self.created_at);
        match (self.status.as_str(), self.started_at) {
            ("queued", _) if minutes(due) >= QUEUED_TOO_LONG => {
                Some(format!("queued for {} minutes: is a Slipway process with the job worker running?", minutes(due)))
            }
            ("running", Some(started)) if minutes(started) >= RUNNING_TOO_LONG => {
                Some(format!("running for {} minutes", minutes(started)))
            }
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct EventSubject {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub summary: String,
    pub resource: EventSubject,
    pub server_id: Option<String>,
    pub site_id: Option<String>,
}

impl Event {
    /// Event types that report something wrong (the rest report work done).
    pub fn is_problem(&self) -> bool {
        let kind = self.kind.as_str();
        ["failed", "missed", "unreachable", "stale", "expiring", "host_key_changed"].iter().any(|w| kind.ends_with(w))
    }

    /// Where in the dashboard the problem can be looked at.
    pub fn link(&self) -> Option<String> {
        match (self.resource.kind.as_str(), &self.server_id, &self.site_id) {
            ("deployment", Some(server), Some(site)) => {
                Some(format!("/servers/{server}/sites/{site}/deployments/{}", self.resource.id))
            }
            ("operation", _, _) => Some(format!("/operations/{}", self.resource.id)),
            (_, Some(server), Some(site)) => Some(format!("/servers/{server}/sites/{site}")),
            (_, Some(server), None) => Some(format!("/servers/{server}")),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Token {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub abilities: Vec<String>,
    pub organization_id: Option<String>,
    pub server_ids: Option<Vec<String>>,
    pub site_ids: Option<Vec<String>>,
    pub allowed_ips: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_ip: Option<String>,
    pub created_via: String,
    pub expired: bool,
}

impl Token {
    pub fn restrictions(&self) -> String {
        let mut parts = vec![];
        if let Some(o) = &self.organization_id {
            parts.push(format!("organization {o}"));
        }
        if let Some(s) = &self.server_ids {
            parts.push(format!("servers {}", s.join(", ")));
        }
        if let Some(s) = &self.site_ids {
            parts.push(format!("sites {}", s.join(", ")));
        }
        if let Some(ips) = &self.allowed_ips {
            parts.push(format!("from {}", ips.join(", ")));
        }
        if parts.is_empty() { "none".into() } else { parts.join("; ") }
    }
}

#[cfg(test)]
mod tests {
    use super::{Operation, OperationView};
    use chrono::{DateTime, Duration, Utc};

    fn operation(status: &str, created: DateTime<Utc>, started: Option<DateTime<Utc>>) -> Operation {
        let (id, kind) = ("01J".to_string(), "server.provision".to_string());
        let status = status.into();
        Operation { id, kind, status, created_at: created, run_at: created, started_at: started, ..Default::default() }
    }

    #[test]
    fn an_operation_is_stuck_when_queued_or_running_too_long() {
        let now = slipway_core::time::now();
        let ago = |minutes| now - Duration::minutes(minutes);
        assert_eq!(operation("queued", ago(9), None).stuck(now), None);
        let queued = operation("queued", ago(25), None).stuck(now).unwrap();
        assert!(queued.starts_with("queued for 25 minutes"), "{queued}");
        // A retry due in the future is waiting, not stuck.
        let retry = Operation { run_at: now + Duration::minutes(5), ..operation("queued", ago(30), None) };
        assert_eq!(retry.stuck(now), None);
        assert_eq!(operation("running", ago(100), Some(ago(59))).stuck(now), None);
        assert_eq!(operation("running", ago(100), Some(ago(61))).stuck(now).as_deref(), Some("running for 61 minutes"));
        // Queued behind a running one, it waits its turn; behind a stuck one, it is stuck too.
        let queued = operation("queued", ago(25), None);
        let running = Operation { id: "01K".into(), ..operation("running", ago(30), Some(ago(20))) };
        assert_eq!(queued.stuck_among(&[running, operation("succeeded", ago(90), None)], now), None);
        let hung = Operation { id: "01K".into(), ..operation("running", ago(300), Some(ago(200))) };
        assert!(queued.stuck_among(&[hung], now).is_some());
        // Finished ones are history, however long they took.
        assert_eq!(operation("succeeded", ago(500), Some(ago(400))).stuck(now), None);
        assert_eq!(operation("failed", ago(500), None).stuck(now), None);
    }
}
