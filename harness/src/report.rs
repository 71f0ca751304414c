//! The event log (`events.jsonl`), the run's counters, and the reports written from them
//! (`summary.json`, `report.md`, the terminal table).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::time::SimTime;

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("lines", &self.lines)
            .field("hash", &self.hash())
            .finish_non_exhaustive()
    }
}

/// The event log: one JSON object per line, in simulated-time order, with nothing from
/// the wall clock or the back end's random names in it, so that one seed gives one log.
pub struct EventLog {
    out: Option<std::io::BufWriter<std::fs::File>>,
    keep: Option<Vec<String>>,
    hash: fnv::FnvHasher,
    /// Lines logged.
    pub lines: u64,
    /// Bytes written to the file (0 without one).
    pub bytes: u64,
}

impl EventLog {
    /// A log written to `path`.
    pub fn to_file(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            out: Some(std::io::BufWriter::new(std::fs::File::create(path)?)),
            keep: None,
            hash: fnv::FnvHasher::default(),
            lines: 0,
            bytes: 0,
        })
    }

    /// A log neither written nor kept: its lines are only counted and hashed.
    pub fn uncounted() -> Self {
        Self {
            out: None,
            keep: None,
            hash: fnv::FnvHasher::default(),
            lines: 0,
            bytes: 0,
        }
    }

    /// A log kept in memory (tests).
    pub fn in_memory() -> Self {
        Self {
            out: None,
            keep: Some(Vec::new()),
            hash: fnv::FnvHasher::default(),
            lines: 0,
            bytes: 0,
        }
    }

    /// Appends one event.
    pub fn push(&mut self, t: SimTime, component: &str, what: &str, object: &str, result: &str) {
        let line = format!(
            "{{\"t_ns\":{},\"c\":{},\"e\":{},\"o\":{},\"r\":{}}}",
            t.0,
            json_str(component),
            json_str(what),
            json_str(object),
            json_str(result)
        );
        std::hash::Hasher::write(&mut self.hash, line.as_bytes());
        std::hash::Hasher::write(&mut self.hash, b"\n");
        self.lines += 1;
        if let Some(o) = &mut self.out {
            let _ = writeln!(o, "{line}");
            self.bytes += line.len() as u64 + 1;
        }
        if let Some(k) = &mut self.keep {
            k.push(line);
        }
    }

    /// FNV-1a of the whole log: equal logs, equal hashes.
    pub fn hash(&self) -> u64 {
        std::hash::Hasher::finish(&self.hash)
    }

    /// The lines kept in memory.
    pub fn lines_kept(&self) -> &[String] {
        self.keep.as_deref().unwrap_or(&[])
    }

    /// Flushes the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if let Some(o) = &mut self.out {
            o.flush()?;
        }
        Ok(())
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"?\"".into())
}

