//! The CSI conformance bench: every spec of csi-sanity v5.6.0, asserting what it
//! asserts, grouped as csi-sanity groups them, plus rules it does not check
//! (concurrency, idempotency of every call, restarts, path handling, every missing
//! field, pagination, capacity, error codes and volume condition). It talks to any
//! CSI endpoint; nothing in it knows our driver.
//!
//! Start reading at [`run_conformance`]; the checks are in [`checks`], one file
//! per group, each check an `async fn(Ctx) -> Outcome` gated on capabilities the
//! way csi-sanity gates its specs, and each of csi-sanity's carrying that spec's
//! name. Each check runs with fresh scratch directories and its own list of
//! created objects, which the runner undoes afterwards whatever the outcome (the
//! way csi-sanity's cleanup does for its specs). [`compare`] lines a run up with
//! csi-sanity's JUnit report. The CSI-client toolkit it shares with the load
//! generator (dialing, params and secrets files, request builders) is
//! [`crate::client`].

pub(crate) mod checks;
pub(crate) mod compare;
pub(crate) mod context;
pub(crate) mod paths;
pub mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use driver::csi::v1::controller_client::ControllerClient;
use driver::csi::v1::group_controller_client::GroupControllerClient;
use driver::csi::v1::identity_client::IdentityClient;
use driver::csi::v1::node_client::NodeClient;

use self::context::{Caps, Ctx, Shared, Verdict};
use self::paths::{PathHooks, Scratch};
pub use self::report::{CheckResult, Report, Status};
use crate::client::endpoint::Channels;
use crate::client::input::{Secrets, load_params_or_empty};
pub use crate::client::request::AccessType;

/// csi-sanity's default volume size: 10 GiB.
pub const DEFAULT_VOLUME_SIZE: i64 = 10 * 1024 * 1024 * 1024;

