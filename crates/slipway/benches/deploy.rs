//! Deploy benchmark (run by `bench/deploy`; needs root, like the end-to-end tests). Prints:
//! (a) the time from `POST deploy` to `succeeded` for a static site over loopback SSH, next to
//!     the same steps written by hand as one script sent over a single `ssh` invocation (the
//!     floor), and their ratio, with the steps the deployment recorded and how long its job
//!     runs on after `succeeded` (removing old releases);
//! (b) the same for a `generic` app (fetch, start under supervisor, health check, switch nginx to
//!     the new port, drain, stop the old process) next to its one-ssh hand-written equivalent;
//! (c) requests served and failed while four clients load the site through ten deploys;
//! (d) ten deploys fired at once, one to each of ten servers (each its own namespace host), their
//!     logs followed at once, against one deploy alone, in the same run, with the CPU time the
//!     ten cost the machine and Slipway's own process (the least time they need when they share
//!     its cores);
//! (e) the same ten servers reached across a slow link: a round trip of `BENCH_RTT_MS` (20 by
//!     default) between Slipway and each server's SSH, and between each server and its git host,
//!     made by a relay in this process that holds every byte for half of it each way. Servers are
//!     seldom on the control plane's loopback; the round trips a deploy waits for, which (d) does
//!     not see, are what ten deploys at once can overlap.
//! `BENCH_PARTS` picks parts (comma-separated: static, app, load, worker, fleet, fleet-rtt; all by
//! default).
//! `BENCH_PERF=FILE` records the whole machine with `perf record` during (d)'s rounds of ten into
//! FILE (`perf report -i FILE --sort comm` then says which programs the CPU went to).
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

/// The floor for a `generic` app: the same work as Slipway's app deploy (fetch, unpack,
/// environment, start under supervisor on the other port of the pair, health check, nginx to the
/// new port, `current`, drain, stop the old program, prune), hand-written as one script.
fn app_floor_script(url: &str, release: &str, port: u16, old: u16) -> String {
    format!(
        "set -eu\nroot=/home/slipway/floorapp.example.com\nport={port}\nold={old}\n\
         runuser -u slipway -- sh -eu -c '\n\
         cd \"$1\"; mkdir -p releases shared\n\
         if [ -d repo.git ]; then git -C repo.git fetch -q --prune --force origin \"+refs/heads/*:refs/heads/*\"; else git clone -q --mirror \"$2\" repo.git; fi\n\
         mkdir releases/$3; git -C repo.git archive main | tar -x -C releases/$3\n\
         printf \"APP_ENV=\\\"production\\\"\\n\" > releases/$3/.env\n\
         printf \"#!/bin/sh\\ncd %s/releases/%s && export PORT=%s && exec python3 -m http.server %s --bind 127.0.0.1\\n\" \"$1\" \"$3\" \"$4\" \"$4\" > start-$4.sh\n\
         chmod 700 start-$4.sh\n\
         ' sh \"$root\" '{url}' '{release}' \"$port\"\n\
         printf '[program:slipway-floorapp-%s]\\ncommand=%s/start-%s.sh\\nuser=slipway\\nautostart=true\\nstartsecs=1\\nstopasgroup=true\\nkillasgroup=true\\n' \
           \"$port\" \"$root\" \"$port\" > /etc/supervisor/conf.d/slipway-floorapp-$port.conf\n\
         supervisorctl reread >/dev/null\n\
         supervisorctl update slipway-floorapp-$port >/dev/null\n\
         until curl -fs -o /dev/null http://127.0.0.1:$port/health.txt; do sleep 0.1; done\n\
         printf 'server {{ listen 80; server_name floorapp.example.com; location / {{ proxy_pass http://127.0.0.1:%s; }} }}\\n' \"$port\" \
           > /etc/nginx/sites-enabled/slipway-floorapp.conf\n\
         nginx -t -q && nginx -s reload\n\
         runuser -u slipway -- sh -c 'cd \"$1\" && ln -sfn releases/$2 current.new && mv -Tf current.new current' sh \"$root\" '{release}'\n\
         sleep 2\n\
         if [ -e /etc/supervisor/conf.d/slipway-floorapp-$old.conf ]; then\n\
           supervisorctl stop slipway-floorapp-$old >/dev/null; rm -f /etc/supervisor/conf.d/slipway-floorapp-$old.conf; supervisorctl update >/dev/null\n\
         fi\n\
         runuser -u slipway -- sh -c 'cd \"$1\" && ls -1t releases | tail -n +6 | while read r; do rm -rf \"releases/$r\"; done' sh \"$root\"\n"
    )
}

