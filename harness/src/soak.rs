//! The standing fault soak (`harness soak --seeds N`): one small scenario run once per
//! seed, each time with a fault matrix drawn from the seed, and the invariants checked
//! at the end of every run.
//!
//! The matrix ([`draw_plan`]): fake-ceph command errors and hangs for a while, the MDS
//! down for a while, evictions of MDS sessions, fake-manila 5xx answers and shares stuck
//! in `creating` (reset by an operator afterwards), the controller plugin and node
//! plugins killed at random points and restarted. Each kind is on or off, and if on
//! placed and sized, by the seed; the back end alternates with the seed's parity
//! (even: manila, odd: cephfs). fake-ceph itself is killed and restarted on its durable
//! metadata (`--no-ceph-restarts` leaves that out).
//!
//! The invariants of every seed ([`SeedReport::violations`]): nothing leaked in the
//! back ends (subvolumes, shares, access rules, cephx users, MDS sessions, journal
//! entries and per-UUID journal objects), on the nodes (mount records, files: key files
//! and stray state under the plugins' and the run's directories) or in the API; no
//! claim given two volumes; every claim Bound when the deploy phase ended, or Pending
//! with the error that keeps it so; every pod Running then, or with the error of its
//! volumes; the back ends readable at the end.
//!
//! What one seed fixes: the scenario, the fault plan (kinds, times, sizes, targets) and,
//! when every step of it is reproducible ([`crate::fault::Step::reproducible`]), the
//! whole event log. Error rates below 1 are drawn by the fakes in the order requests
//! reach them, so a plan with one keeps its steps but not its log.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use rand::RngExt as _;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::csi::Leaks;
use crate::fault::{Action, Anchor, FaultCounts, Plugin, Step};
use crate::params::{Params, StorageBackend};

/// `harness soak`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// How many seeds to run.
    #[arg(long, default_value_t = 3, env = "HARNESS_SOAK_SEEDS")]
    pub seeds: u64,
    /// The first seed (then the next ones).
    #[arg(long, default_value_t = 1, env = "HARNESS_SOAK_FIRST_SEED")]
    pub first_seed: u64,
    /// The scenario (a file, or a built-in name) each seed runs.
    #[arg(long, default_value = "soak")]
    pub scenario: String,
    /// Which back ends: both (alternating with the seed's parity), cephfs or manila.
    #[arg(long, value_enum, default_value_t = BackendChoice::Both)]
    pub backend: BackendChoice,
    /// Overrides a scenario parameter: key=value; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Where `soak.json` and each seed's `summary.json` and `events.jsonl` go
    /// (default: target/harness/soak/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Draw only faults that keep each seed's event log fixed: error rates and stuck
    /// shares at 1 (an outage of the command for the window) instead of a share of the
    /// calls.
    #[arg(long)]
    pub reproducible: bool,
    /// Leave fake-ceph's kills and restarts out of the matrix (with them, the embedded
    /// fake-ceph keeps its metadata on disk in the run's temporary directory).
    #[arg(long)]
    pub no_ceph_restarts: bool,
}

/// The back ends a soak runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// Even seeds manila, odd seeds cephfs.
    Both,
    /// CephFS only.
    Cephfs,
    /// Manila only.
    Manila,
}

impl BackendChoice {
    /// The back end of `seed`.
    pub fn of(self, seed: u64) -> StorageBackend {
        match self {
            BackendChoice::Cephfs => StorageBackend::Cephfs,
            BackendChoice::Manila => StorageBackend::Manila,
            BackendChoice::Both if seed.is_multiple_of(2) => StorageBackend::Manila,
            BackendChoice::Both => StorageBackend::Cephfs,
        }
    }
}

/// The fault kinds of the matrix, as the reports name them.
pub const KINDS: [&str; 9] = [
    "ceph-errors",
    "ceph-hangs",
    "mds-down",
    "evictions",
    "manila-5xx",
    "manila-stuck",
    "controller-kills",
    "node-kills",
    "ceph-restarts",
];

/// Picks one of `xs`.
fn pick<T: Copy>(rng: &mut ChaCha8Rng, xs: &[T]) -> T {
    xs[rng.random_range(0..xs.len())]
}

/// Seconds, uniform in `[lo, hi)`, to a tenth.
fn secs(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    tenth(rng.random_range(lo..hi))
}

