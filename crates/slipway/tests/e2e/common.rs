//! Spawning the real `slipway` binary for end-to-end tests.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The HTTP client of tests and benches (with the TLS crypto provider the binary uses): one for
/// the process, as making one loads the system's CA certificates (milliseconds of CPU, which
/// the deploy bench's ten-at-once figure counted against Slipway). It keeps no idle
/// connections, so a test with a runtime of its own never gets one a finished runtime drove.
pub fn http() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("HTTP client")
        })
        .clone()
}

pub const BIN: &str = env!("CARGO_BIN_EXE_slipway");
const START_DEADLINE: Duration = Duration::from_secs(30);

pub struct Server {
    pub child: Child,
    pub url: String,
    pub stdout: Vec<String>,
    pub stderr: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `slipway serve` and waits (with a deadline) for its "listening" line.
    pub fn start(data_dir: &Path, envs: &[(&str, &str)]) -> Result<Server, String> {
        let mut child = slipway(data_dir, envs)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn slipway");
        let (tx, stderr) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (url_tx, url_rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            // Start-up prints a few lines together; send them as one batch once the setup
            // notice (if any) has been printed, which is right after the listening line.
            let mut lines = BufReader::new(out).lines().map_while(Result::ok);
            let mut seen = Vec::new();
            for line in lines.by_ref() {
                let done = line.starts_with("Slipway listening on ");
                seen.push(line);
                if done {
                    // Only a server that got this far counts as started.
                    let _ = url_tx.send(seen);
                    break;
                }
            }
            for _ in lines {}
        });
        match url_rx.recv_timeout(START_DEADLINE) {
            Ok(seen) => {
                let line = seen.last().cloned().unwrap_or_default();
                let url = line
                    .trim_start_matches("Slipway listening on ")
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                Ok(Server { child, url, stdout: seen, stderr })
            }
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                // The process has ended, but its stderr reader may not have passed on the last
                // lines (the reason it stopped) yet: read until it ends, with a deadline.
                let deadline = Instant::now() + Duration::from_secs(5);
                let mut log = Vec::new();
                while let Ok(line) = stderr.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    log.push(line);
                }
                Err(format!("slipway did not start ({status:?}):\n{}", log.join("\n")))
            }
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        http().get(format!("{}{path}", self.url)).send().await.expect("request")
    }

    /// Sends SIGTERM and waits for the exit, with a deadline.
    pub fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id();
        Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
        let mut child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = rx
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| {
                Command::new("kill").args(["-KILL", &pid.to_string()]).status().ok();
                panic!("slipway did not stop within 15 s of SIGTERM")
            })
            .expect("wait for slipway");
        // The stderr reader ends when the process closes its end; collect what it read.
        let log = self.stderr.iter().take_while(|_| true).collect();
        (status, log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `slipway` command with a clean environment: no SLIPWAY_* from the caller leaks in.
pub fn slipway(data_dir: &Path, envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("SLIPWAY_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("SLIPWAY_DATA_DIR", data_dir).env("SLIPWAY_LOG", "info");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// A test's data directory under the system's temporary directory: removed when the test
/// ends, kept (and named on stderr) when it fails, for what it holds (logs, the database).
pub fn temp_data_dir() -> TempDataDir {
    TempDataDir(std::env::temp_dir().join(format!("slipway-e2e-{}", slipway_core::new_id().to_lowercase())))
}

/// See [`temp_data_dir`]. Not `Clone`: a copy dropped early would remove the directory in use.
pub struct TempDataDir(PathBuf);

impl std::ops::Deref for TempDataDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDataDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDataDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the failed test's data directory is kept: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A signed-in API caller.
#[derive(Clone)]
pub struct Api {
    pub url: String,
    pub token: String,
}

impl Api {
    /// One API call. A `429` is waited out as a well-behaved client does (`Retry-After`, a few
    /// times at most): a test's own polling must not make its next request fail under the
    /// default rate limits when the machine is slow.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut attempts = 0;
        loop {
            let mut request = http().request(method.clone(), format!("{}{path}", self.url)).bearer_auth(&self.token);
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let wait = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            let text = response.text().await.unwrap();
            attempts += 1;
            if status == 429 && attempts < 4 {
                tokio::time::sleep(Duration::from_secs(wait.unwrap_or(1).clamp(1, 61))).await;
                continue;
            }
            return (status, serde_json::from_str(&text).unwrap_or(Value::String(text)));
        }
    }

    /// Polls an operation until it ends, with a deadline.
    pub async fn finished(&self, id: &str) -> Value {
        self.finished_within(id, Duration::from_secs(60)).await
    }

    /// Waits for operation `id` and fails the test, with the operation's error, unless it succeeded.
    pub async fn succeeded(&self, id: &str) {
        let op = self.finished(id).await;
        assert_eq!(op["status"], "succeeded", "operation {id} ended so: {op}");
    }

    pub async fn finished_within(&self, id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        let mut every = tokio::time::interval(Duration::from_millis(200));
        loop {
            every.tick().await;
            let (_, op) = self.call(reqwest::Method::GET, &format!("/api/v1/operations/{id}"), None).await;
            if matches!(op["data"]["status"].as_str(), Some("succeeded" | "failed" | "cancelled")) {
                return op["data"].clone();
            }
            if Instant::now() >= deadline {
                // Where it got stuck is the first thing to know.
                let (_, log) =
                    self.call(reqwest::Method::GET, &format!("/api/v1/operations/{id}/log?limit=1000"), None).await;
                let lines: Vec<&str> =
                    log["data"].as_array().into_iter().flatten().filter_map(|l| l["line"].as_str()).collect();
                let tail = &lines[lines.len().saturating_sub(20)..];
                panic!("operation {id} did not end: {op}\nlast lines of its log:\n{}", tail.join("\n"));
            }
        }
    }
}

/// Completes the first-run setup and returns its owner's token.
pub async fn owner(server: &Server) -> Api {
    let link = server.stdout.iter().find_map(|l| l.split_once(" at ").map(|(_, u)| u.to_string())).unwrap();
    let code = link.rsplit('=').next().unwrap();
    let body = json!({"code": code, "email": "ops@example.com", "name": "Ops", "password": "correct horse battery staple", "organization": "Ops"});
    let setup: Value =
        http().post(format!("{}/api/v1/setup", server.url)).json(&body).send().await.unwrap().json().await.unwrap();
    Api { url: server.url.clone(), token: setup["data"]["token"]["plain_text_token"].as_str().unwrap().to_string() }
}

/// A loopback peer that accepts TCP connections and never says anything (a server that hangs
/// before SSH starts). Returns its port and the task holding the connections open.
pub async fn silent_peer() -> (u16, tokio::task::JoinHandle<()>) {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}

/// Waits (up to 10 s) until something accepts connections on `listen:port`.
pub fn wait_listening(listen: &str, port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect((listen, port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {listen}:{port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A repository with a work tree, pushed to a bare copy that `git daemon` serves.
pub struct GitRepo {
    work: PathBuf,
    daemon: Child,
    pub url: String,
}

pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl GitRepo {
    pub fn serve(dir: &Path, listen: &str) -> GitRepo {
        let work = dir.join("work");
        let served = dir.join("served");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&served).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["config", "user.email", "dev@example.com"]);
        git(&work, &["config", "user.name", "Dev"]);
        git(&served, &["init", "-q", "--bare", "app.git"]);
        let port = std::net::TcpListener::bind((listen, 0)).unwrap().local_addr().unwrap().port();
        let daemon = Command::new("git")
            .args(["daemon", "--reuseaddr", "--export-all", "--informative-errors"])
            .arg(format!("--base-path={}", served.display()))
            .arg(format!("--listen={listen}"))
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        wait_listening(listen, port, "git daemon");
        git(&work, &["remote", "add", "origin", served.join("app.git").to_str().unwrap()]);
        GitRepo { work, daemon, url: format!("git://{listen}:{port}/app.git") }
    }

    /// The work tree (to push it elsewhere).
    pub fn work(&self) -> PathBuf {
        self.work.clone()
    }

    /// Adds a symbolic link to the work tree (the next commit records it).
    pub fn symlink(&self, path: &str, target: &str) {
        let link = self.work.join(path);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, link).unwrap();
    }

    /// Deletes a file from the work tree (the next commit records it).
    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.work.join(path)).unwrap();
    }

    /// Writes files, commits and pushes; returns the commit.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, content) in files {
            let file = self.work.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, content).unwrap();
        }
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "--allow-empty", "-m", message]);
        git(&self.work, &["push", "-q", "-f", "origin", "main"]);
        let out = Command::new("git").arg("-C").arg(&self.work).args(["rev-parse", "HEAD"]).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl Drop for GitRepo {
    fn drop(&mut self) {
        // The daemon and the helpers it forked per connection: its own process group.
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.daemon.id())]).status();
        let _ = self.daemon.wait();
    }
}

