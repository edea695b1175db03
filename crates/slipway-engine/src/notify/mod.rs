//! Events and the notifications that report them.
//!
//! Whatever happens to a resource that someone may want to hear about (a deployment failed, a
//! server became unreachable, a backup completed) is *emitted* as an [`EventSpec`]. Emitting is
//! one write, a `notification.dispatch` job that carries the whole event, so it never delays or
//! fails the work it reports: a store error is logged, nothing else. The dispatch job stores the
//! event (kept for the event retention, listed by `GET /api/v1/events`) and makes one delivery
//! per channel of the organisation that subscribes to it; each delivery is a job of its own that
//! sends, retries with backoff and records every attempt ([`deliver`]).

pub mod address;
pub mod channels;
pub mod deliver;
pub mod email;
pub mod operations;
pub mod tokens;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::json;
use slipway_jobs::JobSpec;
use slipway_store::Event;

use crate::Engine;

pub use address::AddressPolicy;

/// Every event type Slipway emits, with whether it reports a failure (what a channel gets by
/// default, and what repeats are folded for). docs/api.md lists them with an example each.
pub const CATALOGUE: &[(&str, bool)] = &[
    ("deployment.started", false),
    ("deployment.succeeded", false),
    ("deployment.failed", true),
    ("deployment.cancelled", false),
    ("server.provisioned", false),
    ("server.provision_failed", true),
    ("server.unreachable", true),
    ("server.host_key_changed", true),
    ("operation.failed", true),
    ("token.created", false),
    ("token.revoked", false),
    ("token.expiring", true),
    ("certificate.issued", false),
    ("certificate.issue_failed", true),
    ("certificate.renewal_failed", true),
    ("backup.completed", false),
    ("backup.failed", true),
    ("backup.verified", false),
    ("backup.verification_failed", true),
    ("backup.stale", true),
    ("certificate.expiring", true),
    ("cron.failed", true),
    ("cron.missed", true),
    ("worker.failed", true),
    ("daemon.failed", true),
];

/// The event sent by `POST …/notification-channels/{id}/test`; it is not stored.
pub const TEST_EVENT: &str = "notification.test";

/// Whether `event_type` is in the catalogue.
pub fn is_known(event_type: &str) -> bool {
    CATALOGUE.iter().any(|(t, _)| *t == event_type)
}

/// Whether `event_type` reports a failure.
pub fn is_failure(event_type: &str) -> bool {
    CATALOGUE.iter().any(|(t, failure)| *t == event_type && *failure)
}

/// How events leave Slipway.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// The HTTP client, made on first use from the settings below.
    client: Arc<OnceLock<reqwest::Client>>,
    /// Slipway's own URL, for the links in events (`resource.url`).
    pub public_url: String,
    /// Which addresses webhooks may be sent to.
    pub addresses: AddressPolicy,
    /// The wait before the first retry; each later one doubles it, up to an hour.
    pub retry_base: Duration,
    /// No attempt starts later than this after the event.
    pub deadline: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            client: Arc::default(),
            public_url: "http://127.0.0.1:8080".into(),
            addresses: AddressPolicy::default(),
            retry_base: Duration::from_secs(30),
            deadline: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(10),
        }
    }
}

impl NotifySettings {
    /// The client webhooks are sent with: no redirects, no proxy, the address rule applied to
    /// every name it resolves, and the attempt timeout. Settings changed after the first send
    /// are not seen by it (they are fixed at start-up).
    pub fn client(&self) -> Result<&reqwest::Client, String> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        // The process's TLS provider (ring), as for the S3 client; the first caller installs it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(self.addresses.resolver())
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            // Every attempt has a connection of its own. A kept one saves little (deliveries are
            // seconds apart, to many hosts), and one the receiver closed just as it was reused
            // fails that attempt, which then waits for its retry (30 s at first). A new
            // connection also passes the address rule again.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| format!("cannot make the HTTP client: {e}"))?;
        Ok(self.client.get_or_init(|| client))
    }

    /// The wait after attempt `attempt` (1-based) failed.
    pub fn retry_delay(&self, attempt: i64) -> Duration {
        let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(u32::MAX).min(16);
        self.retry_base.saturating_mul(2u32.saturating_pow(exponent)).min(Duration::from_secs(3600))
    }
}

/// What an event is about: the resource's type, id and name, and its path in the API.
#[derive(Debug, Clone)]
pub struct Subject {
    pub resource_type: &'static str,
    pub id: String,
    pub name: String,
    pub path: Option<String>,
    pub server_id: Option<String>,
    pub site_id: Option<String>,
}

impl Subject {
    pub fn server(server: &slipway_store::Server) -> Self {
        Subject {
            resource_type: "server",
            id: server.id.clone(),
            name: server.name.clone(),
            path: Some(format!("/api/v1/servers/{}", server.id)),
            server_id: Some(server.id.clone()),
            site_id: None,
        }
    }

