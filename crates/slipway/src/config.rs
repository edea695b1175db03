//! Effective configuration: defaults, then a TOML file, then `SLIPWAY_*` environment
//! variables, then command-line flags (clap reads flags and their environment variables; the
//! file fills what neither gave).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use slipway_core::Secret;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_DB_MAX_CONNECTIONS: u32 = 8;
pub const CONFIG_FILE_NAME: &str = "slipway.toml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// Flags shared by the commands that run against the database (`serve`, `migrate`, `config`).
#[derive(Debug, Clone, Default, Args)]
pub struct ServerArgs {
    /// TOML configuration file [default: DATA_DIR/slipway.toml when it exists]
    #[arg(long, env = "SLIPWAY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "SLIPWAY_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory for the SQLite database, the secrets key and other state
    /// [default: $XDG_DATA_HOME/slipway, ~/.local/share/slipway, or /var/lib/slipway]
    #[arg(long, env = "SLIPWAY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://USER@HOST/DB [default: sqlite://DATA_DIR/slipway.db]
    #[arg(long, env = "SLIPWAY_DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Base URL used in links Slipway returns [default: http://LISTEN]
    #[arg(long, env = "SLIPWAY_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Largest accepted request body, in bytes [default: 1048576]
    #[arg(long, env = "SLIPWAY_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Size of the database connection pool [default: 8]
    #[arg(long, env = "SLIPWAY_DATABASE_MAX_CONNECTIONS", value_name = "N")]
    pub database_max_connections: Option<u32>,
    /// Log format [default: human]
    #[arg(long, env = "SLIPWAY_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `slipway=debug,info` [default: info]
    #[arg(long, env = "SLIPWAY_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// Run the job worker in this process [default: true]; turn it off for API-only replicas
    #[arg(long, env = "SLIPWAY_JOB_WORKER", value_name = "BOOL")]
    pub job_worker: Option<bool>,
    /// How long a job's claim lasts without a heartbeat; a crashed worker's jobs are recovered
    /// after this [default: 60]
    #[arg(long, env = "SLIPWAY_JOB_LEASE_SECONDS", value_name = "SECONDS")]
    pub job_lease_seconds: Option<u64>,
    /// Jobs this process runs at once (deploys, provisioning, backups, notifications…); most
    /// of their time is spent waiting on servers [default: 32]
    #[arg(long, env = "SLIPWAY_JOB_CONCURRENCY", value_name = "N")]
    pub job_concurrency: Option<usize>,
    /// Jobs of one server that run at once across replicas, so a busy server never takes every
    /// slot from the others [default: 4]
    #[arg(long, env = "SLIPWAY_JOB_CONCURRENCY_PER_SERVER", value_name = "N")]
    pub job_concurrency_per_server: Option<usize>,
    /// Seconds to wait for a server to accept an SSH connection and log in [default: 10]
    #[arg(long, env = "SLIPWAY_SSH_CONNECT_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub ssh_connect_timeout_seconds: Option<u64>,
    /// Seconds a remote command may stay silent before it is stopped [default: 300]
    #[arg(long, env = "SLIPWAY_COMMAND_IDLE_SECONDS", value_name = "SECONDS")]
    pub command_idle_seconds: Option<u64>,
    /// The ACME directory certificates are issued from [default: Let's Encrypt production]
    #[arg(long, env = "SLIPWAY_ACME_DIRECTORY", value_name = "URL")]
    pub acme_directory: Option<String>,
    /// A CA certificate (PEM) to trust for the ACME server's HTTPS instead of the system's, for a
    /// private ACME server
    #[arg(long, env = "SLIPWAY_ACME_CA_BUNDLE", value_name = "FILE")]
    pub acme_ca_bundle: Option<PathBuf>,
    /// How often every served certificate is checked and due ACME renewals are queued, e.g. 1d,
    /// 6h [default: 1d]
    #[arg(long, env = "SLIPWAY_CERTIFICATE_CHECK_INTERVAL", value_name = "DURATION", value_parser = parse_duration)]
    pub certificate_check_interval: Option<Duration>,
    /// How often cron jobs, queue workers and daemons on every server are read, and their
    /// failures reported, e.g. 5m, 1m [default: 5m]
    #[arg(long, env = "SLIPWAY_PROCESS_CHECK_INTERVAL", value_name = "DURATION", value_parser = parse_duration)]
    pub process_check_interval: Option<Duration>,
    /// A dashboard session ends after this long without a request, e.g. 2h, 30m [default: 2h]
    #[arg(long, env = "SLIPWAY_SESSION_IDLE", value_name = "DURATION", value_parser = parse_duration)]
    pub session_idle: Option<Duration>,
    /// A dashboard session ends this long after login, active or not, e.g. 12h [default: 12h]
    #[arg(long, env = "SLIPWAY_SESSION_LIFETIME", value_name = "DURATION", value_parser = parse_duration)]
    pub session_lifetime: Option<Duration>,
    /// Allow POST /api/v1/register to create accounts [default: false]
    #[arg(long, env = "SLIPWAY_REGISTRATION_ENABLED", value_name = "BOOL")]
    pub registration_enabled: Option<bool>,
    /// API requests per minute per token (per address when unauthenticated) [default: 60]
    #[arg(long, env = "SLIPWAY_RATE_LIMIT_API", value_name = "N")]
    pub rate_limit_api: Option<u32>,
    /// Login/register/setup attempts per minute per address and per account [default: 5]
    #[arg(long, env = "SLIPWAY_RATE_LIMIT_AUTH", value_name = "N")]
    pub rate_limit_auth: Option<u32>,
    /// Tokens created (or rotated) per minute per caller [default: 10]
    #[arg(long, env = "SLIPWAY_RATE_LIMIT_TOKEN_CREATE", value_name = "N")]
    pub rate_limit_token_create: Option<u32>,
    /// Backup downloads per hour per caller [default: 10]
    #[arg(long, env = "SLIPWAY_RATE_LIMIT_BACKUP_DOWNLOAD", value_name = "N")]
    pub rate_limit_backup_download: Option<u32>,
    /// How long audit events are kept, e.g. 365d, 12h, 90m, 30s [default: 365d]
    #[arg(long, env = "SLIPWAY_RETENTION_AUDIT_EVENTS", value_name = "DURATION", value_parser = parse_duration)]
    pub retention_audit_events: Option<Duration>,
    /// How long revoked and expired tokens (and their JWT families) are kept after revocation
    /// or expiry [default: 30d]
    #[arg(long, env = "SLIPWAY_RETENTION_TOKENS", value_name = "DURATION", value_parser = parse_duration)]
    pub retention_tokens: Option<Duration>,
    /// How long job and deployment logs are kept [default: 30d]
    #[arg(long, env = "SLIPWAY_RETENTION_JOB_LOGS", value_name = "DURATION", value_parser = parse_duration)]
    pub retention_job_logs: Option<Duration>,
    /// The logs of each site's last N deployments are kept whatever their age [default: 10]
    #[arg(long, env = "SLIPWAY_RETENTION_DEPLOYMENT_LOGS_KEPT", value_name = "N")]
    pub retention_deployment_logs_kept: Option<u32>,
    /// How long finished jobs are kept once their log is not [default: 30d]
    #[arg(long, env = "SLIPWAY_RETENTION_JOBS", value_name = "DURATION", value_parser = parse_duration)]
    pub retention_jobs: Option<Duration>,
    /// How long webhook deliveries and their delivery ids are kept [default: 30d]
    #[arg(long, env = "SLIPWAY_RETENTION_WEBHOOK_DELIVERIES", value_name = "DURATION", value_parser = parse_duration)]
    pub retention_webhook_deliveries: Option<Duration>,
    /// How long idempotency keys are kept (and replayed) [default: 24h]
    #[arg(long, env = "SLIPWAY_RETENTION_IDEMPOTENCY_KEYS", value_name = "DURATION", value_parser = parse_duration)]
    pub retention_idempotency_keys: Option<Duration>,
    /// How long events and their notification deliveries are kept [default: 90d]
    #[arg(long, env = "SLIPWAY_RETENTION_EVENTS", value_name = "DURATION", value_parser = parse_duration)]
    pub retention_events: Option<Duration>,
    /// Address ranges notifications may be sent to although they are not public (loopback,
    /// private, link-local), comma-separated CIDRs, e.g. 10.0.0.0/8 [default: none]
    #[arg(long, env = "SLIPWAY_NOTIFICATION_ALLOWED_NETWORKS", value_name = "CIDRS", value_delimiter = ',')]
    pub notification_allowed_networks: Option<Vec<String>>,
    /// Allow plain http:// webhook URLs [default: false]
    #[arg(long, env = "SLIPWAY_NOTIFICATION_ALLOW_HTTP", value_name = "BOOL")]
    pub notification_allow_http: Option<bool>,
    /// The wait before a failed notification is first retried; each retry waits twice as long,
    /// up to an hour [default: 30s]
    #[arg(long, env = "SLIPWAY_NOTIFICATION_RETRY_BASE", value_name = "DURATION", value_parser = parse_duration)]
    pub notification_retry_base: Option<Duration>,
    /// No notification attempt starts later than this after its event [default: 24h]
    #[arg(long, env = "SLIPWAY_NOTIFICATION_DEADLINE", value_name = "DURATION", value_parser = parse_duration)]
    pub notification_deadline: Option<Duration>,
    /// How often the pruning job runs [default: 1h]
    #[arg(long, env = "SLIPWAY_PRUNE_INTERVAL", value_name = "DURATION", value_parser = parse_duration)]
    pub prune_interval: Option<Duration>,
}

