//! The busy workload of the 2018 test: each pod, once Running, unpacks an archive shaped
//! like a Linux kernel tree into each of its mounts. Every mount is one client (one MDS
//! session per node and volume), so s shares x r replicas make s x r busy clients.
//!
//! What is real and what is modelled:
//!
//! - The archive is generated from the seed ([`Archive`]): a random tree of `dirs`
//!   directories, `files` files spread over them and log-normal sizes scaled to `bytes`.
//!   Only its counts and sizes matter; no archive file exists.
//! - Each client's first directories and files (`sample_dirs`, `sample_files`) are made
//!   for real, through the very MDS session its node's NodeStage opened (found by the
//!   session's `hostname` and `mount_point`): mkdir, create with `sample_bytes` of data,
//!   setattr to the full size (sparse), getattr. fake-ceph executes and counts them; the
//!   files are in the subvolume and go with it at teardown.
//! - The rest (about 200k requests per client, 200M for busy-1k) is modelled on the
//!   simulated clock: clients form a closed system against the MDS capacity
//!   ([`fake_ceph::mds_load::closed_loop_mixed`]), and the progress is integrated
//!   piecewise between the events that change the clients (a pod starts, finishes or is
//!   deleted): each client progresses at its own constant rate between them, and the
//!   rates sum to the MDS throughput `X`. Each client's modelled requests are charged to
//!   its session in batches ([`fake_ceph::Mount::charge_modelled`]) at every change and
//!   every `step_s`: `mds_server.handle_client_request`, `mds.request`, `reply_latency`
//!   (with the model's latency), caps and inodes. hcr/s in the report is the difference
//!   of that counter between steps.
//! - The capacity is the load model's under cache pressure
//!   ([`fake_ceph::LoadModel::effective_capacity`]): the active clients' working set is
//!   the caps each would hold unrecalled (`client_cache_inodes`, at most the archive's
//!   inodes and `mds_max_caps_per_client`), against the cache of fake-ceph's default
//!   MDS configuration (the one the harness's fake-ceph runs with) on each active rank.
//! - Clients differ: each pod draws, from the workload's seeded stream (the one the
//!   archive came from, continued in the order the pods start), a think time
//!   `Z_i = Z exp(s e1 - s^2/2)` with `s = client_think_sigma` and a mean number of
//!   requests in flight `c_i = exp(t e2 - t^2/2)` with `t = client_in_flight_sigma`
//!   (`e1`, `e2` standard normal; both log-normal with means `Z` and 1). A pod's mounts
//!   share its node and its draw. Below saturation `Z_i` sets a client's pace; on a
//!   saturated MDS the reply latency dwarfs it and `c_i` sets the client's share.
//!
//! The real sample is charged when the client starts, the model's share as it goes; a
//! client's total is exactly `files x requests_per_file + dirs x requests_per_dir`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use fake_ceph::mds_load::{self, Clients, Load};
use fake_ceph::{Cluster, MdsConfig, MdsCounters, ModelledRequests, Mount, Op};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::csi::{Backend, node_name};
use crate::params;
use crate::stats::{Percentiles, percentiles};
use crate::time::{SimTime, stream};

/// The request kinds the workload makes, in the order of the per-kind counts.
const KINDS: [&str; 4] = ["create", "mkdir", "setattr", "getattr"];

/// One archive entry, by its path under the archive's top directory (`""` is the top).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory.
    Dir(String),
    /// A file and its size.
    File(String, u64),
}

/// The archive's shape: counts, sizes, and its first entries in tar order.
#[derive(Debug, Clone, PartialEq)]
pub struct Archive {
    /// Directories, the top one included.
    pub dirs: u64,
    /// Files.
    pub files: u64,
    /// Bytes of file data.
    pub bytes: u64,
    /// The entries every client makes for real: the first directories in tar order
    /// (depth first) and the first files in them.
    pub sample: Vec<Entry>,
    /// File sizes: median, 99th percentile, largest.
    pub file_size: [u64; 3],
}

/// One standard normal draw (Box-Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// `n` log-normal sizes with spread `sigma`, scaled so that they sum to `total`.
fn sizes(n: usize, total: u64, sigma: f64, rng: &mut ChaCha8Rng) -> Vec<u64> {
    if n == 0 {
        return Vec::new();
    }
    let raw: Vec<f64> = (0..n).map(|_| (sigma * normal(rng)).exp()).collect();
    let sum: f64 = raw.iter().sum();
    let mut out: Vec<u64> = raw
        .iter()
        .map(|r| (r / sum * total as f64).floor() as u64)
        .collect();
    let got: u64 = out.iter().sum();
    if got <= total {
        // Rounding left a few bytes: one more for the first files.
        let rest = total - got;
        let len = out.len() as u64;
        for (i, s) in out.iter_mut().enumerate() {
            *s += rest / len + u64::from((i as u64) < rest % len);
        }
    } else {
        // Floating point overshot: take it from the largest file.
        let big = (0..n).max_by_key(|&i| out[i]).unwrap_or(0);
        out[big] = out[big].saturating_sub(got - total);
    }
    out
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() || name.is_empty() {
        format!("{parent}{name}")
    } else {
        format!("{parent}/{name}")
    }
}