/// `x` to a tenth.
fn tenth(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Where a fault lands: which phase, and fake-ceph command prefixes that phase sends
/// for each back end.
fn anchor(rng: &mut ChaCha8Rng, choices: &[Anchor]) -> (Anchor, f64) {
    let a = pick(rng, choices);
    // Claims are provisioned in the first seconds (CreateVolume takes 1 s at the median,
    // simulated, and the real call is made at once, so half the time a fault is there
    // from the start); pods stage for 15 s or so; teardown unmounts within a second and
    // deletes the volumes a second or two later.
    let after = match a {
        Anchor::Start if rng.random_bool(0.5) => 0.0,
        Anchor::Start => secs(rng, 0.0, 1.5),
        Anchor::Deploy => secs(rng, 0.0, 15.0),
        Anchor::Teardown if rng.random_bool(0.5) => 0.0,
        Anchor::Teardown => secs(rng, 0.0, 2.0),
    };
    (a, after)
}

/// The Ceph commands a phase sends, by back end: the driver's for CephFS (journal in
/// RADOS, subvolumes, MDS sessions), fake-manila's for Manila (subvolumes and their
/// cephx users) and the nodes' sessions.
fn prefixes(at: Anchor, backend: StorageBackend) -> &'static [&'static str] {
    match (at, backend) {
        (Anchor::Start, StorageBackend::Cephfs) => &[
            "fs subvolume create",
            "fs subvolume getpath",
            "rados *",
            "fs subvolume *",
        ],
        (Anchor::Start, StorageBackend::Manila) => &[
            "fs subvolume create",
            "fs subvolume authorize",
            "fs subvolume getpath",
            "fs subvolume *",
        ],
        (Anchor::Deploy, _) => &["client session open", "client *"],
        (Anchor::Teardown, StorageBackend::Cephfs) => {
            &["fs subvolume rm", "rados *", "client *", "fs subvolume *"]
        }
        (Anchor::Teardown, StorageBackend::Manila) => &[
            "fs subvolume rm",
            "fs subvolume deauthorize",
            "fs subvolume evict",
            "client *",
        ],
    }
}

/// Draws the fault plan of `seed` for a cluster of `nodes` nodes on `backend`: each
/// kind of the matrix on or off, and its phase, delay, duration, size and target. Every
/// window closes and every killed plugin restarts within the plan. With
/// `reproducible`, every rate is 1 (the same draws otherwise), so the plan keeps the
/// event log fixed.
pub fn draw_plan(
    seed: u64,
    nodes: usize,
    backend: StorageBackend,
    reproducible: bool,
    ceph_restarts: bool,
) -> Vec<Step> {
    let mut d = PlanDraw {
        rng: crate::time::stream(seed, "soak"),
        plan: Vec::new(),
        windows: 0,
        reproducible,
    };
    // The draws are made in this order, each kind's after the one before it.
    d.ceph_errors(backend);
    d.ceph_hangs(backend);
    let mds_down = d.mds_down();
    d.evictions(nodes, mds_down);
    if backend == StorageBackend::Manila {
        d.manila_faults();
    }
    d.controller_kills();
    d.node_kills(nodes);
    // Drawn last, so that turning it off leaves the rest of a seed's plan as it was.
    if ceph_restarts {
        d.ceph_restarts();
    }
    d.plan
}

/// Every phase a step may be anchored to.
const ALL_PHASES: [Anchor; 3] = [Anchor::Start, Anchor::Deploy, Anchor::Teardown];

/// A fault plan being drawn: the seed's random stream, the steps so far and the
/// windows opened so far.
struct PlanDraw {
    rng: ChaCha8Rng,
    plan: Vec<Step>,
    windows: u32,
    /// Every rate 1 (the same draws otherwise).
    reproducible: bool,
}

impl PlanDraw {
    /// One of `rates` (1 when reproducible).
    fn rate(&mut self, rates: &[f64]) -> f64 {
        let r = pick(&mut self.rng, rates);
        if self.reproducible { 1.0 } else { r }
    }

    /// Opens a window of fault `on` at `after` seconds into phase `at` and closes it `d`
    /// seconds later.
    fn window(&mut self, at: Anchor, after: f64, on: Action, d: f64) {
        self.windows += 1;
        let w = self.windows;
        let (on, off) = match on {
            Action::CephRulesOn { rules, .. } => (
                Action::CephRulesOn { window: w, rules },
                Action::CephRulesOff { window: w },
            ),
            Action::ManilaFaultsOn { faults, .. } => (
                Action::ManilaFaultsOn { window: w, faults },
                Action::ManilaFaultsOff { window: w },
            ),
            other => (other, Action::MdsUp),
        };
        self.plan.push(Step {
            at,
            after_s: after,
            action: on,
        });
        self.plan.push(Step {
            at,
            after_s: tenth(after + d),
            action: off,
        });
    }

    /// Ceph command errors for a while: an outage of the command (rate 1) or a share
    /// of its calls, with an errno the driver meets from real clusters.
    fn ceph_errors(&mut self, backend: StorageBackend) {
        if !self.rng.random_bool(0.7) {
            return;
        }
        let (at, after) = anchor(&mut self.rng, &ALL_PHASES);
        let prefix = pick(&mut self.rng, prefixes(at, backend));
        let rate = self.rate(&[1.0, 0.5, 0.25]);
        let errno = pick(&mut self.rng, &[5, 11, 110]);
        let d = secs(&mut self.rng, 2.0, 30.0);
        let rule = format!("error:{prefix}={rate}:{errno}");
        self.window(
            at,
            after,
            Action::CephRulesOn {
                window: 0,
                rules: vec![rule],
            },
            d,
        );
    }

