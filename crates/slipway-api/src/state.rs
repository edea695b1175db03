//! What every handler can reach.

use std::sync::Arc;

use slipway_core::SecretsKey;
use slipway_store::Store;

use crate::metrics::Metrics;

/// Settings the HTTP layer needs. Built by the binary from the effective configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Base of every absolute URL Slipway puts in a response (links, the API index), without
    /// a trailing slash. Taken from configuration, never from the request's `Host` header.
    pub public_url: String,
    /// Largest accepted request body in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub secrets: SecretsKey,
    pub config: Arc<ApiConfig>,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, secrets: SecretsKey, config: ApiConfig) -> Self {
        let metrics = Arc::new(Metrics::new(store.backend().as_str()));
        Self { store, secrets, config: Arc::new(config), metrics }
    }
}
