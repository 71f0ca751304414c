//! The kubelet's volume manager, one per node: for each pod bound to the node, waits
//! for its volumes to be reported in use and attached (VerifyControllerAttachedVolume,
//! which copies the volume's device path from the node's volumesAttached once and keeps
//! it while a pod on the node needs the volume), waits for attach (one GET of the
//! VolumeAttachment: with `waitforattach_uses_devicepath` the one that device path
//! names, as 1.11 and 1.12 did), stages each volume once
//! (NodeStage) and publishes it per pod (NodePublish); when the pod goes, unpublishes,
//! unstages what no pod needs, and removes the pod. Its node status loop reports
//! volumesInUse.
//!
//! It owns its records of pods and volumes (what is staged, published, maybe mounted,
//! back-offs); it imports the vocabulary, the context and the object readers, no other
//! module of the simulation.

use std::collections::{BTreeMap, BTreeSet};

use rand_chacha::ChaCha8Rng;

use crate::api::{
    Kind, Store, deleting, node_attached, node_in_use, pod_node, pod_pvcs, pvc_volume,
};
use crate::authz::forbidden;
use crate::csi::CsiCall;
use crate::naming::node_name;
use crate::params::Params;
use crate::time::{Backoff, SimTime};

use super::context::{Ctx, Finished};
use super::objects::{volume_context, volume_handle};
use super::vocab::{
    AfterCall, AttachmentAnswer, Component, Event, Request, VaPurpose, kubelet_client, node_index,
    staging_path, target_path, va_name,
};

/// The kubelet's record of a pod bound to its node.
#[derive(Debug, Default)]
struct PodRecord {
    uid: String,
    /// (claim, PV) of each volume.
    pvs: Vec<(String, String)>,
    deleting: bool,
    published: BTreeSet<String>,
    /// Volumes whose NodePublish failed with a non-final code: maybe published, so
    /// unpublished before the pod goes (the kubelet's uncertain mount state).
    uncertain: BTreeSet<String>,
    running: bool,
    removing: bool,
}

/// The kubelet's record of a volume on its node.
#[derive(Debug)]
struct VolumeRecord {
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
    /// The device path VerifyControllerAttachedVolume copied from the node's
    /// volumesAttached entry: never read again while the record lives.
    device_path: Option<String>,
    /// The last failure of an operation on the volume (for the report; back-end
    /// messages stay out of the event log).
    last_error: Option<String>,
    /// The handle the volume was staged with: the kubelet unmounts from its own record
    /// of the mount, even once the PV is gone (without attach, nothing keeps a PV from
    /// being deleted while a node still has the volume staged).
    handle: Option<String>,
}

impl VolumeRecord {
    fn new(pvc: String) -> Self {
        Self {
            pvc,
            busy: false,
            staged: false,
            uncertain: false,
            backoff: Backoff::kube(),
            retry_at: SimTime::ZERO,
            unmount_backoff: Backoff::kube(),
            unmount_retry_at: SimTime::ZERO,
            device_path: None,
            last_error: None,
            handle: None,
        }
    }
}

/// The kubelet of one node.
#[derive(Debug)]
pub(crate) struct Kubelet {
    node: usize,
    client: String,
    pods: BTreeMap<String, PodRecord>,
    vols: BTreeMap<String, VolumeRecord>,
    pending: bool,
}

impl Kubelet {
    /// The kubelet of node i.
    pub(crate) fn new(node: usize) -> Self {
        Self {
            node,
            client: kubelet_client(node),
            pods: BTreeMap::new(),
            vols: BTreeMap::new(),
            pending: false,
        }
    }

    fn kick(&mut self, ctx: &mut Ctx<'_>) {
        ctx.kick(&mut self.pending, Component::Kubelet(self.node));
    }

    /// A pod or its node changed.
    pub(crate) fn watch(&mut self, ctx: &mut Ctx<'_>, store: &Store, kind: Kind, name: &str) {
        if kind == Kind::Pod {
            self.pod_changed(store, name);
        }
        self.kick(ctx);
    }

