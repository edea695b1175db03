//! Items that run as supervisor programs (daemons; queue workers build on the same): the program
//! file rendered from checked values only, the live status read back from `supervisorctl`, the
//! log tail, and the restart job.
//!
//! No user text reaches a supervisor file: a program's `command` is a root-owned wrapper script
//! under `/etc/slipway/programs/`, and the user's command and directory are in that script as
//! shell-quoted words. The supervisor file holds only Slipway's names, a checked Unix user,
//! numbers and a signal from a fixed list.

use slipway_core::{InstallStatus, ItemState};
use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use slipway_core::server_input::UnixUser;
use slipway_jobs::{JobContext, JobError, JobHandler};
use slipway_store::{Server, ServerItem};

use super::{ItemKind, check_id, wrapper_script};
use crate::script::Script;
use crate::session::{connect, load_server, run_script};
use crate::{Engine, JobKind};

/// Where programs' output goes (root-owned; supervisord writes it).
pub const LOG_DIR: &str = "/var/log/slipway/programs";

/// Signals a program may be stopped with.
pub const STOP_SIGNALS: [&str; 7] = ["TERM", "INT", "QUIT", "HUP", "KILL", "USR1", "USR2"];

/// How a supervised program runs; checked when it is created and again when it is rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramSpec {
    /// Run with `sh -c` in `directory`, as `user`.
    pub command: String,
    pub directory: String,
    pub user: String,
    pub processes: u32,
    pub start_seconds: u32,
    pub stop_wait_seconds: u32,
    pub stop_signal: String,
    /// For a site's programs (queue workers): the site's root; the program then loads the live
    /// release's environment (`.slipway/env-<release>.sh`) before its command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_root: Option<String>,
}

/// Limits, written once for the API's validation and the renderer's re-check.
pub const MAX_PROCESSES: u32 = 32;
pub const MAX_SECONDS: u32 = 3600;
pub use super::{MAX_COMMAND, command_problem};

impl ProgramSpec {
    /// Why this spec cannot be rendered, field by field (empty when it can).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(why) = command_problem(&self.command) {
            out.push(("command", why));
        }
        if let Some(why) = directory_problem(&self.directory) {
            out.push(("directory", why));
        }
        if let Err(why) = UnixUser::parse(&self.user) {
            out.push(("user", format!("The user {why}")));
        }
        if !(1..=MAX_PROCESSES).contains(&self.processes) {
            out.push(("processes", format!("Between 1 and {MAX_PROCESSES} processes.")));
        }
        if self.start_seconds > MAX_SECONDS {
            out.push(("start_seconds", format!("At most {MAX_SECONDS} seconds.")));
        }
        if !(1..=MAX_SECONDS).contains(&self.stop_wait_seconds) {
            out.push(("stop_wait_seconds", format!("Between 1 and {MAX_SECONDS} seconds.")));
        }
        if !STOP_SIGNALS.contains(&self.stop_signal.as_str()) {
            out.push(("stop_signal", format!("One of {}.", STOP_SIGNALS.join(", "))));
        }
        if let Some(why) = self.site_root.as_deref().and_then(directory_problem) {
            out.push(("site", why));
        }
        out
    }
}

/// An absolute path of plain characters, without `..`.
pub fn directory_problem(directory: &str) -> Option<String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+@".contains(c);
    if !directory.starts_with('/') || directory.len() > 1024 {
        return Some("The directory must be an absolute path (at most 1,024 characters).".into());
    }
    if !directory.chars().all(plain) || directory.split('/').any(|part| part == "..") {
        return Some("The directory may hold letters, digits and / . _ - + @ only, and no `..`.".into());
    }
    None
}

/// The supervisor program of item `id` with `prefix` (`slipway-daemon`).
pub fn program_name(prefix: &str, id: &str) -> String {
    format!("{prefix}-{}", id.to_ascii_lowercase())
}

/// The files of one program: its supervisor section and its wrapper script.
#[derive(Debug)]
pub struct ProgramFiles {
    pub name: String,
    pub conf: String,
    pub wrapper: String,
}

