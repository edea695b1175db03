//! Databases on the server's own engine: MariaDB/MySQL or PostgreSQL, the one the server was
//! provisioned with, reached as its administrator over the local socket.
//!
//! Unlike other kinds, a database is never removed for being absent from Slipway's list: a sync
//! creates the databases that should exist and drops only those being deleted (each deletion was
//! confirmed with the database's name). Databases already on the server are left alone until
//! they are imported ([`ImportDatabases`]).
//!
//! Names and character sets are held to `[a-z0-9_]` (encodings to `[A-Za-z0-9_]`) before they
//! are stored, again here before a script is written, and again in the script: they reach SQL
//! only as quoted identifiers or literals made of those characters.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use slipway_core::InstallStatus;
use slipway_jobs::{JobContext, JobError, JobHandler};
use slipway_store::{Server, ServerItem};

use super::{ItemKind, check_id, specs};
use crate::script::Script;
use crate::session::{connect, load_server, run_script_with, store_error};
use crate::verify::ServerJob;
use crate::{Engine, JobKind};

#[derive(Debug)]
pub struct Databases;

/// A database as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseSpec {
    pub name: String,
    /// `mysql` (MariaDB or MySQL) or `postgres`.
    pub engine: String,
    /// MySQL: the character set; PostgreSQL: the encoding.
    pub charset: String,
    /// MySQL only: the collation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation: Option<String>,
    /// It was on the server before Slipway managed it (imported by a sync).
    #[serde(default)]
    pub imported: bool,
}

/// The engine family of a server's `database_type`; `None` for a server without one.
pub fn engine_of(database_type: &str) -> Option<&'static str> {
    match database_type {
        "mysql" | "mariadb" => Some("mysql"),
        "postgres" => Some("postgres"),
        _ => None,
    }
}

/// Names the engines keep for themselves.
const RESERVED: &[&str] =
    &["mysql", "information_schema", "performance_schema", "sys", "postgres", "template0", "template1"];

/// Why `name` cannot be a database of `engine`, if it cannot.
pub fn name_problem(engine: &str, name: &str) -> Option<String> {
    let limit = if engine == "postgres" { 63 } else { 64 };
    if name.is_empty() || name.len() > limit {
        return Some(format!("A database name has 1 to {limit} characters."));
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Some("A database name holds only lowercase letters, digits and _.".into());
    }
    if !name.as_bytes()[0].is_ascii_lowercase() {
        return Some("A database name starts with a letter.".into());
    }
    if RESERVED.contains(&name) || name.starts_with("pg_") {
        return Some(format!("{name} is reserved by the database engine."));
    }
    if name.starts_with("slpverify_") {
        return Some("Names starting with slpverify_ are Slipway's scratch databases for verifications.".into());
    }
    None
}

/// Whether database `name` is on `server`'s engine, managed by Slipway or not (asked over SSH).
pub async fn exists_on_server(engine: &Engine, server: &Server, name: &str) -> Result<bool, String> {
    let kind = engine_of(&server.database_type).ok_or("the server has no database engine")?;
    if let Some(why) = name_problem(kind, name) {
        return Err(why);
    }
    let script = Script::new("database exists", include_str!("../../scripts/database_exists.sh"))
        .var("ENGINE", kind)
        .var("NAME", name);
    let lines = crate::probe::read(engine, server, &script, std::time::Duration::from_secs(20)).await?;
    match lines.iter().find_map(|l| l.strip_prefix("slipway-exists ")) {
        Some("0") => Ok(false),
        Some(_) => Ok(true),
        None => Err("the server did not say".into()),
    }
}

/// Why `value` cannot be a character set, collation or encoding name, if it cannot.
pub fn charset_problem(value: &str) -> Option<String> {
    if value.is_empty() || value.len() > 64 || !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Some("Use a name of letters, digits and _ (e.g. utf8mb4, utf8mb4_unicode_ci, UTF8).".into());
    }
    None
}

/// The one line a database contributes to the script, checked again.
fn line(action: &str, id: &str, spec: &DatabaseSpec) -> Result<String, String> {
    check_id("database", id)?;
    if let Some(why) = name_problem(&spec.engine, &spec.name) {
        return Err(format!("database {id}: {why}"));
    }
    let collation = spec.collation.clone().unwrap_or_else(|| "-".into());
    for value in [&spec.charset, &collation] {
        if value != "-" && charset_problem(value).is_some() {
            return Err(format!("database {id}: invalid character set or collation {value:?}"));
        }
    }
    Ok(format!("{action} {id} {} {} {collation}\n", spec.name, spec.charset))
}

impl Databases {
    /// The script that creates `keep` (those missing) and drops `removing`, on `server`'s engine.
    fn script(server: &Server, keep: &[&ServerItem], removing: &[&ServerItem]) -> Result<Script, String> {
        let mut work = String::new();
        for (action, items) in [("create", keep), ("drop", removing)] {
            for (id, spec) in specs::<DatabaseSpec>(items)? {
                work.push_str(&line(action, &id, &spec)?);
            }
        }
        let engine = match engine_of(&server.database_type) {
            Some(engine) => engine,
            // Nothing to do needs no engine; something to do on a server without one is refused.
            None if work.is_empty() => "none",
            None => return Err("the server has no database engine (database_type is none)".into()),
        };
        Ok(Script::new("databases", include_str!("../../scripts/databases.sh"))
            .var("ENGINE", engine)
            .var("WORK", &work))
    }
}

