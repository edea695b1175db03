//! Database backups: the engine's own dump tool runs on the server (`mysqldump
//! --single-transaction`, gzipped; `pg_dump -Fc`), its bytes stream over SSH through Slipway,
//! which counts and hashes them (SHA-256) while it hands them to the storage: an S3 multipart
//! upload, or `cat` into a file on the storage's server. No full copy is kept anywhere in
//! between, and memory stays flat (the dump waits for the upload).
//!
//! A backup is `completed` only once the storage holds every byte: S3 has completed the upload,
//! or the storage's server has hashed the file it wrote and found the same SHA-256. Anything less
//! is `failed`, with the reason, and what was partly written is removed.

use async_trait::async_trait;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use slipway_core::BackupStatus;
use slipway_jobs::{JobContext, JobError, JobHandler};
use slipway_remote::{ByteSink, Transport};
use slipway_store::{Backup, BackupTarget, Server};
use tokio::io::AsyncWriteExt;

use crate::backup_storage::Storage;
use crate::items::DatabaseSpec;
use crate::script::Script;
use crate::session::{abandoned_reason, connect, load_server, reason_to_record, run_script_with, store_error};
use crate::{Engine, JobKind};

/// `backup.database`: one backup of one database. Not retried: a second attempt would be a
/// second backup; a failed one says why and the next one starts afresh.
pub const BACKUP_DATABASE: JobKind = JobKind { name: "backup.database", attempts: 1 };

/// `backup.application`: one backup of a site's shared paths and `.env` (same handler).
pub const BACKUP_APPLICATION: JobKind = JobKind { name: "backup.application", attempts: 1 };

#[derive(Debug, Serialize, Deserialize)]
pub struct BackupJob {
    pub backup_id: String,
}

/// One table of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TableRows {
    pub table: String,
    pub rows: u64,
}

/// What a database held when it was dumped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Manifest {
    pub tables: Vec<TableRows>,
}

/// The object key of a backup: by server, database and time, so a listing reads in order.
pub fn object_key(backup: &Backup, database: &str, engine: &str) -> String {
    let at = backup.created_at.format("%Y%m%dT%H%M%SZ");
    let extension = if engine == "postgres" { "dump" } else { "sql.gz" };
    format!("databases/{}/{database}/{at}-{}.{extension}", backup.server_id, backup.id.to_lowercase())
}

/// The object key of an application backup: by server, site and time.
pub fn application_object_key(backup: &Backup, domain: &str) -> String {
    let at = backup.created_at.format("%Y%m%dT%H%M%SZ");
    format!("applications/{}/{domain}/{at}-{}.tar.gz", backup.server_id, backup.id.to_lowercase())
}

/// Counts and hashes what passes, then hands it on.
struct Measured<S> {
    hasher: Sha256,
    size: u64,
    to: S,
}

/// Where the bytes go.
enum Upload {
    S3(WriteMultipart),
    /// Into a pipe whose other end is the standard input of `cat` on the storage's server.
    Pipe(tokio::io::DuplexStream),
}

#[async_trait]
impl ByteSink for Measured<Upload> {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), String> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        match &mut self.to {
            Upload::S3(upload) => {
                // At most a few parts in flight: the dump waits rather than memory growing.
                upload.wait_for_capacity(4).await.map_err(|e| format!("the upload failed: {e}"))?;
                upload.write(chunk);
                Ok(())
            }
            Upload::Pipe(pipe) => {
                pipe.write_all(chunk).await.map_err(|_| "the storage's server stopped taking the backup".to_string())
            }
        }
    }
}

#[derive(Debug)]
pub struct BackUpDatabase(pub Engine);

impl BackUpDatabase {
    /// Removes what an interrupted backup left in a directory storage (its `.partial` file). An
    /// S3 upload left incomplete is not visible as an object; the bucket's lifecycle rule for
    /// incomplete multipart uploads removes its parts.
    async fn remove_partial(&self, backup: &Backup) {
        let engine = &self.0;
        let Ok(Some(record)) = engine.store.backup_storage(&backup.storage_id).await else { return };
        let Ok(Storage::Local { server, path }) = Storage::open(engine, &record).await else { return };
        let script = Script::new("backup finish", include_str!("../scripts/backup_finish.sh"))
            .var("DIR", &path)
            .var("NAME", &backup.object_key)
            .var("SHA256", "")
            .var("KEEP", "no");
        if let Err(why) = crate::probe::read(engine, &server, &script, std::time::Duration::from_secs(30)).await {
            tracing::warn!(backup = %backup.id, %why, "could not remove an interrupted backup's partial file");
        }
    }

