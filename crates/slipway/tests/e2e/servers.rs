//! End to end: the real binary and a real sshd on loopback. Register a server, authorise the
//! organization's key on it, verify it (host key pinned, OS found), then meet a different host
//! key and see the server refused and marked unreachable with the reason.

use crate::common;

use std::time::{Duration, Instant};

use common::{Api, Received, Server, owner, receiver, temp_data_dir};
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
    // Not let in yet: with --output json a failed verify prints one JSON document, the error,
    // carrying the operation.
    let refused = run(&["server", "verify", &id, "--output", "json"]);
    assert!(!refused.status.success());
    let document: Value =
        serde_json::from_slice(&refused.stdout).unwrap_or_else(|e| panic!("{e}: {:?}", text(&refused)));
    assert_eq!(document["operation"]["status"], "failed", "{document}");
    assert!(document["message"].as_str().unwrap().contains("failed"), "{document}");
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
}

/// A minimal SMTP server on loopback that accepts every message; returns its port and the
/// messages' DATA (headers and body) as received.
async fn smtp_sink() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mail = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let kept = mail.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let command = line.to_ascii_uppercase();
                    let answer: &[u8] = if command.starts_with("EHLO") || command.starts_with("HELO") {
                        b"250 sink\r\n"
                    } else if command.starts_with("DATA") {
                        let _ = write.write_all(b"354 go ahead\r\n").await;
                        let mut data = String::new();
                        while let Ok(Some(line)) = lines.next_line().await {
                            if line == "." {
                                break;
                            }
                            data.push_str(&line);
                            data.push('\n');
                        }
                        kept.lock().unwrap().push(data);
                        b"250 queued\r\n"
                    } else if command.starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        break;
                    } else {
                        b"250 ok\r\n"
                    };
                    let _ = write.write_all(answer).await;
                }
            });
        }
    });
    (port, mail)
}

/// `openssl dgst -sha256 -hmac KEY` of `text`, in hex: the check docs/api.md shows receivers.
fn hmac_by_openssl(key: &str, text: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    out.trim().rsplit(' ').next().unwrap().to_string()
}

