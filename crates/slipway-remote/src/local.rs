//! Running scripts on the machine Slipway itself runs on (the "localhost" server).

use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::watch;

use crate::{Exit, LineSplitter, RemoteError, Stream, Transport, cancelled};

#[derive(Debug, Clone, Default)]
pub struct LocalTransport;

#[async_trait]
impl Transport for LocalTransport {
    async fn run_in_parts(
        &self,
        script: &str,
        mut rest: crate::Parts,
        output: &mut (dyn for<'a> FnMut(Stream, &'a str) + Send),
        mut cancel: watch::Receiver<bool>,
        idle: Duration,
    ) -> Result<Exit, RemoteError> {
        let mut child = Command::new("sh")
            .arg("-s")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so stopping it stops everything it started.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| RemoteError::Io(format!("cannot start sh: {e}")))?;
        let pid = child.id();
        // Written concurrently with reading: a long script whose first commands print a lot
        // would otherwise fill both pipes and stall.
        let mut stdin = child.stdin.take().expect("piped");
        let script_bytes = script.as_bytes().to_vec();
        let _feeder = crate::AbortOnDrop(tokio::spawn(async move {
            if stdin.write_all(&script_bytes).await.is_err() {
                return;
            }
            while let Some(part) = rest.recv().await {
                if stdin.write_all(part.as_bytes()).await.is_err() {
                    return;
                }
            }
            // Dropping stdin closes it: the end of the script.
        }));
        let (mut out, mut err) = (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
        let (mut out_lines, mut err_lines) = (LineSplitter::default(), LineSplitter::default());
        let (mut out_buf, mut err_buf) = ([0u8; 8192], [0u8; 8192]);
        let (mut out_open, mut err_open) = (true, true);
        let stop = |signal: &str| {
            if let Some(pid) = pid {
                // `--` so that the negative number (the process group) is not read as a signal.
                let _ = std::process::Command::new("kill").args(["-s", signal, "--", &format!("-{pid}")]).status();
            }
        };
        while out_open || err_open {
            tokio::select! {
                n = out.read(&mut out_buf), if out_open => match n {
                    Ok(0) | Err(_) => out_open = false,
                    Ok(n) => out_lines.push(&out_buf[..n], |l| output(Stream::Stdout, l)),
                },
                n = err.read(&mut err_buf), if err_open => match n {
                    Ok(0) | Err(_) => err_open = false,
                    Ok(n) => err_lines.push(&err_buf[..n], |l| output(Stream::Stderr, l)),
                },
                _ = cancelled(&mut cancel) => {
                    stop("KILL");
                    let _ = child.wait().await;
                    return Err(RemoteError::Cancelled);
                }
                _ = tokio::time::sleep(idle) => {
                    stop("KILL");
                    let _ = child.wait().await;
                    return Err(RemoteError::Timeout(idle));
                }
            }
        }
        out_lines.finish(|l| output(Stream::Stdout, l));
        err_lines.finish(|l| output(Stream::Stderr, l));
        let status = child.wait().await.map_err(|e| RemoteError::Io(e.to_string()))?;
        Ok(Exit { code: status.code().and_then(|c| u32::try_from(c).ok()) })
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
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(crate::script_then_input(script.len()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| RemoteError::Io(format!("cannot start sh: {e}")))?;
        let pid = child.id();
        let mut stdin = child.stdin.take().expect("piped");
        let script_bytes = script.as_bytes().to_vec();
        let _feeder = crate::AbortOnDrop(tokio::spawn(async move {
            if stdin.write_all(&script_bytes).await.is_ok()
                && let Some(mut input) = input
            {
                let _ = tokio::io::copy(&mut input, &mut stdin).await;
            }
            // Dropping stdin closes it: the end of input.
        }));
        let (mut out, mut err) = (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
        let mut err_lines = LineSplitter::default();
        let (mut out_buf, mut err_buf) = (vec![0u8; 64 * 1024], [0u8; 8192]);
        let (mut out_open, mut err_open) = (true, true);
        let stop = || {
            if let Some(pid) = pid {
                let _ = std::process::Command::new("kill").args(["-s", "KILL", "--", &format!("-{pid}")]).status();
            }
        };
        let mut failure = None;
        while (out_open || err_open) && failure.is_none() {
            tokio::select! {
                n = out.read(&mut out_buf), if out_open => match n {
                    Ok(0) | Err(_) => out_open = false,
                    Ok(n) => {
                        if let Err(why) = sink.write(&out_buf[..n]).await {
                            failure = Some(RemoteError::Sink(why));
                        }
                    }
                },
                n = err.read(&mut err_buf), if err_open => match n {
                    Ok(0) | Err(_) => err_open = false,
                    Ok(n) => err_lines.push(&err_buf[..n], |l| stderr(l)),
                },
                _ = cancelled(&mut cancel) => failure = Some(RemoteError::Cancelled),
                _ = tokio::time::sleep(idle) => failure = Some(RemoteError::Timeout(idle)),
            }
        }
        if let Some(failure) = failure {
            stop();
            let _ = child.wait().await;
            return Err(failure);
        }
        err_lines.finish(|l| stderr(l));
        let status = child.wait().await.map_err(|e| RemoteError::Io(e.to_string()))?;
        Ok(Exit { code: status.code().and_then(|c| u32::try_from(c).ok()) })
    }
}
