//! `slipway daemon …`: long-running commands a server keeps running under supervisor.

use clap::Subcommand;
use slipway_client::ServerItems;

use super::errors::Missing;
use super::follow::{Echo, ended_well, follow_operation};
use super::{ClientArgs, Output, connect, print_json, server_items};

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
    let output = client_args.output;
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
            let mut body = serde_json::json!({
                "command": command, "name": name, "directory": directory, "user": user, "processes": processes,
                "start_seconds": start_seconds, "stop_wait_seconds": stop_wait_seconds, "stop_signal": stop_signal,
            });
            // Leave out what was not given, so the server's defaults apply.
            body.as_object_mut().expect("an object").retain(|_, v| !v.is_null());
            server_items(client_args, kind, None, Some((server, body)), None).await
        }
        DaemonCommand::Delete { server, id } => server_items(client_args, kind, None, None, Some((server, id))).await,
        DaemonCommand::Show { server, id } => {
            let client = connect(client_args)?;
            let daemon = client
                .server_item(&server, kind, &id)
                .await
                .map_err(Missing::Item { server: &server, kind: kind.noun(), id: &id }.describe())?;
            if output == Output::Json {
                return print_json(&daemon);
            }
            print_daemon(&daemon);
            Ok(())
        }
        DaemonCommand::Restart { server, id } => {
            let client = connect(client_args)?;
            let daemon = client
                .restart_server_item(&server, kind, &id)
                .await
                .map_err(Missing::Item { server: &server, kind: kind.noun(), id: &id }.describe())?;
            let op = daemon["operation_id"].as_str().unwrap_or_default();
            let op = follow_operation(&client, op, output, Echo::Always).await?;
            if output == Output::Json {
                print_json(&op)?;
            }
            ended_well(&op)
        }
        DaemonCommand::Log { server, id, lines } => {
            let client = connect(client_args)?;
            let lines = client
                .server_item_log(&server, kind, &id, lines)
                .await
                .map_err(Missing::Item { server: &server, kind: kind.noun(), id: &id }.describe())?;
            if output == Output::Json {
                return print_json(&lines);
            }
            #[allow(clippy::print_stdout)]
            for line in lines {
                println!("{line}");
            }
            Ok(())
        }
    }
}

#[allow(clippy::print_stdout)]
fn print_daemon(d: &serde_json::Value) {
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
        ("Processes", "processes"),
        ("Status", "status"),
        ("Reason", "status_reason"),
    ] {
        println!("{label:<10} {}", s(key));
    }
}