impl Archive {
    /// The archive `b` describes, drawn from `rng`.
    pub fn generate(b: &params::Busy, rng: &mut ChaCha8Rng) -> Self {
        let dirs = b.dirs.max(1) as usize;
        // A random recursive tree: each directory hangs under an earlier one, which
        // gives a bushy tree a few levels deep, like a source tree.
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); dirs];
        for d in 1..dirs {
            children[rng.random_range(0..d)].push(d);
        }
        let mut files_in = vec![0u64; dirs];
        for _ in 0..b.files {
            files_in[rng.random_range(0..dirs)] += 1;
        }
        let sizes = sizes(b.files as usize, b.bytes, b.file_size_sigma, rng);
        // Tar order, depth first: a directory, its files, then its subdirectories. The
        // sample takes the first `sample_dirs` directories and the first files in them.
        let mut sample = Vec::new();
        let (mut sd, mut sf) = (0u64, 0usize);
        let mut stack = vec![(0usize, String::new())];
        while let Some((d, rel)) = stack.pop() {
            if sd >= b.sample_dirs {
                break;
            }
            sd += 1;
            sample.push(Entry::Dir(rel.clone()));
            for j in 0..files_in[d] {
                if sf as u64 >= b.sample_files {
                    break;
                }
                let size = sizes.get(sf).copied().unwrap_or(0);
                sample.push(Entry::File(join(&rel, &format!("f{j:05}.c")), size));
                sf += 1;
            }
            for &c in children[d].iter().rev() {
                stack.push((c, join(&rel, &format!("d{c:05}"))));
            }
        }
        let mut sorted = sizes;
        sorted.sort_unstable();
        let at = |q: f64| {
            if sorted.is_empty() {
                0
            } else {
                sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
            }
        };
        Archive {
            dirs: dirs as u64,
            files: b.files,
            bytes: b.bytes,
            sample,
            file_size: [at(0.5), at(0.99), sorted.last().copied().unwrap_or(0)],
        }
    }

    /// Files and directories in the sample.
    fn sample_counts(&self) -> (u64, u64) {
        let files = self
            .sample
            .iter()
            .filter(|e| matches!(e, Entry::File(..)))
            .count() as u64;
        (files, self.sample.len() as u64 - files)
    }
}

/// MDS requests by kind ([`KINDS`]) for `files` files and `dirs` directories: a file is a
/// create, a setattr, then getattrs; a directory a mkdir, then getattrs.
fn requests_by_kind(files: u64, dirs: u64, per_file: u64, per_dir: u64) -> [u64; 4] {
    [
        files,
        dirs,
        if per_file >= 2 { files } else { 0 },
        files * per_file.saturating_sub(2) + dirs * per_dir.saturating_sub(1),
    ]
}

/// The operations that make the sample for real under `top`, request for request as
/// [`requests_by_kind`] counts them.
fn sample_ops(archive: &Archive, top: &str, b: &params::Busy) -> Vec<Op> {
    let mut ops = Vec::new();
    for e in &archive.sample {
        match e {
            Entry::Dir(rel) => {
                let path = join(top, rel);
                ops.push(Op::Mkdir { path: path.clone() });
                for _ in 1..b.requests_per_dir {
                    ops.push(Op::Stat { path: path.clone() });
                }
            }
            Entry::File(rel, size) => {
                let path = join(top, rel);
                let header = format!("/* {path} */\n");
                let n = b.sample_bytes.min(*size) as usize;
                let data: Vec<u8> = header.bytes().cycle().take(n).collect();
                ops.push(Op::write(&path, &data));
                if b.requests_per_file >= 2 {
                    ops.push(Op::Truncate {
                        path: path.clone(),
                        size: *size,
                    });
                }
                for _ in 2..b.requests_per_file {
                    ops.push(Op::Stat { path: path.clone() });
                }
            }
        }
    }
    ops
}

/// The pod's PV a mount point belongs to (`.../pv/<pv>/globalmount`).
fn pv_of(mount_point: &str) -> Option<&str> {
    mount_point
        .strip_suffix("/globalmount")?
        .rsplit_once("/pv/")
        .map(|(_, pv)| pv)
}

/// One pod's unpacks: one client per mount, all progressing alike.
#[derive(Debug)]
struct Pod {
    node: usize,
    started: SimTime,
    /// `Z_i`: each client's own time per request, seconds.
    think_s: f64,
    /// `c_i`: each client's mean requests in flight.
    in_flight: f64,
    /// Requests per second each client completes, until the clients change.
    rate: f64,
    /// Requests each client has done.
    done: f64,
    /// The PVs mounted, one client each.
    pvs: Vec<String>,
    /// Their nodes' MDS sessions, once found.
    mounts: Vec<Mount>,
    /// Modelled requests charged to each client so far, by kind.
    charged: [u64; 4],
}

/// Whether the workload is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Unpacks are running.
    Unpacking,
    /// Every unpack that started has finished.
    Finished,
    /// The deadline passed with unpacks running.
    Deadline,
}

/// What the simulation does after a call into the workload: log lines (what, object,
/// result) and the next wake-up (time, generation).
#[derive(Debug, Default)]
pub struct Out {
    /// Event log lines.
    pub log: Vec<(String, String, String)>,
    /// When to call [`Busy::wake`] next, with which generation.
    pub wake: Option<(SimTime, u64)>,
}

/// The busy workload's state and its results.
#[derive(Debug)]
pub struct Busy {
    cfg: params::Busy,
    archive: Archive,
    /// Requests per client by kind, and those the sample makes for real.
    total: [u64; 4],
    sample: [u64; 4],
    requests: u64,
    think_s: f64,
    capacity: f64,
    /// Caps each client would hold unrecalled: its share of the MDS working set.
    caps_wanted: u64,
    /// The MDS configuration whose cache the working set presses on.
    mds_config: MdsConfig,
    /// The seeded stream the clients' variation is drawn from.
    rng: ChaCha8Rng,
    cluster: Option<Cluster>,
    at: SimTime,
    load: Load,
    round: u64,
    next_step: SimTime,
    pods: BTreeMap<String, Pod>,
    to_sample: Vec<String>,
    // Results.
    first_start: Option<SimTime>,
    idle_at: Option<SimTime>,
    base: Option<MdsCounters>,
    end: Option<MdsCounters>,
    series: Vec<(SimTime, u64)>,
    untar: Vec<Duration>,
    done_at: Vec<SimTime>,
    clients_started: u64,
    pods_started: u64,
    pods_cut_off: u64,
    requests_modelled: u64,
    requests_charged: u64,
    /// The model's reply latency of the requests charged, summed, seconds.
    reply_charged_s: f64,
    requests_real: u64,
    real_errors: u64,
    charge_errors: u64,
    peak_clients: usize,
    peak_reply_latency_s: f64,
    peak_cache_pressure: f64,
    min_capacity: Option<f64>,
    peak: MdsCounters,
}

