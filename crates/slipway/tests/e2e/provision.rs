//! Provisioning for real, end to end: the real binary, a test host in a network namespace of
//! its own (so the firewall that provisioning enables filters only that host's traffic), real
//! apt, nginx, nftables, sshd. The host shares this machine's files, so these tests run one at
//! a time (nextest group `provisioning`); the packages they need are installed beforehand by
//! `scripts/install-test-deps`, because the namespace has no route to a mirror.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Api, Server, owner, temp_data_dir};
use reqwest::Method;
use serde_json::{Value, json};
use slipway_remote::testing::NetnsHost;

/// These tests poll operations often; the per-token API limit is not what they test.
const UNLIMITED: (&str, &str) = ("SLIPWAY_RATE_LIMIT_API", "1000000");

/// Creates a server in Slipway for `address` and returns its id and Slipway's public key.
async fn register(api: &Api, address: &str, extra: Value) -> (String, String) {
    let mut body = json!({"name": "netns", "provider": "custom", "ip_address": address, "ssh_port": 22});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let (status, created) = api.call(Method::POST, "/api/v1/servers", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    (
        created["data"]["id"].as_str().unwrap().to_string(),
        created["data"]["authorization"]["public_key"].as_str().unwrap().to_string(),
    )
}

/// Starts an operation with `POST path` and waits for it to end.
async fn operate(api: &Api, path: &str, body: Value) -> Value {
    let (status, op) = api.call(Method::POST, path, Some(body)).await;
    assert_eq!(status, 202, "{path}: {op}");
    api.finished_within(op["data"]["id"].as_str().unwrap(), Duration::from_secs(180)).await
}

/// Waits for an operation a create/delete response named.
async fn applied(api: &Api, response: &Value) {
    let id = response["data"]["operation_id"].as_str().unwrap_or_else(|| panic!("no operation in {response}"));
    let op = api.finished(id).await;
    assert_eq!(op["status"], "succeeded", "{op}");
}

async fn log_of(api: &Api, op_id: &str) -> String {
    let (_, log) = api.call(Method::GET, &format!("/api/v1/operations/{op_id}/log?per_page=100"), None).await;
    log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn keypair(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap().trim().to_string();
    (path, public)
}

/// Whether `ssh` with this key logs in to the host as the deploy user.
fn logs_in(host: &NetnsHost, key: &Path) -> bool {
    Command::new("ssh")
        .args(["-i"])
        .arg(key)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg(format!("slipway@{}", host.address))
        .arg("test \"$(id -un)\" = slipway")
        .status()
        .unwrap()
        .success()
}

/// The body of `http://address:port/`, or `None` when nothing answers within 2 s.
async fn fetch(address: &str, port: u16) -> Option<String> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let response = client.get(format!("http://{address}:{port}/")).send().await.ok()?;
    response.text().await.ok()
}

/// A running Slipway with its owner signed in, and a test host it has provisioned.
struct Provisioned {
    slipway: Server,
    api: Api,
    server_id: String,
    host: NetnsHost,
    /// Last: removed once the server has stopped.
    dir: common::TempDataDir,
}

async fn provisioned() -> Provisioned {
    common::clean_test_host_files();
    let dir = temp_data_dir();
    // The watch of cron jobs and programs reads them every 2 s, so their failures are reported
    // while the test looks.
    let slipway = Server::start(&dir, &[UNLIMITED, ("SLIPWAY_PROCESS_CHECK_INTERVAL", "2s")]).unwrap();
    let api = owner(&slipway).await;
    let (server_id, slipway_key) = register(&api, "192.0.2.1", json!({})).await;
    let host = NetnsHost::start(&[&slipway_key]);
    let server_path = format!("/api/v1/servers/{server_id}");
    let (status, _) = api.call(Method::PUT, &server_path, Some(json!({"ip_address": host.address}))).await;
    assert_eq!(status, 200);
    let op = operate(&api, &format!("{server_path}/provision"), json!({})).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    Provisioned { dir, slipway, api, server_id, host }
}

/// The events of `event_type` about resource `resource_id`, newest first.
async fn events(api: &Api, event_type: &str, resource_id: &str) -> Vec<Value> {
    let (status, reply) =
        api.call(Method::GET, &format!("/api/v1/events?type={event_type}&resource_id={resource_id}"), None).await;
    assert_eq!(status, 200, "{reply}");
    reply["data"].as_array().unwrap().clone()
}

/// Runs the command-line client against `api`: whether it succeeded, its stdout and its stderr.
fn cli<'a>(dir: &'a Path, api: &'a Api) -> impl Fn(&[&str]) -> (bool, String, String) + 'a {
    move |args| {
        let env = [("SLIPWAY_URL", api.url.as_str()), ("SLIPWAY_TOKEN", api.token.as_str())];
        let out = common::slipway(dir, &env).args(args).output().unwrap();
        let text =
            (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        (out.status.success(), text.0, text.1)
    }
}

#[tokio::test]
async fn a_server_is_provisioned_for_real_and_its_keys_rules_and_services_are_managed() {
    common::clean_test_host_files();
    let dir = temp_data_dir();
    let slipway = Server::start(&dir, &[UNLIMITED]).unwrap();
    let api = owner(&slipway).await;
    let pwned = dir.join("pwned");
    let (server_id, slipway_key) = {
        // The address is known only once the host exists, and the host must trust Slipway's key.
        let (id, key) = register(&api, "192.0.2.1", json!({"php_version": "8.2"})).await;
        (id, key)
    };
    let host = NetnsHost::start(&[&slipway_key]);
    let (status, _) =
        api.call(Method::PUT, &format!("/api/v1/servers/{server_id}"), Some(json!({"ip_address": host.address}))).await;
    assert_eq!(status, 200);
    let server_path = format!("/api/v1/servers/{server_id}");

    // A key added before provisioning waits for it.
    let (first_key, first_public) = keypair(&dir, "first");
    let (status, first) = api
        .call(
            Method::POST,
            &format!("{server_path}/ssh-keys"),
            Some(json!({"name": "first", "public_key": first_public})),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["data"]["status"], "installing");
    assert!(first["data"]["operation_id"].is_null(), "nothing to apply before provisioning: {first}");

    let op = operate(&api, &format!("{server_path}/provision"), json!({})).await;
    let log = log_of(&api, op["id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}\n{log}");
    assert!(log.contains("==> creating the deploy user slipway") && log.contains("firewall rules applied"), "{log}");
    let (_, server) = api.call(Method::GET, &server_path, None).await;
    assert_eq!(server["data"]["status"], "active", "{server}");
    assert!(server["data"]["provisioned_at"].is_string());
    assert!(server["data"]["os"].as_str().unwrap().starts_with("debian"), "{server}");

    // nginx answers with the default site; PHP-FPM runs; the deploy user exists and the key
    // added earlier logs in as it.
    let page = fetch(&host.address, 80).await.expect("nginx answers on port 80");
    assert!(page.contains("managed by Slipway"), "{page}");
    assert!(host.exec(&["pgrep", "-x", "php-fpm8.2"]).status.success(), "php8.2-fpm runs");
    assert!(Command::new("id").arg("slipway").output().unwrap().status.success(), "the deploy user exists");
    assert!(logs_in(&host, &first_key), "the key added before provisioning logs in");
    let (_, listed) = api.call(Method::GET, &format!("{server_path}/ssh-keys"), None).await;
    assert_eq!(listed["data"][0]["status"], "installed", "{listed}");

    // A second key logs in once added; the first no longer does once deleted.
    let (second_key, second_public) = keypair(&dir, "second");
    let (_, second) = api
        .call(
            Method::POST,
            &format!("{server_path}/ssh-keys"),
            Some(json!({"name": "second", "public_key": second_public})),
        )
        .await;
    applied(&api, &second).await;
    assert!(logs_in(&host, &second_key));
    let (status, deleted) = api
        .call(Method::DELETE, &format!("{server_path}/ssh-keys/{}", first["data"]["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(status, 202, "{deleted}");
    assert_eq!(deleted["data"]["status"], "removing");
    applied(&api, &deleted).await;
    assert!(!logs_in(&host, &first_key), "a deleted key no longer logs in");
    assert!(logs_in(&host, &second_key), "the other key still does");
    let (_, listed) = api.call(Method::GET, &format!("{server_path}/ssh-keys"), None).await;
    assert_eq!(listed["meta"]["total"], 1, "{listed}");

    // Invalid or hostile keys are refused; a hostile name is stored but never reaches the server.
    let hostile_name = format!("'; touch {}; echo '", pwned.display());
    for bad in [
        "ssh-ed25519 not-base64!".to_string(),
        format!("command=\"touch {}\" {second_public}", pwned.display()),
        format!("{second_public}\nssh-ed25519 AAAA"),
        "ssh-dss AAAAB3NzaC1kc3M=".to_string(),
    ] {
        let (status, reply) = api
            .call(Method::POST, &format!("{server_path}/ssh-keys"), Some(json!({"name": "bad", "public_key": bad})))
            .await;
        assert_eq!(status, 422, "{bad}: {reply}");
        assert!(reply["errors"]["public_key"].is_array(), "{reply}");
    }
    let (third_key, third_public) = keypair(&dir, "third");
    let with_comment = format!("{third_public} $(touch {})", pwned.display());
    let (status, third) = api
        .call(
            Method::POST,
            &format!("{server_path}/ssh-keys"),
            Some(json!({"name": hostile_name, "public_key": with_comment})),
        )
        .await;
    assert_eq!(status, 201, "{third}");
    applied(&api, &third).await;
    assert!(logs_in(&host, &third_key));
    let authorized = std::fs::read_to_string("/home/slipway/.ssh/authorized_keys").unwrap();
    assert!(
        !authorized.contains("touch") && !authorized.contains("third"),
        "only key data and Slipway's marker: {authorized}"
    );

    // Firewall: port 80 answers; a deny rule closes it (SSH still works); deleting reopens it.
    let (status, reply) = api
        .call(
            Method::POST,
            &format!("{server_path}/network-rules"),
            Some(json!({"name": "no ssh", "port": 22, "action": "deny"})),
        )
        .await;
    assert_eq!(status, 422, "{reply}");
    assert!(reply["errors"]["port"][0].as_str().unwrap().contains("block SSH"), "{reply}");
    for (field, body) in [
        ("port", json!({"name": "x", "port": "80; reboot"})),
        ("port", json!({"name": "x", "port": 70000})),
        ("from", json!({"name": "x", "port": 80, "from": format!("1.2.3.4; touch {}", pwned.display())})),
        ("from", json!({"name": "x", "port": 80, "from": "10.0.0.1/8"})),
    ] {
        let (status, reply) = api.call(Method::POST, &format!("{server_path}/network-rules"), Some(body)).await;
        assert_eq!(status, 422, "{reply}");
        assert!(reply["errors"][field].is_array(), "{reply}");
    }
    assert!(fetch(&host.address, 80).await.is_some());
    let (status, deny) = api
        .call(
            Method::POST,
            &format!("{server_path}/network-rules"),
            Some(json!({"name": "close web", "port": 80, "action": "deny"})),
        )
        .await;
    assert_eq!(status, 201, "{deny}");
    applied(&api, &deny).await;
    assert!(fetch(&host.address, 80).await.is_none(), "the deny rule blocks port 80");
    assert!(logs_in(&host, &second_key), "SSH stays open");
    let (_, removed) = api
        .call(Method::DELETE, &format!("{server_path}/network-rules/{}", deny["data"]["id"].as_str().unwrap()), None)
        .await;
    applied(&api, &removed).await;
    assert!(fetch(&host.address, 80).await.is_some(), "deleting the rule restores access");

    // A port nothing allows is dropped until an allow rule from this machine's address opens it.
    let mut listener = Command::new("ip")
        .args(["netns", "exec", &host.name, "python3", "-m", "http.server", "8081", "--bind", &host.address])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let inside = Instant::now() + Duration::from_secs(10);
    while !host.exec(&["curl", "-s", "-o", "/dev/null", &format!("http://{}:8081/", host.address)]).status.success() {
        assert!(Instant::now() < inside, "the test listener did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(fetch(&host.address, 8081).await.is_none(), "closed by default");
    let (_, allow) = api
        .call(
            Method::POST,
            &format!("{server_path}/network-rules"),
            Some(json!({"name": "from here", "port": "8081", "from": format!("{}/32", host.gateway)})),
        )
        .await;
    applied(&api, &allow).await;
    assert!(fetch(&host.address, 8081).await.is_some(), "the allow rule opens it");
    let _ = listener.kill();
    let _ = listener.wait();

    // Restarting a service, and a reboot (the host's reboot is a harmless stand-in).
    let (status, reply) =
        api.call(Method::POST, &format!("{server_path}/restart"), Some(json!({"services": ["nginx; reboot"]}))).await;
    assert_eq!(status, 422, "{reply}");
    let (status, reply) =
        api.call(Method::POST, &format!("{server_path}/restart"), Some(json!({"services": ["database"]}))).await;
    assert_eq!(status, 422, "the server has no database: {reply}");
    let op = operate(&api, &format!("{server_path}/restart"), json!({"services": ["nginx", "php-fpm"]})).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert!(fetch(&host.address, 80).await.is_some(), "nginx is back after its restart");
    assert!(host.power_calls().is_empty());
    let op = operate(&api, &format!("{server_path}/restart"), json!({"reboot": true})).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let until = Instant::now() + Duration::from_secs(10);
    while !host.power_calls().contains("reboot") {
        assert!(Instant::now() < until, "the reboot was not requested: {:?}", host.power_calls());
        std::thread::sleep(Duration::from_millis(100));
    }

    // Provisioning again is safe: same result, keys and rules still in force.
    let op = operate(&api, &format!("{server_path}/provision"), json!({})).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert!(logs_in(&host, &second_key) && !logs_in(&host, &first_key));
    assert!(fetch(&host.address, 80).await.unwrap().contains("managed by Slipway"));
    assert!(!pwned.exists(), "no hostile value ran anywhere");

    drop(host);
    drop(slipway);
}

#[tokio::test]
async fn an_unsupported_operating_system_fails_with_the_reason() {
    common::clean_test_host_files();
    let dir = temp_data_dir();
    let slipway = Server::start(&dir, &[UNLIMITED]).unwrap();
    let api = owner(&slipway).await;
    let (server_id, key) = register(&api, "192.0.2.1", json!({})).await;
    let host = NetnsHost::start_as(&[&key], Some("ID=centos\nVERSION_ID=\"7\"\nPRETTY_NAME=\"CentOS Linux 7\"\n"));
    api.call(Method::PUT, &format!("/api/v1/servers/{server_id}"), Some(json!({"ip_address": host.address}))).await;
    let op = operate(&api, &format!("/api/v1/servers/{server_id}/provision"), json!({})).await;
    assert_eq!(op["status"], "failed");
    let reason = op["failure_reason"].as_str().unwrap();
    assert!(reason.contains("unsupported operating system: centos 7") && reason.contains("debian 12"), "{reason}");
    let (_, server) = api.call(Method::GET, &format!("/api/v1/servers/{server_id}"), None).await;
    assert_eq!(
        (server["data"]["status"].as_str(), server["data"]["status_reason"].as_str()),
        (Some("failed"), Some(reason))
    );
    drop(host);
    drop(slipway);
}

#[tokio::test]
async fn provisioning_interrupted_by_kill_9_is_completed_after_restart() {
    common::clean_test_host_files();
    let dir = temp_data_dir();
    let lease = [("SLIPWAY_JOB_LEASE_SECONDS", "2"), UNLIMITED];
    let mut slipway = Server::start(&dir, &lease).unwrap();
    let api = owner(&slipway).await;
    let (server_id, key) = register(&api, "192.0.2.1", json!({})).await;
    let host = NetnsHost::start(&[&key]);
    api.call(Method::PUT, &format!("/api/v1/servers/{server_id}"), Some(json!({"ip_address": host.address}))).await;
    let (_, op) = api.call(Method::POST, &format!("/api/v1/servers/{server_id}/provision"), Some(json!({}))).await;
    let op_id = op["data"]["id"].as_str().unwrap().to_string();

    // Kill Slipway once the script is running on the server.
    let running = || async { log_of(&api, &op_id).await.contains("==> ") };
    common::eventually(Duration::from_secs(60), "provisioning started", running).await;
    let (_, server) = api.call(Method::GET, &format!("/api/v1/servers/{server_id}"), None).await;
    assert_eq!(server["data"]["status"], "provisioning");
    Command::new("kill").args(["-KILL", &slipway.child.id().to_string()]).status().unwrap();
    let _ = slipway.child.wait();
    drop(slipway);

    let restarted = Server::start(&dir, &lease).unwrap();
    let api = Api { url: restarted.url.clone(), token: api.token.clone() };
    let op = api.finished_within(&op_id, Duration::from_secs(180)).await;
    assert_eq!(op["status"], "succeeded", "idempotent provisioning is run again: {op}");
    assert!(op["attempts"].as_i64().unwrap() >= 2, "{op}");
    let (_, server) = api.call(Method::GET, &format!("/api/v1/servers/{server_id}"), None).await;
    assert_eq!(server["data"]["status"], "active", "{server}");
    assert!(fetch(&host.address, 80).await.is_some());
    drop(host);
    drop(restarted);
}

async fn data_of(api: &Api, path: &str) -> Value {
    api.call(Method::GET, path, None).await.1["data"].clone()
}

/// Waits for each operation to be running its `attempt`th attempt.
async fn running_again(api: &Api, ops: &[&str], attempt: i64) {
    for op in ops {
        let again = || async {
            let op = data_of(api, &format!("/api/v1/operations/{op}")).await;
            op["status"] == "running" && op["attempts"] == attempt
        };
        common::eventually(Duration::from_secs(60), "the operation runs again", again).await;
    }
}

/// A shutdown is not a failure of the work it stops. Work that runs again (provisioning, a
/// site's setup, an item sync) is stopped on the server, stays queued with what it works on
/// still waiting (no `failed`, no "cancelled", no `server.provision_failed`), and completes
/// when Slipway starts again.
#[tokio::test]
async fn work_a_shutdown_stops_waits_for_the_next_start_and_then_completes() {
    common::clean_test_host_files();
    let dir = temp_data_dir();
    let mut slipway = Server::start(&dir, &[UNLIMITED]).unwrap();
    let api = owner(&slipway).await;
    let (server_id, key) = register(&api, "192.0.2.1", json!({})).await;
    let host = NetnsHost::start_with(&[&key], None, &["/usr/bin/apt-get", "/usr/sbin/nginx"]);
    let server_path = format!("/api/v1/servers/{server_id}");
    api.call(Method::PUT, &server_path, Some(json!({"ip_address": host.address}))).await;
    // Waits until `hung` programs hang on the server (a hung program sleeps).
    let hanging = |hung: usize| {
        let host = &host;
        async move {
            let hanging = || async { host.processes_named("sleep") >= hung };
            common::eventually(Duration::from_secs(60), "the work hangs on the server", hanging).await;
        }
    };
    // Stops Slipway while `hung` programs hang on the server, then starts it again.
    let restart = |slipway: Server, hung: usize| {
        let host = &host;
        let dir = &dir;
        async move {
            hanging(hung).await;
            let (status, _) = slipway.terminate();
            assert!(status.success(), "{status:?}");
            // Stopped there too: nothing of it runs on when Slipway is gone.
            let ended = || async { host.processes_named("sleep") == 0 };
            common::eventually(Duration::from_secs(10), "the stopped work ended on the server", ended).await;
            Server::start(dir, &[UNLIMITED]).unwrap()
        }
    };

    // Provisioning, stopped while apt-get hangs.
    host.hang("apt-get", true);
    let (_, op) = api.call(Method::POST, &format!("{server_path}/provision"), Some(json!({}))).await;
    let provisioning = op["data"]["id"].as_str().unwrap().to_string();
    slipway = restart(slipway, 1).await;
    let api = Api { url: slipway.url.clone(), token: api.token.clone() };
    running_again(&api, &[&provisioning], 2).await;
    let server = data_of(&api, &server_path).await;
    assert_eq!((server["status"].as_str(), server["status_reason"].as_str()), (Some("provisioning"), None), "{server}");
    assert!(events(&api, "server.provision_failed", &server_id).await.is_empty(), "a shutdown is not a failure");
    let log = log_of(&api, &provisioning).await;
    assert!(log.contains(slipway_jobs::RESUMES_LINE), "{log}");
    // Let go only once the next attempt hangs too, so that the next stop finds it hanging.
    hanging(1).await;
    host.hang("apt-get", false);
    slipway = restart(slipway, 1).await;
    let api = Api { url: slipway.url.clone(), token: api.token.clone() };
    let op = api.finished_within(&provisioning, Duration::from_secs(180)).await;
    assert_eq!((op["status"].as_str(), op["attempts"].as_i64()), (Some("succeeded"), Some(3)), "{op}");
    assert_eq!(data_of(&api, &server_path).await["status"], "active");

    // A new site's setup and a redirect's sync, stopped while nginx hangs.
    let sites = format!("{server_path}/sites");
    let static_site = |domain: &str| Some(json!({"domain": domain, "project_type": "static"}));
    let (status, first) = api.call(Method::POST, &sites, static_site("first.example.com")).await;
    assert_eq!(status, 201, "{first}");
    applied(&api, &first).await;
    let first = format!("{server_path}/sites/{}", first["data"]["id"].as_str().unwrap());
    host.hang("nginx", true);
    let (status, second) = api.call(Method::POST, &sites, static_site("second.example.com")).await;
    assert_eq!(status, 201, "{second}");
    let (status, redirect) =
        api.call(Method::POST, &format!("{first}/redirects"), Some(json!({"from": "/old", "to": "/new"}))).await;
    assert_eq!(status, 201, "{redirect}");
    let ops: Vec<String> =
        [&second, &redirect].iter().map(|r| r["data"]["operation_id"].as_str().unwrap().to_string()).collect();
    let second = format!("{server_path}/sites/{}", second["data"]["id"].as_str().unwrap());
    let redirect = format!("{first}/redirects/{}", redirect["data"]["id"].as_str().unwrap());
    slipway = restart(slipway, 2).await;
    let api = Api { url: slipway.url.clone(), token: api.token.clone() };
    running_again(&api, &[&ops[0], &ops[1]], 2).await;
    for path in [&second, &redirect] {
        let waiting = data_of(&api, path).await;
        assert_eq!(
            (waiting["status"].as_str(), waiting["status_reason"].as_str()),
            (Some("installing"), None),
            "{waiting}"
        );
    }
    hanging(2).await;
    host.hang("nginx", false);
    slipway = restart(slipway, 2).await;
    let api = Api { url: slipway.url.clone(), token: api.token.clone() };
    for op in &ops {
        let op = api.finished_within(op, Duration::from_secs(60)).await;
        assert_eq!(op["status"], "succeeded", "{op}");
    }
    for path in [&second, &redirect] {
        assert_eq!(data_of(&api, path).await["status"], "installed");
    }
    drop(host);
    drop(slipway);
}

#[tokio::test]
async fn the_cli_provisions_a_server_and_manages_its_keys_and_rules() {
    common::clean_test_host_files();
    let dir = temp_data_dir();
    let slipway = Server::start(&dir, &[UNLIMITED]).unwrap();
    let api = owner(&slipway).await;
    let run = cli(&dir, &api);

    let (ok, out, err) =
        run(&["server", "create", "cli-netns", "--ip", "192.0.2.1", "--php", "8.2", "--output", "json"]);
    assert!(ok, "{out}{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let host = NetnsHost::start(&[created["authorization"]["public_key"].as_str().unwrap()]);
    api.call(Method::PUT, &format!("/api/v1/servers/{id}"), Some(json!({"ip_address": host.address}))).await;

    let (ok, out, err) = run(&["server", "provision", &id]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("==> configuring nginx") && out.contains("status: active"), "the log is streamed: {out}");

    let (key, _) = keypair(&dir, "cli");
    let pub_file = key.with_extension("pub");
    let (ok, out, err) = run(&["ssh-key", "add", &id, "cli key", "--file", pub_file.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(logs_in(&host, &key));
    let (_, listed, _) = run(&["ssh-key", "list", &id]);
    assert!(listed.contains("cli key") && listed.contains("installed"), "{listed}");

    let (ok, _, err) = run(&["network-rule", "add", &id, "lockout", "--port", "22", "--deny"]);
    assert!(!ok && err.contains("block SSH"), "{err}");
    let (ok, out, err) = run(&["network-rule", "add", &id, "no web", "--port", "80", "--deny", "--output", "json"]);
    assert!(ok, "{out}{err}");
    assert!(fetch(&host.address, 80).await.is_none());
    let rule: Value = serde_json::from_str(&out).unwrap();
    let (_, listed, _) = run(&["network-rule", "list", &id]);
    assert!(listed.contains("no web") && listed.contains("deny"), "{listed}");
    let (ok, out, err) = run(&["network-rule", "delete", &id, rule["id"].as_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(fetch(&host.address, 80).await.is_some());

    // Daemons: created by name of the server, listed with their live status, their log read,
    // restarted and deleted; a missing daemon and a bad value say what to fix.
    let marker = format!("sleep 5{}.5", std::process::id() % 1000);
    let command = format!("echo hello from the daemon; exec {marker}");
    let (ok, out, err) =
        run(&["daemon", "create", "cli-netns", "--command", &command, "--name", "hello", "--output", "json"]);
    assert!(ok, "{out}{err}");
    let daemon: Value = serde_json::from_str(&out).unwrap();
    let daemon_id = daemon["id"].as_str().unwrap().to_string();
    common::eventually(Duration::from_secs(20), "the CLI lists the daemon running", || async {
        let (_, listed, _) = run(&["daemon", "list", "cli-netns"]);
        listed.contains("hello") && listed.contains("running")
    })
    .await;
    let (ok, out, err) = run(&["daemon", "log", "cli-netns", &daemon_id, "--lines", "5"]);
    assert!(ok && out.contains("hello from the daemon"), "{out}{err}");
    let (ok, out, err) = run(&["daemon", "restart", "cli-netns", &daemon_id]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(&["daemon", "show", "cli-netns", &daemon_id]);
    assert!(ok && out.contains("Command") && out.contains(&marker), "{out}{err}");
    let (ok, _, err) = run(&["daemon", "create", "cli-netns", "--command", "true", "--processes", "99"]);
    assert!(!ok && err.contains("processes"), "{err}");
    let (ok, _, err) = run(&["daemon", "show", "cli-netns", "01NOSUCHDAEMON"]);
    assert!(!ok && err.contains("No daemon \"01NOSUCHDAEMON\""), "{err}");
    let (ok, out, err) = run(&["daemon", "delete", "cli-netns", &daemon_id]);
    assert!(ok, "{out}{err}");
    assert!(pids_of(&marker).is_empty(), "the deleted daemon's process is gone");

    let (ok, out, err) = run(&["server", "restart", &id, "--service", "nginx"]);
    assert!(ok, "{out}{err}");
    let (ok, _, err) = run(&["server", "restart", &id, "--service", "database"]);
    assert!(!ok && err.contains("no database"), "{err}");
    let (_, logs, _) = run(&["server", "logs", &id]);
    for kind in ["server.provision", "server.sync-ssh-keys", "server.sync-network-rules", "server.restart"] {
        assert!(logs.contains(kind), "{kind} in {logs}");
    }
    drop(host);
    drop(slipway);
}

#[tokio::test]
async fn unreachable_servers_stalled_commands_and_dropped_connections_fail_with_a_reason_in_time() {
    common::clean_test_host_files();
    let dir = temp_data_dir();
    let timeouts = [UNLIMITED, ("SLIPWAY_SSH_CONNECT_TIMEOUT_SECONDS", "2"), ("SLIPWAY_COMMAND_IDLE_SECONDS", "3")];
    let slipway = Server::start(&dir, &timeouts).unwrap();
    let api = owner(&slipway).await;

    // A peer that accepts TCP and never speaks: the connect timeout ends the wait.
    let (silent_port, _held) = common::silent_peer().await;
    let (mute, _) = register(&api, "127.0.0.1", json!({"ssh_port": silent_port})).await;
    let started = Instant::now();
    let op = operate(&api, &format!("/api/v1/servers/{mute}/verify"), json!({})).await;
    assert_eq!(op["status"], "failed");
    assert!(op["failure_reason"].as_str().unwrap().contains("no answer within 2s"), "{op}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let (_, server) = api.call(Method::GET, &format!("/api/v1/servers/{mute}"), None).await;
    assert_eq!(server["data"]["status"], "unreachable");

    let (server_id, key) = register(&api, "192.0.2.1", json!({})).await;
    let host = NetnsHost::start_with(&[&key], None, &["/usr/bin/apt-get", "/usr/sbin/service"]);
    api.call(Method::PUT, &format!("/api/v1/servers/{server_id}"), Some(json!({"ip_address": host.address}))).await;
    let server_path = format!("/api/v1/servers/{server_id}");
    // First unreachable (as after a verify before its SSH was up), then where it answers: the
    // provisioning below still reads provisioning, and then failed, not what the connection
    // that found it reachable again would have made it.
    let silent = json!({"ip_address": "127.0.0.1", "ssh_port": silent_port});
    assert_eq!(api.call(Method::PUT, &server_path, Some(silent)).await.0, 200);
    assert_eq!(operate(&api, &format!("{server_path}/verify"), json!({})).await["status"], "failed");
    let back = json!({"ip_address": host.address, "ssh_port": 22});
    assert_eq!(api.call(Method::PUT, &server_path, Some(back)).await.0, 200);

    // A command that stalls (apt-get hangs, printing nothing) is stopped after the idle timeout,
    // with its processes on the server.
    host.hang("apt-get", true);
    let started = Instant::now();
    let op = operate(&api, &format!("{server_path}/provision"), json!({})).await;
    assert_eq!(op["status"], "failed", "{op}");
    assert!(op["failure_reason"].as_str().unwrap().contains("no output and no exit within 3s"), "{op}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    let (_, server) = api.call(Method::GET, &server_path, None).await;
    assert_eq!(server["data"]["status"], "failed", "{server}");
    assert!(server["data"]["status_reason"].as_str().unwrap().contains("no output"), "{server}");
    // Verifying it (it answers) does not hide that provisioning failed, nor why.
    let op = operate(&api, &format!("{server_path}/verify"), json!({})).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let (_, server) = api.call(Method::GET, &server_path, None).await;
    assert_eq!(server["data"]["status"], "failed", "{server}");
    assert!(server["data"]["status_reason"].as_str().unwrap().contains("no output"), "{server}");
    let until = Instant::now() + Duration::from_secs(5);
    while host.processes_named("sleep") > 0 {
        assert!(Instant::now() < until, "the stalled command was left running");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Once apt works again, provisioning completes.
    host.hang("apt-get", false);
    let op = operate(&api, &format!("{server_path}/provision"), json!({})).await;
    assert_eq!(op["status"], "succeeded", "{op}");

    // A connection that drops mid-command (restarts are not retried) fails with the reason.
    host.hang("service", true);
    let (_, op) = api.call(Method::POST, &format!("{server_path}/restart"), Some(json!({"services": ["nginx"]}))).await;
    let op_id = op["data"]["id"].as_str().unwrap().to_string();
    let restarting = || async { log_of(&api, &op_id).await.contains("==> restarting nginx") };
    common::eventually(Duration::from_secs(30), "the restart started", restarting).await;
    host.drop_sessions();
    let started = Instant::now();
    let op = api.finished_within(&op_id, Duration::from_secs(60)).await;
    assert_eq!(op["status"], "failed", "{op}");
    let reason = op["failure_reason"].as_str().unwrap();
    assert!(reason.contains("connection dropped") || reason.contains("ended by a signal"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    host.hang("service", false);

    // The provisioned server can no longer be reached (it now answers nothing): an item added
    // meanwhile says why, instead of staying `installing` for good.
    let moved = json!({"ip_address": "127.0.0.1", "ssh_port": silent_port});
    let (status, reply) = api.call(Method::PUT, &server_path, Some(moved)).await;
    assert_eq!(status, 200, "{reply}");
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgjfV5Zf0tGxJ+R1zQvq3YpJkGk0r1k3D7mJ0m8n9Qb late";
    let (status, added) = api
        .call(Method::POST, &format!("{server_path}/ssh-keys"), Some(json!({"name": "late", "public_key": key})))
        .await;
    assert_eq!(status, 201, "{added}");
    let item_path = format!("{server_path}/ssh-keys/{}", added["data"]["id"].as_str().unwrap());
    let settled = || async { api.call(Method::GET, &item_path, None).await.1["data"]["status"] != "installing" };
    common::eventually(Duration::from_secs(30), "the key's sync ended", settled).await;
    let (_, item) = api.call(Method::GET, &item_path, None).await;
    assert_eq!(item["data"]["status"], "failed", "{item}");
    assert!(item["data"]["status_reason"].as_str().unwrap().contains("no answer within 2s"), "{item}");
    let (_, server) = api.call(Method::GET, &server_path, None).await;
    assert_eq!(server["data"]["status"], "unreachable", "{server}");

    // Back where it answers: the next sync applies the key that failed, and the server reads
    // active again without anyone verifying it.
    let back = json!({"ip_address": host.address, "ssh_port": 22});
    assert_eq!(api.call(Method::PUT, &server_path, Some(back)).await.0, 200);
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPxRsbkAjSdx6QMa5Z9GkJm/bj6RhvpnTaFodNLAB6r5 back";
    let (status, again) = api
        .call(Method::POST, &format!("{server_path}/ssh-keys"), Some(json!({"name": "back", "public_key": key})))
        .await;
    assert_eq!(status, 201, "{again}");
    applied(&api, &again).await;
    let (_, item) = api.call(Method::GET, &item_path, None).await;
    assert_eq!((item["data"]["status"].as_str(), item["data"]["status_reason"].as_str()), (Some("installed"), None));
    let (_, server) = api.call(Method::GET, &server_path, None).await;
    assert_eq!((server["data"]["status"].as_str(), server["data"]["status_reason"].as_str()), (Some("active"), None));

    drop(host);
    drop(slipway);
}

/// The pids of processes whose command line holds `marker`, as this machine sees them.
fn pids_of(marker: &str) -> Vec<u32> {
    let out = Command::new("pgrep").args(["-f", marker]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

#[tokio::test]
async fn daemons_run_under_real_supervisor_with_their_true_status() {
    let Provisioned { dir: _dir, slipway, api, server_id, host } = provisioned().await;
    let server_path = format!("/api/v1/servers/{server_id}");
    let daemons = format!("{server_path}/daemons");

    // Hostile values are refused with the field named, before anything reaches the server.
    for (field, body) in [
        ("command", json!({"command": "sleep 1\n[program:evil]\ncommand=/bin/touch /tmp/pwned"})),
        ("command", json!({"command": "sleep 1\u{0}"})),
        ("command", json!({"command": "x".repeat(64 * 1024)})),
        ("directory", json!({"command": "true", "directory": "/tmp/%(ENV_HOME)s"})),
        ("directory", json!({"command": "true", "directory": "/tmp/a b"})),
        ("user", json!({"command": "true", "user": "root\nuser=x"})),
        ("processes", json!({"command": "true", "processes": 33})),
        ("stop_signal", json!({"command": "true", "stop_signal": "TERM\n[program:x]"})),
    ] {
        let (status, reply) = api.call(Method::POST, &daemons, Some(body)).await;
        assert_eq!(status, 422, "{field}: {reply}");
        assert!(reply["errors"][field].is_array(), "{field}: {reply}");
    }

    // A daemon runs as the deploy user in its directory, its command's own quoting intact.
    let marker = format!("4{}.5", std::process::id() % 1000);
    let command = format!(r#"printf '%s|' "$(echo sub)" 'a b' `echo tick`; echo; exec sleep {marker}"#);
    let (status, daemon) = api
        .call(Method::POST, &daemons, Some(json!({"name": "sleeper", "command": command, "directory": "/tmp"})))
        .await;
    assert_eq!(status, 201, "{daemon}");
    assert_eq!(daemon["data"]["status"], "installing");
    applied(&api, &daemon).await;
    let daemon_path = format!("{daemons}/{}", daemon["data"]["id"].as_str().unwrap());
    let running = || async {
        let (_, d) = api.call(Method::GET, &daemon_path, None).await;
        d["data"]["status"] == "running"
    };
    common::eventually(Duration::from_secs(20), "the daemon runs", running).await;
    let sleeper = format!("sleep {marker}");
    let first = pids_of(&sleeper);
    assert_eq!(first.len(), 1, "{first:?}");
    let owner_of = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = String::from_utf8(Command::new("id").args(["-u", "slipway"]).output().unwrap().stdout).unwrap();
    assert!(owner_of(first[0]).lines().any(|l| l.starts_with("Uid:") && l.contains(uid.trim())));
    assert_eq!(std::fs::read_link(format!("/proc/{}/cwd", first[0])).unwrap(), Path::new("/tmp"));
    let (status, log) = api.call(Method::GET, &format!("{daemon_path}/log?lines=10"), None).await;
    assert_eq!(status, 200, "{log}");
    assert!(log["data"]["lines"].as_array().unwrap().iter().any(|l| l == "sub|a b|tick|"), "{log}");

    // Killed, it comes back, and its status stays `running`.
    assert!(Command::new("kill").args(["-9", &first[0].to_string()]).status().unwrap().success());
    common::eventually(Duration::from_secs(20), "supervisor restarts the killed daemon", || async {
        let now = pids_of(&sleeper);
        now.len() == 1 && now != first
    })
    .await;
    common::eventually(Duration::from_secs(20), "the restarted daemon is running", running).await;

    // Restart: a new process, through an operation.
    let before = pids_of(&sleeper);
    let (status, restarted) = api.call(Method::POST, &format!("{daemon_path}/restart"), Some(json!({}))).await;
    assert_eq!(status, 202, "{restarted}");
    applied(&api, &restarted).await;
    let after = pids_of(&sleeper);
    assert!(after.len() == 1 && after != before, "{before:?} {after:?}");

    // An update rewrites the program: the new command runs, the old process is gone.
    let updated_marker = format!("4{}.7", std::process::id() % 1000);
    let (status, updated) = api
        .call(
            Method::PUT,
            &daemon_path,
            Some(json!({"name": "sleeper", "command": format!("exec sleep {updated_marker}"), "directory": "/tmp"})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["data"]["status"], "installing", "{updated}");
    applied(&api, &updated).await;
    common::eventually(Duration::from_secs(20), "the updated daemon runs", running).await;
    assert_eq!(pids_of(&format!("sleep {updated_marker}")).len(), 1);
    assert!(pids_of(&sleeper).is_empty(), "the old command stopped");
    let (status, reply) = api.call(Method::PUT, &daemon_path, Some(json!({"command": "x\n[program:evil]"}))).await;
    assert_eq!(status, 422, "{reply}");
    let sleeper = format!("sleep {updated_marker}");
    let after = pids_of(&sleeper);

    // A command that exits at once is `failed` with supervisor's reason.
    let (_, broken) = api.call(Method::POST, &daemons, Some(json!({"name": "broken", "command": "exit 1"}))).await;
    applied(&api, &broken).await;
    let broken_path = format!("{daemons}/{}", broken["data"]["id"].as_str().unwrap());
    common::eventually(Duration::from_secs(30), "the broken daemon shows failed", || async {
        let (_, d) = api.call(Method::GET, &broken_path, None).await;
        d["data"]["status"] == "failed" && d["data"]["status_reason"].as_str().is_some_and(|r| r.contains("FATAL"))
    })
    .await;
    // The watch reports it once, with supervisor's reason (checked again at the end: it stays one).
    let broken_id = broken["data"]["id"].as_str().unwrap().to_string();
    common::eventually(Duration::from_secs(20), "the broken daemon is reported", || async {
        events(&api, "daemon.failed", &broken_id).await.len() == 1
    })
    .await;
    let reported = events(&api, "daemon.failed", &broken_id).await;
    assert!(reported[0]["summary"].as_str().unwrap().contains("is not running: FATAL"), "{reported:?}");
    assert_eq!(reported[0]["resource"]["url"].as_str().map(|u| u.ends_with(&broken_path)), Some(true), "{reported:?}");
    let (status, reply) = api.call(Method::POST, &format!("{broken_path}/restart"), Some(json!({}))).await;
    assert_eq!(status, 202, "{reply}");
    let op = api.finished(reply["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "failed", "restarting a daemon that cannot start fails: {op}");

    // A user that does not exist on the server is refused; one removed after the daemon was
    // created fails only that daemon, with the reason, and the others still apply.
    let (status, reply) =
        api.call(Method::POST, &daemons, Some(json!({"command": "sleep 1", "user": "nosuchuser"}))).await;
    assert_eq!(status, 422, "{reply}");
    assert!(reply["errors"]["user"][0].as_str().unwrap().contains("does not exist"), "{reply}");
    assert!(Command::new("useradd").args(["--no-create-home", "slipwaytmpuser"]).status().unwrap().success());
    let (status, ghost) =
        api.call(Method::POST, &daemons, Some(json!({"command": "sleep 3600", "user": "slipwaytmpuser"}))).await;
    assert_eq!(status, 201, "{ghost}");
    applied(&api, &ghost).await;
    assert!(Command::new("userdel").args(["-f", "slipwaytmpuser"]).status().unwrap().success());
    let (status, other) = api.call(Method::POST, &daemons, Some(json!({"command": "sleep 3599"}))).await;
    assert_eq!(status, 201, "{other}");
    applied(&api, &other).await;
    let ghost_path = format!("{daemons}/{}", ghost["data"]["id"].as_str().unwrap());
    let (_, ghost) = api.call(Method::GET, &ghost_path, None).await;
    assert_eq!(ghost["data"]["status"], "failed", "{ghost}");
    assert!(ghost["data"]["status_reason"].as_str().unwrap().contains("slipwaytmpuser does not exist"), "{ghost}");
    assert_eq!(pids_of(&sleeper), after, "the running daemon was left alone");
    for path in [ghost_path, format!("{daemons}/{}", other["data"]["id"].as_str().unwrap())] {
        let (status, _) = api.call(Method::DELETE, &path, None).await;
        assert_eq!(status, 202);
    }

    // The broken daemon, still failing the same way, was not reported again; the one that was
    // killed and came back was never reported.
    assert_eq!(events(&api, "daemon.failed", &broken_id).await.len(), 1);
    assert!(events(&api, "daemon.failed", daemon["data"]["id"].as_str().unwrap()).await.is_empty());

    // Deleting stops it and removes its program.
    let (status, deleted) = api.call(Method::DELETE, &daemon_path, None).await;
    assert_eq!(status, 202, "{deleted}");
    applied(&api, &deleted).await;
    let program = format!("slipway-daemon-{}", daemon["data"]["id"].as_str().unwrap().to_ascii_lowercase());
    assert!(!Path::new(&format!("/etc/supervisor/conf.d/{program}.conf")).exists());
    common::eventually(Duration::from_secs(15), "the deleted daemon's process ends", || async {
        pids_of(&sleeper).is_empty()
    })
    .await;
    let (status, _) = api.call(Method::GET, &daemon_path, None).await;
    assert_eq!(status, 404);
    assert!(!Path::new("/tmp/pwned").exists());

    drop(host);
    drop(slipway);
}

/// The last run of a cron job once one has ended, or `None` yet.
#[tokio::test]
async fn cron_jobs_run_under_the_real_cron_daemon_and_report_every_run() {
    let Provisioned { dir, slipway, api, server_id, host } = provisioned().await;
    let server_path = format!("/api/v1/servers/{server_id}");
    assert_eq!(host.pids_named("cron").len(), 1, "provisioning started cron on the host");
    let crontabs = format!("{server_path}/crontabs");
    // Another cron entry, not Slipway's job: it must be left alone.
    let foreign = Path::new("/etc/cron.d/slipway-test-foreign");
    std::fs::write(foreign, "# a file that is not one of Slipway's jobs\n").unwrap();

    // Hostile values are refused with the field named, before anything reaches the server.
    for (field, body) in [
        ("command", json!({"frequency": "minutely", "command": "true\n* * * * * root touch /tmp/pwned"})),
        ("command", json!({"frequency": "minutely", "command": "echo %\u{0}"})),
        ("command", json!({"frequency": "minutely", "command": "x".repeat(64 * 1024)})),
        ("frequency", json!({"frequency": "* * * * * root touch /tmp/pwned #", "command": "true"})),
        ("frequency", json!({"frequency": "*/0 * * * *", "command": "true"})),
        ("user", json!({"frequency": "minutely", "command": "true", "user": "nosuchuser"})),
    ] {
        let (status, reply) = api.call(Method::POST, &crontabs, Some(body)).await;
        assert_eq!(status, 422, "{field}: {reply}");
        assert!(reply["errors"][field].is_array(), "{field}: {reply}");
    }

    // A job whose output holds `%` (a newline to cron) and quotes, and one that fails.
    let command = r#"printf '%s|' 100% "it's" 'say "hi"' "$(id -un)"; echo; echo '%%' >&2"#;
    let (status, job) = api
        .call(Method::POST, &crontabs, Some(json!({"name": "echo", "command": command, "frequency": "minutely"})))
        .await;
    assert_eq!(status, 201, "{job}");
    let created = Instant::now();
    applied(&api, &job).await;
    // The other through the command-line client, which waits for it to be applied.
    let cli = cli(&dir, &api);
    let (ok, _, err) =
        cli(&["cron", "create", &server_id, "true", "--frequency", "hourly", "--site", "nosuch.example.com"]);
    assert!(!ok && err.contains("nosuch.example.com"), "{err}");
    let (ok, out, err) =
        cli(&["cron", "create", &server_id, "echo failing; exit 3", "--frequency", "* * * * *", "--output", "json"]);
    assert!(ok, "{out}{err}");
    let failing: Value = serde_json::from_str(&out).unwrap();
    let failing_id = failing["id"].as_str().unwrap().to_string();
    let id = job["data"]["id"].as_str().unwrap();
    let name = id.to_ascii_lowercase();
    let job_path = format!("{crontabs}/{id}");
    let failing_path = format!("{crontabs}/{failing_id}");

    // The cron file holds only Slipway's text; the command is in the wrapper.
    let cron_file = format!("/etc/cron.d/slipway-cron-{name}");
    let text = std::fs::read_to_string(&cron_file).unwrap();
    assert_eq!(
        text,
        format!(
            "# Managed by Slipway: cron job {name}; its command is in /etc/slipway/cron/{name}.sh.\nMAILTO=\"\"\n\
             * * * * * slipway /usr/local/lib/slipway/cron-run {name}\n"
        )
    );
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&cron_file).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o644, 0), "cron reads only root's files that others cannot write");
    let (_, shown) = api.call(Method::GET, &job_path, None).await;
    assert!(["waiting", "running", "succeeded"].contains(&shown["data"]["status"].as_str().unwrap()), "{shown}");

    // It fires under the real cron daemon; the run is recorded with its output exactly.
    let limit = Duration::from_secs(130).saturating_sub(created.elapsed());
    let run = common::first_finished_run(&api, &job_path, limit).await;
    eprintln!("the first run ended {:?} after the job was created", created.elapsed());
    assert_eq!((run["status"].as_str(), run["exit_code"].as_i64()), (Some("succeeded"), Some(0)), "{run}");
    assert_eq!(run["output"], "100%|it's|say \"hi\"|slipway|\n%%\n", "{run}");
    let (_, shown) = api.call(Method::GET, &job_path, None).await;
    assert_eq!(shown["data"]["status"], "succeeded", "{shown}");
    common::eventually(Duration::from_secs(70), "the failing job shows failed with its exit code", || async {
        let (_, shown) = api.call(Method::GET, &failing_path, None).await;
        shown["data"]["status"] == "failed"
            && shown["data"]["status_reason"].as_str().is_some_and(|r| r.contains("exited with code 3"))
    })
    .await;
    common::eventually(Duration::from_secs(20), "the failed run is reported", || async {
        let reported = events(&api, "cron.failed", &failing_id).await;
        reported.first().and_then(|e| e["summary"].as_str()).is_some_and(|s| s.contains("exited with code 3"))
    })
    .await;
    let failed_run = common::finished_run(&api, &failing_path).await.unwrap();
    assert_eq!((failed_run["exit_code"].as_i64(), failed_run["output"].as_str()), (Some(3), Some("failing\n")));
    let (_, listed) = api.call(Method::GET, &crontabs, None).await;
    assert_eq!(listed["meta"]["total"], 2, "{listed}");
    let (ok, out, err) = cli(&["cron", "list", &server_id]);
    assert!(ok && out.contains("echo") && out.contains("succeeded") && out.contains("failed"), "{out}{err}");
    let (ok, out, err) = cli(&["cron", "show", &server_id, &failing_id]);
    assert!(ok && out.contains("status: failed (the last run exited with code 3"), "{out}{err}");
    let (ok, out, err) = cli(&["cron", "runs", &server_id, &failing_id]);
    assert!(ok && out.lines().skip(1).any(|l| l.contains(" 3 ") && l.ends_with("failing")), "{out}{err}");
    let (ok, out, err) = cli(&["cron", "runs", &server_id, id, "--full"]);
    assert!(ok && out.contains("exit 0, succeeded\n100%|it's|say \"hi\"|slipway|\n%%\n"), "{out}{err}");

    // With the host's cron daemon stopped (only that one: it is in the host's namespace), the
    // job shows `missed` once a run was due more than 90 s ago.
    let cron = host.pids_named("cron");
    assert_eq!(cron.len(), 1, "{cron:?}");
    assert!(Command::new("kill").args(["-TERM", &cron[0]]).status().unwrap().success());
    common::eventually(Duration::from_secs(10), "cron stops", || async { host.pids_named("cron").is_empty() }).await;
    let stopped = Instant::now();
    common::eventually(Duration::from_secs(160), "the job shows missed", || async {
        let (_, shown) = api.call(Method::GET, &job_path, None).await;
        shown["data"]["status"] == "missed"
            && shown["data"]["status_reason"].as_str().is_some_and(|r| r.contains("is cron running"))
    })
    .await;
    eprintln!("missed {:?} after cron stopped", stopped.elapsed());
    common::eventually(Duration::from_secs(20), "the missed run is reported", || async {
        let reported = events(&api, "cron.missed", id).await;
        reported.first().and_then(|e| e["summary"].as_str()).is_some_and(|s| s.contains("missed a run"))
    })
    .await;

    // Deleting removes its cron file, wrapper and records; other entries stay.
    let (status, deleted) = api.call(Method::DELETE, &job_path, None).await;
    assert_eq!(status, 202, "{deleted}");
    applied(&api, &deleted).await;
    let (ok, out, err) = cli(&["cron", "delete", &server_id, &failing_id]);
    assert!(ok, "{out}{err}");
    for path in [&job_path, &failing_path] {
        let (status, _) = api.call(Method::GET, path, None).await;
        assert_eq!(status, 404);
    }
    let (ok, _, err) = cli(&["cron", "show", &server_id, &failing_id]);
    assert!(!ok && err.contains("No cron job"), "{err}");
    for gone in [cron_file, format!("/etc/slipway/cron/{name}.sh"), format!("/var/lib/slipway-cron/{name}")] {
        assert!(!Path::new(&gone).exists(), "{gone} is still there");
    }
    assert!(foreign.exists(), "another cron entry was touched");
    assert!(!Path::new("/tmp/pwned").exists());
    let _ = std::fs::remove_file(foreign);

    drop(host);
    drop(slipway);
}
