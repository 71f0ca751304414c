//! harness: the mock-cluster simulator that reproduces CERN's 2018 CephFS/Manila CSI
//! scale test around the real driver.
//!
//! One process holds a simulated Kubernetes (an API store of k8s-openapi objects with
//! resource versions and watches; the PV binder, the external-provisioner, the
//! attach-detach controller, the external-attacher, the scheduler, the Deployment and
//! ReplicaSet controllers and one kubelet per node as reconcile loops; per-client token
//! buckets; the node authorizer's graph and its lag) and a real back end: fake-ceph on
//! loopback (and, when the scenario's `backend` is `manila`, fake-manila on top of it,
//! the shares provisioned by the driver's Manila controller), the driver's controller
//! plugin and one node plugin per node, each on its own Unix socket, called over real
//! gRPC. With `harness run --ceph-url/--os-auth-url` the back ends are external ones
//! (a fake-ceph on this machine, a fake-manila over it, found through its Keystone) and
//! only the plugins run here.
//!
//! Start reading at [`run`]; the simulation is [`sim::World`], its clock and timing
//! primitives are in [`time`], scenarios in [`params`] (files in `scenarios/`), the
//! authorizer in [`authz`], the CSI back ends in [`csi`], the leak check's reading of the
//! back ends in [`inventory`], faults injected on the clock in [`fault`], the fault soak
//! in [`soak`], the reports in [`report`], the time series and their SVG plots in
//! [`plots`].
//!
//! The same scenarios run on real Kubernetes in [`real`]: on a local control plane of
//! Kubernetes' own programs with hollow kubelets (`harness run --control-plane real`) or
//! on an existing cluster (`--kubeconfig`), in real time, every figure measured and the
//! summary in the simulator's format (its `mode` says which); [`compare`] sets two runs
//! side by side.
//!
//! Beside the simulator: [`up`], the same embedded back ends served on their own for
//! other tools (`harness up`); [`conformance`], a CSI conformance bench (every rule
//! csi-sanity checks and more) and [`load`], a load generator, both for any CSI endpoint,
//! both on the CSI-client toolkit [`client`].
//!
//! The `busy` workload ([`busy`]) unpacks a kernel-shaped archive into every mount: a
//! few files per client are written for real through its MDS session, the bulk of the
//! MDS requests is modelled on the simulated clock against fake-ceph's load model and
//! charged to its counters.
//!
//! Faults: a scenario's `ceph_faults` are fake-ceph's fault rules (latency, error rates,
//! hangs on admin commands and client operations) and its `manila_faults` fake-manila's
//! (5xx answers, latency, shares stuck in `creating` or ending in `error`, access rules
//! ending in `error`), both met by the real driver; its `fault_plan` ([`fault`]) switches
//! them on and off on the simulated clock, takes the MDS down, evicts sessions, resets
//! stuck shares as an operator would, and kills and restarts the driver's plugins.
//! [`soak`] (`harness soak --seeds N`) draws such a plan per seed and checks that
//! nothing leaked and no claim got two volumes. The kubelet and the external-provisioner
//! treat a call that ended without a final answer (Unavailable, DeadlineExceeded, ...)
//! as maybe done, as theirs do: an uncertain mount is unmounted before it is forgotten,
//! a claim deleted while its volume may be in the making is provisioned to the end and
//! its volume deleted. Not modelled yet: Kubernetes API errors and faults, fake-ceph
//! restarts (they need its metadata on disk), fake-manila's state delays (the embedded
//! one has none: the simulation charges its own durations), the 1.12+ kubelet's
//! GET-then-watch WaitForAttach, ADC force-detach; in the busy workload, OSD data I/O and
//! the build and delete phases of cephfs-perf's kernel-build.

mod api;
mod authz;
pub mod busy;
pub mod client;
pub mod compare;
pub mod conformance;
pub mod csi;
pub mod fault;
pub mod inventory;
mod labelled;
pub mod load;
mod naming;
pub mod params;
pub mod plots;
mod provenance;
pub mod real;
mod report;
pub mod sim;
pub mod soak;
mod stats;
mod time;
pub mod up;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;

use crate::csi::{Backend, MockCsi, RealCsi};
use crate::params::Params;
pub use crate::report::Summary;
use crate::report::{EventLog, Wall, percentiles};

