//! `items.watch`: every few minutes (the process check interval, 5 minutes by default) the cron
//! jobs, queue workers and daemons of every server are read as their own pages read them, and
//! each one found newly failing is reported: `cron.failed`, `cron.missed`, `worker.failed`,
//! `daemon.failed`. Without it a worker that died at night is only seen when someone looks.
//!
//! "Newly": the watch remembers what it found failing (item id → the failure: its status and
//! reason) in the `settings` table. A reason names what makes a failure new: the failed run's end
//! time, the missed run's due time, supervisor's `EXITED` time. So a worker that stays FATAL is
//! reported once; a cron job that fails every minute is reported at each check (each run is a
//! failure of its own, and a channel folds the repeats); an item that recovers and fails again
//! is reported again. An item whose state cannot be read (its server is down: that server's own
//! `server.unreachable` says so) keeps what was remembered of it.

use slipway_core::InstallStatus;
use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use slipway_jobs::{JobContext, JobError, JobHandler};
use slipway_store::{Server, ServerItem};

use super::{CronJobs, Daemons, ItemKind, QueueWorkers, SiteOf};
use crate::Engine;
use crate::notify::{EventSpec, Subject, emit};

pub const WATCH_JOB: &str = "items.watch";
const WATCH_LOCK: &str = "items-watch";
/// The `settings` key of what the last run found failing.
const FAILING_KEY: &str = "items-watch:failing";
/// How often the watch runs unless configured otherwise.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(300);
/// Servers read at once.
const PARALLEL_SERVERS: usize = 8;

/// The kinds the watch reads: those whose state lives on the server and can change by itself.
static WATCHED: [&dyn ItemKind; 3] = [&CronJobs, &QueueWorkers, &Daemons];

/// Enqueues the watch run of the slot of length `every` that contains `at` (due at the start of
/// that slot); false when it exists already.
pub async fn schedule_watch(
    store: &dyn slipway_store::Store,
    at: slipway_core::time::Timestamp,
    every: Duration,
) -> Result<bool, slipway_store::StoreError> {
    slipway_jobs::schedule_slot(store, WATCH_JOB, WATCH_LOCK, at, every).await
}

/// What one item's live status says, for the watch.
#[derive(Debug, PartialEq, Eq)]
pub enum Finding {
    /// Running, waiting, succeeded, stopped by someone: nothing to report.
    Fine,
    /// Its state could not be read, or it is between states (a program starting): what was
    /// remembered stands, so a failed program that someone restarts and that fails again the
    /// same way is not reported twice (the restart's own operation says it failed).
    Unknown,
    /// Failing: the event type and what makes this failure itself (status and reason).
    Failing { event_type: &'static str, failure: String },
}

/// Reads an item whose live status was just set ([`ItemKind::live_status`]).
pub fn finding(item: &ServerItem) -> Finding {
    let event_type = match (item.kind.as_str(), item.shown_status()) {
        (_, "unknown") | (_, "installing") => return Finding::Unknown,
        ("crontab", "failed") => "cron.failed",
        ("crontab", "missed") => "cron.missed",
        ("queue_worker", "failed") => "worker.failed",
        ("daemon", "failed") => "daemon.failed",
        _ => return Finding::Fine,
    };
    let failure = format!("{}: {}", item.shown_status(), item.status_reason.as_deref().unwrap_or_default());
    Finding::Failing { event_type, failure }
}

/// What a run of the watch reports, and what it remembers for the next: from the items read now
/// and what the last run remembered. Items not read now (deleted, or on a server that is gone)
/// are forgotten.
pub fn compare<'a>(
    read: impl IntoIterator<Item = &'a ServerItem>,
    remembered: &BTreeMap<String, String>,
) -> (Vec<(&'a ServerItem, &'static str)>, BTreeMap<String, String>) {
    let (mut report, mut failing) = (Vec::new(), BTreeMap::new());
    for item in read {
        match finding(item) {
            Finding::Fine => {}
            Finding::Unknown => {
                if let Some(before) = remembered.get(&item.id) {
                    failing.insert(item.id.clone(), before.clone());
                }
            }
            Finding::Failing { event_type, failure } => {
                if remembered.get(&item.id) != Some(&failure) {
                    report.push((item, event_type));
                }
                failing.insert(item.id.clone(), failure);
            }
        }
    }
    (report, failing)
}

