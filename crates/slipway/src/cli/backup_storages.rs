//! `slipway backup-storage …`: where backups go (an S3-compatible bucket or a server's directory).

use clap::Subcommand;
use serde_json::{Value, json};

use super::errors::Missing;
use super::{ClientArgs, Output, connect, print_json};

const COLLECTION: &str = "/api/v1/backup-storages";

#[derive(Debug, Subcommand)]
pub enum BackupStorageCommand {
    /// Your organizations' backup storages
    List,
    /// Add an S3-compatible bucket (AWS, Backblaze, Wasabi, MinIO, R2, …); test it next
    CreateS3 {
        /// A name for it
        name: String,
        /// The bucket (it must exist)
        #[arg(long)]
        bucket: String,
        /// https://host[:port] of a store other than AWS
        #[arg(long)]
        endpoint: Option<String>,
        /// The region [default: us-east-1]
        #[arg(long)]
        region: Option<String>,
        /// Put objects under this prefix
        #[arg(long)]
        prefix: Option<String>,
        /// Path-style requests (most self-hosted stores need them)
        #[arg(long)]
        path_style: bool,
        #[arg(long)]
        access_key_id: String,
        /// The secret access key (better from the environment than on a command line)
        #[arg(long, env = "SLIPWAY_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
        secret_access_key: String,
        /// The organization (if you belong to several)
        #[arg(long)]
        organization: Option<String>,
    },
    /// Add a directory on one of your servers; test it next
    CreateLocal {
        /// A name for it
        name: String,
        /// Server name or id
        #[arg(long)]
        server: String,
        /// An absolute directory on it, e.g. /var/backups/slipway
        #[arg(long)]
        path: String,
    },
    /// Write, read back and delete a probe object; says which step failed and why
    Test {
        /// The storage's id
        id: String,
    },
    /// Remove a storage from Slipway (what it holds stays)
    Delete {
        /// The storage's id
        id: String,
    },
}

#[allow(clippy::print_stdout)]
fn print_storages(storages: &[Value]) {
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    println!("{:<26}  {:<24}  {:<5}  WHERE", "ID", "NAME", "KIND");
    for st in storages {
        let place = match st["kind"].as_str() {
            Some("s3") => format!("s3://{}/{} {}", s(st, "bucket"), s(st, "prefix"), s(st, "endpoint")),
            _ => format!("{} on server {}", s(st, "path"), s(st, "server_id")),
        };
        println!("{:<26}  {:<24}  {:<5}  {}", s(st, "id"), s(st, "name"), s(st, "kind"), place.trim());
    }
}

#[allow(clippy::print_stdout)]
pub async fn backup_storage(command: BackupStorageCommand, client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let output = client_args.output;
    let created = match command {
        BackupStorageCommand::List => {
            let page = client.items(COLLECTION).await?;
            if output == Output::Json {
                return print_json(&Value::Array(page.data));
            }
            print_storages(&page.data);
            return Ok(());
        }
        BackupStorageCommand::CreateS3 {
            name,
            bucket,
            endpoint,
            region,
            prefix,
            path_style,
            access_key_id,
            secret_access_key,
            organization,
        } => {
            let body = json!({"name": name, "kind": "s3", "bucket": bucket, "endpoint": endpoint, "region": region,
                              "prefix": prefix, "path_style": path_style, "access_key_id": access_key_id,
                              "secret_access_key": secret_access_key, "organization_id": organization});
            client.create_item(COLLECTION, &body).await?
        }
        BackupStorageCommand::CreateLocal { name, server, path } => {
            let found = client.item("/api/v1/servers", &server).await.map_err(Missing::Server(&server).describe())?;
            let body = json!({"name": name, "kind": "local", "server_id": found["id"], "path": path});
            client.create_item(COLLECTION, &body).await?
        }
        BackupStorageCommand::Test { id } => {
            let missing = Missing::Item { server: "-", kind: "backup storage", id: &id };
            let test = client.item_action(COLLECTION, &id, "test", &json!({})).await.map_err(missing.describe())?;
            if output == Output::Json {
                print_json(&test)?;
            } else {
                for step in test["steps"].as_array().into_iter().flatten() {
                    let error = step["error"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
                    println!(
                        "{:<7} {}{error}",
                        step["step"].as_str().unwrap_or(""),
                        step["status"].as_str().unwrap_or("")
                    );
                }
            }
            if test["ok"] != true {
                let failed = test["steps"].as_array().into_iter().flatten().find(|s| s["status"] == "failed");
                let (step, why) = failed
                    .map(|s| (s["step"].as_str().unwrap_or(""), s["error"].as_str().unwrap_or("")))
                    .unwrap_or_default();
                anyhow::bail!("the storage does not work: {step} failed: {why}");
            }
            return Ok(());
        }
        BackupStorageCommand::Delete { id } => {
            client.delete_path(&format!("{COLLECTION}/{id}")).await?;
            eprintln!("Done: {id} removed (what it holds stays where it is).");
            return Ok(());
        }
    };
    if output == Output::Json {
        return print_json(&created);
    }
    eprintln!(
        "Added {} {}; prove it works with: slipway backup-storage test {}",
        created["id"].as_str().unwrap_or(""),
        created["name"].as_str().unwrap_or(""),
        created["id"].as_str().unwrap_or("")
    );
    Ok(())
}
