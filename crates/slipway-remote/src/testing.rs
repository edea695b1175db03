//! A real OpenSSH sshd for tests, on a free loopback port with its own host key, config and
//! `authorized_keys`, trusting the listed keys for root; ended (with its sessions) by PID when
//! dropped. Needs `openssh-server` installed and root.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use slipway_core::server_input::{Host, UnixUser};

/// This machine's root runs `pyenv init` in its `.bashrc`, which rehashes under a lock file; a
/// login shell killed mid-rehash (a test host torn down) leaves the lock behind, and every later
/// login then waits 60 s for it. Test sessions skip that wait: the test hosts are this machine.
const QUIET_LOGIN_SHELLS: &str = "SetEnv PYENV_REHASH_TIMEOUT=0\n";

use crate::SshTarget;

#[derive(Debug)]
pub struct Sshd {
    pub dir: PathBuf,
    pub port: u16,
    child: Child,
    /// The server's host key, OpenSSH form without comment.
    pub host_key_public: String,
}

impl Sshd {
    /// Starts sshd on a free loopback port, trusting `authorized` for root.
    pub fn start(authorized: &[&str]) -> Sshd {
        let dir = std::env::temp_dir().join(format!("slipway-sshd-{}", slipway_core::new_id().to_lowercase()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let key = dir.join("host_ed25519");
        let status =
            Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key).status().unwrap();
        assert!(status.success());
        std::fs::write(dir.join("authorized_keys"), authorized.join("\n") + "\n").unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile {dir}/sshd.pid\nAuthorizedKeysFile {dir}/authorized_keys\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nLogLevel ERROR\n{QUIET_LOGIN_SHELLS}",
            key = key.display(),
            dir = dir.display()
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .spawn()
            .expect("start sshd");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not listen within 10 s");
            std::thread::yield_now();
        }
        let host_key_public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let host_key_public = host_key_public.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        Sshd { dir, port, child, host_key_public }
    }

    pub fn target(&self, pinned: Option<String>) -> SshTarget {
        SshTarget {
            host: Host::parse("127.0.0.1").unwrap(),
            port: self.port,
            user: UnixUser::parse("root").unwrap(),
            pinned_host_key: pinned,
        }
    }

    /// Ends the per-connection sshd processes (children of our listener), dropping sessions.
    pub fn drop_sessions(&self) {
        let _ = Command::new("pkill").args(["-KILL", "-P", &self.child.id().to_string()]).status();
    }

