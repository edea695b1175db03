//! Durable jobs and their logs ([`JobStore`]).

use async_trait::async_trait;
use slipway_core::PageRequest;
use slipway_core::time::{Timestamp, now};
use sqlx::{Postgres, QueryBuilder, Sqlite};

use super::{SqlStore, as_u64, columns, exact_fields, insert_into};
use crate::model::{CancelOutcome, Heartbeat, Job, JobEnd, JobLogLine, NewJob, NewLogLine, Reaped};
use crate::{JobStore, StoreError, StoreResult};

/// The columns of `jobs`: the fields of [`Job`] (see `sql/mod.rs`).
macro_rules! job_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*;
            id, kind, payload, organization_id, resource_key, server_key, idempotent, status, attempts, max_attempts, run_at,
            lease_owner, lease_expires_at, cancel_requested_at, created_at, started_at, finished_at, exit_code,
            failure_reason
        }
    };
}
job_fields!(exact_fields!(Job));

/// The columns of `jobs` that a [`NewJob`] gives; `enqueue_job` sets `status`, `attempts` and
/// `created_at` itself, and leaves the rest (lease, times, outcome) empty.
macro_rules! new_job_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*; id, kind, payload, organization_id, resource_key, server_key, idempotent, max_attempts, run_at }
    };
}
new_job_fields!(exact_fields!(NewJob));

/// The columns of `job_logs` that a [`JobLogLine`] reads: all but `job_id`, which the query
/// names. (`append_job_log` writes a batch of lines, listing the columns itself.)
macro_rules! job_log_line_fields {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*; seq, at, stream, line }
    };
}
job_log_line_fields!(exact_fields!(JobLogLine));

