//! The discrete-event simulation: one event queue on the simulated clock, the API server,
//! the controllers and the kubelets as reconcile loops, and the CSI calls they make.
//!
//! Every Kubernetes-side delay (API latency, client token buckets, informer delivery,
//! back-offs, periodic loops) is an event on the simulated clock. A CSI call is started
//! for real when it is issued and its result is taken when its simulated duration (drawn
//! from the seeded latency model) has passed: wall-clock jitter cannot reorder events.
//! Events at the same instant run in the order they were scheduled.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, Container, Node, NodeStatus, ObjectReference, PersistentVolume,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus,
    PersistentVolumeClaimVolumeSource, PersistentVolumeSpec, PersistentVolumeStatus, Pod, PodSpec,
    PodStatus, PodTemplateSpec, Secret, SecretReference, Volume, VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::{
    CSIDriver, CSIDriverSpec, StorageClass, VolumeAttachment, VolumeAttachmentSource,
    VolumeAttachmentSpec, VolumeAttachmentStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use rand_chacha::ChaCha8Rng;

use crate::api::*;
use crate::authz::{Graph, GraphOp, forbidden};
use crate::csi::{Backend, CsiCall, CsiOutcome, CsiReply, DRIVER_NAME, is_final, node_name};
use crate::fault::{Action, Anchor, FaultCounts, Plugin};
use crate::params::Params;
use crate::plots::Sample;
use crate::report::{EventLog, Stats};
use crate::time::{Backoff, SimTime, TokenBucket, stream};

/// The Deployment every scenario scales.
pub const DEPLOYMENT: &str = "app";
const STORAGE_CLASS: &str = "cephfs";
const SECRET: &str = "csi-cephfs-secret";
const PROCESS_DELAY: Duration = Duration::from_millis(100);

/// Components that receive watch events and run reconcile passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Comp {
    /// kube-scheduler.
    Scheduler,
    /// PV controller (binder).
    PvCtrl,
    /// external-provisioner.
    Provisioner,
    /// attach-detach controller.
    Adc,
    /// external-attacher.
    Attacher,
    /// Deployment and ReplicaSet controllers.
    RsCtrl,
    /// The kubelet of node i.
    Kubelet(usize),
}

/// What a kubelet's GET of a VolumeAttachment is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaPurpose {
    /// WaitForAttach (polled).
    Wait,
    /// SetUp of this pod (reads the attachment metadata).
    SetUp(String),
}

/// A request arriving at the API server.
#[derive(Debug, Clone)]
pub enum Req {
    /// Scheduler binds a pod.
    BindPod { pod: String, node: usize },
    /// PV controller marks a claim for the external provisioner.
    AnnotatePvc { pvc: String },
    /// PV controller binds claim and volume.
    Bind { pvc: String, pv: String },
    /// PV controller releases a volume whose claim is gone.
    ReleasePv { pv: String },
    /// Provisioner creates a PV.
    CreatePv(Box<PersistentVolume>),
    /// Provisioner deletes a PV.
    DeletePv { pv: String },
    /// ReplicaSet controller creates a pod.
    CreatePod(Box<Pod>),
    /// Graceful deletion of a pod.
    DeletePod { pod: String },
    /// The kubelet removes a pod whose volumes are cleaned up.
    RemovePod { pod: String },
    /// The kubelet reports a pod Running.
    PodRunning { pod: String },
    /// ReplicaSet replicas.
    ScaleRs { replicas: i32 },
    /// ADC creates a VolumeAttachment.
    CreateVa { pv: String, node: usize },
    /// ADC deletes a VolumeAttachment.
    DeleteVa { pv: String, node: usize },
    /// ADC polls a VolumeAttachment (attach: until attached; detach: until gone).
    AdcGetVa {
        pv: String,
        node: usize,
        detach: bool,
        started: SimTime,
    },
    /// ADC VerifyVolumesAreAttached GET.
    AdcVerifyGet,
    /// ADC's node status updater writes node.status.volumesAttached.
    NodeAttached { node: usize, vols: Vec<String> },
    /// Attacher adds its finalizer.
    VaFinalizer { va: String },
    /// Attacher records the outcome.
    VaStatus { va: String, error: Option<String> },
    /// Attacher removes its finalizer (the VA goes).
    VaUnfinalize { va: String },
    /// Kubelet patches node.status.volumesInUse.
    NodeInUse { node: usize, vols: Vec<String> },
    /// Kubelet GETs a VolumeAttachment.
    KubeletGetVa {
        node: usize,
        pv: String,
        purpose: VaPurpose,
    },
    /// Kubelet GETs the node-stage secret.
    KubeletGetSecret { node: usize, pv: String },
}

/// What to do with a CSI call's outcome.
#[derive(Debug, Clone)]
enum Then {
    Provisioned {
        pvc: String,
        pv: String,
    },
    Deleted {
        pv: String,
    },
    CtrlPublished {
        va: String,
    },
    CtrlUnpublished {
        va: String,
    },
    Staged {
        node: usize,
        pv: String,
    },
    Published {
        node: usize,
        pv: String,
        pod: String,
    },
    Unpublished {
        node: usize,
        pv: String,
        pod: String,
    },
    Unstaged {
        node: usize,
        pv: String,
    },
}

#[derive(Debug)]
enum Ev {
    Watch {
        to: Comp,
        kind: Kind,
        name: String,
    },
    Process(Comp),
    Api {
        client: String,
        req: Req,
    },
    CsiDone {
        id: u64,
    },
    GraphIn(GraphOp),
    GraphTick,
    NodeStatus(usize),
    KubeletPoll {
        node: usize,
        pv: String,
    },
    ContainerStarted {
        node: usize,
        pod: String,
    },
    AdcPoll {
        pv: String,
        node: usize,
        detach: bool,
        started: SimTime,
    },
    AdcRetry {
        pv: String,
        node: usize,
    },
    AdcVerify,
    AttacherRetry {
        va: String,
    },
    ProvisionerRetry {
        key: String,
    },
    PvResync,
    Script,
    /// The busy workload's next step or completion.
    Busy {
        round: u64,
    },
    /// Step i of the fault plan.
    Fault(usize),
}

#[derive(Debug)]
struct Entry {
    at: SimTime,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

#[derive(Debug, Default)]
struct Work {
    dirty: BTreeSet<String>,
    pending: bool,
}

#[derive(Debug, Default)]
struct KPod {
    uid: String,
    pvs: Vec<(String, String)>,
    deleting: bool,
    published: BTreeSet<String>,
    /// Volumes whose NodePublish failed with a non-final code: maybe published, so
    /// unpublished before the pod goes (the kubelet's uncertain mount state).
    uncertain: BTreeSet<String>,
    running: bool,
    removing: bool,
}

#[derive(Debug)]
struct KVol {
    pvc: String,
    busy: bool,
    staged: bool,
    /// NodeStage failed with a non-final code: maybe staged, so unstaged when no pod
    /// needs it any more (the kubelet's uncertain device state, 1.19+).
    uncertain: bool,
    backoff: Backoff,
    retry_at: SimTime,
    /// Unmounting backs off on its own: the kubelet keys back-offs by operation, so a
    /// failing SetUp does not hold back the UnmountDevice of a pod gone meanwhile.
    unmount_backoff: Backoff,
    unmount_retry_at: SimTime,
    wait_since: SimTime,
    /// The last failure of an operation on the volume (for the report; back-end
    /// messages stay out of the event log).
    last_error: Option<String>,
    /// The handle the volume was staged with: the kubelet unmounts from its own record
    /// of the mount, even once the PV is gone (without attach, nothing keeps a PV from
    /// being deleted while a node still has the volume staged).
    handle: Option<String>,
}

#[derive(Debug, Default)]
struct Kubelet {
    pods: BTreeMap<String, KPod>,
    vols: BTreeMap<String, KVol>,
    pending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AState {
    Attaching,
    Attached,
    Detaching,
}

#[derive(Debug, Default)]
struct Adc {
    desired: BTreeMap<(String, usize), usize>,
    pod_pairs: BTreeMap<String, Vec<(String, usize)>>,
    state: BTreeMap<(String, usize), AState>,
    busy: BTreeSet<String>,
    waiting: BTreeMap<String, BTreeSet<(String, usize)>>,
    backoff: BTreeMap<(String, usize), (Backoff, SimTime)>,
    dirty: BTreeSet<(String, usize)>,
    pending: bool,
    verify_outstanding: usize,
    node_dirty: BTreeSet<usize>,
    /// Detaches waiting for the kubelet to stop reporting the volume in use, by node.
    blocked: BTreeMap<usize, BTreeSet<String>>,
}

#[derive(Debug, Default)]
struct Attacher {
    queue: VecDeque<String>,
    queued: BTreeSet<String>,
    busy: BTreeSet<String>,
    backoff: BTreeMap<String, (Backoff, SimTime)>,
    pending: bool,
}

#[derive(Debug, Default)]
struct Provisioner {
    work: Work,
    busy: BTreeSet<String>,
    backoff: BTreeMap<String, (Backoff, SimTime)>,
    /// Claims whose last CreateVolume ended with a non-final code, and their PV's name:
    /// the volume may exist, so provisioning goes on until a final answer even if the
    /// claim is deleted meanwhile (external-provisioner's `claimsInProgress`); a volume
    /// made for a deleted claim gets a PV that the PV controller releases.
    in_progress: BTreeMap<String, String>,
    /// The last CreateVolume error of each claim not yet provisioned.
    last_error: BTreeMap<String, String>,
    /// Every volume handle CreateVolume returned, by claim (more than one is a
    /// duplicate).
    handles: BTreeMap<String, BTreeSet<String>>,
}

/// The scenario driver's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Claims are being provisioned.
    Provision,
    /// The Deployment is scaling up.
    Deploy,
    /// Everything is being deleted.
    Teardown,
    /// Finished.
    Done,
}

#[derive(Debug)]
struct Script {
    phase: Phase,
    replicas: usize,
    next_step: SimTime,
    last_progress: SimTime,
    teardown_started: SimTime,
    pvcs_deleted: bool,
}

/// What a progress display shows.
#[derive(Debug, Clone)]
pub struct Progress {
    /// The scenario's phase.
    pub phase: Phase,
    /// The simulated clock.
    pub sim: SimTime,
    /// Pods Running.
    pub running: usize,
    /// Replicas asked for.
    pub replicas: usize,
    /// Events so far.
    pub events: u64,
}

/// A progress callback.
pub type ProgressFn = Box<dyn FnMut(&Progress) + Send>;

/// A progress callback held by the world.
pub struct Hook(pub ProgressFn);

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

/// One simulated cluster and its run.
#[derive(Debug)]
pub struct World {
    p: Params,
    now: SimTime,
    seq: u64,
    queue: BinaryHeap<Reverse<Entry>>,
    rng_api: ChaCha8Rng,
    rng_watch: ChaCha8Rng,
    rng_csi: ChaCha8Rng,
    rng_sched: ChaCha8Rng,
    rng_pods: ChaCha8Rng,
    /// The API objects.
    pub store: Store,
    /// The node authorizer's graph.
    pub graph: Graph,
    clients: BTreeMap<String, TokenBucket>,
    backend: Backend,
    next_call: u64,
    calls: BTreeMap<u64, (CsiCall, Then, SimTime)>,
    to_start: Vec<(u64, CsiCall)>,
    scheduler: Work,
    sched_reserved: BTreeSet<usize>,
    pvctrl: Work,
    prov: Provisioner,
    adc: Adc,
    att: Attacher,
    rs: Work,
    rs_creating: usize,
    rs_deleting: BTreeSet<String>,
    kubelets: Vec<Kubelet>,
    pod_counter: usize,
    pod_created: BTreeMap<String, SimTime>,
    script: Script,
    graph_ticking: bool,
    /// Called every few thousand events with the run's state (a progress display).
    pub progress: Option<Hook>,
    /// The event log.
    pub log: EventLog,
    /// Counters and distributions for the report.
    pub stats: Stats,
    /// The busy workload, when the scenario runs it.
    pub busy: Option<crate::busy::Busy>,
    /// Plugins killed and not restarted yet: calls to them fail at once.
    down: BTreeSet<Plugin>,
    /// Outcomes the simulation decided itself (calls a kill cut, calls to a killed
    /// plugin), taken instead of the real ones.
    decided: BTreeMap<u64, CsiOutcome>,
    /// Fault windows open (fake-ceph rules, the MDS down, fake-manila faults): the back
    /// ends are read at checkpoints only when none is.
    open_windows: BTreeMap<String, &'static str>,
    /// What the run counted of its fault plan.
    pub faults: FaultCounts,
    /// Every CephFS volume the journal named at some checkpoint, by request name: a
    /// name's volume never changes (a retry takes up the reservation), so more than one
    /// over the run is a duplicate.
    pub ledger: BTreeMap<String, BTreeSet<String>>,
    /// Manila request names with more than one live share at one checkpoint (the most).
    pub live_duplicates: BTreeMap<String, usize>,
    /// Checkpoints that could not read the back ends.
    pub checkpoint_errors: Vec<String>,
    /// Checkpoints taken.
    pub checkpoints: u64,
    /// Fault steps scheduled and not applied yet: teardown ends only after them, so
    /// that every window closes and every killed plugin restarts within the run.
    faults_pending: usize,
}

fn key2(pv: &str, node: usize) -> String {
    format!("{pv}/{node}")
}

fn va_name(pv: &str, node: usize) -> String {
    // k8s names it csi-sha256(handle+driver+node); handles are not deterministic across
    // runs here (the driver makes UUIDs), so the name is built from the PV and node.
    format!("csi-{pv}-{}", node_name(node))
}

fn pvc_uid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn node_index(name: &str) -> Option<usize> {
    name.strip_prefix("node-")?
        .parse::<usize>()
        .ok()?
        .checked_sub(1)
}

impl World {
    /// A cluster for `p`, seeded with `seed`, calling `backend`.
    pub fn new(p: Params, seed: u64, backend: Backend, log: EventLog) -> Self {
        let nodes = p.node_count();
        let mut clients = BTreeMap::new();
        let q = &p.qps;
        clients.insert("kcm".to_owned(), TokenBucket::new(q.kcm.0, q.kcm.1));
        clients.insert(
            "scheduler".to_owned(),
            TokenBucket::new(q.scheduler.0, q.scheduler.1),
        );
        clients.insert(
            "provisioner".to_owned(),
            TokenBucket::new(q.provisioner.0, q.provisioner.1),
        );
        clients.insert(
            "attacher".to_owned(),
            TokenBucket::new(q.attacher.0, q.attacher.1),
        );
        clients.insert("script".to_owned(), TokenBucket::new(0.0, 1));
        for i in 0..nodes {
            clients.insert(
                format!("kubelet/{}", node_name(i)),
                TokenBucket::new(q.kubelet.0, q.kubelet.1),
            );
        }
        let busy = (p.workload == crate::params::Workload::Busy).then(|| {
            crate::busy::Busy::new(&p.busy, seed, crate::busy::Busy::cluster_of(&backend))
        });
        let a = &p.authz;
        let graph = Graph::new(
            Duration::from_secs_f64(a.write_base_us / 1e6),
            Duration::from_secs_f64(a.write_per_fanout_us / 1e6),
            Duration::from_secs_f64(a.read_cost_us / 1e6),
        );
        Self {
            now: SimTime::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            rng_api: stream(seed, "api"),
            rng_watch: stream(seed, "watch"),
            rng_csi: stream(seed, "csi"),
            rng_sched: stream(seed, "scheduler"),
            rng_pods: stream(seed, "pods"),
            store: Store::default(),
            graph,
            clients,
            backend,
            next_call: 0,
            calls: BTreeMap::new(),
            to_start: Vec::new(),
            scheduler: Work::default(),
            sched_reserved: BTreeSet::new(),
            pvctrl: Work::default(),
            prov: Provisioner::default(),
            adc: Adc::default(),
            att: Attacher::default(),
            rs: Work::default(),
            rs_creating: 0,
            rs_deleting: BTreeSet::new(),
            kubelets: (0..nodes).map(|_| Kubelet::default()).collect(),
            pod_counter: 0,
            pod_created: BTreeMap::new(),
            script: Script {
                phase: Phase::Provision,
                replicas: 0,
                next_step: SimTime::ZERO,
                last_progress: SimTime::ZERO,
                teardown_started: SimTime::ZERO,
                pvcs_deleted: false,
            },
            graph_ticking: false,
            progress: None,
            log,
            stats: Stats::default(),
            busy,
            down: BTreeSet::new(),
            decided: BTreeMap::new(),
            open_windows: BTreeMap::new(),
            faults: FaultCounts::default(),
            ledger: BTreeMap::new(),
            live_duplicates: BTreeMap::new(),
            checkpoint_errors: Vec::new(),
            checkpoints: 0,
            faults_pending: 0,
            p,
        }
    }

