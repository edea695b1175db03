//! The command-line client for sites, deployments and environment variables, end to end: the
//! real binary against a running Slipway, a provisioned test host in a network namespace (see
//! `provision.rs`) and a repository served by `git daemon` on this machine's side of the link.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{GitRepo, Server, owner, temp_data_dir};
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

#[tokio::test]
async fn netns_the_cli_creates_a_site_sets_env_deploys_fails_and_rolls_back() {
    common::clean_test_host_files();
    let dir = temp_data_dir();
    let slipway = Server::start(&dir, &[UNLIMITED]).unwrap();
    let api = owner(&slipway).await;
    let body = json!({"name": "web", "provider": "custom", "ip_address": "192.0.2.1", "ssh_port": 22});
    let (status, created) = api.call(Method::POST, "/api/v1/servers", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let server = created["data"]["id"].as_str().unwrap().to_string();
    let host = NetnsHost::start(&[created["data"]["authorization"]["public_key"].as_str().unwrap()]);
    api.call(Method::PUT, &format!("/api/v1/servers/{server}"), Some(json!({"ip_address": host.address}))).await;
    let (_, op) = api.call(Method::POST, &format!("/api/v1/servers/{server}/provision"), Some(json!({}))).await;
    let op = api.finished_within(op["data"]["id"].as_str().unwrap(), Duration::from_secs(180)).await;
    assert_eq!(op["status"], "succeeded", "{op}");
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

    // A second version whose build fails: non-zero, the step named, the first still served.
    repo.commit(&[("public/index.html", "version two\n"), ("build.sh", "echo about to fail\nexit 3\n")], "broken");
    let (ok, out, err) = run(&["deploy", &server, DOMAIN]);
    assert!(!ok, "{out}{err}");
    assert!(out.contains("about to fail"), "{out}");
    assert!(err.contains("failed at the build step") && err.contains("deploy script failed"), "{err}");
    assert_eq!(served(&host).await.1, "version one\n");

    let (ok, out, err) = run(&["deployments", &server, &site]);
    assert!(ok, "{out}{err}");
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(rows[0].contains("failed") && rows[0].contains("broken") && rows[0].contains("build"), "{out}");
    assert!(rows[1].contains("succeeded") && rows[1].contains("cli") && rows[1].contains("first version"), "{out}");

    // A good third version, then a rollback to the first.
    repo.commit(&[("public/index.html", "version three\n"), ("build.sh", GOOD_BUILD)], "third version");
    let (ok, out, err) = run(&["deploy", &server, &site]);
    assert!(ok, "{out}{err}");
    assert_eq!(served(&host).await.1, "version three\n");
    let (ok, out, err) = run(&["releases", &server, &site]);
    assert!(ok, "{out}{err}");
    assert!(out.lines().any(|l| l.starts_with('*') && l.contains("third version")), "{out}");
    let (ok, out, err) = run(&["rollback", &server, &site]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("==> rolling back to release"), "{out}");
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
    assert!(out.contains("copying the live site into release") && out.contains("Deployed"), "{out}");
    let (ok, out, err) = run(&["site", "enable-zero-downtime", &server, "inplace-cli.example.com"]);
    assert!(!ok && err.contains("already deploys with zero downtime"), "{out}{err}");
    let (ok, out, err) = run(&["site", "show", &server, "inplace-cli.example.com", "--output", "json"]);
    assert!(ok && serde_json::from_str::<Value>(&out).unwrap()["zero_downtime"] == true, "{out}{err}");
    let (ok, out, err) = run(&["site", "delete", &server, "inplace-cli.example.com"]);
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
    let (ok, out, err) = run(&["site", "delete", &server, &site]);
    assert!(ok, "{out}{err}");
    assert!(!Path::new("/etc/nginx/sites-enabled/slipway-cli.example.com.conf").exists());
    assert!(!Path::new("/home/slipway/cli.example.com").exists());
    let user_gone = std::process::Command::new("id").arg(&unix_user).output().unwrap();
    assert!(!user_gone.status.success(), "the site's user is removed with the site");
    let (ok, _, err) = run(&["site", "show", &server, &site]);
    assert!(!ok && err.contains("404"), "{err}");

    drop(repo);
    drop(host);
    drop(slipway);
    let _ = std::fs::remove_dir_all(&dir);
}
