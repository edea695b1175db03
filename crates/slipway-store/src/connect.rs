//! Opening a store from a database URL.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::sql::SqlStore;
use crate::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self { max_connections: 8, acquire_timeout: Duration::from_secs(5) }
    }
}

/// Opens the database named by `url`: `sqlite://PATH` (the file is created if missing, in WAL
/// mode) or `postgres://…` / `postgresql://…`. Does not migrate.
pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let connect = PgConnectOptions::from_str(url)?.application_name("slipway");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await?;
        let store = SqlStore::new(pool);
        store.follow_other_replicas(connect);
        Ok(Arc::new(store))
    } else if url.starts_with("sqlite:") {
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            // Only takes effect on a new file (before its first table): pruned pages can then be
            // given back to the file system (`Store::reclaim_free_pages`). Older files reuse
            // them instead, until `slipway admin vacuum` converts them.
            .auto_vacuum(SqliteAutoVacuum::Incremental)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable in WAL mode against process crashes; only an OS crash may lose
            // the last transactions, and then the database is still consistent.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        // One process owns a SQLite database, so it can cache reads and evict exactly.
        Ok(Arc::new(SqlStore::with_read_cache(pool)))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}

/// Query parameters that carry a credential, by a part of their name (compared in lower
/// case): libpq's `password` and `sslpassword`, and the usual names of tokens and keys.
const SECRET_PARAMS: [&str; 8] = ["password", "passwd", "pwd", "secret", "token", "key", "auth", "credential"];

/// A URL with every credential replaced (the userinfo password and the value of any query
/// parameter named like one), safe to show in an error or in `slipway config`.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else { return "(unparseable URL)".to_string() };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("redacted"));
    }
    let secret = |name: &str| {
        let name = name.to_ascii_lowercase();
        SECRET_PARAMS.iter().any(|part| name.contains(part))
    };
    if parsed.query_pairs().any(|(name, _)| secret(&name)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(name, value)| {
                let value = if secret(&name) { "redacted".to_string() } else { value.into_owned() };
                (name.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u:redacted@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("mysql:// broken"), "(unparseable URL)");
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=require&password=p%40ss&sslpassword=x&api_token=t&sslkey=/k"),
            "postgres://u@h/db?sslmode=require&password=redacted&sslpassword=redacted&api_token=redacted&sslkey=redacted"
        );
        assert_eq!(
            redact_url("postgres://u:pw@h/db?application_name=slipway"),
            "postgres://u:redacted@h/db?application_name=slipway"
        );
    }
}
