//! Durable jobs: every action on a server is a job, stored in Slipway's database, claimed by a
//! worker with a lease, kept alive by heartbeats, retried with backoff when it is safe to, and
//! recovered by a reaper when its worker dies. The queue itself lives in the store
//! (`claim_job`, `heartbeat_job`, `finish_job`, `reap_jobs`); this crate runs it.
//!
//! A job's handler gets a [`JobContext`]: its payload, a log that streams to the job's record
//! (with registered secrets masked), and a cancellation signal it must honour (it fires when a
//! user cancels, or when the worker loses the lease and someone else may now run the job).

mod clock;
pub mod retention;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Serialize;
use slipway_core::time::Timestamp;
use slipway_store::{NewJob, Store, StoreError};
use tokio::sync::watch;

pub use worker::{DEFAULT_CONCURRENCY, DEFAULT_PER_SERVER, FailureHook, RESUMES_LINE, Worker, WorkerConfig};

/// How a job's handler can end other than by succeeding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// A failure to report as final: the reason in words, and the remote exit code if any.
    #[error("{reason}")]
    Failed { reason: String, exit_code: Option<i64> },
    /// A failure that may go away (a connection dropped): retried if the job is idempotent and
    /// has attempts left, else final.
    #[error("{reason}")]
    Retryable { reason: String },
    /// The handler stopped because it was asked to.
    #[error("cancelled")]
    Cancelled,
}

impl JobError {
    pub fn failed(reason: impl Into<String>) -> Self {
        JobError::Failed { reason: reason.into(), exit_code: None }
    }
}

/// The code that performs one kind of job. It must be idempotent when jobs of its kind are
/// enqueued as idempotent (running it twice leaves the same state).
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError>;

    /// Called when a job of this kind ended without its handler recording its end (its worker
    /// died and it will not be retried; a cancel ended it before it ran, or after a shutdown
    /// had queued it again), to put right what `run` would have recorded. `job.status` says how
    /// it ended. It may run in the API's process, not a worker's.
    async fn abandoned(&self, _job: &slipway_store::Job) {}
}

/// Handlers by job kind.
#[derive(Default, Clone)]
pub struct Registry(HashMap<String, Arc<dyn JobHandler>>);

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(mut self, kind: &str, handler: impl JobHandler) -> Self {
        self.0.insert(kind.to_string(), Arc::new(handler));
        self
    }

    pub fn get(&self, kind: &str) -> Option<Arc<dyn JobHandler>> {
        self.0.get(kind).cloned()
    }
}

/// What to enqueue.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub kind: String,
    pub payload: serde_json::Value,
    pub organization_id: Option<String>,
    /// Jobs with the same key never run at the same time (e.g. `server:<id>`).
    pub resource_key: Option<String>,
    /// The server the job works on: at most `WorkerConfig::per_server` of one server's jobs
    /// run at once, so work for other servers always finds a slot.
    pub server_key: Option<String>,
    /// Whether running it again after an interruption is safe.
    pub idempotent: bool,
    pub max_attempts: i64,
    pub run_at: Option<Timestamp>,
    /// A job id chosen by the caller (to store a record naming the job before it can run).
    pub id: Option<String>,
}

impl JobSpec {
    pub fn new(kind: &str, payload: impl Serialize) -> Self {
        JobSpec {
            kind: kind.into(),
            payload: serde_json::to_value(payload).expect("job payloads serialise"),
            organization_id: None,
            resource_key: None,
            server_key: None,
            idempotent: false,
            max_attempts: 1,
            run_at: None,
            id: None,
        }
    }

    /// Uses this id for the job (a fresh ULID from `slipway_core::new_id`).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    pub fn resource(mut self, key: impl Into<String>) -> Self {
        self.resource_key = Some(key.into());
        self
    }

    /// The job works on server `server_id` (see `server_key`).
    pub fn on_server(mut self, server_id: &str) -> Self {
        self.server_key = Some(format!("server:{server_id}"));
        self
    }

    pub fn organization(mut self, id: impl Into<String>) -> Self {
        self.organization_id = Some(id.into());
        self
    }

    /// Safe to run again: retried up to `max_attempts` times in all.
    pub fn idempotent(mut self, max_attempts: i64) -> Self {
        self.idempotent = true;
        self.max_attempts = max_attempts.max(1);
        self
    }

    pub fn at(mut self, run_at: Timestamp) -> Self {
        self.run_at = Some(run_at);
        self
    }
}

