//! Reaching a server: run a script there and stream its output, over SSH (russh) or on the
//! machine Slipway runs on. Scripts are built from reviewed templates in which every user value
//! is a validated newtype passed through `slipway_core::shell::quote`; this crate only carries
//! them.

#[cfg(feature = "testing")]
pub mod acme_testing;
mod local;
mod ssh;
#[cfg(feature = "testing")]
pub mod testing;

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

pub use local::LocalTransport;
pub use ssh::{SshConnection, SshKeypair, SshTarget, SshTimeouts, fingerprint};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// How a script ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The script's exit status; `None` when it was ended by a signal.
    pub code: Option<u32>,
}

impl Exit {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error(
        "the server's host key changed (pinned {expected}, presented {presented}); refusing to connect. \
         If the server was reinstalled, accept the new key through the API."
    )]
    HostKeyMismatch {
        expected: String,
        presented: String,
        /// The presented key in OpenSSH form, for an admin to accept.
        presented_key: String,
    },
    #[error("the server refused Slipway's key for user {user}; authorise the public key shown in the API")]
    AuthenticationFailed { user: String },
    #[error("no output and no exit within {0:?}; the command was stopped")]
    Timeout(Duration),
    #[error("the connection dropped: {0}")]
    Disconnected(String),
    #[error("stopped because it was cancelled")]
    Cancelled,
    #[error("{0}")]
    Io(String),
    /// Where a streamed command's output went refused it (an upload failed); the command was
    /// stopped.
    #[error("{0}")]
    Sink(String),
}

/// Where a streamed command's standard output goes, chunk by chunk (an upload, a checksum).
#[async_trait]
pub trait ByteSink: Send {
    /// Takes the next chunk. An error stops the command: it is killed, and the run fails with
    /// [`RemoteError::Sink`] carrying the error.
    async fn write(&mut self, chunk: &[u8]) -> Result<(), String>;
}

/// A sink that drops what it is given (a command whose output does not matter).
#[derive(Debug, Default)]
pub struct Discard;

#[async_trait]
impl ByteSink for Discard {
    async fn write(&mut self, _: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

/// Bytes a streamed command reads on its standard input, after its script.
pub type ByteSource = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// The shell line that reads a script of `len` bytes from standard input and runs it, leaving
/// the rest of standard input to the script (`dd bs=1` reads no byte past the script; the
/// script text stays off every command line, as it may hold secrets).
pub(crate) fn script_then_input(len: usize) -> String {
    format!("script=$(dd bs=1 count={len} 2>/dev/null); eval \"$script\"")
}

/// The later parts of a script run in parts (see [`Transport::run_in_parts`]); the script's
/// standard input ends when the sender is dropped.
pub type Parts = tokio::sync::mpsc::UnboundedReceiver<String>;

/// A task that ends with its owner: the writer of a script's input stops when the script's
/// run returns, however it returns.
pub(crate) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where scripts run.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Runs `script` with `sh -s`, calling `output` for every line as it arrives. Stops the
    /// script (and reports so) when `cancel` turns true or when nothing happens for `idle`.
    async fn run(
        &self,
        script: &str,
        output: &mut (dyn for<'a> FnMut(Stream, &'a str) + Send),
        cancel: watch::Receiver<bool>,
        idle: Duration,
    ) -> Result<Exit, RemoteError> {
        let (_, no_more) = tokio::sync::mpsc::unbounded_channel();
        self.run_in_parts(script, no_more, output, cancel, idle).await
    }

    /// [`Transport::run`] for a script whose text arrives in parts: `first` at once, then each
    /// part received from `rest` as it comes, run by the same shell after what came before (so
    /// with its variables and functions), until `rest` closes. The shell reads its script from
    /// standard input, so one that has run what it was given waits for the next part: a caller
    /// can decide what comes next from what the script printed, without a new session. That
    /// wait counts towards `idle`; a part sent after the script ended is dropped.
    async fn run_in_parts(
        &self,
        first: &str,
        rest: Parts,
        output: &mut (dyn for<'a> FnMut(Stream, &'a str) + Send),
        cancel: watch::Receiver<bool>,
        idle: Duration,
    ) -> Result<Exit, RemoteError>;

    /// Runs `script` with its standard output as bytes: each chunk goes to `sink` as it arrives,
    /// and the next is read only once the sink has taken it (a slow upload slows the command,
    /// memory stays flat). Its stderr lines go to `stderr`. With `input`, the script's standard
    /// input continues after the script with those bytes (`cat > file` in it receives them).
    /// Cancellation and the idle limit work as in [`Transport::run`].
    async fn stream(
        &self,
        script: &str,
        input: Option<ByteSource>,
        sink: &mut dyn ByteSink,
        stderr: &mut (dyn for<'a> FnMut(&'a str) + Send),
        cancel: watch::Receiver<bool>,
        idle: Duration,
    ) -> Result<Exit, RemoteError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_bounded() {
        let mut split = LineSplitter::default();
        let mut lines = Vec::new();
        split.push(b"one\ntw", |l| lines.push(l.to_string()));
        split.push(b"o\r\nthree", |l| lines.push(l.to_string()));
        split.finish(|l| lines.push(l.to_string()));
        assert_eq!(lines, ["one", "two", "three"]);
        let mut lines = Vec::new();
        let endless = vec![b'x'; MAX_LINE_BYTES * 3 + 5];
        split.push(&endless, |l| lines.push(l.len()));
        assert_eq!(lines, [MAX_LINE_BYTES; 3]);
        assert!(split.pending.len() < MAX_LINE_BYTES);
    }
}

/// Resolves when cancellation is asked for. A sender that is gone can no longer ask, so that
/// never counts as a cancellation.
pub(crate) async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Longest line kept whole; longer output is split, so a remote that never sends a newline
/// cannot make Slipway hold unbounded memory.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Splits a byte stream into lines as chunks arrive (lossy UTF-8), keeping partial lines.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    pub fn push(&mut self, data: &[u8], mut emit: impl FnMut(&str)) {
        self.pending.extend_from_slice(data);
        while let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            for piece in line[..line.len() - 1].chunks(MAX_LINE_BYTES) {
                emit(String::from_utf8_lossy(piece).trim_end_matches('\r'));
            }
        }
        while self.pending.len() >= MAX_LINE_BYTES {
            let piece: Vec<u8> = self.pending.drain(..MAX_LINE_BYTES).collect();
            emit(&String::from_utf8_lossy(&piece));
        }
    }

    pub fn finish(&mut self, mut emit: impl FnMut(&str)) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            emit(&String::from_utf8_lossy(&rest));
        }
    }
}
