//! Database users on the server's own engine: a login with a generated password and grants on
//! chosen databases (`read_only` or `read_write`), from chosen hosts (MySQL; PostgreSQL users are
//! local).
//!
//! Slipway renders the SQL here from names already held to `[a-z0-9_]`, hosts to a plain
//! alphabet and passwords it generated itself (base62), each checked again before a statement is
//! written; the script only runs it, through the client's standard input, so a password is never
//! on a command line. A sync makes every user's grants exactly those listed: grants on databases
//! no longer listed are revoked, accounts on hosts no longer listed are dropped. On PostgreSQL
//! each database's revoke-and-grant is one transaction, so an application never sees its user
//! without rights mid-sync. Dropping a PostgreSQL user hands what it owns (tables it created) to
//! `postgres` first: deleting a user never deletes data.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use slipway_jobs::JobContext;
use slipway_store::{Server, ServerItem};

use super::databases::engine_of;
use super::{ItemKind, check_id, specs};
use crate::script::Script;
use crate::{Engine, JobKind};

#[derive(Debug)]
pub struct DatabaseUsers;

/// What a user may do in one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Read tables (`SELECT`).
    ReadOnly,
    /// Everything in the database: read, write, create and alter tables.
    ReadWrite,
}

/// One database a user is granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The database's name (one Slipway manages on this server).
    #[schema(example = "shop")]
    pub database: String,
    pub access: Access,
}

/// A database user as stored. The password is sealed with Slipway's secrets key
/// ([`password_context`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseUserSpec {
    pub name: String,
    /// `mysql` or `postgres`.
    pub engine: String,
    /// The database it was created under (its path), with its name.
    pub database_id: String,
    pub database: String,
    /// Its grants; the first is on its own database.
    pub grants: Vec<Grant>,
    /// MySQL: the hosts it may connect from. PostgreSQL: `localhost`.
    pub hosts: Vec<String>,
    /// The password sealed, base64.
    pub sealed_password: String,
    /// A site whose `DB_*` environment variables are kept equal to this user's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_id: Option<String>,
}

/// What a user's password is sealed with: it opens only as this server's user of this name.
pub fn password_context(server_id: &str, name: &str) -> String {
    format!("database-user:{server_id}:{name}")
}

/// Length of a generated password (base62: about 190 bits).
pub const PASSWORD_LENGTH: usize = 32;

/// A new password: base62 only, so it needs no quoting anywhere it goes.
pub fn generate_password() -> String {
    slipway_core::token::random_base62(PASSWORD_LENGTH)
}

/// Names the engines or the system keep.
const RESERVED: &[&str] = &["root", "mysql", "mariadb", "postgres", "public", "admin", "debian_sys_maint"];

/// Longest user name: MySQL's limit (PostgreSQL allows 63).
pub const MAX_NAME: usize = 32;

/// Why `name` cannot be a database user, if it cannot.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Some(format!("A user name has 1 to {MAX_NAME} characters."));
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Some("A user name holds only lowercase letters, digits and _.".into());
    }
    if !name.as_bytes()[0].is_ascii_lowercase() {
        return Some("A user name starts with a letter.".into());
    }
    if RESERVED.contains(&name) || name.starts_with("pg_") || name.starts_with("mysql") {
        return Some(format!("{name} is reserved by the database engine."));
    }
    None
}

/// The hosts a MySQL user may connect from when none are given: this server only.
pub const LOCAL_HOSTS: &[&str] = &["localhost", "127.0.0.1"];

/// Why `host` cannot be a MySQL account host, if it cannot: `localhost`, `%` (anywhere), an IP
/// address, an IPv4 prefix pattern (`10.0.%`) or a host name.
pub fn host_problem(host: &str) -> Option<String> {
    let plain = !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'%'));
    let wildcard_ok = !host.contains('%')
        || host == "%"
        || (host.ends_with(".%")
            && host.matches('%').count() == 1
            && host[..host.len() - 2].split('.').all(|o| o.parse::<u8>().is_ok()));
    if !plain || !wildcard_ok || host.starts_with(['-', '.']) {
        return Some(format!(
            "{host:?} is not a host: use localhost, %, an IP address, a prefix like 10.0.% or a host name."
        ));
    }
    None
}

