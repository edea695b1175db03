//! The worker against a real store, on SQLite and PostgreSQL: success, failure, retries with
//! backoff, panics, cancellation, recovery after a worker dies, exactly-once across two
//! workers, one job at a time per resource, and masked secrets in logs.

use slipway_core::RunStatus;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use slipway_core::time::now;
use slipway_jobs::{
    Ending, INTERRUPTED_BY_SHUTDOWN, JobContext, JobError, JobHandler, JobSpec, RESUMES_LINE, Registry, StopReason,
    Worker, WorkerConfig, enqueue,
};
use slipway_store::testing::TestDatabase;
use slipway_store::{Job, Store};
use tokio::sync::watch;

/// What the test handlers did, for assertions.
#[derive(Default)]
struct Record {
    runs: Mutex<HashMap<String, usize>>,
    running_per_resource: Mutex<HashMap<String, usize>>,
    overlaps: AtomicUsize,
    abandoned: Mutex<Vec<String>>,
    /// Why each job in `wait` mode was stopped, and how it ends for what it works on, as its
    /// handler saw them.
    stops: Mutex<HashMap<String, (Option<StopReason>, Ending)>>,
    /// Woken each time a stop is recorded in `stops`.
    stop_recorded: tokio::sync::Notify,
    /// Jobs in `held` mode run until this turns true (or they are cancelled).
    released: AtomicBool,
    release: tokio::sync::Notify,
}

impl Record {
    fn release_held_jobs(&self, released: bool) {
        self.released.store(released, Ordering::SeqCst);
        self.release.notify_waiters();
    }
}

struct Echo(Arc<Record>);

#[async_trait]
impl JobHandler for Echo {
    async fn abandoned(&self, job: &Job) {
        self.0.abandoned.lock().unwrap().push(job.id.clone());
    }

    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        *self.0.runs.lock().unwrap().entry(ctx.id.clone()).or_default() += 1;
        let resource = ctx.payload["resource"].as_str().unwrap_or("").to_string();
        {
            let mut running = self.0.running_per_resource.lock().unwrap();
            let n = running.entry(resource.clone()).or_default();
            *n += 1;
            if *n > 1 {
                self.0.overlaps.fetch_add(1, Ordering::SeqCst);
            }
        }
        ctx.add_secret("hunter2-password");
        ctx.log("stdout", format!("hello from attempt {}", ctx.attempt));
        ctx.log("stderr", "connecting with password hunter2-password");
        // Long enough that two jobs of one resource would overlap if the lock failed.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        *self.0.running_per_resource.lock().unwrap().get_mut(&resource).unwrap() -= 1;
        match ctx.payload["mode"].as_str() {
            Some("fail") => Err(JobError::Failed { reason: "apt-get exited with 100".into(), exit_code: Some(100) }),
            Some("flaky") if ctx.attempt < 3 => Err(JobError::Retryable { reason: "connection reset".into() }),
            Some("panic") => panic!("boom"),
            Some("held") => {
                let end = loop {
                    // Registered before the flag is read, so a release in between is not missed.
                    let released = self.0.release.notified();
                    if self.0.released.load(Ordering::SeqCst) {
                        break Ok(());
                    }
                    tokio::select! {
                        () = released => {}
                        () = ctx.cancelled() => break Err(JobError::Cancelled),
                    }
                };
                ctx.log("stdout", "let go");
                end
            }
            Some("leak") => Err(JobError::failed("login with hunter2-password was refused")),
            Some("wait") => {
                ctx.cancelled().await;
                let seen = (ctx.stop_reason(), ctx.ending(&JobError::Cancelled));
                self.0.stops.lock().unwrap().insert(ctx.id.clone(), seen);
                self.0.stop_recorded.notify_waiters();
                Err(JobError::Cancelled)
            }
            _ => Ok(()),
        }
    }
}

fn fast_config(id: &str) -> WorkerConfig {
    WorkerConfig {
        worker_id: id.into(),
        concurrency: 4,
        per_server: 4,
        lease: Duration::from_secs(5),
        heartbeat: Duration::from_millis(50),
        poll: Duration::from_millis(20),
        log_flush: Duration::from_millis(20),
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        simulated_clock_error: chrono::TimeDelta::zero(),
    }
}