    /// Ceph commands that never answer, for a while: the driver's deadline ends each
    /// call.
    fn ceph_hangs(&mut self, backend: StorageBackend) {
        if !self.rng.random_bool(0.5) {
            return;
        }
        let (at, after) = anchor(&mut self.rng, &ALL_PHASES);
        let prefix = pick(&mut self.rng, prefixes(at, backend));
        let d = secs(&mut self.rng, 2.0, 20.0);
        self.window(
            at,
            after,
            Action::CephRulesOn {
                window: 0,
                rules: vec![format!("hang:{prefix}")],
            },
            d,
        );
    }

    /// The MDS down for a while; returns when (its phase, from, to).
    fn mds_down(&mut self) -> Option<(Anchor, f64, f64)> {
        if !self.rng.random_bool(0.5) {
            return None;
        }
        let (at, after) = anchor(
            &mut self.rng,
            &[Anchor::Deploy, Anchor::Deploy, Anchor::Teardown],
        );
        let d = secs(&mut self.rng, 3.0, 40.0);
        self.window(at, after, Action::MdsDown, d);
        Some((at, after, after + d))
    }

    /// Evictions, of one node's sessions or of all, once pods may be running; not
    /// while the MDS is down (`mds_down`: nothing answers a `tell` then).
    fn evictions(&mut self, nodes: usize, mds_down: Option<(Anchor, f64, f64)>) {
        if !self.rng.random_bool(0.5) {
            return;
        }
        for _ in 0..self.rng.random_range(1..=2) {
            let node = self
                .rng
                .random_bool(0.5)
                .then(|| self.rng.random_range(0..nodes));
            let mut after = secs(&mut self.rng, 5.0, 40.0);
            if let Some((Anchor::Deploy, from, to)) = mds_down
                && (from..=to).contains(&after)
            {
                after = tenth(to + 1.0);
            }
            self.plan.push(Step {
                at: Anchor::Deploy,
                after_s: after,
                action: Action::Evict { node },
            });
        }
    }

    /// The Manila back end's faults: operator sweeps of stuck shares after the Ceph
    /// windows, Manila answering 500/503, shares stuck in creating.
    fn manila_faults(&mut self) {
        // Manila leaves a share whose deletion failed on the Ceph side in
        // `error_deleting` (only an administrator may then delete it) and one whose
        // creation failed in `error`: an operator sweeps a while after each Ceph window
        // and after the MDS comes back (removing a subvolume needs it).
        let windows: Vec<(Anchor, f64)> = self
            .plan
            .iter()
            .filter(|s| matches!(s.action, Action::CephRulesOff { .. } | Action::MdsUp))
            .map(|s| (s.at, s.after_s))
            .collect();
        for (at, end) in windows {
            let after_s = tenth(end + secs(&mut self.rng, 3.0, 15.0));
            self.plan.push(Step {
                at,
                after_s,
                action: Action::ResetStuckShares,
            });
        }
        // Manila answering 500/503.
        if self.rng.random_bool(0.7) {
            let (at, after) = anchor(
                &mut self.rng,
                &[Anchor::Start, Anchor::Start, Anchor::Teardown],
            );
            let rate = self.rate(&[1.0, 0.5, 0.3]);
            let d = secs(&mut self.rng, 2.0, 20.0);
            let faults = fake_manila::Faults {
                error_rate: rate,
                ..Default::default()
            };
            self.window(at, after, Action::ManilaFaultsOn { window: 0, faults }, d);
        }
        // Shares stuck in creating while the claims are provisioned; an operator
        // resets them to error a while after.
        if self.rng.random_bool(0.6) {
            let after = 0.0;
            let d = secs(&mut self.rng, 1.0, 10.0);
            let rate = self.rate(&[1.0, 0.5]);
            let faults = fake_manila::Faults {
                stuck_creating_rate: rate,
                ..Default::default()
            };
            self.window(
                Anchor::Start,
                after,
                Action::ManilaFaultsOn { window: 0, faults },
                d,
            );
            let after_s = tenth(after + d + secs(&mut self.rng, 5.0, 30.0));
            self.plan.push(Step {
                at: Anchor::Start,
                after_s,
                action: Action::ResetStuckShares,
            });
        }
    }

    /// The controller killed while it provisions or deletes, down for a while.
    fn controller_kills(&mut self) {
        if !self.rng.random_bool(0.7) {
            return;
        }
        for _ in 0..self.rng.random_range(1..=2) {
            let (at, after) = anchor(&mut self.rng, &[Anchor::Start, Anchor::Teardown]);
            let down = secs(&mut self.rng, 0.5, 20.0);
            kill(&mut self.plan, Plugin::Controller, at, after, down);
        }
    }

