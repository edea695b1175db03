//! Reaching a server for a job: connect with the organisation's key (pinning the host key at
//! first contact, remembering a changed one for an admin to accept), and run scripts with their
//! output streamed into the job's log and a failure turned into a reason in words.

use slipway_core::ServerStatus;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slipway_core::server_input::{Host, UnixUser};
use slipway_jobs::{Ending, JobContext, JobError};
use slipway_remote::{RemoteError, SshConnection, SshTarget, Transport};
use slipway_store::Server;

use crate::Engine;
use crate::notify::{EventSpec, Subject};
use crate::script::Script;

/// The line prefix scripts use (through `fail`) to say why they stopped.
const ERROR_PREFIX: &str = "slipway-error: ";

pub(crate) fn store_error(e: slipway_store::StoreError) -> JobError {
    JobError::Retryable { reason: format!("database error: {e}") }
}

/// The reason a handler records on what it works on (a site, items, a backup) when its run
/// ended in `e`; `None` when that is not this run's to record: a shutdown stopped it and it runs
/// again when Slipway starts (what it works on keeps its state), or its lease was lost (the
/// worker that reaped the job records its end).
pub(crate) fn reason_to_record(ctx: &JobContext, e: &JobError) -> Option<String> {
    match ctx.ending(e) {
        Ending::Failed(reason) => Some(reason),
        Ending::Stopped(how) => Some(how.to_string()),
        Ending::Resumes | Ending::NotOurs => None,
    }
}

/// Why a job ended without its handler recording that end, for [`slipway_jobs::JobHandler::abandoned`]:
/// a user's cancel (one that came while a shutdown queued it again), or its worker stopped.
pub(crate) fn abandoned_reason(job: &slipway_store::Job) -> &'static str {
    match job.status {
        slipway_core::RunStatus::Cancelled => "cancelled by request",
        _ => "interrupted (Slipway stopped while it ran)",
    }
}

/// The server a job is about, or a final failure when it was deleted meanwhile.
pub(crate) async fn load_server(engine: &Engine, id: &str) -> Result<Server, JobError> {
    engine.store.server(id).await.map_err(store_error)?.ok_or_else(|| JobError::failed("the server was deleted"))
}

/// Where connecting reports its progress: a job's log, or nowhere (a read the API makes).
pub trait Progress: Sync {
    fn line(&self, stream: &str, line: String);
}

impl Progress for JobContext {
    fn line(&self, stream: &str, line: String) {
        self.log(stream, line);
    }
}

/// Progress nobody reads: the API reading a status or a log tail reports failures as its answer.
#[derive(Debug)]
pub struct Quiet;

impl Progress for Quiet {
    fn line(&self, _: &str, _: String) {}
}

/// A connection shared by the jobs of one server (each runs its scripts on channels of its own).
pub type Connection = Arc<SshConnection>;

/// Connections kept open between jobs, one per server and address: a job reuses one after
/// checking the server still answers on it (a keepalive round trip), else connects afresh.
/// Unused ones are dropped after a while.
#[derive(Default)]
pub struct ConnectionPool {
    /// Connection, last used, opened.
    open: Mutex<HashMap<String, (Connection, Instant, Instant)>>,
}

impl std::fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPool").finish_non_exhaustive()
    }
}

/// How long an unused connection is kept.
const KEEP_IDLE: Duration = Duration::from_secs(120);
/// How long any connection is used: a new one re-checks the login (a key removed from the
/// server takes effect) and bounds what one connection accumulates.
const MAX_AGE: Duration = Duration::from_secs(600);

impl ConnectionPool {
    fn key(server: &Server) -> String {
        format!("{}|{}|{}|{}", server.id, server.ip_address, server.ssh_port, server.ssh_user)
    }

