//! Rows as the store returns them. Plain data; rules live in `slipway-core` and the API.

use slipway_core::site_input::ProjectType;
use slipway_core::time::Timestamp;
use slipway_core::{BackupStatus, DeliveryStatus, InstallStatus, ItemState, RunStatus, ServerStatus};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub totp_secret: Option<Vec<u8>>,
    pub totp_enabled: bool,
    pub totp_last_counter: Option<i64>,
    pub recovery_codes: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: String,
    pub email: String,
    pub email_normalized: String,
    pub name: String,
    pub password_hash: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub max_token_lifetime_seconds: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An organisation as one of its members sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrganizationWithRole {
    pub id: String,
    pub name: String,
    pub max_token_lifetime_seconds: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub role: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccessToken {
    pub id: String,
    pub kind: String,
    pub user_id: Option<String>,
    pub organization_id: Option<String>,
    pub name: String,
    pub token_hash: String,
    pub abilities: String,
    pub server_ids: Option<String>,
    pub site_ids: Option<String>,
    pub allowed_ips: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub created_via: String,
    pub created_by: Option<String>,
    pub last_used_at: Option<Timestamp>,
    pub last_used_ip: Option<String>,
    pub revoked_at: Option<Timestamp>,
}

/// What changes when a token is edited; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct TokenChanges {
    pub name: Option<String>,
    pub abilities: Option<String>,
    pub server_ids: Option<Option<String>>,
    pub site_ids: Option<Option<String>>,
    pub allowed_ips: Option<Option<String>>,
    pub expires_at: Option<Option<Timestamp>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshToken {
    pub id: String,
    pub family_id: String,
    pub token_hash: String,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// A stored first response for an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// No earlier request: go ahead, then call `idempotency_finish`.
    Started,
    /// The same request already completed: replay this.
    Replay { status: u16, content_type: Option<String>, body: Vec<u8> },
    /// The same key was used with a different request.
    Mismatch,
    /// The first request is still running.
    InProgress,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEvent {
    pub id: String,
    pub occurred_at: Timestamp,
    pub actor_user_id: Option<String>,
    pub token_id: Option<String>,
    pub organization_id: Option<String>,
    pub action: String,
    pub method: Option<String>,
    pub route: Option<String>,
    pub resource_id: Option<String>,
    pub status: Option<i64>,
    pub outcome: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub detail: Option<String>,
}

/// Which audit events a caller may see and wants.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Events whose actor is this user…
    pub own_user_id: Option<String>,
    /// …or that happened in one of these organisations (where the caller is owner/admin).
    pub organization_ids: Vec<String>,
    pub actor: Option<String>,
    pub token: Option<String>,
    /// This action or one of its sub-events (`login` matches `login.failed`).
    pub action: Option<String>,
    /// `success`, `denied`, `rate_limited` or `failure`.
    pub outcome: Option<String>,
    pub resource: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// Only events older than this id: a cursor that new events and pruning cannot shift.
    pub before: Option<String>,
}

/// A durable job: the queue entry and the operation record in one.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub payload: String,
    pub organization_id: Option<String>,
    pub resource_key: Option<String>,
    /// The server the job works on (`server:<id>`), which caps how many of its jobs run at once.
    pub server_key: Option<String>,
    pub idempotent: bool,
    pub status: RunStatus,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: Timestamp,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<Timestamp>,
    pub cancel_requested_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub exit_code: Option<i64>,
    pub failure_reason: Option<String>,
}

impl Job {
    /// Whether a run that did not finish (stopped by a shutdown, its lease run out, a failure
    /// that may pass) is tried again: only a job safe to run twice, with attempts left.
    pub fn may_retry(&self) -> bool {
        self.idempotent && self.attempts < self.max_attempts
    }
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub kind: String,
    pub payload: String,
    pub organization_id: Option<String>,
    pub resource_key: Option<String>,
    pub server_key: Option<String>,
    pub idempotent: bool,
    pub max_attempts: i64,
    pub run_at: Timestamp,
}

