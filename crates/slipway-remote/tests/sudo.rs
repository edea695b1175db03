//! A login user that is not root: commands run as root through `sudo -n` in the command the
//! channel executes, with the script on stdin, against a real sshd on a network-namespace test
//! host. The test creates a user and a sudoers file on this machine (the host shares its files)
//! and removes both at the end, even when it fails. Run it under the netns lock
//! (`flock /var/tmp/slipway-netns.lock`).

use std::process::Command;
use std::time::Duration;

use slipway_core::server_input::{Host, UnixUser};
use slipway_remote::testing::{NetnsHost, eventually};
use slipway_remote::{Exit, RemoteError, SshConnection, SshKeypair, SshTarget, SshTimeouts, Stream, Transport};
use tokio::sync::watch;

/// Named so that it cannot be a real account.
const USER: &str = "slipway-sudo-test";
const SUDOERS: &str = "/etc/sudoers.d/slipway-sudo-test";

/// The test user, with Slipway's key authorised and passwordless sudo; removed (with its home)
/// when dropped, which must come after its sessions ended (the test host is dropped first).
struct SudoUser {
    home: std::path::PathBuf,
}

impl SudoUser {
    fn create(key: &str) -> SudoUser {
        assert!(std::path::Path::new("/usr/bin/sudo").exists(), "sudo is not installed; run scripts/install-test-deps");
        remove_user(); // left over from a run that was killed
        let home = std::env::temp_dir().join(format!("slipway-sudo-test-{}", slipway_core::new_id().to_lowercase()));
        // No password, but not locked (`*`, not `!`): sshd without PAM refuses locked accounts.
        let status = Command::new("useradd")
            .args(["--system", "--create-home", "--shell", "/bin/sh", "--password", "*", "--home-dir"])
            .arg(&home)
            .arg(USER)
            .status()
            .unwrap();
        assert!(status.success(), "useradd {USER}");
        let user = SudoUser { home: home.clone() };
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::write(home.join(".ssh/authorized_keys"), format!("{key}\n")).unwrap();
        let status = Command::new("chown").args(["-R", &format!("{USER}:"), home.to_str().unwrap()]).status().unwrap();
        assert!(status.success());
        let staged = home.join("sudoers");
        std::fs::write(&staged, format!("{USER} ALL=(ALL) NOPASSWD: ALL\n")).unwrap();
        let checked = Command::new("visudo").args(["-c", "-q", "-f"]).arg(&staged).status().unwrap();
        assert!(checked.success(), "the sudoers line parses");
        let status = Command::new("install").args(["-m", "0440"]).arg(&staged).arg(SUDOERS).status().unwrap();
        assert!(status.success());
        user
    }
}

fn remove_user() {
    let _ = std::fs::remove_file(SUDOERS);
    let exists = Command::new("id").arg(USER).output().is_ok_and(|o| o.status.success());
    if exists {
        let _ = Command::new("userdel").arg(USER).status();
    }
}

