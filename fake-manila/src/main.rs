//! `fake-manila`: serve Keystone v3 and Manila v2, each on its own port, backed by
//! fake-ceph, until SIGTERM.
//!
//! Two lines on stdout, once both listen: first Keystone's auth URL
//! (`http://127.0.0.1:PORT/v3`, what `OS_AUTH_URL` and CSI's `os-authURL` take), then
//! Manila's endpoint (`http://127.0.0.1:PORT`: its versions at `/`, the API at `/v2`
//! as the catalog says, `/metrics`, `/admin/faults`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use fake_manila::{
    AppState, CephConfig, CephIdentity, Config, Delays, Faults, IdentityConfig, Listeners, Secret,
    Version, parse_keyring,
};

/// A fake OpenStack Keystone v3 + Manila v2 (CephFS native) backed by fake-ceph. Prints
/// Keystone's auth URL, then Manila's URL, one per line.
#[derive(Debug, Parser)]
#[command(name = "fake-manila", version)]
struct Cli {
    /// Manila's address; port 0 picks a free one.
    #[arg(long, env = "FAKE_MANILA_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Keystone's address; port 0 picks a free one.
    #[arg(
        long,
        env = "FAKE_MANILA_KEYSTONE_LISTEN",
        default_value = "127.0.0.1:0"
    )]
    keystone_listen: SocketAddr,
    /// The URL clients reach Manila at (the catalog's `sharev2` entry is it + `/v2`);
    /// default `http://<--listen address>`.
    #[arg(long, env = "FAKE_MANILA_PUBLIC_URL")]
    public_url: Option<String>,
    /// The URL clients reach Keystone at (the auth URL is it + `/v3`); default
    /// `http://<--keystone-listen address>`.
    #[arg(long, env = "FAKE_MANILA_KEYSTONE_PUBLIC_URL")]
    keystone_public_url: Option<String>,
    /// fake-ceph's base URL.
    #[arg(long, env = "FAKE_MANILA_CEPH_URL")]
    ceph_url: String,
    /// A Ceph keyring holding the key of `--ceph-entity` (fake-ceph `--keyring-out`).
    #[arg(long, env = "FAKE_MANILA_CEPH_KEYRING")]
    ceph_keyring: Option<PathBuf>,
    /// The key of `--ceph-entity` (base64), instead of a keyring.
    #[arg(long, env = "FAKE_MANILA_CEPH_KEY", hide_env_values = true)]
    ceph_key: Option<String>,
    /// The cephx entity Manila acts as.
    #[arg(long, env = "FAKE_MANILA_CEPH_ENTITY", default_value = "client.admin")]
    ceph_entity: String,
    /// The CephFS file system (Manila's `cephfs_filesystem_name`).
    #[arg(long, env = "FAKE_MANILA_FS_NAME", default_value = "cephfs")]
    fs_name: String,
    /// The subvolume group shares go in (created at start); default Ceph's `_nogroup`.
    #[arg(long, env = "FAKE_MANILA_GROUP")]
    group: Option<String>,
    /// The name of the one share type (the manila CLI picks a type named `default`
    /// when none is given; CSI's StorageClass default is also `default`).
    #[arg(long, env = "FAKE_MANILA_SHARE_TYPE", default_value = "cephfstype")]
    share_type: String,
    /// Deadline of each Ceph call, in milliseconds.
    #[arg(long, env = "FAKE_MANILA_CEPH_TIMEOUT_MS", default_value_t = 30_000)]
    ceph_timeout_ms: u64,
    /// Users, projects and application credentials (JSON: `{"users": [{"name",
    /// "password", "project", "roles"}], "application_credentials": [...]}`); default
    /// demo/demo (project demo) and admin/admin (project admin, role admin).
    #[arg(long, env = "FAKE_MANILA_USERS")]
    users: Option<PathBuf>,
    /// The master seed for IDs and fault decisions, and for tokens too: with it a run can
    /// be replayed, tokens included. Without it tokens come from the OS's RNG (IDs and
    /// faults from seed 0).
    #[arg(long, env = "FAKE_MANILA_SEED")]
    seed: Option<u64>,
    /// Token lifetime in seconds.
    #[arg(long, env = "FAKE_MANILA_TOKEN_TTL_SECS", default_value_t = 3600)]
    token_ttl_secs: u64,
    /// Delay of every asynchronous transition step, in milliseconds (0 allowed).
    #[arg(long, env = "FAKE_MANILA_DELAY_MS", default_value_t = 500)]
    delay_ms: u64,
    /// Per-transition delays overriding `--delay-ms`: `create=MS`, `delete=MS`,
    /// `resize=MS`, `access=MS`, `snapshot=MS` (repeatable or comma-separated).
    #[arg(long = "delay", env = "FAKE_MANILA_DELAYS", value_delimiter = ',')]
    delays: Vec<String>,
    /// Default quotas overriding Manila's: `shares=N`, `gigabytes=N`, `snapshots=N`, ...
    /// (repeatable or comma-separated; -1 is unlimited).
    #[arg(long = "quota", env = "FAKE_MANILA_QUOTAS", value_delimiter = ',')]
    quotas: Vec<String>,
    /// The newest microversion advertised.
    #[arg(long, env = "FAKE_MANILA_MAX_VERSION", default_value = "2.99")]
    max_version: Version,
    /// Fault: latency added to every Manila request, in milliseconds.
    #[arg(long, env = "FAKE_MANILA_FAULT_LATENCY_MS", default_value_t = 0)]
    fault_latency_ms: u64,
    /// Fault: share of Manila requests answered 500/503.
    #[arg(long, env = "FAKE_MANILA_FAULT_ERROR_RATE", default_value_t = 0.0)]
    fault_error_rate: f64,
    /// Fault: share of new shares stuck in `creating`.
    #[arg(long, env = "FAKE_MANILA_FAULT_STUCK_CREATING", default_value_t = 0.0)]
    fault_stuck_creating: f64,
    /// Fault: share of new shares ending in `error`.
    #[arg(long, env = "FAKE_MANILA_FAULT_SHARE_ERROR", default_value_t = 0.0)]
    fault_share_error: f64,
    /// Fault: share of new access rules ending in `error`.
    #[arg(long, env = "FAKE_MANILA_FAULT_ACCESS_ERROR", default_value_t = 0.0)]
    fault_access_error: f64,
    /// How long a connection has to send a complete request head (new or kept alive),
    /// in milliseconds.
    #[arg(long, env = "FAKE_MANILA_HEADER_READ_TIMEOUT_MS",
          default_value_t = fake_ceph::service::ServeConfig::DEFAULT_HEADER_READ_TIMEOUT.as_millis() as u64)]
    header_read_timeout_ms: u64,
    /// How long a request body or a response may go without a byte moving, in
    /// milliseconds.
    #[arg(long, env = "FAKE_MANILA_IDLE_TIMEOUT_MS",
          default_value_t = fake_ceph::service::ServeConfig::DEFAULT_IDLE_TIMEOUT.as_millis() as u64)]
    idle_timeout_ms: u64,
    /// Open connections at most, per listener (Keystone, Manila); at the limit the one
    /// idle longest is closed.
    #[arg(long, env = "FAKE_MANILA_MAX_CONNECTIONS", default_value_t = fake_ceph::service::ServeConfig::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Log format.
    #[arg(long, env = "FAKE_MANILA_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn identity(cli: &Cli) -> anyhow::Result<CephIdentity> {
    if let Some(key) = &cli.ceph_key {
        return Ok(CephIdentity {
            entity: cli.ceph_entity.clone(),
            key: Secret::new(key.trim()),
        });
    }
    let Some(path) = &cli.ceph_keyring else {
        bail!(
            "no Ceph credentials: give --ceph-keyring FILE (fake-ceph --keyring-out writes one) or --ceph-key"
        );
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading keyring {}", path.display()))?;
    Ok(parse_keyring(&text, Some(&cli.ceph_entity))?)
}

