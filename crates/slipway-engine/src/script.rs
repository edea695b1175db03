//! Building the scripts Slipway runs on servers: a reviewed template from `scripts/`, the shared
//! prelude, and the values it needs as quoted variable assignments at the top. Values never
//! reach a template by formatting; files travel as base64 so any bytes arrive intact.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use slipway_core::shell;

const PRELUDE: &str = include_str!("../scripts/prelude.sh");

/// A script ready to run: the variables, the prelude and one template.
#[derive(Debug, Clone)]
pub struct Script {
    /// Names the script in logs and failure reasons, e.g. `provision`.
    pub name: &'static str,
    assignments: Vec<String>,
    body: &'static str,
    /// Its standard output carries secrets (a `.env`): returned to the job, never logged.
    pub secret_output: bool,
}

impl Script {
    pub fn new(name: &'static str, body: &'static str) -> Self {
        Script { name, assignments: Vec::new(), body, secret_output: false }
    }

    /// Keeps standard output out of the log (error lines are still logged).
    pub fn with_secret_output(mut self) -> Self {
        self.secret_output = true;
        self
    }

    /// Sets a variable the template reads. Values are quoted; a NUL byte (which no shell can
    /// hold) is refused by the validated types long before this.
    pub fn var(mut self, name: &str, value: &str) -> Self {
        self.assignments.push(shell::env_assign(name, value).expect("values passed to scripts hold no NUL"));
        self
    }

    /// Sets each of `names` to the empty string: the variables a template reads (under `set -u`)
    /// that this run does not use.
    pub fn blank(self, names: &[&str]) -> Self {
        names.iter().fold(self, |script, name| script.var(name, ""))
    }

    /// Sets a variable to the base64 form of `bytes` (for `put_file` and the like).
    pub fn file_var(self, name: &str, bytes: &[u8]) -> Self {
        let encoded = STANDARD.encode(bytes);
        self.var(name, &encoded)
    }

    /// The text to run with `sh -s`. It is the same whoever logs in: the connection runs it as
    /// root (through `sudo -n` for another login user), reading it from stdin.
    pub fn text(&self) -> String {
        self.assembled(true)
    }

    /// The text to send as the next part of a script running in parts, to the shell that ran
    /// [`Script::text`] of another: its variables, then its template (the prelude is there).
    pub fn text_continuing(&self) -> String {
        self.assembled(false)
    }

    fn assembled(&self, with_prelude: bool) -> String {
        let mut text = String::new();
        for line in &self.assignments {
            text.push_str(line);
            text.push('\n');
        }
        if with_prelude {
            text.push_str(PRELUDE);
            text.push('\n');
        }
        text.push_str(self.body);
        text.push('\n');
        text
    }
}