impl Drop for SudoUser {
    fn drop(&mut self) {
        remove_user();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

async fn run(t: &dyn Transport, script: &str) -> (Result<Exit, RemoteError>, Vec<(Stream, String)>) {
    let (_tx, rx) = watch::channel(false);
    let mut lines = Vec::new();
    let result = t.run(script, &mut |s, l| lines.push((s, l.to_string())), rx, Duration::from_secs(30)).await;
    (result, lines)
}

/// Processes anywhere on this machine (the test host's included) whose arguments hold `text`.
fn in_any_command_line(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(args) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if args.windows(text.len()).any(|w| w == text.as_bytes()) {
            found.push(String::from_utf8_lossy(&args).replace('\0', " "));
        }
    }
    found
}

#[tokio::test]
async fn a_non_root_login_runs_scripts_as_root_through_sudo_without_exposing_them() {
    let key = SshKeypair::generate();
    // Declared before the host, so that on a failure too the host (and every session of the
    // user) ends before the user is removed.
    let user = SudoUser::create(key.public_openssh());
    let host = NetnsHost::start(&[]);
    let target = SshTarget {
        host: Host::parse(&host.address).unwrap(),
        port: 22,
        user: UnixUser::parse(USER).unwrap(),
        pinned_host_key: None,
    };
    let timeouts = SshTimeouts { connect: Duration::from_secs(5), ..Default::default() };
    let connection = SshConnection::connect(&target, &key, &timeouts).await.unwrap();

    // Root, output on both streams and the exit code, from a script far over the 128 KiB a
    // single argument may hold (it arrives whole: its last lines run).
    let padding = "x".repeat(210 * 1024);
    let script = format!("PAD='{padding}'\necho \"pad ${{#PAD}}\"\necho \"uid $(id -u)\"\necho oops >&2\nexit 7\n");
    let (result, lines) = run(&connection, &script).await;
    assert_eq!(result.unwrap(), Exit { code: Some(7) }, "{lines:?}");
    assert_eq!(
        lines,
        [
            (Stream::Stdout, format!("pad {}", padding.len())),
            (Stream::Stdout, "uid 0".into()),
            (Stream::Stderr, "oops".into())
        ]
    );

    // A script in parts: the part sent once the first said it was ready runs as root in the
    // same shell (sudo passes the channel's input through as it comes).
    let (more, rest) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut more = Some(more);
    let (_keep, never) = watch::channel(false);
    let mut lines = Vec::new();
    let mut collect = |_: Stream, l: &str| {
        lines.push(l.to_string());
        if l == "ready"
            && let Some(more) = more.take()
        {
            more.send("echo \"$word, uid $(id -u)\"\n".into()).unwrap();
        }
    };
    let first = "word=later\necho ready\n";
    let result = connection.run_in_parts(first, rest, &mut collect, never, Duration::from_secs(30)).await;
    assert_eq!(result.unwrap(), Exit { code: Some(0) }, "{lines:?}");
    assert_eq!(lines, ["ready", "later, uid 0"]);

    // While a script holding a secret runs, no process's arguments hold it; cancelling kills
    // its root-owned processes.
    let secret = format!("slipway-secret-{}", slipway_core::new_id());
    let script = format!("SECRET='{secret}'\necho started\nsleep 600\necho \"never $SECRET\"\n");
    let (cancel, cancelled) = watch::channel(false);
    let lines = std::sync::Mutex::new(Vec::new());
    let watch_and_cancel = async {
        // Its sleep runs and its first line has come back (the two race each other).
        eventually(Duration::from_secs(10), "the script's sleep started and it said so", || {
            std::future::ready(host.processes_named("sleep") > 0 && !lines.lock().unwrap().is_empty())
        })
        .await;
        assert_eq!(host.owners_of("sleep"), [0], "the script runs as root");
        assert_eq!(in_any_command_line(&secret), Vec::<String>::new(), "the secret is in no command line");
        cancel.send(true).unwrap();
    };
    let mut collect = |s: Stream, l: &str| lines.lock().unwrap().push((s, l.to_string()));
    let (result, ()) =
        tokio::join!(connection.run(&script, &mut collect, cancelled, Duration::from_secs(30)), watch_and_cancel);
    assert_eq!(result.unwrap_err(), RemoteError::Cancelled);
    assert_eq!(*lines.lock().unwrap(), [(Stream::Stdout, "started".to_string())]);
    eventually(Duration::from_secs(10), "the cancelled script's processes were killed", || {
        std::future::ready(host.processes_named("sleep") == 0)
    })
    .await;

    // The check sees a secret that is in arguments: the script passed to `sh -c` instead.
    let exposing = format!("exec sh -c {}\n", slipway_core::shell::quote(&script).unwrap());
    let (cancel, cancelled) = watch::channel(false);
    let exposed = async {
        eventually(Duration::from_secs(10), "the exposed script's sleep started", || {
            std::future::ready(host.processes_named("sleep") > 0)
        })
        .await;
        assert!(!in_any_command_line(&secret).is_empty(), "a secret in arguments is seen");
        cancel.send(true).unwrap();
    };
    let mut sink = |_: Stream, _: &str| {};
    let (result, ()) = tokio::join!(connection.run(&exposing, &mut sink, cancelled, Duration::from_secs(30)), exposed);
    assert_eq!(result.unwrap_err(), RemoteError::Cancelled);
    eventually(Duration::from_secs(10), "the exposed script's processes were killed", || {
        std::future::ready(host.processes_named("sleep") == 0)
    })
    .await;

    // Without passwordless sudo the command fails at once, with sudo's reason.
    std::fs::remove_file(SUDOERS).unwrap();
    let (result, lines) = run(&connection, "echo should-not-run\n").await;
    assert_eq!(result.unwrap(), Exit { code: Some(1) });
    assert!(lines.iter().any(|(s, l)| *s == Stream::Stderr && l.contains("password is required")), "{lines:?}");
    assert!(!lines.iter().any(|(_, l)| l == "should-not-run"), "{lines:?}");

    connection.close().await;
    drop(host);
    drop(user);
}
