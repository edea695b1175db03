//! Following work that runs in the background: an operation's log (polled, with a backoff that
//! keeps well under the API's rate limit) and a deployment's log (one server-sent-events
//! request, resumed where it stopped if the connection drops).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::bail;
use slipway_client::{Client, ClientError, Deployment, LogLine, Operation, Resource};

use super::Output;
use super::errors::Missing;

/// The first pause between two polls of an operation, and the longest.
const POLL_FIRST: Duration = Duration::from_secs(2);
const POLL_MOST: Duration = Duration::from_secs(5);

/// Reconnections in a row without a new log line before following a deployment gives up.
const STREAM_RECONNECTS: u32 = 8;

/// Whether an operation's log is printed as it grows, or only when the operation fails (for
/// site changes, whose logs are the server's own chatter when all goes well).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    Always,
    OnFailure,
}

#[allow(clippy::print_stdout)]
fn print_line(line: &LogLine) {
    if line.stream == "stderr" { eprintln!("{}", line.line) } else { println!("{}", line.line) }
}

/// Prints an operation's log as it grows until the operation ends; returns its final state.
/// Polls every 2 s at first, then less often (up to every 5 s).
pub async fn follow_operation(
    client: &Client,
    id: &str,
    output: Output,
    echo: Echo,
) -> anyhow::Result<Resource<Operation>> {
    let mut after = 0;
    let mut kept = Vec::new();
    let mut pause = POLL_FIRST;
    let mut progress = Progress::new(output == Output::Human && std::io::stderr().is_terminal());
    loop {
        // The state first: the whole log is stored before an operation says it ended.
        let op = client.operation(id).await?;
        for line in client.operation_log(id, after).await? {
            after = line.seq;
            progress.clear();
            match (output, echo) {
                (Output::Human, Echo::Always) => print_line(&line),
                (Output::Human, Echo::OnFailure) => kept.push(line),
                (Output::Json, _) => {}
            }
        }
        if slipway_client::wire::ended(&op.status) {
            progress.clear();
            if op.status != "succeeded" {
                kept.iter().for_each(print_line);
            }
            return Ok(op);
        }
        progress.show(&op.status);
        tokio::time::sleep(pause).await;
        pause = (pause + Duration::from_secs(1)).min(POLL_MOST);
    }
}

/// Fails unless the operation succeeded, saying why.
pub fn ended_well(op: &Operation) -> anyhow::Result<()> {
    match op.status.as_str() {
        "succeeded" => Ok(()),
        _ => bail!("{}", failure(op)),
    }
}

fn failure(op: &Operation) -> String {
    format!("operation {} {}: {}", op.id, op.status, op.failure_reason.as_deref().unwrap_or("no reason given"))
}

/// An operation (or deployment) that did not succeed. With `--output json` the error printed
/// for it carries it (under `key`), so that standard output holds one JSON document, not the
/// resource and then the error.
#[derive(Debug)]
pub struct OperationFailed {
    pub message: String,
    /// `operation` or `deployment`.
    pub key: &'static str,
    pub resource: serde_json::Value,
}

impl std::fmt::Display for OperationFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OperationFailed {}

/// The end of a command that followed an operation: with `--output json` the operation is
/// printed when it succeeded; when it did not, the command fails saying why.
pub fn finish(op: &Resource<Operation>, output: Output) -> anyhow::Result<()> {
    if op.status != "succeeded" {
        return Err(OperationFailed { message: failure(op), key: "operation", resource: op.raw().clone() }.into());
    }
    if output == Output::Json {
        super::print_json(op)?;
    }
    Ok(())
}

/// Whether trying again later may help.
fn transient(e: &ClientError) -> bool {
    match e {
        ClientError::Unreachable { .. } => true,
        other => other.status().is_some_and(|s| s == 429 || s >= 500),
    }
}

/// Prints a deployment's log as it is written, from one server-sent-events request, until the
/// deployment ends; returns its final state. When the stream breaks, it reconnects from the
/// last line it printed. On a terminal, a status line on stderr shows the step and the time.
pub async fn follow_deployment(
    client: &Client,
    server: &str,
    site: &str,
    id: &str,
    output: Output,
) -> anyhow::Result<Resource<Deployment>> {
    let mut progress = Progress::new(output == Output::Human && std::io::stderr().is_terminal());
    let mut after = 0;
    let mut reconnects = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let why = match client.deployment_log_stream(server, site, id, after).await {
            Err(e) if !transient(&e) => return Err(Missing::Deployment { server, site, id }.describe()(e).into()),
            Err(e) => e.to_string(),
            Ok(mut stream) => loop {
                let event = tokio::select! {
                    event = stream.next() => event,
                    _ = tick.tick() => {
                        progress.show("running");
                        continue;
                    }
                };
                match event {
                    Ok(Some(event)) if event.event == "line" => {
                        let line: LogLine = serde_json::from_str(&event.data)?;
                        after = line.seq;
                        reconnects = 0;
                        progress.clear();
                        progress.saw(&line.line);
                        if output == Output::Human {
                            print_line(&line);
                        }
                    }
                    Ok(Some(event)) if event.event == "end" => {
                        progress.clear();
                        return Ok(serde_json::from_str(&event.data)?);
                    }
                    Ok(Some(event)) if event.event == "error" => {
                        let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
                        break data["message"].as_str().unwrap_or("the log could not be read").to_string();
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break "the stream closed before the deployment ended".to_string(),
                    Err(e) => break e.to_string(),
                }
            },
        };
        reconnects += 1;
        if reconnects > STREAM_RECONNECTS {
            bail!("lost the deployment's log: {why}");
        }
        let wait = Duration::from_secs(u64::from(reconnects).min(5));
        progress.clear();
        eprintln!("{why}; reconnecting in {} s", wait.as_secs());
        tokio::time::sleep(wait).await;
    }
}

/// A status line on a terminal: `[12s] running: fetching main`.
struct Progress {
    on: bool,
    shown: bool,
    step: String,
    started: Instant,
}

impl Progress {
    fn new(on: bool) -> Self {
        Progress { on, shown: false, step: String::new(), started: Instant::now() }
    }

    /// Notes the step a log line starts.
    fn saw(&mut self, line: &str) {
        if let Some(step) = line.strip_prefix("==> ") {
            self.step = step.to_string();
        }
    }

    fn show(&mut self, status: &str) {
        if self.on {
            let seconds = self.started.elapsed().as_secs();
            let step = if self.step.is_empty() { String::new() } else { format!(": {}", super::cut(&self.step, 60)) };
            eprint!("\r\x1b[2K[{seconds}s] {status}{step}");
            let _ = std::io::stderr().flush();
            self.shown = true;
        }
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[2K");
            self.shown = false;
        }
    }
}