    /// Stops (or resumes) the per-connection sshd processes and everything under them: the
    /// connections stay open but nothing answers on them, as with a hung server or a network
    /// that lost the route without a reset.
    pub fn freeze_sessions(&self, frozen: bool) {
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let mut parents = vec![self.child.id().to_string()];
        while let Some(parent) = parents.pop() {
            let children = Command::new("pgrep").args(["-P", &parent]).output().unwrap().stdout;
            for pid in String::from_utf8_lossy(&children).split_whitespace() {
                let _ = Command::new("kill").args([signal, pid]).status();
                parents.push(pid.to_string());
            }
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.drop_sessions();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Sshd {
    /// Replaces the keys trusted for root.
    pub fn authorize(&self, keys: &[&str]) {
        std::fs::write(self.dir.join("authorized_keys"), keys.join("\n") + "\n").unwrap();
    }
}

/// A test host of its own: a network namespace joined to this machine by a veth pair, with a
/// real sshd inside (port 22 on the namespace's address) trusting the listed keys for root and
/// `~/.ssh/authorized_keys` for everyone else. A firewall applied there filters only the
/// namespace's traffic, so provisioning can enable one without touching this machine's.
///
/// Test hosts share this machine's files (nginx, packages, the deploy user's home), so two
/// test runs that provision at once (two checkouts, or CI beside a developer) would remove each
/// other's sites. The `provisioning` test group orders one run's tests; this lock, taken when a
/// process starts its first host and held until it exits, orders them across runs.
fn hold_this_machine() {
    static HELD: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();
    HELD.get_or_init(|| {
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/var/tmp/slipway-test-hosts.lock")
            .expect("open the test-host lock");
        if lock.try_lock().is_err() {
            eprintln!("waiting for another test run's provisioning to finish (/var/tmp/slipway-test-hosts.lock)");
            lock.lock().expect("take the test-host lock");
        }
        lock
    });
}

/// The namespace shares this machine's files, so what provisioning installs lands here; tests
/// that provision must run one at a time (the `provisioning` test group). The host also has its
/// own PID namespace (sshd is its init) and a private `/run`, so its service scripts cannot act
/// on this machine's daemons through shared pid files; and `reboot`, `shutdown`, `halt`,
/// `poweroff`, `systemctl` and `init` are a harmless stand-in there (bind-mounted in its private
/// mount namespace) that records each call in `power_calls()`. Dropping the host ends its init,
/// hence every process in it, then removes the network namespace.
#[derive(Debug)]
pub struct NetnsHost {
    pub name: String,
    /// The namespace's address, reachable from this machine.
    pub address: String,
    /// This machine's end of the link.
    pub gateway: String,
    pub dir: PathBuf,
    pub host_key_public: String,
    /// `unshare` in this machine's PID namespace; its child is the namespace's init (sshd).
    launcher: Option<Child>,
}

impl NetnsHost {
    pub fn start(authorized: &[&str]) -> NetnsHost {
        Self::start_as(authorized, None)
    }

    /// The same, with `/etc/os-release` replaced (inside the namespace) by `os_release`, to play
    /// another operating system.
    pub fn start_as(authorized: &[&str], os_release: Option<&str>) -> NetnsHost {
        Self::start_with(authorized, os_release, &[])
    }

    /// The same, where each program in `hangable` (absolute paths) can be made to hang silently
    /// with [`NetnsHost::hang`], to test stalled and dropped commands. Until then it runs the
    /// real program (a copy kept in the host's directory).
    pub fn start_with(authorized: &[&str], os_release: Option<&str>, hangable: &[&str]) -> NetnsHost {
        hold_this_machine();
        let id = slipway_core::new_id().to_lowercase();
        let short = &id[id.len() - 6..];
        let name = format!("slp-{short}");
        let dir = std::env::temp_dir().join(format!("slipway-netns-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        // A /30 from 10.231.0.0/16 that nothing on this machine uses yet.
        let used = String::from_utf8(Command::new("ip").args(["-o", "addr"]).output().unwrap().stdout).unwrap();
        // Start at a different place each time, so hosts started together do not pick one subnet.
        let start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() % 16383;
        let base = (0..16383u32)
            .map(|n| ((n + start).wrapping_mul(2654435761) % 16383) * 4)
            .map(|off| (10u32 << 24) | (231 << 16) | off)
            .find(|net| !used.contains(&format!(" {}/", std::net::Ipv4Addr::from(net + 1))))
            .expect("a free /30");
        let (gateway, address) =
            (std::net::Ipv4Addr::from(base + 1).to_string(), std::net::Ipv4Addr::from(base + 2).to_string());
        let (outer, inner) = (format!("slp{short}h"), format!("slp{short}n"));
        let ip = |args: &[&str]| {
            let status = Command::new("ip").args(args).status().unwrap();
            assert!(status.success(), "ip {args:?}");
        };
        ip(&["netns", "add", &name]);
        let mut host = NetnsHost {
            launcher: None,
            name: name.clone(),
            address: address.clone(),
            gateway: gateway.clone(),
            dir: dir.clone(),
            host_key_public: String::new(),
        };
        ip(&["link", "add", &outer, "type", "veth", "peer", "name", &inner]);
        ip(&["link", "set", &inner, "netns", &name]);
        ip(&["addr", "add", &format!("{gateway}/30"), "dev", &outer]);
        ip(&["link", "set", &outer, "up"]);
        ip(&["netns", "exec", &name, "ip", "addr", "add", &format!("{address}/30"), "dev", &inner]);
        ip(&["netns", "exec", &name, "ip", "link", "set", &inner, "up"]);
        ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);

        let key = dir.join("host_ed25519");
        let status =
            Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key).status().unwrap();
        assert!(status.success());
        std::fs::write(dir.join("authorized_keys"), authorized.join("\n") + "\n").unwrap();
        let config = format!(
            "Port 22\nListenAddress {address}\nHostKey {key}\nPidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile .ssh/authorized_keys\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nLogLevel ERROR\n{QUIET_LOGIN_SHELLS}\
             Match User root\n    AuthorizedKeysFile {dir}/authorized_keys\n",
            key = key.display(),
            dir = dir.display()
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let stand_in = dir.join("power-stand-in");
        std::fs::write(&stand_in, format!("#!/bin/sh\necho \"$0 $*\" >> {}/power-calls\n", dir.display())).unwrap();
        std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
        let fake_release = match os_release {
            Some(text) => {
                std::fs::write(dir.join("os-release"), text).unwrap();
                format!("mount --bind {}/os-release /etc/os-release; ", dir.display())
            }
            None => String::new(),
        };
        // A fresh server's root has a stock profile. This machine's (pyenv, cargo) takes about
        // 100 ms to run, and sshd's bash runs it for every session, which would make every
        // SSH step of every test look that much slower than on a real server.
        let root_bashrc = dir.join("root-bashrc");
        std::fs::write(&root_bashrc, "# A stock root profile: the test host's stands in for a fresh server's.\n")
            .unwrap();
        let plain_profile =
            format!("if [ -f /root/.bashrc ]; then mount --bind {} /root/.bashrc; fi; ", root_bashrc.display());
        let mut wrappers = String::new();
        std::fs::create_dir_all(dir.join("real")).unwrap();
        for program in hangable {
            let name = Path::new(program).file_name().unwrap().to_str().unwrap();
            let real = dir.join("real").join(name);
            std::fs::copy(program, &real).unwrap();
            let wrapper = dir.join(format!("wrap-{name}"));
            std::fs::write(
                &wrapper,
                format!(
                    "#!/bin/sh\nif [ -e {d}/hang-{name} ]; then exec sleep 600; fi\nexec {real} \"$@\"\n",
                    d = dir.display(),
                    real = real.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
            wrappers.push_str(&format!("mount --bind {} {program}; ", wrapper.display()));
        }
        // Its own PID namespace (sshd is its init: when it ends, everything started there ends)
        // and a private /run (pid files, supervisor's socket, init's sockets), so nothing done
        // on the host can reach this machine's daemons or its init. The one exception is the
        // database engines' socket directories, so the host uses this machine's MariaDB and
        // PostgreSQL as a server uses its own (their data directories are never touched).
        let machine_run = dir.join("machine-run");
        std::fs::create_dir_all(&machine_run).unwrap();
        let inside = format!(
            "set -e; mount --bind /run {machine_run}; mount -t tmpfs -o mode=755 tmpfs /run; \
             for s in mysqld postgresql; do if [ -d {machine_run}/$s ]; then mkdir -p /run/$s; \
             mount --bind {machine_run}/$s /run/$s; fi; done; umount {machine_run}; \
             mkdir -p /run/sshd /run/lock; {fake_release}{plain_profile}{wrappers}\
             for d in /usr/sbin /sbin /usr/bin /bin; do for n in reboot shutdown poweroff halt systemctl init telinit; do \
             [ -e \"$d/$n\" ] && mount --bind {stand_in} \"$d/$n\"; done; done; \
             exec /usr/sbin/sshd -D -f {config}",
            stand_in = stand_in.display(),
            config = dir.join("sshd_config").display(),
            machine_run = machine_run.display(),
        );
        let launcher = Command::new("ip")
            .args(["netns", "exec", &name, "unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--mount"])
            .args(["--propagation", "private", "sh", "-c", &inside])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        host.launcher = Some(launcher);
        until(Duration::from_secs(10), "sshd listens", || std::net::TcpStream::connect((address.as_str(), 22)).is_ok());
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        host.host_key_public = public.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        host
    }

    /// Runs a command inside the namespace (and its mount namespace is not needed for that).
    pub fn exec(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip").args(["netns", "exec", &self.name]).args(args).output().unwrap()
    }

    /// Makes a program named in `start_with` hang silently (or run normally again).
    pub fn hang(&self, program: &str, on: bool) {
        let flag = self.dir.join(format!("hang-{program}"));
        if on {
            std::fs::write(flag, "").unwrap();
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }

    /// The namespace's init (its sshd listener), in this machine's PID numbering: the
    /// launcher's only child (the pid file holds the namespace's own numbering).
    fn init_pids(&self) -> Vec<String> {
        let Some(launcher) = &self.launcher else { return Vec::new() };
        let out = Command::new("pgrep").args(["-P", &launcher.id().to_string()]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect()
    }

    /// Ends every SSH connection to the host (the per-connection sshd processes), as a network
    /// failure would; the listener stays.
    pub fn drop_sessions(&self) {
        for listener in self.init_pids() {
            let _ = Command::new("pkill").args(["-KILL", "-P", &listener]).status();
        }
    }

    /// Runs a command in the host's private mount namespace, where its sshd and all it starts
    /// see their files (to mount a filesystem only the host sees, say).
    pub fn exec_in_mounts(&self, args: &[&str]) -> std::process::Output {
        let init = self.init_pids().into_iter().next().expect("the host's init runs");
        Command::new("nsenter").args(["-t", &init, "-m", "--"]).args(args).output().unwrap()
    }

    /// Processes in the namespace whose name is `name`.
    pub fn processes_named(&self, name: &str) -> usize {
        self.owners_of(name).len()
    }

    /// The processes in the namespace named `name`, by the ids this machine gives them (so a
    /// test can signal exactly those, and nothing of this machine's).
    pub fn pids_named(&self, name: &str) -> Vec<String> {
        self.pids()
            .into_iter()
            .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name))
            .collect()
    }

    /// The user id each process in the namespace named `name` runs as.
    pub fn owners_of(&self, name: &str) -> Vec<u32> {
        self.pids_named(name)
            .iter()
            .filter_map(|pid| {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
                let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
                uids.split_whitespace().next()?.parse().ok()
            })
            .collect()
    }

    /// What the power stand-in was asked to do, one call per line.
    pub fn power_calls(&self) -> String {
        std::fs::read_to_string(self.dir.join("power-calls")).unwrap_or_default()
    }

    fn pids(&self) -> Vec<String> {
        let out = Command::new("ip").args(["netns", "pids", &self.name]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect()
    }
}

impl Drop for NetnsHost {
    fn drop(&mut self) {
        // Ending the launcher kills the namespace's init, and with it every process there.
        if let Some(mut launcher) = self.launcher.take() {
            let _ = launcher.kill();
            let _ = launcher.wait();
        }
        // Only processes inside our namespace: everything there was started by this test.
        for _ in 0..50 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            // Some end on their own meanwhile (the init went first): not worth a line each.
            let _ = Command::new("kill").arg("-KILL").args(&pids).stderr(std::process::Stdio::null()).status();
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `check` until it holds; fails saying `what` did not happen within `limit`. The one
/// way tests wait for something (never a fixed pause).
pub async fn eventually<F, Fut>(limit: Duration, what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_every(Duration::from_millis(50), limit, what, check).await
}

/// [`eventually`], checking every `interval` (for checks that cost something, such as a read
/// over SSH).
pub async fn eventually_every<F, Fut>(interval: Duration, limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_some(interval, limit, what, || {
        let ready = check();
        async move { ready.await.then_some(()) }
    })
    .await
}

/// Polls `check` every `interval` until it gives a value, and returns it; fails saying `what`
/// did not happen within `limit`.
pub async fn eventually_some<T, F, Fut>(interval: Duration, limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(interval).await;
    }
}

/// Blocks until `ready` says yes, checking every 20 ms, and fails the test after `limit` (for
/// fixtures outside async code: a process that must start listening).
pub fn until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
