//! The transports against real peers: a real OpenSSH sshd started by the test on a loopback
//! port with its own host key, and the local shell. Every process the test starts it also ends,
//! by PID.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use slipway_core::server_input::{Host, UnixUser};
use slipway_remote::testing::{Sshd, eventually};
use slipway_remote::{
    ByteSink, Exit, LocalTransport, RemoteError, SshConnection, SshKeypair, SshTarget, SshTimeouts, Stream, Transport,
};
use tokio::sync::watch;

async fn run(t: &dyn Transport, script: &str, idle: Duration) -> (Result<Exit, RemoteError>, Vec<(Stream, String)>) {
    let (_tx, rx) = watch::channel(false);
    let mut lines = Vec::new();
    let result = t.run(script, &mut |s, l| lines.push((s, l.to_string())), rx, idle).await;
    (result, lines)
}

fn process_running(marker: &str) -> bool {
    running_count(marker) > 0
}

/// How many processes on this machine have `marker` in their command line.
/// Waits (bounded) for a process to disappear.
async fn gone(marker: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut every = tokio::time::interval(Duration::from_millis(50));
    while Instant::now() < deadline {
        every.tick().await;
        if !process_running(marker) {
            return true;
        }
    }
    false
}

async fn common_behaviour(t: &dyn Transport, label: &str) {
    let (result, lines) =
        run(t, "echo hello\necho 'to stderr' >&2\nprintf 'no newline'\nexit 3\n", Duration::from_secs(10)).await;
    assert_eq!(result.unwrap(), Exit { code: Some(3) }, "{label}");
    assert!(lines.contains(&(Stream::Stdout, "hello".into())), "{label}: {lines:?}");
    assert!(lines.contains(&(Stream::Stderr, "to stderr".into())), "{label}: {lines:?}");
    assert!(lines.contains(&(Stream::Stdout, "no newline".into())), "{label}: {lines:?}");

    // A command that keeps printing is not idle, however long it runs in all (3.2 s here, with
    // an idle limit of 2 s that leaves room for a slow login shell before the first line).
    let (result, lines) =
        run(t, "for i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 0.4; done\n", Duration::from_secs(2)).await;
    assert!(result.unwrap().success(), "{label}");
    assert_eq!(lines.iter().filter(|(stream, _)| *stream == Stream::Stdout).count(), 8, "{label}");

    // A stalled command ends at the idle timeout, and the process is gone.
    let marker = format!("sleep 31.{}", std::process::id() % 1000);
    let started = Instant::now();
    let (result, _) = run(t, &format!("{marker}\n"), Duration::from_millis(700)).await;
    assert_eq!(result.unwrap_err(), RemoteError::Timeout(Duration::from_millis(700)), "{label}");
    assert!(started.elapsed() < Duration::from_secs(10), "{label}: no hang");
    assert!(gone(&marker).await, "{label}: the stalled process was stopped");

    // Cancellation stops the remote process too.
    let marker = format!("sleep 32.{}", std::process::id() % 1000);
    let (tx, rx) = watch::channel(false);
    let script = format!("echo started\n{marker}\n");
    let mut lines = Vec::new();
    let cancel_soon = async {
        let mut every = tokio::time::interval(Duration::from_millis(50));
        loop {
            every.tick().await;
            if process_running(&marker) {
                tx.send(true).unwrap();
                break;
            }
        }
    };
    let mut collect = |s: Stream, l: &str| lines.push((s, l.to_string()));
    let (result, ()) = tokio::join!(t.run(&script, &mut collect, rx, Duration::from_secs(30)), cancel_soon);
    assert_eq!(result.unwrap_err(), RemoteError::Cancelled, "{label}");
    assert!(gone(&marker).await, "{label}: the cancelled process was stopped");

    parts_behaviour(t, label).await;
}