/// Where and how notifications are sent (see docs/operations.md).
#[derive(Debug, Clone)]
pub struct Notifications {
    pub allowed_networks: Vec<ipnet::IpNet>,
    pub allow_http: bool,
    pub retry_base: Duration,
    pub deadline: Duration,
}

/// A duration as a whole number and a unit: `30s`, `90m`, `24h`, `365d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?} is not a duration: use a whole number and s, m, h or d (e.g. 30d)")),
    };
    match number.parse::<u64>() {
        Ok(n) if n > 0 && n <= 100 * 365 => Ok(Duration::from_secs(n * seconds)),
        _ => Err(format!("{text:?} is not a duration: the number must be between 1 and 36500")),
    }
}

/// The shortest way to write `d` that `parse_duration` reads back.
fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    [(86_400, "d"), (3600, "h"), (60, "m")]
        .into_iter()
        .find(|(unit, _)| s.is_multiple_of(*unit))
        .map_or_else(|| format!("{s}s"), |(unit, name)| format!("{}{name}", s / unit))
}

/// The file's keys; every one optional, unknown keys rejected so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    public_url: Option<String>,
    max_body_bytes: Option<usize>,
    database_max_connections: Option<u32>,
    log_format: Option<LogFormat>,
    log: Option<String>,
    secret_key: Option<String>,
    registration_enabled: Option<bool>,
    job_worker: Option<bool>,
    job_lease_seconds: Option<u64>,
    job_concurrency: Option<usize>,
    job_concurrency_per_server: Option<usize>,
    ssh_connect_timeout_seconds: Option<u64>,
    command_idle_seconds: Option<u64>,
    acme_directory: Option<String>,
    acme_ca_bundle: Option<PathBuf>,
    certificate_check_interval: Option<String>,
    process_check_interval: Option<String>,
    session_idle: Option<String>,
    session_lifetime: Option<String>,
    rate_limit_api: Option<u32>,
    rate_limit_auth: Option<u32>,
    rate_limit_token_create: Option<u32>,
    rate_limit_backup_download: Option<u32>,
    retention_audit_events: Option<String>,
    retention_tokens: Option<String>,
    retention_job_logs: Option<String>,
    retention_deployment_logs_kept: Option<u32>,
    retention_jobs: Option<String>,
    retention_webhook_deliveries: Option<String>,
    retention_events: Option<String>,
    notification_allowed_networks: Option<Vec<String>>,
    notification_allow_http: Option<bool>,
    notification_retry_base: Option<String>,
    notification_deadline: Option<String>,
    retention_idempotency_keys: Option<String>,
    prune_interval: Option<String>,
}