/// How a running job ended, as recorded by the worker holding its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    Succeeded,
    Failed {
        reason: String,
        exit_code: Option<i64>,
    },
    Cancelled {
        reason: String,
    },
    /// Back to the queue, to run again at `run_at`.
    Retry {
        run_at: Timestamp,
        reason: String,
    },
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// Still ours; keep going.
    Held,
    /// Still ours, and someone asked to cancel it.
    CancelRequested,
    /// No longer ours (reaped or finished elsewhere): stop at once.
    Lost,
}

/// What a request to cancel a job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It had not started; it never will.
    Cancelled,
    /// It is running; its worker will stop it at the next heartbeat.
    Requested,
    /// It had already finished.
    AlreadyFinished,
    NotFound,
}

/// What the reaper did with jobs whose worker stopped renewing its lease.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    pub requeued: Vec<String>,
    pub failed: Vec<String>,
}

#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct JobLogLine {
    pub seq: i64,
    pub at: Timestamp,
    pub stream: String,
    pub line: String,
}

/// A log line to append: when it was produced (not when it is written), its stream and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLogLine {
    pub at: Timestamp,
    pub stream: String,
    pub line: String,
}

impl NewLogLine {
    /// A line produced now.
    pub fn now(stream: impl Into<String>, line: impl Into<String>) -> Self {
        NewLogLine { at: slipway_core::time::now(), stream: stream.into(), line: line.into() }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Server {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub provider: String,
    pub ip_address: String,
    pub ssh_port: i64,
    pub ssh_user: String,
    pub region: Option<String>,
    pub size: Option<String>,
    pub php_version: Option<String>,
    pub database_type: String,
    pub webserver: String,
    pub status: ServerStatus,
    pub status_reason: Option<String>,
    pub monitoring_enabled: bool,
    pub os: Option<String>,
    pub host_key: Option<String>,
    /// The key a server offered when it no longer matched the pinned one, until accepted.
    pub offered_host_key: Option<String>,
    /// Provisioning installs Node.js from the operating system's packages.
    pub node: bool,
    pub provisioned_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The editable fields of a server (`PUT`); `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ServerChanges {
    pub name: Option<String>,
    pub ip_address: Option<String>,
    pub ssh_port: Option<i64>,
    pub monitoring_enabled: Option<bool>,
    pub php_version: Option<String>,
}

/// Something Slipway keeps on a server (an SSH key of the deploy user, a firewall rule). The
/// `spec` is the item's validated fields as JSON; its `kind` says which type reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ServerItem {
    pub id: String,
    pub server_id: String,
    /// `ssh_key` or `network_rule`.
    pub kind: String,
    pub name: String,
    pub spec: String,
    pub status: InstallStatus,
    pub status_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// What the server reports for it now, when that was read (never stored); shown instead of
    /// `status`, with `status_reason` saying why.
    #[sqlx(skip)]
    pub state: Option<ItemState>,
}

impl ServerItem {
    /// The status to show: the state the server reported, else the stored status.
    pub fn shown_status(&self) -> &'static str {
        self.state.map_or(self.status.as_str(), ItemState::as_str)
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Site {
    pub id: String,
    pub server_id: String,
    pub organization_id: String,
    pub domain: String,
    /// JSON array of names.
    pub aliases: String,
    pub project_type: ProjectType,
    pub web_directory: String,
    /// Sealed with the secrets key (a URL may carry a token).
    pub repository_url: Option<Vec<u8>>,
    pub repository_branch: String,
    pub deploy_script: String,
    pub app_command: Option<String>,
    pub health_check_path: String,
    pub health_check_status: i64,
    pub health_check_timeout: i64,
    pub zero_downtime: bool,
    pub keep_releases: i64,
    /// The first of the two ports an app alternates between (set by the store).
    pub app_port: i64,
    pub status: InstallStatus,
    pub status_reason: Option<String>,
    pub suspended: bool,
    pub deployment_status: Option<RunStatus>,
    pub last_deployed_at: Option<Timestamp>,
    pub current_release: Option<String>,
    /// The port the live app listens on (apps only).
    pub active_port: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The git repository it deploys (instead of `repository_url`), if any.
    pub git_repository_id: Option<String>,
    /// JSON array of relative paths kept across releases (linked from `shared/`).
    pub shared_paths: String,
}

/// Which sites a list across organisations holds: the organisations, the token's restrictions
/// (`None` for none) and optional status filters.
#[derive(Debug, Clone, Copy, Default)]
pub struct SiteFilter<'a> {
    pub organization_ids: &'a [String],
    pub server_ids: Option<&'a [String]>,
    pub site_ids: Option<&'a [String]>,
    pub status: Option<InstallStatus>,
    pub deployment_status: Option<RunStatus>,
}

/// The editable fields of a site; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct SiteChanges {
    pub aliases: Option<String>,
    pub web_directory: Option<String>,
    pub repository_url: Option<Option<Vec<u8>>>,
    pub repository_branch: Option<String>,
    pub deploy_script: Option<String>,
    pub app_command: Option<Option<String>>,
    pub health_check_path: Option<String>,
    pub health_check_status: Option<i64>,
    pub health_check_timeout: Option<i64>,
    pub keep_releases: Option<i64>,
    pub suspended: Option<bool>,
    pub git_repository_id: Option<Option<String>>,
    pub shared_paths: Option<String>,
    pub zero_downtime: Option<bool>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Deployment {
    pub id: String,
    pub site_id: String,
    pub server_id: String,
    pub organization_id: String,
    pub job_id: String,
    pub status: RunStatus,
    pub trigger_kind: String,
    pub triggered_by_user: Option<String>,
    pub triggered_by_token: Option<String>,
    /// For a rollback: the deployment whose release it switches back to.
    pub release_of: Option<String>,
    pub commit_sha: Option<String>,
    pub commit_message: Option<String>,
    pub commit_author: Option<String>,
    pub port: Option<i64>,
    pub failed_step: Option<String>,
    pub failure_reason: Option<String>,
    /// Its release directory is on the server (not pruned, not cleaned up after a failure).
    pub release_present: bool,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// The commit a push asked for (else the branch's newest).
    pub requested_commit: Option<String>,
    /// `deploy`, `rollback` or `enable-zero-downtime`.
    pub action: String,
    /// Its steps as JSON (`[{name, started_at, duration_ms, status}]`), written as they run.
    pub steps: Option<String>,
}

/// What a deployment learned or how it ended; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct DeploymentUpdate {
    pub status: Option<RunStatus>,
    pub commit_sha: Option<String>,
    pub commit_message: Option<String>,
    pub commit_author: Option<String>,
    pub port: Option<i64>,
    pub failed_step: Option<String>,
    pub failure_reason: Option<String>,
    pub release_present: Option<bool>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub steps: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SiteEnvVar {
    pub site_id: String,
    pub key: String,
    /// Sealed with the secrets key.
    pub value: Vec<u8>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Where backups go: an S3-compatible bucket (`s3`) or a directory on a server (`local`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BackupStorage {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    /// `s3` or `local`.
    pub kind: String,
    /// The kind's settings as JSON, without secrets.
    pub config: String,
    /// Sealed: an S3 secret access key.
    pub secret: Option<Vec<u8>>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One backup: an object in a storage and what proves it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Backup {
    pub id: String,
    pub organization_id: String,
    /// `database` or `application`.
    pub kind: String,
    pub server_id: String,
    pub database_id: Option<String>,
    pub site_id: Option<String>,
    pub storage_id: String,
    /// Where it is in the storage (under the storage's prefix or directory).
    pub object_key: String,
    pub status: BackupStatus,
    pub size_bytes: Option<i64>,
    /// Hex SHA-256 of the object's bytes.
    pub sha256: Option<String>,
    /// JSON: tables and row counts at dump time.
    pub manifest: Option<String>,
    pub error: Option<String>,
    pub job_id: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub created_at: Timestamp,
    /// When a verification last restored it and found what the manifest lists.
    pub verified_at: Option<Timestamp>,
    /// What the last verification found wrong (cleared by one that passes).
    pub verification_error: Option<String>,
    /// When it was last restored.
    pub restored_at: Option<Timestamp>,
    /// The schedule that made it, if one did.
    pub schedule_id: Option<String>,
}

/// A database or a site backed up on a frequency, with retention.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BackupSchedule {
    pub id: String,
    pub organization_id: String,
    pub server_id: String,
    /// The database it backs up (a database backup schedule)…
    pub database_id: Option<String>,
    /// … or the site (an application backup schedule): exactly one of the two.
    pub site_id: Option<String>,
    pub storage_id: String,
    /// A named frequency (`nightly`, `hourly`, …) or a five-field cron expression, in UTC.
    pub frequency: String,
    /// How many of the newest good backups are kept.
    pub keep_last: i64,
    /// Besides: the newest good backup of each of the last this many days (weeks, months).
    pub keep_daily: i64,
    pub keep_weekly: i64,
    pub keep_monthly: i64,
    /// Each backup it makes is verified once stored.
    pub verify: bool,
    /// When it runs next.
    pub next_run_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a backup (or a backup schedule) is of: a database or a site's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupTarget<'a> {
    Database(&'a str),
    Site(&'a str),
}

impl BackupTarget<'_> {
    /// The backup type it makes: `database` or `application`.
    pub fn kind(self) -> &'static str {
        match self {
            BackupTarget::Database(_) => "database",
            BackupTarget::Site(_) => "application",
        }
    }

    /// As a record's `(database_id, site_id)` columns: exactly one is set.
    pub fn ids(self) -> (Option<String>, Option<String>) {
        match self {
            BackupTarget::Database(id) => (Some(id.to_string()), None),
            BackupTarget::Site(id) => (None, Some(id.to_string())),
        }
    }
}

impl BackupSchedule {
    /// The database or site it backs up.
    pub fn target(&self) -> BackupTarget<'_> {
        match (&self.database_id, &self.site_id) {
            (Some(database), _) => BackupTarget::Database(database),
            (None, site) => BackupTarget::Site(site.as_deref().unwrap_or_default()),
        }
    }
}

/// Which backups to list.
#[derive(Debug, Clone, Default)]
pub struct BackupFilter {
    pub status: Option<BackupStatus>,
    pub kind: Option<String>,
    pub database_id: Option<String>,
    pub schedule_id: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GitProvider {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    /// `github`, `gitlab`, `bitbucket` or `generic`.
    pub kind: String,
    /// Sealed.
    pub access_token: Option<Vec<u8>>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GitRepository {
    pub id: String,
    pub organization_id: String,
    pub provider_id: Option<String>,
    pub kind: String,
    /// Sealed.
    pub url: Vec<u8>,
    pub branch: String,
    pub deploy_key_public: Option<String>,
    /// Sealed.
    pub deploy_key_private: Option<Vec<u8>>,
    pub webhook_uuid: String,
    /// Sealed; `None` while auto-deploy is off.
    pub webhook_secret: Option<Vec<u8>>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Changes to a repository; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct GitRepositoryChanges {
    pub url: Option<Vec<u8>>,
    pub branch: Option<String>,
    pub deploy_key: Option<(String, Vec<u8>)>,
    pub webhook_secret: Option<Option<Vec<u8>>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookDelivery {
    pub id: String,
    pub repository_id: String,
    pub site_id: Option<String>,
    pub received_at: Timestamp,
    pub event: Option<String>,
    pub branch: Option<String>,
    pub commit_sha: Option<String>,
    /// `accepted`, `ignored` or `rejected`.
    pub outcome: String,
    pub reason: Option<String>,
    pub deployment_id: Option<String>,
    /// The git host's id for the delivery, when it sent a well-formed one.
    pub delivery_id: Option<String>,
}

/// One retention rule: which old rows of one kind the pruning job may delete. Each is applied in
/// batches (`Store::prune` deletes at most a given number of rows per call), so no statement
/// holds the database for long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PruneRule {
    /// Audit events that occurred before this time.
    AuditEvents { before: Timestamp },
    /// Access tokens revoked or expired before this time, with their JWT families and refresh
    /// tokens (which go with them); JWT families revoked before it, or whose refresh tokens are
    /// all gone and that began before it; refresh tokens that expired before it. Audit events
    /// name tokens by id as text, so they keep their history.
    Tokens { before: Timestamp },
    /// Log lines of jobs that finished before `before`, except the jobs of each site's last
    /// `keep_deployments` deployments.
    JobLogs { before: Timestamp, keep_deployments: i64 },
    /// Jobs that finished before `before` and whose log is no longer kept (`logs_before`,
    /// `keep_deployments` as in [`PruneRule::JobLogs`]). A deployment whose job is gone stays,
    /// with an empty log.
    Jobs { before: Timestamp, logs_before: Timestamp, keep_deployments: i64 },
    /// Webhook deliveries received before this time, and the delivery ids claimed before it.
    WebhookDeliveries { before: Timestamp },
    /// Idempotency records created before this time.
    IdempotencyKeys { before: Timestamp },
    /// Rate-limit windows that ended before this Unix time.
    RateLimits { now_unix: i64 },
    /// Events that occurred before this time, with their notification deliveries.
    Events { before: Timestamp },
}

impl PruneRule {
    /// A stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            PruneRule::AuditEvents { .. } => "audit_events",
            PruneRule::Tokens { .. } => "tokens",
            PruneRule::JobLogs { .. } => "job_logs",
            PruneRule::Jobs { .. } => "jobs",
            PruneRule::WebhookDeliveries { .. } => "webhook_deliveries",
            PruneRule::IdempotencyKeys { .. } => "idempotency_keys",
            PruneRule::RateLimits { .. } => "rate_limits",
            PruneRule::Events { .. } => "events",
        }
    }
}

/// Something that happened to a resource (a deployment failed, a backup completed), as it is
/// kept and sent to notification channels.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// A ULID: events sort by time.
    pub id: String,
    pub organization_id: String,
    /// `deployment.failed`, `backup.completed`, …
    pub event_type: String,
    /// `deployment`, `server`, `backup`, …
    pub resource_type: String,
    pub resource_id: String,
    pub resource_name: String,
    /// The resource's path in the API (`/api/v1/…`), when it has one.
    pub resource_path: Option<String>,
    pub server_id: Option<String>,
    pub site_id: Option<String>,
    /// One line for people.
    pub summary: String,
    /// A JSON object with the event's details.
    pub data: String,
    pub occurred_at: Timestamp,
}

/// Which events to list: each field given must match.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub event_type: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub server_id: Option<String>,
    pub site_id: Option<String>,
}

/// Where an organisation's events are sent: a signed webhook, Slack, Discord or email.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NotificationChannel {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    /// `webhook`, `slack`, `discord` or `email`.
    pub kind: String,
    /// JSON without secrets: subscriptions and the kind's settings.
    pub config: String,
    /// Sealed JSON: the URL, the signing secret, SMTP credentials.
    pub secret: Vec<u8>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One event sent (or being sent) to one channel.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NotificationDelivery {
    pub id: String,
    pub channel_id: String,
    pub organization_id: String,
    pub event_id: String,
    pub event_type: String,
    /// Deliveries with the same key report the same thing (type and resource): repeats within
    /// the channel's window are folded into one.
    pub group_key: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    /// Identical events folded into this delivery.
    pub repeats: i64,
    /// Identical events folded into the delivery before this one, reported by this one.
    pub folded: i64,
    pub response_code: Option<i64>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub next_attempt_at: Option<Timestamp>,
    /// No attempt starts after this time.
    pub deadline_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The tables that grow with use, whose row counts are reported (`Store::table_counts`).
pub const COUNTED_TABLES: [&str; 13] = [
    "audit_events",
    "events",
    "notification_deliveries",
    "access_tokens",
    "token_families",
    "refresh_tokens",
    "jobs",
    "job_logs",
    "deployments",
    "webhook_deliveries",
    "webhook_delivery_ids",
    "idempotency_keys",
    "rate_limits",
];
