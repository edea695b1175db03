//! End to end: the real binary and a real sshd on loopback. Register a server, authorise the
//! organization's key on it, verify it (host key pinned, OS found), then meet a different host
//! key and see the server refused and marked unreachable with the reason.

mod common;

use std::time::{Duration, Instant};

use common::{Api, Server, owner, temp_data_dir};
use serde_json::{Value, json};
use slipway_remote::testing::Sshd;

/// A PHP version the server's system does not offer is caught at verify, which names the
/// versions it does offer; the version can be changed before provisioning (not to one the
/// known system lacks), and verify then passes.
#[tokio::test]
async fn verify_catches_a_php_version_the_system_does_not_offer() {
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap();
    let field = |name: &str| {
        os_release.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim_matches('"').to_string()).unwrap()
    };
    let os = format!("{} {}", field("ID="), field("VERSION_ID="));
    let Some(offered) = slipway_core::server_input::php_versions_on(&os) else {
        eprintln!("skipped: this machine's system ({os}) is not one Slipway provisions");
        return;
    };
    let wrong = ["8.1", "8.2", "8.3", "8.4"].into_iter().find(|v| !offered.contains(v)).unwrap();
    let dir = temp_data_dir();
    let slipway = Server::start(&dir, &[]).unwrap();
    let api = owner(&slipway).await;
    let sshd = Sshd::start(&[]);
    let body = json!({"name": "php", "provider": "custom", "ip_address": "127.0.0.1", "ssh_port": sshd.port,
                      "php_version": wrong});
    let (status, created) = api.call(reqwest::Method::POST, "/api/v1/servers", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let server = format!("/api/v1/servers/{}", created["data"]["id"].as_str().unwrap());
    sshd.authorize(&[created["data"]["authorization"]["public_key"].as_str().unwrap()]);

    let verify = || async {
        let (status, op) = api.call(reqwest::Method::POST, &format!("{server}/verify"), Some(json!({}))).await;
        assert_eq!(status, 202, "{op}");
        api.finished(op["data"]["id"].as_str().unwrap()).await
    };
    let op = verify().await;
    assert_eq!(op["status"], "failed", "{op}");
    let reason = op["failure_reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("PHP {wrong} is not available on {os}")) && reason.contains(offered[0]),
        "{reason}"
    );
    let (_, shown) = api.call(reqwest::Method::GET, &server, None).await;
    assert_eq!(shown["data"]["status_reason"].as_str(), Some(reason), "the server says why too");

    // The system is known now: the wrong version is refused at once, the right one taken.
    let (status, refused) = api.call(reqwest::Method::PUT, &server, Some(json!({"php_version": wrong}))).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["errors"]["php_version"][0].as_str().unwrap().contains(offered[0]), "{refused}");
    let (status, changed) = api.call(reqwest::Method::PUT, &server, Some(json!({"php_version": offered[0]}))).await;
    assert_eq!((status, changed["data"]["php_version"].as_str()), (200, Some(offered[0])), "{changed}");
    assert_eq!(verify().await["status"], "succeeded");
}

