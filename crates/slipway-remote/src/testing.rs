//! A real OpenSSH sshd for tests, on a free loopback port with its own host key, config and
//! `authorized_keys`, trusting the listed keys for root; ended (with its sessions) by PID when
//! dropped. Needs `openssh-server` installed and root.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use slipway_core::server_input::{Host, UnixUser};

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
             StrictModes no\nLogLevel ERROR\n",
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
