//! `harness`: runs a scenario against the real driver and writes the reports; checks any
//! CSI driver's conformance; drives load at any CSI endpoint.

// The allocator the cephfs-csi binary uses.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use harness::params::Params;

#[derive(Debug, Parser)]
#[command(
    name = "harness",
    version,
    about = "The trainride cluster simulator, CSI conformance bench and load generator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a scenario (a file, or a built-in name) and writes summary.json, events.jsonl
    /// and report.md.
    Run {
        /// Scenario file or built-in name.
        #[arg(default_value = "idle-10k")]
        scenario: String,
        /// The master seed.
        #[arg(long, default_value_t = 1, env = "HARNESS_SEED")]
        seed: u64,
        /// Output directory (default: target/harness/<scenario>-<seed>/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Overrides a parameter: key=value (dotted keys, JSON values); repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Lists the built-in scenarios.
    List,
    /// Checks a CSI driver against the spec (csi-sanity's rules and more).
    Conformance(Box<harness::conformance::ConformanceArgs>),
    /// Drives one CSI RPC against an endpoint and reports throughput and latency.
    Load(harness::load::LoadArgs),
    /// Serves the embedded back ends (fake-ceph, fake-manila with `--backend manila`),
    /// the driver's controller and N node plugins; prints their endpoints, credentials
    /// and a cluster config as JSON on stdout; stops on SIGINT or SIGTERM.
    Up(harness::up::UpArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HARNESS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln_error(&format!("harness: {e:#}"));
            ExitCode::from(2)
        }
    }
}

#[allow(clippy::print_stderr)]
fn eprintln_error(msg: &str) {
    eprintln!("{msg}");
}

/// Ctrl-C or SIGTERM.
async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// SIGINT or SIGTERM, with both handlers installed now (a signal arriving before the
/// future is polled is not lost, nor does it kill the process).
fn stop_signals() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// A spinner on a terminal; nothing when stdout is not one.
fn progress_bar() -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new_spinner();
    b.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(b)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Conformance(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(harness::conformance::run_conformance(*args)),
        Command::Load(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(harness::load::run_load(args)),
        Command::Up(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let leaks = rt.block_on(async {
                // Handlers in place before the endpoints are printed: a client may stop
                // us as soon as it has read them.
                let stop = stop_signals()?;
                let mut stdout = std::io::stdout();
                harness::up::up(&args, &mut stdout, stop).await
            })?;
            if !leaks.none() {
                // Volumes the user left behind went with the fakes; say so.
                eprintln_error(&format!(
                    "harness up: stopped; removed what was left: {leaks:?}"
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::List => {
            for (name, _) in harness::params::BUILTIN {
                let p = Params::load(name)?;
                println!("{name:24} {}", p.description);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            scenario,
            seed,
            out,
            set,
        } => {
            let mut p = Params::load(&scenario)?;
            for s in &set {
                p = p.set(s)?;
            }
            let out = out.unwrap_or_else(|| {
                PathBuf::from("target/harness").join(format!("{}-{seed}", p.name))
            });
            println!(
                "harness: {} (seed {seed}): s={} r={} nodes={} attachRequired={} backend={} -> {}",
                p.name,
                p.shares,
                p.replicas,
                p.node_count(),
                p.attach_required,
                p.backend,
                out.display()
            );
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let bar = progress_bar();
            let progress = bar.clone().map(|b| {
                Box::new(move |i: &harness::sim::Progress| {
                    b.set_message(format!(
                        "{:?}: {} / {} Running, simulated {:.0} s, {} events",
                        i.phase,
                        i.running,
                        i.replicas,
                        i.sim.secs(),
                        i.events
                    ));
                    b.tick();
                }) as harness::sim::ProgressFn
            });
            // On Ctrl-C or SIGTERM the run is dropped: its temporary directory (node state,
            // fake-ceph's tree, sockets) goes with it.
            let r = rt.block_on(async {
                tokio::select! {
                    r = harness::run_with_progress(
                        p,
                        seed,
                        harness::BackendKind::Real,
                        harness::Output::Dir(out.clone()),
                        progress,
                    ) => Some(r),
                    () = interrupted() => None,
                }
            });
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let Some(r) = r else {
                eprintln_error("harness: interrupted");
                return Ok(ExitCode::from(130));
            };
            let r = r?;
            println!("{}", r.summary.table());
            println!("reports: {}", out.display());
            Ok(if r.summary.clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