macro_rules! impl_job_store {
    ($db:ty, $claim_lock:literal, $clock:literal) => {
        #[async_trait]
        impl JobStore for SqlStore<$db> {
            fn job_activity(&self, job_id: &str) -> tokio::sync::watch::Receiver<u64> {
                self.activity.subscribe(job_id)
            }

            async fn enqueue_job(&self, j: &NewJob) -> StoreResult<()> {
                new_job_fields!(insert_into!(
                    $db, "jobs", j, extra(status = sql("'queued'"), attempts = sql("0"), created_at = bind(now()))
                ))
                .build().execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn job(&self, id: &str) -> StoreResult<Option<Job>> {
                sqlx::query_as(concat!("SELECT ", job_fields!(columns!()), " FROM jobs WHERE id = $1"))
                    .bind(id).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn jobs_for_resource(&self, resource_key: &str, page: PageRequest) -> StoreResult<(Vec<Job>, u64)> {
                let total: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE resource_key = $1 LIMIT $2) AS counted")
                        .bind(resource_key).bind(page.count_limit()).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let rows = sqlx::query_as(concat!(
                    "SELECT ", job_fields!(columns!()), " FROM jobs WHERE resource_key = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
                ))
                .bind(resource_key).bind(page.limit()).bind(page.offset())
                .fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok((rows, as_u64(total)))
            }

            async fn database_time(&self) -> StoreResult<Timestamp> {
                sqlx::query_scalar($clock).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn claim_job_within(
                &self,
                worker: &str,
                at: Timestamp,
                lease_until: Timestamp,
                per_server: i64,
            ) -> StoreResult<Option<Job>> {
                let claimed = sqlx::query_as(concat!(
                    "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = $1, lease_expires_at = $3, \
                     started_at = COALESCE(started_at, $2) \
                     WHERE status = 'queued' AND id = (SELECT j.id FROM jobs j WHERE j.status = 'queued' AND j.run_at <= $2 \
                       AND (j.resource_key IS NULL OR NOT EXISTS \
                         (SELECT 1 FROM jobs r WHERE r.resource_key = j.resource_key AND r.status = 'running')) \
                       AND (j.server_key IS NULL OR \
                         (SELECT COUNT(*) FROM jobs s WHERE s.server_key = j.server_key AND s.status = 'running') < $4) \
                       ORDER BY j.run_at, j.id LIMIT 1", $claim_lock, ") \
                     RETURNING ", job_fields!(columns!())
                ))
                .bind(worker).bind(at).bind(lease_until).bind(per_server)
                .fetch_optional(&self.pool).await;
                match claimed {
                    Ok(job) => Ok(job),
                    // Two workers raced for jobs of the same resource; the unique index let one win.
                    Err(e) => match StoreError::from_sqlx(e) {
                        StoreError::Conflict(_) => Ok(None),
                        other => Err(other),
                    },
                }
            }

            async fn heartbeat_job(&self, id: &str, worker: &str, lease_until: Timestamp) -> StoreResult<Heartbeat> {
                let row: Option<(Option<Timestamp>,)> = sqlx::query_as(
                    "UPDATE jobs SET lease_expires_at = $3 WHERE id = $1 AND lease_owner = $2 AND status = 'running' \
                     RETURNING cancel_requested_at",
                )
                .bind(id).bind(worker).bind(lease_until)
                .fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(match row {
                    None => Heartbeat::Lost,
                    Some((Some(_),)) => Heartbeat::CancelRequested,
                    Some((None,)) => Heartbeat::Held,
                })
            }

            async fn finish_job(&self, id: &str, worker: &str, end: &JobEnd, at: Timestamp) -> StoreResult<bool> {
                let query = match end {
                    // A retry of a job someone asked to cancel is a cancellation instead.
                    JobEnd::Retry { run_at, reason } => sqlx::query(
                        "UPDATE jobs SET \
                         status = CASE WHEN cancel_requested_at IS NULL THEN 'queued' ELSE 'cancelled' END, \
                         finished_at = CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE $5 END, \
                         run_at = $3, \
                         failure_reason = CASE WHEN cancel_requested_at IS NULL THEN $4 ELSE 'cancelled by request' END, \
                         lease_owner = NULL, lease_expires_at = NULL \
                         WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
                    )
                    .bind(id).bind(worker).bind(*run_at).bind(reason.clone()).bind(at),
                    other => {
                        let (status, reason, code) = match other {
                            JobEnd::Succeeded => ("succeeded", None, None),
                            JobEnd::Failed { reason, exit_code } => ("failed", Some(reason.clone()), *exit_code),
                            JobEnd::Cancelled { reason } => ("cancelled", Some(reason.clone()), None),
                            JobEnd::Retry { .. } => unreachable!("handled above"),
                        };
                        sqlx::query(
                            "UPDATE jobs SET status = $3, failure_reason = $4, exit_code = $5, finished_at = $6, \
                             lease_owner = NULL, lease_expires_at = NULL \
                             WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
                        )
                        .bind(id).bind(worker).bind(status).bind(reason).bind(code).bind(at)
                    }
                };
                let done = query.execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                self.announce_activity(id).await;
                Ok(done.rows_affected() == 1)
            }

            async fn cancel_job(&self, id: &str, at: Timestamp) -> StoreResult<CancelOutcome> {
                let queued = sqlx::query(
                    "UPDATE jobs SET status = 'cancelled', finished_at = $2, failure_reason = 'cancelled before it started' \
                     WHERE id = $1 AND status = 'queued'",
                )
                .bind(id).bind(at).execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                if queued.rows_affected() == 1 {
                    return Ok(CancelOutcome::Cancelled);
                }
                let running = sqlx::query(
                    "UPDATE jobs SET cancel_requested_at = COALESCE(cancel_requested_at, $2) WHERE id = $1 AND status = 'running'",
                )
                .bind(id).bind(at).execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                if running.rows_affected() == 1 {
                    return Ok(CancelOutcome::Requested);
                }
                Ok(match self.job(id).await? {
                    Some(_) => CancelOutcome::AlreadyFinished,
                    None => CancelOutcome::NotFound,
                })
            }

            async fn reap_jobs(&self, at: Timestamp, retry_at: &(dyn Fn(i64) -> Timestamp + Send + Sync)) -> StoreResult<Reaped> {
                let expired: Vec<(String, bool, i64, i64, Option<Timestamp>)> = sqlx::query_as(
                    "SELECT id, idempotent, attempts, max_attempts, cancel_requested_at FROM jobs \
                     WHERE status = 'running' AND lease_expires_at < $1",
                )
                .bind(at).fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let mut reaped = Reaped::default();
                for (id, idempotent, attempts, max_attempts, cancel_requested) in expired {
                    // Each update re-checks the lease, so a heartbeat that arrived meanwhile wins.
                    let (done, requeued) = if cancel_requested.is_some() {
                        // Someone asked to stop it: it ends cancelled, it does not run again.
                        let q = sqlx::query(
                            "UPDATE jobs SET status = 'cancelled', finished_at = $2, lease_owner = NULL, lease_expires_at = NULL, \
                             failure_reason = 'cancelled by request' WHERE id = $1 AND status = 'running' AND lease_expires_at < $2",
                        )
                        .bind(&id).bind(at);
                        (q.execute(&self.pool).await.map_err(StoreError::from_sqlx)?, false)
                    } else if idempotent && attempts < max_attempts {
                        let q = sqlx::query(
                            "UPDATE jobs SET status = 'queued', run_at = $2, lease_owner = NULL, lease_expires_at = NULL, \
                             failure_reason = 'interrupted; retrying' \
                             WHERE id = $1 AND status = 'running' AND lease_expires_at < $3",
                        )
                        .bind(&id).bind(retry_at(attempts)).bind(at);
                        (q.execute(&self.pool).await.map_err(StoreError::from_sqlx)?, true)
                    } else {
                        let q = sqlx::query(
                            "UPDATE jobs SET status = 'failed', finished_at = $2, lease_owner = NULL, lease_expires_at = NULL, \
                             failure_reason = 'interrupted' WHERE id = $1 AND status = 'running' AND lease_expires_at < $2",
                        )
                        .bind(&id).bind(at);
                        (q.execute(&self.pool).await.map_err(StoreError::from_sqlx)?, false)
                    };
                    if done.rows_affected() == 1 {
                        if requeued { reaped.requeued.push(id) } else { reaped.failed.push(id) }
                    }
                }
                Ok(reaped)
            }

            async fn last_job_log_seq(&self, job_id: &str) -> StoreResult<i64> {
                sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM job_logs WHERE job_id = $1")
                    .bind(job_id).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn append_job_log(&self, job_id: &str, first_seq: i64, entries: &[NewLogLine]) -> StoreResult<()> {
                if entries.is_empty() {
                    return Ok(());
                }
                let mut insert = QueryBuilder::<$db>::new("INSERT INTO job_logs (job_id, seq, at, stream, line) ");
                insert.push_values(entries.iter().enumerate(), |mut row, (i, entry)| {
                    row.push_bind(job_id.to_string()).push_bind(first_seq + i as i64).push_bind(entry.at)
                        .push_bind(entry.stream.clone()).push_bind(entry.line.clone());
                });
                insert.build().execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                self.announce_activity(job_id).await;
                Ok(())
            }

            async fn job_log(&self, job_id: &str, after_seq: i64, limit: i64) -> StoreResult<Vec<JobLogLine>> {
                sqlx::query_as(concat!(
                    "SELECT ", job_log_line_fields!(columns!()), " FROM job_logs WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                ))
                    .bind(job_id).bind(after_seq).bind(limit)
                    .fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)
            }
        }
    };
}

// SQLite runs one writer at a time, so its single-statement claim is atomic as it is; on
// PostgreSQL, SKIP LOCKED lets concurrent workers pass over a row another worker is claiming.
// The clock: `clock_timestamp()` is the time of the call (`now()` would be the transaction's
// start); SQLite's 'now' is the host's clock, in milliseconds, as RFC 3339 text.
impl_job_store!(Sqlite, "", "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')");
impl_job_store!(Postgres, " FOR UPDATE SKIP LOCKED", "SELECT clock_timestamp()");
