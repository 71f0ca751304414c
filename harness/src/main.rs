//! `harness`: runs a scenario against the real driver and writes the reports; checks any
//! CSI driver's conformance; drives load at any CSI endpoint.

// The allocator the cephfs-csi binary uses.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
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
        /// Whether to write the event log, events.jsonl (`none`: its lines are still
        /// counted and hashed into summary.json's events_hash).
        #[arg(long, value_enum, default_value_t = EventsKind::Full)]
        events: EventsKind,
        #[command(flatten)]
        external: ExternalArgs,
        #[command(flatten)]
        real: RealArgs,
    },
    /// Runs a scenario once per seed with a fault matrix drawn from the seed (Ceph
    /// errors and hangs, MDS down, evictions, Manila 5xx and stuck shares, plugins
    /// killed and restarted), checks that nothing leaked and no claim got two volumes;
    /// prints a line per seed and a table, writes soak.json; exits 1 if a seed failed.
    Soak(harness::soak::SoakArgs),
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
    /// Compares two runs' output directories side by side from their summary.json
    /// (outcome, pods, start-up times, CSI calls by method and code, 403s, stuck pods,
    /// wall time), each figure marked modelled or measured by its run's mode; --out
    /// also writes compare.md, compare.json and compare-startup.svg.
    Compare(harness::compare::CompareArgs),
}

/// `harness run --events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum EventsKind {
    /// events.jsonl, one line per event.
    Full,
    /// No events.jsonl.
    None,
}

/// What plays Kubernetes in `harness run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ControlPlaneKind {
    /// The simulator's models, on a simulated clock.
    Simulated,
    /// Kubernetes' own programs on this machine (etcd, kube-apiserver with the Node
    /// authorizer, kube-controller-manager, kube-scheduler), the real sidecars, and
    /// hollow kubelets in this process; real time.
    Real,
}

/// Real mode's programs and manifests.
#[derive(Debug, clap::Args)]
struct RealArgs {
    /// Which control plane runs the scenario.
    #[arg(long, value_enum, default_value_t = ControlPlaneKind::Simulated)]
    control_plane: ControlPlaneKind,
    /// The directory with kube-apiserver, etcd, kubectl, helm, csi-provisioner and the
    /// other programs (what `bash ci/install-kube.sh` prints). For `--control-plane real`.
    #[arg(long, env = "TRAINRIDE_KUBE_BIN")]
    kube_bin: Option<PathBuf>,
    /// The repository's deploy/ directory, whose chart (deploy/chart) the run installs.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy"))]
    deploy: PathBuf,
    /// Runs the scenario's workload on the existing cluster this kubeconfig reaches
    /// (deploy/ installed there): claims and a Deployment in namespace
    /// `trainride-<seed>`, made and removed by the run. Needs cluster-admin rights.
    #[arg(long, env = "HARNESS_KUBECONFIG", conflicts_with = "control_plane")]
    kubeconfig: Option<PathBuf>,
    /// The StorageClass of the driver on that cluster (deploy/examples names it cephfs).
    #[arg(long, default_value = "cephfs", requires = "kubeconfig")]
    storage_class: String,
}

/// External back ends for `harness run`, instead of the embedded ones.
#[derive(Debug, clap::Args)]
struct ExternalArgs {
    /// An external fake-ceph's base URL (on this machine: the fake mounter links the
    /// directories it names). Needs --ceph-keyring.
    #[arg(
        long,
        env = "HARNESS_CEPH_URL",
        requires = "ceph_keyring",
        conflicts_with = "ceph_conf"
    )]
    ceph_url: Option<String>,
    /// A real Ceph cluster's ceph.conf instead: the driver runs `ceph`/`rados` (its cli
    /// transport) and the node plugins mount with ceph-fuse (root only; each (share,
    /// node) pair is one real client). Needs --ceph-keyring; the cluster needs the file
    /// system `cephfs`. Not with the busy workload, fault rules or plans, or Manila.
    #[arg(long, env = "HARNESS_CEPH_CONF", requires = "ceph_keyring")]
    ceph_conf: Option<PathBuf>,
    /// A keyring with client.admin's key at that fake-ceph (`fake-ceph --keyring-out`)
    /// or real cluster.
    #[arg(long, env = "HARNESS_CEPH_KEYRING")]
    ceph_keyring: Option<PathBuf>,
    /// The Keystone auth URL of an external fake-manila running over the fake-ceph of
    /// --ceph-url (its first stdout line, `http://host:port/v3`); Manila is found through
    /// the catalog. For scenarios with `backend: manila`.
    #[arg(long, env = "HARNESS_OS_AUTH_URL", requires = "ceph_url")]
    os_auth_url: Option<String>,
    /// The Manila user (name).
    #[arg(long, env = "HARNESS_OS_USER", default_value = "demo")]
    os_user: String,
    /// The Manila user's password.
    #[arg(
        long,
        env = "HARNESS_OS_PASSWORD",
        default_value = "demo",
        hide_env_values = true,
        hide_default_value = true
    )]
    os_password: String,
    /// The Manila project (name).
    #[arg(long, env = "HARNESS_OS_PROJECT", default_value = "demo")]
    os_project: String,
    /// The domain of the user and the project.
    #[arg(long, env = "HARNESS_OS_DOMAIN", default_value = "Default")]
    os_domain: String,
}

