//! The scenario script: makes the claims and the Deployment, scales it step by step
//! (killing pods stuck too long, as the 2018 script did), decides when the deploy phase
//! ends, and tears everything down.
//!
//! It writes the store through the API server as the scenario's own client does; it
//! imports the vocabulary, the context, the object builders and the API server, no
//! controller.

use std::time::Duration;

use crate::api::{Kind, Store, deleting, pod_running, pvc_phase};
use crate::busy::{Busy, Verdict};
use crate::params::Params;
use crate::time::SimTime;

use super::apiserver::ApiServer;
use super::context::Ctx;
use super::objects;
use super::vocab::{DEPLOYMENT, Request};

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

/// What the world is to do after a tick of the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Tick again in a second.
    Again,
    /// The deploy phase began (its faults are due): tick again in a second.
    DeployBegan,
    /// The deploy phase is over, for this reason: tear down, tick again in a second.
    Teardown(&'static str),
    /// The run is over.
    Done,
}

/// The script's state.
#[derive(Debug)]
pub(crate) struct Script {
    /// The phase.
    pub(crate) phase: Phase,
    replicas: usize,
    next_step: SimTime,
    last_progress: SimTime,
    teardown_started: SimTime,
    pvcs_deleted: bool,
}

/// Pods Running and not being deleted.
pub(crate) fn running(store: &Store) -> usize {
    store
        .pods
        .values()
        .filter(|p| pod_running(p) && !deleting(&p.metadata))
        .count()
}

impl Script {
    /// Before the run.
    pub(crate) fn new() -> Self {
        Self {
            phase: Phase::Provision,
            replicas: 0,
            next_step: SimTime::ZERO,
            last_progress: SimTime::ZERO,
            teardown_started: SimTime::ZERO,
            pvcs_deleted: false,
        }
    }

    /// The cluster at the start: StorageClass, secret, CSIDriver, `nodes` nodes and the
    /// claims.
    pub(crate) fn setup(&mut self, ctx: &mut Ctx<'_>, api: &mut ApiServer, nodes: usize) {
        let store = &mut api.store;
        let mut sc = objects::storage_class(ctx.p);
        store.stamp(&mut sc.metadata);
        let name = sc.metadata.name.clone().unwrap_or_default();
        store.storage_classes.insert(name, sc);
        let mut secret = objects::secret(ctx.p);
        store.stamp(&mut secret.metadata);
        let name = secret.metadata.name.clone().unwrap_or_default();
        store.secrets.insert(name, secret);
        let mut driver = objects::csi_driver(ctx.p);
        store.stamp(&mut driver.metadata);
        let name = driver.metadata.name.clone().unwrap_or_default();
        store.csi_drivers.insert(name, driver);
        for i in 0..nodes {
            let mut n = objects::node(i);
            store.stamp(&mut n.metadata);
            let name = n.metadata.name.clone().unwrap_or_default();
            store.nodes.insert(name, n);
        }
        for s in 0..ctx.p.shares {
            let name = objects::claim_name(s);
            let mut c = objects::claim(s);
            api.store.stamp(&mut c.metadata);
            api.store.pvcs.insert(name.clone(), c);
            ctx.event("script", "create", &name, "PersistentVolumeClaim");
            api.notify(ctx, Kind::Pvc, &name, None);
        }
    }

    fn create_deployment(&mut self, ctx: &mut Ctx<'_>, api: &mut ApiServer, replicas: usize) {
        let (mut d, mut rs) = objects::deployment(ctx.p, replicas);
        api.store.stamp(&mut d.metadata);
        api.store.deployments.insert(DEPLOYMENT.into(), d);
        api.store.stamp(&mut rs.metadata);
        api.store
            .replica_sets
            .insert(objects::replica_set_name(), rs);
        ctx.event("script", "create", DEPLOYMENT, "Deployment");
        self.set_replicas(ctx, api, replicas);
    }

    fn set_replicas(&mut self, ctx: &mut Ctx<'_>, api: &mut ApiServer, n: usize) {
        let store = &mut api.store;
        if let Some(d) = store.deployments.get_mut(DEPLOYMENT) {
            d.spec.replicas = Some(n as i32);
            let mut m = std::mem::take(&mut d.metadata);
            store.stamp(&mut m);
            if let Some(d) = store.deployments.get_mut(DEPLOYMENT) {
                d.metadata = m;
            }
        }
        ctx.event("script", "scale", DEPLOYMENT, &n.to_string());
        // The Deployment controller carries the count to its ReplicaSet.
        ctx.api("kcm", Request::ScaleRs { replicas: n as i32 });
    }

    /// One tick. `busy` is the busy workload, if the scenario runs it; `settled` whether
    /// nothing is left under way outside the API (CSI calls, claims in the making, fault
    /// steps, mounts).
    pub(crate) fn tick(
        &mut self,
        ctx: &mut Ctx<'_>,
        api: &mut ApiServer,
        busy: Option<&Busy>,
        settled: bool,
    ) -> Tick {
        match self.phase {
            Phase::Provision => self.provision(ctx, api),
            Phase::Deploy => self.deploy(ctx, api, busy),
            Phase::Teardown => self.teardown(ctx, api, settled),
            Phase::Done => Tick::Done,
        }
    }

