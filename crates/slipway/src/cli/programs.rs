//! `slipway daemon …` and `slipway worker …`: long-running commands a server keeps running
//! under supervisor (a server's daemons, a site's queue workers).

use clap::Subcommand;
use slipway_client::{ServerItems, queue_workers_path};

use super::errors::Missing;
use super::follow::{Echo, follow_operation};
use super::sites::SiteRef;
use super::{ClientArgs, Output, connect, print_json, server_items, wait_for_change};

#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// A server's daemons, with their live status
    List { server: String },
    /// Keep a command running on a server (under supervisor)
    Create {
        server: String,
        /// The command, run with `sh -c` exactly as written
        #[arg(long)]
        command: String,
        /// A label [default: the command]
        #[arg(long)]
        name: Option<String>,
        /// Absolute directory it runs in [default: /home/slipway]
        #[arg(long)]
        directory: Option<String>,
        /// Unix user it runs as (must exist on the server) [default: slipway]
        #[arg(long)]
        user: Option<String>,
        /// How many processes (1-32) [default: 1]
        #[arg(long)]
        processes: Option<u32>,
        /// Seconds a process must stay up to count as started [default: 1]
        #[arg(long)]
        start_seconds: Option<u32>,
        /// Seconds a stopping process gets before it is killed [default: 10]
        #[arg(long)]
        stop_wait_seconds: Option<u32>,
        /// TERM, INT, QUIT, HUP, KILL, USR1 or USR2 [default: TERM]
        #[arg(long)]
        stop_signal: Option<String>,
    },
    /// One daemon, with its live status
    Show { server: String, id: String },
    /// Stop a daemon and remove it
    Delete { server: String, id: String },
    /// Restart every process of a daemon; fails when it does not come back
    Restart { server: String, id: String },
    /// The last lines a daemon wrote
    Log {
        server: String,
        id: String,
        /// How many lines per process (1-1000)
        #[arg(long, default_value_t = 100)]
        lines: u32,
    },
}

