/// A store failure. Its text may contain SQL or paths: log it, never send it to a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("the database connection pool is closed")]
    Closed,
    /// A uniqueness rule was broken (an email already registered, a member already added).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The change would leave an organisation without an owner.
    #[error("an organisation must keep at least one owner")]
    LastOwner,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    pub(crate) fn from_sqlx(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolClosed => StoreError::Closed,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.constraint().unwrap_or("unique").to_string())
            }
            other => StoreError::Database(other),
        }
    }
}
