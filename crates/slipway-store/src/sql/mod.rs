//! The SQL implementation of [`Store`], written once and instantiated for SQLite and PostgreSQL.
//!
//! Each part of the store (a trait such as `ServerStore`, see the crate root) is implemented
//! in a file of its own (`servers.rs`): an `impl_…_store!` macro holds its methods once, and the
//! file instantiates it for `SqlStore<Sqlite>` and `SqlStore<Postgres>`. This file holds the
//! store itself, what the parts share, and `Store` proper (migrations, readiness, closing).
//!
//! Rules for code in the `impl_…!` macros: placeholders are `$1`, `$2`, …; only types both
//! drivers encode alike are bound (text, integers, bool, bytes, `chrono::DateTime<Utc>`); a
//! statement that truly differs between the two branches on the backend and is covered by the
//! conformance suite.

mod audit;
mod git;
mod identity;
mod jobs;
mod limits;
mod retention;
mod servers;
mod settings;
mod sites;
mod tokens;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::{Database, Pool, Postgres, Sqlite};

use crate::cache::ReadCache;
use crate::error::StoreError;
use crate::{Backend, Store};

/// Binds each id, comma-separated, and closes the `IN (` list the caller opened.
macro_rules! push_id_list {
    ($q:expr, $ids:expr) => {{
        let mut list = $q.separated(", ");
        for id in $ids {
            list.push_bind(id.clone());
        }
        $q.push(")");
    }};
}
pub(crate) use push_id_list;

fn as_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

pub(crate) struct SqlStore<DB: Database> {
    pool: Pool<DB>,
    /// Only where this process makes every write (SQLite); see `cache.rs`.
    cache: Option<ReadCache>,
}

impl<DB: Database> SqlStore<DB> {
    pub(crate) fn new(pool: Pool<DB>) -> Self {
        Self { pool, cache: None }
    }

    pub(crate) fn with_read_cache(pool: Pool<DB>) -> Self {
        Self { pool, cache: Some(ReadCache::default()) }
    }

    /// Evicts when the returned guard drops, i.e. after the write has committed (or failed):
    /// evicting before the write would let a concurrent read cache the old row again.
    fn evict_after<F: FnOnce(&ReadCache)>(&self, f: F) -> EvictOnDrop<'_, F> {
        EvictOnDrop { cache: self.cache.as_ref(), evict: Some(f) }
    }
}

struct EvictOnDrop<'a, F: FnOnce(&ReadCache)> {
    cache: Option<&'a ReadCache>,
    evict: Option<F>,
}

impl<F: FnOnce(&ReadCache)> Drop for EvictOnDrop<'_, F> {
    fn drop(&mut self) {
        if let (Some(cache), Some(evict)) = (self.cache, self.evict.take()) {
            evict(cache);
        }
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