/// With `BENCH_LOG` set: a deployment's steps and log lines, in milliseconds after it was created
/// (each line is stamped when the server produced it), to see where a deploy spends its time.
async fn print_timeline(api: &common::Api, site: &str, deployment: &serde_json::Value) {
    let at = |v: &serde_json::Value| v.as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let Some(created) = at(&deployment["created_at"]) else { return };
    let after = |v: &serde_json::Value| at(v).map_or(-1, |t| (t - created).num_milliseconds());
    let mut events: Vec<(i64, String)> = Vec::new();
    for step in deployment["steps"].as_array().into_iter().flatten() {
        events.push((after(&step["started_at"]), format!("[step] {}", step["name"].as_str().unwrap_or("?"))));
    }
    let id = deployment["id"].as_str().unwrap_or_default();
    let (_, log) = api.call(Method::GET, &format!("{site}/deployments/{id}/log"), None).await;
    for line in log["data"].as_array().into_iter().flatten() {
        events.push((after(&line["at"]), line["line"].as_str().unwrap_or_default().to_string()));
    }
    events.push((after(&deployment["finished_at"]), "[finished]".to_string()));
    events.sort_by_key(|(t, _)| *t);
    for (t, what) in events {
        println!("  {t:>6} ms  {what}");
    }
}

/// Whether `BENCH_PARTS` (comma-separated) asks for `part`; every part when it is not set.
fn wanted(part: &str) -> bool {
    std::env::var("BENCH_PARTS").map_or(true, |parts| parts.split(',').any(|p| p.trim() == part))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The machine's busy CPU time so far, every process and core together (from `/proc/stat`:
/// all time but idle and I/O wait).
fn busy_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let ticks: Vec<u64> = stat.lines().next().unwrap().split_whitespace().skip(1).map(|v| v.parse().unwrap()).collect();
    let busy: u64 = ticks.iter().sum::<u64>() - ticks[3] - ticks[4];
    // USER_HZ is 100 on Linux.
    Duration::from_millis(busy * 10)
}

/// CPU time (user and system) process `pid` has used so far, from `/proc/PID/stat`.
fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) closed by the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// Deploys (POST then wait) `runs` new commits of `repo` to `site`, each made by `commit(n)`:
/// the times, how long each was queued, each step's times by name, and how long its job ran on
/// after `succeeded`.
#[derive(Default)]
struct DeployRuns {
    times: Vec<Duration>,
    queued: Vec<Duration>,
    steps: std::collections::BTreeMap<String, Vec<Duration>>,
    /// From `succeeded` to the end of the deploy's job (what runs after: removing old releases).
    after: Vec<Duration>,
}

impl DeployRuns {
    async fn measure(api: &common::Api, site: &str, first: usize, runs: usize, commit: impl Fn(usize)) -> DeployRuns {
        let mut out = DeployRuns::default();
        for n in first..first + runs {
            commit(n);
            let started = Instant::now();
            let id = start_deploy(api, site).await;
            let deployment = succeeded(api, site, &id).await;
            out.times.push(started.elapsed());
            if std::env::var_os("BENCH_LOG").is_some() {
                print_timeline(api, site, &deployment).await;
            }
            // Where the time went, from the deployment's own record: queued until a worker took
            // it, then its steps.
            let at = |v: &serde_json::Value| v.as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            if let (Some(created), Some(started)) = (at(&deployment["created_at"]), at(&deployment["started_at"])) {
                out.queued.push((started - created).to_std().unwrap_or_default());
            }
            // The next deploy starts after this one's job has ended (it would wait for it).
            let job = api.finished(deployment["operation_id"].as_str().unwrap()).await;
            if let (Some(succeeded), Some(ended)) = (at(&deployment["finished_at"]), at(&job["finished_at"])) {
                out.after.push((ended - succeeded).to_std().unwrap_or_default());
            }
            for (i, step) in deployment["steps"].as_array().into_iter().flatten().enumerate() {
                let name = format!("{i} {}", step["name"].as_str().unwrap_or("?"));
                let took = Duration::from_millis(step["duration_ms"].as_u64().unwrap_or(0));
                out.steps.entry(name).or_default().push(took);
            }
        }
        out
    }

