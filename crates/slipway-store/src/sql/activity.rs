//! Waking readers that follow a job's log (`JobStore::job_activity`).
//!
//! Every write of a log batch, a job's end by its worker or a deployment's update wakes the
//! readers of that job, through a watch channel in this process kept per job someone follows:
//! a reader is not woken (and does not read) for other jobs' writes, so ten logs followed at
//! once are woken ten times as often as one, not a hundred. On PostgreSQL a write also sends a
//! `NOTIFY` naming the replica and the job, and each replica listens on a connection of its own
//! and wakes that job's readers when another replica writes (its own notifications come back
//! to it too, and are skipped: its readers were woken at the write), so a log stream served by
//! one replica follows a deploy running on another without waiting for its poll. A
//! notification can be lost (the listening connection drops and reconnects); the readers' poll
//! is the backstop, and a reconnect wakes every reader so they read again at once. A replica
//! starts listening when its first reader subscribes, so a process that follows no log
//! (`slipway admin`, `migrate`) opens no listening connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Postgres, Sqlite};
use tokio::sync::watch;

use super::SqlStore;

/// The PostgreSQL channel the replicas notify on; the payload is the writing store's
/// `instance`, a space and the job's id.
const CHANNEL: &str = "slipway_job_activity";

/// The channels of the jobs followed in this process, by job id.
#[derive(Default)]
pub(crate) struct Followed {
    by_job: Mutex<HashMap<String, watch::Sender<u64>>>,
}

fn bump(channel: &watch::Sender<u64>) {
    channel.send_modify(|n| *n = n.wrapping_add(1));
}

impl Followed {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<u64>>> {
        self.by_job.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes `job_id`'s readers, if it has any; a channel whose readers have all gone goes.
    fn wake(&self, job_id: &str) {
        let mut by_job = self.lock();
        if let Some(channel) = by_job.get(job_id) {
            if channel.receiver_count() == 0 {
                by_job.remove(job_id);
            } else {
                bump(channel);
            }
        }
    }

    /// Wakes every reader: wake-ups may have been missed.
    fn wake_all(&self) {
        let mut by_job = self.lock();
        by_job.retain(|_, channel| channel.receiver_count() > 0);
        by_job.values().for_each(bump);
    }

    fn subscribe(&self, job_id: &str) -> watch::Receiver<u64> {
        let mut by_job = self.lock();
        // Channels of jobs nobody follows any more and nothing wrote since go here (as many as
        // the streams that ended since the last subscription).
        by_job.retain(|_, channel| channel.receiver_count() > 0);
        by_job.entry(job_id.to_string()).or_insert_with(|| watch::channel(0).0).subscribe()
    }
}

/// Starts following the other replicas, given whom to wake for their writes.
type Follow = Box<dyn FnOnce(Weak<Followed>) + Send>;

/// This process's readers and, on PostgreSQL until its first reader, how to start listening
/// to the other replicas.
pub(crate) struct Activity {
    followed: Arc<Followed>,
    follow: Mutex<Option<Follow>>,
    /// Names this store in its notifications, so that it can skip its own.
    instance: String,
}

impl Default for Activity {
    fn default() -> Self {
        Self { followed: Arc::default(), follow: Mutex::default(), instance: slipway_core::new_id() }
    }
}

impl Activity {
    /// A reader's end of `job_id`'s channel; the first one starts the listener, if there is one.
    pub(crate) fn subscribe(&self, job_id: &str) -> watch::Receiver<u64> {
        let follow = self.follow.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(start) = follow {
            start(Arc::downgrade(&self.followed));
        }
        self.followed.subscribe(job_id)
    }
}

impl SqlStore<Sqlite> {
    /// One process owns a SQLite database: waking this process's readers is all there is.
    pub(super) async fn announce_activity(&self, job_id: &str) {
        self.activity.followed.wake(job_id);
    }
}

impl SqlStore<Postgres> {
    /// Wakes this process's readers of the job at once, and the other replicas' through
    /// `NOTIFY`. A notification that cannot be sent only delays those (their poll finds the
    /// write).
    pub(super) async fn announce_activity(&self, job_id: &str) {
        self.activity.followed.wake(job_id);
        let payload = format!("{} {job_id}", self.activity.instance);
        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(&self.pool).await {
            tracing::debug!(error = %e, "could not notify the other replicas of job activity");
        }
    }

    /// Once a reader subscribes: listens for the other replicas' notifications, on a
    /// connection of its own (not one of the pool's), until this store is dropped (noticed at
    /// the next notification or error).
    pub(crate) fn follow_other_replicas(&self, options: PgConnectOptions) {
        let instance = self.activity.instance.clone();
        let start: Follow = Box::new(move |followed| {
            tokio::spawn(listen(followed, options, instance));
        });
        *self.activity.follow.lock().unwrap_or_else(PoisonError::into_inner) = Some(start);
    }
}

async fn listen(followed: Weak<Followed>, options: PgConnectOptions, instance: String) {
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
                match followed.upgrade() {
                    Some(f) => f.wake_all(),
                    None => return,
                }
                loop {
                    // Never cut short (a read given up half-way could leave the connection
                    // mid-message); a store dropped meanwhile is noticed at the next event.
                    let event = listener.try_recv().await;
                    let Some(f) = followed.upgrade() else { return };
                    match event {
                        Ok(Some(notification)) => match notification.payload().split_once(' ') {
                            Some((from, _)) if from == instance => {}
                            // Another replica wrote for a job.
                            Some((_, job_id)) => f.wake(job_id),
                            // Not in this form (a replica of an earlier version): anyone's.
                            None => f.wake_all(),
                        },
                        // The connection dropped and comes back on the next call, having
                        // missed what was sent: every reader looks again.
                        Ok(None) => f.wake_all(),
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the job activity listener; connecting again");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for other replicas' job activity; retrying"),
        }
        if followed.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
