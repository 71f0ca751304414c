//! The simulated API server: the store of API objects, the writes each request makes,
//! the watch notifications they fan out, and the node authorizer's graph hook (the
//! graph's writes, and its decisions on the kubelets' reads).
//!
//! It answers a request with [`Reply`] messages for the world to deliver; it never calls
//! a controller. It imports the vocabulary and the context, no controller module.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaimStatus, PersistentVolumeStatus, PodStatus};
use k8s_openapi::api::storage::v1::{
    VolumeAttachment, VolumeAttachmentSource, VolumeAttachmentSpec, VolumeAttachmentStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use rand_chacha::ChaCha8Rng;

use crate::api::{
    ANN_BIND_COMPLETED, ANN_STORAGE_PROVISIONER, Kind, Store, annotate, deleting, meta, pod_node,
    pod_pvcs, pod_running,
};
use crate::authz::{Graph, GraphOp};
use crate::csi::DRIVER_NAME;
use crate::naming::node_name;
use crate::time::SimTime;

use super::context::Ctx;
use super::vocab::{
    AttachmentAnswer, Component, DEPLOYMENT, Event, Reply, Request, node_index, va_name,
};

/// The API server's state.
#[derive(Debug)]
pub(crate) struct ApiServer {
    /// The API objects.
    pub(crate) store: Store,
    /// When each pod was created.
    pub(crate) pod_created: BTreeMap<String, SimTime>,
    rng_watch: ChaCha8Rng,
}

/// Picks an object's metadata out of the store.
type PickMeta = for<'a> fn(&'a mut Store, &str) -> Option<&'a mut ObjectMeta>;

/// Stamps the next resource version on object `name`'s metadata.
fn restamp(store: &mut Store, name: &str, pick: PickMeta) {
    let Some(m) = pick(store, name) else {
        return;
    };
    let mut taken = std::mem::take(m);
    store.stamp(&mut taken);
    if let Some(m) = pick(store, name) {
        *m = taken;
    }
}

fn pod_meta<'a>(s: &'a mut Store, n: &str) -> Option<&'a mut ObjectMeta> {
    s.pods.get_mut(n).map(|p| &mut p.metadata)
}

fn va_meta<'a>(s: &'a mut Store, n: &str) -> Option<&'a mut ObjectMeta> {
    s.vas.get_mut(n).map(|v| &mut v.metadata)
}

fn node_meta<'a>(s: &'a mut Store, n: &str) -> Option<&'a mut ObjectMeta> {
    s.nodes.get_mut(n).map(|v| &mut v.metadata)
}

impl ApiServer {
    /// An empty store; watch and graph latencies drawn from `rng_watch`.
    pub(crate) fn new(rng_watch: ChaCha8Rng) -> Self {
        Self {
            store: Store::default(),
            pod_created: BTreeMap::new(),
            rng_watch,
        }
    }

    /// Tells every component that watches `kind` that object `name` changed (`node`:
    /// the node the object is about, for the kubelets).
    pub(crate) fn notify(
        &mut self,
        ctx: &mut Ctx<'_>,
        kind: Kind,
        name: &str,
        node: Option<usize>,
    ) {
        let to: Vec<Component> = match kind {
            Kind::Pod => {
                let mut v = vec![
                    Component::Scheduler,
                    Component::AttachDetach,
                    Component::ReplicaSets,
                ];
                v.extend(node.map(Component::Kubelet));
                v
            }
            Kind::Pvc | Kind::Pv => vec![Component::Binder, Component::Provisioner],
            Kind::Va => vec![
                Component::AttachDetach,
                Component::Attacher,
                Component::Provisioner,
            ],
            Kind::Node => {
                let mut v = vec![Component::AttachDetach];
                v.extend(node.map(Component::Kubelet));
                v
            }
            Kind::Deployment => vec![Component::ReplicaSets],
        };
        for c in to {
            let d = ctx.p.watch_latency.sample(&mut self.rng_watch);
            ctx.after(
                d,
                Event::Watch {
                    to: c,
                    kind,
                    name: name.to_owned(),
                },
            );
        }
    }

    /// Hands a write to the node authorizer's graph, after its informer's lag.
    fn graph_event(&mut self, ctx: &mut Ctx<'_>, op: GraphOp) {
        if ctx.p.authz.enabled {
            let d = ctx.p.authz.lag.sample(&mut self.rng_watch);
            ctx.after(d, Event::GraphIn(op));
        }
    }

