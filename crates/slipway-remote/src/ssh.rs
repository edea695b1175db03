//! SSH with pinned host keys, key authentication, timeouts and keepalives; one connection per
//! server with a channel per script, so scripts can run in parallel over it.
//!
//! Trust model: the host key a server presents at first contact is returned to the caller to be
//! recorded (trust on first use, as the user authorised Slipway's key on that server a moment
//! before); every later connection must present exactly that key, or it is refused with both
//! fingerprints in the error.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use russh::client::{self, Handle};
use russh::keys::{Algorithm, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect};
use slipway_core::Secret;
use slipway_core::server_input::{Host, UnixUser};
use tokio::sync::{Semaphore, watch};

use crate::{Exit, LineSplitter, RemoteError, Stream, Transport, cancelled};

/// An Ed25519 key pair for logging in to servers. The private half is a [`Secret`]: store it
/// sealed with the secrets key, never in clear.
#[derive(Debug, Clone)]
pub struct SshKeypair {
    private_openssh: Secret<String>,
    public_openssh: String,
}

impl SshKeypair {
    pub fn generate() -> Self {
        let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).expect("Ed25519 key generation");
        Self::from_key(&key)
    }

    fn from_key(key: &PrivateKey) -> Self {
        let private = key.to_openssh(russh::keys::ssh_key::LineEnding::LF).expect("encode private key");
        let public = key.public_key().to_openssh().expect("encode public key");
        SshKeypair { private_openssh: Secret::new(private.to_string()), public_openssh: public }
    }

    pub fn from_private_openssh(text: &str) -> Result<Self, String> {
        let key = PrivateKey::from_openssh(text).map_err(|e| format!("invalid private key: {e}"))?;
        Ok(Self::from_key(&key))
    }

    pub fn private_openssh(&self) -> &Secret<String> {
        &self.private_openssh
    }

    /// `ssh-ed25519 AAAA…`, for `authorized_keys`.
    pub fn public_openssh(&self) -> &str {
        &self.public_openssh
    }

    fn private_key(&self) -> PrivateKey {
        PrivateKey::from_openssh(self.private_openssh.expose()).expect("a stored key parses")
    }
}

/// `SHA256:…` of a public key in OpenSSH form.
pub fn fingerprint(public_openssh: &str) -> Option<String> {
    PublicKey::from_openssh(public_openssh).ok().map(|k| k.fingerprint(HashAlg::Sha256).to_string())
}

#[derive(Debug, Clone)]
pub struct SshTarget {
    pub host: Host,
    pub port: u16,
    /// The login user. Any user but `root` runs every command as root through `sudo -n` (see
    /// [`SshConnection`]), so it needs passwordless sudo.
    pub user: UnixUser,
    /// The host key recorded at first contact (OpenSSH form); `None` before it.
    pub pinned_host_key: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SshTimeouts {
    pub connect: Duration,
    pub keepalive: Duration,
    /// Keepalives that may go unanswered before the connection counts as dropped.
    pub keepalive_max: usize,
}

impl Default for SshTimeouts {
    fn default() -> Self {
        SshTimeouts { connect: Duration::from_secs(10), keepalive: Duration::from_secs(15), keepalive_max: 3 }
    }
}

struct Pinning {
    expected: Option<PublicKey>,
    presented: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for Pinning {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false); // host certificates are not part of the trust model
        };
        *self.presented.lock().unwrap_or_else(|p| p.into_inner()) = Some(key.clone());
        Ok(match &self.expected {
            None => true,
            Some(pinned) => pinned.key_data() == key.key_data(),
        })
    }
}

/// An authenticated connection to one server. Commands run as root: as they are when the login
/// user is root, else through `sudo -n` placed in the command the channel executes (the script
/// itself still arrives on stdin, so its secrets never appear in any process's arguments).
pub struct SshConnection {
    handle: Handle<Pinning>,
    /// The key the server presented (OpenSSH form), to pin after a first contact.
    pub host_key: String,
    address: String,
    /// The login user is not root: commands go through `sudo -n`.
    elevate: bool,
    /// Channels open for scripts; see [`SCRIPT_CHANNELS`].
    script_channels: Semaphore,
    /// Channels open for stopping scripts; see [`KILL_CHANNELS`].
    kill_channels: Semaphore,
}

