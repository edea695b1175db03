//! The API's resources as they travel: what `GET /api/v1/servers/{server}` and its kin answer
//! inside `data`. The API builds and documents these very types (with the `utoipa` feature
//! they carry the OpenAPI schemas, under the names the API document uses); the client and the
//! dashboard read them. Nothing here does I/O or knows HTTP.
//!
//! Reading is lenient: a field a newer Slipway adds is ignored and one an older Slipway lacks
//! takes its default, so a client keeps working across versions. A test in the `slipway` crate
//! holds each type to its schema in the API document, field by field.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub mod time;

/// A server Slipway manages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema), schema(as = ServerResource))]
#[serde(default)]
pub struct Server {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    #[cfg_attr(feature = "utoipa", schema(example = "custom"))]
    pub provider: String,
    pub ip_address: String,
    pub ssh_port: i64,
    pub ssh_user: String,
    pub region: Option<String>,
    pub size: Option<String>,
    pub php_version: Option<String>,
    /// `mysql`, `mariadb`, `postgres` or `none`.
    pub database_type: String,
    pub webserver: String,
    /// `pending`, `provisioning`, `active`, `failed` or `unreachable`.
    pub status: String,
    /// Why the server is failed or unreachable, in words.
    pub status_reason: Option<String>,
    pub monitoring_enabled: bool,
    /// The operating system found at first contact, e.g. `debian 12`.
    pub os: Option<String>,
    /// SHA-256 fingerprint of the host key pinned at first contact.
    pub host_key_fingerprint: Option<String>,
    /// When the server presented another host key: its fingerprint, to accept with
    /// `POST /servers/{server}/accept-host-key` if the server was reinstalled.
    pub offered_host_key_fingerprint: Option<String>,
    /// Provisioning installs Node.js (from the operating system's packages).
    pub node: bool,
    #[serde(serialize_with = "crate::time::rfc3339_option")]
    pub provisioned_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
    pub sites_count: u64,
}

/// How to let Slipway in: its public key for the organization, and a command that installs it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Authorization {
    pub public_key: String,
    /// Run this on the server as the SSH user.
    pub command: String,
}

/// A server just registered, with how to authorise Slipway on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct CreatedServer {
    #[serde(flatten)]
    pub server: Server,
    pub authorization: Authorization,
}

/// Where a site deploys from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Repository {
    /// The URL with any credentials replaced by `***`.
    pub url: Option<String>,
    pub branch: String,
    /// The git repository it deploys, when it uses one.
    pub git_repository_id: Option<String>,
}

/// What a new release must answer before it goes live.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct HealthCheck {
    pub path: String,
    pub expected_status: i64,
    /// Seconds the new release has to answer as expected.
    pub timeout: i64,
}

