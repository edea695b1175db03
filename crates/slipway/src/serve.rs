//! `slipway serve`: open the database, migrate, load the secrets key, serve until a signal.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use slipway_api::{ApiConfig, AppState};
use slipway_store::{ConnectOptions, Store};

use crate::config::Settings;
use crate::keys;

pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let options =
        ConnectOptions { max_connections: settings.database_max_connections, acquire_timeout: Duration::from_secs(5) };
    slipway_store::connect(settings.database_url.expose(), &options).await.with_context(|| {
        format!("cannot open the database {}", slipway_store::redact_url(settings.database_url.expose()))
    })
}

/// Creates the data directory (owner-only) if it is missing.
pub fn ensure_data_dir(settings: &Settings) -> anyhow::Result<()> {
    let dir = &settings.data_dir;
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create the data directory {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    ensure_data_dir(&settings)?;
    let store = open_store(&settings).await?;
    let applied = store.migrate().await.context("database migration failed")?;
    if applied > 0 {
        tracing::info!(applied, backend = store.backend().as_str(), "applied database migrations");
    }
    let secrets = keys::load_or_create(&settings.secret_key)?;
    keys::verify_against_store(&secrets, store.as_ref()).await?;

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let local: SocketAddr = listener.local_addr()?;
    let public_url = settings.public_url.clone().unwrap_or_else(|| format!("http://{local}"));
    let config = ApiConfig { public_url: public_url.clone(), max_body_bytes: settings.max_body_bytes };
    let state = AppState::new(store.clone(), secrets, config);
    let app = slipway_api::app(state);

    tracing::info!(addr = %local, backend = store.backend().as_str(), version = env!("CARGO_PKG_VERSION"), "listening");
    // One plain line on stdout, for people and for scripts that start Slipway on port 0.
    #[allow(clippy::print_stdout)]
    {
        println!("Slipway listening on http://{local} (API reference: {public_url}/docs/)");
    }

    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server error")?;
    tracing::info!("in-flight requests finished; closing the database");
    store.close().await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM; the server then stops accepting and drains.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received; shutting down"),
    }
}
