//! Restoring and verifying database backups. Both stream the stored object from its storage
//! through Slipway, which hashes it on the way, into the engine's own restore tool on the server
//! (`gunzip | mysql`, `pg_restore`): nothing is copied whole anywhere.
//!
//! - Each first reads the whole stored object and checks its SHA-256 (a second read, but nothing
//!   is restored from an object that is not the one backed up), then restores, hashing again.
//! - A restore replaces a database's tables (confirmed by name), or fills a new, empty database,
//!   which is dropped again if anything fails.
//! - A verification restores into a scratch database (`slpverify_<backup>`) on the same server,
//!   checks the SHA-256, compares tables and rows with the manifest, and always drops the scratch
//!   database. A backup that fails it is `failed`, with the exact mismatch.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use slipway_core::{BackupStatus, InstallStatus};
use slipway_jobs::{JobContext, JobError, JobHandler};
use slipway_remote::{ByteSink, Stream, Transport};
use slipway_store::{Backup, Server};
use tokio::io::AsyncWriteExt;

use crate::backups::{Chunks, Manifest, hex, manifest, open_download};
use crate::items::databases::engine_of;
use crate::items::{DatabaseSpec, DatabaseUsers, Databases, ItemKind};
use crate::script::Script;
use crate::session::{
    Connection, FailureTracker, connect, load_server, reason_to_record, run_script_with, store_error,
};
use crate::verify::ServerJob;
use crate::{Engine, JobKind};

/// `backup.restore`: a backup restored into a database of its server. Not retried: a second
/// attempt would restore again over whatever the first left; it says why it failed instead.
pub const BACKUP_RESTORE: JobKind = JobKind { name: "backup.restore", attempts: 1 };
/// `backup.verify`: a backup restored into a scratch database and compared with its manifest.
pub const BACKUP_VERIFY: JobKind = JobKind { name: "backup.verify", attempts: 1 };

/// How a restore treats its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreMode {
    /// The target holds no table yet (a new database); one that does is refused.
    Empty,
    /// The target's tables are replaced by the backup's (confirmed by name).
    Overwrite,
}

impl RestoreMode {
    fn as_str(self) -> &'static str {
        match self {
            RestoreMode::Empty => "empty",
            RestoreMode::Overwrite => "overwrite",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RestoreJob {
    pub backup_id: String,
    /// The database item to restore into, on the backup's server (none for an application
    /// backup: it goes into its site's shared paths).
    #[serde(default)]
    pub database_id: String,
    pub mode: RestoreMode,
    /// The database was created for this restore: a failed restore drops it again.
    pub created: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct VerifyJob {
    pub backup_id: String,
}

/// The scratch database a verification of `backup` restores into.
pub fn scratch_name(backup: &Backup) -> String {
    format!("slpverify_{}", backup.id.to_lowercase())
}

/// How the tables restored from a backup compare with its manifest.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Tables the manifest lists that were not restored: the backup is not whole.
    pub missing: Vec<String>,
    /// Tables restored with another row count than the manifest's. The manifest is read just
    /// before the dump starts, so a database being written to can differ by the rows written in
    /// between: a warning, not a failure.
    pub differing: Vec<String>,
}

/// Compares the tables restored (`found`) with those the manifest lists. Tables restored that the
/// manifest does not list (made between the count and the dump, or already in a database restored
/// over) are not compared.
pub fn compare_manifest(expected: &Manifest, found: &Manifest) -> Comparison {
    let mut comparison = Comparison::default();
    for table in &expected.tables {
        match found.tables.iter().find(|t| t.table == table.table) {
            None => comparison.missing.push(table.table.clone()),
            Some(t) if t.rows != table.rows => comparison
                .differing
                .push(format!("{}: {} rows restored, {} in the manifest", table.table, t.rows, table.rows)),
            Some(_) => {}
        }
    }
    comparison
}

/// Fails when tables are missing; logs row counts that differ.
fn judge(ctx: &JobContext, expected: &Manifest, found: &Manifest) -> Result<(), String> {
    let comparison = compare_manifest(expected, found);
    if !comparison.missing.is_empty() {
        return Err(format!("tables in the manifest were not restored: {}", comparison.missing.join(", ")));
    }
    if comparison.differing.is_empty() {
        ctx.log("info", format!("{} table(s), rows as in the manifest", expected.tables.len()));
    } else {
        ctx.log(
            "stderr",
            format!(
                "warning: row counts differ from the manifest, read just before the dump (rows written in between): {}",
                comparison.differing.join("; ")
            ),
        );
    }
    Ok(())
}

/// What a verification found: the backup is bad (its object, or what the engine makes of it), or
/// the verification could not tell (the storage or the server could not be reached, say).
#[derive(Debug)]
enum Verdict {
    Bad(String),
    Unknown(String),
}

/// Logs each line of a script's standard output as it completes, and watches it for the step
/// a failure happened in.
struct LogLines<'a> {
    ctx: &'a JobContext,
    failure: &'a std::sync::Mutex<FailureTracker>,
    pending: Vec<u8>,
    /// The script passed its checks and began to restore (the target may hold part of it).
    began: bool,
}

#[async_trait]
impl ByteSink for LogLines<'_> {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), String> {
        self.pending.extend_from_slice(chunk);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]).into_owned();
            self.failure.lock().unwrap_or_else(|p| p.into_inner()).observe(Stream::Stdout, &line);
            self.began |= line.starts_with("==> restoring into ");
            self.ctx.log("info", line);
        }
        // A line without its end for this long is not a line: logged as it is.
        if self.pending.len() > 16 * 1024 {
            self.ctx.log("info", String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned());
        }
        Ok(())
    }
}

