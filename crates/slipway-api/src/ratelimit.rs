//! Fixed-window rate limits with the `X-RateLimit-*` and IETF `RateLimit-Policy`/`RateLimit`
//! headers. A window is counted in memory (one process, SQLite) or in the database (replicas on
//! PostgreSQL, so every replica sees the same count).
//!
//! Why not `governor`: its GCRA state lives in one process, and the headers want a window with
//! a reset time that all replicas agree on; a counter per window in the shared database gives
//! both, and the in-memory variant keeps the same semantics on a single node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use slipway_store::Store;

use crate::error::ApiError;

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// `"<policy>";<a>=<n>;<b>=<m>`, the shape of both IETF headers. Every API response carries two,
/// so they are written without `format!` and into a buffer of the exact size (which becomes the
/// header's bytes without another copy).
fn structured(policy: &str, (a, n): (&str, u64), (b, m): (&str, u64)) -> HeaderValue {
    let (mut n_text, mut m_text) = (itoa::Buffer::new(), itoa::Buffer::new());
    let (n, m) = (n_text.format(n), m_text.format(m));
    let parts = ["\"", policy, "\";", a, "=", n, ";", b, "=", m];
    let mut text = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    parts.iter().for_each(|p| text.push_str(p));
    HeaderValue::try_from(text).expect("a policy name and numbers make a valid header value")
}

/// The header values a decision shares with every other of its policy, limit, window and reset.
struct Steady {
    key: SteadyKey,
    values: [HeaderValue; 3],
}

/// (policy, limit, window in seconds, reset): what the steady headers are made of.
type SteadyKey = (&'static str, u32, i64, i64);

thread_local! {
    static STEADY: std::cell::RefCell<Option<Steady>> = const { std::cell::RefCell::new(None) };
}

/// By key: the start of the key's current window and its count there.
type Windows = HashMap<String, (i64, u32)>;

#[derive(Debug)]
pub struct RateLimiter {
    /// Per policy, per key: the window's start and its count. Two levels so that counting an
    /// existing key looks it up by `&str` and allocates nothing.
    counts: Option<Mutex<HashMap<&'static str, Windows>>>,
    store: Option<Arc<dyn Store>>,
}

/// The outcome of counting one request against one limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub policy: &'static str,
    pub limit: u32,
    pub remaining: u32,
    /// Unix time at which the window resets.
    pub reset: i64,
    pub window_seconds: i64,
    pub allowed: bool,
}

impl Decision {
    pub fn retry_after(&self) -> i64 {
        (self.reset - unix_now()).max(1)
    }

    /// Every API response carries these, so they are built without parsing header names or
    /// going through `format!` for the plain numbers.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        headers.reserve(6);
        let [limit, policy, reset] = self.steady_values();
        headers.insert(X_RATELIMIT_LIMIT, limit);
        headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(self.remaining));
        headers.insert(X_RATELIMIT_RESET, reset);
        headers.insert(RATELIMIT_POLICY, policy);
        let reset_in = (self.reset - unix_now()).max(0) as u64;
        headers.insert(RATELIMIT, structured(self.policy, ("r", self.remaining.into()), ("t", reset_in)));
        if !self.allowed {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(self.retry_after()));
        }
    }

    /// The limit, policy and reset headers, which stay the same for a policy's whole window.
    /// Each thread keeps the last ones it made: most responses of a minute repeat them, and
    /// making a numeric header value allocates, where a kept one is shared.
    fn steady_values(&self) -> [HeaderValue; 3] {
        STEADY.with(|slot| {
            let mut slot = slot.borrow_mut();
            let key = (self.policy, self.limit, self.window_seconds, self.reset);
            if let Some(kept) = slot.as_ref().filter(|kept| kept.key == key) {
                return kept.values.clone();
            }
            let window = self.window_seconds.max(0) as u64;
            let values = [
                HeaderValue::from(self.limit),
                structured(self.policy, ("q", self.limit.into()), ("w", window)),
                HeaderValue::from(self.reset),
            ];
            *slot = Some(Steady { key, values: values.clone() });
            values
        })
    }

    pub fn into_error(self) -> ApiError {
        ApiError::TooManyRequests(self)
    }
}

/// The decisions taken for one request; the most restrictive one is reported in the headers.
#[derive(Debug, Clone, Default)]
pub struct RateLimitReport(pub Arc<Mutex<Option<Decision>>>);