    fn provision(&mut self, ctx: &mut Ctx<'_>, api: &mut ApiServer) -> Tick {
        let now = ctx.now;
        let bound = api
            .store
            .pvcs
            .values()
            .filter(|c| pvc_phase(c) == "Bound")
            .count();
        if bound == ctx.p.shares {
            ctx.stats.provisioned_at = Some(now);
            ctx.event(
                "script",
                "phase",
                "deploy",
                &format!("{bound} claims bound"),
            );
            self.phase = Phase::Deploy;
            self.last_progress = now;
            let first = if ctx.p.step > 0 {
                ctx.p.step.min(ctx.p.replicas)
            } else {
                ctx.p.replicas
            };
            self.replicas = first;
            self.next_step = now.after(Params::secs(ctx.p.step_interval_s));
            self.create_deployment(ctx, api, first);
            Tick::DeployBegan
        } else if now.secs() > ctx.p.max_deploy_s {
            Tick::Teardown("provisioning did not finish")
        } else {
            Tick::Again
        }
    }

    /// The 2018 script: kills pods stuck longer than the threshold, and scales a step
    /// further when the step's interval is over.
    fn step_up(&mut self, ctx: &mut Ctx<'_>, api: &mut ApiServer) {
        let now = ctx.now;
        let limit = Params::secs(ctx.p.kill_stuck_after_s);
        let stuck: Vec<String> = api
            .store
            .pods
            .iter()
            .filter(|(n, p)| {
                !pod_running(p)
                    && !deleting(&p.metadata)
                    && api
                        .pod_created
                        .get(*n)
                        .is_some_and(|c| now.since(*c) > limit)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for pod in stuck {
            ctx.stats.killed += 1;
            ctx.event("script", "kill", &pod, "stuck");
            ctx.api("script", Request::DeletePod { pod });
        }
        if now >= self.next_step && self.replicas < ctx.p.replicas {
            self.replicas = (self.replicas + ctx.p.step).min(ctx.p.replicas);
            self.next_step = now.after(Params::secs(ctx.p.step_interval_s));
            self.last_progress = now;
            let n = self.replicas;
            self.set_replicas(ctx, api, n);
        }
    }

    fn deploy(&mut self, ctx: &mut Ctx<'_>, api: &mut ApiServer, busy: Option<&Busy>) -> Tick {
        let now = ctx.now;
        // Progress is a new high of Running pods: with pods killed and replaced, the
        // count goes down and up again without getting anywhere.
        let running = running(&api.store);
        if running > ctx.stats.max_running {
            ctx.stats.max_running = running;
            self.last_progress = now;
        }
        if ctx.p.step > 0 {
            self.step_up(ctx, api);
        }
        let all = self.replicas == ctx.p.replicas && running == ctx.p.replicas;
        if all {
            // The script looks once a tick; the last pod got there at its own Running
            // event, which is when all were Running.
            if ctx.stats.all_running_at.is_none() {
                ctx.stats.all_running_at =
                    Some(ctx.stats.running_at.iter().copied().max().unwrap_or(now));
            }
            // The busy workload keeps the pods until their unpacks finish; idle ones are
            // held `hold_s` for a steady state.
            let began = ctx.stats.provisioned_at.unwrap_or_default();
            let held = ctx
                .stats
                .all_running_at
                .map_or(Duration::ZERO, |t| now.since(t));
            match busy.map(|b| b.verdict(now, began)) {
                None if held < Params::secs(ctx.p.hold_s) => Tick::Again,
                None => Tick::Teardown("all pods Running"),
                Some(Verdict::Finished) => Tick::Teardown("all pods Running, unpacks finished"),
                Some(Verdict::Deadline) => Tick::Teardown("busy deadline"),
                Some(Verdict::Unpacking) => Tick::Again,
            }
        } else if now.since(self.last_progress) > Params::secs(ctx.p.stall_s)
            && self.replicas == ctx.p.replicas
        {
            Tick::Teardown("stalled")
        } else if now.secs() > ctx.p.max_deploy_s {
            Tick::Teardown("deploy time limit")
        } else {
            Tick::Again
        }
    }

    /// The deploy phase ended (`why`): the Deployment goes, and its ReplicaSet scales to
    /// nothing.
    pub(crate) fn begin_teardown(&mut self, ctx: &mut Ctx<'_>, api: &mut ApiServer, why: &str) {
        ctx.stats.deploy_outcome = why.to_owned();
        ctx.stats.deploy_ended_at = Some(ctx.now);
        ctx.event("script", "phase", "teardown", why);
        self.phase = Phase::Teardown;
        self.teardown_started = ctx.now;
        if api.store.deployments.remove(DEPLOYMENT).is_some() {
            ctx.event("script", "delete", DEPLOYMENT, "Deployment");
            ctx.api("kcm", Request::ScaleRs { replicas: 0 });
        }
    }

    fn teardown(&mut self, ctx: &mut Ctx<'_>, api: &mut ApiServer, settled: bool) -> Tick {
        let now = ctx.now;
        if !self.pvcs_deleted && api.store.pods.is_empty() {
            self.pvcs_deleted = true;
            let names: Vec<String> = api.store.pvcs.keys().cloned().collect();
            for n in names {
                api.store.pvcs.remove(&n);
                ctx.event("script", "delete", &n, "PersistentVolumeClaim");
                api.notify(ctx, Kind::Pvc, &n, None);
            }
        }
        let clean =
            self.pvcs_deleted && api.store.pvs.is_empty() && api.store.vas.is_empty() && settled;
        if clean {
            ctx.stats.teardown_done_at = Some(now);
            ctx.event("script", "phase", "done", "clean");
            self.phase = Phase::Done;
            return Tick::Done;
        }
        if now.since(self.teardown_started) > Params::secs(ctx.p.max_teardown_s) {
            ctx.event("script", "phase", "done", "teardown time limit");
            self.phase = Phase::Done;
            return Tick::Done;
        }
        Tick::Again
    }
}

/// The script's tick period.
pub(crate) const TICK: Duration = Duration::from_secs(1);