/// What the run counted.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events processed.
    pub events: u64,
    /// Pods created (replacements included).
    pub pods_created: u64,
    /// When each pod was bound.
    pub scheduled: BTreeMap<String, SimTime>,
    /// Creation → Running, per pod that got there, and creation → the end of the deploy
    /// phase for each pod still not Running then (a lower bound: a stuck pod counts).
    pub startup: Vec<Duration>,
    /// Bound to a node → Running (CL2's `schedule_to_run`), stuck bound pods counted to
    /// the end of the deploy phase likewise.
    pub schedule_to_run: Vec<Duration>,
    /// Pods counted in `startup` that were not Running at the end of the deploy phase.
    pub startup_not_running: u64,
    /// When pods became Running.
    pub running_at: Vec<SimTime>,
    /// MDS sessions open now (stages minus unstages, simulated).
    pub sessions: i64,
    /// The most at once.
    pub peak_sessions: i64,
    /// Node GETs refused by the authorizer, by resource.
    pub forbidden: BTreeMap<String, u64>,
    /// Operations that backed off.
    pub backoffs: u64,
    /// Of which at the 2 min 2 s cap.
    pub backoffs_at_cap: u64,
    /// Volumes whose kubelet kept another node's VolumeAttachment name as its device
    /// path (1.11/1.12, `waitforattach_uses_devicepath`).
    pub foreign_device_paths: u64,
    /// VolumeAttachments created.
    pub vas_created: u64,
    /// Pods killed by the incremental script.
    pub killed: u64,
    /// The most pods Running at once.
    pub max_running: usize,
    /// Pods Running when the deploy phase ended.
    pub running_at_end_of_deploy: usize,
    /// Why the deploy phase ended.
    pub deploy_outcome: String,
    /// When all claims were bound.
    pub provisioned_at: Option<SimTime>,
    /// When all replicas were Running.
    pub all_running_at: Option<SimTime>,
    /// When the deploy phase ended.
    pub deploy_ended_at: Option<SimTime>,
    /// When teardown finished clean.
    pub teardown_done_at: Option<SimTime>,
    /// The last event's time.
    pub sim_end: SimTime,
    /// CSI calls: (method, code) → simulated durations.
    pub rpcs: BTreeMap<(String, String), Vec<Duration>>,
    /// The time series sampled on the simulated clock (the plots).
    pub series: crate::plots::Series,
    /// Each claim when the deploy phase ended: `Bound`, or `Pending` with the last
    /// provisioning error.
    pub claims_at_teardown: BTreeMap<String, String>,
    /// Pods not Running when the deploy phase ended, with the last error of their
    /// volumes (empty: none recorded).
    pub pods_not_running: BTreeMap<String, String>,
}

impl Stats {
    /// Records one CSI call.
    pub fn rpc(&mut self, method: &str, code: tonic::Code, d: Duration) {
        self.rpcs
            .entry((method.to_owned(), format!("{code:?}")))
            .or_default()
            .push(d);
    }
}

pub use crate::stats::{Percentiles, percentiles};

/// One CSI method and code.
#[derive(Debug, Clone, Serialize)]
pub struct RpcRow {
    /// The RPC.
    pub method: String,
    /// The gRPC code.
    pub code: String,
    /// Simulated durations.
    pub sim: Percentiles,
}

/// CSI calls in all.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct CallTotals {
    /// Calls finished.
    pub calls: u64,
    /// Of which with a code other than `Ok`.
    pub errors: u64,
    /// The most finished in one sampling period of simulated time, per second.
    pub peak_per_s: f64,
}

impl CallTotals {
    /// Totals of `rows`, with the peak rate taken from the time series.
    pub fn of(rows: &[RpcRow], peak_per_s: f64) -> Self {
        let mut t = Self {
            peak_per_s,
            ..Self::default()
        };
        for r in rows {
            t.calls += r.sim.count as u64;
            if r.code != "Ok" {
                t.errors += r.sim.count as u64;
            }
        }
        t
    }
}

