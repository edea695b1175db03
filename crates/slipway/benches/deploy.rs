//! Deploy benchmark (run by `bench/deploy`; needs root, like the end-to-end tests). Prints:
//! (a) the time from `POST deploy` to `succeeded` for a static site over loopback SSH, next to
//!     the same steps written by hand as one script sent over a single `ssh` invocation (the
//!     floor), and their ratio;
//! (b) requests served and failed while four clients load the site through ten deploys;
//! (c) ten deploys fired at once, one to each of ten servers (each its own namespace host),
//!     against one deploy alone, in the same run.
//! No assertion on time: these are figures.

#![allow(clippy::print_stdout)]

#[path = "../tests/e2e/common.rs"]
#[allow(dead_code, reason = "a bench uses only some of the end-to-end tests' helpers")]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{GitRepo, Server, owner, temp_data_dir};
use reqwest::Method;
use serde_json::json;
use slipway_remote::testing::NetnsHost;

const RUNS: usize = 10;
/// Servers deployed to at once in (c).
const FLEET: usize = 10;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The floor: fetch, unpack, environment, deploy script, check, switch and prune, as one
/// hand-written script over one `ssh` (the same work Slipway's steps do, without the API, the
/// job queue, the separate steps or the bookkeeping).
fn floor_script(url: &str, release: &str) -> String {
    format!(
        "set -eu\nroot=/home/slipway/floor.example.com\nrunuser -u slipway -- sh -eu -c '\n\
         cd \"$1\"; mkdir -p releases shared\n\
         if [ -d repo.git ]; then git -C repo.git fetch -q --prune --force origin \"+refs/heads/*:refs/heads/*\"; else git clone -q --mirror \"$2\" repo.git; fi\n\
         mkdir releases/$3; git -C repo.git archive main | tar -x -C releases/$3\n\
         printf \"APP_ENV=\\\"production\\\"\\n\" > releases/$3/.env\n\
         (cd releases/$3 && true)\n\
         test -d releases/$3/public\n\
         ln -sfn releases/$3 current.new && mv -Tf current.new current\n\
         ls -1t releases | tail -n +6 | while read old; do rm -rf \"releases/$old\"; done\n\
         ' sh \"$root\" '{url}' '{release}'\n"
    )
}