/// sshd refuses more sessions (channels) per connection than its `MaxSessions`, 10 by default.
/// Scripts use at most 8 at once (the others wait for one to end) and stops 2 more of their
/// own: a stop is always made while its script's channel is still open, so it must never wait
/// for a channel that scripts hold.
const SCRIPT_CHANNELS: usize = 8;
const KILL_CHANNELS: usize = 2;

impl std::fmt::Debug for SshConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshConnection").field("address", &self.address).finish_non_exhaustive()
    }
}

impl SshConnection {
    pub async fn connect(
        target: &SshTarget,
        keypair: &SshKeypair,
        timeouts: &SshTimeouts,
    ) -> Result<SshConnection, RemoteError> {
        let address = format!("{}:{}", target.host.as_str(), target.port);
        let expected = match &target.pinned_host_key {
            Some(text) => Some(
                PublicKey::from_openssh(text)
                    .map_err(|e| RemoteError::Io(format!("the pinned host key is invalid: {e}")))?,
            ),
            None => None,
        };
        let presented = Arc::new(Mutex::new(None));
        let handler = Pinning { expected: expected.clone(), presented: presented.clone() };
        let config = Arc::new(client_config(timeouts));
        let connecting = client::connect(config, (target.host.as_str(), target.port), handler);
        let result = tokio::time::timeout(timeouts.connect, connecting).await;
        let seen = presented.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut handle = match result {
            Err(_) => {
                return Err(RemoteError::Connect {
                    address,
                    reason: format!("no answer within {:?}", timeouts.connect),
                });
            }
            Ok(Ok(handle)) => handle,
            Ok(Err(e)) => {
                if let (Some(expected), Some(seen)) = (&expected, &seen)
                    && expected.key_data() != seen.key_data()
                {
                    return Err(RemoteError::HostKeyMismatch {
                        expected: expected.fingerprint(HashAlg::Sha256).to_string(),
                        presented: seen.fingerprint(HashAlg::Sha256).to_string(),
                        presented_key: seen.to_openssh().unwrap_or_default(),
                    });
                }
                return Err(RemoteError::Connect { address, reason: e.to_string() });
            }
        };
        let host_key = seen.and_then(|k| k.to_openssh().ok()).unwrap_or_default();
        let key = Arc::new(keypair.private_key());
        let hash =
            handle.best_supported_rsa_hash().await.map_err(|e| RemoteError::Disconnected(e.to_string()))?.flatten();
        let auth = tokio::time::timeout(
            timeouts.connect,
            handle.authenticate_publickey(target.user.as_str(), PrivateKeyWithHashAlg::new(key, hash)),
        )
        .await
        .map_err(|_| RemoteError::Connect {
            address: address.clone(),
            reason: "authentication did not finish in time".into(),
        })?
        .map_err(|e| RemoteError::Disconnected(e.to_string()))?;
        if !auth.success() {
            return Err(RemoteError::AuthenticationFailed { user: target.user.as_str().into() });
        }
        Ok(SshConnection {
            handle,
            host_key,
            address,
            elevate: target.user.as_str() != "root",
            script_channels: Semaphore::new(SCRIPT_CHANNELS),
            kill_channels: Semaphore::new(KILL_CHANNELS),
        })
    }

    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Whether the server still answers on this connection, within `within`: one global request
    /// and its reply (OpenSSH's keepalive), with no channel or shell started. A kept connection
    /// is checked so before reuse; a server that rebooted or a network that dropped the
    /// connection without a word fails it.
    pub async fn alive(&self, within: std::time::Duration) -> bool {
        if self.handle.is_closed() {
            return false;
        }
        let answered = tokio::time::timeout(within, self.handle.send_ping()).await;
        // The reply channel also ends when the connection does; then the handle is closed.
        matches!(answered, Ok(Ok(()))) && !self.handle.is_closed()
    }

    pub async fn close(&self) {
        let _ = self.handle.disconnect(Disconnect::ByApplication, "", "en").await;
    }
}