impl ItemKind for Databases {
    fn name(&self) -> &'static str {
        "database"
    }

    fn progress(&self) -> &'static str {
        "==> creating databases"
    }

    fn sync_job(&self) -> JobKind {
        JobKind { name: "server.sync-databases", attempts: 3 }
    }

    fn sync_script(&self, _: &Engine, server: &Server, items: &[&ServerItem]) -> Result<Script, String> {
        Databases::script(server, items, &[])
    }

    fn apply_script(
        &self,
        _: &Engine,
        server: &Server,
        keep: &[&ServerItem],
        removing: &[&ServerItem],
    ) -> Result<Script, String> {
        Databases::script(server, keep, removing)
    }
}

/// `database.import`: the databases on the server that Slipway does not know yet become
/// Slipway's (imported), with their character set; system databases and names Slipway would
/// not create are left alone and listed in the log.
pub const DATABASE_IMPORT: JobKind = JobKind { name: "database.import", attempts: 3 };

#[derive(Debug)]
pub struct ImportDatabases(pub Engine);

#[async_trait]
impl JobHandler for ImportDatabases {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let job: ServerJob = ctx.payload()?;
        let engine = &self.0;
        let server = load_server(engine, &job.server_id).await?;
        let kind = engine_of(&server.database_type)
            .ok_or_else(|| JobError::failed("the server has no database engine (database_type is none)"))?;
        let connection = connect(engine, ctx, &server).await?;
        let script = Script::new("databases list", include_str!("../../scripts/databases_list.sh")).var("ENGINE", kind);
        // At most 1,000 reported lines: a server with more databases imports the first 1,000.
        let lines = run_script_with(engine, ctx, &connection, &script, ctx.cancel_receiver()).await?;
        let (known, _) = engine.store.server_items(&server.id, Databases.name(), None).await.map_err(store_error)?;
        let known: Vec<String> =
            known.iter().filter_map(|i| serde_json::from_str::<DatabaseSpec>(&i.spec).ok()).map(|s| s.name).collect();
        let (mut imported, mut skipped) = (0, Vec::new());
        for found in lines.iter().filter_map(|l| l.strip_prefix("slipway-database ")) {
            let mut fields = found.split(' ');
            let (Some(name), Some(charset)) = (fields.next(), fields.next()) else { continue };
            let collation = fields.next().filter(|c| !c.is_empty() && *c != "-").map(str::to_string);
            if RESERVED.contains(&name) || known.iter().any(|k| k == name) {
                continue;
            }
            if name_problem(kind, name).is_some() || charset_problem(charset).is_some() {
                skipped.push(name.to_string());
                continue;
            }
            let spec = DatabaseSpec {
                name: name.into(),
                engine: kind.into(),
                charset: charset.into(),
                collation,
                imported: true,
            };
            let at = slipway_core::time::now();
            let item = ServerItem {
                id: slipway_core::new_id(),
                server_id: server.id.clone(),
                kind: Databases.name().into(),
                name: name.into(),
                spec: serde_json::to_string(&spec).map_err(|e| JobError::failed(e.to_string()))?,
                status: InstallStatus::Installed,
                status_reason: None,
                created_at: at,
                updated_at: at,
                state: None,
            };
            engine.store.insert_server_item(&item).await.map_err(store_error)?;
            imported += 1;
        }
        if !skipped.is_empty() {
            ctx.log("stderr", format!("left alone (names Slipway does not manage): {}", skipped.join(", ")));
        }
        ctx.log("info", format!("==> imported {imported} database(s)"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_the_engine_does_not_keep_are_accepted() {
        assert_eq!(name_problem("mysql", "shop_2"), None);
        for bad in [
            "", "Shop", "2shop", "_x", "a-b", "a b", "a`b", "a'b", "a\"b", "a$b", "a;b", "a\nb", "mysql", "sys", "pg_x",
        ] {
            assert!(name_problem("mysql", bad).is_some() || name_problem("postgres", bad).is_some(), "{bad:?}");
        }
        assert!(name_problem("postgres", &"a".repeat(64)).is_some());
        assert!(name_problem("mysql", &"a".repeat(64)).is_none());
        assert!(charset_problem("utf8mb4_unicode_ci").is_none() && charset_problem("UTF8").is_none());
        assert!(charset_problem("utf8'; DROP").is_some() && charset_problem("").is_some());
    }

    #[test]
    fn a_script_line_is_checked_again_before_it_is_written() {
        let spec = |name: &str| DatabaseSpec {
            name: name.into(),
            engine: "mysql".into(),
            charset: "utf8mb4".into(),
            collation: Some("utf8mb4_unicode_ci".into()),
            imported: false,
        };
        assert_eq!(line("create", "01ABC", &spec("shop")).unwrap(), "create 01ABC shop utf8mb4 utf8mb4_unicode_ci\n");
        assert!(line("create", "01ABC", &spec("shop`; DROP")).is_err());
        assert!(line("create", "01 ABC", &spec("shop")).is_err());
    }
}
