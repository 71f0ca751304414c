//! Scenarios: the parameters of one run, loaded from a JSON file (or a built-in name) and
//! overridden with `--set key=value`. Defaults live in `Params::default`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::Latency;

/// The scenarios shipped in `scenarios/`, runnable by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("idle-10k", include_str!("../../scenarios/idle-10k.json")),
    (
        "attempt-1-attach-wreck",
        include_str!("../../scenarios/attempt-1-attach-wreck.json"),
    ),
    (
        "attempt-2-incremental",
        include_str!("../../scenarios/attempt-2-incremental.json"),
    ),
    (
        "attempt-3-skip-attach",
        include_str!("../../scenarios/attempt-3-skip-attach.json"),
    ),
    ("busy-1k", include_str!("../../scenarios/busy-1k.json")),
    (
        "scale-100k",
        include_str!("../../scenarios/scale-100k.json"),
    ),
    (
        "idle-1k-manila",
        include_str!("../../scenarios/idle-1k-manila.json"),
    ),
    (
        "flaky-ceph-1k",
        include_str!("../../scenarios/flaky-ceph-1k.json"),
    ),
    ("soak", include_str!("../../scenarios/soak.json")),
];

/// What provisions the volumes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// The driver's CephFS controller: subvolumes through fake-ceph's admin interface.
    #[default]
    Cephfs,
    /// The driver's Manila controller: shares through fake-manila (Keystone v3 +
    /// Manila v2), which makes them subvolumes on fake-ceph; nodes mount them as CephFS.
    Manila,
}

impl std::fmt::Display for StorageBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StorageBackend::Cephfs => "cephfs",
            StorageBackend::Manila => "manila",
        })
    }
}

/// What the pods do once Running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Sleep: the mounts stay idle.
    #[default]
    Idle,
    /// Unpack a kernel-shaped archive into every mount (see `busy`).
    Busy,
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Workload::Idle => "idle",
            Workload::Busy => "busy",
        })
    }
}

/// The busy workload: each pod, once Running, unpacks a synthetic archive shaped like a
/// Linux kernel tree into each of its mounts (one client per mount). Defaults: about
/// 65k files, 4.5k directories, 1 MDS request per file and 2 per directory, about 1 GB (CALIBRATION.md
/// gives each one's source).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Busy {
    /// Directories in the archive (the top directory included).
    pub dirs: u64,
    /// Regular files in the archive.
    pub files: u64,
    /// Bytes of file data in the archive, in total.
    pub bytes: u64,
    /// Spread of the log-normal file sizes (sigma of ln size).
    pub file_size_sigma: f64,
    /// MDS requests per file: its create (tar's utimes and chmod of a file whose caps
    /// the client holds travel as cap flushes, not requests: measured on Ceph 16.2.15
    /// through ceph-fuse, ci/measure-mds.sh).
    pub requests_per_file: u64,
    /// MDS requests per directory: mkdir, then setattr (measured likewise).
    pub requests_per_dir: u64,
    /// A client's own time per request (FUSE, network, tar), milliseconds: `Z`.
    pub client_ms_per_request: f64,
    /// A client's data bandwidth, MB/s (file data is spread over the requests).
    pub client_mb_per_s: f64,
    /// Spread of the clients' own time per request: each pod's clients think
    /// `Z exp(s e - s^2/2)`, `e` standard normal (log-normal, mean `Z`), drawn from the
    /// seed. It sets their pace below saturation. 0: all alike. At most 2.
    pub client_think_sigma: f64,
    /// Spread of the requests a client keeps in flight (log-normal, mean 1), drawn from
    /// the seed per pod: on a saturated MDS a client's share is proportional to it. 0:
    /// all alike. At most 2. An assumption, not calibrated: no per-client figures of a
    /// busy MDS were found.
    pub client_in_flight_sigma: f64,
    /// Inodes a client's cache keeps (ceph-fuse `client_cache_size`): caps held grow
    /// with creates up to this.
    pub client_cache_inodes: u64,
    /// Directories each client creates for real, through its session (the first ones).
    pub sample_dirs: u64,
    /// Files each client writes for real, through its session (the first ones).
    pub sample_files: u64,
    /// Bytes of real data at the start of each sampled file (the rest is sparse).
    pub sample_bytes: u64,
    /// Counters are charged, and hcr/s sampled, at every multiple of this many seconds
    /// (simulated; 1 s, the period of the run's time series, so that no sampling period
    /// sees two batches or none).
    pub step_s: f64,
    /// Unpacks still running this long after the deploy phase began are cut off and
    /// teardown starts, seconds (simulated).
    pub deadline_s: f64,
    /// The MDS's request capacity (fake-ceph's load model).
    pub mds: fake_ceph::LoadModel,
}

