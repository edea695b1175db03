//! Retention: a durable job that deletes what Slipway no longer needs to keep, so its own
//! database stays bounded over years of use. It runs once per interval (an hour by default):
//! each run first enqueues the next one under an id derived from the time slot, so however many
//! replicas schedule it, one job exists per slot, and its lock key lets one run at a time.
//! Rows go in small batches with a pause between them, so requests never wait long behind it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use slipway_core::time::{Timestamp, now};
use slipway_store::{PruneRule, Store, StoreError};

use crate::{JobContext, JobError, JobHandler, JobSpec};

pub const PRUNE_JOB: &str = "slipway.prune";
/// Only one pruning job runs at a time, across every replica.
pub const PRUNE_LOCK: &str = "slipway:retention";
/// Where the last run's figures are kept (read by `/metrics` on every replica).
pub const REPORT_SETTING: &str = "retention.report";

/// How long each kind of record is kept. Defaults are in docs/operations.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub audit_events: Duration,
    /// After a token's revocation or expiry (its JWT families go with it).
    pub tokens: Duration,
    /// Job and deployment logs younger than this are kept…
    pub job_logs: Duration,
    /// …and so are the logs of each site's last this many deployments.
    pub keep_deployment_logs: u32,
    /// Finished jobs (operations), once their log is not kept either.
    pub jobs: Duration,
    /// Webhook deliveries and the delivery ids claimed to refuse replays.
    pub webhook_deliveries: Duration,
    pub idempotency_keys: Duration,
    /// Events (`GET /api/v1/events`) and their notification deliveries.
    pub events: Duration,
    /// How often the pruning job runs.
    pub interval: Duration,
    /// Rows per statement, and the pause between statements.
    pub batch: u32,
    pub pause: Duration,
}

const DAY: u64 = 24 * 3600;

impl Default for Retention {
    fn default() -> Self {
        Retention {
            audit_events: Duration::from_secs(365 * DAY),
            tokens: Duration::from_secs(30 * DAY),
            job_logs: Duration::from_secs(30 * DAY),
            keep_deployment_logs: 10,
            jobs: Duration::from_secs(30 * DAY),
            webhook_deliveries: Duration::from_secs(30 * DAY),
            idempotency_keys: Duration::from_secs(DAY),
            events: Duration::from_secs(90 * DAY),
            interval: Duration::from_secs(3600),
            batch: 500,
            pause: Duration::from_millis(20),
        }
    }
}

/// `d` before `at`, or 1970 when that is further back (nothing is older).
fn ago(at: Timestamp, d: Duration) -> Timestamp {
    chrono::Duration::from_std(d).ok().and_then(|d| at.checked_sub_signed(d)).unwrap_or(chrono::DateTime::UNIX_EPOCH)
}

impl Retention {
    /// The rules to apply at `at`, in order (job logs before jobs, so deleting a job cascades
    /// over few rows).
    pub fn rules(&self, at: Timestamp) -> Vec<PruneRule> {
        let keep_deployments = i64::from(self.keep_deployment_logs);
        vec![
            PruneRule::RateLimits { now_unix: at.timestamp() },
            PruneRule::IdempotencyKeys { before: ago(at, self.idempotency_keys) },
            PruneRule::AuditEvents { before: ago(at, self.audit_events) },
            PruneRule::Tokens { before: ago(at, self.tokens) },
            PruneRule::JobLogs { before: ago(at, self.job_logs), keep_deployments },
            PruneRule::Jobs { before: ago(at, self.jobs), logs_before: ago(at, self.job_logs), keep_deployments },
            PruneRule::WebhookDeliveries { before: ago(at, self.webhook_deliveries) },
            PruneRule::Events { before: ago(at, self.events) },
        ]
    }

    fn slot_start_ms(&self, at: Timestamp) -> u64 {
        let every = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX).max(1);
        let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        ms / every * every
    }
}

/// Enqueues the pruning run of the time slot that contains `at` (due at `run_at`, default the
/// start of the slot); false when that slot's run already exists (another replica, or an
/// earlier start, enqueued it).
pub async fn schedule(store: &dyn Store, retention: &Retention, at: Timestamp) -> Result<bool, StoreError> {
    let start = retention.slot_start_ms(at);
    let run_at = chrono::DateTime::from_timestamp_millis(i64::try_from(start).unwrap_or(0)).unwrap_or(at);
    let spec = JobSpec::new(PRUNE_JOB, serde_json::json!({})).resource(PRUNE_LOCK).idempotent(3).at(run_at);
    match crate::enqueue(store, spec.with_id(slipway_core::id::id_at(start))).await {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// What a run deleted and what is left; stored under [`REPORT_SETTING`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub finished_at: Option<Timestamp>,
    /// Rows deleted by the last run, by rule.
    pub pruned: Vec<(String, u64)>,
    /// Rows deleted since the first run, by rule (a counter across restarts and replicas).
    pub pruned_total: Vec<(String, u64)>,
    /// Rows in each table after the last run.
    pub rows: Vec<(String, i64)>,
    pub database_bytes: i64,
}

/// The pruning job's handler.
#[derive(Debug, Clone)]
pub struct Prune {
    pub store: Arc<dyn Store>,
    pub retention: Retention,
}

#[async_trait]
impl JobHandler for Prune {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let store = self.store.as_ref();
        let retryable = |e: StoreError| JobError::Retryable { reason: format!("database error: {e}") };
        // The next run first: a run that fails still leaves one scheduled.
        let next = now() + chrono::Duration::from_std(self.retention.interval).unwrap_or(chrono::Duration::hours(1));
        schedule(store, &self.retention, next).await.map_err(retryable)?;

        let at = now();
        let mut pruned = Vec::new();
        for rule in self.retention.rules(at) {
            let mut deleted = 0;
            loop {
                if ctx.is_cancelled() {
                    return Err(JobError::Cancelled);
                }
                let n = store.prune(&rule, i64::from(self.retention.batch.max(1))).await.map_err(retryable)?;
                if n == 0 {
                    break;
                }
                deleted += n;
                tokio::time::sleep(self.retention.pause).await;
            }
            ctx.log("info", format!("{}: {deleted} deleted", rule.name()));
            pruned.push((rule.name().to_string(), deleted));
        }
        let freed = store.reclaim_free_pages().await.map_err(retryable)?;
        if freed > 0 {
            ctx.log("info", format!("gave {freed} free pages back to the file system"));
        }

        let previous: Report = store
            .setting(REPORT_SETTING)
            .await
            .map_err(retryable)?
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        let mut pruned_total = previous.pruned_total;
        for (name, n) in &pruned {
            match pruned_total.iter_mut().find(|(known, _)| known == name) {
                Some((_, total)) => *total += n,
                None => pruned_total.push((name.clone(), *n)),
            }
        }
        let rows = store.table_counts().await.map_err(retryable)?;
        let report = Report {
            finished_at: Some(now()),
            pruned,
            pruned_total,
            rows: rows.into_iter().map(|(t, n)| (t.to_string(), n)).collect(),
            database_bytes: store.database_size().await.map_err(retryable)?,
        };
        let text = serde_json::to_string(&report).expect("a report serialises");
        store.put_setting(REPORT_SETTING, &text).await.map_err(retryable)?;
        let deleted: u64 = report.pruned.iter().map(|(_, n)| n).sum();
        tracing::info!(
            deleted,
            database_bytes = report.database_bytes,
            by_rule = ?report.pruned,
            "retention: pruned old records"
        );
        Ok(())
    }
}
