//! Cron jobs: commands the server's own cron daemon runs on a schedule, each recorded on the
//! server as it runs, with a status read back from those records whenever the job is read.
//!
//! No user text reaches a cron file. A job is `/etc/cron.d/slipway-cron-<job>` holding one line,
//! `<schedule> <user> /usr/local/lib/slipway/cron-run <job>`: the schedule is rebuilt from a
//! checked frequency, the user is a checked Unix name, `<job>` is the lowercased id. The
//! command lives in a root-owned wrapper (`/etc/slipway/cron/<job>.sh`) as one shell-quoted
//! word, so a `%` (a newline to cron) or a newline can never add an entry or change the command.
//!
//! `cron-run` (from `scripts/cron_run.sh`) runs the wrapper and records each run in
//! `/var/lib/slipway-cron/<job>/`: start, end, exit code and the last 64 KiB of output, the last
//! 100 runs. It runs as the job's user (cron starts it so), so those records are the user's own:
//! they are read as that user, never as root.

use slipway_core::{InstallStatus, ItemState};
use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};
use slipway_core::server_input::UnixUser;
use slipway_store::{Server, ServerItem};

use super::{ItemKind, check_id, command_problem, specs, wrapper_script};
use crate::script::Script;
use crate::{Engine, JobKind};

#[derive(Debug)]
pub struct CronJobs;

/// Cron files are `/etc/cron.d/slipway-cron-<job>`.
pub const CRON_PREFIX: &str = "slipway-cron";
/// The program every cron line runs; it records the run.
pub const RUNNER_PATH: &str = "/usr/local/lib/slipway/cron-run";
/// Where the jobs' commands are (root-owned wrappers).
pub const WRAPPER_DIR: &str = "/etc/slipway/cron";
/// Where the runs are recorded, one directory per job owned by its user. Not under
/// `/var/lib/slipway`, which is Slipway's own data directory where Slipway runs.
pub const RUNS_DIR: &str = "/var/lib/slipway-cron";
/// Runs kept per job.
pub const KEEP_RUNS: u32 = 100;
/// Bytes of output kept per run (the last ones).
pub const OUTPUT_BYTES: u32 = 64 * 1024;
/// How late a run may start before the job counts as `missed`: cron starts jobs at the minute,
/// but a busy server may be late by some seconds.
pub const GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(90);
/// Runs read per job for its status (the newest decide it).
const STATUS_RUNS: u32 = 3;

/// The named frequencies and the schedule each stands for.
pub const NAMED: [(&str, &str); 6] = [
    ("minutely", "* * * * *"),
    ("hourly", "0 * * * *"),
    ("nightly", "0 0 * * *"),
    ("weekly", "0 0 * * 0"),
    ("monthly", "0 0 1 * *"),
    ("reboot", "@reboot"),
];

/// When a job runs.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// When the server (its cron daemon) starts.
    Reboot,
    /// A five-field expression, as cron reads it.
    At { expression: String, cron: Box<Cron> },
}

impl Schedule {
    /// A named frequency or a five-field expression. Only the syntax that Debian's cron and the
    /// parser read alike is accepted (numbers, `*`, `,`, `-`, `/`), so the times computed here
    /// are the times cron runs the job.
    pub fn parse(frequency: &str) -> Result<Schedule, String> {
        if let Some((_, schedule)) = NAMED.iter().find(|(name, _)| *name == frequency) {
            return match *schedule {
                "@reboot" => Ok(Schedule::Reboot),
                expression => Schedule::expression(expression),
            };
        }
        Schedule::expression(frequency)
    }

    fn expression(text: &str) -> Result<Schedule, String> {
        let names = NAMED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
        let fields: Vec<&str> = text.split(' ').filter(|f| !f.is_empty()).collect();
        if text.len() > 200 || fields.len() != 5 || text.chars().any(|c| !c.is_ascii_digit() && !" *,-/".contains(c)) {
            return Err(format!(
                "One of {names}, or five cron fields (minute hour day-of-month month day-of-week) of numbers, \
                 `*`, `,`, `-` and `/`, e.g. `*/15 * * * *`."
            ));
        }
        for (field, name) in fields.iter().zip(["minute", "hour", "day of month", "month", "day of week"]) {
            if !field.split(',').all(element_ok) {
                return Err(format!(
                    "The {name} field `{field}` is not a list of `N`, `N-M`, `*`, `*/S` or `N-M/S` (with M not below N)."
                ));
            }
        }
        // Cron reads a day field that starts with `*` (`*/2`) as "any day" when combining it with
        // the other; the parser only a bare `*`. Refused where the two would differ.
        let (dom, dow) = (fields[2], fields[4]);
        if dom != "*" && dow != "*" && (dom.starts_with('*') || dow.starts_with('*')) {
            return Err("With both day fields restricted, write them without `*` (e.g. `1-31/2`, not `*/2`).".into());
        }
        let expression = fields.join(" ");
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
        let cron = parser.parse(&expression).map_err(|e| format!("Not a valid cron expression: {e}"))?;
        // One that never comes (`0 0 30 2 *`) is surely a mistake.
        let probe = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single().expect("a valid date");
        cron.find_next_occurrence(&probe, false)
            .map_err(|_| "This expression matches no date (e.g. 30 February), so it would never run.".to_string())?;
        Ok(Schedule::At { expression, cron: Box::new(cron) })
    }