    /// The simulated clock.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// The scenario's phase.
    pub fn phase(&self) -> Phase {
        self.script.phase
    }

    /// The back end (for leak checks and reports).
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// After the run: closes every fault window, restarts the plugins still killed, and
    /// takes a last checkpoint, so that the leak check reads a healthy back end.
    pub async fn heal(&mut self) {
        if let Err(e) = self.backend.heal().await {
            self.faults.refused.push(format!("heal: {e:#}"));
        }
        self.down.clear();
        self.open_windows.clear();
        self.checkpoint().await;
    }

    /// Takes the back end out (to shut it down).
    pub fn into_backend(self) -> Backend {
        self.backend
    }

    /// API requests and throttling per client: (requests, total wait, max wait).
    pub fn clients(&self) -> BTreeMap<String, (u64, Duration, Duration)> {
        let mut out: BTreeMap<String, (u64, Duration, Duration)> = BTreeMap::new();
        for (name, b) in &self.clients {
            let group = if name.starts_with("kubelet/") {
                "kubelet".to_owned()
            } else {
                name.clone()
            };
            let e = out.entry(group).or_default();
            e.0 += b.granted;
            e.1 += Duration::from_nanos(b.waited_ns.min(u128::from(u64::MAX)) as u64);
            e.2 = e.2.max(b.max_wait);
        }
        out
    }