/// SIGINT or SIGTERM, with both handlers installed now (a signal arriving before the
/// future is polled is not lost, nor does it kill the process).
pub fn stop_signals() -> anyhow::Result<impl std::future::Future<Output = ()>> {
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

/// Which back end a run calls.
#[derive(Debug, Clone)]
pub enum BackendKind {
    /// The real driver over gRPC, embedded fake-ceph (and fake-manila) behind it.
    Real,
    /// The real driver over gRPC, external back ends behind it.
    External(csi::External),
    /// In-memory answers (controller tests).
    Mock,
}

/// Where a run's reports go.
#[derive(Debug, Clone)]
pub enum Output {
    /// `summary.json`, `events.jsonl`, `series.json`, `report.md` and the SVG plots in
    /// this directory.
    Dir(PathBuf),
    /// The same but `events.jsonl` (`harness run --events none`): the log's lines are
    /// still counted and hashed, so the summary's `events_hash` is the one the file would
    /// have had.
    DirWithoutEvents(PathBuf),
    /// The event log stays in memory (tests).
    Memory,
}

/// A finished run.
#[derive(Debug)]
pub struct Run {
    /// The summary (also `summary.json`).
    pub summary: Summary,
    /// The event log's lines when kept in memory.
    pub events: Vec<String>,
}

/// Runs scenario `p` with `seed`: builds the cluster, runs it to the end of teardown,
/// checks for leaks, and writes the reports.
pub async fn run(p: Params, seed: u64, backend: BackendKind, out: Output) -> anyhow::Result<Run> {
    run_with_progress(p, seed, backend, out, None).await
}

/// [`run`] with a progress callback.
pub async fn run_with_progress(
    p: Params,
    seed: u64,
    backend: BackendKind,
    out: Output,
    progress: Option<sim::ProgressFn>,
) -> anyhow::Result<Run> {
    let t0 = Instant::now();
    let launch = csi::Launch {
        seed,
        nodes: p.node_count(),
        attach_required: p.attach_required,
        backend: p.backend,
        controller_credentials: false,
        ceph_faults: p
            .fault_rules()
            .map_err(|e| anyhow::anyhow!("scenario {}: {e}", p.name))?,
        manila_faults: p.manila_faults.clone(),
        timeouts: p.driver,
        durable_ceph: p
            .fault_plan
            .iter()
            .any(|s| s.action == fault::Action::RestartCeph),
    };
    let backend = match &backend {
        BackendKind::Real => Backend::Real(Box::new(
            RealCsi::launch(launch, p.max_inflight, None).await?,
        )),
        BackendKind::External(x) => {
            // The busy workload charges its modelled MDS load to the in-process fake-ceph;
            // an external MDS would report only the real sample, which is not the run.
            anyhow::ensure!(
                p.workload != params::Workload::Busy,
                "the busy workload runs on the embedded back ends only (it charges the \
                 modelled MDS load to the in-process fake-ceph)"
            );
            Backend::Real(Box::new(
                RealCsi::launch(launch, p.max_inflight, Some(x)).await?,
            ))
        }
        BackendKind::Mock => Backend::Mock(MockCsi::default()),
    };
    run_on(p, seed, backend, out, t0, progress).await
}

/// [`run`] on a back end made by the caller (a [`MockCsi`] with scripted failures, say);
/// `t0` is when the run started, for the wall-clock total.
pub async fn run_on(
    p: Params,
    seed: u64,
    backend: Backend,
    out: Output,
    t0: Instant,
    progress: Option<sim::ProgressFn>,
) -> anyhow::Result<Run> {
    let log = match &out {
        Output::Dir(d) | Output::DirWithoutEvents(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            clear_reports(d)?;
            if matches!(out, Output::Dir(_)) {
                EventLog::to_file(&d.join("events.jsonl")).context("events.jsonl")?
            } else {
                EventLog::uncounted()
            }
        }
        Output::Memory => EventLog::in_memory(),
    };
    let mut world = sim::World::new(p.clone(), seed, backend, log);
    world.progress = progress.map(sim::Hook);
    let t_sim = Instant::now();
    world.run().await;
    let simulation_s = t_sim.elapsed().as_secs_f64();
    world.log.flush()?;
    if !p.fault_plan.is_empty() {
        world.heal().await;
    }
    let leaks = world.backend().leaks().await;
    let leaked_objects = world.leftover_objects();
    let series = std::mem::take(&mut world.stats.series);
    let st = &world.stats;
    let teardown_s = st.deploy_ended_at.map(|t| t.secs());
    let wall = measured_wall(world.backend(), simulation_s).await;
    let rpcs = st
        .rpcs
        .iter()
        .map(|((m, c), v)| report::RpcRow {
            method: m.clone(),
            code: c.clone(),
            sim: percentiles(v),
        })
        .collect::<Vec<_>>();
    let csi_calls = report::CallTotals::of(&rpcs, series.peak_rpcs_per_s());
    let api_clients = world
        .clients()
        .into_iter()
        .map(|(k, (n, w, m))| (k, (n, w.as_secs_f64(), m.as_secs_f64())))
        .collect();
    let duplicates = world.duplicates();
    let clean = leaks.none() && leaked_objects.is_empty() && duplicates.is_empty();
    let mut summary = Summary {
        scenario: p.name.clone(),
        seed,
        mode: "simulated".into(),
        outcome: st.deploy_outcome.clone(),
        replicas: p.replicas,
        running: st.running_at_end_of_deploy,
        max_running: st.max_running,
        pods_created: st.pods_created,
        pods_killed: st.killed,
        provisioned_s: st.provisioned_at.map(|t| t.secs()),
        all_running_s: st.all_running_at.map(|t| t.secs()),
        sim_total_s: st.sim_end.secs(),
        pod_startup: percentiles(&st.startup),
        pod_startup_not_running: st.startup_not_running,
        schedule_to_run: percentiles(&st.schedule_to_run),
        running_curve_s: report::running_curve(&st.running_at, p.replicas),
        peak_mds_sessions: st.peak_sessions,
        rpcs,
        csi_calls,
        mds_hcr: series.hcr(),
        forbidden: st.forbidden.clone(),
        backoffs: [st.backoffs, st.backoffs_at_cap],
        volume_attachments: st.vas_created,
        foreign_device_paths: st.foreign_device_paths,
        api_clients,
        authz_graph: (world.graph.applied, world.graph.max_queue),
        events: (st.events, world.log.lines, world.log.bytes),
        events_hash: format!("{:016x}", world.log.hash()),
        leaked_objects,
        leaks,
        clean,
        wall,
        mock_calls: BTreeMap::new(),
        plots: Vec::new(),
        busy: world.busy.as_ref().map(|b| b.summary()),
        faults: world.faults.clone(),
        claims: st.claims_at_teardown.clone(),
        pods_not_running: st.pods_not_running.clone(),
        duplicates,
        checkpoints: world.checkpoints,
        checkpoint_errors: world.checkpoint_errors.clone(),
        params: p,
    };
    let events = world.log.lines_kept().to_vec();
    let backend = world.into_backend();
    if let Backend::Mock(m) = &backend {
        summary.mock_calls = m.calls.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    }
    if let Backend::Real(r) = backend {
        r.shutdown().await;
    }
    summary.wall.total_s = t0.elapsed().as_secs_f64();
    summary.wall.peak_rss_mib = report::peak_rss_mib();
    if let Output::Dir(d) | Output::DirWithoutEvents(d) = &out {
        write_reports(&mut summary, &series, teardown_s, d)?;
    }
    Ok(Run { summary, events })
}

/// The log a run interrupted by Ctrl-C or SIGTERM leaves, renamed from `events.jsonl`
/// so that nothing reads it as a whole run's.
pub const INTERRUPTED_EVENTS: &str = "events.interrupted.jsonl";

/// Removes what an earlier run wrote to `dir` (reports, plots, an interrupted log), so
/// that a run's folder never mixes two runs. Other files stay.
fn clear_reports(dir: &std::path::Path) -> anyhow::Result<()> {
    let ours = [
        "summary.json",
        "report.md",
        "series.json",
        "events.jsonl",
        INTERRUPTED_EVENTS,
    ];
    for name in ours.iter().chain(plots::PLOT_FILES.iter()) {
        match std::fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", dir.join(name).display()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The wall-clock figures of a run that took `simulation_s` to simulate: with the real
/// back end, its calls' latencies and fake-ceph's sessions and requests.
async fn measured_wall(backend: &Backend, simulation_s: f64) -> Wall {
    let mut wall = Wall {
        simulation_s,
        ..Default::default()
    };
    if let Backend::Real(r) = backend {
        for (m, h) in &r.wall {
            wall.csi_latency_us.insert(
                (*m).to_owned(),
                [h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max()],
            );
        }
        wall.fake_ceph_peak_sessions = r.peak_sessions();
        wall.fake_ceph_hcr = r.perf_dump().await["mds_server"]["handle_client_request"]
            .as_u64()
            .unwrap_or(0);
    }
    wall
}

/// Writes the plots (listed in `summary`), `series.json`, `summary.json` and
/// `report.md` to `dir`.
fn write_reports(
    summary: &mut Summary,
    series: &plots::Series,
    teardown_s: Option<f64>,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let ctx = plots::Context {
        scenario: &summary.scenario,
        replicas: summary.replicas,
        attach_required: summary.params.attach_required,
        stuck_after_s: summary.params.kill_stuck_after_s,
        teardown_s,
    };
    summary.plots = plots::write_all(series, ctx, dir).context("plots")?;
    std::fs::write(
        dir.join("series.json"),
        serde_json::to_string(&series.columns())?,
    )?;
    std::fs::write(dir.join("summary.json"), provenance::json(summary)?)?;
    let mut md = summary.markdown();
    if let Some(b) = &summary.busy {
        md.push_str(&b.markdown());
    }
    std::fs::write(dir.join("report.md"), md)?;
    Ok(())
}