    /// A kept connection to this server that presented the pinned key and still answers.
    async fn reusable(&self, engine: &Engine, server: &Server) -> Option<Connection> {
        let candidate = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            open.retain(|_, (c, used, opened)| {
                !c.is_closed() && used.elapsed() < KEEP_IDLE && opened.elapsed() < MAX_AGE
            });
            open.get(&Self::key(server)).map(|(c, _, _)| c.clone())
        }?;
        if server.host_key.as_deref() != Some(candidate.host_key.as_str()) {
            self.forget(server);
            return None;
        }
        if candidate.alive(engine.ssh.connect).await {
            self.keep(server, &candidate);
            Some(candidate)
        } else {
            self.forget(server);
            None
        }
    }

    fn keep(&self, server: &Server, connection: &Connection) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let entry = open.entry(Self::key(server)).or_insert_with(|| (connection.clone(), now, now));
        if !Arc::ptr_eq(&entry.0, connection) {
            *entry = (connection.clone(), now, now);
        }
        entry.1 = now;
    }

    fn forget(&self, server: &Server) {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(&Self::key(server));
    }
}

/// A connection to the server: a kept one that still works, else a new one.
pub async fn connect(engine: &Engine, ctx: &dyn Progress, server: &Server) -> Result<Connection, JobError> {
    if let Some(connection) = engine.connections.reusable(engine, server).await {
        ctx.line(
            "info",
            format!("using the open connection to {}@{}:{}", server.ssh_user, server.ip_address, server.ssh_port),
        );
        return Ok(connection);
    }
    let connection = Arc::new(connect_new(engine, ctx, server).await?);
    engine.connections.keep(server, &connection);
    Ok(connection)
}

/// What an unreachable server is once it answers again: what it was before (active once
/// provisioned, else pending).
pub(crate) fn reachable_again(server: &Server) -> ServerStatus {
    if server.provisioned_at.is_some() { ServerStatus::Active } else { ServerStatus::Pending }
}

/// Connects afresh and records what first contact learns; marks the server unreachable (with
/// the reason) when it cannot be reached. `verify` uses this directly: it checks the connection
/// itself.
pub async fn connect_new(engine: &Engine, ctx: &dyn Progress, server: &Server) -> Result<SshConnection, JobError> {
    let keypair = crate::keys::organization_keypair(engine.store.as_ref(), &engine.secrets, &server.organization_id)
        .await
        .map_err(|e| JobError::failed(e.to_string()))?;
    let target = SshTarget {
        host: Host::parse(&server.ip_address).map_err(|e| JobError::failed(format!("invalid address: {e}")))?,
        port: u16::try_from(server.ssh_port).map_err(|_| JobError::failed("invalid SSH port"))?,
        user: UnixUser::parse(&server.ssh_user).map_err(|e| JobError::failed(format!("invalid SSH user: {e}")))?,
        pinned_host_key: server.host_key.clone(),
    };
    ctx.line("info", format!("connecting to {}@{}:{}", server.ssh_user, server.ip_address, server.ssh_port));
    match SshConnection::connect(&target, &keypair, &engine.ssh).await {
        Ok(connection) => {
            // Reachable again: whatever work connected says so, not only a verify. Only from
            // `unreachable` as the database has it now: the copy here may be older than a
            // provisioning that began since.
            if engine.store.set_server_reachable(&server.id, reachable_again(server)).await.map_err(store_error)? {
                ctx.line("info", format!("{} can be reached again", server.name));
            }
            if server.host_key.is_none() {
                engine
                    .store
                    .record_server_contact(&server.id, Some(&connection.host_key), None)
                    .await
                    .map_err(store_error)?;
                let fingerprint = slipway_remote::fingerprint(&connection.host_key).unwrap_or_default();
                ctx.line("info", format!("first contact: pinned host key {fingerprint}"));
            }
            Ok(connection)
        }
        Err(e) => {
            let reason = e.to_string();
            ctx.line("stderr", reason.clone());
            if let RemoteError::HostKeyMismatch { presented_key, .. } = &e {
                engine.store.record_offered_host_key(&server.id, presented_key).await.map_err(store_error)?;
            }
            engine
                .store
                .set_server_status(&server.id, ServerStatus::Unreachable, Some(&reason))
                .await
                .map_err(store_error)?;
            let event = if matches!(e, RemoteError::HostKeyMismatch { .. }) {
                let summary =
                    format!("{}'s SSH host key changed; Slipway refuses to connect until it is accepted", server.name);
                EventSpec::new("server.host_key_changed", &server.organization_id, Subject::server(server), summary)
            } else {
                let summary = format!("{} cannot be reached: {reason}", server.name);
                EventSpec::new("server.unreachable", &server.organization_id, Subject::server(server), summary)
            };
            crate::notify::emit(engine, event.data(serde_json::json!({ "reason": reason }))).await;
            Err(match e {
                RemoteError::Connect { .. } | RemoteError::Disconnected(_) => JobError::Retryable { reason },
                _ => JobError::failed(reason),
            })
        }
    }
}

