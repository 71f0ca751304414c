//! The discrete-event simulation: one event queue on the simulated clock, the API server,
//! the controllers and the kubelets as reconcilers, and the CSI calls they make.
//!
//! Every Kubernetes-side delay (API latency, client token buckets, informer delivery,
//! back-offs, periodic loops) is an event on the simulated clock. A CSI call is started
//! for real when it is issued and its result is taken when its simulated duration (drawn
//! from the seeded latency model) has passed: wall-clock jitter cannot reorder events.
//! Events at the same instant run in the order they were scheduled.
//!
//! The house, from the ground up:
//! - [`vocab`] (components, requests, replies, events, names) and [`objects`] (the API
//!   objects made, what is read off PVs): leaves.
//! - [`context`]: the clock, the API clients' wire, the CSI calls in flight, the log and
//!   counters, handed to each handler as a `Ctx`.
//! - [`apiserver`]: the store, the writes, the watch fan-out and the node authorizer's
//!   graph hook. It answers with replies (messages); it calls no controller.
//! - The controllers, each a reconciler over the store and its own state, imported by
//!   nothing but this module: [`scheduler`], [`replicaset`], [`binder`] (PV controller),
//!   [`provisioner`], [`attach_detach`], [`attacher`], [`kubelet`], [`authorizer`] (the
//!   node authorizer's graph loop); and [`script`], the scenario.
//! - This module: the [`World`], which owns them all, runs the clock, delivers each
//!   event, reply and CSI outcome to its component, and applies the fault plan.

mod apiserver;
mod attach_detach;
mod attacher;
mod authorizer;
mod binder;
mod context;
mod kubelet;
pub(crate) mod objects;
mod provisioner;
mod replicaset;
mod scheduler;
mod script;
mod vocab;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;

use crate::api::{deleting, pod_node, pod_running, pvc_phase};
use crate::authz::Graph;
use crate::csi::{Backend, CsiOutcome};
use crate::fault::{Action, Anchor, FaultCounts, Plugin};
use crate::params::Params;
use crate::plots::Sample;
use crate::report::{EventLog, Stats};
use crate::time::{SimTime, TokenBucket, stream};

use apiserver::ApiServer;
use attach_detach::AttachDetach;
use attacher::Attacher;
use authorizer::NodeAuthorizer;
use binder::Binder;
use context::{Clock, CsiCalls, Ctx, Wire};
use kubelet::Kubelet;
use provisioner::Provisioner;
use replicaset::ReplicaSets;
use scheduler::Scheduler;
use script::{Script, Tick};
use vocab::{AfterCall, Component, Event, Reply, Request, kubelet_client, node_index};

pub use script::Phase;
pub use vocab::DEPLOYMENT;

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
    clock: Clock,
    wire: Wire,
    csi: CsiCalls,
    backend: Backend,
    api: ApiServer,
    /// The node authorizer's graph.
    pub graph: Graph,
    authorizer: NodeAuthorizer,
    scheduler: Scheduler,
    binder: Binder,
    provisioner: Provisioner,
    attach_detach: AttachDetach,
    attacher: Attacher,
    replica_sets: ReplicaSets,
    kubelets: Vec<Kubelet>,
    script: Script,
    /// Draws container start times.
    rng_pods: ChaCha8Rng,
    /// Called every few thousand events with the run's state (a progress display).
    pub progress: Option<Hook>,
    /// The event log.
    pub log: EventLog,
    /// Counters and distributions for the report.
    pub stats: Stats,
    /// The busy workload, when the scenario runs it.
    pub busy: Option<crate::busy::Busy>,
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

/// One handler's context, borrowed from the world's fields (so that a component and
/// the store can be borrowed beside it).
macro_rules! ctx {
    ($w:ident) => {
        Ctx {
            now: $w.clock.now(),
            p: &$w.p,
            clock: &mut $w.clock,
            log: &mut $w.log,
            stats: &mut $w.stats,
            wire: &mut $w.wire,
            csi: &mut $w.csi,
        }
    };
}

/// Every API client's token bucket.
fn clients(p: &Params, nodes: usize) -> BTreeMap<String, TokenBucket> {
    let q = &p.qps;
    let mut clients = BTreeMap::new();
    for (name, (qps, burst)) in [
        ("kcm", q.kcm),
        (vocab::ADC_CLIENT, q.kcm),
        ("scheduler", q.scheduler),
        ("provisioner", q.provisioner),
        ("attacher", q.attacher),
    ] {
        clients.insert(name.to_owned(), TokenBucket::new(qps, burst));
    }
    clients.insert("script".to_owned(), TokenBucket::new(0.0, 1));
    for i in 0..nodes {
        clients.insert(
            kubelet_client(i),
            TokenBucket::new(q.kubelet.0, q.kubelet.1),
        );
    }
    clients
}

