//! Sites and deployments for real: a provisioned test host in a network namespace (see
//! `provision.rs`), a git repository made by the test and served by `git daemon` on this
//! machine's side of the link, real nginx and supervisor. What nginx serves is checked after
//! every step.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Api, GitRepo, Server, owner, temp_data_dir};
use reqwest::Method;
use serde_json::{Value, json};
use slipway_remote::testing::NetnsHost;

const UNLIMITED: (&str, &str) = ("SLIPWAY_RATE_LIMIT_API", "1000000");

/// A provisioned test host with Slipway and a served repository.
struct Stage {
    api: Api,
    host: NetnsHost,
    repo: GitRepo,
    server_path: String,
    dir: common::TempDataDir,
    slipway: Option<Server>,
}

impl Stage {
    async fn new(envs: &[(&str, &str)]) -> Stage {
        Stage::with_server(envs, json!({})).await
    }

    /// A stage whose server has `fields` (e.g. a `php_version`) set before it is provisioned.
    async fn with_server(envs: &[(&str, &str)], mut fields: Value) -> Stage {
        common::clean_test_host_files();
        let dir = temp_data_dir();
        let mut all = vec![UNLIMITED];
        all.extend_from_slice(envs);
        let slipway = Server::start(&dir, &all).unwrap();
        let api = owner(&slipway).await;
        let body = json!({"name": "web", "provider": "custom", "ip_address": "192.0.2.1", "ssh_port": 22});
        let (status, created) = api.call(Method::POST, "/api/v1/servers", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        let id = created["data"]["id"].as_str().unwrap().to_string();
        let host = NetnsHost::start(&[created["data"]["authorization"]["public_key"].as_str().unwrap()]);
        let server_path = format!("/api/v1/servers/{id}");
        fields["ip_address"] = json!(host.address);
        let (status, updated) = api.call(Method::PUT, &server_path, Some(fields)).await;
        assert_eq!(status, 200, "{updated}");
        let (_, op) = api.call(Method::POST, &format!("{server_path}/provision"), Some(json!({}))).await;
        let op = api.finished_within(op["data"]["id"].as_str().unwrap(), Duration::from_secs(180)).await;
        assert_eq!(op["status"], "succeeded", "{op}");
        let repo = GitRepo::serve(&dir.join("git"), &host.gateway);
        Stage { api, host, repo, server_path, dir, slipway: Some(slipway) }
    }

    /// Creates a site and waits until it is installed; returns its API path.
    async fn site(&self, body: Value) -> String {
        let (status, site) = self.api.call(Method::POST, &format!("{}/sites", self.server_path), Some(body)).await;
        assert_eq!(status, 201, "{site}");
        let op = self.api.finished(site["data"]["operation_id"].as_str().unwrap()).await;
        assert_eq!(op["status"], "succeeded", "{op}");
        format!("{}/sites/{}", self.server_path, site["data"]["id"].as_str().unwrap())
    }

    /// A `generic` site at `domain` running the repository's `app.py` (such as `SLOW_APP`),
    /// checked on `/health.txt`; returns its API path.
    async fn python_app_site(&self, domain: &str) -> String {
        self.site(json!({
            "domain": domain, "project_type": "generic", "repository_url": self.repo.url,
            "app_command": "exec python3 app.py", "health_check_path": "/health.txt"
        }))
        .await
    }

    /// Registers a git repository (branch `main`); returns its id.
    async fn git_repository(&self, url: &str, kind: &str) -> String {
        let body = json!({"url": url, "branch": "main", "kind": kind});
        let (status, repo) = self.api.call(Method::POST, "/api/v1/git-repositories", Some(body)).await;
        assert_eq!(status, 201, "{repo}");
        repo["data"]["id"].as_str().unwrap().to_string()
    }

    /// Starts a deployment (or rollback) and waits for it to end.
    async fn deploy(&self, site: &str, action: &str, body: Value) -> Value {
        let (status, d) = self.api.call(Method::POST, &format!("{site}/{action}"), Some(body)).await;
        assert_eq!(status, 202, "{d}");
        self.wait(site, d["data"]["id"].as_str().unwrap()).await
    }

    /// Waits until deployment `id` has ended, then until its job has too: what the job does after
    /// the deployment says it ended (removing old releases) is done when this returns.
    async fn wait(&self, site: &str, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, d) = self.api.call(Method::GET, &format!("{site}/deployments/{id}"), None).await;
            if matches!(d["data"]["status"].as_str(), Some("succeeded" | "failed" | "cancelled")) {
                if let Some(operation) = d["data"]["operation_id"].as_str() {
                    self.api.finished(operation).await;
                }
                return d["data"].clone();
            }
            assert!(Instant::now() < deadline, "deployment {id} did not end: {d}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn log(&self, site: &str, id: &str) -> String {
        let (_, log) = self.api.call(Method::GET, &format!("{site}/deployments/{id}/log"), None).await;
        log["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["line"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// What nginx on the host answers for `domain` (status, body).
    async fn get(&self, domain: &str, path: &str) -> (u16, String) {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        let response = client
            .get(format!("http://{}{path}", self.host.address))
            .header("host", domain)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{domain}{path}: {e}"));
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

impl Stage {
    /// Runs the command-line client against this stage's Slipway: (success, stdout then stderr).
    fn cli(&self, args: &[&str]) -> (bool, String) {
        let env = [("SLIPWAY_URL", self.api.url.as_str()), ("SLIPWAY_TOKEN", self.api.token.as_str())];
        let out = common::slipway(&self.dir, &env).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    /// Exactly one app process runs once the previous one has exited (a stopped process can take
    /// a moment to be gone from the process table).
    async fn settles_to_one_app(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let n = self.host.processes_named("python3");
            if n == 1 {
                return;
            }
            if Instant::now() > deadline {
                let ps = Command::new("ps").args(["-eo", "pid,ppid,stat,args"]).output().unwrap();
                let ps = String::from_utf8_lossy(&ps.stdout)
                    .lines()
                    .filter(|l| l.contains("python3") || l.contains("supervisord"))
                    .collect::<Vec<_>>()
                    .join("\n");
                panic!("{n} app processes run; expected exactly one:\n{ps}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        // Slipway stops first; its data directory goes with `dir` (kept if the test failed).
        drop(self.slipway.take());
        // The sites' files and Unix users on this machine (the test host shares its files).
        common::clean_test_host_files();
    }
}

#[tokio::test]
async fn a_static_site_deploys_redeploys_rolls_back_and_survives_failures() {
    let notify =
        [("SLIPWAY_NOTIFICATION_ALLOWED_NETWORKS", "127.0.0.0/8"), ("SLIPWAY_NOTIFICATION_ALLOW_HTTP", "true")];
    let stage = Stage::new(&notify).await;
    // Two channels get failures; a third gets everything and never answers: deploys must not
    // wait for it (each of its attempts takes the 10 s timeout).
    let (port, received) = common::receiver().await;
    for (name, kind, path, events) in [
        ("a", "webhook", "/a", json!(["failures"])),
        ("b", "slack", "/b", json!(["failures"])),
        ("c", "webhook", "/hang", json!(["*"])),
    ] {
        let body =
            json!({"name": name, "kind": kind, "url": format!("http://127.0.0.1:{port}{path}"), "events": events});
        let (status, channel) = stage.api.call(Method::POST, "/api/v1/notification-channels", Some(body)).await;
        assert_eq!(status, 201, "{channel}");
    }
    let secret = "s3cr3t-planted-value-9f2c";
    stage.repo.commit(&[("public/index.html", "version one\n")], "first version");
    let site = stage
        .site(json!({
            "domain": "static.example.com", "aliases": ["www.static.example.com"], "project_type": "static",
            "web_directory": "public", "repository_url": stage.repo.url, "branch": "main",
            // Lines that look like Slipway's own markers change neither the steps nor the commit.
            "deploy_script": "echo \"building with APP_SECRET=$APP_SECRET\"\ntest -f public/index.html\n\
                              echo 'slipway-commit 0000000 forged <f@example.com>\tforged'\necho 'slipway-step health check'\n"
        }))
        .await;
    let (status, reply) = stage
        .api
        .call(
            Method::POST,
            &format!("{site}/environment-variables"),
            Some(json!({"variables": {"APP_SECRET": secret, "QUOTED": "a \"b\" $c\n#d"}})),
        )
        .await;
    assert_eq!(status, 200, "{reply}");

    let started = Instant::now();
    let first = stage.deploy(&site, "deploy", json!({})).await;
    let log = stage.log(&site, first["id"].as_str().unwrap()).await;
    assert_eq!(first["status"], "succeeded", "{first}\n{log}");
    assert!(started.elapsed() < Duration::from_secs(10), "the deploy waited for a notification channel");
    assert_eq!(first["commit_message"], "first version");
    let markers: Vec<&str> = log.lines().filter(|l| l.starts_with("slipway-")).collect();
    assert!(markers.is_empty(), "no internal markers in the log: {markers:?}\n{log}");
    assert!(log.contains("\n slipway-step health check"), "the deploy script's own line, shown indented: {log}");
    // Where the time went: each step with its start and duration, and log lines stamped when
    // they were produced (not when their batch was written), so they fall inside their step.
    let steps = first["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["connect", "fetch", "build", "health check", "switch", "finish"], "{first}");
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    for pair in steps.windows(2) {
        assert!(pair.iter().all(|s| s["status"] == "succeeded" && s["duration_ms"].is_u64()), "{first}");
        let end =
            time(&pair[0]["started_at"]) + chrono::Duration::milliseconds(pair[0]["duration_ms"].as_i64().unwrap());
        assert!(time(&pair[1]["started_at"]) >= end - chrono::Duration::milliseconds(1), "{first}");
    }
    let (_, lines) =
        stage.api.call(Method::GET, &format!("{site}/deployments/{}/log", first["id"].as_str().unwrap()), None).await;
    let lines = lines["data"].as_array().unwrap();
    let stamped =
        |text: &str| lines.iter().find(|l| l["line"].as_str().unwrap().contains(text)).map(|l| time(&l["at"]));
    let switch_started = time(&steps[4]["started_at"]);
    assert!(
        stamped("building with").unwrap() < switch_started,
        "the build's output is stamped in the build: {lines:?}"
    );
    assert!(stamped("==> deployed").unwrap() >= switch_started, "{lines:?}");
    assert_eq!(stage.get("static.example.com", "/").await, (200, "version one\n".to_string()));
    assert_eq!(stage.get("www.static.example.com", "/").await.1, "version one\n", "aliases are served");
    // Over IPv6 too (the host's default site listens there, so a block without IPv6 would lose).
    let over_v6 = stage.host.exec(&["curl", "-s", "-g", "-H", "Host: static.example.com", "http://[::1]/"]);
    assert_eq!(String::from_utf8_lossy(&over_v6.stdout), "version one\n", "{over_v6:?}");
    assert!(log.contains("building with APP_SECRET=********"), "{log}");
    assert!(!log.contains(secret), "the secret is masked in the log");
    // The .env on the server holds the values exactly, and is never served.
    let dotenv = std::fs::read_to_string("/home/slipway/static.example.com/current/.env").unwrap();
    let parsed = slipway_core::dotenv::parse(&dotenv).unwrap();
    assert!(parsed.contains(&("QUOTED".to_string(), "a \"b\" $c\n#d".to_string())), "{dotenv}");
    assert_eq!(stage.get("static.example.com", "/.env").await.0, 403);
    // Pulling reads the server's .env back: a variable removed in Slipway comes back exactly.
    let (status, _) = stage.api.call(Method::DELETE, &format!("{site}/environment-variables/QUOTED"), None).await;
    assert_eq!(status, 200);
    let (status, pull) =
        stage.api.call(Method::POST, &format!("{site}/environment-variables/pull"), Some(json!({}))).await;
    assert_eq!(status, 202, "{pull}");
    assert_eq!(pull["data"]["kind"], "site.env-pull", "the operation: {pull}");
    let op = stage.api.finished(pull["data"]["id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let op_log =
        stage.api.call(Method::GET, &format!("/api/v1/operations/{}/log", op["id"].as_str().unwrap()), None).await.1;
    assert!(!op_log.to_string().contains(secret), "the pull never logs values: {op_log}");
    let (_, env) = stage.api.call(Method::GET, &format!("{site}/environment-variables?reveal=true"), None).await;
    let quoted = env["data"].as_array().unwrap().iter().find(|v| v["key"] == "QUOTED").cloned();
    assert_eq!(quoted.map(|v| v["value"].clone()), Some(json!("a \"b\" $c\n#d")), "{env}");

    // A second version, then a rollback to the first.
    stage.repo.commit(&[("public/index.html", "version two\n")], "second version");
    let second = stage.deploy(&site, "deploy", json!({})).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(stage.get("static.example.com", "/").await.1, "version two\n");
    let (_, releases) = stage.api.call(Method::GET, &format!("{site}/releases"), None).await;
    assert_eq!(releases["data"].as_array().unwrap().len(), 2, "{releases}");
    assert_eq!(releases["data"][0]["current"], true);
    // A list like any other: paged, the newest first.
    let (_, older) = stage.api.call(Method::GET, &format!("{site}/releases?per_page=1&page=2"), None).await;
    assert_eq!((older["meta"]["total"].as_u64(), older["links"]["next"].as_str()), (Some(2), None), "{older}");
    assert_eq!(older["data"][0]["id"], releases["data"][1]["id"], "{older}");
    let back = stage.deploy(&site, "rollback", json!({})).await;
    assert_eq!(back["status"], "succeeded", "{back}");
    assert_eq!(back["trigger"], "rollback");
    assert_eq!(stage.get("static.example.com", "/").await.1, "version one\n", "rolled back");
    assert_ne!(back["commit_sha"], json!(null), "a rollback shows the commit it went back to: {back}");
    assert_ne!(back["commit_sha"], second["commit_sha"], "{back}");
    let forward = stage.deploy(&site, "rollback", json!({"release": second["id"]})).await;
    assert_eq!(forward["status"], "succeeded", "{forward}");
    assert_eq!(forward["commit_sha"], second["commit_sha"], "{forward}");
    assert_eq!(stage.get("static.example.com", "/").await.1, "version two\n");

    // A failing deploy script: the deploy fails at build, version two keeps serving.
    stage.repo.commit(&[("public/index.html", "version three\n")], "third version");
    let (_, _) =
        stage.api.call(Method::PUT, &site, Some(json!({"deploy_script": "echo about to fail\nexit 3\n"}))).await;
    stage
        .api
        .call(
            Method::POST,
            &format!("{site}/environment-variables"),
            Some(json!({"variables": {"NEW_VAR": "not yet"}})),
        )
        .await;
    let failed = stage.deploy(&site, "deploy", json!({})).await;
    let live_env = std::fs::read_to_string("/home/slipway/static.example.com/current/.env").unwrap();
    assert!(!live_env.contains("NEW_VAR"), "a failed deploy leaves the live release's variables alone: {live_env}");
    assert_failed_at(&failed, "build", "build failed (exit 1): the deploy script failed (exit 3)");
    let last = failed["steps"].as_array().unwrap().last().cloned().unwrap();
    assert_eq!((last["name"].as_str(), last["status"].as_str()), (Some("build"), Some("failed")), "{failed}");
    // Exactly one deployment.failed notification per subscribed channel, naming the step.
    let failed_id = failed["id"].as_str().unwrap();
    let about_it = |path: &str| {
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path && r.body.contains(failed_id))
            .cloned()
            .collect::<Vec<_>>()
    };
    // Polled by hand rather than with `eventually`: when it does not come (seen once in CI), the
    // channels' deliveries and the events say why.
    let arrived = async {
        let mut every = tokio::time::interval(Duration::from_millis(50));
        while about_it("/a").is_empty() || about_it("/b").is_empty() {
            every.tick().await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), arrived).await.is_err() {
        let (_, channels) = stage.api.call(Method::GET, "/api/v1/notification-channels", None).await;
        for channel in channels["data"].as_array().into_iter().flatten() {
            let id = channel["id"].as_str().unwrap_or_default();
            let path = format!("/api/v1/notification-channels/{id}/deliveries?per_page=50");
            eprintln!("channel {}: {}", channel["name"], stage.api.call(Method::GET, &path, None).await.1);
        }
        eprintln!("events: {}", stage.api.call(Method::GET, "/api/v1/events?per_page=50", None).await.1);
        let paths: Vec<String> = received.lock().unwrap().iter().map(|r| r.path.clone()).collect();
        panic!("no deployment.failed notification on each channel within 30 s; received: {paths:?}");
    }
    // The channel that never answers had many deliveries due, but one attempt open at a time:
    // it never held more than one of the job runner's slots.
    assert_eq!(common::most_open_at_once(&received.lock().unwrap()), 1);
    // A quiet window: a second notification about the same failure would arrive within it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (webhook, slack) = (about_it("/a"), about_it("/b"));
    assert_eq!((webhook.len(), slack.len()), (1, 1), "{webhook:?} {slack:?}");
    let event: Value = serde_json::from_str(&webhook[0].body).unwrap();
    assert_eq!(
        (event["type"].as_str(), event["data"]["failed_step"].as_str()),
        (Some("deployment.failed"), Some("build"))
    );
    assert!(event["summary"].as_str().unwrap().contains("static.example.com failed at build"), "{event}");
    assert!(slack[0].body.contains("failed at build"), "{}", slack[0].body);
    assert_eq!(stage.get("static.example.com", "/").await.1, "version two\n");
    let releases_dir = Path::new("/home/slipway/static.example.com/releases");
    assert!(!releases_dir.join(failed["id"].as_str().unwrap()).exists(), "the half-built release is removed");

    // A failing health check (the web directory is missing in this commit).
    stage.api.call(Method::PUT, &site, Some(json!({"deploy_script": "rm -rf public\n"}))).await;
    let unhealthy = stage.deploy(&site, "deploy", json!({})).await;
    assert_failed_at(&unhealthy, "health check", "the web directory public does not exist in the release");
    assert_eq!(stage.get("static.example.com", "/").await.1, "version two\n");
    // And a health path the release does not have.
    let change = json!({"deploy_script": "true\n", "health_check_path": "/missing.html?x=1"});
    let (status, reply) = stage.api.call(Method::PUT, &site, Some(change)).await;
    assert_eq!(status, 200, "{reply}");
    let unhealthy = stage.deploy(&site, "deploy", json!({})).await;
    let reason = unhealthy["failure_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("/missing.html?x=1 does not exist in the release"), "{unhealthy}");
    stage.api.call(Method::PUT, &site, Some(json!({"health_check_path": "/"}))).await;
    assert_eq!(stage.get("static.example.com", "/").await.1, "version two\n");

    // Cancelled midway: the script is stopped, the release removed, the site unlocked.
    stage.api.call(Method::PUT, &site, Some(json!({"deploy_script": "echo started\nsleep 60\n"}))).await;
    let (_, d) = stage.api.call(Method::POST, &format!("{site}/deploy"), Some(json!({}))).await;
    let id = d["data"]["id"].as_str().unwrap().to_string();
    let started = || async { stage.log(&site, &id).await.contains("started") };
    common::eventually(Duration::from_secs(60), "the deploy script started", started).await;
    let (status, reply) =
        stage.api.call(Method::POST, &format!("{site}/deployments/{id}/cancel"), Some(json!({}))).await;
    assert_eq!(status, 202, "{reply}");
    let cancelled = stage.wait(&site, &id).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(stage.get("static.example.com", "/").await.1, "version two\n");
    assert!(!releases_dir.join(&id).exists());
    let stopped = || async { stage.host.processes_named("sleep") == 0 };
    common::eventually(Duration::from_secs(5), "the remote script was stopped", stopped).await;

    // Unlocked: the next deploy runs and succeeds, on time, with every channel failing (one
    // never answers, the other answers 503 to every attempt).
    stage.api.call(Method::PUT, &site, Some(json!({"deploy_script": "true\n"}))).await;
    let (_, channels) = stage.api.call(Method::GET, "/api/v1/notification-channels", None).await;
    for channel in channels["data"].as_array().unwrap().iter().filter(|c| c["name"] != "c") {
        let path = format!("/api/v1/notification-channels/{}", channel["id"].as_str().unwrap());
        assert_eq!(stage.api.call(Method::DELETE, &path, None).await.0, 204);
    }
    let body = json!({"name": "d", "kind": "webhook", "url": format!("http://127.0.0.1:{port}/down"), "events": ["*"]});
    assert_eq!(stage.api.call(Method::POST, "/api/v1/notification-channels", Some(body)).await.0, 201);
    let started = Instant::now();
    let third = stage.deploy(&site, "deploy", json!({})).await;
    assert!(started.elapsed() < Duration::from_secs(10), "the deploy waited for failing channels");
    assert_eq!(third["status"], "succeeded", "{third}");
    assert_eq!(stage.get("static.example.com", "/").await.1, "version three\n");

    // Old releases go after a deploy (in its session, once it has said it succeeded): the
    // newest `keep_releases` are left, in the list and on the server. Its deploy script leaves
    // two processes in the background: one that keeps the script's output a moment longer (its
    // output is shown, the deploy waits for it) and one that does not (left running).
    let pid = std::process::id() % 1000;
    let (holding, detached) = (format!("sleep 3{pid}.25"), format!("sleep 3{pid}.75"));
    let holding_stderr = format!("sleep 3{pid}.5");
    let _stop = StopOnDrop([holding.clone(), detached.clone(), holding_stderr.clone()]);
    let script = format!("(sleep 1; echo finished in the background) &\n{detached} >/dev/null 2>&1 &\necho built\n");
    let change = json!({"keep_releases": 2, "deploy_script": script});
    let (status, reply) = stage.api.call(Method::PUT, &site, Some(change)).await;
    assert_eq!(status, 200, "{reply}");
    let fourth = stage.deploy(&site, "deploy", json!({})).await;
    assert_eq!(fourth["status"], "succeeded", "{fourth}");
    assert!(!pids_of(&detached).is_empty(), "the detached process is left running");
    let (_, releases) = stage.api.call(Method::GET, &format!("{site}/releases"), None).await;
    let listed: Vec<&str> = releases["data"].as_array().unwrap().iter().filter_map(|r| r["id"].as_str()).collect();
    let kept = [fourth["id"].as_str().unwrap(), third["id"].as_str().unwrap()];
    assert_eq!(listed, kept, "{releases}");
    // Its job ends once they are removed.
    stage.api.finished(fourth["operation_id"].as_str().unwrap()).await;
    let mut on_disk: Vec<String> = std::fs::read_dir(releases_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = kept.iter().map(|id| id.to_string()).collect();
    expected.sort();
    assert_eq!(on_disk, expected);
    let log = stage.log(&site, fourth["id"].as_str().unwrap()).await;
    assert!(!log.contains("removing old releases failed") && !log.contains("ended with an error"), "{log}");
    let background = log.find("finished in the background").expect(&log);
    assert!(background < log.find("==> deploy script done").unwrap(), "{log}");

    // Processes left holding the script's output 10 s after it exited (a watcher, a server
    // started with `&`; one holds only standard error) are stopped and named, and the deploy
    // fails at build: they would hold the deploy for as long as they run.
    let script = format!("sh -c '{holding}; echo late' &\nsh -c '{holding_stderr}' >/dev/null &\necho built\n");
    stage.api.call(Method::PUT, &site, Some(json!({"deploy_script": script}))).await;
    let started = Instant::now();
    let held = stage.deploy(&site, "deploy", json!({})).await;
    assert!(started.elapsed() < Duration::from_secs(40), "the deploy waited for the background process");
    assert_failed_at(&held, "build", "left processes running that still held its output 10 s after it exited");
    assert!(pids_of(&holding).is_empty() && pids_of(&holding_stderr).is_empty(), "the processes were stopped");
    let log = stage.log(&site, held["id"].as_str().unwrap()).await;
    assert!(log.contains(&format!("sh -c {holding}; echo late")) && !log.contains("\nlate"), "{log}");
    assert!(log.contains(&format!("sh -c {holding_stderr}")), "{log}");
    assert_eq!(stage.get("static.example.com", "/").await.1, "version three\n");

    // Suspend and resume.
    let (status, reply) = stage.api.call(Method::POST, &format!("{site}/suspend"), Some(json!({}))).await;
    assert_eq!(status, 202, "{reply}");
    stage.api.succeeded(reply["data"]["operation_id"].as_str().unwrap()).await;
    let (code, body) = stage.get("static.example.com", "/").await;
    assert_eq!(
        code,
        503,
        "{body}\n{}",
        std::fs::read_to_string("/etc/nginx/sites-available/slipway-static.example.com.conf").unwrap_or_default()
    );
    assert!(body.contains("maintenance"), "{body}");
    let (_, reply) = stage.api.call(Method::POST, &format!("{site}/resume"), Some(json!({}))).await;
    stage.api.succeeded(reply["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(stage.get("static.example.com", "/").await.1, "version three\n");

    // Values are masked in lists unless revealed; never in any response by default.
    let (_, env) = stage.api.call(Method::GET, &format!("{site}/environment-variables"), None).await;
    assert!(env.to_string().contains("APP_SECRET") && !env.to_string().contains(secret), "{env}");
    let (_, env) = stage.api.call(Method::GET, &format!("{site}/environment-variables?reveal=true"), None).await;
    assert!(env.to_string().contains(secret));

    // Deleting the site removes it from the server.
    let (status, reply) = stage.api.call(Method::DELETE, &site, None).await;
    assert_eq!(status, 202, "{reply}");
    stage.api.succeeded(reply["data"]["operation_id"].as_str().unwrap()).await;
    assert!(!Path::new("/home/slipway/static.example.com").exists());
    assert!(!Path::new("/etc/nginx/sites-enabled/slipway-static.example.com.conf").exists());
    let (_, body) = stage.get("static.example.com", "/").await;
    assert!(body.contains("managed by Slipway"), "the default site answers again: {body}");
    let stdout = stage.slipway.as_ref().map(|s| s.stdout.join("\n")).unwrap_or_default();
    assert!(!stdout.contains(secret));
}

/// The generic app: `python3 -m http.server` on `$PORT`, serving the release directory.
fn app_site(domain: &str, url: &str) -> Value {
    json!({
        "domain": domain, "project_type": "generic", "repository_url": url,
        "app_command": "exec python3 -m http.server \"$PORT\" --bind 127.0.0.1",
        "health_check_path": "/health.txt", "health_check_timeout": 20
    })
}

#[tokio::test]
async fn a_generic_app_deploys_on_a_fresh_port_and_rolls_back() {
    let stage = Stage::new(&[]).await;
    stage.repo.commit(&[("index.html", "app one\n"), ("health.txt", "ok\n")], "app one");
    let site = stage.site(app_site("app.example.com", &stage.repo.url)).await;
    let started = Instant::now();
    let first = stage.deploy(&site, "deploy", json!({})).await;
    let log = stage.log(&site, first["id"].as_str().unwrap()).await;
    assert_eq!(first["status"], "succeeded", "{first}\n{log}");
    assert!(started.elapsed() < Duration::from_secs(10), "the deploy waited for a notification channel");
    assert_eq!(stage.get("app.example.com", "/").await, (200, "app one\n".to_string()));

    stage.repo.commit(&[("index.html", "app two\n")], "app two");
    let second = stage.deploy(&site, "deploy", json!({})).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(stage.get("app.example.com", "/").await.1, "app two\n");
    // Only the new release's process runs once the old one has drained.
    stage.settles_to_one_app().await;

    // An app that never becomes healthy: the previous one keeps serving.
    stage.repo.commit(&[("index.html", "app three\n")], "app three");
    stage.api.call(Method::PUT, &site, Some(json!({"health_check_path": "/missing"}))).await;
    let unhealthy = stage.deploy(&site, "deploy", json!({})).await;
    assert_failed_at(&unhealthy, "health check", "answered 404");
    assert_eq!(stage.get("app.example.com", "/").await.1, "app two\n");
    stage.settles_to_one_app().await; // the unhealthy process was stopped
    stage.api.call(Method::PUT, &site, Some(json!({"health_check_path": "/health.txt"}))).await;

    let back = stage.deploy(&site, "rollback", json!({})).await;
    assert_eq!(back["status"], "succeeded", "{back}");
    assert_eq!(stage.get("app.example.com", "/").await.1, "app one\n");
    stage.settles_to_one_app().await;
}

/// An app that answers `/slow` five seconds late, and says (`slow-started` in its directory)
/// when such a request has reached it.
const SLOW_APP: &str = r#"import http.server, os, time
class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path == '/slow':
            open('slow-started', 'w').close()
            time.sleep(5)
        return super().do_GET()
http.server.ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), Handler).serve_forever()
"#;

/// The old app keeps running until the requests sent to it are answered: a request longer than
/// the two seconds the switch used to wait is answered by the release it reached, and only then
/// does that release's process stop; a long connection elsewhere does not hold the deploy.
#[tokio::test]
async fn a_request_in_flight_to_the_previous_app_is_answered_before_it_stops() {
    let stage = Stage::new(&[]).await;
    let files = |version: &str| {
        [("index.html", format!("{version}\n")), ("slow", format!("{version} slow\n")), ("health.txt", "ok\n".into())]
    };
    let commit = |version: &str| {
        let files = files(version);
        let mut all: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
        all.push(("app.py", SLOW_APP));
        stage.repo.commit(&all, version);
    };
    commit("one");
    let site = stage.python_app_site("slow.example.com").await;
    let first = stage.deploy(&site, "deploy", json!({})).await;
    assert_eq!(first["status"], "succeeded", "{first}");

    // A slow request reaches release one.
    let started = Path::new("/home/slipway/slow.example.com/current/slow-started");
    let address = stage.host.address.clone();
    let slow = tokio::spawn(async move {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let response = client.get(format!("http://{address}/slow")).header("host", "slow.example.com").send().await;
        match response {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    });
    common::eventually(Duration::from_secs(10), "the slow request reaching the app", || async { started.exists() })
        .await;

    // Release two goes live while it is in flight; the deployment waits for it to be answered.
    commit("two");
    let second = stage.deploy(&site, "deploy", json!({})).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(stage.get("slow.example.com", "/").await, (200, "two\n".to_string()));
    assert_eq!(slow.await.unwrap(), (200, "one slow\n".to_string()), "the request to release one was answered");
    stage.settles_to_one_app().await;

    // A connection to another site that stays open (a request whose headers never end, as a
    // websocket would) keeps an old nginx worker alive: the drain does not wait its 10 s for it,
    // since no connection to the old app is open.
    use tokio::io::AsyncWriteExt as _;
    let mut held = tokio::net::TcpStream::connect(format!("{}:80", stage.host.address)).await.unwrap();
    held.write_all(b"GET / HTTP/1.1\r\nHost: other.example.com\r\n").await.unwrap();
    commit("three");
    let third = stage.deploy(&site, "deploy", json!({})).await;
    assert_eq!(third["status"], "succeeded", "{third}");
    let log = stage.log(&site, third["id"].as_str().unwrap()).await;
    assert!(log.contains("draining the previous release"), "{log}");
    assert!(!log.contains("still open after"), "the drain waited for another site's connection:\n{log}");
    assert_eq!(stage.get("slow.example.com", "/").await, (200, "three\n".to_string()));
    stage.settles_to_one_app().await;
    drop(held);
}

/// Asserts that deployment `d` failed at `step` with a reason that mentions `reason`.
fn assert_failed_at(d: &Value, step: &str, reason: &str) {
    assert_eq!((d["status"].as_str(), d["failed_step"].as_str()), (Some("failed"), Some(step)), "{d}");
    assert!(d["failure_reason"].as_str().unwrap_or_default().contains(reason), "{d}");
}

/// Keeps a process stopped (SIGSTOP) until dropped (SIGCONT), whatever the test does meanwhile.
struct Stopped(String);

impl Stopped {
    fn new(pid: &str) -> Stopped {
        assert!(Command::new("kill").args(["-STOP", pid]).status().unwrap().success());
        Stopped(pid.to_string())
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0]).status();
    }
}

/// An nginx that does not reload (its master stopped, as a hung or busy one would be) fails the
/// switch: the block for the new port goes back, the previous release keeps serving and running,
/// the deployment says why, and once nginx reloads it still serves the previous release. The
/// next deploy goes through.
#[tokio::test]
async fn a_switch_nginx_does_not_take_fails_and_the_previous_release_keeps_serving() {
    let stage = Stage::new(&[]).await;
    let commit = |version: &str| {
        let index = format!("{version}\n");
        stage.repo.commit(&[("app.py", SLOW_APP), ("index.html", &index), ("health.txt", "ok\n")], version);
    };
    commit("one");
    let site = stage.python_app_site("stuck.example.com").await;
    let first = stage.deploy(&site, "deploy", json!({})).await;
    assert_eq!(first["status"], "succeeded", "{first}");

    let block_path = "/etc/nginx/sites-available/slipway-stuck.example.com.conf";
    let block_of_one = std::fs::read_to_string(block_path).unwrap();

    commit("two");
    let is_master = |pid: &String| {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains("master"))
    };
    let master = stage.host.pids_named("nginx").into_iter().find(is_master).expect("the host's nginx runs");
    let workers = || {
        let mut pids = stage.host.pids_named("nginx");
        pids.retain(|p| !is_master(p));
        pids.sort();
        pids
    };
    let stopped = Stopped::new(&master);
    let second = stage.deploy(&site, "deploy", json!({})).await;
    let workers_while_stopped = workers();
    // The workers kept answering, from release one.
    assert_eq!(stage.get("stuck.example.com", "/").await, (200, "one\n".to_string()));
    drop(stopped);
    assert_failed_at(&second, "switch", "nginx did not reload");
    assert_eq!(std::fs::read_to_string(block_path).unwrap(), block_of_one, "the block for release one is back");
    // nginx now takes the reload it was asked for, with the block that went back.
    common::eventually(Duration::from_secs(10), "nginx reloading once it runs again", || async {
        workers() != workers_while_stopped
    })
    .await;
    assert_eq!(stage.get("stuck.example.com", "/").await, (200, "one\n".to_string()));
    let (_, shown) = stage.api.call(Method::GET, &site, None).await;
    assert_eq!(shown["data"]["current_release"], first["id"], "{shown}");

    commit("three");
    let third = stage.deploy(&site, "deploy", json!({})).await;
    assert_eq!(third["status"], "succeeded", "{third}");
    assert_eq!(stage.get("stuck.example.com", "/").await, (200, "three\n".to_string()));
    stage.settles_to_one_app().await;

    // nginx takes a reload only once asked again, with the previous block back: the switch is
    // undone, so the new release's app is stopped and its release removed.
    commit("four");
    let stopped = Stopped::new(&master);
    let (status, posted) = stage.api.call(Method::POST, &format!("{site}/deploy"), Some(json!({}))).await;
    assert_eq!(status, 202, "{posted}");
    let id = posted["data"]["id"].as_str().unwrap().to_string();
    let resume = async {
        common::eventually(Duration::from_secs(60), "the switch asking nginx again", || async {
            stage.log(&site, &id).await.contains("asking it again")
        })
        .await;
        drop(stopped);
    };
    let (fourth, ()) = tokio::join!(stage.wait(&site, &id), resume);
    assert_failed_at(&fourth, "switch", "reloaded since with the previous block");
    assert_eq!(stage.get("stuck.example.com", "/").await, (200, "three\n".to_string()));
    stage.settles_to_one_app().await;
    let releases = Path::new("/home/slipway/stuck.example.com/releases");
    assert!(releases.is_dir(), "the site's releases are where the test looks");
    assert!(!releases.join(&id).exists(), "the undone release is removed");
    let (_, shown) = stage.api.call(Method::GET, &site, None).await;
    assert_eq!(shown["data"]["current_release"], third["id"], "{shown}");
}

/// Requests the site until told to stop; counts successes and failures. Each request opens its
/// own connection (no keep-alive), so a failure is the server's, not a client reusing a
/// connection nginx was closing. A short pause between requests keeps the clients below ~250
/// new connections a second: every closed connection holds its local port in TIME_WAIT for a
/// minute, and faster clients run out of ports (`connect` fails) before the server fails.
/// `answered` counts every request that got an answer or failed, for waiting on the load.
/// Where load goes: plain HTTP to the host's address with the site's name in `Host`, or HTTPS
/// to the site's name resolved to the host, trusting a test CA (PEM).
#[derive(Clone)]
enum Target {
    Http { address: String, domain: &'static str },
    Https { address: String, domain: &'static str, ca_pem: String },
}

impl Target {
    fn request(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        match self {
            Target::Http { address, domain } => client.get(format!("http://{address}/")).header("host", *domain),
            Target::Https { domain, .. } => client.get(format!("https://{domain}/")),
        }
    }

    fn client(&self) -> reqwest::Client {
        let builder = reqwest::Client::builder().timeout(Duration::from_secs(5)).pool_max_idle_per_host(0);
        match self {
            Target::Http { .. } => builder.build().unwrap(),
            Target::Https { address, domain, ca_pem } => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
                let to = std::net::SocketAddr::new(address.parse().unwrap(), 443);
                builder.tls_certs_only([ca]).resolve(domain, to).build().unwrap()
            }
        }
    }
}

async fn load(
    target: Target,
    stop: tokio::sync::watch::Receiver<bool>,
    answered: Arc<AtomicU64>,
) -> (u64, Vec<String>) {
    let client = target.client();
    let (mut ok, mut failures) = (0u64, Vec::new());
    let started = Instant::now();
    while !*stop.borrow() {
        tokio::time::sleep(Duration::from_millis(15)).await;
        answered.fetch_add(1, Ordering::Relaxed);
        match target.request(&client).send().await {
            Ok(r) if r.status() == 200 => match r.text().await {
                Ok(body) if body.starts_with("version") => ok += 1,
                Ok(body) => failures.push(format!("unexpected body {body:?}")),
                Err(e) => failures.push(format!("body: {e}")),
            },
            Ok(r) => failures.push(format!("status {}", r.status())),
            Err(e) => {
                // The whole chain: "error sending request" alone does not say what went wrong.
                let mut text = format!("request: {e}");
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text.push_str(&format!(": {s}"));
                    source = s.source();
                }
                failures.push(format!("{text} after {:?}", started.elapsed()));
            }
        }
    }
    (ok, failures)
}

/// Zero downtime under load: for a static site and a generic app, 10 deploys and 3 rollbacks
/// while clients request the site without pause; every single request must succeed.
#[allow(clippy::print_stdout)] // the counts are the result worth seeing
#[tokio::test]
async fn ten_deploys_and_three_rollbacks_under_load_fail_no_request() {
    let stage = Stage::new(&[]).await;
    stage
        .repo
        .commit(&[("public/index.html", "version 0\n"), ("index.html", "version 0\n"), ("health.txt", "ok\n")], "v0");
    let static_site = stage
        .site(json!({"domain": "load-static.example.com", "project_type": "static", "web_directory": "public", "repository_url": stage.repo.url}))
        .await;
    let mut app = app_site("load-app.example.com", &stage.repo.url);
    app["health_check_path"] = json!("/health.txt");
    let app_site_path = stage.site(app).await;
    for site in [&static_site, &app_site_path] {
        let d = stage.deploy(site, "deploy", json!({})).await;
        assert_eq!(d["status"], "succeeded", "{d}");
    }

    for (site, domain) in [(&static_site, "load-static.example.com"), (&app_site_path, "load-app.example.com")] {
        let started = Instant::now();
        let ((), ok) = under_load(&stage, domain, async {
            for n in 1..=10 {
                let content = format!("version {n}\n");
                stage.repo.commit(&[("public/index.html", &content), ("index.html", &content)], &format!("v{n}"));
                let d = stage.deploy(site, "deploy", json!({})).await;
                assert_eq!(d["status"], "succeeded", "deploy {n}: {d}");
                assert_eq!(stage.get(domain, "/").await.1, content, "deploy {n} is live");
            }
            for n in 1..=3 {
                let d = stage.deploy(site, "rollback", json!({})).await;
                assert_eq!(d["status"], "succeeded", "rollback {n}: {d}");
            }
        })
        .await;
        let took = started.elapsed();
        println!("{domain}: {ok} requests succeeded, none failed, over {took:?}");
        // A rate, not a count: the load runs from before the first deploy to after the last, so
        // faster deploys mean fewer requests, not lighter load (2,000 requests failed this on a
        // run whose 13 deploys took 11 s at 168 requests a second).
        let rate = ok as f64 / took.as_secs_f64();
        assert!(rate >= 100.0, "the load was too light to prove anything: {ok} requests, {rate:.0} a second");
    }
}

/// kill -9 of Slipway mid-deploy: after a restart the deployment ends failed (interrupted), the
/// previous release still serves, and a new deploy succeeds. A graceful shutdown mid-deploy
/// interrupts it too, cleaning up first.
#[tokio::test]
async fn a_deploy_interrupted_by_kill_9_or_a_shutdown_fails_as_interrupted_and_the_site_keeps_serving() {
    let mut stage = Stage::new(&[("SLIPWAY_JOB_LEASE_SECONDS", "2")]).await;
    stage.repo.commit(&[("public/index.html", "version before\n")], "before");
    let site = stage
        .site(json!({"domain": "crash.example.com", "project_type": "static", "web_directory": "public", "repository_url": stage.repo.url}))
        .await;
    assert_eq!(stage.deploy(&site, "deploy", json!({})).await["status"], "succeeded");
    stage.repo.commit(&[("public/index.html", "version after\n")], "after");
    stage.api.call(Method::PUT, &site, Some(json!({"deploy_script": "echo building\nsleep 30\n"}))).await;
    let id = deploy_until_it_prints(&stage, &site, "building").await;
    let mut slipway = stage.slipway.take().unwrap();
    Command::new("kill").args(["-KILL", &slipway.child.id().to_string()]).status().unwrap();
    let _ = slipway.child.wait();
    drop(slipway);
    assert_eq!(stage.get("crash.example.com", "/").await.1, "version before\n");

    restart_and_expect_a_failed_build(&mut stage, &site, &id, "interrupted").await;
    let (_, s) = stage.api.call(Method::GET, &site, None).await;
    assert_eq!(s["data"]["deployment_status"], "failed");
    assert_eq!(stage.get("crash.example.com", "/").await.1, "version before\n", "the previous release still serves");

    // The site is not locked: a new deploy succeeds (and prunes the half-built release).
    stage.api.call(Method::PUT, &site, Some(json!({"deploy_script": "true\n"}))).await;
    let next = stage.deploy(&site, "deploy", json!({})).await;
    assert_eq!(next["status"], "succeeded", "{next}");
    assert_eq!(stage.get("crash.example.com", "/").await.1, "version after\n");
    assert!(
        !Path::new("/home/slipway/crash.example.com/releases").join(&id).exists(),
        "the half-built release is gone"
    );

    // A graceful shutdown (a restart, an upgrade) mid-deploy interrupts the deploy: it ends
    // `failed`, not `cancelled` as if someone had asked, and its half-built release is removed
    // before Slipway exits.
    stage.repo.commit(&[("public/index.html", "version never\n")], "never");
    stage.api.call(Method::PUT, &site, Some(json!({"deploy_script": "echo building again\nsleep 30\n"}))).await;
    let id = deploy_until_it_prints(&stage, &site, "building again").await;
    // Followed, as `slipway deploy` does: the open stream must not hold up the shutdown (it
    // ends with the deployment, which the shutdown ends).
    let stream = format!("{}{site}/deployments/{id}/log/stream", stage.api.url);
    let followed = common::http().get(&stream).bearer_auth(&stage.api.token).send().await.unwrap();
    assert_eq!(followed.status(), 200);
    let (status, _) = stage.slipway.take().unwrap().terminate();
    assert!(status.success(), "slipway stopped gracefully: {status:?}");
    let told = String::from_utf8_lossy(&followed.bytes().await.unwrap()).into_owned();
    assert!(told.contains("event: end") && told.contains("Slipway was shut down"), "{told}");
    let release = Path::new("/home/slipway/crash.example.com/releases").join(&id);
    assert!(!release.exists(), "the half-built release is removed on the way out");
    assert_eq!(stage.get("crash.example.com", "/").await.1, "version after\n", "the live release still serves");
    restart_and_expect_a_failed_build(&mut stage, &site, &id, "interrupted: Slipway was shut down").await;
    let log = stage.log(&site, &id).await;
    assert!(log.contains("Slipway is shutting down: the deploy is interrupted"), "{log}");
}

/// Starts a deploy of `site` and waits until its log shows `line` (its deploy script runs);
/// the deployment's id.
async fn deploy_until_it_prints(stage: &Stage, site: &str, line: &str) -> String {
    let (_, d) = stage.api.call(Method::POST, &format!("{site}/deploy"), Some(json!({}))).await;
    let id = d["data"]["id"].as_str().unwrap().to_string();
    let printed = || async { stage.log(site, &id).await.contains(line) };
    common::eventually(Duration::from_secs(60), "the deploy reached its script", printed).await;
    id
}

/// Starts Slipway again on the stage's data (after it was killed or shut down) and waits for
/// deployment `id` to end: it must have failed at its build with `reason`.
async fn restart_and_expect_a_failed_build(stage: &mut Stage, site: &str, id: &str, reason: &str) {
    let restarted = Server::start(&stage.dir, &[UNLIMITED, ("SLIPWAY_JOB_LEASE_SECONDS", "2")]).unwrap();
    stage.api = Api { url: restarted.url.clone(), token: stage.api.token.clone() };
    stage.slipway = Some(restarted);
    let ended = stage.wait(site, id).await;
    assert_eq!(
        (ended["status"].as_str(), ended["failure_reason"].as_str(), ended["failed_step"].as_str()),
        (Some("failed"), Some(reason), Some("build")),
        "{ended}"
    );
    let last = ended["steps"].as_array().unwrap().last().cloned().unwrap();
    assert_eq!((last["name"].as_str(), last["status"].as_str()), (Some("build"), Some("failed")), "{ended}");
}

/// A write to Slipway's database that fails after the switch (a full disk, say) does not leave
/// the deployment `running`: it ends `failed`, saying that the new release is live (it is), and
/// the next deploy goes ahead.
#[tokio::test]
async fn a_failed_write_after_the_switch_ends_the_deployment_failed_saying_what_is_live() {
    let stage = Stage::new(&[]).await;
    stage.repo.commit(&[("public/index.html", "one\n")], "one");
    let site = stage
        .site(json!({"domain": "record.example.com", "project_type": "static", "web_directory": "public",
                     "repository_url": stage.repo.url}))
        .await;
    assert_eq!(stage.deploy(&site, "deploy", json!({})).await["status"], "succeeded");

    // The write that records a new release as live fails; every other write goes through.
    let db = stage.dir.join("slipway.db");
    sqlite(
        &db,
        "CREATE TRIGGER full_disk BEFORE UPDATE OF release_present ON deployments \
         WHEN NEW.release_present = 1 AND OLD.release_present = 0 \
         BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
    );
    stage.repo.commit(&[("public/index.html", "two\n")], "two");
    let ended = stage.deploy(&site, "deploy", json!({})).await;
    let reason = ended["failure_reason"].as_str().unwrap_or_default();
    assert_eq!((ended["status"].as_str(), ended["failed_step"].as_str()), (Some("failed"), Some("switch")), "{ended}");
    assert!(reason.starts_with("release ") && reason.contains(" is live, but recording it failed: "), "{reason}");
    assert!(reason.contains("database or disk is full"), "{reason}");
    assert_eq!(stage.get("record.example.com", "/").await, (200, "two\n".to_string()), "the switch went through");
    let (_, listed) = stage.api.call(Method::GET, &site, None).await;
    assert_eq!(listed["data"]["deployment_status"], "failed", "{listed}");

    sqlite(&db, "DROP TRIGGER full_disk;");
    stage.repo.commit(&[("public/index.html", "three\n")], "three");
    assert_eq!(stage.deploy(&site, "deploy", json!({})).await["status"], "succeeded", "nothing was left locked");
    assert_eq!(stage.get("record.example.com", "/").await.1, "three\n");
}

/// Runs `sql` on the SQLite database at `path` (Slipway has it open), through Python's driver.
fn sqlite(path: &Path, sql: &str) {
    let script =
        "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], timeout=10)\nc.executescript(sys.argv[2])\nc.close()";
    let out = Command::new("python3").args(["-c", script]).arg(path).arg(sql).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A site moves between its own URL and a git repository with `PUT`, and the next deploy fetches
/// the source given last, in the same mirror on the server: a repository made after the site (or
/// made again) is attached without deleting the site.
#[tokio::test]
async fn a_site_deploys_the_source_it_was_given_last() {
    let stage = Stage::new(&[]).await;
    stage.repo.commit(&[("public/index.html", "from the repository\n")], "one");
    let fork = GitRepo::serve(&stage.dir.join("fork"), &stage.host.gateway);
    fork.commit(&[("public/index.html", "from the fork\n")], "fork");
    let site = stage
        .site(json!({"domain": "moves.example.com", "project_type": "static", "web_directory": "public", "repository_url": fork.url}))
        .await;
    let served = || async { stage.get("moves.example.com", "/").await.1 };
    let d = stage.deploy(&site, "deploy", json!({})).await;
    assert_eq!(d["status"], "succeeded", "{d}");
    assert_eq!(served().await, "from the fork\n");

    let repo_id = stage.git_repository(&stage.repo.url, "generic").await;
    for (change, expected) in [
        (json!({"git_repository_id": repo_id}), "from the repository\n"),
        (json!({"repository_url": fork.url}), "from the fork\n"),
    ] {
        let (status, updated) = stage.api.call(Method::PUT, &site, Some(change.clone())).await;
        assert_eq!(status, 200, "{updated}");
        let d = stage.deploy(&site, "deploy", json!({})).await;
        assert_eq!(d["status"], "succeeded", "{change}: {d}");
        assert_eq!(served().await, expected, "{change}");
    }
}

/// A signed push deploys exactly the pushed commit (even when the branch has moved on since).
#[tokio::test]
async fn a_signed_push_deploys_the_pushed_commit() {
    let stage = Stage::new(&[]).await;
    let first = stage.repo.commit(&[("public/index.html", "pushed one\n")], "one");
    let repo_id = &stage.git_repository(&stage.repo.url, "github").await;
    let (_, enabled) = stage
        .api
        .call(Method::POST, &format!("/api/v1/git-repositories/{repo_id}/enable-auto-deploy"), Some(json!({})))
        .await;
    let secret = enabled["data"]["webhook_secret"].as_str().unwrap().to_string();
    let hook_path = enabled["data"]["webhook_url"].as_str().unwrap().split_once("/webhooks/").unwrap().1.to_string();
    let site = stage
        .site(json!({"domain": "hook.example.com", "project_type": "static", "web_directory": "public", "git_repository_id": repo_id}))
        .await;

    let push = |commit: String| {
        let body = serde_json::to_vec(&json!({"ref": "refs/heads/main", "after": commit})).unwrap();
        let signature = slipway_core::webhook::sign(secret.as_bytes(), &body);
        let url = format!("{}/webhooks/{hook_path}", stage.api.url);
        async move {
            let response = common::http()
                .post(url)
                .header("content-type", "application/json")
                .header("x-github-event", "push")
                .header("x-hub-signature-256", signature)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, reply) = push(first.clone()).await;
    assert_eq!(status, 202, "{reply}");
    let d = stage.wait(&site, reply["data"]["deployments"][0]["id"].as_str().unwrap()).await;
    assert_eq!(
        (d["status"].as_str(), d["trigger"].as_str(), d["commit_sha"].as_str()),
        (Some("succeeded"), Some("webhook"), Some(first.as_str())),
        "{d}"
    );
    assert_eq!(stage.get("hook.example.com", "/").await.1, "pushed one\n");

    // Two more commits; the push names the middle one: that one is deployed, not the head.
    let second = stage.repo.commit(&[("public/index.html", "pushed two\n")], "two");
    stage.repo.commit(&[("public/index.html", "not pushed yet\n")], "three");
    let (_, reply) = push(second.clone()).await;
    let d = stage.wait(&site, reply["data"]["deployments"][0]["id"].as_str().unwrap()).await;
    assert_eq!((d["status"].as_str(), d["commit_sha"].as_str()), (Some("succeeded"), Some(second.as_str())), "{d}");
    assert_eq!(stage.get("hook.example.com", "/").await.1, "pushed two\n");

    // The first push again (a replay, or a late delivery): it is behind what is live and not the
    // branch's head, so it is refused and the site keeps serving the newer commit.
    let (status, reply) = push(first.clone()).await;
    assert_eq!(status, 202, "{reply}");
    let replayed = stage.wait(&site, reply["data"]["deployments"][0]["id"].as_str().unwrap()).await;
    assert_eq!((replayed["status"].as_str(), replayed["failed_step"].as_str()), (Some("failed"), Some("fetch")));
    assert!(replayed["failure_reason"].as_str().unwrap().contains("older than the live commit"), "{replayed}");
    assert_eq!(stage.get("hook.example.com", "/").await.1, "pushed two\n");

    let (_, history) = stage.api.call(Method::GET, &format!("{site}/webhooks"), None).await;
    assert_eq!(history["meta"]["total"], 3, "{history}");
    assert_eq!(history["data"][1]["deployment_id"], d["id"]);
}

/// Where a private repository is served over SSH for the test: a Unix user whose login shell is
/// `git-shell`, reachable through the test host's own sshd. Removed when dropped.
struct SshGitServer {
    user: &'static str,
    home: PathBuf,
}

impl SshGitServer {
    fn start(source: &Path) -> SshGitServer {
        let (user, home) = ("slipway-gitsrv", PathBuf::from("/srv/slipway-gitsrv"));
        let _ = Command::new("userdel").args(["-r", user]).output();
        let _ = std::fs::remove_dir_all(&home);
        let run = |program: &str, args: &[&str]| {
            let out = Command::new(program).args(args).output().unwrap();
            assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        run(
            "useradd",
            &["--system", "--create-home", "--home-dir", home.to_str().unwrap(), "--shell", "/usr/bin/git-shell", user],
        );
        // Not locked (sshd refuses a locked account even with a key), but no password either.
        run("usermod", &["-p", "*", user]);
        run("git", &["clone", "-q", "--bare", source.to_str().unwrap(), home.join("app.git").to_str().unwrap()]);
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        run("chown", &["-R", &format!("{user}:{user}"), home.to_str().unwrap()]);
        SshGitServer { user, home }
    }

    fn authorize(&self, public_key: &str) {
        let keys = self.home.join(".ssh/authorized_keys");
        std::fs::write(&keys, format!("{public_key}\n")).unwrap();
        let out = Command::new("chown").arg(format!("{0}:{0}", self.user)).arg(&keys).output().unwrap();
        assert!(out.status.success());
    }

    fn push_from(&self, work: &Path) {
        // git refuses to push as root into a repository another user owns: own it meanwhile.
        let served = self.home.join("app.git");
        let chown = |owner: &str| {
            let out = Command::new("chown").arg("-R").arg(owner).arg(&served).output().unwrap();
            assert!(out.status.success());
        };
        chown("root:root");
        common::git(work, &["push", "-q", "-f", served.to_str().unwrap(), "main"]);
        chown(&format!("{0}:{0}", self.user));
    }

    fn url(&self, address: &str) -> String {
        format!("ssh://{}@{address}{}/app.git", self.user, self.home.display())
    }
}

impl Drop for SshGitServer {
    fn drop(&mut self) {
        let _ = Command::new("userdel").args(["-r", self.user]).output();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// A private repository over SSH: the fetch uses the repository's deploy key, fails clearly
/// while the key is not installed at the git host, and never leaves the key on the server.
#[tokio::test]
async fn a_private_repository_is_fetched_over_ssh_with_its_deploy_key() {
    let stage = Stage::new(&[]).await;
    stage.repo.commit(&[("public/index.html", "private one\n")], "one");
    let git = SshGitServer::start(&stage.repo.work());
    let repo_id = &stage.git_repository(&git.url(&stage.host.address), "generic").await;
    let (status, key) = stage
        .api
        .call(Method::POST, &format!("/api/v1/git-repositories/{repo_id}/setup-deploy-key"), Some(json!({})))
        .await;
    assert_eq!(status, 200, "{key}");
    let public = key["data"]["deploy_key_public"].as_str().unwrap().to_string();
    let site = stage
        .site(json!({"domain": "private.example.com", "project_type": "static", "web_directory": "public", "git_repository_id": repo_id}))
        .await;
    let key_files = || {
        let out = Command::new("find").args(["/home/slipway", "-name", "slipway-repo-*"]).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };

    // The key is not installed at the git host yet: the fetch fails and says so.
    let refused = stage.deploy(&site, "deploy", json!({})).await;
    assert_eq!((refused["status"].as_str(), refused["failed_step"].as_str()), (Some("failed"), Some("fetch")));
    assert!(refused["failure_reason"].as_str().unwrap().contains("could not clone"), "{refused}");
    assert_eq!(key_files(), "", "the deploy key is removed after a failed fetch");

    git.authorize(&public);
    let d = stage.deploy(&site, "deploy", json!({})).await;
    let log = stage.log(&site, d["id"].as_str().unwrap()).await;
    assert_eq!(d["status"], "succeeded", "{d}\n{log}");
    assert_eq!(stage.get("private.example.com", "/").await.1, "private one\n");
    assert_eq!(key_files(), "", "the deploy key is not left on the server");
    assert!(!log.contains("PRIVATE KEY"), "{log}");

    stage.repo.commit(&[("public/index.html", "private two\n")], "two");
    git.push_from(&stage.repo.work());
    let d = stage.deploy(&site, "deploy", json!({})).await;
    assert_eq!(d["status"], "succeeded", "{d}");
    assert_eq!(stage.get("private.example.com", "/").await.1, "private two\n");
}

/// Runs 4 load clients against `domain` while `work` runs (and for 20 requests before and after);
/// asserts that every single request succeeded and returns what `work` returned with the count.
async fn under_load<T>(stage: &Stage, domain: &'static str, work: impl std::future::Future<Output = T>) -> (T, u64) {
    under_load_to(Target::Http { address: stage.host.address.clone(), domain }, work).await
}

/// [`under_load`] with the load going to `target`.
async fn under_load_to<T>(target: Target, work: impl std::future::Future<Output = T>) -> (T, u64) {
    let domain = match &target {
        Target::Http { domain, .. } | Target::Https { domain, .. } => *domain,
    };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let answered = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..4).map(|_| tokio::spawn(load(target.clone(), stop.clone(), answered.clone()))).collect();
    let more_than = |n: u64| {
        let answered = answered.clone();
        move || std::future::ready(answered.load(Ordering::Relaxed) > n)
    };
    common::eventually(Duration::from_secs(10), "the load reached the site", more_than(20)).await;
    let out = work.await;
    let after = answered.load(Ordering::Relaxed);
    common::eventually(Duration::from_secs(10), "the load went on after the work", more_than(after + 20)).await;
    stop_tx.send(true).unwrap();
    let (mut ok, mut failures) = (0, Vec::new());
    for client in clients {
        let (o, f) = client.await.unwrap();
        ok += o;
        failures.extend(f);
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests to {domain} failed: {:?}",
        failures.len(),
        ok + failures.len() as u64,
        &failures[..failures.len().min(10)]
    );
    (out, ok)
}

/// In-place sites (`zero_downtime: false`) update one working tree: untracked files persist,
/// removed files go, there are no releases to roll back to. `enable-zero-downtime` then turns
/// each (a static site and an app) into releases with no failed request, and from there deploys,
/// shared paths and rollbacks work as for any site.
#[tokio::test]
async fn in_place_sites_deploy_where_they_are_and_convert_to_releases_without_downtime() {
    let stage = Stage::new(&[]).await;
    let files = |n: u32| {
        let v = format!("version {n}\n");
        [("public/index.html", v.clone()), ("index.html", v), ("health.txt", "ok\n".to_string())]
    };
    let commit = |n: u32| {
        let f = files(n);
        let refs: Vec<(&str, &str)> = f.iter().map(|(p, c)| (*p, c.as_str())).collect();
        stage.repo.commit(&refs, &format!("v{n}"))
    };
    stage.repo.commit(&[("public/old.txt", "old\n")], "old");
    // A link in one site's files to another site's: nginx reads both sites, but must not follow it.
    stage.repo.symlink("public/steal.txt", "/home/slipway/inplace-app.example.com/live/deploys.txt");
    commit(1);
    let static_script =
        "echo deployed >> public/deploys.txt\nmkdir -p public/uploads\necho upload >> public/uploads/count.txt\n";
    let static_site = stage
        .site(json!({"domain": "inplace-static.example.com", "project_type": "static", "web_directory": "public",
                     "repository_url": stage.repo.url, "zero_downtime": false,
                     "shared_paths": ["public/uploads"], "deploy_script": static_script}))
        .await;
    let mut app = app_site("inplace-app.example.com", &stage.repo.url);
    app["zero_downtime"] = json!(false);
    // Each site runs as its own user: this one cannot look into the other's directory.
    app["deploy_script"] = json!(
        "echo deployed >> deploys.txt\n\
         if ls /home/slipway/inplace-static.example.com >/dev/null 2>&1; then echo readable; else echo denied; fi > isolation.txt\n"
    );
    let app_site_path = stage.site(app).await;
    let sites = [(&static_site, "inplace-static.example.com"), (&app_site_path, "inplace-app.example.com")];
    for (site, domain) in sites {
        let d = stage.deploy(site, "deploy", json!({})).await;
        assert_eq!((d["status"].as_str(), d["action"].as_str()), (Some("succeeded"), Some("deploy")), "{d}");
        assert_eq!(stage.get(domain, "/").await, (200, "version 1\n".to_string()));
    }
    assert_eq!(stage.get("inplace-static.example.com", "/old.txt").await.0, 200);
    assert_eq!(stage.get("inplace-app.example.com", "/isolation.txt").await.1, "denied\n");
    let (status, body) = stage.get("inplace-static.example.com", "/steal.txt").await;
    // try_files finds nothing it may open: 404 (the file exists, and nginx could read it).
    assert!(matches!(status, 403 | 404) && !body.contains("deployed"), "{status} {body}");

    // A second deploy updates the same tree: what the first deploy script wrote is still there,
    // a file removed from the repository is gone.
    stage.repo.remove("public/old.txt");
    let v2 = commit(2);
    for (site, domain) in sites {
        let d = stage.deploy(site, "deploy", json!({})).await;
        assert_eq!(d["status"], "succeeded", "{d}");
        assert_eq!(stage.get(domain, "/").await.1, "version 2\n");
        assert_eq!(stage.get(domain, "/deploys.txt").await.1, "deployed\ndeployed\n", "{domain}");
        let (status, rollback) = stage.api.call(Method::POST, &format!("{site}/rollback"), Some(json!({}))).await;
        assert_eq!(status, 422, "{rollback}");
        let (_, releases) = stage.api.call(Method::GET, &format!("{site}/releases"), None).await;
        assert_eq!(releases["data"], json!([]), "in place keeps no releases");
    }
    assert_eq!(stage.get("inplace-static.example.com", "/old.txt").await.0, 404);
    let root = Path::new("/home/slipway/inplace-static.example.com");
    assert_eq!(std::fs::read_link(root.join("current")).unwrap(), Path::new("live"));

    // A conversion that fails before its switch leaves the site in place, and its tree without
    // the mark of one copied into a release (that release is removed), so no prune takes it.
    stage.api.call(Method::PUT, &static_site, Some(json!({"deploy_script": "exit 4\n"}))).await;
    let (status, d) =
        stage.api.call(Method::POST, &format!("{static_site}/enable-zero-downtime"), Some(json!({}))).await;
    assert_eq!(status, 202, "{d}");
    let failed = stage.wait(&static_site, d["data"]["id"].as_str().unwrap()).await;
    assert_failed_at(&failed, "build", "the deploy script failed (exit 4)");
    assert!(!root.join(".slipway/live-adopted").exists(), "the failed conversion left its mark");
    assert_eq!(std::fs::read_link(root.join("current")).unwrap(), Path::new("live"));
    stage.api.call(Method::PUT, &static_site, Some(json!({"deploy_script": static_script}))).await;

    // The conversion, under load: not one request fails.
    for (site, domain) in sites {
        let (converted, ok) = under_load(&stage, domain, async {
            let (status, d) =
                stage.api.call(Method::POST, &format!("{site}/enable-zero-downtime"), Some(json!({}))).await;
            assert_eq!(status, 202, "{d}");
            stage.wait(site, d["data"]["id"].as_str().unwrap()).await
        })
        .await;
        assert!(ok > 20, "the load was too light to prove anything: {ok} requests");
        let log = stage.log(site, converted["id"].as_str().unwrap()).await;
        assert_eq!(
            (converted["status"].as_str(), converted["action"].as_str()),
            (Some("succeeded"), Some("enable-zero-downtime")),
            "{converted}\n{log}"
        );
        assert_eq!(converted["commit_sha"].as_str(), Some(v2.as_str()));
        let (_, now) = stage.api.call(Method::GET, site, None).await;
        assert_eq!(now["data"]["zero_downtime"], true);
        let (_, releases) = stage.api.call(Method::GET, &format!("{site}/releases"), None).await;
        assert_eq!(releases["data"][0]["id"], converted["id"], "{releases}");
        assert_eq!(releases["data"][0]["current"], true);
        assert_eq!(stage.get(domain, "/").await.1, "version 2\n");
        // The adopted copy was built (its deploy script ran once more in the release).
        assert_eq!(stage.get(domain, "/deploys.txt").await.1, "deployed\ndeployed\ndeployed\n");
        let (status, again) =
            stage.api.call(Method::POST, &format!("{site}/enable-zero-downtime"), Some(json!({}))).await;
        assert_eq!(status, 422, "{again}");
    }
    let converted_release = std::fs::read_link(root.join("current")).unwrap();
    assert!(converted_release.starts_with("releases"), "{converted_release:?}");
    assert!(!root.join("live").exists(), "the in-place tree is removed after the conversion");
    stage.settles_to_one_app().await;

    // From here: new releases (each deploy script runs in a fresh tree), shared paths that
    // persist across releases and rollbacks.
    // The uploads written in place moved into shared/ with the conversion (none lost).
    let uploads = |n: usize| "upload\n".repeat(n);
    assert_eq!(stage.get("inplace-static.example.com", "/uploads/count.txt").await.1, uploads(3));
    assert!(root.join("shared/public/uploads/count.txt").is_file());
    let adopted = root.join(".slipway/live-adopted");
    assert!(!adopted.exists(), "the marker goes with the in-place tree");
    // An in-place tree left behind by a conversion whose removal of it failed (the tree and
    // the conversion's marker) goes with the next deploy.
    let leftover = root.join("live");
    std::fs::create_dir(&leftover).unwrap();
    std::fs::write(leftover.join("stale.txt"), "left behind\n").unwrap();
    std::fs::write(&adopted, "").unwrap();
    let site_dir = std::fs::metadata(root).unwrap();
    let (uid, gid) = (std::os::unix::fs::MetadataExt::uid(&site_dir), std::os::unix::fs::MetadataExt::gid(&site_dir));
    for path in [leftover.clone(), leftover.join("stale.txt"), adopted.clone()] {
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
    }
    for n in 3..=4 {
        if n == 4 {
            // A tree that was never copied into a release (no marker) may hold the only copy
            // of its data: it is kept.
            std::fs::create_dir(&leftover).unwrap();
            std::os::unix::fs::chown(&leftover, Some(uid), Some(gid)).unwrap();
        }
        commit(n);
        let d = stage.deploy(&static_site, "deploy", json!({})).await;
        assert_eq!(d["status"], "succeeded", "{d}");
        let (removed, why) =
            if n == 3 { (true, "an adopted tree left behind") } else { (false, "a tree never adopted") };
        assert_eq!(!leftover.exists(), removed, "{why}");
        assert_eq!(stage.get("inplace-static.example.com", "/").await.1, format!("version {n}\n"));
        assert_eq!(stage.get("inplace-static.example.com", "/deploys.txt").await.1, "deployed\n");
    }
    std::fs::remove_dir(&leftover).unwrap();
    assert_eq!(stage.get("inplace-static.example.com", "/uploads/count.txt").await.1, uploads(5));
    assert!(root.join("current/public/uploads").is_symlink());
    let back = stage.deploy(&static_site, "rollback", json!({})).await;
    assert_eq!(back["status"], "succeeded", "{back}");
    assert_eq!(stage.get("inplace-static.example.com", "/").await.1, "version 3\n");
    assert_eq!(stage.get("inplace-static.example.com", "/uploads/count.txt").await.1, uploads(5));
    let first = converted_release.file_name().unwrap().to_str().unwrap();
    let back = stage.deploy(&static_site, "rollback", json!({"release": first})).await;
    assert_eq!(back["status"], "succeeded", "{back}");
    assert_eq!(stage.get("inplace-static.example.com", "/").await.1, "version 2\n");

    commit(5);
    let d = stage.deploy(&app_site_path, "deploy", json!({})).await;
    assert_eq!(d["status"], "succeeded", "{d}");
    assert_eq!(stage.get("inplace-app.example.com", "/").await.1, "version 5\n");
    assert_eq!(stage.get("inplace-app.example.com", "/deploys.txt").await.1, "deployed\n");
    stage.settles_to_one_app().await;
}

/// Serves a bare repository over plain ("dumb") HTTP that demands Basic credentials.
struct HttpGitServer {
    process: std::process::Child,
    url: String,
}

const HTTP_GIT_SERVER: &str = r#"
import base64, functools, http.server, sys
want = "Basic " + base64.b64encode(sys.argv[3].encode()).decode()
class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.headers.get("Authorization") != want:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.end_headers()
            return
        super().do_GET()
    def log_message(self, *args):
        pass
handler = functools.partial(Handler, directory=sys.argv[4])
http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), handler).serve_forever()
"#;

impl HttpGitServer {
    fn start(work: &Path, dir: &Path, listen: &str, credentials: &str) -> HttpGitServer {
        let served = dir.join("app.git");
        common::git(work, &["clone", "-q", "--bare", ".", served.to_str().unwrap()]);
        common::git(&served, &["update-server-info"]);
        let port = std::net::TcpListener::bind((listen, 0)).unwrap().local_addr().unwrap().port();
        let process = Command::new("python3")
            .args(["-c", HTTP_GIT_SERVER, listen, &port.to_string(), credentials])
            .arg(dir)
            .spawn()
            .unwrap();
        common::wait_listening(listen, port, "the HTTP git server");
        HttpGitServer { process, url: format!("http://{listen}:{port}/app.git") }
    }
}

impl Drop for HttpGitServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Credentials in an HTTPS/HTTP repository URL reach git through a credential helper: the fetch
/// works, and the password is in no log, no response and not in the mirror's config on the server.
#[tokio::test]
async fn credentials_in_a_repository_url_are_used_but_never_written_down() {
    let stage = Stage::new(&[]).await;
    stage.repo.commit(&[("public/index.html", "behind a password\n")], "one");
    let git = HttpGitServer::start(&stage.repo.work(), &stage.dir.join("http"), &stage.host.gateway, "ci:pa55/w0rd");
    let with = |password: &str| git.url.replacen("http://", &format!("http://ci:{password}@"), 1);
    let site = stage
        .site(json!({"domain": "creds.example.com", "project_type": "static", "web_directory": "public",
                     "repository_url": with("wrong")}))
        .await;
    let refused = stage.deploy(&site, "deploy", json!({})).await;
    assert_eq!((refused["status"].as_str(), refused["failed_step"].as_str()), (Some("failed"), Some("fetch")));

    let (status, updated) =
        stage.api.call(Method::PUT, &site, Some(json!({"repository_url": with("pa55%2Fw0rd")}))).await;
    assert_eq!(status, 200, "{updated}");
    let d = stage.deploy(&site, "deploy", json!({})).await;
    let log = stage.log(&site, d["id"].as_str().unwrap()).await;
    assert_eq!(d["status"], "succeeded", "{d}\n{log}");
    assert_eq!(stage.get("creds.example.com", "/").await.1, "behind a password\n");
    let config = std::fs::read_to_string("/home/slipway/creds.example.com/repo.git/config").unwrap();
    assert!(config.contains(&git.url) && !config.contains("pa55"), "{config}");
    assert!(!log.contains("pa55") && !updated.to_string().contains("pa55"), "{log}");
}

/// The pids of processes whose command line holds `marker`, as this machine sees them.
fn pids_of(marker: &str) -> Vec<u32> {
    let out = Command::new("pgrep").args(["-f", marker]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Ends the processes whose command lines hold these markers (those a test's deploy scripts
/// started), whichever way the test ends.
struct StopOnDrop<const N: usize>([String; N]);

impl<const N: usize> Drop for StopOnDrop<N> {
    fn drop(&mut self) {
        for pid in self.0.iter().flat_map(|marker| pids_of(marker)) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

/// A queue worker runs as the site's user in its live release with the site's environment,
/// follows every deploy onto the new release (under load: no request fails), and goes with its
/// site.
#[tokio::test]
async fn a_sites_queue_worker_follows_each_deploy_and_goes_with_the_site() {
    // Workers are read every 2 s by the watch that reports failed ones.
    let stage = Stage::new(&[("SLIPWAY_PROCESS_CHECK_INTERVAL", "2s")]).await;
    let marker = format!("sleep 6{}.5", std::process::id() % 1000);
    let worker_sh = format!("echo \"worker in $(pwd -P) says $GREETING\"\nexec {marker}\n");
    stage.repo.commit(&[("index.html", "version 0\n"), ("health.txt", "ok\n"), ("worker.sh", &worker_sh)], "v0");
    // Its program names start like the workers' (slipway-worker-…): a worker sync must leave them be.
    let domain = "worker-app.example.com";
    let site = stage.site(app_site(domain, &stage.repo.url)).await;
    let (status, reply) = stage
        .api
        .call(
            Method::POST,
            &format!("{site}/environment-variables"),
            Some(json!({"variables": {"GREETING": "hi 'there'"}})),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let d = stage.deploy(&site, "deploy", json!({})).await;
    assert_eq!(d["status"], "succeeded", "{d}");

    // Laravel options on a generic site, and a missing command, say what to fix.
    let (status, reply) = stage.api.call(Method::POST, &format!("{site}/queues"), Some(json!({"queue": "high"}))).await;
    assert_eq!(status, 422, "{reply}");
    assert!(reply["errors"]["command"].is_array() && reply["errors"]["queue"].is_array(), "{reply}");

    let (status, worker) =
        stage.api.call(Method::POST, &format!("{site}/queues"), Some(json!({"command": "sh worker.sh"}))).await;
    assert_eq!(status, 201, "{worker}");
    let op = stage.api.finished(worker["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let worker_path = format!("{site}/queues/{}", worker["data"]["id"].as_str().unwrap());
    let running = || async {
        let (_, w) = stage.api.call(Method::GET, &worker_path, None).await;
        w["data"]["status"] == "running"
    };
    let last = std::sync::Mutex::new(Value::Null);
    common::eventually(Duration::from_secs(20), "the worker runs", || async {
        let (_, w) = stage.api.call(Method::GET, &worker_path, None).await;
        let ok = w["data"]["status"] == "running";
        *last.lock().unwrap() = w;
        ok || {
            eprintln!("worker: {}", last.lock().unwrap());
            false
        }
    })
    .await;
    let root = format!("/home/slipway/{domain}");
    let live_release = || std::fs::canonicalize(format!("{root}/current")).unwrap();
    let worker_dir = || {
        let pids = pids_of(&marker);
        assert_eq!(pids.len(), 1, "one worker process: {pids:?}");
        std::fs::read_link(format!("/proc/{}/cwd", pids[0])).unwrap()
    };
    assert_eq!(worker_dir(), live_release());
    let (_, log) = stage.api.call(Method::GET, &format!("{worker_path}/log?lines=5"), None).await;
    let expected = format!("worker in {} says hi 'there'", live_release().display());
    assert!(log["data"]["lines"].as_array().unwrap().iter().any(|l| l == &json!(expected)), "{log}");

    // A worker that cannot start is reported once as `worker.failed`; the running one never.
    let (status, broken) =
        stage.api.call(Method::POST, &format!("{site}/queues"), Some(json!({"command": "exit 1"}))).await;
    assert_eq!(status, 201, "{broken}");
    stage.api.finished(broken["data"]["operation_id"].as_str().unwrap()).await;
    let broken_path = format!("{site}/queues/{}", broken["data"]["id"].as_str().unwrap());
    let failed_events = |id: String| {
        let api = &stage.api;
        async move {
            let uri = format!("/api/v1/events?type=worker.failed&resource_id={id}");
            let (status, reply) = api.call(Method::GET, &uri, None).await;
            assert_eq!(status, 200, "{reply}");
            reply["data"].as_array().unwrap().clone()
        }
    };
    let broken_id = broken["data"]["id"].as_str().unwrap().to_string();
    common::eventually(Duration::from_secs(30), "the broken worker is reported", || async {
        failed_events(broken_id.clone()).await.len() == 1
    })
    .await;
    let reported = failed_events(broken_id.clone()).await;
    assert!(reported[0]["summary"].as_str().unwrap().starts_with("Queue worker"), "{reported:?}");
    assert!(reported[0]["resource"]["url"].as_str().unwrap().ends_with(&broken_path), "{reported:?}");
    assert_eq!(reported[0]["site_id"], worker["data"]["site_id"], "{reported:?}");
    assert!(failed_events(worker["data"]["id"].as_str().unwrap().to_string()).await.is_empty());
    let (status, gone) = stage.api.call(Method::DELETE, &broken_path, None).await;
    assert_eq!(status, 202, "{gone}");
    stage.api.finished(gone["data"]["operation_id"].as_str().unwrap()).await;

    // The CLI names the worker's site by server name and domain.
    let cli = |args: &[&str]| stage.cli(args);
    let worker_id = worker["data"]["id"].as_str().unwrap();
    let (ok, listed) = cli(&["worker", "list", "web", domain]);
    assert!(ok && listed.contains(worker_id) && listed.contains("running"), "{listed}");
    let (ok, out) = cli(&["worker", "log", "web", domain, worker_id, "--lines", "3"]);
    assert!(ok && out.contains("says hi 'there'"), "{out}");
    let first_pid = pids_of(&marker);
    let (ok, out) = cli(&["worker", "restart", "web", domain, worker_id]);
    assert!(ok, "{out}");
    assert_ne!(pids_of(&marker), first_pid, "a new process after the restart");
    let (ok, out) = cli(&["worker", "create", "web", domain, "--queue", "high"]);
    assert!(!ok && out.contains("command"), "{out}");

    // A deploy under load: no request fails, and the worker now runs in the new release.
    let before = live_release();
    let (deployed, _) = under_load(&stage, domain, async {
        stage.repo.commit(&[("index.html", "version 1\n")], "v1");
        stage.deploy(&site, "deploy", json!({})).await
    })
    .await;
    assert_eq!(deployed["status"], "succeeded", "{deployed}");
    let log = stage.log(&site, deployed["id"].as_str().unwrap()).await;
    assert!(log.contains("restarting 1 queue worker") && log.contains("restarted on the new release"), "{log}");
    assert_ne!(live_release(), before);
    common::eventually(Duration::from_secs(20), "the worker moved to the new release", || async {
        pids_of(&marker).len() == 1 && worker_dir() == live_release()
    })
    .await;
    common::eventually(Duration::from_secs(20), "the worker runs after the deploy", running).await;

    // Deleting the site removes its worker from the server and from Slipway.
    let program = format!("slipway-worker-{}", worker["data"]["id"].as_str().unwrap().to_ascii_lowercase());
    let (status, reply) = stage.api.call(Method::DELETE, &site, None).await;
    assert_eq!(status, 202, "{reply}");
    let op = stage.api.finished(reply["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert!(!Path::new(&format!("/etc/supervisor/conf.d/{program}.conf")).exists());
    common::eventually(Duration::from_secs(15), "the worker process ends", || async { pids_of(&marker).is_empty() })
        .await;
    let server_id = stage.server_path.rsplit('/').next().unwrap().to_string();
    let (_, items) = stage.api.call(Method::GET, &format!("{}/daemons", stage.server_path), None).await;
    assert_eq!(items["meta"]["total"], 0, "{server_id}: {items}");
}

/// What nginx answers for `path` on `domain`, without following a redirect: status and Location.
async fn redirect_of(stage: &Stage, domain: &str, path: &str) -> (u16, Option<String>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let response =
        client.get(format!("http://{}{path}", stage.host.address)).header("host", domain).send().await.unwrap();
    let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_string());
    (response.status().as_u16(), location)
}

/// Redirects answer with their status and Location for a static and an app site, in a defined
/// order; hostile values never reach nginx; a configuration nginx refuses is rolled back and
/// the site keeps serving.
#[tokio::test]
async fn redirects_answer_for_static_and_app_sites_and_never_break_them() {
    let stage = Stage::new(&[]).await;
    stage.repo.commit(&[("index.html", "version 0\n"), ("health.txt", "ok\n")], "v0");
    let static_site = stage
        .site(json!({"domain": "redirect-static.example.com", "project_type": "static", "repository_url": stage.repo.url}))
        .await;
    let app = stage.site(app_site("redirect-app.example.com", &stage.repo.url)).await;
    for site in [&static_site, &app] {
        let d = stage.deploy(site, "deploy", json!({})).await;
        assert_eq!(d["status"], "succeeded", "{d}");
    }

    // Hostile or malformed values: 422 naming the field.
    for (field, body) in [
        ("from", json!({"from": "/a; return 200 x", "to": "/b"})),
        ("from", json!({"from": "/a}\nserver {", "to": "/b"})),
        ("from", json!({"from": "/a\"", "to": "/b"})),
        ("from", json!({"from": "relative", "to": "/b"})),
        ("to", json!({"from": "/a", "to": "/b$host"})),
        ("to", json!({"from": "/a", "to": "javascript:alert(1)"})),
        ("to", json!({"from": "/a", "to": "https://x.example.com/\n"})),
        ("to", json!({"from": "/a", "to": "/b'c"})),
        ("type", json!({"from": "/a", "to": "/b", "type": 303})),
    ] {
        let (status, reply) = stage.api.call(Method::POST, &format!("{static_site}/redirects"), Some(body)).await;
        assert_eq!(status, 422, "{field}: {reply}");
        assert!(reply["errors"][field].is_array(), "{field}: {reply}");
    }

    let add = |site: String, body: Value| {
        let stage = &stage;
        async move {
            let (status, r) = stage.api.call(Method::POST, &format!("{site}/redirects"), Some(body)).await;
            assert_eq!(status, 201, "{r}");
            let op = stage.api.finished(r["data"]["operation_id"].as_str().unwrap()).await;
            assert_eq!(op["status"], "succeeded", "{op}");
            r
        }
    };
    for (site, domain) in [(&static_site, "redirect-static.example.com"), (&app, "redirect-app.example.com")] {
        add(site.clone(), json!({"from": "/old", "to": "/new", "type": 301})).await;
        add(site.clone(), json!({"from": "/tmp-move", "to": "/elsewhere", "type": 302, "preserve_query": false})).await;
        add(site.clone(), json!({"from": "/api/*", "to": "https://api.example.com/v2/*", "type": 307})).await;
        add(site.clone(), json!({"from": "/api/legacy/*", "to": "/gone", "type": 308, "preserve_query": false})).await;
        // nginx makes a path absolute with the request's host and scheme.
        let here = |path: &str| Some(format!("http://{domain}{path}"));
        assert_eq!(redirect_of(&stage, domain, "/old?a=1").await, (301, here("/new?a=1")), "{domain}");
        assert_eq!(redirect_of(&stage, domain, "/tmp-move?a=1").await, (302, here("/elsewhere")));
        assert_eq!(
            redirect_of(&stage, domain, "/api/users/7?x=y").await,
            (307, Some("https://api.example.com/v2/users/7?x=y".into()))
        );
        // The longer prefix wins, whatever the order the rules were made in.
        assert_eq!(redirect_of(&stage, domain, "/api/legacy/thing").await, (308, here("/gone")));
        // Everything else is still the site.
        assert_eq!(stage.get(domain, "/").await, (200, "version 0\n".to_string()), "{domain}");
    }

    // An update changes the rule in place.
    let (_, listed) = stage.api.call(Method::GET, &format!("{static_site}/redirects"), None).await;
    let old_rule = listed["data"].as_array().unwrap().iter().find(|r| r["from"] == "/old").unwrap().clone();
    let rule_path = format!("{static_site}/redirects/{}", old_rule["id"].as_str().unwrap());
    let (status, changed) =
        stage.api.call(Method::PUT, &rule_path, Some(json!({"from": "/old", "to": "/newer", "type": 302}))).await;
    assert_eq!(status, 200, "{changed}");
    let op = stage.api.finished(changed["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(
        redirect_of(&stage, "redirect-static.example.com", "/old").await,
        (302, Some("http://redirect-static.example.com/newer".into()))
    );
    let (status, reply) = stage.api.call(Method::PUT, &rule_path, Some(json!({"from": "/tmp-move", "to": "/x"}))).await;
    assert_eq!(status, 422, "another rule has that path: {reply}");

    // The CLI lists and adds them by server name and domain; a bad value says what to fix.
    let cli = |args: &[&str]| stage.cli(args);
    let (ok, listed) = cli(&["redirect", "list", "web", "redirect-app.example.com"]);
    assert!(ok && listed.contains("/api/legacy/*") && listed.contains("installed"), "{listed}");
    let (ok, out) =
        cli(&["redirect", "create", "web", "redirect-app.example.com", "/cli", "/from-cli", "--type", "308"]);
    assert!(ok, "{out}");
    assert_eq!(redirect_of(&stage, "redirect-app.example.com", "/cli").await.0, 308);
    let (ok, out) = cli(&["redirect", "create", "web", "redirect-app.example.com", "/x;y", "/z"]);
    assert!(!ok && out.contains("from"), "{out}");

    // nginx refuses the result (a broken file planted beside the rules): the previous rules stay,
    // the new redirect shows failed with nginx's words, and the site serves as before.
    let planted = "/etc/nginx/slipway/redirects/redirect-static.example.com/planted.conf";
    std::fs::write(planted, "this is not nginx syntax\n").unwrap();
    let (status, r) = stage
        .api
        .call(Method::POST, &format!("{static_site}/redirects"), Some(json!({"from": "/later", "to": "/x"})))
        .await;
    assert_eq!(status, 201, "{r}");
    let op = stage.api.finished(r["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "failed", "{op}");
    assert!(op["failure_reason"].as_str().unwrap().contains("nginx refuses"), "{op}");
    let (_, later) = stage
        .api
        .call(Method::GET, &format!("{static_site}/redirects/{}", r["data"]["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(later["data"]["status"], "failed", "{later}");
    assert_eq!(stage.get("redirect-static.example.com", "/").await.0, 200);
    assert_eq!(
        redirect_of(&stage, "redirect-static.example.com", "/old").await.0,
        302,
        "the updated rule still answers"
    );
    std::fs::remove_file(planted).unwrap();

    // Deleting a redirect makes the path the site's again; deleting the site removes its rules.
    let (_, listed) = stage.api.call(Method::GET, &format!("{app}/redirects"), None).await;
    let old = listed["data"].as_array().unwrap().iter().find(|r| r["from"] == "/old").unwrap().clone();
    let (status, reply) =
        stage.api.call(Method::DELETE, &format!("{app}/redirects/{}", old["id"].as_str().unwrap()), None).await;
    assert_eq!(status, 202, "{reply}");
    let op = stage.api.finished(reply["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(redirect_of(&stage, "redirect-app.example.com", "/old").await.0, 404);
    let (_, reply) = stage.api.call(Method::DELETE, &app, None).await;
    let op = stage.api.finished(reply["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert!(!Path::new("/etc/nginx/slipway/redirects/redirect-app.example.com").exists());
}

/// Laravel's `artisan` as far as queue workers use it: `queue:work` says where it runs and with
/// which options, then works until a `queue:restart` newer than its start (a timestamp in the
/// shared `storage/`, as Laravel keeps it in its cache) tells it to finish and exit.
const FAKE_ARTISAN: &str = r#"<?php
$signal = __DIR__ . '/storage/queue-restart';
switch ($argv[1] ?? '') {
    case 'queue:restart':
        file_put_contents($signal, (string) microtime(true));
        echo "Broadcasting queue restart signal.\n";
        exit(0);
    case 'queue:work':
        $started = microtime(true);
        echo 'pid ' . getmypid() . ' works in ' . getcwd() . ' with ' . implode(' ', array_slice($argv, 2)) . "\n";
        while (true) {
            clearstatcache();
            if (is_file($signal) && (float) file_get_contents($signal) > $started) {
                echo 'pid ' . getmypid() . " got the restart signal and exits\n";
                exit(0);
            }
            usleep(100000);
        }
    case 'schedule:run':
        echo 'scheduled in ' . getcwd() . ' as ' . posix_geteuid() . ' with ' . getenv('GREETING') . "\n";
        exit(0);
    default:
        fwrite(STDERR, "unknown command\n");
        exit(1);
}
"#;

/// A Laravel site's queue worker runs `php8.2 artisan queue:work` with its options as the site's
/// user in the live release; a deploy asks it to finish with `artisan queue:restart` (it exits on
/// its own, not killed) and supervisor starts it again on the new release; PHP keeps serving.
#[tokio::test]
async fn a_laravel_queue_worker_is_restarted_gracefully_by_queue_restart_on_deploy() {
    let stage = Stage::with_server(&[], json!({"php_version": "8.2"})).await;
    // Reloads let the requests in flight finish (a deploy's switch reloads php-fpm): the default
    // of 0 killed them, and one in a few hundred requests got 502 during the deploy below.
    let fpm = std::fs::read_to_string("/etc/php/8.2/fpm/php-fpm.conf").unwrap();
    assert!(fpm.lines().any(|l| l == "process_control_timeout = 20s"), "provisioning sets the timeout");
    let index = "<?php echo 'version ', file_get_contents(__DIR__ . '/../VERSION');\n";
    stage.repo.commit(&[("artisan", FAKE_ARTISAN), ("public/index.php", index), ("VERSION", "0")], "v0");
    let domain = "laravel-worker.example.com";
    let body = json!({"domain": domain, "project_type": "laravel", "repository_url": stage.repo.url,
                      "deploy_script": "mkdir -p storage"});
    let site = stage.site(body).await;
    let variables = json!({"variables": {"GREETING": "hello"}});
    let (status, reply) = stage.api.call(Method::POST, &format!("{site}/environment-variables"), Some(variables)).await;
    assert_eq!(status, 200, "{reply}");
    let d = stage.deploy(&site, "deploy", json!({})).await;
    assert_eq!(d["status"], "succeeded", "{d}");
    assert_eq!(stage.get(domain, "/").await, (200, "version 0".to_string()));

    // The site's scheduler: a cron job of the site runs as its user, in its live release, with
    // its environment. It fires within the next minute while the rest goes on.
    let site_id = site.rsplit('/').next().unwrap();
    let job = json!({"command": "php8.2 artisan schedule:run", "frequency": "minutely", "site_id": site_id});
    let (status, job) = stage.api.call(Method::POST, &format!("{}/crontabs", stage.server_path), Some(job)).await;
    assert_eq!(status, 201, "{job}");
    let job_path = format!("{}/crontabs/{}", stage.server_path, job["data"]["id"].as_str().unwrap());
    let op = stage.api.finished(job["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let first_release = std::fs::canonicalize(format!("/home/slipway/{domain}/current")).unwrap();

    // No command: Laravel's own worker, with the options given.
    let (status, worker) = stage
        .api
        .call(
            Method::POST,
            &format!("{site}/queues"),
            Some(json!({"connection": "database", "queue": "high,default",
                                                                      "tries": 3, "timeout": 90})),
        )
        .await;
    assert_eq!(status, 201, "{worker}");
    let op = stage.api.finished(worker["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let worker_path = format!("{site}/queues/{}", worker["data"]["id"].as_str().unwrap());
    let status_of = || async { stage.api.call(Method::GET, &worker_path, None).await.1["data"]["status"].clone() };
    common::eventually(Duration::from_secs(20), "the worker runs", || async { status_of().await == "running" }).await;

    let root = format!("/home/slipway/{domain}");
    let live_release = || std::fs::canonicalize(format!("{root}/current")).unwrap();
    // Anchored: the wrapper's `sh -c` holds the same words.
    let marker = "^php8.2 artisan queue:work database --queue=high,default --timeout=90";
    let worker_process = || {
        let pids = pids_of(marker);
        assert_eq!(pids.len(), 1, "one worker process: {pids:?}");
        (pids[0], std::fs::read_link(format!("/proc/{}/cwd", pids[0])).unwrap())
    };
    let (first_pid, dir) = worker_process();
    assert_eq!(dir, live_release());
    let uid_of = |pid: u32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap().split_whitespace().next().unwrap().to_string()
    };
    let site_uid = Command::new("stat").args(["-c", "%u", &format!("{root}/current/")]).output().unwrap();
    assert_eq!(
        uid_of(first_pid),
        String::from_utf8_lossy(&site_uid.stdout).trim(),
        "the worker runs as the site's user"
    );
    let log = || async {
        let (_, log) = stage.api.call(Method::GET, &format!("{worker_path}/log?lines=20"), None).await;
        log["data"]["lines"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    // (The pids it logs are those of the host's own pid namespace.)
    let works_in = |dir: &Path| format!(" works in {} with database --queue=high,default --timeout=90", dir.display());
    let started = works_in(&dir);
    assert!(log().await.iter().any(|l| l.contains(&started) && l.contains("--tries=3")), "{:?}", log().await);

    // The deploy, under load on PHP: artisan queue:restart, the worker exits by itself and comes
    // back on the new release.
    let (deployed, _) = under_load(&stage, domain, async {
        stage.repo.commit(&[("VERSION", "1")], "v1");
        stage.deploy(&site, "deploy", json!({})).await
    })
    .await;
    assert_eq!(deployed["status"], "succeeded", "{deployed}");
    let deploy_log = stage.log(&site, deployed["id"].as_str().unwrap()).await;
    assert!(deploy_log.contains("asked to finish its job and restart on the new release"), "{deploy_log}");
    assert_eq!(stage.get(domain, "/").await, (200, "version 1".to_string()));
    common::eventually(Duration::from_secs(20), "the worker runs on the new release", || async {
        let pids = pids_of(marker);
        pids.len() == 1 && pids[0] != first_pid && worker_process().1 == live_release()
    })
    .await;
    let restarted = works_in(&live_release());
    common::eventually(Duration::from_secs(10), "the old worker's graceful exit is logged", || async {
        let lines = log().await;
        let exit = lines.iter().position(|l| l.ends_with(" got the restart signal and exits"));
        let again = lines.iter().position(|l| l.contains(&restarted));
        matches!((exit, again), (Some(e), Some(a)) if e < a)
    })
    .await;
    // Supervisor reports a restarted program STARTING (shown as `installing`) for its first
    // second: the status settles to running.
    common::eventually(Duration::from_secs(20), "the restarted worker runs", || async {
        status_of().await == "running"
    })
    .await;

    // The scheduler has run by now, or does within its minute.
    let site_uid = String::from_utf8_lossy(&site_uid.stdout).trim().to_string();
    let run = common::first_finished_run(&stage.api, &job_path, Duration::from_secs(130)).await;
    let output = run["output"].as_str().unwrap();
    let in_a_release = [first_release, live_release()]
        .iter()
        .any(|release| output == format!("scheduled in {} as {site_uid} with hello\n", release.display()));
    assert!(in_a_release && run["exit_code"] == 0, "{run}");
}

/// A test CA and certificates it signs, made with the openssl command line.
struct TestCa {
    dir: PathBuf,
}

impl TestCa {
    fn new(dir: &Path, name: &str) -> TestCa {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let ca = TestCa { dir };
        ca.openssl(
            &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "30",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        ca
    }

    fn openssl(&self, args: &[&str], more: &[&str]) -> String {
        let out = Command::new("openssl").args(args).args(more).current_dir(&self.dir).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap()
    }

    /// A leaf for `names` signed by this CA: (certificate PEM, key PEM).
    fn leaf(&self, file: &str, names: &[&str]) -> (String, String) {
        let san = names.iter().map(|n| format!("DNS:{n}")).collect::<Vec<_>>().join(",");
        self.openssl(
            &["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
            &["-keyout", &format!("{file}.key"), "-out", &format!("{file}.csr"), "-subj", &format!("/CN={}", names[0])],
        );
        std::fs::write(
            self.dir.join(format!("{file}.ext")),
            format!("subjectAltName={san}\nextendedKeyUsage=serverAuth\n"),
        )
        .unwrap();
        self.openssl(
            &["x509", "-req", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"],
            &[
                "-in",
                &format!("{file}.csr"),
                "-out",
                &format!("{file}.pem"),
                "-days",
                "10",
                "-extfile",
                &format!("{file}.ext"),
            ],
        );
        (self.read(&format!("{file}.pem")), self.read(&format!("{file}.key")))
    }
}

/// `curl` over HTTPS to the test host with `domain` resolved to it, trusting `ca`: (exit code, headers
/// and body).
fn curl_https(stage: &Stage, domain: &str, path: &str, ca: &Path) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "5", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{domain}:443:{}", stage.host.address)])
        .arg(format!("https://{domain}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// An uploaded certificate is checked (each problem a 422 on its field), served over HTTPS with
/// TLS 1.2+ once nginx accepts it, plain HTTP redirects to HTTPS except ACME challenges, HSTS on
/// request, and deleting it warns and returns the site to plain HTTP.
#[tokio::test]
async fn an_uploaded_certificate_is_checked_served_over_https_and_removed() {
    let stage = Stage::new(&[]).await;
    stage.repo.commit(&[("index.html", "version 0\n"), ("health.txt", "ok\n")], "v0");
    let domain = "tls.example.com";
    let site = stage.site(json!({"domain": domain, "project_type": "static", "repository_url": stage.repo.url})).await;
    let d = stage.deploy(&site, "deploy", json!({})).await;
    assert_eq!(d["status"], "succeeded", "{d}");
    let certificates = format!("{site}/certificates");
    let ca = TestCa::new(&stage.dir, "Slipway Test CA");
    let other_ca = TestCa::new(&stage.dir, "Another CA");
    let (cert, key) = ca.leaf("site", &[domain, "www.tls.example.com"]);
    let (_, other_key) = ca.leaf("other", &["other.example.com"]);
    let (elsewhere, elsewhere_key) = ca.leaf("elsewhere", &["elsewhere.example.com"]);
    let upload = |certificate: &str, chain: &str, private_key: &str| json!({"type": "custom", "certificate": certificate, "chain": chain, "private_key": private_key});

    // Each problem is refused before anything reaches the server, naming the field.
    for (field, body) in [
        ("private_key", upload(&cert, &ca.read("ca.pem"), &other_key)),
        ("chain", upload(&cert, &other_ca.read("ca.pem"), &key)),
        ("domains", upload(&elsewhere, &ca.read("ca.pem"), &elsewhere_key)),
        ("certificate", upload("not a certificate", "", &key)),
        ("type", json!({"type": "letsencrypt", "certificate": cert, "private_key": key})),
        (
            "domains",
            json!({"type": "custom", "domains": ["tls.example.com;"], "certificate": cert, "private_key": key}),
        ),
        ("domains", json!({"type": "custom", "domains": ["a\n.example.com"], "certificate": cert, "private_key": key})),
        ("domains", json!({"type": "custom", "domains": ["*.*.example.com"], "certificate": cert, "private_key": key})),
    ] {
        let (status, reply) = stage.api.call(Method::POST, &certificates, Some(body)).await;
        assert_eq!(status, 422, "{field}: {reply}");
        assert!(reply["errors"][field].is_array(), "{field}: {reply}");
    }
    let (_, listed) = stage.api.call(Method::GET, &certificates, None).await;
    assert_eq!(listed["meta"]["total"], 0, "{listed}");

    // A good one is served once nginx accepts it.
    let (status, created) =
        stage.api.call(Method::POST, &certificates, Some(upload(&cert, &ca.read("ca.pem"), &key))).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["data"]["status"], "pending", "{created}");
    assert!(!created.to_string().contains("PRIVATE KEY"), "the key is never returned: {created}");
    let op = stage.api.finished(created["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let cert_path = format!("{certificates}/{}", created["data"]["id"].as_str().unwrap());
    let (_, shown) = stage.api.call(Method::GET, &cert_path, None).await;
    assert_eq!((shown["data"]["status"].as_str(), shown["data"]["active"].as_bool()), (Some("active"), Some(true)));
    assert_eq!(shown["data"]["issuer"], "CN=Slipway Test CA", "{shown}");
    let fingerprint = ca.openssl(&["x509", "-noout", "-fingerprint", "-sha256", "-in", "site.pem"], &[]);
    assert_eq!(fingerprint.trim().split_once('=').unwrap().1, shown["data"]["fingerprint"], "{shown}");
    // The activation checked what the server serves for the name, over TLS with SNI.
    let served = &shown["data"]["served"];
    assert_eq!((served["matches"].as_bool(), &served["fingerprint"]), (Some(true), &shown["data"]["fingerprint"]));

    let ca_file = stage.dir.join("Slipway Test CA/ca.pem");
    let (code, answer) = curl_https(&stage, domain, "/", &ca_file);
    assert_eq!(code, 0, "{answer}");
    assert!(answer.starts_with("HTTP/2 200") && answer.ends_with("version 0\n"), "{answer}");
    assert!(!answer.to_ascii_lowercase().contains("strict-transport-security"), "{answer}");
    let tls10 = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--tls-max", "1.1", "--tlsv1.0", "--cacert"])
        .arg(&ca_file)
        .args(["--resolve", &format!("{domain}:443:{}", stage.host.address), &format!("https://{domain}/")])
        .output()
        .unwrap();
    assert!(!tls10.status.success(), "TLS 1.1 and older are refused");
    // Plain HTTP goes to HTTPS, but ACME challenges are answered where they are.
    assert_eq!(redirect_of(&stage, domain, "/page?x=1").await, (301, Some(format!("https://{domain}/page?x=1"))));
    assert_eq!(redirect_of(&stage, domain, "/.well-known/acme-challenge/nothing").await.0, 404);

    // A deploy under HTTPS load fails no request.
    let target = Target::Https { address: stage.host.address.clone(), domain, ca_pem: ca.read("ca.pem") };
    let (deployed, requests) = under_load_to(target, async {
        stage.repo.commit(&[("index.html", "version 1\n")], "v1");
        stage.deploy(&site, "deploy", json!({})).await
    })
    .await;
    assert_eq!(deployed["status"], "succeeded", "{deployed}");
    assert!(requests > 40, "{requests} requests");
    assert!(curl_https(&stage, domain, "/", &ca_file).1.ends_with("version 1\n"));

    // Activated again with HSTS and without the redirect.
    let (status, reply) = stage
        .api
        .call(Method::POST, &format!("{cert_path}/activate"), Some(json!({"hsts": true, "https_redirect": false})))
        .await;
    assert_eq!(status, 202, "{reply}");
    let op = stage.api.finished(reply["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let (_, answer) = curl_https(&stage, domain, "/", &ca_file);
    assert!(answer.to_ascii_lowercase().contains("strict-transport-security: max-age=31536000"), "{answer}");
    assert_eq!(stage.get(domain, "/").await, (200, "version 1\n".to_string()));
    let (_, server_list) = stage.api.call(Method::GET, &format!("{}/certificates", stage.server_path), None).await;
    assert_eq!(server_list["meta"]["total"], 1, "{server_list}");

    // A certificate nginx cannot take (here: the configuration is broken elsewhere) fails with
    // nginx's words, and the site keeps serving the active one.
    let served_fingerprint = || {
        let script = format!(
            "openssl s_client -connect {}:443 -servername {domain} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
            stage.host.address
        );
        let out = Command::new("sh").args(["-c", &script]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().split_once('=').map(|(_, f)| f.to_string()).unwrap_or_default()
    };
    assert_eq!(served_fingerprint(), shown["data"]["fingerprint"]);
    let (renewed, renewed_key) = ca.leaf("renewed", &[domain]);
    let broken = "/etc/nginx/conf.d/slipway-test-broken.conf";
    std::fs::write(broken, "this is not nginx;\n").unwrap();
    struct Remove(&'static str);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let broken_guard = Remove(broken);
    let (status, second) =
        stage.api.call(Method::POST, &certificates, Some(upload(&renewed, &ca.read("ca.pem"), &renewed_key))).await;
    let op = stage.api.finished(second["data"]["operation_id"].as_str().unwrap()).await;
    drop(broken_guard);
    assert_eq!((status, op["status"].as_str()), (201, Some("failed")), "{second}\n{op}");
    let second_path = format!("{certificates}/{}", second["data"]["id"].as_str().unwrap());
    let (_, failed) = stage.api.call(Method::GET, &second_path, None).await;
    assert_eq!(failed["data"]["status"], "failed", "{failed}");
    assert!(failed["data"]["status_reason"].as_str().unwrap().contains("nginx refuses"), "{failed}");
    let (_, still) = stage.api.call(Method::GET, &cert_path, None).await;
    assert_eq!(still["data"]["status"], "active", "{still}");
    assert_eq!(served_fingerprint(), shown["data"]["fingerprint"], "the first certificate is still served");
    // Once nginx is sound again, activating the new one replaces the first.
    let (status, reply) = stage.api.call(Method::POST, &format!("{second_path}/activate"), Some(json!({}))).await;
    assert_eq!(status, 202, "{reply}");
    let op = stage.api.finished(reply["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let (_, now_active) = stage.api.call(Method::GET, &second_path, None).await;
    assert_eq!(served_fingerprint(), now_active["data"]["fingerprint"]);
    let (_, replaced) = stage.api.call(Method::GET, &cert_path, None).await;
    assert_eq!(replaced["data"]["status"], "inactive", "{replaced}");
    let (status, reply) = stage
        .api
        .call(Method::POST, &format!("{cert_path}/activate"), Some(json!({"hsts": true, "https_redirect": false})))
        .await;
    assert_eq!(status, 202, "{reply}");
    stage.api.succeeded(reply["data"]["operation_id"].as_str().unwrap()).await;
    let (status, reply) = stage.api.call(Method::DELETE, &second_path, None).await;
    assert_eq!(status, 202, "{reply}");
    assert!(!reply["message"].as_str().unwrap().contains("plain HTTP"), "it was not the active one: {reply}");
    stage.api.succeeded(reply["data"]["operation_id"].as_str().unwrap()).await;

    // The command line: list and show (with what the server serves), upload a full-chain file
    // without serving it, delete.
    let cli = |args: &[&str]| stage.cli(args);
    let cert_id = created["data"]["id"].as_str().unwrap();
    let (ok, listed) = cli(&["cert", "list", "web", domain]);
    assert!(ok && listed.contains(cert_id) && listed.contains("active"), "{listed}");
    let (ok, text) = cli(&["cert", "show", "web", domain, cert_id]);
    assert!(ok && text.contains("served: this certificate"), "{text}");
    let (spare, spare_key) = ca.leaf("spare", &[domain, "www.tls.example.com"]);
    let full_chain = stage.dir.join("spare-full.pem");
    std::fs::write(&full_chain, format!("{spare}{}", ca.read("ca.pem"))).unwrap();
    let key_file = stage.dir.join("spare.key");
    std::fs::write(&key_file, &spare_key).unwrap();
    let (full_chain, key_file) = (full_chain.to_str().unwrap(), key_file.to_str().unwrap());
    let upload_args = ["cert", "upload", "web", domain, "--certificate", full_chain, "--key", key_file];
    let (ok, out) = cli(&[&upload_args[..], &["--no-activate", "--output", "json"]].concat());
    assert!(ok, "{out}");
    let spare_id = serde_json::from_str::<Value>(&out).unwrap()["id"].as_str().unwrap().to_string();
    let (_, spare_shown) = stage.api.call(Method::GET, &format!("{certificates}/{spare_id}"), None).await;
    assert_eq!(spare_shown["data"]["status"], "inactive", "{spare_shown}");
    let (ok, out) = cli(&["cert", "upload", "web", domain, "--certificate", full_chain, "--key", "/nonexistent.key"]);
    assert!(!ok && out.contains("/nonexistent.key"), "{out}");
    let (ok, out) = cli(&["cert", "delete", "web", domain, &spare_id]);
    assert!(ok && !out.contains("Warning"), "{out}");

    // Deleting the active certificate warns; the site serves plain HTTP only.
    let (status, reply) = stage.api.call(Method::DELETE, &cert_path, None).await;
    assert_eq!(status, 202, "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("plain HTTP"), "{reply}");
    let op = stage.api.finished(reply["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_ne!(curl_https(&stage, domain, "/", &ca_file).0, 0, "no HTTPS any more");
    assert_eq!(stage.get(domain, "/").await, (200, "version 1\n".to_string()));
    assert!(!Path::new(&format!("/etc/slipway/tls/{domain}")).exists());
}

/// ACME for real: Debian's pebble validates HTTP-01 by connecting to the test host's nginx (its
/// DNS names the host), for a static site with an alias and for an app site (the challenge is
/// answered ahead of the app); the certificate is served and verifies to pebble's root. A name
/// the CA cannot reach ends `failed` with the CA's own reason, and names Slipway cannot validate
/// are refused first.
#[tokio::test]
async fn acme_certificates_are_issued_over_http01_served_and_failures_reported() {
    use slipway_remote::acme_testing::Pebble;
    let pebble = Pebble::start(std::net::Ipv4Addr::LOCALHOST, &[]);
    let directory = pebble.directory_url();
    let bundle = pebble.api_ca_path().display().to_string();
    let stage = Stage::new(&[("SLIPWAY_ACME_DIRECTORY", &directory), ("SLIPWAY_ACME_CA_BUNDLE", &bundle)]).await;
    let address: std::net::Ipv4Addr = stage.host.address.parse().unwrap();
    for name in ["acme.example.com", "www.acme.example.com", "app-acme.example.com"] {
        pebble.add_name(name, address);
    }
    stage.repo.commit(&[("index.html", "version 0\n"), ("health.txt", "ok\n")], "v0");
    let body = json!({"domain": "acme.example.com", "aliases": ["www.acme.example.com"], "project_type": "static",
                      "repository_url": stage.repo.url});
    let static_site = stage.site(body).await;
    let app = stage.site(app_site("app-acme.example.com", &stage.repo.url)).await;
    for site in [&static_site, &app] {
        assert_eq!(stage.deploy(site, "deploy", json!({})).await["status"], "succeeded");
    }

    // Names HTTP-01 cannot validate for this site are refused before anything is ordered.
    for domains in [json!(["*.acme.example.com"]), json!(["other.example.com"])] {
        let body = json!({"type": "acme", "domains": domains});
        let (status, reply) = stage.api.call(Method::POST, &format!("{static_site}/certificates"), Some(body)).await;
        assert_eq!(status, 422, "{reply}");
        assert!(reply["errors"]["domains"].is_array(), "{reply}");
    }

    let root = pebble.issuing_root_path();
    // The static site's through the API; the app's through the command line, which waits.
    let (status, created) =
        stage.api.call(Method::POST, &format!("{static_site}/certificates"), Some(json!({"type": "acme"}))).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["data"]["status"], "issuing", "{created}");
    let op = stage.api.finished(created["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}\n{}", pebble.log());
    let (ok, out) = stage.cli(&["cert", "issue", "web", "app-acme.example.com", "--output", "json"]);
    assert!(ok, "{out}\n{}", pebble.log());
    let app_cert: Value = serde_json::from_str(&out).unwrap();
    for (site, domain, id) in [
        (&static_site, "acme.example.com", created["data"]["id"].as_str().unwrap()),
        (&app, "app-acme.example.com", app_cert["id"].as_str().unwrap()),
    ] {
        let path = format!("{site}/certificates/{id}");
        let (_, shown) = stage.api.call(Method::GET, &path, None).await;
        assert_eq!(shown["data"]["status"], "active", "{shown}");
        assert!(shown["data"]["issuer"].as_str().unwrap().contains("Pebble"), "{shown}");
        assert!(shown["data"]["renewal"]["next_attempt_at"].is_string(), "{shown}");
        assert_eq!(shown["data"]["served"]["matches"], true, "{shown}");
        let (code, answer) = curl_https(&stage, domain, "/", &root);
        assert_eq!(code, 0, "{answer}");
        assert!(answer.starts_with("HTTP/2 200") && answer.ends_with("version 0\n"), "{answer}");
    }
    let (code, answer) = curl_https(&stage, "www.acme.example.com", "/", &root);
    assert!(code == 0 && answer.ends_with("version 0\n"), "the alias is covered: {answer}");
    for domain in ["acme.example.com", "app-acme.example.com"] {
        let to = Some(format!("https://{domain}/page"));
        assert_eq!(redirect_of(&stage, domain, "/page").await, (301, to), "plain HTTP goes to HTTPS");
    }

    // A deploy of the app under HTTPS load, with the certificate pebble issued, fails no request.
    let target = Target::Https {
        address: stage.host.address.clone(),
        domain: "app-acme.example.com",
        ca_pem: pebble.issuing_root_pem().into(),
    };
    let (deployed, requests) = under_load_to(target, async {
        stage.repo.commit(&[("index.html", "version 1\n")], "v1");
        stage.deploy(&app, "deploy", json!({})).await
    })
    .await;
    assert_eq!(deployed["status"], "succeeded", "{deployed}");
    assert!(requests > 40, "{requests} requests");

    // A name the CA cannot resolve: the order fails with the CA's words, nothing else changes.
    pebble.remove_name("www.acme.example.com");
    let body = json!({"type": "acme", "domains": ["www.acme.example.com"]});
    let (status, created) = stage.api.call(Method::POST, &format!("{static_site}/certificates"), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let op = stage.api.finished(created["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "failed", "{op}");
    let path = format!("{static_site}/certificates/{}", created["data"]["id"].as_str().unwrap());
    let (_, failed) = stage.api.call(Method::GET, &path, None).await;
    assert_eq!(failed["data"]["status"], "failed", "{failed}");
    let reason = failed["data"]["status_reason"].as_str().unwrap();
    assert!(reason.contains("www.acme.example.com"), "the CA's reason names the name: {failed}");
    assert!(failed["data"]["renewal"]["last_error"].is_string(), "{failed}");
    let (code, answer) = curl_https(&stage, "acme.example.com", "/", &root);
    assert!(code == 0 && answer.ends_with("version 0\n"), "the issued certificate is still served: {answer}");
}

/// A TCP gate on 127.0.0.1 in front of the test host's nginx, for pebble's HTTP-01 requests:
/// while closed it takes connections and never answers (validation hangs, so an issuance is
/// caught in the middle); once opened it forwards them to nginx.
struct ChallengeGate {
    port: u16,
    to: Arc<std::sync::Mutex<Option<std::net::SocketAddr>>>,
    seen: Arc<AtomicU64>,
}

impl ChallengeGate {
    fn start() -> ChallengeGate {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let to = Arc::new(std::sync::Mutex::new(None::<std::net::SocketAddr>));
        let seen = Arc::new(AtomicU64::new(0));
        let (target, count) = (to.clone(), seen.clone());
        // Lives as long as the test process; it only ever serves this test's pebble.
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for client in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                let forward_to = *target.lock().unwrap();
                let Some(to) = forward_to else {
                    held.push(client);
                    continue;
                };
                let Ok(server) = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(5)) else { continue };
                let pipe = |mut from: std::net::TcpStream, mut into: std::net::TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut into);
                        let _ = into.shutdown(std::net::Shutdown::Write);
                    })
                };
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        ChallengeGate { port, to, seen }
    }

    fn open(&self, to: std::net::SocketAddr) {
        *self.to.lock().unwrap() = Some(to);
    }
}

/// The serial number of the certificate served for `domain`, as pebble names it (lowercase hex).
fn served_serial(stage: &Stage, domain: &str) -> String {
    let script = format!(
        "openssl s_client -connect {}:443 -servername {domain} </dev/null 2>/dev/null | openssl x509 -noout -serial",
        stage.host.address
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let serial = text.trim().strip_prefix("serial=").unwrap_or_else(|| panic!("no serial: {text}"));
    serial.to_lowercase().trim_start_matches('0').to_string()
}

/// ACME certificates over their life: an issuance interrupted by kill -9 resumes after the
/// restart; the scheduled check renews a short-lived certificate before it expires and the new
/// one is served with no request failing; a renewal the CA refuses keeps the old certificate
/// serving and says why, on the certificate and in the audit log; revoking reaches the CA and
/// returns the site to plain HTTP.
#[tokio::test]
async fn acme_certificates_resume_after_kill_9_renew_under_load_and_failed_renewals_keep_serving() {
    use slipway_remote::acme_testing::{Pebble, PebbleOptions};
    let gate = ChallengeGate::start();
    let mut options = PebbleOptions::new(std::net::Ipv4Addr::LOCALHOST);
    options.http_port = gate.port;
    // Renewal is due at a third of the life left: 40 seconds in.
    options.certificate_validity = Some(Duration::from_secs(60));
    let pebble = Pebble::start_with(options, &[]);
    let (directory, bundle) = (pebble.directory_url(), pebble.api_ca_path().display().to_string());
    let envs = [
        UNLIMITED,
        ("SLIPWAY_ACME_DIRECTORY", directory.as_str()),
        ("SLIPWAY_ACME_CA_BUNDLE", bundle.as_str()),
        ("SLIPWAY_CERTIFICATE_CHECK_INTERVAL", "5s"),
        ("SLIPWAY_JOB_LEASE_SECONDS", "3"),
    ];
    let mut stage = Stage::new(&envs[1..]).await;
    let domain = "renew.example.com";
    pebble.add_name(domain, std::net::Ipv4Addr::LOCALHOST);
    stage.repo.commit(&[("index.html", "version 0\n")], "v0");
    let body = json!({"domain": domain, "project_type": "static", "repository_url": stage.repo.url});
    let site = stage.site(body).await;
    assert_eq!(stage.deploy(&site, "deploy", json!({})).await["status"], "succeeded");

    // kill -9 while the CA is validating: after the restart the issuance runs again and ends.
    let (status, created) =
        stage.api.call(Method::POST, &format!("{site}/certificates"), Some(json!({"type": "acme"}))).await;
    assert_eq!(status, 201, "{created}");
    let operation = created["data"]["operation_id"].as_str().unwrap().to_string();
    let cert = format!("{site}/certificates/{}", created["data"]["id"].as_str().unwrap());
    let validating = || std::future::ready(gate.seen.load(Ordering::SeqCst) > 0);
    common::eventually(Duration::from_secs(60), "the CA began validating", validating).await;
    let mut slipway = stage.slipway.take().unwrap();
    Command::new("kill").args(["-KILL", &slipway.child.id().to_string()]).status().unwrap();
    let _ = slipway.child.wait();
    drop(slipway);
    gate.open(std::net::SocketAddr::new(stage.host.address.parse().unwrap(), 80));
    let restarted = Server::start(&stage.dir, &envs).unwrap();
    stage.api = Api { url: restarted.url.clone(), token: stage.api.token.clone() };
    stage.slipway = Some(restarted);
    let op = stage.api.finished(&operation).await;
    assert_eq!(op["status"], "succeeded", "the issuance resumed: {op}\n{}", pebble.log());
    let (_, issued) = stage.api.call(Method::GET, &cert, None).await;
    assert_eq!(
        (issued["data"]["status"].as_str(), issued["data"]["served"]["matches"].as_bool()),
        (Some("active"), Some(true)),
        "{issued}"
    );
    let first = issued["data"]["fingerprint"].as_str().unwrap().to_string();
    let root = pebble.issuing_root_path();
    assert!(curl_https(&stage, domain, "/", &root).1.ends_with("version 0\n"));

    // A second site's certificate, whose renewal the CA will refuse: its name no longer resolves.
    let other = "renew-refused.example.com";
    pebble.add_name(other, std::net::Ipv4Addr::LOCALHOST);
    let body = json!({"domain": other, "project_type": "static", "repository_url": stage.repo.url});
    let other_site = stage.site(body).await;
    assert_eq!(stage.deploy(&other_site, "deploy", json!({})).await["status"], "succeeded");
    let (_, created) =
        stage.api.call(Method::POST, &format!("{other_site}/certificates"), Some(json!({"type": "acme"}))).await;
    let op = stage.api.finished(created["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let other_cert = format!("{other_site}/certificates/{}", created["data"]["id"].as_str().unwrap());
    let (_, other_issued) = stage.api.call(Method::GET, &other_cert, None).await;
    let other_fingerprint = other_issued["data"]["fingerprint"].as_str().unwrap().to_string();
    pebble.remove_name(other);

    // Renewed by the scheduled check, served, and not one HTTPS request fails meanwhile.
    let target =
        Target::Https { address: stage.host.address.clone(), domain, ca_pem: pebble.issuing_root_pem().into() };
    let renewal_served = || async {
        let (_, c) = stage.api.call(Method::GET, &cert, None).await;
        let now_served = c["data"]["served"]["fingerprint"].as_str().unwrap_or(&first).to_string();
        let renewed =
            c["data"]["fingerprint"] != first.as_str() && now_served == c["data"]["fingerprint"].as_str().unwrap();
        renewed.then(|| c["data"].clone())
    };
    let every = Duration::from_millis(500);
    let (renewed, requests) = under_load_to(target, async {
        common::eventually_some(every, Duration::from_secs(120), "a renewal served", renewal_served).await
    })
    .await;
    assert!(requests > 40, "{requests} requests");
    assert_eq!(
        (renewed["status"].as_str(), renewed["served"]["matches"].as_bool()),
        (Some("active"), Some(true)),
        "{renewed}"
    );
    assert!(renewed["renewal"]["last_error"].is_null(), "{renewed}");
    let second = renewed["fingerprint"].as_str().unwrap().to_string();
    let renewals = "/api/v1/audit-events?action=certificate.renew";
    let (_, events) = stage.api.call(Method::GET, &format!("{renewals}&outcome=success"), None).await;
    let event = &events["data"][0];
    assert_eq!(event["resource_id"], renewed["id"], "{events}");
    assert!(event["detail"].as_str().unwrap().contains(&second), "{events}");

    // A renewal the CA refuses: recorded with the CA's reason; the certificate still serves.
    let renewal_failed = |path: String| {
        let api = &stage.api;
        let failure_recorded = move || {
            let path = path.clone();
            async move {
                let (_, c) = api.call(Method::GET, &path, None).await;
                c["data"]["renewal"]["last_error"].is_string().then(|| c["data"].clone())
            }
        };
        common::eventually_some(every, Duration::from_secs(120), "a failed renewal recorded", failure_recorded)
    };
    let failed = renewal_failed(other_cert.clone()).await;
    assert_eq!(
        (failed["status"].as_str(), failed["fingerprint"].as_str()),
        (Some("active"), Some(other_fingerprint.as_str())),
        "{failed}"
    );
    assert!(failed["renewal"]["last_error"].as_str().unwrap().contains(other), "the CA's reason: {failed}");
    let (code, answer) = curl_https(&stage, other, "/", &root);
    assert!(code == 0 && answer.ends_with("version 0\n"), "the certificate still serves: {answer}");
    let (_, events) = stage.api.call(Method::GET, &format!("{renewals}&outcome=failure"), None).await;
    let event = &events["data"][0];
    assert_eq!(event["resource_id"], failed["id"], "{events}");
    assert!(event["detail"].as_str().unwrap().contains("renewal failed"), "{events}");
    let (ok, shown) = stage.cli(&["cert", "show", "web", other, failed["id"].as_str().unwrap()]);
    assert!(ok && shown.contains("last renewal error:"), "{shown}");

    // A renewal issued but refused by nginx: the new certificate is not stored as the one served,
    // and the one nginx serves stays recorded as such.
    let planted = format!("/etc/nginx/slipway/tls/{domain}/zz-broken.conf");
    std::fs::write(&planted, "this is not nginx\n").unwrap();
    let refused = renewal_failed(cert.clone()).await;
    std::fs::remove_file(&planted).unwrap();
    assert!(refused["renewal"]["last_error"].as_str().unwrap().contains("nginx"), "{refused}");
    assert_eq!(
        (refused["status"].as_str(), refused["fingerprint"].as_str()),
        (Some("active"), Some(second.as_str())),
        "{refused}"
    );
    assert_eq!(refused["served"]["fingerprint"].as_str(), Some(second.as_str()), "{refused}");
    let (code, answer) = curl_https(&stage, domain, "/", &root);
    assert!(code == 0 && answer.ends_with("version 0\n"), "the renewed certificate still serves: {answer}");
    let id = renewed["id"].as_str().unwrap();

    // Revoked at the CA, then removed: the site is back on plain HTTP.
    let serial = served_serial(&stage, domain);
    let (ok, out) = stage.cli(&["cert", "revoke", "web", domain, id]);
    assert!(ok, "{out}");
    assert!(out.contains("plain HTTP"), "the warning: {out}");
    assert_eq!(stage.api.call(Method::GET, &cert, None).await.0, 404);
    let status = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(pebble.api_ca_path())
        .arg(format!("{}/cert-status-by-serial/{serial}", pebble.management_url()))
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("Revoked"), "pebble has it revoked: {status}");
    assert_ne!(curl_https(&stage, domain, "/", &root).0, 0, "no HTTPS any more");
    assert_eq!(stage.get(domain, "/").await, (200, "version 0\n".into()), "plain HTTP serves, no redirect");

    // All of it is in the event log: issued and renewed, the refused renewals, and (with
    // 60-second certificates) every watch finding the certificate about to expire.
    for (event_type, wanted) in [
        ("certificate.issued", "renewed"),
        ("certificate.renewal_failed", "renewal"),
        ("certificate.expiring", "expires in 0 days"),
    ] {
        let (_, events) =
            stage.api.call(Method::GET, &format!("/api/v1/events?type={event_type}&resource_id={id}"), None).await;
        let summaries: Vec<&str> =
            events["data"].as_array().unwrap().iter().filter_map(|e| e["summary"].as_str()).collect();
        assert!(summaries.iter().any(|s| s.contains(wanted) && s.contains(domain)), "{event_type}: {events}");
    }
}

/// An application backup holds the site's shared files and its live .env, streamed to a real S3
/// server; restoring it (the domain named again) puts the shared files back, owned by the site.
#[tokio::test]
async fn an_application_backup_holds_the_shared_files_and_env_and_restores_them() {
    let stage = Stage::new(&[]).await;
    stage.repo.commit(&[("public/index.html", "hello\n")], "v1");
    let site = stage
        .site(json!({"domain": "appbackup.example.com", "project_type": "static", "web_directory": "public",
                     "repository_url": stage.repo.url, "shared_paths": ["public/uploads"],
                     "deploy_script": "mkdir -p public/uploads\necho 'upload 1' > public/uploads/photo.txt\n"}))
        .await;
    let (status, reply) = stage
        .api
        .call(Method::POST, &format!("{site}/environment-variables"), Some(json!({"variables": {"APP_NAME": "shop"}})))
        .await;
    assert_eq!(status, 200, "{reply}");
    let deployed = stage.deploy(&site, "deploy", json!({})).await;
    assert_eq!(deployed["status"], "succeeded", "{deployed}");
    let s3 = common::S3Server::start(&stage.dir);
    let body = json!({"name": "s3", "kind": "s3", "endpoint": s3.endpoint, "bucket": s3.bucket, "path_style": true,
                      "access_key_id": s3.access_key, "secret_access_key": s3.secret_key});
    let (status, storage) = stage.api.call(Method::POST, "/api/v1/backup-storages", Some(body)).await;
    assert_eq!(status, 201, "{storage}");
    let site_id = site.rsplit('/').next().unwrap();
    let storage_id = storage["data"]["id"].as_str().unwrap();

    let bad = json!({"site_id": "nope", "storage_id": storage_id});
    let (status, reply) = stage.api.call(Method::POST, "/api/v1/backups/application", Some(bad)).await;
    assert_eq!((status, reply["errors"]["site_id"].is_array()), (422, true), "{reply}");
    let body = json!({"site_id": site_id, "storage_id": storage_id});
    let (status, made) = stage.api.call(Method::POST, "/api/v1/backups/application", Some(body)).await;
    assert_eq!(status, 202, "{made}");
    let op = stage.api.finished(made["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let backup_path = format!("/api/v1/backups/{}", made["data"]["id"].as_str().unwrap());
    let (_, backup) = stage.api.call(Method::GET, &backup_path, None).await;
    assert_eq!(
        (backup["data"]["status"].as_str(), backup["data"]["type"].as_str()),
        (Some("completed"), Some("application"))
    );
    let object = s3.root.join(&s3.bucket).join(backup["data"]["object_key"].as_str().unwrap());
    let listed = Command::new("tar").arg("-tzf").arg(&object).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains("shared/public/uploads/photo.txt") && listed.contains("current/.env"), "{listed}");
    let env = Command::new("tar").arg("-xzOf").arg(&object).arg("current/.env").output().unwrap();
    assert!(String::from_utf8_lossy(&env.stdout).contains("APP_NAME"), "the live .env is in it");
    let (status, _) = stage.api.call(Method::POST, &format!("{backup_path}/verify"), Some(json!({}))).await;
    assert_eq!(status, 409, "only database backups are verified");

    // Lost, then restored: the domain must be named again.
    let photo = Path::new("/home/slipway/appbackup.example.com/shared/public/uploads/photo.txt");
    std::fs::remove_file(photo).unwrap();
    assert_eq!(stage.get("appbackup.example.com", "/uploads/photo.txt").await.0, 404);
    let restore = format!("{backup_path}/restore");
    let (status, reply) = stage.api.call(Method::POST, &restore, Some(json!({}))).await;
    assert_eq!((status, reply["errors"]["confirm"].is_array()), (422, true), "{reply}");
    let (status, reply) =
        stage.api.call(Method::POST, &restore, Some(json!({"confirm": "appbackup.example.com"}))).await;
    assert_eq!(status, 202, "{reply}");
    let op = stage.api.finished(reply["data"]["id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(stage.get("appbackup.example.com", "/uploads/photo.txt").await, (200, "upload 1\n".to_string()));
    let owner = Command::new("stat").args(["-c", "%U"]).arg(photo).output().unwrap();
    assert_ne!(String::from_utf8_lossy(&owner.stdout).trim(), "root", "written as the site's user");
    let (_, backup) = stage.api.call(Method::GET, &backup_path, None).await;
    assert_eq!(backup["data"]["status"], "restored", "{backup}");
    let (ok, out) = stage.cli(&["backup", "create-app", "web", "appbackup.example.com", "--storage", storage_id]);
    assert!(ok && out.contains("stored"), "{out}");

    // On a schedule, with retention: the newest two of the schedule's backups stay; the two
    // made by hand are not its to delete.
    let schedules = format!("{site}/backup-schedules");
    let bad = json!({"storage_id": storage_id, "frequency": "nightly", "verify": true});
    let (status, reply) = stage.api.call(Method::POST, &schedules, Some(bad)).await;
    assert_eq!((status, reply["errors"]["verify"].is_array()), (422, true), "{reply}");
    let create = ["backup-schedule", "create", "web", "--site", "appbackup.example.com", "--storage", storage_id];
    let (ok, out) = stage.cli(&[&create[..], &["--frequency", "nightly", "--keep-last", "2"]].concat());
    assert!(ok && out.contains("Scheduled"), "{out}");
    let (ok, out) = stage.cli(&["backup-schedule", "list", "web", "--site", "appbackup.example.com"]);
    assert!(ok && out.contains("nightly"), "{out}");
    let (_, listed) = stage.api.call(Method::GET, &schedules, None).await;
    let schedule = &listed["data"][0];
    assert_eq!((schedule["type"].as_str(), schedule["site_id"].as_str()), (Some("application"), Some(site_id)));
    let schedule_path = format!("/api/v1/backup-schedules/{}", schedule["id"].as_str().unwrap());
    let by_hand = s3.objects();
    assert_eq!(by_hand.len(), 2, "{by_hand:?}");
    let mut scheduled = Vec::new();
    for _ in 0..3 {
        let (status, made) = stage.api.call(Method::POST, &format!("{schedule_path}/run"), Some(json!({}))).await;
        assert_eq!(status, 202, "{made}");
        stage.api.succeeded(made["data"]["operation_id"].as_str().unwrap()).await;
        let made_path = format!("/api/v1/backups/{}", made["data"]["id"].as_str().unwrap());
        let (_, backup) = stage.api.call(Method::GET, &made_path, None).await;
        assert_eq!(backup["data"]["type"], "application", "{backup}");
        scheduled.push(backup["data"]["object_key"].as_str().unwrap().to_string());
    }
    let left = s3.objects();
    assert_eq!(left.len(), 4, "two by hand, the schedule's newest two: {left:?}");
    assert!(by_hand.iter().all(|k| left.contains(k)), "{left:?}");
    assert!(!left.iter().any(|k| k.ends_with(&scheduled[0])), "the oldest scheduled one is gone: {left:?}");
    let (_, pruned) = stage.api.call(Method::GET, "/api/v1/audit-events?action=backup.prune", None).await;
    assert_eq!(pruned["data"].as_array().map(Vec::len), Some(1), "{pruned}");

    // The site's schedules go with it; its backups stay.
    let (status, removed) = stage.api.call(Method::DELETE, &site, None).await;
    assert_eq!(status, 202, "{removed}");
    stage.api.succeeded(removed["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(stage.api.call(Method::GET, &schedule_path, None).await.0, 404);
    assert_eq!(stage.api.call(Method::GET, &backup_path, None).await.0, 200);
}

/// Reads the server-sent events of `url` until their text holds `needle` (or 60 s pass).
async fn stream_until(url: &str, token: &str, needle: &str) -> String {
    let mut response = common::http().get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, response.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("the stream ended or stalled before {needle:?} ({other:?}): {seen}"),
        }
    }
    seen
}

/// Two `slipway serve` replicas on one PostgreSQL database: kill -9 of the replica running a
/// deploy hands it to the other once the lease ends (failed as interrupted, the previous
/// release serving, nothing locked); a token revoked through one is refused by the other on
/// its next request; a deploy started through one is followed and cancelled through the other;
/// deploys started through either run exactly once.
#[tokio::test]
async fn two_replicas_on_postgresql_share_the_work_and_take_over_after_kill_9() {
    let db = slipway_store::testing::TestDatabase::postgres().await;
    let env = [("SLIPWAY_DATABASE_URL", db.url()), ("SLIPWAY_JOB_LEASE_SECONDS", "3")];
    let mut stage = Stage::new(&env).await;
    let replica = |dir: &Path| {
        // The same data directory: the same secrets key, as every replica needs.
        let mut all = vec![UNLIMITED];
        all.extend_from_slice(&env);
        Server::start(dir, &all).unwrap()
    };
    stage.repo.commit(&[("public/index.html", "version one\n")], "one");
    let site = stage
        .site(json!({"domain": "replicas.example.com", "project_type": "static", "web_directory": "public",
                     "repository_url": stage.repo.url}))
        .await;
    assert_eq!(stage.deploy(&site, "deploy", json!({})).await["status"], "succeeded");

    // A slow deploy claimed by the only replica (a); b starts, a is killed: b takes it over.
    stage.repo.commit(&[("public/index.html", "version two\n")], "two");
    stage.api.call(Method::PUT, &site, Some(json!({"deploy_script": "echo building\nsleep 30\n"}))).await;
    let (_, d) = stage.api.call(Method::POST, &format!("{site}/deploy"), Some(json!({}))).await;
    let id = d["data"]["id"].as_str().unwrap().to_string();
    common::eventually(Duration::from_secs(60), "the deploy reached its script", || async {
        stage.log(&site, &id).await.contains("building")
    })
    .await;
    let b = replica(&stage.dir);
    let mut a = stage.slipway.take().unwrap();
    Command::new("kill").args(["-KILL", &a.child.id().to_string()]).status().unwrap();
    let _ = a.child.wait();
    drop(a);
    stage.api = Api { url: b.url.clone(), token: stage.api.token.clone() };
    let ended = stage.wait(&site, &id).await;
    assert_eq!(
        (ended["status"].as_str(), ended["failure_reason"].as_str(), ended["failed_step"].as_str()),
        (Some("failed"), Some("interrupted"), Some("build")),
        "{ended}"
    );
    assert_eq!(stage.get("replicas.example.com", "/").await.1, "version one\n", "the previous release serves");
    stage.api.call(Method::PUT, &site, Some(json!({"deploy_script": "true\n"}))).await;
    assert_eq!(stage.deploy(&site, "deploy", json!({})).await["status"], "succeeded", "nothing is left locked");
    assert_eq!(stage.get("replicas.example.com", "/").await.1, "version two\n");

    // Both replicas up, both running jobs.
    let a = replica(&stage.dir);
    let (api_a, api_b) = (
        Api { url: a.url.clone(), token: stage.api.token.clone() },
        Api { url: b.url.clone(), token: stage.api.token.clone() },
    );

    // A token made through a works through b; revoked through b, a refuses it at once.
    let (status, created) = api_a
        .call(Method::POST, "/api/v1/tokens", Some(json!({"name": "replicated", "abilities": ["server:read"]})))
        .await;
    assert_eq!(status, 201, "{created}");
    let token = Api { url: b.url.clone(), token: created["data"]["plain_text_token"].as_str().unwrap().to_string() };
    assert_eq!(token.call(Method::GET, "/api/v1/servers", None).await.0, 200);
    let token_path = format!("/api/v1/tokens/{}", created["data"]["id"].as_str().unwrap());
    assert_eq!(api_b.call(Method::DELETE, &token_path, None).await.0, 204);
    let on_a = Api { url: a.url.clone(), token: token.token.clone() };
    assert_eq!(on_a.call(Method::GET, "/api/v1/servers", None).await.0, 401, "a revocation holds on every replica");

    // A deploy started through a, followed and cancelled through b.
    stage.repo.commit(&[("public/index.html", "version three\n")], "three");
    stage.api.call(Method::PUT, &site, Some(json!({"deploy_script": "echo building\nsleep 30\n"}))).await;
    let (_, d) = api_a.call(Method::POST, &format!("{site}/deploy"), Some(json!({}))).await;
    let id = d["data"]["id"].as_str().unwrap().to_string();
    let stream = format!("{}{site}/deployments/{id}/log/stream", b.url);
    stream_until(&stream, &api_b.token, "building").await;
    let (status, reply) = api_b.call(Method::POST, &format!("{site}/deployments/{id}/cancel"), Some(json!({}))).await;
    assert_eq!(status, 202, "{reply}");
    stage.api = Api { url: a.url.clone(), token: stage.api.token.clone() };
    assert_eq!(stage.wait(&site, &id).await["status"], "cancelled");
    assert_eq!(stage.get("replicas.example.com", "/").await.1, "version two\n");

    // Deploys through either replica each run once: one deployed line per log.
    stage.api.call(Method::PUT, &site, Some(json!({"deploy_script": "true\n"}))).await;
    for (n, api) in [&api_a, &api_b, &api_a, &api_b].into_iter().enumerate() {
        stage.repo.commit(&[("public/index.html", &format!("round {n}\n"))], &format!("round {n}"));
        let (status, d) = api.call(Method::POST, &format!("{site}/deploy"), Some(json!({}))).await;
        assert_eq!(status, 202, "{d}");
        let id = d["data"]["id"].as_str().unwrap();
        assert_eq!(stage.wait(&site, id).await["status"], "succeeded");
        let log = stage.log(&site, id).await;
        assert_eq!(log.matches("==> deployed").count(), 1, "{log}");
        assert_eq!(stage.get("replicas.example.com", "/").await.1, format!("round {n}\n"));
    }
    drop((a, b));
    drop(stage);
    drop(db);
}
