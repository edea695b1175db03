//! `slipway backup …`: database backups, listed, made, downloaded (checked against their
//! SHA-256), restored and verified.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use slipway_client::{BackupAction, ServerItems};

use super::follow::{Echo, ended_well, follow_operation};
use super::{ClientArgs, Output, connect, print_json, wait_for_change};

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Your organizations' backups, newest first
    List {
        /// Only these: pending, in_progress, completed, failed or restored
        #[arg(long)]
        status: Option<String>,
        /// Only these: database or application
        #[arg(long = "type")]
        kind: Option<String>,
    },
    /// Back a database up now, to a storage, and wait until it is stored
    Create {
        /// Server name or id
        server: String,
        /// Database name or id
        database: String,
        /// The backup storage's id
        #[arg(long)]
        storage: String,
    },
    /// Back a site's shared paths and .env up now, to a storage, and wait until it is stored
    CreateApp {
        /// Server name or id
        server: String,
        /// The site's domain or id
        site: String,
        /// The backup storage's id
        #[arg(long)]
        storage: String,
    },
    /// Download a backup, showing progress, and check it against its SHA-256
    Download {
        /// The backup's id
        id: String,
        /// Where to write it [default: the backup's file name, here]
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// Restore a backup, following its log: into the database backed up or another existing
    /// one (whose tables it replaces: name it again with --confirm), or into a new database
    Restore {
        /// The backup's id
        id: String,
        /// The database to restore into, on the backup's server; a new name creates it
        /// [default: the database backed up]
        #[arg(long)]
        database: Option<String>,
        /// The name of the existing database restored into, again (for an application backup:
        /// the site's domain)
        #[arg(long)]
        confirm: Option<String>,
    },
    /// Verify a backup: restore it into a scratch database, check its SHA-256 and compare its
    /// tables and rows with its manifest
    Verify {
        /// The backup's id
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupScheduleCommand {
    /// A database's (or with --site, a site's) backup schedules, with their next run and
    /// whether they are stale
    List {
        /// Server name or id
        server: String,
        /// Database name or id
        #[arg(required_unless_present = "site")]
        database: Option<String>,
        /// A site's domain or id instead: its application backup schedules
        #[arg(long, conflicts_with = "database")]
        site: Option<String>,
    },
    /// Back a database (or with --site, a site's shared paths and .env) up on a schedule,
    /// keeping what the retention says
    Create {
        /// Server name or id
        server: String,
        /// Database name or id
        #[arg(required_unless_present = "site")]
        database: Option<String>,
        /// A site's domain or id instead: back up its shared paths and .env
        #[arg(long, conflicts_with = "database")]
        site: Option<String>,
        /// The backup storage's id
        #[arg(long)]
        storage: String,
        /// minutely, hourly, nightly, weekly, monthly, or five cron fields ("0 3 * * *"), in UTC
        #[arg(long)]
        frequency: String,
        /// How many of the newest good backups to keep [default: 7]
        #[arg(long)]
        keep_last: Option<i64>,
        /// Also the newest of each of the last N days
        #[arg(long)]
        keep_daily: Option<i64>,
        /// Also the newest of each of the last N weeks
        #[arg(long)]
        keep_weekly: Option<i64>,
        /// Also the newest of each of the last N months
        #[arg(long)]
        keep_monthly: Option<i64>,
        /// Verify each backup once stored (database schedules only)
        #[arg(long)]
        verify: bool,
    },
    /// Run a schedule now and wait until its backup is stored (then its retention applies)
    Run {
        /// The schedule's id
        id: String,
    },
    /// Delete a schedule (its backups stay)
    Delete {
        /// The schedule's id
        id: String,
    },
}

/// The id of `database` (a name or an id) on `server`, and the path of its collection.
async fn database_path(client: &slipway_client::Client, server: &str, database: &str) -> anyhow::Result<String> {
    let databases = ServerItems::Databases.collection(server);
    let found = client.items(&databases).await?;
    let id = found
        .data
        .iter()
        .find(|d| d["id"] == database || d["name"] == database)
        .and_then(|d| d["id"].as_str())
        .ok_or_else(|| anyhow::anyhow!("No database named or with id {database:?} on server {server:?}."))?;
    Ok(format!("{databases}/{id}"))
}

/// The backup schedules of a database, or of a site when `site` is given.
async fn schedules_path(
    client: &slipway_client::Client,
    server: &str,
    database: Option<&str>,
    site: Option<&str>,
) -> anyhow::Result<String> {
    match (database, site) {
        (_, Some(site)) => Ok(slipway_client::site_backup_schedules_path(server, site)),
        (Some(database), None) => Ok(format!("{}/backup-schedules", database_path(client, server, database).await?)),
        (None, None) => anyhow::bail!("Name a database, or a site with --site."),
    }
}

/// Waits for a backup's operation and fails unless it was stored; returns it.
async fn stored(client: &slipway_client::Client, made: &Value, output: Output) -> anyhow::Result<Value> {
    wait_for_change(client, made, output).await?;
    let backup = client.item("/api/v1/backups", made["id"].as_str().unwrap_or("")).await?;
    if backup["status"] != "completed" {
        anyhow::bail!(
            "the backup {} failed: {}",
            backup["id"].as_str().unwrap_or(""),
            backup["error"].as_str().unwrap_or("")
        );
    }
    Ok(backup)
}

#[allow(clippy::print_stdout)]
pub async fn backup_schedule(command: BackupScheduleCommand, client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let output = client_args.output;
    match command {
        BackupScheduleCommand::List { server, database, site } => {
            let path = schedules_path(&client, &server, database.as_deref(), site.as_deref()).await?;
            let schedules = client.items(&path).await?.data;
            if output == Output::Json {
                return print_json(&Value::Array(schedules));
            }
            let s = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
            println!("{:<26}  {:<16}  {:<6}  {:<20}  STATE", "ID", "FREQUENCY", "KEEP", "NEXT RUN");
            for v in &schedules {
                let next: String = s(v, "next_run_at").chars().take(19).collect();
                let state = if v["stale"] == true { "stale" } else { "ok" };
                println!("{:<26}  {:<16}  {:<6}  {next:<20}  {state}", s(v, "id"), s(v, "frequency"), v["keep_last"]);
            }
            Ok(())
        }
        BackupScheduleCommand::Create {
            server,
            database,
            site,
            storage,
            frequency,
            keep_last,
            keep_daily,
            keep_weekly,
            keep_monthly,
            verify,
        } => {
            let path = schedules_path(&client, &server, database.as_deref(), site.as_deref()).await?;
            let body = json!({"storage_id": storage, "frequency": frequency, "keep_last": keep_last,
                              "keep_daily": keep_daily, "keep_weekly": keep_weekly, "keep_monthly": keep_monthly,
                              "verify": verify});
            let made = client.create_item(&path, &body).await?;
            if output == Output::Json {
                return print_json(&made);
            }
            eprintln!(
                "Scheduled: {} ({}), next run {}.",
                made["id"].as_str().unwrap_or(""),
                made["frequency"].as_str().unwrap_or(""),
                made["next_run_at"].as_str().unwrap_or("")
            );
            Ok(())
        }
        BackupScheduleCommand::Run { id } => {
            let made = client.item_action("/api/v1/backup-schedules", &id, "run", &json!({})).await?;
            let backup = stored(&client, &made, output).await?;
            if output == Output::Json {
                return print_json(&backup);
            }
            eprintln!("Done: backup {} stored.", backup["id"].as_str().unwrap_or(""));
            Ok(())
        }
        BackupScheduleCommand::Delete { id } => {
            client.delete_path(&format!("/api/v1/backup-schedules/{id}")).await?;
            eprintln!("Deleted; its backups stay.");
            Ok(())
        }
    }
}

/// Says a backup was stored: its size and SHA-256 (or the backup as JSON).
fn print_stored(backup: &Value, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        return print_json(backup);
    }
    eprintln!(
        "Done: {} stored, {} bytes, SHA-256 {}.",
        backup["id"].as_str().unwrap_or(""),
        backup["size_bytes"].as_i64().unwrap_or(0),
        backup["sha256"].as_str().unwrap_or("")
    );
    Ok(())
}

#[allow(clippy::print_stdout)]
fn print_backups(backups: &[Value]) {
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    println!("{:<26}  {:<8}  {:<11}  {:>12}  {:<20}  ERROR", "ID", "TYPE", "STATUS", "BYTES", "CREATED");
    for b in backups {
        let size = b["size_bytes"].as_i64().map(|n| n.to_string()).unwrap_or_default();
        let created: String = s(b, "created_at").chars().take(19).collect();
        println!(
            "{:<26}  {:<8}  {:<11}  {size:>12}  {created:<20}  {}",
            s(b, "id"),
            s(b, "type"),
            s(b, "status"),
            s(b, "error")
        );
    }
}

pub async fn backup(command: BackupCommand, client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let output = client_args.output;
    match command {
        BackupCommand::List { status, kind } => {
            let mut filters = Vec::new();
            filters.extend(status.as_deref().map(|s| ("status", s)));
            filters.extend(kind.as_deref().map(|k| ("type", k)));
            let page = client.items_where("/api/v1/backups", &filters).await?;
            if output == Output::Json {
                return print_json(&Value::Array(page.data));
            }
            print_backups(&page.data);
            Ok(())
        }
        BackupCommand::Create { server, database, storage } => {
            let path = format!("{}/backups", database_path(&client, &server, &database).await?);
            let made = client.create_item(&path, &json!({"storage_id": storage})).await?;
            let backup = stored(&client, &made, output).await?;
            print_stored(&backup, output)
        }
        BackupCommand::CreateApp { server, site, storage } => {
            let site = client.site(&server, &site).await?;
            let body = json!({"site_id": site.id, "storage_id": storage});
            let made = client.create_item("/api/v1/backups/application", &body).await?;
            let backup = stored(&client, &made, output).await?;
            print_stored(&backup, output)
        }
        BackupCommand::Download { id, to } => download(&client, &id, to).await,
        BackupCommand::Restore { id, database, confirm } => {
            let mut body = json!({});
            if let Some(database) = database {
                body["target"] = json!({"database": database});
            }
            if let Some(confirm) = confirm {
                body["confirm"] = json!(confirm);
            }
            let backup = act(&client, &id, BackupAction::Restore, &body, output).await?;
            if output == Output::Human {
                eprintln!("Done: backup {id} restored.");
            } else {
                print_json(&backup)?;
            }
            Ok(())
        }
        BackupCommand::Verify { id } => {
            let backup = act(&client, &id, BackupAction::Verify, &json!({}), output).await?;
            if output == Output::Human {
                eprintln!("Verified: backup {id} restores, with its SHA-256 and every table and row of its manifest.");
            } else {
                print_json(&backup)?;
            }
            Ok(())
        }
    }
}

/// Starts a restore or a verification, follows its log, and fails unless it ended well;
/// returns the backup as it then is.
async fn act(
    client: &slipway_client::Client,
    id: &str,
    action: BackupAction,
    body: &Value,
    output: Output,
) -> anyhow::Result<Value> {
    let op = client.backup_action(id, action, body).await?;
    let op = follow_operation(client, op["id"].as_str().unwrap_or(""), output, Echo::Always).await?;
    ended_well(&op)?;
    Ok(client.item("/api/v1/backups", id).await?)
}

/// Streams a backup to a `.partial` file beside `to`, hashing as it goes; keeps it only when the
/// size and SHA-256 are the ones Slipway recorded.
async fn download(client: &slipway_client::Client, id: &str, to: Option<PathBuf>) -> anyhow::Result<()> {
    let mut response = client.backup_download(id).await?;
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let expected_sha = header("x-checksum-sha256").ok_or_else(|| anyhow::anyhow!("the answer has no checksum"))?;
    let total: u64 = header("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let name = header("content-disposition")
        .and_then(|d| d.split("filename=\"").nth(1).map(|n| n.trim_end_matches('"').to_string()))
        .filter(|n| !n.is_empty() && !n.contains('/') && !n.starts_with('.'))
        .unwrap_or_else(|| format!("{id}.backup"));
    let target = to.unwrap_or_else(|| PathBuf::from(name));
    let partial = target.with_extension("partial");
    let mut file = std::fs::File::create(&partial)?;
    let (mut hasher, mut done, mut shown) = (Sha256::new(), 0u64, 0u64);
    let result = async {
        while let Some(chunk) = response.chunk().await? {
            hasher.update(&chunk);
            file.write_all(&chunk)?;
            done += chunk.len() as u64;
            // Progress on stderr, at most every 1 MiB.
            if done - shown >= 1 << 20 || done == total {
                shown = done;
                let percent = done.saturating_mul(100).checked_div(total).unwrap_or(100);
                eprint!("\r\x1b[2K{done} / {total} bytes ({percent}%)");
            }
        }
        eprintln!();
        file.sync_all()?;
        anyhow::Ok(())
    }
    .await;
    let got = slipway_core::hex::encode(hasher.finalize());
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e.context("the download stopped; nothing was kept"));
    }
    if done != total || got != expected_sha {
        let _ = std::fs::remove_file(&partial);
        anyhow::bail!(
            "the download is not the backup ({done} of {total} bytes, SHA-256 {got}, expected {expected_sha}); nothing was kept"
        );
    }
    std::fs::rename(&partial, &target)?;
    eprintln!("Done: {} ({done} bytes, SHA-256 {got} checked).", target.display());
    Ok(())
}