impl Default for Busy {
    fn default() -> Self {
        Self {
            dirs: 4_500,
            files: 65_000,
            bytes: 1_000_000_000,
            file_size_sigma: 1.6,
            requests_per_file: 1,
            requests_per_dir: 2,
            client_ms_per_request: 1.3,
            client_mb_per_s: 100.0,
            client_think_sigma: 0.2,
            client_in_flight_sigma: 0.25,
            client_cache_inodes: 16_384,
            sample_dirs: 2,
            sample_files: 4,
            sample_bytes: 512,
            step_s: 1.0,
            deadline_s: 2.0 * 86_400.0,
            mds: fake_ceph::LoadModel::default(),
        }
    }
}

/// Everything a run depends on besides the seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// The scenario's name (reports, the default output directory).
    pub name: String,
    /// What it reproduces, one line.
    pub description: String,
    /// s: shares (PVCs), each mounted by every replica.
    pub shares: usize,
    /// r: Deployment replicas, one per node.
    pub replicas: usize,
    /// Nodes; 0 means `replicas`.
    pub nodes: usize,
    /// What the pods do once Running: `idle` or `busy`.
    pub workload: Workload,
    /// The busy workload's archive, clients and MDS (used when `workload` is `busy`).
    pub busy: Busy,
    /// What provisions the volumes: `cephfs` (the default) or `manila`.
    pub backend: StorageBackend,
    /// Fault rules for the embedded fake-ceph, as its `--fault` flag takes them:
    /// `latency:<prefix>=<ms>`, `error:<prefix>=<rate>[:<errno>]`, `hang:<prefix>`
    /// (prefixes: `*`, `fs subvolume *`, an exact command, `client <op>`). Error rates are
    /// drawn in the order calls reach fake-ceph, which concurrent calls make vary: with
    /// them a seed no longer fixes the event log. Latency and hang rules keep it fixed.
    pub ceph_faults: Vec<String>,
    /// Faults for the embedded fake-manila from the start (request errors and latency,
    /// shares stuck in `creating` or ending in `error`, access rules ending in `error`),
    /// drawn in the order requests reach it: a rate below 1 makes the event log vary.
    pub manila_faults: fake_manila::Faults,
    /// Faults injected on the simulated clock (see `fault`): fake-ceph rules and
    /// fake-manila faults switched on and off, the MDS down and up, evictions, plugins
    /// killed and restarted.
    pub fault_plan: Vec<crate::fault::Step>,
    /// The driver's deadlines (defaults: the driver's own).
    pub driver: DriverTimeouts,
    /// CSIDriver `attachRequired`: VolumeAttachments, the external-attacher, ControllerPublish.
    pub attach_required: bool,
    /// Scale in steps of this many replicas (0: all at once), killing stuck pods (attempt #2).
    pub step: usize,
    /// Time between steps, seconds (simulated).
    pub step_interval_s: f64,
    /// A pod not Running this long after creation is killed in incremental mode, seconds.
    pub kill_stuck_after_s: f64,
    /// The deploy phase ends when no pod became Running for this long, seconds.
    pub stall_s: f64,
    /// With the idle workload, how long every replica stays Running before teardown,
    /// seconds: a steady state of idle clients to sample (sessions, MDS requests).
    pub hold_s: f64,
    /// The deploy phase ends at this simulated time at the latest, seconds.
    pub max_deploy_s: f64,
    /// Teardown must finish within this, seconds (simulated); what is left is leaked.
    pub max_teardown_s: f64,
    /// The ADC serialises attach/detach per volume across nodes (before k8s #88678).
    pub adc_serialize_per_volume: bool,
    /// csi attacher's wait for `status.attached` in the ADC, seconds (15 in 1.10–1.12).
    pub attach_timeout_s: f64,
    /// The kubelet's WaitForAttach GETs the VolumeAttachment named by the device path it
    /// copied from its node's volumesAttached entry, once, in VerifyControllerAttachedVolume
    /// (Kubernetes 1.11 and 1.12 before #71523). The attach-detach controller keeps one
    /// device path per volume, overwritten by each attach to any node, so the name can
    /// be another node's VolumeAttachment, which the node authorizer refuses for good.
    /// false: the kubelet names the VolumeAttachment after itself (1.13+, #71095).
    pub waitforattach_uses_devicepath: bool,
    /// external-attacher's trivial handler, as v0.3/v0.4 ran it for a driver without
    /// PUBLISH_UNPUBLISH_VOLUME (csi-cephfs 0.3): one status update per
    /// VolumeAttachment, no finalizer, no ControllerPublish.
    pub attacher_trivial: bool,
    /// Kubelet node status period, seconds (10).
    pub node_status_period_s: f64,
    /// ADC VerifyVolumesAreAttached period, seconds (60); a GET per VolumeAttachment.
    pub adc_verify_period_s: f64,
    /// Client QPS/burst per component.
    pub qps: Qps,
    /// API request latency.
    pub api_latency: Latency,
    /// Informer (watch) delivery delay.
    pub watch_latency: Latency,
    /// The node authorizer graph model.
    pub authz: Authz,
    /// Simulated duration charged for each CSI call, by method.
    pub csi_latency: CsiLatency,
    /// Manila's own work, added to the CSI calls of the Manila back end on the simulated
    /// clock (the embedded fake-manila answers at once).
    pub manila: ManilaDelays,
    /// Container start after the volumes are mounted.
    pub container_start: Latency,
    /// Real CSI calls in flight at once (a wall-clock bound; no effect on the event log).
    pub max_inflight: usize,
}

