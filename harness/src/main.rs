//! `harness`: the simulator, the CSI conformance bench and the load generator.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The trainride harness.
#[derive(Debug, Parser)]
#[command(name = "harness", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a CSI driver against the spec (csi-sanity's rules and more).
    Conformance(harness::conformance::ConformanceArgs),
    /// Drive one CSI RPC against an endpoint and report throughput and latency.
    Load(harness::load::LoadArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "harness: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = rt.block_on(async {
        match cli.command {
            Command::Conformance(args) => harness::conformance::run_conformance(args).await,
            Command::Load(args) => harness::load::run_load(args).await,
        }
    });
    match r {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "harness: {e:#}");
            ExitCode::from(2)
        }
    }
}