/// Stores a job for a worker to pick up; returns its id.
pub async fn enqueue(store: &dyn Store, spec: JobSpec) -> Result<String, StoreError> {
    let id = spec.id.unwrap_or_else(slipway_core::new_id);
    let job = NewJob {
        id: id.clone(),
        kind: spec.kind,
        payload: spec.payload.to_string(),
        organization_id: spec.organization_id,
        resource_key: spec.resource_key,
        server_key: spec.server_key,
        idempotent: spec.idempotent,
        max_attempts: spec.max_attempts,
        run_at: spec.run_at.unwrap_or_else(slipway_core::time::now),
    };
    store.enqueue_job(&job).await?;
    Ok(id)
}

/// Enqueues the run of periodic job `kind` for the slot of length `every` that contains `at`
/// (due at the start of that slot, so a Slipway that was down runs it at once, and with an id
/// made from the slot, so every replica asking makes one); false when it exists already.
pub async fn schedule_slot(
    store: &dyn Store,
    kind: &str,
    lock: &str,
    at: Timestamp,
    every: std::time::Duration,
) -> Result<bool, StoreError> {
    let slot_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX).max(1000);
    let slot = u64::try_from(at.timestamp_millis()).unwrap_or(0) / slot_ms * slot_ms;
    let run_at = chrono::DateTime::from_timestamp_millis(i64::try_from(slot).unwrap_or(0)).unwrap_or(at);
    let spec = JobSpec::new(kind, serde_json::json!({}))
        .resource(lock)
        .idempotent(3)
        .at(run_at)
        .with_id(slipway_core::id::id_at_for(slot, kind));
    match enqueue(store, spec).await {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Why a running job was asked to stop ([`JobContext::stop_reason`]). When several come, the
/// strongest stands (they are ordered by strength): a user's cancel outweighs a shutdown, as
/// the worker records it, and a lost lease outweighs both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopReason {
    /// This process is shutting down: the job is interrupted, not cancelled by anyone.
    Shutdown,
    /// A user cancelled it.
    Requested,
    /// Its lease ran out: another worker may own the job now, and whatever the job would record
    /// of its end is that worker's to record.
    LeaseLost,
}

/// The reason a handler records on what it works on (a deployment, a backup) when a shutdown of
/// Slipway stopped it for good (a job that is not tried again): nobody cancelled it. (The job
/// itself reads `interrupted by shutdown`.)
pub const INTERRUPTED_BY_SHUTDOWN: &str = "interrupted: Slipway was shut down";

/// How a run that did not succeed ends for what its handler works on ([`JobContext::ending`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// It failed: record this reason.
    Failed(String),
    /// It was stopped for good: `cancelled by request`, or [`INTERRUPTED_BY_SHUTDOWN`].
    Stopped(&'static str),
    /// A shutdown stopped it, and the worker queues it again: it runs at the next start (or on
    /// another replica). What it works on stays as it was (`installing`, `provisioning`): the
    /// work is still to come. (If a cancel turns that requeue into a cancel, the worker calls
    /// [`JobHandler::abandoned`].)
    Resumes,
    /// Its lease was lost: the worker that reaped the job owns its end (and may be running it).
    NotOurs,
}

/// Everything a running handler can use. A clone is the same job (its log, secrets and cancel
/// signal are shared), for work a handler runs on a task of its own.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub id: String,
    pub kind: String,
    /// 1 on the first run, 2 on the first retry, …
    pub attempt: i64,
    pub payload: serde_json::Value,
    cancel: watch::Receiver<bool>,
    /// Set before the cancel signal turns true; only ever strengthened.
    stop: Arc<std::sync::Mutex<Option<StopReason>>>,
    /// Whether a shutdown that stops this run queues the job again (idempotent, attempts left).
    resumes_after_shutdown: bool,
    log: Arc<LogBuffer>,
    store: Arc<dyn Store>,
}

impl JobContext {
    /// Writes the buffered log lines now, so that a record the handler marks as finished next
    /// never shows a log that is still missing its last lines.
    pub async fn flush_log(&self) {
        self.log.flush(self.store.as_ref(), &self.id, true).await;
    }