impl Busy {
    /// The workload `cfg` describes; the archive is drawn from `seed`. With a cluster,
    /// its MDS gets the scenario's load model and every request is charged to it.
    pub fn new(cfg: &params::Busy, seed: u64, cluster: Option<Cluster>) -> Self {
        // The archive first, then (continuing the same stream) the clients' variation.
        let mut rng = stream(seed, "busy-archive");
        let archive = Archive::generate(cfg, &mut rng);
        let total = requests_by_kind(
            archive.files,
            archive.dirs,
            cfg.requests_per_file,
            cfg.requests_per_dir,
        );
        // Without a fake-ceph (the mock back end) nothing is made for real.
        let (sf, sd) = match &cluster {
            Some(_) => archive.sample_counts(),
            None => (0, 0),
        };
        let sample = requests_by_kind(sf, sd, cfg.requests_per_file, cfg.requests_per_dir);
        let requests: u64 = total.iter().sum();
        // Data is written between the metadata requests: it adds to the client's time.
        let data_s = archive.bytes as f64 / (cfg.client_mb_per_s * 1e6);
        let think_s = cfg.client_ms_per_request / 1e3 + data_s / requests.max(1) as f64;
        if let Some(c) = &cluster {
            c.set_mds_load_model(cfg.mds);
        }
        let capacity = cfg.mds.capacity();
        let mds_config = MdsConfig::default();
        let caps_wanted = mds_load::caps_wanted(
            cfg.client_cache_inodes,
            archive.dirs.saturating_add(archive.files),
            &mds_config,
        );
        Self {
            cfg: cfg.clone(),
            archive,
            total,
            sample,
            requests,
            think_s,
            capacity,
            caps_wanted,
            mds_config,
            rng,
            cluster,
            at: SimTime::ZERO,
            load: mds_load::closed_loop(0, think_s, capacity),
            round: 0,
            next_step: SimTime::ZERO,
            pods: BTreeMap::new(),
            to_sample: Vec::new(),
            first_start: None,
            idle_at: None,
            base: None,
            end: None,
            series: Vec::new(),
            untar: Vec::new(),
            done_at: Vec::new(),
            clients_started: 0,
            pods_started: 0,
            pods_cut_off: 0,
            requests_modelled: 0,
            requests_charged: 0,
            reply_charged_s: 0.0,
            requests_real: 0,
            real_errors: 0,
            charge_errors: 0,
            peak_clients: 0,
            peak_reply_latency_s: 0.0,
            peak_cache_pressure: 0.0,
            min_capacity: None,
            peak: MdsCounters::default(),
        }
    }

    /// The in-process fake-ceph of a back end, if it has one.
    pub fn cluster_of(backend: &Backend) -> Option<Cluster> {
        match backend {
            Backend::Real(r) => r.cluster().cloned(),
            Backend::Mock(_) => None,
        }
    }

    /// MDS requests one client makes.
    pub fn requests_per_client(&self) -> u64 {
        self.requests
    }

    /// The first multiple of `step_s` on the simulated clock after `t`.
    fn step_after(&self, t: SimTime) -> SimTime {
        let step = Duration::from_secs_f64(self.cfg.step_s).as_nanos().max(1) as u64;
        SimTime((t.0 / step).saturating_add(1).saturating_mul(step))
    }

    fn counters(&self) -> MdsCounters {
        match &self.cluster {
            Some(c) => c.mds_counters(),
            None => MdsCounters {
                handle_client_request: self.requests_modelled + self.requests_real,
                ..MdsCounters::default()
            },
        }
    }

    /// Pod `pod` on `node` became Running with these PVs mounted: its unpacks start.
    pub fn start(&mut self, now: SimTime, pod: &str, node: usize, pvs: Vec<String>) -> Out {
        let mut out = Out::default();
        if self.pods.contains_key(pod) {
            return out;
        }
        self.advance(now, &mut out);
        if self.first_start.is_none() {
            self.first_start = Some(now);
            self.base = Some(self.sample(now));
            self.next_step = self.step_after(now);
        }
        self.pods_started += 1;
        self.clients_started += pvs.len() as u64;
        out.log.push((
            "untar".into(),
            pod.into(),
            format!("start {} clients", pvs.len()),
        ));
        // Drawn for every pod, in start order, so that the stream stays in step.
        let (think_s, in_flight) = self.draw_client();
        if pvs.is_empty() {
            self.untar.push(Duration::ZERO);
            self.done_at.push(now);
            out.log.push(("untar".into(), pod.into(), "done".into()));
        } else {
            self.pods.insert(
                pod.to_owned(),
                Pod {
                    node,
                    started: now,
                    think_s,
                    in_flight,
                    rate: 0.0,
                    done: 0.0,
                    pvs,
                    mounts: Vec::new(),
                    charged: [0; 4],
                },
            );
            if self.cluster.is_some() {
                self.to_sample.push(pod.to_owned());
            }
        }
        self.retune();
        out.wake = self.reschedule();
        out
    }

    /// Pod `pod` is being deleted: an unpack still running is cut off.
    pub fn stop(&mut self, now: SimTime, pod: &str) -> Out {
        let mut out = Out::default();
        if !self.pods.contains_key(pod) {
            return out;
        }
        self.advance(now, &mut out);
        if self.pods.remove(pod).is_some() {
            self.pods_cut_off += 1;
            self.to_sample.retain(|p| p != pod);
            out.log.push(("untar".into(), pod.into(), "cut off".into()));
            self.retune();
            self.went_idle(now);
        }
        out.wake = self.reschedule();
        out
    }