    /// The schedule as the cron line holds it: five fields or `@reboot`.
    pub fn cron_field(&self) -> &str {
        match self {
            Schedule::Reboot => "@reboot",
            Schedule::At { expression, .. } => expression,
        }
    }

    /// The latest time at or before `at` when cron starts the job (none for `reboot`).
    pub fn latest_at_or_before(&self, at: &DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
        match self {
            Schedule::Reboot => None,
            Schedule::At { cron, .. } => cron.find_previous_occurrence(at, true).ok(),
        }
    }

    /// The first time after `at` when cron starts the job (none for `reboot`).
    pub fn next_after(&self, at: &DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
        match self {
            Schedule::Reboot => None,
            Schedule::At { cron, .. } => cron.find_next_occurrence(at, false).ok(),
        }
    }
}

/// One comma-separated element of a cron field, in the grammar Debian's cron reads: `*`, `*/S`,
/// `N`, `N-M` or `N-M/S` (numbers only; a step after a single number is refused by cron).
fn element_ok(element: &str) -> bool {
    let number = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    let (range, step) = match element.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (element, None),
    };
    if step.is_some_and(|s| !number(s)) {
        return false;
    }
    match range.split_once('-') {
        _ if range == "*" => true,
        Some((low, high)) => number(low) && number(high) && low.parse::<u8>().ok() <= high.parse::<u8>().ok(),
        None => number(range) && step.is_none(),
    }
}

/// A cron job as stored; checked when it is created and again when it is rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronSpec {
    /// Run with `sh -c` as `user` (in `directory`, when given).
    pub command: String,
    pub user: String,
    /// A named frequency (`hourly`) or a five-field expression, as accepted.
    pub frequency: String,
    /// The site it belongs to: it then runs as the site's user in its current release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// A site's job: the site's root; the job then loads the live release's environment
    /// (`.slipway/env-<release>.sh`) before its command, as the site's workers do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_root: Option<String>,
}

impl CronSpec {
    /// Why this spec cannot be rendered, field by field (empty when it can).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(why) = command_problem(&self.command) {
            out.push(("command", why));
        }
        if let Err(why) = UnixUser::parse(&self.user) {
            out.push(("user", format!("The user {why}")));
        }
        if let Err(why) = Schedule::parse(&self.frequency) {
            out.push(("frequency", why));
        }
        if let Some(dir) = &self.directory
            && let Some(why) = super::supervised::directory_problem(dir)
        {
            out.push(("directory", why));
        }
        if let Some(why) = self.site_root.as_deref().and_then(super::supervised::directory_problem) {
            out.push(("site_id", why));
        }
        out
    }
}

/// The name of job `id` on the server (its files): the lowercased id, as cron.d file names may
/// hold only letters, digits, `-` and `_`.
pub fn job_name(id: &str) -> String {
    id.to_ascii_lowercase()
}

/// The files of one job: its cron file and its wrapper script.
#[derive(Debug)]
pub struct CronFiles {
    pub name: String,
    pub cron: String,
    pub wrapper: String,
}

pub fn render(id: &str, spec: &CronSpec) -> Result<CronFiles, String> {
    check_id("cron job", id)?;
    if let Some((field, why)) = spec.problems().into_iter().next() {
        return Err(format!("item {id}: {field}: {why}"));
    }
    let name = job_name(id);
    let schedule = Schedule::parse(&spec.frequency)?;
    let wrapper = wrapper_script(
        &format!("cron job {name}"),
        spec.directory.as_deref(),
        &spec.command,
        spec.site_root.as_deref(),
    )?;
    let cron = format!(
        "# Managed by Slipway: cron job {name}; its command is in {WRAPPER_DIR}/{name}.sh.\nMAILTO=\"\"\n\
         {schedule} {user} {RUNNER_PATH} {name}\n",
        schedule = schedule.cron_field(),
        user = spec.user,
    );
    Ok(CronFiles { name, cron, wrapper })
}

/// `cron-run`, with Slipway's paths and limits filled in (`runs_dir` and `wrapper_dir` differ
/// only in tests).
pub fn runner(runs_dir: &str, wrapper_dir: &str) -> String {
    include_str!("../../scripts/cron_run.sh")
        .replace("@RUNS_DIR@", runs_dir)
        .replace("@WRAPPER_DIR@", wrapper_dir)
        .replace("@OUTPUT_BYTES@", &OUTPUT_BYTES.to_string())
        .replace("@KEEP@", &KEEP_RUNS.to_string())
}