pub fn render(prefix: &str, id: &str, spec: &ProgramSpec) -> Result<ProgramFiles, String> {
    check_id("program", id)?;
    if let Some((field, why)) = spec.problems().into_iter().next() {
        return Err(format!("item {id}: {field}: {why}"));
    }
    let name = program_name(prefix, id);
    let wrapper = wrapper_script(&name, Some(&spec.directory), &spec.command, spec.site_root.as_deref())?;
    let conf = format!(
        "; Managed by Slipway.\n[program:{name}]\ncommand=/etc/slipway/programs/{name}.sh\n\
         process_name=%(program_name)s_%(process_num)02d\nnumprocs={processes}\nuser={user}\nautostart=true\n\
         autorestart=true\nstartsecs={start}\nstartretries=3\nstopsignal={signal}\nstopwaitsecs={wait}\n\
         stopasgroup=true\nkillasgroup=true\nstdout_logfile={LOG_DIR}/{name}_%(process_num)02d.log\n\
         stdout_logfile_maxbytes=5MB\nstdout_logfile_backups=2\nredirect_stderr=true\n\
         environment=SLIPWAY_REVISION=\"{revision}\"\n",
        revision = revision(&wrapper),
        processes = spec.processes,
        user = spec.user,
        start = spec.start_seconds,
        signal = spec.stop_signal,
        wait = spec.stop_wait_seconds,
    );
    Ok(ProgramFiles { name, conf, wrapper })
}

/// A digest of the wrapper, set in the program's environment: supervisor restarts a program
/// whose section changed, and the command itself lives in the wrapper, so without this a changed
/// command would keep running the old one.
fn revision(wrapper: &str) -> String {
    use sha2::Digest as _;
    slipway_core::hex::encode(&sha2::Sha256::digest(wrapper.as_bytes())[..8])
}

/// The script that makes the server run exactly `programs` among those named `prefix-*`: files
/// are replaced and supervisor updated (which starts new programs, restarts changed ones and
/// stops removed ones). A program whose user does not exist is not run (supervisor would refuse
/// the whole configuration) and is reported as `slipway-item-failed <id> <reason>`, so one bad
/// item does not hold back the others.
pub fn sync_script(prefix: &str, programs: &[(String, ProgramSpec)]) -> Result<Script, String> {
    let mut table = String::new();
    for (id, spec) in programs {
        let files = render(prefix, id, spec)?;
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        table.push_str(&format!("{} {id} {} {} {}\n", files.name, spec.user, b64(&files.conf), b64(&files.wrapper)));
    }
    Ok(Script::new("supervisor programs", include_str!("../../scripts/programs.sh"))
        .var("PREFIX", prefix)
        .var("LOG_DIR", LOG_DIR)
        .var("PROGRAMS", &table))
}

/// What supervisor says about one program, summed over its processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveStatus {
    /// `running`, `installing` (starting), `stopped` or `failed`.
    pub status: ItemState,
    /// Supervisor's words for a process that is not running (`FATAL Exited too quickly …`).
    pub reason: Option<String>,
}

/// Reads `supervisorctl status` lines into each program's live status.
pub fn parse_status(lines: &[String]) -> BTreeMap<String, LiveStatus> {
    let mut processes: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for line in lines {
        let mut words = line.split_whitespace();
        let (Some(name), Some(state)) = (words.next(), words.next()) else { continue };
        let program = name.split(':').next().unwrap_or(name).to_string();
        let description = words.collect::<Vec<_>>().join(" ");
        processes.entry(program).or_default().push((state.to_string(), description));
    }
    processes
        .into_iter()
        .map(|(program, states)| {
            let worst = states
                .iter()
                .max_by_key(|(state, _)| match state.as_str() {
                    "RUNNING" => 0,
                    "STARTING" => 1,
                    "BACKOFF" => 2,
                    "STOPPING" | "STOPPED" => 3,
                    _ => 4,
                })
                .cloned()
                .unwrap_or_default();
            let (state, description) = worst;
            let reason = Some(format!("{state} {description}").trim().to_string());
            let live = match state.as_str() {
                "RUNNING" => LiveStatus { status: ItemState::Running, reason: None },
                // Starting, or restarting after an early exit: supervisor gives up (FATAL) after
                // three tries, so this settles within a few start periods.
                "STARTING" | "BACKOFF" => LiveStatus { status: ItemState::Installing, reason },
                "STOPPING" | "STOPPED" => LiveStatus { status: ItemState::Stopped, reason },
                _ => LiveStatus { status: ItemState::Failed, reason },
            };
            (program, live)
        })
        .collect()
}