fn start(store: Arc<dyn Store>, record: Arc<Record>, id: &str) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    start_with(store, record, fast_config(id))
}

fn start_with(
    store: Arc<dyn Store>,
    record: Arc<Record>,
    config: WorkerConfig,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop, rx) = watch::channel(false);
    let worker = Worker::new(store, Registry::new().register("test.echo", Echo(record)), config);
    (stop, tokio::spawn(worker.run(rx)))
}

/// Polls until the job is running, with a deadline.
async fn running(store: &dyn Store, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut every = tokio::time::interval(Duration::from_millis(10));
    loop {
        every.tick().await;
        if store.job(id).await.unwrap().unwrap().status == RunStatus::Running {
            return;
        }
        assert!(Instant::now() < deadline, "job {id} never started");
    }
}

/// Polls until the job reaches a final status, with a deadline.
async fn finished(store: &dyn Store, id: &str) -> Job {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut every = tokio::time::interval(Duration::from_millis(10));
    loop {
        every.tick().await;
        let job = store.job(id).await.unwrap().unwrap();
        if matches!(job.status.as_str(), "succeeded" | "failed" | "cancelled") {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} still {} after 20 s", job.status);
    }
}

fn spec(mode: &str, resource: &str) -> JobSpec {
    JobSpec::new("test.echo", serde_json::json!({"mode": mode, "resource": resource}))
        .resource(format!("test:{resource}"))
}

async fn outcomes(db: TestDatabase) {
    let store = db.store().await;
    let record = Arc::new(Record::default());
    let (stop, worker) = start(store.clone(), record.clone(), "w1");

    let ok = enqueue(store.as_ref(), spec("ok", "a")).await.unwrap();
    let job = finished(store.as_ref(), &ok).await;
    assert_eq!((job.status.as_str(), job.attempts, job.failure_reason), ("succeeded", 1, None));
    let log = store.job_log(&ok, 0, 100).await.unwrap();
    let lines: Vec<&str> = log.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(lines, ["hello from attempt 1", "connecting with password ********"], "secrets are masked");

    let fail = enqueue(store.as_ref(), spec("fail", "b")).await.unwrap();
    let job = finished(store.as_ref(), &fail).await;
    assert_eq!(
        (job.status.as_str(), job.exit_code, job.failure_reason.as_deref()),
        ("failed", Some(100), Some("apt-get exited with 100"))
    );

    let flaky = enqueue(store.as_ref(), spec("flaky", "c").idempotent(5)).await.unwrap();
    let job = finished(store.as_ref(), &flaky).await;
    assert_eq!((job.status.as_str(), job.attempts), ("succeeded", 3), "retried with backoff until it worked");
    // Each attempt's lines follow the last attempt's, numbered on from it.
    let log = store.job_log(&flaky, 0, 100).await.unwrap();
    let hellos: Vec<&str> = log.iter().map(|l| l.line.as_str()).filter(|l| l.starts_with("hello")).collect();
    assert_eq!(hellos, ["hello from attempt 1", "hello from attempt 2", "hello from attempt 3"]);
    assert_eq!(log.iter().map(|l| l.seq).collect::<Vec<_>>(), (1..=6).collect::<Vec<i64>>());
    let once = enqueue(store.as_ref(), spec("flaky", "d")).await.unwrap();
    let job = finished(store.as_ref(), &once).await;
    assert_eq!(
        (job.status.as_str(), job.failure_reason.as_deref()),
        ("failed", Some("connection reset")),
        "not idempotent: no retry"
    );

    let leak = enqueue(store.as_ref(), spec("leak", "g")).await.unwrap();
    let job = finished(store.as_ref(), &leak).await;
    assert_eq!(job.failure_reason.as_deref(), Some("login with ******** was refused"), "reasons are masked too");

    let panics = enqueue(store.as_ref(), spec("panic", "e")).await.unwrap();
    let job = finished(store.as_ref(), &panics).await;
    assert_eq!(job.status, RunStatus::Failed);
    assert!(job.failure_reason.unwrap().contains("panicked (boom)"));
    let after = enqueue(store.as_ref(), spec("ok", "e")).await.unwrap();
    assert_eq!(finished(store.as_ref(), &after).await.status, RunStatus::Succeeded, "the worker survived the panic");

    let waiting = enqueue(store.as_ref(), spec("wait", "f")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.job(&waiting).await.unwrap().unwrap().status != RunStatus::Running {
        assert!(Instant::now() < deadline, "never started");
        tokio::task::yield_now().await;
    }
    store.cancel_job(&waiting, now()).await.unwrap();
    let job = finished(store.as_ref(), &waiting).await;
    assert_eq!((job.status.as_str(), job.failure_reason.as_deref()), ("cancelled", Some("cancelled by request")));
    assert_eq!(
        record.stops.lock().unwrap()[&waiting],
        (Some(StopReason::Requested), Ending::Stopped("cancelled by request")),
        "the handler knew why"
    );

    let unknown = enqueue(store.as_ref(), JobSpec::new("no.such.kind", ())).await.unwrap();
    let job = finished(store.as_ref(), &unknown).await;
    assert!(job.failure_reason.unwrap().contains("no handler"));

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), worker).await.expect("the worker stops").unwrap();
}