    /// Node plugins killed while they stage, publish, unpublish or unstage.
    fn node_kills(&mut self, nodes: usize) {
        if !self.rng.random_bool(0.8) {
            return;
        }
        for _ in 0..self.rng.random_range(1..=3) {
            let (at, after) = anchor(
                &mut self.rng,
                &[Anchor::Deploy, Anchor::Deploy, Anchor::Teardown],
            );
            let node = self.rng.random_range(0..nodes);
            let down = secs(&mut self.rng, 0.5, 30.0);
            kill(&mut self.plan, Plugin::Node(node), at, after, down);
        }
    }

    /// fake-ceph killed and started again on its data directory (every connection
    /// breaks, calls under way get no answer, MDS sessions are gone), once or twice;
    /// drawn but not planned when reproducible (which commands a restart cuts depends
    /// on the wall clock).
    fn ceph_restarts(&mut self) {
        if !self.rng.random_bool(0.5) {
            return;
        }
        for _ in 0..self.rng.random_range(1..=2) {
            let (at, after) = anchor(&mut self.rng, &ALL_PHASES);
            if self.reproducible {
                continue;
            }
            self.plan.push(Step {
                at,
                after_s: after,
                action: Action::RestartCeph,
            });
        }
    }
}

/// Adds a kill of `plugin` and its restart `down` seconds later, after the restart of
/// an earlier kill of it drawn for the same phase if the two would overlap.
fn kill(plan: &mut Vec<Step>, plugin: Plugin, at: Anchor, after: f64, down: f64) {
    let busy_until = plan
        .iter()
        .filter(|s| s.at == at && s.action == Action::Restart { plugin })
        .map(|s| s.after_s)
        .fold(f64::NEG_INFINITY, f64::max);
    let after = if after <= busy_until {
        tenth(busy_until + 1.0)
    } else {
        after
    };
    plan.push(Step {
        at,
        after_s: after,
        action: Action::Kill { plugin },
    });
    plan.push(Step {
        at,
        after_s: tenth(after + down),
        action: Action::Restart { plugin },
    });
}

/// What the plan of one seed holds, by kind of the matrix.
pub fn kinds_of(plan: &[Step]) -> BTreeMap<&'static str, u64> {
    let mut m: BTreeMap<&'static str, u64> = KINDS.iter().map(|k| (*k, 0)).collect();
    for s in plan {
        let kind = match &s.action {
            Action::CephRulesOn { rules, .. } if rules.iter().any(|r| r.starts_with("hang:")) => {
                "ceph-hangs"
            }
            Action::CephRulesOn { .. } => "ceph-errors",
            Action::MdsDown => "mds-down",
            Action::Evict { .. } => "evictions",
            Action::ManilaFaultsOn { faults, .. } if faults.stuck_creating_rate > 0.0 => {
                "manila-stuck"
            }
            Action::ManilaFaultsOn { .. } => "manila-5xx",
            Action::Kill {
                plugin: Plugin::Controller,
            } => "controller-kills",
            Action::Kill {
                plugin: Plugin::Node(_),
            } => "node-kills",
            Action::RestartCeph => "ceph-restarts",
            _ => continue,
        };
        *m.entry(kind).or_default() += 1;
    }
    m
}

/// One seed's figures and verdict.
#[derive(Debug, Clone, Serialize)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// The back end.
    pub backend: StorageBackend,
    /// The fault plan drawn.
    pub plan: Vec<Step>,
    /// Faults of each kind the plan holds.
    pub kinds: BTreeMap<&'static str, u64>,
    /// Whether the plan keeps the event log fixed by the seed.
    pub reproducible: bool,
    /// What the run counted of the plan.
    pub faults: FaultCounts,
    /// Why the deploy phase ended.
    pub outcome: String,
    /// CSI calls made.
    pub calls: u64,
    /// Of which failed.
    pub calls_failed: u64,
    /// Failed calls by method and gRPC code (`CreateVolume Unavailable`).
    pub failed_by: BTreeMap<String, u64>,
    /// Operations retried after a failure (provisioner and kubelet back-offs).
    pub retries: u64,
    /// Claims Bound when the deploy phase ended.
    pub claims_bound: usize,
    /// Claims Pending then, with their last error.
    pub claims_failed: BTreeMap<String, String>,
    /// Pods Running then, of the replicas.
    pub pods_running: (usize, usize),
    /// Pods not Running then, with the last error of their volumes.
    pub pods_failed: BTreeMap<String, String>,
    /// The back ends' leftovers after teardown.
    pub leaks: Leaks,
    /// API objects left.
    pub leaked_objects: BTreeMap<&'static str, usize>,
    /// Claims that got more than one volume.
    pub duplicates: BTreeMap<String, usize>,
    /// Checkpoints taken during the run, and those that failed.
    pub checkpoints: (u64, usize),
    /// FNV-1a of the event log.
    pub events_hash: String,
    /// Simulated seconds.
    pub sim_s: f64,
    /// Wall seconds.
    pub wall_s: f64,
    /// The invariants broken (empty: the seed passed).
    pub violations: Vec<String>,
}