    /// A wake-up from [`Out::wake`]; stale generations are ignored.
    pub fn wake(&mut self, now: SimTime, round: u64) -> Out {
        let mut out = Out::default();
        if round != self.round {
            return out;
        }
        self.advance(now, &mut out);
        out.wake = self.reschedule();
        out
    }

    /// Whether the workload is finished (`deploy_began`: when pods started to be made).
    pub fn verdict(&self, now: SimTime, deploy_began: SimTime) -> Verdict {
        if self.pods.is_empty() && self.to_sample.is_empty() {
            Verdict::Finished
        } else if now.since(deploy_began) > Duration::from_secs_f64(self.cfg.deadline_s) {
            Verdict::Deadline
        } else {
            Verdict::Unpacking
        }
    }

    /// A pod's clients' think time and mean requests in flight: log-normal around `Z`
    /// and 1 (see the module doc).
    fn draw_client(&mut self) -> (f64, f64) {
        let lognormal = |sigma: f64, e: f64| (sigma * e - sigma * sigma / 2.0).exp();
        let e1 = normal(&mut self.rng);
        let e2 = normal(&mut self.rng);
        (
            self.think_s * lognormal(self.cfg.client_think_sigma, e1),
            lognormal(self.cfg.client_in_flight_sigma, e2),
        )
    }

    /// Recomputes the load, and each pod's rate, for the active clients.
    fn retune(&mut self) {
        let n: usize = self.pods.values().map(|p| p.pvs.len()).sum();
        self.peak_clients = self.peak_clients.max(n);
        let working_set = n as f64 * self.caps_wanted as f64;
        let capacity = self
            .cfg
            .mds
            .effective_capacity(working_set, &self.mds_config);
        let groups: Vec<Clients> = self
            .pods
            .values()
            .map(|p| Clients {
                count: p.pvs.len(),
                in_flight: p.in_flight,
                think_s: p.think_s,
            })
            .collect();
        let (load, rates) = mds_load::closed_loop_mixed(&groups, capacity);
        for (pod, rate) in self.pods.values_mut().zip(rates) {
            pod.rate = rate;
        }
        self.load = load;
        if n > 0 {
            self.peak_reply_latency_s = self.peak_reply_latency_s.max(self.load.reply_latency_s);
            self.peak_cache_pressure = self
                .peak_cache_pressure
                .max(self.cfg.mds.cache_pressure(working_set, &self.mds_config));
            self.min_capacity = Some(self.min_capacity.map_or(capacity, |c| c.min(capacity)));
        }
    }

    /// Samples the counters into the hcr series and the peaks.
    fn sample(&mut self, now: SimTime) -> MdsCounters {
        let c = self.counters();
        self.series.push((now, c.handle_client_request));
        self.peak.rss_bytes = self.peak.rss_bytes.max(c.rss_bytes);
        self.peak.caps = self.peak.caps.max(c.caps);
        self.peak.inodes = self.peak.inodes.max(c.inodes);
        c
    }

    /// The last active client finished or went: the end of the window.
    fn went_idle(&mut self, now: SimTime) {
        if self.pods.is_empty() {
            self.idle_at = Some(now);
            self.end = Some(self.sample(now));
        }
    }

    /// The next wake-up: the next step or the next completion, whichever is first.
    fn reschedule(&mut self) -> Option<(SimTime, u64)> {
        self.round += 1;
        if self.pods.is_empty() {
            return None;
        }
        let mut wake = self.next_step;
        let r = self.requests as f64;
        let secs = self
            .pods
            .values()
            .filter(|p| p.rate > 0.0)
            .map(|p| (r - p.done).max(0.0) / p.rate)
            .reduce(f64::min);
        if let Some(secs) = secs {
            // Saturating: a rate so small that the finish lies beyond the clock's range
            // leaves the next step as the wake-up.
            let nanos = (secs * 1e9).ceil();
            if nanos < u64::MAX as f64 {
                wake = wake.min(self.at.after(Duration::from_nanos(nanos as u64)));
            }
        }
        Some((wake.max(self.at), self.round))
    }

    /// Integrates progress up to `now` at the current rate, charges every client's
    /// requests so far, and finishes the clients that are done.
    fn advance(&mut self, now: SimTime, out: &mut Out) {
        let was_active = !self.pods.is_empty();
        let dt = now.since(self.at).as_secs_f64();
        self.at = now;
        let r = self.requests as f64;
        let latency = self.load.reply_latency_s;
        let mut finished = Vec::new();
        let pods = std::mem::take(&mut self.pods);
        let mut kept = BTreeMap::new();
        for (name, mut pod) in pods {
            pod.done += pod.rate * dt;
            let done = pod.done;
            let complete = done + 1e-6 * r.max(1.0) >= r;
            self.charge(&mut pod, done, complete, latency);
            if complete {
                finished.push((name, pod));
            } else {
                kept.insert(name, pod);
            }
        }
        self.pods = kept;
        let changed = !finished.is_empty();
        for (name, pod) in finished {
            self.untar.push(now.since(pod.started));
            self.done_at.push(now);
            out.log.push(("untar".into(), name, "done".into()));
        }
        if was_active && now >= self.next_step {
            self.sample(now);
            self.next_step = self.step_after(now);
        }
        // The rates hold until the clients change.
        if changed {
            self.retune();
        }
        if was_active && self.pods.is_empty() {
            self.went_idle(now);
        }
    }