impl World {
    /// A cluster for `p`, seeded with `seed`, calling `backend`.
    pub fn new(p: Params, seed: u64, backend: Backend, log: EventLog) -> Self {
        let nodes = p.node_count();
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
            clock: Clock::default(),
            wire: Wire::new(clients(&p, nodes), stream(seed, "api")),
            csi: CsiCalls::new(stream(seed, "csi")),
            backend,
            api: ApiServer::new(stream(seed, "watch")),
            graph,
            authorizer: NodeAuthorizer::default(),
            scheduler: Scheduler::new(nodes, stream(seed, "scheduler")),
            binder: Binder::default(),
            provisioner: Provisioner::default(),
            attach_detach: AttachDetach::new(stream(seed, "adc")),
            attacher: Attacher::default(),
            replica_sets: ReplicaSets::default(),
            kubelets: (0..nodes).map(Kubelet::new).collect(),
            script: Script::new(),
            rng_pods: stream(seed, "pods"),
            progress: None,
            log,
            stats: Stats::default(),
            busy,
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
        self.clock.now()
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
        self.csi.down.clear();
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
        for (name, b) in &self.wire.clients {
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

    fn after(&mut self, d: Duration, event: Event) {
        self.clock.at(self.clock.now().after(d), event);
    }

    fn event(&mut self, component: &str, what: &str, object: &str, result: &str) {
        self.log
            .push(self.clock.now(), component, what, object, result);
    }

    /// Runs the scenario to the end.
    pub async fn run(&mut self) {
        self.start();
        while self.script.phase != Phase::Done {
            let Some((at, event)) = self.clock.pop() else {
                break;
            };
            while let Some(t) = self.stats.series.due(at) {
                let s = self.sample(t).await;
                self.stats.series.record(s);
            }
            self.clock.advance(at);
            self.stats.events += 1;
            if self.stats.events.is_multiple_of(4096) {
                self.report_progress();
            }
            match event {
                // A call a kill cut was finished early; its original completion finds
                // nothing.
                Event::CsiDone { id } if self.csi.in_flight.contains_key(&id) => {
                    let (out, by_kill) = match self.csi.decided.remove(&id) {
                        Some(out) => (out, true),
                        None => (self.backend.finish(id).await, false),
                    };
                    if out.is_err() {
                        self.attribute_failure(id, by_kill);
                    }
                    self.call_done(id, out);
                }
                Event::CsiDone { .. } => {}
                Event::Fault(i) => self.fault(i).await,
                event => self.handle(event),
            }
            if let Some(b) = &mut self.busy {
                b.run_samples().await;
            }
            for (id, call) in std::mem::take(&mut self.csi.to_start) {
                self.backend.start(id, call).await;
            }
        }
        self.stats.sim_end = self.clock.now();
        let s = self.sample(self.clock.now()).await;
        self.stats.series.finish(s);
        self.faults.calls_refused = self.csi.refused;
        self.faults.not_reached = (self.p.fault_plan.len() as u64)
            .saturating_sub(self.faults.applied.values().sum::<u64>())
            .saturating_sub(self.faults.refused.len() as u64);
    }

    /// The cluster's objects, the first events on the clock and the periodic loops.
    fn start(&mut self) {
        let nodes = self.kubelets.len();
        let mut ctx = ctx!(self);
        self.script.setup(&mut ctx, &mut self.api, nodes);
        self.schedule_faults(Anchor::Start);
        self.after(Duration::ZERO, Event::Script);
        self.after(Duration::from_secs(15), Event::BinderResync);
        for i in 0..nodes {
            // Kubelets started at different moments: their status loops are staggered.
            let period = Params::secs(self.p.node_status_period_s);
            let off = Duration::from_nanos(rand::RngExt::random_range(
                &mut self.scheduler.rng,
                0..period.as_nanos().max(1) as u64,
            ));
            self.after(off, Event::NodeStatus(i));
        }
        if self.p.attach_required {
            self.after(
                Params::secs(self.p.adc_verify_period_s),
                Event::AttachDetachVerify,
            );
        }
    }

    fn report_progress(&mut self) {
        let info = Progress {
            phase: self.script.phase,
            sim: self.clock.now(),
            running: script::running(&self.api.store),
            replicas: self.p.replicas,
            events: self.stats.events,
        };
        if let Some(Hook(f)) = &mut self.progress {
            f(&info);
        }
    }

    // ---- delivery --------------------------------------------------------------------

    /// Delivers an event (other than a CSI call's end or a fault step) to its component.
    fn handle(&mut self, event: Event) {
        let mut ctx = ctx!(self);
        let store = &self.api.store;
        match event {
            Event::Watch { to, kind, name } => match to {
                Component::Scheduler => self.scheduler.watch(&mut ctx, &name),
                Component::Binder => self.binder.watch(&mut ctx, store, kind, &name),
                Component::Provisioner => self.provisioner.watch(&mut ctx, kind, &name),
                Component::AttachDetach => {
                    self.attach_detach.watch(&mut ctx, store, kind, &name);
                }
                Component::Attacher => self.attacher.enqueue(&mut ctx, &name),
                Component::ReplicaSets => self.replica_sets.watch(&mut ctx),
                Component::Kubelet(i) => self.kubelets[i].watch(&mut ctx, store, kind, &name),
            },
            Event::Process(c) => match c {
                Component::Scheduler => self.scheduler.reconcile(&mut ctx, store),
                Component::Binder => self.binder.reconcile(&mut ctx, store),
                Component::Provisioner => self.provisioner.reconcile(&mut ctx, store),
                Component::AttachDetach => self.attach_detach.reconcile(&mut ctx, store),
                Component::Attacher => self.attacher.reconcile(&mut ctx, store),
                Component::ReplicaSets => self.replica_sets.reconcile(&mut ctx, store),
                Component::Kubelet(i) => self.kubelets[i].reconcile(&mut ctx, store),
            },
            Event::Api { client, request } => {
                let mut replies = Vec::new();
                self.api
                    .apply(&mut ctx, &mut self.graph, &client, request, &mut replies);
                for reply in replies {
                    self.deliver(reply);
                }
            }
            // Both need the back end: the run loop handles them.
            Event::CsiDone { .. } | Event::Fault(_) => {}
            Event::GraphIn(op) => self.authorizer.write_arrived(&mut ctx, &mut self.graph, op),
            Event::GraphTick => self.authorizer.tick(&mut ctx, &mut self.graph),
            Event::NodeStatus(i) => self.kubelets[i].node_status(&mut ctx, store),
            Event::ContainerStarted { node, pod } => {
                if store.pods.get(&pod).is_some_and(|p| !deleting(&p.metadata)) {
                    ctx.api(&kubelet_client(node), Request::PodRunning { pod });
                }
            }
            Event::AttachDetachPoll {
                pv,
                node,
                detach,
                started,
            } => AttachDetach::read(&mut ctx, pv, node, detach, started),
            Event::AttachDetachRetry { pv, node } => self.attach_detach.retry(&mut ctx, pv, node),
            Event::AttachDetachVerify => self.attach_detach.verify(&mut ctx),
            Event::AttacherRetry { va } => self.attacher.enqueue(&mut ctx, &va),
            Event::ProvisionerRetry { key } => self.provisioner.retry(&mut ctx, key),
            Event::BinderResync => self.binder.resync(&mut ctx, store),
            Event::Script => self.script_tick(),
            Event::Busy { round } => {
                if let Some(b) = &mut self.busy {
                    let out = b.wake(ctx.now, round);
                    self.busy_out(out);
                }
            }
        }
    }

    /// Delivers a reply of the API server to the component it is for.
    fn deliver(&mut self, reply: Reply) {
        let mut ctx = ctx!(self);
        let store = &self.api.store;
        match reply {
            Reply::Bound { node } => self.scheduler.bound(node),
            Reply::PodCreated => self.replica_sets.pod_created(),
            Reply::PodDeletionSeen { pod } => self.replica_sets.deletion_seen(&pod),
            Reply::PodTerminating { pod } => {
                if let Some(b) = &mut self.busy {
                    let out = b.stop(ctx.now, &pod);
                    self.busy_out(out);
                }
            }
            Reply::PodStarted { pod, node } => {
                if let (Some(b), Some(n)) = (&mut self.busy, node) {
                    let pvs = self.kubelets[n].pod_volumes(&pod);
                    let out = b.start(ctx.now, &pod, n, pvs);
                    self.busy_out(out);
                }
            }
            Reply::AttachmentWritten {
                pv,
                node,
                detach,
                started,
            } => AttachDetach::read(&mut ctx, pv, node, detach, started),
            Reply::AttachmentRead {
                pv,
                node,
                detach,
                started,
            } => {
                self.attach_detach
                    .polled(&mut ctx, store, pv, node, detach, started);
            }
            Reply::VerifyRead => self.attach_detach.verify_read(),
            Reply::FinalizerAdded { va } => self.attacher.finalizer_added(&mut ctx, store, va),
            Reply::StatusWritten { va, attached } => self.attacher.done(&mut ctx, &va, attached),
            Reply::Unfinalized { va } => self.attacher.done(&mut ctx, &va, true),
            Reply::AttachmentMissing { va } => self.attacher.done(&mut ctx, &va, false),
            Reply::GotAttachment {
                node,
                pv,
                va,
                purpose,
                answer,
            } => self.kubelets[node].got_attachment(&mut ctx, store, pv, &va, purpose, answer),
            Reply::GotSecret { node, pv, allowed } => {
                self.kubelets[node].got_secret(&mut ctx, store, pv, allowed);
            }
        }
    }

    /// Delivers call `id`'s outcome to the component that made it.
    fn call_done(&mut self, id: u64, out: CsiOutcome) {
        let mut ctx = ctx!(self);
        let Some(f) = ctx.finish_call(id, out) else {
            return;
        };
        let store = &self.api.store;
        match &f.then {
            AfterCall::Provisioned { .. } | AfterCall::Deleted { .. } => {
                self.provisioner.call_done(&mut ctx, store, f);
            }
            AfterCall::ControllerPublished { .. } | AfterCall::ControllerUnpublished { .. } => {
                self.attacher.call_done(&mut ctx, f);
            }
            AfterCall::Staged { node, .. }
            | AfterCall::Published { node, .. }
            | AfterCall::Unpublished { node, .. }
            | AfterCall::Unstaged { node, .. } => {
                let node = *node;
                self.kubelets[node].call_done(&mut ctx, &mut self.rng_pods, f);
            }
        }
    }

    /// Logs what the busy workload reports and schedules its next wake-up.
    fn busy_out(&mut self, out: crate::busy::Out) {
        for (what, object, result) in &out.log {
            self.event("busy", what, object, result);
        }
        if let Some((at, round)) = out.wake {
            self.clock.at(at, Event::Busy { round });
        }
    }

    // ---- the scenario ----------------------------------------------------------------

    /// Nothing is under way outside the API: no CSI call, no claim in the making, no
    /// fault step due, no mount left.
    fn settled(&self) -> bool {
        self.csi.in_flight.is_empty()
            && self.provisioner.in_progress.is_empty()
            && self.faults_pending == 0
            && self.kubelets.iter().all(Kubelet::holds_nothing)
    }

    fn script_tick(&mut self) {
        let settled = self.settled();
        let mut ctx = ctx!(self);
        let tick = self
            .script
            .tick(&mut ctx, &mut self.api, self.busy.as_ref(), settled);
        match tick {
            Tick::Done => return,
            Tick::Again => {}
            Tick::DeployBegan => self.schedule_faults(Anchor::Deploy),
            Tick::Teardown(why) => self.begin_teardown(why),
        }
        self.after(script::TICK, Event::Script);
    }

    fn begin_teardown(&mut self, why: &str) {
        self.stats.running_at_end_of_deploy = script::running(&self.api.store);
        self.record_outcomes();
        self.schedule_faults(Anchor::Teardown);
        let mut ctx = ctx!(self);
        self.script.begin_teardown(&mut ctx, &mut self.api, why);
    }

    /// Records, for the report, each claim's state and each pod not Running with the
    /// last error of its volumes.
    fn record_outcomes(&mut self) {
        for (name, c) in &self.api.store.pvcs {
            let outcome = if pvc_phase(c) == "Bound" {
                "Bound".to_owned()
            } else {
                self.provisioner.pending_outcome(name)
            };
            self.stats.claims_at_teardown.insert(name.clone(), outcome);
        }
        let now = self.clock.now();
        for (name, p) in &self.api.store.pods {
            if pod_running(p) || deleting(&p.metadata) {
                continue;
            }
            // A stuck pod counts in the start-up percentiles with the time it has waited
            // so far, as clusterloader2 counts it: leaving it out would flatter the run.
            if let Some(c) = self.api.pod_created.get(name) {
                self.stats.startup.push(now.since(*c));
                self.stats.startup_not_running += 1;
            }
            if let Some(c) = self.stats.scheduled.get(name) {
                self.stats.schedule_to_run.push(now.since(*c));
            }
            let node = pod_node(p).and_then(node_index);
            let why = node
                .and_then(|n| self.kubelets[n].pod_error(name))
                .unwrap_or_else(|| match node {
                    None => "not scheduled".to_owned(),
                    Some(_) => String::new(),
                });
            self.stats.pods_not_running.insert(name.clone(), why);
        }
    }

    /// Claims given more than one volume: by the volume handles CreateVolume returned,
    /// and by the back ends' volumes per request name at the checkpoints.
    pub fn duplicates(&self) -> BTreeMap<String, usize> {
        let mut d = BTreeMap::new();
        for (pvc, handles) in &self.provisioner.handles {
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

    /// Objects left in the API at the end (kind → count).
    pub fn leftover_objects(&self) -> BTreeMap<&'static str, usize> {
        let store = &self.api.store;
        let mut m = BTreeMap::new();
        m.insert("pods", store.pods.len());
        m.insert("persistentvolumeclaims", store.pvcs.len());
        m.insert("persistentvolumes", store.pvs.len());
        m.insert("volumeattachments", store.vas.len());
        m.insert("sim_mds_sessions", self.stats.sessions.max(0) as usize);
        m.retain(|_, v| *v > 0);
        m
    }

    /// The state for the time series at `at` (no event later than `at` has run yet).
    /// fake-ceph's counters are read once every real call under way has finished: they
    /// then hold exactly the requests of the calls started before `at`, the same for
    /// every run of a seed, whatever the machine's speed.
    async fn sample(&mut self, at: SimTime) -> Sample {
        let stuck_after = Params::secs(self.p.kill_stuck_after_s);
        let mut s = Sample {
            t: at,
            sessions: self.stats.sessions.max(0) as u64,
            forbidden: self.stats.forbidden.values().sum(),
            killed: self.stats.killed,
            ..Sample::default()
        };
        for (name, pod) in &self.api.store.pods {
            if deleting(&pod.metadata) {
                continue;
            }
            if pod_running(pod) {
                s.running += 1;
            } else {
                s.pending += 1;
                if self
                    .api
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
        self.backend.drain().await;
        if let Backend::Real(r) = &self.backend {
            let d = r.perf_dump().await;
            s.hcr = d["mds_server"]["handle_client_request"].as_u64();
            s.ceph_sessions = d["mds_sessions"]["session_count"].as_u64();
        }
        s
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
            self.after(Params::secs(after_s), Event::Fault(i));
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
            self.after(Duration::from_secs(5), Event::Fault(i));
            return;
        }
        if action.quiesces() {
            self.backend.drain().await;
        }
        let mut detail = String::from("applied");
        if let Action::Restart { plugin } = &action
            && !self.csi.down.contains(plugin)
        {
            // Restarted already (kills of one plugin overlapped).
            self.faults.count(&action, crate::fault::Applied::default());
            self.event("fault", action.name(), &action.object(), "running");
            return;
        }
        if let Action::Kill { plugin } = &action {
            detail = self.kill(*plugin);
        }
        match self.backend.inject(&action).await {
            Ok(applied) => {
                self.faults.count(&action, applied);
                self.track_windows(&action);
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

    /// The connection to `plugin` drops: the calls under way fail now, whatever the
    /// real ones had done.
    fn kill(&mut self, plugin: Plugin) -> String {
        let cut = self.csi.under_way(plugin);
        for id in &cut {
            self.csi.decided.insert(
                *id,
                Err((
                    tonic::Code::Unavailable,
                    format!("connection to the {plugin} plugin lost: it was killed"),
                )),
            );
            self.after(Duration::ZERO, Event::CsiDone { id: *id });
        }
        self.backend.abandon(&cut);
        self.faults.calls_cut += cut.len() as u64;
        self.csi.down.insert(plugin);
        format!("{} calls cut", cut.len())
    }

    /// The fault windows and plugins an applied `action` opens or closes.
    fn track_windows(&mut self, action: &Action) {
        match action {
            Action::Restart { plugin } => {
                self.csi.down.remove(plugin);
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

    /// Counts a failed call against the faults in force when it ended: the windows open
    /// then, and the kill of its plugin when the simulation failed it for that. (A
    /// window's count includes failures it did not cause, when two overlap.)
    fn attribute_failure(&mut self, id: u64, by_kill: bool) {
        let mut kinds: BTreeSet<&'static str> = self.open_windows.values().copied().collect();
        if by_kill {
            let plugin = self
                .csi
                .in_flight
                .get(&id)
                .map(|(c, _, _)| vocab::plugin_of(c));
            kinds.insert(match plugin {
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
                .push(format!("at {:.1} s: {e:#}", self.clock.now().secs())),
        }
    }
}