/// A user whose password could not be opened or whose spec does not hold cannot be rendered.
fn checked(id: &str, spec: &DatabaseUserSpec) -> Result<(), String> {
    check_id("database user", id)?;
    let bad = |what: &str| Err(format!("database user {id}: invalid {what}"));
    if name_problem(&spec.name).is_some() {
        return bad("name");
    }
    for grant in &spec.grants {
        if super::databases::name_problem(&spec.engine, &grant.database).is_some() {
            return bad("database name");
        }
    }
    if spec.hosts.is_empty() || spec.hosts.iter().any(|h| host_problem(h).is_some()) {
        return bad("host");
    }
    Ok(())
}

/// Gives `spec` a new generated password, sealed for `server_id`; returns it (to be shown once).
pub fn new_password(
    secrets: &slipway_core::secrets_key::SecretsKey,
    server_id: &str,
    spec: &mut DatabaseUserSpec,
) -> String {
    let password = generate_password();
    spec.sealed_password = STANDARD.encode(secrets.seal(&password_context(server_id, &spec.name), password.as_bytes()));
    password
}

/// One user as the renderer takes it: its id, spec and opened password.
pub struct Rendered<'a> {
    pub id: &'a str,
    pub spec: &'a DatabaseUserSpec,
    pub password: &'a str,
}

impl std::fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered").field("id", &self.id).field("name", &self.spec.name).finish_non_exhaustive()
    }
}

/// Script lines `<id> <step> <database> <payload>`: `sql` runs the payload as SQL (in the
/// database, on PostgreSQL); `mysql-prune` and `pg-prune` revoke what is not listed; `drop-…`
/// remove a user. Lines of one user run in order; the first that fails stops that user only,
/// except a drop, which fails the sync.
pub fn render(engine: &str, users: &[Rendered<'_>], removing: &[(&str, &DatabaseUserSpec)]) -> Result<String, String> {
    let mut out = String::new();
    let mut line = |id: &str, step: &str, database: &str, payload: &str| {
        debug_assert!(!payload.contains('\n'));
        out.push_str(&format!("{id} {step} {database} {payload}\n"));
    };
    for user in users {
        checked(user.id, user.spec)?;
        if user.password.is_empty() || !user.password.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("database user {}: the stored password is not one Slipway generated", user.id));
        }
    }
    for (id, spec) in removing {
        checked(id, spec)?;
    }
    match engine {
        "mysql" => {
            for user in users {
                let (id, spec, password) = (user.id, user.spec, user.password);
                let name = &spec.name;
                line(id, "mysql-prune", "-", &format!("{name} {}", spec.hosts.join(" ")));
                for host in &spec.hosts {
                    let account = format!("'{name}'@'{host}'");
                    line(id, "sql", "-", &format!("CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '{password}'"));
                    line(id, "sql", "-", &format!("ALTER USER {account} IDENTIFIED BY '{password}'"));
                    let granted: Vec<&str> = spec.grants.iter().map(|g| g.database.as_str()).collect();
                    line(id, "mysql-prune-grants", "-", &format!("{name} {host} {}", granted.join(" ")));
                    for grant in &spec.grants {
                        let on = format!("`{}`.*", grant.database);
                        match grant.access {
                            Access::ReadWrite => {
                                line(id, "sql", "-", &format!("GRANT ALL PRIVILEGES ON {on} TO {account}"))
                            }
                            Access::ReadOnly => {
                                // Down from read_write: everything goes, then reading comes back.
                                line(id, "sql", "-", &format!("GRANT SELECT, SHOW VIEW ON {on} TO {account}"));
                                line(id, "sql", "-", &format!("REVOKE ALL PRIVILEGES ON {on} FROM {account}"));
                                line(id, "sql", "-", &format!("GRANT SELECT, SHOW VIEW ON {on} TO {account}"));
                            }
                        }
                    }
                }
            }
            for (id, spec) in removing {
                line(id, "drop-mysql", "-", &spec.name);
            }
        }
        "postgres" => {
            // Who writes in each database: tables they create must be readable (or writable)
            // by the database's other users.
            let mut writers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for user in users {
                for grant in user.spec.grants.iter().filter(|g| g.access == Access::ReadWrite) {
                    writers.entry(grant.database.as_str()).or_default().push(user.spec.name.as_str());
                }
            }
            // Every role first, so that default privileges may name any of them.
            for user in users {
                let (id, name, password) = (user.id, &user.spec.name, user.password);
                line(
                    id,
                    "sql",
                    "postgres",
                    &format!(
                        "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN CREATE ROLE \"{name}\"; END IF; END$$"
                    ),
                );
                line(id, "sql", "postgres", &format!("ALTER ROLE \"{name}\" WITH LOGIN PASSWORD '{password}'"));
            }
            for user in users {
                let (id, name) = (user.id, &user.spec.name);
                let granted: Vec<&str> = user.spec.grants.iter().map(|g| g.database.as_str()).collect();
                line(id, "pg-prune", "postgres", &format!("{name} {}", granted.join(" ")));
                for grant in &user.spec.grants {
                    let db = &grant.database;
                    let owners: Vec<&str> = std::iter::once("postgres")
                        .chain(writers.get(db.as_str()).into_iter().flatten().copied().filter(|w| *w != name))
                        .collect();
                    let mut sql = format!(
                        "BEGIN; REVOKE ALL ON ALL TABLES IN SCHEMA public FROM \"{name}\"; \
                         REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM \"{name}\"; \
                         REVOKE ALL ON SCHEMA public FROM \"{name}\"; REVOKE ALL ON DATABASE \"{db}\" FROM \"{name}\"; "
                    );
                    let (database, schema, tables, sequences) = match grant.access {
                        Access::ReadWrite => ("ALL", "USAGE, CREATE", "ALL", "ALL"),
                        Access::ReadOnly => ("CONNECT", "USAGE", "SELECT", "SELECT"),
                    };
                    for owner in &owners {
                        sql.push_str(&format!(
                            "ALTER DEFAULT PRIVILEGES FOR ROLE \"{owner}\" IN SCHEMA public REVOKE ALL ON TABLES FROM \"{name}\"; \
                             ALTER DEFAULT PRIVILEGES FOR ROLE \"{owner}\" IN SCHEMA public REVOKE ALL ON SEQUENCES FROM \"{name}\"; \
                             ALTER DEFAULT PRIVILEGES FOR ROLE \"{owner}\" IN SCHEMA public GRANT {tables} ON TABLES TO \"{name}\"; \
                             ALTER DEFAULT PRIVILEGES FOR ROLE \"{owner}\" IN SCHEMA public GRANT {sequences} ON SEQUENCES TO \"{name}\"; "
                        ));
                    }
                    sql.push_str(&format!(
                        "GRANT {database} ON DATABASE \"{db}\" TO \"{name}\"; GRANT {schema} ON SCHEMA public TO \"{name}\"; \
                         GRANT {tables} ON ALL TABLES IN SCHEMA public TO \"{name}\"; \
                         GRANT {sequences} ON ALL SEQUENCES IN SCHEMA public TO \"{name}\"; COMMIT"
                    ));
                    line(id, "sql", db, &sql);
                }
            }
            for (id, spec) in removing {
                line(id, "drop-pg", "postgres", &spec.name);
            }
        }
        other => return Err(format!("unknown database engine {other}")),
    }
    Ok(out)
}