impl SeedReport {
    /// The seed's figures from its run, with its invariants checked.
    fn of(seed: u64, backend: StorageBackend, plan: Vec<Step>, run: &crate::Run) -> Self {
        let s = &run.summary;
        let claims_bound = s.claims.values().filter(|v| *v == "Bound").count();
        let claims_failed: BTreeMap<String, String> = s
            .claims
            .iter()
            .filter(|(_, v)| *v != "Bound")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut r = Self {
            seed,
            backend,
            kinds: kinds_of(&plan),
            reproducible: plan.iter().all(Step::reproducible) && static_reproducible(&s.params),
            plan,
            faults: s.faults.clone(),
            outcome: s.outcome.clone(),
            calls: s.csi_calls.calls,
            calls_failed: s.csi_calls.errors,
            failed_by: s
                .rpcs
                .iter()
                .filter(|r| r.code != "Ok")
                .map(|r| (format!("{} {}", r.method, r.code), r.sim.count as u64))
                .collect(),
            retries: s.backoffs[0],
            claims_bound,
            claims_failed,
            pods_running: (s.running, s.replicas),
            pods_failed: s.pods_not_running.clone(),
            leaks: s.leaks.clone(),
            leaked_objects: s.leaked_objects.clone(),
            duplicates: s.duplicates.clone(),
            checkpoints: (s.checkpoints, s.checkpoint_errors.len()),
            events_hash: s.events_hash.clone(),
            sim_s: s.sim_total_s,
            wall_s: s.wall.total_s,
            violations: Vec::new(),
        };
        r.violations = r.check(s.claims.len(), &s.checkpoint_errors);
        r
    }

    /// The invariants, each broken one as a line.
    fn check(&self, claims: usize, checkpoint_errors: &[String]) -> Vec<String> {
        let mut v = Vec::new();
        let l = &self.leaks;
        if let Some(e) = &l.error {
            v.push(format!(
                "the back ends could not be read after teardown: {e}"
            ));
        }
        for (what, n) in [
            ("subvolumes", l.subvolumes),
            ("shares", l.shares),
            ("access rules", l.access_rules),
            ("cephx users", l.cephx_users),
            ("MDS sessions", l.mds_sessions),
            ("mount records", l.mount_records),
            ("files (key files, state)", l.files),
            ("journal entries", l.journal_entries),
            ("journal objects", l.journal_objects),
        ] {
            if n > 0 {
                v.push(format!("{n} {what} leaked"));
            }
        }
        for (kind, n) in &self.leaked_objects {
            v.push(format!("{n} {kind} left in the API"));
        }
        for (name, n) in &self.duplicates {
            v.push(format!("{name} got {n} volumes"));
        }
        if claims == 0 {
            v.push("no claim was recorded (the deploy phase never ended)".into());
        }
        for (claim, state) in &self.claims_failed {
            if state == "Pending" {
                v.push(format!("{claim} Pending with no error recorded"));
            }
        }
        for (pod, why) in &self.pods_failed {
            if why.is_empty() {
                v.push(format!("{pod} not Running with no error recorded"));
            }
        }
        for e in checkpoint_errors {
            v.push(format!("checkpoint failed {e}"));
        }
        for e in &self.faults.refused {
            v.push(format!("fault step refused: {e}"));
        }
        v
    }

    /// The one line printed for the seed.
    pub fn line(&self) -> String {
        let k = &self.kinds;
        let f = &self.faults;
        format!(
            "seed {:>4} {:<6} faults: err {} hang {} mds {} evict {} ({} sessions) 5xx {} stuck {} ({} reset) \
             kill ctl {} node {} (cut {}, refused {}) | calls {} failed {} retried {} | \
             claims {}/{} Bound | pods {}/{} | sim {:.0} s wall {:.1} s | {}",
            self.seed,
            self.backend.to_string(),
            k["ceph-errors"],
            k["ceph-hangs"],
            k["mds-down"],
            k["evictions"],
            f.sessions_evicted,
            k["manila-5xx"],
            k["manila-stuck"],
            f.shares_reset,
            k["controller-kills"],
            k["node-kills"],
            f.calls_cut,
            f.calls_refused,
            self.calls,
            self.calls_failed,
            self.retries,
            self.claims_bound,
            self.claims_bound + self.claims_failed.len(),
            self.pods_running.0,
            self.pods_running.1,
            self.sim_s,
            self.wall_s,
            if self.violations.is_empty() {
                "OK".to_owned()
            } else {
                format!("FAILED: {}", self.violations.join("; "))
            }
        )
    }
}

/// Whether the scenario's own fault rates keep the event log fixed.
fn static_reproducible(p: &Params) -> bool {
    let m = &p.manila_faults;
    let rates_ok = [
        m.error_rate,
        m.stuck_creating_rate,
        m.share_error_rate,
        m.access_error_rate,
    ]
    .iter()
    .all(|x| *x <= 0.0 || *x >= 1.0);
    rates_ok
        && p.fault_rules().is_ok_and(|f| {
            f.rules
                .iter()
                .all(|r| r.error_rate.is_none_or(|x| x <= 0.0 || x >= 1.0))
        })
}