/// Reads the stored object of `backup` to its end, hashing it: its size and SHA-256.
async fn stored_checksum(engine: &Engine, backup: &Backup) -> Result<(u64, String), String> {
    let mut chunks = open_download(engine, backup).await?;
    let (mut hasher, mut size) = (Sha256::new(), 0u64);
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
    }
    Ok((size, hex(hasher)))
}

/// Reads the whole stored object first and fails unless it is the one backed up: nothing is
/// restored from an object that changed.
async fn check_stored(engine: &Engine, ctx: &JobContext, backup: &Backup) -> Result<(), Verdict> {
    ctx.log("info", "==> checking the stored object's SHA-256");
    let (size, sha256) = stored_checksum(engine, backup).await.map_err(Verdict::Unknown)?;
    check_sum(backup, size, &sha256).map_err(Verdict::Bad)?;
    ctx.log("info", format!("{size} bytes, SHA-256 {sha256}: as recorded"));
    Ok(())
}

/// Passes the object's chunks into the restore's standard input, hashing them: its size and
/// SHA-256 once all were handed over.
async fn feed(mut chunks: Chunks, mut to: tokio::io::DuplexStream) -> Result<(u64, String), String> {
    let (mut hasher, mut size) = (Sha256::new(), 0u64);
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk.map_err(|e| format!("reading the backup failed: {e}"))?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        to.write_all(&chunk).await.map_err(|_| "the server stopped reading the backup".to_string())?;
    }
    // The end of the restore's input.
    let _ = to.shutdown().await;
    Ok((size, hex(hasher)))
}

/// Fails unless `size` and `sha256` are those recorded for `backup`.
fn check_sum(backup: &Backup, size: u64, sha256: &str) -> Result<(), String> {
    let recorded = backup.sha256.as_deref().unwrap_or_default();
    if sha256 != recorded {
        return Err(format!(
            "checksum mismatch: the stored object's SHA-256 is {sha256} ({size} bytes), the backup recorded {recorded} \
             ({} bytes)",
            backup.size_bytes.unwrap_or_default()
        ));
    }
    Ok(())
}

/// Why a restore failed, and whether it had begun to write into its target.
#[derive(Debug)]
struct RestoreFailed {
    why: String,
    began: bool,
    /// The restore ran and the engine (or tar) refused what it was given.
    rejected: bool,
}

impl From<String> for RestoreFailed {
    fn from(why: String) -> Self {
        RestoreFailed { why, began: false, rejected: false }
    }
}