impl DatabaseUsers {
    fn script(
        engine: &Engine,
        server: &Server,
        keep: &[&ServerItem],
        removing: &[&ServerItem],
    ) -> Result<Script, String> {
        let keep: Vec<(String, DatabaseUserSpec)> = specs(keep)?;
        let removing: Vec<(String, DatabaseUserSpec)> = specs(removing)?;
        if keep.is_empty() && removing.is_empty() {
            return Ok(Script::new("database users", include_str!("../../scripts/database_users.sh"))
                .var("ENGINE", "none")
                .var("WORK", ""));
        }
        let kind =
            engine_of(&server.database_type).ok_or("the server has no database engine (database_type is none)")?;
        let mut passwords = Vec::with_capacity(keep.len());
        for (id, spec) in &keep {
            let sealed = STANDARD.decode(&spec.sealed_password).map_err(|e| format!("database user {id}: {e}"))?;
            let opened = engine
                .secrets
                .open(&password_context(&server.id, &spec.name), &sealed)
                .map_err(|e| format!("database user {id}: the password cannot be opened: {e}"))?;
            passwords.push(String::from_utf8(opened).map_err(|_| format!("database user {id}: password is not text"))?);
        }
        let users: Vec<Rendered<'_>> =
            keep.iter().zip(&passwords).map(|((id, spec), password)| Rendered { id, spec, password }).collect();
        let removing: Vec<(&str, &DatabaseUserSpec)> = removing.iter().map(|(id, s)| (id.as_str(), s)).collect();
        let work = render(kind, &users, &removing)?;
        Ok(Script::new("database users", include_str!("../../scripts/database_users.sh"))
            .var("ENGINE", kind)
            .var("WORK", &work))
    }
}