/// The driver's deadlines, milliseconds; `None` keeps the driver's default. A fault
/// soak makes them short, so that a hung Ceph call or a share stuck in `creating` costs
/// little wall time before the call fails and the simulation retries it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriverTimeouts {
    /// Every Ceph admin call (`--ceph-timeout`, 30 s), and fake-manila's calls to Ceph.
    pub ceph_timeout_ms: Option<u64>,
    /// Mounts and each call the fake mounter makes to fake-ceph (60 s and 10 s).
    pub mount_timeout_ms: Option<u64>,
    /// How long CreateVolume and DeleteVolume wait for a Manila share (`--manila-wait`,
    /// 60 s).
    pub manila_wait_ms: Option<u64>,
}

/// Client-side rate limits (QPS, burst), 2018 defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Qps {
    /// Each kubelet.
    pub kubelet: (f64, u32),
    /// kube-controller-manager (PV controller, ADC, Deployment/ReplicaSet controllers).
    pub kcm: (f64, u32),
    /// external-provisioner.
    pub provisioner: (f64, u32),
    /// external-attacher.
    pub attacher: (f64, u32),
    /// kube-scheduler.
    pub scheduler: (f64, u32),
}

impl Default for Qps {
    fn default() -> Self {
        Self {
            kubelet: (5.0, 10),
            kcm: (20.0, 30),
            provisioner: (5.0, 10),
            attacher: (5.0, 10),
            scheduler: (50.0, 100),
        }
    }
}

