//! Timestamps: always UTC, serialised as RFC 3339.

pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// Now, truncated to microseconds so a value read back from either database equals the one
/// written (PostgreSQL keeps microseconds).
pub fn now() -> Timestamp {
    use chrono::{SubsecRound, Utc};
    Utc::now().trunc_subsecs(6)
}