    fn at(&mut self, at: SimTime, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Entry {
            at: at.max(self.now),
            seq: self.seq,
            ev,
        }));
    }

    fn after(&mut self, d: Duration, ev: Ev) {
        self.at(self.now.after(d), ev);
    }

    fn event(&mut self, component: &str, what: &str, object: &str, result: &str) {
        self.log.push(self.now, component, what, object, result);
    }

    /// Runs the scenario to the end (or `limit` events, for tests).
    pub async fn run(&mut self) {
        self.setup();
        self.schedule_faults(Anchor::Start);
        self.after(Duration::ZERO, Ev::Script);
        self.after(Duration::from_secs(15), Ev::PvResync);
        let nodes = self.kubelets.len();
        for i in 0..nodes {
            // Kubelets started at different moments: their status loops are staggered.
            let period = Params::secs(self.p.node_status_period_s);
            let off = Duration::from_nanos(rand::RngExt::random_range(
                &mut self.rng_sched,
                0..period.as_nanos().max(1) as u64,
            ));
            self.after(off, Ev::NodeStatus(i));
        }
        if self.p.attach_required {
            self.after(Params::secs(self.p.adc_verify_period_s), Ev::AdcVerify);
        }
        while self.script.phase != Phase::Done {
            let Some(Reverse(e)) = self.queue.pop() else {
                break;
            };
            while let Some(t) = self.stats.series.due(e.at) {
                let s = self.sample(t).await;
                self.stats.series.record(s);
            }
            self.now = e.at;
            self.stats.events += 1;
            if self.stats.events.is_multiple_of(4096) {
                let info = Progress {
                    phase: self.script.phase,
                    sim: self.now,
                    running: self.running(),
                    replicas: self.p.replicas,
                    events: self.stats.events,
                };
                if let Some(Hook(f)) = &mut self.progress {
                    f(&info);
                }
            }
            match e.ev {
                // A call a kill cut was finished early; its original completion finds
                // nothing.
                Ev::CsiDone { id } if self.calls.contains_key(&id) => {
                    let (out, by_kill) = match self.decided.remove(&id) {
                        Some(out) => (out, true),
                        None => (self.backend.finish(id).await, false),
                    };
                    if out.is_err() {
                        self.attribute_failure(id, by_kill);
                    }
                    self.csi_done(id, out);
                }
                Ev::CsiDone { .. } => {}
                Ev::Fault(i) => self.fault(i).await,
                ev => self.handle(ev),
            }
            if let Some(b) = &mut self.busy {
                b.run_samples().await;
            }
            for (id, call) in std::mem::take(&mut self.to_start) {
                self.backend.start(id, call).await;
            }
        }
        self.stats.sim_end = self.now;
        let s = self.sample(self.now).await;
        self.stats.series.finish(s);
        self.faults.not_reached = (self.p.fault_plan.len() as u64)
            .saturating_sub(self.faults.applied.values().sum::<u64>())
            .saturating_sub(self.faults.refused.len() as u64);
    }

    // ---- faults ----------------------------------------------------------------------

    /// Schedules the fault plan's steps anchored to `anchor` (which starts now).
    fn schedule_faults(&mut self, anchor: Anchor) {
        let steps: Vec<(usize, f64)> = self
            .p
            .fault_plan
            .iter()
            .enumerate()
            .filter(|(_, s)| s.at == anchor)
            .map(|(i, s)| (i, s.after_s))
            .collect();
        for (i, after_s) in steps {
            self.faults_pending += 1;
            self.after(Params::secs(after_s), Ev::Fault(i));
        }
    }

    /// Applies step `i` of the fault plan.
    async fn fault(&mut self, i: usize) {
        let Some(step) = self.p.fault_plan.get(i).cloned() else {
            return;
        };
        self.faults_pending = self.faults_pending.saturating_sub(1);
        let action = step.action;
        // Nothing answers an eviction while the MDS is down, nor Manila's API while it
        // fails on purpose: the operator waits and tries again.
        let blocked = match &action {
            Action::Evict { .. } => self.open_windows.contains_key("mds"),
            Action::ResetStuckShares => self.open_windows.keys().any(|w| w.starts_with("manila")),
            _ => false,
        };
        if blocked {
            self.faults_pending += 1;
            self.event("fault", action.name(), &action.object(), "postponed 5 s");
            self.after(Duration::from_secs(5), Ev::Fault(i));
            return;
        }
        if action.quiesces() {
            self.backend.drain().await;
        }
        let mut detail = String::from("applied");
        if let Action::Restart { plugin } = &action
            && !self.down.contains(plugin)
        {
            // Restarted already (kills of one plugin overlapped).
            self.faults.count(&action, crate::fault::Applied::default());
            self.event("fault", action.name(), &action.object(), "running");
            return;
        }
        if let Action::Kill { plugin } = &action {
            // The connection drops: the calls under way fail now, whatever the real
            // ones had done.
            let cut: Vec<u64> = self
                .calls
                .iter()
                .filter(|(id, (c, _, _))| {
                    plugin_of(c) == *plugin && !self.decided.contains_key(*id)
                })
                .map(|(id, _)| *id)
                .collect();
            for id in &cut {
                self.decided.insert(
                    *id,
                    Err((
                        tonic::Code::Unavailable,
                        format!("connection to the {plugin} plugin lost: it was killed"),
                    )),
                );
                self.after(Duration::ZERO, Ev::CsiDone { id: *id });
            }
            self.backend.abandon(&cut);
            self.faults.calls_cut += cut.len() as u64;
            self.down.insert(*plugin);
            detail = format!("{} calls cut", cut.len());
        }
        match self.backend.inject(&action).await {
            Ok(applied) => {
                self.faults.count(&action, applied);
                match &action {
                    Action::Restart { plugin } => {
                        self.down.remove(plugin);
                    }
                    Action::CephRulesOn { window, rules } => {
                        let kind = if rules.iter().any(|r| r.starts_with("hang:")) {
                            "ceph-hangs"
                        } else {
                            "ceph-errors"
                        };
                        self.open_windows.insert(format!("ceph-{window}"), kind);
                    }
                    Action::ManilaFaultsOn { window, faults } => {
                        let kind = if faults.stuck_creating_rate > 0.0 {
                            "manila-stuck"
                        } else {
                            "manila-5xx"
                        };
                        self.open_windows.insert(format!("manila-{window}"), kind);
                    }
                    Action::CephRulesOff { window } => {
                        self.open_windows.remove(&format!("ceph-{window}"));
                    }
                    Action::ManilaFaultsOff { window } => {
                        self.open_windows.remove(&format!("manila-{window}"));
                    }
                    Action::MdsDown => {
                        self.open_windows.insert("mds".into(), "mds-down");
                    }
                    Action::MdsUp => {
                        self.open_windows.remove("mds");
                    }
                    _ => {}
                }
            }
            Err(e) => {
                self.faults
                    .refused
                    .push(format!("{} {}: {e:#}", action.name(), action.object()));
                detail = "refused".into();
            }
        }
        self.event("fault", action.name(), &action.object(), &detail);
        if action.quiesces() {
            self.checkpoint().await;
        }
    }

    /// Counts a failed call against the faults in force when it ended: the windows open
    /// then, and the kill of its plugin when the simulation failed it for that. (A
    /// window's count includes failures it did not cause, when two overlap.)
    fn attribute_failure(&mut self, id: u64, by_kill: bool) {
        let mut kinds: BTreeSet<&'static str> = self.open_windows.values().copied().collect();
        if by_kill {
            kinds.insert(match self.calls.get(&id).map(|(c, _, _)| plugin_of(c)) {
                Some(Plugin::Controller) => "controller-kills",
                _ => "node-kills",
            });
        }
        for k in kinds {
            *self
                .faults
                .calls_failed_during
                .entry(k.to_owned())
                .or_default() += 1;
        }
    }

    /// Reads what the back ends hold, when no fault window is open (the reading would
    /// meet the faults), and adds each request name's volumes to the ledger.
    async fn checkpoint(&mut self) {
        if !self.open_windows.is_empty() || self.p.fault_plan.is_empty() {
            return;
        }
        self.backend.drain().await;
        match self.backend.inventory().await {
            None => {}
            Some(Ok(inv)) => {
                self.checkpoints += 1;
                for (name, uuid) in &inv.journal_names {
                    self.ledger
                        .entry(name.clone())
                        .or_default()
                        .insert(uuid.clone());
                }
                for (name, ids) in inv.live_shares_by_name() {
                    if ids.len() > 1 {
                        let n = self.live_duplicates.entry(name).or_default();
                        *n = (*n).max(ids.len());
                    }
                }
            }
            Some(Err(e)) => self
                .checkpoint_errors
                .push(format!("at {:.1} s: {e:#}", self.now.secs())),
        }
    }

    /// Claims given more than one volume: by the volume handles CreateVolume returned,
    /// and by the back ends' volumes per request name at the checkpoints.
    pub fn duplicates(&self) -> BTreeMap<String, usize> {
        let mut d = BTreeMap::new();
        for (pvc, handles) in &self.prov.handles {
            if handles.len() > 1 {
                d.insert(format!("{pvc} (handles)"), handles.len());
            }
        }
        for (name, vols) in &self.ledger {
            if vols.len() > 1 {
                d.insert(format!("{name} (journal)"), vols.len());
            }
        }
        for (name, n) in &self.live_duplicates {
            d.insert(format!("{name} (live shares)"), *n);
        }
        d
    }

    /// Each claim's state when the deploy phase ended: `Bound`, or `Pending` with the
    /// last provisioning error (or none recorded).
    pub fn claim_outcomes(&self) -> BTreeMap<String, String> {
        self.stats.claims_at_teardown.clone()
    }

    /// The state for the time series at `at` (no event later than `at` has run yet).
    async fn sample(&self, at: SimTime) -> Sample {
        let stuck_after = Params::secs(self.p.kill_stuck_after_s);
        let mut s = Sample {
            t: at,
            sessions: self.stats.sessions.max(0) as u64,
            forbidden: self.stats.forbidden.values().sum(),
            killed: self.stats.killed,
            ..Sample::default()
        };
        for (name, pod) in &self.store.pods {
            if deleting(&pod.metadata) {
                continue;
            }
            if pod_running(pod) {
                s.running += 1;
            } else {
                s.pending += 1;
                if self
                    .pod_created
                    .get(name)
                    .is_some_and(|c| at.since(*c) > stuck_after)
                {
                    s.stuck += 1;
                }
            }
        }
        for ((_, code), v) in &self.stats.rpcs {
            s.rpcs += v.len() as u64;
            if code != "Ok" {
                s.rpc_errors += v.len() as u64;
            }
        }
        if let Backend::Real(r) = &self.backend {
            let d = r.perf_dump().await;
            s.hcr = d["mds_server"]["handle_client_request"].as_u64();
            s.ceph_sessions = d["mds_sessions"]["session_count"].as_u64();
        }
        s
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Watch { to, kind, name } => self.on_watch(to, kind, &name),
            Ev::Process(c) => self.process(c),
            Ev::Api { client, req } => self.apply(&client, req),
            // Both need the back end: the run loop handles them.
            Ev::CsiDone { .. } | Ev::Fault(_) => {}
            Ev::GraphIn(op) => {
                self.graph.enqueue(op);
                if !self.graph_ticking {
                    self.graph_ticking = true;
                    self.after(Duration::from_millis(self.p.authz.tick_ms), Ev::GraphTick);
                }
            }
            Ev::GraphTick => {
                self.graph.tick(Duration::from_millis(self.p.authz.tick_ms));
                if self.graph.pending() > 0 {
                    self.after(Duration::from_millis(self.p.authz.tick_ms), Ev::GraphTick);
                } else {
                    self.graph_ticking = false;
                }
            }
            Ev::NodeStatus(i) => self.node_status(i),
            Ev::KubeletPoll { node, pv } => self.kubelet_get_va(node, &pv, VaPurpose::Wait),
            Ev::ContainerStarted { node, pod } => {
                if self
                    .store
                    .pods
                    .get(&pod)
                    .is_some_and(|p| !deleting(&p.metadata))
                {
                    self.api(&kubelet_client(node), Req::PodRunning { pod });
                }
            }
            Ev::AdcPoll {
                pv,
                node,
                detach,
                started,
            } => self.api(
                "kcm",
                Req::AdcGetVa {
                    pv,
                    node,
                    detach,
                    started,
                },
            ),
            Ev::AdcRetry { pv, node } => {
                self.adc.dirty.insert((pv, node));
                self.kick(Comp::Adc);
            }
            Ev::AdcVerify => self.adc_verify(),
            Ev::AttacherRetry { va } => self.attacher_enqueue(&va),
            Ev::ProvisionerRetry { key } => {
                self.prov.work.dirty.insert(key);
                self.kick(Comp::Provisioner);
            }
            Ev::PvResync => {
                let names: Vec<String> = self.store.pvcs.keys().cloned().collect();
                self.pvctrl.dirty.extend(names);
                self.kick(Comp::PvCtrl);
                self.after(Duration::from_secs(15), Ev::PvResync);
            }
            Ev::Script => self.script_step(),
            Ev::Busy { round } => {
                if let Some(b) = &mut self.busy {
                    let out = b.wake(self.now, round);
                    self.busy_out(out);
                }
            }
        }
    }

    /// Logs what the busy workload reports and schedules its next wake-up.
    fn busy_out(&mut self, out: crate::busy::Out) {
        for (what, object, result) in &out.log {
            self.event("busy", what, object, result);
        }
        if let Some((at, round)) = out.wake {
            self.at(at, Ev::Busy { round });
        }
    }

    // ---- API server ------------------------------------------------------------------

    fn api(&mut self, client: &str, req: Req) {
        let bucket = self
            .clients
            .get_mut(client)
            .expect("every client has a bucket");
        let go = bucket.reserve(self.now);
        let lat = self.p.api_latency.sample(&mut self.rng_api);
        self.at(
            go.after(lat),
            Ev::Api {
                client: client.to_owned(),
                req,
            },
        );
    }

    fn notify(&mut self, kind: Kind, name: &str, node: Option<usize>) {
        let to: Vec<Comp> = match kind {
            Kind::Pod => {
                let mut v = vec![Comp::Scheduler, Comp::Adc, Comp::RsCtrl];
                if let Some(n) = node {
                    v.push(Comp::Kubelet(n));
                }
                v
            }
            Kind::Pvc => vec![Comp::PvCtrl, Comp::Provisioner],
            Kind::Pv => vec![Comp::PvCtrl, Comp::Provisioner],
            Kind::Va => vec![Comp::Adc, Comp::Attacher, Comp::Provisioner],
            Kind::Node => {
                let mut v = vec![Comp::Adc];
                if let Some(n) = node {
                    v.push(Comp::Kubelet(n));
                }
                v
            }
            Kind::Deployment => vec![Comp::RsCtrl],
        };
        for c in to {
            let d = self.p.watch_latency.sample(&mut self.rng_watch);
            self.after(
                d,
                Ev::Watch {
                    to: c,
                    kind,
                    name: name.to_owned(),
                },
            );
        }
    }

    fn graph_event(&mut self, op: GraphOp) {
        if self.p.authz.enabled {
            let d = self.p.authz.lag.sample(&mut self.rng_watch);
            self.after(d, Ev::GraphIn(op));
        }
    }

    fn apply(&mut self, client: &str, req: Req) {
        let now_time = Time(
            k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(self.now.0))
                .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        );
        match req {
            Req::BindPod { pod, node } => {
                self.sched_reserved.remove(&node);
                let Some(p) = self.store.pods.get_mut(&pod) else {
                    return;
                };
                if pod_node(p).is_some() {
                    return;
                }
                let pvcs = pod_pvcs(p);
                p.spec.get_or_insert_with(Default::default).node_name = Some(node_name(node));
                let mut m = std::mem::take(&mut p.metadata);
                self.store.stamp(&mut m);
                if let Some(p) = self.store.pods.get_mut(&pod) {
                    p.metadata = m;
                }
                self.event(client, "bind", &pod, &node_name(node));
                self.stats.scheduled.insert(pod.clone(), self.now);
                self.graph_event(GraphOp::AddPod {
                    name: pod.clone(),
                    node: node_name(node),
                    pvcs,
                });
                self.notify(Kind::Pod, &pod, Some(node));
            }
            Req::AnnotatePvc { pvc } => {
                let Some(c) = self.store.pvcs.get_mut(&pvc) else {
                    return;
                };
                annotate(&mut c.metadata, ANN_STORAGE_PROVISIONER, DRIVER_NAME);
                let mut m = std::mem::take(&mut c.metadata);
                self.store.stamp(&mut m);
                if let Some(c) = self.store.pvcs.get_mut(&pvc) {
                    c.metadata = m;
                }
                self.event(client, "annotate", &pvc, "storage-provisioner");
                self.notify(Kind::Pvc, &pvc, None);
            }
            Req::Bind { pvc, pv } => {
                if !self.store.pvs.contains_key(&pv) || !self.store.pvcs.contains_key(&pvc) {
                    return;
                }
                let mut v = self.store.pvs.remove(&pv).expect("checked");
                v.status = Some(PersistentVolumeStatus {
                    phase: Some("Bound".into()),
                    ..Default::default()
                });
                self.store.stamp(&mut v.metadata);
                self.store.pvs.insert(pv.clone(), v);
                let mut c = self.store.pvcs.remove(&pvc).expect("checked");
                c.spec.get_or_insert_with(Default::default).volume_name = Some(pv.clone());
                annotate(&mut c.metadata, ANN_BIND_COMPLETED, "yes");
                c.status = Some(PersistentVolumeClaimStatus {
                    phase: Some("Bound".into()),
                    ..Default::default()
                });
                self.store.stamp(&mut c.metadata);
                self.store.pvcs.insert(pvc.clone(), c);
                self.event(client, "bind", &pvc, &pv);
                self.notify(Kind::Pv, &pv, None);
                self.notify(Kind::Pvc, &pvc, None);
            }
            Req::ReleasePv { pv } => {
                let Some(mut v) = self.store.pvs.remove(&pv) else {
                    return;
                };
                v.status = Some(PersistentVolumeStatus {
                    phase: Some("Released".into()),
                    ..Default::default()
                });
                self.store.stamp(&mut v.metadata);
                self.store.pvs.insert(pv.clone(), v);
                self.event(client, "release", &pv, "Released");
                self.notify(Kind::Pv, &pv, None);
            }
            Req::CreatePv(v) => {
                let mut v = *v;
                let name = v.metadata.name.clone().unwrap_or_default();
                if self.store.pvs.contains_key(&name) {
                    return;
                }
                self.store.stamp(&mut v.metadata);
                self.store.pvs.insert(name.clone(), v);
                self.event(client, "create", &name, "PersistentVolume");
                self.notify(Kind::Pv, &name, None);
            }
            Req::DeletePv { pv } => {
                if self.store.pvs.remove(&pv).is_some() {
                    self.event(client, "delete", &pv, "PersistentVolume");
                    self.notify(Kind::Pv, &pv, None);
                }
            }
            Req::CreatePod(p) => {
                self.rs_creating = self.rs_creating.saturating_sub(1);
                let mut p = *p;
                let name = p.metadata.name.clone().unwrap_or_default();
                self.store.stamp(&mut p.metadata);
                self.store.pods.insert(name.clone(), p);
                self.pod_created.insert(name.clone(), self.now);
                self.stats.pods_created += 1;
                self.event(client, "create", &name, "Pod");
                self.notify(Kind::Pod, &name, None);
            }
            Req::DeletePod { pod } => {
                self.rs_deleting.remove(&pod);
                let Some(p) = self.store.pods.get_mut(&pod) else {
                    return;
                };
                if deleting(&p.metadata) {
                    return;
                }
                p.metadata.deletion_timestamp = Some(now_time);
                let node = pod_node(p).and_then(node_index);
                if node.is_none() {
                    self.store.pods.remove(&pod);
                    self.event(client, "delete", &pod, "unscheduled");
                    self.notify(Kind::Pod, &pod, None);
                    return;
                }
                let mut m = std::mem::take(&mut p.metadata);
                self.store.stamp(&mut m);
                if let Some(p) = self.store.pods.get_mut(&pod) {
                    p.metadata = m;
                }
                self.event(client, "delete", &pod, "terminating");
                if let Some(b) = &mut self.busy {
                    let out = b.stop(self.now, &pod);
                    self.busy_out(out);
                }
                self.graph_event(GraphOp::UpdatePod { name: pod.clone() });
                self.notify(Kind::Pod, &pod, node);
            }
            Req::RemovePod { pod } => {
                let Some(p) = self.store.pods.remove(&pod) else {
                    return;
                };
                let node = pod_node(&p).and_then(node_index);
                self.event(client, "remove", &pod, "Pod");
                self.graph_event(GraphOp::DelPod { name: pod.clone() });
                self.notify(Kind::Pod, &pod, node);
            }
            Req::PodRunning { pod } => {
                let Some(p) = self.store.pods.get_mut(&pod) else {
                    return;
                };
                if pod_running(p) {
                    return;
                }
                p.status = Some(PodStatus {
                    phase: Some("Running".into()),
                    ..Default::default()
                });
                let node = pod_node(p).and_then(node_index);
                let mut m = std::mem::take(&mut p.metadata);
                self.store.stamp(&mut m);
                if let Some(p) = self.store.pods.get_mut(&pod) {
                    p.metadata = m;
                }
                if let Some(c) = self.pod_created.get(&pod) {
                    self.stats.startup.push(self.now.since(*c));
                }
                if let Some(c) = self.stats.scheduled.get(&pod) {
                    let d = self.now.since(*c);
                    self.stats.schedule_to_run.push(d);
                }
                self.stats.running_at.push(self.now);
                self.event(client, "running", &pod, "Running");
                if let (Some(b), Some(n)) = (&mut self.busy, node) {
                    let pvs: Vec<String> = self.kubelets[n]
                        .pods
                        .get(&pod)
                        .map(|kp| kp.pvs.iter().map(|(_, pv)| pv.clone()).collect())
                        .unwrap_or_default();
                    let out = b.start(self.now, &pod, n, pvs);
                    self.busy_out(out);
                }
                self.graph_event(GraphOp::UpdatePod { name: pod.clone() });
                self.notify(Kind::Pod, &pod, node);
            }
            Req::ScaleRs { replicas } => {
                let name = format!("{DEPLOYMENT}-rs");
                let Some(rs) = self.store.replica_sets.get_mut(&name) else {
                    return;
                };
                rs.spec.replicas = Some(replicas);
                let mut m = std::mem::take(&mut rs.metadata);
                self.store.stamp(&mut m);
                if let Some(rs) = self.store.replica_sets.get_mut(&name) {
                    rs.metadata = m;
                }
                self.event(client, "scale", &name, &replicas.to_string());
                self.notify(Kind::Deployment, &name, None);
            }
            Req::CreateVa { pv, node } => {
                let name = va_name(&pv, node);
                if self.store.vas.contains_key(&name) {
                    return;
                }
                let mut va = VolumeAttachment {
                    metadata: meta(&name, false),
                    spec: VolumeAttachmentSpec {
                        attacher: DRIVER_NAME.into(),
                        node_name: node_name(node),
                        source: VolumeAttachmentSource {
                            persistent_volume_name: Some(pv.clone()),
                            ..Default::default()
                        },
                    },
                    status: Some(VolumeAttachmentStatus {
                        attached: false,
                        ..Default::default()
                    }),
                };
                self.store.stamp(&mut va.metadata);
                self.store.vas.insert(name.clone(), va);
                self.stats.vas_created += 1;
                self.event(client, "create", &name, "VolumeAttachment");
                self.graph_event(GraphOp::AddVa {
                    name: name.clone(),
                    node: node_name(node),
                });
                self.notify(Kind::Va, &name, None);
            }
            Req::DeleteVa { pv, node } => {
                let name = va_name(&pv, node);
                let Some(va) = self.store.vas.get_mut(&name) else {
                    return;
                };
                if va
                    .metadata
                    .finalizers
                    .as_ref()
                    .is_some_and(|f| !f.is_empty())
                {
                    va.metadata.deletion_timestamp = Some(now_time);
                    let mut m = std::mem::take(&mut va.metadata);
                    self.store.stamp(&mut m);
                    if let Some(va) = self.store.vas.get_mut(&name) {
                        va.metadata = m;
                    }
                    self.event(client, "delete", &name, "finalizing");
                } else {
                    self.store.vas.remove(&name);
                    self.event(client, "delete", &name, "VolumeAttachment");
                    self.graph_event(GraphOp::DelVa { name: name.clone() });
                }
                self.notify(Kind::Va, &name, None);
            }
            Req::AdcGetVa {
                pv,
                node,
                detach,
                started,
            } => self.adc_polled(pv, node, detach, started),
            Req::AdcVerifyGet => {
                self.adc.verify_outstanding = self.adc.verify_outstanding.saturating_sub(1);
            }
            Req::NodeAttached { node, vols } => {
                let name = node_name(node);
                let Some(n) = self.store.nodes.get_mut(&name) else {
                    return;
                };
                let count = vols.len();
                n.status
                    .get_or_insert_with(Default::default)
                    .volumes_attached = Some(
                    vols.into_iter()
                        .map(|pv| k8s_openapi::api::core::v1::AttachedVolume {
                            name: pv,
                            device_path: String::new(),
                        })
                        .collect(),
                );
                let mut m = std::mem::take(&mut n.metadata);
                self.store.stamp(&mut m);
                if let Some(n) = self.store.nodes.get_mut(&name) {
                    n.metadata = m;
                }
                self.event(client, "status", &name, &format!("volumesAttached {count}"));
                self.notify(Kind::Node, &name, Some(node));
            }
            Req::VaFinalizer { va } => {
                let Some(v) = self.store.vas.get_mut(&va) else {
                    self.attacher_done(&va, false);
                    return;
                };
                v.metadata.finalizers = Some(vec![format!("external-attacher/{DRIVER_NAME}")]);
                let mut m = std::mem::take(&mut v.metadata);
                self.store.stamp(&mut m);
                let (pv, node) = {
                    let v = self.store.vas.get_mut(&va).expect("present");
                    v.metadata = m;
                    (
                        v.spec
                            .source
                            .persistent_volume_name
                            .clone()
                            .unwrap_or_default(),
                        node_index(&v.spec.node_name).unwrap_or(0),
                    )
                };
                let volume_id = self.volume_handle(&pv).unwrap_or_default();
                self.csi(
                    "attacher",
                    CsiCall::ControllerPublish { volume_id, node },
                    Then::CtrlPublished { va },
                    &pv,
                );
            }
            Req::VaStatus { va, error } => {
                let Some(v) = self.store.vas.get_mut(&va) else {
                    self.attacher_done(&va, false);
                    return;
                };
                let st = v.status.get_or_insert_with(Default::default);
                st.attached = error.is_none();
                st.attach_error =
                    error
                        .as_ref()
                        .map(|e| k8s_openapi::api::storage::v1::VolumeError {
                            message: Some(e.clone()),
                            ..Default::default()
                        });
                let mut m = std::mem::take(&mut v.metadata);
                self.store.stamp(&mut m);
                if let Some(v) = self.store.vas.get_mut(&va) {
                    v.metadata = m;
                }
                self.event(
                    client,
                    "va-status",
                    &va,
                    if error.is_none() { "attached" } else { "error" },
                );
                self.notify(Kind::Va, &va, None);
                self.attacher_done(&va, error.is_none());
            }
            Req::VaUnfinalize { va } => {
                if self.store.vas.remove(&va).is_some() {
                    self.event(client, "delete", &va, "VolumeAttachment");
                    self.graph_event(GraphOp::DelVa { name: va.clone() });
                    self.notify(Kind::Va, &va, None);
                }
                self.attacher_done(&va, true);
            }
            Req::NodeInUse { node, vols } => {
                let name = node_name(node);
                let Some(n) = self.store.nodes.get_mut(&name) else {
                    return;
                };
                n.status.get_or_insert_with(Default::default).volumes_in_use = Some(vols);
                let mut m = std::mem::take(&mut n.metadata);
                self.store.stamp(&mut m);
                if let Some(n) = self.store.nodes.get_mut(&name) {
                    n.metadata = m;
                }
                self.event(client, "status", &name, "volumesInUse");
                self.notify(Kind::Node, &name, Some(node));
            }
            Req::KubeletGetVa { node, pv, purpose } => self.kubelet_got_va(node, pv, purpose),
            Req::KubeletGetSecret { node, pv } => self.kubelet_got_secret(node, pv),
        }
    }

    fn volume_handle(&self, pv: &str) -> Option<String> {
        Some(
            self.store
                .pvs
                .get(pv)?
                .spec
                .as_ref()?
                .csi
                .as_ref()?
                .volume_handle
                .clone(),
        )
    }

    fn volume_context(&self, pv: &str) -> BTreeMap<String, String> {
        self.store
            .pvs
            .get(pv)
            .and_then(|v| v.spec.as_ref()?.csi.as_ref()?.volume_attributes.clone())
            .unwrap_or_default()
    }

    // ---- CSI -------------------------------------------------------------------------

    fn csi(&mut self, component: &str, call: CsiCall, then: Then, object: &str) {
        let lat = {
            let l = &self.p.csi_latency;
            match &call {
                CsiCall::CreateVolume { .. } => l.create,
                CsiCall::DeleteVolume { .. } => l.delete,
                CsiCall::ControllerPublish { .. } | CsiCall::ControllerUnpublish { .. } => {
                    l.publish_controller
                }
                CsiCall::NodeStage { .. } => l.stage,
                CsiCall::NodeUnstage { .. } => l.unstage,
                CsiCall::NodePublish { .. } | CsiCall::NodeUnpublish { .. } => l.publish,
            }
        }
        .sample(&mut self.rng_csi);
        self.next_call += 1;
        let id = self.next_call;
        self.event(component, call.method(), object, "start");
        let plugin = plugin_of(&call);
        self.calls.insert(id, (call.clone(), then, self.now));
        if self.down.contains(&plugin) {
            // Nothing listens on a killed plugin's socket: the call fails at once.
            self.faults.calls_refused += 1;
            self.decided.insert(
                id,
                Err((
                    tonic::Code::Unavailable,
                    format!("the {plugin} plugin is not running"),
                )),
            );
            self.after(Duration::ZERO, Ev::CsiDone { id });
            return;
        }
        self.to_start.push((id, call));
        self.after(lat, Ev::CsiDone { id });
    }

    fn csi_done(&mut self, id: u64, out: CsiOutcome) {
        let Some((call, then, started)) = self.calls.remove(&id) else {
            return;
        };
        let code = match &out {
            Ok(_) => tonic::Code::Ok,
            Err((c, _)) => *c,
        };
        self.stats.rpc(call.method(), code, self.now.since(started));
        let (component, object) = match &then {
            Then::Provisioned { pvc, .. } => ("provisioner".to_owned(), pvc.clone()),
            Then::Deleted { pv } => ("provisioner".to_owned(), pv.clone()),
            Then::CtrlPublished { va } | Then::CtrlUnpublished { va } => {
                ("attacher".to_owned(), va.clone())
            }
            Then::Staged { node, pv } | Then::Unstaged { node, pv } => {
                (kubelet_client(*node), pv.clone())
            }
            Then::Published { node, pv, pod } | Then::Unpublished { node, pv, pod } => {
                (kubelet_client(*node), format!("{pod}/{pv}"))
            }
        };
        self.event(&component, call.method(), &object, &format!("{code:?}"));
        let ok = out.is_ok();
        let uncertain = !ok && !is_final(code);
        let error = out.as_ref().err().map(|(c, m)| format!("{c:?}: {m}"));
        match then {
            Then::Provisioned { pvc, pv } => match out {
                Ok(CsiReply::Created { volume_id, context }) => {
                    self.prov
                        .handles
                        .entry(pvc.clone())
                        .or_default()
                        .insert(volume_id.clone());
                    self.prov.in_progress.remove(&pvc);
                    self.prov.last_error.remove(&pvc);
                    let pvobj = self.make_pv(&pvc, &pv, volume_id, context);
                    self.api("provisioner", Req::CreatePv(Box::new(pvobj)));
                    self.prov.busy.remove(&format!("pvc/{pvc}"));
                    self.prov.backoff.remove(&format!("pvc/{pvc}"));
                }
                _ => {
                    if uncertain {
                        self.prov.in_progress.insert(pvc.clone(), pv);
                    } else {
                        self.prov.in_progress.remove(&pvc);
                    }
                    self.prov
                        .last_error
                        .insert(pvc.clone(), error.unwrap_or_default());
                    self.prov_fail(format!("pvc/{pvc}"));
                }
            },
            Then::Deleted { pv } => {
                if ok {
                    self.api("provisioner", Req::DeletePv { pv: pv.clone() });
                    self.prov.busy.remove(&format!("pv/{pv}"));
                    self.prov.backoff.remove(&format!("pv/{pv}"));
                } else {
                    self.prov_fail(format!("pv/{pv}"));
                }
            }
            Then::CtrlPublished { va } => {
                let error = out.err().map(|(c, m)| format!("{c:?}: {m}"));
                self.api("attacher", Req::VaStatus { va, error });
            }
            Then::CtrlUnpublished { va } => {
                if ok {
                    self.api("attacher", Req::VaUnfinalize { va });
                } else {
                    self.attacher_done(&va, false);
                }
            }
            Then::Staged { node, pv } => {
                if ok {
                    self.stats.sessions += 1;
                    self.stats.peak_sessions = self.stats.peak_sessions.max(self.stats.sessions);
                    if let Some(v) = self.kubelets[node].vols.get_mut(&pv) {
                        v.staged = true;
                        v.uncertain = false;
                    }
                    self.vol_ok(node, &pv);
                } else {
                    if let Some(v) = self.kubelets[node].vols.get_mut(&pv) {
                        v.uncertain |= uncertain;
                        v.last_error = error;
                    }
                    self.vol_fail(node, &pv, "MountDevice failed", false);
                }
            }
            Then::Published { node, pv, pod } => {
                if ok {
                    let k = &mut self.kubelets[node];
                    if let Some(kp) = k.pods.get_mut(&pod) {
                        kp.uncertain.remove(&pv);
                        kp.published.insert(pv.clone());
                        if kp.published.len() == kp.pvs.len() && !kp.running && !kp.deleting {
                            kp.running = true;
                            let d = self.p.container_start.sample(&mut self.rng_pods);
                            self.after(d, Ev::ContainerStarted { node, pod });
                        }
                    }
                    self.vol_ok(node, &pv);
                } else {
                    let k = &mut self.kubelets[node];
                    if uncertain && let Some(kp) = k.pods.get_mut(&pod) {
                        kp.uncertain.insert(pv.clone());
                    }
                    if let Some(v) = k.vols.get_mut(&pv) {
                        v.last_error = error;
                    }
                    self.vol_fail(node, &pv, "SetUp failed", false);
                }
            }
            Then::Unpublished { node, pv, pod } => {
                if ok {
                    if let Some(kp) = self.kubelets[node].pods.get_mut(&pod) {
                        kp.published.remove(&pv);
                        kp.uncertain.remove(&pv);
                    }
                    self.vol_ok(node, &pv);
                } else {
                    if let Some(v) = self.kubelets[node].vols.get_mut(&pv) {
                        v.last_error = error;
                    }
                    self.vol_fail(node, &pv, "UnmountVolume failed", true);
                }
            }
            Then::Unstaged { node, pv } => {
                if ok {
                    if let Some(v) = self.kubelets[node].vols.get_mut(&pv) {
                        // An uncertain stage never counted as a session.
                        if v.staged {
                            self.stats.sessions -= 1;
                        }
                        v.staged = false;
                        v.uncertain = false;
                    }
                    self.vol_ok(node, &pv);
                } else {
                    if let Some(v) = self.kubelets[node].vols.get_mut(&pv) {
                        v.last_error = error;
                    }
                    self.vol_fail(node, &pv, "UnmountDevice failed", true);
                }
            }
        }
    }

    // ---- watches and work queues -----------------------------------------------------

    fn kick(&mut self, c: Comp) {
        let pending = match c {
            Comp::Scheduler => &mut self.scheduler.pending,
            Comp::PvCtrl => &mut self.pvctrl.pending,
            Comp::Provisioner => &mut self.prov.work.pending,
            Comp::Adc => &mut self.adc.pending,
            Comp::Attacher => &mut self.att.pending,
            Comp::RsCtrl => &mut self.rs.pending,
            Comp::Kubelet(i) => &mut self.kubelets[i].pending,
        };
        if !*pending {
            *pending = true;
            // Work queues are drained by workers right away; the kubelet's reconciler
            // and the ADC's run every 100 ms.
            let d = match c {
                Comp::Kubelet(_) | Comp::Adc => PROCESS_DELAY,
                _ => Duration::ZERO,
            };
            self.after(d, Ev::Process(c));
        }
    }

    fn on_watch(&mut self, to: Comp, kind: Kind, name: &str) {
        match to {
            Comp::Scheduler => {
                self.scheduler.dirty.insert(name.to_owned());
            }
            Comp::PvCtrl => {
                let key = match kind {
                    Kind::Pv => self
                        .store
                        .pvs
                        .get(name)
                        .and_then(|v| v.spec.as_ref()?.claim_ref.as_ref()?.name.clone()),
                    _ => Some(name.to_owned()),
                };
                if let Some(k) = key {
                    self.pvctrl.dirty.insert(k);
                }
            }
            Comp::Provisioner => {
                let key = match kind {
                    Kind::Pv => format!("pv/{name}"),
                    // A VolumeAttachment going may unblock its PV's deletion.
                    Kind::Va => format!(
                        "pv/{}",
                        name.strip_prefix("csi-")
                            .and_then(|n| n.rsplit_once("-node-"))
                            .map_or("", |(pv, _)| pv)
                    ),
                    _ => format!("pvc/{name}"),
                };
                self.prov.work.dirty.insert(key);
            }
            Comp::Adc => self.adc_watch(kind, name),
            Comp::Attacher => {
                self.attacher_enqueue(name);
                return;
            }
            Comp::RsCtrl => {}
            Comp::Kubelet(i) => {
                if kind == Kind::Pod {
                    self.kubelet_pod_watch(i, name);
                }
            }
        }
        self.kick(to);
    }

    fn process(&mut self, c: Comp) {
        match c {
            Comp::Scheduler => {
                self.scheduler.pending = false;
                self.schedule();
            }
            Comp::PvCtrl => {
                self.pvctrl.pending = false;
                self.pv_controller();
            }
            Comp::Provisioner => {
                self.prov.work.pending = false;
                self.provisioner();
            }
            Comp::Adc => {
                self.adc.pending = false;
                self.adc_reconcile();
            }
            Comp::Attacher => {
                self.att.pending = false;
                self.attacher();
            }
            Comp::RsCtrl => {
                self.rs.pending = false;
                self.replica_set();
            }
            Comp::Kubelet(i) => {
                self.kubelets[i].pending = false;
                self.kubelet_reconcile(i);
            }
        }
    }

    // ---- scheduler -------------------------------------------------------------------

    fn schedule(&mut self) {
        let dirty = std::mem::take(&mut self.scheduler.dirty);
        let mut occupied: BTreeSet<usize> = self
            .store
            .pods
            .values()
            .filter_map(|p| pod_node(p).and_then(node_index))
            .collect();
        occupied.extend(self.sched_reserved.iter().copied());
        // Any pod event may free a node or bring a pod: look at every unscheduled pod.
        if dirty.is_empty() {
            return;
        }
        let mut unscheduled: Vec<String> = self
            .store
            .pods
            .iter()
            .filter(|(_, p)| pod_node(p).is_none() && !deleting(&p.metadata))
            .map(|(n, _)| n.clone())
            .collect();
        unscheduled.sort();
        for pod in unscheduled {
            let free: Vec<usize> = (0..self.kubelets.len())
                .filter(|i| !occupied.contains(i))
                .collect();
            if free.is_empty() {
                self.event("scheduler", "unschedulable", &pod, "no free node");
                return;
            }
            let pick = free[rand::RngExt::random_range(&mut self.rng_sched, 0..free.len())];
            occupied.insert(pick);
            self.sched_reserved.insert(pick);
            self.api("scheduler", Req::BindPod { pod, node: pick });
        }
    }

    // ---- PV controller ---------------------------------------------------------------

    fn pv_controller(&mut self) {
        for pvc in std::mem::take(&mut self.pvctrl.dirty) {
            let Some(c) = self.store.pvcs.get(&pvc) else {
                // The claim is gone: release its volume (one provisioned for a claim
                // deleted meanwhile is still Available).
                let pv = self.store.pvs.iter().find(|(_, v)| {
                    !matches!(pv_phase(v), "Released" | "Failed")
                        && v.spec
                            .as_ref()
                            .and_then(|s| s.claim_ref.as_ref())
                            .and_then(|r| r.name.as_deref())
                            == Some(pvc.as_str())
                });
                if let Some((name, _)) = pv {
                    let pv = name.clone();
                    self.api("kcm", Req::ReleasePv { pv });
                }
                continue;
            };
            if pvc_phase(c) == "Bound" {
                continue;
            }
            if annotation(&c.metadata, ANN_STORAGE_PROVISIONER).is_none() {
                self.api("kcm", Req::AnnotatePvc { pvc });
                continue;
            }
            let pv = format!("pvc-{}", c.metadata.uid.clone().unwrap_or_default());
            if self.store.pvs.contains_key(&pv) {
                self.api("kcm", Req::Bind { pvc, pv });
            }
        }
    }

    // ---- external-provisioner --------------------------------------------------------

    fn provisioner(&mut self) {
        for key in std::mem::take(&mut self.prov.work.dirty) {
            if self.prov.busy.contains(&key) {
                continue;
            }
            if let Some((_, until)) = self.prov.backoff.get(&key)
                && *until > self.now
            {
                continue;
            }
            if let Some(pvc) = key.strip_prefix("pvc/") {
                let Some(c) = self.store.pvcs.get(pvc) else {
                    // Deleted while its volume may be in the making: ask again until the
                    // answer is final.
                    if let Some(pv) = self.prov.in_progress.get(pvc).cloned()
                        && !self.store.pvs.contains_key(&pv)
                    {
                        self.prov.busy.insert(key.clone());
                        let pvc = pvc.to_owned();
                        self.csi(
                            "provisioner",
                            CsiCall::CreateVolume { name: pv.clone() },
                            Then::Provisioned {
                                pvc: pvc.clone(),
                                pv,
                            },
                            &pvc,
                        );
                    }
                    continue;
                };
                if pvc_phase(c) == "Bound"
                    || annotation(&c.metadata, ANN_STORAGE_PROVISIONER) != Some(DRIVER_NAME)
                    || deleting(&c.metadata)
                {
                    continue;
                }
                let pv = format!("pvc-{}", c.metadata.uid.clone().unwrap_or_default());
                if self.store.pvs.contains_key(&pv) {
                    continue;
                }
                self.prov.busy.insert(key.clone());
                let pvc = pvc.to_owned();
                self.csi(
                    "provisioner",
                    CsiCall::CreateVolume { name: pv.clone() },
                    Then::Provisioned {
                        pvc: pvc.clone(),
                        pv,
                    },
                    &pvc,
                );
            } else if let Some(pv) = key.strip_prefix("pv/") {
                let Some(v) = self.store.pvs.get(pv) else {
                    continue;
                };
                if pv_phase(v) != "Released"
                    || annotation(&v.metadata, ANN_PROVISIONED_BY) != Some(DRIVER_NAME)
                {
                    continue;
                }
                // The external-attacher's finalizer on the PV: no deletion while a
                // VolumeAttachment refers to it.
                if self
                    .store
                    .vas
                    .values()
                    .any(|va| va.spec.source.persistent_volume_name.as_deref() == Some(pv))
                {
                    continue;
                }
                let Some(volume_id) = self.volume_handle(pv) else {
                    continue;
                };
                self.prov.busy.insert(key.clone());
                let pv = pv.to_owned();
                self.csi(
                    "provisioner",
                    CsiCall::DeleteVolume { volume_id },
                    Then::Deleted { pv: pv.clone() },
                    &pv,
                );
            }
        }
    }

    fn prov_fail(&mut self, key: String) {
        self.prov.busy.remove(&key);
        // external-provisioner 1.0+: --retry-interval-start 1s doubling to 5 min.
        let e = self.prov.backoff.entry(key.clone()).or_insert_with(|| {
            (
                Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
                SimTime::ZERO,
            )
        });
        let d = e.0.fail();
        e.1 = self.now.after(d);
        self.stats.backoffs += 1;
        self.event(
            "provisioner",
            "backoff",
            &key,
            &format!("{}ms", d.as_millis()),
        );
        self.after(d, Ev::ProvisionerRetry { key });
    }

    fn make_pv(
        &self,
        pvc: &str,
        pv: &str,
        volume_id: String,
        context: BTreeMap<String, String>,
    ) -> PersistentVolume {
        let uid = self
            .store
            .pvcs
            .get(pvc)
            .and_then(|c| c.metadata.uid.clone());
        let mut m = meta(pv, false);
        annotate(&mut m, ANN_PROVISIONED_BY, DRIVER_NAME);
        PersistentVolume {
            metadata: m,
            spec: Some(PersistentVolumeSpec {
                access_modes: Some(vec!["ReadWriteMany".into()]),
                capacity: Some(BTreeMap::from([("storage".into(), Quantity("1Gi".into()))])),
                claim_ref: Some(ObjectReference {
                    name: Some(pvc.to_owned()),
                    namespace: Some(NAMESPACE.into()),
                    uid,
                    ..Default::default()
                }),
                persistent_volume_reclaim_policy: Some("Delete".into()),
                storage_class_name: Some(STORAGE_CLASS.into()),
                csi: Some(CSIPersistentVolumeSource {
                    driver: DRIVER_NAME.into(),
                    volume_handle: volume_id,
                    volume_attributes: Some(context),
                    node_stage_secret_ref: Some(SecretReference {
                        name: Some(SECRET.into()),
                        namespace: Some(NAMESPACE.into()),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: Some(PersistentVolumeStatus {
                phase: Some("Available".into()),
                ..Default::default()
            }),
        }
    }

    // ---- Deployment / ReplicaSet -----------------------------------------------------

    fn replica_set(&mut self) {
        let name = format!("{DEPLOYMENT}-rs");
        let Some(rs) = self.store.replica_sets.get(&name) else {
            return;
        };
        let want = rs.spec.replicas.unwrap_or(0).max(0) as usize;
        let template = rs.spec.template.clone();
        // Creations and deletions on their way count as done (the controller's expectations).
        let live: Vec<String> = self
            .store
            .pods
            .iter()
            .filter(|(n, p)| !deleting(&p.metadata) && !self.rs_deleting.contains(*n))
            .map(|(n, _)| n.clone())
            .collect();
        let have = live.len() + self.rs_creating;
        if have < want {
            for _ in have..want {
                self.rs_creating += 1;
                let n = self.pod_counter;
                self.pod_counter += 1;
                let pod_name = format!("{DEPLOYMENT}-{n:05}");
                let mut m = meta(&pod_name, true);
                m.uid = Some(format!("10000000-0000-4000-8000-{n:012}"));
                let spec = template.as_ref().and_then(|t| t.spec.clone());
                self.api(
                    "kcm",
                    Req::CreatePod(Box::new(Pod {
                        metadata: m,
                        spec,
                        status: Some(PodStatus {
                            phase: Some("Pending".into()),
                            ..Default::default()
                        }),
                    })),
                );
            }
        } else if have > want {
            // Newest first, as the ReplicaSet controller prefers pods not yet Running.
            for pod in live.iter().rev().take(have - want) {
                self.rs_deleting.insert(pod.clone());
                self.api("kcm", Req::DeletePod { pod: pod.clone() });
            }
        }
    }

    fn set_replicas(&mut self, n: usize) {
        if let Some(d) = self.store.deployments.get_mut(DEPLOYMENT) {
            d.spec.replicas = Some(n as i32);
            let mut m = std::mem::take(&mut d.metadata);
            self.store.stamp(&mut m);
            if let Some(d) = self.store.deployments.get_mut(DEPLOYMENT) {
                d.metadata = m;
            }
        }
        self.event("script", "scale", DEPLOYMENT, &n.to_string());
        // The Deployment controller carries the count to its ReplicaSet.
        self.api("kcm", Req::ScaleRs { replicas: n as i32 });
    }

    // ---- attach-detach controller ----------------------------------------------------

    fn adc_watch(&mut self, kind: Kind, name: &str) {
        match kind {
            Kind::Pod => {
                let pairs: Vec<(String, usize)> = match self.store.pods.get(name) {
                    Some(p) if !deleting(&p.metadata) => match pod_node(p).and_then(node_index) {
                        Some(node) => pod_pvcs(p)
                            .iter()
                            .filter_map(|c| self.store.pvcs.get(c).and_then(|c| pvc_volume(c)))
                            .map(|pv| (pv.to_owned(), node))
                            .collect(),
                        None => vec![],
                    },
                    _ => vec![],
                };
                let old = self.adc.pod_pairs.remove(name).unwrap_or_default();
                for pr in &old {
                    if let Some(c) = self.adc.desired.get_mut(pr) {
                        *c -= 1;
                        if *c == 0 {
                            self.adc.desired.remove(pr);
                        }
                    }
                    self.adc.dirty.insert(pr.clone());
                }
                for pr in &pairs {
                    *self.adc.desired.entry(pr.clone()).or_default() += 1;
                    self.adc.dirty.insert(pr.clone());
                }
                if !pairs.is_empty() {
                    self.adc.pod_pairs.insert(name.to_owned(), pairs);
                }
            }
            Kind::Node => {
                if let Some(node) = node_index(name)
                    && let Some(pvs) = self.adc.blocked.remove(&node)
                {
                    self.adc.dirty.extend(pvs.into_iter().map(|pv| (pv, node)));
                }
            }
            Kind::Va => {
                // Attach and detach polls read VAs themselves.
            }
            _ => {}
        }
    }

    fn adc_key(&self, pv: &str, node: usize) -> String {
        if self.p.adc_serialize_per_volume {
            pv.to_owned()
        } else {
            key2(pv, node)
        }
    }

    fn adc_reconcile(&mut self) {
        let dirty = std::mem::take(&mut self.adc.dirty);
        for (pv, node) in dirty {
            let pair = (pv.clone(), node);
            let want = self.adc.desired.contains_key(&pair);
            let state = self.adc.state.get(&pair).copied();
            let action = match (want, state) {
                (true, None) => Some(true),
                (false, Some(AState::Attached)) => {
                    let in_use = self
                        .store
                        .nodes
                        .get(&node_name(node))
                        .map(node_in_use)
                        .unwrap_or_default();
                    // Detach only what the kubelet no longer reports in use.
                    if in_use.contains(&pv) {
                        self.adc.blocked.entry(node).or_default().insert(pv.clone());
                        None
                    } else {
                        Some(false)
                    }
                }
                _ => None,
            };
            let Some(attach) = action else { continue };
            let key = self.adc_key(&pv, node);
            if self.adc.busy.contains(&key) {
                self.adc.waiting.entry(key).or_default().insert(pair);
                continue;
            }
            if let Some((_, until)) = self.adc.backoff.get(&pair)
                && *until > self.now
            {
                continue;
            }
            self.adc.busy.insert(key);
            if attach {
                self.adc.state.insert(pair, AState::Attaching);
                if self.p.attach_required {
                    self.api(
                        "kcm",
                        Req::CreateVa {
                            pv: pv.clone(),
                            node,
                        },
                    );
                    let started = self.now;
                    self.after(
                        Duration::from_secs(1),
                        Ev::AdcPoll {
                            pv,
                            node,
                            detach: false,
                            started,
                        },
                    );
                } else {
                    // Skip-attach: "pretend it's attached", but the node status handshake stays.
                    self.adc_op_done(&pv, node, true);
                }
            } else {
                self.adc.state.insert(pair, AState::Detaching);
                // The volume leaves the node's attached list before it is detached.
                self.adc.node_dirty.insert(node);
                if self.p.attach_required {
                    self.api(
                        "kcm",
                        Req::DeleteVa {
                            pv: pv.clone(),
                            node,
                        },
                    );
                    let started = self.now;
                    self.after(
                        Duration::from_secs(1),
                        Ev::AdcPoll {
                            pv,
                            node,
                            detach: true,
                            started,
                        },
                    );
                } else {
                    self.adc_op_done(&pv, node, false);
                }
            }
        }
        // The node status updater: one write per node whose attached list changed.
        for node in std::mem::take(&mut self.adc.node_dirty) {
            let vols: Vec<String> = self
                .adc
                .state
                .iter()
                .filter(|((_, n), s)| *n == node && **s == AState::Attached)
                .map(|((pv, _), _)| pv.clone())
                .collect();
            self.api("kcm", Req::NodeAttached { node, vols });
        }
    }

    fn adc_polled(&mut self, pv: String, node: usize, detach: bool, started: SimTime) {
        let va = self.store.vas.get(&va_name(&pv, node));
        if detach {
            if va.is_none() {
                self.adc_op_done(&pv, node, false);
            } else if self.now.since(started) >= Duration::from_secs(10) {
                self.adc_op_failed(
                    &pv,
                    node,
                    "detach timed out waiting for VolumeAttachment deletion",
                );
            } else {
                self.after(
                    Duration::from_secs(1),
                    Ev::AdcPoll {
                        pv,
                        node,
                        detach,
                        started,
                    },
                );
            }
        } else {
            let attached = va
                .and_then(|v| v.status.as_ref())
                .is_some_and(|s| s.attached);
            if attached {
                self.adc_op_done(&pv, node, true);
            } else if self.now.since(started) >= Params::secs(self.p.attach_timeout_s) {
                self.adc_op_failed(&pv, node, "attach timed out waiting for VolumeAttachment");
            } else {
                self.after(
                    Duration::from_secs(1),
                    Ev::AdcPoll {
                        pv,
                        node,
                        detach,
                        started,
                    },
                );
            }
        }
    }

    fn adc_release(&mut self, pv: &str, node: usize) {
        let key = self.adc_key(pv, node);
        self.adc.busy.remove(&key);
        if let Some(w) = self.adc.waiting.remove(&key) {
            self.adc.dirty.extend(w);
        }
        self.adc.dirty.insert((pv.to_owned(), node));
        self.kick(Comp::Adc);
    }

    fn adc_op_done(&mut self, pv: &str, node: usize, attached: bool) {
        let pair = (pv.to_owned(), node);
        if attached {
            self.adc.state.insert(pair.clone(), AState::Attached);
            self.adc.node_dirty.insert(node);
        } else {
            self.adc.state.remove(&pair);
        }
        self.event(
            "adc",
            if attached { "attached" } else { "detached" },
            pv,
            &node_name(node),
        );
        self.adc.backoff.remove(&pair);
        self.adc_release(pv, node);
    }

    fn adc_op_failed(&mut self, pv: &str, node: usize, why: &str) {
        let pair = (pv.to_owned(), node);
        match self.adc.state.get(&pair) {
            Some(AState::Attaching) => {
                self.adc.state.remove(&pair);
            }
            Some(AState::Detaching) => {
                self.adc.state.insert(pair.clone(), AState::Attached);
                self.adc.node_dirty.insert(node);
            }
            _ => {}
        }
        let e = self
            .adc
            .backoff
            .entry(pair)
            .or_insert_with(|| (Backoff::kube(), SimTime::ZERO));
        let d = e.0.fail();
        e.1 = self.now.after(d);
        self.stats.backoffs += 1;
        self.event(
            "adc",
            "backoff",
            &key2(pv, node),
            &format!("{why}; retry in {}ms", d.as_millis()),
        );
        self.after(
            d,
            Ev::AdcRetry {
                pv: pv.to_owned(),
                node,
            },
        );
        self.adc_release(pv, node);
    }

    fn adc_verify(&mut self) {
        if self.adc.verify_outstanding == 0 {
            let n = self
                .adc
                .state
                .values()
                .filter(|s| **s == AState::Attached)
                .count();
            self.adc.verify_outstanding = n;
            for _ in 0..n {
                self.api("kcm", Req::AdcVerifyGet);
            }
        }
        self.after(Params::secs(self.p.adc_verify_period_s), Ev::AdcVerify);
    }

    // ---- external-attacher -----------------------------------------------------------

    fn attacher_enqueue(&mut self, va: &str) {
        if !self.att.queued.contains(va) && !self.att.busy.contains(va) {
            self.att.queued.insert(va.to_owned());
            self.att.queue.push_back(va.to_owned());
        }
        self.kick(Comp::Attacher);
    }

    fn attacher(&mut self) {
        const WORKERS: usize = 10;
        while self.att.busy.len() < WORKERS {
            let Some(va) = self.att.queue.pop_front() else {
                break;
            };
            self.att.queued.remove(&va);
            if let Some((_, until)) = self.att.backoff.get(&va)
                && *until > self.now
            {
                continue;
            }
            let Some(v) = self.store.vas.get(&va) else {
                continue;
            };
            let has_finalizer = v
                .metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| !f.is_empty());
            let attached = v.status.as_ref().is_some_and(|s| s.attached);
            let pv = v
                .spec
                .source
                .persistent_volume_name
                .clone()
                .unwrap_or_default();
            let node = node_index(&v.spec.node_name).unwrap_or(0);
            if deleting(&v.metadata) {
                if has_finalizer {
                    self.att.busy.insert(va.clone());
                    let volume_id = self.volume_handle(&pv).unwrap_or_default();
                    self.csi(
                        "attacher",
                        CsiCall::ControllerUnpublish { volume_id, node },
                        Then::CtrlUnpublished { va },
                        &pv,
                    );
                }
            } else if !attached {
                self.att.busy.insert(va.clone());
                self.api("attacher", Req::VaFinalizer { va });
            }
        }
    }

    fn attacher_done(&mut self, va: &str, ok: bool) {
        self.att.busy.remove(va);
        if ok {
            self.att.backoff.remove(va);
        } else {
            // DefaultControllerRateLimiter: 5 ms doubling to 1000 s.
            let e = self.att.backoff.entry(va.to_owned()).or_insert_with(|| {
                (
                    Backoff::new(Duration::from_millis(5), Duration::from_secs(1000)),
                    SimTime::ZERO,
                )
            });
            let d = e.0.fail();
            e.1 = self.now.after(d);
            self.after(d, Ev::AttacherRetry { va: va.to_owned() });
        }
        self.kick(Comp::Attacher);
    }

    // ---- kubelet ---------------------------------------------------------------------

    fn kubelet_pod_watch(&mut self, i: usize, pod: &str) {
        let mine = self
            .store
            .pods
            .get(pod)
            .filter(|p| pod_node(p).and_then(node_index) == Some(i));
        let Some(p) = mine else {
            // Removed (by us, once cleaned up).
            self.kubelets[i].pods.remove(pod);
            return;
        };
        let del = deleting(&p.metadata);
        let uid = p.metadata.uid.clone().unwrap_or_default();
        let pvs: Vec<(String, String)> = pod_pvcs(p)
            .into_iter()
            .filter_map(|c| {
                let pv = self
                    .store
                    .pvcs
                    .get(&c)
                    .and_then(|x| pvc_volume(x))?
                    .to_owned();
                Some((c, pv))
            })
            .collect();
        let kp = self.kubelets[i].pods.entry(pod.to_owned()).or_default();
        kp.uid = uid;
        kp.pvs = pvs;
        kp.deleting = del;
    }

    fn users(&self, i: usize, pv: &str) -> Vec<String> {
        self.kubelets[i]
            .pods
            .iter()
            .filter(|(_, kp)| !kp.deleting && kp.pvs.iter().any(|(_, v)| v == pv))
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn kubelet_reconcile(&mut self, i: usize) {
        let node = self.store.nodes.get(&node_name(i));
        let in_use: BTreeSet<String> = node
            .map(node_in_use)
            .unwrap_or_default()
            .into_iter()
            .collect();
        let attached: BTreeSet<String> = node
            .map(node_attached)
            .unwrap_or_default()
            .into_iter()
            .collect();
        // New volumes of new pods.
        let mut wanted: Vec<(String, String)> = Vec::new();
        for kp in self.kubelets[i].pods.values() {
            if !kp.deleting {
                wanted.extend(kp.pvs.iter().cloned());
            }
        }
        for (pvc, pv) in wanted {
            self.kubelets[i].vols.entry(pv).or_insert_with(|| KVol {
                pvc,
                busy: false,
                staged: false,
                uncertain: false,
                backoff: Backoff::kube(),
                retry_at: SimTime::ZERO,
                unmount_backoff: Backoff::kube(),
                unmount_retry_at: SimTime::ZERO,
                wait_since: SimTime::ZERO,
                last_error: None,
                handle: None,
            });
        }
        // Unmount for deleting pods; remove pods whose volumes are cleaned up.
        let pods: Vec<String> = self.kubelets[i].pods.keys().cloned().collect();
        for pod in pods {
            let (del, published, removing, in_flight) = {
                let k = &self.kubelets[i];
                let kp = &k.pods[&pod];
                let in_flight = kp
                    .pvs
                    .iter()
                    .any(|(_, pv)| k.vols.get(pv).is_some_and(|v| v.busy));
                // Uncertain publishes are unpublished too.
                let published: BTreeSet<String> =
                    kp.published.union(&kp.uncertain).cloned().collect();
                (kp.deleting, published, kp.removing, in_flight)
            };
            if !del {
                continue;
            }
            if published.is_empty() && !in_flight {
                if !removing {
                    self.kubelets[i]
                        .pods
                        .get_mut(&pod)
                        .expect("present")
                        .removing = true;
                    self.api(&kubelet_client(i), Req::RemovePod { pod });
                }
                continue;
            }
            if published.is_empty() {
                continue;
            }
            for pv in published {
                let ready = self.kubelets[i]
                    .vols
                    .get(&pv)
                    .is_some_and(|v| !v.busy && v.unmount_retry_at <= self.now);
                if ready {
                    self.vol_busy(i, &pv);
                    let uid = self.kubelets[i].pods[&pod].uid.clone();
                    let volume_id = self.mounted_handle(i, &pv);
                    self.csi(
                        &kubelet_client(i),
                        CsiCall::NodeUnpublish {
                            node: i,
                            volume_id,
                            target: target_path(&uid, &pv),
                        },
                        Then::Unpublished {
                            node: i,
                            pv: pv.clone(),
                            pod: pod.clone(),
                        },
                        &format!("{pod}/{pv}"),
                    );
                }
            }
        }
        // Mount and unmount-device, one operation per volume at a time.
        let vols: Vec<String> = self.kubelets[i].vols.keys().cloned().collect();
        for pv in vols {
            let (busy, staged, uncertain, retry_at, unmount_retry_at) = {
                let v = &self.kubelets[i].vols[&pv];
                (
                    v.busy,
                    v.staged,
                    v.uncertain,
                    v.retry_at,
                    v.unmount_retry_at,
                )
            };
            if busy {
                continue;
            }
            let users = self.users(i, &pv);
            let waiting = if users.is_empty() {
                unmount_retry_at
            } else {
                retry_at
            };
            if waiting > self.now {
                continue;
            }
            let published_somewhere = self.kubelets[i]
                .pods
                .values()
                .any(|kp| kp.published.contains(&pv) || kp.uncertain.contains(&pv));
            if !users.is_empty() {
                let uvn = pv.clone();
                // VerifyControllerAttachedVolume: reported in use, then attached by the ADC.
                if !in_use.contains(&uvn) || !attached.contains(&uvn) {
                    continue;
                }
                if !staged {
                    self.vol_busy(i, &pv);
                    if let Some(v) = self.kubelets[i].vols.get_mut(&pv) {
                        v.wait_since = self.now;
                    }
                    if self.p.attach_required {
                        self.kubelet_get_va(i, &pv, VaPurpose::Wait);
                    } else {
                        self.api(&kubelet_client(i), Req::KubeletGetSecret { node: i, pv });
                    }
                } else if let Some(pod) = users
                    .iter()
                    .find(|p| !self.kubelets[i].pods[*p].published.contains(&pv))
                    .cloned()
                {
                    self.vol_busy(i, &pv);
                    if self.p.attach_required {
                        self.kubelet_get_va(i, &pv, VaPurpose::SetUp(pod));
                    } else {
                        self.node_publish(i, &pv, &pod);
                    }
                }
            } else if !published_somewhere {
                if staged || uncertain {
                    self.vol_busy(i, &pv);
                    let volume_id = self.mounted_handle(i, &pv);
                    self.csi(
                        &kubelet_client(i),
                        CsiCall::NodeUnstage {
                            node: i,
                            volume_id,
                            staging: staging_path(&pv),
                        },
                        Then::Unstaged {
                            node: i,
                            pv: pv.clone(),
                        },
                        &pv,
                    );
                } else {
                    self.kubelets[i].vols.remove(&pv);
                }
            }
        }
    }

    fn vol_busy(&mut self, i: usize, pv: &str) {
        if let Some(v) = self.kubelets[i].vols.get_mut(pv) {
            v.busy = true;
        }
    }

    fn vol_ok(&mut self, i: usize, pv: &str) {
        if let Some(v) = self.kubelets[i].vols.get_mut(pv) {
            v.busy = false;
            v.backoff.reset();
            v.unmount_backoff.reset();
            v.last_error = None;
        }
        self.kick(Comp::Kubelet(i));
    }

    /// A failed operation on a volume: a mount-side one (waiting for attach, MountDevice,
    /// SetUp) or, with `unmount`, an unmount-side one; each side backs off on its own.
    fn vol_fail(&mut self, i: usize, pv: &str, why: &str, unmount: bool) {
        let Some(v) = self.kubelets[i].vols.get_mut(pv) else {
            return;
        };
        v.busy = false;
        if v.last_error.is_none() {
            v.last_error = Some(why.to_owned());
        }
        let d = if unmount {
            let d = v.unmount_backoff.fail();
            v.unmount_retry_at = self.now.after(d);
            d
        } else {
            let d = v.backoff.fail();
            v.retry_at = self.now.after(d);
            d
        };
        self.stats.backoffs += 1;
        if d == Backoff::KUBE_MAX {
            self.stats.backoffs_at_cap += 1;
        }
        self.event(
            &kubelet_client(i),
            "backoff",
            pv,
            &format!("{why}; no retries permitted for {}ms", d.as_millis()),
        );
        self.after(d, Ev::Process(Comp::Kubelet(i)));
        self.kubelets[i].pending = true;
    }

    fn kubelet_get_va(&mut self, i: usize, pv: &str, purpose: VaPurpose) {
        self.api(
            &kubelet_client(i),
            Req::KubeletGetVa {
                node: i,
                pv: pv.to_owned(),
                purpose,
            },
        );
    }

    fn kubelet_got_va(&mut self, i: usize, pv: String, purpose: VaPurpose) {
        let va = va_name(&pv, i);
        let allowed = !self.p.authz.enabled || self.graph.may_get_va(&node_name(i), &va);
        let attached = allowed
            && self
                .store
                .vas
                .get(&va)
                .and_then(|v| v.status.as_ref())
                .is_some_and(|s| s.attached);
        if !allowed {
            self.stats
                .forbidden
                .entry("volumeattachments".into())
                .and_modify(|n| *n += 1)
                .or_insert(1);
            let msg = forbidden(&node_name(i), "volumeattachments.storage.k8s.io");
            self.event(&kubelet_client(i), "get-va", &va, &format!("403 {msg}"));
        }
        // The volume may have lost its pods meanwhile.
        if self.users(i, &pv).is_empty() {
            if let Some(v) = self.kubelets[i].vols.get_mut(&pv) {
                v.busy = false;
            }
            self.kick(Comp::Kubelet(i));
            return;
        }
        match purpose {
            VaPurpose::Wait => {
                if attached {
                    self.api(&kubelet_client(i), Req::KubeletGetSecret { node: i, pv });
                    return;
                }
                let since = self.kubelets[i]
                    .vols
                    .get(&pv)
                    .map_or(self.now, |v| v.wait_since);
                if self.now.since(since) >= Params::secs(self.p.wait_for_attach_timeout_s) {
                    self.vol_fail(i, &pv, "timed out waiting for attach", false);
                } else {
                    // 1.10/1.11 WaitForAttach: poll every second, errors logged and retried.
                    self.after(
                        Params::secs(self.p.wait_for_attach_poll_s),
                        Ev::KubeletPoll { node: i, pv },
                    );
                }
            }
            VaPurpose::SetUp(pod) => {
                if allowed && self.store.vas.contains_key(&va) {
                    self.node_publish(i, &pv, &pod);
                } else {
                    self.vol_fail(
                        i,
                        &pv,
                        "SetUp failed while getting volume attachment",
                        false,
                    );
                }
            }
        }
    }

    fn kubelet_got_secret(&mut self, i: usize, pv: String) {
        let Some(pvc) = self.kubelets[i].vols.get(&pv).map(|v| v.pvc.clone()) else {
            return;
        };
        let allowed = !self.p.authz.enabled || self.graph.may_get_secret_via(&node_name(i), &pvc);
        if self.users(i, &pv).is_empty() {
            if let Some(v) = self.kubelets[i].vols.get_mut(&pv) {
                v.busy = false;
            }
            self.kick(Comp::Kubelet(i));
            return;
        }
        if !allowed {
            self.stats
                .forbidden
                .entry("secrets".into())
                .and_modify(|n| *n += 1)
                .or_insert(1);
            let msg = forbidden(&node_name(i), "secrets");
            self.event(&kubelet_client(i), "get-secret", &pv, &format!("403 {msg}"));
            self.vol_fail(
                i,
                &pv,
                "MountDevice failed to get the node-stage secret",
                false,
            );
            return;
        }
        let volume_id = self.volume_handle(&pv).unwrap_or_default();
        if let Some(v) = self.kubelets[i].vols.get_mut(&pv) {
            v.handle = Some(volume_id.clone());
        }
        let context = self.volume_context(&pv);
        self.csi(
            &kubelet_client(i),
            CsiCall::NodeStage {
                node: i,
                volume_id,
                context,
                staging: staging_path(&pv),
            },
            Then::Staged {
                node: i,
                pv: pv.clone(),
            },
            &pv,
        );
    }

    /// The handle node `i` mounted `pv` with (the PV's, if it never staged it).
    fn mounted_handle(&self, i: usize, pv: &str) -> String {
        self.kubelets[i]
            .vols
            .get(pv)
            .and_then(|v| v.handle.clone())
            .or_else(|| self.volume_handle(pv))
            .unwrap_or_default()
    }

    fn node_publish(&mut self, i: usize, pv: &str, pod: &str) {
        let uid = self.kubelets[i].pods[pod].uid.clone();
        let volume_id = self.volume_handle(pv).unwrap_or_default();
        let context = self.volume_context(pv);
        self.csi(
            &kubelet_client(i),
            CsiCall::NodePublish {
                node: i,
                volume_id,
                context,
                staging: staging_path(pv),
                target: target_path(&uid, pv),
            },
            Then::Published {
                node: i,
                pv: pv.to_owned(),
                pod: pod.to_owned(),
            },
            &format!("{pod}/{pv}"),
        );
    }

    fn node_status(&mut self, i: usize) {
        let k = &self.kubelets[i];
        let want: Vec<String> = k
            .vols
            .iter()
            .filter(|(pv, v)| {
                v.staged
                    || v.uncertain
                    || k.pods.values().any(|kp| {
                        kp.published.contains(*pv)
                            || kp.uncertain.contains(*pv)
                            || (!kp.deleting && kp.pvs.iter().any(|(_, x)| x == *pv))
                    })
            })
            .map(|(pv, _)| pv.clone())
            .collect();
        let have = self
            .store
            .nodes
            .get(&node_name(i))
            .map(node_in_use)
            .unwrap_or_default();
        if want != have {
            self.api(
                &kubelet_client(i),
                Req::NodeInUse {
                    node: i,
                    vols: want,
                },
            );
        }
        self.after(Params::secs(self.p.node_status_period_s), Ev::NodeStatus(i));
    }

    // ---- the scenario ----------------------------------------------------------------

    fn setup(&mut self) {
        let mut sc = StorageClass {
            metadata: meta(STORAGE_CLASS, false),
            provisioner: DRIVER_NAME.into(),
            parameters: Some({
                // The back end's own parameters (what CreateVolume gets) and the secrets.
                let mut p = crate::csi::storage_class_parameters(self.p.backend);
                p.insert(
                    "csi.storage.k8s.io/provisioner-secret-name".into(),
                    SECRET.into(),
                );
                p.insert(
                    "csi.storage.k8s.io/node-stage-secret-name".into(),
                    SECRET.into(),
                );
                p
            }),
            reclaim_policy: Some("Delete".into()),
            ..Default::default()
        };
        self.store.stamp(&mut sc.metadata);
        self.store.storage_classes.insert(STORAGE_CLASS.into(), sc);
        let mut secret = Secret {
            metadata: meta(SECRET, true),
            // The keys themselves stay with the back end: nothing secret is stored here.
            string_data: Some(crate::csi::secret_identity(self.p.backend)),
            ..Default::default()
        };
        self.store.stamp(&mut secret.metadata);
        self.store.secrets.insert(SECRET.into(), secret);
        let mut drv = CSIDriver {
            metadata: meta(DRIVER_NAME, false),
            spec: CSIDriverSpec {
                attach_required: Some(self.p.attach_required),
                ..Default::default()
            },
        };
        self.store.stamp(&mut drv.metadata);
        self.store.csi_drivers.insert(DRIVER_NAME.into(), drv);
        for i in 0..self.kubelets.len() {
            let mut n = Node {
                metadata: meta(&node_name(i), false),
                status: Some(NodeStatus::default()),
                ..Default::default()
            };
            self.store.stamp(&mut n.metadata);
            self.store.nodes.insert(node_name(i), n);
        }
        for s in 0..self.p.shares {
            let name = format!("share-{s:03}");
            let mut m = meta(&name, true);
            m.uid = Some(pvc_uid(s));
            let mut c = PersistentVolumeClaim {
                metadata: m,
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteMany".into()]),
                    storage_class_name: Some(STORAGE_CLASS.into()),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".into(),
                            Quantity("1Gi".into()),
                        )])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                status: Some(PersistentVolumeClaimStatus {
                    phase: Some("Pending".into()),
                    ..Default::default()
                }),
            };
            self.store.stamp(&mut c.metadata);
            self.store.pvcs.insert(name.clone(), c);
            self.event("script", "create", &name, "PersistentVolumeClaim");
            self.notify(Kind::Pvc, &name, None);
        }
    }

    fn create_deployment(&mut self, replicas: usize) {
        let volumes: Vec<Volume> = (0..self.p.shares)
            .map(|s| Volume {
                name: format!("v{s:03}"),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: format!("share-{s:03}"),
                    read_only: None,
                }),
                ..Default::default()
            })
            .collect();
        let template = PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "idle".into(),
                    image: Some("busybox".into()),
                    command: Some(vec!["sleep".into(), "infinity".into()]),
                    ..Default::default()
                }],
                volumes: Some(volumes),
                ..Default::default()
            }),
        };
        let mut d = Deployment {
            metadata: meta(DEPLOYMENT, true),
            spec: DeploymentSpec {
                replicas: Some(replicas as i32),
                selector: LabelSelector::default(),
                template: template.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        self.store.stamp(&mut d.metadata);
        self.store.deployments.insert(DEPLOYMENT.into(), d);
        let rs_name = format!("{DEPLOYMENT}-rs");
        let mut rs = ReplicaSet {
            metadata: meta(&rs_name, true),
            spec: ReplicaSetSpec {
                replicas: Some(0),
                selector: LabelSelector::default(),
                template: Some(template),
                ..Default::default()
            },
            ..Default::default()
        };
        self.store.stamp(&mut rs.metadata);
        self.store.replica_sets.insert(rs_name, rs);
        self.event("script", "create", DEPLOYMENT, "Deployment");
        self.set_replicas(replicas);
    }

    fn running(&self) -> usize {
        self.store
            .pods
            .values()
            .filter(|p| pod_running(p) && !deleting(&p.metadata))
            .count()
    }

    fn script_step(&mut self) {
        let now = self.now;
        match self.script.phase {
            Phase::Provision => {
                let bound = self
                    .store
                    .pvcs
                    .values()
                    .filter(|c| pvc_phase(c) == "Bound")
                    .count();
                if bound == self.p.shares {
                    self.stats.provisioned_at = Some(now);
                    self.event(
                        "script",
                        "phase",
                        "deploy",
                        &format!("{bound} claims bound"),
                    );
                    self.script.phase = Phase::Deploy;
                    self.script.last_progress = now;
                    let first = if self.p.step > 0 {
                        self.p.step.min(self.p.replicas)
                    } else {
                        self.p.replicas
                    };
                    self.script.replicas = first;
                    self.script.next_step = now.after(Params::secs(self.p.step_interval_s));
                    self.create_deployment(first);
                    self.schedule_faults(Anchor::Deploy);
                } else if now.secs() > self.p.max_deploy_s {
                    self.begin_teardown("provisioning did not finish");
                }
            }
            Phase::Deploy => {
                // Progress is a new high of Running pods: with pods killed and replaced,
                // the count goes down and up again without getting anywhere.
                let running = self.running();
                if running > self.stats.max_running {
                    self.stats.max_running = running;
                    self.script.last_progress = now;
                }
                if self.p.step > 0 {
                    // The 2018 script: kill pods stuck longer than the threshold.
                    let limit = Params::secs(self.p.kill_stuck_after_s);
                    let stuck: Vec<String> = self
                        .store
                        .pods
                        .iter()
                        .filter(|(n, p)| {
                            !pod_running(p)
                                && !deleting(&p.metadata)
                                && self
                                    .pod_created
                                    .get(*n)
                                    .is_some_and(|c| now.since(*c) > limit)
                        })
                        .map(|(n, _)| n.clone())
                        .collect();
                    for pod in stuck {
                        self.stats.killed += 1;
                        self.event("script", "kill", &pod, "stuck");
                        self.api("script", Req::DeletePod { pod });
                    }
                    if now >= self.script.next_step && self.script.replicas < self.p.replicas {
                        self.script.replicas =
                            (self.script.replicas + self.p.step).min(self.p.replicas);
                        self.script.next_step = now.after(Params::secs(self.p.step_interval_s));
                        self.script.last_progress = now;
                        let n = self.script.replicas;
                        self.set_replicas(n);
                    }
                }
                let all = self.script.replicas == self.p.replicas && running == self.p.replicas;
                if all {
                    // The script looks once a tick; the last pod got there at its own
                    // Running event, which is when all were Running.
                    if self.stats.all_running_at.is_none() {
                        self.stats.all_running_at =
                            Some(self.stats.running_at.iter().copied().max().unwrap_or(now));
                    }
                    // The busy workload keeps the pods until their unpacks finish.
                    let began = self.stats.provisioned_at.unwrap_or_default();
                    match self.busy.as_ref().map(|b| b.verdict(now, began)) {
                        None => self.begin_teardown("all pods Running"),
                        Some(crate::busy::Verdict::Finished) => {
                            self.begin_teardown("all pods Running, unpacks finished");
                        }
                        Some(crate::busy::Verdict::Deadline) => {
                            self.begin_teardown("busy deadline");
                        }
                        Some(crate::busy::Verdict::Unpacking) => {}
                    }
                } else if now.since(self.script.last_progress) > Params::secs(self.p.stall_s)
                    && self.script.replicas == self.p.replicas
                {
                    self.begin_teardown("stalled");
                } else if now.secs() > self.p.max_deploy_s {
                    self.begin_teardown("deploy time limit");
                }
            }
            Phase::Teardown => {
                if !self.script.pvcs_deleted && self.store.pods.is_empty() {
                    self.script.pvcs_deleted = true;
                    let names: Vec<String> = self.store.pvcs.keys().cloned().collect();
                    for n in names {
                        self.store.pvcs.remove(&n);
                        self.event("script", "delete", &n, "PersistentVolumeClaim");
                        self.notify(Kind::Pvc, &n, None);
                    }
                }
                let clean = self.script.pvcs_deleted
                    && self.store.pvs.is_empty()
                    && self.store.vas.is_empty()
                    && self.calls.is_empty()
                    && self.prov.in_progress.is_empty()
                    && self.faults_pending == 0
                    && self
                        .kubelets
                        .iter()
                        .all(|k| k.vols.values().all(|v| !v.staged && !v.uncertain));
                if clean {
                    self.stats.teardown_done_at = Some(now);
                    self.event("script", "phase", "done", "clean");
                    self.script.phase = Phase::Done;
                    return;
                }
                if now.since(self.script.teardown_started) > Params::secs(self.p.max_teardown_s) {
                    self.event("script", "phase", "done", "teardown time limit");
                    self.script.phase = Phase::Done;
                    return;
                }
            }
            Phase::Done => return,
        }
        self.after(Duration::from_secs(1), Ev::Script);
    }

    fn begin_teardown(&mut self, why: &str) {
        self.stats.running_at_end_of_deploy = self.running();
        self.record_outcomes();
        self.schedule_faults(Anchor::Teardown);
        self.stats.deploy_outcome = why.to_owned();
        self.stats.deploy_ended_at = Some(self.now);
        self.event("script", "phase", "teardown", why);
        self.script.phase = Phase::Teardown;
        self.script.teardown_started = self.now;
        if self.store.deployments.remove(DEPLOYMENT).is_some() {
            self.event("script", "delete", DEPLOYMENT, "Deployment");
            self.api("kcm", Req::ScaleRs { replicas: 0 });
        }
    }

    /// Records, for the report, each claim's state and each pod not Running with the
    /// last error of its volumes.
    fn record_outcomes(&mut self) {
        for (name, c) in &self.store.pvcs {
            let outcome = if pvc_phase(c) == "Bound" {
                "Bound".to_owned()
            } else if let Some(e) = self.prov.last_error.get(name) {
                format!("Pending: {e}")
            } else if self.prov.busy.contains(&format!("pvc/{name}")) {
                "Pending: CreateVolume under way".to_owned()
            } else {
                "Pending".to_owned()
            };
            self.stats.claims_at_teardown.insert(name.clone(), outcome);
        }
        for (name, p) in &self.store.pods {
            if pod_running(p) || deleting(&p.metadata) {
                continue;
            }
            let node = pod_node(p).and_then(node_index);
            let why = node
                .and_then(|n| {
                    let k = &self.kubelets[n];
                    k.pods.get(name)?.pvs.iter().find_map(|(_, pv)| {
                        let v = k.vols.get(pv)?;
                        v.last_error.as_ref().map(|e| format!("{pv}: {e}"))
                    })
                })
                .unwrap_or_else(|| match node {
                    None => "not scheduled".to_owned(),
                    Some(_) => String::new(),
                });
            self.stats.pods_not_running.insert(name.clone(), why);
        }
    }

    /// Objects left in the API at the end (kind → count).
    pub fn leftover_objects(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        m.insert("pods", self.store.pods.len());
        m.insert("persistentvolumeclaims", self.store.pvcs.len());
        m.insert("persistentvolumes", self.store.pvs.len());
        m.insert("volumeattachments", self.store.vas.len());
        m.insert("sim_mds_sessions", self.stats.sessions.max(0) as usize);
        m.retain(|_, v| *v > 0);
        m
    }
}

