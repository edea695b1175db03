//! Databases on a provisioned test host's own engine, for real. The host (a network namespace)
//! shares this machine's files, so it reaches this machine's MariaDB and PostgreSQL through their
//! unix sockets; provisioning must take those running engines as installed. Every database made
//! here has a name of its own and is dropped before the test ends; nothing else is touched.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Api, Server, owner, temp_data_dir};
use reqwest::Method;
use serde_json::{Value, json};
use slipway_remote::testing::NetnsHost;

const UNLIMITED: (&str, &str) = ("SLIPWAY_RATE_LIMIT_API", "1000000");

/// A Slipway and a test host provisioned with `database_type`.
struct Provisioned {
    dir: std::path::PathBuf,
    _slipway: Server,
    api: Api,
    server_path: String,
    _host: NetnsHost,
}

async fn provisioned_with(database_type: &str) -> Provisioned {
    // This machine's engine must be up before a test host provisions against it: a host that
    // found none would start one of its own, inside its namespace, on the same data directory.
    let engine_answers = match database_type {
        "postgres" => Command::new("pg_isready").args(["-q", "-h", "/var/run/postgresql"]).status(),
        _ => Command::new("mysqladmin").args(["--protocol=socket", "-uroot", "ping"]).status(),
    };
    assert!(
        engine_answers.is_ok_and(|s| s.success()),
        "{database_type} is not running on this machine; start it (scripts/ensure-services)"
    );
    common::clean_test_host_files();
    let dir = temp_data_dir();
    let slipway = Server::start(&dir, &[UNLIMITED]).unwrap();
    let api = owner(&slipway).await;
    let body = json!({"name": "db", "provider": "custom", "ip_address": "192.0.2.1", "ssh_port": 22,
                      "database_type": database_type});
    let (status, created) = api.call(Method::POST, "/api/v1/servers", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let server_path = format!("/api/v1/servers/{}", created["data"]["id"].as_str().unwrap());
    let host = NetnsHost::start(&[created["data"]["authorization"]["public_key"].as_str().unwrap()]);
    let (status, _) = api.call(Method::PUT, &server_path, Some(json!({"ip_address": host.address}))).await;
    assert_eq!(status, 200);
    let (_, op) = api.call(Method::POST, &format!("{server_path}/provision"), Some(json!({}))).await;
    let op = api.finished_within(op["data"]["id"].as_str().unwrap(), Duration::from_secs(180)).await;
    assert_eq!(op["status"], "succeeded", "provisioning takes the running engine as installed: {op}");
    Provisioned { dir, _slipway: slipway, api, server_path, _host: host }
}

/// Runs `statement` on this machine's engine as its administrator, over the local socket.
fn as_admin(engine: &str, statement: &str) -> std::io::Result<std::process::Output> {
    match engine {
        "mysql" => Command::new("mysql").args(["--protocol=socket", "-uroot", "-N", "-B", "-e", statement]).output(),
        _ => Command::new("runuser")
            .args(["-u", "postgres", "--", "psql", "-X", "-A", "-t", "-d", "postgres", "-c", statement])
            .output(),
    }
}

/// Runs SQL on this machine's engine as its administrator; returns stdout (trimmed).
fn sql(engine: &str, statement: &str) -> String {
    let out = as_admin(engine, statement).unwrap();
    assert!(out.status.success(), "{statement}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What the engine says of database `name`: its character set (and collation), or "" if absent.
fn on_engine(engine: &str, name: &str) -> String {
    match engine {
        "mysql" => sql(
            engine,
            &format!(
                "SELECT CONCAT(DEFAULT_CHARACTER_SET_NAME, ' ', DEFAULT_COLLATION_NAME) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{name}'"
            ),
        ),
        _ => sql(engine, &format!("SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = '{name}'")),
    }
}

/// Drops every database whose name starts with `prefix` when the test ends, passed or not: a
/// failed test leaves nothing on this machine's engines.
struct DropAfter {
    engine: &'static str,
    prefix: String,
}

impl Drop for DropAfter {
    fn drop(&mut self) {
        let (engine, prefix) = (self.engine, &self.prefix);
        let list = match engine {
            "mysql" => {
                format!("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '{prefix}%'")
            }
            _ => format!("SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%'"),
        };
        let Ok(found) = as_admin(engine, &list) else { return };
        for name in String::from_utf8_lossy(&found.stdout).lines().filter(|n| n.starts_with(prefix.as_str())) {
            let statement = match engine {
                "mysql" => format!("DROP DATABASE IF EXISTS `{name}`"),
                _ => format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
            };
            let _ = as_admin(engine, &statement);
        }
    }
}

/// Every database Slipway lists for the server, across pages.
async fn all_databases(api: &Api, server_path: &str) -> Vec<Value> {
    let mut all = Vec::new();
    for page in 1.. {
        let path = format!("{server_path}/databases?per_page=100&page={page}");
        let (status, listed) = api.call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{listed}");
        let data = listed["data"].as_array().unwrap().clone();
        if data.is_empty() {
            break;
        }
        all.extend(data);
    }
    all
}

async fn databases_are_managed_for_real(database_type: &str, engine: &'static str, charset: &str) {
    let p = provisioned_with(database_type).await;
    let (api, collection) = (&p.api, format!("{}/databases", p.server_path));
    let unique = slipway_core::new_id().to_lowercase()[18..].to_string();
    let name = format!("slp_{unique}");
    let _cleanup = DropAfter { engine, prefix: name.clone() };

    // Bad input is refused before anything reaches SQL or a shell.
    let long = "a".repeat(65);
    for bad in ["Shop", "a`b", "a'b", "a\"b", "a;b", "a$b", "a b", "a\nb", "2db", "mysql", "postgres", "pg_x", &long] {
        let (status, reply) = api.call(Method::POST, &collection, Some(json!({"name": bad}))).await;
        assert_eq!(status, 422, "{bad:?}: {reply}");
        assert!(reply["errors"]["name"].is_array(), "{reply}");
    }
    let body = json!({"name": format!("{name}_x"), "charset": "utf8'; DROP DATABASE x; --"});
    let (status, reply) = api.call(Method::POST, &collection, Some(body)).await;
    assert_eq!((status, reply["errors"]["charset"].is_array()), (422, true), "{reply}");

    // Created for real, with the defaults.
    let (status, created) = api.call(Method::POST, &collection, Some(json!({"name": name}))).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["data"]["status"], "installing");
    let op = api.finished(created["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let path = format!("{collection}/{}", created["data"]["id"].as_str().unwrap());
    let (_, shown) = api.call(Method::GET, &path, None).await;
    assert_eq!((shown["data"]["status"].as_str(), shown["data"]["engine"].as_str()), (Some("active"), Some(engine)));
    assert_eq!(on_engine(engine, &name), charset, "the engine has it");
    let (status, reply) = api.call(Method::POST, &collection, Some(json!({"name": name}))).await;
    assert_eq!((status, reply["errors"]["name"].is_array()), (422, true), "a second one of that name: {reply}");

    // A character set the engine does not know: failed, with the engine's own words.
    let odd = format!("{name}_odd");
    let (_, created_odd) =
        api.call(Method::POST, &collection, Some(json!({"name": odd, "charset": "nosuchset"}))).await;
    api.finished(created_odd["data"]["operation_id"].as_str().unwrap()).await;
    let odd_path = format!("{collection}/{}", created_odd["data"]["id"].as_str().unwrap());
    let (_, failed) = api.call(Method::GET, &odd_path, None).await;
    assert_eq!(failed["data"]["status"], "failed", "{failed}");
    assert!(failed["data"]["status_reason"].as_str().unwrap().to_lowercase().contains("nosuchset"), "{failed}");
    assert_eq!(on_engine(engine, &odd), "");

    // The same from the command line, which waits and says how it ended.
    let cli = |args: &[&str]| {
        let env = [("SLIPWAY_URL", api.url.as_str()), ("SLIPWAY_TOKEN", api.token.as_str())];
        let out = common::slipway(&p.dir, &env).args(args).output().unwrap();
        let (stdout, stderr) =
            (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        (out.status.success(), stdout, stderr)
    };
    let by_cli = format!("{name}_cli");
    let (ok, out, err) = cli(&["db", "create", "db", &by_cli, "--output", "json"]);
    assert!(ok, "{out}{err}");
    let made: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(made["status"], "active", "{out}");
    assert_ne!(on_engine(engine, &by_cli), "");
    let (ok, out, err) = cli(&["db", "list", "db"]);
    assert!(ok && out.contains(&by_cli), "{out}{err}");
    let id = made["id"].as_str().unwrap();
    let (ok, out, err) = cli(&["db", "delete", "db", id, "--confirm", "nope"]);
    assert!(!ok && err.contains("confirm"), "{out}{err}");
    let (ok, out, err) = cli(&["db", "delete", "db", id, "--confirm", &by_cli]);
    assert!(ok, "{out}{err}");
    assert_eq!(on_engine(engine, &by_cli), "");

    // A database made by hand is left alone until imported.
    let by_hand = format!("{name}_hand");
    let quoted = if engine == "mysql" { format!("`{by_hand}`") } else { format!("\"{by_hand}\"") };
    sql(engine, &format!("CREATE DATABASE {quoted}"));
    assert!(!all_databases(api, &p.server_path).await.iter().any(|d| d["name"] == by_hand.as_str()));
    let (status, op) = api.call(Method::POST, &format!("{collection}/sync"), Some(json!({}))).await;
    assert_eq!(status, 202, "{op}");
    let op = api.finished(op["data"]["id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let listed = all_databases(api, &p.server_path).await;
    let imported = listed.iter().find(|d| d["name"] == by_hand.as_str()).expect("imported");
    assert_eq!(
        (imported["imported"].as_bool(), imported["status"].as_str()),
        (Some(true), Some("active")),
        "{imported}"
    );
    assert_eq!(listed.iter().filter(|d| d["name"] == name.as_str()).count(), 1, "no second record of a known one");
    assert!(!listed.iter().any(|d| ["mysql", "postgres", "template1", "sys"].contains(&d["name"].as_str().unwrap())));

    // Deleting names the database again, then drops it for real; only it.
    let imported_path = format!("{collection}/{}", imported["id"].as_str().unwrap());
    for (path, db) in [(&path, &name), (&imported_path, &by_hand), (&odd_path, &odd)] {
        let (status, reply) = api.call(Method::DELETE, path, Some(json!({"confirm": "wrong"}))).await;
        assert_eq!((status, reply["errors"]["confirm"].is_array()), (422, true), "{reply}");
        let (status, reply) = api.call(Method::DELETE, path, Some(json!({"confirm": db}))).await;
        assert_eq!(status, 202, "{reply}");
        let op = api.finished(reply["data"]["operation_id"].as_str().unwrap()).await;
        assert_eq!(op["status"], "succeeded", "{op}");
        assert_eq!(api.call(Method::GET, path, None).await.0, 404);
        assert_eq!(on_engine(engine, db), "", "{db} is gone from the engine");
    }
}

#[tokio::test]
async fn mariadb_databases_are_created_imported_and_dropped_for_real() {
    databases_are_managed_for_real("mariadb", "mysql", "utf8mb4 utf8mb4_unicode_ci").await;
}

#[tokio::test]
async fn postgres_databases_are_created_imported_and_dropped_for_real() {
    databases_are_managed_for_real("postgres", "postgres", "UTF8").await;
}