    /// Charges each client of `pod` for `done` requests (all of them when `complete`),
    /// less the real sample, with `latency` seconds per reply.
    fn charge(&mut self, pod: &mut Pod, done: f64, complete: bool, latency: f64) {
        let rem: [u64; 4] = std::array::from_fn(|k| self.total[k] - self.sample[k]);
        let rem_total: u64 = rem.iter().sum();
        let sample_total: u64 = self.sample.iter().sum();
        let frac = if rem_total == 0 {
            1.0
        } else {
            ((done - sample_total as f64) / rem_total as f64).clamp(0.0, 1.0)
        };
        let mut delta = [0u64; 4];
        for k in 0..4 {
            let target = if complete {
                rem[k]
            } else {
                ((rem[k] as f64 * frac).floor() as u64).min(rem[k])
            };
            delta[k] = target.saturating_sub(pod.charged[k]);
            pod.charged[k] = pod.charged[k].max(target);
        }
        let n: u64 = delta.iter().sum();
        if n == 0 {
            return;
        }
        let clients = pod.pvs.len() as u64;
        self.requests_modelled += n * clients;
        let (Some(cluster), false) = (&self.cluster, pod.mounts.is_empty()) else {
            return;
        };
        let by_kind: [(&str, u64); 4] = std::array::from_fn(|k| (KINDS[k], delta[k]));
        let batch = ModelledRequests {
            by_kind: &by_kind,
            reply_latency: Duration::from_secs_f64(latency * n as f64),
            inodes_created: delta[0] + delta[1],
            client_cache_inodes: self.cfg.client_cache_inodes,
        };
        let mounts: Vec<&Mount> = pod.mounts.iter().collect();
        match cluster.charge_modelled(&mounts, &batch) {
            Ok(refused) => {
                let charged = n * (mounts.len() - refused) as u64;
                self.requests_charged += charged;
                self.reply_charged_s += latency * charged as f64;
                self.charge_errors += refused as u64;
            }
            Err(_) => self.charge_errors += mounts.len() as u64,
        }
    }

    /// Makes the sample of the clients started since the last call for real, through
    /// their nodes' MDS sessions (the simulation calls this after each event).
    pub async fn run_samples(&mut self) {
        if self.to_sample.is_empty() {
            return;
        }
        let pods = std::mem::take(&mut self.to_sample);
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let mut sessions: HashMap<(String, String), Mount> = HashMap::new();
        for m in cluster.mounts() {
            let md = m.client_metadata();
            if let (Some(host), Some(pv)) = (
                md.get("hostname"),
                md.get("mount_point").and_then(|p| pv_of(p)),
            ) {
                sessions.insert((host.clone(), pv.to_owned()), m.clone());
            }
        }
        for name in pods {
            let Some(pod) = self.pods.get_mut(&name) else {
                continue;
            };
            let host = node_name(pod.node);
            let top = format!("{name}-linux");
            let ops = sample_ops(&self.archive, &top, &self.cfg);
            for pv in &pod.pvs {
                let Some(m) = sessions.get(&(host.clone(), pv.clone())) else {
                    // No session for this volume on this node: nothing is charged.
                    self.real_errors += 1;
                    continue;
                };
                pod.mounts.push(m.clone());
                let results = m.run(ops.clone()).await;
                let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
                self.requests_real += ok;
                self.real_errors += results.len() as u64 - ok;
            }
        }
    }

    /// The workload's figures for the report.
    pub fn summary(&self) -> BusySummary {
        let secs = |t: SimTime| t.secs();
        let mut rates: Vec<(f64, f64)> = Vec::new();
        for w in self.series.windows(2) {
            let dt = w[1].0.since(w[0].0).as_secs_f64();
            if dt > 0.0 {
                rates.push((dt, w[1].1.saturating_sub(w[0].1) as f64 / dt));
            }
        }
        // Rates over whole steps only: a sliver of a step between a step and a finish
        // carries the rounding of the last charges.
        let mut whole: Vec<f64> = rates
            .iter()
            .filter(|(dt, _)| *dt >= 0.999 * self.cfg.step_s)
            .map(|r| r.1)
            .collect();
        if whole.is_empty() {
            whole = rates.iter().map(|r| r.1).collect();
        }
        whole.sort_by(f64::total_cmp);
        let peak = whole.last().copied().unwrap_or(0.0);
        let plateau = whole.get(whole.len() / 2).copied().unwrap_or(0.0);
        let window = match (self.base, self.end) {
            (Some(b), Some(e)) => Some((b, e)),
            _ => None,
        };
        // The modelled requests only: the real sample's replies carry measured wall-clock
        // latencies, which would make the figure differ between runs of a seed.
        let mean_reply_latency_ms = (self.requests_charged > 0)
            .then(|| self.reply_charged_s / self.requests_charged as f64 * 1e3);
        let mut done: Vec<SimTime> = self.done_at.clone();
        done.sort();
        let start = self.first_start.unwrap_or_default();
        let cdf: Vec<(f64, f64)> = if done.is_empty() {
            Vec::new()
        } else {
            (1..=20)
                .map(|i| {
                    let q = f64::from(i) / 20.0;
                    let k = ((q * done.len() as f64).ceil() as usize).clamp(1, done.len()) - 1;
                    (done[k].since(start).as_secs_f64(), q)
                })
                .collect()
        };
        let has_mds = self.cluster.is_some();
        let untar_p10_ms = {
            let mut u = self.untar.clone();
            u.sort();
            let k = ((0.1 * u.len() as f64).ceil() as usize).clamp(1, u.len().max(1)) - 1;
            u.get(k).map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        BusySummary {
            archive: ArchiveSummary {
                dirs: self.archive.dirs,
                files: self.archive.files,
                bytes: self.archive.bytes,
                file_size_p50_p99_max: self.archive.file_size,
                sampled_dirs_files: {
                    let (f, d) = self.archive.sample_counts();
                    [d, f]
                },
            },
            requests_per_client: self.requests,
            client_think_ms: self.think_s * 1e3,
            mds_capacity_per_s: self.capacity,
            mds_capacity_min_per_s: self.min_capacity,
            mds_cache_pressure_peak: self.peak_cache_pressure,
            caps_wanted_per_client: self.caps_wanted,
            clients: self.clients_started,
            peak_clients: self.peak_clients,
            pods_started: self.pods_started,
            pods_finished: self.untar.len() as u64,
            pods_cut_off: self.pods_cut_off,
            pods_unfinished: self.pods.len() as u64,
            requests_real: self.requests_real,
            requests_modelled: self.requests_modelled,
            requests_charged: self.requests_charged,
            real_errors: self.real_errors,
            charge_errors: self.charge_errors,
            hcr_in_window: window.map(|(b, e)| {
                e.handle_client_request
                    .saturating_sub(b.handle_client_request)
            }),
            first_start_s: self.first_start.map(secs),
            all_done_s: self.idle_at.map(secs),
            untar: percentiles(&self.untar),
            untar_p10_ms,
            untar_cdf_s: cdf,
            hcr_per_s_peak: peak,
            hcr_per_s_plateau: plateau,
            peak_reply_latency_ms: self.peak_reply_latency_s * 1e3,
            mean_reply_latency_ms,
            peak_mds_rss_mib: has_mds.then(|| self.peak.rss_bytes as f64 / (1 << 20) as f64),
            peak_mds_caps: has_mds.then_some(self.peak.caps),
            peak_mds_inodes: has_mds.then_some(self.peak.inodes),
        }
    }
}

/// The archive, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveSummary {
    /// Directories.
    pub dirs: u64,
    /// Files.
    pub files: u64,
    /// Bytes.
    pub bytes: u64,
    /// File sizes: median, 99th percentile, largest.
    #[serde(serialize_with = "crate::labelled::size_bytes")]
    pub file_size_p50_p99_max: [u64; 3],
    /// Directories and files each client makes for real.
    #[serde(serialize_with = "crate::labelled::dirs_files")]
    pub sampled_dirs_files: [u64; 2],
}