/// Measured wall-clock figures: they vary between runs and are kept apart.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Wall {
    /// The whole run (setup, simulation, leak checks), seconds.
    pub total_s: f64,
    /// The simulation loop, seconds.
    pub simulation_s: f64,
    /// Peak resident memory of the process (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// Real CSI call latency by method, microseconds (p50, p99, max).
    #[serde(serialize_with = "crate::labelled::latency_us")]
    pub csi_latency_us: BTreeMap<String, [u64; 3]>,
    /// The most MDS sessions fake-ceph had open (sampled after each NodeStage).
    pub fake_ceph_peak_sessions: usize,
    /// fake-ceph's `mds_server.handle_client_request` at the end.
    pub fake_ceph_hcr: u64,
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// The master seed.
    pub seed: u64,
    /// Where the run ran: `simulated` (the simulator's models of Kubernetes, real driver
    /// and back ends), `real control plane` (Kubernetes' own programs on this machine,
    /// every figure measured) or `cluster` (an existing cluster).
    pub mode: String,
    /// The parameters run with.
    pub params: crate::params::Params,
    /// Why the deploy phase ended: "all pods Running", "stalled", ...
    pub outcome: String,
    /// Replicas asked for.
    pub replicas: usize,
    /// Running when the deploy phase ended.
    pub running: usize,
    /// The most Running at once.
    pub max_running: usize,
    /// Pods created, replacements included.
    pub pods_created: u64,
    /// Pods killed by the incremental script.
    pub pods_killed: u64,
    /// Simulated seconds until every claim was bound.
    pub provisioned_s: Option<f64>,
    /// Simulated seconds until every replica was Running.
    pub all_running_s: Option<f64>,
    /// Simulated seconds of the whole run (teardown included).
    pub sim_total_s: f64,
    /// Pod creation → Running; a pod not Running when the deploy phase ended counts
    /// with its wait until then (a lower bound), as clusterloader2 counts it.
    pub pod_startup: Percentiles,
    /// Of `pod_startup`'s pods, those not Running when the deploy phase ended.
    pub pod_startup_not_running: u64,
    /// Pod bound to a node → Running (the volume work), stuck pods counted likewise.
    pub schedule_to_run: Percentiles,
    /// Simulated seconds until 50, 90, 99 and 100 % of the replicas had become Running
    /// (replacements included; `None`: never).
    #[serde(serialize_with = "crate::labelled::running_curve")]
    pub running_curve_s: [Option<f64>; 4],
    /// Peak MDS sessions (staged volumes), simulated accounting.
    pub peak_mds_sessions: i64,
    /// CSI calls.
    pub rpcs: Vec<RpcRow>,
    /// CSI calls and errors in all, and the peak rate.
    pub csi_calls: CallTotals,
    /// MDS `handle_client_request` per simulated second: fake-ceph's counter sampled on
    /// the simulated clock (absent with the mock back end).
    pub mds_hcr: Option<crate::plots::HcrRate>,
    /// Node authorizer 403s by resource.
    pub forbidden: BTreeMap<String, u64>,
    /// Volume operation back-offs, and how many were at the 2 min 2 s cap.
    #[serde(serialize_with = "crate::labelled::backoffs")]
    pub backoffs: [u64; 2],
    /// VolumeAttachments created.
    pub volume_attachments: u64,
    /// Volumes whose kubelet kept another node's VolumeAttachment name as the device
    /// path it waits on (1.11/1.12; simulated).
    #[serde(default)]
    pub foreign_device_paths: u64,
    /// API requests per client: count, total throttle wait (s), max wait (s).
    #[serde(serialize_with = "crate::labelled::api_clients")]
    pub api_clients: BTreeMap<String, (u64, f64, f64)>,
    /// Authorizer graph: events applied, longest queue.
    #[serde(serialize_with = "crate::labelled::authz_graph")]
    pub authz_graph: (u64, usize),
    /// Events simulated, lines logged, and the bytes of `events.jsonl` (0 when the run
    /// wrote none).
    #[serde(serialize_with = "crate::labelled::events")]
    pub events: (u64, u64, u64),
    /// FNV-1a of `events.jsonl`.
    pub events_hash: String,
    /// Objects left in the API after teardown.
    pub leaked_objects: BTreeMap<&'static str, usize>,
    /// What the back end still holds after teardown.
    pub leaks: crate::csi::Leaks,
    /// Whether teardown was clean (no leaked objects, no back-end leaks).
    pub clean: bool,
    /// Wall-clock measurements.
    pub wall: Wall,
    /// Calls the mock back end received, by method (empty with the real back end).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub mock_calls: BTreeMap<String, u32>,
    /// The SVG plots written beside the summary (none when the run kept no files).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plots: Vec<crate::plots::Plot>,
    /// The busy workload's figures (busy scenarios only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub busy: Option<crate::busy::BusySummary>,
    /// What the run counted of its fault plan.
    pub faults: crate::fault::FaultCounts,
    /// Each claim when the deploy phase ended: `Bound`, or `Pending` with the last
    /// provisioning error.
    pub claims: BTreeMap<String, String>,
    /// Pods not Running when the deploy phase ended, with the last error of their
    /// volumes (empty: none recorded).
    pub pods_not_running: BTreeMap<String, String>,
    /// Claims that got more than one volume (by handle, or by the back end's volumes
    /// per request name at a checkpoint), and how many.
    pub duplicates: BTreeMap<String, usize>,
    /// Times the back ends were read during the run (fault steps with no fault window
    /// open, and after the run).
    pub checkpoints: u64,
    /// Checkpoints that could not read the back ends.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checkpoint_errors: Vec<String>,
}