    /// Whether the job should stop (cancelled by a user, a shutdown, or its lease was lost).
    pub fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Why the job was asked to stop; `None` while it is not. Of several reasons the strongest
    /// ([`StopReason`]), so it can change while the handler winds down: read it when recording.
    pub fn stop_reason(&self) -> Option<StopReason> {
        *self.stop.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How a run that ended in `e` ends for what the handler works on, the same way the worker
    /// records the job: a shutdown requeues an idempotent job with attempts left and fails any
    /// other as interrupted (whatever error the stop caused); a user's cancel is a cancel.
    pub fn ending(&self, e: &JobError) -> Ending {
        match (self.stop_reason(), e) {
            (Some(StopReason::LeaseLost), _) => Ending::NotOurs,
            (Some(StopReason::Shutdown), _) if self.resumes_after_shutdown => Ending::Resumes,
            (Some(StopReason::Shutdown), _) => Ending::Stopped(INTERRUPTED_BY_SHUTDOWN),
            (Some(StopReason::Requested), _) | (None, JobError::Cancelled) => Ending::Stopped("cancelled by request"),
            (None, e) => Ending::Failed(e.to_string()),
        }
    }

    /// A receiver that turns true when the job should stop, for code that takes one (remote
    /// transports).
    pub fn cancel_receiver(&self) -> watch::Receiver<bool> {
        self.cancel.clone()
    }

    /// Resolves when the job should stop. For remote work, pass [`JobContext::cancel_receiver`]
    /// to the transport instead of dropping its future in a `select!`: the transport then kills
    /// the remote processes, which dropping would not.
    pub async fn cancelled(&self) {
        let mut rx = self.cancel.clone();
        // A worker that is gone cannot ask to stop; that is not a request to stop.
        if rx.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Adds a line to the job's log (flushed to the store within half a second).
    pub fn log(&self, stream: &str, line: impl Into<String>) {
        self.log.push(stream, line.into());
    }

    /// Masks every later occurrence of `value` in this job's log.
    pub fn add_secret(&self, value: impl Into<String>) {
        self.log.add_secret(value.into());
    }

    pub fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_value(self.payload.clone()).map_err(|e| JobError::failed(format!("invalid job payload: {e}")))
    }
}

/// Log lines waiting to be written, and the secrets to mask in them.
#[derive(Debug, Default)]
pub(crate) struct LogBuffer {
    /// Each stamped when it was produced: a batch is written later, and a log whose lines all
    /// carry the batch's time cannot show where the time went.
    lines: Mutex<Vec<slipway_store::NewLogLine>>,
    secrets: Mutex<Vec<String>>,
    /// One flush at a time: each numbers its lines from `next_seq`.
    flushing: tokio::sync::Mutex<()>,
    /// The number the next stored line gets; set from the store when the job starts.
    next_seq: std::sync::atomic::AtomicI64,
}

pub const MASK: &str = "********";

impl LogBuffer {
    fn add_secret(&self, value: String) {
        // Very short values would mask ordinary text; they are not secrets worth the name.
        if value.len() >= 4 {
            self.secrets.lock().unwrap_or_else(|p| p.into_inner()).push(value);
        }
    }

    fn push(&self, stream: &str, line: String) {
        let line = self.mask(line);
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).push(slipway_store::NewLogLine::now(stream, line));
    }

    /// Replaces every registered secret in `text`.
    pub(crate) fn mask(&self, mut text: String) -> String {
        for secret in self.secrets.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), MASK);
            }
        }
        text
    }

    pub(crate) fn start_after(&self, last_seq: i64) {
        self.next_seq.store(last_seq + 1, std::sync::atomic::Ordering::SeqCst);
    }

    fn take(&self) -> Vec<slipway_store::NewLogLine> {
        std::mem::take(&mut *self.lines.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Writes buffered lines in one statement. When the write fails they go back to the front
    /// of the buffer for the next flush, unless `keep` is false (the lease is gone: the lines
    /// belong to no one now).
    pub(crate) async fn flush(&self, store: &dyn Store, job_id: &str, keep: bool) {
        let _one_at_a_time = self.flushing.lock().await;
        let lines = self.take();
        if lines.is_empty() {
            return;
        }
        let mut first = self.next_seq.load(std::sync::atomic::Ordering::SeqCst);
        let mut written = store.append_job_log(job_id, first, &lines).await;
        if keep && matches!(written, Err(slipway_store::StoreError::Conflict(_))) {
            // Numbers taken meanwhile: a worker that had lost this job's lease wrote its last
            // lines after this attempt began. These follow the last line stored.
            if let Ok(last) = store.last_job_log_seq(job_id).await {
                first = last + 1;
                self.next_seq.store(first, std::sync::atomic::Ordering::SeqCst);
                written = store.append_job_log(job_id, first, &lines).await;
            }
        }
        match written {
            Ok(()) => {
                self.next_seq.fetch_add(lines.len() as i64, std::sync::atomic::Ordering::SeqCst);
            }
            Err(e) => {
                tracing::warn!(error = %e, job.id = %job_id, "could not write job log lines; will retry");
                if keep {
                    let mut buffered = self.lines.lock().unwrap_or_else(|p| p.into_inner());
                    let newer = std::mem::replace(&mut *buffered, lines);
                    buffered.extend(newer);
                }
            }
        }
    }
}