/// Finds why a script failed from what it printed: the line it marked with `fail` in the step it
/// was in (its last `==> ` heading), else that step and the last error line printed since it
/// began. Nothing from an earlier step (an apt warning, a deploy script's own `slipway-error:`
/// line on stderr before the script went on) is the reason.
#[derive(Debug, Default)]
pub(crate) struct FailureTracker {
    stated: Option<String>,
    step: Option<String>,
    last_error: Option<String>,
}

impl FailureTracker {
    pub(crate) fn observe(&mut self, stream: slipway_remote::Stream, line: &str) {
        if stream == slipway_remote::Stream::Stderr {
            if let Some(reason) = line.strip_prefix(ERROR_PREFIX) {
                self.stated = Some(reason.to_string());
            } else if !line.trim().is_empty() {
                self.last_error = Some(line.to_string());
            }
        } else if let Some(step) = line.strip_prefix("==> ") {
            self.step = Some(step.trim().to_string());
            self.stated = None;
            self.last_error = None;
        }
    }

    pub(crate) fn reason(self) -> String {
        if let Some(stated) = self.stated {
            return stated;
        }
        match (self.step, self.last_error) {
            (Some(step), Some(error)) => format!("{step}: {error}"),
            (Some(step), None) => format!("{step}: the step failed with no error output"),
            (None, Some(error)) => error,
            (None, None) => "no error output".into(),
        }
    }
}

/// Runs `script` as root on the server, streaming its lines into the job's log. A non-zero exit
/// fails the job with the script's own reason (its `fail` line, else its last error line).
pub async fn run_script(
    engine: &Engine,
    ctx: &JobContext,
    connection: &SshConnection,
    script: &Script,
) -> Result<(), JobError> {
    run_script_with(engine, ctx, connection, script, ctx.cancel_receiver()).await.map(|_| ())
}