    /// Prints the median deploy next to the floor's, their ratio and the steps.
    fn print(self, what: &str, floor: Vec<Duration>) {
        let (s, f) = (median(self.times), median(floor));
        println!("deploy of {what} over loopback SSH, median of {RUNS}:");
        println!("  slipway POST deploy -> succeeded       {:>8.0} ms", ms(s));
        println!("  hand-written script, one ssh (floor)   {:>8.0} ms", ms(f));
        println!("  ratio slipway / floor                  {:>8.2}", s.as_secs_f64() / f.as_secs_f64());
        println!("  slipway's steps (median, as the deployment records them):");
        println!("    queued (created -> started)          {:>8.0} ms", ms(median(self.queued)));
        for (name, times) in self.steps {
            let name = name.split_once(' ').map_or(name.as_str(), |(_, n)| n).to_string();
            println!("    {name:<36} {:>8.0} ms", ms(median(times)));
        }
        println!("    succeeded -> its job ended           {:>8.1} ms", median(self.after).as_secs_f64() * 1000.0);
    }
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
    let commit = |n: usize| {
        repo.commit(&[("public/index.html", &format!("version {n}\n"))], &format!("v{n}"));
    };
    // Warm: the first deploy clones the mirror.
    DeployRuns::measure(&api, &site, 0, 1, commit).await;
    let mut next = 1;

    // One `ssh` running `script` as root on the host (a cold connection each time).
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

    // (a) A static site.
    if wanted("static") {
        let runs = DeployRuns::measure(&api, &site, next, RUNS, commit).await;
        next += RUNS;
        Command::new("mkdir").args(["-p", "/home/slipway/floor.example.com"]).status().unwrap();
        Command::new("chown").args(["slipway:slipway", "/home/slipway/floor.example.com"]).status().unwrap();
        ssh(floor_script(&repo.url, "r0"));
        // A new commit before each, as for Slipway's deploys (the commit is not timed).
        let floor: Vec<Duration> = (1..=RUNS)
            .map(|n| {
                commit(next + n);
                ssh(floor_script(&repo.url, &format!("r{n}")))
            })
            .collect();
        next += RUNS + 1;
        // What the floor pays for its connection alone: a cold `ssh` running `true`.
        let cold: Vec<Duration> = (0..RUNS).map(|_| ssh("true\n".to_string())).collect();
        runs.print("a static site", floor);
        println!("  of the floor, a cold ssh running true  {:>8.0} ms", ms(median(cold)));
    }