/// A script run in parts: `first`, then each of `next` sent only once the script printed
/// `ready` since the part before was sent, the input ending after the last. With `cancel_when_ready`,
/// the first `ready` cancels the run instead. Returns the exit and the stdout lines.
async fn in_parts(
    t: &dyn Transport,
    first: &str,
    next: &[&str],
    cancel_when_ready: bool,
) -> (Result<Exit, RemoteError>, Vec<String>) {
    let (more, rest) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut more = Some(more);
    let mut next = next.iter();
    let (cancel, cancelled) = watch::channel(false);
    let mut lines = Vec::new();
    let mut collect = |s: Stream, l: &str| {
        if s == Stream::Stdout {
            lines.push(l.to_string());
        }
        if l != "ready" {
            return;
        }
        if cancel_when_ready {
            cancel.send(true).unwrap();
        } else if let (Some(sender), Some(part)) = (&more, next.next()) {
            sender.send(part.to_string()).unwrap();
        }
        if next.len() == 0 {
            more = None;
        }
    };
    let result = t.run_in_parts(first, rest, &mut collect, cancelled, Duration::from_secs(10)).await;
    (result, lines)
}

async fn parts_behaviour(t: &dyn Transport, label: &str) {
    // Each part runs in the same shell (it sees the first part's variable and function), after
    // the output of the one before was read: the shell waited for it, its input still open.
    let first = "x=one\nsay() { echo \"said $1\"; }\necho ready\n";
    let (result, lines) = in_parts(t, first, &["say \"$x\"\necho ready\n", "x=two\nsay \"$x\"\nexit 4\n"], false).await;
    assert_eq!(result.unwrap(), Exit { code: Some(4) }, "{label}");
    assert_eq!(lines, ["ready", "said one", "ready", "said two"], "{label}");

    // No next part: the input ends and the shell ends after the first.
    let (result, lines) = in_parts(t, first, &[], false).await;
    assert_eq!(result.unwrap(), Exit { code: Some(0) }, "{label}");
    assert_eq!(lines, ["ready"], "{label}");

    // A script that ended runs nothing sent after: its own exit is reported.
    let (result, lines) = in_parts(t, "echo ready\nexit 2\n", &["echo too late\n"], false).await;
    assert_eq!(result.unwrap(), Exit { code: Some(2) }, "{label}");
    assert_eq!(lines, ["ready"], "{label}");

    // Cancelled while it waits for its next part: stopped, with what it started.
    let marker = format!("sleep 33.{}", std::process::id() % 1000);
    let first = format!("{marker} &\necho ready\n");
    let (result, lines) = in_parts(t, &first, &["echo never\n"], true).await;
    assert_eq!(result.unwrap_err(), RemoteError::Cancelled, "{label}");
    assert_eq!(lines, ["ready"], "{label}");
    assert!(gone(&marker).await, "{label}: what the waiting script started was stopped");
}

