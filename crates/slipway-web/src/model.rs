//! The parts of the API's resources the pages show (read from its JSON answers).

use chrono::{DateTime, Utc};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Server {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub ip_address: String,
    pub ssh_port: i64,
    pub ssh_user: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub host_key_fingerprint: Option<String>,
    pub offered_host_key_fingerprint: Option<String>,
    pub sites_count: i64,
    pub os: Option<String>,
    pub php_version: Option<String>,
    pub database_type: String,
    pub provisioned_at: Option<DateTime<Utc>>,
}

impl Server {
    /// Why this server needs someone, if it does.
    pub fn problem(&self) -> Option<String> {
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

#[derive(Debug, Deserialize)]
pub struct Repository {
    pub url: Option<String>,
    pub branch: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Site {
    pub id: String,
    pub server_id: String,
    pub domain: String,
    pub project_type: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub deployment_status: Option<String>,
    pub suspended: bool,
    /// The operation applying the last change (installing the site, suspending it, …).
    pub operation_id: Option<String>,
    pub repository: Repository,
    pub zero_downtime: bool,
    pub unix_user: String,
}

impl Site {
    pub fn problem(&self) -> Option<String> {
        if self.status == "failed" {
            return Some(format!(
                "installation failed: {}",
                self.status_reason.as_deref().unwrap_or("no reason recorded")
            ));
        }
        (self.deployment_status.as_deref() == Some("failed")).then(|| "the last deployment failed".to_string())
    }

    pub fn deployment(&self) -> &str {
        self.deployment_status.as_deref().unwrap_or("never deployed")
    }

    pub fn url(&self) -> String {
        format!("/servers/{}/sites/{}", self.server_id, self.id)
    }

    /// Whether the site is still being changed on its server (installed or removed).
    pub fn changing(&self) -> bool {
        matches!(self.status.as_str(), "installing" | "removing")
    }
}

#[derive(Debug, Deserialize)]
pub struct Step {
    pub name: String,
    pub status: String,
    pub duration_ms: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct Deployment {
    pub id: String,
    pub status: String,
    pub action: String,
    pub trigger: String,
    pub commit_sha: Option<String>,
    pub commit_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub duration: Option<f64>,
    pub failed_step: Option<String>,
    pub failure_reason: Option<String>,
    #[serde(default)]
    pub steps: Vec<Step>,
}

impl Deployment {
    pub fn short_sha(&self) -> &str {
        self.commit_sha.as_deref().map(|s| &s[..s.len().min(8)]).unwrap_or("")
    }

    pub fn running(&self) -> bool {
        matches!(self.status.as_str(), "queued" | "running")
    }

    pub fn took(&self) -> String {
        self.duration.map(|d| format!("{d:.1} s")).unwrap_or_default()
    }
}

#[derive(Debug, Deserialize)]
pub struct Release {
    pub id: String,
    pub commit_sha: Option<String>,
    pub commit_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub current: bool,
}

#[derive(Debug, Deserialize)]
pub struct LogLine {
    pub seq: i64,
    pub stream: String,
    pub line: String,
}

#[derive(Debug, Deserialize)]
pub struct Operation {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Operation {
    pub fn running(&self) -> bool {
        matches!(self.status.as_str(), "queued" | "running")
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
