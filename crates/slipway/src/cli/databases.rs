//! `slipway db …`: databases on a server's own engine.

use clap::Subcommand;
use serde_json::Value;
use slipway_client::{ServerAction, ServerItems};

use super::errors::Missing;
use super::{ClientArgs, Output, connect, print_json, server_items, wait_for_change};

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// The server's databases
    List {
        /// Server name or id
        server: String,
    },
    /// Create a database on the server's engine (MariaDB/MySQL or PostgreSQL)
    Create {
        /// Server name or id
        server: String,
        /// Lowercase letters, digits and _, starting with a letter
        name: String,
        /// MySQL: the character set [default: utf8mb4]; PostgreSQL: the encoding [default: UTF8]
        #[arg(long)]
        charset: Option<String>,
        /// MySQL only: the collation [default: utf8mb4_unicode_ci with utf8mb4]
        #[arg(long)]
        collation: Option<String>,
    },
    /// Drop a database with every table in it; give its name again with --confirm
    Delete {
        /// Server name or id
        server: String,
        /// The database's id
        id: String,
        /// The database's name, to confirm
        #[arg(long)]
        confirm: String,
    },
    /// Import the databases already on the server that Slipway does not manage yet
    Sync {
        /// Server name or id
        server: String,
    },
}

#[allow(clippy::print_stdout)]
pub(super) fn print_databases(databases: &[Value]) {
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    println!("{:<26}  {:<24}  {:<8}  {:<28}  STATUS", "ID", "NAME", "ENGINE", "CHARSET");
    for d in databases {
        let charset = match d["collation"].as_str() {
            Some(collation) => format!("{} {collation}", s(d, "charset")),
            None => s(d, "charset"),
        };
        let status = match d["status_reason"].as_str() {
            Some(reason) => format!("{} ({reason})", s(d, "status")),
            None => s(d, "status"),
        };
        println!("{:<26}  {:<24}  {:<8}  {charset:<28}  {status}", s(d, "id"), s(d, "name"), s(d, "engine"));
    }
}

pub async fn db(command: DbCommand, client_args: &ClientArgs) -> anyhow::Result<()> {
    let kind = ServerItems::Databases;
    let client = connect(client_args)?;
    let output = client_args.output;
    let (server, item) = match command {
        DbCommand::List { server } => return server_items(client_args, kind, Some(server), None, None).await,
        DbCommand::Create { server, name, charset, collation } => {
            let mut body = serde_json::json!({"name": name});
            if let Some(charset) = charset {
                body["charset"] = charset.into();
            }
            if let Some(collation) = collation {
                body["collation"] = collation.into();
            }
            let item =
                client.create_server_item(&server, kind, &body).await.map_err(Missing::Server(&server).describe())?;
            (server, item)
        }
        DbCommand::Delete { server, id, confirm } => {
            let body = serde_json::json!({"confirm": confirm});
            let item = client
                .delete_item_with(&kind.collection(&server), &id, &body)
                .await
                .map_err(Missing::Item { server: &server, kind: kind.noun(), id: &id }.describe())?;
            (server, item)
        }
        DbCommand::Sync { server } => {
            return super::run_server_action(
                &client,
                &server,
                ServerAction::SyncDatabases,
                serde_json::json!({}),
                output,
            )
            .await;
        }
    };
    wait_for_change(&client, &item, output).await?;
    let id = item["id"].as_str().unwrap_or("");
    // The operation ends well even when one database could not be made: the database says so.
    if item["status"] != "removing"
        && let Ok(now) = client.server_item(&server, kind, id).await
    {
        if now["status"] == "failed" {
            anyhow::bail!(
                "the database {} failed: {}",
                now["name"].as_str().unwrap_or(""),
                now["status_reason"].as_str().unwrap_or("")
            );
        }
        if output == Output::Json {
            return print_json(&now);
        }
    } else if output == Output::Json {
        return print_json(&item);
    }
    eprintln!("Done: {} {}.", id, item["name"].as_str().unwrap_or(""));
    Ok(())
}