#[tokio::test]
async fn outcomes_on_sqlite() {
    outcomes(TestDatabase::sqlite().await).await;
}

#[tokio::test]
async fn outcomes_on_postgres() {
    outcomes(TestDatabase::postgres().await).await;
}

async fn recovery(db: TestDatabase) {
    let store = db.store().await;
    // A worker claims two jobs and dies (its lease runs out without a heartbeat).
    let safe = enqueue(store.as_ref(), spec("ok", "s1").idempotent(3)).await.unwrap();
    let unsafe_ = enqueue(store.as_ref(), spec("ok", "s2")).await.unwrap();
    let short = now() + chrono::Duration::milliseconds(100);
    store.claim_job("dead-worker", now(), short).await.unwrap().unwrap();
    store.claim_job("dead-worker", now(), short).await.unwrap().unwrap();

    let record = Arc::new(Record::default());
    let (stop, worker) = start(store.clone(), record.clone(), "w-new");
    let job = finished(store.as_ref(), &safe).await;
    assert_eq!((job.status.as_str(), job.attempts), ("succeeded", 2), "recovered and run again");
    let job = finished(store.as_ref(), &unsafe_).await;
    assert_eq!((job.status.as_str(), job.failure_reason.as_deref()), ("failed", Some("interrupted")));
    assert_eq!(record.runs.lock().unwrap().get(&unsafe_), None, "a non-idempotent job is never run twice");
    let deadline = Instant::now() + Duration::from_secs(5);
    while record.abandoned.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the handler was not told its job was abandoned");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*record.abandoned.lock().unwrap(), vec![unsafe_.clone()], "only the job that will not run again");
    stop.send(true).unwrap();
    worker.await.unwrap();
}

#[tokio::test]
async fn recovery_after_a_worker_dies_on_sqlite() {
    recovery(TestDatabase::sqlite().await).await;
}

#[tokio::test]
async fn recovery_after_a_worker_dies_on_postgres() {
    recovery(TestDatabase::postgres().await).await;
}

#[tokio::test]
async fn two_replicas_run_each_job_once_and_one_per_resource_at_a_time() {
    let db = TestDatabase::postgres().await;
    let (store1, store2) = (db.store().await, db.connect().await);
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(enqueue(store1.as_ref(), spec("ok", &format!("r{}", i % 3))).await.unwrap());
    }
    let record = Arc::new(Record::default());
    let (stop1, w1) = start(store1.clone(), record.clone(), "replica-1");
    let (stop2, w2) = start(store2, record.clone(), "replica-2");
    for id in &ids {
        assert_eq!(finished(store1.as_ref(), id).await.status, RunStatus::Succeeded);
    }
    let runs = record.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 30);
    assert!(runs.values().all(|&n| n == 1), "each job ran exactly once: {runs:?}");
    assert_eq!(record.overlaps.load(Ordering::SeqCst), 0, "never two jobs at once on one resource");
    stop1.send(true).unwrap();
    stop2.send(true).unwrap();
    w1.await.unwrap();
    w2.await.unwrap();
}

