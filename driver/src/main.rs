//! `cephfs-csi`: the CephFS CSI driver.

// glibc's malloc serializes the node service's many small allocations on its arena
// locks; mimalloc gave the fake-mounter node cycle 27% more throughput (BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use driver::Driver;
use driver::config::{Backend, Config, Mode, MounterKind, defaults, parse_clusters};
use driver::mount::Mounter;
use driver::mount::fake::FakeMountMode;
use driver::server::{Endpoint, serve, serve_metrics};

/// A CSI driver for CephFS: Identity, Controller and Node services.
#[derive(Debug, Parser)]
#[command(name = "cephfs-csi", version)]
struct Cli {
    /// Where to serve CSI: unix:///path/csi.sock, /path/csi.sock or tcp://host:port.
    #[arg(long, env = "CSI_ENDPOINT", default_value = "unix:///csi/csi.sock")]
    endpoint: String,
    /// This node's ID (required in node and all modes).
    #[arg(long, env = "CSI_NODE_ID", default_value = "")]
    node_id: String,
    /// Which services to serve.
    #[arg(long, env = "CSI_MODE", value_enum, default_value_t = Mode::All)]
    mode: Mode,
    /// The CSI driver name.
    #[arg(long, env = "CSI_DRIVER_NAME", default_value = defaults::DRIVER_NAME)]
    driver_name: String,
    /// The cluster config: a JSON list of clusters (required with the cephfs back end;
    /// with manila it only maps monitors to clusters for mount options).
    #[arg(long, env = "CSI_CLUSTER_CONFIG")]
    cluster_config: Option<PathBuf>,
    /// What the controller provisions from: CephFS subvolumes, or Manila shares.
    #[arg(long, env = "CSI_BACKEND", value_enum, default_value_t = Backend::Cephfs)]
    backend: Backend,
    /// Seconds the Manila back end waits, within one RPC, for a share, rule or snapshot
    /// to settle (a retried RPC waits again).
    #[arg(long, env = "CSI_MANILA_WAIT", default_value_t = defaults::MANILA_WAIT_S)]
    manila_wait: u64,
    /// Seconds CreateVolume waits, within one RPC, for a clone (from a snapshot or a
    /// volume) to complete; a clone still pending then answers Aborted and the retry
    /// waits again. Capped, when the caller sets a deadline (the external-provisioner's
    /// --timeout), a fifth short of it, so the answer always arrives in time.
    #[arg(long, env = "CSI_CLONE_WAIT", default_value_t = defaults::CLONE_WAIT_S)]
    clone_wait: u64,
    /// The node's mounter.
    #[arg(long, env = "CSI_MOUNTER", value_enum, default_value_t = MounterKind::Kernel)]
    mounter: MounterKind,
    /// How the fake mounter binds: auto (bind mounts as root, else symlinks), bind, symlink.
    #[arg(long, env = "CSI_FAKE_MOUNT_MODE", value_enum, default_value_t = FakeMountMode::Auto)]
    fake_mount_mode: FakeMountMode,
    /// Most volumes this node may have staged (NodeGetInfo; 0 = no limit).
    #[arg(long, env = "CSI_MAX_VOLUMES_PER_NODE", default_value_t = 0)]
    max_volumes_per_node: i64,
    /// This node's topology, `key=value,...` (reported as `topology.<driver-name>/key`).
    #[arg(long, env = "CSI_NODE_TOPOLOGY", default_value = "")]
    topology: String,
    /// Advertise PUBLISH_UNPUBLISH_VOLUME (ControllerPublish/Unpublish).
    #[arg(long, env = "CSI_ATTACH_REQUIRED")]
    attach_required: bool,
    /// Serve Prometheus metrics on this address.
    #[arg(long, env = "CSI_METRICS_ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Log format.
    #[arg(long, env = "CSI_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Deadline of every Ceph call, in seconds.
    #[arg(long, env = "CSI_CEPH_TIMEOUT", default_value_t = defaults::CEPH_TIMEOUT_S)]
    ceph_timeout: u64,
    /// Deadline of every mount, in seconds.
    #[arg(long, env = "CSI_MOUNT_TIMEOUT", default_value_t = defaults::MOUNT_TIMEOUT_S)]
    mount_timeout: u64,
    /// Where the node keeps its mount records.
    #[arg(long, env = "CSI_STATE_DIR", default_value = defaults::STATE_DIR)]
    state_dir: PathBuf,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn mounters(cli: &Cli, timeout: Duration) -> Vec<Arc<dyn Mounter>> {
    use driver::mount::{fake, fuse, kernel};
    let mode = cli.fake_mount_mode;
    vec![
        Arc::new(kernel::KernelMounter::new().with_timeout(timeout)),
        Arc::new(fuse::FuseMounter::new(timeout)),
        Arc::new(fake::FakeMounter::new(cli.state_dir.clone(), mode)),
    ]
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let endpoint: Endpoint = cli.endpoint.parse()?;
    let backend = cli.backend;
    let clusters = match &cli.cluster_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            parse_clusters(&text)?
        }
        None if backend == Backend::Manila => Vec::new(),
        None => anyhow::bail!("--cluster-config is required with the cephfs back end"),
    };
    let mode = cli.mode;
    if mode.node() && cli.node_id.is_empty() {
        let name = clap::ValueEnum::to_possible_value(&mode)
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default();
        anyhow::bail!("--node-id is required in {name} mode");
    }
    let mut config = Config::new(&cli.driver_name, &cli.node_id, mode, clusters);
    config.mounter = cli.mounter;
    config.attach_required = cli.attach_required;
    config.backend = backend;
    config.manila_wait = Duration::from_secs(cli.manila_wait);
    config.clone_wait = Duration::from_secs(cli.clone_wait);
    if cli.max_volumes_per_node < 0 {
        anyhow::bail!("--max-volumes-per-node must not be negative");
    }
    config.max_volumes_per_node = cli.max_volumes_per_node;
    config.topology = driver::config::parse_topology(&cli.driver_name, &cli.topology)
        .map_err(|e| anyhow::anyhow!("--topology: {e}"))?;
    config.ceph_timeout = Duration::from_secs(cli.ceph_timeout);
    config.mount_timeout = Duration::from_secs(cli.mount_timeout);
    config.state_dir = cli.state_dir.clone();
    let driver = Arc::new(Driver::new(
        config,
        mounters(&cli, Duration::from_secs(cli.mount_timeout)),
    )?);
    if let Some(addr) = cli.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        tokio::spawn(serve_metrics(driver.clone(), listener));
    }
    tracing::info!(endpoint = %cli.endpoint, mode = ?cli.mode, node = %cli.node_id, "cephfs-csi serving");
    serve(driver, &endpoint, shutdown()).await?;
    tracing::info!("cephfs-csi stopped");
    Ok(())
}

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only on a terminal: a log file gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if cli.log_format == LogFormat::Json {
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
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "cephfs-csi failed");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags' defaults are the library's: a driver started with no flags runs with
    /// what `Config::new` gives an embedded one.
    #[test]
    fn the_flags_default_to_the_config_defaults() {
        let cli = Cli::try_parse_from(["cephfs-csi"]).unwrap();
        let config = Config::new(&cli.driver_name, "n", cli.mode, Vec::new());
        assert_eq!(config.driver_name, defaults::DRIVER_NAME);
        assert_eq!(cli.mode, Mode::All);
        assert_eq!(cli.backend, config.backend);
        assert_eq!(cli.mounter, config.mounter);
        assert_eq!(cli.fake_mount_mode, FakeMountMode::default());
        assert_eq!(Duration::from_secs(cli.manila_wait), config.manila_wait);
        assert_eq!(Duration::from_secs(cli.clone_wait), config.clone_wait);
        assert_eq!(Duration::from_secs(cli.ceph_timeout), config.ceph_timeout);
        assert_eq!(Duration::from_secs(cli.mount_timeout), config.mount_timeout);
        assert_eq!(cli.state_dir, config.state_dir);
        assert_eq!(cli.log_format, LogFormat::Text);
    }

    /// A value outside an enum is refused with the values allowed, never taken as the
    /// default.
    #[test]
    fn an_unknown_enum_value_is_refused() {
        for (flag, bad) in [
            ("--mode", "nodes"),
            ("--backend", "rbd"),
            ("--mounter", "nfs"),
            ("--fake-mount-mode", "copy"),
            ("--log-format", "xml"),
        ] {
            let e = Cli::try_parse_from(["cephfs-csi", flag, bad]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::InvalidValue, "{flag}");
            assert!(e.to_string().contains("possible values"), "{flag}: {e}");
        }
        let cli =
            Cli::try_parse_from(["cephfs-csi", "--mounter", "fuse", "--mode", "node"]).unwrap();
        assert_eq!((cli.mounter, cli.mode), (MounterKind::Fuse, Mode::Node));
    }
}
