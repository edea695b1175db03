//! End to end: the real binary, started on port 0 with a fresh data directory, on SQLite and
//! on a fresh PostgreSQL database.

use crate::common;

use std::os::unix::fs::PermissionsExt;

use common::{Server, slipway, temp_data_dir};
use slipway_store::testing::TestDatabase;

async fn check_answers(server: &Server, backend: &str) {
    let health = server.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<serde_json::Value>().await.unwrap()["status"], "ok");
    assert_eq!(server.get("/readyz").await.status(), 200);

    let index = server.get("/api/v1").await;
    assert_eq!(index.status(), 200);
    let index: serde_json::Value = index.json().await.unwrap();
    assert_eq!(index["data"]["openapi"], format!("{}/api/v1/openapi.json", server.url));

    let spec: serde_json::Value = server.get("/api/v1/openapi.json").await.json().await.unwrap();
    assert_eq!(spec["openapi"], "3.1.0");

    let docs = server.get("/docs/").await;
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(!html.contains("https://") && !html.contains("http://"), "no external URLs in /docs/");

    let not_found = server.get("/nope").await;
    assert_eq!(not_found.status(), 404);
    assert!(not_found.headers().contains_key("x-request-id"));

    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(&format!("backend=\"{backend}\"")), "{metrics}");
    assert!(
        metrics.contains("slipway_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn serves_on_sqlite_keeps_its_key_private_and_stops_cleanly_on_sigterm() {
    let dir = temp_data_dir();
    let server = Server::start(&dir, &[]).unwrap();
    check_answers(&server, "sqlite").await;

    let key_mode = std::fs::metadata(dir.join("secret.key")).unwrap().permissions().mode();
    assert_eq!(key_mode & 0o777, 0o600, "the generated key is owner-only");
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert!(dir.join("slipway.db").exists());

    let (status, log) = server.terminate();
    assert!(status.success(), "exit status {status:?}\n{}", log.join("\n"));
    assert!(log.iter().any(|l| l.contains("SIGTERM received")), "{}", log.join("\n"));
    // Its stderr is a pipe here, as when it is redirected to a log file: no colour codes.
    assert!(!log.iter().any(|l| l.contains('\x1b')), "ANSI escapes in a log that is not a terminal: {log:?}");

    // Restarting with the same data directory reuses the key and the database.
    let again = Server::start(&dir, &[]).unwrap();
    assert_eq!(again.get("/readyz").await.status(), 200);
    drop(again);

    // A different key is refused: secrets written with it could never be read back.
    let other_key = slipway_core::SecretsKey::generate();
    let err = Server::start(&dir, &[("SLIPWAY_SECRET_KEY", other_key.to_base64())]).err().expect("refused");
    assert!(err.contains("the secrets key does not match"), "{err}");
}

#[tokio::test]
async fn serves_on_a_fresh_postgres_database() {
    let db = TestDatabase::postgres().await;
    let dir = temp_data_dir();
    let key = slipway_core::SecretsKey::generate();
    let server =
        Server::start(&dir, &[("SLIPWAY_DATABASE_URL", db.url()), ("SLIPWAY_SECRET_KEY", key.to_base64())]).unwrap();
    check_answers(&server, "postgres").await;
    assert!(!dir.join("secret.key").exists(), "a given key is not written to disk");
    assert!(!dir.join("slipway.db").exists(), "no SQLite file when running on PostgreSQL");
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = temp_data_dir();
    let server = Server::start(&dir, &[("SLIPWAY_LOG_FORMAT", "json")]).unwrap();
    let url = server.url.clone();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        common::http().get(format!("{url}/healthz")).header("x-request-id", "json-log-check").send().await.unwrap();
    });
    let (_, log) = server.terminate();
    let request_line = log
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "request" && v["route"] == "/healthz")
        .unwrap_or_else(|| panic!("no JSON request log line in:\n{}", log.join("\n")));
    assert_eq!(request_line["status"], 200);
    assert_eq!(request_line["method"], "GET");
    assert_eq!(request_line["span"]["request_id"], "json-log-check");
    assert!(request_line["latency_ms"].is_number());
}