/// The busy workload's figures (`summary.json`'s `busy`).
#[derive(Debug, Clone, Serialize)]
pub struct BusySummary {
    /// The archive.
    pub archive: ArchiveSummary,
    /// MDS requests per client (files x per file + dirs x per dir).
    pub requests_per_client: u64,
    /// A client's own time per request, data included, milliseconds (`Z`).
    pub client_think_ms: f64,
    /// The MDS capacity, requests per second (`mu` x active ranks).
    pub mds_capacity_per_s: f64,
    /// The capacity under cache pressure at its lowest while clients were active.
    pub mds_capacity_min_per_s: Option<f64>,
    /// The cache pressure at its highest: the clients' working set over the ranks' cache.
    pub mds_cache_pressure_peak: f64,
    /// Caps each client would hold unrecalled (its part of the working set).
    pub caps_wanted_per_client: u64,
    /// Clients (pod x mount) that started.
    pub clients: u64,
    /// The most clients unpacking at once.
    pub peak_clients: usize,
    /// Pods whose unpacks started.
    pub pods_started: u64,
    /// Pods whose unpacks finished.
    pub pods_finished: u64,
    /// Pods deleted before they finished.
    pub pods_cut_off: u64,
    /// Pods still unpacking at the end (the deadline).
    pub pods_unfinished: u64,
    /// Requests made for real through the sessions (the sample).
    pub requests_real: u64,
    /// Requests of the model (the rest).
    pub requests_modelled: u64,
    /// Of those, charged to fake-ceph's MDS (all of them, with the real back end).
    pub requests_charged: u64,
    /// Real sample operations that failed, or clients without a session.
    pub real_errors: u64,
    /// Client charges the MDS refused (a closed session).
    pub charge_errors: u64,
    /// `handle_client_request` from the first start to the last finish, from the
    /// counter.
    pub hcr_in_window: Option<u64>,
    /// Simulated seconds when the first unpack started.
    pub first_start_s: Option<f64>,
    /// Simulated seconds when the last unpack finished.
    pub all_done_s: Option<f64>,
    /// Pod Running → its last mount unpacked.
    pub untar: Percentiles,
    /// Its 10th percentile, milliseconds.
    pub untar_p10_ms: f64,
    /// Completion CDF: (seconds since the first start, fraction of pods done).
    #[serde(serialize_with = "crate::labelled::cdf")]
    pub untar_cdf_s: Vec<(f64, f64)>,
    /// hcr/s, the largest rate of the counter over one whole step. The real samples of
    /// the clients that start in a step count in it at once, so it may pass the
    /// capacity by them.
    pub hcr_per_s_peak: f64,
    /// hcr/s, the median per-step rate (whole steps).
    pub hcr_per_s_plateau: f64,
    /// The model's reply latency at its highest, milliseconds.
    pub peak_reply_latency_ms: f64,
    /// Mean reply latency of the modelled requests charged to the sessions (the model's
    /// latency at the time of each batch), milliseconds; the real sample's measured
    /// replies are left out so that a seed gives one figure.
    pub mean_reply_latency_ms: Option<f64>,
    /// The MDS's `mem rss` at its highest (sampled every step), MiB.
    pub peak_mds_rss_mib: Option<f64>,
    /// `mds.caps` at its highest.
    pub peak_mds_caps: Option<u64>,
    /// `mds.inodes` at its highest.
    pub peak_mds_inodes: Option<u64>,
}