pub async fn daemon(command: DaemonCommand, client_args: &ClientArgs) -> anyhow::Result<()> {
    let kind = ServerItems::Daemons;
    let at = |server: &str| kind.collection(server);
    match command {
        DaemonCommand::List { server } => server_items(client_args, kind, Some(server), None, None).await,
        DaemonCommand::Create {
            server,
            command,
            name,
            directory,
            user,
            processes,
            start_seconds,
            stop_wait_seconds,
            stop_signal,
        } => {
            let body = given(serde_json::json!({
                "command": command, "name": name, "directory": directory, "user": user, "processes": processes,
                "start_seconds": start_seconds, "stop_wait_seconds": stop_wait_seconds, "stop_signal": stop_signal,
            }));
            server_items(client_args, kind, None, Some((server, body)), None).await
        }
        DaemonCommand::Delete { server, id } => server_items(client_args, kind, None, None, Some((server, id))).await,
        DaemonCommand::Show { server, id } => {
            let place = Missing::Item { server: &server, kind: kind.noun(), id: &id };
            show(client_args, &at(&server), &id, place).await
        }
        DaemonCommand::Restart { server, id } => {
            restart(client_args, &at(&server), &id, Missing::Item { server: &server, kind: kind.noun(), id: &id }).await
        }
        DaemonCommand::Log { server, id, lines } => {
            let place = Missing::Item { server: &server, kind: kind.noun(), id: &id };
            log(client_args, &at(&server), &id, lines, place).await
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// A site's queue workers, with their live status
    List {
        #[command(flatten)]
        site: SiteRef,
    },
    /// Run a queue worker for a site (Laravel: php artisan queue:work; others: --command)
    Create {
        #[command(flatten)]
        site: SiteRef,
        /// The command (required for sites other than Laravel), run in the live release
        #[arg(long)]
        command: Option<String>,
        /// Laravel: the queue connection [default: the app's default]
        #[arg(long)]
        connection: Option<String>,
        /// Laravel: queues, comma-separated, highest priority first [default: default]
        #[arg(long)]
        queue: Option<String>,
        /// How many processes (1-32) [default: 1]
        #[arg(long)]
        processes: Option<u32>,
        /// Laravel: seconds a job may run [default: 60]
        #[arg(long)]
        timeout: Option<u32>,
        /// Laravel: seconds to sleep when no job waits [default: 3]
        #[arg(long)]
        sleep: Option<u32>,
        /// Laravel: attempts per job [default: 1]
        #[arg(long)]
        tries: Option<u32>,
        /// Laravel: megabytes before the worker restarts [default: 128]
        #[arg(long)]
        memory: Option<u32>,
    },
    /// One worker, with its live status
    Show {
        #[command(flatten)]
        site: SiteRef,
        id: String,
    },
    /// Stop a worker and remove it
    Delete {
        #[command(flatten)]
        site: SiteRef,
        id: String,
    },
    /// Restart every process of a worker; fails when it does not come back
    Restart {
        #[command(flatten)]
        site: SiteRef,
        id: String,
    },
    /// The last lines a worker wrote
    Log {
        #[command(flatten)]
        site: SiteRef,
        id: String,
        /// How many lines per process (1-1000)
        #[arg(long, default_value_t = 100)]
        lines: u32,
    },
}

const WORKER: &str = "queue worker";

pub async fn worker(command: WorkerCommand, client_args: &ClientArgs) -> anyhow::Result<()> {
    let at = |site: &SiteRef| queue_workers_path(&site.server, &site.site);
    let output = client_args.output;
    match command {
        WorkerCommand::List { site } => {
            let client = connect(client_args)?;
            let page = client.items(&at(&site)).await.map_err(site.missing())?;
            if output == Output::Json {
                return print_json(&page);
            }
            print_workers(&page.data);
            Ok(())
        }
        WorkerCommand::Create { site, command, connection, queue, processes, timeout, sleep, tries, memory } => {
            let client = connect(client_args)?;
            let body = given(serde_json::json!({
                "command": command, "connection": connection, "queue": queue, "processes": processes,
                "timeout": timeout, "sleep": sleep, "tries": tries, "memory": memory,
            }));
            let worker = client.create_item(&at(&site), &body).await.map_err(site.missing())?;
            wait_for_change(&client, &worker, output).await?;
            if output == Output::Json {
                return print_json(&worker);
            }
            eprintln!("Done: {} {}.", worker["id"].as_str().unwrap_or(""), worker["command"].as_str().unwrap_or(""));
            Ok(())
        }
        WorkerCommand::Show { site, id } => {
            show(client_args, &at(&site), &id, Missing::Item { server: &site.server, kind: WORKER, id: &id }).await
        }
        WorkerCommand::Delete { site, id } => {
            let client = connect(client_args)?;
            let place = Missing::Item { server: &site.server, kind: WORKER, id: &id };
            let worker = client.delete_item(&at(&site), &id).await.map_err(place.describe())?;
            wait_for_change(&client, &worker, output).await?;
            if output == Output::Json {
                return print_json(&worker);
            }
            eprintln!("Done: {id} removed.");
            Ok(())
        }
        WorkerCommand::Restart { site, id } => {
            restart(client_args, &at(&site), &id, Missing::Item { server: &site.server, kind: WORKER, id: &id }).await
        }
        WorkerCommand::Log { site, id, lines } => {
            let place = Missing::Item { server: &site.server, kind: WORKER, id: &id };
            log(client_args, &at(&site), &id, lines, place).await
        }
    }
}

/// The fields that were given: the server's defaults apply to the rest.
fn given(mut body: serde_json::Value) -> serde_json::Value {
    body.as_object_mut().expect("an object").retain(|_, v| !v.is_null());
    body
}

async fn show(client_args: &ClientArgs, collection: &str, id: &str, place: Missing<'_>) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let item = client.item(collection, id).await.map_err(place.describe())?;
    if client_args.output == Output::Json {
        return print_json(&item);
    }
    print_program(&item);
    Ok(())
}

async fn restart(client_args: &ClientArgs, collection: &str, id: &str, place: Missing<'_>) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let item = client.restart_item(collection, id).await.map_err(place.describe())?;
    let op = item["operation_id"].as_str().unwrap_or_default();
    let op = follow_operation(&client, op, client_args.output, Echo::Always).await?;
    super::follow::finish(&op, client_args.output)
}

async fn log(
    client_args: &ClientArgs,
    collection: &str,
    id: &str,
    lines: u32,
    place: Missing<'_>,
) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let lines = client.item_log(collection, id, lines).await.map_err(place.describe())?;
    if client_args.output == Output::Json {
        return print_json(&lines);
    }
    #[allow(clippy::print_stdout)]
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
fn print_program(d: &serde_json::Value) {
    let s = |k: &str| match &d[k] {
        serde_json::Value::String(v) => v.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    for (label, key) in [
        ("ID", "id"),
        ("Name", "name"),
        ("Command", "command"),
        ("Directory", "directory"),
        ("User", "user"),
        ("Site", "site_id"),
        ("Processes", "processes"),
        ("Status", "status"),
        ("Reason", "status_reason"),
    ] {
        println!("{label:<10} {}", s(key));
    }
}

#[allow(clippy::print_stdout)]
fn print_workers(workers: &[serde_json::Value]) {
    let s = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    println!("{:<26}  {:<11}  {:<5}  {:<40}  REASON", "ID", "STATUS", "PROCS", "COMMAND");
    for w in workers {
        let command: String = s(w, "command").chars().take(40).collect();
        let processes = w["processes"].as_u64().unwrap_or(0);
        println!(
            "{:<26}  {:<11}  {processes:<5}  {command:<40}  {}",
            s(w, "id"),
            s(w, "status"),
            s(w, "status_reason")
        );
    }
}
