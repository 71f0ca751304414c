//! external-attacher: for each VolumeAttachment, its finalizer, ControllerPublish and
//! the attached status; for each one being deleted, ControllerUnpublish and the
//! finalizer off. Ten workers, a rate-limited queue. With `attacher_trivial` (v0.3/v0.4
//! for a driver without PUBLISH_UNPUBLISH_VOLUME) it only sets `attached`.
//!
//! It owns its queue, workers and back-offs; it imports the vocabulary, the context and
//! the object readers, no other module of the simulation.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::api::{Store, deleting};
use crate::csi::CsiCall;
use crate::time::{Backoff, SimTime};

use super::context::{Ctx, Finished};
use super::objects::volume_handle;
use super::vocab::{AfterCall, Component, Event, Request, node_index};

const WORKERS: usize = 10;

/// The attacher's state.
#[derive(Debug, Default)]
pub(crate) struct Attacher {
    queue: VecDeque<String>,
    queued: BTreeSet<String>,
    busy: BTreeSet<String>,
    backoff: BTreeMap<String, (Backoff, SimTime)>,
    pending: bool,
}

/// The PV and node index a VolumeAttachment names.
fn volume_and_node(store: &Store, va: &str) -> Option<(String, usize)> {
    let v = store.vas.get(va)?;
    Some((
        v.spec
            .source
            .persistent_volume_name
            .clone()
            .unwrap_or_default(),
        node_index(&v.spec.node_name).unwrap_or(0),
    ))
}

impl Attacher {
    /// `va` changed (or its back-off is over): queued unless it is or being worked on.
    pub(crate) fn enqueue(&mut self, ctx: &mut Ctx<'_>, va: &str) {
        if !self.queued.contains(va) && !self.busy.contains(va) {
            self.queued.insert(va.to_owned());
            self.queue.push_back(va.to_owned());
        }
        ctx.kick(&mut self.pending, Component::Attacher);
    }

    /// The workers take what the queue holds.
    pub(crate) fn reconcile(&mut self, ctx: &mut Ctx<'_>, store: &Store) {
        self.pending = false;
        while self.busy.len() < WORKERS {
            let Some(va) = self.queue.pop_front() else {
                break;
            };
            self.queued.remove(&va);
            if let Some((_, until)) = self.backoff.get(&va)
                && *until > ctx.now
            {
                continue;
            }
            let Some(v) = store.vas.get(&va) else {
                continue;
            };
            let has_finalizer = v
                .metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| !f.is_empty());
            let attached = v.status.as_ref().is_some_and(|s| s.attached);
            if deleting(&v.metadata) {
                if has_finalizer {
                    let (pv, node) = volume_and_node(store, &va).unwrap_or_default();
                    self.busy.insert(va.clone());
                    let volume_id = volume_handle(store, &pv).unwrap_or_default();
                    ctx.csi(
                        "attacher",
                        CsiCall::ControllerUnpublish { volume_id, node },
                        AfterCall::ControllerUnpublished { va },
                        &pv,
                    );
                }
            } else if !attached {
                self.busy.insert(va.clone());
                if ctx.p.attacher_trivial {
                    // One status update; the driver has no ControllerPublish.
                    let request = Request::VaStatus { va, error: None };
                    ctx.api("attacher", request);
                } else {
                    ctx.api("attacher", Request::VaFinalizer { va });
                }
            }
        }
    }

    /// Its finalizer is on `va`: ControllerPublish.
    pub(crate) fn finalizer_added(&mut self, ctx: &mut Ctx<'_>, store: &Store, va: String) {
        let (pv, node) = volume_and_node(store, &va).unwrap_or_default();
        let volume_id = volume_handle(store, &pv).unwrap_or_default();
        ctx.csi(
            "attacher",
            CsiCall::ControllerPublish { volume_id, node },
            AfterCall::ControllerPublished { va },
            &pv,
        );
    }

    /// A ControllerPublish or ControllerUnpublish call ended.
    pub(crate) fn call_done(&mut self, ctx: &mut Ctx<'_>, f: Finished) {
        match f.then {
            AfterCall::ControllerPublished { va } => {
                let error = f.out.err().map(|(c, m)| format!("{c:?}: {m}"));
                ctx.api("attacher", Request::VaStatus { va, error });
            }
            AfterCall::ControllerUnpublished { va } => {
                if f.out.is_ok() {
                    ctx.api("attacher", Request::VaUnfinalize { va });
                } else {
                    self.done(ctx, &va, false);
                }
            }
            _ => {}
        }
    }

    /// The work on `va` ended, well or not (then it backs off).
    pub(crate) fn done(&mut self, ctx: &mut Ctx<'_>, va: &str, ok: bool) {
        self.busy.remove(va);
        if ok {
            self.backoff.remove(va);
        } else {
            // DefaultControllerRateLimiter: 5 ms doubling to 1000 s.
            let e = self.backoff.entry(va.to_owned()).or_insert_with(|| {
                (
                    Backoff::new(Duration::from_millis(5), Duration::from_secs(1000)),
                    SimTime::ZERO,
                )
            });
            let d = e.0.fail();
            e.1 = ctx.now.after(d);
            ctx.after(d, Event::AttacherRetry { va: va.to_owned() });
        }
        ctx.kick(&mut self.pending, Component::Attacher);
    }
}