/// The `DB_*` variables a site linked to `spec` gets (Laravel's names, which most frameworks read
/// or can be told to).
pub fn site_variables(spec: &DatabaseUserSpec, password: &str) -> Vec<(&'static str, String)> {
    let (connection, port) = if spec.engine == "postgres" { ("pgsql", "5432") } else { ("mysql", "3306") };
    vec![
        ("DB_CONNECTION", connection.into()),
        ("DB_HOST", "127.0.0.1".into()),
        ("DB_PORT", port.into()),
        ("DB_DATABASE", spec.database.clone()),
        ("DB_USERNAME", spec.name.clone()),
        ("DB_PASSWORD", password.into()),
    ]
}

impl DatabaseUsers {
    /// Sets the `DB_*` variables of the site `spec` is linked to, where they differ; returns how
    /// many changed.
    async fn link_site(engine: &Engine, server_id: &str, spec: &DatabaseUserSpec) -> Result<usize, String> {
        let Some(site_id) = &spec.site_id else { return Ok(0) };
        let store = &engine.store;
        if store.site(site_id).await.map_err(|e| e.to_string())?.is_none() {
            return Ok(0);
        }
        let sealed = STANDARD.decode(&spec.sealed_password).map_err(|e| e.to_string())?;
        let password = engine
            .secrets
            .open(&password_context(server_id, &spec.name), &sealed)
            .map_err(|e| format!("the password cannot be opened: {e}"))?;
        let password = String::from_utf8(password).map_err(|_| "the password is not text".to_string())?;
        let current = store.site_env(site_id).await.map_err(|e| e.to_string())?;
        let mut changed = 0;
        for (key, value) in site_variables(spec, &password) {
            let context = crate::deploy::env_context(site_id, key);
            let same = current
                .iter()
                .find(|v| v.key == key)
                .and_then(|v| engine.secrets.open(&context, &v.value).ok())
                .is_some_and(|old| old == value.as_bytes());
            if !same {
                store
                    .put_site_env(site_id, key, &engine.secrets.seal(&context, value.as_bytes()))
                    .await
                    .map_err(|e| e.to_string())?;
                changed += 1;
            }
        }
        Ok(changed)
    }
}

#[async_trait::async_trait]
impl ItemKind for DatabaseUsers {
    fn name(&self) -> &'static str {
        "database_user"
    }

    fn progress(&self) -> &'static str {
        "==> setting up database users"
    }

    fn sync_job(&self) -> JobKind {
        JobKind { name: "server.sync-database-users", attempts: 3 }
    }

    fn sync_script(&self, engine: &Engine, server: &Server, items: &[&ServerItem]) -> Result<Script, String> {
        DatabaseUsers::script(engine, server, items, &[])
    }

    fn apply_script(
        &self,
        engine: &Engine,
        server: &Server,
        keep: &[&ServerItem],
        removing: &[&ServerItem],
    ) -> Result<Script, String> {
        DatabaseUsers::script(engine, server, keep, removing)
    }

    async fn applied(&self, engine: &Engine, ctx: &JobContext, installed: &[&ServerItem]) {
        for item in installed {
            let Ok(spec) = serde_json::from_str::<DatabaseUserSpec>(&item.spec) else { continue };
            match DatabaseUsers::link_site(engine, &item.server_id, &spec).await {
                Ok(0) => {}
                Ok(changed) => ctx.log(
                    "info",
                    format!("==> {changed} DB_* variable(s) of the linked site now follow {}; they reach the app with its next deploy", spec.name),
                ),
                Err(why) => ctx.log("stderr", format!("could not set the linked site's DB_* variables for {}: {why}", spec.name)),
            }
        }
    }
}

