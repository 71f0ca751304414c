//! `fake-ceph`: serve a fake Ceph cluster over HTTP until SIGTERM.
//!
//! The first line on stdout is the base URL (`http://127.0.0.1:PORT`). Without `--seed`,
//! keys and session tokens come from the OS's random source and everything else from a
//! seed drawn from it; `--seed N` reproduces a run, secrets included. With `--data-dir`,
//! the cluster's metadata is committed there before each command is answered, and a
//! start on a directory that holds it recovers the cluster (same fsid, keys, subvolumes,
//! omap), so a killed fake-ceph can be started again with the same command line.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use fake_ceph::{Cluster, Config, FaultSpec, Faults, Metadata, SecretSource};
use rand::TryRng;

/// A fake Ceph cluster: mon/mgr command JSON with cephx, MDS sessions, RADOS omap, and a
/// CephFS tree in a local directory.
#[derive(Debug, Parser)]
#[command(name = "fake-ceph", version)]
struct Cli {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, env = "FAKE_CEPH_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Directory for the CephFS tree and the metadata store (`meta/metadata.redb`): every
    /// acknowledged command is committed there, and a later start on the same directory
    /// recovers the cluster. It must be empty or hold a store. Default: a temporary
    /// directory removed on exit, with the metadata in memory only.
    #[arg(long, env = "FAKE_CEPH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The file system name.
    #[arg(long, env = "FAKE_CEPH_FS_NAME", default_value = "cephfs")]
    fs_name: String,
    /// Write a Ceph keyring for client.admin here (mode 0600).
    #[arg(long, env = "FAKE_CEPH_KEYRING_OUT")]
    keyring_out: Option<PathBuf>,
    /// Use this client.admin key (base64) instead of a generated one.
    #[arg(long, env = "FAKE_CEPH_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// The master seed for keys, session tokens, UUIDs and fault decisions, to reproduce
    /// a run. Without it, keys and tokens come from the OS's random source and the rest
    /// from a seed drawn from it, so no two starts share a secret.
    #[arg(long, env = "FAKE_CEPH_SEED")]
    seed: Option<u64>,
    /// Monitor addresses to report (repeatable).
    #[arg(
        long = "mon-addr",
        env = "FAKE_CEPH_MON_ADDRS",
        value_delimiter = ',',
        default_value = "127.0.0.1:6789"
    )]
    mon_addrs: Vec<String>,
    /// Raw capacity in bytes reported by `df` and unquoted statfs.
    #[arg(long, env = "FAKE_CEPH_CAPACITY", default_value_t = 1 << 40)]
    capacity: u64,
    /// mgr/volumes/max_concurrent_clones.
    #[arg(long, env = "FAKE_CEPH_MAX_CONCURRENT_CLONES", default_value_t = 4)]
    max_concurrent_clones: usize,
    /// How long a pending clone waits for a cloner thread, in milliseconds.
    #[arg(long, env = "FAKE_CEPH_CLONE_PICKUP_MS", default_value_t = 20)]
    clone_pickup_ms: u64,
    /// How long an in-progress clone takes, in milliseconds.
    #[arg(long, env = "FAKE_CEPH_CLONE_TIME_MS", default_value_t = 500)]
    clone_time_ms: u64,
    /// A fault rule (repeatable): `latency:<prefix>=<ms>`, `error:<prefix>=<rate>[:<errno>]`,
    /// `hang:<prefix>`. Prefixes: `*`, `fs subvolume *`, an exact command, `client <op>`,
    /// `clone`.
    #[arg(long = "fault", env = "FAKE_CEPH_FAULTS", value_delimiter = ';')]
    faults: Vec<FaultSpec>,
    /// Start with the MDS down.
    #[arg(long, env = "FAKE_CEPH_MDS_DOWN")]
    mds_down: bool,
    /// How long a connection has to send a complete request head (new or kept alive),
    /// in milliseconds.
    #[arg(long, env = "FAKE_CEPH_HEADER_READ_TIMEOUT_MS",
          default_value_t = fake_ceph::service::ServeConfig::DEFAULT_HEADER_READ_TIMEOUT.as_millis() as u64)]
    header_read_timeout_ms: u64,
    /// How long a request body or a response may go without a byte moving, in
    /// milliseconds.
    #[arg(long, env = "FAKE_CEPH_IDLE_TIMEOUT_MS",
          default_value_t = fake_ceph::service::ServeConfig::DEFAULT_IDLE_TIMEOUT.as_millis() as u64)]
    idle_timeout_ms: u64,
    /// Open connections at most; at the limit the one idle longest is closed.
    #[arg(long, env = "FAKE_CEPH_MAX_CONNECTIONS", default_value_t = fake_ceph::service::ServeConfig::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Log format.
    #[arg(long, env = "FAKE_CEPH_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn config(cli: &Cli) -> anyhow::Result<Config> {
    let (seed, secrets) = match cli.seed {
        Some(seed) => (seed, SecretSource::Seed),
        None => {
            let seed = rand::rngs::SysRng
                .try_next_u64()
                .context("drawing a seed from the OS")?;
            (seed, SecretSource::Os)
        }
    };
    let mut c = Config {
        fs_name: cli.fs_name.clone(),
        data_dir: cli.data_dir.clone(),
        // A data dir given outlives the process: its metadata must too.
        metadata: if cli.data_dir.is_some() {
            Metadata::Durable
        } else {
            Metadata::InMemory
        },
        seed,
        secrets,
        mon_addrs: cli.mon_addrs.clone(),
        admin_key: cli.admin_key.clone(),
        capacity_bytes: cli.capacity,
        faults: Faults {
            rules: cli.faults.iter().map(|f| f.0.clone()).collect(),
            mds_down: cli.mds_down,
        },
        ..Config::default()
    };
    c.volumes.max_concurrent_clones = cli.max_concurrent_clones;
    c.volumes.clone_time = Duration::from_millis(cli.clone_time_ms);
    c.volumes.clone_pickup = Duration::from_millis(cli.clone_pickup_ms);
    Ok(c)
}

fn write_keyring(path: &PathBuf, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing keyring {}", path.display()))?;
    // A keyring left by an earlier start may have other permissions.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let cluster = Cluster::new(config(&cli)?).context("starting the cluster")?;
    if let Some(path) = &cli.keyring_out {
        let text = cluster
            .keyring("client.admin")
            .context("client.admin is missing")?;
        write_keyring(path, &text)?;
    }
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("binding {}", cli.listen))?;
    let addr = listener.local_addr()?;
    fake_ceph::service::announce(&format!("http://{addr}"))?;
    tracing::info!(%addr, data_dir = %cluster.data_dir().display(), fs = %cli.fs_name, "fake-ceph serving");
    let serve = fake_ceph::service::ServeConfig {
        header_read_timeout: Duration::from_millis(cli.header_read_timeout_ms),
        idle_timeout: Duration::from_millis(cli.idle_timeout_ms),
        max_connections: cli.max_connections,
        ..Default::default()
    };
    fake_ceph::service::serve(
        listener,
        fake_ceph::router(cluster.clone()),
        serve,
        fake_ceph::service::shutdown(),
    )
    .await
    .context("serving")?;
    tracing::info!("fake-ceph stopped");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.log_format == "json";
    fake_ceph::service::main("fake-ceph", json, run(cli))
}