#[tokio::main]
async fn main() {
    common::clean_test_host_files();
    let dir = temp_data_dir();
    let slipway = Server::start(&dir, &[("SLIPWAY_RATE_LIMIT_API", "1000000"), ("SLIPWAY_LOG", "warn")]).unwrap();
    let api = owner(&slipway).await;
    let (_, created) = api
        .call(
            Method::POST,
            "/api/v1/servers",
            Some(json!({"name": "bench", "provider": "custom", "ip_address": "192.0.2.1"})),
        )
        .await;
    let server = format!("/api/v1/servers/{}", created["data"]["id"].as_str().unwrap());
    let bench_key = dir.join("bench_key");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&bench_key)
            .status()
            .unwrap()
            .success()
    );
    let bench_public = std::fs::read_to_string(bench_key.with_extension("pub")).unwrap();
    let host =
        NetnsHost::start(&[created["data"]["authorization"]["public_key"].as_str().unwrap(), bench_public.trim()]);
    api.call(Method::PUT, &server, Some(json!({"ip_address": host.address}))).await;
    let (_, op) = api.call(Method::POST, &format!("{server}/provision"), Some(json!({}))).await;
    assert_eq!(
        api.finished_within(op["data"]["id"].as_str().unwrap(), Duration::from_secs(300)).await["status"],
        "succeeded"
    );
    let repo = GitRepo::serve(&dir.join("git"), &host.gateway);
    repo.commit(&[("public/index.html", "version 0\n")], "v0");

    let (_, site) = api
        .call(
            Method::POST,
            &format!("{server}/sites"),
            Some(json!({"domain": "bench.example.com", "project_type": "static", "web_directory": "public", "repository_url": repo.url})),
        )
        .await;
    api.finished(site["data"]["operation_id"].as_str().unwrap()).await;
    let site = format!("{server}/sites/{}", site["data"]["id"].as_str().unwrap());
    api.call(
        Method::POST,
        &format!("{site}/environment-variables"),
        Some(json!({"variables": {"APP_ENV": "production"}})),
    )
    .await;

    let deploy = |n: usize| {
        let (api, site, repo) = (&api, &site, &repo);
        async move {
            let content = format!("version {n}\n");
            repo.commit(&[("public/index.html", &content)], &format!("v{n}"));
            let started = Instant::now();
            let id = start_deploy(api, site).await;
            let deployment = succeeded(api, site, &id).await;
            (started.elapsed(), deployment)
        }
    };
    deploy(0).await; // warm: the first one clones the mirror
    let (mut slipway_times, mut step_times) = (Vec::new(), std::collections::BTreeMap::<String, Vec<_>>::new());
    let mut queued_times = Vec::new();
    for n in 1..=RUNS {
        let (took, deployment) = deploy(n).await;
        slipway_times.push(took);
        // Where the time went, from the deployment's own record: queued until a worker took it,
        // then its steps.
        let at = |v: &serde_json::Value| v.as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        if let (Some(created), Some(started)) = (at(&deployment["created_at"]), at(&deployment["started_at"])) {
            queued_times.push((started - created).to_std().unwrap_or_default());
        }
        let steps = &deployment["steps"];
        for (i, step) in steps.as_array().into_iter().flatten().enumerate() {
            let name = format!("{i} {}", step["name"].as_str().unwrap_or("?"));
            let ms = step["duration_ms"].as_u64().unwrap_or(0);
            step_times.entry(name).or_default().push(Duration::from_millis(ms));
        }
    }

    Command::new("mkdir").args(["-p", "/home/slipway/floor.example.com"]).status().unwrap();
    Command::new("chown").args(["slipway:slipway", "/home/slipway/floor.example.com"]).status().unwrap();
    let ssh = |script: String| {
        let started = Instant::now();
        let mut child = Command::new("ssh")
            .arg("-i")
            .arg(&bench_key)
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg(format!("root@{}", host.address))
            .arg("sh -s")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "the floor script failed");
        started.elapsed()
    };
    ssh(floor_script(&repo.url, "r0"));
    let floor_times: Vec<Duration> = (1..=RUNS).map(|n| ssh(floor_script(&repo.url, &format!("r{n}")))).collect();

    // (b) Load through ten deploys: every request counted.
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (address, mut stop) = (host.address.clone(), stop.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .pool_max_idle_per_host(0)
                    .build()
                    .unwrap();
                let (mut ok, mut failed) = (0u64, 0u64);
                while !*stop.borrow_and_update() {
                    // Below ~250 new connections a second: each closed one holds a local port
                    // in TIME_WAIT for a minute, and faster clients run out of ports first.
                    tokio::time::sleep(Duration::from_millis(15)).await;
                    let served =
                        match client.get(format!("http://{address}/")).header("host", "bench.example.com").send().await
                        {
                            Ok(r) if r.status() == 200 => r.text().await.is_ok_and(|b| b.starts_with("version")),
                            _ => false,
                        };
                    if served { ok += 1 } else { failed += 1 }
                }
                (ok, failed)
            })
        })
        .collect();
    let loaded_started = Instant::now();
    let mut loaded_times = Vec::new();
    for n in RUNS + 1..=RUNS * 2 {
        loaded_times.push(deploy(n).await.0);
    }
    stop_tx.send(true).unwrap();
    let (mut ok, mut failed) = (0, 0);
    for c in clients {
        let (o, f) = c.await.unwrap();
        ok += o;
        failed += f;
    }
    let loaded_for = loaded_started.elapsed();

    // A queue worker, from POST to supervisor saying it runs (the status is read live).
    let mut worker_times = Vec::new();
    for n in 0..RUNS {
        let started = Instant::now();
        let body = json!({"command": format!("exec sleep 7{n}00.5")});
        let (_, w) = api.call(Method::POST, &format!("{site}/queues"), Some(body)).await;
        let path = format!("{site}/queues/{}", w["data"]["id"].as_str().unwrap());
        loop {
            let (_, w) = api.call(Method::GET, &path, None).await;
            match w["data"]["status"].as_str() {
                Some("running") => break,
                Some("failed" | "unknown") => panic!("the worker did not start: {w}"),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        worker_times.push(started.elapsed());
        let (_, gone) = api.call(Method::DELETE, &path, None).await;
        api.finished(gone["data"]["operation_id"].as_str().unwrap()).await;
    }

    // (c) Ten servers, each with a static site and its own repository (a namespace host reaches
    // only its own gateway), all deployed at once; against one of them deployed alone.
    let mut fleet = Vec::new();
    for k in 0..FLEET {
        fleet.push(FleetServer::start(&api, &dir, k).await);
    }
    let alone: Vec<Duration> = {
        let mut times = Vec::new();
        for n in 1..=3 {
            times.push(fleet[0].deploy(&api, n).await);
        }
        times
    };
    let mut together = Vec::new();
    for round in 0..3 {
        for f in &fleet {
            f.commit(10 + round);
        }
        // The POSTs go out back to back (a few ms each); then every deployment is waited for.
        let started = Instant::now();
        let mut ids = Vec::new();
        for f in &fleet {
            ids.push(f.start_deploy(&api).await);
        }
        for (f, id) in fleet.iter().zip(&ids) {
            f.succeeded(&api, id).await;
        }
        together.push(started.elapsed());
    }

    let (s, f) = (median(slipway_times), median(floor_times));
    println!("deploy of a static site over loopback SSH, median of {RUNS}:");
    println!("  slipway POST deploy -> succeeded       {:>8.0} ms", s.as_secs_f64() * 1000.0);
    println!("  hand-written script, one ssh (floor)   {:>8.0} ms", f.as_secs_f64() * 1000.0);
    println!("  ratio slipway / floor                  {:>8.2}", s.as_secs_f64() / f.as_secs_f64());
    println!("  slipway's steps (median, as the deployment records them):");
    println!("    queued (created -> started)          {:>8.0} ms", median(queued_times).as_secs_f64() * 1000.0);
    for (name, times) in step_times {
        let name = name.split_once(' ').map_or(name.as_str(), |(_, n)| n).to_string();
        println!("    {name:<36} {:>8.0} ms", median(times).as_secs_f64() * 1000.0);
    }
    println!(
        "under load (4 clients, no keep-alive, 15 ms apart) through {RUNS} deploys in {:.1} s:",
        loaded_for.as_secs_f64()
    );
    println!("  deploy median                          {:>8.0} ms", median(loaded_times).as_secs_f64() * 1000.0);
    println!("  requests served                        {ok:>8}");
    println!("  requests failed                        {failed:>8}");
    println!("queue worker, median of {RUNS} (start_seconds 1: supervisor's own wait):");
    println!("  POST queues -> status running          {:>8.0} ms", median(worker_times).as_secs_f64() * 1000.0);
    let (one, all) = (median(alone), median(together));
    println!("{FLEET} servers (namespace hosts sharing this machine's cores), median of 3:");
    println!("  one deploy alone                       {:>8.0} ms", one.as_secs_f64() * 1000.0);
    println!("  {FLEET} deploys at once, one per server    {:>8.0} ms", all.as_secs_f64() * 1000.0);
    println!("  ratio all at once / one                {:>8.2}", all.as_secs_f64() / one.as_secs_f64());
    drop(fleet);
    drop(repo);
    drop(host);
    drop(slipway);
    let _ = std::fs::remove_dir_all(&dir);
    common::clean_test_host_files();
}

/// A provisioned namespace host with one static site deploying from its own repository.
struct FleetServer {
    site: String,
    repo: GitRepo,
    _host: NetnsHost,
}

impl FleetServer {
    async fn start(api: &common::Api, dir: &std::path::Path, k: usize) -> FleetServer {
        let body = json!({"name": format!("fleet-{k}"), "provider": "custom", "ip_address": "192.0.2.1"});
        let (_, created) = api.call(Method::POST, "/api/v1/servers", Some(body)).await;
        let server = format!("/api/v1/servers/{}", created["data"]["id"].as_str().unwrap());
        let host = NetnsHost::start(&[created["data"]["authorization"]["public_key"].as_str().unwrap()]);
        api.call(Method::PUT, &server, Some(json!({"ip_address": host.address}))).await;
        let (_, op) = api.call(Method::POST, &format!("{server}/provision"), Some(json!({}))).await;
        let provisioned = api.finished_within(op["data"]["id"].as_str().unwrap(), Duration::from_secs(300)).await;
        assert_eq!(provisioned["status"], "succeeded", "provisioning fleet-{k}");
        let repo = GitRepo::serve(&dir.join(format!("fleet-git-{k}")), &host.gateway);
        repo.commit(&[("public/index.html", "version 0\n")], "v0");
        let body = json!({"domain": format!("fleet{k}.example.com"), "project_type": "static", "web_directory": "public", "repository_url": repo.url});
        let (_, site) = api.call(Method::POST, &format!("{server}/sites"), Some(body)).await;
        api.finished(site["data"]["operation_id"].as_str().unwrap()).await;
        let site = format!("{server}/sites/{}", site["data"]["id"].as_str().unwrap());
        let fleet = FleetServer { site, repo, _host: host };
        fleet.deploy(api, 0).await; // warm: the first one clones the mirror
        fleet
    }

    fn commit(&self, n: usize) {
        self.repo.commit(&[("public/index.html", &format!("version {n}\n"))], &format!("v{n}"));
    }

    /// Commits version `n` and deploys it: the time from POST to `succeeded`.
    async fn deploy(&self, api: &common::Api, n: usize) -> Duration {
        self.commit(n);
        let started = Instant::now();
        let id = self.start_deploy(api).await;
        self.succeeded(api, &id).await;
        started.elapsed()
    }

    async fn start_deploy(&self, api: &common::Api) -> String {
        start_deploy(api, &self.site).await
    }

    async fn succeeded(&self, api: &common::Api, id: &str) {
        succeeded(api, &self.site, id).await;
    }
}

/// Asks for a deploy of `site` (its API path); the deployment's id.
async fn start_deploy(api: &common::Api, site: &str) -> String {
    let (_, d) = api.call(Method::POST, &format!("{site}/deploy"), Some(json!({}))).await;
    d["data"]["id"].as_str().unwrap().to_string()
}

/// Polls deployment `id` every 10 ms until it succeeds, and returns it; a failure, or no end
/// within five minutes, ends the bench.
async fn succeeded(api: &common::Api, site: &str, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut every = tokio::time::interval(Duration::from_millis(10));
    loop {
        every.tick().await;
        let (_, d) = api.call(Method::GET, &format!("{site}/deployments/{id}"), None).await;
        match d["data"]["status"].as_str() {
            Some("succeeded") => return d["data"].clone(),
            Some("failed" | "cancelled") => panic!("deployment failed: {d}"),
            _ => assert!(Instant::now() < deadline, "deployment {id} did not end within 5 minutes: {d}"),
        }
    }
}