    // (b) A generic app: python's http.server on the port Slipway gives it.
    if wanted("app") {
        let app_repo = GitRepo::serve(&dir.join("app-git"), &host.gateway);
        let app_commit = |n: usize| {
            app_repo.commit(&[("index.html", &format!("app {n}\n")), ("health.txt", "ok\n")], &format!("app {n}"));
        };
        app_commit(0);
        let body = json!({
            "domain": "app.example.com", "project_type": "generic", "repository_url": app_repo.url,
            "app_command": "exec python3 -m http.server \"$PORT\" --bind 127.0.0.1",
            "health_check_path": "/health.txt"
        });
        let (_, app) = api.call(Method::POST, &format!("{server}/sites"), Some(body)).await;
        api.finished(app["data"]["operation_id"].as_str().unwrap()).await;
        let app = format!("{server}/sites/{}", app["data"]["id"].as_str().unwrap());
        let body = json!({"variables": {"APP_ENV": "production"}});
        api.call(Method::POST, &format!("{app}/environment-variables"), Some(body)).await;
        DeployRuns::measure(&api, &app, 1, 1, app_commit).await;
        let runs = DeployRuns::measure(&api, &app, 2, RUNS, app_commit).await;
        Command::new("mkdir").args(["-p", "/home/slipway/floorapp.example.com"]).status().unwrap();
        Command::new("chown").args(["slipway:slipway", "/home/slipway/floorapp.example.com"]).status().unwrap();
        let ports = [9300, 9301];
        ssh(app_floor_script(&app_repo.url, "r0", ports[0], ports[1]));
        let floor: Vec<Duration> = (1..=RUNS)
            .map(|n| {
                app_commit(100 + n);
                ssh(app_floor_script(&app_repo.url, &format!("r{n}"), ports[n % 2], ports[(n + 1) % 2]))
            })
            .collect();
        let slipway = median(runs.times.clone());
        let undrained = median(floor.clone()).saturating_sub(Duration::from_secs(2));
        runs.print("a generic app", floor);
        // The floor drains with `sleep 2`, as Slipway did until it waited for the old nginx
        // workers instead; without that sleep the floor is the least its steps can cost.
        println!(
            "  ratio slipway / floor without its 2 s sleep {:>4.2}",
            slipway.as_secs_f64() / undrained.as_secs_f64()
        );
        ssh("supervisorctl stop slipway-floorapp-9300 slipway-floorapp-9301 >/dev/null 2>&1 || true; \
             rm -f /etc/supervisor/conf.d/slipway-floorapp-* /etc/nginx/sites-enabled/slipway-floorapp.conf; \
             supervisorctl update >/dev/null; nginx -s reload"
            .to_string());
    }