/// The script that makes the server run exactly `jobs` among Slipway's: files are replaced (a
/// cron file only when it changed) and those of removed jobs deleted; cron reads `/etc/cron.d`
/// again by itself. A job whose user does not exist is left out and reported as
/// `slipway-item-failed <id> <reason>`, so one bad job does not hold back the others.
pub fn sync_script(jobs: &[(String, CronSpec)]) -> Result<Script, String> {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut table = String::new();
    for (id, spec) in jobs {
        let files = render(id, spec)?;
        table.push_str(&format!("{} {id} {} {} {}\n", files.name, spec.user, b64(&files.cron), b64(&files.wrapper)));
    }
    Ok(Script::new("cron jobs", include_str!("../../scripts/cron.sh"))
        .var("PREFIX", CRON_PREFIX)
        .var("RUNNER", &b64(&runner(RUNS_DIR, WRAPPER_DIR)))
        .var("RUNNER_PATH", RUNNER_PATH)
        .var("WRAPPER_DIR", WRAPPER_DIR)
        .var("RUNS_DIR", RUNS_DIR)
        .var("JOBS", &table))
}

/// One recorded run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    /// Still running (its `cron-run` is alive).
    pub running: bool,
    /// The last 64 KiB of its output, when asked for.
    pub output: Option<Vec<u8>>,
}

impl Run {
    /// `running`, `succeeded`, `failed`, or `interrupted` (it ended without recording how: killed,
    /// or the server stopped).
    pub fn outcome(&self) -> &'static str {
        match (self.running, self.exit_code) {
            (true, _) => "running",
            (false, Some(0)) => "succeeded",
            (false, Some(_)) => "failed",
            (false, None) => "interrupted",
        }
    }
}

/// What the server says about one job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobOnServer {
    /// When its cron file was written (cron follows the schedule from then); none when the file
    /// is missing.
    pub installed_at: Option<DateTime<Utc>>,
    pub user_exists: bool,
    /// Runs recorded in all.
    pub total_runs: u64,
    /// Newest first.
    pub runs: Vec<Run>,
}

/// One read of the server: its clock (and UTC offset, which cron's schedule follows) and jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub now: DateTime<FixedOffset>,
    pub jobs: BTreeMap<String, JobOnServer>,
}

/// Reads `cron_read.sh` output.
pub fn parse_reading(lines: &[String]) -> Result<Reading, String> {
    use base64::Engine as _;
    let mut now = None;
    let mut jobs: BTreeMap<String, JobOnServer> = BTreeMap::new();
    let mut outputs: BTreeMap<String, String> = BTreeMap::new();
    let epoch = |s: &str| s.parse::<i64>().ok().and_then(|s| Utc.timestamp_opt(s, 0).single());
    let finish = |jobs: &mut BTreeMap<String, JobOnServer>, outputs: &mut BTreeMap<String, String>, job: &str| {
        if let Some(text) = outputs.remove(job)
            && let Some(run) = jobs.get_mut(job).and_then(|j| j.runs.last_mut())
        {
            run.output = Some(base64::engine::general_purpose::STANDARD.decode(text.as_bytes()).unwrap_or_default());
        }
    };
    for line in lines {
        let words: Vec<&str> = line.split(' ').collect();
        match words[..] {
            ["now", at, offset] => {
                let offset = parse_offset(offset).ok_or_else(|| format!("unexpected UTC offset {offset:?}"))?;
                now = epoch(at).map(|t| t.with_timezone(&offset));
            }
            ["job", job, installed, user] => {
                jobs.insert(
                    job.to_string(),
                    JobOnServer { installed_at: epoch(installed), user_exists: user == "ok", ..Default::default() },
                );
            }
            ["total", job, n] => {
                if let Some(j) = jobs.get_mut(job) {
                    j.total_runs = n.parse().unwrap_or(0);
                }
            }
            ["run", job, start, alive, end, code] => {
                finish(&mut jobs, &mut outputs, job);
                let (Some(j), Some(started_at)) = (jobs.get_mut(job), epoch(start)) else { continue };
                j.runs.push(Run {
                    started_at,
                    finished_at: epoch(end),
                    exit_code: code.parse().ok(),
                    running: alive == "1",
                    output: None,
                });
            }
            ["out", job, chunk] => outputs.entry(job.to_string()).or_default().push_str(chunk),
            _ => {}
        }
    }
    for job in outputs.keys().cloned().collect::<Vec<_>>() {
        finish(&mut jobs, &mut outputs, &job);
    }
    let now = now.ok_or("the server did not say its time")?;
    Ok(Reading { now, jobs })
}