/// The event that reports `item` (on `server`) failing.
pub fn event(server: &Server, item: &ServerItem, event_type: &'static str) -> EventSpec {
    let site_id = serde_json::from_str::<SiteOf>(&item.spec).ok().map(|s| s.site_id);
    let base = format!("/api/v1/servers/{}", server.id);
    let (resource_type, what, path) = match item.kind.as_str() {
        "crontab" => ("crontab", "Cron job", format!("{base}/crontabs/{}", item.id)),
        "queue_worker" => (
            "queue_worker",
            "Queue worker",
            format!("{base}/sites/{}/queues/{}", site_id.as_deref().unwrap_or_default(), item.id),
        ),
        _ => ("daemon", "Daemon", format!("{base}/daemons/{}", item.id)),
    };
    let name = if item.name.is_empty() { item.id.clone() } else { item.name.clone() };
    let reason = item.status_reason.clone().unwrap_or_default();
    let summary = match item.shown_status() {
        "missed" => format!("{what} {name:?} on {} missed a run: {reason}", server.name),
        _ if item.kind == "crontab" => format!("{what} {name:?} on {} failed: {reason}", server.name),
        _ => format!("{what} {name:?} on {} is not running: {reason}", server.name),
    };
    let subject = Subject {
        resource_type,
        id: item.id.clone(),
        name,
        path: Some(path),
        server_id: Some(server.id.clone()),
        site_id,
    };
    let data = serde_json::json!({ "status": item.shown_status(), "reason": reason });
    EventSpec::new(event_type, &server.organization_id, subject, summary).data(data)
}

#[derive(Debug)]
pub struct WatchItems(pub Engine);

#[async_trait]
impl JobHandler for WatchItems {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let engine = &self.0;
        let store = engine.store.as_ref();
        let retryable = |e: slipway_store::StoreError| JobError::Retryable { reason: format!("database error: {e}") };
        // The next run first: a run that fails still leaves one scheduled.
        let every = engine.process_check_interval;
        let next =
            slipway_core::time::now() + chrono::Duration::from_std(every).unwrap_or(chrono::Duration::minutes(5));
        schedule_watch(store, next, every).await.map_err(retryable)?;

        // Installed items of the watched kinds, by server and kind.
        let mut by_server: BTreeMap<String, Vec<Vec<ServerItem>>> = BTreeMap::new();
        for (index, kind) in WATCHED.iter().enumerate() {
            let mut after = None::<String>;
            loop {
                let batch = store.items_of_kind(kind.name(), after.as_deref(), 500).await.map_err(retryable)?;
                let Some(last) = batch.last() else { break };
                after = Some(last.id.clone());
                for item in batch.into_iter().filter(|i| i.status == InstallStatus::Installed) {
                    by_server.entry(item.server_id.clone()).or_insert_with(|| vec![Vec::new(); WATCHED.len()])[index]
                        .push(item);
                }
            }
        }
        let remembered: BTreeMap<String, String> = store
            .setting(FAILING_KEY)
            .await
            .map_err(retryable)?
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();

        // Each server read as its pages read it, a few at a time.
        let servers = by_server.len();
        let read: Vec<(Server, Vec<ServerItem>)> = futures_util::stream::iter(by_server)
            .map(|(server_id, kinds)| async move {
                let server = engine.store.server(&server_id).await.ok().flatten()?;
                let mut read = Vec::new();
                for (kind, mut items) in WATCHED.iter().zip(kinds) {
                    kind.live_status(engine, &server, &mut items).await;
                    read.extend(items);
                }
                Some((server, read))
            })
            .buffer_unordered(PARALLEL_SERVERS)
            .filter_map(std::future::ready)
            .collect()
            .await;
        if ctx.is_cancelled() {
            return Err(JobError::Cancelled);
        }