/// The node authorizer's graph (see `authz`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Authz {
    /// Model the authorizer at all (false: every node GET is allowed).
    pub enabled: bool,
    /// Delay from a write to its event reaching the graph's queue (the apiserver's own
    /// informer): the configurable lag.
    pub lag: Latency,
    /// Graph work per event, microseconds.
    pub write_base_us: f64,
    /// Extra graph work per pod sharing a PVC with the event's pod (index recomputation,
    /// k8s #87688), microseconds.
    pub write_per_fanout_us: f64,
    /// Graph capacity taken by authorising one node GET, microseconds.
    pub read_cost_us: f64,
    /// The writer's accounting period, milliseconds.
    pub tick_ms: u64,
}

impl Default for Authz {
    fn default() -> Self {
        Self {
            enabled: true,
            lag: Latency::ms(0.5, 1.5),
            write_base_us: 20.0,
            write_per_fanout_us: 0.2,
            read_cost_us: 1.0,
            tick_ms: 100,
        }
    }
}

/// Simulated CSI call durations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsiLatency {
    /// CreateVolume.
    pub create: Latency,
    /// DeleteVolume.
    pub delete: Latency,
    /// ControllerPublish/Unpublish.
    pub publish_controller: Latency,
    /// NodeStage (ceph-fuse start + MDS session).
    pub stage: Latency,
    /// NodeUnstage.
    pub unstage: Latency,
    /// NodePublish/Unpublish (bind mount).
    pub publish: Latency,
}

impl Default for CsiLatency {
    fn default() -> Self {
        Self {
            create: Latency::ms(1000.0, 5000.0),
            delete: Latency::ms(500.0, 3000.0),
            publish_controller: Latency::ms(10.0, 100.0),
            stage: Latency::ms(1500.0, 10000.0),
            unstage: Latency::ms(300.0, 2000.0),
            publish: Latency::ms(30.0, 300.0),
        }
    }
}

/// Manila's asynchronous steps, simulated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManilaDelays {
    /// A share from `creating` to `available` (scheduler, share service, the CephFS
    /// driver's subvolume): added to CreateVolume.
    pub share_create: Latency,
    /// A cephx access rule from `queued_to_apply` to `active` with its key: added to
    /// CreateVolume (the driver grants one per volume).
    pub access_apply: Latency,
    /// A share from `deleting` to gone: added to DeleteVolume.
    pub share_delete: Latency,
}

impl Default for ManilaDelays {
    fn default() -> Self {
        Self {
            share_create: Latency::ms(2000.0, 10000.0),
            access_apply: Latency::ms(1000.0, 5000.0),
            share_delete: Latency::ms(1000.0, 5000.0),
        }
    }
}

impl Default for Params {
    fn default() -> Self {
        Self {
            name: "custom".into(),
            description: String::new(),
            shares: 100,
            replicas: 100,
            nodes: 0,
            workload: Workload::Idle,
            busy: Busy::default(),
            backend: StorageBackend::Cephfs,
            attach_required: false,
            step: 0,
            step_interval_s: 120.0,
            kill_stuck_after_s: 300.0,
            stall_s: 1800.0,
            hold_s: 60.0,
            max_deploy_s: 4.0 * 3600.0,
            max_teardown_s: 3600.0,
            adc_serialize_per_volume: true,
            attach_timeout_s: 15.0,
            waitforattach_uses_devicepath: false,
            attacher_trivial: false,
            node_status_period_s: 10.0,
            adc_verify_period_s: 60.0,
            qps: Qps::default(),
            api_latency: Latency::ms(1.0, 4.0),
            watch_latency: Latency::ms(0.5, 2.0),
            authz: Authz::default(),
            csi_latency: CsiLatency::default(),
            manila: ManilaDelays::default(),
            container_start: Latency::ms(1000.0, 3000.0),
            max_inflight: 64,
            ceph_faults: Vec::new(),
            manila_faults: fake_manila::Faults::default(),
            fault_plan: Vec::new(),
            driver: DriverTimeouts::default(),
        }
    }
}

/// A scenario that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    /// Neither a file nor a built-in name.
    #[error("no scenario file or built-in scenario named '{0}' (built-in: {1})")]
    Unknown(String, String),
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not a valid scenario.
    #[error("scenario {0}: {1}")]
    Invalid(String, String),
}