/// A site on a server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema), schema(as = SiteResource))]
#[serde(default)]
pub struct Site {
    pub id: String,
    pub server_id: String,
    pub domain: String,
    pub aliases: Vec<String>,
    /// `static`, `php`, `laravel`, `node` or `generic`.
    pub project_type: String,
    pub web_directory: String,
    pub repository: Repository,
    pub deploy_script: String,
    /// The command that runs the app (node, generic); it must listen on `$PORT`.
    pub app_command: Option<String>,
    pub health_check: HealthCheck,
    /// Releases with an atomic switch (`true`), or one working tree updated in place (`false`;
    /// see `enable-zero-downtime`).
    pub zero_downtime: bool,
    pub keep_releases: i64,
    /// Paths kept across releases, linked into each from the site's `shared/` directory.
    pub shared_paths: Vec<String>,
    /// The site's own Unix user on the server: its files, deploy script, PHP and app run as it,
    /// so one site's code cannot read another's.
    pub unix_user: String,
    /// `installing`, `installed`, `failed` or `removing`.
    pub status: String,
    pub status_reason: Option<String>,
    pub suspended: bool,
    /// The last deployment's status: `queued`, `running`, `succeeded`, `failed`, `cancelled`.
    pub deployment_status: Option<String>,
    #[serde(serialize_with = "crate::time::rfc3339_option")]
    pub last_deployed_at: Option<DateTime<Utc>>,
    /// The id of the release that is live (a deployment id).
    pub current_release: Option<String>,
    /// The operation applying the last change, when this request queued one.
    pub operation_id: Option<String>,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

/// A deploy, rollback or conversion of a site.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema), schema(as = DeploymentResource))]
#[serde(default)]
pub struct Deployment {
    pub id: String,
    pub site_id: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// `deploy` (a new release, or in place), `rollback` or `enable-zero-downtime`.
    pub action: String,
    /// `api`, `webhook`, `schedule`, `rollback`, `cli` or `dashboard`.
    pub trigger: String,
    pub triggered_by_user: Option<String>,
    pub triggered_by_token: Option<String>,
    /// For a rollback: the release it went back to.
    pub release: Option<String>,
    pub commit_sha: Option<String>,
    pub commit_message: Option<String>,
    pub commit_author: Option<String>,
    /// The step that failed: `connect`, `fetch`, `build`, `health check` or `switch`.
    pub failed_step: Option<String>,
    pub failure_reason: Option<String>,
    /// The operation running it (its log is the deployment's log).
    pub operation_id: String,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::rfc3339_option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::time::rfc3339_option")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Seconds from start to finish.
    pub duration: Option<f64>,
    /// Each step as it ran, in order, with its start and duration: where a deploy spends its
    /// time, and which step failed.
    pub steps: Vec<DeploymentStep>,
}

/// One step of a deployment: when it started, how long it took, how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct DeploymentStep {
    /// `connect`, `fetch`, `build`, `health check`, `switch` or `finish` (workers restarted, old
    /// releases pruned).
    pub name: String,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub started_at: DateTime<Utc>,
    /// Until the step ends: none.
    pub duration_ms: Option<u64>,
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
}

impl DeploymentStep {
    /// A step starting at `at`.
    pub fn start(name: &str, at: DateTime<Utc>) -> Self {
        DeploymentStep { name: name.to_string(), started_at: at, duration_ms: None, status: "running".into() }
    }

    /// Ends the step at `at` with `status` (a step that has ended already stays as it was).
    pub fn end(&mut self, status: &str, at: DateTime<Utc>) {
        if self.duration_ms.is_none() {
            self.duration_ms = Some(u64::try_from((at - self.started_at).num_milliseconds()).unwrap_or(0));
            self.status = status.to_string();
        }
    }
}

/// Work Slipway runs in the background: provisioning, a restart, applying a site…
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema), schema(as = OperationResource))]
#[serde(default)]
pub struct Operation {
    pub id: String,
    #[cfg_attr(feature = "utoipa", schema(example = "server.provision"))]
    pub kind: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    pub attempts: i64,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// When it is due to run: later than `created_at` for a retry waiting out its backoff.
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub run_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::rfc3339_option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::time::rfc3339_option")]
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i64>,
    pub failure_reason: Option<String>,
}

/// One line of an operation's or a deployment's log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct LogLine {
    pub seq: i64,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub at: DateTime<Utc>,
    /// `stdout`, `stderr` or `info`.
    pub stream: String,
    pub line: String,
}

/// A release kept on the server for rollback.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema), schema(as = ReleaseResource))]
#[serde(default)]
pub struct Release {
    /// The release id (the deployment that built it).
    pub id: String,
    pub commit_sha: Option<String>,
    pub commit_message: Option<String>,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    pub current: bool,
}

/// Whether an operation's or deployment's status is a final one.
pub fn ended(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "cancelled")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_is_lenient_across_versions() {
        let server: Server =
            serde_json::from_str(r#"{"id": "01H", "name": "web-1", "added_later": true}"#).expect("lenient");
        assert_eq!((server.id.as_str(), server.name.as_str(), server.ssh_port), ("01H", "web-1", 0));
        let created: CreatedServer =
            serde_json::from_str(r#"{"id": "01H", "authorization": {"command": "mkdir -p ~/.ssh"}}"#).unwrap();
        assert_eq!((created.server.id.as_str(), created.authorization.command.as_str()), ("01H", "mkdir -p ~/.ssh"));
    }
}
