//! external-provisioner: CreateVolume for each claim marked for the driver, a PV for
//! each volume made; DeleteVolume for each released volume it provisioned, once no
//! VolumeAttachment names it.
//!
//! It owns its work queue, back-offs, the claims whose volume may be in the making, and
//! every handle CreateVolume returned; it imports the vocabulary, the context and the
//! object builders, no other module of the simulation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::api::{
    ANN_PROVISIONED_BY, ANN_STORAGE_PROVISIONER, Kind, Store, annotation, deleting, pv_phase,
    pvc_phase,
};
use crate::csi::{CsiCall, CsiReply, DRIVER_NAME};
use crate::time::{Backoff, SimTime};

use super::context::{Ctx, Finished, WorkQueue};
use super::objects::{provisioned_pv, volume_handle};
use super::vocab::{AfterCall, Component, Event, Request, va_volume};

/// The provisioner's state. Keys are `pvc/NAME` and `pv/NAME`.
#[derive(Debug, Default)]
pub(crate) struct Provisioner {
    work: WorkQueue,
    busy: BTreeSet<String>,
    backoff: BTreeMap<String, (Backoff, SimTime)>,
    /// Claims whose last CreateVolume ended with a non-final code, and their PV's name:
    /// the volume may exist, so provisioning goes on until a final answer even if the
    /// claim is deleted meanwhile (external-provisioner's `claimsInProgress`); a volume
    /// made for a deleted claim gets a PV that the PV controller releases.
    pub(crate) in_progress: BTreeMap<String, String>,
    /// The last CreateVolume error of each claim not yet provisioned.
    last_error: BTreeMap<String, String>,
    /// Every volume handle CreateVolume returned, by claim (more than one is a
    /// duplicate).
    pub(crate) handles: BTreeMap<String, BTreeSet<String>>,
}

impl Provisioner {
    /// A claim, a volume or a VolumeAttachment changed.
    pub(crate) fn watch(&mut self, ctx: &mut Ctx<'_>, kind: Kind, name: &str) {
        let key = match kind {
            Kind::Pv => format!("pv/{name}"),
            // A VolumeAttachment going may unblock its PV's deletion.
            Kind::Va => format!("pv/{}", va_volume(name)),
            _ => format!("pvc/{name}"),
        };
        self.retry(ctx, key);
    }

    /// `key` is looked at again.
    pub(crate) fn retry(&mut self, ctx: &mut Ctx<'_>, key: String) {
        self.work.dirty.insert(key);
        ctx.kick(&mut self.work.pending, Component::Provisioner);
    }

    /// One pass over the keys queued.
    pub(crate) fn reconcile(&mut self, ctx: &mut Ctx<'_>, store: &Store) {
        self.work.pending = false;
        for key in std::mem::take(&mut self.work.dirty) {
            if self.busy.contains(&key) {
                continue;
            }
            if let Some((_, until)) = self.backoff.get(&key)
                && *until > ctx.now
            {
                continue;
            }
            if let Some(pvc) = key.strip_prefix("pvc/") {
                self.provision(ctx, store, pvc);
            } else if let Some(pv) = key.strip_prefix("pv/") {
                self.delete(ctx, store, pv);
            }
        }
    }

    fn create_volume(&mut self, ctx: &mut Ctx<'_>, pvc: &str, pv: String) {
        self.busy.insert(format!("pvc/{pvc}"));
        ctx.csi(
            "provisioner",
            CsiCall::CreateVolume { name: pv.clone() },
            AfterCall::Provisioned {
                pvc: pvc.to_owned(),
                pv,
            },
            pvc,
        );
    }

    fn provision(&mut self, ctx: &mut Ctx<'_>, store: &Store, pvc: &str) {
        let Some(c) = store.pvcs.get(pvc) else {
            // Deleted while its volume may be in the making: ask again until the answer
            // is final.
            if let Some(pv) = self.in_progress.get(pvc).cloned()
                && !store.pvs.contains_key(&pv)
            {
                self.create_volume(ctx, pvc, pv);
            }
            return;
        };
        if pvc_phase(c) == "Bound"
            || annotation(&c.metadata, ANN_STORAGE_PROVISIONER) != Some(DRIVER_NAME)
            || deleting(&c.metadata)
        {
            return;
        }
        let pv = format!("pvc-{}", c.metadata.uid.clone().unwrap_or_default());
        if store.pvs.contains_key(&pv) {
            return;
        }
        self.create_volume(ctx, pvc, pv);
    }