impl From<Verdict> for RestoreFailed {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Bad(why) | Verdict::Unknown(why) => why.into(),
        }
    }
}

impl From<&str> for RestoreFailed {
    fn from(why: &str) -> Self {
        why.to_string().into()
    }
}

/// The script that restores a database dump into database `name` (of `engine`).
fn database_restore(database_engine: &str, name: &str, mode: RestoreMode) -> Script {
    Script::new("database restore", include_str!("../scripts/database_restore.sh"))
        .var("ENGINE", database_engine)
        .var("NAME", name)
        .var("MODE", mode.as_str())
}

/// Streams `backup`'s object into `script` (a restore reading it on standard input) on the
/// connection's server; returns the size and SHA-256 of what was read. Fails with the
/// script's (the engine's, tar's) words.
async fn restore_into(
    engine: &Engine,
    ctx: &JobContext,
    connection: &Connection,
    backup: &Backup,
    script: Script,
) -> Result<(u64, String), RestoreFailed> {
    let chunks = open_download(engine, backup).await?;
    let (to_server, input) = tokio::io::duplex(256 * 1024);
    let failure = std::sync::Mutex::new(FailureTracker::default());
    let mut sink = LogLines { ctx, failure: &failure, pending: Vec::new(), began: false };
    let mut on_stderr = |line: &str| {
        failure.lock().unwrap_or_else(|p| p.into_inner()).observe(Stream::Stderr, line);
        ctx.log("stderr", line.strip_prefix("slipway-error: ").unwrap_or(line));
    };
    let text = script.text();
    let restoring = connection.stream(
        &text,
        Some(Box::new(input)),
        &mut sink,
        &mut on_stderr,
        ctx.cancel_receiver(),
        engine.command_idle,
    );
    let (fed, restored) = tokio::join!(feed(chunks, to_server), restoring);
    let began = sink.began;
    let why = match restored {
        Ok(exit) if exit.success() => {
            return fed.map_err(|why| RestoreFailed { why, began: true, rejected: false });
        }
        Ok(_) => {
            let why = failure.into_inner().unwrap_or_else(|p| p.into_inner()).reason();
            return Err(RestoreFailed { why, began, rejected: true });
        }
        Err(slipway_remote::RemoteError::Cancelled) => "cancelled".into(),
        Err(e) => format!("the restore stopped: {e}"),
    };
    Err(RestoreFailed { why, began, rejected: false })
}

/// The database engine of `server`, or why it has none.
fn engine_of_server(server: &Server) -> Result<&'static str, String> {
    engine_of(&server.database_type).ok_or_else(|| "the server has no database engine".to_string())
}

/// Queues a sync of `kind` on `server` (after a restore: grants, or dropping a database).
async fn resync(engine: &Engine, server: &Server, kind: &dyn ItemKind) -> Result<(), JobError> {
    let spec = kind.sync_job().about_server(server, ServerJob { server_id: server.id.clone() });
    slipway_jobs::enqueue(engine.store.as_ref(), spec).await.map_err(store_error)?;
    Ok(())
}

#[derive(Debug)]
pub struct RestoreBackup(pub Engine);

impl RestoreBackup {
    /// An application backup, into its site's shared paths.
    async fn restore_application(&self, ctx: &JobContext, backup: &Backup) -> Result<(), RestoreFailed> {
        let engine = &self.0;
        let site_id = backup.site_id.as_deref().ok_or("the backup names no site")?;
        let site = engine.store.site(site_id).await.map_err(|e| e.to_string())?.ok_or("the site was deleted")?;
        let paths = crate::sites::SitePaths::of(&site).map_err(|e| e.to_string())?;
        let server = load_server(engine, &site.server_id).await.map_err(|e| e.to_string())?;
        check_stored(engine, ctx, backup).await?;
        let connection = connect(engine, ctx, &server).await.map_err(|e| e.to_string())?;
        ctx.log("info", format!("==> restoring backup {} into the shared paths of {}", backup.id, site.domain));
        let script = Script::new("application restore", include_str!("../scripts/application_restore.sh"))
            .var("ROOT", &paths.root)
            .var("DEPLOY_USER", &paths.user);
        let (size, sha256) = restore_into(engine, ctx, &connection, backup, script).await?;
        check_sum(backup, size, &sha256).map_err(|why| RestoreFailed { why, began: true, rejected: false })
    }

