//! The SQL implementation of [`Store`], written once and instantiated for SQLite and PostgreSQL.
//!
//! Rules for code in `impl_store!`: placeholders are `$1`, `$2`, …; only types both drivers
//! encode alike are bound (text, integers, bool, bytes, `chrono::DateTime<Utc>`); a statement
//! that truly differs between the two goes through `dialect()` and is covered by the
//! conformance suite.

use async_trait::async_trait;
use slipway_core::time::now;
use sqlx::migrate::Migrator;
use sqlx::{Database, Pool, Postgres, Sqlite};

use crate::error::StoreError;
use crate::{Backend, Store};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

pub(crate) struct SqlStore<DB: Database> {
    pool: Pool<DB>,
}

impl<DB: Database> SqlStore<DB> {
    pub(crate) fn new(pool: Pool<DB>) -> Self {
        Self { pool }
    }
}

impl<DB: Database> std::fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore").field("backend", &DB::NAME).finish_non_exhaustive()
    }
}

macro_rules! impl_store {
    ($db:ty, $backend:expr, $migrator:expr) => {
        #[async_trait]
        impl Store for SqlStore<$db> {
            fn backend(&self) -> Backend {
                $backend
            }

            async fn migrate(&self) -> Result<usize, StoreError> {
                let before = applied_count(&self.pool).await?;
                $migrator.run(&self.pool).await?;
                let after = applied_count(&self.pool).await?;
                Ok(after.saturating_sub(before))
            }

            async fn ping(&self) -> Result<(), StoreError> {
                if self.pool.is_closed() {
                    return Err(StoreError::Closed);
                }
                sqlx::query("SELECT 1").execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
                sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::from_sqlx)
            }

            async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(key)
                .bind(value)
                .bind(now())
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn init_setting(&self, key: &str, value: &str) -> Result<String, StoreError> {
                sqlx::query(
                    "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
                )
                .bind(key)
                .bind(value)
                .bind(now())
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_sqlx)?;
                // Read back: when another writer won the race, its value is the one that counts.
                self.setting(key).await?.ok_or(StoreError::Database(sqlx::Error::RowNotFound))
            }

            async fn close(&self) {
                self.pool.close().await;
            }
        }
    };
}

impl_store!(Sqlite, Backend::Sqlite, SQLITE_MIGRATIONS);
impl_store!(Postgres, Backend::Postgres, POSTGRES_MIGRATIONS);

/// Number of migrations recorded as applied (0 before the first run).
async fn applied_count<DB>(pool: &Pool<DB>) -> Result<usize, StoreError>
where
    DB: Database,
    for<'c> &'c Pool<DB>: sqlx::Executor<'c, Database = DB>,
    i64: sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    for<'q> <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    // The table does not exist before the first migration; that counts as zero.
    match sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = true")
        .fetch_one(pool)
        .await
    {
        Ok(n) => Ok(usize::try_from(n).unwrap_or(0)),
        Err(sqlx::Error::Database(_)) => Ok(0),
        Err(e) => Err(StoreError::from_sqlx(e)),
    }
}