/// `soak.json`: every seed, and the totals.
#[derive(Debug, Clone, Serialize)]
pub struct SoakSummary {
    /// The scenario.
    pub scenario: String,
    /// The seeds run.
    pub seeds: Vec<u64>,
    /// Each seed.
    pub runs: Vec<SeedReport>,
    /// Seeds whose run could not be made (the stack did not start, ...), with why.
    pub errors: BTreeMap<u64, String>,
    /// Totals over the seeds.
    pub totals: Totals,
}

/// The soak's totals.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Faults of each kind in the plans.
    pub kinds: BTreeMap<&'static str, u64>,
    /// Steps applied by name.
    pub applied: BTreeMap<String, u64>,
    /// Steps never reached.
    pub not_reached: u64,
    /// Failed calls by the fault kind in force when they ended.
    pub calls_failed_during: BTreeMap<String, u64>,
    /// Calls cut by kills.
    pub calls_cut: u64,
    /// Calls refused by killed plugins.
    pub calls_refused: u64,
    /// Sessions evicted.
    pub sessions_evicted: u64,
    /// Stuck shares reset.
    pub shares_reset: u64,
    /// CSI calls.
    pub calls: u64,
    /// Failed.
    pub calls_failed: u64,
    /// Failed calls by method and code.
    pub failed_by: BTreeMap<String, u64>,
    /// Retried.
    pub retries: u64,
    /// Claims Bound / failed.
    pub claims: (usize, usize),
    /// Pods Running / asked for.
    pub pods: (usize, usize),
    /// Seeds by back end.
    pub backends: BTreeMap<String, u64>,
    /// Seeds whose plan keeps the event log fixed.
    pub reproducible: u64,
    /// Each invariant: seeds that broke it (0 everywhere is a pass).
    pub invariants: BTreeMap<&'static str, u64>,
    /// Seeds passed / failed (errors included).
    pub passed: u64,
    /// Seeds failed.
    pub failed: u64,
    /// Wall seconds: total, mean and longest per seed.
    pub wall_s: (f64, f64, f64),
    /// Simulated seconds: mean and longest per seed.
    pub sim_s: (f64, f64),
}

/// The invariants of the final table, and the check of each on one seed.
const INVARIANTS: [&str; 14] = [
    "leaked subvolumes",
    "leaked shares",
    "leaked access rules",
    "leaked cephx users",
    "leaked MDS sessions",
    "leaked mount records",
    "leaked files (key files, state)",
    "leaked journal entries",
    "leaked journal objects",
    "API objects left",
    "duplicate volumes",
    "claims stuck without an error",
    "pods stuck without an error",
    "back ends unreadable / steps refused",
];

fn broken(r: &SeedReport, invariant: &str) -> bool {
    let l = &r.leaks;
    match invariant {
        "leaked subvolumes" => l.subvolumes > 0,
        "leaked shares" => l.shares > 0,
        "leaked access rules" => l.access_rules > 0,
        "leaked cephx users" => l.cephx_users > 0,
        "leaked MDS sessions" => l.mds_sessions > 0,
        "leaked mount records" => l.mount_records > 0,
        "leaked files (key files, state)" => l.files > 0,
        "leaked journal entries" => l.journal_entries > 0,
        "leaked journal objects" => l.journal_objects > 0,
        "API objects left" => !r.leaked_objects.is_empty(),
        "duplicate volumes" => !r.duplicates.is_empty(),
        "claims stuck without an error" => {
            r.claims_failed.values().any(|s| s == "Pending")
                || (r.claims_bound == 0 && r.claims_failed.is_empty())
        }
        "pods stuck without an error" => r.pods_failed.values().any(String::is_empty),
        _ => l.error.is_some() || r.checkpoints.1 > 0 || !r.faults.refused.is_empty(),
    }
}

impl SoakSummary {
    fn new(scenario: &str) -> Self {
        Self {
            scenario: scenario.to_owned(),
            seeds: Vec::new(),
            runs: Vec::new(),
            errors: BTreeMap::new(),
            totals: Totals::default(),
        }
    }

