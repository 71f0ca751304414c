//! The PV controller (binder): marks claims for the external provisioner, binds each
//! claim to the volume provisioned for it, and releases a volume whose claim is gone.
//!
//! It owns its work queue of claim names; it imports the vocabulary and the context, no
//! other module of the simulation.

use std::time::Duration;

use crate::api::{ANN_STORAGE_PROVISIONER, Kind, Store, annotation, pv_phase, pvc_phase};

use super::context::{Ctx, WorkQueue};
use super::vocab::{Component, Event, Request};

/// The binder's state.
#[derive(Debug, Default)]
pub(crate) struct Binder {
    work: WorkQueue,
}

impl Binder {
    /// A claim or a volume changed: its claim is looked at.
    pub(crate) fn watch(&mut self, ctx: &mut Ctx<'_>, store: &Store, kind: Kind, name: &str) {
        let claim = match kind {
            Kind::Pv => store
                .pvs
                .get(name)
                .and_then(|v| v.spec.as_ref()?.claim_ref.as_ref()?.name.clone()),
            _ => Some(name.to_owned()),
        };
        if let Some(c) = claim {
            self.work.dirty.insert(c);
        }
        ctx.kick(&mut self.work.pending, Component::Binder);
    }

    /// The periodic resync: every claim is looked at; the next resync in 15 s.
    pub(crate) fn resync(&mut self, ctx: &mut Ctx<'_>, store: &Store) {
        self.work.dirty.extend(store.pvcs.keys().cloned());
        ctx.kick(&mut self.work.pending, Component::Binder);
        ctx.after(Duration::from_secs(15), Event::BinderResync);
    }

    /// One pass over the claims queued.
    pub(crate) fn reconcile(&mut self, ctx: &mut Ctx<'_>, store: &Store) {
        self.work.pending = false;
        for pvc in std::mem::take(&mut self.work.dirty) {
            let Some(c) = store.pvcs.get(&pvc) else {
                // The claim is gone: release its volume (one provisioned for a claim
                // deleted meanwhile is still Available).
                let pv = store.pvs.iter().find(|(_, v)| {
                    !matches!(pv_phase(v), "Released" | "Failed")
                        && v.spec
                            .as_ref()
                            .and_then(|s| s.claim_ref.as_ref())
                            .and_then(|r| r.name.as_deref())
                            == Some(pvc.as_str())
                });
                if let Some((name, _)) = pv {
                    let pv = name.clone();
                    ctx.api("kcm", Request::ReleasePv { pv });
                }
                continue;
            };
            if pvc_phase(c) == "Bound" {
                continue;
            }
            if annotation(&c.metadata, ANN_STORAGE_PROVISIONER).is_none() {
                ctx.api("kcm", Request::AnnotatePvc { pvc });
                continue;
            }
            let pv = format!("pvc-{}", c.metadata.uid.clone().unwrap_or_default());
            if store.pvs.contains_key(&pv) {
                ctx.api("kcm", Request::Bind { pvc, pv });
            }
        }
    }
}
