//! Last-used time and address of tokens, written at most once a minute per token and off the
//! request path: a write per authenticated request is how other tools end up with lock
//! contention on their token table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slipway_store::Store;

const INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct UsageRecorder {
    store: Arc<dyn Store>,
    last_written: Mutex<HashMap<String, Instant>>,
}

impl UsageRecorder {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, last_written: Mutex::new(HashMap::new()) }
    }

    pub fn record(&self, token_id: &str, ip: Option<IpAddr>) {
        {
            let mut last = self.last_written.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if last.get(token_id).is_some_and(|at| now.duration_since(*at) < INTERVAL) {
                return;
            }
            if last.len() > 100_000 {
                last.retain(|_, at| now.duration_since(*at) < INTERVAL);
            }
            last.insert(token_id.to_string(), now);
        }
        let (store, id, ip) = (self.store.clone(), token_id.to_string(), ip.map(|ip| ip.to_string()));
        tokio::spawn(async move {
            if let Err(e) = store.touch_token(&id, slipway_core::time::now(), ip.as_deref()).await {
                tracing::warn!(error = %e, token_id = %id, "could not record token use");
            }
        });
    }
}
