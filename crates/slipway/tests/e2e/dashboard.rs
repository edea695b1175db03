//! The dashboard in a real browser: headless Chromium (Debian's `chromium`, driven by
//! `playwright-core`) against the real binary and a network-namespace test host. The browser
//! part is `crates/slipway-web/browser/e2e.mjs`; this test starts what it needs, runs it, and
//! checks from outside that what the browser deployed is served.

use crate::common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{GitRepo, Server, temp_data_dir};
use slipway_remote::testing::NetnsHost;

/// Where the screenshots go (the README names it; it is not committed).
fn screenshots_dir() -> PathBuf {
    match std::env::var("SLIPWAY_SCREENSHOTS") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../screenshots"),
    }
}

#[tokio::test]
async fn the_dashboard_sets_up_provisions_deploys_and_guards_itself_in_a_real_browser() {
    let browser_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../slipway-web/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists() && std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser tests need Chromium and their node packages: run scripts/install-test-deps"
    );
    // The test host provisions with MariaDB, which is this machine's own engine.
    let mariadb = Command::new("mysqladmin").args(["--protocol=socket", "-uroot", "ping"]).status();
    assert!(
        mariadb.is_ok_and(|s| s.success()),
        "MariaDB is not running on this machine; start it (scripts/ensure-services)"
    );
    common::clean_test_host_files();
    let dir = temp_data_dir();
    // Registration lets the test make a second user for the viewer's part; the login limit is
    // raised because the test logs in more than five times a minute from one address.
    // The script clicks through pages faster than a person: more than the default 60 a minute.
    let envs = [
        ("SLIPWAY_REGISTRATION_ENABLED", "true"),
        ("SLIPWAY_RATE_LIMIT_AUTH", "60"),
        ("SLIPWAY_RATE_LIMIT_API", "300"),
    ];
    let slipway = Server::start(&dir, &envs).unwrap();
    let setup_url = slipway.stdout.iter().find_map(|l| l.split_once(" at ").map(|(_, u)| u.to_string())).unwrap();
    let host = NetnsHost::start(&[]);
    let repo = GitRepo::serve(&dir.join("git"), &host.gateway);
    repo.commit(&[("index.html", "<h1>Deployed from the dashboard</h1>\n")], "First page");
    let screenshots = screenshots_dir();

    let mut node = Command::new("node")
        .arg("e2e.mjs")
        .current_dir(&browser_dir)
        .env("SLIPWAY_URL", &slipway.url)
        .env("SLIPWAY_SETUP_URL", &setup_url)
        .env("TEST_HOST_ADDRESS", &host.address)
        .env("TEST_HOST_AUTHORIZED_KEYS", host.dir.join("authorized_keys"))
        .env("TEST_REPO_URL", &repo.url)
        .env("SCREENSHOTS_DIR", &screenshots)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs");
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(status) = node.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = node.kill();
            let _ = node.wait();
            panic!("the browser test did not finish in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(status.success(), "the browser test failed ({status}); its output is above");

    // What the browser deployed (and rolled back to) is what nginx on the host serves.
    let served =
        common::http().get(format!("http://{}/", host.address)).header("host", "shop.test").send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert!(served.text().await.unwrap().contains("Deployed from the dashboard"));
    // The redirect added from the site's page is applied by nginx on the host.
    let old = format!("http://{}/old-page", host.address);
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    slipway_remote::testing::eventually(Duration::from_secs(60), "the redirect is served", || {
        let (old, client) = (old.clone(), no_redirects.clone());
        async move {
            match client.get(&old).header("host", "shop.test").send().await {
                Ok(r) => {
                    r.status() == 301
                        && r.headers().get("location").is_some_and(|l| l.to_str().unwrap_or("").ends_with('/'))
                }
                Err(_) => false,
            }
        }
    })
    .await;
    let pages = ["login", "home", "servers", "server", "site", "deployment", "tokens", "organization", "account"];
    for page in pages.into_iter().chain(["database", "integrations", "item-edit"]) {
        for width in ["desktop", "phone"] {
            assert!(screenshots.join(format!("{page}-{width}.png")).exists(), "no screenshot of {page} ({width})");
        }
    }
}
