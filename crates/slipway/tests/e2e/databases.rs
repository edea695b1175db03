//! Databases on a provisioned test host's own engine, for real. The host (a network namespace)
//! shares this machine's files, so it reaches this machine's MariaDB and PostgreSQL through their
//! unix sockets; provisioning must take those running engines as installed. Every database made
//! here has a name of its own and is dropped before the test ends; nothing else is touched.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::{Api, S3Server, Server, owner, temp_data_dir};
use reqwest::Method;
use serde_json::{Value, json};
use slipway_remote::testing::NetnsHost;

const UNLIMITED: (&str, &str) = ("SLIPWAY_RATE_LIMIT_API", "1000000");
/// Short job leases: a job whose Slipway was killed is found abandoned within seconds.
const SHORT_LEASE: (&str, &str) = ("SLIPWAY_JOB_LEASE_SECONDS", "2");
/// Two backup downloads an hour: the third is refused.
const TWO_DOWNLOADS: (&str, &str) = ("SLIPWAY_RATE_LIMIT_BACKUP_DOWNLOAD", "2");

/// A Slipway and a test host provisioned with `database_type`.
struct Provisioned {
    slipway: Server,
    api: Api,
    server_path: String,
    host: NetnsHost,
    /// Last: removed once the server has stopped.
    dir: common::TempDataDir,
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
    let slipway = Server::start(&dir, &[UNLIMITED, SHORT_LEASE, TWO_DOWNLOADS]).unwrap();
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
    Provisioned { dir, slipway, api, server_path, host }
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
        // Users after databases: on PostgreSQL a role's rights in a database go with it.
        let _users = UsersGone { engine, prefix };
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

/// Drops every database user whose name starts with `prefix`, when dropped.
struct UsersGone<'a> {
    engine: &'a str,
    prefix: &'a str,
}

impl Drop for UsersGone<'_> {
    fn drop(&mut self) {
        let (engine, prefix) = (self.engine, self.prefix);
        let list = match engine {
            "mysql" => format!("SELECT CONCAT(User, ' ', Host) FROM mysql.user WHERE User LIKE '{prefix}%'"),
            _ => format!("SELECT rolname FROM pg_roles WHERE rolname LIKE '{prefix}%'"),
        };
        let Ok(found) = as_admin(engine, &list) else { return };
        for line in String::from_utf8_lossy(&found.stdout).lines().filter(|n| n.starts_with(prefix)) {
            let statement = match (engine, line.split_once(' ')) {
                ("mysql", Some((user, host))) => format!("DROP USER IF EXISTS '{user}'@'{host}'"),
                ("mysql", None) => continue,
                _ => format!("DROP OWNED BY \"{line}\"; DROP ROLE IF EXISTS \"{line}\""),
            };
            let _ = as_admin(engine, &statement);
        }
    }
}

/// Runs `statement` in `database` as database user `user` with `password`, over the local
/// socket. (This machine's PostgreSQL trusts local connections, so there the password is checked
/// apart: [`password_matches`].)
fn as_user(engine: &str, user: &str, password: &str, database: &str, statement: &str) -> (bool, String) {
    let out = match engine {
        "mysql" => Command::new("mysql")
            .env("MYSQL_PWD", password)
            .args(["--protocol=socket", "-u", user, "-N", "-B", database, "-e", statement])
            .output(),
        _ => Command::new("psql")
            .env("PGPASSWORD", password)
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "/var/run/postgresql", "-U", user, "-d", database])
            .args(["-c", statement])
            .output(),
    }
    .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text.trim().to_string())
}

