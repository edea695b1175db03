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
    let mut config = ApiConfig::new(public_url.clone());
    config.max_body_bytes = settings.max_body_bytes;
    config.registration_enabled = settings.registration_enabled;
    config.rate_limits = settings.rate_limits.clone();
    config.session_idle = settings.session_idle;
    config.session_lifetime = settings.session_lifetime;
    let mut engine = slipway_engine::Engine::new(store.clone(), secrets.clone());
    engine.ssh.connect = Duration::from_secs(settings.ssh_connect_timeout_seconds);
    engine.command_idle = Duration::from_secs(settings.command_idle_seconds);
    engine.acme = settings.acme.clone();
    engine.certificate_check_interval = settings.certificate_check_interval;
    engine.process_check_interval = settings.process_check_interval;
    engine.notify.public_url = public_url.clone();
    engine.notify.addresses.allowed_networks = settings.notifications.allowed_networks.clone();
    engine.notify.addresses.allow_http = settings.notifications.allow_http;
    engine.notify.retry_base = settings.notifications.retry_base;
    engine.notify.deadline = settings.notifications.deadline;
    let state = AppState::with_engine(store.clone(), secrets, config, engine.clone());
    let jobs_enqueued = engine.jobs_enqueued.clone();
    let setup_code = prepare_setup_code(store.as_ref()).await?;
    // The dashboard calls the API in process: the same router, conventions and all.
    let dashboard = slipway_web::router(slipway_api::app(state.clone()), &public_url);
    let app = slipway_api::app_with(state, dashboard);
    // Pruning old records is a durable job; every replica makes sure this slot's run exists
    // (one job per slot whatever the number of replicas), and each run schedules the next.
    slipway_jobs::retention::schedule(store.as_ref(), &settings.retention, slipway_core::time::now())
        .await
        .context("cannot schedule the pruning job")?;
    // The same for the check of every served certificate (daily by default).
    let every = settings.certificate_check_interval;
    slipway_engine::items::certificates::schedule_watch(store.as_ref(), slipway_core::time::now(), every)
        .await
        .context("cannot schedule the certificate watch")?;
    // And the reading of cron jobs, queue workers and daemons (every 5 minutes by default).
    let every = settings.process_check_interval;
    slipway_engine::items::watch::schedule_watch(store.as_ref(), slipway_core::time::now(), every)
        .await
        .context("cannot schedule the process watch")?;
    // And today's check for tokens about to expire.
    slipway_engine::notify::tokens::schedule(store.as_ref(), slipway_core::time::now())
        .await
        .context("cannot schedule the token expiry check")?;
    // And each backup schedule's next run (a Slipway that was down runs a missed one at once).
    slipway_engine::backup_schedules::queue_all(store.as_ref()).await.context("cannot queue the backup schedules")?;

    crate::memory::release_free_heap();
    tracing::info!(addr = %local, backend = store.backend().as_str(), version = env!("CARGO_PKG_VERSION"), "listening");
    // One plain line on stdout, for people and for scripts that start Slipway on port 0.
    #[allow(clippy::print_stdout)]
    {
        if let Some(code) = setup_code {
            println!("No account exists yet. Create the first owner at {public_url}/setup?code={code}");
            println!("(or POST /api/v1/setup with this code; it works once).");
        }
        println!("Slipway listening on http://{local} (API reference: {public_url}/docs/)");
    }

    // The job runner, in the same process: it claims work any replica enqueued.
    let (stop_jobs, jobs_stopped) = tokio::sync::watch::channel(false);
    let lease = Duration::from_secs(settings.job_lease_seconds);
    let worker_config = slipway_jobs::WorkerConfig {
        concurrency: settings.job_concurrency,
        per_server: settings.job_concurrency_per_server,
        lease,
        // Six heartbeats per lease: a few slow database round trips never lose a healthy job.
        heartbeat: lease / 6,
        poll: Duration::from_secs(1).min(lease / 2),
        ..Default::default()
    };
    let registry = engine.registry().register(
        slipway_jobs::retention::PRUNE_JOB,
        slipway_jobs::retention::Prune { store: store.clone(), retention: settings.retention.clone() },
    );
    let worker = slipway_jobs::Worker::new(store.clone(), registry, worker_config)
        .with_wakeup(jobs_enqueued)
        .with_failure_hook(std::sync::Arc::new(slipway_engine::notify::operations::ReportFailures(engine.clone())));
    let worker = if settings.job_worker {
        Some(tokio::spawn(worker.run(jobs_stopped)))
    } else {
        tracing::info!("job worker disabled; other replicas run the queued jobs");
        None
    };

    let (signalled, mut on_signal) = tokio::sync::watch::channel(false);
    let serving = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            let _ = signalled.send(true);
        })
        .into_future();
    tokio::pin!(serving);
    // The jobs are stopped as soon as the signal comes, not once the last request has ended: a
    // log stream follows its deployment to the end, so the streams would wait for the jobs and
    // the jobs for the streams. Requests still open after that (a stream of a job another
    // replica runs) get as long as the jobs do.
    let served = tokio::select! {
        served = &mut serving => served,
        Ok(_) = on_signal.wait_for(|signalled| *signalled) => {
            let _ = stop_jobs.send(true);
            match tokio::time::timeout(Duration::from_secs(20), &mut serving).await {
                Ok(served) => served,
                Err(_) => {
                    tracing::warn!("requests still open 20 s after the signal; closing them");
                    Ok(())
                }
            }
        }
    };
    served.context("server error")?;
    // Jobs still running get a moment to finish; any left are recovered by a reaper later
    // (retried if idempotent, else failed as interrupted), so stopping never loses track.
    let _ = stop_jobs.send(true);
    if let Some(worker) = worker
        && tokio::time::timeout(Duration::from_secs(20), worker).await.is_err()
    {
        tracing::warn!("jobs still running after 20 s; leaving them to be recovered");
    }
    tracing::info!("in-flight requests finished; closing the database");
    store.close().await;
    Ok(())
}

/// With no user in the database, makes a fresh one-time setup code (only its hash is stored)
/// and returns it for printing; it is replaced at every start until an owner exists.
async fn prepare_setup_code(store: &dyn Store) -> anyhow::Result<Option<String>> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let code = slipway_core::token::random_base62(24);
    store
        .put_setting(slipway_api::routes::account::SETUP_CODE_SETTING, &slipway_core::token::sha256_hex(&code))
        .await?;
    Ok(Some(code))
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