/// Runs the script read from stdin as a session leader that first prints its process group.
const REMOTE_WRAPPER: &str = "setsid -w sh -c 'echo \"slipway-pgid $$\"; exec sh -s'";
const PGID_MARKER: &str = "slipway-pgid ";
/// How long a stop waits for the process group to be reported (it is the script's first line,
/// on stderr, which sshd may forward after a flood of stdout). Only an upper bound: a stop
/// kills as soon as the group is known. Without it nothing can be killed, so a busy machine
/// (2 s was seen to be too short under CI load) gets time.
const PGID_WAIT: Duration = Duration::from_secs(10);

impl SshConnection {
    /// The shell command line `command` as the channel should execute it: run by a root shell,
    /// whoever logged in. A login user that is not root goes through `sudo -n`, which fails at
    /// once (with sudo's message on stderr) when a password would be needed. The line is handed
    /// to a shell under sudo, not to sudo itself, so builtins such as `kill` mean what they mean
    /// for root (procps' `kill` reads `-- -28` as a signal number). `setsid` then runs under
    /// sudo: the script's shell still reads the channel's stdin directly and leads a session of
    /// its own whatever sudo does about terminals (there is none here, so `use_pty` allocates
    /// no pty).
    fn as_root(&self, command: &str) -> String {
        if self.elevate {
            let quoted = slipway_core::shell::quote(command).expect("our command lines hold no NUL");
            format!("sudo -n sh -c {quoted}")
        } else {
            command.to_string()
        }
    }

    /// Kills a remote process group over a channel of its own.
    async fn kill_group(&self, pgid: u32) {
        let kill = async {
            let _slot = self.kill_channels.acquire().await.ok()?;
            // sshd may still count sessions that are closing (MaxSessions) and refuse a new one
            // for a moment: try again rather than leave the processes running.
            let mut channel = loop {
                match self.handle.channel_open_session().await {
                    Ok(channel) => break channel,
                    Err(russh::Error::Disconnect) => return None,
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                }
            };
            // `pgid` is a number we parsed, so the command is fixed text plus digits. The group
            // is root's, so a non-root login user kills it through sudo too.
            channel.exec(true, self.as_root(&format!("kill -s KILL -- -{pgid}"))).await.ok()?;
            let mut status = None;
            while let Some(msg) = channel.wait().await {
                if let ChannelMsg::ExitStatus { exit_status } = msg {
                    status = Some(exit_status);
                }
            }
            status
        };
        match tokio::time::timeout(std::time::Duration::from_secs(10), kill).await {
            Ok(Some(0)) => {}
            other => tracing::warn!(
                address = %self.address,
                pgid,
                outcome = ?other,
                "could not confirm that the stopped command's processes were killed"
            ),
        }
    }
}