#[tokio::test]
async fn ssh_pins_host_keys_streams_output_and_stops_stalled_or_cancelled_commands() {
    let slipway_key = SshKeypair::generate();
    let sshd = Sshd::start(&[slipway_key.public_openssh()]);
    let timeouts = SshTimeouts { connect: Duration::from_secs(5), ..Default::default() };

    // First contact: the presented host key is returned for pinning.
    let first = SshConnection::connect(&sshd.target(None), &slipway_key, &timeouts).await.unwrap();
    assert_eq!(first.host_key, sshd.host_key_public);
    common_behaviour(&first, "ssh").await;

    // Several scripts at once over the one connection, each on its own channel.
    let (a, b, c) = tokio::join!(
        run(&first, "sleep 0.2; echo one\n", Duration::from_secs(10)),
        run(&first, "sleep 0.2; echo two\n", Duration::from_secs(10)),
        run(&first, "sleep 0.2; echo three\n", Duration::from_secs(10)),
    );
    // Only stdout is compared: a login shell may write to stderr before the script starts (this
    // machine's root runs `pyenv init`, which complains when several shells start at once).
    for ((result, lines), word) in [(a, "one"), (b, "two"), (c, "three")] {
        assert!(result.unwrap().success());
        let stdout: Vec<_> = lines.into_iter().filter(|(stream, _)| *stream == Stream::Stdout).collect();
        assert_eq!(stdout, vec![(Stream::Stdout, word.to_string())]);
    }

    // The pinned key is accepted; another is refused with both fingerprints.
    let pinned =
        SshConnection::connect(&sshd.target(Some(first.host_key.clone())), &slipway_key, &timeouts).await.unwrap();
    assert!(run(&pinned, "true\n", Duration::from_secs(5)).await.0.unwrap().success());
    let impostor = SshKeypair::generate();
    let err = SshConnection::connect(&sshd.target(Some(impostor.public_openssh().into())), &slipway_key, &timeouts)
        .await
        .unwrap_err();
    match &err {
        RemoteError::HostKeyMismatch { expected, presented, .. } => {
            assert_eq!(Some(expected.clone()), slipway_remote::fingerprint(impostor.public_openssh()));
            assert_eq!(Some(presented.clone()), slipway_remote::fingerprint(&sshd.host_key_public));
        }
        other => panic!("expected a host key mismatch, got {other:?}"),
    }
    assert!(err.to_string().contains("accept the new key"));

    // A key the server does not trust.
    let stranger = SshKeypair::generate();
    let err = SshConnection::connect(&sshd.target(None), &stranger, &timeouts).await.unwrap_err();
    assert_eq!(err, RemoteError::AuthenticationFailed { user: "root".into() });

    // A dropped connection ends the command with a reason, not a hang.
    let doomed =
        SshConnection::connect(&sshd.target(Some(first.host_key.clone())), &slipway_key, &timeouts).await.unwrap();
    let (tx, rx) = watch::channel(false);
    let drop_it = async {
        let mut every = tokio::time::interval(Duration::from_millis(50));
        every.tick().await;
        every.tick().await;
        sshd.drop_sessions();
    };
    let mut sink = |_: Stream, _: &str| {};
    let (result, ()) = tokio::join!(doomed.run("sleep 20\n", &mut sink, rx, Duration::from_secs(30)), drop_it);
    assert!(matches!(result, Err(RemoteError::Disconnected(_)) | Ok(Exit { code: None })), "{result:?}");
    drop(tx);
}

/// A kept connection is checked with one keepalive round trip before reuse: it must tell a
/// server that answers from one that keeps the connection open but answers nothing, and from a
/// connection that is gone.
#[tokio::test]
async fn a_kept_connection_is_alive_only_while_the_server_answers_on_it() {
    let slipway_key = SshKeypair::generate();
    let sshd = Sshd::start(&[slipway_key.public_openssh()]);
    let timeouts = SshTimeouts { connect: Duration::from_secs(5), ..Default::default() };
    let connection = SshConnection::connect(&sshd.target(None), &slipway_key, &timeouts).await.unwrap();
    assert!(connection.alive(Duration::from_secs(5)).await, "a fresh connection answers");

    sshd.freeze_sessions(true);
    let asked = Instant::now();
    let answered = connection.alive(Duration::from_millis(300)).await;
    sshd.freeze_sessions(false);
    assert!(!answered, "a server that answers nothing is not alive");
    assert!(asked.elapsed() < Duration::from_secs(3), "the check waited {:?}", asked.elapsed());
    assert!(connection.alive(Duration::from_secs(5)).await, "it answers again once resumed");
    let (result, lines) = run(&connection, "echo still here\n", Duration::from_secs(10)).await;
    assert!(result.unwrap().success());
    assert_eq!(lines, vec![(Stream::Stdout, "still here".to_string())]);

    sshd.drop_sessions();
    eventually(Duration::from_secs(10), "the dropped connection is not alive", || async {
        !connection.alive(Duration::from_secs(1)).await
    })
    .await;
}