/// Runs `text` as the transports do, `sh -s` reading it from standard input; for tests.
#[cfg(test)]
pub(crate) fn run_as_sh_s(text: &str) -> std::process::Output {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("sh")
        .arg("-s")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether this test runs as root: `as_user` runs `runuser`, which only root may use (as the
    /// end-to-end tests run). Says so when it does not.
    fn as_root() -> bool {
        let uid = std::process::Command::new("id").arg("-u").output().unwrap().stdout;
        let root = uid.trim_ascii() == b"0";
        if !root {
            eprintln!("skipped: needs root, for runuser");
        }
        root
    }

    /// Runs a script in a real shell with `put_file` and the variables, proving hostile values
    /// arrive intact and run nothing.
    #[test]
    fn hostile_values_arrive_intact_and_inert() {
        let dir = std::env::temp_dir().join(format!("slipway-script-{}", slipway_core::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pwned = dir.join("pwned");
        let hostile = format!(
            "'; touch {p}; echo '\n$(touch {p})`touch {p}`\"$HOME\" && touch {p} # \\ end",
            p = pwned.display()
        );
        let target = dir.join("out");
        let body: &'static str = "printf '%s' \"$VALUE\" > \"$TARGET.var\"\nput_file \"$TARGET\" 640 \"$CONTENT\"\n";
        let script = Script::new("test", body)
            .var("VALUE", &hostile)
            .var("TARGET", target.to_str().unwrap())
            .file_var("CONTENT", b"\xff\xfe binary \x01 and 'quotes'\n");
        let out = std::process::Command::new("sh").arg("-c").arg(script.text()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(std::fs::read_to_string(dir.join("out.var")).unwrap(), hostile);
        assert_eq!(std::fs::read(&target).unwrap(), b"\xff\xfe binary \x01 and 'quotes'\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o640);
        assert!(!pwned.exists(), "nothing in the value ran");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Jobs may write one file at once (two sites' syncs, a retry beside a slow first try).
    #[test]
    fn writers_of_one_file_at_once_all_succeed() {
        let dir = std::env::temp_dir().join(format!("slipway-script-{}", slipway_core::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("shared.conf");
        let body: &'static str = "pids=''\nfor i in $(seq 30); do (put_file \"$TARGET\" 644 \"$CONTENT\") & pids=\"$pids $!\"; done\n\
                                  for p in $pids; do wait \"$p\" || fail \"a writer failed\"; done\n";
        let script =
            Script::new("test", body).var("TARGET", target.to_str().unwrap()).file_var("CONTENT", b"same content\n");
        let out = std::process::Command::new("sh").arg("-c").arg(script.text()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(std::fs::read(&target).unwrap(), b"same content\n");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind: {left:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The deploy writes a release's files in one session as the site's user: each arrives
    /// whole with its mode, and whatever the repository left at its path (a link pointing
    /// elsewhere, a directory) is replaced, never followed.
    #[test]
    fn several_user_files_in_one_session_replace_links_and_directories() {
        if !as_root() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("slipway-script-{}", slipway_core::new_id()));
        std::fs::create_dir_all(dir.join("b/inside")).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "untouched\n").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("a")).unwrap();
        let user = String::from_utf8(std::process::Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
        let body: &'static str = "printf '%s\\n%s\\n%s\\n' \"$A\" \"$B\" \"$C\" | \
                                  put_user_files \"600:$DIR/a\" \"700:$DIR/b\" \"640:$DIR/c\"\n";
        let script = Script::new("test", body)
            .var("DEPLOY_USER", user.trim())
            .var("DIR", dir.to_str().unwrap())
            .file_var("A", b"A=1\n")
            .file_var("B", b"#!/bin/sh\ntrue\n")
            .file_var("C", b"");
        let out = std::process::Command::new("sh").arg("-c").arg(script.text()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        use std::os::unix::fs::PermissionsExt;
        for (name, content, mode) in [("a", "A=1\n", 0o600), ("b", "#!/bin/sh\ntrue\n", 0o700), ("c", "", 0o640)] {
            let meta = std::fs::symlink_metadata(dir.join(name)).unwrap();
            assert!(meta.is_file(), "{name} is a file now");
            assert_eq!(meta.permissions().mode() & 0o777, mode, "{name}'s mode");
            assert_eq!(std::fs::read_to_string(dir.join(name)).unwrap(), content);
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n", "the link was not followed");

        // A file whose content is missing is an error, not an empty file.
        let short = Script::new("test", "printf '%s\\n' \"$A\" | put_user_files \"600:$DIR/d\" \"600:$DIR/e\"\n")
            .var("DEPLOY_USER", user.trim())
            .var("DIR", dir.to_str().unwrap())
            .file_var("A", b"d\n");
        let out = std::process::Command::new("sh").arg("-c").arg(short.text()).output().unwrap();
        assert!(!out.status.success(), "two files, one content");
        assert!(!dir.join("e").exists());

        // Content that does not decode leaves neither the file nor a partial copy.
        let bad = Script::new("test", "printf '%s\\n' '!!!' | put_user_files \"600:$DIR/f\"\n")
            .var("DEPLOY_USER", user.trim())
            .var("DIR", dir.to_str().unwrap());
        let out = std::process::Command::new("sh").arg("-c").arg(bad.text()).output().unwrap();
        assert!(!out.status.success(), "undecodable content");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('f'))
            .collect();
        assert!(left.is_empty(), "nothing of f is left: {left:?}");

        // The user's commands see its own home (git keeps its known hosts there), not root's.
        let home = Script::new("test", "as_user sh -c 'printf \"%s\" \"$HOME\"'").var("DEPLOY_USER", user.trim());
        let out = std::process::Command::new("sh").arg("-c").arg(home.text()).env("HOME", "/nowhere").output().unwrap();
        let entry = std::process::Command::new("getent").args(["passwd", user.trim()]).output().unwrap().stdout;
        let expected = String::from_utf8_lossy(&entry).split(':').nth(5).unwrap_or_default().to_string();
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{}", String::from_utf8_lossy(&out.stderr));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The prepare script's build writes the release's files and runs its deploy script in one
    /// session as the site's user, then checks the release: the deploy script sees the variables
    /// and nothing on its standard input (where the rest of Slipway's own script would be), its
    /// lines never read as Slipway's markers, and each failure says which part failed.
    #[test]
    fn the_build_writes_the_environment_then_runs_the_deploy_script_with_nothing_on_stdin() {
        if !as_root() {
            return;
        }
        let root = std::env::temp_dir().join(format!("slipway-build-{}", slipway_core::new_id()));
        std::fs::create_dir_all(root.join("releases/r1")).unwrap();
        let build = |script: &str| {
            let prepare = Script::new("prepare", include_str!("../scripts/deploy_prepare.sh"))
                .var("MARK", "m")
                .var("DEPLOY_USER", "root")
                .var("ROOT", root.to_str().unwrap())
                .var("RELEASE", "r1")
                .var("DIR", "releases/r1")
                .var("NAME", "r1")
                .var("SOURCE", "")
                .var("BUILD", "yes")
                .var("KIND", "files")
                .var("SHARED", "uploads\nstorage/app")
                .file_var("DOTENV", b"GREETING=hello\n")
                .file_var("ENV_SH", b"export GREETING=hello\n")
                .file_var("SCRIPT", script.as_bytes())
                .var("WEB_DIR", "")
                .var("HEALTH_PATH", "/greeting?x=1")
                .blank(&["REPO_URL", "GIT_USERNAME", "GIT_PASSWORD", "BRANCH", "COMMIT", "LIVE_COMMIT", "IN_PLACE"])
                .blank(&["KEY_NAME", "DEPLOY_KEY", "LOG_DIR", "HEALTH_STATUS", "HEALTH_TIMEOUT"])
                .blank(&["PORT", "PROGRAM", "PROGRAM_CONF", "START"]);
            run_as_sh_s(&prepare.text())
        };
        let last_reason = |stderr: &[u8]| {
            let stderr = String::from_utf8_lossy(stderr).into_owned();
            stderr.lines().rev().find_map(|l| l.strip_prefix("slipway-error: ")).unwrap_or_default().to_string()
        };

        // No .slipway directory yet: the files cannot be written, and it says so.
        let out = build("true\n");
        assert!(!out.status.success());
        assert!(last_reason(&out.stderr).contains("could not be written"), "{}", String::from_utf8_lossy(&out.stderr));

        std::fs::create_dir_all(root.join(".slipway")).unwrap();
        let out = build("printf '%s' \"$GREETING\" > greeting\ncat > stdin\necho slipway-step switch\n");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let release = root.join("releases/r1");
        assert_eq!(std::fs::read_to_string(release.join(".env")).unwrap(), "GREETING=hello\n");
        assert_eq!(std::fs::read_to_string(release.join("greeting")).unwrap(), "hello");
        assert_eq!(std::fs::read_to_string(release.join("stdin")).unwrap(), "", "the script read nothing");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let markers: Vec<&str> = stdout.lines().filter(|l| l.starts_with("slipway-")).collect();
        // Ready for the switch, which would come next on the same input.
        assert_eq!(markers, ["slipway-step build", "slipway-step health check", "slipway-prepared m"], "{stdout}");
        assert!(stdout.contains("\n slipway-step switch\n"), "the deploy script's line is shown, indented: {stdout}");
        assert!(stdout.contains("==> deploy script done"));
        assert!(!root.join(".slipway/deploy-r1.sh").exists(), "the deploy script is removed after it ran");
        // The shared paths became links into shared/, and nothing temporary is left beside the
        // files written (first written in place, then replaced by the runs below).
        for shared in ["uploads", "storage/app"] {
            let link = std::fs::read_link(release.join(shared)).unwrap();
            assert_eq!(link, root.join("shared").join(shared), "{shared}");
        }
        let leftovers = || {
            [root.join(".slipway"), release.clone()]
                .iter()
                .flat_map(|d| std::fs::read_dir(d).unwrap())
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".slipway-") || n.ends_with(".exit"))
                .collect::<Vec<_>>()
        };
        assert_eq!(leftovers(), Vec::<String>::new());
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&release.join(".env")), mode(&root.join(".slipway/env-r1.sh"))), (0o600, 0o600));

        let out = build("echo about to fail\nexit 3\n");
        assert!(!out.status.success());
        assert_eq!(last_reason(&out.stderr), "the deploy script failed (exit 3)");
        assert_eq!(leftovers(), Vec::<String>::new(), "replacing the files left nothing either");

        // The health check, after a build that succeeded: the health path must be there.
        let out = build("rm greeting\n");
        assert!(!out.status.success());
        assert_eq!(last_reason(&out.stderr), "health check failed: /greeting?x=1 does not exist in the release");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn fail_reports_its_reason_on_stderr() {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(Script::new("t", "fail \"no way\"\necho after").text())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "slipway-error: no way");
        assert!(out.stdout.is_empty());
    }
}
