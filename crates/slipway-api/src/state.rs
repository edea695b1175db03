//! What every handler can reach.

use std::sync::Arc;
use std::time::Duration;

use slipway_core::SecretsKey;
use slipway_store::{Backend, Store};

use crate::auth::jwt::JwtKeys;
use crate::auth::principal::GrantCache;
use crate::auth::rules::RouteRules;
use crate::auth::usage::UsageRecorder;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;

/// Requests allowed per window, by kind of request. Defaults follow PRODUCT.md §2.
#[derive(Debug, Clone)]
pub struct RateLimits {
    /// Every API request, per token (per client address when unauthenticated), per minute.
    pub api_per_minute: u32,
    /// Login, register and setup attempts, per client address and per account, per minute.
    pub auth_per_minute: u32,
    /// Token creation (including rotation and login), per principal, per minute.
    pub token_create_per_minute: u32,
    /// Backup downloads, per principal, per hour.
    pub backup_download_per_hour: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self { api_per_minute: 60, auth_per_minute: 5, token_create_per_minute: 10, backup_download_per_hour: 10 }
    }
}

/// Settings the HTTP layer needs. Built by the binary from the effective configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Base of every absolute URL Slipway puts in a response (links, the API index), without
    /// a trailing slash. Taken from configuration, never from the request's `Host` header.
    pub public_url: String,
    /// Largest accepted request body in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Whether `POST /api/v1/register` creates accounts (off by default).
    pub registration_enabled: bool,
    pub rate_limits: RateLimits,
    /// Lifetime of JWT access tokens from `/auth/exchange`.
    pub jwt_ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_ttl: Duration,
    /// A dashboard session ends after this long without a request.
    pub session_idle: Duration,
    /// A dashboard session ends this long after login, active or not.
    pub session_lifetime: Duration,
}

impl ApiConfig {
    pub fn new(public_url: impl Into<String>) -> Self {
        Self {
            public_url: public_url.into(),
            max_body_bytes: 1024 * 1024,
            registration_enabled: false,
            rate_limits: RateLimits::default(),
            jwt_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            session_idle: Duration::from_secs(2 * 3600),
            session_lifetime: Duration::from_secs(12 * 3600),
        }
    }
}

/// Cloned for every layer and extractor of every request, so a clone is one reference count:
/// cloning the fields one by one (the engine's settings hold several strings) cost an
/// authenticated request about a fifth of its time.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub secrets: SecretsKey,
    pub config: Arc<ApiConfig>,
    pub metrics: Arc<Metrics>,
    pub rules: Arc<RouteRules>,
    pub limiter: Arc<RateLimiter>,
    pub usage: Arc<UsageRecorder>,
    /// Parsed token grants, reused while their stored row is unchanged.
    pub grants: GrantCache,
    pub jwt: Arc<JwtKeys>,
    /// For reads a request makes on a server (a program's live status, a log tail); `serve`
    /// shares its job runner's, so both use the same kept connections.
    pub engine: slipway_engine::Engine,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// With an engine of default settings on the same store.
    pub fn new(store: Arc<dyn Store>, secrets: SecretsKey, config: ApiConfig) -> Self {
        let engine = slipway_engine::Engine::new(store.clone(), secrets.clone());
        Self::with_engine(store, secrets, config, engine)
    }

    pub fn with_engine(
        store: Arc<dyn Store>,
        secrets: SecretsKey,
        config: ApiConfig,
        engine: slipway_engine::Engine,
    ) -> Self {
        let metrics = Arc::new(Metrics::new(store.backend().as_str()));
        // One process on SQLite: counting in memory is exact and free. Replicas on PostgreSQL
        // share one database, so they count there and a limit holds across all of them.
        let limiter = Arc::new(match store.backend() {
            Backend::Sqlite => RateLimiter::in_memory(),
            Backend::Postgres => RateLimiter::shared(store.clone()),
        });
        let jwt = Arc::new(JwtKeys::new(&secrets));
        AppState(Arc::new(Shared {
            rules: Arc::new(RouteRules::from_spec(&crate::described_routes())),
            usage: Arc::new(UsageRecorder::new(store.clone())),
            grants: GrantCache::default(),
            store,
            secrets,
            config: Arc::new(config),
            metrics,
            limiter,
            jwt,
            engine,
        }))
    }
}
