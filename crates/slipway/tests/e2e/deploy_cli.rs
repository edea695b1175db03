//! The command-line client for sites, deployments and environment variables, end to end: the
//! real binary against a running Slipway, a provisioned test host in a network namespace (see
//! `provision.rs`) and a repository served by `git daemon` on this machine's side of the link.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Api, GitRepo, Server, owner, temp_data_dir};
use reqwest::Method;
use serde_json::{Value, json};
use slipway_remote::testing::NetnsHost;

const UNLIMITED: (&str, &str) = ("SLIPWAY_RATE_LIMIT_API", "1000000");
const DOMAIN: &str = "cli.example.com";

/// What nginx on the host answers for the site at `/`.
async fn served(host: &NetnsHost) -> (u16, String) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let response =
        client.get(format!("http://{}/", host.address)).header("host", DOMAIN).send().await.expect("nginx answers");
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The build each commit carries: the site's deploy script runs it.
const GOOD_BUILD: &str = "test \"$GREETING\" = \"hello world\"\necho \"build: the environment is in place\"\n";

/// Registers a server named `name`, starts a namespace test host for it and provisions it
/// through the API; returns the server's id and the host.
async fn provisioned_server(api: &Api, name: &str) -> (String, NetnsHost) {
    let body = json!({"name": name, "provider": "custom", "ip_address": "192.0.2.1", "ssh_port": 22});
    let (status, created) = api.call(Method::POST, "/api/v1/servers", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let server = created["data"]["id"].as_str().unwrap().to_string();
    let host = NetnsHost::start(&[created["data"]["authorization"]["public_key"].as_str().unwrap()]);
    api.call(Method::PUT, &format!("/api/v1/servers/{server}"), Some(json!({"ip_address": host.address}))).await;
    let (_, op) = api.call(Method::POST, &format!("/api/v1/servers/{server}/provision"), Some(json!({}))).await;
    let op = api.finished_within(op["data"]["id"].as_str().unwrap(), Duration::from_secs(180)).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    (server, host)
}

#[tokio::test]
async fn netns_the_cli_creates_a_site_sets_env_deploys_fails_and_rolls_back() {
    common::clean_test_host_files();
    let dir = temp_data_dir();
    let slipway = Server::start(&dir, &[UNLIMITED]).unwrap();
    let api = owner(&slipway).await;
    let (server, host) = provisioned_server(&api, "web").await;
    let repo = GitRepo::serve(&dir.join("git"), &host.gateway);

    let env = [("SLIPWAY_URL", api.url.as_str()), ("SLIPWAY_TOKEN", api.token.as_str())];
    let run = |args: &[&str]| {
        let out = common::slipway(&dir, &env).args(args).output().unwrap();
        let text =
            (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        (out.status.success(), text.0, text.1)
    };

    // A static site whose deploy script runs the build.sh of each commit.
    let script = dir.join("deploy.sh");
    std::fs::write(&script, "sh build.sh\n").unwrap();
    let (ok, out, err) = run(&[
        "site",
        "create",
        &server,
        DOMAIN,
        "--type",
        "static",
        "--repo",
        &repo.url,
        "--web-dir",
        "public",
        "--deploy-script-file",
        script.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(ok, "{out}{err}");
    assert!(!out.contains("usermod") && !err.contains("usermod"), "no server chatter when all went well: {out}{err}");
    let site: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((site["status"].as_str(), site["deploy_script"].as_str()), (Some("installed"), Some("sh build.sh\n")));
    let site = site["id"].as_str().unwrap().to_string();
    let (ok, out, err) = run(&["site", "list", &server]);
    assert!(ok && out.contains(DOMAIN) && out.contains("installed"), "{out}{err}");

    let (ok, _, err) = run(&["env", "set", &server, &site, "GREETING"]);
    assert!(!ok && err.contains("is not KEY=VALUE"), "{err}");
    let (ok, out, err) = run(&["env", "set", &server, DOMAIN, "GREETING=hello world", "MODE=a=b"]);
    assert!(ok, "{out}{err}");

    // A good first version: the log streams, nginx serves it.
    repo.commit(&[("public/index.html", "version one\n"), ("build.sh", GOOD_BUILD)], "first version");
    let (ok, out, err) = run(&["deploy", &server, &site]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("==> fetching main") && out.contains("build: the environment is in place"), "{out}");
    assert!(out.contains("Deployed") && out.contains("first version"), "{out}");
    assert_eq!(served(&host).await, (200, "version one\n".to_string()));

    // Settings that take effect with the next deploy, and one applied to nginx at once.
    let (ok, out, err) = run(&[
        "site",
        "update",
        &server,
        DOMAIN,
        "--health-timeout",
        "20",
        "--health-status",
        "200",
        "--output",
        "json",
    ]);
    assert!(ok, "{out}{err}");
    let updated: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (updated["health_check"]["timeout"].as_i64(), updated["health_check"]["expected_status"].as_i64()),
        (Some(20), Some(200))
    );
    let (ok, out, err) = run(&["site", "update", &server, DOMAIN, "--web-dir", "public"]);
    assert!(ok && out.contains("web directory: public"), "{out}{err}");
    assert_eq!(served(&host).await, (200, "version one\n".to_string()));
    let (ok, _, err) = run(&["site", "update", &server, DOMAIN]);
    assert!(!ok && err.contains("nothing to change"), "{err}");

    // A second version whose build fails: non-zero, the step named, the first still served.
    repo.commit(&[("public/index.html", "version two\n"), ("build.sh", "echo about to fail\nexit 3\n")], "broken");
    let (ok, out, err) = run(&["deploy", &server, DOMAIN]);
    assert!(!ok, "{out}{err}");
    assert!(out.contains("about to fail"), "{out}");
    assert!(err.contains("failed at the build step") && err.contains("deploy script failed"), "{err}");
    assert_eq!(served(&host).await.1, "version one\n");
    // With --output json: one document, the error carrying the deployment.
    let (ok, out, err) = run(&["deploy", &server, DOMAIN, "--output", "json"]);
    assert!(!ok, "{out}{err}");
    let document: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        (document["deployment"]["status"].as_str(), document["deployment"]["failed_step"].as_str()),
        (Some("failed"), Some("build"))
    );

    let (ok, out, err) = run(&["deployments", &server, &site]);
    assert!(ok, "{out}{err}");
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{out}");
    for row in &rows[..2] {
        assert!(row.contains("failed") && row.contains("broken") && row.contains("build"), "{out}");
    }
    assert!(rows[2].contains("succeeded") && rows[2].contains("cli") && rows[2].contains("first version"), "{out}");

    // A good third version, then a rollback to the first.
    repo.commit(&[("public/index.html", "version three\n"), ("build.sh", GOOD_BUILD)], "third version");
    let (ok, out, err) = run(&["deploy", &server, &site]);
    assert!(ok, "{out}{err}");
    assert!(out.lines().any(|l| l.starts_with("Steps: connect ") && l.contains(", switch ")), "{out}");
    assert_eq!(served(&host).await.1, "version three\n");
    let (ok, out, err) = run(&["releases", &server, &site]);
    assert!(ok, "{out}{err}");
    assert!(out.lines().any(|l| l.starts_with('*') && l.contains("third version")), "{out}");
    let (ok, out, err) = run(&["rollback", &server, &site]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("==> rolling back to release"), "{out}");
    assert!(out.contains("Rolled back to release") && out.contains("(commit ") && !out.contains("Deployed"), "{out}");
    assert_eq!(served(&host).await.1, "version one\n");
    let (ok, out, err) = run(&["deployments", &server, &site, "--output", "json"]);
    assert!(ok, "{out}{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["data"][0]["trigger"], "rollback", "{listed}");

    // Values are hidden unless revealed; unset removes a key.
    let (ok, out, err) = run(&["env", "list", &server, &site]);
    assert!(ok && out.contains("GREETING") && out.contains("MODE") && !out.contains("hello world"), "{out}{err}");
    let (ok, out, err) = run(&["env", "list", &server, &site, "--reveal"]);
    assert!(ok && out.contains("GREETING=\"hello world\"") && out.contains("MODE=\"a=b\""), "{out}{err}");
    let (ok, out, err) = run(&["env", "unset", &server, &site, "MODE"]);
    assert!(ok, "{out}{err}");
    let (_, out, _) = run(&["env", "list", &server, &site]);
    assert!(out.contains("GREETING") && !out.contains("MODE"), "{out}");
    // The server's .env still has MODE (from the last deploy): pulling brings it back.
    let (ok, out, err) = run(&["env", "pull", &server, &site]);
    assert!(ok && out.contains("imported"), "{out}{err}");
    let (_, out, _) = run(&["env", "list", &server, &site, "--reveal"]);
    assert!(out.contains("MODE=\"a=b\""), "{out}");

    // An in-place site, deployed, then converted to releases from the CLI.
    let (ok, out, err) = run(&[
        "site",
        "create",
        &server,
        "inplace-cli.example.com",
        "--type",
        "static",
        "--repo",
        &repo.url,
        "--web-dir",
        "public",
        "--in-place",
    ]);
    assert!(ok && out.contains("deploys: in place"), "{out}{err}");
    let (ok, out, err) = run(&["deploy", &server, "inplace-cli.example.com"]);
    assert!(ok && out.contains("checking out"), "{out}{err}");
    let (ok, out, err) = run(&["site", "enable-zero-downtime", &server, "inplace-cli.example.com"]);
    assert!(ok, "{out}{err}");
    assert!(err.contains("Converting to zero-downtime releases"), "{err}");
    assert!(out.contains("copying the live site into release") && out.contains("Converted"), "{out}");
    let (ok, out, err) = run(&["site", "enable-zero-downtime", &server, "inplace-cli.example.com"]);
    assert!(!ok && err.contains("already deploys with zero downtime"), "{out}{err}");
    let (ok, out, err) = run(&["site", "show", &server, "inplace-cli.example.com", "--output", "json"]);
    assert!(ok && serde_json::from_str::<Value>(&out).unwrap()["zero_downtime"] == true, "{out}{err}");
    let (ok, out, err) = run(&["site", "delete", &server, "inplace-cli.example.com"]);
    assert!(!ok && err.contains("pass --yes to confirm"), "no terminal to ask on: {out}{err}");
    let (ok, out, err) = run(&["site", "delete", &server, "inplace-cli.example.com", "--yes"]);
    assert!(ok, "{out}{err}");

    // Suspend, resume, and delete (which also leaves this machine's nginx as it was).
    let (ok, out, err) = run(&["site", "suspend", &server, &site]);
    assert!(ok && out.contains("suspended"), "{out}{err}");
    assert_eq!(served(&host).await.0, 503);
    let (ok, out, err) = run(&["site", "resume", &server, DOMAIN]);
    assert!(ok, "{out}{err}");
    assert_eq!(served(&host).await.1, "version one\n");
    let (_, shown, _) = run(&["site", "show", &server, &site, "--output", "json"]);
    let unix_user = serde_json::from_str::<Value>(&shown).unwrap()["unix_user"].as_str().unwrap().to_string();
    let owner =
        std::process::Command::new("stat").args(["-c", "%U", "/home/slipway/cli.example.com"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&owner.stdout).trim(), unix_user, "the site's files are its own user's");
    let (ok, out, err) = run(&["site", "delete", &server, &site, "-y"]);
    assert!(ok, "{out}{err}");
    assert!(!Path::new("/etc/nginx/sites-enabled/slipway-cli.example.com.conf").exists());
    assert!(!Path::new("/home/slipway/cli.example.com").exists());
    let user_gone = std::process::Command::new("id").arg(&unix_user).output().unwrap();
    assert!(!user_gone.status.success(), "the site's user is removed with the site");
    let (ok, _, err) = run(&["site", "show", &server, &site]);
    assert!(!ok && err.contains(&format!("No site with the id or domain \"{site}\"")), "{err}");

    drop(repo);
    drop(host);
    drop(slipway);
}

/// A build that prints `tick 1` … `tick N`, one a second (N from the commit's `ticks` file).
const TICKING_BUILD: &str =
    "n=$(cat ticks); i=1\nwhile [ \"$i\" -le \"$n\" ]; do echo \"tick $i\"; i=$((i + 1)); sleep 1; done\n";

/// Runs `slipway ARGS` to its end, returning each stdout line with when it arrived, and stderr.
fn run_timed(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> (bool, Vec<(Instant, String)>, String) {
    let mut child = common::slipway(dir, env).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let lines: Vec<(Instant, String)> =
        BufReader::new(child.stdout.take().unwrap()).lines().map(|l| (Instant::now(), l.unwrap())).collect();
    let status = child.wait().unwrap();
    (status.success(), lines, err.join().unwrap())
}

#[tokio::test]
async fn netns_a_deploy_only_token_deploys_and_follows_a_long_log_under_the_default_rate_limit() {
    common::clean_test_host_files();
    let dir = temp_data_dir();
    // The default limits: 60 requests a minute per token.
    let slipway = Server::start(&dir, &[]).unwrap();
    let api = owner(&slipway).await;
    let (server, host) = provisioned_server(&api, "web-ci").await;
    let repo = GitRepo::serve(&dir.join("git"), &host.gateway);
    const TICKS: usize = 70;
    repo.commit(
        &[("public/index.html", "long build\n"), ("build.sh", TICKING_BUILD), ("ticks", &TICKS.to_string())],
        "a build that takes over a minute",
    );
    let body = json!({"domain": "ci.example.com", "project_type": "static", "repository_url": repo.url,
        "web_directory": "public", "deploy_script": "sh build.sh\n"});
    let (status, site) = api.call(Method::POST, &format!("/api/v1/servers/{server}/sites"), Some(body)).await;
    assert_eq!(status, 201, "{site}");
    api.succeeded(site["data"]["operation_id"].as_str().unwrap()).await;
    let site = site["data"]["id"].as_str().unwrap().to_string();

    // The token CI gets: site:deploy and nothing else.
    let as_owner = [("SLIPWAY_URL", api.url.as_str()), ("SLIPWAY_TOKEN", api.token.as_str())];
    let out = common::slipway(&dir, &as_owner)
        .args(["token", "create", "CI deploys", "--ability", "site:deploy"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let ci = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let as_ci = [("SLIPWAY_URL", api.url.as_str()), ("SLIPWAY_TOKEN", ci.as_str())];

    // Spend the CI token's requests for this minute: the CLI waits the limit out, and says so.
    let http = common::http();
    let mut spent = 0;
    loop {
        let response = http.get(format!("{}/api/v1/tokens/current", api.url)).bearer_auth(&ci).send().await.unwrap();
        let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        // Refused, with the window not about to reset before the CLI asks.
        if response.status() == 429 {
            match retry_after {
                Some(seconds) if seconds >= 3 => break,
                _ => tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(1) + 1)).await,
            }
        }
        spent += 1;
        // 60 a minute, in windows aligned to the minute: a boundary or two may fall in between.
        assert!(spent <= 200, "the default limit is 60 a minute");
    }
    let (ok, lines, err) = run_timed(&dir, &as_ci, &["deploy", &server, &site]);
    let out: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert!(ok, "{out:?}\n{err}");
    assert!(err.contains("rate-limited, retrying in "), "{err}");
    assert!(out.iter().any(|l| l.starts_with("Deployed ")), "{out:?}");
    // Every line, each as it was produced: the first tick arrives about a minute before the last.
    let ticks: Vec<&(Instant, String)> = lines.iter().filter(|(_, l)| l.starts_with("tick ")).collect();
    let expected: Vec<String> = (1..=TICKS).map(|i| format!("tick {i}")).collect();
    assert_eq!(ticks.iter().map(|(_, l)| l.clone()).collect::<Vec<_>>(), expected, "{err}");
    let spread = ticks.last().unwrap().0 - ticks[0].0;
    assert!(spread > Duration::from_secs(TICKS as u64 - 15), "lines came in a batch: {spread:?} apart");
    assert_eq!(err.matches("rate-limited").count(), 1, "one wait, then one stream: {err}");

    // By server name and domain, with the same token: a failed deploy is non-zero, and says why.
    repo.commit(&[("build.sh", "echo about to fail\nexit 3\n")], "broken");
    let (ok, lines, err) = run_timed(&dir, &as_ci, &["deploy", "web-ci", "ci.example.com"]);
    assert!(!ok && err.contains("failed at the build step"), "{lines:?}\n{err}");
    assert!(lines.iter().any(|(_, l)| l == "about to fail"), "{lines:?}");
    let (ok, _, err) = run_timed(&dir, &as_ci, &["deploy", "web-ci", "nope.example.com"]);
    assert!(!ok && err.contains("No site with the id or domain \"nope.example.com\""), "{err}");

    // Losing Slipway while following a queued deployment is said, but is not a failure: a CI
    // job that retried would deploy twice.
    repo.commit(&[("build.sh", TICKING_BUILD), ("ticks", "30")], "another long build");
    let mut slipway = slipway;
    let mut follower = common::slipway(&dir, &as_ci)
        .args(["deploy", "web-ci", "ci.example.com"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(follower.stdout.take().unwrap());
    let stderr = follower.stderr.take().unwrap();
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || stdout.lines().map_while(Result::ok).for_each(|l| tx.send(l).unwrap_or(())));
    let deadline = Instant::now() + Duration::from_secs(60);
    while rx.recv_timeout(deadline - Instant::now()).expect("the log streams") != "tick 2" {}
    slipway.child.kill().unwrap();
    let _ = slipway.child.wait();
    let status = follower.wait().unwrap();
    let err = err.join().unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("is queued, but following it failed") && err.contains("reconnecting in"), "{err}");

    drop(repo);
    drop(host);
    drop(slipway);
}