    fn pod_changed(&mut self, store: &Store, pod: &str) {
        let mine = store
            .pods
            .get(pod)
            .filter(|p| pod_node(p).and_then(node_index) == Some(self.node));
        let Some(p) = mine else {
            // Removed (by us, once cleaned up).
            self.pods.remove(pod);
            return;
        };
        let pvs: Vec<(String, String)> = pod_pvcs(p)
            .into_iter()
            .filter_map(|c| {
                let pv = store.pvcs.get(&c).and_then(|x| pvc_volume(x))?.to_owned();
                Some((c, pv))
            })
            .collect();
        let record = self.pods.entry(pod.to_owned()).or_default();
        record.uid = p.metadata.uid.clone().unwrap_or_default();
        record.pvs = pvs;
        record.deleting = deleting(&p.metadata);
    }

    /// The pods not being deleted that use `pv`.
    fn users(&self, pv: &str) -> Vec<String> {
        self.pods
            .iter()
            .filter(|(_, r)| !r.deleting && r.pvs.iter().any(|(_, v)| v == pv))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// One pass of the reconciler.
    pub(crate) fn reconcile(&mut self, ctx: &mut Ctx<'_>, store: &Store) {
        self.pending = false;
        // New volumes of new pods.
        let mut wanted: Vec<(String, String)> = Vec::new();
        for r in self.pods.values() {
            if !r.deleting {
                wanted.extend(r.pvs.iter().cloned());
            }
        }
        for (pvc, pv) in wanted {
            self.vols
                .entry(pv)
                .or_insert_with(|| VolumeRecord::new(pvc));
        }
        self.unmount_deleting_pods(ctx, store);
        self.mount_and_unmount_devices(ctx, store);
    }

    /// Unpublishes for deleting pods; removes pods whose volumes are cleaned up.
    fn unmount_deleting_pods(&mut self, ctx: &mut Ctx<'_>, store: &Store) {
        let pods: Vec<String> = self.pods.keys().cloned().collect();
        for pod in pods {
            let r = &self.pods[&pod];
            if !r.deleting {
                continue;
            }
            let in_flight = r
                .pvs
                .iter()
                .any(|(_, pv)| self.vols.get(pv).is_some_and(|v| v.busy));
            // Uncertain publishes are unpublished too.
            let published: BTreeSet<String> = r.published.union(&r.uncertain).cloned().collect();
            if published.is_empty() {
                if !in_flight && !r.removing {
                    self.pods.get_mut(&pod).expect("present").removing = true;
                    ctx.api(&self.client, Request::RemovePod { pod });
                }
                continue;
            }
            for pv in published {
                let ready = self
                    .vols
                    .get(&pv)
                    .is_some_and(|v| !v.busy && v.unmount_retry_at <= ctx.now);
                if !ready {
                    continue;
                }
                self.set_busy(&pv);
                let uid = self.pods[&pod].uid.clone();
                let volume_id = self.mounted_handle(store, &pv);
                ctx.csi(
                    &self.client,
                    CsiCall::NodeUnpublish {
                        node: self.node,
                        volume_id,
                        target: target_path(&uid, &pv),
                    },
                    AfterCall::Unpublished {
                        node: self.node,
                        pv: pv.clone(),
                        pod: pod.clone(),
                    },
                    &format!("{pod}/{pv}"),
                );
            }
        }
    }

    /// Mounts (waits for attach, stages, publishes) and unmounts devices no pod needs,
    /// one operation per volume at a time.
    fn mount_and_unmount_devices(&mut self, ctx: &mut Ctx<'_>, store: &Store) {
        let node = store.nodes.get(&node_name(self.node));
        let in_use: BTreeSet<String> = node
            .map(node_in_use)
            .unwrap_or_default()
            .into_iter()
            .collect();
        let attached: BTreeMap<String, String> = node
            .map(node_attached)
            .unwrap_or_default()
            .into_iter()
            .collect();
        let vols: Vec<String> = self.vols.keys().cloned().collect();
        for pv in vols {
            let v = &self.vols[&pv];
            if v.busy {
                continue;
            }
            let (staged, uncertain) = (v.staged, v.uncertain);
            let users = self.users(&pv);
            let waiting = if users.is_empty() {
                v.unmount_retry_at
            } else {
                v.retry_at
            };
            if waiting > ctx.now {
                continue;
            }
            if !users.is_empty() {
                if self.vols[&pv].device_path.is_none() {
                    let entry = attached.get(&pv).map(String::as_str);
                    self.verify_attached(ctx, &pv, in_use.contains(&pv), entry);
                } else {
                    self.mount(ctx, store, &pv, staged, &users);
                }
                continue;
            }
            let published_somewhere = self
                .pods
                .values()
                .any(|r| r.published.contains(&pv) || r.uncertain.contains(&pv));
            if published_somewhere {
                continue;
            }
            if staged || uncertain {
                self.set_busy(&pv);
                let volume_id = self.mounted_handle(store, &pv);
                ctx.csi(
                    &self.client,
                    CsiCall::NodeUnstage {
                        node: self.node,
                        volume_id,
                        staging: staging_path(&pv),
                    },
                    AfterCall::Unstaged {
                        node: self.node,
                        pv: pv.clone(),
                    },
                    &pv,
                );
            } else {
                self.vols.remove(&pv);
            }
        }
    }

    /// VerifyControllerAttachedVolume: the volume must be reported in use and listed in
    /// the node's volumesAttached (`entry`, its device path); the device path is kept.
    /// Failures back off like every operation on the volume.
    fn verify_attached(&mut self, ctx: &mut Ctx<'_>, pv: &str, in_use: bool, entry: Option<&str>) {
        let path = match (in_use, entry) {
            (false, _) => {
                let why = "Volume has not been added to the list of VolumesInUse in the node's volume status";
                return self.op_failed(ctx, pv, why, false);
            }
            (true, None) => {
                let why = "Volume not attached according to node status";
                return self.op_failed(ctx, pv, why, false);
            }
            (true, Some(path)) => path.to_owned(),
        };
        let own = va_name(pv, self.node);
        let foreign = ctx.p.attach_required && path != own;
        if foreign {
            ctx.stats.foreign_device_paths += 1;
        }
        let whose = if foreign { " (another node's)" } else { "" };
        ctx.event(
            &self.client,
            "verify-attached",
            pv,
            &format!("devicePath {path}{whose}"),
        );
        if let Some(v) = self.vols.get_mut(pv) {
            v.device_path = Some(path);
        }
        self.op_ok(ctx, pv);
    }

    /// The VolumeAttachment WaitForAttach asks for: the one the kept device path names
    /// (1.11/1.12), or the node's own.
    fn wait_for_attach_name(&self, pv: &str) -> String {
        let kept = self.vols.get(pv).and_then(|v| v.device_path.clone());
        match kept {
            Some(path) => path,
            None => va_name(pv, self.node),
        }
    }

    /// The next mount step of `pv` for its `users`: staging (after waiting for attach),
    /// or publishing for a user not published yet.
    fn mount(
        &mut self,
        ctx: &mut Ctx<'_>,
        store: &Store,
        pv: &str,
        staged: bool,
        users: &[String],
    ) {
        if !staged {
            self.set_busy(pv);
            if ctx.p.attach_required {
                let va = if ctx.p.waitforattach_uses_devicepath {
                    self.wait_for_attach_name(pv)
                } else {
                    va_name(pv, self.node)
                };
                self.get_va(ctx, pv, va, VaPurpose::Wait);
            } else {
                self.get_secret(ctx, pv);
            }
        } else if let Some(pod) = users
            .iter()
            .find(|p| !self.pods[*p].published.contains(pv))
            .cloned()
        {
            self.set_busy(pv);
            if ctx.p.attach_required {
                // SetUp names the VolumeAttachment after its own node.
                let va = va_name(pv, self.node);
                self.get_va(ctx, pv, va, VaPurpose::SetUp(pod));
            } else {
                self.node_publish(ctx, store, pv, &pod);
            }
        }
    }

    fn set_busy(&mut self, pv: &str) {
        if let Some(v) = self.vols.get_mut(pv) {
            v.busy = true;
        }
    }

    fn op_ok(&mut self, ctx: &mut Ctx<'_>, pv: &str) {
        if let Some(v) = self.vols.get_mut(pv) {
            v.busy = false;
            v.backoff.reset();
            v.unmount_backoff.reset();
            v.last_error = None;
        }
        self.kick(ctx);
    }

    /// A failed operation on a volume: a mount-side one (waiting for attach, MountDevice,
    /// SetUp) or, with `unmount`, an unmount-side one; each side backs off on its own.
    fn op_failed(&mut self, ctx: &mut Ctx<'_>, pv: &str, why: &str, unmount: bool) {
        let Some(v) = self.vols.get_mut(pv) else {
            return;
        };
        v.busy = false;
        if v.last_error.is_none() {
            v.last_error = Some(why.to_owned());
        }
        let d = if unmount {
            let d = v.unmount_backoff.fail();
            v.unmount_retry_at = ctx.now.after(d);
            d
        } else {
            let d = v.backoff.fail();
            v.retry_at = ctx.now.after(d);
            d
        };
        ctx.stats.backoffs += 1;
        if d == Backoff::KUBE_MAX {
            ctx.stats.backoffs_at_cap += 1;
        }
        ctx.event(
            &self.client,
            "backoff",
            pv,
            &format!("{why}; no retries permitted for {}ms", d.as_millis()),
        );
        ctx.after(d, Event::Process(Component::Kubelet(self.node)));
        self.pending = true;
    }

    /// GETs the VolumeAttachment `va` of `pv`.
    fn get_va(&mut self, ctx: &mut Ctx<'_>, pv: &str, va: String, purpose: VaPurpose) {
        ctx.api(
            &self.client,
            Request::KubeletGetVa {
                node: self.node,
                pv: pv.to_owned(),
                va,
                purpose,
            },
        );
    }

    fn get_secret(&mut self, ctx: &mut Ctx<'_>, pv: &str) {
        let Some(pvc) = self.vols.get(pv).map(|v| v.pvc.clone()) else {
            return;
        };
        ctx.api(
            &self.client,
            Request::KubeletGetSecret {
                node: self.node,
                pv: pv.to_owned(),
                pvc,
            },
        );
    }

    /// The volume lost its pods while a GET was under way: nothing to mount.
    fn unused(&mut self, ctx: &mut Ctx<'_>, pv: &str) -> bool {
        if !self.users(pv).is_empty() {
            return false;
        }
        if let Some(v) = self.vols.get_mut(pv) {
            v.busy = false;
        }
        self.kick(ctx);
        true
    }

    /// Its GET of the VolumeAttachment of `pv` answered.
    pub(crate) fn got_attachment(
        &mut self,
        ctx: &mut Ctx<'_>,
        store: &Store,
        pv: String,
        va: &str,
        purpose: VaPurpose,
        answer: AttachmentAnswer,
    ) {
        if !answer.allowed {
            *ctx.stats
                .forbidden
                .entry("volumeattachments".into())
                .or_insert(0) += 1;
            let msg = forbidden(&node_name(self.node), "volumeattachments.storage.k8s.io");
            ctx.event(&self.client, "get-va", va, &format!("403 {msg}"));
        }
        if self.unused(ctx, &pv) {
            return;
        }
        match purpose {
            VaPurpose::Wait => {
                if answer.attached {
                    self.get_secret(ctx, &pv);
                    return;
                }
                // One GET, then a watch a node may not open: the operation fails and
                // backs off.
                let why = if answer.allowed {
                    format!("WaitForAttach: {va} not attached, and a node may not watch it")
                } else {
                    format!("WaitForAttach: GET of VolumeAttachment {va} forbidden")
                };
                self.op_failed(ctx, &pv, &why, false);
            }
            VaPurpose::SetUp(pod) => {
                if answer.exists {
                    self.node_publish(ctx, store, &pv, &pod);
                } else {
                    let why = "SetUp failed while getting volume attachment";
                    self.op_failed(ctx, &pv, why, false);
                }
            }
        }
    }

    /// Its GET of the node-stage secret of `pv` answered: NodeStage, if allowed.
    pub(crate) fn got_secret(
        &mut self,
        ctx: &mut Ctx<'_>,
        store: &Store,
        pv: String,
        allowed: bool,
    ) {
        if !self.vols.contains_key(&pv) || self.unused(ctx, &pv) {
            return;
        }
        if !allowed {
            *ctx.stats.forbidden.entry("secrets".into()).or_insert(0) += 1;
            let msg = forbidden(&node_name(self.node), "secrets");
            ctx.event(&self.client, "get-secret", &pv, &format!("403 {msg}"));
            let why = "MountDevice failed to get the node-stage secret";
            self.op_failed(ctx, &pv, why, false);
            return;
        }
        let volume_id = volume_handle(store, &pv).unwrap_or_default();
        if let Some(v) = self.vols.get_mut(&pv) {
            v.handle = Some(volume_id.clone());
        }
        ctx.csi(
            &self.client,
            CsiCall::NodeStage {
                node: self.node,
                volume_id,
                context: volume_context(store, &pv),
                staging: staging_path(&pv),
            },
            AfterCall::Staged {
                node: self.node,
                pv: pv.clone(),
            },
            &pv,
        );
    }

    /// The handle this node mounted `pv` with (the PV's, if it never staged it).
    fn mounted_handle(&self, store: &Store, pv: &str) -> String {
        self.vols
            .get(pv)
            .and_then(|v| v.handle.clone())
            .or_else(|| volume_handle(store, pv))
            .unwrap_or_default()
    }

    fn node_publish(&mut self, ctx: &mut Ctx<'_>, store: &Store, pv: &str, pod: &str) {
        let uid = self.pods[pod].uid.clone();
        ctx.csi(
            &self.client,
            CsiCall::NodePublish {
                node: self.node,
                volume_id: volume_handle(store, pv).unwrap_or_default(),
                context: volume_context(store, pv),
                staging: staging_path(pv),
                target: target_path(&uid, pv),
            },
            AfterCall::Published {
                node: self.node,
                pv: pv.to_owned(),
                pod: pod.to_owned(),
            },
            &format!("{pod}/{pv}"),
        );
    }

    /// The node status loop: volumesInUse written when it changed; the next round in a
    /// period.
    pub(crate) fn node_status(&mut self, ctx: &mut Ctx<'_>, store: &Store) {
        let want: Vec<String> = self
            .vols
            .iter()
            .filter(|(pv, v)| {
                v.staged
                    || v.uncertain
                    || self.pods.values().any(|r| {
                        r.published.contains(*pv)
                            || r.uncertain.contains(*pv)
                            || (!r.deleting && r.pvs.iter().any(|(_, x)| x == *pv))
                    })
            })
            .map(|(pv, _)| pv.clone())
            .collect();
        let have = store
            .nodes
            .get(&node_name(self.node))
            .map(node_in_use)
            .unwrap_or_default();
        if want != have {
            let request = Request::NodeInUse {
                node: self.node,
                vols: want,
            };
            ctx.api(&self.client, request);
        }
        ctx.after(
            Params::secs(ctx.p.node_status_period_s),
            Event::NodeStatus(self.node),
        );
    }

    /// A node call ended; `pods_rng` draws container start times.
    pub(crate) fn call_done(&mut self, ctx: &mut Ctx<'_>, pods_rng: &mut ChaCha8Rng, f: Finished) {
        let ok = f.out.is_ok();
        match f.then {
            AfterCall::Staged { pv, .. } => {
                if ok {
                    ctx.stats.sessions += 1;
                    ctx.stats.peak_sessions = ctx.stats.peak_sessions.max(ctx.stats.sessions);
                    if let Some(v) = self.vols.get_mut(&pv) {
                        v.staged = true;
                        v.uncertain = false;
                    }
                    self.op_ok(ctx, &pv);
                } else {
                    if let Some(v) = self.vols.get_mut(&pv) {
                        v.uncertain |= f.uncertain;
                        v.last_error = f.error;
                    }
                    self.op_failed(ctx, &pv, "MountDevice failed", false);
                }
            }
            AfterCall::Published { pv, pod, .. } => {
                if ok {
                    self.published(ctx, pods_rng, &pv, pod);
                } else {
                    if f.uncertain
                        && let Some(r) = self.pods.get_mut(&pod)
                    {
                        r.uncertain.insert(pv.clone());
                    }
                    self.record_error(&pv, f.error);
                    self.op_failed(ctx, &pv, "SetUp failed", false);
                }
            }
            AfterCall::Unpublished { pv, pod, .. } => {
                if ok {
                    if let Some(r) = self.pods.get_mut(&pod) {
                        r.published.remove(&pv);
                        r.uncertain.remove(&pv);
                    }
                    self.op_ok(ctx, &pv);
                } else {
                    self.record_error(&pv, f.error);
                    self.op_failed(ctx, &pv, "UnmountVolume failed", true);
                }
            }
            AfterCall::Unstaged { pv, .. } => {
                if ok {
                    if let Some(v) = self.vols.get_mut(&pv) {
                        // An uncertain stage never counted as a session.
                        if v.staged {
                            ctx.stats.sessions -= 1;
                        }
                        v.staged = false;
                        v.uncertain = false;
                    }
                    self.op_ok(ctx, &pv);
                } else {
                    self.record_error(&pv, f.error);
                    self.op_failed(ctx, &pv, "UnmountDevice failed", true);
                }
            }
            _ => {}
        }
    }

    fn record_error(&mut self, pv: &str, error: Option<String>) {
        if let Some(v) = self.vols.get_mut(pv) {
            v.last_error = error;
        }
    }

    /// `pv` is published for `pod`: its containers start once every volume is.
    fn published(&mut self, ctx: &mut Ctx<'_>, pods_rng: &mut ChaCha8Rng, pv: &str, pod: String) {
        if let Some(r) = self.pods.get_mut(&pod) {
            r.uncertain.remove(pv);
            r.published.insert(pv.to_owned());
            if r.published.len() == r.pvs.len() && !r.running && !r.deleting {
                r.running = true;
                let d = ctx.p.container_start.sample(pods_rng);
                ctx.after(
                    d,
                    Event::ContainerStarted {
                        node: self.node,
                        pod,
                    },
                );
            }
        }
        self.op_ok(ctx, pv);
    }

    /// Whether the node holds no mount that may exist (staged or maybe staged).
    pub(crate) fn holds_nothing(&self) -> bool {
        self.vols.values().all(|v| !v.staged && !v.uncertain)
    }

    /// The PVs of `pod`.
    pub(crate) fn pod_volumes(&self, pod: &str) -> Vec<String> {
        self.pods
            .get(pod)
            .map(|r| r.pvs.iter().map(|(_, pv)| pv.clone()).collect())
            .unwrap_or_default()
    }

    /// The last error of the first of `pod`'s volumes that has one, for the report.
    pub(crate) fn pod_error(&self, pod: &str) -> Option<String> {
        self.pods.get(pod)?.pvs.iter().find_map(|(_, pv)| {
            let v = self.vols.get(pv)?;
            v.last_error.as_ref().map(|e| format!("{pv}: {e}"))
        })
    }
}