impl ExternalArgs {
    /// The back ends these arguments name.
    fn backend(&self) -> anyhow::Result<harness::BackendKind> {
        let Some(keyring) = &self.ceph_keyring else {
            return Ok(harness::BackendKind::Real);
        };
        anyhow::ensure!(
            self.ceph_url.is_some() || self.ceph_conf.is_some(),
            "--ceph-keyring goes with --ceph-url (a fake-ceph) or --ceph-conf (a real cluster)"
        );
        let text = std::fs::read_to_string(keyring)
            .with_context(|| format!("reading {}", keyring.display()))?;
        let id = fake_manila::parse_keyring(&text, Some("client.admin"))
            .with_context(|| format!("reading {}", keyring.display()))?;
        Ok(harness::BackendKind::External(harness::csi::External {
            ceph_url: self.ceph_url.clone().unwrap_or_default(),
            ceph_conf: self.ceph_conf.clone(),
            ceph_admin_key: id.key.expose().to_owned(),
            os_auth_url: self.os_auth_url.clone(),
            os_user: self.os_user.clone(),
            os_password: self.os_password.clone(),
            os_project: self.os_project.clone(),
            os_domain: self.os_domain.clone(),
        }))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A soak injects faults on purpose: the warnings they cause in the fakes and the
    // driver are expected, and its report says what happened.
    let default = match cli.command {
        Command::Soak(_) => "error",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HARNESS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line, with every cause: the log does not repeat it.
            eprintln_error(&format!("harness: {e:#}"));
            ExitCode::from(2)
        }
    }
}

#[allow(clippy::print_stderr)]
fn eprintln_error(msg: &str) {
    eprintln!("{msg}");
}

/// After Ctrl-C or SIGTERM: the runtime shuts down (every server task stops), then what
/// this process's temporary directories still hold is removed (a directory dropped while
/// its servers still wrote into it keeps their files), and a run's partial event log in
/// `out` is renamed to [`harness::INTERRUPTED_EVENTS`].
fn after_interrupt(rt: tokio::runtime::Runtime, out: Option<&std::path::Path>) {
    rt.shutdown_timeout(std::time::Duration::from_secs(10));
    harness::csi::remove_own_temp_roots();
    let log = out.map(|o| (o.join("events.jsonl"), o.join(harness::INTERRUPTED_EVENTS)));
    match log {
        Some((from, to)) if std::fs::rename(&from, &to).is_ok() => eprintln_error(&format!(
            "harness: interrupted; the events up to then are in {}",
            to.display()
        )),
        _ => eprintln_error("harness: interrupted"),
    }
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
        Command::Up(args) => up(&args),
        Command::Soak(args) => soak(&args),
        Command::Compare(args) => harness::compare::run_compare(&args),
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
            events,
            external,
            real,
        } => run_scenario(&scenario, seed, out, &set, events, &external, &real),
    }
}

