//! The attach-detach controller: attaches each (volume, node) pair a scheduled pod
//! needs and detaches what no pod needs and the kubelet no longer reports in use,
//! through VolumeAttachments (write, one GET, then its watch until the operation's
//! timeout); writes each node's volumesAttached; runs VerifyVolumesAreAttached.
//!
//! As in Kubernetes up to 1.17, it keeps one device path per volume, not per (volume,
//! node): every successful attach of a volume to any node overwrites it with that
//! attach's VolumeAttachment name, and every write of a node's volumesAttached lists
//! each of the node's volumes with the volume's current device path (k8s #41044). A
//! 1.11/1.12 kubelet names the VolumeAttachment it waits for after that entry
//! (`Params::waitforattach_uses_devicepath`).
//!
//! It owns its desired and actual states of the world, its operations under way and
//! back-offs; it imports the vocabulary and the context, no other module of the
//! simulation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::api::{Kind, Store, deleting, node_in_use, pod_node, pod_pvcs, pvc_volume};
use crate::naming::node_name;
use crate::params::Params;
use crate::time::{Backoff, SimTime};

use super::context::Ctx;
use super::vocab::{ADC_CLIENT, Component, Event, Request, node_index, pair_key, va_name, va_pair};

/// A (volume, node) pair.
type Pair = (String, usize);

/// Where a pair stands in the actual state of the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttachState {
    Attaching,
    Attached,
    Detaching,
}

/// The attach-detach controller's state.
#[derive(Debug)]
pub(crate) struct AttachDetach {
    /// Orders each pass, as Go's map iteration did (desired_state_of_world.go).
    rng: ChaCha8Rng,
    /// Pairs some pod needs, with how many pods need each.
    desired: BTreeMap<Pair, usize>,
    /// The pairs each pod needs.
    pod_pairs: BTreeMap<String, Vec<Pair>>,
    state: BTreeMap<Pair, AttachState>,
    /// Operation keys under way (a volume, or a pair: see `key`).
    busy: BTreeSet<String>,
    /// Pairs waiting for an operation key.
    waiting: BTreeMap<String, BTreeSet<Pair>>,
    backoff: BTreeMap<Pair, (Backoff, SimTime)>,
    dirty: BTreeSet<Pair>,
    pending: bool,
    verify_outstanding: usize,
    /// Nodes whose volumesAttached is to be written.
    node_dirty: BTreeSet<usize>,
    /// Detaches waiting for the kubelet to stop reporting the volume in use, by node.
    blocked: BTreeMap<usize, BTreeSet<String>>,
    /// Each volume's device path: the VolumeAttachment name its last successful
    /// attach returned, whichever node that was ("" with skip-attach).
    device_path: BTreeMap<String, String>,
    /// Operations waiting on their VolumeAttachment: (detach, when it began).
    awaiting: BTreeMap<Pair, (bool, SimTime)>,
}

impl AttachDetach {
    /// A controller drawing its pass order from `rng`.
    pub(crate) fn new(rng: ChaCha8Rng) -> Self {
        Self {
            rng,
            desired: BTreeMap::new(),
            pod_pairs: BTreeMap::new(),
            state: BTreeMap::new(),
            busy: BTreeSet::new(),
            waiting: BTreeMap::new(),
            backoff: BTreeMap::new(),
            dirty: BTreeSet::new(),
            pending: false,
            verify_outstanding: 0,
            node_dirty: BTreeSet::new(),
            blocked: BTreeMap::new(),
            device_path: BTreeMap::new(),
            awaiting: BTreeMap::new(),
        }
    }

    /// A pod, node or VolumeAttachment changed.
    pub(crate) fn watch(&mut self, ctx: &mut Ctx<'_>, store: &Store, kind: Kind, name: &str) {
        match kind {
            Kind::Pod => self.pod_changed(store, name),
            Kind::Node => {
                if let Some(node) = node_index(name)
                    && let Some(pvs) = self.blocked.remove(&node)
                {
                    self.dirty.extend(pvs.into_iter().map(|pv| (pv, node)));
                }
            }
            Kind::Va => {
                self.attachment_changed(ctx, store, name);
                return;
            }
            _ => {}
        }
        ctx.kick(&mut self.pending, Component::AttachDetach);
    }

    /// The watch of an operation waiting on VolumeAttachment `va` saw it change: the
    /// operation ends if it is attached (or failed), or gone for a detach.
    fn attachment_changed(&mut self, ctx: &mut Ctx<'_>, store: &Store, va: &str) {
        let Some(pair) = va_pair(va) else {
            return;
        };
        let Some(&(detach, _)) = self.awaiting.get(&pair) else {
            return;
        };
        let (pv, node) = pair;
        let found = store.vas.get(va);
        if detach {
            if found.is_none() {
                self.op_done(ctx, &pv, node, false);
            }
            return;
        }
        let status = found.and_then(|v| v.status.as_ref());
        if status.is_some_and(|s| s.attached) {
            self.op_done(ctx, &pv, node, true);
        } else if status.is_some_and(|s| s.attach_error.is_some()) {
            self.op_failed(
                ctx,
                &pv,
                node,
                "attach failed: the VolumeAttachment has an error",
            );
        }
    }