/// Ten deploys queued for one server's ten sites, then one for another server: the other
/// server's starts while the busy one's still run, and the busy one runs only its cap of two.
#[tokio::test]
async fn a_busy_server_never_takes_every_slot() {
    let db = TestDatabase::sqlite().await;
    let store = db.store().await;
    let record = Arc::new(Record::default());
    let config = WorkerConfig { concurrency: 4, per_server: 2, ..fast_config("w1") };
    let busy: Vec<String> = {
        let mut ids = Vec::new();
        for site in 0..10 {
            ids.push(enqueue(store.as_ref(), spec("held", &format!("a{site}")).on_server("a")).await.unwrap());
        }
        ids
    };
    let other = enqueue(store.as_ref(), spec("held", "b0").on_server("b")).await.unwrap();
    let (stop, worker) = start_with(store.clone(), record.clone(), config);
    running(store.as_ref(), &other).await;
    let mut running_of_a = 0;
    for id in &busy {
        if store.job(id).await.unwrap().unwrap().status == RunStatus::Running {
            running_of_a += 1;
        }
    }
    assert_eq!(running_of_a, 2, "server a runs at most two jobs at once, with two slots free");
    record.release_held_jobs(true);
    for id in busy.iter().chain([&other]) {
        assert_eq!(finished(store.as_ref(), id).await.status, RunStatus::Succeeded);
    }
    stop.send(true).unwrap();
    worker.await.unwrap();
}

#[tokio::test]
async fn shutdown_stops_running_jobs_and_records_them_as_interrupted() {
    let db = TestDatabase::sqlite().await;
    let store = db.store().await;
    let record = Arc::new(Record::default());
    let (stop, worker) = start(store.clone(), record.clone(), "w-stop");
    let retried = enqueue(store.as_ref(), spec("wait", "s1").idempotent(3)).await.unwrap();
    let failed = enqueue(store.as_ref(), spec("wait", "s2")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut every = tokio::time::interval(Duration::from_millis(10));
    loop {
        every.tick().await;
        let running = [&retried, &failed];
        let mut all = true;
        for id in running {
            all &= store.job(id).await.unwrap().unwrap().status == RunStatus::Running;
        }
        if all {
            break;
        }
        assert!(Instant::now() < deadline, "jobs never started");
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), worker).await.expect("shutdown does not hang").unwrap();
    let r = store.job(&retried).await.unwrap().unwrap();
    assert_eq!((r.status.as_str(), r.failure_reason.as_deref()), ("queued", Some("interrupted by shutdown; retrying")));
    // A stopping worker does not claim again what it has just requeued.
    assert_eq!(r.attempts, 1, "the requeued job was not run again during the shutdown");
    let f = store.job(&failed).await.unwrap().unwrap();
    assert_eq!((f.status.as_str(), f.failure_reason.as_deref()), ("failed", Some("interrupted by shutdown")));
    // Their handlers knew it was a shutdown, not a user's cancel, and which of them runs again:
    // that one's resources keep waiting for it, the other's record the interruption.
    let stops = record.stops.lock().unwrap().clone();
    assert_eq!(stops[&retried], (Some(StopReason::Shutdown), Ending::Resumes));
    assert_eq!(stops[&failed], (Some(StopReason::Shutdown), Ending::Stopped(INTERRUPTED_BY_SHUTDOWN)));
    let says_it_resumes = |log: Vec<slipway_store::JobLogLine>| log.iter().any(|l| l.line == RESUMES_LINE);
    assert!(says_it_resumes(store.job_log(&retried, 0, 100).await.unwrap()), "the requeued job's log says so");
    assert!(!says_it_resumes(store.job_log(&failed, 0, 100).await.unwrap()), "the failed one's does not");
    assert!(record.abandoned.lock().unwrap().is_empty(), "their handlers recorded their ends");
}