    /// Carries out `request` from `client`; what the client (or the workload) is to be
    /// told goes to `replies`.
    pub(crate) fn apply(
        &mut self,
        ctx: &mut Ctx<'_>,
        graph: &mut Graph,
        client: &str,
        request: Request,
        replies: &mut Vec<Reply>,
    ) {
        match request {
            Request::BindPod { pod, node } => {
                replies.push(Reply::Bound { node });
                self.bind_pod(ctx, client, pod, node);
            }
            Request::CreatePod(p) => {
                replies.push(Reply::PodCreated);
                let mut p = *p;
                let name = p.metadata.name.clone().unwrap_or_default();
                self.store.stamp(&mut p.metadata);
                self.store.pods.insert(name.clone(), p);
                self.pod_created.insert(name.clone(), ctx.now);
                ctx.stats.pods_created += 1;
                ctx.event(client, "create", &name, "Pod");
                self.notify(ctx, Kind::Pod, &name, None);
            }
            Request::DeletePod { pod } => {
                replies.push(Reply::PodDeletionSeen { pod: pod.clone() });
                self.delete_pod(ctx, client, pod, replies);
            }
            Request::RemovePod { pod } => {
                let Some(p) = self.store.pods.remove(&pod) else {
                    return;
                };
                let node = pod_node(&p).and_then(node_index);
                ctx.event(client, "remove", &pod, "Pod");
                self.graph_event(ctx, GraphOp::DelPod { name: pod.clone() });
                self.notify(ctx, Kind::Pod, &pod, node);
            }
            Request::PodRunning { pod } => self.pod_running(ctx, client, pod, replies),
            Request::ScaleRs { replicas } => {
                let name = format!("{DEPLOYMENT}-rs");
                let Some(rs) = self.store.replica_sets.get_mut(&name) else {
                    return;
                };
                rs.spec.replicas = Some(replicas);
                restamp(&mut self.store, &name, |s, n| {
                    s.replica_sets.get_mut(n).map(|r| &mut r.metadata)
                });
                ctx.event(client, "scale", &name, &replicas.to_string());
                self.notify(ctx, Kind::Deployment, &name, None);
            }
            Request::AnnotatePvc { .. }
            | Request::Bind { .. }
            | Request::ReleasePv { .. }
            | Request::CreatePv(_)
            | Request::DeletePv { .. } => self.apply_volume(ctx, client, request),
            Request::CreateVa { .. }
            | Request::DeleteVa { .. }
            | Request::AttachDetachGetVa { .. }
            | Request::VerifyGet
            | Request::VaFinalizer { .. }
            | Request::VaStatus { .. }
            | Request::VaUnfinalize { .. } => {
                self.apply_attachment(ctx, client, request, replies);
            }
            Request::NodeAttached { .. } | Request::NodeInUse { .. } => {
                self.apply_node(ctx, client, request);
            }
            Request::KubeletGetVa {
                node,
                pv,
                va,
                purpose,
            } => {
                // Authorisation runs before storage: a VolumeAttachment that does not
                // exist, or is another node's, is refused alike.
                let allowed = !ctx.p.authz.enabled || graph.may_get_va(&node_name(node), &va);
                let found = self.store.vas.get(&va).filter(|_| allowed);
                let answer = AttachmentAnswer {
                    allowed,
                    exists: found.is_some(),
                    attached: found
                        .and_then(|v| v.status.as_ref())
                        .is_some_and(|s| s.attached),
                };
                replies.push(Reply::GotAttachment {
                    node,
                    pv,
                    va,
                    purpose,
                    answer,
                });
            }
            Request::KubeletGetSecret { node, pv, pvc } => {
                let allowed =
                    !ctx.p.authz.enabled || graph.may_get_secret_via(&node_name(node), &pvc);
                replies.push(Reply::GotSecret { node, pv, allowed });
            }
        }
    }

    fn bind_pod(&mut self, ctx: &mut Ctx<'_>, client: &str, pod: String, node: usize) {
        let Some(p) = self.store.pods.get_mut(&pod) else {
            return;
        };
        if pod_node(p).is_some() {
            return;
        }
        let pvcs = pod_pvcs(p);
        p.spec.get_or_insert_with(Default::default).node_name = Some(node_name(node));
        restamp(&mut self.store, &pod, pod_meta);
        ctx.event(client, "bind", &pod, &node_name(node));
        ctx.stats.scheduled.insert(pod.clone(), ctx.now);
        self.graph_event(
            ctx,
            GraphOp::AddPod {
                name: pod.clone(),
                node: node_name(node),
                pvcs,
            },
        );
        self.notify(ctx, Kind::Pod, &pod, Some(node));
    }

