//! Backup schedules and their retention. A schedule backs a database, or a site's shared paths
//! and `.env`, up on a cron-like frequency (UTC). Each occurrence is a durable job
//! (`backup.scheduled`) with an id made from the schedule and the time, so however many times it
//! is queued (at every start of Slipway, after an edit) it exists once; a run queues the next
//! occurrence before anything else, so a run that fails still leaves the schedule going.
//!
//! Retention runs once a scheduled backup is stored (and verified, when the schedule verifies):
//! the newest `keep_last` good backups stay, and besides the newest good backup of each of the
//! last `keep_daily` days, `keep_weekly` ISO weeks and `keep_monthly` months that have one. The
//! other good backups of the schedule, and its failed ones older than the oldest kept, are
//! deleted from the storage for real, then forgotten; each deletion is recorded in the job's log
//! and the audit log (`backup.prune`).

use slipway_core::{BackupStatus, InstallStatus, RunStatus};
use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Utc};
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use slipway_jobs::{JobContext, JobError, JobHandler};
use slipway_store::{Backup, BackupFilter, BackupSchedule, BackupTarget, Store, StoreError};

use crate::backup_storage::Storage;
use crate::items::DatabaseSpec;
use crate::items::cron::Schedule;
use crate::script::Script;
use crate::session::store_error;
use crate::{Engine, JobKind};

/// `backup.scheduled`: one occurrence of a schedule. Not retried: the next occurrence is the
/// next try.
pub const BACKUP_SCHEDULED: JobKind = JobKind { name: "backup.scheduled", attempts: 1 };

#[derive(Debug, Serialize, Deserialize)]
pub struct ScheduledRun {
    pub schedule_id: String,
    /// The occurrence this job is for: a job whose schedule now says otherwise was superseded.
    pub at: DateTime<Utc>,
}

/// The first time after `after` that `frequency` names (a named frequency such as `nightly`, or
/// five cron fields, in UTC).
pub fn next_run(frequency: &str, after: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let schedule = Schedule::parse(frequency)?;
    if matches!(schedule, Schedule::Reboot) {
        return Err("A backup schedule needs times, not @reboot.".into());
    }
    schedule
        .next_after(&after.fixed_offset())
        .map(|at| at.with_timezone(&Utc))
        .ok_or_else(|| "The frequency never comes round.".to_string())
}

/// The time between two runs of `frequency` after `at` (the schedule's period there).
pub fn period(frequency: &str, at: DateTime<Utc>) -> Option<chrono::Duration> {
    let first = next_run(frequency, at).ok()?;
    let second = next_run(frequency, first).ok()?;
    Some(second - first)
}

/// Whether a backup counts as good for retention and staleness: stored, and not found wanting
/// by a verification (and verified, when `verified` is asked for).
pub fn is_good(backup: &Backup, verified: bool) -> bool {
    matches!(backup.status, BackupStatus::Completed | BackupStatus::Restored)
        && backup.verification_error.is_none()
        && (!verified || backup.verified_at.is_some())
}

/// When the schedule's newest good backup was made (among its last 100).
pub async fn last_good(
    store: &dyn slipway_store::Store,
    schedule: &BackupSchedule,
) -> Result<Option<DateTime<Utc>>, slipway_store::StoreError> {
    let filter = BackupFilter { schedule_id: Some(schedule.id.clone()), ..Default::default() };
    let orgs = [schedule.organization_id.clone()];
    let page = slipway_core::PageRequest::new(1, 100);
    let (newest, _) = store.backups_of(&orgs, &filter, page).await?;
    Ok(newest.iter().find(|b| is_good(b, schedule.verify)).map(|b| b.created_at))
}

/// A schedule is stale when it has produced no good backup (verified, if it verifies) within
/// twice its period: counted from its last good backup, or from its creation.
pub fn is_stale(schedule: &BackupSchedule, last_good: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    let Some(period) = period(&schedule.frequency, now) else { return false };
    let since = last_good.unwrap_or(schedule.created_at);
    now - since > period * 2
}

/// How many of each to keep.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    pub last: usize,
    pub daily: usize,
    pub weekly: usize,
    pub monthly: usize,
}

impl Keep {
    pub fn of(schedule: &BackupSchedule) -> Keep {
        let n = |v: i64| usize::try_from(v).unwrap_or(0);
        Keep {
            last: n(schedule.keep_last),
            daily: n(schedule.keep_daily),
            weekly: n(schedule.keep_weekly),
            monthly: n(schedule.keep_monthly),
        }
    }
}