    fn total(&mut self) {
        let mut t = Totals::default();
        for inv in INVARIANTS {
            t.invariants.insert(inv, 0);
        }
        let mut longest = 0.0f64;
        let mut sim_longest = 0.0f64;
        let mut sim_sum = 0.0;
        for r in &self.runs {
            for (k, n) in &r.kinds {
                *t.kinds.entry(k).or_default() += n;
            }
            for (k, n) in &r.faults.applied {
                *t.applied.entry(k.clone()).or_default() += n;
            }
            t.not_reached += r.faults.not_reached;
            for (k, n) in &r.faults.calls_failed_during {
                *t.calls_failed_during.entry(k.clone()).or_default() += n;
            }
            t.calls_cut += r.faults.calls_cut;
            t.calls_refused += r.faults.calls_refused;
            t.sessions_evicted += r.faults.sessions_evicted;
            t.shares_reset += r.faults.shares_reset;
            t.calls += r.calls;
            t.calls_failed += r.calls_failed;
            for (k, n) in &r.failed_by {
                *t.failed_by.entry(k.clone()).or_default() += n;
            }
            t.retries += r.retries;
            t.claims.0 += r.claims_bound;
            t.claims.1 += r.claims_failed.len();
            t.pods.0 += r.pods_running.0;
            t.pods.1 += r.pods_running.1;
            *t.backends.entry(r.backend.to_string()).or_default() += 1;
            t.reproducible += u64::from(r.reproducible);
            for inv in INVARIANTS {
                if broken(r, inv) {
                    *t.invariants.entry(inv).or_default() += 1;
                }
            }
            if r.violations.is_empty() {
                t.passed += 1;
            } else {
                t.failed += 1;
            }
            t.wall_s.0 += r.wall_s;
            longest = longest.max(r.wall_s);
            sim_sum += r.sim_s;
            sim_longest = sim_longest.max(r.sim_s);
        }
        t.failed += self.errors.len() as u64;
        let n = self.runs.len().max(1) as f64;
        t.wall_s.1 = t.wall_s.0 / n;
        t.wall_s.2 = longest;
        t.sim_s = (sim_sum / n, sim_longest);
        self.totals = t;
    }

    /// Whether every seed ran and kept every invariant.
    pub fn passed(&self) -> bool {
        self.totals.failed == 0 && !self.runs.is_empty()
    }

    /// The final table.
    pub fn table(&self) -> String {
        let t = &self.totals;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "soak: {} seeds ({}), {} passed, {} failed; {} with a reproducible plan",
            self.seeds.len(),
            t.backends
                .iter()
                .map(|(b, n)| format!("{n} {b}"))
                .collect::<Vec<_>>()
                .join(", "),
            t.passed,
            t.failed,
            t.reproducible
        );
        let _ = writeln!(
            s,
            "\n| fault kind | in the plans | steps applied | calls failed while in force |"
        );
        let _ = writeln!(s, "|---|---|---|---|");
        let applied = |n: &str| t.applied.get(n).copied().unwrap_or(0);
        let rows: [(&str, String); 9] = [
            (
                "ceph-errors",
                format!("{} windows opened", applied("ceph-rules-on")),
            ),
            ("ceph-hangs", "(in the windows above)".into()),
            (
                "mds-down",
                format!("{} down, {} up", applied("mds-down"), applied("mds-up")),
            ),
            (
                "evictions",
                format!(
                    "{} ({} sessions evicted)",
                    applied("evict"),
                    t.sessions_evicted
                ),
            ),
            (
                "manila-5xx",
                format!("{} windows opened", applied("manila-faults-on")),
            ),
            (
                "manila-stuck",
                format!(
                    "(in the windows above); {} resets, {} shares reset",
                    applied("reset-stuck-shares"),
                    t.shares_reset
                ),
            ),
            (
                "controller-kills",
                format!(
                    "{} kills, {} restarts (all plugins)",
                    applied("kill"),
                    applied("restart")
                ),
            ),
            (
                "node-kills",
                format!(
                    "{} calls cut, {} refused while down",
                    t.calls_cut, t.calls_refused
                ),
            ),
            (
                "ceph-restarts",
                format!("{} restarts", applied("restart-ceph")),
            ),
        ];
        for (kind, applied) in rows {
            let _ = writeln!(
                s,
                "| {kind} | {} | {applied} | {} |",
                t.kinds.get(kind).copied().unwrap_or(0),
                t.calls_failed_during.get(kind).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            s,
            "\nsteps not reached (the run ended first): {}",
            t.not_reached
        );
        let _ = writeln!(
            s,
            "CSI calls {} (failed {}), retries {}; claims Bound {} / failed {}; pods Running {} / {}",
            t.calls, t.calls_failed, t.retries, t.claims.0, t.claims.1, t.pods.0, t.pods.1
        );
        let _ = writeln!(
            s,
            "failed calls by method and code: {}",
            t.failed_by
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            s,
            "wall: {:.1} s in all, {:.1} s per seed on average, {:.1} s at most; simulated: {:.0} s per seed on average, {:.0} s at most",
            t.wall_s.0, t.wall_s.1, t.wall_s.2, t.sim_s.0, t.sim_s.1
        );
        let _ = writeln!(s, "\n| invariant | seeds that broke it |");
        let _ = writeln!(s, "|---|---|");
        for (inv, n) in &t.invariants {
            let _ = writeln!(s, "| {inv} | {n} |");
        }
        for (seed, e) in &self.errors {
            let _ = writeln!(s, "\nseed {seed}: did not run: {e}");
        }
        s
    }
}

