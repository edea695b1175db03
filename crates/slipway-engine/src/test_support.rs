//! What the engine's own tests share: an organisation to put things in, and a job worker that
//! runs every job kind until a condition holds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_store::Store;

/// A user and an organisation they own, in `store`; returns the organisation's id.
pub async fn organization(store: &Arc<dyn Store>) -> String {
    let user = slipway_store::NewUser {
        id: slipway_core::new_id(),
        email: "owner@example.com".into(),
        email_normalized: "owner@example.com".into(),
        name: "Owner".into(),
        password_hash: "x".into(),
    };
    let org = slipway_core::new_id();
    store.create_user_with_organization(&user, &org, "Acme", "owner").await.unwrap();
    org
}

/// Runs a worker with every job kind over `store` until `done` returns true (checked every
/// 50 ms, for at most 20 s), then stops it.
pub async fn run_jobs_until<F, Fut>(store: &Arc<dyn Store>, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let engine = crate::Engine::new(store.clone(), slipway_core::SecretsKey::generate());
    let config = slipway_jobs::WorkerConfig { poll: Duration::from_millis(50), ..Default::default() };
    let worker = slipway_jobs::Worker::new(store.clone(), engine.registry(), config);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(worker.run(stopped));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    let _ = running.await;
}
