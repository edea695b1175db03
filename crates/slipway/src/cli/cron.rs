//! `slipway cron …`: a server's cron jobs, their status read from the server, and their runs.

use clap::Subcommand;
use serde_json::Value;
use slipway_client::ServerItems;

use super::errors::Missing;
use super::{ClientArgs, Output, connect, cut, print_json, server_items};

#[derive(Debug, Subcommand)]
pub enum CronCommand {
    /// A server's cron jobs, with their status read from the server
    List {
        /// Server name or id
        server: String,
    },
    /// Run a command on a schedule (as the deploy user, another user, or a site's own user)
    Create {
        /// Server name or id
        server: String,
        /// The command, run with `sh -c` exactly as written (quote it as one argument)
        command: String,
        /// minutely, hourly, nightly, weekly, monthly, reboot, or five cron fields ("*/15 * * * *")
        #[arg(long)]
        frequency: String,
        /// The Unix user it runs as [default: slipway]
        #[arg(long, conflicts_with = "site")]
        user: Option<String>,
        /// A site (domain or id) on that server: run as its user, in its current release
        #[arg(long)]
        site: Option<String>,
        /// A label [default: the command]
        #[arg(long)]
        name: Option<String>,
    },
    /// One cron job, with its status read from the server
    Show {
        /// Server name or id
        server: String,
        /// The job's id
        job: String,
    },
    /// Remove a cron job (its cron file, command and recorded runs)
    Delete {
        /// Server name or id
        server: String,
        /// The job's id
        job: String,
    },
    /// A cron job's recorded runs, newest first
    Runs {
        /// Server name or id
        server: String,
        /// The job's id
        job: String,
        /// Print each run's whole output (the last 64 KiB the server keeps)
        #[arg(long)]
        full: bool,
        /// Which page of 100 runs
        #[arg(long, default_value_t = 1)]
        page: u32,
    },
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or("").to_string()
}

/// `status (reason)`.
fn status(job: &Value) -> String {
    match job["status_reason"].as_str() {
        Some(reason) => format!("{} ({reason})", text(job, "status")),
        None => text(job, "status"),
    }
}

#[allow(clippy::print_stdout)]
pub(super) fn print_jobs(jobs: &[Value]) {
    println!("{:<26}  {:<20}  {:<16}  {:<12}  STATUS", "ID", "NAME", "FREQUENCY", "USER");
    for job in jobs {
        println!(
            "{:<26}  {:<20}  {:<16}  {:<12}  {}",
            text(job, "id"),
            cut(&text(job, "name"), 20),
            text(job, "frequency"),
            cut(&text(job, "user"), 12),
            status(job)
        );
    }
}

#[allow(clippy::print_stdout)]
fn print_job(job: &Value) {
    println!("{} {}", text(job, "id"), text(job, "name"));
    println!("command: {}", text(job, "command"));
    println!("frequency: {} (cron schedule {})", text(job, "frequency"), text(job, "schedule"));
    println!("user: {}", text(job, "user"));
    for key in ["site_id", "directory"] {
        if let Some(value) = job[key].as_str() {
            println!("{}: {value}", key.replace('_', " "));
        }
    }
    println!("status: {}", status(job));
}

#[allow(clippy::print_stdout)]
fn print_runs(runs: &[Value], full: bool) {
    if !full {
        println!("{:<20}  {:<20}  {:<4}  {:<11}  OUTPUT (last line)", "STARTED", "FINISHED", "EXIT", "STATUS");
    }
    let time = |run: &Value, key: &str| run[key].as_str().map(|t| cut(&t.replace('T', " "), 19)).unwrap_or("-".into());
    for run in runs {
        let exit = run["exit_code"].as_i64().map(|c| c.to_string()).unwrap_or("-".into());
        let output = text(run, "output");
        if full {
            println!(
                "== started {}, finished {}, exit {exit}, {}",
                time(run, "started_at"),
                time(run, "finished_at"),
                text(run, "status")
            );
            print!("{output}");
            if !output.is_empty() && !output.ends_with('\n') {
                println!();
            }
        } else {
            let last = output.lines().last().unwrap_or("");
            println!(
                "{:<20}  {:<20}  {exit:<4}  {:<11}  {}",
                time(run, "started_at"),
                time(run, "finished_at"),
                text(run, "status"),
                cut(last, 60)
            );
        }
    }
}

pub async fn cron(command: CronCommand, client_args: &ClientArgs) -> anyhow::Result<()> {
    let kind = ServerItems::Crontabs;
    match command {
        CronCommand::List { server } => server_items(client_args, kind, Some(server), None, None).await,
        CronCommand::Create { server, command, frequency, user, site, name } => {
            let site_id = match site {
                Some(site) => {
                    let client = connect(client_args)?;
                    let found = client
                        .site(&server, &site)
                        .await
                        .map_err(Missing::Site { server: &server, site: &site }.describe())?;
                    Some(found.id.clone())
                }
                None => None,
            };
            let body = serde_json::json!({
                "command": command, "frequency": frequency, "user": user, "site_id": site_id, "name": name,
            });
            let body =
                Value::Object(body.as_object().unwrap().clone().into_iter().filter(|(_, v)| !v.is_null()).collect());
            server_items(client_args, kind, None, Some((server, body)), None).await
        }
        CronCommand::Delete { server, job } => server_items(client_args, kind, None, None, Some((server, job))).await,
        CronCommand::Show { server, job } => {
            let client = connect(client_args)?;
            let found = client
                .server_item(&server, kind, &job)
                .await
                .map_err(Missing::Item { server: &server, kind: kind.noun(), id: &job }.describe())?;
            if client_args.output == Output::Json {
                print_json(&found)
            } else {
                print_job(&found);
                Ok(())
            }
        }
        CronCommand::Runs { server, job, full, page } => {
            let client = connect(client_args)?;
            let runs = client
                .crontab_runs(&server, &job, page)
                .await
                .map_err(Missing::Item { server: &server, kind: kind.noun(), id: &job }.describe())?;
            if client_args.output == Output::Json {
                return print_json(&runs);
            }
            if runs.data.is_empty() {
                eprintln!("No runs recorded yet.");
            }
            print_runs(&runs.data, full);
            Ok(())
        }
    }
}
