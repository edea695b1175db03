//! End to end through the real binary: first-start setup link, `admin create-user`, and the
//! command-line client (`login`, `whoami`, `token …`, `logout`) against a running server.

use crate::common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};

use common::{Server, slipway, temp_data_dir};

const PASSWORD: &str = "correct horse battery staple";

/// Runs `slipway ARGS` with a credentials directory of the test's own, feeding `stdin`.
fn run(data_dir: &Path, config_dir: &Path, envs: &[(&str, &str)], args: &[&str], stdin: &str) -> Output {
    let mut cmd = slipway(data_dir, envs);
    cmd.env("SLIPWAY_CONFIG_DIR", config_dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn first_start_prints_a_setup_link_that_works_once() {
    let dir = temp_data_dir();
    let server = Server::start(&dir, &[]).unwrap();
    let link =
        server.stdout.iter().find_map(|l| l.split_once(" at ").map(|(_, url)| url.to_string())).expect("a setup link");
    assert!(link.starts_with(&format!("{}/setup?code=", server.url)), "{link}");
    let code = link.rsplit('=').next().unwrap().to_string();
    let page = common::http().get(&link).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Create the owner account"));

    let body = serde_json::json!({"code": code, "email": "owner@example.com", "name": "Owner", "password": PASSWORD, "organization": "Acme"});
    let http = common::http();
    let created = http.post(format!("{}/api/v1/setup", server.url)).json(&body).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let again = http.post(format!("{}/api/v1/setup", server.url)).json(&body).send().await.unwrap();
    assert_eq!(again.status(), 422);
    drop(server);

    let restarted = Server::start(&dir, &[]).unwrap();
    assert!(!restarted.stdout.iter().any(|l| l.contains("/setup?code=")), "no setup link once an owner exists");
}

#[tokio::test]
async fn admin_create_user_then_the_cli_logs_in_manages_tokens_and_logs_out() {
    let dir = temp_data_dir();
    let config = dir.join("cli-config");
    let weak = run(
        &dir,
        &config,
        &[],
        &[
            "admin",
            "create-user",
            "--email",
            "ana@example.com",
            "--name",
            "Ana",
            "--organization",
            "Acme",
            "--password-stdin",
        ],
        "short\n",
    );
    assert!(!weak.status.success());
    let said = text(&weak).1;
    assert!(said.contains("the password: The password must be at least 12 characters."), "{said}");
    assert!(!said.contains("--password:"), "there is no --password flag to point at: {said}");

    let created = run(
        &dir,
        &config,
        &[],
        &[
            "admin",
            "create-user",
            "--email",
            "ana@example.com",
            "--name",
            "Ana",
            "--organization",
            "Acme",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(created.status.success(), "{:?}", text(&created));
    assert!(text(&created).0.contains("as owner of the new organization Acme"));
    let dup = run(
        &dir,
        &config,
        &[],
        &[
            "admin",
            "create-user",
            "--email",
            "ANA@example.com",
            "--name",
            "Ana",
            "--organization",
            "Acme",
            "--role",
            "member",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(text(&dup).1.contains("already exists"));

    // Naming an existing organization joins it only with a role said out loud; never a second
    // organization of the same name.
    let create_user = |email: &str, extra: &[&str]| {
        let mut args = vec!["admin", "create-user", "--email", email, "--name", "Bo", "--password-stdin"];
        args.extend_from_slice(extra);
        run(&dir, &config, &[], &args, &format!("{PASSWORD}\n"))
    };
    let unsaid = create_user("bo@example.com", &["--organization", "Acme"]);
    assert!(!unsaid.status.success(), "{:?}", text(&unsaid));
    assert!(text(&unsaid).1.contains("an organization \"Acme\" exists") && text(&unsaid).1.contains("--role"));
    let joined = create_user("bo@example.com", &["--organization", "Acme", "--role", "member"]);
    assert!(joined.status.success(), "{:?}", text(&joined));
    let said = text(&joined).0;
    assert!(said.contains("as member of Acme ("), "{said}");
    let acme_id = said.rsplit_once("of Acme (").unwrap().1.trim_end_matches([')', '.', '\n']).to_string();
    let by_id = create_user("cy@example.com", &["--organization", &acme_id, "--role", "viewer"]);
    assert!(text(&by_id).0.contains("as viewer of Acme"), "{:?}", text(&by_id));
    let not_owner = create_user("di@example.com", &["--organization", "Beta", "--role", "admin"]);
    assert!(text(&not_owner).1.contains("a new one needs an owner"), "{:?}", text(&not_owner));

    let server = Server::start(&dir, &[]).unwrap();
    assert!(!server.stdout.iter().any(|l| l.contains("/setup?code=")), "an owner exists already");
    let url = server.url.clone();

    let not_logged_in = run(&dir, &config, &[], &["whoami"], "");
    assert!(text(&not_logged_in).1.contains("not logged in"), "{:?}", text(&not_logged_in));
    let as_json = run(&dir, &config, &[], &["whoami", "--output", "json"], "");
    let as_json: serde_json::Value = serde_json::from_slice(&as_json.stdout).unwrap();
    assert!(as_json["message"].as_str().unwrap().contains("not logged in"), "{as_json}");
    assert_eq!(as_json["errors"], serde_json::json!({}));

    // A URL that cannot work is refused before anything is sent, saying why; an unreachable one
    // says so once, not once per layer of the error.
    let ftp = run(&dir, &config, &[], &["login", "--url", "ftp://example.com", "--email", "a@example.com"], "");
    assert!(text(&ftp).1.contains("not an http:// or https:// URL"), "{:?}", text(&ftp));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let unreachable = run(
        &dir,
        &config,
        &[],
        &["login", "--url", &format!("127.0.0.1:{closed}"), "--email", "a@example.com", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    let said = text(&unreachable).1;
    assert!(said.starts_with("error: cannot reach Slipway at http://127.0.0.1:"), "{said}");
    let parts: Vec<&str> = said.trim().split(": ").collect();
    let mut unique = parts.clone();
    unique.dedup();
    assert_eq!(parts, unique, "no message twice in a row: {said}");
    let wrong = run(
        &dir,
        &config,
        &[],
        &["login", "--url", &url, "--email", "ana@example.com", "--password-stdin"],
        "wrong password!!\n",
    );
    assert!(!wrong.status.success());
    assert!(text(&wrong).1.contains("These credentials do not match our records."), "{:?}", text(&wrong));

    let login = run(
        &dir,
        &config,
        &[],
        &["login", "--url", url.trim_start_matches("http://"), "--email", "ana@example.com", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(login.status.success(), "{:?}", text(&login));
    assert!(
        text(&login).0.contains(&format!("Logged in to {url} ")),
        "http:// is assumed on loopback: {:?}",
        text(&login)
    );
    let file = config.join("credentials.toml");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

    let who = run(&dir, &config, &[], &["whoami"], "");
    assert!(text(&who).0.contains("Ana <ana@example.com>"), "{:?}", text(&who));
    let who_json: serde_json::Value =
        serde_json::from_slice(&run(&dir, &config, &[], &["whoami", "--output", "json"], "").stdout).unwrap();
    assert_eq!(who_json["user"]["organizations"][0]["role"], "owner");
    assert_eq!(who_json["token"]["created_via"], "login");

    let ci = run(&dir, &config, &[], &["token", "create", "ci", "--ability", "site:deploy"], "");
    assert!(ci.status.success(), "{:?}", text(&ci));
    let ci_token = text(&ci).0.trim().to_string();
    assert!(slipway_core::token::PlainToken::parse(&ci_token).is_ok(), "{ci_token}");
    assert!(text(&ci).1.contains("shown only once"));
    let bad = run(&dir, &config, &[], &["token", "create", "x", "--ability", "server:launch"], "");
    assert!(text(&bad).1.contains("abilities.0"), "{:?}", text(&bad));
    // With --output json, the same error is JSON on stdout, in the API's shape.
    let bad = run(&dir, &config, &[], &["token", "create", "x", "--ability", "server:launch", "--output", "json"], "");
    assert!(!bad.status.success());
    let bad: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!((bad["message"].as_str(), bad["status"].as_u64()), (Some("The given data was invalid."), Some(422)));
    assert!(bad["errors"]["abilities.0"][0].is_string(), "{bad}");
    let every = run(&dir, &config, &[], &["token", "create", "everything"], "");
    assert!(text(&every).1.contains("every ability your role allows (*)"), "{:?}", text(&every));
    let help = text(&run(&dir, &config, &[], &["token", "create", "--help"], "")).0;
    assert!(help.contains("every ability your role allows (*)"), "{help}");

    let list: serde_json::Value =
        serde_json::from_slice(&run(&dir, &config, &[], &["token", "list", "--output", "json"], "").stdout).unwrap();
    assert_eq!(list["meta"]["total"], 3);
    let ci_id = list["data"].as_array().unwrap().iter().find(|t| t["name"] == "ci").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let human = text(&run(&dir, &config, &[], &["token", "list"], "")).0;
    assert!(human.contains("site:deploy") && human.contains("ID"), "{human}");

    // SLIPWAY_URL and SLIPWAY_TOKEN override the saved login.
    let as_ci =
        run(&dir, &config, &[("SLIPWAY_URL", &url), ("SLIPWAY_TOKEN", &ci_token)], &["whoami", "--output", "json"], "");
    let as_ci: serde_json::Value = serde_json::from_slice(&as_ci.stdout).unwrap();
    assert_eq!(as_ci["token"]["name"], "ci");

    let rotated = run(&dir, &config, &[], &["token", "rotate", &ci_id, "--output", "json"], "");
    let rotated: serde_json::Value = serde_json::from_slice(&rotated.stdout).unwrap();
    let new_ci = rotated["plain_text_token"].as_str().unwrap().to_string();
    let old = run(&dir, &config, &[("SLIPWAY_URL", &url), ("SLIPWAY_TOKEN", &ci_token)], &["whoami"], "");
    assert!(text(&old).1.contains("Unauthenticated"), "{:?}", text(&old));
    let revoke = run(&dir, &config, &[], &["token", "revoke", rotated["id"].as_str().unwrap()], "");
    assert!(revoke.status.success(), "{:?}", text(&revoke));
    let gone = run(&dir, &config, &[("SLIPWAY_URL", &url), ("SLIPWAY_TOKEN", &new_ci)], &["whoami"], "");
    assert!(!gone.status.success());

    // Rotating the CLI's own token keeps the saved login working.
    let own: serde_json::Value =
        serde_json::from_slice(&run(&dir, &config, &[], &["whoami", "--output", "json"], "").stdout).unwrap();
    let own_id = own["token"]["id"].as_str().unwrap().to_string();
    let self_rotate = run(&dir, &config, &[], &["token", "rotate", &own_id], "");
    assert!(text(&self_rotate).1.contains("now uses the new secret"), "{:?}", text(&self_rotate));
    assert!(run(&dir, &config, &[], &["whoami"], "").status.success());

    // The saved token goes only to the server it was saved for: SLIPWAY_URL naming another one
    // is refused before anything is sent there.
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    elsewhere.set_nonblocking(true).unwrap();
    let other_url = format!("http://{}", elsewhere.local_addr().unwrap());
    let refused = run(&dir, &config, &[("SLIPWAY_URL", &other_url)], &["whoami"], "");
    assert!(!refused.status.success());
    assert!(text(&refused).1.contains("its token is not sent there"), "{:?}", text(&refused));
    assert!(elsewhere.accept().is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock), "a connection was made");
    let same = run(&dir, &config, &[("SLIPWAY_URL", &format!("{url}/"))], &["whoami"], "");
    assert!(same.status.success(), "the saved server, written another way: {:?}", text(&same));

    // `logout` with SLIPWAY_TOKEN revokes that token, and the profile stays logged in.
    let spare = run(&dir, &config, &[], &["token", "create", "spare", "--ability", "site:read"], "");
    let spare = text(&spare).0.trim().to_string();
    let out = run(&dir, &config, &[("SLIPWAY_TOKEN", &spare)], &["logout"], "");
    assert!(text(&out).0.contains("The token in SLIPWAY_TOKEN is revoked"), "{:?}", text(&out));
    assert!(!run(&dir, &config, &[("SLIPWAY_TOKEN", &spare)], &["whoami"], "").status.success());
    assert!(run(&dir, &config, &[], &["whoami"], "").status.success(), "the profile's login is kept");

    // A reader that stops reading ends the command quietly, not with a panic.
    let mut cmd = slipway(&dir, &[]);
    cmd.env("SLIPWAY_CONFIG_DIR", &config).arg("openapi").stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take());
    let closed = child.wait_with_output().unwrap();
    assert!(closed.status.success() && !text(&closed).1.contains("panicked"), "{:?}", text(&closed));

    let logout = run(&dir, &config, &[], &["logout"], "");
    assert!(logout.status.success(), "{:?}", text(&logout));
    assert!(text(&run(&dir, &config, &[], &["whoami"], "")).1.contains("not logged in"));
}