#[tokio::test]
async fn more_commands_at_once_than_sshd_allows_sessions_all_run_over_one_connection() {
    let slipway_key = SshKeypair::generate();
    // The test sshd keeps OpenSSH's default of 10 sessions per connection (MaxSessions).
    let sshd = Sshd::start(&[slipway_key.public_openssh()]);
    let timeouts = SshTimeouts { connect: Duration::from_secs(5), ..Default::default() };
    let connection =
        std::sync::Arc::new(SshConnection::connect(&sshd.target(None), &slipway_key, &timeouts).await.unwrap());
    let runs: Vec<_> = (0..14)
        .map(|n| {
            let connection = connection.clone();
            tokio::spawn(async move {
                run(connection.as_ref(), &format!("sleep 0.5; echo run {n}\n"), Duration::from_secs(20)).await
            })
        })
        .collect();
    for (n, handle) in runs.into_iter().enumerate() {
        let (result, lines) = handle.await.unwrap();
        assert!(result.as_ref().is_ok_and(Exit::success), "run {n}: {result:?} {lines:?}");
        // Only stdout: the login user's shell start-up files may say things on stderr (this
        // machine's root runs `pyenv init`, which complains when many shells start at once).
        let stdout: Vec<_> = lines.iter().filter(|(stream, _)| *stream == Stream::Stdout).collect();
        assert_eq!(stdout, [&(Stream::Stdout, format!("run {n}"))], "{lines:?}");
    }

    // Stopping scripts that hold every channel scripts may use (and two that wait for one):
    // each stop gets a channel of its own, and everything ends.
    let marker = format!("sleep 34.{}", std::process::id() % 1000);
    let (cancel, cancelled) = watch::channel(false);
    let runs: Vec<_> = (0..10)
        .map(|_| {
            let (connection, cancelled, script) = (connection.clone(), cancelled.clone(), format!("{marker}\n"));
            tokio::spawn(
                async move { connection.run(&script, &mut |_, _| {}, cancelled, Duration::from_secs(30)).await },
            )
        })
        .collect();
    eventually(Duration::from_secs(10), "8 scripts started", || std::future::ready(running_count(&marker) >= 8)).await;
    cancel.send(true).unwrap();
    for handle in runs {
        let result = tokio::time::timeout(Duration::from_secs(20), handle).await.expect("stopped in time");
        assert_eq!(result.unwrap().unwrap_err(), RemoteError::Cancelled);
    }
    let killed = gone(&marker).await;
    let left = Command::new("pgrep").args(["-af", &marker]).output().unwrap();
    assert!(killed, "the stopped scripts' processes were killed: {}", String::from_utf8_lossy(&left.stdout));
}