    // (c) Load through ten deploys: every request counted.
    if wanted("load") {
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
                        let request =
                            client.get(format!("http://{address}/")).header("host", "bench.example.com").send();
                        let served = match request.await {
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
        let loaded = DeployRuns::measure(&api, &site, next, RUNS, commit).await;
        stop_tx.send(true).unwrap();
        let (mut ok, mut failed) = (0, 0);
        for c in clients {
            let (o, f) = c.await.unwrap();
            ok += o;
            failed += f;
        }
        println!(
            "under load (4 clients, no keep-alive, 15 ms apart) through {RUNS} deploys in {:.1} s:",
            loaded_started.elapsed().as_secs_f64()
        );
        println!("  deploy median                          {:>8.0} ms", ms(median(loaded.times)));
        println!("  requests served                        {ok:>8}");
        println!("  requests failed                        {failed:>8}");
    }

    // A queue worker, from POST to supervisor saying it runs (the status is read live).
    if wanted("worker") {
        let mut worker_times = Vec::new();
        for n in 0..RUNS {
            let started = Instant::now();
            let body = json!({"command": format!("exec sleep 7{n}00.5")});
            let (_, w) = api.call(Method::POST, &format!("{site}/queues"), Some(body)).await;
            let path = format!("{site}/queues/{}", w["data"]["id"].as_str().unwrap());
            let mut every = tokio::time::interval(Duration::from_millis(20));
            loop {
                every.tick().await;
                let (_, w) = api.call(Method::GET, &path, None).await;
                match w["data"]["status"].as_str() {
                    Some("running") => break,
                    Some("failed" | "unknown") => panic!("the worker did not start: {w}"),
                    _ => {}
                }
            }
            worker_times.push(started.elapsed());
            let (_, gone) = api.call(Method::DELETE, &path, None).await;
            api.finished(gone["data"]["operation_id"].as_str().unwrap()).await;
        }
        println!("queue worker, median of {RUNS} (start_seconds 1: supervisor's own wait):");
        println!("  POST queues -> status running          {:>8.0} ms", ms(median(worker_times)));
    }

    // (d) Ten servers, each with a static site and its own repository (a namespace host reaches
    // only its own gateway), all deployed at once; against one of them deployed alone. Then (e)
    // the same servers reached across a link with a round trip of `BENCH_RTT_MS`.
    if wanted("fleet") || wanted("fleet-rtt") {
        let mut fleet = Vec::new();
        for k in 0..FLEET {
            fleet.push(FleetServer::start(&api, &dir, k).await);
        }
        let pid = slipway.child.id();
        if wanted("fleet") {
            let perf = std::env::var_os("BENCH_PERF").map(PerfRecording::start);
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            println!("{FLEET} servers (namespace hosts sharing this machine's {cores} cores), median of 3:");
            fleet_rounds(&api, &fleet, pid, perf).await;
        }
        if wanted("fleet-rtt") {
            let rtt = std::env::var("BENCH_RTT_MS").map_or(20, |v| v.parse().expect("BENCH_RTT_MS: milliseconds"));
            let one_way = Duration::from_millis(rtt) / 2;
            for f in &mut fleet {
                f.behind_latency(&api, one_way).await;
            }
            println!(
                "{FLEET} servers, {rtt} ms round trip between Slipway and each server and between each server and \
                 its git host (a relay that holds every byte {} ms each way), median of 3:",
                ms(one_way)
            );
            fleet_rounds(&api, &fleet, pid, None).await;
        }
        drop(fleet);
    }
    drop(repo);
    drop(host);
    drop(slipway);
    let _ = std::fs::remove_dir_all(&dir);
    common::clean_test_host_files();
}

/// One of `fleet`'s servers deployed alone (three times), then all of them at once (three rounds,
/// their logs followed at once); prints the medians, their ratio and the CPU the ten used.
async fn fleet_rounds(api: &common::Api, fleet: &[FleetServer], pid: u32, mut perf: Option<PerfRecording>) {
    let mut alone = Vec::new();
    for _ in 0..3 {
        alone.push(fleet[0].deploy(api, fleet[0].next_version()).await);
    }
    let (mut together, mut machine_cpu, mut slipway_cpu) = (Vec::new(), Duration::ZERO, Duration::ZERO);
    for _ in 0..3 {
        for f in fleet {
            f.commit(f.next_version());
        }
        if let Some(perf) = &mut perf {
            perf.resume();
        }
        // The POSTs go out back to back (a few ms each); then every deployment's log is
        // followed at once, as ten CI jobs each running `slipway deploy` would.
        let (started, machine, own) = (Instant::now(), busy_cpu(), process_cpu(pid));
        let mut ids = Vec::new();
        for f in fleet {
            ids.push(f.start_deploy(api).await);
        }
        let followers: Vec<_> = fleet
            .iter()
            .zip(ids)
            .map(|(f, id)| {
                let (api, site) = (api.clone(), f.site.clone());
                tokio::spawn(async move { succeeded(&api, &site, &id).await })
            })
            .collect();
        let mut deployments = Vec::new();
        for follower in followers {
            deployments.push(follower.await.unwrap());
        }
        together.push(started.elapsed());
        machine_cpu += busy_cpu() - machine;
        slipway_cpu += process_cpu(pid) - own;
        if let Some(perf) = &mut perf {
            perf.pause();
        }
        // The next round starts once every job has ended (untimed: what runs after
        // `succeeded` is the removal of old releases).
        for deployment in &deployments {
            api.finished(deployment["operation_id"].as_str().unwrap()).await;
        }
    }
    drop(perf);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (one, all) = (median(alone), median(together.clone()));
    let rounds = together.len() as u32;
    let (machine_cpu, slipway_cpu) = (machine_cpu / rounds, slipway_cpu / rounds);
    // However the work is spread, these cores cannot give the ten their CPU time faster.
    let bound = machine_cpu.as_secs_f64() / cores as f64 / one.as_secs_f64();
    println!("  one deploy alone                       {:>8.0} ms", ms(one));
    println!("  {FLEET} deploys at once, one per server    {:>8.0} ms", ms(all));
    println!("  ratio all at once / one                {:>8.2}", all.as_secs_f64() / one.as_secs_f64());
    println!("  CPU the {FLEET} used, every process         {:>8.0} ms", ms(machine_cpu));
    println!("    of which Slipway's own process       {:>8.0} ms", ms(slipway_cpu));
    println!("  least ratio {cores} cores allow for that CPU   {:>8.2}", bound);
}

/// `perf record` of every CPU, counting only while resumed (its control FIFO): the rounds of ten,
/// not the commits between them. Dropping it ends the recording and waits for the file.
struct PerfRecording {
    child: std::process::Child,
    control: std::fs::File,
    ack: std::fs::File,
    dir: std::path::PathBuf,
}

impl PerfRecording {
    fn start(output: std::ffi::OsString) -> PerfRecording {
        use std::os::unix::fs::OpenOptionsExt as _;
        let dir = std::env::temp_dir().join(format!("slipway-bench-perf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (control, ack) = (dir.join("control"), dir.join("ack"));
        for fifo in [&control, &ack] {
            assert!(Command::new("mkfifo").arg(fifo).status().unwrap().success());
        }
        // Opened read-write, neither end waits for perf (which may never open them, if it fails
        // to start); the answers are waited for with poll(2), watching perf meanwhile.
        let open = |path: &std::path::Path| {
            std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK).open(path).unwrap()
        };
        let (control_end, ack_end) = (open(&control), open(&ack));
        let control_arg = format!("fifo:{},{}", control.display(), ack.display());
        let spawned = Command::new("perf")
            .args(["record", "-a", "-F", "999", "-D", "-1", "--control", &control_arg, "-q", "-o"])
            .arg(&output)
            .stdout(std::process::Stdio::null())
            .spawn();
        let Ok(child) = spawned else {
            let _ = std::fs::remove_dir_all(&dir);
            panic!("BENCH_PERF needs perf: {spawned:?}");
        };
        PerfRecording { child, control: control_end, ack: ack_end, dir }
    }

    /// Sends `command` and waits (at most 30 s) for perf's answer; ends the bench if perf has
    /// exited or does not answer.
    fn command(&mut self, command: &str) {
        use std::io::{Read as _, Write as _};
        use std::os::fd::AsRawFd as _;
        self.control.write_all(format!("{command}\n").as_bytes()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut reply = [0u8; 16];
        loop {
            match self.ack.read(&mut reply) {
                Ok(n) if n > 0 => return,
                Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => panic!("reading perf's answer: {e}"),
                _ => {}
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("perf ended ({status}) before it answered {command}");
            }
            assert!(Instant::now() < deadline, "perf did not answer {command} within 30 s");
            // Until the answer arrives, or a tenth of a second passes to look at perf again.
            let mut ready = libc::pollfd { fd: self.ack.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one pollfd, valid for the call, for a descriptor this struct owns.
            #[allow(unsafe_code)]
            unsafe {
                libc::poll(&mut ready, 1, 100)
            };
        }
    }

    fn resume(&mut self) {
        self.command("enable");
    }

    fn pause(&mut self) {
        self.command("disable");
    }
}

impl Drop for PerfRecording {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A provisioned namespace host with one static site deploying from its own repository.
struct FleetServer {
    server: String,
    site: String,
    repo: GitRepo,
    host: NetnsHost,
    /// The last version committed.
    version: std::sync::atomic::AtomicUsize,
    /// Once the server is reached across a slow link: the relays its SSH and git go through.
    relays: Vec<LatencyRelay>,
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
        let fleet = FleetServer {
            server,
            site,
            repo,
            host,
            version: std::sync::atomic::AtomicUsize::new(0),
            relays: Vec::new(),
        };
        fleet.deploy(api, fleet.next_version()).await; // warm: the first one clones the mirror
        fleet
    }

    fn next_version(&self) -> usize {
        self.version.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }

    /// From now on Slipway reaches this server's SSH, and the server its git host, through
    /// relays that hold every byte for `one_way` each way: a link with a round trip of twice that.
    async fn behind_latency(&mut self, api: &common::Api, one_way: Duration) {
        let ssh = LatencyRelay::start(&self.host.gateway, (self.host.address.as_str(), 22), one_way).await;
        let (_, port) = self.repo.url.rsplit_once(':').unwrap();
        let (port, path) = port.split_once('/').unwrap();
        let git =
            LatencyRelay::start(&self.host.gateway, (self.host.gateway.as_str(), port.parse().unwrap()), one_way).await;
        let url = format!("git://{}:{}/{path}", self.host.gateway, git.port);
        let (status, body) = api
            .call(Method::PUT, &self.server, Some(json!({"ip_address": self.host.gateway, "ssh_port": ssh.port})))
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = api.call(Method::PUT, &self.site, Some(json!({"repository_url": url}))).await;
        assert_eq!(status, 200, "{body}");
        self.relays = vec![ssh, git];
        // Warm: the first deploy opens the connection through the relay.
        self.deploy(api, self.next_version()).await;
    }

    fn commit(&self, n: usize) {
        self.repo.commit(&[("public/index.html", &format!("version {n}\n"))], &format!("v{n}"));
    }

    /// Commits version `n` and deploys it alone: the time from POST to `succeeded`. Returns once
    /// its job has ended, so that the next deploy never waits for it.
    async fn deploy(&self, api: &common::Api, n: usize) -> Duration {
        self.commit(n);
        let started = Instant::now();
        let id = self.start_deploy(api).await;
        let deployment = succeeded(api, &self.site, &id).await;
        let took = started.elapsed();
        api.finished(deployment["operation_id"].as_str().unwrap()).await;
        took
    }

    async fn start_deploy(&self, api: &common::Api) -> String {
        start_deploy(api, &self.site).await
    }
}

/// A TCP relay that holds every byte for a fixed time in each direction before passing it on: a
/// link with that latency and no bandwidth limit, as between a control plane and servers in
/// another data centre. (This machine's kernel has no `netem`, hence a relay.) Dropping it ends
/// its connections.
struct LatencyRelay {
    port: u16,
    accepting: tokio::task::JoinHandle<()>,
}

impl LatencyRelay {
    async fn start(listen: &str, to: (&str, u16), one_way: Duration) -> LatencyRelay {
        let listener = tokio::net::TcpListener::bind((listen, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let to: std::net::SocketAddr = format!("{}:{}", to.0, to.1).parse().unwrap();
        let accepting = tokio::spawn(async move {
            // Held here, so that aborting this task ends every connection too.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    // A TCP handshake costs the client one round trip before it can send.
                    tokio::time::sleep(one_way * 2).await;
                    let Ok(outbound) = tokio::net::TcpStream::connect(to).await else { return };
                    let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
                    let ((from_in, to_in), (from_out, to_out)) = (inbound.into_split(), outbound.into_split());
                    tokio::join!(delayed_copy(from_in, to_out, one_way), delayed_copy(from_out, to_in, one_way));
                });
            }
        });
        LatencyRelay { port, accepting }
    }
}

impl Drop for LatencyRelay {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// Copies `from` to `to`, each chunk (and the end) written `delay` after it was read.
async fn delayed_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (chunks, mut queued) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let reading = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf).await.unwrap_or(0);
            // An empty chunk is the end of the stream.
            if chunks.send((tokio::time::Instant::now() + delay, buf[..n].to_vec())).is_err() || n == 0 {
                break;
            }
        }
    };
    let writing = async move {
        while let Some((due, chunk)) = queued.recv().await {
            tokio::time::sleep_until(due).await;
            if chunk.is_empty() || to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reading, writing);
}

/// Asks for a deploy of `site` (its API path); the deployment's id.
async fn start_deploy(api: &common::Api, site: &str) -> String {
    let (_, d) = api.call(Method::POST, &format!("{site}/deploy"), Some(json!({}))).await;
    d["data"]["id"].as_str().unwrap().to_string()
}

/// Follows deployment `id`'s log stream, as `slipway deploy` does, until its `end` event, and
/// returns the deployment that event carries: the client learns of the end when it is written,
/// not at its next poll. A failure, or no end within five minutes, ends the bench.
async fn succeeded(api: &common::Api, site: &str, id: &str) -> serde_json::Value {
    const END: &str = "event: end\ndata: ";
    let url = format!("{}{site}/deployments/{id}/log/stream", api.url);
    let mut response = common::http().get(&url).bearer_auth(&api.token).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut seen = String::new();
    loop {
        if let Some(at) = seen.find(END)
            && let Some((data, _)) = seen[at + END.len()..].split_once('\n')
        {
            let d: serde_json::Value = serde_json::from_str(data).unwrap();
            assert_eq!(d["status"], "succeeded", "deployment failed: {d}");
            return d;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, response.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("deployment {id}'s stream ended or stalled before its end ({other:?}): {seen}"),
        }
    }
}