    pub fn site(site: &slipway_store::Site) -> Self {
        Subject {
            resource_type: "site",
            id: site.id.clone(),
            name: site.domain.clone(),
            path: Some(format!("/api/v1/servers/{}/sites/{}", site.server_id, site.id)),
            server_id: Some(site.server_id.clone()),
            site_id: Some(site.id.clone()),
        }
    }

    pub fn deployment(site: &slipway_store::Site, deployment_id: &str) -> Self {
        Subject {
            resource_type: "deployment",
            id: deployment_id.to_string(),
            name: site.domain.clone(),
            path: Some(format!("/api/v1/servers/{}/sites/{}/deployments/{deployment_id}", site.server_id, site.id)),
            ..Subject::site(site)
        }
    }
}

/// An event about to be emitted.
#[derive(Debug, Clone)]
pub struct EventSpec {
    pub event_type: &'static str,
    pub organization_id: String,
    pub subject: Subject,
    pub summary: String,
    pub data: serde_json::Value,
}

impl EventSpec {
    pub fn new(event_type: &'static str, organization_id: &str, subject: Subject, summary: impl Into<String>) -> Self {
        debug_assert!(is_known(event_type), "{event_type} is not in the catalogue");
        EventSpec {
            event_type,
            organization_id: organization_id.to_string(),
            subject,
            summary: summary.into(),
            data: json!({}),
        }
    }

    /// Adds details (`data`): a JSON object.
    pub fn data(mut self, data: serde_json::Value) -> Self {
        self.data = data;
        self
    }

    fn into_event(self) -> Event {
        Event {
            id: slipway_core::new_id(),
            organization_id: self.organization_id,
            event_type: self.event_type.to_string(),
            resource_type: self.subject.resource_type.to_string(),
            resource_id: self.subject.id,
            resource_name: self.subject.name,
            resource_path: self.subject.path,
            server_id: self.subject.server_id,
            site_id: self.subject.site_id,
            summary: self.summary,
            data: self.data.to_string(),
            occurred_at: slipway_core::time::now(),
        }
    }
}

/// Emits an event: one job that stores it and fans it out to the channels. Never fails the
/// caller: a store error is logged and the work it reports goes on.
pub async fn emit(engine: &Engine, spec: EventSpec) {
    emit_event(engine, spec.into_event()).await;
}

/// As [`emit`], under an id the caller makes from what the event is about, so that an event
/// found again by a later check (a token still expiring tomorrow) is emitted once.
pub async fn emit_once(engine: &Engine, spec: EventSpec, id: String) {
    emit_event(engine, Event { id, ..spec.into_event() }).await;
}

async fn emit_event(engine: &Engine, event: Event) {
    let job = deliver::dispatch_job(&event);
    match slipway_jobs::enqueue(engine.store.as_ref(), job).await {
        Ok(_) => engine.wake_worker(),
        Err(slipway_store::StoreError::Conflict(_)) => {}
        Err(e) => tracing::error!(error = %e, event.r#type = %event.event_type, "could not emit the event"),
    }
}

/// A job kind of this module: its name and attempts.
#[derive(Debug, Clone, Copy)]
pub struct NotifyJob {
    pub name: &'static str,
    pub attempts: i64,
}

impl NotifyJob {
    /// A job of this kind; `lock` keeps those with the same key one at a time.
    pub fn spec(self, payload: impl serde::Serialize, organization_id: &str, lock: Option<String>) -> JobSpec {
        let spec = JobSpec::new(self.name, payload).organization(organization_id).idempotent(self.attempts);
        match lock {
            Some(lock) => spec.resource(lock),
            None => spec,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A receiver that keeps each connection open after its answer, as HTTP/1.1 allows, and
    /// closes it unanswered if another request comes on it: what a client sees when it reuses a
    /// connection at the moment the receiver closes it for being idle.
    async fn receiver_closing_reused_connections() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut chunk).await {
                            Ok(n) if n > 0 => head.extend_from_slice(&chunk[..n]),
                            _ => return,
                        }
                    }
                    let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                    // A second request on this connection: closed without an answer.
                    let _ = socket.read(&mut chunk).await;
                });
            }
        });
        (url, connections)
    }

    #[tokio::test]
    async fn every_attempt_has_a_connection_of_its_own() {
        let (url, connections) = receiver_closing_reused_connections().await;
        let settings = NotifySettings {
            addresses: AddressPolicy { allow_http: true, allowed_networks: vec!["127.0.0.0/8".parse().unwrap()] },
            ..NotifySettings::default()
        };
        let client = settings.client().unwrap();
        for attempt in 1..=3 {
            let answer = client.post(&url).send().await.unwrap_or_else(|e| panic!("attempt {attempt}: {e}"));
            assert_eq!(answer.status(), 200, "attempt {attempt}");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 3);
    }
}