/// A cancel the worker has not seen yet (it comes with the next heartbeat) when a shutdown stops
/// the job turns its requeue into a cancel: the job does not run again, so its handler, which
/// left what it works on waiting for the next run, is told (`abandoned`).
#[tokio::test]
async fn a_cancel_not_yet_seen_at_shutdown_ends_the_job_and_its_handler_is_told() {
    let db = TestDatabase::sqlite().await;
    let store = db.store().await;
    let record = Arc::new(Record::default());
    let config =
        WorkerConfig { heartbeat: Duration::from_secs(30), lease: Duration::from_secs(120), ..fast_config("w-race") };
    let (stop, worker) = start_with(store.clone(), record.clone(), config);
    let job = enqueue(store.as_ref(), spec("wait", "c1").idempotent(3)).await.unwrap();
    running(store.as_ref(), &job).await;
    store.cancel_job(&job, now()).await.unwrap();
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), worker).await.expect("shutdown does not hang").unwrap();
    assert_eq!(record.stops.lock().unwrap()[&job], (Some(StopReason::Shutdown), Ending::Resumes), "it had not seen it");
    let j = store.job(&job).await.unwrap().unwrap();
    assert_eq!((j.status.as_str(), j.attempts), ("cancelled", 1), "it does not run again");
    assert_eq!(*record.abandoned.lock().unwrap(), vec![job.clone()], "its handler was told");
}

/// A job whose lease another worker has reaped (as after a pause longer than the lease) is
/// stopped at the next heartbeat, its handler told why, and the record the reaper wrote stands.
#[tokio::test]
async fn a_lost_lease_stops_the_job_and_its_handler_knows_why() {
    let db = TestDatabase::sqlite().await;
    let store = db.store().await;
    let record = Arc::new(Record::default());
    let (stop, worker) = start(store.clone(), record.clone(), "w-lost");
    let job = enqueue(store.as_ref(), spec("wait", "l1")).await.unwrap();
    running(store.as_ref(), &job).await;
    // Reaped as if its lease had run out an hour from now.
    let later = now() + chrono::Duration::hours(1);
    store.reap_jobs(later, &|_| later).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        // Registered before the map is read, so a stop recorded in between is not missed.
        let recorded = record.stop_recorded.notified();
        if record.stops.lock().unwrap().contains_key(&job) {
            break;
        }
        tokio::time::timeout_at(deadline, recorded).await.expect("the job was not stopped after losing its lease");
    }
    assert_eq!(record.stops.lock().unwrap()[&job], (Some(StopReason::LeaseLost), Ending::NotOurs));
    let j = store.job(&job).await.unwrap().unwrap();
    assert_eq!((j.status.as_str(), j.failure_reason.as_deref()), ("failed", Some("interrupted")));
    stop.send(true).unwrap();
    worker.await.unwrap();
}

#[tokio::test]
async fn a_wakeup_starts_new_work_without_waiting_for_the_next_poll() {
    let db = TestDatabase::sqlite().await;
    let store = db.store().await;
    let record = Arc::new(Record::default());
    let wakeup = Arc::new(tokio::sync::Notify::new());
    // Polling once a minute: within the deadline below, only the wake-up can start the job.
    let config = WorkerConfig { poll: Duration::from_secs(60), ..fast_config("w-wake") };
    let worker = Worker::new(store.clone(), Registry::new().register("test.echo", Echo(record)), config)
        .with_wakeup(wakeup.clone());
    let (stop, rx) = watch::channel(false);
    let handle = tokio::spawn(worker.run(rx));
    // Let the first (immediate) poll pass with nothing to do.
    let mut every = tokio::time::interval(Duration::from_millis(50));
    every.tick().await;
    every.tick().await;
    let id = enqueue(store.as_ref(), spec("ok", "w")).await.unwrap();
    wakeup.notify_one();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        every.tick().await;
        if store.job(&id).await.unwrap().unwrap().status == RunStatus::Succeeded {
            break;
        }
        assert!(Instant::now() < deadline, "the wake-up did not start the job");
    }
    stop.send(true).unwrap();
    handle.await.unwrap();
}

fn audit_event(at: slipway_core::time::Timestamp) -> slipway_store::AuditEvent {
    slipway_store::AuditEvent {
        id: slipway_core::new_id(),
        occurred_at: at,
        actor_user_id: Some("retention".into()),
        token_id: None,
        organization_id: None,
        action: "token.create".into(),
        method: None,
        route: None,
        resource_id: None,
        status: None,
        outcome: "success".into(),
        client_ip: None,
        user_agent: None,
        request_id: None,
        detail: None,
    }
}

