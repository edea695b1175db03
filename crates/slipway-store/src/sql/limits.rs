//! Rate-limit windows and idempotency keys ([`LimitStore`]).

use async_trait::async_trait;
use slipway_core::time::Timestamp;
use sqlx::{Postgres, Sqlite};

use super::SqlStore;
use crate::model::IdempotencyBegin;
use crate::{LimitStore, StoreError, StoreResult};

macro_rules! impl_limit_store {
    ($db:ty) => {
        #[async_trait]
        impl LimitStore for SqlStore<$db> {
            async fn rate_limit_hit(&self, key: &str, window_start: i64, expires_at: i64) -> StoreResult<i64> {
                sqlx::query_scalar(
                    "INSERT INTO rate_limits (key, window_start, count, expires_at) VALUES ($1, $2, 1, $3) \
                     ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limits.count + 1 RETURNING count",
                )
                .bind(key).bind(window_start).bind(expires_at)
                .fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)
            }

            async fn idempotency_begin(&self, principal: &str, key: &str, request_hash: &str, at: Timestamp, not_before: Timestamp, stale_before: Timestamp) -> StoreResult<IdempotencyBegin> {
                // A key older than the retention window counts as new, and so does one whose
                // holder died before it stored a response.
                sqlx::query(
                    "DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2 AND (created_at < $3 \
                     OR (status IS NULL AND COALESCE(heartbeat_at, created_at) < $4))",
                )
                .bind(principal).bind(key).bind(not_before).bind(stale_before)
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                let inserted = sqlx::query(
                    "INSERT INTO idempotency_keys (principal, key, request_hash, created_at, heartbeat_at) \
                     VALUES ($1, $2, $3, $4, $4) ON CONFLICT (principal, key) DO NOTHING",
                )
                .bind(principal).bind(key).bind(request_hash).bind(at)
                .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                if inserted.rows_affected() == 1 {
                    return Ok(IdempotencyBegin::Started);
                }
                let row: Option<(String, Option<i64>, Option<String>, Option<Vec<u8>>)> = sqlx::query_as(
                    "SELECT request_hash, status, content_type, body FROM idempotency_keys WHERE principal = $1 AND key = $2",
                )
                .bind(principal).bind(key).fetch_optional(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(match row {
                    None => IdempotencyBegin::InProgress,
                    Some((hash, _, _, _)) if hash != request_hash => IdempotencyBegin::Mismatch,
                    Some((_, None, _, _)) => IdempotencyBegin::InProgress,
                    Some((_, Some(status), content_type, body)) => IdempotencyBegin::Replay {
                        status: u16::try_from(status).unwrap_or(500),
                        content_type,
                        body: body.unwrap_or_default(),
                    },
                })
            }

            async fn idempotency_heartbeat(&self, principal: &str, key: &str, at: Timestamp) -> StoreResult<()> {
                sqlx::query("UPDATE idempotency_keys SET heartbeat_at = $3 WHERE principal = $1 AND key = $2 AND status IS NULL")
                    .bind(principal).bind(key).bind(at).execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn idempotency_finish(&self, principal: &str, key: &str, status: u16, content_type: Option<&str>, body: &[u8]) -> StoreResult<()> {
                sqlx::query("UPDATE idempotency_keys SET status = $3, content_type = $4, body = $5 WHERE principal = $1 AND key = $2")
                    .bind(principal).bind(key).bind(i64::from(status)).bind(content_type).bind(body)
                    .execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn idempotency_abandon(&self, principal: &str, key: &str) -> StoreResult<()> {
                sqlx::query("DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2 AND status IS NULL")
                    .bind(principal).bind(key).execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }
        }
    };
}

impl_limit_store!(Sqlite);
impl_limit_store!(Postgres);