/// Events reach channels for real: a server Slipway cannot reach makes `server.unreachable`
/// (and `operation.failed` for its verify), sent as signed webhooks retried after two 500s and
/// never after the 200, as Slack and Discord messages, folded when they repeat, never following a
/// redirect; private addresses are refused; and channels that all fail change nothing about a
/// verify that works.
// Two threads: the command line is run blocking, while the receivers answer on the runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_channels_signed_retried_folded_and_never_change_the_work() {
    let (port, seen) = receiver().await;
    let dir = temp_data_dir();
    let envs = [
        ("SLIPWAY_NOTIFICATION_ALLOWED_NETWORKS", "127.0.0.0/8"),
        ("SLIPWAY_NOTIFICATION_ALLOW_HTTP", "true"),
        ("SLIPWAY_NOTIFICATION_RETRY_BASE", "1s"),
    ];
    let slipway = Server::start(&dir, &envs).unwrap();
    let api = owner(&slipway).await;
    let post = |path: &str, body: Value| {
        let api = &api;
        let path = path.to_string();
        async move { api.call(reqwest::Method::POST, &path, Some(body)).await }
    };
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

    // Server-side request forgery: addresses outside the allowed ranges are refused.
    for bad in ["http://10.0.0.1/hook", "http://169.254.169.254/latest", "ftp://127.0.0.1/", "http://[::1]/"] {
        let (status, body) =
            post("/api/v1/notification-channels", json!({"name": "x", "kind": "webhook", "url": bad})).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(body["errors"]["url"][0].is_string(), "{body}");
    }
    let (status, body) = post(
        "/api/v1/notification-channels",
        json!({"name": "x", "kind": "webhook", "url": url("/"), "events": ["nope"]}),
    )
    .await;
    assert_eq!(status, 422, "{body}");

    let channel = |name: &str, kind: &str, path: &str, events: Value| json!({"name": name, "kind": kind, "url": url(path), "events": events});
    let (status, webhook) =
        post("/api/v1/notification-channels", channel("hook", "webhook", "/flaky", json!(["failures"]))).await;
    assert_eq!(status, 201, "{webhook}");
    let secret = webhook["data"]["signing_secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let webhook_id = webhook["data"]["id"].as_str().unwrap().to_string();
    let (_, shown) = api.call(reqwest::Method::GET, &format!("/api/v1/notification-channels/{webhook_id}"), None).await;
    assert!(shown["data"].get("signing_secret").is_none(), "the secret is shown once: {shown}");
    assert_eq!(shown["data"]["url_host"], "127.0.0.1");
    let (_, slack) =
        post("/api/v1/notification-channels", channel("slack", "slack", "/slack", json!(["server.unreachable"]))).await;
    let (_, discord) =
        post("/api/v1/notification-channels", channel("discord", "discord", "/discord", json!(["server.unreachable"])))
            .await;
    let (_, redirect) =
        post("/api/v1/notification-channels", channel("moved", "webhook", "/redirect", json!(["server.unreachable"])))
            .await;
    let slack_id = slack["data"]["id"].as_str().unwrap().to_string();

    // The test endpoint answers with what the receiver said.
    let (status, tested) = post(&format!("/api/v1/notification-channels/{slack_id}/test"), json!({})).await;
    if status != 200 {
        let log: Vec<String> = slipway.stderr.try_iter().collect();
        panic!("test answered {status}: {tested}\n{}", log.join("\n"));
    }
    assert_eq!(tested["data"]["status"].as_u64(), Some(200), "{tested}");

    // An email channel, added with the command line, tested, and listed.
    let (smtp_port, mail) = smtp_sink().await;
    let cli = |args: &[&str]| {
        let env = [("SLIPWAY_URL", api.url.as_str()), ("SLIPWAY_TOKEN", api.token.as_str())];
        let out = common::slipway(&dir, &env).args(args).output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let smtp_port_text = smtp_port.to_string();
    let (ok, out, err) = cli(&[
        "notify",
        "channel",
        "add",
        "mail",
        "--kind",
        "email",
        "--events",
        "server.unreachable",
        "--email-to",
        "ops@example.com",
        "--email-from",
        "slipway@example.com",
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &smtp_port_text,
        "--smtp-security",
        "none",
        "--output",
        "json",
    ]);
    assert!(ok, "{out}{err}");
    let mail_id = serde_json::from_str::<Value>(&out).unwrap()["id"].as_str().unwrap().to_string();
    let (ok, out, err) = cli(&["notify", "channel", "test", &mail_id]);
    assert!(ok && out.contains("delivered: the receiver answered 250"), "{out}{err}");
    assert!(mail.lock().unwrap()[0].contains("Subject: [Slipway] Test notification from Slipway to mail"));
    let (ok, out, _) = cli(&["notify", "channel", "list"]);
    assert!(ok && out.contains("mail") && out.contains("ops@example.com") && out.contains("127.0.0.1"), "{out}");
    let (ok, _, err) = cli(&["notify", "channel", "add", "bad", "--url", "http://10.1.2.3/"]);
    assert!(!ok && err.contains("not a public address"), "{err}");

    // A server nobody answers for: verify fails three times.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let body = json!({"name": "gone", "provider": "custom", "ip_address": "127.0.0.1", "ssh_port": closed_port});
    let (status, created) = post("/api/v1/servers", body).await;
    assert_eq!(status, 201, "{created}");
    let server_id = created["data"]["id"].as_str().unwrap().to_string();
    for _ in 0..3 {
        let (status, op) = post(&format!("/api/v1/servers/{server_id}/verify"), json!({})).await;
        assert_eq!(status, 202, "{op}");
        assert_eq!(api.finished(op["data"]["id"].as_str().unwrap()).await["status"], "failed");
    }

    let count = |path: &str, event: &str| {
        seen.lock().unwrap().iter().filter(|r| r.path == path && r.body.contains(event)).count()
    };
    common::eventually(Duration::from_secs(60), "three attempts of each delivery to /flaky", || async {
        count("/flaky", "\"server.unreachable\"") >= 3 && count("/flaky", "\"operation.failed\"") >= 9
    })
    .await;
    // The 200 ends it: no attempt after it (the next retry would have come within 4 s). A quiet
    // window, not a wait for a condition: what is checked is that nothing more arrives.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let flaky: Vec<Received> = seen.lock().unwrap().iter().filter(|r| r.path == "/flaky").cloned().collect();
    let unreachable: Vec<&Received> = flaky.iter().filter(|r| r.body.contains("\"server.unreachable\"")).collect();
    assert_eq!(unreachable.len(), 3, "two 500s and the 200, folded repeats not sent: {flaky:?}");
    let ids: std::collections::HashSet<&String> = unreachable.iter().map(|r| &r.headers["slipway-delivery"]).collect();
    assert_eq!(ids.len(), 1, "one delivery, attempted three times");
    for r in &flaky {
        let signature = &r.headers["slipway-signature"];
        let (t, v1) = signature.split_once(",v1=").unwrap();
        let t = t.strip_prefix("t=").unwrap();
        assert_eq!(v1, hmac_by_openssl(&secret, &format!("{t}.{}", r.body)), "signature of {}", r.body);
        assert_eq!(r.headers["content-type"], "application/json");
    }
    let event: Value = serde_json::from_str(&unreachable[0].body).unwrap();
    assert_eq!(event["type"], "server.unreachable");
    assert_eq!(event["resource"]["id"], server_id.as_str());
    assert_eq!(event["resource"]["url"], format!("{}/api/v1/servers/{server_id}", slipway.url));
    assert_eq!(event["resource"]["dashboard_url"], format!("{}/servers/{server_id}", slipway.url));
    assert!(event["summary"].as_str().unwrap().contains("gone cannot be reached"), "{event}");

    // The delivery log says what happened, and the repeats folded into it.
    let (_, deliveries) =
        api.call(reqwest::Method::GET, &format!("/api/v1/notification-channels/{webhook_id}/deliveries"), None).await;
    let delivery = deliveries["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["event_type"] == "server.unreachable")
        .unwrap()
        .clone();
    assert_eq!(
        (&delivery["status"], &delivery["attempts"], &delivery["response_code"], &delivery["repeats"]),
        (&json!("succeeded"), &json!(3), &json!(200), &json!(2)),
        "{delivery}"
    );

    // Slack and Discord got one message each, in their formats.
    let slack_bodies: Vec<Value> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == "/slack" && r.body.contains("reached"))
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(slack_bodies.len(), 1, "{slack_bodies:?}");
    let slack = &slack_bodies[0];
    assert!(slack["text"].as_str().unwrap().contains("gone cannot be reached"), "{slack}");
    assert_eq!(slack["blocks"][0]["type"], "section");
    assert_eq!(slack["blocks"][0]["text"]["type"], "mrkdwn");
    // People follow the link: it opens the server's page in the dashboard.
    let link = format!("<{}/servers/{server_id}|", slipway.url);
    assert!(slack["blocks"][0]["text"]["text"].as_str().unwrap().contains(&link), "{slack}");
    let discord_bodies: Vec<Value> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == "/discord")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(discord_bodies.len(), 1, "{discord_bodies:?}");
    let embed = &discord_bodies[0]["embeds"][0];
    assert!(embed["title"].as_str().unwrap().chars().count() <= 256, "{embed}");
    assert_eq!(discord_bodies[0]["allowed_mentions"]["parse"], json!([]));
    let discord_id = discord["data"]["id"].as_str().unwrap();
    let (_, deliveries) =
        api.call(reqwest::Method::GET, &format!("/api/v1/notification-channels/{discord_id}/deliveries"), None).await;
    assert_eq!(deliveries["data"][0]["status"], "succeeded", "Discord's 204 is a success: {deliveries}");

    // One email for the three identical failures, with the summary as its subject.
    let emails: Vec<String> =
        mail.lock().unwrap().iter().filter(|m| m.contains("cannot be reached")).cloned().collect();
    assert_eq!(emails.len(), 1, "{emails:?}");
    assert!(emails[0].contains("Subject: [Slipway] gone cannot be reached"), "{}", emails[0]);
    assert!(emails[0].contains("Event: server.unreachable"), "{}", emails[0]);
    let (ok, out, err) = cli(&["events", "--type", "server.unreachable", "--server", "gone"]);
    assert!(ok && out.lines().count() == 3 && out.contains("gone cannot be reached"), "{out}{err}");
    let (ok, out, err) = cli(&["notify", "channel", "deliveries", &mail_id]);
    assert!(ok && out.contains("server.unreachable") && out.contains("succeeded"), "{out}{err}");
    let (ok, _, err) = cli(&["notify", "channel", "remove", &mail_id]);
    assert!(ok, "{err}");

    // A redirect is not followed, and not retried.
    let redirect_id = redirect["data"]["id"].as_str().unwrap();
    let (_, deliveries) =
        api.call(reqwest::Method::GET, &format!("/api/v1/notification-channels/{redirect_id}/deliveries"), None).await;
    assert_eq!(deliveries["data"][0]["status"], "failed", "{deliveries}");
    assert!(deliveries["data"][0]["error"].as_str().unwrap().contains("redirects are not followed"));
    assert_eq!(seen.lock().unwrap().iter().filter(|r| r.path == "/followed").count(), 0);

    // Events are listed, filtered by type.
    let (_, events) = api.call(reqwest::Method::GET, "/api/v1/events?type=server.unreachable", None).await;
    assert_eq!(events["meta"]["total"], 3, "{events}");
    assert_eq!(events["data"][0]["resource"]["type"], "server");

    // Redelivery sends a finished delivery once more.
    let delivery_id = delivery["id"].as_str().unwrap();
    let (status, again) =
        post(&format!("/api/v1/notification-channels/{webhook_id}/deliveries/{delivery_id}/redeliver"), json!({}))
            .await;
    assert_eq!(status, 202, "{again}");
    common::eventually(Duration::from_secs(30), "the redelivery", || async {
        count("/flaky", "\"server.unreachable\"") >= 4
    })
    .await;

    // An organization token's creation and revocation are events too.
    let (_, orgs) = api.call(reqwest::Method::GET, "/api/v1/organizations", None).await;
    let org = orgs["data"][0]["id"].as_str().unwrap().to_string();
    let (status, token) = post(
        &format!("/api/v1/organizations/{org}/tokens"),
        json!({"name": "ci deploys", "abilities": ["site:deploy"]}),
    )
    .await;
    assert_eq!(status, 201, "{token}");
    let token_id = token["data"]["token"]["id"].as_str().unwrap_or_else(|| token["data"]["id"].as_str().unwrap());
    let (status, _) =
        api.call(reqwest::Method::DELETE, &format!("/api/v1/organizations/{org}/tokens/{token_id}"), None).await;
    assert_eq!(status, 204);
    for event_type in ["token.created", "token.revoked"] {
        let path = format!("/api/v1/events?type={event_type}&resource_id={token_id}");
        let events = common::eventually_some(
            Duration::from_millis(100),
            Duration::from_secs(10),
            &format!("a {event_type} event"),
            || async {
                let (_, events) = api.call(reqwest::Method::GET, &path, None).await;
                (events["meta"]["total"] == 1).then_some(events)
            },
        )
        .await;
        assert!(events["data"][0]["summary"].as_str().unwrap().contains("\"ci deploys\""), "{events}");
    }

    // Every channel fails now; a verify that works is not touched by it.
    for id in [&webhook_id, &slack_id] {
        let (status, _) = api.call(reqwest::Method::DELETE, &format!("/api/v1/notification-channels/{id}"), None).await;
        assert_eq!(status, 204);
    }
    for name in ["down", "down too"] {
        let (status, _) = post("/api/v1/notification-channels", channel(name, "webhook", "/down", json!(["*"]))).await;
        assert_eq!(status, 201);
    }
    let sshd = Sshd::start(&[]);
    let body = json!({"name": "here", "provider": "custom", "ip_address": "127.0.0.1", "ssh_port": sshd.port});
    let (_, here) = post("/api/v1/servers", body).await;
    sshd.authorize(&[here["data"]["authorization"]["public_key"].as_str().unwrap()]);
    let started = Instant::now();
    let (_, op) = post(&format!("/api/v1/servers/{}/verify", here["data"]["id"].as_str().unwrap()), json!({})).await;
    api.succeeded(op["data"]["id"].as_str().unwrap()).await;
    assert!(started.elapsed() < Duration::from_secs(30), "the verify waited for nothing");
}