fn delays(cli: &Cli) -> anyhow::Result<Delays> {
    let mut d = Delays::all(Duration::from_millis(cli.delay_ms));
    for spec in cli
        .delays
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        let (k, v) = spec
            .split_once('=')
            .with_context(|| format!("delay '{spec}' is not KIND=MS"))?;
        let ms: u64 = v
            .trim()
            .parse()
            .with_context(|| format!("delay '{spec}': not a number of milliseconds"))?;
        let slot = match k.trim() {
            "create" => &mut d.create,
            "delete" => &mut d.delete,
            "resize" => &mut d.resize,
            "access" => &mut d.access,
            "snapshot" => &mut d.snapshot,
            other => bail!("unknown delay '{other}'"),
        };
        *slot = Duration::from_millis(ms);
    }
    Ok(d)
}

fn config(cli: &Cli, keystone_url: String, manila_url: String) -> anyhow::Result<Config> {
    let ceph = CephConfig {
        url: cli.ceph_url.clone(),
        identity: identity(cli)?,
        fs_name: cli.fs_name.clone(),
        group: cli.group.clone().filter(|g| g != "_nogroup"),
        timeout: Duration::from_millis(cli.ceph_timeout_ms),
    };
    let mut c = Config::new(keystone_url, manila_url, ceph);
    if let Some(path) = &cli.users {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading users file {}", path.display()))?;
        c.identity = serde_json::from_str::<IdentityConfig>(&text)
            .with_context(|| format!("parsing users file {}", path.display()))?;
    }
    c.seed = cli.seed;
    c.share_type_name = cli.share_type.clone();
    c.token_ttl = Duration::from_secs(cli.token_ttl_secs);
    c.delays = delays(cli)?;
    fake_manila::config::parse_quota_overrides(&cli.quotas.join(","), &mut c.quotas)
        .map_err(anyhow::Error::msg)?;
    if cli.max_version < Version::MIN || cli.max_version > Version::MAX {
        bail!(
            "--max-version must be within [{}, {}]",
            Version::MIN,
            Version::MAX
        );
    }
    c.max_version = cli.max_version;
    c.faults = Faults {
        latency_ms: cli.fault_latency_ms,
        error_rate: cli.fault_error_rate,
        stuck_creating_rate: cli.fault_stuck_creating,
        share_error_rate: cli.fault_share_error,
        access_error_rate: cli.fault_access_error,
    };
    c.faults.validate().map_err(anyhow::Error::msg)?;
    Ok(c)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let listeners = Listeners::bind(cli.keystone_listen, cli.listen)
        .await
        .with_context(|| format!("binding {} and {}", cli.keystone_listen, cli.listen))?;
    let public = |given: &Option<String>, bound: String| {
        given
            .as_deref()
            .map_or(bound, |u| u.trim_end_matches('/').to_owned())
    };
    let keystone_url = public(&cli.keystone_public_url, listeners.keystone_url());
    let manila_url = public(&cli.public_url, listeners.manila_url());
    let config = config(&cli, keystone_url.clone(), manila_url.clone())?;
    let state = AppState::new(config).context("starting")?;
    if let Some(group) = &state.ceph().config().group {
        state
            .ceph()
            .command(
                true,
                serde_json::json!({"prefix": "fs subvolumegroup create", "vol_name": cli.fs_name, "group_name": group}),
            )
            .await
            .with_context(|| format!("creating subvolume group {group}"))?;
    }
    // Both lines in one write: a reader that stops after the first (and closes the pipe)
    // must not make the second fail.
    fake_ceph::service::announce(&format!("{keystone_url}/v3\n{manila_url}"))?;
    tracing::info!(
        keystone = %listeners.keystone_addr(),
        manila = %listeners.manila_addr(),
        ceph = %cli.ceph_url,
        "fake-manila serving"
    );
    let serve = fake_ceph::service::ServeConfig {
        header_read_timeout: Duration::from_millis(cli.header_read_timeout_ms),
        idle_timeout: Duration::from_millis(cli.idle_timeout_ms),
        max_connections: cli.max_connections,
        ..Default::default()
    };
    listeners
        .serve_with(state, serve, fake_ceph::service::shutdown())
        .await
        .context("serving")?;
    tracing::info!("fake-manila stopped");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.log_format == "json";
    fake_ceph::service::main("fake-manila", json, run(cli))
}