/// The same with its own cancellation signal (a step that must not be cut short gets one that
/// never fires), returning the stdout lines that start with `slipway-` (values a script reports;
/// a script with secret output has none of its stdout logged).
pub async fn run_script_with(
    engine: &Engine,
    ctx: &JobContext,
    connection: &SshConnection,
    script: &Script,
    cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<String>, JobError> {
    let (_, no_more) = tokio::sync::mpsc::unbounded_channel();
    run_script_in_parts(engine, ctx, connection, script, no_more, cancel, &mut |_| {}, None).await
}

/// [`run_script_with`] for a script whose later parts (each [`Script::text_continuing`]) arrive
/// on `rest` while it runs, as its markers decide (see [`Transport::run_in_parts`]), handing
/// each `slipway-` line to `marker` as it arrives (a script that runs several steps says when
/// each begins), and a part's end (a line that starts with `part_end`) even when it follows
/// output without a newline of its own. A failure is named after `script`, whichever part failed.
#[allow(clippy::too_many_arguments)]
pub async fn run_script_in_parts(
    engine: &Engine,
    ctx: &JobContext,
    connection: &SshConnection,
    script: &Script,
    rest: slipway_remote::Parts,
    cancel: tokio::sync::watch::Receiver<bool>,
    marker: &mut (dyn FnMut(&str) + Send),
    part_end: Option<&str>,
) -> Result<Vec<String>, JobError> {
    let mut failure = FailureTracker::default();
    let mut part = PartFailure::default();
    let mut reported = Vec::new();
    let result = connection
        .run_in_parts(
            &script.text(),
            rest,
            &mut |stream, line| {
                failure.observe(stream, line);
                let stdout = stream == slipway_remote::Stream::Stdout;
                // Values a script reports (`slipway-commit …`) are for Slipway, not the log a
                // person reads; a `fail` reason is logged as its words.
                let (text, found) = if stdout { split_marker(line, part_end) } else { (line, None) };
                part.observe(stream, text);
                if let Some(found) = found {
                    let found = part.marker(found, part_end);
                    marker(&found);
                    if reported.len() < 1000 {
                        reported.push(found);
                    }
                }
                if (found.is_some() && text.is_empty()) || (stdout && script.secret_output) {
                    return;
                }
                ctx.log(stream.as_str(), text.strip_prefix(ERROR_PREFIX).unwrap_or(text));
            },
            cancel,
            engine.command_idle,
        )
        .await;
    match result {
        Ok(exit) if exit.success() => Ok(reported),
        Ok(exit) => {
            let why = failure.reason();
            let reason = match exit.code {
                Some(code) => format!("{} failed (exit {code}): {why}", script.name),
                None => format!("{} was ended by a signal: {why}", script.name),
            };
            Err(JobError::Failed { reason, exit_code: exit.code.map(i64::from) })
        }
        Err(RemoteError::Cancelled) => Err(JobError::Cancelled),
        Err(e @ RemoteError::Disconnected(_)) => Err(JobError::Retryable { reason: format!("{}: {e}", script.name) }),
        Err(e) => Err(JobError::failed(format!("{}: {e}", script.name))),
    }
}

/// Why the part running in an open session failed, for the summary the job gives of it (its
/// lines are logged as they come, but "prune failed (exit 1)" alone does not say why): what a
/// [`FailureTracker`] finds in the lines since the last marker, so that nothing the part before
/// it printed is taken for its reason.
#[derive(Debug, Default)]
struct PartFailure(FailureTracker);

impl PartFailure {
    fn observe(&mut self, stream: slipway_remote::Stream, line: &str) {
        self.0.observe(stream, line);
    }

    /// The marker `found` as handed on: a part's end with a failing status (`part_end`, the
    /// status, then a space) carries the part's reason after it. Every marker starts the next
    /// part's lines.
    fn marker(&mut self, found: &str, part_end: Option<&str>) -> String {
        let seen = std::mem::take(&mut self.0);
        match part_end.and_then(|end| found.strip_prefix(end)) {
            Some(status) if status != "0" => format!("{found} {}", seen.reason()),
            _ => found.to_string(),
        }
    }
}

/// What a part's end (the text after `part_end`: its status, and the reason of a failure) says
/// of part `name`.
fn part_outcome(name: &str, end: &str) -> Result<(), String> {
    match end.split_once(' ') {
        None if end == "0" => Ok(()),
        Some((code, why)) => Err(format!("{name} failed (exit {code}): {why}")),
        None => Err(format!("{name} failed (exit {end})")),
    }
}

/// A line of standard output as what is logged and the `slipway-` line in it, if any: one at
/// its start, or a part's end (`part_end`, which holds the session's mark, then an exit status)
/// after output that had no newline of its own (a process the part started printed a partial
/// line), so that the part is not taken to hang.
fn split_marker<'a>(line: &'a str, part_end: Option<&str>) -> (&'a str, Option<&'a str>) {
    match part_end.and_then(|end| line.rfind(end)) {
        Some(at) => (&line[..at], Some(&line[at..])),
        None if line.starts_with("slipway-") => ("", Some(line)),
        None => (line, None),
    }
}

/// A script running in parts on a task of its own (see [`run_script_in_parts`]) whose shell,
/// between parts, waits for the next: the job follows its `slipway-` lines, sends the next part
/// when they say so, and can then run further scripts in the same shell ([`OpenSession::run`])
/// instead of opening a session on the connection for each. Dropped, it stops the session (its
/// process group is killed); [`OpenSession::ended`] is how a job waits for it to end.
pub(crate) struct OpenSession {
    input: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    markers: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// Stops the session while it is true; held, so that it never reads as gone.
    stop: tokio::sync::watch::Sender<bool>,
    /// The job: a cancel of it stops a script run with [`OpenSession::run`].
    job: JobContext,
    task: Option<tokio::task::JoinHandle<Result<Vec<String>, JobError>>>,
    /// How a part's end is reported: it carries a random word only Slipway and this shell
    /// know (see [`OpenSession::run`]).
    part_end: String,
}