    fn delete_pod(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: &str,
        pod: String,
        replies: &mut Vec<Reply>,
    ) {
        let Some(p) = self.store.pods.get_mut(&pod) else {
            return;
        };
        if deleting(&p.metadata) {
            return;
        }
        p.metadata.deletion_timestamp = Some(time_of(ctx.now));
        let node = pod_node(p).and_then(node_index);
        if node.is_none() {
            self.store.pods.remove(&pod);
            ctx.event(client, "delete", &pod, "unscheduled");
            self.notify(ctx, Kind::Pod, &pod, None);
            return;
        }
        restamp(&mut self.store, &pod, pod_meta);
        ctx.event(client, "delete", &pod, "terminating");
        replies.push(Reply::PodTerminating { pod: pod.clone() });
        self.graph_event(ctx, GraphOp::UpdatePod { name: pod.clone() });
        self.notify(ctx, Kind::Pod, &pod, node);
    }

    fn pod_running(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: &str,
        pod: String,
        replies: &mut Vec<Reply>,
    ) {
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
        restamp(&mut self.store, &pod, pod_meta);
        if let Some(c) = self.pod_created.get(&pod) {
            ctx.stats.startup.push(ctx.now.since(*c));
        }
        if let Some(c) = ctx.stats.scheduled.get(&pod) {
            let d = ctx.now.since(*c);
            ctx.stats.schedule_to_run.push(d);
        }
        ctx.stats.running_at.push(ctx.now);
        ctx.event(client, "running", &pod, "Running");
        replies.push(Reply::PodStarted {
            pod: pod.clone(),
            node,
        });
        self.graph_event(ctx, GraphOp::UpdatePod { name: pod.clone() });
        self.notify(ctx, Kind::Pod, &pod, node);
    }

    /// Claims and volumes.
    fn apply_volume(&mut self, ctx: &mut Ctx<'_>, client: &str, request: Request) {
        match request {
            Request::AnnotatePvc { pvc } => {
                let Some(c) = self.store.pvcs.get_mut(&pvc) else {
                    return;
                };
                annotate(&mut c.metadata, ANN_STORAGE_PROVISIONER, DRIVER_NAME);
                restamp(&mut self.store, &pvc, |s, n| {
                    s.pvcs.get_mut(n).map(|c| &mut c.metadata)
                });
                ctx.event(client, "annotate", &pvc, "storage-provisioner");
                self.notify(ctx, Kind::Pvc, &pvc, None);
            }
            Request::Bind { pvc, pv } => {
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
                ctx.event(client, "bind", &pvc, &pv);
                self.notify(ctx, Kind::Pv, &pv, None);
                self.notify(ctx, Kind::Pvc, &pvc, None);
            }
            Request::ReleasePv { pv } => {
                let Some(mut v) = self.store.pvs.remove(&pv) else {
                    return;
                };
                v.status = Some(PersistentVolumeStatus {
                    phase: Some("Released".into()),
                    ..Default::default()
                });
                self.store.stamp(&mut v.metadata);
                self.store.pvs.insert(pv.clone(), v);
                ctx.event(client, "release", &pv, "Released");
                self.notify(ctx, Kind::Pv, &pv, None);
            }
            Request::CreatePv(v) => {
                let mut v = *v;
                let name = v.metadata.name.clone().unwrap_or_default();
                if self.store.pvs.contains_key(&name) {
                    return;
                }
                self.store.stamp(&mut v.metadata);
                self.store.pvs.insert(name.clone(), v);
                ctx.event(client, "create", &name, "PersistentVolume");
                self.notify(ctx, Kind::Pv, &name, None);
            }
            Request::DeletePv { pv } => {
                if self.store.pvs.remove(&pv).is_none() {
                    return;
                }
                ctx.event(client, "delete", &pv, "PersistentVolume");
                self.notify(ctx, Kind::Pv, &pv, None);
            }
            _ => {}
        }
    }