    fn delete(&mut self, ctx: &mut Ctx<'_>, store: &Store, pv: &str) {
        let Some(v) = store.pvs.get(pv) else {
            return;
        };
        if pv_phase(v) != "Released"
            || annotation(&v.metadata, ANN_PROVISIONED_BY) != Some(DRIVER_NAME)
        {
            return;
        }
        // The external-attacher's finalizer on the PV: no deletion while a
        // VolumeAttachment refers to it.
        if store
            .vas
            .values()
            .any(|va| va.spec.source.persistent_volume_name.as_deref() == Some(pv))
        {
            return;
        }
        let Some(volume_id) = volume_handle(store, pv) else {
            return;
        };
        self.busy.insert(format!("pv/{pv}"));
        ctx.csi(
            "provisioner",
            CsiCall::DeleteVolume { volume_id },
            AfterCall::Deleted { pv: pv.to_owned() },
            pv,
        );
    }

    /// A CreateVolume or DeleteVolume call ended.
    pub(crate) fn call_done(&mut self, ctx: &mut Ctx<'_>, store: &Store, f: Finished) {
        match f.then {
            AfterCall::Provisioned { pvc, pv } => match f.out {
                Ok(CsiReply::Created { volume_id, context }) => {
                    self.handles
                        .entry(pvc.clone())
                        .or_default()
                        .insert(volume_id.clone());
                    self.in_progress.remove(&pvc);
                    self.last_error.remove(&pvc);
                    let pv = provisioned_pv(store, &pvc, &pv, volume_id, context);
                    ctx.api("provisioner", Request::CreatePv(Box::new(pv)));
                    self.busy.remove(&format!("pvc/{pvc}"));
                    self.backoff.remove(&format!("pvc/{pvc}"));
                }
                _ => {
                    if f.uncertain {
                        self.in_progress.insert(pvc.clone(), pv);
                    } else {
                        self.in_progress.remove(&pvc);
                    }
                    self.last_error
                        .insert(pvc.clone(), f.error.unwrap_or_default());
                    self.fail(ctx, format!("pvc/{pvc}"));
                }
            },
            AfterCall::Deleted { pv } => {
                if f.out.is_ok() {
                    ctx.api("provisioner", Request::DeletePv { pv: pv.clone() });
                    self.busy.remove(&format!("pv/{pv}"));
                    self.backoff.remove(&format!("pv/{pv}"));
                } else {
                    self.fail(ctx, format!("pv/{pv}"));
                }
            }
            _ => {}
        }
    }

    fn fail(&mut self, ctx: &mut Ctx<'_>, key: String) {
        self.busy.remove(&key);
        // external-provisioner 1.0+: --retry-interval-start 1s doubling to 5 min.
        let e = self.backoff.entry(key.clone()).or_insert_with(|| {
            (
                Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
                SimTime::ZERO,
            )
        });
        let d = e.0.fail();
        e.1 = ctx.now.after(d);
        ctx.stats.backoffs += 1;
        ctx.event(
            "provisioner",
            "backoff",
            &key,
            &format!("{}ms", d.as_millis()),
        );
        ctx.after(d, Event::ProvisionerRetry { key });
    }

    /// A claim not bound yet, for the report: its last error, or whether CreateVolume is
    /// under way.
    pub(crate) fn pending_outcome(&self, pvc: &str) -> String {
        if let Some(e) = self.last_error.get(pvc) {
            format!("Pending: {e}")
        } else if self.busy.contains(&format!("pvc/{pvc}")) {
            "Pending: CreateVolume under way".to_owned()
        } else {
            "Pending".to_owned()
        }
    }
}