impl Summary {
    /// Whether the figures come from the simulator's models (not measured).
    pub fn simulated(&self) -> bool {
        self.mode == "simulated"
    }

    /// `report.md`.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# harness run: {} (seed {})\n", self.scenario, self.seed);
        let _ = writeln!(s, "{}\n", self.params.description);
        let _ = writeln!(
            s,
            "s = {} shares, r = {} replicas, {} nodes, attachRequired = {}, step = {}\n",
            self.params.shares,
            self.params.replicas,
            self.params.node_count(),
            self.params.attach_required,
            self.params.step
        );
        let _ = writeln!(s, "## Outcome\n");
        let _ = writeln!(s, "{}\n", self.table());
        s.push_str(&crate::provenance::markdown(self));
        if !self.plots.is_empty() {
            let _ = writeln!(
                s,
                "## Plots\n\nSampled every second of simulated time; the numbers are in \
                 [series.json](series.json).\n"
            );
            let _ = write!(s, "{}", crate::plots::markdown(&self.plots));
        }
        let _ = writeln!(s, "## CSI calls (simulated durations)\n");
        let _ = writeln!(s, "| method | code | count | p50 ms | p90 ms | p99 ms |");
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for r in &self.rpcs {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1} | {:.1} | {:.1} |",
                r.method, r.code, r.sim.count, r.sim.p50_ms, r.sim.p90_ms, r.sim.p99_ms
            );
        }
        let _ = writeln!(s, "\n## API clients\n");
        let _ = writeln!(
            s,
            "| client | requests | total throttle wait s | max wait s |"
        );
        let _ = writeln!(s, "|---|---|---|---|");
        for (c, (n, w, m)) in &self.api_clients {
            let _ = writeln!(s, "| {c} | {n} | {w:.1} | {m:.1} |");
        }
        let _ = writeln!(s, "\n## Wall clock\n");
        let _ = writeln!(
            s,
            "total {:.2} s (simulation loop {:.2} s), peak RSS {:.0} MiB, fake-ceph peak sessions {}, hcr {}\n",
            self.wall.total_s,
            self.wall.simulation_s,
            self.wall.peak_rss_mib,
            self.wall.fake_ceph_peak_sessions,
            self.wall.fake_ceph_hcr
        );
        let _ = writeln!(s, "| method | p50 µs | p99 µs | max µs |");
        let _ = writeln!(s, "|---|---|---|---|");
        for (m, [a, b, c]) in &self.wall.csi_latency_us {
            let _ = writeln!(s, "| {m} | {a} | {b} | {c} |");
        }
        s
    }

    /// The table's row of what the fault plan did, when it did anything.
    fn fault_row(&self) -> Option<(&'static str, String)> {
        let f = &self.faults;
        if f.applied.is_empty() && f.refused.is_empty() {
            return None;
        }
        Some((
            "fault steps applied / refused",
            format!(
                "{} ({}) / {}; calls cut {}, refused {}",
                f.applied.values().sum::<u64>(),
                f.applied
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                f.refused.len(),
                f.calls_cut,
                f.calls_refused
            ),
        ))
    }

    /// The rows that depend on the run: the device-path figure only where it means
    /// something, what the fault plan did, duplicates, the busy workload's figures.
    fn situational_rows(&self, rows: &mut Vec<(String, String)>) {
        // The 1.11/1.12 device-path figure means something only there.
        if !(self.simulated() && self.params.attach_required) {
            rows.retain(|(k, _)| !k.starts_with("kept another node's"));
        }
        if let Some(row) = self.fault_row() {
            // Before the teardown row: what the fault plan did.
            let at = rows.len() - 1;
            rows.insert(at, (row.0.to_owned(), row.1));
        }
        if !self.duplicates.is_empty() {
            rows.push((
                "DUPLICATE volumes".to_owned(),
                format!("{:?}", self.duplicates),
            ));
        }
        if let Some(b) = &self.busy {
            // After the MDS row: the busy workload's own figures.
            let at = rows
                .iter()
                .position(|(k, _)| k.starts_with("MDS hcr/s"))
                .map_or(rows.len(), |i| i + 1);
            for (i, (k, v)) in busy_rows(b).into_iter().enumerate() {
                rows.insert(at + i, (k.to_owned(), v));
            }
        }
    }

    /// The short table printed at the end of a run.
    pub fn table(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} s"));
        // Simulated figures are the models' output; the others were measured.
        let how = if self.simulated() { "sim" } else { "measured" };
        let label = |what: &str| format!("{what} ({how})");
        let mut rows: Vec<(String, String)> = vec![
            ("outcome".to_owned(), self.outcome.clone()),
            (
                "pods Running".to_owned(),
                format!(
                    "{} / {} (max {})",
                    self.running, self.replicas, self.max_running
                ),
            ),
            (
                "pods created / killed".to_owned(),
                format!("{} / {}", self.pods_created, self.pods_killed),
            ),
            (label("claims bound after"), opt(self.provisioned_s)),
            (label("all Running after"), opt(self.all_running_s)),
            (
                label("pod startup p50/p90/p99"),
                format!(
                    "{:.1} / {:.1} / {:.1} s{}",
                    self.pod_startup.p50_ms / 1000.0,
                    self.pod_startup.p90_ms / 1000.0,
                    self.pod_startup.p99_ms / 1000.0,
                    match self.pod_startup_not_running {
                        0 => String::new(),
                        n => format!(" ({n} not Running, counted to the deploy's end)"),
                    }
                ),
            ),
            (
                label("peak MDS sessions"),
                self.peak_mds_sessions.to_string(),
            ),
            (
                label("MDS hcr/s peak / mean"),
                self.mds_hcr.map_or("-".to_owned(), |h| {
                    format!("{:.0} / {:.1}", h.peak_per_s, h.mean_per_s)
                }),
            ),
            (
                if self.simulated() {
                    "CSI calls (errors), peak/s (real calls, sim rate)".to_owned()
                } else {
                    label("CSI calls (errors), peak/s")
                },
                format!(
                    "{} ({}), {:.0}",
                    self.csi_calls.calls, self.csi_calls.errors, self.csi_calls.peak_per_s
                ),
            ),
            (
                label("403 no path found to object"),
                self.forbidden.values().sum::<u64>().to_string(),
            ),
            (
                label("kept another node's VA name"),
                self.foreign_device_paths.to_string(),
            ),
            (
                label("back-offs (at 2m2s cap)"),
                format!("{} ({})", self.backoffs[0], self.backoffs[1]),
            ),
            (
                if self.simulated() {
                    "simulated time"
                } else {
                    "deploy phase (measured)"
                }
                .to_owned(),
                format!("{:.1} s", self.sim_total_s),
            ),
            (
                "wall time (measured)".to_owned(),
                format!("{:.2} s", self.wall.total_s),
            ),
            (
                "peak RSS (measured)".to_owned(),
                format!("{:.0} MiB", self.wall.peak_rss_mib),
            ),
            (
                "teardown".to_owned(),
                if self.clean {
                    "clean (no leaks)".to_owned()
                } else {
                    format!("LEAKS: {:?} {:?}", self.leaked_objects, self.leaks)
                },
            ),
        ];
        self.situational_rows(&mut rows);
        let mut s = String::from("| | |\n|---|---|\n");
        for (k, v) in rows {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        s
    }
}