#[test]
fn migrate_config_version_and_openapi_commands() {
    let dir = temp_data_dir();
    let out = slipway(&dir, &[]).arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let migrations =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../slipway-store/migrations/sqlite")).unwrap().count();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("Applied {migrations} migration(s) to the sqlite database.")
    );
    let out = slipway(&dir, &[]).arg("migrate").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Applied 0 migration(s) to the sqlite database.");

    let out = slipway(&dir, &[("SLIPWAY_DATABASE_URL", "postgres://slipway:hunter2@db.internal/slipway")])
        .arg("config")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("postgres://slipway:redacted@db.internal/slipway") && !text.contains("hunter2"), "{text}");

    let out = slipway(&dir, &[]).args(["serve", "--listen", "not-an-address"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'not-an-address'"));

    let out = slipway(&dir, &[]).arg("version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("slipway {}", env!("CARGO_PKG_VERSION")));

    let out = slipway(&dir, &[]).arg("openapi").output().unwrap();
    let spec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
}

/// kill -9 in the middle of a burst of 200 token creations, each with its own Idempotency-Key:
/// after a restart no key stays "still being processed". A retry of each key answers 201
/// within seconds, replaying the stored response (whose secret works) or running again when
/// the process died before it could store one.
async fn idempotency_keys_survive_kill_9(envs: &[(&str, &str)]) {
    let dir = temp_data_dir();
    let mut envs = envs.to_vec();
    envs.extend([("SLIPWAY_RATE_LIMIT_API", "1000000"), ("SLIPWAY_RATE_LIMIT_TOKEN_CREATE", "1000000")]);
    let mut first = Server::start(&dir, &envs).unwrap();
    let owner = common::owner(&first).await;
    let create = |url: String, n: usize| {
        let token = owner.token.clone();
        async move {
            common::http()
                .post(format!("{url}/api/v1/tokens"))
                .bearer_auth(token)
                .header("idempotency-key", format!("burst-{n}"))
                .json(&serde_json::json!({"name": format!("burst {n}")}))
                .send()
                .await
        }
    };
    let mut burst = tokio::task::JoinSet::new();
    for n in 0..200 {
        burst.spawn(create(first.url.clone(), n));
    }
    // Once some have answered, the process dies with the rest in flight.
    let mut answered = 0;
    while answered < 40 {
        if let Some(Ok(Ok(_))) = burst.join_next().await {
            answered += 1;
        }
    }
    std::process::Command::new("kill").args(["-KILL", &first.child.id().to_string()]).status().unwrap();
    let _ = first.child.wait();
    burst.shutdown().await;
    drop(first);

    let restarted = Server::start(&dir, &envs).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    for n in 0..200 {
        let reply = loop {
            let reply = create(restarted.url.clone(), n).await.unwrap();
            if reply.status() != 409 || std::time::Instant::now() > deadline {
                break reply;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        };
        assert_eq!(reply.status(), 201, "key {n} after the restart");
        let body: serde_json::Value = reply.json().await.unwrap();
        let secret = body["data"]["plain_text_token"].as_str().unwrap();
        let me = common::http().get(format!("{}/api/v1/tokens/current", restarted.url)).bearer_auth(secret);
        assert_eq!(me.send().await.unwrap().status(), 200, "key {n}: the secret it returns works");
    }
    drop(restarted);
}

#[tokio::test]
async fn idempotency_keys_survive_kill_9_on_sqlite() {
    idempotency_keys_survive_kill_9(&[]).await;
}

#[tokio::test]
async fn idempotency_keys_survive_kill_9_on_postgres() {
    let db = TestDatabase::postgres().await;
    let key = slipway_core::SecretsKey::generate();
    let key = key.to_base64();
    idempotency_keys_survive_kill_9(&[("SLIPWAY_DATABASE_URL", db.url()), ("SLIPWAY_SECRET_KEY", key)]).await;
}

/// Retention through the real binary: with a one-second token retention and pruning every
/// second, a revoked token's row is deleted by the scheduled job while the live token, and the
/// audit events naming the revoked one, stay; `/metrics` reports it; the audit log exports as
/// JSON lines and the database compacts.
async fn prunes_on_schedule(envs: &[(&str, &str)]) {
    let dir = temp_data_dir();
    let mut envs = envs.to_vec();
    envs.extend([("SLIPWAY_RETENTION_TOKENS", "1s"), ("SLIPWAY_PRUNE_INTERVAL", "1s")]);
    let server = Server::start(&dir, &envs).unwrap();
    let owner = common::owner(&server).await;
    let (status, created) =
        owner.call(reqwest::Method::POST, "/api/v1/tokens", Some(serde_json::json!({"name": "short-lived"}))).await;
    assert_eq!(status, 201, "{created}");
    let id = created["data"]["token"]["id"].as_str().or(created["data"]["id"].as_str()).unwrap().to_string();
    let (status, _) = owner.call(reqwest::Method::DELETE, &format!("/api/v1/tokens/{id}"), None).await;
    assert_eq!(status, 204);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let metrics = loop {
        let text = server.get("/metrics").await.text().await.unwrap();
        let pruned = text
            .lines()
            .find_map(|l| l.strip_prefix("slipway_pruned_rows_total{rule=\"tokens\"} "))
            .and_then(|n| n.parse::<u64>().ok());
        if pruned.is_some_and(|n| n >= 1) {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "the revoked token was not pruned:\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(metrics.contains("slipway_table_rows{table=\"audit_events\"} "), "{metrics}");
    assert!(metrics.contains("slipway_database_size_bytes "), "{metrics}");
    let (status, _) = owner.call(reqwest::Method::GET, &format!("/api/v1/tokens/{id}"), None).await;
    assert_eq!(status, 404, "the revoked token's row is gone");
    let (status, events) = owner.call(reqwest::Method::GET, &format!("/api/v1/audit-events?token={id}"), None).await;
    let (status_all, all) = owner.call(reqwest::Method::GET, "/api/v1/audit-events?per_page=100", None).await;
    assert_eq!((status, status_all), (200, 200), "the owner's live token still works");
    let mentions = all["data"].as_array().unwrap().iter().filter(|e| e.to_string().contains(&id)).count();
    assert!(mentions >= 1, "audit events naming the pruned token stay: {events} {all}");
    // Paging by cursor: the page after the newest event starts right below it.
    let ids: Vec<&str> = all["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    let (_, next) =
        owner.call(reqwest::Method::GET, &format!("/api/v1/audit-events?per_page=2&before={}", ids[0]), None).await;
    let next: Vec<&str> = next["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(next, ids[1..3.min(ids.len())], "the page after the first by cursor");
    drop(server);

    let export = slipway(&dir, &envs).args(["admin", "export-audit", "--since", "1h"]).output().unwrap();
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(export.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().any(|e| e.to_string().contains(&id)), "{lines:?}");
    assert!(lines.windows(2).all(|w| w[0]["id"].as_str() < w[1]["id"].as_str()), "oldest first");
    let vacuum = slipway(&dir, &envs).args(["admin", "vacuum"]).output().unwrap();
    assert!(vacuum.status.success(), "{}", String::from_utf8_lossy(&vacuum.stderr));
    assert!(String::from_utf8_lossy(&vacuum.stdout).contains("Compacted"));
}

#[tokio::test]
async fn prunes_on_schedule_on_sqlite() {
    prunes_on_schedule(&[]).await;
}

#[tokio::test]
async fn prunes_on_schedule_on_postgres() {
    let db = TestDatabase::postgres().await;
    let key = slipway_core::SecretsKey::generate();
    let key = key.to_base64();
    prunes_on_schedule(&[("SLIPWAY_DATABASE_URL", db.url()), ("SLIPWAY_SECRET_KEY", key)]).await;
}