async fn audit_count(store: &dyn Store) -> u64 {
    let mine = slipway_store::AuditFilter { own_user_id: Some("retention".into()), ..Default::default() };
    store.audit_events(&mine, slipway_core::PageRequest::default()).await.unwrap().1
}

/// The pruning job through the real worker: scheduled once per slot whatever the number of
/// schedulers, it deletes what is older than its setting, keeps what is younger, schedules its
/// next run, and does it again on the next slot.
async fn pruning_on_schedule(db: TestDatabase) {
    use slipway_jobs::retention::{PRUNE_JOB, PRUNE_LOCK, Prune, REPORT_SETTING, Report, Retention, schedule};
    let store = db.store().await;
    let t = now();
    for at in [t - chrono::Duration::seconds(60), t - chrono::Duration::seconds(30), t] {
        store.insert_audit_event(&audit_event(at)).await.unwrap();
    }
    let retention = Retention {
        audit_events: Duration::from_secs(10),
        interval: Duration::from_secs(1),
        pause: Duration::ZERO,
        batch: 1,
        ..Retention::default()
    };
    assert!(schedule(store.as_ref(), &retention, t).await.unwrap());
    assert!(!schedule(store.as_ref(), &retention, t).await.unwrap(), "one run per slot, across replicas");

    let (stop, rx) = watch::channel(false);
    let registry = Registry::new().register(PRUNE_JOB, Prune { store: store.clone(), retention: retention.clone() });
    let worker = tokio::spawn(Worker::new(store.clone(), registry, fast_config("pruner")).run(rx));

    let deadline = Instant::now() + Duration::from_secs(20);
    while audit_count(store.as_ref()).await != 1 {
        assert!(Instant::now() < deadline, "old events still there after 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // An event that becomes old later goes at a later run.
    store.insert_audit_event(&audit_event(now() - chrono::Duration::seconds(20))).await.unwrap();
    while audit_count(store.as_ref()).await != 1 {
        assert!(Instant::now() < deadline, "the next run did not come");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (runs, total) = store.jobs_for_resource(PRUNE_LOCK, slipway_core::PageRequest::default()).await.unwrap();
    assert!(total >= 2, "each run schedules the next: {total}");
    assert!(runs.iter().any(|j| j.status == RunStatus::Succeeded));
    // The run that deleted the last one writes its report just after; runs add up.
    let report = loop {
        let text = store.setting(REPORT_SETTING).await.unwrap().unwrap_or_default();
        if let Ok(report) = serde_json::from_str::<Report>(&text)
            && report.pruned_total.iter().any(|(rule, n)| rule == "audit_events" && *n == 3)
        {
            break report;
        }
        assert!(Instant::now() < deadline, "no report counts the three pruned events: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(report.database_bytes > 0);
    assert!(report.rows.iter().any(|(table, n)| table == "audit_events" && *n == 1), "{report:?}");

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), worker).await.expect("the worker stops").unwrap();
}

#[tokio::test]
async fn pruning_runs_on_schedule_through_the_worker_on_sqlite() {
    pruning_on_schedule(TestDatabase::sqlite().await).await;
}

#[tokio::test]
async fn pruning_runs_on_schedule_through_the_worker_on_postgres() {
    pruning_on_schedule(TestDatabase::postgres().await).await;
}

/// Replicas whose clocks are wrong by minutes still agree on leases and due times, because
/// they time jobs by the database's clock: a replica ahead does not take over a job whose
/// lease is live, and a replica behind starts due work and holds a lease the others respect.
async fn clocks(db: TestDatabase) {
    let store = db.store().await;
    let record = Arc::new(Record::default());
    let skewed = |id: &str, minutes: i64| WorkerConfig {
        simulated_clock_error: chrono::TimeDelta::minutes(minutes),
        ..fast_config(id)
    };
    // The replica holding the job has one slot, so a second job can only go to the replica
    // ahead; that one reaps at its first poll, on start, before it claims anything, so once it
    // has run that job, it has had its chance to take the held job over. Then the held job is
    // let go.
    let holding = |id: &str, minutes: i64| WorkerConfig { concurrency: 1, ..skewed(id, minutes) };
    let ahead_has_looked = |n: &str| {
        let (store, n) = (store.clone(), n.to_string());
        async move {
            let marker = enqueue(store.as_ref(), spec("ok", &n)).await.unwrap();
            assert_eq!(finished(store.as_ref(), &marker).await.status, RunStatus::Succeeded);
        }
    };

    // An honest replica holds a job; one ten minutes ahead starts beside it.
    let first = enqueue(store.as_ref(), spec("held", "c1")).await.unwrap();
    let (stop_honest, honest) = start_with(store.clone(), record.clone(), holding("honest", 0));
    running(store.as_ref(), &first).await;
    let (stop_ahead, ahead) = start_with(db.connect().await, record.clone(), skewed("ahead", 10));
    ahead_has_looked("m1").await;
    record.release_held_jobs(true);
    let job = finished(store.as_ref(), &first).await;
    assert_eq!((job.status.as_str(), job.lease_owner.as_deref()), ("succeeded", None), "{job:?}");
    assert_eq!(job.attempts, 1, "the replica ahead did not take the job over");
    for (stop, worker) in [(stop_honest, honest), (stop_ahead, ahead)] {
        stop.send(true).unwrap();
        worker.await.unwrap();
    }

    // A replica ten minutes behind, alone: the job is due for it too, and once it holds it, a
    // replica ahead leaves it alone.
    record.release_held_jobs(false);
    let second = enqueue(store.as_ref(), spec("held", "c2")).await.unwrap();
    let (stop_behind, behind) = start_with(store.clone(), record.clone(), holding("behind", -10));
    running(store.as_ref(), &second).await;
    let (stop_ahead, ahead) = start_with(db.connect().await, record.clone(), skewed("ahead", 10));
    ahead_has_looked("m2").await;
    record.release_held_jobs(true);
    let job = finished(store.as_ref(), &second).await;
    assert_eq!((job.status.as_str(), job.attempts), ("succeeded", 1), "{job:?}");
    let runs = record.runs.lock().unwrap().clone();
    assert_eq!((runs.get(&first), runs.get(&second)), (Some(&1), Some(&1)), "each job ran once");
    for (stop, worker) in [(stop_behind, behind), (stop_ahead, ahead)] {
        stop.send(true).unwrap();
        worker.await.unwrap();
    }
}

#[tokio::test]
async fn replicas_with_wrong_clocks_time_leases_by_the_database_on_sqlite() {
    clocks(TestDatabase::sqlite().await).await;
}

#[tokio::test]
async fn replicas_with_wrong_clocks_time_leases_by_the_database_on_postgres() {
    clocks(TestDatabase::postgres().await).await;
}

/// A worker that lost a job's lease may still write its last lines after the next attempt began
/// numbering its own: the attempt then numbers on from the last line stored, and loses nothing.
#[tokio::test]
async fn lines_numbered_meanwhile_by_a_worker_that_lost_the_lease_are_stepped_over() {
    let db = TestDatabase::sqlite().await;
    let store = db.store().await;
    let record = Arc::new(Record::default());
    let (stop, worker) = start(store.clone(), record.clone(), "w1");
    let id = enqueue(store.as_ref(), spec("held", "stale")).await.unwrap();
    running(store.as_ref(), &id).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut every = tokio::time::interval(Duration::from_millis(10));
    while store.job_log(&id, 0, 10).await.unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "the first lines were never written");
        every.tick().await;
    }
    // The number this attempt gives its next line, taken by the other worker's last flush.
    let stale = slipway_store::NewLogLine::now("stdout", "from the worker that lost the lease");
    store.append_job_log(&id, 3, &[stale]).await.unwrap();
    record.release_held_jobs(true);
    assert_eq!(finished(store.as_ref(), &id).await.status, RunStatus::Succeeded);
    let log = store.job_log(&id, 0, 10).await.unwrap();
    let lines: Vec<(i64, &str)> = log.iter().map(|l| (l.seq, l.line.as_str())).collect();
    assert_eq!(
        lines,
        [
            (1, "hello from attempt 1"),
            (2, "connecting with password ********"),
            (3, "from the worker that lost the lease"),
            (4, "let go")
        ]
    );
    stop.send(true).unwrap();
    worker.await.unwrap();
}