/// `harness conformance`: check a CSI driver against the spec.
#[derive(Debug, Clone, clap::Args)]
pub struct ConformanceArgs {
    /// The driver's endpoint: unix:///path.sock, /path.sock, dns:///host:port or tcp://host:port
    /// (required unless --list).
    #[arg(
        long,
        env = "CSI_ENDPOINT",
        default_value = "",
        hide_default_value = true
    )]
    pub endpoint: String,
    /// A separate endpoint for the Controller (and GroupController) service.
    #[arg(long, env = "CSI_CONTROLLER_ENDPOINT")]
    pub controller_endpoint: Option<String>,
    /// CreateVolume parameters: flat YAML `key: value` (csi-sanity's shape) or a JSON object.
    #[arg(long)]
    pub params: Option<PathBuf>,
    /// CreateSnapshot parameters, same format.
    #[arg(long)]
    pub snapshot_params: Option<PathBuf>,
    /// Mutable parameters (ControllerModifyVolume / volume attribute class), same format.
    #[arg(long)]
    pub mutable_params: Option<PathBuf>,
    /// Secrets: csi-sanity's YAML with per-RPC maps (`CreateVolumeSecret:` then indented
    /// `key: value`), or the same as JSON.
    #[arg(long)]
    pub secrets: Option<PathBuf>,
    /// Where the bench makes, per check, the parent directory of NodePublish's
    /// target path (default: a new directory in $TMPDIR, removed at the end).
    #[arg(long)]
    pub mount_dir: Option<PathBuf>,
    /// Where the bench makes, per check, the NodeStage staging path (default: as --mount-dir).
    #[arg(long)]
    pub staging_dir: Option<PathBuf>,
    /// A command that makes the parent of the target paths, for a driver in another
    /// mount namespace or container (csi-sanity's --csi.createmountpathcmd): it gets the
    /// suggested path (under --mount-dir) as its argument and prints the path it made.
    #[arg(long)]
    pub create_target_cmd: Option<String>,
    /// A command that makes the staging path (csi-sanity's --csi.createstagingpathcmd):
    /// it gets the suggested path and prints the path it made.
    #[arg(long)]
    pub create_staging_cmd: Option<String>,
    /// A command that removes the parent of the target paths, given its path
    /// (csi-sanity's --csi.removemountpathcmd).
    #[arg(long)]
    pub remove_target_cmd: Option<String>,
    /// A command that removes the staging path, given its path (csi-sanity's
    /// --csi.removestagingpathcmd).
    #[arg(long)]
    pub remove_staging_cmd: Option<String>,
    /// A command that prints what is at the path it is given: file, directory,
    /// not_found or other (csi-sanity's --csi.checkpathcmd). Without it, paths made by
    /// --create-target-cmd are not checked and the checks that need them are skipped.
    #[arg(long)]
    pub check_path_cmd: Option<String>,
    /// Deadline of each path command, seconds.
    #[arg(long, default_value_t = 10)]
    pub path_cmd_timeout: u64,
    /// The access type of every volume capability the bench sends
    /// (csi-sanity's --csi.testvolumeaccesstype).
    #[arg(long, value_enum, default_value_t = AccessType::Mount)]
    pub access_type: AccessType,
    /// Write a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Run only the checks whose `Group › name` matches this regex.
    #[arg(long)]
    pub filter: Option<String>,
    /// Skip the checks whose `Group › name` matches this regex.
    #[arg(long)]
    pub skip: Option<String>,
    /// A shell command that restarts the driver (enables the restart checks).
    #[arg(long)]
    pub restart_cmd: Option<String>,
    /// How long a call the bench makes on its own is retried while it answers Aborted
    /// (an operation is pending; a CO retries), in seconds. The default, 0, fails on
    /// the first Aborted, as csi-sanity does; a check that passes only thanks to
    /// retries says so ("passed after N retries") in the table and the JUnit report.
    #[arg(long, default_value_t = 0)]
    pub aborted_retry: u64,
    /// How long the cleanup after a check repeats a call that answers Aborted, in
    /// seconds, so that what a check left pending (a clone still being made) is
    /// removed all the same. These retries decide nothing and are not counted; the
    /// calls of csi-sanity's own cleanup, which do decide its specs, follow
    /// --aborted-retry.
    #[arg(long, default_value_t = 60)]
    pub cleanup_retry: u64,
    /// How long to wait for Probe to answer after --restart-cmd, in seconds.
    #[arg(long, default_value_t = 60)]
    pub restart_timeout: u64,
    /// Size of created volumes, bytes (csi-sanity's --csi.testvolumesize).
    #[arg(long, default_value_t = DEFAULT_VOLUME_SIZE)]
    pub volume_size: i64,
    /// Target size of the expansion checks, bytes (default: volume size + 1 GiB).
    #[arg(long)]
    pub expand_size: Option<i64>,
    /// Parallel calls in the concurrency checks.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// How often the idempotency checks repeat each call (csi-sanity: 10).
    #[arg(long, default_value_t = 10)]
    pub idempotent_count: usize,
    /// Run the "max attach limit" check (csi-sanity's --csi.testnodevolumeattachlimit).
    #[arg(long)]
    pub test_node_volume_attach_limit: bool,
    /// Deadline of every call, seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Deadline of every check, seconds.
    #[arg(long, default_value_t = 300)]
    pub check_timeout: u64,
    /// csi-sanity's JUnit report (`--ginkgo.junit-report`) of a run against the same
    /// driver configuration: after the run, print every csi-sanity spec with both
    /// outcomes and the disagreements; the exit status is then the comparison's
    /// (non-zero on any disagreement or csi-sanity spec without a bench result).
    #[arg(long, value_name = "FILE")]
    pub compare_junit: Option<PathBuf>,
    /// List the checks and exit.
    #[arg(long)]
    pub list: bool,
}

impl ConformanceArgs {
    /// Arguments with every default, for `endpoint`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            controller_endpoint: None,
            params: None,
            snapshot_params: None,
            mutable_params: None,
            secrets: None,
            mount_dir: None,
            staging_dir: None,
            create_target_cmd: None,
            create_staging_cmd: None,
            remove_target_cmd: None,
            remove_staging_cmd: None,
            check_path_cmd: None,
            path_cmd_timeout: 10,
            access_type: AccessType::Mount,
            junit: None,
            filter: None,
            skip: None,
            restart_cmd: None,
            restart_timeout: 60,
            aborted_retry: 0,
            cleanup_retry: 60,
            volume_size: DEFAULT_VOLUME_SIZE,
            expand_size: None,
            concurrency: 8,
            idempotent_count: 10,
            test_node_volume_attach_limit: false,
            timeout: 60,
            check_timeout: 300,
            compare_junit: None,
            list: false,
        }
    }
}