/// The flag's duration, else the file's (parsed, naming the key when it is wrong), else `default`.
fn duration_setting(
    flag: Option<Duration>,
    file: Option<&str>,
    key: &str,
    default: Duration,
) -> anyhow::Result<Duration> {
    match (flag, file) {
        (Some(d), _) => Ok(d),
        (None, Some(text)) => parse_duration(text).map_err(|e| anyhow::anyhow!("{key}: {e}")),
        (None, None) => Ok(default),
    }
}

/// Where the secrets key comes from.
#[derive(Debug, Clone)]
pub enum SecretKeySource {
    /// `SLIPWAY_SECRET_KEY` or `secret_key` in the file.
    Given(Secret<String>),
    /// A key file in the data directory, generated on first start.
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub config_file: Option<PathBuf>,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Secret<String>,
    pub public_url: Option<String>,
    pub max_body_bytes: usize,
    pub database_max_connections: u32,
    pub log_format: LogFormat,
    pub log: String,
    pub secret_key: SecretKeySource,
    pub registration_enabled: bool,
    pub job_worker: bool,
    pub job_lease_seconds: u64,
    pub job_concurrency: usize,
    pub job_concurrency_per_server: usize,
    pub ssh_connect_timeout_seconds: u64,
    pub command_idle_seconds: u64,
    pub acme: slipway_engine::items::acme::AcmeSettings,
    pub certificate_check_interval: Duration,
    pub process_check_interval: Duration,
    pub session_idle: Duration,
    pub session_lifetime: Duration,
    pub rate_limits: slipway_api::state::RateLimits,
    pub retention: slipway_jobs::retention::Retention,
    pub notifications: Notifications,
}