/// Runs the soak: each seed's scenario with its drawn plan, one line per seed on
/// `out_line` as it finishes; writes `soak.json` and each seed's `summary.json` and
/// `events.jsonl` under the output directory.
pub async fn run_soak(
    args: &SoakArgs,
    mut out_line: impl FnMut(&str),
) -> anyhow::Result<SoakSummary> {
    anyhow::ensure!(args.seeds > 0, "--seeds must be at least 1");
    let mut base = Params::load(&args.scenario)?;
    for s in &args.set {
        base = base.set(s)?;
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/harness/soak"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut summary = SoakSummary::new(&base.name);
    let last = args.first_seed.saturating_add(args.seeds - 1);
    for seed in args.first_seed..=last {
        summary.seeds.push(seed);
        let backend = args.backend.of(seed);
        let mut p = base.clone();
        p.backend = backend;
        p.fault_plan = draw_plan(
            seed,
            p.node_count(),
            backend,
            args.reproducible,
            !args.no_ceph_restarts,
        );
        let plan = p.fault_plan.clone();
        let p = p.validated().context("the drawn plan")?;
        let run = crate::run(p, seed, crate::BackendKind::Real, crate::Output::Memory).await;
        match run {
            Ok(run) => {
                let report = SeedReport::of(seed, backend, plan, &run);
                let dir = out.join(format!("seed-{seed}"));
                std::fs::create_dir_all(&dir)?;
                std::fs::write(
                    dir.join("summary.json"),
                    serde_json::to_string_pretty(&run.summary)?,
                )?;
                let mut events = run.events.join("\n");
                events.push('\n');
                std::fs::write(dir.join("events.jsonl"), events)?;
                out_line(&report.line());
                summary.runs.push(report);
            }
            Err(e) => {
                out_line(&format!("seed {seed:>4} {backend}: did not run: {e:#}"));
                summary.errors.insert(seed, format!("{e:#}"));
            }
        }
    }
    summary.total();
    std::fs::write(
        out.join("soak.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_draws_one_plan_whose_windows_close_and_kills_restart() {
        for seed in 1..200 {
            for backend in [StorageBackend::Cephfs, StorageBackend::Manila] {
                let plan = draw_plan(seed, 5, backend, false, true);
                assert_eq!(plan, draw_plan(seed, 5, backend, false, true));
                let fixed = draw_plan(seed, 5, backend, true, true);
                assert!(fixed.iter().all(Step::reproducible), "{fixed:?}");
                assert_eq!(
                    fixed.len(),
                    plan.iter()
                        .filter(|s| s.action != Action::RestartCeph)
                        .count()
                );
                let mut open = BTreeMap::new();
                for s in &plan {
                    assert_eq!(s.check(5), Ok(()), "{s:?}");
                    let key = match &s.action {
                        Action::CephRulesOn { window, .. }
                        | Action::CephRulesOff { window }
                        | Action::ManilaFaultsOn { window, .. }
                        | Action::ManilaFaultsOff { window } => format!("w{window}"),
                        Action::MdsDown | Action::MdsUp => "mds".into(),
                        Action::Kill { plugin } | Action::Restart { plugin } => {
                            format!("{plugin}@{:?}{}", s.at, s.after_s)
                        }
                        _ => continue,
                    };
                    *open.entry(key).or_insert(0i32) += 1;
                }
                // Every on has its off (kills are keyed by their own time, so each
                // restart is counted against the kill drawn with it by the pair check
                // below).
                let kills = plan
                    .iter()
                    .filter(|s| matches!(s.action, Action::Kill { .. }))
                    .count();
                let restarts = plan
                    .iter()
                    .filter(|s| matches!(s.action, Action::Restart { .. }))
                    .count();
                assert_eq!(kills, restarts, "seed {seed}: {plan:?}");
                for (k, n) in open {
                    if !k.contains('@') {
                        assert_eq!(n, 2, "seed {seed}: {k} in {plan:?}");
                    }
                }
                if backend == StorageBackend::Cephfs {
                    let k = kinds_of(&plan);
                    assert_eq!(k["manila-5xx"] + k["manila-stuck"], 0);
                }
                // Without fake-ceph restarts, the same plan less them.
                let without: Vec<Step> = plan
                    .iter()
                    .filter(|s| s.action != Action::RestartCeph)
                    .cloned()
                    .collect();
                assert_eq!(draw_plan(seed, 5, backend, false, false), without);
            }
        }
    }

    #[test]
    fn the_matrix_covers_every_kind_over_a_few_seeds() {
        let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
        for seed in 1..=10 {
            for (k, n) in kinds_of(&draw_plan(
                seed,
                5,
                BackendChoice::Both.of(seed),
                false,
                true,
            )) {
                *seen.entry(k).or_default() += n;
            }
        }
        for k in KINDS {
            assert!(seen[k] > 0, "{k} never drawn in 10 seeds: {seen:?}");
        }
    }

    #[test]
    fn seeds_alternate_the_back_end() {
        assert_eq!(BackendChoice::Both.of(1), StorageBackend::Cephfs);
        assert_eq!(BackendChoice::Both.of(2), StorageBackend::Manila);
        assert_eq!(BackendChoice::Cephfs.of(2), StorageBackend::Cephfs);
        assert_eq!(BackendChoice::Manila.of(1), StorageBackend::Manila);
    }
}