/// Runs the bench, prints the tables, writes JUnit if asked; non-zero exit on any failure.
pub async fn run_conformance(args: ConformanceArgs) -> anyhow::Result<ExitCode> {
    if args.list {
        for c in checks::all() {
            match c.spec {
                Some(s) if s.pending => println!(
                    "{} › {}  [+] (csi-sanity's pending spec: {})",
                    c.group.name(),
                    c.name,
                    s.name
                ),
                Some(s) => println!("{} › {}  (csi-sanity: {})", c.group.name(), c.name, s.name),
                None => println!("{} › {}  [+]", c.group.name(), c.name),
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Read csi-sanity's report first: a bad file should not cost a run.
    let sanity = match &args.compare_junit {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(
                compare::parse_junit(&text)
                    .with_context(|| format!("reading csi-sanity's report {}", path.display()))?,
            )
        }
        None => None,
    };
    let junit = args.junit.clone();
    let report = conformance(args).await?;
    print!("{}", report.table());
    if let Some(path) = junit {
        std::fs::write(&path, report.junit())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(cases) = sanity {
        let c = compare::compare(&cases, &report, &checks::all());
        print!("{}", c.table());
        return Ok(if c.ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    Ok(if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs the selected checks and returns their results (no printing).
pub async fn conformance(args: ConformanceArgs) -> anyhow::Result<Report> {
    if args.endpoint.is_empty() {
        anyhow::bail!("--endpoint is required");
    }
    let timeout = Duration::from_secs(args.timeout);
    let channels = Channels::connect(&args.endpoint, args.controller_endpoint.as_deref(), timeout)?;
    let filter = args
        .filter
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .context("--filter")?;
    let skip_re = args
        .skip
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .context("--skip")?;
    let mut shared = shared_of(&args, channels)?;
    shared.caps = Caps::discover(&shared).await;
    let shared = Arc::new(shared);

    // The bases are made here, unless a hook makes the paths under them (somewhere
    // this process may not see; the hook makes missing parents).
    let hooks = &shared.paths;
    let (mount_remote, staging_remote) = (
        hooks.is_remote(Scratch::Target),
        hooks.is_remote(Scratch::Staging),
    );
    let (mount_base, made_mount_base) = base_dir(args.mount_dir.as_deref(), mount_remote)?;
    let (staging_base, made_staging_base) = match &args.staging_dir {
        Some(d) => base_dir(Some(d), staging_remote)?,
        None if mount_remote != staging_remote => base_dir(None, staging_remote)?,
        None => (mount_base.clone(), false),
    };

    let mut report = Report::default();
    let started = Instant::now();
    for (i, check) in checks::all().into_iter().enumerate() {
        let full = format!("{} › {}", check.group.name(), check.name);
        if filter.as_ref().is_some_and(|f| !f.is_match(&full))
            || skip_re.as_ref().is_some_and(|f| f.is_match(&full))
        {
            continue;
        }
        let t0 = Instant::now();
        let mut cleanup = Vec::new();
        let mut cleanup_failed = Vec::new();
        let mut retries = 0;
        let outcome =
            match scratch(hooks, &mount_base, &staging_base, i).await {
                Err((e, made)) => {
                    // A failing hook fails this check; what was made is removed.
                    for (s, p) in made {
                        cleanup.extend(hooks.remove(s, &p).await);
                    }
                    Err(Verdict::Fail(format!("setting up the check's paths: {e}")))
                }
                Ok((mount_parent, staging)) => {
                    let cx = Ctx::new(shared.clone(), mount_parent.clone(), staging.clone());
                    let fut = (check.run)(cx.clone());
                    let outcome =
                        match tokio::time::timeout(Duration::from_secs(args.check_timeout), fut)
                            .await
                        {
                            Ok(o) => o,
                            Err(_) => Err(Verdict::Fail(format!(
                                "did not finish within {} s",
                                args.check_timeout
                            ))),
                        };
                    let undone = cx.cleanup(check.cleanup_style()).await;
                    cleanup_failed = undone.failed;
                    cleanup.extend(undone.leftovers);
                    cleanup.extend(hooks.remove(Scratch::Target, &mount_parent).await);
                    cleanup.extend(hooks.remove(Scratch::Staging, &staging).await);
                    retries = cx.retries();
                    outcome
                }
            };
        let status = status_of(outcome, &cleanup_failed);
        report.results.push(CheckResult {
            group: check.group,
            name: check.name.to_owned(),
            sanity: check.sanity(),
            spec: check.spec,
            status,
            retries,
            cleanup,
            elapsed: t0.elapsed(),
        });
    }
    report.elapsed = started.elapsed();
    if made_mount_base {
        report
            .leftovers
            .extend(crate::client::scratch::remove_scratch(&mount_base));
    }
    if made_staging_base {
        report
            .leftovers
            .extend(crate::client::scratch::remove_scratch(&staging_base));
    }
    Ok(report)
}

/// Everything the bench was told (the capabilities not asked yet).
fn shared_of(args: &ConformanceArgs, channels: Channels) -> anyhow::Result<Shared> {
    Ok(Shared {
        identity: IdentityClient::new(channels.node.clone()),
        identity_ctrl: channels
            .split
            .then(|| IdentityClient::new(channels.controller.clone())),
        controller: ControllerClient::new(channels.controller.clone()),
        group: GroupControllerClient::new(channels.controller),
        node: NodeClient::new(channels.node),
        params: load_params_or_empty(args.params.as_deref())?,
        snapshot_params: load_params_or_empty(args.snapshot_params.as_deref())?,
        mutable_params: load_params_or_empty(args.mutable_params.as_deref())?,
        secrets: Secrets::load_or_empty(args.secrets.as_deref())?,
        volume_size: args.volume_size,
        expand_size: args
            .expand_size
            .unwrap_or(args.volume_size + 1024 * 1024 * 1024),
        concurrency: args.concurrency.max(2),
        idempotent_count: args.idempotent_count.max(1),
        restart_cmd: args.restart_cmd.clone(),
        restart_timeout: Duration::from_secs(args.restart_timeout),
        aborted_retry: Duration::from_secs(args.aborted_retry),
        cleanup_retry: Duration::from_secs(args.cleanup_retry),
        attach_limit: args.test_node_volume_attach_limit,
        access_type: args.access_type,
        paths: PathHooks {
            create_target: args.create_target_cmd.clone(),
            create_staging: args.create_staging_cmd.clone(),
            remove_target: args.remove_target_cmd.clone(),
            remove_staging: args.remove_staging_cmd.clone(),
            check_path: args.check_path_cmd.clone(),
            timeout: Duration::from_secs(args.path_cmd_timeout),
        },
        caps: Caps {
            plugin: Err(String::new()),
            plugin_ctrl: Err(String::new()),
            controller: Err(String::new()),
            node: Err(String::new()),
            group: Err(String::new()),
            node_info: Err(String::new()),
        },
    })
}

/// A check's status from its body's outcome and the errors of csi-sanity's cleanup
/// ([`context::CleanupStyle::Sanity`]), which fail it as they fail csi-sanity's spec (after a
/// skip too: ginkgo fails a skipped spec whose AfterEach fails).
fn status_of(outcome: Result<(), Verdict>, cleanup_failed: &[String]) -> Status {
    let cleanup = (!cleanup_failed.is_empty()).then(|| {
        format!(
            "resource cleanup failed (as csi-sanity's):\n{}",
            cleanup_failed.join("\n")
        )
    });
    match (outcome, cleanup) {
        (Ok(()), None) => Status::Pass,
        (Err(Verdict::Skip(r)), None) => Status::Skip(r),
        (Err(Verdict::Fail(m)), None) => Status::Fail(m),
        (Ok(()) | Err(Verdict::Skip(_)), Some(c)) => Status::Fail(c),
        (Err(Verdict::Fail(m)), Some(c)) => Status::Fail(format!("{m}\n{c}")),
    }
}

/// The given directory, or a new one in $TMPDIR; created here (and, when new, to be
/// removed at the end) unless `remote`: then a hook makes the paths under it.
fn base_dir(dir: Option<&std::path::Path>, remote: bool) -> anyhow::Result<(PathBuf, bool)> {
    let (d, new) = match dir {
        Some(d) => (d.to_path_buf(), false),
        None => (
            std::env::temp_dir().join(crate::client::unique("csi-conformance")),
            true,
        ),
    };
    if remote {
        return Ok((d, false));
    }
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    Ok((d, new))
}

/// Makes check `i`'s target parent and staging path (through the hooks when given);
/// on failure, the error and what was made already.
async fn scratch(
    hooks: &PathHooks,
    mount_base: &std::path::Path,
    staging_base: &std::path::Path,
    i: usize,
) -> Result<(PathBuf, PathBuf), (paths::PathError, Vec<(Scratch, PathBuf)>)> {
    let mount_parent = hooks
        .create(
            Scratch::Target,
            &mount_base.join(format!("check-{i:03}-mnt")),
        )
        .await
        .map_err(|e| (e, Vec::new()))?;
    let staging = hooks
        .create(
            Scratch::Staging,
            &staging_base.join(format!("check-{i:03}-staging")),
        )
        .await
        .map_err(|e| (e, vec![(Scratch::Target, mount_parent.clone())]))?;
    Ok((mount_parent, staging))
}