    async fn record(&self, backup: &Backup) -> Result<(), JobError> {
        self.0.store.update_backup(backup).await.map_err(store_error)?;
        Ok(())
    }

    /// What a database backup streams (the dump) and its manifest, read just before.
    async fn database_dump(
        &self,
        ctx: &JobContext,
        connection: &crate::session::Connection,
        backup: &Backup,
    ) -> Result<(Script, Option<Manifest>), String> {
        let engine = &self.0;
        let database_id = backup.database_id.as_deref().ok_or("the backup names no database")?;
        let item = engine
            .store
            .server_item(database_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the database was deleted")?;
        let database: DatabaseSpec = serde_json::from_str(&item.spec).map_err(|e| e.to_string())?;
        if crate::items::databases::name_problem(&database.engine, &database.name).is_some() {
            return Err("the database's name is not one Slipway would use".into());
        }
        ctx.log("info", format!("==> counting the rows of {}", database.name));
        let manifest = manifest(engine, ctx, connection, &database).await?;
        ctx.log("info", format!("{} table(s)", manifest.tables.len()));
        ctx.log("info", format!("==> dumping {}", database.name));
        let dump = Script::new("database dump", include_str!("../scripts/database_dump.sh"))
            .var("ENGINE", &database.engine)
            .var("NAME", &database.name);
        Ok((dump, Some(manifest)))
    }

    /// What an application backup streams: the site's shared paths and live `.env`, as a tar.
    async fn application_archive(
        &self,
        ctx: &JobContext,
        backup: &Backup,
    ) -> Result<(Script, Option<Manifest>), String> {
        let site_id = backup.site_id.as_deref().ok_or("the backup names no site")?;
        let site = self.0.store.site(site_id).await.map_err(|e| e.to_string())?.ok_or("the site was deleted")?;
        let paths = crate::sites::SitePaths::of(&site).map_err(|e| e.to_string())?;
        ctx.log("info", format!("==> archiving the shared paths and .env of {}", site.domain));
        let archive = Script::new("application archive", include_str!("../scripts/application_archive.sh"))
            .var("ROOT", &paths.root);
        Ok((archive, None))
    }

    /// Dumps, uploads and proves it; returns the size, checksum and manifest.
    async fn back_up(&self, ctx: &JobContext, backup: &Backup) -> Result<(u64, String, Option<Manifest>), String> {
        let engine = &self.0;
        let store = &engine.store;
        let server = load_server(engine, &backup.server_id).await.map_err(|e| e.to_string())?;
        let record = store
            .backup_storage(&backup.storage_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the storage was deleted")?;
        let storage = Storage::open(engine, &record).await?;
        let connection = connect(engine, ctx, &server).await.map_err(|e| e.to_string())?;
        let (dump, manifest) = match backup.kind.as_str() {
            "application" => self.application_archive(ctx, backup).await?,
            _ => self.database_dump(ctx, &connection, backup).await?,
        };
        let key = storage.key(&backup.object_key);
        ctx.log("info", format!("streaming to {key}"));
        let mut failed_dump = false;
        let mut on_stderr = |line: &str| {
            if line.starts_with("slipway-dump-failed") {
                failed_dump = true;
            } else {
                ctx.log("stderr", line);
            }
        };
        let idle = engine.command_idle;
        let (size, sha256) = match &storage {
            Storage::S3 { client, prefix } => {
                // Some stores create a missing bucket on the first write; listing proves the
                // bucket and the keys first (a missing bucket is NoSuchBucket) before any dump.
                client
                    .list_with_delimiter(Some(&ObjectPath::from(prefix.as_str())))
                    .await
                    .map_err(|e| format!("the storage's bucket cannot be listed: {e}"))?;
                let location = ObjectPath::from(key.as_str());
                let upload =
                    client.put_multipart(&location).await.map_err(|e| format!("the upload could not start: {e}"))?;
                let mut sink = Measured { hasher: Sha256::new(), size: 0, to: Upload::S3(WriteMultipart::new(upload)) };
                let result =
                    connection.stream(&dump.text(), None, &mut sink, &mut on_stderr, ctx.cancel_receiver(), idle).await;
                let Upload::S3(upload) = sink.to else { unreachable!("made above") };
                match result {
                    Ok(exit) if exit.success() && !failed_dump => {
                        upload.finish().await.map_err(|e| format!("the upload could not be completed: {e}"))?;
                    }
                    outcome => {
                        let _ = upload.abort().await;
                        return Err(dump_failure(outcome, failed_dump));
                    }
                }
                (sink.size, hex(sink.hasher))
            }
            Storage::Local { server: target, path } => {
                let target_connection = connect(engine, ctx, target).await.map_err(|e| e.to_string())?;
                let name = key.strip_prefix(&format!("{}/", path.trim_end_matches('/'))).unwrap_or(&key).to_string();
                let receive = Script::new("backup receive", include_str!("../scripts/backup_receive.sh"))
                    .var("DIR", path)
                    .var("NAME", &name);
                let (pipe, from_pipe) = tokio::io::duplex(256 * 1024);
                let mut sink = Measured { hasher: Sha256::new(), size: 0, to: Upload::Pipe(pipe) };
                let mut ignore = slipway_remote::Discard;
                // The receiving side's words: why it could not write (a full disk, say).
                let mut receive_lines: Vec<String> = Vec::new();
                let mut receive_log = |line: &str| {
                    ctx.log("stderr", format!("storage: {line}"));
                    receive_lines.push(line.to_string());
                };
                let dump = dump.text();
                let sending = async {
                    let result =
                        connection.stream(&dump, None, &mut sink, &mut on_stderr, ctx.cancel_receiver(), idle).await;
                    // The end of the pipe: the receiving side's `cat` sees the end of input.
                    if let Upload::Pipe(pipe) = &mut sink.to {
                        let _ = pipe.shutdown().await;
                    }
                    result
                };
                let receive = receive.text();
                let receiving = target_connection.stream(
                    &receive,
                    Some(Box::new(from_pipe)),
                    &mut ignore,
                    &mut receive_log,
                    ctx.cancel_receiver(),
                    idle,
                );
                let (sent, received) = tokio::join!(sending, receiving);
                let sha256 = hex(sink.hasher.clone());
                let finish = Script::new("backup finish", include_str!("../scripts/backup_finish.sh"))
                    .var("DIR", path)
                    .var("NAME", &name)
                    .var("SHA256", &sha256)
                    .var(
                        "KEEP",
                        if matches!(&sent, Ok(e) if e.success())
                            && !failed_dump
                            && matches!(&received, Ok(e) if e.success())
                        {
                            "yes"
                        } else {
                            "no"
                        },
                    );
                let finished = run_script_with(engine, ctx, &target_connection, &finish, ctx.cancel_receiver()).await;
                match (sent, received) {
                    (Ok(exit), Ok(stored)) if exit.success() && !failed_dump && stored.success() => {
                        finished.map_err(|e| format!("the storage's server did not keep the backup: {e}"))?;
                    }
                    // The receiving side failed first (its pipe broke under the dump): its
                    // words are the reason.
                    (_, Ok(stored)) if !stored.success() => {
                        let why = match receive_lines.last() {
                            Some(line) => line.clone(),
                            None => format!("exit {}", stored.code.map_or("by a signal".into(), |c| c.to_string())),
                        };
                        return Err(format!("the storage's server could not write the backup: {why}"));
                    }
                    (Ok(_), Err(e)) => return Err(format!("the storage's server failed: {e}")),
                    (outcome, _) => return Err(dump_failure(outcome, failed_dump)),
                }
                (sink.size, sha256)
            }
        };
        ctx.log("info", format!("==> stored {size} bytes, SHA-256 {sha256}"));
        Ok((size, sha256, manifest))
    }
}

/// Why a dump did not end well, in words.
fn dump_failure(outcome: Result<slipway_remote::Exit, slipway_remote::RemoteError>, failed_dump: bool) -> String {
    match outcome {
        Err(slipway_remote::RemoteError::Cancelled) => "cancelled".into(),
        Err(e) => format!("the dump stopped: {e}"),
        Ok(_) if failed_dump => "the dump failed (see the log for the engine's words)".into(),
        Ok(exit) => format!("the dump failed (exit {})", exit.code.map_or("by a signal".into(), |c| c.to_string())),
    }
}

pub(crate) fn hex(hasher: Sha256) -> String {
    slipway_core::hex::encode(hasher.finalize())
}

/// The tables of `database` and their exact row counts, read just before the dump.
pub(crate) async fn manifest(
    engine: &Engine,
    ctx: &JobContext,
    connection: &crate::session::Connection,
    database: &DatabaseSpec,
) -> Result<Manifest, String> {
    let script = Script::new("database manifest", include_str!("../scripts/database_manifest.sh"))
        .var("ENGINE", &database.engine)
        .var("NAME", &database.name);
    let lines =
        run_script_with(engine, ctx, connection, &script, ctx.cancel_receiver()).await.map_err(|e| e.to_string())?;
    let mut tables = Vec::new();
    for line in lines.iter().filter_map(|l| l.strip_prefix("slipway-table ")) {
        let (table, rows) = line.rsplit_once(' ').ok_or("an unreadable manifest line")?;
        tables.push(TableRows { table: table.to_string(), rows: rows.parse().map_err(|_| "an unreadable row count")? });
    }
    Ok(Manifest { tables })
}

/// Emits `event_type` about `backup`; the summary reads "Backup <object> <what>".
pub async fn announce(engine: &Engine, backup: &Backup, event_type: &'static str, what: &str) {
    let name = backup.object_key.rsplit('/').next().unwrap_or(&backup.object_key).to_string();
    let subject = crate::notify::Subject {
        resource_type: "backup",
        id: backup.id.clone(),
        name: name.clone(),
        path: Some(format!("/api/v1/backups/{}", backup.id)),
        server_id: Some(backup.server_id.clone()),
        site_id: backup.site_id.clone(),
    };
    let summary = format!("Backup {name} {what}");
    let data = serde_json::json!({
        "kind": backup.kind,
        "database_id": backup.database_id,
        "site_id": backup.site_id,
        "storage_id": backup.storage_id,
        "schedule_id": backup.schedule_id,
        "size_bytes": backup.size_bytes,
        "error": backup.error,
    });
    let event = crate::notify::EventSpec::new(event_type, &backup.organization_id, subject, summary).data(data);
    crate::notify::emit(engine, event).await;
}

#[async_trait]
impl JobHandler for BackUpDatabase {
    async fn abandoned(&self, job: &slipway_store::Job) {
        let Ok(payload) = serde_json::from_str::<BackupJob>(&job.payload) else { return };
        if let Ok(Some(mut backup)) = self.0.store.backup(&payload.backup_id).await
            && matches!(backup.status, BackupStatus::Pending | BackupStatus::InProgress)
        {
            backup.status = BackupStatus::Failed;
            let why = abandoned_reason(job);
            backup.error = Some(why.into());
            backup.finished_at = Some(slipway_core::time::now());
            let _ = self.0.store.update_backup(&backup).await;
            self.remove_partial(&backup).await;
            announce(&self.0, &backup, "backup.failed", &format!("failed: {why}")).await;
        }
    }

    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let job: BackupJob = ctx.payload()?;
        let store = &self.0.store;
        let mut backup = store
            .backup(&job.backup_id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| JobError::failed("the backup was deleted"))?;
        backup.status = BackupStatus::InProgress;
        backup.started_at = Some(slipway_core::time::now());
        backup.job_id = Some(ctx.id.clone());
        self.record(&backup).await?;
        let outcome = self.back_up(ctx, &backup).await;
        backup.finished_at = Some(slipway_core::time::now());
        match outcome {
            Ok((size, sha256, manifest)) => {
                backup.status = BackupStatus::Completed;
                backup.size_bytes = Some(i64::try_from(size).unwrap_or(i64::MAX));
                backup.sha256 = Some(sha256);
                backup.manifest = match manifest {
                    Some(manifest) => {
                        Some(serde_json::to_string(&manifest).map_err(|e| JobError::failed(e.to_string()))?)
                    }
                    None => None,
                };
                self.record(&backup).await?;
                let size = backup.size_bytes.unwrap_or(0);
                announce(&self.0, &backup, "backup.completed", &format!("completed ({size} bytes)")).await;
                crate::backup_schedules::after_stored(&self.0, ctx, &backup).await
            }
            Err(why) => {
                // After a lost lease, the worker that reaped the job records it.
                let Some(why) = reason_to_record(ctx, &JobError::failed(why)) else {
                    return Err(JobError::failed("interrupted"));
                };
                ctx.log("stderr", format!("backup failed: {why}"));
                backup.status = BackupStatus::Failed;
                backup.error = Some(why.clone());
                self.record(&backup).await?;
                announce(&self.0, &backup, "backup.failed", &format!("failed: {why}")).await;
                Err(JobError::failed(why))
            }
        }
    }
}

/// A download's chunks, or why it stopped.
pub type Chunks = tokio::sync::mpsc::Receiver<Result<Vec<u8>, String>>;

/// Hands each chunk to a download; fails (stopping the command) once nobody reads.
struct ToChannel(tokio::sync::mpsc::Sender<Result<Vec<u8>, String>>);

#[async_trait]
impl ByteSink for ToChannel {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), String> {
        self.0.send(Ok(chunk.to_vec())).await.map_err(|_| "the download was stopped".to_string())
    }
}