/// `+0130` as an offset.
fn parse_offset(text: &str) -> Option<FixedOffset> {
    let (sign, digits) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (hours, minutes): (i32, i32) = (digits[..2].parse().ok()?, digits[2..].parse().ok()?);
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// Reads jobs `(name, user)` from the server: for each, its newest runs from `offset` on (at most
/// `limit`), with their output when `output` is set.
pub async fn read(
    engine: &Engine,
    server: &Server,
    jobs: &[(String, String)],
    offset: u64,
    limit: u32,
    output: bool,
) -> Result<Reading, String> {
    let script = read_script(RUNS_DIR, jobs, offset, limit, output);
    let lines = crate::probe::read(engine, server, &script, Duration::from_secs(30)).await?;
    parse_reading(&lines)
}

/// The read script (`runs_dir` differs only in tests).
fn read_script(runs_dir: &str, jobs: &[(String, String)], offset: u64, limit: u32, output: bool) -> Script {
    let table: String = jobs.iter().map(|(job, user)| format!("{job} {user}\n")).collect();
    Script::new("cron read", include_str!("../../scripts/cron_read.sh"))
        .var("PREFIX", CRON_PREFIX)
        .var("RUNS_DIR", runs_dir)
        .var("JOBS", &table)
        .var("OFFSET", &offset.to_string())
        .var("LIMIT", &limit.to_string())
        .var("OUTPUT", if output { "yes" } else { "" })
}

/// A time for a reason: `2026-12-03 10:00:00 UTC`.
fn when(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The live status of an installed job from what the server says: `missed` when its latest
/// expected start (at least [`GRACE`] ago, after its cron file was written) passed with no run
/// started since; else `running`; else the last run's outcome (`succeeded`, `failed` with the
/// exit code); else `waiting`. A missing file or user is `failed` with what to do.
pub fn status(schedule: &Schedule, job: &JobOnServer, now: &DateTime<FixedOffset>) -> (ItemState, String) {
    let Some(installed_at) = job.installed_at else {
        return (
            ItemState::Failed,
            "its cron file is missing from the server, so cron does not run it; provision the server to put it back"
                .into(),
        );
    };
    if !job.user_exists {
        return (ItemState::Failed, "its user no longer exists on the server, so cron does not run it".into());
    }
    let newest = job.runs.first();
    if let Some(due) = schedule.latest_at_or_before(&(*now - GRACE)).map(|d| d.with_timezone(&Utc))
        && due > installed_at
        && newest.is_none_or(|run| run.started_at < due)
    {
        let last = match newest {
            Some(run) => format!("the last one started at {}", when(&run.started_at)),
            None => "none has run yet".into(),
        };
        return (
            ItemState::Missed,
            format!("a run was due at {} and none started ({last}); is cron running on the server?", when(&due)),
        );
    }
    match newest {
        Some(run) if run.running => (ItemState::Running, format!("started at {}", when(&run.started_at))),
        Some(run) => {
            let end = run.finished_at.as_ref().map(when).unwrap_or_default();
            match run.exit_code {
                Some(0) => (ItemState::Succeeded, format!("the last run ended at {end}")),
                Some(code) => (ItemState::Failed, format!("the last run exited with code {code} at {end}")),
                None => (
                    ItemState::Failed,
                    format!(
                        "the last run (started at {}) ended without an exit code: it was killed, or the server stopped",
                        when(&run.started_at)
                    ),
                ),
            }
        }
        None => match schedule.next_after(now) {
            Some(next) => {
                (ItemState::Waiting, format!("no run yet; the first is due at {}", when(&next.with_timezone(&Utc))))
            }
            None => (ItemState::Waiting, "no run yet; it runs when the server starts".into()),
        },
    }
}

/// Sets the live status on installed jobs from a reading; jobs whose state could not be read
/// say so rather than keep a stale `installed`.
pub fn overlay(items: &mut [ServerItem], reading: &Result<Reading, String>) {
    for item in items.iter_mut().filter(|i| i.status == InstallStatus::Installed) {
        let (status, reason) = match (reading, serde_json::from_str::<CronSpec>(&item.spec)) {
            (Err(why), _) => (ItemState::Unknown, format!("could not read the status from the server: {why}")),
            (_, Err(e)) => (ItemState::Unknown, format!("its stored spec cannot be read: {e}")),
            (Ok(reading), Ok(spec)) => {
                match (Schedule::parse(&spec.frequency), reading.jobs.get(&job_name(&item.id))) {
                    (Ok(schedule), Some(job)) => status(&schedule, job, &reading.now),
                    (Err(why), _) => (ItemState::Failed, format!("its frequency is not valid: {why}")),
                    (_, None) => (ItemState::Unknown, "the server did not report on it".into()),
                }
            }
        };
        item.state = Some(status);
        item.status_reason = Some(reason);
    }
}

#[async_trait]
impl ItemKind for CronJobs {
    fn name(&self) -> &'static str {
        "crontab"
    }

    fn progress(&self) -> &'static str {
        "==> installing cron jobs"
    }

    fn sync_job(&self) -> JobKind {
        JobKind { name: "server.sync-crontabs", attempts: 3 }
    }

    fn sync_script(&self, _: &Engine, _: &Server, items: &[&ServerItem]) -> Result<Script, String> {
        sync_script(&specs::<CronSpec>(items)?)
    }

    async fn live_status(&self, engine: &Engine, server: &Server, items: &mut [ServerItem]) {
        if items.iter().all(|i| i.status != InstallStatus::Installed) {
            return;
        }
        let jobs: Vec<(String, String)> = items
            .iter()
            .filter(|i| i.status == InstallStatus::Installed)
            .filter_map(|i| Some((job_name(&i.id), serde_json::from_str::<CronSpec>(&i.spec).ok()?.user)))
            .collect();
        let reading = read(engine, server, &jobs, 0, STATUS_RUNS, false).await;
        overlay(items, &reading);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    use super::*;

    fn spec(command: &str) -> CronSpec {
        CronSpec {
            command: command.into(),
            user: "slipway".into(),
            frequency: "minutely".into(),
            site_id: None,
            directory: None,
            site_root: None,
        }
    }

    #[test]
    fn named_and_five_field_frequencies_are_read_and_others_refused() {
        for (name, field) in NAMED {
            assert_eq!(Schedule::parse(name).unwrap().cron_field(), field);
        }
        for (text, field) in [
            ("*/15 * * * *", "*/15 * * * *"),
            ("  5  4 * * 1-5 ", "5 4 * * 1-5"),
            ("0 0 1,15 * *", "0 0 1,15 * *"),
            ("30 2 * * 7", "30 2 * * 7"),
            ("0 0 29 2 *", "0 0 29 2 *"),
            ("0-30/10 0-23/6 1-31/2 1-12 *", "0-30/10 0-23/6 1-31/2 1-12 *"),
            ("0 0 */2 * *", "0 0 */2 * *"),
        ] {
            assert_eq!(Schedule::parse(text).unwrap_or_else(|e| panic!("{text}: {e}")).cron_field(), field);
        }
        for bad in [
            "",
            "* * * *",
            "* * * * * *",
            "@hourly",
            "Hourly",
            "0 0 * * MON",
            "0 0 1 JAN *",
            "60 * * * *",
            "0 24 * * *",
            "0 0 32 * *",
            "0 0 * 13 *",
            "0 0 * * 8",
            "*/0 * * * *",
            "5/10 * * * *",
            "5-1 * * * *",
            "1- * * * *",
            ",1 * * * *",
            "0 0 30 2 *",
            "0 0 L * *",
            "0 0 ? * *",
            "0 0 15W * *",
            "0 0 * * 5#2",
            "0 0 1 * +1",
            "0 0 */2 * 1",
            "0 0 1 * */2",
            "% * * * *",
            "*\t* * * *",
            "* * * * *\n* * * * * root /tmp/evil",
            "* * * * * root /tmp/evil",
            "0 0 1 1 * 2030",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_cron_file_holds_no_user_text() {
        let hostile = "echo 100% done\" 'q' $(id) `id` ; touch /tmp/pwned #";
        let files = render("01ABC", &spec(hostile)).unwrap();
        assert_eq!(files.name, "01abc");
        assert_eq!(
            files.cron,
            "# Managed by Slipway: cron job 01abc; its command is in /etc/slipway/cron/01abc.sh.\nMAILTO=\"\"\n\
             * * * * * slipway /usr/local/lib/slipway/cron-run 01abc\n"
        );
        let weekly = CronSpec { frequency: "weekly".into(), user: "s01xyz".into(), ..spec("true") };
        let line = render("01ABC", &weekly).unwrap().cron;
        assert!(line.ends_with("\n0 0 * * 0 s01xyz /usr/local/lib/slipway/cron-run 01abc\n"), "{line}");
        assert!(files.wrapper.contains("exec sh -c 'echo 100% done\" '\\''q'\\'' $(id) `id` ; touch /tmp/pwned #'\n"));
        // Values that could not be rendered safely are refused, field by field.
        for (field, bad) in [
            ("command", spec("true\n* * * * * root /tmp/evil")),
            ("command", spec("true\r")),
            ("command", spec("a\0b")),
            ("command", spec("\t")),
            ("command", spec(&"x".repeat(64 * 1024))),
            ("user", CronSpec { user: "root root".into(), ..spec("true") }),
            ("user", CronSpec { user: "slipway\n* * * * * root x".into(), ..spec("true") }),
            ("frequency", CronSpec { frequency: "* * * * * root".into(), ..spec("true") }),
            ("directory", CronSpec { directory: Some("/srv/a b".into()), ..spec("true") }),
        ] {
            let problems = bad.problems();
            assert!(problems.iter().any(|(f, _)| *f == field), "{field}: {problems:?}");
            assert!(render("01ABC", &bad).is_err());
        }
        assert!(render("01/AB", &spec("true")).is_err());
    }

    /// A job's files laid out as the sync lays them, in a directory of its own, for the real
    /// `cron-run` and read script, run by a real `sh` as the current user.
    struct Bench {
        dir: PathBuf,
        user: String,
    }

    impl Bench {
        fn new() -> Bench {
            let dir = std::env::temp_dir().join(format!("slipway-cron-{}", slipway_core::new_id().to_lowercase()));
            for sub in ["wrappers", "runs"] {
                std::fs::create_dir_all(dir.join(sub)).unwrap();
            }
            let runner = runner(dir.join("runs").to_str().unwrap(), dir.join("wrappers").to_str().unwrap());
            std::fs::write(dir.join("cron-run"), runner).unwrap();
            std::fs::set_permissions(dir.join("cron-run"), std::fs::Permissions::from_mode(0o755)).unwrap();
            let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
            Bench { dir, user: user.trim().to_string() }
        }

        fn install(&self, id: &str, spec: &CronSpec) -> String {
            let files = render(id, spec).unwrap();
            std::fs::write(self.dir.join("wrappers").join(format!("{}.sh", files.name)), &files.wrapper).unwrap();
            std::fs::create_dir_all(self.dir.join("runs").join(&files.name)).unwrap();
            files.name
        }

        /// Runs the job as cron would (`cron-run <job>`); returns cron-run's exit status.
        fn run(&self, job: &str) -> i32 {
            let status = Command::new(self.dir.join("cron-run")).arg(job).current_dir("/").status().unwrap();
            status.code().unwrap_or(-1)
        }

        fn read(&self, job: &str, offset: u64, limit: u32) -> JobOnServer {
            let runs = self.dir.join("runs");
            let jobs = [(job.to_string(), self.user.clone())];
            let script = read_script(runs.to_str().unwrap(), &jobs, offset, limit, true);
            let lines = run_script(&script.text());
            let reading = parse_reading(&lines).unwrap();
            reading.jobs[job].clone()
        }
    }

    impl Drop for Bench {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn run_script(text: &str) -> Vec<String> {
        let mut child = Command::new("sh").arg("-s").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("sh");
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "the read script failed");
        String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
    }

    /// What `sh -c command` prints (stdout and stderr in one stream, as cron-run keeps it).
    fn sh_c(command: &str) -> Vec<u8> {
        let out =
            Command::new("sh").args(["-c", "sh -c \"$1\" 2>&1", "sh", command]).current_dir("/").output().unwrap();
        out.stdout
    }

    #[test]
    fn hostile_commands_are_refused_or_run_exactly_as_written() {
        let bench = Bench::new();
        let pwned = bench.dir.join("pwned");
        let hostile = [
            "printf '%s\\n' 100% '%%' \"%\" 'a%b'".to_string(),
            r#"printf '[%s]' "it's" 'say "hi"' \"x\" '\' "\\""#.to_string(),
            "echo $(echo sub) `echo tick` \"$(printf '%s' '$(id)')\" '`id`'".to_string(),
            "echo one; echo two >&2; echo 'three' && false || echo four".to_string(),
            format!("printf '%s' '; touch {p}; '", p = pwned.display()),
            format!("echo '\"; touch {p}; \"'", p = pwned.display()),
            "x=$(printf 'é ü 💥'); printf '%s|%s' \"$x\" \"${#x}\"".to_string(),
            format!("printf '%s' {}", "y".repeat(4000)),
        ];
        for (n, command) in hostile.iter().enumerate() {
            assert!(spec(command).problems().is_empty(), "{command}");
            let job = bench.install(&format!("01HOSTILE{n}"), &spec(command));
            assert_eq!(bench.run(&job), 0, "{command}");
            let read = bench.read(&job, 0, 10);
            assert_eq!(read.runs.len(), 1);
            let run = &read.runs[0];
            assert_eq!((run.exit_code, run.outcome()), (Some(0), "succeeded"), "{command}");
            assert_eq!(run.output.clone().unwrap_or_default(), sh_c(command), "{command}");
        }
        assert!(!pwned.exists());
        // What cannot be written as one line is refused (422 at the API), never run.
        for bad in ["echo a\necho b", "echo a\rb", "echo \0", "echo\ta", "%\n* * * * * root x", &"x".repeat(64 * 1024)]
        {
            assert!(spec(bad).problems().iter().any(|(f, _)| *f == "command"), "{bad:?}");
        }
    }

    #[test]
    fn runs_are_recorded_with_exit_code_output_tail_and_kept_to_the_last_hundred() {
        let bench = Bench::new();
        let failing = bench.install("01FAIL", &spec("echo 'bad thing' >&2; exit 3"));
        assert_eq!(bench.run(&failing), 3);
        let read = bench.read(&failing, 0, 10);
        let run = &read.runs[0];
        assert_eq!((run.exit_code, run.outcome()), (Some(3), "failed"));
        assert_eq!(run.output.as_deref(), Some(&b"bad thing\n"[..]));
        assert!(run.finished_at.unwrap() >= run.started_at);

        // Only the last 64 KiB of output is kept, exactly.
        let big = bench.install("01BIG", &spec("i=0; while [ $i -lt 3000 ]; do printf '%05d:0123456789abcdefghijklmnopqrstuvwxyz\\n' $i; i=$((i+1)); done"));
        assert_eq!(bench.run(&big), 0);
        let full: Vec<u8> =
            (0..3000).flat_map(|i| format!("{i:05}:0123456789abcdefghijklmnopqrstuvwxyz\n").into_bytes()).collect();
        let kept = bench.read(&big, 0, 1).runs[0].output.clone().unwrap();
        assert_eq!(kept.len(), OUTPUT_BYTES as usize);
        assert_eq!(kept[..], full[full.len() - OUTPUT_BYTES as usize..]);

        // A run in progress is `running`; the records are read newest first, by pages.
        let slow = bench.install("01SLOW", &spec("echo started; sleep 2; echo done"));
        let cron_run = bench.dir.join("cron-run");
        let mut child = Command::new(&cron_run).arg(&slow).stdout(Stdio::null()).spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !bench.read(&slow, 0, 1).runs.first().is_some_and(|r| r.running) {
            assert!(std::time::Instant::now() < deadline, "the slow run never showed as running");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(bench.read(&slow, 0, 1).runs[0].outcome(), "running");
        assert!(child.wait().unwrap().success());
        assert_eq!(bench.read(&slow, 0, 1).runs[0].output.as_deref(), Some(&b"started\ndone\n"[..]));

        let counter = bench.install("01MANY", &spec("echo run"));
        let runs = bench.dir.join("runs").join(&counter);
        // Old runs laid out as cron-run leaves them, then a real one: the oldest beyond 100 go.
        for n in 0..105u32 {
            let run = runs.join(format!("{}-{}", 1_700_000_000 + n, 100 + n));
            std::fs::create_dir_all(&run).unwrap();
            std::fs::write(run.join("result"), format!("{} {}\n", 1_700_000_001 + n, n % 2)).unwrap();
            std::fs::write(run.join("output"), format!("old {n}\n")).unwrap();
        }
        assert_eq!(bench.run(&counter), 0);
        let first = bench.read(&counter, 0, 2);
        assert_eq!(first.total_runs, 100);
        assert_eq!(first.runs[0].output.as_deref(), Some(&b"run\n"[..]));
        assert_eq!(first.runs[1].output.as_deref(), Some(&b"old 104\n"[..]));
        assert_eq!(first.runs[1].exit_code, Some(0));
        let last = bench.read(&counter, 98, 5);
        assert_eq!(last.runs.len(), 2);
        assert_eq!(last.runs[1].output.as_deref(), Some(&b"old 6\n"[..]));
        assert_eq!(last.runs[1].started_at.timestamp(), 1_700_000_006);
        assert_eq!(last.runs[0].outcome(), "failed");

        // A run that left no result and whose cron-run is gone ended without saying how.
        std::fs::create_dir_all(runs.join("1800000000-999999999")).unwrap();
        let interrupted = &bench.read(&counter, 0, 1).runs[0];
        assert_eq!((interrupted.outcome(), interrupted.exit_code), ("interrupted", None));
    }

    /// The records are the job user's: a link planted there must not make root read the file it
    /// points at. (Needs root to act as another user, as the read on a server does.)
    #[test]
    fn records_are_read_as_the_jobs_user() {
        let bench = Bench::new();
        if bench.user != "root" {
            eprintln!("skipped: reading as another user needs root");
            return;
        }
        let secret = bench.dir.join("secret");
        std::fs::write(&secret, "root only\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let job = bench.install("01PLANTED", &spec("true"));
        let run = bench.dir.join("runs").join(&job).join("1700000000-1");
        std::fs::create_dir_all(&run).unwrap();
        std::os::unix::fs::symlink(&secret, run.join("output")).unwrap();
        std::fs::write(run.join("result"), "1700000001 0\n").unwrap();
        let chown = Command::new("chown").args(["-R", "-h", "nobody:"]).arg(bench.dir.join("runs")).status().unwrap();
        assert!(chown.success());
        let runs = bench.dir.join("runs");
        let lines =
            run_script(&read_script(runs.to_str().unwrap(), &[(job.clone(), "nobody".into())], 0, 5, true).text());
        let reading = parse_reading(&lines).unwrap();
        let read = &reading.jobs[&job].runs[0];
        assert_eq!(read.exit_code, Some(0));
        assert!(read.output.clone().unwrap_or_default().is_empty(), "{:?}", read.output);
        assert!(Path::new(&secret).exists());
    }

    fn at(text: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(text).unwrap()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        at(text).with_timezone(&Utc)
    }

    fn run(start: &str, code: Option<i32>, running: bool) -> Run {
        Run {
            started_at: utc(start),
            finished_at: code.map(|_| utc(start) + chrono::TimeDelta::seconds(2)),
            exit_code: code,
            running,
            output: None,
        }
    }

    fn job(installed: &str, runs: Vec<Run>) -> JobOnServer {
        JobOnServer { installed_at: Some(utc(installed)), user_exists: true, total_runs: runs.len() as u64, runs }
    }

    #[test]
    fn status_follows_the_runs_and_the_schedule() {
        let minutely = Schedule::parse("minutely").unwrap();
        let check = |schedule: &Schedule, job: &JobOnServer, now: &str, want: ItemState, says: &str| {
            let (status, reason) = status(schedule, job, &at(now));
            assert_eq!(status, want, "{now}: {reason}");
            assert!(reason.contains(says), "{now}: {reason:?} lacks {says:?}");
        };
        let fresh = job("2026-12-03T10:00:30Z", vec![]);
        // Nothing due yet (the first start, 10:01, is less than the grace period ago).
        check(&minutely, &fresh, "2026-12-03T10:01:10Z", ItemState::Waiting, "2026-12-03 10:02:00 UTC");
        check(&minutely, &fresh, "2026-12-03T10:02:29Z", ItemState::Waiting, "no run yet");
        // 90 s after 10:01 with no run: missed.
        check(&minutely, &fresh, "2026-12-03T10:02:31Z", ItemState::Missed, "due at 2026-12-03 10:01:00 UTC");
        check(&minutely, &fresh, "2026-12-03T10:02:31Z", ItemState::Missed, "none has run yet");

        let ran = job("2026-12-03T10:00:30Z", vec![run("2026-12-03T10:01:00Z", Some(0), false)]);
        check(&minutely, &ran, "2026-12-03T10:01:30Z", ItemState::Succeeded, "ended at 2026-12-03 10:01:02 UTC");
        check(&minutely, &ran, "2026-12-03T10:02:30Z", ItemState::Succeeded, "");
        // The 10:02 run never started: missed once its grace period is over.
        check(
            &minutely,
            &ran,
            "2026-12-03T10:03:31Z",
            ItemState::Missed,
            "the last one started at 2026-12-03 10:01:00 UTC",
        );

        let failed = job("2026-12-03T10:00:30Z", vec![run("2026-12-03T10:01:00Z", Some(3), false)]);
        check(
            &minutely,
            &failed,
            "2026-12-03T10:01:30Z",
            ItemState::Failed,
            "exited with code 3 at 2026-12-03 10:01:02 UTC",
        );
        let running = job(
            "2026-12-03T10:00:30Z",
            vec![run("2026-12-03T10:02:00Z", None, true), run("2026-12-03T10:01:00Z", Some(3), false)],
        );
        check(&minutely, &running, "2026-12-03T10:02:40Z", ItemState::Running, "started at 2026-12-03 10:02:00 UTC");
        let killed = job("2026-12-03T10:00:30Z", vec![run("2026-12-03T10:01:00Z", None, false)]);
        check(&minutely, &killed, "2026-12-03T10:01:40Z", ItemState::Failed, "without an exit code");

        // An hourly job created at 09:10 is first due at 10:00.
        let hourly = Schedule::parse("hourly").unwrap();
        let new = job("2026-12-03T09:10:00Z", vec![]);
        check(&hourly, &new, "2026-12-03T10:01:29Z", ItemState::Waiting, "");
        check(&hourly, &new, "2026-12-03T10:01:31Z", ItemState::Missed, "due at 2026-12-03 10:00:00 UTC");

        // The schedule is the server's local time: 03:00 at +02:00 is 01:00 UTC.
        let night = Schedule::parse("0 3 * * *").unwrap();
        let local = job("2026-12-02T12:00:00Z", vec![]);
        check(&night, &local, "2026-12-03T03:05:00+02:00", ItemState::Missed, "due at 2026-12-03 01:00:00 UTC");
        check(&night, &local, "2026-12-03T01:05:00+00:00", ItemState::Waiting, "due at 2026-12-03 03:00:00 UTC");

        // A reboot job is never missed.
        let reboot = Schedule::parse("reboot").unwrap();
        check(
            &reboot,
            &job("2020-01-01T00:00:00Z", vec![]),
            "2026-12-03T10:00:00Z",
            ItemState::Waiting,
            "server starts",
        );
        let booted = job("2020-01-01T00:00:00Z", vec![run("2026-01-01T00:00:00Z", Some(0), false)]);
        check(&reboot, &booted, "2026-12-03T10:00:00Z", ItemState::Succeeded, "");

        // What stops cron from running it at all is a failure, with what to do.
        let gone = JobOnServer { installed_at: None, ..fresh.clone() };
        check(&minutely, &gone, "2026-12-03T10:01:10Z", ItemState::Failed, "cron file is missing");
        let nouser = JobOnServer { user_exists: false, ..fresh };
        check(&minutely, &nouser, "2026-12-03T10:01:10Z", ItemState::Failed, "user no longer exists");
    }

    #[test]
    fn a_reading_is_parsed_with_the_server_clock_and_outputs() {
        let lines: Vec<String> = [
            "now 1796292000 +0130",
            "job 01a 1796290000 ok",
            "total 01a 2",
            "run 01a 1796291940 0 1796291941 0",
            "out 01a aGVs",
            "out 01a bG8K",
            "run 01a 1796291880 1 - -",
            "job 01b - nouser",
            "stray line from a login script",
        ]
        .map(String::from)
        .to_vec();
        let reading = parse_reading(&lines).unwrap();
        assert_eq!(reading.now.offset().local_minus_utc(), 5400);
        assert_eq!(reading.now.timestamp(), 1_796_292_000);
        let a = &reading.jobs["01a"];
        assert_eq!(a.total_runs, 2);
        assert_eq!(a.runs[0].output.as_deref(), Some(&b"hello\n"[..]));
        assert_eq!(a.runs[0].exit_code, Some(0));
        assert_eq!((a.runs[1].running, a.runs[1].output.clone()), (true, None));
        let b = &reading.jobs["01b"];
        assert_eq!((b.installed_at, b.user_exists), (None, false));
        assert!(parse_reading(&["job 01a - ok".to_string()]).is_err());
    }
}