#[tokio::test]
async fn verify_pins_the_host_key_and_refuses_a_changed_one() {
    let dir = temp_data_dir();
    let slipway = Server::start(&dir, &[]).unwrap();
    let api = owner(&slipway).await;
    let sshd = Sshd::start(&[]);

    let (status, created) = api
        .call(
            reqwest::Method::POST,
            "/api/v1/servers",
            Some(json!({"name": "loopback", "provider": "custom", "ip_address": "127.0.0.1", "ssh_port": sshd.port})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let server_id = created["data"]["id"].as_str().unwrap().to_string();
    let public_key = created["data"]["authorization"]["public_key"].as_str().unwrap().to_string();

    // Before the key is authorised, verification fails and says why.
    let (status, op) =
        api.call(reqwest::Method::POST, &format!("/api/v1/servers/{server_id}/verify"), Some(json!({}))).await;
    assert_eq!(status, 202, "{op}");
    let op = api.finished(op["data"]["id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "failed");
    assert!(op["failure_reason"].as_str().unwrap().contains("refused Slipway's key"), "{op}");
    let (_, server) = api.call(reqwest::Method::GET, &format!("/api/v1/servers/{server_id}"), None).await;
    assert_eq!(server["data"]["status"], "unreachable");

    // Authorised: first contact pins the host key and finds the OS.
    sshd.authorize(&[&public_key]);
    let (_, op) =
        api.call(reqwest::Method::POST, &format!("/api/v1/servers/{server_id}/verify"), Some(json!({}))).await;
    let op_id = op["data"]["id"].as_str().unwrap().to_string();
    let op = api.finished(&op_id).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let (_, server) = api.call(reqwest::Method::GET, &format!("/api/v1/servers/{server_id}"), None).await;
    let expected = slipway_remote::fingerprint(&sshd.host_key_public).unwrap();
    assert_eq!(server["data"]["host_key_fingerprint"], expected.as_str());
    assert_eq!(server["data"]["status"], "pending", "reachable again, not yet provisioned");
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap();
    let id = os_release.lines().find_map(|l| l.strip_prefix("ID=")).unwrap().trim_matches('"');
    assert!(server["data"]["os"].as_str().unwrap().starts_with(id), "{server}");
    let (_, log) = api.call(reqwest::Method::GET, &format!("/api/v1/operations/{op_id}/log"), None).await;
    let lines: Vec<&str> = log["data"].as_array().unwrap().iter().map(|l| l["line"].as_str().unwrap()).collect();
    assert!(lines.iter().any(|l| l.contains("pinned host key")), "{lines:?}");
    let (_, ops) = api.call(reqwest::Method::GET, &format!("/api/v1/servers/{server_id}/logs"), None).await;
    assert_eq!(ops["meta"]["total"], 2);

    // The same address now answers with another host key: refused, and said so.
    let impostor = Sshd::start(&[&public_key]);
    let (status, _) = api
        .call(reqwest::Method::PUT, &format!("/api/v1/servers/{server_id}"), Some(json!({"ssh_port": impostor.port})))
        .await;
    assert_eq!(status, 200);
    let (_, op) =
        api.call(reqwest::Method::POST, &format!("/api/v1/servers/{server_id}/verify"), Some(json!({}))).await;
    let op = api.finished(op["data"]["id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "failed");
    let reason = op["failure_reason"].as_str().unwrap();
    assert!(reason.contains("host key changed") && reason.contains(&expected), "{reason}");
    let (_, server) = api.call(reqwest::Method::GET, &format!("/api/v1/servers/{server_id}"), None).await;
    assert_eq!(server["data"]["status"], "unreachable");
    assert!(server["data"]["status_reason"].as_str().unwrap().contains("host key changed"));
    assert_eq!(server["data"]["host_key_fingerprint"], expected.as_str(), "the pinned key is kept");
    let offered = slipway_remote::fingerprint(&impostor.host_key_public).unwrap();
    assert_eq!(server["data"]["offered_host_key_fingerprint"], offered.as_str());

    // An admin who knows why the key changed accepts the offered one, naming its fingerprint.
    let accept = format!("/api/v1/servers/{server_id}/accept-host-key");
    let (status, reply) = api.call(reqwest::Method::POST, &accept, Some(json!({"fingerprint": expected}))).await;
    assert_eq!(status, 422, "only the offered key can be accepted: {reply}");
    let (status, op) = api.call(reqwest::Method::POST, &accept, Some(json!({"fingerprint": offered}))).await;
    assert_eq!(status, 202, "{op}");
    api.succeeded(op["data"]["id"].as_str().unwrap()).await;
    let (_, server) = api.call(reqwest::Method::GET, &format!("/api/v1/servers/{server_id}"), None).await;
    assert_eq!(server["data"]["host_key_fingerprint"], offered.as_str());
    assert!(server["data"]["offered_host_key_fingerprint"].is_null());
    assert_eq!(server["data"]["status"], "pending", "reachable again: {server}");
    let (status, _) = api.call(reqwest::Method::POST, &accept, Some(json!({"fingerprint": offered}))).await;
    assert_eq!(status, 422, "nothing is offered any more");

    let (status, _) = slipway.terminate();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_cli_registers_verifies_and_shows_a_server() {
    let dir = temp_data_dir();
    let slipway = Server::start(&dir, &[]).unwrap();
    let api = owner(&slipway).await;
    let sshd = Sshd::start(&[]);
    let env = [("SLIPWAY_URL", api.url.as_str()), ("SLIPWAY_TOKEN", api.token.as_str())];
    let run = |args: &[&str]| common::slipway(&dir, &env).args(args).output().unwrap();
    let text = |out: &std::process::Output| {
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };

    let port = sshd.port.to_string();
    let created = run(&["server", "create", "cli-box", "--ip", "127.0.0.1", "--port", &port, "--output", "json"]);
    assert!(created.status.success(), "{:?}", text(&created));
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    // The printed command, run as the server's user, is what authorises Slipway.
    let home = dir.join("server-home");
    std::fs::create_dir_all(&home).unwrap();
    let command = created["authorization"]["command"].as_str().unwrap();
    assert!(std::process::Command::new("sh").arg("-c").arg(command).env("HOME", &home).status().unwrap().success());
    let authorized = std::fs::read_to_string(home.join(".ssh/authorized_keys")).unwrap();
    sshd.authorize(&[authorized.trim()]);
    // Lost the output? `server show` prints the same command again until Slipway gets in.
    let shown = text(&run(&["server", "show", "cli-box"])).0;
    assert!(shown.contains(command) && shown.contains("slipway server verify cli-box"), "{shown}");

    let verified = run(&["server", "verify", &id]);
    let (out, err) = text(&verified);
    assert!(verified.status.success(), "{out}\n{err}");
    assert!(out.contains("pinned host key") && out.contains("status: pending"), "{out}");

    let listed = text(&run(&["server", "list"])).0;
    assert!(listed.contains("cli-box") && listed.contains(&format!("127.0.0.1:{port}")), "{listed}");
    let shown = text(&run(&["server", "show", "cli-box"])).0;
    assert!(!shown.contains("Authorise Slipway"), "verified: no need to authorise again: {shown}");
    let logs = text(&run(&["server", "logs", &id])).0;
    assert!(logs.contains("server.verify") && logs.contains("succeeded"), "{logs}");
    let missing = run(&["server", "show", "01NOSUCHSERVER0000000000000"]);
    let said = text(&missing).1;
    assert!(!missing.status.success(), "{said}");
    assert!(said.contains("No server with the id or name \"01NOSUCHSERVER0000000000000\""), "{said}");
    let missing = run(&["server", "show", "01NOSUCHSERVER0000000000000", "--output", "json"]);
    let missing: Value = serde_json::from_slice(&missing.stdout).unwrap();
    assert_eq!(missing["status"], 404, "{missing}");
    assert!(missing["message"].as_str().unwrap().starts_with("No server with the id or name"), "{missing}");

    // By name as by id; `show --output json` is the API's `data`, exactly.
    let shown: Value = serde_json::from_slice(&run(&["server", "show", "cli-box", "--output", "json"]).stdout).unwrap();
    let (_, from_api) = api.call(reqwest::Method::GET, &format!("/api/v1/servers/{id}"), None).await;
    assert_eq!(shown, from_api["data"]);

    let updated = run(&["server", "update", "cli-box", "--name", "cli-box-2", "--port", &port]);
    assert!(updated.status.success(), "{:?}", text(&updated));
    assert!(text(&updated).0.contains("cli-box-2"), "{:?}", text(&updated));
    // The PHP version provisioning installs, checked against what the (now known) system offers.
    let os = from_api["data"]["os"].as_str().unwrap().to_string();
    if let Some(offered) = slipway_core::server_input::php_versions_on(&os) {
        let php = run(&["server", "update", "cli-box-2", "--php", offered[0]]);
        assert!(php.status.success(), "{:?}", text(&php));
        assert!(text(&php).0.contains(&format!("php: {}", offered[0])), "{:?}", text(&php));
        assert!(text(&php).1.contains("slipway server provision cli-box-2"), "{:?}", text(&php));
        let refused = run(&["server", "update", "cli-box-2", "--php", "7.4"]);
        assert!(!refused.status.success() && text(&refused).1.contains("php_version: "), "{:?}", text(&refused));
    }
    let nothing = run(&["server", "update", &id]);
    assert!(text(&nothing).1.contains("nothing to change"), "{:?}", text(&nothing));

    // Deleting asks first; with no terminal to ask on, only --yes goes ahead.
    let unasked = run(&["server", "delete", &id]);
    assert!(!unasked.status.success(), "{:?}", text(&unasked));
    assert!(text(&unasked).1.contains("pass --yes to confirm"), "{:?}", text(&unasked));
    assert_eq!(api.call(reqwest::Method::GET, &format!("/api/v1/servers/{id}"), None).await.0, 200);
    let deleted = run(&["server", "delete", "cli-box-2", "--yes"]);
    assert!(deleted.status.success(), "{:?}", text(&deleted));
    assert!(text(&deleted).1.contains("Server cli-box-2 is forgotten"), "{:?}", text(&deleted));
    assert_eq!(api.call(reqwest::Method::GET, &format!("/api/v1/servers/{id}"), None).await.0, 404);
    drop(slipway);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_job_interrupted_by_kill_9_is_recovered_after_restart() {
    let dir = temp_data_dir();
    let lease = [("SLIPWAY_JOB_LEASE_SECONDS", "2")];
    let mut slipway = Server::start(&dir, &lease).unwrap();
    let api = owner(&slipway).await;

    // A peer that accepts TCP and never speaks SSH: the verify job hangs in its connect.
    let (silent_port, _held) = common::silent_peer().await;
    let (_, created) = api
        .call(
            reqwest::Method::POST,
            "/api/v1/servers",
            Some(json!({"name": "hangs", "provider": "custom", "ip_address": "127.0.0.1", "ssh_port": silent_port})),
        )
        .await;
    let server_id = created["data"]["id"].as_str().unwrap().to_string();
    let public_key = created["data"]["authorization"]["public_key"].as_str().unwrap().to_string();
    let (_, op) =
        api.call(reqwest::Method::POST, &format!("/api/v1/servers/{server_id}/verify"), Some(json!({}))).await;
    let op_id = op["data"]["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut every = tokio::time::interval(Duration::from_millis(100));
    loop {
        every.tick().await;
        let (_, op) = api.call(reqwest::Method::GET, &format!("/api/v1/operations/{op_id}"), None).await;
        if op["data"]["status"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "the job never started: {op}");
    }

    // kill -9: no chance to record anything.
    std::process::Command::new("kill").args(["-KILL", &slipway.child.id().to_string()]).status().unwrap();
    let _ = slipway.child.wait();
    drop(slipway);

    let restarted = Server::start(&dir, &lease).unwrap();
    let api = Api { url: restarted.url.clone(), token: api.token.clone() };
    let op = api.finished(&op_id).await;
    assert_eq!(op["status"], "failed", "{op}");
    assert_eq!(
        op["failure_reason"], "interrupted",
        "a non-retried job whose worker died is failed as interrupted, not stuck"
    );

    // And the server can be verified once it is a real one.
    let sshd = Sshd::start(&[&public_key]);
    api.call(reqwest::Method::PUT, &format!("/api/v1/servers/{server_id}"), Some(json!({"ssh_port": sshd.port}))).await;
    let (_, op) =
        api.call(reqwest::Method::POST, &format!("/api/v1/servers/{server_id}/verify"), Some(json!({}))).await;
    api.succeeded(op["data"]["id"].as_str().unwrap()).await;
    drop(restarted);
    let _ = std::fs::remove_dir_all(&dir);
}
