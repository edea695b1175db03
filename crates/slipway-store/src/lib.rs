//! Slipway's persistent state behind one [`Store`] trait, with a SQLite and a PostgreSQL
//! implementation.
//!
//! Both backends share every query: the implementation is written once in [`sql`] and
//! instantiated for each backend by a macro, and SQL text uses the `$1` placeholders that both
//! drivers accept. Only the migrations (column types) are per backend. A conformance suite
//! (`tests/conformance.rs`) runs every case against both.

mod connect;
mod error;
mod sql;
#[cfg(feature = "testing")]
pub mod testing;

use async_trait::async_trait;

pub use connect::{ConnectOptions, connect, redact_url};
pub use error::StoreError;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Everything Slipway keeps. Implementations must behave identically; the conformance suite
/// is the definition of "identically".
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    fn backend(&self) -> Backend;

    /// Applies pending embedded migrations; returns how many were applied.
    async fn migrate(&self) -> Result<usize, StoreError>;

    /// A round trip to the database, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;

    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;

    async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// Stores `value` unless the key already has one, and returns the value now stored. When
    /// several replicas race, all of them get the first writer's value.
    async fn init_setting(&self, key: &str, value: &str) -> Result<String, StoreError>;

    /// Closes the pool; later calls fail with [`StoreError::Closed`] or a pool error.
    async fn close(&self);
}