    fn pod_changed(&mut self, store: &Store, name: &str) {
        let pairs: Vec<Pair> = match store.pods.get(name) {
            Some(p) if !deleting(&p.metadata) => match pod_node(p).and_then(node_index) {
                Some(node) => pod_pvcs(p)
                    .iter()
                    .filter_map(|c| store.pvcs.get(c).and_then(|c| pvc_volume(c)))
                    .map(|pv| (pv.to_owned(), node))
                    .collect(),
                None => vec![],
            },
            _ => vec![],
        };
        let old = self.pod_pairs.remove(name).unwrap_or_default();
        for pair in &old {
            if let Some(c) = self.desired.get_mut(pair) {
                *c -= 1;
                if *c == 0 {
                    self.desired.remove(pair);
                }
            }
            self.dirty.insert(pair.clone());
        }
        for pair in &pairs {
            *self.desired.entry(pair.clone()).or_default() += 1;
            self.dirty.insert(pair.clone());
        }
        if !pairs.is_empty() {
            self.pod_pairs.insert(name.to_owned(), pairs);
        }
    }

    /// The back-off of (`pv`, `node`) is over.
    pub(crate) fn retry(&mut self, ctx: &mut Ctx<'_>, pv: String, node: usize) {
        self.dirty.insert((pv, node));
        ctx.kick(&mut self.pending, Component::AttachDetach);
    }

    /// The key operations are serialized by: the volume (pre-1.18) or the pair.
    fn key(ctx: &Ctx<'_>, pv: &str, node: usize) -> String {
        if ctx.p.adc_serialize_per_volume {
            pv.to_owned()
        } else {
            pair_key(pv, node)
        }
    }

    /// What to do with `pair`: attach (true), detach (false) or nothing.
    fn action(&mut self, store: &Store, pair: &Pair) -> Option<bool> {
        let want = self.desired.contains_key(pair);
        match (want, self.state.get(pair).copied()) {
            (true, None) => Some(true),
            (false, Some(AttachState::Attached)) => {
                let (pv, node) = pair;
                let in_use = store
                    .nodes
                    .get(&node_name(*node))
                    .map(node_in_use)
                    .unwrap_or_default();
                // Detach only what the kubelet no longer reports in use.
                if in_use.contains(pv) {
                    self.blocked.entry(*node).or_default().insert(pv.clone());
                    None
                } else {
                    Some(false)
                }
            }
            _ => None,
        }
    }

    /// One pass of the reconciler, then the node status updater.
    pub(crate) fn reconcile(&mut self, ctx: &mut Ctx<'_>, store: &Store) {
        self.pending = false;
        // The pairs in random order: which waiting node a volume goes to next is not
        // the lowest-numbered one.
        let mut pairs: Vec<Pair> = std::mem::take(&mut self.dirty).into_iter().collect();
        pairs.shuffle(&mut self.rng);
        for pair in pairs {
            let Some(attach) = self.action(store, &pair) else {
                continue;
            };
            let key = Self::key(ctx, &pair.0, pair.1);
            if self.busy.contains(&key) {
                self.waiting.entry(key).or_default().insert(pair);
                continue;
            }
            if let Some((_, until)) = self.backoff.get(&pair)
                && *until > ctx.now
            {
                continue;
            }
            self.busy.insert(key);
            let (pv, node) = pair.clone();
            if attach {
                self.state.insert(pair.clone(), AttachState::Attaching);
            } else {
                self.state.insert(pair.clone(), AttachState::Detaching);
                // The volume leaves the node's attached list before it is detached.
                self.node_dirty.insert(node);
            }
            if !ctx.p.attach_required {
                // Skip-attach: "pretend it's attached", but the node status handshake
                // stays.
                self.op_done(ctx, &pv, node, attach);
                continue;
            }
            let started = ctx.now;
            let request = if attach {
                Request::CreateVa {
                    pv: pv.clone(),
                    node,
                    started,
                }
            } else {
                Request::DeleteVa {
                    pv: pv.clone(),
                    node,
                    started,
                }
            };
            ctx.api(ADC_CLIENT, request);
            self.awaiting.insert(pair, (!attach, started));
            // The operation's last read, at its timeout.
            ctx.after(
                Self::timeout(ctx, !attach),
                Event::AttachDetachPoll {
                    pv,
                    node,
                    detach: !attach,
                    started,
                },
            );
        }
        // The node status updater: one write per node whose attached list changed.
        // Each volume is listed with its one device path, whichever node it came from.
        for node in std::mem::take(&mut self.node_dirty) {
            let vols: Vec<(String, String)> = self
                .state
                .iter()
                .filter(|((_, n), s)| *n == node && **s == AttachState::Attached)
                .map(|((pv, _), _)| {
                    let path = self.device_path.get(pv).cloned().unwrap_or_default();
                    (pv.clone(), path)
                })
                .collect();
            ctx.api(ADC_CLIENT, Request::NodeAttached { node, vols });
        }
    }

