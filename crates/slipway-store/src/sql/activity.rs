//! Waking readers that follow a job's log (`JobStore::job_activity`).
//!
//! Every write of a log batch, a job's end or a deployment's update bumps a watch channel in
//! this process. On PostgreSQL it also sends a `NOTIFY`, and each replica listens on a
//! connection of its own and bumps its channel when another replica writes, so a log stream
//! served by one replica follows a deploy running on another without waiting for its poll.
//! A notification can be lost (the listening connection drops and reconnects); the readers'
//! poll is the backstop, and a reconnect bumps the channel so they read again at once.
//! A replica starts listening when its first reader subscribes, so a process that follows no
//! log (`slipway admin`, `migrate`) opens no listening connection.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Postgres, Sqlite};
use tokio::sync::watch;

use super::SqlStore;

/// The PostgreSQL channel the replicas notify on.
const CHANNEL: &str = "slipway_job_activity";

fn bump(activity: &watch::Sender<u64>) {
    activity.send_modify(|n| *n = n.wrapping_add(1));
}

/// Starts following the other replicas, given where to send their wake-ups.
type Follow = Box<dyn FnOnce(Weak<watch::Sender<u64>>) + Send>;

/// This process's activity channel and, on PostgreSQL until its first reader, how to start
/// listening to the other replicas.
#[derive(Default)]
pub(crate) struct Activity {
    sender: Arc<watch::Sender<u64>>,
    follow: Mutex<Option<Follow>>,
}

impl Activity {
    /// A reader's end of the channel; the first one starts the listener, if there is one.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        let follow = self.follow.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(start) = follow {
            start(Arc::downgrade(&self.sender));
        }
        self.sender.subscribe()
    }
}

impl SqlStore<Sqlite> {
    /// One process owns a SQLite database: waking this process's readers is all there is.
    pub(super) async fn announce_activity(&self) {
        bump(&self.activity.sender);
    }
}

impl SqlStore<Postgres> {
    /// Wakes this process's readers at once, and the other replicas' through `NOTIFY`. A
    /// notification that cannot be sent only delays those (their poll finds the write).
    pub(super) async fn announce_activity(&self) {
        bump(&self.activity.sender);
        if let Err(e) = sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&self.pool).await {
            tracing::debug!(error = %e, "could not notify the other replicas of job activity");
        }
    }

    /// Once a reader subscribes: listens for the other replicas' notifications, on a
    /// connection of its own (not one of the pool's), until this store is dropped (noticed at
    /// the next notification or error).
    pub(crate) fn follow_other_replicas(&self, options: PgConnectOptions) {
        let start: Follow = Box::new(move |activity| {
            tokio::spawn(listen(activity, options));
        });
        *self.activity.follow.lock().unwrap_or_else(PoisonError::into_inner) = Some(start);
    }
}

async fn listen(activity: Weak<watch::Sender<u64>>, options: PgConnectOptions) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let connected = async {
            let pool = PgPoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>((pool, listener))
        };
        match connected.await {
            Ok((_pool, mut listener)) => {
                backoff = Duration::from_millis(500);
                // Anything sent while not listening was missed: readers look again.
                match activity.upgrade() {
                    Some(a) => bump(&a),
                    None => return,
                }
                loop {
                    // Never cut short (a read given up half-way could leave the connection
                    // mid-message); a store dropped meanwhile is noticed at the next event.
                    let event = listener.try_recv().await;
                    let Some(a) = activity.upgrade() else { return };
                    match event {
                        // Another replica wrote; or (`None`) the connection dropped and comes
                        // back on the next call, having missed what was sent: look again.
                        Ok(_) => bump(&a),
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the job activity listener; connecting again");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for other replicas' job activity; retrying"),
        }
        if activity.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