impl OpenSession {
    /// Starts `script` on `connection`; its lines go to the job's log as with
    /// [`run_script_with`]. `mark` is a random word, known only to Slipway and this shell, that
    /// the ends of later scripts are reported with.
    pub(crate) fn start(
        engine: &Engine,
        ctx: &JobContext,
        connection: &Connection,
        script: &Script,
        mark: &str,
    ) -> Self {
        debug_assert!(mark.len() >= 16 && mark.bytes().all(|b| b.is_ascii_alphanumeric()));
        let (input, rest) = tokio::sync::mpsc::unbounded_channel();
        let (found, markers) = tokio::sync::mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (engine, job, connection, script) = (engine.clone(), ctx.clone(), connection.clone(), script.clone());
        let end = part_end(mark);
        let task = tokio::spawn({
            let end = end.clone();
            async move {
                let mut marker = |line: &str| {
                    let _ = found.send(line.to_string());
                };
                run_script_in_parts(&engine, &job, &connection, &script, rest, stopped, &mut marker, Some(&end)).await
            }
        });
        OpenSession { input: Some(input), markers, stop, job: ctx.clone(), task: Some(task), part_end: end }
    }

    /// The next `slipway-` line the shell printed; `None` once the session has ended.
    pub(crate) async fn marker(&mut self) -> Option<String> {
        self.markers.recv().await
    }

    /// Sends `text` for the shell to run next; false when it can no longer take any (the
    /// session ended, or its input did).
    pub(crate) fn send(&self, text: String) -> bool {
        self.input.as_ref().is_some_and(|input| input.send(text).is_ok())
    }

    /// Whether the shell can still be sent something.
    pub(crate) fn open(&self) -> bool {
        self.input.as_ref().is_some_and(|input| !input.is_closed())
    }

    /// Ends the shell's input: it exits once it has run what it was sent.
    pub(crate) fn end_input(&mut self) {
        self.input = None;
    }

    /// Stops the session and everything it runs (a cancel).
    pub(crate) fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Runs `script` in the shell after what it ran before, in a subshell of its own: its
    /// failure (an `exit`, a failing command under `set -e`) ends only it, and the session
    /// goes on. Returns once it has ended, or why it failed. A cancel of the job (a user's, a
    /// shutdown, a lost lease) stops the whole session, this script with it. The script sets
    /// every variable it reads: those of earlier parts are still set in the shell, so `set -u`
    /// would not catch one it forgot.
    pub(crate) async fn run(&mut self, script: &Script) -> Result<(), String> {
        self.run_part(script, true).await
    }

    /// [`OpenSession::run`] for a script no cancel cuts short.
    pub(crate) async fn run_to_its_end(&mut self, script: &Script) -> Result<(), String> {
        self.run_part(script, false).await
    }

    async fn run_part(&mut self, script: &Script, cancellable: bool) -> Result<(), String> {
        // Its output is logged as the first script's is.
        debug_assert!(!script.secret_output);
        let name = script.name;
        if cancellable && self.job.is_cancelled() {
            return Err(format!("{name}: cancelled"));
        }
        if !self.send(part_text(script, &self.part_end)) {
            return Err(format!("{name}: the session on the server had ended"));
        }
        let job = self.job.clone();
        // Honoured once: stopped, the session ends and the loop with it.
        let mut cancelled = false;
        loop {
            let line = tokio::select! {
                line = self.markers.recv() => line,
                () = job.cancelled(), if cancellable && !cancelled => {
                    cancelled = true;
                    self.stop();
                    continue;
                }
            };
            let Some(line) = line else { break };
            if let Some(end) = line.strip_prefix(self.part_end.as_str()) {
                return part_outcome(name, end);
            }
        }
        Err(if cancelled {
            format!("{name}: cancelled")
        } else {
            format!("{name}: the session on the server ended before it finished")
        })
    }