/// Whether `password` is the one the engine holds for `user`: MySQL by logging in; PostgreSQL
/// by checking its stored SCRAM-SHA-256 verifier against the password (computed apart, by
/// Python's standard library).
fn password_matches(engine: &str, user: &str, password: &str) -> bool {
    if engine == "mysql" {
        return as_user(engine, user, password, "information_schema", "SELECT 1").0;
    }
    let verifier = sql(engine, &format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{user}'"));
    let check = r#"
import base64, hashlib, hmac, sys
verifier, password = sys.argv[1], sys.argv[2]
mechanism, rest = verifier.split("$", 1)
head, keys = rest.split("$")
iterations, salt = head.split(":")
stored_key = keys.split(":")[0]
salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
client_key = hmac.new(salted, b"Client Key", "sha256").digest()
ok = mechanism == "SCRAM-SHA-256" and base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key
print("yes" if ok else "no")
"#;
    let out = Command::new("python3").args(["-c", check, &verifier, password]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

/// How many accounts the engine has for user `name` (MySQL: one per host).
fn accounts(engine: &str, name: &str) -> usize {
    let count = match engine {
        "mysql" => sql(engine, &format!("SELECT COUNT(*) FROM mysql.user WHERE User = '{name}'")),
        _ => sql(engine, &format!("SELECT COUNT(*) FROM pg_roles WHERE rolname = '{name}'")),
    };
    count.parse().unwrap()
}

/// Users of database `name`: generated passwords that work, grants that hold (a reader cannot
/// write), hostile input refused, rotation, a linked site's variables, deletion.
async fn users_are_managed_for_real(p: &Provisioned, engine: &'static str, name: &str) {
    let api = &p.api;
    let databases = all_databases(api, &p.server_path).await;
    let id_of = |n: &str| databases.iter().find(|d| d["name"] == n).unwrap()["id"].as_str().unwrap().to_string();
    let users = format!("{}/databases/{}/users", p.server_path, id_of(name));
    let other = format!("{name}_other");
    let (_, made) = api.call(Method::POST, &format!("{}/databases", p.server_path), Some(json!({"name": other}))).await;
    api.succeeded(made["data"]["operation_id"].as_str().unwrap()).await;
    let other_path = format!("{}/databases/{}", p.server_path, made["data"]["id"].as_str().unwrap());
    let (writer, reader) = (format!("{name}_rw"), format!("{name}_ro"));

    // Hostile or impossible input is refused before anything reaches SQL or a shell.
    for bad in ["a'b", "a`b", "a\"b", "a$b", "a;b", "a b", "a\nb", "Root", "root", "postgres", "pg_x", "mysql_x"] {
        let (status, reply) = api.call(Method::POST, &users, Some(json!({"name": bad}))).await;
        assert_eq!((status, reply["errors"]["name"].is_array()), (422, true), "{bad:?}: {reply}");
    }
    let hostile_hosts =
        if engine == "mysql" { vec!["x' OR '1'='1", "a`b", "a$(id)", "a\nb", ""] } else { vec!["10.0.0.1"] };
    for host in hostile_hosts {
        let (status, reply) = api.call(Method::POST, &users, Some(json!({"name": writer, "hosts": [host]}))).await;
        assert_eq!((status, reply["errors"]["hosts"].is_array()), (422, true), "{host:?}: {reply}");
    }
    let body = json!({"name": writer, "grants": [{"database": "mysql", "access": "read_write"}]});
    let (status, reply) = api.call(Method::POST, &users, Some(body)).await;
    assert_eq!((status, reply["errors"]["grants"].is_array()), (422, true), "only Slipway's databases: {reply}");
    let body = json!({"name": writer, "password": "chosen"});
    assert_eq!(api.call(Method::POST, &users, Some(body)).await.0, 422, "passwords are generated, never chosen");
    let by_hand = format!("{name}_hand");
    let made_by_hand = match engine {
        "mysql" => format!("CREATE USER '{by_hand}'@'localhost'"),
        _ => format!("CREATE ROLE \"{by_hand}\""),
    };
    sql(engine, &made_by_hand);
    let (status, reply) = api.call(Method::POST, &users, Some(json!({"name": by_hand}))).await;
    assert_eq!((status, reply["errors"]["name"].is_array()), (422, true), "a user Slipway did not make: {reply}");
    assert_eq!(accounts(engine, &by_hand), 1, "left alone");

    // A site whose DB_* variables follow the writer.
    let domain = format!("{}.example.com", name.replace('_', "-"));
    let (status, site) = api
        .call(
            Method::POST,
            &format!("{}/sites", p.server_path),
            Some(json!({"domain": domain, "project_type": "static"})),
        )
        .await;
    assert_eq!(status, 201, "{site}");
    let site_id = site["data"]["id"].as_str().unwrap().to_string();
    let site_env = format!("{}/sites/{site_id}/environment-variables?reveal=true", p.server_path);

    // A writer of this database that may read the other, and a reader.
    let body = json!({"name": writer, "grants": [{"database": other, "access": "read_only"}], "site_id": site_id});
    let (status, created) = api.call(Method::POST, &users, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let password = created["data"]["password"].as_str().unwrap().to_string();
    assert!(password.len() == 32 && password.bytes().all(|b| b.is_ascii_alphanumeric()), "{password}");
    let op = api.finished(created["data"]["operation_id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert!(!op.to_string().contains(&password), "the password is in no operation or log");
    let writer_path = format!("{users}/{}", created["data"]["id"].as_str().unwrap());
    let (_, shown) = api.call(Method::GET, &writer_path, None).await;
    assert_eq!(shown["data"]["status"], "active", "{shown}");
    assert!(shown["data"].get("password").is_none(), "shown once only: {shown}");
    let (status, reply) = api.call(Method::POST, &users, Some(json!({"name": writer}))).await;
    assert_eq!((status, reply["errors"]["name"].is_array()), (422, true), "{reply}");

    assert!(password_matches(engine, &writer, &password));
    assert!(!password_matches(engine, &writer, "not-the-password"));
    let (ok, out) = as_user(engine, &writer, &password, name, "CREATE TABLE items (id INT PRIMARY KEY, label TEXT)");
    assert!(ok, "the writer creates tables: {out}");
    let (ok, out) = as_user(engine, &writer, &password, name, "INSERT INTO items VALUES (1, 'one')");
    assert!(ok, "and writes: {out}");
    let in_other = match engine {
        "mysql" => format!("CREATE TABLE `{other}`.t (x INT)"),
        _ => "CREATE TABLE t (x INT)".to_string(),
    };
    let other_db = if engine == "mysql" { "information_schema" } else { other.as_str() };
    let (ok, out) = as_user(engine, &writer, &password, other_db, &in_other);
    assert!(!ok, "read_only on the other database: {out}");

    let (status, created) = api.call(Method::POST, &users, Some(json!({"name": reader, "access": "read_only"}))).await;
    assert_eq!(status, 201, "{created}");
    let reader_password = created["data"]["password"].as_str().unwrap().to_string();
    api.succeeded(created["data"]["operation_id"].as_str().unwrap()).await;
    let (ok, out) = as_user(engine, &reader, &reader_password, name, "SELECT label FROM items");
    assert!(ok && out == "one", "the reader reads what the writer made: {out}");
    let (ok, out) = as_user(engine, &reader, &reader_password, name, "INSERT INTO items VALUES (2, 'two')");
    assert!(!ok && out.to_lowercase().contains("denied"), "the reader cannot write: {out}");

    // The linked site got the writer's variables, sealed like any other.
    let (_, env) = api.call(Method::GET, &site_env, None).await;
    let value = |env: &Value, key: &str| {
        env["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["key"] == key)
            .map(|v| v["value"].as_str().unwrap().to_string())
    };
    assert_eq!(value(&env, "DB_USERNAME").as_deref(), Some(writer.as_str()), "{env}");
    assert_eq!(value(&env, "DB_DATABASE").as_deref(), Some(name));
    assert_eq!(value(&env, "DB_PASSWORD").as_deref(), Some(password.as_str()));

    // Rotation: a new password that works, the old one no longer, the site follows.
    let (status, rotated) = api.call(Method::POST, &format!("{writer_path}/rotate-password"), Some(json!({}))).await;
    assert_eq!(status, 202, "{rotated}");
    let new_password = rotated["data"]["password"].as_str().unwrap().to_string();
    assert_ne!(new_password, password);
    api.succeeded(rotated["data"]["operation_id"].as_str().unwrap()).await;
    assert!(password_matches(engine, &writer, &new_password) && !password_matches(engine, &writer, &password));
    let (_, env) = api.call(Method::GET, &site_env, None).await;
    assert_eq!(value(&env, "DB_PASSWORD").as_deref(), Some(new_password.as_str()));

    // The same from the command line, which prints the password once.
    let cli = |args: &[&str]| {
        let env = [("SLIPWAY_URL", api.url.as_str()), ("SLIPWAY_TOKEN", api.token.as_str())];
        let out = common::slipway(&p.dir, &env).args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let by_cli = format!("{name}_cli");
    let (ok, out, err) =
        cli(&["db-user", "create", "db", name, &by_cli, "--read-only", "--grant", &format!("{other}:read_only")]);
    assert!(ok, "{out}{err}");
    let cli_password = out.trim();
    assert!(password_matches(engine, &by_cli, cli_password), "{out}{err}");
    let (ok, out, err) = cli(&["db-user", "list", "db", name]);
    assert!(ok && out.contains(&by_cli) && out.contains(&format!("{other}:read_only")), "{out}{err}");
    let (ok, out, err) = cli(&["db-user", "rotate", "db", name, &by_cli]);
    assert!(ok && password_matches(engine, &by_cli, out.trim()), "{out}{err}");

    // A database with users is not dropped from under them.
    let (status, reply) = api
        .call(Method::DELETE, &format!("{}/databases/{}", p.server_path, id_of(name)), Some(json!({"confirm": name})))
        .await;
    assert_eq!(status, 409, "{reply}");

    // Deleting drops them from the engine; what the writer made stays. On PostgreSQL the writer
    // also owns a table in a database that is dropped (forced) while the drop of the writer is
    // reassigning what it owns there: the drop still succeeds, that database holding nothing.
    let (ok, out, err) = cli(&["db-user", "delete", "db", name, &by_cli]);
    assert!(ok, "{out}{err}");
    let doomed = (engine == "postgres").then(|| HeldDatabase::owned_by(&format!("{name}_doomed"), &writer));
    for user in [&writer, &reader] {
        let page = api.call(Method::GET, &users, None).await.1;
        let id = page["data"].as_array().unwrap().iter().find(|u| u["name"] == user.as_str()).unwrap()["id"].clone();
        let (status, reply) = api.call(Method::DELETE, &format!("{users}/{}", id.as_str().unwrap()), None).await;
        assert_eq!(status, 202, "{reply}");
        if let Some(held) = &doomed
            && user == &writer
        {
            held.dropped_with_force_once_waited_on();
        }
        api.succeeded(reply["data"]["operation_id"].as_str().unwrap()).await;
    }
    for user in [&writer, &reader, &by_cli] {
        assert_eq!(accounts(engine, user), 0, "{user} is gone from the engine");
    }
    let rows = match engine {
        "mysql" => sql(engine, &format!("SELECT COUNT(*) FROM `{name}`.items")),
        _ => String::from_utf8_lossy(&as_admin_in(name, "SELECT COUNT(*) FROM items").stdout).trim().to_string(),
    };
    assert_eq!(rows, "1", "the data stays");
    let (_, listed) = api.call(Method::GET, &users, None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 0, "{listed}");
    let (status, reply) = api.call(Method::DELETE, &other_path, Some(json!({"confirm": other}))).await;
    assert_eq!(status, 202, "{reply}");
    api.finished(reply["data"]["operation_id"].as_str().unwrap()).await;
}

/// A PostgreSQL database where `owner` owns a table that another session holds locked, so that
/// anything reassigning the owner's objects there waits, until the database is dropped under it.
struct HeldDatabase {
    name: String,
    holder: std::process::Child,
}

impl HeldDatabase {
    fn owned_by(name: &str, owner: &str) -> HeldDatabase {
        use std::io::Write;
        sql("postgres", &format!("CREATE DATABASE \"{name}\""));
        let made = as_admin_in(name, &format!("CREATE TABLE held (id int); ALTER TABLE held OWNER TO \"{owner}\""));
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let mut holder = Command::new("runuser")
            .args(["-u", "postgres", "--", "psql", "-X", "-q", "-d", name])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let statement = b"BEGIN; LOCK TABLE held IN ACCESS EXCLUSIVE MODE;\n";
        holder.stdin.as_mut().unwrap().write_all(statement).unwrap();
        let held = HeldDatabase { name: name.to_string(), holder };
        held.until(
            "the table is locked",
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock' AND l.granted",
        );
        held
    }

    /// Waits until a session other than the holder waits for the lock, then drops the database
    /// with FORCE, which ends both sessions before it commits.
    fn dropped_with_force_once_waited_on(&self) {
        self.until(
            "a session waits for the held table",
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_database d ON d.oid = a.datid \
             WHERE a.wait_event_type = 'Lock'",
        );
        sql("postgres", &format!("DROP DATABASE \"{}\" WITH (FORCE)", self.name));
    }

    /// Asks `query` (which must join `pg_database d`) of this database until it counts one or
    /// more, for a minute at most. Each look is a new psql process (milliseconds), so the loop
    /// does not spin, though it does not pause between looks.
    fn until(&self, what: &str, query: &str) {
        let query = format!("{query} AND d.datname = '{}'", self.name);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while sql("postgres", &query) == "0" {
            assert!(std::time::Instant::now() < deadline, "{what}: not within a minute");
        }
    }
}

impl Drop for HeldDatabase {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Runs the command line against `api`: whether it succeeded, its stdout and its stderr.
fn run_cli(dir: &std::path::Path, api: &Api, args: &[&str]) -> (bool, String, String) {
    let env = [("SLIPWAY_URL", api.url.as_str()), ("SLIPWAY_TOKEN", api.token.as_str())];
    let out = common::slipway(dir, &env).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The hex SHA-256 of a file.
fn sha256_of(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split(' ').next().unwrap().to_string()
}

/// Backs up `name` (20,000 rows) to a real S3 server and to a directory on the test host: each
/// ends `completed` with the size and SHA-256 of what the storage holds and the manifest; a dump
/// that fails and a storage that refuses end `failed` with the reason and leave nothing behind.
async fn backups_are_streamed_checked_and_never_partial(p: &Provisioned, engine: &'static str, name: &str) {
    let api = &p.api;
    let s3 = S3Server::start(&p.dir);
    let fill = match engine {
        "mysql" => format!(
            "CREATE TABLE `{name}`.bulk (id INT PRIMARY KEY, label TEXT); \
             INSERT INTO `{name}`.bulk SELECT seq, CONCAT('row ', seq) FROM `{name}`.seq_1_to_20000"
        ),
        _ => "CREATE TABLE bulk (id INT PRIMARY KEY, label TEXT); \
              INSERT INTO bulk SELECT g, 'row ' || g FROM generate_series(1, 20000) g"
            .to_string(),
    };
    if engine == "mysql" {
        sql(engine, &fill);
    } else {
        let out = as_admin_in(name, &fill);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let storage = |body: Value| async move {
        let (status, made) = api.call(Method::POST, "/api/v1/backup-storages", Some(body)).await;
        assert_eq!(status, 201, "{made}");
        made["data"]["id"].as_str().unwrap().to_string()
    };
    let to_s3 = storage(json!({"name": "s3", "kind": "s3", "endpoint": s3.endpoint, "bucket": s3.bucket,
                               "prefix": "acme", "path_style": true, "access_key_id": s3.access_key,
                               "secret_access_key": s3.secret_key}))
    .await;
    let server_id = p.server_path.rsplit('/').next().unwrap();
    let directory = p.dir.join("backups");
    let to_dir = storage(json!({"name": "dir", "kind": "local", "server_id": server_id, "path": directory})).await;
    let databases = all_databases(api, &p.server_path).await;
    let database = databases.iter().find(|d| d["name"] == name).unwrap()["id"].as_str().unwrap().to_string();
    let backups = format!("{}/databases/{database}/backups", p.server_path);
    let back_up = |storage_id: String| {
        let backups = backups.clone();
        async move {
            let (status, made) = api.call(Method::POST, &backups, Some(json!({"storage_id": storage_id}))).await;
            assert_eq!(status, 202, "{made}");
            assert_eq!(made["data"]["status"], "pending");
            api.finished(made["data"]["operation_id"].as_str().unwrap()).await;
            let (_, backup) =
                api.call(Method::GET, &format!("/api/v1/backups/{}", made["data"]["id"].as_str().unwrap()), None).await;
            backup["data"].clone()
        }
    };

    // To S3 and to a directory: what the storage holds is what was recorded.
    let mut last_completed = String::new();
    for (storage_id, file_of) in [
        (
            to_s3.clone(),
            Box::new(|key: &str| s3.root.join(&s3.bucket).join("acme").join(key))
                as Box<dyn Fn(&str) -> std::path::PathBuf>,
        ),
        (to_dir.clone(), Box::new(|key: &str| directory.join(key))),
    ] {
        let backup = back_up(storage_id).await;
        assert_eq!(backup["status"], "completed", "{backup}");
        let file = file_of(backup["object_key"].as_str().unwrap());
        assert!(file.is_file(), "{} is in the storage: {backup}", file.display());
        assert_eq!(backup["size_bytes"].as_u64(), Some(std::fs::metadata(&file).unwrap().len()), "{backup}");
        assert_eq!(backup["sha256"].as_str(), Some(sha256_of(&file).as_str()), "{backup}");
        let tables = backup["manifest"]["tables"].as_array().unwrap();
        let bulk =
            tables.iter().find(|t| t["table"].as_str().unwrap().ends_with("bulk")).expect("bulk in the manifest");
        assert_eq!(bulk["rows"], 20000, "{backup}");
        let head = std::fs::read(&file).unwrap();
        match engine {
            "mysql" => {
                assert_eq!(&head[..2], &[0x1f, 0x8b], "gzip");
                // The file goes in as an argument, never into the command's text.
                let out = Command::new("sh")
                    .args(["-c", "gunzip -c \"$1\" | grep -c 'INSERT INTO `bulk`'", "sh"])
                    .arg(&file)
                    .output()
                    .unwrap();
                assert_ne!(String::from_utf8_lossy(&out.stdout).trim(), "0", "the dump holds the rows");
            }
            _ => assert_eq!(&head[..5], b"PGDMP", "pg_dump's custom format"),
        }
        assert!(backup["duration_seconds"].as_i64().is_some(), "{backup}");

        last_completed = backup["id"].as_str().unwrap().to_string();
        if file.starts_with(&directory) {
            // This one is downloaded with the command line, below.
            continue;
        }
        // Downloaded as stored, with its size and checksum in the headers.
        let got = download(api, backup["id"].as_str().unwrap()).await;
        assert_eq!(got.status(), 200);
        let header = |name: &str| got.headers().get(name).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(header("content-length"), backup["size_bytes"].as_u64().map(|s| s.to_string()));
        assert_eq!(header("x-checksum-sha256").as_deref(), backup["sha256"].as_str());
        let bytes = got.bytes().await.unwrap();
        assert_eq!(bytes.as_ref(), std::fs::read(&file).unwrap().as_slice(), "the download is the stored object");
    }
    // The command line makes, lists and downloads them (checking the checksum).
    let cli = |args: &[&str]| run_cli(&p.dir, api, args);
    let (ok, out, err) = cli(&["backup", "create", "db", name, "--storage", &to_dir, "--output", "json"]);
    assert!(ok, "{out}{err}");
    let made: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(made["status"], "completed", "{made}");
    let (ok, out, err) = cli(&["backup", "list", "--status", "completed"]);
    assert!(ok && out.contains(made["id"].as_str().unwrap()) && out.contains(&last_completed), "{out}{err}");
    let saved = p.dir.join("downloaded.backup");
    let (ok, out, err) = cli(&["backup", "download", &last_completed, "--to", saved.to_str().unwrap()]);
    assert!(ok && err.contains("checked"), "{out}{err}");
    let stored = directory.join(
        backups_listed(api, &backups).await.iter().find(|b| b["id"] == last_completed.as_str()).unwrap()["object_key"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(std::fs::read(&saved).unwrap(), std::fs::read(&stored).unwrap());
    let refused = download(api, &last_completed).await;
    assert_eq!(refused.status(), 429, "a third download within the hour");
    assert!(refused.headers().contains_key("retry-after"));
    assert!(!walk_has(&directory, ".partial"), "no partial file is left");

    // A dump that fails (the database is gone from the engine): failed, with the engine's words,
    // and nothing in either storage.
    let (objects, files) = (s3.objects().len(), count_files(&directory));
    let dropped = match engine {
        "mysql" => format!("DROP DATABASE `{name}`"),
        _ => format!("DROP DATABASE \"{name}\" WITH (FORCE)"),
    };
    sql(engine, &dropped);
    for storage_id in [to_s3.clone(), to_dir.clone()] {
        let backup = back_up(storage_id).await;
        assert_eq!(backup["status"], "failed", "{backup}");
        assert!(!backup["error"].as_str().unwrap_or("").is_empty(), "{backup}");
    }
    assert_eq!((s3.objects().len(), count_files(&directory)), (objects, files), "nothing partial: {:?}", s3.objects());
    assert!(!walk_has(&directory, ".partial"));
    let create = match engine {
        "mysql" => format!("CREATE DATABASE `{name}`"),
        _ => format!("CREATE DATABASE \"{name}\""),
    };
    sql(engine, &create);

    // A storage that refuses (a wrong secret): failed before anything is written.
    let wrong = storage(json!({"name": "wrong", "kind": "s3", "endpoint": s3.endpoint, "bucket": s3.bucket,
                               "path_style": true, "access_key_id": s3.access_key, "secret_access_key": "wrong"}))
    .await;
    let backup = back_up(wrong).await;
    assert_eq!(backup["status"], "failed", "{backup}");
    assert_eq!(s3.objects().len(), objects);
    // A bucket that does not exist: failed with the store's words, and nothing written (this
    // S3 server would make the bucket on a first write).
    let missing = storage(json!({"name": "missing", "kind": "s3", "endpoint": s3.endpoint, "bucket": "no-such-bucket",
                                 "path_style": true, "access_key_id": s3.access_key, "secret_access_key": s3.secret_key}))
    .await;
    let backup = back_up(missing).await;
    assert_eq!(backup["status"], "failed", "{backup}");
    assert!(backup["error"].as_str().unwrap_or("").contains("NoSuchBucket"), "{backup}");
    assert!(!s3.root.join("no-such-bucket").exists(), "no bucket was made");

    // The organisation's list, filtered.
    let (status, failed) = api.call(Method::GET, "/api/v1/backups?status=failed&type=database", None).await;
    assert_eq!(status, 200, "{failed}");
    assert_eq!(failed["data"].as_array().unwrap().len(), 4, "{failed}");
    assert_eq!(backups_listed(api, &backups).await.len(), 7);
    assert_eq!(api.call(Method::GET, "/api/v1/backups?status=lost", None).await.0, 422);
}

/// Runs `statement` in database `database` as the administrator; returns stdout (trimmed).
fn sql_in(engine: &str, database: &str, statement: &str) -> String {
    let out = match engine {
        "mysql" => Command::new("mysql")
            .args(["--protocol=socket", "-uroot", "-N", "-B", "--raw", database, "-e", statement])
            .output()
            .unwrap(),
        _ => as_admin_in(database, statement),
    };
    assert!(out.status.success(), "{statement}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What a test database holds, as text to compare: row count and sum of `items`, and every note.
fn content(engine: &str, database: &str) -> String {
    let items = sql_in(engine, database, "SELECT COUNT(*), SUM(id) FROM items");
    let notes = sql_in(engine, database, "SELECT id, body FROM notes ORDER BY id");
    format!("{items}\n{notes}")
}

/// Flips one byte in the middle of a stored file: same size, other content.
fn corrupt(file: &std::path::Path) {
    let mut bytes = std::fs::read(file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(file, bytes).unwrap();
}

/// Restores and verifications of `name`'s backups, for real: a verification restores into a
/// scratch database and passes; a restore into a new database and one over the database itself
/// give back exactly what was backed up (hostile text included); an object corrupted in its
/// storage fails verification with a checksum mismatch and is restored nowhere.
async fn backups_restore_and_verify_for_real(p: &Provisioned, engine: &'static str, name: &str) {
    let api = &p.api;
    let _scratch = DropAfter { engine, prefix: "slpverify_".into() };
    let s3 = S3Server::start(&p.dir);
    let hostile = "it's \"quoted\" `ticked` $HOME \\ back; DROP TABLE items; --";
    let fill = match engine {
        "mysql" => format!(
            "CREATE TABLE items (id INT PRIMARY KEY, label TEXT); \
             INSERT INTO items SELECT seq, CONCAT('item ', seq) FROM seq_1_to_5000; \
             CREATE TABLE notes (id INT PRIMARY KEY, body TEXT); \
             INSERT INTO notes VALUES (1, '{}'), (2, CONCAT('two', CHAR(10), 'lines'))",
            hostile.replace('\\', "\\\\").replace('\'', "\\'")
        ),
        _ => format!(
            "CREATE TABLE items (id INT PRIMARY KEY, label TEXT); \
             INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5000) g; \
             CREATE TABLE notes (id INT PRIMARY KEY, body TEXT); \
             INSERT INTO notes VALUES (1, '{}'), (2, 'two' || chr(10) || 'lines')",
            hostile.replace('\'', "''")
        ),
    };
    sql_in(engine, name, &fill);
    let original = content(engine, name);
    assert!(original.starts_with("5000\t12502500") || original.starts_with("5000|12502500"), "{original}");
    assert!(original.contains("DROP TABLE items"), "{original}");

    let storage = |body: Value| async move {
        let (status, made) = api.call(Method::POST, "/api/v1/backup-storages", Some(body)).await;
        assert_eq!(status, 201, "{made}");
        made["data"]["id"].as_str().unwrap().to_string()
    };
    let to_s3 = storage(json!({"name": "s3 restores", "kind": "s3", "endpoint": s3.endpoint, "bucket": s3.bucket,
                               "path_style": true, "access_key_id": s3.access_key,
                               "secret_access_key": s3.secret_key}))
    .await;
    let server_id = p.server_path.rsplit('/').next().unwrap();
    let directory = p.dir.join("backups-restores");
    let to_dir =
        storage(json!({"name": "dir restores", "kind": "local", "server_id": server_id, "path": directory})).await;
    let databases = all_databases(api, &p.server_path).await;
    let database = databases.iter().find(|d| d["name"] == name).unwrap()["id"].as_str().unwrap().to_string();
    let backups = format!("{}/databases/{database}/backups", p.server_path);
    let backup_of = |id: String| async move { api.call(Method::GET, &format!("/api/v1/backups/{id}"), None).await.1 };
    let mut made = Vec::new();
    for storage_id in [&to_s3, &to_dir] {
        let (status, backup) = api.call(Method::POST, &backups, Some(json!({"storage_id": storage_id}))).await;
        assert_eq!(status, 202, "{backup}");
        api.finished(backup["data"]["operation_id"].as_str().unwrap()).await;
        let backup = backup_of(backup["data"]["id"].as_str().unwrap().to_string()).await;
        assert_eq!(backup["data"]["status"], "completed", "{backup}");
        made.push(backup["data"].clone());
    }
    let (on_s3, on_dir) = (made[0].clone(), made[1].clone());
    let act = |id: &str, action: &str, body: Value| {
        let path = format!("/api/v1/backups/{id}/{action}");
        async move {
            let (status, reply) = api.call(Method::POST, &path, Some(body)).await;
            assert_eq!(status, 202, "{path}: {reply}");
            api.finished(reply["data"]["id"].as_str().unwrap()).await
        }
    };

    // Verified: restored into a scratch database that is gone afterwards.
    for backup in [&on_s3, &on_dir] {
        let id = backup["id"].as_str().unwrap();
        let op = act(id, "verify", json!({})).await;
        assert_eq!(op["status"], "succeeded", "{op}");
        let verified = backup_of(id.to_string()).await;
        assert_eq!(verified["data"]["status"], "completed", "{verified}");
        assert!(verified["data"]["verified_at"].is_string(), "{verified}");
        assert!(verified["data"]["verification_error"].is_null(), "{verified}");
        assert_eq!(on_engine(engine, &format!("slpverify_{}", id.to_lowercase())), "", "the scratch database is gone");
    }

    // Into a new database: created for it, and holding exactly what was backed up.
    let restored = format!("{name}_r1");
    let s3_id = on_s3["id"].as_str().unwrap();
    let op = act(s3_id, "restore", json!({"target": {"database": restored}})).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(content(engine, &restored), original);
    let listed = all_databases(api, &p.server_path).await;
    let new_one = listed.iter().find(|d| d["name"] == restored.as_str()).expect("the new database is managed");
    assert_eq!(new_one["status"], "active", "{new_one}");
    let after = backup_of(s3_id.to_string()).await;
    assert_eq!(after["data"]["status"], "restored", "{after}");
    assert!(after["data"]["restored_at"].is_string(), "{after}");
    let (status, reply) = api.call(Method::GET, "/api/v1/backups?status=restored", None).await;
    assert!(status == 200 && reply["data"].as_array().unwrap().iter().any(|b| b["id"] == s3_id), "{reply}");

    // Over the database itself: it must be named again, then its tables are the backup's.
    sql_in(engine, name, "DELETE FROM items WHERE id > 100");
    sql_in(engine, name, "UPDATE notes SET body = 'changed'");
    assert_ne!(content(engine, name), original);
    let dir_id = on_dir["id"].as_str().unwrap();
    let path = format!("/api/v1/backups/{dir_id}/restore");
    let (status, reply) = api.call(Method::POST, &path, Some(json!({}))).await;
    assert_eq!((status, reply["errors"]["confirm"].is_array()), (422, true), "{reply}");
    let (status, reply) = api.call(Method::POST, &path, Some(json!({"confirm": "someone_else"}))).await;
    assert_eq!(status, 422, "{reply}");
    for bad in ["x`y", "a;b", "Shop", "a'b", "a\nb", "$HOME", "mysql", "postgres"] {
        let (status, reply) = api.call(Method::POST, &path, Some(json!({"target": {"database": bad}}))).await;
        assert_eq!((status, reply["errors"]["target.database"].is_array()), (422, true), "{bad:?}: {reply}");
    }
    let op = act(dir_id, "restore", json!({"confirm": name})).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(content(engine, name), original, "the database is as backed up");

    // Into a database Slipway does not manage (made by hand): refused, and it is left alone.
    let by_hand = format!("{name}_mine");
    let quoted = if engine == "mysql" { format!("`{by_hand}`") } else { format!("\"{by_hand}\"") };
    sql(engine, &format!("CREATE DATABASE {quoted}"));
    sql_in(engine, &by_hand, "CREATE TABLE mine (id INT)");
    let (status, reply) = api.call(Method::POST, &path, Some(json!({"target": {"database": by_hand}}))).await;
    assert_eq!(status, 422, "{reply}");
    assert!(reply["errors"]["target.database"][0].as_str().unwrap().contains("does not manage"), "{reply}");
    assert_eq!(sql_in(engine, &by_hand, "SELECT COUNT(*) FROM mine"), "0", "left as it was");
    assert!(!all_databases(api, &p.server_path).await.iter().any(|d| d["name"] == by_hand.as_str()));

    // The command line verifies and restores, following the log.
    let cli = |args: &[&str]| run_cli(&p.dir, api, args);
    let (ok, out, err) = cli(&["backup", "verify", dir_id]);
    assert!(ok && err.contains("Verified"), "{out}{err}");
    let (ok, out, err) = cli(&["backup", "restore", dir_id]);
    assert!(!ok && err.contains("confirm"), "{out}{err}");
    let by_cli = format!("{name}_r2");
    let (ok, out, err) = cli(&["backup", "restore", dir_id, "--database", &by_cli]);
    assert!(ok && out.contains("restoring into"), "the log is shown: {out}{err}");
    assert_eq!(content(engine, &by_cli), original);

    // A corrupted object, in each storage: verification fails with the checksum mismatch, the
    // backup is failed, and it is restored nowhere.
    let s3_file = s3.root.join(&s3.bucket).join(on_s3["object_key"].as_str().unwrap());
    let dir_file = directory.join(on_dir["object_key"].as_str().unwrap());
    for (backup, file) in [(&on_s3, &s3_file), (&on_dir, &dir_file)] {
        let id = backup["id"].as_str().unwrap();
        corrupt(file);
        let op = act(id, "verify", json!({})).await;
        assert_eq!(op["status"], "failed", "{op}");
        let failed = backup_of(id.to_string()).await;
        assert_eq!(failed["data"]["status"], "failed", "{failed}");
        let why = failed["data"]["verification_error"].as_str().unwrap_or("");
        assert!(why.contains("checksum mismatch"), "{failed}");
        assert_eq!(on_engine(engine, &format!("slpverify_{}", id.to_lowercase())), "");
        let (status, reply) = api
            .call(
                Method::POST,
                &format!("/api/v1/backups/{id}/restore"),
                Some(json!({"target": {"database": format!("{name}_r3")}})),
            )
            .await;
        assert_eq!(status, 409, "a failed backup is not restored: {reply}");
    }
    assert_eq!(on_engine(engine, &format!("{name}_r3")), "");
}

/// A schedule runs on its own, and retention deletes for real: with keep-last 3, the fourth
/// backup deletes the oldest object from the bucket (listed to check). A schedule that verifies
/// has each backup verified before retention runs.
async fn scheduled_backups_are_kept_as_retention_says(p: &Provisioned, name: &str) {
    let api = &p.api;
    let s3 = S3Server::start(&p.dir);
    let body = json!({"name": "scheduled", "kind": "s3", "endpoint": s3.endpoint, "bucket": s3.bucket,
                      "prefix": "sched", "path_style": true, "access_key_id": s3.access_key,
                      "secret_access_key": s3.secret_key});
    let (status, storage) = api.call(Method::POST, "/api/v1/backup-storages", Some(body)).await;
    assert_eq!(status, 201, "{storage}");
    let storage_id = storage["data"]["id"].as_str().unwrap().to_string();
    let databases = all_databases(api, &p.server_path).await;
    let database = databases.iter().find(|d| d["name"] == name).unwrap()["id"].as_str().unwrap().to_string();
    let schedules = format!("{}/databases/{database}/backup-schedules", p.server_path);

    // Bad settings are refused field by field.
    let bad = json!({"storage_id": "nope", "frequency": "61 * * * *", "keep_last": 0, "keep_daily": -1});
    let (status, reply) = api.call(Method::POST, &schedules, Some(bad)).await;
    assert_eq!(status, 422, "{reply}");
    for field in ["storage_id", "frequency", "keep_last", "keep_daily"] {
        assert!(reply["errors"][field].is_array(), "{field}: {reply}");
    }

    // Every minute, until its first backup is there.
    let settings = json!({"storage_id": storage_id, "frequency": "minutely", "keep_last": 3});
    let (status, created) = api.call(Method::POST, &schedules, Some(settings)).await;
    assert_eq!(status, 201, "{created}");
    let schedule_path = format!("/api/v1/backup-schedules/{}", created["data"]["id"].as_str().unwrap());
    assert!(created["data"]["next_run_at"].is_string() && created["data"]["stale"] == false, "{created}");
    let ours = |all: &[String]| all.iter().filter(|k| k.starts_with("sched/")).cloned().collect::<Vec<_>>();
    let first = common::eventually_some(
        Duration::from_secs(1),
        Duration::from_secs(120),
        "the schedule's first backup is stored",
        || async {
            let (_, shown) = api.call(Method::GET, &schedule_path, None).await;
            shown["data"]["last_good_backup_at"].is_string().then(|| ours(&s3.objects()))
        },
    )
    .await;
    assert_eq!(first.len(), 1, "{first:?}");
    // Nightly from now on: the runs below are asked for.
    let settings = json!({"storage_id": storage_id, "frequency": "nightly", "keep_last": 3});
    let (status, updated) = api.call(Method::PUT, &schedule_path, Some(settings)).await;
    assert_eq!(status, 200, "{updated}");

    let run = || async {
        let (status, made) = api.call(Method::POST, &format!("{schedule_path}/run"), Some(json!({}))).await;
        assert_eq!(status, 202, "{made}");
        let op = api.finished(made["data"]["operation_id"].as_str().unwrap()).await;
        assert_eq!(op["status"], "succeeded", "{op}");
        made["data"]["id"].as_str().unwrap().to_string()
    };
    run().await;
    // The command line runs it too, and lists it.
    let schedule_id = schedule_path.rsplit('/').next().unwrap();
    let (ok, out, err) = run_cli(&p.dir, api, &["backup-schedule", "run", schedule_id]);
    assert!(ok && err.contains("stored"), "{out}{err}");
    let (ok, out, err) = run_cli(&p.dir, api, &["backup-schedule", "list", "db", name]);
    assert!(ok && out.contains(schedule_id) && out.contains("nightly"), "{out}{err}");
    assert_eq!(ours(&s3.objects()).len(), 3, "three kept: {:?}", s3.objects());
    let newest = run().await;
    let left = ours(&s3.objects());
    assert_eq!(left.len(), 3, "the fourth deleted the oldest: {left:?}");
    assert!(!left.contains(&first[0]), "the first object is gone from the bucket: {left:?}");
    let (_, pruned) = api.call(Method::GET, "/api/v1/audit-events?action=backup.prune", None).await;
    assert_eq!(pruned["data"].as_array().map(Vec::len), Some(1), "{pruned}");

    // Verifying: the next backup is verified, then retention keeps three again.
    let settings = json!({"storage_id": storage_id, "frequency": "nightly", "keep_last": 3, "verify": true});
    let (status, updated) = api.call(Method::PUT, &schedule_path, Some(settings)).await;
    assert_eq!(status, 200, "{updated}");
    // The three unverified backups stay until three verified ones are kept.
    let mut verified = Vec::new();
    for n in 1..=3 {
        let id = run().await;
        let backup =
            common::eventually_some(Duration::from_millis(500), Duration::from_secs(120), "verified", || async {
                let (_, b) = api.call(Method::GET, &format!("/api/v1/backups/{id}"), None).await;
                b["data"]["verified_at"].is_string().then_some(b)
            })
            .await;
        assert_eq!(backup["data"]["status"], "completed", "{backup}");
        verified.push(backup["data"]["object_key"].as_str().unwrap().to_string());
        if n < 3 {
            assert_eq!(ours(&s3.objects()).len(), 3 + n, "nothing unverified goes yet");
        }
    }
    common::eventually(Duration::from_secs(60), "retention after the third verification", || async {
        let left = ours(&s3.objects());
        left.len() == 3 && verified.iter().all(|k| left.iter().any(|l| l.ends_with(k.as_str())))
    })
    .await;
    let (_, shown) = api.call(Method::GET, &schedule_path, None).await;
    assert_eq!((shown["data"]["stale"].as_bool(), shown["data"]["verify"].as_bool()), (Some(false), Some(true)));
    assert_eq!(api.call(Method::GET, &format!("/api/v1/backups/{newest}"), None).await.0, 404, "pruned");
    assert_eq!(api.call(Method::DELETE, &schedule_path, None).await.0, 204);
    assert_eq!(api.call(Method::GET, &schedule_path, None).await.0, 404);
}

/// kill -9 of Slipway while a backup waits on the engine (a session holds a table locked):
/// after the restart the backup ends `failed` (interrupted), nothing partial stays in the
/// storage, the next backup completes, and so does the next run of a schedule made before the
/// kill.
async fn an_interrupted_backup_fails_and_the_next_one_works(p: &mut Provisioned, name: &str) {
    let directory = p.dir.join("backups-interrupted");
    let server_id = p.server_path.rsplit('/').next().unwrap().to_string();
    let body = json!({"name": "interrupted", "kind": "local", "server_id": server_id, "path": directory});
    let (status, storage) = p.api.call(Method::POST, "/api/v1/backup-storages", Some(body)).await;
    assert_eq!(status, 201, "{storage}");
    let storage_id = storage["data"]["id"].as_str().unwrap().to_string();
    let database = all_databases(&p.api, &p.server_path).await;
    let database = database.iter().find(|d| d["name"] == name).unwrap()["id"].as_str().unwrap().to_string();
    let backups = format!("{}/databases/{database}/backups", p.server_path);
    let out = as_admin_in(name, "CREATE TABLE held (id INT)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // psql itself (not under runuser), so that killing it by PID ends the session.
    let mut locker = Command::new("psql")
        .args(["-X", "-h", "/var/run/postgresql", "-U", "postgres", "-d", name, "-c"])
        .arg("BEGIN; LOCK TABLE held IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(300);")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let locked = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                  WHERE c.relname = 'held' AND l.mode = 'AccessExclusiveLock' AND l.granted";
    common::eventually(Duration::from_secs(20), "the table is locked", || async {
        String::from_utf8_lossy(&as_admin_in(name, locked).stdout).trim() == "1"
    })
    .await;

    let (status, made) = p.api.call(Method::POST, &backups, Some(json!({"storage_id": storage_id}))).await;
    assert_eq!(status, 202, "{made}");
    let backup_path = format!("/api/v1/backups/{}", made["data"]["id"].as_str().unwrap());
    let api = &p.api;
    common::eventually(Duration::from_secs(30), "the backup waits on the lock", || async {
        api.call(Method::GET, &backup_path, None).await.1["data"]["status"] == "in_progress"
    })
    .await;
    // A schedule, every minute, made before the kill: its runs go on after the restart.
    let schedules = format!("{}/databases/{database}/backup-schedules", p.server_path);
    let every_minute = json!({"storage_id": storage_id, "frequency": "minutely", "keep_last": 10});
    let (status, schedule) = api.call(Method::POST, &schedules, Some(every_minute)).await;
    assert_eq!(status, 201, "{schedule}");
    let schedule_path = format!("/api/v1/backup-schedules/{}", schedule["data"]["id"].as_str().unwrap());
    Command::new("kill").args(["-KILL", &p.slipway.child.id().to_string()]).status().unwrap();
    let _ = p.slipway.child.wait();
    p.slipway = Server::start(&p.dir, &[UNLIMITED, SHORT_LEASE, TWO_DOWNLOADS]).unwrap();
    p.api = Api { url: p.slipway.url.clone(), token: p.api.token.clone() };
    let api = &p.api;
    let ended = common::eventually_some(
        Duration::from_millis(500),
        Duration::from_secs(60),
        "the backup is found interrupted",
        || async {
            let backup = api.call(Method::GET, &backup_path, None).await.1["data"].clone();
            (backup["status"] == "failed").then_some(backup)
        },
    )
    .await;
    assert!(ended["error"].as_str().unwrap().contains("interrupted"), "{ended}");

    let _ = locker.kill();
    let _ = locker.wait();
    let release = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'BEGIN; LOCK TABLE held%'";
    as_admin_in(name, release);
    let (status, made) = api.call(Method::POST, &backups, Some(json!({"storage_id": storage_id}))).await;
    assert_eq!(status, 202, "{made}");
    api.finished(made["data"]["operation_id"].as_str().unwrap()).await;
    let (_, next) =
        api.call(Method::GET, &format!("/api/v1/backups/{}", made["data"]["id"].as_str().unwrap()), None).await;
    assert_eq!(next["data"]["status"], "completed", "{next}");
    common::eventually(Duration::from_secs(150), "a run of the schedule completes after the restart", || async {
        api.call(Method::GET, &schedule_path, None).await.1["data"]["last_good_backup_at"].is_string()
    })
    .await;
    // Deleted, and its run in flight (if any) ended: nothing of it runs in the tests after.
    assert_eq!(api.call(Method::DELETE, &schedule_path, None).await.0, 204);
    common::eventually(Duration::from_secs(60), "no backup is being made", || async {
        let mut busy = 0;
        for status in ["pending", "in_progress"] {
            let (_, listed) = api.call(Method::GET, &format!("/api/v1/backups?status={status}"), None).await;
            busy += listed["data"].as_array().map_or(1, Vec::len);
        }
        busy == 0
    })
    .await;
    assert!(!walk_has(&directory, ".partial"), "nothing partial stays");
    assert!(count_files(&directory) >= 2, "the backup after the restart and the scheduled one");
}

/// A dump killed mid-way (pg_dump of a table big enough to take seconds, killed by PID) ends the
/// backup `failed` with the reason, and leaves nothing in the storage: no S3 object, no partial
/// file. So does a directory the storage's server cannot write.
async fn a_killed_dump_and_an_unwritable_directory_fail_and_leave_nothing(p: &Provisioned, name: &str) {
    let api = &p.api;
    let s3 = S3Server::start(&p.dir);
    let server_id = p.server_path.rsplit('/').next().unwrap().to_string();
    let directory = p.dir.join("backups-killed");
    let mut storages = Vec::new();
    for body in [
        json!({"name": "s3 killed", "kind": "s3", "endpoint": s3.endpoint, "bucket": s3.bucket, "path_style": true,
               "access_key_id": s3.access_key, "secret_access_key": s3.secret_key}),
        json!({"name": "dir killed", "kind": "local", "server_id": server_id, "path": directory}),
    ] {
        let (status, made) = api.call(Method::POST, "/api/v1/backup-storages", Some(body)).await;
        assert_eq!(status, 201, "{made}");
        storages.push(made["data"]["id"].as_str().unwrap().to_string());
    }
    let database = all_databases(api, &p.server_path).await;
    let database = database.iter().find(|d| d["name"] == name).unwrap()["id"].as_str().unwrap().to_string();
    let backups = format!("{}/databases/{database}/backups", p.server_path);
    let big = "CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 4) AS v FROM generate_series(1, 600000) g";
    let out = as_admin_in(name, big);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The bucket is shared with the tests before (same directory): what is there stays as it is.
    let objects = s3.objects();

    for storage_id in &storages {
        let (status, made) = api.call(Method::POST, &backups, Some(json!({"storage_id": storage_id}))).await;
        assert_eq!(status, 202, "{made}");
        // Found by its command line (pg_dump by its path, as Debian's wrapper runs it, not
        // runuser) while it dumps, and killed.
        let pattern = format!("/pg_dump -Fc -d {name}$");
        let pid = common::eventually_some(Duration::from_millis(10), Duration::from_secs(30), "pg_dump runs", || {
            let pattern = pattern.clone();
            async move {
                let out = Command::new("pgrep").args(["-f", &pattern]).output().unwrap();
                String::from_utf8_lossy(&out.stdout).lines().next().map(str::to_string)
            }
        })
        .await;
        Command::new("kill").args(["-KILL", &pid]).status().unwrap();
        api.finished(made["data"]["operation_id"].as_str().unwrap()).await;
        let (_, backup) =
            api.call(Method::GET, &format!("/api/v1/backups/{}", made["data"]["id"].as_str().unwrap()), None).await;
        assert_eq!(backup["data"]["status"], "failed", "{backup}");
        assert!(backup["data"]["error"].as_str().unwrap().contains("dump"), "{backup}");
    }
    assert_eq!(s3.objects(), objects, "no new object, no part");
    assert!(!directory.exists() || count_files(&directory) == 0, "no file, partial or not");

    // A directory on a full disk (a 256 KiB tmpfs, far smaller than the dump): the write fails,
    // the backup says the disk is full, and the partial file is removed.
    let full = TinyDisk::mount(&p.host, &p.dir.join("full-disk"));
    let body = json!({"name": "full", "kind": "local", "server_id": server_id, "path": full.path});
    let error = failed_backup_to(api, &backups, body).await;
    assert!(error.contains("could not write the backup: ") && error.contains("No space left on device"), "{error}");
    assert_eq!(full.files(), "", "no partial file stays on the full disk");
    drop(full);

    let out = as_admin_in(name, "DROP TABLE big");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // A directory its server cannot write (a file stands where it should be): failed, nothing left.
    let blocked = p.dir.join("not-a-directory");
    std::fs::write(&blocked, "x").unwrap();
    let body = json!({"name": "blocked", "kind": "local", "server_id": server_id, "path": blocked.join("sub")});
    let error = failed_backup_to(api, &backups, body).await;
    assert!(error.contains("could not write the backup: ") && error.contains("Not a directory"), "{error}");
    assert_eq!(std::fs::read_to_string(&blocked).unwrap(), "x");
}

/// Makes a storage from `storage` and a backup into it from `backups` (a database's), which
/// must end `failed`; returns its error.
async fn failed_backup_to(api: &Api, backups: &str, storage: Value) -> String {
    let (status, made) = api.call(Method::POST, "/api/v1/backup-storages", Some(storage)).await;
    assert_eq!(status, 201, "{made}");
    let storage_id = made["data"]["id"].as_str().unwrap();
    let (status, made) = api.call(Method::POST, backups, Some(json!({"storage_id": storage_id}))).await;
    assert_eq!(status, 202, "{made}");
    api.finished(made["data"]["operation_id"].as_str().unwrap()).await;
    let (_, backup) =
        api.call(Method::GET, &format!("/api/v1/backups/{}", made["data"]["id"].as_str().unwrap()), None).await;
    assert_eq!(backup["data"]["status"], "failed", "{backup}");
    backup["data"]["error"].as_str().unwrap_or("").to_string()
}

/// A tiny tmpfs mounted on a test host, at a path of its (a full disk), unmounted when
/// dropped, even on failure. The host has a mount namespace of its own: mounted there.
struct TinyDisk<'a> {
    path: std::path::PathBuf,
    host: &'a NetnsHost,
}

impl<'a> TinyDisk<'a> {
    fn mount(host: &'a NetnsHost, path: &std::path::Path) -> TinyDisk<'a> {
        std::fs::create_dir_all(path).unwrap();
        let path_text = path.to_str().unwrap();
        let out = host.exec_in_mounts(&["mount", "-t", "tmpfs", "-o", "size=256k,mode=0777", "tmpfs", path_text]);
        assert!(out.status.success(), "mount a tmpfs: {}", String::from_utf8_lossy(&out.stderr));
        TinyDisk { path: path.to_path_buf(), host }
    }

    /// The files on it, as the host sees them.
    fn files(&self) -> String {
        let out = self.host.exec_in_mounts(&["find", self.path.to_str().unwrap(), "-type", "f"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for TinyDisk<'_> {
    fn drop(&mut self) {
        let _ = self.host.exec_in_mounts(&["umount", self.path.to_str().unwrap()]);
    }
}

/// A database's backups (the first 100).
async fn backups_listed(api: &Api, backups: &str) -> Vec<Value> {
    let (status, listed) = api.call(Method::GET, &format!("{backups}?per_page=100"), None).await;
    assert_eq!(status, 200, "{listed}");
    listed["data"].as_array().unwrap().clone()
}

async fn download(api: &Api, backup: &str) -> reqwest::Response {
    let url = format!("{}/api/v1/backups/{backup}/download", api.url);
    common::http().get(url).bearer_auth(&api.token).send().await.unwrap()
}

fn count_files(dir: &std::path::Path) -> usize {
    let out = Command::new("find").arg(dir).args(["-type", "f"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

fn walk_has(dir: &std::path::Path, suffix: &str) -> bool {
    let out = Command::new("find").arg(dir).args(["-type", "f", "-name", &format!("*{suffix}")]).output().unwrap();
    !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

/// Runs `statement` in PostgreSQL database `database` as the administrator.
fn as_admin_in(database: &str, statement: &str) -> std::process::Output {
    Command::new("runuser")
        .args(["-u", "postgres", "--", "psql", "-X", "-A", "-t", "-d", database, "-c", statement])
        .output()
        .unwrap()
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
    let mut p = provisioned_with(database_type).await;
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
    let cli = |args: &[&str]| run_cli(&p.dir, api, args);
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

    users_are_managed_for_real(&p, engine, &name).await;
    backups_are_streamed_checked_and_never_partial(&p, engine, &name).await;
    backups_restore_and_verify_for_real(&p, engine, &name).await;
    if engine == "mysql" {
        scheduled_backups_are_kept_as_retention_says(&p, &name).await;
    }
    if engine == "postgres" {
        a_killed_dump_and_an_unwritable_directory_fail_and_leave_nothing(&p, &name).await;
        an_interrupted_backup_fails_and_the_next_one_works(&mut p, &name).await;
    }
    let api = &p.api;

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
