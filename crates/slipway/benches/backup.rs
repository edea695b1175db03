//! Backup benchmark (run by `bench/backup`; needs root, like the end-to-end tests). On a
//! namespace test host provisioned with MariaDB (this machine's, through its socket), with a
//! database of about `BENCH_BACKUP_MB` MiB (default 200), it prints:
//! (a) the time of a Slipway backup to a real S3 server on loopback (POST to `completed`), next
//!     to a hand-written `mysqldump | gzip` over one `ssh` into a local file (the floor), and
//!     their ratio;
//! (b) the time of a Slipway restore into a new database (checksum pass included), next to
//!     `gunzip | mysql` over one `ssh` from that file, and their ratio;
//! (c) Slipway's resident memory (VmRSS, sampled every 50 ms) before and at its peak during each.
//! No assertion on time: these are figures.

#![allow(clippy::print_stdout)]

#[path = "../tests/e2e/common.rs"]
#[allow(dead_code, reason = "a bench uses only some of the end-to-end tests' helpers")]
mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{S3Server, Server, owner, temp_data_dir};
use reqwest::Method;
use serde_json::{Value, json};
use slipway_remote::testing::NetnsHost;

/// Runs SQL on this machine's MariaDB as its administrator.
fn mysql(statement: &str) {
    let out = Command::new("mysql").args(["--protocol=socket", "-uroot", "-e", statement]).output().unwrap();
    assert!(out.status.success(), "{statement}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Samples `pid`'s resident memory every 50 ms until the returned flag is set; the peak is in
/// the returned counter.
fn watch_rss(pid: u32) -> (Arc<AtomicBool>, Arc<AtomicU64>) {
    let (stop, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let (s, p) = (stop.clone(), peak.clone());
    std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            p.fetch_max(rss_kib(pid), Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    (stop, peak)
}

/// Prints where an operation's time went: queued, then each log line's offset from its start.
async fn print_timeline(api: &common::Api, id: &str) {
    let (_, op) = api.call(Method::GET, &format!("/api/v1/operations/{id}"), None).await;
    let (_, log) = api.call(Method::GET, &format!("/api/v1/operations/{id}/log?limit=1000"), None).await;
    let at = |v: &Value| v.as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let (Some(created), Some(started)) = (at(&op["data"]["created_at"]), at(&op["data"]["started_at"])) else {
        return;
    };
    println!("  {:>7.2} s  queued, until a worker took it", (started - created).as_seconds_f64());
    for line in log["data"].as_array().into_iter().flatten() {
        if let Some(when) = at(&line["at"]) {
            let text: String = line["line"].as_str().unwrap_or("").chars().take(70).collect();
            println!("  {:>7.2} s  {text}", (when - started).as_seconds_f64());
        }
    }
}

/// Waits for an operation to end, failing the bench unless it succeeded.
async fn succeeded(api: &common::Api, id: &str) {
    let op = api.finished_within(id, Duration::from_secs(1800)).await;
    assert_eq!(op["status"], "succeeded", "{op}");
}

#[tokio::main]
async fn main() {
    let megabytes: u64 = std::env::var("BENCH_BACKUP_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    common::clean_test_host_files();
    let dir = temp_data_dir();
    let slipway = Server::start(&dir, &[("SLIPWAY_RATE_LIMIT_API", "1000000"), ("SLIPWAY_LOG", "warn")]).unwrap();
    let pid = slipway.child.id();
    let api = owner(&slipway).await;
    let body = json!({"name": "bench", "provider": "custom", "ip_address": "192.0.2.1", "database_type": "mariadb"});
    let (_, created) = api.call(Method::POST, "/api/v1/servers", Some(body)).await;
    let server = format!("/api/v1/servers/{}", created["data"]["id"].as_str().unwrap());
    let bench_key = dir.join("bench_key");
    let keygen = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&bench_key).status();
    assert!(keygen.unwrap().success());
    let bench_public = std::fs::read_to_string(bench_key.with_extension("pub")).unwrap();
    let host =
        NetnsHost::start(&[created["data"]["authorization"]["public_key"].as_str().unwrap(), bench_public.trim()]);
    api.call(Method::PUT, &server, Some(json!({"ip_address": host.address}))).await;
    let (_, op) = api.call(Method::POST, &format!("{server}/provision"), Some(json!({}))).await;
    succeeded(&api, op["data"]["id"].as_str().unwrap()).await;

    // The database: rows of about 150 bytes, as many as make the size asked for.
    let name = format!("slpbench_{}", &slipway_core::new_id().to_lowercase()[18..]);
    let (_, db) = api.call(Method::POST, &format!("{server}/databases"), Some(json!({"name": name}))).await;
    succeeded(&api, db["data"]["operation_id"].as_str().unwrap()).await;
    let rows = megabytes * 1024 * 1024 / 150;
    let filled = Instant::now();
    mysql(&format!(
        "USE `{name}`; CREATE TABLE filler (id INT PRIMARY KEY, v VARCHAR(200)); \
         INSERT INTO filler SELECT seq, REPEAT(MD5(seq), 4) FROM seq_1_to_{rows}"
    ));
    println!("database {name}: {rows} rows (~{megabytes} MiB) made in {:.1?}", filled.elapsed());

    let s3 = S3Server::start(&dir);
    let storage = json!({"name": "s3", "kind": "s3", "endpoint": s3.endpoint, "bucket": s3.bucket, "path_style": true,
                         "access_key_id": s3.access_key, "secret_access_key": s3.secret_key});
    let (_, storage) = api.call(Method::POST, "/api/v1/backup-storages", Some(storage)).await;
    let storage_id = storage["data"]["id"].as_str().unwrap().to_string();
    let database_id = db["data"]["id"].as_str().unwrap();
    let idle_rss = rss_kib(pid);

    // (a) Slipway's backup, then the floor.
    let (stop, peak) = watch_rss(pid);
    let started = Instant::now();
    let backups = format!("{server}/databases/{database_id}/backups");
    let (_, made) = api.call(Method::POST, &backups, Some(json!({"storage_id": storage_id}))).await;
    succeeded(&api, made["data"]["operation_id"].as_str().unwrap()).await;
    let slipway_backup = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    println!("Slipway's backup, its operation's timeline:");
    print_timeline(&api, made["data"]["operation_id"].as_str().unwrap()).await;
    let backup_peak = peak.load(Ordering::Relaxed);
    let (_, backup) =
        api.call(Method::GET, &format!("/api/v1/backups/{}", made["data"]["id"].as_str().unwrap()), None).await;
    let backup: Value = backup["data"].clone();
    assert_eq!(backup["status"], "completed", "{backup}");

    let ssh = |script: &str, input: Option<&std::path::Path>, output: Option<&std::path::Path>| {
        let started = Instant::now();
        let mut command = Command::new("ssh");
        command.arg("-i").arg(&bench_key);
        for option in ["BatchMode=yes", "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR"] {
            command.args(["-o", option]);
        }
        command.arg(format!("root@{}", host.address)).arg(script);
        command.stdin(input.map_or(Stdio::null(), |p| std::fs::File::open(p).unwrap().into()));
        command.stdout(output.map_or(Stdio::null(), |p| std::fs::File::create(p).unwrap().into()));
        assert!(command.status().unwrap().success(), "{script}");
        started.elapsed()
    };
    let file = dir.join("floor.sql.gz");
    let dump = format!(
        "mysqldump --protocol=socket -uroot --single-transaction --quick --routines --triggers --events --hex-blob {name} | gzip -c"
    );
    let floor_backup = ssh(&dump, None, Some(&file));

    // (b) Slipway's restore into a new database, then the floor into another.
    let (stop, peak) = watch_rss(pid);
    let started = Instant::now();
    let target = format!("{name}_r");
    let restore = format!("/api/v1/backups/{}/restore", backup["id"].as_str().unwrap());
    let (status, op) = api.call(Method::POST, &restore, Some(json!({"target": {"database": target}}))).await;
    assert_eq!(status, 202, "{op}");
    succeeded(&api, op["data"]["id"].as_str().unwrap()).await;
    let slipway_restore = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    println!("Slipway's restore, its operation's timeline:");
    print_timeline(&api, op["data"]["id"].as_str().unwrap()).await;
    let restore_peak = peak.load(Ordering::Relaxed);
    let floor_target = format!("{name}_f");
    mysql(&format!("CREATE DATABASE `{floor_target}`"));
    let floor_restore = ssh(&format!("gunzip -c | mysql --protocol=socket -uroot {floor_target}"), Some(&file), None);

    for database in [&name, &target, &floor_target] {
        mysql(&format!("DROP DATABASE IF EXISTS `{database}`"));
    }
    let size = backup["size_bytes"].as_u64().unwrap_or(0);
    let mib = |bytes: u64| bytes as f64 / 1024.0 / 1024.0;
    let rate = |d: Duration| mib(size) / d.as_secs_f64();
    println!();
    println!("{:<44} {:>10} {:>14}", "", "seconds", "MiB/s (gzip)");
    println!(
        "{:<44} {:>10.1} {:>14.1}",
        "backup: Slipway to S3 (POST to completed)",
        slipway_backup.as_secs_f64(),
        rate(slipway_backup)
    );
    println!(
        "{:<44} {:>10.1} {:>14.1}",
        "backup: mysqldump | gzip over ssh to a file",
        floor_backup.as_secs_f64(),
        rate(floor_backup)
    );
    println!("{:<44} {:>10.2}", "ratio (Slipway / floor)", slipway_backup.as_secs_f64() / floor_backup.as_secs_f64());
    println!(
        "{:<44} {:>10.1} {:>14.1}",
        "restore: Slipway from S3 into a new database",
        slipway_restore.as_secs_f64(),
        rate(slipway_restore)
    );
    println!(
        "{:<44} {:>10.1} {:>14.1}",
        "restore: gunzip | mysql over ssh from a file",
        floor_restore.as_secs_f64(),
        rate(floor_restore)
    );
    println!("{:<44} {:>10.2}", "ratio (Slipway / floor)", slipway_restore.as_secs_f64() / floor_restore.as_secs_f64());
    println!();
    println!(
        "compressed backup: {:.1} MiB; Slipway RSS idle {:.1} MiB, peak during backup {:.1} MiB, during restore {:.1} MiB",
        mib(size),
        idle_rss as f64 / 1024.0,
        backup_peak as f64 / 1024.0,
        restore_peak as f64 / 1024.0
    );
    drop(host);
}
