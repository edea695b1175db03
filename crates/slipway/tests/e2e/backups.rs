//! Backup storages, for real: an S3 protocol server on loopback (s3s-fs) and a directory on a
//! provisioned test host (a network namespace sharing this machine's files).

use crate::common;

use std::time::Duration;

use common::{Api, S3Server, Server, owner, temp_data_dir};
use reqwest::Method;
use serde_json::{Value, json};
use slipway_remote::testing::NetnsHost;

const UNLIMITED: (&str, &str) = ("SLIPWAY_RATE_LIMIT_API", "1000000");

/// The steps of a storage test, as `step:status …`.
fn steps(test: &Value) -> String {
    test["data"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{}:{}", s["step"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn test_storage(api: &Api, path: &str) -> Value {
    let (status, test) = api.call(Method::POST, &format!("{path}/test"), Some(json!({}))).await;
    assert_eq!(status, 200, "{test}");
    test
}

#[tokio::test]
async fn storages_are_checked_tested_for_real_and_say_what_failed() {
    common::clean_test_host_files();
    let dir = temp_data_dir();
    let s3 = S3Server::start(&dir);
    let slipway = Server::start(&dir, &[UNLIMITED]).unwrap();
    let api = owner(&slipway).await;

    // Bad settings are refused field by field, before anything is stored or contacted.
    let bad = json!({"name": "x", "kind": "s3", "bucket": "No_Such", "endpoint": "ftp://x", "region": "a b",
                     "prefix": "../up", "access_key_id": "a b"});
    let (status, reply) = api.call(Method::POST, "/api/v1/backup-storages", Some(bad)).await;
    assert_eq!(status, 422, "{reply}");
    for field in ["bucket", "endpoint", "region", "prefix", "access_key_id", "secret_access_key"] {
        assert!(reply["errors"][field].is_array(), "{field}: {reply}");
    }
    let bad = json!({"name": "x", "kind": "local", "server_id": "nope", "path": "/etc/backups", "bucket": "b"});
    let (status, reply) = api.call(Method::POST, "/api/v1/backup-storages", Some(bad)).await;
    assert_eq!(status, 422, "{reply}");
    for field in ["server_id", "path", "bucket"] {
        assert!(reply["errors"][field].is_array(), "{field}: {reply}");
    }

    // A working bucket: every step passes and the probe object is gone afterwards.
    let body = json!({"name": "Offsite", "kind": "s3", "endpoint": s3.endpoint, "bucket": s3.bucket,
                      "prefix": "acme/backups", "path_style": true, "access_key_id": s3.access_key,
                      "secret_access_key": s3.secret_key});
    let (status, created) = api.call(Method::POST, "/api/v1/backup-storages", Some(body.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert!(!created.to_string().contains(&s3.secret_key), "the secret is never shown: {created}");
    assert_eq!(created["data"]["has_secret_access_key"], true);
    let path = format!("/api/v1/backup-storages/{}", created["data"]["id"].as_str().unwrap());
    let test = test_storage(&api, &path).await;
    assert_eq!(
        (test["data"]["ok"].as_bool(), steps(&test)),
        (Some(true), "list:passed write:passed read:passed delete:passed".to_string()),
        "{test}"
    );
    assert!(!s3.objects().iter().any(|o| o.contains("slipway-probe")), "{:?}", s3.objects());

    // Wrong credentials: the first request fails, in the store's own words.
    let mut wrong = body.clone();
    wrong["secret_access_key"] = json!("not-the-secret");
    let (status, updated) = api.call(Method::PUT, &path, Some(wrong)).await;
    assert_eq!(status, 200, "{updated}");
    let test = test_storage(&api, &path).await;
    assert_eq!(
        (test["data"]["ok"].as_bool(), steps(&test)),
        (Some(false), "list:failed write:skipped read:skipped delete:skipped".to_string()),
        "{test}"
    );
    let why = test["data"]["steps"][0]["error"].as_str().unwrap();
    assert!(why.contains("Signature") || why.contains("403"), "{why}");

    // A missing bucket (the stored secret kept when none is given).
    let mut missing = body.clone();
    missing["bucket"] = json!("no-such-bucket");
    missing.as_object_mut().unwrap().remove("secret_access_key");
    let (status, _) = api.call(Method::PUT, &path, Some(body.clone())).await;
    assert_eq!(status, 200);
    let (status, updated) = api.call(Method::PUT, &path, Some(missing)).await;
    assert_eq!(status, 200, "{updated}");
    let test = test_storage(&api, &path).await;
    assert!(steps(&test).starts_with("list:failed"), "{test}");
    assert!(test["data"]["steps"][0]["error"].as_str().unwrap().contains("NoSuchBucket"), "{test}");

    // A directory on a provisioned server.
    let body = json!({"name": "db", "provider": "custom", "ip_address": "192.0.2.1", "ssh_port": 22});
    let (status, server) = api.call(Method::POST, "/api/v1/servers", Some(body)).await;
    assert_eq!(status, 201, "{server}");
    let server_id = server["data"]["id"].as_str().unwrap().to_string();
    let server_path = format!("/api/v1/servers/{server_id}");
    let host = NetnsHost::start(&[server["data"]["authorization"]["public_key"].as_str().unwrap()]);
    let (status, _) = api.call(Method::PUT, &server_path, Some(json!({"ip_address": host.address}))).await;
    assert_eq!(status, 200);
    let (_, op) = api.call(Method::POST, &format!("{server_path}/provision"), Some(json!({}))).await;
    let op = api.finished_within(op["data"]["id"].as_str().unwrap(), Duration::from_secs(180)).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let directory = dir.join("backups-here");
    let body = json!({"name": "On db", "kind": "local", "server_id": server_id, "path": directory});
    let (status, local) = api.call(Method::POST, "/api/v1/backup-storages", Some(body)).await;
    assert_eq!(status, 201, "{local}");
    let local_path = format!("/api/v1/backup-storages/{}", local["data"]["id"].as_str().unwrap());
    let test = test_storage(&api, &local_path).await;
    assert_eq!(test["data"]["ok"], true, "{test}");
    assert!(directory.is_dir() && std::fs::read_dir(&directory).unwrap().next().is_none(), "made, and left empty");

    // A directory that cannot be one (a file stands where it should be).
    let blocked = dir.join("a-file");
    std::fs::write(&blocked, "x").unwrap();
    let body = json!({"name": "Blocked", "kind": "local", "server_id": server_id, "path": blocked.join("sub")});
    let (_, local) = api.call(Method::POST, "/api/v1/backup-storages", Some(body)).await;
    let test = test_storage(&api, &format!("/api/v1/backup-storages/{}", local["data"]["id"].as_str().unwrap())).await;
    assert!(steps(&test).starts_with("list:failed"), "{test}");
    assert!(test["data"]["steps"][0]["error"].as_str().unwrap().contains("Not a directory"), "{test}");

    // The command line lists, adds and tests them.
    let cli = |args: &[&str]| {
        let env = [("SLIPWAY_URL", api.url.as_str()), ("SLIPWAY_TOKEN", api.token.as_str())];
        let out = common::slipway(&dir, &env).args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let env_secret = ("SLIPWAY_S3_SECRET_ACCESS_KEY", s3.secret_key.as_str());
    let out =
        common::slipway(&dir, &[("SLIPWAY_URL", api.url.as_str()), ("SLIPWAY_TOKEN", api.token.as_str()), env_secret])
            .args(["backup-storage", "create-s3", "CLI", "--bucket", &s3.bucket, "--endpoint", &s3.endpoint])
            .args(["--path-style", "--access-key-id", &s3.access_key, "--output", "json"])
            .output()
            .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let made: Value = serde_json::from_str(&stdout).unwrap();
    let id = made["id"].as_str().unwrap();
    let (ok, out, err) = cli(&["backup-storage", "test", id]);
    assert!(ok && out.contains("list") && out.contains("delete") && !out.contains("failed"), "{out}{err}");
    let (ok, out, err) = cli(&["backup-storage", "test", local["data"]["id"].as_str().unwrap()]);
    assert!(!ok && err.contains("Not a directory"), "a failed test fails the command: {out}{err}");
    let (ok, out, err) = cli(&["backup-storage", "list"]);
    assert!(ok && out.contains("CLI") && out.contains("On db"), "{out}{err}");
    let (ok, out, err) = cli(&["backup-storage", "delete", id]);
    assert!(ok, "{out}{err}");
    assert_eq!(api.call(Method::GET, &format!("/api/v1/backup-storages/{id}"), None).await.0, 404);
    drop(host);
}
