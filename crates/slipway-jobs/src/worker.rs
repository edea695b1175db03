//! The worker loop: reap, claim while there is capacity, run each job in its own task with a
//! heartbeat beside it, and record how it ended.

use std::sync::Arc;
use std::time::Duration;

use slipway_core::time::Timestamp;
use slipway_store::{Heartbeat, Job, JobEnd, Store};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::clock::DatabaseClock;
use crate::{JobContext, JobError, LogBuffer, Registry, StopReason};

/// The last line of the log of a job that a shutdown stopped and queued again.
pub const RESUMES_LINE: &str = "==> Slipway is shutting down: this job is queued to run again";

/// Jobs one worker runs at once unless configured otherwise. Jobs spend most of their time
/// waiting on servers, so this is well above the number of cores: ten deploys to ten servers
/// must not queue behind each other.
pub const DEFAULT_CONCURRENCY: usize = 32;

/// Jobs of one server that run at once (across replicas) unless configured otherwise: a
/// server with many sites deploying fills at most this many slots, and the others stay free
/// for other servers' work.
pub const DEFAULT_PER_SERVER: usize = 4;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Unique per process; recorded as the lease owner.
    pub worker_id: String,
    pub concurrency: usize,
    /// At most this many jobs of one server run at once (see `JobSpec::on_server`).
    pub per_server: usize,
    /// How long a claim lasts without a heartbeat. Much longer than `heartbeat`, so a slow
    /// database round trip never loses a healthy job.
    pub lease: Duration,
    pub heartbeat: Duration,
    /// How often to look for due jobs and expired leases.
    pub poll: Duration,
    /// How often buffered log lines are written.
    pub log_flush: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How far this process's clock is off. Always zero in production: tests set it to play a
    /// replica with a wrong clock, which must still time leases by the database's clock.
    pub simulated_clock_error: chrono::TimeDelta,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            worker_id: format!("worker-{}", slipway_core::new_id()),
            concurrency: DEFAULT_CONCURRENCY,
            per_server: DEFAULT_PER_SERVER,
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            log_flush: Duration::from_millis(500),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(600),
            simulated_clock_error: chrono::TimeDelta::zero(),
        }
    }
}

impl WorkerConfig {
    /// When attempt `attempts + 1` may start, counted from `from`: base × 2^(attempts − 1), capped.
    pub fn retry_at(&self, attempts: i64, from: Timestamp) -> Timestamp {
        let exp = u32::try_from((attempts - 1).clamp(0, 20)).unwrap_or(20);
        let delay = self.backoff_base.saturating_mul(2u32.saturating_pow(exp)).min(self.backoff_max);
        from + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(600))
    }

    fn lease_until(&self, from: Timestamp) -> Timestamp {
        from + chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::seconds(60))
    }
}

#[derive(Clone)]
pub struct Worker {
    store: Arc<dyn Store>,
    registry: Registry,
    config: WorkerConfig,
    /// Every time a worker compares or records (leases, due times, retries) is the database's.
    clock: Arc<DatabaseClock>,
    wakeup: Arc<tokio::sync::Notify>,
    on_failure: Option<Arc<dyn FailureHook>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("registry", &self.registry).field("config", &self.config).finish_non_exhaustive()
    }
}

/// Told of every job that ended `failed` (its handler failed, it panicked, or its worker died and
/// it will not be retried), after that is recorded. Not told of cancellations or retries.
#[async_trait::async_trait]
pub trait FailureHook: Send + Sync + 'static {
    async fn job_failed(&self, job: &Job, reason: &str);
}

impl Worker {
    pub fn new(store: Arc<dyn Store>, registry: Registry, config: WorkerConfig) -> Self {
        let clock = Arc::new(DatabaseClock::new(config.simulated_clock_error));
        Self { store, registry, config, clock, wakeup: Arc::new(tokio::sync::Notify::new()), on_failure: None }
    }

    /// Tells `hook` of every job that ends `failed`.
    pub fn with_failure_hook(mut self, hook: Arc<dyn FailureHook>) -> Self {
        self.on_failure = Some(hook);
        self
    }

    /// Wakes the worker when notified, so work enqueued in this process starts at once
    /// instead of at the next poll (other replicas still find it by polling).
    pub fn with_wakeup(mut self, wakeup: Arc<tokio::sync::Notify>) -> Self {
        self.wakeup = wakeup;
        self
    }