/// Removes what earlier test hosts left in this machine's files (they share them with the
/// network-namespace hosts): site directories, nginx blocks, PHP pools, supervisor programs and
/// cron jobs Slipway wrote. Otherwise a new host's supervisor (or cron) would start an earlier
/// test's apps. Only Slipway's own files; the tests that call this run one at a time.
pub fn clean_test_host_files() {
    let remove_matching = |dir: &str, keep: &[&str]| {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("slipway-") && !keep.contains(&name.as_str()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    };
    remove_matching("/etc/supervisor/conf.d", &[]);
    remove_matching("/etc/cron.d", &[]);
    remove_matching("/etc/nginx/sites-enabled", &["slipway-default.conf"]);
    remove_matching("/etc/nginx/sites-available", &["slipway-default.conf"]);
    if let Ok(versions) = std::fs::read_dir("/etc/php") {
        for version in versions.flatten() {
            remove_matching(&format!("{}/fpm/pool.d", version.path().display()), &[]);
        }
    }
    if let Ok(entries) = std::fs::read_dir("/home/slipway") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Sites are directories named after their domain; dotfiles (.ssh) stay.
            if !name.starts_with('.') && name.contains('.') && entry.path().is_dir() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir_all("/var/log/slipway");
    let _ = std::fs::remove_dir_all("/etc/slipway/programs");
    let _ = std::fs::remove_dir_all("/etc/nginx/slipway/redirects");
    let _ = std::fs::remove_dir_all("/etc/nginx/slipway/tls");
    let _ = std::fs::remove_dir_all("/etc/slipway/tls");
    let _ = std::fs::remove_file("/etc/nginx/conf.d/slipway-test-broken.conf");
    let _ = std::fs::remove_dir_all("/etc/slipway/cron");
    let _ = std::fs::remove_dir_all("/var/lib/slipway-cron");
    // Sites' own Unix users (`s<id>`, "Slipway site <domain>") left by tests that did not
    // delete their sites.
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if let [name, _, _, _, comment, ..] = fields[..]
            && comment.starts_with("Slipway site ")
            && name.len() == 27
            && name.starts_with('s')
        {
            let _ = Command::new("userdel").args(["-f", name]).output();
            let _ = Command::new("groupdel").arg(name).output();
        }
    }
}