/// kill -9 while deliveries are in flight: after the restart each is sent exactly once more (the
/// interrupted attempt again, same `Slipway-Delivery`) and recorded `succeeded`; none is lost.
#[tokio::test]
async fn deliveries_interrupted_by_kill_9_are_sent_once_more_after_restart() {
    let (port, seen) = receiver().await;
    let dir = temp_data_dir();
    let envs = [
        ("SLIPWAY_NOTIFICATION_ALLOWED_NETWORKS", "127.0.0.0/8"),
        ("SLIPWAY_NOTIFICATION_ALLOW_HTTP", "true"),
        ("SLIPWAY_JOB_LEASE_SECONDS", "2"),
    ];
    let slipway = Server::start(&dir, &envs).unwrap();
    let api = owner(&slipway).await;
    // Two channels, one event each: a channel's attempts run one at a time, so two in flight at
    // once take two channels.
    let url = format!("http://127.0.0.1:{port}/hang-once");
    let mut channel_ids = Vec::new();
    for (name, event) in [("hook", "server.unreachable"), ("hook two", "operation.failed")] {
        let (status, channel) = api
            .call(
                reqwest::Method::POST,
                "/api/v1/notification-channels",
                Some(json!({"name": name, "kind": "webhook", "url": url, "events": [event]})),
            )
            .await;
        assert_eq!(status, 201, "{channel}");
        channel_ids.push(channel["data"]["id"].as_str().unwrap().to_string());
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let body = json!({"name": "gone", "provider": "custom", "ip_address": "127.0.0.1", "ssh_port": closed_port});
    let (_, created) = api.call(reqwest::Method::POST, "/api/v1/servers", Some(body)).await;
    let server_id = created["data"]["id"].as_str().unwrap();
    let (_, op) =
        api.call(reqwest::Method::POST, &format!("/api/v1/servers/{server_id}/verify"), Some(json!({}))).await;
    api.finished(op["data"]["id"].as_str().unwrap()).await;

    // Both deliveries (server.unreachable, operation.failed) are waiting for an answer: kill -9.
    common::eventually(Duration::from_secs(30), "both deliveries in flight", || async {
        seen.lock().unwrap().len() >= 2
    })
    .await;
    drop(slipway);
    let restarted = Server::start(&dir, &envs).unwrap();
    let deliveries = |seen: &[Received]| {
        let mut by_id = std::collections::HashMap::<String, usize>::new();
        for r in seen {
            *by_id.entry(r.headers["slipway-delivery"].clone()).or_default() += 1;
        }
        by_id
    };
    common::eventually(Duration::from_secs(60), "each delivery sent again", || async {
        deliveries(&seen.lock().unwrap()).values().all(|n| *n >= 2)
    })
    .await;
    // Nothing more comes (a quiet window): each was sent exactly once more.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let counts = deliveries(&seen.lock().unwrap());
    assert_eq!((counts.len(), counts.values().all(|n| *n == 2)), (2, true), "{counts:?}");
    let api = Api { url: restarted.url.clone(), token: api.token.clone() };
    for channel_id in &channel_ids {
        let path = format!("/api/v1/notification-channels/{channel_id}/deliveries");
        let (_, log) = api.call(reqwest::Method::GET, &path, None).await;
        assert_eq!(log["data"].as_array().unwrap().len(), 1, "{log}");
        for d in log["data"].as_array().unwrap() {
            assert_eq!((&d["status"], &d["attempts"]), (&json!("succeeded"), &json!(1)), "{d}");
        }
    }
}