    async fn restore(&self, ctx: &JobContext, job: &RestoreJob, backup: &Backup) -> Result<(), RestoreFailed> {
        if backup.kind == "application" {
            return self.restore_application(ctx, backup).await;
        }
        let engine = &self.0;
        let server = load_server(engine, &backup.server_id).await.map_err(|e| e.to_string())?;
        let item = engine
            .store
            .server_item(&job.database_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the target database was deleted")?;
        let target: DatabaseSpec = serde_json::from_str(&item.spec).map_err(|e| e.to_string())?;
        if item.status != InstallStatus::Installed {
            return Err(RestoreFailed::from(format!(
                "the database {} is not active ({}{}); nothing was restored",
                target.name,
                item.status,
                item.status_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
            )));
        }
        if crate::items::databases::name_problem(&target.engine, &target.name).is_some() {
            return Err("the database's name is not one Slipway would use".into());
        }
        if engine_of_server(&server)? != target.engine {
            return Err("the backup and the database are of different engines".into());
        }
        check_stored(engine, ctx, backup).await?;
        let connection = connect(engine, ctx, &server).await.map_err(|e| e.to_string())?;
        ctx.log("info", format!("==> restoring backup {} into {}", backup.id, target.name));
        let script = database_restore(&target.engine, &target.name, job.mode);
        let (size, sha256) = restore_into(engine, ctx, &connection, backup, script).await?;
        let began = |why: String| RestoreFailed { why, began: true, rejected: false };
        check_sum(backup, size, &sha256).map_err(began)?;
        if let Some(expected) = backup.manifest.as_deref().and_then(|m| serde_json::from_str::<Manifest>(m).ok()) {
            ctx.log("info", "==> comparing tables and rows with the manifest");
            let found = manifest(engine, ctx, &connection, &target).await.map_err(began)?;
            judge(ctx, &expected, &found).map_err(began)?;
        }
        Ok(())
    }
}

#[async_trait]
impl JobHandler for RestoreBackup {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let job: RestoreJob = ctx.payload()?;
        let store = &self.0.store;
        let backup = store
            .backup(&job.backup_id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| JobError::failed("the backup was deleted"))?;
        let outcome = self.restore(ctx, &job, &backup).await;
        let server = load_server(&self.0, &backup.server_id).await?;
        let database = backup.kind == "database";
        match outcome {
            Ok(()) => {
                // Re-read: a verification may have recorded something meanwhile.
                let mut backup = store.backup(&backup.id).await.map_err(store_error)?.unwrap_or(backup);
                backup.status = BackupStatus::Restored;
                backup.restored_at = Some(slipway_core::time::now());
                store.update_backup(&backup).await.map_err(store_error)?;
                // Restored tables carry no grants (PostgreSQL): the users' grants are applied again.
                if database {
                    resync(&self.0, &server, &DatabaseUsers).await?;
                }
                ctx.log("info", "restored");
                Ok(())
            }
            Err(RestoreFailed { why, began, .. }) => {
                // A stop says what stopped it: a user's cancel, or a shutdown (not "cancelled").
                // A restore is tried once, so what it made is this run's to drop even when
                // its lease was lost.
                let why = reason_to_record(ctx, &JobError::failed(why)).unwrap_or_else(|| "interrupted".into());
                ctx.log("stderr", format!("restore failed: {why}"));
                // Only a database made for this restore, and only once something went into it.
                if database && job.created && began {
                    // What was restored into the new database is not a whole backup: it goes.
                    ctx.log("info", "dropping the database made for this restore");
                    store
                        .set_server_items_status(
                            std::slice::from_ref(&job.database_id),
                            InstallStatus::Removing,
                            Some(&why),
                        )
                        .await
                        .map_err(store_error)?;
                    resync(&self.0, &server, &Databases).await?;
                }
                Err(JobError::failed(why))
            }
        }
    }
}