#[allow(unused_imports)] // each test binary compiles this module; not all of them wait
pub use slipway_remote::testing::{eventually, eventually_every, eventually_some};

/// The newest run of cron job `job_path` that has ended, if any.
pub async fn finished_run(api: &Api, job_path: &str) -> Option<Value> {
    let (status, runs) = api.call(reqwest::Method::GET, &format!("{job_path}/runs"), None).await;
    assert_eq!(status, 200, "{runs}");
    runs["data"].as_array().unwrap().iter().find(|r| r["status"] != "running").cloned()
}

/// The first run of cron job `job_path` to end, waited for up to `limit` (a minutely job under
/// real cron takes up to two minutes). Checked every 2 s: each check reads the server over SSH.
pub async fn first_finished_run(api: &Api, job_path: &str, limit: Duration) -> Value {
    let run = std::sync::Mutex::new(None);
    eventually_every(Duration::from_secs(2), limit, "a finished run of the job", || async {
        let found = finished_run(api, job_path).await;
        let done = found.is_some();
        *run.lock().unwrap() = found;
        done
    })
    .await;
    run.into_inner().unwrap().unwrap()
}

/// A real S3 protocol server on loopback (s3s-fs) over a directory of its own, with one bucket;
/// stopped when dropped.
pub struct S3Server {
    process: Child,
    pub endpoint: String,
    pub root: PathBuf,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
}