fn running_count(marker: &str) -> usize {
    let out = Command::new("pgrep").args(["-c", "-f", marker]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

#[tokio::test]
async fn ssh_to_a_server_that_never_answers_fails_within_the_connect_timeout() {
    // A listener that accepts and then says nothing (no SSH banner ever arrives).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let _accepting = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let target = SshTarget {
        host: Host::parse("127.0.0.1").unwrap(),
        port,
        user: UnixUser::parse("root").unwrap(),
        pinned_host_key: None,
    };
    let timeouts = SshTimeouts { connect: Duration::from_millis(800), ..Default::default() };
    let started = Instant::now();
    let err = SshConnection::connect(&target, &SshKeypair::generate(), &timeouts).await.unwrap_err();
    assert!(matches!(err, RemoteError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("no answer within"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A closed port is refused at once.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let target = SshTarget { port: closed, ..target };
    assert!(matches!(
        SshConnection::connect(&target, &SshKeypair::generate(), &timeouts).await,
        Err(RemoteError::Connect { .. })
    ));
}

#[tokio::test]
async fn the_local_transport_behaves_like_ssh() {
    common_behaviour(&LocalTransport, "local").await;
    streaming_behaviour(&LocalTransport, "local").await;
}

#[tokio::test]
async fn ssh_streams_bytes_out_and_in() {
    let slipway_key = SshKeypair::generate();
    let sshd = Sshd::start(&[slipway_key.public_openssh()]);
    let timeouts = SshTimeouts { connect: Duration::from_secs(5), ..Default::default() };
    let connection = SshConnection::connect(&sshd.target(None), &slipway_key, &timeouts).await.unwrap();
    streaming_behaviour(&connection, "ssh").await;
}

/// Collects what a streamed command writes; fails once it has taken `fail_after` bytes.
#[derive(Default)]
struct Collect {
    bytes: Vec<u8>,
    chunks: usize,
    fail_after: Option<usize>,
}

#[async_trait::async_trait]
impl ByteSink for Collect {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), String> {
        self.chunks += 1;
        self.bytes.extend_from_slice(chunk);
        match self.fail_after {
            Some(limit) if self.bytes.len() > limit => Err("the upload was refused".into()),
            _ => Ok(()),
        }
    }
}

async fn stream(
    t: &dyn Transport,
    script: &str,
    input: Option<Vec<u8>>,
    sink: &mut Collect,
) -> (Result<Exit, RemoteError>, Vec<String>) {
    let (_tx, rx) = watch::channel(false);
    let mut errors = Vec::new();
    let input = input.map(|bytes| Box::new(std::io::Cursor::new(bytes)) as slipway_remote::ByteSource);
    let result = t.stream(script, input, sink, &mut |l| errors.push(l.to_string()), rx, Duration::from_secs(20)).await;
    (result, errors)
}

async fn streaming_behaviour(t: &dyn Transport, label: &str) {
    // Out: 5 MiB of bytes (every value), exactly, in chunks as they come; stderr apart.
    let source = std::env::temp_dir().join(format!("slipway-stream-{label}-{}", std::process::id()));
    let script =
        format!("i=0; while [ $i -lt 20 ]; do head -c 262144 {}; i=$((i+1)); done; echo done >&2\n", source.display());
    let pattern: Vec<u8> = (0..262_144u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&source, &pattern).unwrap();
    let mut sink = Collect::default();
    let (result, errors) = stream(t, &script, None, &mut sink).await;
    std::fs::remove_file(&source).unwrap();
    assert!(result.unwrap().success(), "{label}: {errors:?}");
    assert_eq!(sink.bytes.len(), 20 * 262_144, "{label}");
    assert!(sink.bytes.chunks(262_144).all(|c| c == pattern.as_slice()), "{label}: the bytes arrive intact, in order");
    assert!(sink.chunks > 1, "{label}: delivered as it streams");
    assert!(errors.contains(&"done".to_string()), "{label}: {errors:?}");

    // In: the script reads exactly what follows it (3 MiB, binary, NUL bytes included).
    let input: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mut sink = Collect::default();
    let (result, errors) = stream(t, "wc -c; cksum\n", Some(input.clone()), &mut sink).await;
    assert!(result.unwrap().success(), "{label}: {errors:?}");
    let expected = Command::new("sh")
        .args(["-c", "wc -c; cksum"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&input)?;
            child.wait_with_output()
        })
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&sink.bytes), String::from_utf8_lossy(&expected.stdout), "{label}");

    // The script is never on a command line (it may hold secrets).
    let marker = format!("slipway-secret-{}", std::process::id());
    let script = format!("PASSWORD={marker}; sleep 1; echo \"$PASSWORD\"\n");
    let mut sink = Collect::default();
    // The process list is read every 50 ms for as long as the command runs.
    let done = std::sync::atomic::AtomicBool::new(false);
    let running = async {
        let outcome = stream(t, &script, None, &mut sink).await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        outcome
    };
    let watching = async {
        let (mut seen, mut every) = (0, tokio::time::interval(Duration::from_millis(50)));
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            every.tick().await;
            seen = seen.max(running_count(&marker));
        }
        seen
    };
    let ((result, _), seen) = tokio::join!(running, watching);
    assert!(result.unwrap().success(), "{label}");
    assert_eq!((seen, String::from_utf8_lossy(&sink.bytes).trim()), (0, marker.as_str()), "{label}");

    // A sink that refuses stops the command, and everything it started.
    let marker = format!("sleep 32.{}", std::process::id() % 1000);
    let script = format!("{marker} & while :; do head -c 65536 /dev/zero; done\n");
    let mut sink = Collect { fail_after: Some(1024 * 1024), ..Default::default() };
    let (result, _) = stream(t, &script, None, &mut sink).await;
    assert_eq!(result.unwrap_err(), RemoteError::Sink("the upload was refused".into()), "{label}");
    assert!(gone(&marker).await, "{label}: the command's processes were stopped");
}

#[test]
fn keypairs_round_trip_through_their_openssh_form() {
    let key = SshKeypair::generate();
    assert!(key.public_openssh().starts_with("ssh-ed25519 "));
    assert!(slipway_core::server_input::SshPublicKey::parse(key.public_openssh()).is_ok());
    let again = SshKeypair::from_private_openssh(key.private_openssh().expose()).unwrap();
    assert_eq!(again.public_openssh(), key.public_openssh());
    assert_eq!(format!("{:?}", key.private_openssh()), "[redacted]");
    assert!(slipway_remote::fingerprint(key.public_openssh()).unwrap().starts_with("SHA256:"));
}