        let (mut reported, mut failing) = (0, BTreeMap::new());
        for (server, items) in &read {
            let (report, still) = compare(items, &remembered);
            for (item, event_type) in report {
                ctx.log("stderr", format!("{} on {}: {event_type}", item.id, server.name));
                emit(engine, event(server, item, event_type)).await;
                reported += 1;
            }
            failing.extend(still);
        }
        // Reported before remembered: a run that stops in between reports again rather than never.
        let text = serde_json::to_string(&failing).map_err(|e| JobError::failed(e.to_string()))?;
        store.put_setting(FAILING_KEY, &text).await.map_err(retryable)?;
        ctx.log("info", format!("==> read {servers} server(s): {} item(s) failing, {reported} newly", failing.len()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, kind: &str, status: &str, reason: Option<&str>) -> ServerItem {
        ServerItem {
            id: id.into(),
            server_id: "s".into(),
            kind: kind.into(),
            name: format!("{id}-name"),
            spec: r#"{"site_id": "site1"}"#.into(),
            status: InstallStatus::Installed,
            status_reason: reason.map(str::to_string),
            created_at: slipway_core::time::now(),
            updated_at: slipway_core::time::now(),
            state: Some(status.parse().expect("a live state")),
        }
    }

    #[test]
    fn a_failure_is_reported_once_until_it_changes_or_recovers() {
        let fatal = Some("FATAL Exited too quickly (process log may have details)");
        let first = [
            item("w", "queue_worker", "failed", fatal),
            item("d", "daemon", "running", None),
            item("c", "crontab", "failed", Some("the last run exited with code 3 at 2026-12-04 10:00:00 UTC")),
            item("m", "crontab", "missed", Some("a run was due at 2026-12-04 10:00:00 UTC and none started")),
            item("x", "crontab", "waiting", Some("no run yet")),
        ];
        let (report, failing) = compare(&first, &BTreeMap::new());
        let types: Vec<_> = report.iter().map(|(i, t)| (i.id.as_str(), *t)).collect();
        assert_eq!(types, [("w", "worker.failed"), ("c", "cron.failed"), ("m", "cron.missed")]);
        assert_eq!(failing.len(), 3);

        // The same findings again: nothing new. The cron job fails once more (a later run):
        // reported; the daemon cannot be read: nothing, and the worker's memory is kept when its
        // server cannot be read.
        let (report, again) = compare(&first, &failing);
        assert!(report.is_empty(), "{report:?}");
        let second = [
            item("w", "queue_worker", "unknown", Some("could not read the status")),
            item("d", "daemon", "unknown", None),
            item("c", "crontab", "failed", Some("the last run exited with code 3 at 2026-12-04 10:01:00 UTC")),
        ];
        let (report, failing) = compare(&second, &again);
        let types: Vec<_> = report.iter().map(|(i, t)| (i.id.as_str(), *t)).collect();
        assert_eq!(types, [("c", "cron.failed")]);
        assert_eq!(failing.keys().collect::<Vec<_>>(), ["c", "w"], "m was deleted: forgotten");

        // The worker recovers, then fails again: reported again.
        let (_, failing) = compare(&[item("w", "queue_worker", "running", None)], &failing);
        let failed_again = [item("w", "queue_worker", "failed", fatal)];
        let (report, failing) = compare(&failed_again, &failing);
        assert_eq!(report.len(), 1);
        // A program someone stopped is not a failure; one starting is not a verdict.
        assert_eq!(finding(&item("d", "daemon", "stopped", None)), Finding::Fine);
        let restarting = [item("w", "queue_worker", "installing", None)];
        let (report, kept) = compare(&restarting, &failing);
        assert!(report.is_empty() && kept == failing && kept.contains_key("w"), "{kept:?}");
    }

    #[test]
    fn events_name_the_item_its_page_and_the_reason() {
        let server = Server { id: "S".into(), ..slipway_store::testing::server("o", "web-1") };
        let worker = item("W", "queue_worker", "failed", Some("FATAL Exited too quickly"));
        let event = event(&server, &worker, "worker.failed");
        assert_eq!(event.subject.path.as_deref(), Some("/api/v1/servers/S/sites/site1/queues/W"));
        assert_eq!(event.subject.site_id.as_deref(), Some("site1"));
        assert_eq!(event.summary, "Queue worker \"W-name\" on web-1 is not running: FATAL Exited too quickly");
        let cron = item("C", "crontab", "missed", Some("a run was due at 10:00"));
        let event = super::event(&server, &cron, "cron.missed");
        assert_eq!(event.subject.path.as_deref(), Some("/api/v1/servers/S/crontabs/C"));
        assert_eq!(event.summary, "Cron job \"C-name\" on web-1 missed a run: a run was due at 10:00");
        assert_eq!(event.data["status"], "missed");
    }
}