/// Whether the engine of `server` (`mysql` or `postgres`) has a user named `name` (checked
/// plain first), asked over SSH; an error when the server cannot be asked.
pub async fn exists_on_server(engine: &Engine, server: &Server, kind: &str, name: &str) -> Result<bool, String> {
    if name_problem(name).is_some() {
        return Err(format!("{name:?} is not a user name"));
    }
    let script = Script::new("database user check", include_str!("../../scripts/database_user_exists.sh"))
        .var("ENGINE", kind)
        .var("USER_NAME", name);
    let lines = crate::probe::read(engine, server, &script, std::time::Duration::from_secs(20)).await?;
    match lines.iter().rev().find_map(|l| l.strip_prefix("slipway-user-exists ")) {
        Some("yes") => Ok(true),
        Some("no") => Ok(false),
        _ => Err("the engine did not answer".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, grants: &[(&str, Access)], hosts: &[&str]) -> DatabaseUserSpec {
        DatabaseUserSpec {
            name: name.into(),
            engine: "mysql".into(),
            database_id: "01DB".into(),
            database: grants[0].0.into(),
            grants: grants.iter().map(|(d, a)| Grant { database: (*d).into(), access: *a }).collect(),
            hosts: hosts.iter().map(|h| (*h).into()).collect(),
            sealed_password: String::new(),
            site_id: None,
        }
    }

    #[test]
    fn names_and_hosts_are_held_to_plain_text() {
        assert_eq!(name_problem("shop_app"), None);
        for bad in ["", "App", "1app", "a-b", "a'b", "a`b", "a b", "a\nb", "root", "postgres", "pg_x", "mysql_x"] {
            assert!(name_problem(bad).is_some(), "{bad:?}");
        }
        assert!(name_problem(&"a".repeat(33)).is_some());
        for good in ["localhost", "%", "127.0.0.1", "::1", "10.0.%", "db.internal", "fe80::1"] {
            assert_eq!(host_problem(good), None, "{good}");
        }
        for bad in ["", "a'b", "a b", "%.example.com", "10.%.1", "x%", "a\nb", "-x", "a`b", "a;b", "a\\b"] {
            assert!(host_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn mysql_users_get_exactly_their_grants_on_each_host() {
        let user = spec("app", &[("shop", Access::ReadWrite), ("stats", Access::ReadOnly)], &["localhost", "10.0.%"]);
        let work = render("mysql", &[Rendered { id: "01U", spec: &user, password: "Secret42" }], &[]).unwrap();
        assert!(work.starts_with("01U mysql-prune - app localhost 10.0.%\n"), "{work}");
        assert!(work.contains("01U sql - CREATE USER IF NOT EXISTS 'app'@'10.0.%' IDENTIFIED BY 'Secret42'\n"));
        assert!(work.contains("01U mysql-prune-grants - app localhost shop stats\n"));
        assert!(work.contains("01U sql - GRANT ALL PRIVILEGES ON `shop`.* TO 'app'@'localhost'\n"));
        assert!(work.contains("01U sql - REVOKE ALL PRIVILEGES ON `stats`.* FROM 'app'@'localhost'\n"));
        assert!(work.ends_with("01U sql - GRANT SELECT, SHOW VIEW ON `stats`.* TO 'app'@'10.0.%'\n"), "{work}");
    }

    #[test]
    fn postgres_readers_can_read_what_writers_create() {
        let mut writer = spec("writer", &[("shop", Access::ReadWrite)], &["localhost"]);
        let mut reader = spec("reader", &[("shop", Access::ReadOnly)], &["localhost"]);
        writer.engine = "postgres".into();
        reader.engine = "postgres".into();
        let users = [
            Rendered { id: "01W", spec: &writer, password: "a1" },
            Rendered { id: "01R", spec: &reader, password: "b2" },
        ];
        let work = render("postgres", &users, &[("01X", &reader)]).unwrap();
        let reader_grant = work.lines().find(|l| l.starts_with("01R sql shop ")).unwrap();
        assert!(reader_grant.contains("FOR ROLE \"writer\" IN SCHEMA public GRANT SELECT ON TABLES TO \"reader\""));
        assert!(reader_grant.starts_with("01R sql shop BEGIN;") && reader_grant.ends_with("COMMIT"));
        // Roles come before any grant that names them.
        let lines: Vec<&str> = work.lines().collect();
        let last_role = lines.iter().rposition(|l| l.contains("ALTER ROLE")).unwrap();
        let first_grant = lines.iter().position(|l| l.contains("GRANT")).unwrap();
        assert!(last_role < first_grant, "{work}");
        assert!(work.ends_with("01X drop-pg postgres reader\n"));
    }

    #[test]
    fn nothing_unchecked_is_rendered() {
        let bad_host = spec("app", &[("shop", Access::ReadWrite)], &["x' OR '1"]);
        assert!(render("mysql", &[Rendered { id: "01U", spec: &bad_host, password: "p" }], &[]).is_err());
        let ok = spec("app", &[("shop", Access::ReadWrite)], &["localhost"]);
        assert!(render("mysql", &[Rendered { id: "01U", spec: &ok, password: "p'; DROP" }], &[]).is_err());
        assert!(render("mysql", &[Rendered { id: "0 1", spec: &ok, password: "p" }], &[]).is_err());
        let bad_db = spec("app", &[("sh`op", Access::ReadWrite)], &["localhost"]);
        assert!(render("mysql", &[], &[("01U", &bad_db)]).is_err());
    }
}