    /// VolumeAttachments.
    fn apply_attachment(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: &str,
        request: Request,
        replies: &mut Vec<Reply>,
    ) {
        match request {
            Request::CreateVa { pv, node, started } => {
                self.create_va(ctx, client, pv.clone(), node);
                replies.push(Reply::AttachmentWritten {
                    pv,
                    node,
                    detach: false,
                    started,
                });
            }
            Request::DeleteVa { pv, node, started } => {
                let name = va_name(&pv, node);
                replies.push(Reply::AttachmentWritten {
                    pv,
                    node,
                    detach: true,
                    started,
                });
                let Some(va) = self.store.vas.get_mut(&name) else {
                    return;
                };
                if va
                    .metadata
                    .finalizers
                    .as_ref()
                    .is_some_and(|f| !f.is_empty())
                {
                    va.metadata.deletion_timestamp = Some(time_of(ctx.now));
                    restamp(&mut self.store, &name, va_meta);
                    ctx.event(client, "delete", &name, "finalizing");
                } else {
                    self.store.vas.remove(&name);
                    ctx.event(client, "delete", &name, "VolumeAttachment");
                    self.graph_event(ctx, GraphOp::DelVa { name: name.clone() });
                }
                self.notify(ctx, Kind::Va, &name, None);
            }
            Request::AttachDetachGetVa {
                pv,
                node,
                detach,
                started,
            } => replies.push(Reply::AttachmentRead {
                pv,
                node,
                detach,
                started,
            }),
            Request::VerifyGet => replies.push(Reply::VerifyRead),
            Request::VaFinalizer { va } => {
                let Some(v) = self.store.vas.get_mut(&va) else {
                    replies.push(Reply::AttachmentMissing { va });
                    return;
                };
                v.metadata.finalizers = Some(vec![format!("external-attacher/{DRIVER_NAME}")]);
                restamp(&mut self.store, &va, va_meta);
                replies.push(Reply::FinalizerAdded { va });
            }
            Request::VaStatus { va, error } => {
                let Some(v) = self.store.vas.get_mut(&va) else {
                    replies.push(Reply::AttachmentMissing { va });
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
                restamp(&mut self.store, &va, va_meta);
                let attached = error.is_none();
                ctx.event(
                    client,
                    "va-status",
                    &va,
                    if attached { "attached" } else { "error" },
                );
                self.notify(ctx, Kind::Va, &va, None);
                replies.push(Reply::StatusWritten { va, attached });
            }
            Request::VaUnfinalize { va } => {
                if self.store.vas.remove(&va).is_some() {
                    ctx.event(client, "delete", &va, "VolumeAttachment");
                    self.graph_event(ctx, GraphOp::DelVa { name: va.clone() });
                    self.notify(ctx, Kind::Va, &va, None);
                }
                replies.push(Reply::Unfinalized { va });
            }
            _ => {}
        }
    }

    fn create_va(&mut self, ctx: &mut Ctx<'_>, client: &str, pv: String, node: usize) {
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
                    persistent_volume_name: Some(pv),
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
        ctx.stats.vas_created += 1;
        ctx.event(client, "create", &name, "VolumeAttachment");
        self.graph_event(
            ctx,
            GraphOp::AddVa {
                name: name.clone(),
                node: node_name(node),
            },
        );
        self.notify(ctx, Kind::Va, &name, None);
    }

    /// Node status.
    fn apply_node(&mut self, ctx: &mut Ctx<'_>, client: &str, request: Request) {
        match request {
            Request::NodeAttached { node, vols } => {
                let name = node_name(node);
                let Some(n) = self.store.nodes.get_mut(&name) else {
                    return;
                };
                let count = vols.len();
                n.status
                    .get_or_insert_with(Default::default)
                    .volumes_attached = Some(
                    vols.into_iter()
                        .map(
                            |(pv, device_path)| k8s_openapi::api::core::v1::AttachedVolume {
                                name: pv,
                                device_path,
                            },
                        )
                        .collect(),
                );
                restamp(&mut self.store, &name, node_meta);
                ctx.event(client, "status", &name, &format!("volumesAttached {count}"));
                self.notify(ctx, Kind::Node, &name, Some(node));
            }
            Request::NodeInUse { node, vols } => {
                let name = node_name(node);
                let Some(n) = self.store.nodes.get_mut(&name) else {
                    return;
                };
                n.status.get_or_insert_with(Default::default).volumes_in_use = Some(vols);
                restamp(&mut self.store, &name, node_meta);
                ctx.event(client, "status", &name, "volumesInUse");
                self.notify(ctx, Kind::Node, &name, Some(node));
            }
            _ => {}
        }
    }
}

/// `now` as an API timestamp.
fn time_of(now: SimTime) -> Time {
    Time(
        k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(now.0))
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}