/// The ids of the backups retention deletes, of one schedule's `backups` (any order). Good means
/// verified too when the schedule verifies (`verified`), so an unverified backup never pushes a
/// verified one out. A backup still being made or waiting for its verification is never among
/// them; nothing is deleted while no good backup exists.
pub fn to_prune(backups: &[Backup], keep: Keep, verified: bool) -> Vec<String> {
    let mut good: Vec<&Backup> = backups.iter().filter(|b| is_good(b, verified)).collect();
    good.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
    let mut kept: HashSet<&str> = good.iter().take(keep.last).map(|b| b.id.as_str()).collect();
    // The newest backup of each of the last `count` periods (days, weeks, months) that have one.
    let mut newest_per = |count: usize, period: &dyn Fn(&Backup) -> (i32, u32)| {
        let mut seen = Vec::new();
        for backup in &good {
            let key = period(backup);
            if !seen.contains(&key) {
                if seen.len() == count {
                    break;
                }
                seen.push(key);
                kept.insert(backup.id.as_str());
            }
        }
    };
    newest_per(keep.daily, &|b| (b.created_at.year(), b.created_at.ordinal()));
    newest_per(keep.weekly, &|b| (b.created_at.iso_week().year(), b.created_at.iso_week().week()));
    newest_per(keep.monthly, &|b| (b.created_at.year(), b.created_at.month()));
    let Some(oldest_kept) = good.iter().filter(|b| kept.contains(b.id.as_str())).map(|b| b.created_at).min() else {
        return Vec::new();
    };
    // Backups made before the schedule verified (never verified, never found wanting) go only
    // once as many verified ones are kept: switching verification on never thins the history.
    let unverified_may_go = verified && kept.len() >= keep.last;
    backups
        .iter()
        .filter(|b| !kept.contains(b.id.as_str()))
        .filter(|b| {
            if is_good(b, verified) {
                return true;
            }
            // Failed, or found wanting by a verification: old ones go. Those still being made or
            // verified stay.
            let bad = b.status == BackupStatus::Failed || b.verification_error.is_some();
            let unverified = matches!(b.status, BackupStatus::Completed | BackupStatus::Restored) && unverified_may_go;
            (bad || unverified) && b.created_at < oldest_kept
        })
        .map(|b| b.id.clone())
        .collect()
}

/// The id of the job of `schedule`'s run at `at`: the same however often it is queued.
fn run_job_id(schedule: &BackupSchedule, at: DateTime<Utc>) -> String {
    let slot = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    slipway_core::id::id_at_for(slot, &format!("backup-schedule:{}", schedule.id))
}