/// Reads the live status of every program named `prefix-*` on the server.
pub async fn live_statuses(
    engine: &Engine,
    server: &Server,
    prefix: &str,
) -> Result<BTreeMap<String, LiveStatus>, String> {
    let script =
        Script::new("supervisor status", include_str!("../../scripts/programs_status.sh")).var("PREFIX", prefix);
    let lines = crate::probe::read(engine, server, &script, Duration::from_secs(15)).await?;
    Ok(parse_status(&lines))
}

/// The last `lines` lines each process of program `name` wrote.
pub async fn log_tail(engine: &Engine, server: &Server, name: &str, lines: u32) -> Result<Vec<String>, String> {
    let script = Script::new("program log", include_str!("../../scripts/programs_log.sh"))
        .var("PROGRAM", name)
        .var("LINES", &lines.to_string())
        .var("LOG_DIR", LOG_DIR);
    crate::probe::read(engine, server, &script, Duration::from_secs(15)).await
}

/// The live status of a supervised kind's items (see [`ItemKind::live_status`]): what
/// supervisor says now (`running`, `stopped`, `failed` with its reason).
pub async fn live_status(engine: &Engine, server: &Server, kind: &dyn ItemKind, items: &mut [ServerItem]) {
    let Some(prefix) = kind.program_prefix() else { return };
    if !items.iter().any(|i| i.status == InstallStatus::Installed) {
        return;
    }
    let live = live_statuses(engine, server, prefix).await;
    overlay(items, prefix, &live);
}

/// Sets the live status on installed items of a supervised kind; items whose status could not
/// be read say so rather than keep a stale `installed`.
pub fn overlay(items: &mut [ServerItem], prefix: &str, live: &Result<BTreeMap<String, LiveStatus>, String>) {
    for item in items.iter_mut().filter(|i| i.status == InstallStatus::Installed) {
        match live {
            Ok(map) => match map.get(&program_name(prefix, &item.id)) {
                Some(state) => {
                    item.state = Some(state.status);
                    item.status_reason = state.reason.clone();
                }
                None => {
                    item.state = Some(ItemState::Failed);
                    item.status_reason = Some(
                        "supervisor does not know this program (its file was removed from the server?); \
                         provision the server to put it back"
                            .into(),
                    );
                }
            },
            Err(why) => {
                item.state = Some(ItemState::Unknown);
                item.status_reason = Some(format!("could not read the status from the server: {why}"));
            }
        }
    }
}

pub const PROGRAM_RESTART: JobKind = JobKind { name: "server.restart-program", attempts: 1 };

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestartProgram {
    pub server_id: String,
    pub program: String,
}

/// `server.restart-program`: stops and starts every process of one program; fails with
/// supervisor's reason when it does not come back.
#[derive(Debug)]
pub struct RestartProgramJob(pub Engine);