/// The stored object of `backup`, chunk by chunk, as it is read from its storage (a download's
/// body). What cannot be started (the object is gone, or its size is not the recorded one) is an
/// error before any byte; a later error ends the chunks with it. Reading stops when the receiver
/// is dropped.
pub async fn open_download(engine: &Engine, backup: &Backup) -> Result<Chunks, String> {
    use futures_util::StreamExt;
    let record = engine.store.backup_storage(&backup.storage_id).await.map_err(|e| e.to_string())?;
    let storage = Storage::open(engine, &record.ok_or("the backup's storage was deleted")?).await?;
    let key = storage.key(&backup.object_key);
    let expected = backup.size_bytes.and_then(|s| u64::try_from(s).ok());
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    match storage {
        Storage::S3 { client, .. } => {
            let found = client.get(&ObjectPath::from(key.as_str())).await.map_err(|e| e.to_string())?;
            if expected != Some(found.meta.size) {
                return Err(format!("the stored object has {} bytes, not the {expected:?} recorded", found.meta.size));
            }
            let mut chunks = found.into_stream();
            tokio::spawn(async move {
                while let Some(chunk) = chunks.next().await {
                    let failed = chunk.is_err();
                    if tx.send(chunk.map(|b| b.to_vec()).map_err(|e| e.to_string())).await.is_err() || failed {
                        break;
                    }
                }
            });
        }
        Storage::Local { server, .. } => {
            let check = Script::new(
                "backup size",
                "[ -f \"$FILE\" ] || fail \"the backup file is gone: $FILE\"\nstat -c 'slipway-size %s' \"$FILE\"\n",
            )
            .var("FILE", &key);
            let lines = crate::probe::read(engine, &server, &check, std::time::Duration::from_secs(20)).await?;
            let size = lines.iter().find_map(|l| l.strip_prefix("slipway-size ")?.parse::<u64>().ok());
            if size != expected {
                return Err(format!("the stored file has {size:?} bytes, not the {expected:?} recorded"));
            }
            let connection =
                crate::session::connect(engine, &crate::session::Quiet, &server).await.map_err(|e| e.to_string())?;
            let send = Script::new("backup send", "exec cat \"$FILE\"\n").var("FILE", &key).text();
            let idle = engine.command_idle;
            tokio::spawn(async move {
                let mut sink = ToChannel(tx.clone());
                let mut errors = Vec::new();
                // Nobody cancels a download; a reader that goes away stops it through the sink.
                let (_never, cancel) = tokio::sync::watch::channel(false);
                let result =
                    connection.stream(&send, None, &mut sink, &mut |l| errors.push(l.to_string()), cancel, idle).await;
                let failure = match result {
                    Ok(exit) if exit.success() => return,
                    Ok(exit) => format!("reading the file failed (exit {:?}): {}", exit.code, errors.join(" ")),
                    Err(e) => e.to_string(),
                };
                let _ = tx.send(Err(failure)).await;
            });
        }
    }
    Ok(rx)
}