impl RateLimitReport {
    pub fn record(&self, decision: &Decision) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let tighter = match &*slot {
            None => true,
            Some(current) => !decision.allowed || (current.allowed && decision.remaining < current.remaining),
        };
        if tighter {
            *slot = Some(decision.clone());
        }
    }

    pub fn take(&self) -> Option<Decision> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl RateLimiter {
    pub fn in_memory() -> Self {
        Self { counts: Some(Mutex::new(HashMap::new())), store: None }
    }

    pub fn shared(store: Arc<dyn Store>) -> Self {
        Self { counts: None, store: Some(store) }
    }

    /// Counts one request for `key` against `limit` per `window_seconds`.
    pub async fn hit(
        &self,
        policy: &'static str,
        key: &str,
        limit: u32,
        window_seconds: i64,
    ) -> Result<Decision, ApiError> {
        let now = unix_now();
        let window_start = now - now.rem_euclid(window_seconds);
        let reset = window_start + window_seconds;
        let count: u64 = match (&self.counts, &self.store) {
            (Some(counts), _) => {
                let mut counts = counts.lock().unwrap_or_else(|p| p.into_inner());
                let counts = counts.entry(policy).or_default();
                if !counts.contains_key(key) {
                    if counts.len() >= 100_000 {
                        counts.retain(|_, (start, _)| *start + window_seconds > now);
                    }
                    counts.insert(key.to_string(), (window_start, 0));
                }
                let entry = counts.get_mut(key).expect("inserted above when missing");
                if entry.0 != window_start {
                    *entry = (window_start, 0);
                }
                entry.1 = entry.1.saturating_add(1);
                u64::from(entry.1)
            }
            (None, Some(store)) => {
                let n = store.rate_limit_hit(&format!("{policy}:{key}"), window_start, reset + window_seconds).await?;
                u64::try_from(n).unwrap_or(0)
            }
            (None, None) => unreachable!("a limiter has a backend"),
        };
        let allowed = count <= u64::from(limit);
        let remaining = u64::from(limit).saturating_sub(count) as u32;
        Ok(Decision { policy, limit, remaining, reset, window_seconds, allowed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_down_then_refuses_with_retry_after() {
        let limiter = RateLimiter::in_memory();
        for remaining in (0..3).rev() {
            let d = limiter.hit("api", "token:a", 3, 60).await.unwrap();
            assert!(d.allowed);
            assert_eq!(d.remaining, remaining);
        }
        let refused = limiter.hit("api", "token:a", 3, 60).await.unwrap();
        assert!(!refused.allowed);
        assert!(refused.retry_after() >= 1 && refused.retry_after() <= 60);
        assert!(limiter.hit("api", "token:b", 3, 60).await.unwrap().allowed, "keys are independent");
        assert!(limiter.hit("login", "token:a", 3, 60).await.unwrap().allowed, "policies are independent");
        let mut headers = HeaderMap::new();
        refused.write_headers(&mut headers);
        assert_eq!(headers["x-ratelimit-limit"], "3");
        assert_eq!(headers["x-ratelimit-remaining"], "0");
        assert_eq!(headers["ratelimit-policy"], "\"api\";q=3;w=60");
        let reset_in = headers["ratelimit"].to_str().unwrap().strip_prefix("\"api\";r=0;t=").expect("the IETF shape");
        assert!(reset_in.parse::<u32>().is_ok_and(|t| t <= 60), "{reset_in}");
        assert!(headers.contains_key("retry-after"));
        // Kept values are never another decision's: the same window, another policy and limit.
        let other = Decision { policy: "login", limit: 5, remaining: 4, allowed: true, ..refused.clone() };
        let mut headers = HeaderMap::new();
        other.write_headers(&mut headers);
        assert_eq!(headers["x-ratelimit-limit"], "5");
        assert_eq!(headers["ratelimit-policy"], "\"login\";q=5;w=60");
        let mut headers = HeaderMap::new();
        Decision { reset: refused.reset + 60, ..refused.clone() }.write_headers(&mut headers);
        assert_eq!(headers["x-ratelimit-reset"], (refused.reset + 60).to_string().as_str());
        assert_eq!(headers["ratelimit-policy"], "\"api\";q=3;w=60");
    }

    #[test]
    fn the_report_keeps_the_tightest_decision() {
        let report = RateLimitReport::default();
        let d = |policy, remaining, allowed| Decision {
            policy,
            limit: 10,
            remaining,
            reset: 0,
            window_seconds: 60,
            allowed,
        };
        report.record(&d("api", 50, true));
        report.record(&d("login", 3, true));
        report.record(&d("api", 49, true));
        assert_eq!(report.take().unwrap().policy, "login");
        report.record(&d("api", 0, false));
        report.record(&d("login", 3, true));
        assert!(!report.take().unwrap().allowed);
    }
}