#[derive(Debug)]
pub struct VerifyBackup(pub Engine);

impl VerifyBackup {
    fn scratch(server: &Server, backup: &Backup, charset: &str, action: &str) -> Result<Script, String> {
        Ok(Script::new("scratch database", include_str!("../scripts/database_scratch.sh"))
            .var("ENGINE", engine_of_server(server)?)
            .var("NAME", &scratch_name(backup))
            .var("CHARSET", charset)
            .var("ACTION", action))
    }

    /// Restores into the scratch database and compares; `Err` holds the mismatch or failure.
    async fn verify(
        &self,
        ctx: &JobContext,
        server: &Server,
        connection: &Connection,
        backup: &Backup,
    ) -> Result<(), Verdict> {
        let engine = &self.0;
        let database_engine = engine_of_server(server).map_err(Verdict::Unknown)?;
        let name = scratch_name(backup);
        let spec = DatabaseSpec {
            name: name.clone(),
            engine: database_engine.into(),
            charset: String::new(),
            collation: None,
            imported: false,
        };
        ctx.log("info", format!("==> restoring backup {} into the scratch database {name}", backup.id));
        let script = database_restore(database_engine, &name, RestoreMode::Empty);
        let (size, sha256) = restore_into(engine, ctx, connection, backup, script).await.map_err(|failed| {
            // The engine refusing the dump says the backup is bad; a lost connection says nothing.
            if failed.rejected { Verdict::Bad(failed.why) } else { Verdict::Unknown(failed.why) }
        })?;
        // The object could have changed since it was checked.
        check_sum(backup, size, &sha256).map_err(Verdict::Bad)?;
        let expected: Manifest = backup
            .manifest
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok())
            .ok_or_else(|| Verdict::Unknown("the backup has no manifest to compare with".into()))?;
        ctx.log("info", "==> comparing tables and rows with the manifest");
        let found = manifest(engine, ctx, connection, &spec).await.map_err(Verdict::Unknown)?;
        judge(ctx, &expected, &found).map_err(Verdict::Bad)
    }

    /// The character set (encoding) the backed-up database had, for the scratch one.
    async fn charset(&self, server: &Server, backup: &Backup) -> String {
        let known = match backup.database_id.as_deref() {
            Some(id) => self.0.store.server_item(id).await.ok().flatten(),
            None => None,
        };
        match known.and_then(|item| serde_json::from_str::<DatabaseSpec>(&item.spec).ok()) {
            Some(spec) => spec.charset,
            None if server.database_type == "postgres" => "UTF8".into(),
            None => "utf8mb4".into(),
        }
    }
}

#[async_trait]
impl JobHandler for VerifyBackup {
    async fn abandoned(&self, job: &slipway_store::Job) {
        // Slipway stopped during a verification: its scratch database must not stay.
        let Ok(payload) = serde_json::from_str::<VerifyJob>(&job.payload) else { return };
        let Ok(Some(backup)) = self.0.store.backup(&payload.backup_id).await else { return };
        let Ok(server) = load_server(&self.0, &backup.server_id).await else { return };
        let charset = self.charset(&server, &backup).await;
        let Ok(drop) = Self::scratch(&server, &backup, &charset, "drop") else { return };
        if let Err(why) = crate::probe::read(&self.0, &server, &drop, std::time::Duration::from_secs(60)).await {
            tracing::warn!(backup = %backup.id, %why, "could not drop an interrupted verification's scratch database");
        }
    }

    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let job: VerifyJob = ctx.payload()?;
        let engine = &self.0;
        let store = &engine.store;
        let backup = store
            .backup(&job.backup_id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| JobError::failed("the backup was deleted"))?;
        let server = load_server(engine, &backup.server_id).await?;
        let charset = self.charset(&server, &backup).await;
        let create = Self::scratch(&server, &backup, &charset, "create").map_err(JobError::failed)?;
        let drop = Self::scratch(&server, &backup, &charset, "drop").map_err(JobError::failed)?;
        let connection = connect(engine, ctx, &server).await?;
        let (outcome, dropped) = match check_stored(engine, ctx, &backup).await {
            Err(why) => (Err(why), Ok(Vec::new())),
            Ok(()) => {
                // A scratch database left by an earlier, interrupted run goes first.
                run_script_with(engine, ctx, &connection, &drop, ctx.cancel_receiver()).await?;
                run_script_with(engine, ctx, &connection, &create, ctx.cancel_receiver()).await?;
                let outcome = self.verify(ctx, &server, &connection, &backup).await;
                // Dropped whatever happened, even when the job was cancelled.
                let (_keep, never) = tokio::sync::watch::channel(false);
                (outcome, run_script_with(engine, ctx, &connection, &drop, never).await)
            }
        };

