//! `slipway db-user …`: users of a database on a server's own engine. A database is named by its
//! name or id; the password is printed once, on standard output, when it is made.

use clap::Subcommand;
use serde_json::{Value, json};
use slipway_client::{Client, ServerItems};

use super::errors::Missing;
use super::follow::{Echo, ended_well, follow_operation};
use super::{ClientArgs, Output, connect, print_json, wait_for_change};

#[derive(Debug, Subcommand)]
pub enum DbUserCommand {
    /// The users of a database
    List {
        /// Server name or id
        server: String,
        /// Database name or id
        database: String,
    },
    /// Create a user with a generated password (printed once) and wait until it works
    Create {
        /// Server name or id
        server: String,
        /// Database name or id
        database: String,
        /// Lowercase letters, digits and _, starting with a letter
        name: String,
        /// Only read this database (default: read and write)
        #[arg(long)]
        read_only: bool,
        /// Also grant another database of the server: NAME (read and write) or NAME:read_only
        #[arg(long = "grant", value_name = "DATABASE[:ACCESS]")]
        grants: Vec<String>,
        /// MySQL: a host it may connect from (repeat; default: this server only)
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// A site (domain or id) whose DB_* environment variables follow this user
        #[arg(long)]
        site: Option<String>,
    },
    /// Give a user a new generated password (printed once); the old one works until it is set
    Rotate {
        /// Server name or id
        server: String,
        /// Database name or id
        database: String,
        /// User name or id
        user: String,
    },
    /// Drop a user (what it owns stays)
    Delete {
        /// Server name or id
        server: String,
        /// Database name or id
        database: String,
        /// User name or id
        user: String,
    },
}

/// The id of the item of `collection` whose id or name is `wanted`.
async fn find(client: &Client, collection: &str, wanted: &str, missing: Missing<'_>) -> anyhow::Result<String> {
    let page = client.items(collection).await.map_err(missing.describe())?;
    page.data
        .iter()
        .find(|i| i["id"] == wanted || i["name"] == wanted)
        .and_then(|i| i["id"].as_str())
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!(missing.message()))
}

/// `…/databases/{database}/users` of the database named `database` (name or id).
async fn users_path(client: &Client, server: &str, database: &str) -> anyhow::Result<String> {
    let databases = ServerItems::Databases.collection(server);
    let missing = Missing::Item { server, kind: "database", id: database };
    let id = find(client, &databases, database, missing).await?;
    Ok(format!("{databases}/{id}/users"))
}

#[allow(clippy::print_stdout)]
fn print_users(users: &[Value]) {
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    println!("{:<26}  {:<20}  {:<36}  {:<24}  STATUS", "ID", "NAME", "GRANTS", "HOSTS");
    for u in users {
        let grants: Vec<String> = u["grants"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| format!("{}:{}", s(g, "database"), s(g, "access")))
            .collect();
        let hosts: Vec<&str> = u["hosts"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let status = match u["status_reason"].as_str() {
            Some(reason) => format!("{} ({reason})", s(u, "status")),
            None => s(u, "status"),
        };
        println!(
            "{:<26}  {:<20}  {:<36}  {:<24}  {status}",
            s(u, "id"),
            s(u, "name"),
            grants.join(","),
            hosts.join(",")
        );
    }
}

/// `NAME` or `NAME:ACCESS` as a grant.
fn grant(text: &str) -> anyhow::Result<Value> {
    let (database, access) = text.split_once(':').unwrap_or((text, "read_write"));
    if !matches!(access, "read_only" | "read_write") {
        anyhow::bail!("--grant {text}: the access is read_only or read_write");
    }
    Ok(json!({"database": database, "access": access}))
}

#[allow(clippy::print_stdout)]
pub async fn db_user(command: DbUserCommand, client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let output = client_args.output;
    let (collection, item, password) = match command {
        DbUserCommand::List { server, database } => {
            let collection = users_path(&client, &server, &database).await?;
            let page = client.items(&collection).await.map_err(Missing::Server(&server).describe())?;
            if output == Output::Json {
                return print_json(&Value::Array(page.data));
            }
            print_users(&page.data);
            return Ok(());
        }
        DbUserCommand::Create { server, database, name, read_only, grants, hosts, site } => {
            let collection = users_path(&client, &server, &database).await?;
            let mut body = json!({"name": name, "access": if read_only { "read_only" } else { "read_write" }});
            body["grants"] = grants.iter().map(|g| grant(g)).collect::<anyhow::Result<Vec<_>>>()?.into();
            if !hosts.is_empty() {
                body["hosts"] = hosts.into();
            }
            if let Some(site) = site {
                let found = client
                    .site(&server, &site)
                    .await
                    .map_err(Missing::Site { server: &server, site: &site }.describe())?;
                body["site_id"] = found.raw()["id"].clone();
            }
            let mut item = client.create_item(&collection, &body).await?;
            let password = item.as_object_mut().and_then(|o| o.remove("password"));
            (collection, item, password)
        }
        DbUserCommand::Rotate { server, database, user } => {
            let collection = users_path(&client, &server, &database).await?;
            let id =
                find(&client, &collection, &user, Missing::Item { server: &server, kind: "database user", id: &user })
                    .await?;
            let mut item = client.item_action(&collection, &id, "rotate-password", &json!({})).await?;
            let password = item.as_object_mut().and_then(|o| o.remove("password"));
            (collection, item, password)
        }
        DbUserCommand::Delete { server, database, user } => {
            let collection = users_path(&client, &server, &database).await?;
            let id =
                find(&client, &collection, &user, Missing::Item { server: &server, kind: "database user", id: &user })
                    .await?;
            let item = client.delete_item(&collection, &id).await?;
            (collection, item, None)
        }
    };
    match (&password, item["operation_id"].as_str()) {
        // Standard output carries the password alone (for `PASSWORD=$(slipway db-user …)`); the
        // log is shown if the operation fails.
        (Some(_), Some(op)) => ended_well(&*follow_operation(&client, op, output, Echo::OnFailure).await?)?,
        _ => wait_for_change(&client, &item, output).await?,
    }
    let id = item["id"].as_str().unwrap_or("");
    let name = item["name"].as_str().unwrap_or("");
    if item["status"] == "removing" {
        eprintln!("Done: {id} {name} dropped.");
        return Ok(());
    }
    let mut now = client.item(&collection, id).await?;
    if now["status"] == "failed" {
        anyhow::bail!("the database user {name} failed: {}", now["status_reason"].as_str().unwrap_or(""));
    }
    if output == Output::Json {
        if let Some(password) = password {
            now["password"] = password;
        }
        return print_json(&now);
    }
    if let Some(password) = password.as_ref().and_then(Value::as_str) {
        eprintln!("The password of {name} (shown this once; Slipway keeps it encrypted):");
        println!("{password}");
    }
    eprintln!("Done: {id} {name} is active.");
    Ok(())
}