    /// Runs until `shutdown` turns true, then stops the jobs in flight (their remote processes
    /// are killed) and records each as interrupted: requeued when idempotent with attempts
    /// left, else failed. A shutdown is not a user's cancel.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut running = JoinSet::new();
        let mut tick = tokio::time::interval(self.config.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(worker = %self.config.worker_id, "job worker started");
        loop {
            // Biased, and checked again before claiming: a stopping worker must not claim the
            // jobs it has just requeued as interrupted (it would burn their attempts).
            let polled = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                _ = tick.tick() => true,
                _ = self.wakeup.notified() => false,
                // A slot came free: look for more work at once.
                Some(_) = running.join_next(), if !running.is_empty() => false,
            };
            // Expired leases (a minute long) are looked for at each poll, not at every wake-up,
            // of which each deploy brings several.
            if polled {
                self.reap().await;
            }
            while !*shutdown.borrow()
                && let Ok(slot) = slots.clone().try_acquire_owned()
            {
                let at = self.clock.now();
                let per_server = i64::try_from(self.config.per_server.max(1)).unwrap_or(i64::MAX);
                let lease_until = self.config.lease_until(at);
                match self.store.claim_job_within(&self.config.worker_id, at, lease_until, per_server).await {
                    Ok(Some(job)) => {
                        let span =
                            tracing::info_span!("job", job.id = %job.id, job.kind = %job.kind, attempt = job.attempts);
                        let this = self.clone();
                        let stopping = shutdown.clone();
                        running.spawn(
                            async move {
                                this.run_job(job, stopping).await;
                                drop(slot);
                            }
                            .instrument(span),
                        );
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not claim a job");
                        break;
                    }
                }
            }
        }
        tracing::info!(worker = %self.config.worker_id, in_flight = running.len(), "job worker stopping");
        while running.join_next().await.is_some() {}
    }

    async fn reap(&self) {
        if let Err(e) = self.clock.sync(self.store.as_ref()).await {
            tracing::warn!(error = %e, "could not read the database's clock; using the last offset measured");
        }
        let (config, at) = (self.config.clone(), self.clock.now());
        let retry_at = move |attempts: i64| config.retry_at(attempts, at);
        match self.store.reap_jobs(at, &retry_at).await {
            Ok(reaped) => {
                for id in &reaped.requeued {
                    tracing::warn!(job.id = %id, "job's worker stopped renewing its lease; queued again");
                }
                for id in &reaped.failed {
                    tracing::warn!(job.id = %id, "job's worker stopped renewing its lease; failed as interrupted");
                    if let Ok(Some(job)) = self.store.job(id).await {
                        if let Some(handler) = self.registry.get(&job.kind) {
                            handler.abandoned(&job).await;
                        }
                        if let Some(hook) = &self.on_failure {
                            hook.job_failed(&job, job.failure_reason.as_deref().unwrap_or("interrupted")).await;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not reap expired jobs"),
        }
    }

    async fn run_job(&self, job: Job, mut stopping: watch::Receiver<bool>) {
        let Some(handler) = self.registry.get(&job.kind) else {
            let end = JobEnd::Failed { reason: format!("no handler for jobs of kind {:?}", job.kind), exit_code: None };
            self.finish(&job, end).await;
            return;
        };
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let stop_reason = Arc::new(std::sync::Mutex::new(None));
        // The reason first, so that a handler woken by the signal finds it; the strongest stands.
        let stop = |reason: StopReason| {
            let mut current = stop_reason.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *current = (*current).max(Some(reason));
            drop(current);
            let _ = cancel_tx.send(true);
        };
        let log = Arc::new(LogBuffer::default());
        // A retried job continues its earlier attempts' log; a first attempt has none (only a
        // job's runs write its log).
        let last = if job.attempts > 1 {
            self.store.last_job_log_seq(&job.id).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, job.id = %job.id, "could not read the job's log position");
                0
            })
        } else {
            0
        };
        log.start_after(last);
        let ctx = JobContext {
            id: job.id.clone(),
            kind: job.kind.clone(),
            attempt: job.attempts,
            payload: serde_json::from_str(&job.payload).unwrap_or(serde_json::Value::Null),
            cancel: cancel_rx,
            stop: stop_reason.clone(),
            resumes_after_shutdown: job.may_retry(),
            log: log.clone(),
            store: self.store.clone(),
        };
        // Its own task, so a panic in a handler is a failed job, not a dead worker.
        let mut execution = tokio::spawn(async move { handler.run(&ctx).await });
        let mut heartbeat = tokio::time::interval(self.config.heartbeat);
        heartbeat.tick().await;
        let mut flush = tokio::time::interval(self.config.log_flush);
        let (mut cancel_requested, mut lease_lost, mut shut_down) = (false, false, false);
        // Until when our lease surely holds (renewals that fail do not extend it). Past this,
        // another replica may have reaped the job and be running it: stop ours.
        let margin = self.config.heartbeat;
        let mut lease_holds_until = tokio::time::Instant::now() + self.config.lease.saturating_sub(margin);
        let result = loop {
            tokio::select! {
                result = &mut execution => break result,
                _ = async {
                    // A sender that is gone can no longer ask to stop; that is not a stop.
                    if stopping.wait_for(|s| *s).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }, if !shut_down => {
                    shut_down = true;
                    stop(StopReason::Shutdown);
                }
                _ = flush.tick() => log.flush(self.store.as_ref(), &job.id, !lease_lost).await,
                _ = heartbeat.tick(), if !lease_lost => {
                    let renewing_from = tokio::time::Instant::now();
                    match self.store.heartbeat_job(&job.id, &self.config.worker_id, self.config.lease_until(self.clock.now())).await {
                        Ok(Heartbeat::Held) => lease_holds_until = renewing_from + self.config.lease.saturating_sub(margin),
                        Ok(Heartbeat::CancelRequested) => {
                            lease_holds_until = renewing_from + self.config.lease.saturating_sub(margin);
                            if !cancel_requested {
                                tracing::info!(job.id = %job.id, "cancellation requested");
                            }
                            cancel_requested = true;
                            stop(StopReason::Requested);
                        }
                        Ok(Heartbeat::Lost) => {
                            tracing::warn!(job.id = %job.id, "lost the job's lease; stopping it");
                            lease_lost = true;
                            stop(StopReason::LeaseLost);
                        }
                        // A failed renewal is not yet a lost lease: the lease is long enough to retry,
                        // until it may have run out.
                        Err(e) if tokio::time::Instant::now() < lease_holds_until => {
                            tracing::warn!(error = %e, job.id = %job.id, "could not renew the job's lease; will retry");
                        }
                        Err(e) => {
                            tracing::error!(error = %e, job.id = %job.id, "could not renew the job's lease before it ran out; stopping it");
                            lease_lost = true;
                            stop(StopReason::LeaseLost);
                        }
                    }
                }
            }
        };
        let resumes = shut_down && !cancel_requested && !lease_lost && job.may_retry();
        if resumes && matches!(result, Ok(Err(_))) {
            log.push("stderr", RESUMES_LINE.into());
        }
        log.flush(self.store.as_ref(), &job.id, !lease_lost).await;
        if lease_lost {
            return; // someone else owns the record now
        }
        let end = match result {
            Ok(Ok(())) => JobEnd::Succeeded,
            Ok(Err(_)) if shut_down && !cancel_requested => {
                if job.may_retry() {
                    JobEnd::Retry { run_at: self.clock.now(), reason: "interrupted by shutdown; retrying".into() }
                } else {
                    JobEnd::Failed { reason: "interrupted by shutdown".into(), exit_code: None }
                }
            }
            Ok(Err(JobError::Cancelled)) => JobEnd::Cancelled { reason: "cancelled by request".into() },
            Ok(Err(_)) if cancel_requested => JobEnd::Cancelled { reason: "cancelled by request".into() },
            // Reasons are shown to users: the same masking as the log.
            Ok(Err(JobError::Failed { reason, exit_code })) => JobEnd::Failed { reason: log.mask(reason), exit_code },
            Ok(Err(JobError::Retryable { reason })) if job.may_retry() => {
                JobEnd::Retry { run_at: self.config.retry_at(job.attempts, self.clock.now()), reason: log.mask(reason) }
            }
            Ok(Err(JobError::Retryable { reason })) => JobEnd::Failed { reason: log.mask(reason), exit_code: None },
            Err(join) => {
                let detail = match join.try_into_panic() {
                    Ok(panic) => panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "no message".into()),
                    Err(e) => e.to_string(),
                };
                tracing::error!(job.id = %job.id, panic = %detail, "job handler panicked");
                JobEnd::Failed {
                    reason: format!("internal error: the job's handler panicked ({detail})"),
                    exit_code: None,
                }
            }
        };
        let requeued_by_shutdown = resumes && matches!(end, JobEnd::Retry { .. });
        self.finish(&job, end).await;
        // A cancel that came after the last heartbeat turns the requeue into a cancel (the
        // store honours it): the job will not run again, though its handler left what it works
        // on waiting for it. The handler puts that right, as for a job whose worker died.
        if requeued_by_shutdown
            && let Ok(Some(ended)) = self.store.job(&job.id).await
            && ended.status == slipway_core::RunStatus::Cancelled
            && let Some(handler) = self.registry.get(&job.kind)
        {
            handler.abandoned(&ended).await;
        }
    }

    async fn finish(&self, job: &Job, end: JobEnd) {
        match self.store.finish_job(&job.id, &self.config.worker_id, &end, self.clock.now()).await {
            Ok(true) => {
                tracing::info!(job.id = %job.id, outcome = ?end, "job ended");
                if let (JobEnd::Failed { reason, .. }, Some(hook)) = (&end, &self.on_failure) {
                    hook.job_failed(job, reason).await;
                }
            }
            Ok(false) => tracing::warn!(job.id = %job.id, "job ended after its lease was lost; outcome not recorded"),
            Err(e) => tracing::error!(error = %e, job.id = %job.id, "could not record how the job ended"),
        }
    }
}
