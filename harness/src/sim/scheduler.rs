//! kube-scheduler: binds each unscheduled pod to a free node (one pod per node), picked
//! at random from the seeded stream.
//!
//! It owns the nodes it reserved for bindings on their way; it imports the vocabulary
//! and the context, no other module of the simulation.

use std::collections::BTreeSet;

use rand_chacha::ChaCha8Rng;

use crate::api::{Store, deleting, pod_node};

use super::context::{Ctx, WorkQueue};
use super::vocab::{Component, Request, node_index};

/// The scheduler's state.
#[derive(Debug)]
pub(crate) struct Scheduler {
    work: WorkQueue,
    /// Nodes picked for bindings the API server has not handled yet.
    reserved: BTreeSet<usize>,
    /// The scheduler's random stream (also staggers the kubelets' status loops).
    pub(crate) rng: ChaCha8Rng,
    nodes: usize,
}

impl Scheduler {
    /// A scheduler of `nodes` nodes drawing from `rng`.
    pub(crate) fn new(nodes: usize, rng: ChaCha8Rng) -> Self {
        Self {
            work: WorkQueue::default(),
            reserved: BTreeSet::new(),
            rng,
            nodes,
        }
    }

    /// A pod changed.
    pub(crate) fn watch(&mut self, ctx: &mut Ctx<'_>, name: &str) {
        self.work.dirty.insert(name.to_owned());
        ctx.kick(&mut self.work.pending, Component::Scheduler);
    }

    /// The API server handled the binding to `node`.
    pub(crate) fn bound(&mut self, node: usize) {
        self.reserved.remove(&node);
    }

    /// One pass: any pod event may free a node or bring a pod, so every unscheduled pod
    /// is looked at.
    pub(crate) fn reconcile(&mut self, ctx: &mut Ctx<'_>, store: &Store) {
        self.work.pending = false;
        let dirty = std::mem::take(&mut self.work.dirty);
        let mut occupied: BTreeSet<usize> = store
            .pods
            .values()
            .filter_map(|p| pod_node(p).and_then(node_index))
            .collect();
        occupied.extend(self.reserved.iter().copied());
        if dirty.is_empty() {
            return;
        }
        let mut unscheduled: Vec<String> = store
            .pods
            .iter()
            .filter(|(_, p)| pod_node(p).is_none() && !deleting(&p.metadata))
            .map(|(n, _)| n.clone())
            .collect();
        unscheduled.sort();
        for pod in unscheduled {
            let free: Vec<usize> = (0..self.nodes).filter(|i| !occupied.contains(i)).collect();
            if free.is_empty() {
                ctx.event("scheduler", "unschedulable", &pod, "no free node");
                return;
            }
            let pick = free[rand::RngExt::random_range(&mut self.rng, 0..free.len())];
            occupied.insert(pick);
            self.reserved.insert(pick);
            ctx.api("scheduler", Request::BindPod { pod, node: pick });
        }
    }
}
