//! Deleting old rows, and the database's size and upkeep ([`RetentionStore`]).

use async_trait::async_trait;
use slipway_core::time::Timestamp;
use sqlx::{Database, Postgres, Sqlite};

use super::SqlStore;
use crate::model::{COUNTED_TABLES, PruneRule};
use crate::{Backend, RetentionStore, StoreError, StoreResult};

/// SQL true when job `$j` belongs to one of its site's last `$2` deployments, whose log is
/// kept whatever its age.
macro_rules! kept_deployment_job {
    ($j:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM deployments d WHERE d.job_id = ",
            $j,
            ".id AND \
             (SELECT COUNT(*) FROM deployments n WHERE n.site_id = d.site_id AND n.id > d.id) < $2)"
        )
    };
}

macro_rules! impl_retention_store {
    ($db:ty, $backend:expr) => {
        #[async_trait]
        impl RetentionStore for SqlStore<$db> {
            async fn prune(&self, rule: &PruneRule, limit: i64) -> StoreResult<u64> {
                // Each statement deletes the rows a bounded subquery picks, so one batch is one
                // short write whatever the table's size. Row-value `IN` works on both backends.
                let run = |sql: &'static str, cutoff: Timestamp| {
                    sqlx::query(sql).bind(cutoff).bind(limit).execute(&self.pool)
                };
                let rows = |r: Result<<$db as Database>::QueryResult, sqlx::Error>| {
                    r.map(|d| d.rows_affected()).map_err(StoreError::from_sqlx)
                };
                match rule {
                    PruneRule::AuditEvents { before } => rows(run(
                        "DELETE FROM audit_events WHERE id IN \
                         (SELECT id FROM audit_events WHERE occurred_at < $1 LIMIT $2)", *before).await),
                    PruneRule::Tokens { before } => {
                        let refresh = rows(run(
                            "DELETE FROM refresh_tokens WHERE id IN \
                             (SELECT id FROM refresh_tokens WHERE expires_at < $1 LIMIT $2)", *before).await)?;
                        let families = rows(run(
                            "DELETE FROM token_families WHERE id IN (SELECT f.id FROM token_families f \
                             WHERE f.revoked_at < $1 OR (f.created_at < $1 AND NOT EXISTS \
                             (SELECT 1 FROM refresh_tokens r WHERE r.family_id = f.id)) LIMIT $2)", *before).await)?;
                        // Their families and refresh tokens go with them (ON DELETE CASCADE).
                        let tokens = rows(run(
                            "DELETE FROM access_tokens WHERE id IN (SELECT id FROM access_tokens \
                             WHERE revoked_at < $1 UNION SELECT id FROM access_tokens WHERE expires_at < $1 LIMIT $2)",
                            *before).await)?;
                        Ok(refresh + families + tokens)
                    }
                    PruneRule::JobLogs { before, keep_deployments } => {
                        let done = sqlx::query(concat!(
                            "DELETE FROM job_logs WHERE (job_id, seq) IN (SELECT l.job_id, l.seq FROM jobs j \
                             JOIN job_logs l ON l.job_id = j.id \
                             WHERE j.status IN ('succeeded', 'failed', 'cancelled') AND j.finished_at < $1 \
                             AND NOT ", kept_deployment_job!("j"), " LIMIT $3)"
                        ))
                        .bind(*before).bind(*keep_deployments).bind(limit)
                        .execute(&self.pool).await;
                        rows(done)
                    }
                    PruneRule::Jobs { before, logs_before, keep_deployments } => {
                        // Finished jobs whose log is no longer kept; their log lines are already
                        // gone (JobLogs runs first), so the cascade deletes little.
                        let done = sqlx::query(concat!(
                            "DELETE FROM jobs WHERE id IN (SELECT j.id FROM jobs j \
                             WHERE j.status IN ('succeeded', 'failed', 'cancelled') AND j.finished_at < $1 \
                             AND j.finished_at < $4 AND NOT ", kept_deployment_job!("j"), " LIMIT $3)"
                        ))
                        .bind(*before).bind(*keep_deployments).bind(limit).bind(*logs_before)
                        .execute(&self.pool).await;
                        rows(done)
                    }
                    PruneRule::WebhookDeliveries { before } => {
                        let deliveries = rows(run(
                            "DELETE FROM webhook_deliveries WHERE id IN \
                             (SELECT id FROM webhook_deliveries WHERE received_at < $1 LIMIT $2)", *before).await)?;
                        let ids = rows(run(
                            "DELETE FROM webhook_delivery_ids WHERE (repository_id, delivery_id) IN \
                             (SELECT repository_id, delivery_id FROM webhook_delivery_ids WHERE received_at < $1 LIMIT $2)",
                            *before).await)?;
                        Ok(deliveries + ids)
                    }
                    PruneRule::IdempotencyKeys { before } => rows(run(
                        "DELETE FROM idempotency_keys WHERE (principal, key) IN \
                         (SELECT principal, key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)", *before).await),
                    PruneRule::Events { before } => {
                        // Deliveries first: they name their event.
                        let deliveries = rows(run(
                            "DELETE FROM notification_deliveries WHERE id IN (SELECT d.id FROM notification_deliveries d \
                             JOIN events e ON e.id = d.event_id WHERE e.occurred_at < $1 LIMIT $2)", *before).await)?;
                        let events = rows(run(
                            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE occurred_at < $1 LIMIT $2)",
                            *before).await)?;
                        Ok(deliveries + events)
                    }
                    PruneRule::RateLimits { now_unix } => rows(
                        sqlx::query(
                            "DELETE FROM rate_limits WHERE (key, window_start) IN \
                             (SELECT key, window_start FROM rate_limits WHERE expires_at < $1 LIMIT $2)",
                        )
                        .bind(*now_unix).bind(limit).execute(&self.pool).await,
                    ),
                }
            }

            async fn table_counts(&self) -> StoreResult<Vec<(&'static str, i64)>> {
                let mut counts = Vec::with_capacity(COUNTED_TABLES.len());
                for table in COUNTED_TABLES {
                    // The names are our own constants, so splicing them is safe.
                    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                        .fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                    counts.push((table, n));
                }
                Ok(counts)
            }

            async fn database_size(&self) -> StoreResult<i64> {
                let sql = match $backend {
                    Backend::Sqlite => "SELECT p.page_count * s.page_size FROM pragma_page_count() p, pragma_page_size() s",
                    Backend::Postgres => "SELECT pg_database_size(current_database())",
                };
                sqlx::query_scalar(sql).fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn reclaim_free_pages(&self) -> StoreResult<i64> {
                if $backend != Backend::Sqlite {
                    return Ok(0);
                }
                let (mode, pages, free): (i64, i64, i64) = sqlx::query_as(
                    "SELECT a.auto_vacuum, p.page_count, f.freelist_count \
                     FROM pragma_auto_vacuum() a, pragma_page_count() p, pragma_freelist_count() f",
                )
                .fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
                // 2 = incremental. Below a quarter, later writes reuse the free pages anyway.
                if mode != 2 || free * 4 < pages {
                    return Ok(0);
                }
                sqlx::query("PRAGMA incremental_vacuum").execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(free)
            }

            async fn compact(&self) -> StoreResult<()> {
                let mut conn = self.pool.acquire().await.map_err(StoreError::from_sqlx)?;
                if $backend == Backend::Sqlite {
                    // Takes effect with the VACUUM that follows, on databases made before it.
                    sqlx::query("PRAGMA auto_vacuum = INCREMENTAL").execute(&mut *conn).await.map_err(StoreError::from_sqlx)?;
                }
                sqlx::query("VACUUM").execute(&mut *conn).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }
        }
    };
}

impl_retention_store!(Sqlite, Backend::Sqlite);
impl_retention_store!(Postgres, Backend::Postgres);