impl S3Server {
    pub fn start(dir: &Path) -> S3Server {
        let root = dir.join("s3");
        let bucket = "slipway-test".to_string();
        std::fs::create_dir_all(root.join(&bucket)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (access_key, secret_key) = ("SLIPWAYTESTKEY".to_string(), slipway_core::token::random_base62(40));
        let program = std::env::var("HOME")
            .map(|home| PathBuf::from(home).join(".cargo/bin/s3s-fs"))
            .ok()
            .filter(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("s3s-fs"));
        let process = Command::new(program)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", &access_key])
            .args(["--secret-key", &secret_key])
            .arg(&root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .expect("s3s-fs runs (scripts/install-test-deps installs it)");
        wait_listening("127.0.0.1", port, "s3s-fs");
        S3Server { process, endpoint: format!("http://127.0.0.1:{port}"), root, bucket, access_key, secret_key }
    }

    /// The names of the files in the bucket (its objects, as s3s-fs stores them), recursively.
    pub fn objects(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else {
                    out.push(path.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        let bucket = self.root.join(&self.bucket);
        walk(&bucket, &bucket, &mut out);
        out.sort();
        out
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// What the test's webhook receiver got: path, headers (lower-case names) and body.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: std::collections::HashMap<String, String>,
    pub body: String,
}

const HANG_CLOSED: &str = "/hang (closed by the client)";

/// The most requests to `/hang` that were open at the same time.
pub fn most_open_at_once(seen: &[Received]) -> usize {
    let (mut open, mut most) = (0usize, 0usize);
    for r in seen {
        match r.path.as_str() {
            "/hang" => open += 1,
            HANG_CLOSED => open = open.saturating_sub(1),
            _ => continue,
        }
        most = most.max(open);
    }
    most
}

fn headers_delivery(headers: &std::collections::HashMap<String, String>) -> Option<String> {
    headers.get("slipway-delivery").cloned()
}

/// A loopback HTTP receiver for notifications. `/flaky` answers 500 twice to each delivery
/// (`Slipway-Delivery`), then 200; `/hang-once` never answers the first request of each delivery
/// (then 200); `/hang` never answers; `/down`
/// always 503, `/redirect` a 302 to `/followed`, anything else 200 (Discord's 204 on
/// `/discord`). Returns its port and everything it was sent.
pub async fn receiver() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<Received>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Received>::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head_end, length) = loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                            .unwrap_or(0);
                        break (end + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end - 4]).to_string();
                let mut lines = head.lines();
                let path = lines.next().unwrap().split(' ').nth(1).unwrap().to_string();
                let headers: std::collections::HashMap<String, String> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
                    .collect();
                let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
                let delivery = headers_delivery(&headers);
                let earlier = {
                    let mut seen = log.lock().unwrap();
                    let earlier =
                        seen.iter().filter(|r| r.path == path && headers_delivery(&r.headers) == delivery).count();
                    seen.push(Received { path: path.clone(), headers, body });
                    earlier
                };
                if path == "/hang-once" && earlier == 0 {
                    // The first attempt of each delivery never gets an answer.
                    std::future::pending::<()>().await;
                }
                let answer = match path.as_str() {
                    "/flaky" if earlier < 2 => {
                        "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\noops".to_string()
                    }
                    "/hang" => {
                        // Held open until the client gives up, which is recorded too (see
                        // `most_open_at_once`).
                        while socket.read(&mut chunk).await.is_ok_and(|n| n > 0) {}
                        let closed =
                            Received { path: HANG_CLOSED.into(), headers: Default::default(), body: String::new() };
                        log.lock().unwrap().push(closed);
                        return;
                    }
                    "/down" => "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n".to_string(),
                    "/redirect" => format!(
                        "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{port}/followed\r\ncontent-length: 0\r\n\r\n"
                    ),
                    "/discord" => "HTTP/1.1 204 No Content\r\n\r\n".to_string(),
                    _ => "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_string(),
                };
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (port, seen)
}