impl BusySummary {
    /// The `report.md` section.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let opt =
            |x: Option<f64>, unit: &str| x.map_or("-".to_owned(), |v| format!("{v:.1} {unit}"));
        let _ = writeln!(s, "\n## Busy workload (kernel untar)\n");
        let a = &self.archive;
        let _ = writeln!(
            s,
            "Archive: {} dirs, {} files, {} bytes (file size p50 {} B, p99 {} B, max {} B); \
             {} MDS requests per client, client time {:.3} ms per request; MDS capacity {:.0} req/s.\n",
            a.dirs,
            a.files,
            a.bytes,
            a.file_size_p50_p99_max[0],
            a.file_size_p50_p99_max[1],
            a.file_size_p50_p99_max[2],
            self.requests_per_client,
            self.client_think_ms,
            self.mds_capacity_per_s
        );
        let _ = writeln!(s, "| figure | value |\n|---|---|");
        let rows = [
            (
                "clients (peak at once)",
                format!("{} ({})", self.clients, self.peak_clients),
            ),
            (
                "pods started / finished / cut off / unfinished",
                format!(
                    "{} / {} / {} / {}",
                    self.pods_started, self.pods_finished, self.pods_cut_off, self.pods_unfinished
                ),
            ),
            (
                "untar p10 / p50 / p90 / p99",
                format!(
                    "{:.1} / {:.1} / {:.1} / {:.1} min",
                    self.untar_p10_ms / 60_000.0,
                    self.untar.p50_ms / 60_000.0,
                    self.untar.p90_ms / 60_000.0,
                    self.untar.p99_ms / 60_000.0
                ),
            ),
            ("first start", opt(self.first_start_s, "s")),
            ("all done", opt(self.all_done_s, "s")),
            ("hcr/s peak", format!("{:.0}", self.hcr_per_s_peak)),
            ("hcr/s plateau", format!("{:.0}", self.hcr_per_s_plateau)),
            (
                "MDS cache pressure (peak) / capacity (lowest)",
                format!(
                    "{:.2} / {}",
                    self.mds_cache_pressure_peak,
                    self.mds_capacity_min_per_s
                        .map_or("-".into(), |c| format!("{c:.0} req/s"))
                ),
            ),
            (
                "requests real / modelled / charged",
                format!(
                    "{} / {} / {}",
                    self.requests_real, self.requests_modelled, self.requests_charged
                ),
            ),
            (
                "hcr in window (counter)",
                self.hcr_in_window.map_or("-".into(), |v| v.to_string()),
            ),
            ("mean reply latency", opt(self.mean_reply_latency_ms, "ms")),
            (
                "peak reply latency (model)",
                format!("{:.1} ms", self.peak_reply_latency_ms),
            ),
            ("peak MDS rss", opt(self.peak_mds_rss_mib, "MiB")),
            (
                "peak MDS caps / inodes",
                format!(
                    "{} / {}",
                    self.peak_mds_caps.map_or("-".into(), |v| v.to_string()),
                    self.peak_mds_inodes.map_or("-".into(), |v| v.to_string())
                ),
            ),
            (
                "errors (real, charge)",
                format!("{}, {}", self.real_errors, self.charge_errors),
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> params::Busy {
        params::Busy {
            dirs: 20,
            files: 200,
            bytes: 2_000_000,
            ..params::Busy::default()
        }
    }

    #[test]
    fn the_archive_has_the_counts_and_bytes_asked_for_and_follows_the_seed() {
        let b = params::Busy::default();
        let a = Archive::generate(&b, &mut stream(1, "busy-archive"));
        assert_eq!((a.dirs, a.files, a.bytes), (4_500, 65_000, 1_000_000_000));
        // A kernel tree's shape: most files small, a long tail.
        let [p50, p99, max] = a.file_size;
        assert!(p50 < 1_000_000_000 / 65_000, "median {p50}");
        assert!(p99 > 5 * p50 && max > p99, "{:?}", a.file_size);
        assert_eq!(a.sample_counts(), (4, 2));
        assert_eq!(a.sample[0], Entry::Dir(String::new()));
        let again = Archive::generate(&b, &mut stream(1, "busy-archive"));
        assert_eq!(a, again);
        let other = Archive::generate(&b, &mut stream(2, "busy-archive"));
        assert_ne!(a.file_size, other.file_size);
        for (n, total) in [(1, 5), (7, 0), (1000, 999), (3, 1 << 40)] {
            let mut rng = stream(3, "x");
            let s = sizes(n, total, 1.6, &mut rng);
            assert_eq!(s.iter().sum::<u64>(), total, "{n} files, {total} bytes");
        }
    }

    #[test]
    fn the_sample_makes_as_many_requests_of_each_kind_as_counted() {
        let b = small();
        let a = Archive::generate(&b, &mut stream(5, "busy-archive"));
        let (f, d) = a.sample_counts();
        let ops = sample_ops(&a, "app-00000-linux", &b);
        let want = requests_by_kind(f, d, b.requests_per_file, b.requests_per_dir);
        let count = |pred: fn(&Op) -> bool| ops.iter().filter(|o| pred(o)).count() as u64;
        assert_eq!(count(|o| matches!(o, Op::Write { .. })), want[0]);
        assert_eq!(count(|o| matches!(o, Op::Mkdir { .. })), want[1]);
        assert_eq!(count(|o| matches!(o, Op::Truncate { .. })), want[2]);
        assert_eq!(count(|o| matches!(o, Op::Stat { .. })), want[3]);
        // Every file lies in a directory made before it.
        assert!(matches!(&ops[0], Op::Mkdir { path } if path == "app-00000-linux"));
        assert_eq!(
            requests_by_kind(65_000, 4_500, 3, 2).iter().sum::<u64>(),
            204_000
        );
        assert_eq!(
            pv_of("/x/kubelet/plugins/kubernetes.io/csi/pv/pvc-1/globalmount"),
            Some("pvc-1")
        );
        assert_eq!(
            pv_of("/x/pods/u/volumes/kubernetes.io~csi/pvc-1/mount"),
            None
        );
    }

    #[test]
    fn clients_progress_piecewise_and_finish_with_exact_counts() {
        // Mock back end: the model alone. Two pods of two clients alike, the second
        // starting later: the first finishes first, and every client is charged exactly.
        let b = params::Busy {
            client_think_sigma: 0.0,
            client_in_flight_sigma: 0.0,
            ..small()
        };
        let mut w = Busy::new(&b, 9, None);
        let r = w.requests_per_client();
        let mut t = SimTime::ZERO;
        let mut next = w.start(t, "a", 0, vec!["p1".into(), "p2".into()]).wake;
        let later = SimTime(300_000_000);
        let mut started_b = false;
        let mut done = Vec::new();
        while let Some((at, round)) = next {
            if !started_b && at > later {
                t = later;
                next = w.start(t, "b", 1, vec!["p1".into(), "p2".into()]).wake;
                started_b = true;
                continue;
            }
            t = at;
            let out = w.wake(t, round);
            done.extend(out.log.into_iter().filter(|l| l.2 == "done").map(|l| l.1));
            next = out.wake;
        }
        assert_eq!(done, ["a", "b"]);
        assert_eq!(w.verdict(t, SimTime::ZERO), Verdict::Finished);
        let s = w.summary();
        assert_eq!(s.requests_modelled, 4 * r);
        assert_eq!(s.requests_charged, 0);
        assert_eq!(s.pods_finished, 2);
        // Alone, below saturation, a client takes requests x (Z + 1/mu).
        let alone = r as f64 * (w.think_s + 1.0 / w.capacity);
        assert!(
            s.untar.p50_ms / 1e3 >= alone * 0.99,
            "{:?} vs {alone}",
            s.untar
        );
        assert!(s.hcr_per_s_peak > 0.0 && s.hcr_per_s_peak <= w.capacity * 1.001);
    }

    /// Starts `pods` pods of `mounts` clients each at once on the model alone and runs
    /// them to the end: the log and the summary.
    fn run_all(
        b: &params::Busy,
        seed: u64,
        pods: usize,
        mounts: usize,
    ) -> (Vec<String>, BusySummary) {
        let mut w = Busy::new(b, seed, None);
        let mut log = Vec::new();
        let mut next = None;
        for p in 0..pods {
            let pvs = (0..mounts).map(|m| format!("pv{m}")).collect();
            let out = w.start(SimTime::ZERO, &format!("pod-{p:03}"), p, pvs);
            log.extend(
                out.log
                    .into_iter()
                    .map(|l| format!("{} {} {}", l.0, l.1, l.2)),
            );
            next = out.wake;
        }
        let mut t = SimTime::ZERO;
        while let Some((at, round)) = next {
            t = at;
            let out = w.wake(t, round);
            log.extend(
                out.log
                    .into_iter()
                    .map(|l| format!("{} {} {} {}", t.0, l.0, l.1, l.2)),
            );
            next = out.wake;
        }
        assert_eq!(w.verdict(t, SimTime::ZERO), Verdict::Finished);
        let s = w.summary();
        assert_eq!(s.pods_finished, pods as u64);
        assert_eq!(
            s.requests_modelled,
            (pods * mounts) as u64 * w.requests_per_client()
        );
        (log, s)
    }

    /// (p90 - p10) / p50 of the untar times.
    fn spread(s: &BusySummary) -> f64 {
        (s.untar.p90_ms - s.untar_p10_ms) / s.untar.p50_ms
    }

    #[test]
    fn clients_that_differ_finish_over_a_spread_that_follows_the_seed() {
        // 40 pods of 2 clients, all at once: saturated (N* is about 9).
        let b = small();
        let (log, s) = run_all(&b, 4, 40, 2);
        assert!(spread(&s) > 0.1, "{:?} p10 {}", s.untar, s.untar_p10_ms);
        // The plateau is the capacity: the rates sum to X (less the charges' rounding
        // down to whole requests, a few per pod and step).
        assert!(
            (s.hcr_per_s_plateau / s.mds_capacity_per_s - 1.0).abs() < 1e-2,
            "{s:?}"
        );
        // Per seed, the same log; another seed, another order.
        let (again, _) = run_all(&b, 4, 40, 2);
        assert_eq!(log, again);
        let (other, _) = run_all(&b, 5, 40, 2);
        assert_ne!(log, other);
        // Alike, the clients all finish together: a step.
        let alike = params::Busy {
            client_think_sigma: 0.0,
            client_in_flight_sigma: 0.0,
            ..small()
        };
        let (_, s) = run_all(&alike, 4, 40, 2);
        assert!(spread(&s) < 1e-6, "{:?}", s.untar);
        // Below saturation the think time sets the pace: three clients alone spread too.
        let think = params::Busy {
            client_in_flight_sigma: 0.0,
            ..small()
        };
        let (_, s) = run_all(&think, 4, 3, 1);
        assert!(s.untar.max_ms > 1.2 * s.untar_p10_ms, "{:?}", s.untar);
    }

    #[test]
    fn a_working_set_beyond_the_cache_lowers_the_capacity() {
        // 100 clients wanting 16,384 caps each: 1.6 Mi inodes in a 1 Mi-inode cache.
        let b = params::Busy {
            dirs: 2_000,
            files: 20_000,
            bytes: 2_000_000,
            client_think_sigma: 0.0,
            client_in_flight_sigma: 0.0,
            ..params::Busy::default()
        };
        let (_, s) = run_all(&b, 1, 50, 2);
        let rho = 100.0 * 16_384.0 / f64::from(1u32 << 20);
        assert!((s.mds_cache_pressure_peak - rho).abs() < 1e-9, "{s:?}");
        let k = b.mds.cache_miss_penalty;
        let low = s.mds_capacity_per_s / (1.0 + k * (1.0 - 1.0 / rho));
        let min = s.mds_capacity_min_per_s.expect("capacity");
        assert!((min / low - 1.0).abs() < 1e-9, "{min} vs {low}");
        assert!(s.hcr_per_s_plateau < 0.7 * s.mds_capacity_per_s, "{s:?}");
        assert!(s.hcr_per_s_plateau > 0.99 * min, "{s:?}");
        // Without the penalty, the full capacity.
        let flat = params::Busy {
            mds: fake_ceph::LoadModel {
                cache_miss_penalty: 0.0,
                ..b.mds
            },
            ..b.clone()
        };
        let (_, s) = run_all(&flat, 1, 50, 2);
        assert!((s.hcr_per_s_plateau / s.mds_capacity_per_s - 1.0).abs() < 1e-2);
    }
}