/// The server a backup job locks: the database's, one backup at a time per database.
pub fn job_resource(server: &Server, database_id: &str) -> String {
    format!("database-backup:{}:{database_id}", server.id)
}

/// A backup record of `target` (on `server_id`) with nothing done yet, in `status`.
pub fn new_backup(
    organization_id: &str,
    server_id: &str,
    target: BackupTarget<'_>,
    storage_id: &str,
    schedule_id: Option<&str>,
    status: BackupStatus,
) -> Backup {
    let (database_id, site_id) = target.ids();
    Backup {
        id: slipway_core::new_id(),
        organization_id: organization_id.into(),
        kind: target.kind().into(),
        server_id: server_id.into(),
        database_id,
        site_id,
        storage_id: storage_id.into(),
        object_key: String::new(),
        status,
        size_bytes: None,
        sha256: None,
        manifest: None,
        error: None,
        job_id: None,
        started_at: None,
        finished_at: None,
        created_at: slipway_core::time::now(),
        verified_at: None,
        verification_error: None,
        restored_at: None,
        schedule_id: schedule_id.map(str::to_string),
    }
}

/// Records a `pending` backup of `site`'s shared paths and `.env` to `storage_id` and queues the
/// job that makes it (one at a time per site, not during its deploys).
pub async fn start_application_backup(
    store: &dyn slipway_store::Store,
    site: &slipway_store::Site,
    storage_id: &str,
    schedule_id: Option<&str>,
) -> Result<Backup, slipway_store::StoreError> {
    let target = BackupTarget::Site(&site.id);
    let mut backup =
        new_backup(&site.organization_id, &site.server_id, target, storage_id, schedule_id, BackupStatus::Pending);
    backup.job_id = Some(slipway_core::new_id());
    backup.object_key = application_object_key(&backup, &site.domain);
    store.insert_backup(&backup).await?;
    let job = slipway_jobs::JobSpec::new(BACKUP_APPLICATION.name, BackupJob { backup_id: backup.id.clone() })
        .resource(format!("site:{}", site.id))
        .on_server(&site.server_id)
        .organization(&site.organization_id)
        .with_id(backup.job_id.clone().unwrap_or_default());
    slipway_jobs::enqueue(store, job).await?;
    Ok(backup)
}

/// Records a `pending` backup of `database` (an item of `server`) to `storage_id` and queues
/// the job that makes it; `schedule_id` when a schedule asked for it. The caller checked that
/// the database is active, the server provisioned and the storage the organisation's.
pub async fn start_database_backup(
    store: &dyn slipway_store::Store,
    server: &Server,
    database: &slipway_store::ServerItem,
    spec: &DatabaseSpec,
    storage_id: &str,
    schedule_id: Option<&str>,
) -> Result<Backup, slipway_store::StoreError> {
    let target = BackupTarget::Database(&database.id);
    let mut backup =
        new_backup(&server.organization_id, &server.id, target, storage_id, schedule_id, BackupStatus::Pending);
    backup.job_id = Some(slipway_core::new_id());
    backup.object_key = object_key(&backup, &spec.name, &spec.engine);
    store.insert_backup(&backup).await?;
    let job = slipway_jobs::JobSpec::new(BACKUP_DATABASE.name, BackupJob { backup_id: backup.id.clone() })
        .resource(job_resource(server, &database.id))
        .on_server(&server.id)
        .organization(&server.organization_id)
        .with_id(backup.job_id.clone().unwrap_or_default());
    slipway_jobs::enqueue(store, job).await?;
    Ok(backup)
}