        let mut backup = store.backup(&backup.id).await.map_err(store_error)?.unwrap_or(backup);
        let result = match outcome {
            Ok(()) => {
                backup.verified_at = Some(slipway_core::time::now());
                backup.verification_error = None;
                // A backup failed only by an earlier verification (its upload had completed) is
                // good again.
                if backup.status == BackupStatus::Failed && backup.sha256.is_some() {
                    backup.status = BackupStatus::Completed;
                    backup.error = None;
                }
                ctx.log("info", "verified");
                Ok(())
            }
            Err(Verdict::Unknown(why) | Verdict::Bad(why)) if why == "cancelled" => Err(JobError::Cancelled),
            // Nothing is known against the backup: the job fails, the backup stays as it was.
            Err(Verdict::Unknown(why)) => {
                ctx.log("stderr", format!("the verification could not be done: {why}"));
                Err(JobError::failed(format!("the verification could not be done: {why}")))
            }
            Err(Verdict::Bad(why)) => {
                ctx.log("stderr", format!("verification failed: {why}"));
                backup.verification_error = Some(why.clone());
                backup.status = BackupStatus::Failed;
                backup.error = Some(format!("verification failed: {why}"));
                Err(JobError::failed(format!("verification failed: {why}")))
            }
        };
        store.update_backup(&backup).await.map_err(store_error)?;
        match &result {
            Ok(()) => crate::backups::announce(engine, &backup, "backup.verified", "verified").await,
            Err(JobError::Cancelled) => {}
            Err(e) => crate::backups::announce(engine, &backup, "backup.verification_failed", &e.to_string()).await,
        }
        dropped?;
        // A scheduled backup's retention runs once it is verified (or found wanting).
        if let Some(schedule) = match &backup.schedule_id {
            Some(id) => store.backup_schedule(id).await.map_err(store_error)?,
            None => None,
        } {
            crate::backup_schedules::prune(engine, ctx, &schedule).await?;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backups::TableRows;

    fn manifest(tables: &[(&str, u64)]) -> Manifest {
        Manifest { tables: tables.iter().map(|(t, r)| TableRows { table: t.to_string(), rows: *r }).collect() }
    }

    #[test]
    fn a_comparison_names_missing_tables_and_differing_counts_apart() {
        let expected = manifest(&[("public.bulk", 20000), ("public.users", 3)]);
        assert_eq!(compare_manifest(&expected, &expected), Comparison::default());
        let more = manifest(&[("public.bulk", 20000), ("public.users", 3), ("public.extra", 1)]);
        assert_eq!(compare_manifest(&expected, &more), Comparison::default(), "extra tables are not compared");
        let found = manifest(&[("public.bulk", 19999)]);
        assert_eq!(
            compare_manifest(&expected, &found),
            Comparison {
                missing: vec!["public.users".into()],
                differing: vec!["public.bulk: 19999 rows restored, 20000 in the manifest".into()],
            }
        );
    }

    #[test]
    fn scratch_databases_have_plain_names_no_user_database_can_take() {
        let backup_id = slipway_core::new_id();
        let name = format!("slpverify_{}", backup_id.to_lowercase());
        assert!(name.len() <= 63 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        let why = crate::items::databases::name_problem("postgres", &name).expect("reserved");
        assert!(why.contains("scratch"), "{why}");
    }
}