/// The plugin a call goes to.
fn plugin_of(call: &CsiCall) -> Plugin {
    match call {
        CsiCall::CreateVolume { .. }
        | CsiCall::DeleteVolume { .. }
        | CsiCall::ControllerPublish { .. }
        | CsiCall::ControllerUnpublish { .. } => Plugin::Controller,
        CsiCall::NodeStage { node, .. }
        | CsiCall::NodePublish { node, .. }
        | CsiCall::NodeUnpublish { node, .. }
        | CsiCall::NodeUnstage { node, .. } => Plugin::Node(*node),
    }
}

fn kubelet_client(i: usize) -> String {
    format!("kubelet/{}", node_name(i))
}

fn staging_path(pv: &str) -> String {
    format!("plugins/kubernetes.io/csi/pv/{pv}/globalmount")
}

fn target_path(pod_uid: &str, pv: &str) -> String {
    format!("pods/{pod_uid}/volumes/kubernetes.io~csi/{pv}/mount")
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::csi::{Backend, MockCsi};
    use crate::params::Params;
    use crate::{Output, Run, run_on};

    fn params(sets: &[&str]) -> Params {
        let mut p = Params::load("attempt-3-skip-attach").expect("built-in");
        for s in ["shares=1", "replicas=1", "name=unit"].iter().chain(sets) {
            p = p.set(s).expect(s);
        }
        p
    }

    async fn run_mock(p: Params, seed: u64, mock: MockCsi) -> Run {
        run_on(
            p,
            seed,
            Backend::Mock(mock),
            Output::Memory,
            Instant::now(),
            None,
        )
        .await
        .expect("run")
    }

    /// (component, what, object, result) of each line, times dropped.
    fn lines(r: &Run) -> Vec<(String, String, String, String)> {
        r.events
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("json line");
                let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
                (s("c"), s("e"), s("o"), s("r"))
            })
            .collect()
    }

    fn time_of(r: &Run, pred: impl Fn(&serde_json::Value) -> bool) -> Vec<u64> {
        r.events
            .iter()
            .filter_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                pred(&v).then(|| v["t_ns"].as_u64().unwrap_or(0))
            })
            .collect()
    }

    fn plan(steps: serde_json::Value) -> String {
        format!("fault_plan={steps}")
    }

    fn calls(r: &Run, method: &str, code: &str) -> usize {
        r.summary
            .rpcs
            .iter()
            .filter(|row| row.method == method && row.code == code)
            .map(|row| row.sim.count)
            .sum()
    }

    #[tokio::test]
    async fn a_killed_controller_fails_the_calls_under_way_and_refuses_calls_until_restarted() {
        let steps = serde_json::json!([
            {"at": "start", "after_s": 0.5, "action": {"kill": {"plugin": "controller"}}},
            {"at": "start", "after_s": 4.0, "action": {"restart": {"plugin": "controller"}}},
        ]);
        let r = run_mock(
            params(&["shares=3", "replicas=2", &plan(steps)]),
            3,
            MockCsi::default(),
        )
        .await;
        let f = &r.summary.faults;
        assert_eq!(f.applied("kill"), 1);
        assert_eq!(f.applied("restart"), 1);
        // CreateVolume calls were under way at 0.5 s, and the provisioner's 1 s retries
        // met the plugin down.
        assert!(f.calls_cut > 0, "{f:?}");
        assert!(f.calls_refused > 0, "{f:?}");
        assert_eq!(
            calls(&r, "CreateVolume", "Unavailable") as u64,
            f.calls_cut + f.calls_refused
        );
        assert_eq!(calls(&r, "CreateVolume", "Ok"), 3);
        assert_eq!(r.summary.outcome, "all pods Running");
        assert!(r.summary.clean, "{:?}", r.summary.leaks);
        let l = lines(&r);
        assert!(l.contains(&(
            "fault".into(),
            "kill".into(),
            "controller".into(),
            format!("{} calls cut", f.calls_cut)
        )));
    }

    #[tokio::test]
    async fn a_claim_deleted_while_its_volume_may_be_in_the_making_is_provisioned_and_deleted() {
        // The first CreateVolume makes the volume but its reply is lost; provisioning
        // gives up at 1 s and the claim is deleted. The provisioner goes on until a final
        // answer (external-provisioner's claimsInProgress): the volume gets a PV for the
        // deleted claim, which is released and deleted. Without that, it would leak.
        let mut mock = MockCsi::default();
        mock.lose_reply.insert("CreateVolume", 1);
        let r = run_mock(params(&["max_deploy_s=0.5"]), 1, mock).await;
        assert_eq!(r.summary.outcome, "provisioning did not finish");
        assert!(
            r.summary.claims["share-000"].starts_with("Pending: "),
            "{:?}",
            r.summary.claims
        );
        assert_eq!(r.summary.mock_calls["CreateVolume"], 2);
        assert_eq!(r.summary.mock_calls["DeleteVolume"], 1);
        assert!(
            r.summary.clean,
            "{:?} {:?}",
            r.summary.leaks, r.summary.leaked_objects
        );
    }

    #[tokio::test]
    async fn uncertain_stages_and_publishes_are_undone_when_the_pod_goes() {
        // Every NodeStage (then every NodePublish) does its work and answers
        // Unavailable: the pod never runs, and when it goes the kubelet unmounts what
        // may be mounted (its uncertain state). Without that, the mock would keep the
        // stage (a session) or the publish (a mount).
        for method in ["NodeStageVolume", "NodePublishVolume"] {
            let mut mock = MockCsi::default();
            mock.lose_reply.insert(method, u32::MAX);
            let r = run_mock(params(&["stall_s=60"]), 1, mock).await;
            assert_eq!(r.summary.outcome, "stalled", "{method}");
            assert_eq!(r.summary.running, 0);
            let why = &r.summary.pods_not_running;
            assert_eq!(why.len(), 1, "{why:?}");
            assert!(
                why.values().all(|w| w.ends_with("Unavailable: reply lost")),
                "{why:?}"
            );
            let undo = match method {
                "NodeStageVolume" => "NodeUnstageVolume",
                _ => "NodeUnpublishVolume",
            };
            assert!(
                r.summary.mock_calls[undo] >= 1,
                "{method}: {:?}",
                r.summary.mock_calls
            );
            assert!(r.summary.clean, "{method}: {:?}", r.summary.leaks);
        }
    }

    #[tokio::test]
    async fn a_volume_is_unstaged_with_the_handle_it_was_staged_with_after_its_pv_is_gone() {
        // Unstaging fails for a while; meanwhile teardown deletes the PV (nothing keeps
        // it without attach). The kubelet unstages from its own record of the mount, as
        // the real one does, not from the PV (the mock refuses an empty volume ID).
        let mut mock = MockCsi::default();
        mock.fail.insert("NodeUnstageVolume", 5);
        let r = run_mock(params(&[]), 1, mock).await;
        let l = lines(&r);
        let deleted = l
            .iter()
            .position(|(c, e, _, r)| c == "provisioner" && e == "DeleteVolume" && r == "Ok")
            .expect("deleted");
        let unstaged = l
            .iter()
            .position(|(_, e, _, r)| e == "NodeUnstageVolume" && r == "Ok")
            .expect("unstaged");
        assert!(deleted < unstaged, "the PV went first");
        assert!(r.summary.clean, "{:?}", r.summary.leaks);
    }

    #[tokio::test]
    async fn the_binder_and_provisioner_bind_a_claim_after_createvolume_retries() {
        let mut mock = MockCsi::default();
        mock.fail.insert("CreateVolume", 3);
        let r = run_mock(params(&[]), 1, mock).await;
        let l = lines(&r);
        // external-provisioner back-off: 1 s doubling.
        let backoffs: Vec<&str> = l
            .iter()
            .filter(|(c, e, _, _)| c == "provisioner" && e == "backoff")
            .map(|(_, _, _, r)| r.as_str())
            .collect();
        assert_eq!(backoffs, ["1000ms", "2000ms", "4000ms"]);
        // The PV controller's steps in order: annotate, (provision), bind.
        let pos = |what: &str, obj: &str| {
            l.iter()
                .position(|(c, e, o, _)| c == "kcm" && e == what && o == obj)
                .expect(what)
        };
        let annotate = pos("annotate", "share-000");
        let bind = pos("bind", "share-000");
        let created = l
            .iter()
            .position(|(c, e, _, r)| c == "provisioner" && e == "CreateVolume" && r == "Ok")
            .expect("created");
        assert!(annotate < created && created < bind);
        // Retries start 1 + 2 + 4 s after the first failure: the claim binds after 7 s.
        assert!(r.summary.provisioned_s.expect("bound") > 7.0);
        assert_eq!(r.summary.mock_calls["CreateVolume"], 4);
        assert_eq!(r.summary.outcome, "all pods Running");
        assert!(r.summary.clean, "{:?}", r.summary.leaked_objects);
    }

    #[tokio::test]
    async fn the_kubelet_backs_off_from_500ms_doubling_to_2m2s() {
        let mut mock = MockCsi::default();
        mock.fail.insert("NodeStageVolume", 11);
        let r = run_mock(params(&[]), 1, mock).await;
        let waits: Vec<String> = lines(&r)
            .into_iter()
            .filter(|(c, e, _, _)| c == "kubelet/node-0001" && e == "backoff")
            .map(|(_, _, _, r)| r)
            .collect();
        let ms: Vec<u64> = waits
            .iter()
            .map(|w| {
                w.rsplit("for ")
                    .next()
                    .and_then(|x| x.strip_suffix("ms"))
                    .and_then(|x| x.parse().ok())
                    .expect("a wait")
            })
            .collect();
        assert_eq!(
            ms,
            [
                500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 122000, 122000, 122000
            ]
        );
        assert!(waits[0].starts_with("MountDevice failed"));
        // Each retry comes no earlier than its back-off allows.
        let fails = time_of(&r, |v| {
            v["e"] == "NodeStageVolume" && v["r"] == "Unavailable"
        });
        let starts = time_of(&r, |v| v["e"] == "NodeStageVolume" && v["r"] == "start");
        for (k, w) in ms.iter().enumerate() {
            assert!(starts[k + 1] - fails[k] >= w * 1_000_000, "retry {k}");
        }
        assert_eq!(r.summary.backoffs, [11, 3]);
        assert_eq!(r.summary.outcome, "all pods Running");
        assert!(r.summary.clean);
    }

    #[tokio::test]
    async fn attach_required_goes_through_volumeattachments_one_node_at_a_time_per_volume() {
        let p = params(&[
            "attach_required=true",
            "shares=2",
            "replicas=3",
            "authz.enabled=false",
        ]);
        let r = run_mock(p, 3, MockCsi::default()).await;
        let s = &r.summary;
        assert_eq!(s.outcome, "all pods Running");
        assert_eq!(s.volume_attachments, 6);
        assert_eq!(s.mock_calls["ControllerPublishVolume"], 6);
        assert_eq!(s.mock_calls["ControllerUnpublishVolume"], 6);
        assert_eq!(s.mock_calls["NodeStageVolume"], 6);
        assert!(s.clean, "{:?}", s.leaked_objects);
        // Pre-1.18 ADC: attaches of one volume never overlap across nodes.
        let l = lines(&r);
        for pv in [
            "pvc-00000000-0000-4000-8000-000000000000",
            "pvc-00000000-0000-4000-8000-000000000001",
        ] {
            let mut open = false;
            for (c, e, o, res) in &l {
                if c == "kcm"
                    && e == "create"
                    && res == "VolumeAttachment"
                    && o.starts_with(&format!("csi-{pv}-"))
                {
                    assert!(!open, "two attaches of {pv} at once");
                    open = true;
                }
                if c == "adc" && e == "attached" && o == pv {
                    open = false;
                }
            }
        }
        // Without attach, no VolumeAttachment at all.
        let r = run_mock(params(&["shares=2", "replicas=3"]), 3, MockCsi::default()).await;
        assert_eq!(r.summary.volume_attachments, 0);
        assert!(!r.summary.mock_calls.contains_key("ControllerPublishVolume"));
        assert!(r.summary.clean);
    }

    #[tokio::test]
    async fn one_seed_gives_one_event_log() {
        let p = params(&["attach_required=true", "shares=2", "replicas=4"]);
        let a = run_mock(p.clone(), 11, MockCsi::default()).await;
        let b = run_mock(p.clone(), 11, MockCsi::default()).await;
        let c = run_mock(p, 12, MockCsi::default()).await;
        assert!(a.events.len() > 100);
        assert_eq!(a.events, b.events);
        assert_eq!(a.summary.events_hash, b.summary.events_hash);
        assert_ne!(a.events, c.events);
    }
}