impl Settings {
    /// Resolves the effective settings. `env_secret_key` is `SLIPWAY_SECRET_KEY`, passed in
    /// so that it never appears among flags (and so in `ps` output or shell history).
    pub fn resolve(args: &ServerArgs, env_secret_key: Option<String>) -> anyhow::Result<Self> {
        let provisional_data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
        let (config_file, file) = load_file(args.config.as_deref(), &provisional_data_dir)?;
        let data_dir = args.data_dir.clone().or(file.data_dir).unwrap_or_else(default_data_dir);
        let database_url = args
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("slipway.db").display()));
        let public_url = args.public_url.clone().or(file.public_url).map(|u| u.trim_end_matches('/').to_string());
        if let Some(url) = &public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("public_url must start with http:// or https:// (got {url:?})");
        }
        let max_body_bytes = args.max_body_bytes.or(file.max_body_bytes).unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes < 1024 {
            bail!("max_body_bytes must be at least 1024 (got {max_body_bytes})");
        }
        let database_max_connections =
            args.database_max_connections.or(file.database_max_connections).unwrap_or(DEFAULT_DB_MAX_CONNECTIONS);
        if database_max_connections == 0 {
            bail!("database_max_connections must be at least 1");
        }
        let secret_key = match env_secret_key.filter(|k| !k.trim().is_empty()).or(file.secret_key) {
            Some(key) => SecretKeySource::Given(Secret::new(key)),
            None => SecretKeySource::File(data_dir.join("secret.key")),
        };
        let job_lease_seconds = args.job_lease_seconds.or(file.job_lease_seconds).unwrap_or(60);
        if !(2..=3600).contains(&job_lease_seconds) {
            bail!("job_lease_seconds must be between 2 and 3600 (got {job_lease_seconds})");
        }
        let job_concurrency =
            args.job_concurrency.or(file.job_concurrency).unwrap_or(slipway_jobs::DEFAULT_CONCURRENCY);
        if !(1..=1024).contains(&job_concurrency) {
            bail!("job_concurrency must be between 1 and 1024 (got {job_concurrency})");
        }
        let job_concurrency_per_server = args
            .job_concurrency_per_server
            .or(file.job_concurrency_per_server)
            .unwrap_or(slipway_jobs::DEFAULT_PER_SERVER);
        if !(1..=1024).contains(&job_concurrency_per_server) {
            bail!("job_concurrency_per_server must be between 1 and 1024 (got {job_concurrency_per_server})");
        }
        let ssh_connect_timeout_seconds =
            args.ssh_connect_timeout_seconds.or(file.ssh_connect_timeout_seconds).unwrap_or(10);
        if !(1..=600).contains(&ssh_connect_timeout_seconds) {
            bail!("ssh_connect_timeout_seconds must be between 1 and 600 (got {ssh_connect_timeout_seconds})");
        }
        let command_idle_seconds = args.command_idle_seconds.or(file.command_idle_seconds).unwrap_or(300);
        if !(1..=86_400).contains(&command_idle_seconds) {
            bail!("command_idle_seconds must be between 1 and 86400 (got {command_idle_seconds})");
        }
        let defaults = slipway_api::state::RateLimits::default();
        let rate_limits = slipway_api::state::RateLimits {
            api_per_minute: args.rate_limit_api.or(file.rate_limit_api).unwrap_or(defaults.api_per_minute),
            auth_per_minute: args.rate_limit_auth.or(file.rate_limit_auth).unwrap_or(defaults.auth_per_minute),
            token_create_per_minute: args
                .rate_limit_token_create
                .or(file.rate_limit_token_create)
                .unwrap_or(defaults.token_create_per_minute),
            backup_download_per_hour: args
                .rate_limit_backup_download
                .or(file.rate_limit_backup_download)
                .unwrap_or(defaults.backup_download_per_hour),
        };
        if rate_limits.api_per_minute == 0
            || rate_limits.auth_per_minute == 0
            || rate_limits.token_create_per_minute == 0
        {
            bail!("rate limits must be at least 1");
        }
        let d = slipway_jobs::retention::Retention::default();
        let retention = slipway_jobs::retention::Retention {
            audit_events: duration_setting(
                args.retention_audit_events,
                file.retention_audit_events.as_deref(),
                "retention_audit_events",
                d.audit_events,
            )?,
            tokens: duration_setting(
                args.retention_tokens,
                file.retention_tokens.as_deref(),
                "retention_tokens",
                d.tokens,
            )?,
            job_logs: duration_setting(
                args.retention_job_logs,
                file.retention_job_logs.as_deref(),
                "retention_job_logs",
                d.job_logs,
            )?,
            keep_deployment_logs: args
                .retention_deployment_logs_kept
                .or(file.retention_deployment_logs_kept)
                .unwrap_or(d.keep_deployment_logs),
            jobs: duration_setting(args.retention_jobs, file.retention_jobs.as_deref(), "retention_jobs", d.jobs)?,
            webhook_deliveries: duration_setting(
                args.retention_webhook_deliveries,
                file.retention_webhook_deliveries.as_deref(),
                "retention_webhook_deliveries",
                d.webhook_deliveries,
            )?,
            idempotency_keys: duration_setting(
                args.retention_idempotency_keys,
                file.retention_idempotency_keys.as_deref(),
                "retention_idempotency_keys",
                d.idempotency_keys,
            )?,
            events: duration_setting(
                args.retention_events,
                file.retention_events.as_deref(),
                "retention_events",
                d.events,
            )?,
            interval: duration_setting(
                args.prune_interval,
                file.prune_interval.as_deref(),
                "prune_interval",
                d.interval,
            )?,
            ..d
        };
        let acme_directory = args
            .acme_directory
            .clone()
            .or(file.acme_directory)
            .unwrap_or_else(|| slipway_engine::items::acme::LETS_ENCRYPT.into());
        if !acme_directory.starts_with("https://") {
            bail!("acme_directory must be an https:// URL (got {acme_directory:?})");
        }
        let acme = slipway_engine::items::acme::AcmeSettings {
            directory: acme_directory,
            ca_bundle: args.acme_ca_bundle.clone().or(file.acme_ca_bundle),
        };
        let certificate_check_interval = duration_setting(
            args.certificate_check_interval,
            file.certificate_check_interval.as_deref(),
            "certificate_check_interval",
            slipway_engine::items::certificates::DEFAULT_CHECK_INTERVAL,
        )?;
        let process_check_interval = duration_setting(
            args.process_check_interval,
            file.process_check_interval.as_deref(),
            "process_check_interval",
            slipway_engine::items::watch::DEFAULT_CHECK_INTERVAL,
        )?;
        let sessions = slipway_api::ApiConfig::new("");
        let session_idle =
            duration_setting(args.session_idle, file.session_idle.as_deref(), "session_idle", sessions.session_idle)?;
        let session_lifetime = duration_setting(
            args.session_lifetime,
            file.session_lifetime.as_deref(),
            "session_lifetime",
            sessions.session_lifetime,
        )?;
        if session_idle.is_zero() || session_lifetime.is_zero() {
            anyhow::bail!("session_idle and session_lifetime must be longer than zero");
        }
        let defaults = slipway_engine::notify::NotifySettings::default();
        let mut allowed_networks = Vec::new();
        for cidr in
            args.notification_allowed_networks.clone().or(file.notification_allowed_networks).unwrap_or_default()
        {
            let cidr = cidr.trim();
            if cidr.is_empty() {
                continue;
            }
            allowed_networks.push(cidr.parse::<ipnet::IpNet>().map_err(|_| {
                anyhow::anyhow!("notification_allowed_networks: {cidr:?} is not a CIDR range (e.g. 10.0.0.0/8)")
            })?);
        }
        let notifications = Notifications {
            allowed_networks,
            allow_http: args.notification_allow_http.or(file.notification_allow_http).unwrap_or(false),
            retry_base: duration_setting(
                args.notification_retry_base,
                file.notification_retry_base.as_deref(),
                "notification_retry_base",
                defaults.retry_base,
            )?,
            deadline: duration_setting(
                args.notification_deadline,
                file.notification_deadline.as_deref(),
                "notification_deadline",
                defaults.deadline,
            )?,
        };
        Ok(Settings {
            notifications,
            acme,
            certificate_check_interval,
            process_check_interval,
            session_idle,
            session_lifetime,
            retention,
            registration_enabled: args.registration_enabled.or(file.registration_enabled).unwrap_or(false),
            job_worker: args.job_worker.or(file.job_worker).unwrap_or(true),
            job_lease_seconds,
            job_concurrency,
            job_concurrency_per_server,
            ssh_connect_timeout_seconds,
            command_idle_seconds,
            rate_limits,
            config_file,
            listen: args.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            data_dir,
            database_url: Secret::new(database_url),
            public_url,
            max_body_bytes,
            database_max_connections,
            log_format: args.log_format.or(file.log_format).unwrap_or(LogFormat::Human),
            log: args.log.clone().or(file.log).unwrap_or_else(|| "info".into()),
            secret_key,
        })
    }

    /// The effective configuration as TOML, with secrets redacted, for `slipway config`.
    pub fn render_redacted(&self) -> String {
        let secret_key = match &self.secret_key {
            SecretKeySource::Given(_) => "[redacted] (from SLIPWAY_SECRET_KEY or the config file)".to_string(),
            SecretKeySource::File(path) => format!("file {}", path.display()),
        };
        let value = serde_json::json!({
            "config_file": self.config_file.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(none)".into()),
            "listen": self.listen.to_string(),
            "data_dir": self.data_dir.display().to_string(),
            "database_url": slipway_store::redact_url(self.database_url.expose()),
            "public_url": self.public_url.clone().unwrap_or_else(|| format!("http://{} (derived from listen)", self.listen)),
            "max_body_bytes": self.max_body_bytes,
            "database_max_connections": self.database_max_connections,
            "log_format": self.log_format,
            "log": self.log,
            "secret_key": secret_key,
            "registration_enabled": self.registration_enabled,
            "job_worker": self.job_worker,
            "job_lease_seconds": self.job_lease_seconds,
            "job_concurrency": self.job_concurrency,
            "job_concurrency_per_server": self.job_concurrency_per_server,
            "ssh_connect_timeout_seconds": self.ssh_connect_timeout_seconds,
            "command_idle_seconds": self.command_idle_seconds,
            "acme_directory": self.acme.directory,
            "acme_ca_bundle": self.acme.ca_bundle.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(system roots)".into()),
            "certificate_check_interval": format_duration(self.certificate_check_interval),
            "process_check_interval": format_duration(self.process_check_interval),
            "session_idle": format_duration(self.session_idle),
            "session_lifetime": format_duration(self.session_lifetime),
            "rate_limit_api": self.rate_limits.api_per_minute,
            "rate_limit_auth": self.rate_limits.auth_per_minute,
            "rate_limit_token_create": self.rate_limits.token_create_per_minute,
            "rate_limit_backup_download": self.rate_limits.backup_download_per_hour,
            "retention_audit_events": format_duration(self.retention.audit_events),
            "retention_tokens": format_duration(self.retention.tokens),
            "retention_job_logs": format_duration(self.retention.job_logs),
            "retention_deployment_logs_kept": self.retention.keep_deployment_logs,
            "retention_jobs": format_duration(self.retention.jobs),
            "retention_webhook_deliveries": format_duration(self.retention.webhook_deliveries),
            "retention_idempotency_keys": format_duration(self.retention.idempotency_keys),
            "retention_events": format_duration(self.retention.events),
            "prune_interval": format_duration(self.retention.interval),
            "notification_allowed_networks": self.notifications.allowed_networks.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            "notification_allow_http": self.notifications.allow_http,
            "notification_retry_base": format_duration(self.notifications.retry_base),
            "notification_deadline": format_duration(self.notifications.deadline),
        });
        toml::to_string(&value).unwrap_or_else(|e| format!("# could not render configuration: {e}\n"))
    }
}