    /// How long an attach (`attach_timeout_s`) or a detach (10 s) waits.
    fn timeout(ctx: &Ctx<'_>, detach: bool) -> Duration {
        if detach {
            Duration::from_secs(10)
        } else {
            Params::secs(ctx.p.attach_timeout_s)
        }
    }

    /// Reads the VolumeAttachment of (`pv`, `node`) for the operation begun at
    /// `started` (after its write, and at its timeout).
    pub(crate) fn read(ctx: &mut Ctx<'_>, pv: String, node: usize, detach: bool, started: SimTime) {
        let request = Request::AttachDetachGetVa {
            pv,
            node,
            detach,
            started,
        };
        ctx.api(ADC_CLIENT, request);
    }

    /// Its read of the VolumeAttachment of (`pv`, `node`) answered: the operation ends
    /// if it is attached (gone, for a detach), fails at its timeout, and otherwise waits
    /// on the watch. A read of an operation that already ended is dropped.
    pub(crate) fn polled(
        &mut self,
        ctx: &mut Ctx<'_>,
        store: &Store,
        pv: String,
        node: usize,
        detach: bool,
        started: SimTime,
    ) {
        let pair = (pv, node);
        if self.awaiting.get(&pair) != Some(&(detach, started)) {
            return;
        }
        let (pv, node) = pair;
        let va = store.vas.get(&va_name(&pv, node));
        let done = if detach {
            va.is_none()
        } else {
            va.and_then(|v| v.status.as_ref())
                .is_some_and(|s| s.attached)
        };
        if done {
            self.op_done(ctx, &pv, node, !detach);
        } else if ctx.now.since(started) >= Self::timeout(ctx, detach) {
            let why = if detach {
                "detach timed out waiting for VolumeAttachment deletion"
            } else {
                "attach timed out waiting for VolumeAttachment"
            };
            self.op_failed(ctx, &pv, node, why);
        }
    }

    fn release(&mut self, ctx: &mut Ctx<'_>, pv: &str, node: usize) {
        let key = Self::key(ctx, pv, node);
        self.busy.remove(&key);
        if let Some(w) = self.waiting.remove(&key) {
            self.dirty.extend(w);
        }
        self.dirty.insert((pv.to_owned(), node));
        ctx.kick(&mut self.pending, Component::AttachDetach);
    }

    fn op_done(&mut self, ctx: &mut Ctx<'_>, pv: &str, node: usize, attached: bool) {
        let pair = (pv.to_owned(), node);
        self.awaiting.remove(&pair);
        if attached {
            self.state.insert(pair.clone(), AttachState::Attached);
            self.node_dirty.insert(node);
            // The attach's return value overwrites the volume's one device path.
            let path = if ctx.p.attach_required {
                va_name(pv, node)
            } else {
                String::new()
            };
            self.device_path.insert(pv.to_owned(), path);
        } else {
            self.state.remove(&pair);
        }
        ctx.event(
            "adc",
            if attached { "attached" } else { "detached" },
            pv,
            &node_name(node),
        );
        self.backoff.remove(&pair);
        self.release(ctx, pv, node);
    }

    fn op_failed(&mut self, ctx: &mut Ctx<'_>, pv: &str, node: usize, why: &str) {
        let pair = (pv.to_owned(), node);
        self.awaiting.remove(&pair);
        match self.state.get(&pair) {
            Some(AttachState::Attaching) => {
                self.state.remove(&pair);
            }
            Some(AttachState::Detaching) => {
                self.state.insert(pair.clone(), AttachState::Attached);
                self.node_dirty.insert(node);
            }
            _ => {}
        }
        let e = self
            .backoff
            .entry(pair)
            .or_insert_with(|| (Backoff::kube(), SimTime::ZERO));
        let d = e.0.fail();
        e.1 = ctx.now.after(d);
        ctx.stats.backoffs += 1;
        ctx.event(
            "adc",
            "backoff",
            &pair_key(pv, node),
            &format!("{why}; retry in {}ms", d.as_millis()),
        );
        ctx.after(
            d,
            Event::AttachDetachRetry {
                pv: pv.to_owned(),
                node,
            },
        );
        self.release(ctx, pv, node);
    }

    /// VerifyVolumesAreAttached: one GET per attached pair, unless the last round is
    /// still under way; the next round in a period.
    pub(crate) fn verify(&mut self, ctx: &mut Ctx<'_>) {
        if self.verify_outstanding == 0 {
            let n = self
                .state
                .values()
                .filter(|s| **s == AttachState::Attached)
                .count();
            self.verify_outstanding = n;
            for _ in 0..n {
                ctx.api(ADC_CLIENT, Request::VerifyGet);
            }
        }
        ctx.after(
            Params::secs(ctx.p.adc_verify_period_s),
            Event::AttachDetachVerify,
        );
    }

    /// One VerifyVolumesAreAttached GET answered.
    pub(crate) fn verify_read(&mut self) {
        self.verify_outstanding = self.verify_outstanding.saturating_sub(1);
    }
}