/// Queues the job of `schedule`'s next run (at `next_run_at`); `false` when it is queued
/// already (or has run).
pub async fn queue_next(store: &dyn Store, schedule: &BackupSchedule) -> Result<bool, StoreError> {
    let Some(at) = schedule.next_run_at else { return Ok(false) };
    let spec = slipway_jobs::JobSpec::new(BACKUP_SCHEDULED.name, ScheduledRun { schedule_id: schedule.id.clone(), at })
        .at(at)
        .organization(&schedule.organization_id)
        .with_id(run_job_id(schedule, at));
    match slipway_jobs::enqueue(store, spec).await {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Plans `schedule`'s next run after its planned one (now, if that is past) and queues it: the
/// planned run's job ended without doing so (cancelled, or cut short by a stop).
async fn advance(store: &dyn Store, mut schedule: BackupSchedule) -> Result<(), StoreError> {
    let Some(planned) = schedule.next_run_at else { return Ok(()) };
    // After the planned run, whose job has ended: never the same time again.
    let Ok(next) = next_run(&schedule.frequency, planned.max(slipway_core::time::now())) else { return Ok(()) };
    if store.move_backup_schedule_run(&schedule.id, planned, next).await? {
        schedule.next_run_at = Some(next);
        queue_next(store, &schedule).await?;
    }
    Ok(())
}

/// Makes sure `schedule`'s next run is queued; a run that ended without planning the next
/// (cancelled while queued, or cut short by a stop) gets a new plan. `true` when a job was
/// queued.
pub async fn ensure_queued(store: &dyn Store, schedule: BackupSchedule) -> Result<bool, StoreError> {
    if queue_next(store, &schedule).await? {
        return Ok(true);
    }
    let Some(at) = schedule.next_run_at else { return Ok(false) };
    let job = store.job(&run_job_id(&schedule, at)).await?;
    if job.is_some_and(|j| j.status != RunStatus::Queued && j.status != RunStatus::Running) {
        advance(store, schedule).await?;
        return Ok(true);
    }
    Ok(false)
}

/// Makes sure every schedule's next run is queued (at start-up): a run missed while Slipway was
/// down is due at once; one that ended without planning the next gets a new plan. Returns how
/// many were queued.
pub async fn queue_all(store: &dyn Store) -> Result<usize, StoreError> {
    let (mut after, mut queued) = (None::<String>, 0);
    loop {
        let batch = store.backup_schedules_after(after.as_deref(), 200).await?;
        let Some(last) = batch.last() else { return Ok(queued) };
        after = Some(last.id.clone());
        for schedule in batch {
            queued += usize::from(ensure_queued(store, schedule).await?);
        }
    }
}

/// Deletes a backup's object from its storage (nothing to do when it holds none).
async fn delete_object(engine: &Engine, backup: &Backup) -> Result<(), String> {
    // A backup that never stored anything (it failed, or never started) has no object; its
    // partial one was removed when it failed. An empty key must never reach the storage.
    if backup.sha256.is_none() || backup.object_key.is_empty() {
        return Ok(());
    }
    let record = engine.store.backup_storage(&backup.storage_id).await.map_err(|e| e.to_string())?;
    let storage = Storage::open(engine, &record.ok_or("the backup's storage was deleted")?).await?;
    let key = storage.key(&backup.object_key);
    match storage {
        Storage::S3 { client, .. } => match client.delete(&object_store::path::Path::from(key.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.to_string()),
        },
        Storage::Local { server, .. } => {
            let script = Script::new(
                "backup delete",
                "case \"$FILE\" in *[!A-Za-z0-9/._-]* | *..*) fail \"refusing an unexpected file name\" ;; esac\n\
                 rm -f -- \"$FILE\"\n",
            )
            .var("FILE", &key);
            crate::probe::read(engine, &server, &script, std::time::Duration::from_secs(30)).await.map(|_| ())
        }
    }
}

/// Applies `schedule`'s retention to its backups, logging each deletion in `ctx`.
pub async fn prune(engine: &Engine, ctx: &JobContext, schedule: &BackupSchedule) -> Result<(), JobError> {
    let store = &engine.store;
    let filter = BackupFilter { schedule_id: Some(schedule.id.clone()), ..Default::default() };
    let orgs = [schedule.organization_id.clone()];
    let mut backups = Vec::new();
    for page in 1.. {
        let request = slipway_core::PageRequest::parse(Some(&page.to_string()), Some("100"))
            .map_err(|_| JobError::failed("paging"))?;
        let (rows, total) = store.backups_of(&orgs, &filter, request).await.map_err(store_error)?;
        let done = rows.is_empty() || backups.len() + rows.len() >= usize::try_from(total).unwrap_or(0);
        backups.extend(rows);
        if done {
            break;
        }
    }
    let doomed = to_prune(&backups, Keep::of(schedule), schedule.verify);
    ctx.log("info", format!("==> retention: {} backup(s) of this schedule, {} to delete", backups.len(), doomed.len()));
    for backup in backups.iter().filter(|b| doomed.contains(&b.id)) {
        if let Err(why) = delete_object(engine, backup).await {
            // Kept on record: a later run tries again.
            ctx.log("stderr", format!("could not delete {} from its storage: {why}", backup.object_key));
            continue;
        }
        store.delete_backup(&backup.id).await.map_err(store_error)?;
        ctx.log("info", format!("deleted backup {} ({}, {})", backup.id, backup.object_key, backup.status));
        let detail = format!("retention of schedule {}: {} deleted from its storage", schedule.id, backup.object_key);
        crate::audit::record(engine, &schedule.organization_id, "backup.prune", &backup.id, "success", Some(detail))
            .await;
    }
    Ok(())
}

/// What a schedule does once one of its backups is stored: verify it (when asked), else apply
/// retention now. A verification applies it once it has run.
pub async fn after_stored(engine: &Engine, ctx: &JobContext, backup: &Backup) -> Result<(), JobError> {
    let Some(schedule_id) = &backup.schedule_id else { return Ok(()) };
    let Some(schedule) = engine.store.backup_schedule(schedule_id).await.map_err(store_error)? else {
        return Ok(());
    };
    // Only database backups are verified (the API refuses `verify` on a site's schedule).
    if let (true, BackupTarget::Database(database_id)) = (schedule.verify, schedule.target())
        && backup.verified_at.is_none()
        && backup.verification_error.is_none()
    {
        let job = slipway_jobs::JobSpec::new(
            crate::backup_restore::BACKUP_VERIFY.name,
            crate::backup_restore::VerifyJob { backup_id: backup.id.clone() },
        )
        .resource(format!("database-backup:{}:{database_id}", schedule.server_id))
        .on_server(&schedule.server_id)
        .organization(&schedule.organization_id);
        let job = slipway_jobs::enqueue(engine.store.as_ref(), job).await.map_err(store_error)?;
        ctx.log("info", format!("==> verification queued (operation {job})"));
        return Ok(());
    }
    prune(engine, ctx, &schedule).await
}

/// Starts a backup of what `schedule` backs up, as one of its backups: `Ok(Err(why))` when it
/// cannot start (its server or target deleted, not ready). The planned runs and `…/run` both
/// start theirs here.
pub async fn start_scheduled(
    store: &dyn Store,
    schedule: &BackupSchedule,
) -> Result<Result<Backup, String>, StoreError> {
    let Some(server) = store.server(&schedule.server_id).await? else {
        return Ok(Err("the server was deleted".into()));
    };
    if server.provisioned_at.is_none() {
        return Ok(Err("the server is not provisioned".into()));
    }
    let (storage, by) = (&schedule.storage_id, Some(schedule.id.as_str()));
    match schedule.target() {
        BackupTarget::Database(id) => {
            let Some(item) = store.server_item(id).await? else {
                return Ok(Err("the database was deleted".into()));
            };
            let spec = serde_json::from_str::<DatabaseSpec>(&item.spec);
            match spec {
                Ok(_) if item.status != InstallStatus::Installed => {
                    Ok(Err(format!("the database is not active ({})", item.status)))
                }
                Ok(spec) => {
                    Ok(Ok(crate::backups::start_database_backup(store, &server, &item, &spec, storage, by).await?))
                }
                Err(e) => Ok(Err(format!("the database's settings cannot be read: {e}"))),
            }
        }
        BackupTarget::Site(id) => match store.site(id).await? {
            None => Ok(Err("the site was deleted".into())),
            Some(site) if site.status == InstallStatus::Removing => Ok(Err("the site is being deleted".into())),
            Some(site) => Ok(Ok(crate::backups::start_application_backup(store, &site, storage, by).await?)),
        },
    }
}

#[derive(Debug)]
pub struct ScheduledBackup(pub Engine);

impl ScheduledBackup {
    /// Starts the backup of this occurrence, or records why it could not start.
    async fn start(&self, ctx: &JobContext, schedule: &BackupSchedule) -> Result<(), JobError> {
        let store = self.0.store.as_ref();
        let why = match start_scheduled(store, schedule).await.map_err(store_error)? {
            Ok(backup) => {
                let what = backup.database_id.as_ref().or(backup.site_id.as_ref()).cloned().unwrap_or_default();
                let operation = backup.job_id.unwrap_or_default();
                ctx.log("info", format!("backup {} of {what} queued (operation {operation})", backup.id));
                return Ok(());
            }
            Err(why) => why,
        };
        // The occurrence did not happen: a failed backup says so, where backups are looked at.
        let mut failed = crate::backups::new_backup(
            &schedule.organization_id,
            &schedule.server_id,
            schedule.target(),
            &schedule.storage_id,
            Some(&schedule.id),
            BackupStatus::Failed,
        );
        failed.error = Some(format!("the scheduled backup could not start: {why}"));
        failed.job_id = Some(ctx.id.clone());
        (failed.started_at, failed.finished_at) = (Some(failed.created_at), Some(failed.created_at));
        store.insert_backup(&failed).await.map_err(store_error)?;
        Err(JobError::failed(format!("the scheduled backup could not start: {why}")))
    }
}

#[async_trait]
impl JobHandler for ScheduledBackup {
    async fn abandoned(&self, job: &slipway_store::Job) {
        // Slipway stopped during the run, maybe before it planned the next one.
        let Ok(run) = serde_json::from_str::<ScheduledRun>(&job.payload) else { return };
        let Ok(Some(schedule)) = self.0.store.backup_schedule(&run.schedule_id).await else { return };
        if schedule.next_run_at == Some(run.at)
            && let Err(e) = advance(self.0.store.as_ref(), schedule).await
        {
            tracing::warn!(schedule = %run.schedule_id, error = %e, "could not plan the schedule's next run");
        }
    }

    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let run: ScheduledRun = ctx.payload()?;
        let store = &self.0.store;
        let Some(mut schedule) = store.backup_schedule(&run.schedule_id).await.map_err(store_error)? else {
            ctx.log("info", "the schedule was deleted; nothing to do");
            return Ok(());
        };
        if schedule.next_run_at != Some(run.at) {
            ctx.log("info", "the schedule was changed since this run was planned; its new plan stands");
            return Ok(());
        }
        // The next occurrence first: a run that fails still leaves one planned.
        let after = run.at.max(slipway_core::time::now());
        let next = next_run(&schedule.frequency, after).map_err(JobError::failed)?;
        // Only the next run moves: an edit made since this job read the schedule stays.
        if !store.move_backup_schedule_run(&schedule.id, run.at, next).await.map_err(store_error)? {
            ctx.log("info", "the schedule was changed meanwhile; its new plan stands");
            return Ok(());
        }
        schedule.next_run_at = Some(next);
        queue_next(store.as_ref(), &schedule).await.map_err(store_error)?;
        ctx.log("info", format!("next run: {}", next.to_rfc3339()));
        // A backup still being made (a big database, a slow storage) is not joined by another.
        let orgs = [schedule.organization_id.clone()];
        for status in [BackupStatus::Pending, BackupStatus::InProgress] {
            let filter =
                BackupFilter { schedule_id: Some(schedule.id.clone()), status: Some(status), ..Default::default() };
            let page = slipway_core::PageRequest::parse(None, Some("1")).map_err(|_| JobError::failed("paging"))?;
            if store.backups_of(&orgs, &filter, page).await.map_err(store_error)?.1 > 0 {
                ctx.log("stderr", "the previous run's backup is not finished yet; this run is skipped");
                return Ok(());
            }
        }
        // Each run of a schedule that is stale says so (folded by the channels' repeat window).
        let last_good = last_good(store.as_ref(), &schedule).await.map_err(store_error)?;
        if is_stale(&schedule, last_good, slipway_core::time::now()) {
            let since = last_good.map(|t| format!("since {}", t.to_rfc3339())).unwrap_or_else(|| "yet".into());
            ctx.log("stderr", format!("the schedule is stale: no good backup {since}"));
            let subject = crate::notify::Subject {
                resource_type: "backup_schedule",
                id: schedule.id.clone(),
                name: schedule.frequency.clone(),
                path: Some(format!("/api/v1/backup-schedules/{}", schedule.id)),
                server_id: Some(schedule.server_id.clone()),
                site_id: schedule.site_id.clone(),
            };
            let summary = format!("Backup schedule ({}) is stale: no good backup {since}", schedule.frequency);
            let event = crate::notify::EventSpec::new("backup.stale", &schedule.organization_id, subject, summary)
                .data(serde_json::json!({ "last_good_backup_at": last_good, "database_id": schedule.database_id }));
            crate::notify::emit(&self.0, event).await;
        }
        self.start(ctx, &schedule).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn backup(id: &str, at: DateTime<Utc>, status: BackupStatus) -> Backup {
        let mut backup = crate::backups::new_backup("o", "s", BackupTarget::Database("d"), "st", Some("sch"), status);
        (backup.id, backup.created_at, backup.object_key) = (id.into(), at, format!("k/{id}"));
        backup
    }

    fn schedule(organization_id: &str, frequency: &str, at: DateTime<Utc>) -> BackupSchedule {
        BackupSchedule {
            id: slipway_core::new_id(),
            organization_id: organization_id.into(),
            server_id: "s".into(),
            database_id: Some("d".into()),
            site_id: None,
            storage_id: "st".into(),
            frequency: frequency.into(),
            keep_last: 3,
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
            verify: false,
            next_run_at: Some(at),
            created_at: at,
            updated_at: at,
        }
    }

    fn day(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
    }

    fn sorted(mut ids: Vec<String>) -> Vec<String> {
        ids.sort();
        ids
    }

    #[test]
    fn keep_last_three_deletes_the_oldest_of_four() {
        let backups: Vec<Backup> =
            (1..=4).map(|d| backup(&format!("b{d}"), day(d, 3), BackupStatus::Completed)).collect();
        let keep = Keep { last: 3, daily: 0, weekly: 0, monthly: 0 };
        assert_eq!(to_prune(&backups, keep, false), vec!["b1".to_string()]);
        assert_eq!(to_prune(&backups[1..], keep, false), Vec::<String>::new(), "three are all kept");
    }

    #[test]
    fn daily_weekly_and_monthly_keep_the_newest_of_each_period() {
        // Four a day for ten days, 1 to 10 November 2026 (a Sunday, then weeks from Monday 2nd).
        let mut backups = Vec::new();
        for d in 1..=10 {
            for h in [0, 6, 12, 18] {
                backups.push(backup(&format!("b{d:02}-{h:02}"), day(d, h), BackupStatus::Completed));
            }
        }
        let keep = Keep { last: 2, daily: 3, weekly: 2, monthly: 1 };
        let doomed = to_prune(&backups, keep, false);
        let kept: Vec<String> =
            sorted(backups.iter().map(|b| b.id.clone()).filter(|id| !doomed.contains(id)).collect());
        // Last 2: 10th 18h and 12h; daily: newest of 10th, 9th, 8th; weekly: newest of the week of
        // 9 Nov (10th 18h) and of 2 Nov (8th 18h); monthly: newest of November (10th 18h).
        assert_eq!(kept, vec!["b08-18", "b09-18", "b10-12", "b10-18"]);
    }

    #[test]
    fn failed_and_unfinished_backups_are_handled_apart() {
        let backups = vec![
            backup("old-failed", day(1, 0), BackupStatus::Failed),
            backup("good-1", day(2, 0), BackupStatus::Completed),
            backup("good-2", day(3, 0), BackupStatus::Restored),
            backup("new-failed", day(4, 0), BackupStatus::Failed),
            backup("running", day(5, 0), BackupStatus::InProgress),
        ];
        let keep = Keep { last: 1, daily: 0, weekly: 0, monthly: 0 };
        assert_eq!(sorted(to_prune(&backups, keep, false)), vec!["good-1", "old-failed"]);
        let none_good =
            vec![backup("f", day(1, 0), BackupStatus::Failed), backup("p", day(2, 0), BackupStatus::Pending)];
        assert!(to_prune(&none_good, keep, false).is_empty(), "nothing goes while nothing good exists");
        let mut unverified = backup("bad", day(6, 0), BackupStatus::Completed);
        unverified.verification_error = Some("checksum mismatch".into());
        assert!(!is_good(&unverified, false));
    }

    #[test]
    fn when_a_schedule_verifies_only_verified_backups_count_and_waiting_ones_stay() {
        let mut verified = backup("verified", day(1, 0), BackupStatus::Completed);
        verified.verified_at = Some(day(1, 1));
        let waiting = [
            backup("waiting-1", day(2, 0), BackupStatus::Completed),
            backup("waiting-2", day(3, 0), BackupStatus::Completed),
        ];
        let mut backups = vec![verified.clone()];
        backups.extend(waiting.iter().cloned());
        let keep = Keep { last: 1, daily: 0, weekly: 0, monthly: 0 };
        assert!(to_prune(&backups, keep, true).is_empty(), "the verified one stays, the waiting ones too");
        assert_eq!(sorted(to_prune(&backups, keep, false)), vec!["verified", "waiting-1"], "without verify");
        // Verification switched on after two unverified backups: they go once enough verified
        // ones are kept, not before.
        let mut history = vec![
            backup("before-1", day(1, 0), BackupStatus::Completed),
            backup("before-2", day(2, 0), BackupStatus::Completed),
        ];
        let mut checked = backup("checked-1", day(3, 0), BackupStatus::Completed);
        checked.verified_at = Some(day(3, 1));
        history.push(checked.clone());
        let keep_two = Keep { last: 2, daily: 0, weekly: 0, monthly: 0 };
        assert!(to_prune(&history, keep_two, true).is_empty());
        history.push(Backup { id: "checked-2".into(), created_at: day(4, 0), ..checked });
        assert_eq!(sorted(to_prune(&history, keep_two, true)), vec!["before-1", "before-2"]);
    }

    #[tokio::test]
    async fn every_schedule_has_its_next_run_queued_once_and_a_run_cut_short_is_planned_again() {
        let db = slipway_store::testing::TestDatabase::sqlite().await;
        let store = db.store().await;
        let user = slipway_store::NewUser {
            id: slipway_core::new_id(),
            email: "a@example.com".into(),
            email_normalized: "a@example.com".into(),
            name: "A".into(),
            password_hash: "x".into(),
        };
        store.create_user(&user).await.unwrap();
        let org = slipway_core::new_id();
        store.create_organization(&org, "Acme", &user.id).await.unwrap();
        let at = slipway_core::time::now();
        let past = at - chrono::Duration::hours(2);
        let schedule = schedule(&org, "hourly", past);
        store.insert_backup_schedule(&schedule).await.unwrap();
        assert_eq!(queue_all(store.as_ref()).await.unwrap(), 1, "the missed run is queued");
        let job = store.job(&run_job_id(&schedule, past)).await.unwrap().unwrap();
        assert_eq!((job.kind.as_str(), job.status.as_str(), job.run_at), (BACKUP_SCHEDULED.name, "queued", past));
        assert_eq!(queue_all(store.as_ref()).await.unwrap(), 0, "queued once, however often asked");

        // That run ended (Slipway was killed in it) without planning the next: a start plans it.
        let claimed = store.claim_job("w", at, at).await.unwrap().unwrap();
        assert_eq!(claimed.id, job.id);
        let end = slipway_store::JobEnd::Failed { reason: "interrupted".into(), exit_code: None };
        assert!(store.finish_job(&job.id, "w", &end, at).await.unwrap());
        assert_eq!(queue_all(store.as_ref()).await.unwrap(), 1);
        let planned = store.backup_schedule(&schedule.id).await.unwrap().unwrap().next_run_at.unwrap();
        assert!(planned > at && planned <= at + chrono::Duration::hours(1), "{planned}");
        assert!(store.job(&run_job_id(&schedule, planned)).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_run_of_a_stale_schedule_emits_backup_stale() {
        let db = slipway_store::testing::TestDatabase::sqlite().await;
        let store = db.store().await;
        let org = crate::test_support::organization(&store).await;
        // Hourly, made three hours ago, never a good backup: stale.
        let schedule = schedule(&org, "hourly", slipway_core::time::now() - chrono::Duration::hours(3));
        store.insert_backup_schedule(&schedule).await.unwrap();
        assert_eq!(queue_all(store.as_ref()).await.unwrap(), 1);
        let filter = slipway_store::EventFilter { event_type: Some("backup.stale".into()), ..Default::default() };
        let (orgs, page) = ([org.clone()], slipway_core::PageRequest::new(1, 10));
        let found = || async { store.events_of(&orgs, &filter, page).await.unwrap().1 > 0 };
        crate::test_support::run_jobs_until(&store, found).await;
        let (events, _) = store.events_of(&orgs, &filter, page).await.unwrap();
        assert_eq!(events.len(), 1, "one run, one backup.stale event");
        assert_eq!(events[0].resource_id, schedule.id);
        assert!(events[0].summary.contains("is stale: no good backup yet"), "{}", events[0].summary);
    }

    #[test]
    fn runs_follow_the_frequency_and_a_schedule_goes_stale_after_two_periods() {
        let at = Utc.with_ymd_and_hms(2026, 12, 4, 10, 30, 0).unwrap();
        assert_eq!(next_run("nightly", at).unwrap(), Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap());
        assert_eq!(next_run("0 3 * * *", at).unwrap(), Utc.with_ymd_and_hms(2026, 12, 5, 3, 0, 0).unwrap());
        assert!(next_run("reboot", at).is_err());
        assert!(next_run("61 * * * *", at).is_err());
        assert_eq!(period("hourly", at), Some(chrono::Duration::hours(1)));
        let schedule = schedule("o", "hourly", at - chrono::Duration::hours(5));
        assert!(is_stale(&schedule, None, at), "five hours without a good backup");
        assert!(!is_stale(&schedule, Some(at - chrono::Duration::minutes(90)), at));
        assert!(is_stale(&schedule, Some(at - chrono::Duration::minutes(150)), at));
    }
}