fn load_file(explicit: Option<&Path>, data_dir: &Path) -> anyhow::Result<(Option<PathBuf>, FileConfig)> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => {
            let candidate = data_dir.join(CONFIG_FILE_NAME);
            if !candidate.exists() {
                return Ok((None, FileConfig::default()));
            }
            candidate
        }
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read config file {}", path.display()))?;
    let file = toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))?;
    Ok((Some(path), file))
}

/// `$XDG_DATA_HOME/slipway`, else `~/.local/share/slipway`, else `/var/lib/slipway`.
pub fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("slipway");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/slipway");
    }
    PathBuf::from("/var/lib/slipway")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of the test's own under the system's temporary directory, removed when the
    /// test ends (every CI run used to leave thirteen behind).
    struct TempDir(PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    impl std::ops::Deref for TempDir {
        type Target = PathBuf;

        fn deref(&self) -> &PathBuf {
            &self.0
        }
    }

    fn temp_dir() -> TempDir {
        let dir = std::env::temp_dir().join(format!("slipway-config-{}", slipway_core::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    #[test]
    fn defaults_derive_from_the_data_dir() {
        let dir = temp_dir();
        let args = ServerArgs { data_dir: Some(dir.clone()), ..Default::default() };
        let s = Settings::resolve(&args, None).unwrap();
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.database_url.expose(), &format!("sqlite://{}/slipway.db", dir.display()));
        assert!(matches!(s.secret_key, SecretKeySource::File(ref p) if *p == dir.join("secret.key")));
        assert_eq!((s.max_body_bytes, s.log_format, s.config_file), (DEFAULT_MAX_BODY_BYTES, LogFormat::Human, None));
    }

    #[test]
    fn file_fills_what_flags_do_not_give_and_flags_win() {
        let dir = temp_dir();
        std::fs::write(
            dir.join(CONFIG_FILE_NAME),
            "listen = \"127.0.0.1:9000\"\nmax_body_bytes = 4096\nlog_format = \"json\"\npublic_url = \"https://cp.example/\"\n",
        )
        .unwrap();
        let args = ServerArgs { data_dir: Some(dir.clone()), max_body_bytes: Some(8192), ..Default::default() };
        let s = Settings::resolve(&args, None).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(s.max_body_bytes, 8192, "the flag wins over the file");
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.public_url.as_deref(), Some("https://cp.example"));
        assert_eq!(s.config_file, Some(dir.join(CONFIG_FILE_NAME)));
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        let dir = temp_dir();
        std::fs::write(dir.join(CONFIG_FILE_NAME), "lisen = \"127.0.0.1:9000\"\n").unwrap();
        let args = ServerArgs { data_dir: Some(dir.clone()), ..Default::default() };
        let err = format!("{:#}", Settings::resolve(&args, None).unwrap_err());
        assert!(err.contains("unknown field `lisen`"), "{err}");

        let args = ServerArgs { config: Some(dir.join("missing.toml")), ..Default::default() };
        assert!(format!("{:#}", Settings::resolve(&args, None).unwrap_err()).contains("cannot read config file"));

        // A data directory without a config file, for the checks of flags alone.
        let fresh = temp_dir();
        let args =
            ServerArgs { data_dir: Some(fresh.clone()), public_url: Some("cp.example".into()), ..Default::default() };
        assert!(Settings::resolve(&args, None).unwrap_err().to_string().contains("public_url must start with"));

        for bad in [0, 1025] {
            let args = ServerArgs { data_dir: Some(fresh.clone()), job_concurrency: Some(bad), ..Default::default() };
            let err = Settings::resolve(&args, None).unwrap_err().to_string();
            assert!(err.contains("job_concurrency must be between 1 and 1024"), "{err}");
            let args = ServerArgs {
                data_dir: Some(fresh.clone()),
                job_concurrency_per_server: Some(bad),
                ..Default::default()
            };
            let err = Settings::resolve(&args, None).unwrap_err().to_string();
            assert!(err.contains("job_concurrency_per_server must be between 1 and 1024"), "{err}");
        }
    }

    #[test]
    fn job_concurrency_and_check_intervals_come_from_the_file_or_default() {
        let dir = temp_dir();
        let args = ServerArgs { data_dir: Some(dir.clone()), ..Default::default() };
        let s = Settings::resolve(&args, None).unwrap();
        assert_eq!((s.job_concurrency, s.job_concurrency_per_server), (32, 4));
        assert_eq!(s.process_check_interval, Duration::from_secs(300));
        let file = "job_concurrency = 64\njob_concurrency_per_server = 8\nprocess_check_interval = \"1m\"\n";
        std::fs::write(dir.join(CONFIG_FILE_NAME), file).unwrap();
        let s = Settings::resolve(&args, None).unwrap();
        assert_eq!((s.job_concurrency, s.job_concurrency_per_server), (64, 8));
        assert_eq!(s.process_check_interval, Duration::from_secs(60));
        assert!(s.render_redacted().contains("job_concurrency = 64"));
        assert!(s.render_redacted().contains("job_concurrency_per_server = 8"));
    }

    #[test]
    fn dashboard_sessions_default_to_two_hours_idle_and_twelve_in_all() {
        let dir = temp_dir();
        let args = ServerArgs { data_dir: Some(dir.clone()), ..Default::default() };
        let s = Settings::resolve(&args, None).unwrap();
        assert_eq!((s.session_idle, s.session_lifetime), (Duration::from_secs(7200), Duration::from_secs(43200)));
        std::fs::write(dir.join(CONFIG_FILE_NAME), "session_idle = \"30m\"\nsession_lifetime = \"8h\"\n").unwrap();
        let s = Settings::resolve(&args, None).unwrap();
        assert_eq!((s.session_idle, s.session_lifetime), (Duration::from_secs(1800), Duration::from_secs(28800)));
        assert!(s.render_redacted().contains("session_idle = \"30m\""), "{}", s.render_redacted());
        std::fs::write(dir.join(CONFIG_FILE_NAME), "session_idle = \"soon\"\n").unwrap();
        let err = Settings::resolve(&args, None).unwrap_err().to_string();
        assert!(err.contains("session_idle"), "{err}");
    }

    #[test]
    fn retention_settings_parse_and_render_back() {
        let dir = temp_dir();
        std::fs::write(dir.join(CONFIG_FILE_NAME), "retention_audit_events = \"90d\"\nprune_interval = \"15m\"\n")
            .unwrap();
        let args = ServerArgs {
            data_dir: Some(dir.clone()),
            retention_tokens: Some(parse_duration("12h").unwrap()),
            ..Default::default()
        };
        let s = Settings::resolve(&args, None).unwrap();
        assert_eq!(s.retention.audit_events, Duration::from_secs(90 * 86_400));
        assert_eq!(s.retention.tokens, Duration::from_secs(12 * 3600));
        assert_eq!(s.retention.interval, Duration::from_secs(900));
        assert_eq!(s.retention.idempotency_keys, Duration::from_secs(86_400), "the default");
        let text = s.render_redacted();
        assert!(text.contains("retention_audit_events = \"90d\""), "{text}");
        assert!(text.contains("retention_idempotency_keys = \"1d\""), "{text}");
        for bad in ["30", "30 days", "0d", "-1d", "1w", ""] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        std::fs::write(dir.join(CONFIG_FILE_NAME), "retention_jobs = \"forever\"\n").unwrap();
        let err = format!(
            "{:#}",
            Settings::resolve(&ServerArgs { data_dir: Some(dir.clone()), ..Default::default() }, None).unwrap_err()
        );
        assert!(err.contains("retention_jobs"), "{err}");
    }

    #[test]
    fn rendering_redacts_secrets() {
        let dir = temp_dir();
        let args = ServerArgs {
            data_dir: Some(dir.clone()),
            database_url: Some("postgres://slipway:hunter2@db.internal/slipway".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&args, Some("c2VjcmV0LWtleS1tYXRlcmlhbA==".into())).unwrap();
        let text = s.render_redacted();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("c2VjcmV0"), "{text}");
        assert!(text.contains("postgres://slipway:redacted@db.internal/slipway"), "{text}");

        // A password can be given as a query parameter too (libpq's `password`, `sslpassword`).
        let args = ServerArgs {
            data_dir: Some(dir.clone()),
            database_url: Some("postgres://u@h/d?sslmode=require&password=hunter2&SSLPassword=s3cret".into()),
            ..Default::default()
        };
        let text = Settings::resolve(&args, None).unwrap().render_redacted();
        assert!(!text.contains("hunter2") && !text.contains("s3cret"), "{text}");
        assert!(text.contains("postgres://u@h/d?sslmode=require&password=redacted&SSLPassword=redacted"), "{text}");
    }
}