/// `harness run --control-plane real`.
fn run_real(
    p: &Params,
    seed: u64,
    out: &std::path::Path,
    real: &RealArgs,
) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(kubeconfig) = &real.kubeconfig {
        println!(
            "harness: {} (seed {seed}) on the cluster of {}: s={} r={} attachRequired is the cluster's -> {}",
            p.name,
            kubeconfig.display(),
            p.shares,
            p.replicas,
            out.display()
        );
        let summary = rt.block_on(harness::real::run::run_on_cluster(
            p,
            seed,
            kubeconfig,
            &real.storage_class,
        ))?;
        harness::real::run::write_reports(&summary, out)?;
        return finish(&summary, out);
    }
    let kube_bin = real.kube_bin.clone().context(
        "--control-plane real needs --kube-bin DIR (or TRAINRIDE_KUBE_BIN): the directory \
         `bash ci/install-kube.sh` prints",
    )?;
    let options = harness::real::RealOptions {
        kube_bin,
        deploy: real.deploy.clone(),
    };
    banner(p, seed, " on a real control plane", out);
    let summary = rt.block_on(harness::real::run::run_and_report(p, seed, &options, out))?;
    finish(&summary, out)
}

/// The line a run starts with: the scenario, its size, and where it runs (`place`).
fn banner(p: &Params, seed: u64, place: &str, out: &std::path::Path) {
    println!(
        "harness: {} (seed {seed}){place}: s={} r={} nodes={} attachRequired={} backend={} -> {}",
        p.name,
        p.shares,
        p.replicas,
        p.node_count(),
        p.attach_required,
        p.backend,
        out.display()
    );
}

/// Prints a real-mode run's table; exit 1 when it left something behind.
fn finish(summary: &harness::Summary, out: &std::path::Path) -> anyhow::Result<ExitCode> {
    println!("{}", summary.table());
    println!("reports: {}", out.display());
    Ok(if summary.clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `harness up`: serves the stack until stopped.
fn up(args: &harness::up::UpArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let leaks = rt.block_on(async {
        // Handlers in place before the endpoints are printed: a client may stop
        // us as soon as it has read them.
        let stop = harness::stop_signals()?;
        let mut stdout = std::io::stdout();
        harness::up::up(args, &mut stdout, stop).await
    })?;
    if !leaks.none() {
        // Volumes the user left behind went with the fakes; say so.
        eprintln_error(&format!(
            "harness up: stopped; removed what was left: {leaks:?}"
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// `harness soak`: runs the seeds and prints their table.
fn soak(args: &harness::soak::SoakArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let summary = rt.block_on(async {
        tokio::select! {
            r = harness::soak::run_soak(args, |line| println!("{line}")) => Some(r),
            () = interrupted() => None,
        }
    });
    let Some(summary) = summary else {
        after_interrupt(rt, None);
        return Ok(ExitCode::from(130));
    };
    let summary = summary?;
    println!("\n{}", summary.table());
    println!(
        "summary: {}",
        args.out
            .clone()
            .unwrap_or_else(|| PathBuf::from("target/harness/soak"))
            .join("soak.json")
            .display()
    );
    Ok(if summary.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `harness run`: runs `scenario` with `seed` (its `set` overrides applied) on the back
/// end `external` chooses, and writes its reports to `out`.
fn run_scenario(
    scenario: &str,
    seed: u64,
    out: Option<PathBuf>,
    set: &[String],
    events: EventsKind,
    external: &ExternalArgs,
    real: &RealArgs,
) -> anyhow::Result<ExitCode> {
    let backend = external.backend()?;
    let mut p = Params::load(scenario)?;
    for s in set {
        p = p.set(s)?;
    }
    let out =
        out.unwrap_or_else(|| PathBuf::from("target/harness").join(format!("{}-{seed}", p.name)));
    if real.control_plane == ControlPlaneKind::Real || real.kubeconfig.is_some() {
        anyhow::ensure!(
            matches!(backend, harness::BackendKind::Real),
            "--control-plane real runs on the embedded back ends"
        );
        return run_real(&p, seed, &out, real);
    }
    let place = match &backend {
        harness::BackendKind::External(x) => match &x.ceph_conf {
            Some(conf) => format!(" on the Ceph cluster of {}", conf.display()),
            None => format!(" at {}", x.ceph_url),
        },
        _ => String::new(),
    };
    banner(&p, seed, &place, &out);
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
                backend,
                match events {
                    EventsKind::Full => harness::Output::Dir(out.clone()),
                    EventsKind::None => harness::Output::DirWithoutEvents(out.clone()),
                },
                progress,
            ) => Some(r),
            () = interrupted() => None,
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let Some(r) = r else {
        after_interrupt(rt, Some(&out));
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