    /// Ends the input and waits for the session to end: how the shell exited.
    pub(crate) async fn ended(mut self) -> Result<(), JobError> {
        self.end_input();
        let task = self.task.take().expect("taken only here");
        match task.await {
            Ok(result) => result.map(|_| ()),
            Err(e) => Err(JobError::failed(format!("the session on the server was lost: {e}"))),
        }
    }
}

/// How the end of a part run in the shell that knows `mark` is reported, before its exit status.
fn part_end(mark: &str) -> String {
    format!("slipway-part-end {mark} ")
}

/// `script` as a part of its own in a running shell: a subshell (its variables and its `exit`
/// stay in it) that reads nothing of the shell's input, then `END` and its exit status.
fn part_text(script: &Script, end: &str) -> String {
    // `set -e` stays on inside the subshell (a subshell tested by `if` or `||` would run without
    // it); off around it, so that its failure does not end the shell.
    format!(
        "set +e\n(\nset -e\n{}) </dev/null\nslipway_code=$?\nset -e\necho \"{end}$slipway_code\"\n",
        script.text_continuing()
    )
}

impl Drop for OpenSession {
    /// Not waited for ([`OpenSession::ended`] was not called): the session is stopped, its
    /// process group killed, rather than left waiting for input on the connection.
    fn drop(&mut self) {
        if self.task.is_some() {
            self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{FailureTracker, PartFailure, part_end, part_outcome, part_text, split_marker};
    use crate::script::Script;
    use slipway_remote::Stream::{Stderr, Stdout};

    /// Parts run one after another in one shell reading its input (as `sh -s` on a server
    /// does): a part that fails, by a command under `set -e` or by `fail`, ends only itself and
    /// says so; its variables stay in it; none reads the input meant for the next part.
    #[test]
    fn a_part_that_fails_ends_only_itself() {
        let end = "slipway-part-end M ";
        let first = Script::new("first", "echo first ran\n");
        let failing = Script::new("failing", "cat\nfalse\necho not reached\n");
        let stating = Script::new("stating", "fail \"stated $X\"\n").var("X", "inside");
        let after = Script::new("after", "echo \"after ran, X=${X:-unset}\"\n");
        let text = [first.text(), part_text(&failing, end), part_text(&stating, end), part_text(&after, end)].concat();
        let out = crate::script::run_as_sh_s(&text);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines,
            ["first ran", "slipway-part-end M 1", "slipway-part-end M 1", "after ran, X=unset", "slipway-part-end M 0"],
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "slipway-error: stated inside");
        assert!(out.status.success());
    }

    /// A part whose output ends without a newline (as a process it started may leave it) still
    /// reports its end, found after that output; lines that only look like an end are logged.
    #[test]
    fn a_part_end_after_a_partial_line_is_found() {
        let end = part_end("M0123456789abcdefXYZ");
        let partial = Script::new("partial", "printf 'no newline'\n");
        let out = crate::script::run_as_sh_s(&part_text(&partial, &end));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<(&str, Option<&str>)> = stdout.lines().map(|l| split_marker(l, Some(&end))).collect();
        let reported = format!("{end}0");
        assert_eq!(lines, [("no newline", Some(reported.as_str()))]);
        assert_eq!(split_marker("slipway-commit abc", Some(&end)), ("", Some("slipway-commit abc")));
        // Another shell's end, or an end where no part runs, is output like any other.
        let other = "a slipway-part-end OTHER0123456789ab 0";
        assert_eq!(split_marker(other, Some(&end)), (other, None));
        let glued = format!("x{reported}");
        assert_eq!(split_marker(&glued, None), (glued.as_str(), None));
        // After a partial line that itself looks like a marker, the end is still found.
        let after_marker = format!("slipway-step x{reported}");
        assert_eq!(split_marker(&after_marker, Some(&end)), ("slipway-step x", Some(reported.as_str())));
    }

    /// The outcome of the last part in `lines` (as the session reads them, in order), each part
    /// ending with `end` and its status.
    fn last_part(name: &str, end: &str, lines: &[(slipway_remote::Stream, &str)]) -> Result<(), String> {
        let mut part = PartFailure::default();
        let mut outcome = None;
        for (stream, line) in lines {
            let (text, found) = if *stream == Stdout { split_marker(line, Some(end)) } else { (*line, None) };
            part.observe(*stream, text);
            if let Some(found) = found {
                outcome = part.marker(found, Some(end)).strip_prefix(end).map(|status| part_outcome(name, status));
            }
        }
        outcome.expect("the part ended")
    }

    /// A failing part's summary says why, from its own lines only: its `fail` reason, else its
    /// step and last error line; nothing a part before it printed.
    #[test]
    fn a_failing_part_says_why() {
        let end = part_end("M0123456789abcdefXYZ");
        let stating = Script::new("prune", "echo working\nfail \"stated $X\"\n").var("X", "inside");
        // The session's first script brings the prelude (`fail`) the parts use.
        let first = Script::new("first", "true\n");
        let out = crate::script::run_as_sh_s(&[first.text(), part_text(&stating, &end)].concat());
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        // One part: its error lines come before its end, whatever the order between streams.
        let lines: Vec<_> = stderr.lines().map(|l| (Stderr, l)).chain(stdout.lines().map(|l| (Stdout, l))).collect();
        assert_eq!(last_part("prune", &end, &lines), Err("prune failed (exit 1): stated inside".into()));

        let (ok, failed) = (format!("{end}0"), format!("{end}1"));
        let glued = format!("partial{failed}");
        let lines = [
            (Stderr, "an error of the part before"),
            (Stdout, ok.as_str()),
            (Stdout, "==> removing release 7"),
            (Stderr, "rm: cannot remove 'x': Permission denied"),
            (Stdout, glued.as_str()),
        ];
        assert_eq!(
            last_part("prune", &end, &lines),
            Err("prune failed (exit 1): removing release 7: rm: cannot remove 'x': Permission denied".into())
        );
        let silent = [(Stderr, "an error of the part before"), (Stdout, ok.as_str()), (Stdout, failed.as_str())];
        assert_eq!(last_part("prune", &end, &silent), Err("prune failed (exit 1): no error output".into()));
        assert_eq!(last_part("prune", &end, &[(Stderr, "a warning"), (Stdout, ok.as_str())]), Ok(()));
    }

    fn reason(lines: &[(slipway_remote::Stream, &str)]) -> String {
        let mut tracker = FailureTracker::default();
        for (stream, line) in lines {
            tracker.observe(*stream, line);
        }
        tracker.reason()
    }

    #[test]
    fn the_reason_is_the_failing_step_not_an_earlier_warning() {
        let lines = [
            (Stdout, "==> updating package lists"),
            (Stderr, "W: Some index files failed to download. They have been ignored."),
            (Stdout, "==> starting MariaDB"),
            (Stderr, "Job for mariadb.service failed because the control process exited."),
        ];
        assert_eq!(
            reason(&lines),
            "starting MariaDB: Job for mariadb.service failed because the control process exited."
        );
        let silent = [(Stdout, "==> updating package lists"), (Stderr, "W: warning"), (Stdout, "==> starting MariaDB")];
        assert_eq!(reason(&silent), "starting MariaDB: the step failed with no error output");
    }

    #[test]
    fn a_stated_reason_wins() {
        let lines = [(Stdout, "==> checking PHP"), (Stderr, "slipway-error: PHP 8.3 is not available"), (Stderr, "x")];
        assert_eq!(reason(&lines), "PHP 8.3 is not available");
        // Stated in a step that went on: a later step's failure is its own.
        let later = [
            (Stderr, "slipway-error: printed by a deploy script that then succeeded"),
            (Stdout, "==> pointing current at releases/1"),
            (Stderr, "mv: cannot move"),
        ];
        assert_eq!(reason(&later), "pointing current at releases/1: mv: cannot move");
        assert_eq!(reason(&[(Stderr, "bash: nope: command not found")]), "bash: nope: command not found");
    }
}