impl Params {
    /// Loads a scenario by file path or built-in name.
    pub fn load(what: &str) -> Result<Self, ParamsError> {
        let text = if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == what) {
            (*text).to_owned()
        } else if std::path::Path::new(what).exists() {
            std::fs::read_to_string(what).map_err(|source| ParamsError::Read {
                path: what.into(),
                source,
            })?
        } else {
            let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
            return Err(ParamsError::Unknown(what.into(), names.join(", ")));
        };
        let p: Params = serde_json::from_str(&text)
            .map_err(|e| ParamsError::Invalid(what.into(), e.to_string()))?;
        p.validated()
    }

    /// Applies `key=value` (a dotted key; the value is JSON, or else a string).
    pub fn set(self, assignment: &str) -> Result<Self, ParamsError> {
        let bad = |m: String| ParamsError::Invalid(assignment.into(), m);
        let (key, value) = assignment
            .split_once('=')
            .ok_or_else(|| bad("expected key=value".into()))?;
        let value: serde_json::Value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
        let mut tree = serde_json::to_value(&self).map_err(|e| bad(e.to_string()))?;
        let mut at = &mut tree;
        for part in key.split('.') {
            at = at
                .get_mut(part)
                .ok_or_else(|| bad(format!("no parameter '{key}'")))?;
        }
        *at = value;
        let p: Params = serde_json::from_value(tree).map_err(|e| bad(e.to_string()))?;
        p.validated()
    }

    /// [`Params::ceph_faults`] as fake-ceph's rules.
    pub fn fault_rules(&self) -> Result<fake_ceph::Faults, String> {
        let rules = self
            .ceph_faults
            .iter()
            .map(|f| f.parse::<fake_ceph::FaultSpec>().map(|s| s.0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("ceph_faults: {e}"))?;
        Ok(fake_ceph::Faults {
            rules,
            mds_down: false,
        })
    }

    /// Checks the parameters (what [`Params::load`] and [`Params::set`] check).
    pub fn validated(self) -> Result<Self, ParamsError> {
        let bad = |m: &str| Err(ParamsError::Invalid(self.name.clone(), m.into()));
        if self.shares == 0 || self.replicas == 0 {
            return bad("shares and replicas must be at least 1");
        }
        if self.node_count() < self.replicas {
            return bad("one pod per node: nodes must be at least replicas");
        }
        if !(self.hold_s >= 0.0 && self.hold_s.is_finite()) {
            return bad("hold_s must be a number of seconds, at least 0");
        }
        if let Err(e) = self.fault_rules() {
            return bad(&e);
        }
        if let Err(e) = self.manila_faults.validate() {
            return bad(&format!("manila_faults: {e}"));
        }
        for step in &self.fault_plan {
            if let Err(e) = step.check(self.node_count()) {
                return bad(&e);
            }
        }
        if [
            self.driver.ceph_timeout_ms,
            self.driver.mount_timeout_ms,
            self.driver.manila_wait_ms,
        ]
        .contains(&Some(0))
        {
            return bad("driver: timeouts must be at least 1 ms");
        }
        if self.workload == Workload::Busy {
            let b = &self.busy;
            if b.dirs == 0 || b.requests_per_file == 0 || b.requests_per_dir == 0 {
                return bad(
                    "busy: dirs, requests_per_file and requests_per_dir must be at least 1",
                );
            }
            if b.sample_dirs > b.dirs || b.sample_files > b.files {
                return bad("busy: more sampled dirs or files than the archive has");
            }
            let positive = [
                b.step_s,
                b.deadline_s,
                b.client_mb_per_s,
                b.mds.requests_per_s_per_mds,
            ];
            if positive.iter().any(|x| !(x.is_finite() && *x > 0.0))
                || !(b.client_ms_per_request.is_finite() && b.client_ms_per_request >= 0.0)
                || !(b.file_size_sigma.is_finite() && b.file_size_sigma >= 0.0)
                || !(b.mds.multi_mds_efficiency.is_finite() && b.mds.multi_mds_efficiency >= 0.0)
            {
                return bad("busy: times, rates and spreads must be finite and positive");
            }
            let sigma_ok = |x: f64| x.is_finite() && (0.0..=2.0).contains(&x);
            if !sigma_ok(b.client_think_sigma) || !sigma_ok(b.client_in_flight_sigma) {
                return bad(
                    "busy: client_think_sigma and client_in_flight_sigma must be between 0 and 2",
                );
            }
            if !(b.mds.cache_miss_penalty.is_finite() && b.mds.cache_miss_penalty >= 0.0) {
                return bad("busy: mds.cache_miss_penalty must be finite and at least 0");
            }
        }
        if self.backend == StorageBackend::Manila && self.attach_required {
            // As the Manila CSI plugin, the Manila back end has no ControllerPublish.
            return bad("the manila back end needs attach_required=false (no ControllerPublish)");
        }
        Ok(self)
    }

    /// Nodes in the cluster.
    pub fn node_count(&self) -> usize {
        if self.nodes == 0 {
            self.replicas
        } else {
            self.nodes
        }
    }

    /// Seconds as a `Duration`.
    pub fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_scenario_loads() {
        for (name, _) in BUILTIN {
            let p = Params::load(name).expect(name);
            assert_eq!(&p.name, name);
        }
        assert_eq!(Params::load("idle-10k").expect("idle").shares, 100);
    }

    fn check_set(assignment: &str, ok: bool) {
        let r = Params::default().set(assignment);
        assert_eq!(r.is_ok(), ok, "{assignment}: {r:?}");
    }

    #[test]
    fn set_overrides_dotted_keys_and_refuses_unknown_ones() {
        check_set("shares=3", true);
        check_set("attach_required=true", true);
        check_set("qps.kubelet=[50,100]", true);
        check_set("authz.lag.median_ms=2000", true);
        check_set("name=tiny", true);
        check_set("sharez=3", false);
        check_set("shares=-1", false);
        check_set("shares=0", false);
        check_set("nodes=1", false);
        check_set("noequals", false);
        check_set("backend=manila", true);
        check_set("backend=cephfs", true);
        check_set("backend=nfs", false);
        check_set("backend=3", false);
        check_set("workload=busy", true);
        check_set("workload=idle", true);
        check_set("workload=sleepy", false);
        check_set("busy.files=10", true);
        check_set("busy.mds.active_mds=3", true);
        check_set("busy.step_s=0", true);
        check_set("workload=busy", true);
        let busy = |kv: &str| {
            Params::default()
                .set("workload=busy")
                .and_then(|p| p.set(kv))
                .is_ok()
        };
        assert!(!busy("busy.step_s=0"));
        assert!(!busy("busy.dirs=0"));
        assert!(!busy("busy.sample_files=70000"));
        assert!(!busy("busy.mds.requests_per_s_per_mds=-1"));
        assert!(busy("busy.mds.active_mds=16"));
        assert!(busy("busy.mds.cache_miss_penalty=0"));
        assert!(!busy("busy.mds.cache_miss_penalty=-1"));
        assert!(busy("busy.client_think_sigma=0"));
        assert!(!busy("busy.client_think_sigma=3"));
        assert!(!busy("busy.client_in_flight_sigma=-0.1"));
        assert_eq!(
            Params::load("busy-1k").expect("busy").workload,
            Workload::Busy
        );
        let p = Params::default().set("qps.kubelet=[50,100]").expect("set");
        assert_eq!(p.qps.kubelet, (50.0, 100));
        let p = Params::default().set("backend=manila").expect("set");
        assert_eq!(p.backend, StorageBackend::Manila);
        let both = Params::default()
            .set("backend=manila")
            .and_then(|p| p.set("attach_required=true"));
        assert!(both.is_err(), "{both:?}");
        assert_eq!(
            Params::load("idle-1k-manila").expect("manila").backend,
            StorageBackend::Manila
        );
    }
}