/// The table's rows of the busy workload's own figures.
fn busy_rows(b: &crate::busy::BusySummary) -> [(&'static str, String); 4] {
    let min = |ms: f64| ms / 60_000.0;
    [
        (
            "untars finished / cut off / unfinished",
            format!(
                "{} / {} / {} pods ({} clients)",
                b.pods_finished, b.pods_cut_off, b.pods_unfinished, b.clients
            ),
        ),
        (
            "untar p50/p90/p99 (sim)",
            format!(
                "{:.1} / {:.1} / {:.1} min",
                min(b.untar.p50_ms),
                min(b.untar.p90_ms),
                min(b.untar.p99_ms)
            ),
        ),
        (
            "MDS hcr/s plateau, mean reply latency",
            format!(
                "{:.0}, {}",
                b.hcr_per_s_plateau,
                b.mean_reply_latency_ms
                    .map_or("-".to_owned(), |l| format!("{l:.0} ms"))
            ),
        ),
        (
            "peak MDS memory (model)",
            b.peak_mds_rss_mib
                .map_or("-".to_owned(), |m| format!("{m:.0} MiB")),
        ),
    ]
}

/// When 50, 90, 99 and 100 % of `replicas` pods had become Running, in simulated seconds.
pub fn running_curve(running_at: &[SimTime], replicas: usize) -> [Option<f64>; 4] {
    let mut t = running_at.to_vec();
    t.sort();
    [0.50, 0.90, 0.99, 1.0].map(|q| {
        let n = ((q * replicas as f64).ceil() as usize).max(1);
        t.get(n - 1).map(|x| x.secs())
    })
}

/// Peak resident memory of this process (VmHWM), MiB; 0 where /proc is missing.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_curve_counts_replicas() {
        let t: Vec<SimTime> = (1..=10).rev().map(|s| SimTime(s * 1_000_000_000)).collect();
        assert_eq!(
            running_curve(&t, 10),
            [Some(5.0), Some(9.0), Some(10.0), Some(10.0)]
        );
        // Only five of ten: half of them by the fifth, never 90 %.
        assert_eq!(running_curve(&t[..5], 10), [Some(10.0), None, None, None]);
    }

    #[test]
    fn call_totals_count_every_code_but_ok_as_an_error() {
        let row = |code: &str, count: usize| RpcRow {
            method: "NodeStageVolume".into(),
            code: code.into(),
            sim: Percentiles {
                count,
                ..Percentiles::default()
            },
        };
        let check = |rows: &[RpcRow], calls: u64, errors: u64| {
            let t = CallTotals::of(rows, 2.5);
            assert_eq!((t.calls, t.errors, t.peak_per_s), (calls, errors, 2.5));
        };
        check(&[], 0, 0);
        check(&[row("Ok", 7)], 7, 0);
        check(
            &[row("Ok", 7), row("Aborted", 2), row("Internal", 1)],
            10,
            3,
        );
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = percentiles(&v);
        assert_eq!(
            (p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms),
            (50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(percentiles(&[]).count, 0);
    }

    #[test]
    fn the_log_hash_follows_the_lines() {
        let mut a = EventLog::in_memory();
        let mut b = EventLog::in_memory();
        a.push(SimTime(1), "c", "e", "o\"x", "r");
        b.push(SimTime(1), "c", "e", "o\"x", "r");
        assert_eq!(a.hash(), b.hash());
        assert_eq!(
            a.lines_kept()[0],
            r#"{"t_ns":1,"c":"c","e":"e","o":"o\"x","r":"r"}"#
        );
        b.push(SimTime(2), "c", "e", "o", "r");
        assert_ne!(a.hash(), b.hash());
    }
}