#[async_trait]
impl Transport for SshConnection {
    async fn run_in_parts(
        &self,
        script: &str,
        mut rest: crate::Parts,
        output: &mut (dyn for<'a> FnMut(Stream, &'a str) + Send),
        mut cancel: watch::Receiver<bool>,
        idle: Duration,
    ) -> Result<Exit, RemoteError> {
        let dropped = |e: russh::Error| RemoteError::Disconnected(e.to_string());
        // Held until the script's channel is gone. Waiting for it is not idleness (the script
        // has not started), so only a cancellation ends the wait.
        let _slot = tokio::select! {
            slot = self.script_channels.acquire() => slot.expect("the semaphore is never closed"),
            _ = cancelled(&mut cancel) => return Err(RemoteError::Cancelled),
        };
        // Opening the channel and handing over the script are bounded and cancellable too: a
        // server that never confirms a channel must not hold a job (and its resource) forever.
        let start = async {
            let channel = self.handle.channel_open_session().await.map_err(dropped)?;
            // The script runs as the leader of a session of its own and first reports its
            // process group, so that stopping it (cancel, timeout) can kill everything it started:
            // OpenSSH does not honour signal requests in every configuration, and closing the
            // channel does not stop a process that is not writing.
            channel.exec(true, self.as_root(REMOTE_WRAPPER)).await.map_err(dropped)?;
            channel.data_bytes(script.as_bytes().to_vec()).await.map_err(dropped)?;
            Ok::<_, RemoteError>(channel)
        };
        let mut channel = tokio::select! {
            started = tokio::time::timeout(idle, start) => started.map_err(|_| RemoteError::Timeout(idle))??,
            _ = cancelled(&mut cancel) => return Err(RemoteError::Cancelled),
        };
        // The later parts go in as they come, beside the reading below: a part waiting for the
        // channel's window never holds up the output. The input ends when the sender is
        // dropped, never after a part that could not be written (the script's end tells then).
        let mut writer = channel.make_writer();
        let _feeder = crate::AbortOnDrop(tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Some(part) = rest.recv().await {
                if writer.write_all(part.as_bytes()).await.is_err() {
                    return;
                }
            }
            let _ = writer.shutdown().await;
        }));
        let (mut out, mut err) = (LineSplitter::default(), LineSplitter::default());
        let mut code = None;
        let mut pgid: Option<u32> = None;
        // Set when asked to stop before the process group was known: keep reading until it is.
        let mut stopping: Option<(RemoteError, tokio::time::Instant)> = None;
        let idle_timer = tokio::time::sleep(idle);
        tokio::pin!(idle_timer);
        loop {
            if let (Some(id), Some(_)) = (pgid, &stopping) {
                self.kill_group(id).await;
                let _ = channel.close().await;
                return Err(stopping.take().expect("checked").0);
            }
            let give_up = stopping.as_ref().map(|(_, at)| *at);
            tokio::select! {
                msg = channel.wait() => match msg {
                    Some(ChannelMsg::Data { data }) => {
                        // Output means the command is alive: the idle timeout starts again.
                        idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                        out.push(&data, |l| match l.strip_prefix(PGID_MARKER) {
                            Some(id) if pgid.is_none() => pgid = id.trim().parse().ok(),
                            _ => output(Stream::Stdout, l),
                        })
                    }
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                        idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                        err.push(&data, |l| output(Stream::Stderr, l))
                    }
                    Some(ChannelMsg::ExitStatus { exit_status }) => code = Some(exit_status),
                    Some(ChannelMsg::ExitSignal { .. }) => code = None,
                    Some(_) => {}
                    None => match stopping.take() {
                        Some((reason, _)) => return Err(reason),
                        None => break,
                    },
                },
                _ = cancelled(&mut cancel), if stopping.is_none() => {
                    stopping = Some((RemoteError::Cancelled, tokio::time::Instant::now() + PGID_WAIT));
                }
                _ = &mut idle_timer, if stopping.is_none() => {
                    stopping = Some((RemoteError::Timeout(idle), tokio::time::Instant::now() + PGID_WAIT));
                }
                _ = tokio::time::sleep_until(give_up.unwrap_or_else(tokio::time::Instant::now)), if give_up.is_some() => {
                    // The wrapper never reported its group (no setsid?): close and report.
                    let _ = channel.close().await;
                    return Err(stopping.take().expect("checked").0);
                }
            }
        }
        out.finish(|l| output(Stream::Stdout, l));
        err.finish(|l| output(Stream::Stderr, l));
        if self.handle.is_closed() && code.is_none() {
            return Err(RemoteError::Disconnected(format!("connection to {} closed during the command", self.address)));
        }
        Ok(Exit { code })
    }

    async fn stream(
        &self,
        script: &str,
        input: Option<crate::ByteSource>,
        sink: &mut dyn crate::ByteSink,
        stderr: &mut (dyn for<'a> FnMut(&'a str) + Send),
        mut cancel: watch::Receiver<bool>,
        idle: Duration,
    ) -> Result<Exit, RemoteError> {
        use tokio::io::AsyncWriteExt;
        let dropped = |e: russh::Error| RemoteError::Disconnected(e.to_string());
        let _slot = tokio::select! {
            slot = self.script_channels.acquire() => slot.expect("the semaphore is never closed"),
            _ = cancelled(&mut cancel) => return Err(RemoteError::Cancelled),
        };
        // As `run`, but standard output is the data: the process group goes to stderr, and the
        // script is read by its byte count so that what follows on stdin is the input's. The
        // line holds fixed text and that count only: no value from a user or the script.
        let wrapper =
            format!("setsid -w sh -c 'echo \"{PGID_MARKER}$$\" >&2; {}'", crate::script_then_input(script.len()));
        let start = async {
            let channel = self.handle.channel_open_session().await.map_err(dropped)?;
            channel.exec(true, self.as_root(&wrapper)).await.map_err(dropped)?;
            channel.data_bytes(script.as_bytes().to_vec()).await.map_err(dropped)?;
            Ok::<_, RemoteError>(channel)
        };
        let mut channel = tokio::select! {
            started = tokio::time::timeout(idle, start) => started.map_err(|_| RemoteError::Timeout(idle))??,
            _ = cancelled(&mut cancel) => return Err(RemoteError::Cancelled),
        };
        let mut writer = channel.make_writer();
        let _feeder = crate::AbortOnDrop(tokio::spawn(async move {
            if let Some(mut input) = input {
                let _ = tokio::io::copy(&mut input, &mut writer).await;
            }
            // End of input (EOF on the channel).
            let _ = writer.shutdown().await;
        }));
        let mut err = LineSplitter::default();
        let mut code = None;
        let mut pgid: Option<u32> = None;
        let mut stopping: Option<(RemoteError, tokio::time::Instant)> = None;
        let idle_timer = tokio::time::sleep(idle);
        tokio::pin!(idle_timer);
        let result = loop {
            if let (Some(id), Some(_)) = (pgid, &stopping) {
                // The command may still be flooding its channel. Its messages are drained while
                // the kill goes over another channel: left unread, they fill the connection's
                // queue for this channel, and the connection then stops delivering anything,
                // the kill channel's replies included (seen under CI load: the kill timed out
                // and the processes lived on).
                let kill = self.kill_group(id);
                tokio::pin!(kill);
                let mut open = true;
                loop {
                    tokio::select! {
                        () = &mut kill => break,
                        msg = channel.wait(), if open => open = msg.is_some(),
                    }
                }
                let _ = channel.close().await;
                break Err(stopping.take().expect("checked").0);
            }
            let give_up = stopping.as_ref().map(|(_, at)| *at);
            tokio::select! {
                msg = channel.wait() => match msg {
                    Some(ChannelMsg::Data { data }) => {
                        idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                        if stopping.is_none()
                            && let Err(why) = sink.write(&data).await
                        {
                            stopping = Some((RemoteError::Sink(why), tokio::time::Instant::now() + PGID_WAIT));
                        }
                    }
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                        idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                        err.push(&data, |l| match l.strip_prefix(PGID_MARKER) {
                            Some(id) if pgid.is_none() => pgid = id.trim().parse().ok(),
                            _ => stderr(l),
                        })
                    }
                    Some(ChannelMsg::ExitStatus { exit_status }) => code = Some(exit_status),
                    Some(ChannelMsg::ExitSignal { .. }) => code = None,
                    Some(_) => {}
                    None => match stopping.take() {
                        Some((reason, _)) => break Err(reason),
                        None => break Ok(()),
                    },
                },
                _ = cancelled(&mut cancel), if stopping.is_none() => {
                    stopping = Some((RemoteError::Cancelled, tokio::time::Instant::now() + PGID_WAIT));
                }
                _ = &mut idle_timer, if stopping.is_none() => {
                    stopping = Some((RemoteError::Timeout(idle), tokio::time::Instant::now() + PGID_WAIT));
                }
                _ = tokio::time::sleep_until(give_up.unwrap_or_else(tokio::time::Instant::now)), if give_up.is_some() => {
                    let _ = channel.close().await;
                    break Err(stopping.take().expect("checked").0);
                }
            }
        };
        result?;
        err.finish(|l| stderr(l));
        if self.handle.is_closed() && code.is_none() {
            return Err(RemoteError::Disconnected(format!("connection to {} closed during the command", self.address)));
        }
        Ok(Exit { code })
    }
}

/// The SSH client's settings. `nodelay`: a script's last packet of each step goes out at once
/// instead of waiting (Nagle) for the server's delayed ACK, about 40 ms per step otherwise.
fn client_config(timeouts: &SshTimeouts) -> client::Config {
    client::Config {
        keepalive_interval: Some(timeouts.keepalive),
        keepalive_max: timeouts.keepalive_max,
        inactivity_timeout: None,
        nodelay: true,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn small_writes_are_not_held_back() {
        assert!(super::client_config(&super::SshTimeouts::default()).nodelay);
    }
}