#[async_trait]
impl JobHandler for RestartProgramJob {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let job: RestartProgram = ctx.payload()?;
        if !job.program.starts_with("slipway-")
            || !job.program.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(JobError::failed(format!("invalid program name {:?}", job.program)));
        }
        let server = load_server(&self.0, &job.server_id).await?;
        let script = Script::new("program restart", include_str!("../../scripts/programs_restart.sh"))
            .var("PROGRAM", &job.program);
        let connection = connect(&self.0, ctx, &server).await?;
        run_script(&self.0, ctx, &connection, &script).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ProgramSpec {
        ProgramSpec {
            command: "php artisan horizon --queue='a b' \"$(id)\" % 100%".into(),
            directory: "/home/slipway/app".into(),
            user: "slipway".into(),
            processes: 2,
            start_seconds: 1,
            stop_wait_seconds: 10,
            stop_signal: "TERM".into(),
            site_root: None,
        }
    }

    #[test]
    fn user_text_reaches_only_the_wrapper_and_runs_as_written() {
        let files = render("slipway-daemon", "01ABC", &spec()).unwrap();
        assert_eq!(files.name, "slipway-daemon-01abc");
        assert!(!files.conf.contains("artisan") && !files.conf.contains("/home/slipway/app"), "{}", files.conf);
        assert_eq!(files.conf.matches("[program:").count(), 1);
        // The wrapper, run by a real shell, runs the command with its own quoting intact.
        let own = ProgramSpec {
            command: r#"printf '%s|' 'a b' "$HOME" '%' "$(echo x)"; pwd"#.into(),
            directory: "/tmp".into(),
            ..spec()
        };
        let files = render("slipway-daemon", "01ABC", &own).unwrap();
        let out = std::process::Command::new("sh").arg("-c").arg(&files.wrapper).env("HOME", "/h").output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b|/h|%|x|/tmp\n");
    }

    #[test]
    fn a_changed_command_changes_the_program_section() {
        let one = render("slipway-daemon", "01ABC", &spec()).unwrap();
        let other = render("slipway-daemon", "01ABC", &ProgramSpec { command: "true".into(), ..spec() }).unwrap();
        assert_ne!(one.conf, other.conf, "supervisor must see the change to restart the program");
        assert_eq!(one.conf, render("slipway-daemon", "01ABC", &spec()).unwrap().conf);
    }

    #[test]
    fn hostile_values_are_refused_before_rendering() {
        for (field, bad) in [
            ("command", ProgramSpec { command: "x\n[program:evil]\ncommand=/bin/evil".into(), ..spec() }),
            ("command", ProgramSpec { command: "x\0y".into(), ..spec() }),
            ("command", ProgramSpec { command: "x".repeat(MAX_COMMAND + 1), ..spec() }),
            ("directory", ProgramSpec { directory: "/srv/%(ENV_HOME)s".into(), ..spec() }),
            ("directory", ProgramSpec { directory: "/srv/../etc".into(), ..spec() }),
            ("directory", ProgramSpec { directory: "relative".into(), ..spec() }),
            ("user", ProgramSpec { user: "root\nuser=x".into(), ..spec() }),
            ("processes", ProgramSpec { processes: 33, ..spec() }),
            ("stop_signal", ProgramSpec { stop_signal: "TERM\nx".into(), ..spec() }),
        ] {
            let problems = bad.problems();
            assert!(problems.iter().any(|(f, _)| *f == field), "{field}: {problems:?}");
            assert!(render("slipway-daemon", "01ABC", &bad).is_err());
        }
        assert!(spec().problems().is_empty());
    }

    #[test]
    fn supervisor_status_is_read_per_program() {
        let lines: Vec<String> = [
            "slipway-daemon-01a:slipway-daemon-01a_00   RUNNING   pid 10, uptime 0:00:05",
            "slipway-daemon-01a:slipway-daemon-01a_01   RUNNING   pid 11, uptime 0:00:05",
            "slipway-daemon-01b:slipway-daemon-01b_00   FATAL     Exited too quickly (process log may have details)",
            "slipway-daemon-01c:slipway-daemon-01c_00   RUNNING   pid 12, uptime 0:00:05",
            "slipway-daemon-01c:slipway-daemon-01c_01   BACKOFF   Exited too quickly (process log may have details)",
            "slipway-daemon-01d:slipway-daemon-01d_00   STOPPED   Dec 03 10:00 AM",
        ]
        .map(String::from)
        .to_vec();
        let live = parse_status(&lines);
        assert_eq!(live["slipway-daemon-01a"], LiveStatus { status: ItemState::Running, reason: None });
        assert_eq!(live["slipway-daemon-01b"].status, ItemState::Failed);
        assert_eq!(
            live["slipway-daemon-01b"].reason.as_deref(),
            Some("FATAL Exited too quickly (process log may have details)")
        );
        assert_eq!(live["slipway-daemon-01c"].status, ItemState::Installing);
        assert_eq!(live["slipway-daemon-01d"].status, ItemState::Stopped);
    }
}
