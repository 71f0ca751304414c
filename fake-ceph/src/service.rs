//! What the fake services' binaries (`fake-ceph`, `fake-manila`) share: logging to
//! stderr, the URL as the first line on stdout, serving until SIGTERM or Ctrl-C.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// Sets up logging (stderr; `RUST_LOG`, default `info`; JSON lines when `json`; colours
/// only when stderr is a terminal, so log files hold plain text), runs
/// `run` on a new multi-threaded runtime and turns its outcome into the exit code, with
/// the error logged under `name`.
pub fn main<F>(name: &str, json: bool, run: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<()>>,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "{name} failed");
            ExitCode::FAILURE
        }
    }
}

/// Prints the service's URL as a line of its own on stdout, flushed, so that whoever
/// started the process can read where it listens. `url` may be several lines: they go
/// out in one write, so a reader that stops after the first line (and closes the pipe)
/// cannot make a later one fail with EPIPE.
pub fn announce(url: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(format!("{url}\n").as_bytes())?;
    out.flush()
}

/// Resolves on SIGTERM or Ctrl-C (never, if the handler cannot be installed).
pub async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
