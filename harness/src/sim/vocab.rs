//! The simulation's shared vocabulary: the components, the requests they send the API
//! server, the replies it sends back, the events on the clock, and the names of things.
//!
//! A leaf: it imports no other module of the simulation, and every one of them may
//! import it.

use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, Pod};

use crate::api::Kind;
use crate::authz::GraphOp;
use crate::csi::CsiCall;
use crate::fault::Plugin;
use crate::naming::node_name;
use crate::time::SimTime;

/// The Deployment every scenario scales.
pub const DEPLOYMENT: &str = "app";
/// The StorageClass every claim names.
pub(crate) const STORAGE_CLASS: &str = "cephfs";
/// The secret the StorageClass names for provisioning and staging.
pub(crate) const SECRET: &str = "csi-cephfs-secret";
/// The attach-detach controller's API client: its own token bucket, with
/// kube-controller-manager's QPS, as each controller builds its own clientset.
pub(crate) const ADC_CLIENT: &str = "adc";
/// How often the kubelet's and the attach-detach controller's reconcilers run.
pub(crate) const PROCESS_DELAY: Duration = Duration::from_millis(100);

/// Components that receive watch events and run reconcile passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Component {
    /// kube-scheduler.
    Scheduler,
    /// The PV controller (binder).
    Binder,
    /// external-provisioner.
    Provisioner,
    /// The attach-detach controller.
    AttachDetach,
    /// external-attacher.
    Attacher,
    /// The Deployment and ReplicaSet controllers.
    ReplicaSets,
    /// The kubelet of node i.
    Kubelet(usize),
}

/// What a kubelet's GET of a VolumeAttachment is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VaPurpose {
    /// WaitForAttach: one GET of the VolumeAttachment it names; anything but an allowed,
    /// attached one fails the operation, which backs off (a node may not watch it).
    Wait,
    /// SetUp of this pod (reads the attachment metadata).
    SetUp(String),
}

/// A request arriving at the API server.
#[derive(Debug, Clone)]
pub(crate) enum Request {
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
    /// The attach-detach controller creates a VolumeAttachment (its attach operation
    /// began at `started`).
    CreateVa {
        pv: String,
        node: usize,
        started: SimTime,
    },
    /// The attach-detach controller deletes a VolumeAttachment.
    DeleteVa {
        pv: String,
        node: usize,
        started: SimTime,
    },
    /// The attach-detach controller reads a VolumeAttachment (attach: is it attached;
    /// detach: is it gone) after its write and at its operation's timeout.
    AttachDetachGetVa {
        pv: String,
        node: usize,
        detach: bool,
        started: SimTime,
    },
    /// The attach-detach controller's VerifyVolumesAreAttached GET.
    VerifyGet,
    /// The attach-detach controller's node status updater writes
    /// node.status.volumesAttached: (volume, devicePath) pairs.
    NodeAttached {
        node: usize,
        vols: Vec<(String, String)>,
    },
    /// Attacher adds its finalizer.
    VaFinalizer { va: String },
    /// Attacher records the outcome.
    VaStatus { va: String, error: Option<String> },
    /// Attacher removes its finalizer (the VA goes).
    VaUnfinalize { va: String },
    /// Kubelet patches node.status.volumesInUse.
    NodeInUse { node: usize, vols: Vec<String> },
    /// Kubelet GETs the VolumeAttachment named `va` for volume `pv`.
    KubeletGetVa {
        node: usize,
        pv: String,
        va: String,
        purpose: VaPurpose,
    },
    /// Kubelet GETs the node-stage secret of `pv`, bound to claim `pvc`.
    KubeletGetSecret {
        node: usize,
        pv: String,
        pvc: String,
    },
}

/// What the API server answers a request with, or tells of a write, to the component
/// that waits for it. Each reply names its addressee by its kind.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    /// Scheduler: the binding to `node` was handled (the node is no longer reserved).
    Bound { node: usize },
    /// ReplicaSet controller: a pod it asked for was created.
    PodCreated,
    /// ReplicaSet controller: a deletion of `pod` reached the API server (by anyone).
    PodDeletionSeen { pod: String },
    /// The workload: `pod` is terminating.
    PodTerminating { pod: String },
    /// The workload: `pod` is Running on `node`.
    PodStarted { pod: String, node: Option<usize> },
    /// Attach-detach controller: its write of the VolumeAttachment of (`pv`, `node`) is
    /// done; it reads it next.
    AttachmentWritten {
        pv: String,
        node: usize,
        detach: bool,
        started: SimTime,
    },
    /// Attach-detach controller: its read of the VolumeAttachment of (`pv`, `node`)
    /// answered.
    AttachmentRead {
        pv: String,
        node: usize,
        detach: bool,
        started: SimTime,
    },
    /// Attach-detach controller: one VerifyVolumesAreAttached GET answered.
    VerifyRead,
    /// Attacher: its finalizer is on `va`.
    FinalizerAdded { va: String },
    /// Attacher: the status of `va` is written (`attached` or an error).
    StatusWritten { va: String, attached: bool },
    /// Attacher: its finalizer is off `va` (which is gone).
    Unfinalized { va: String },
    /// Attacher: `va` was not there to write.
    AttachmentMissing { va: String },
    /// Kubelet of `node`: its GET of the VolumeAttachment `va` of `pv`.
    GotAttachment {
        node: usize,
        pv: String,
        va: String,
        purpose: VaPurpose,
        answer: AttachmentAnswer,
    },
    /// Kubelet of `node`: its GET of the node-stage secret of `pv`.
    GotSecret {
        node: usize,
        pv: String,
        allowed: bool,
    },
}

/// What a kubelet's GET of a VolumeAttachment found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttachmentAnswer {
    /// The node authorizer let the GET through.
    pub(crate) allowed: bool,
    /// The VolumeAttachment exists (and was allowed).
    pub(crate) exists: bool,
    /// ... and is attached.
    pub(crate) attached: bool,
}

/// What to do with a CSI call's outcome, and who does it.
#[derive(Debug, Clone)]
pub(crate) enum AfterCall {
    Provisioned {
        pvc: String,
        pv: String,
    },
    Deleted {
        pv: String,
    },
    ControllerPublished {
        va: String,
    },
    ControllerUnpublished {
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

impl AfterCall {
    /// The component that made the call and the object it is about (for the log).
    pub(crate) fn caller_and_object(&self) -> (String, String) {
        match self {
            AfterCall::Provisioned { pvc, .. } => ("provisioner".to_owned(), pvc.clone()),
            AfterCall::Deleted { pv } => ("provisioner".to_owned(), pv.clone()),
            AfterCall::ControllerPublished { va } | AfterCall::ControllerUnpublished { va } => {
                ("attacher".to_owned(), va.clone())
            }
            AfterCall::Staged { node, pv } | AfterCall::Unstaged { node, pv } => {
                (kubelet_client(*node), pv.clone())
            }
            AfterCall::Published { node, pv, pod } | AfterCall::Unpublished { node, pv, pod } => {
                (kubelet_client(*node), format!("{pod}/{pv}"))
            }
        }
    }
}

/// Something that happens at an instant of the simulated clock.
#[derive(Debug)]
pub(crate) enum Event {
    /// A watch notification reaches a component.
    Watch {
        to: Component,
        kind: Kind,
        name: String,
    },
    /// A component's reconcile pass.
    Process(Component),
    /// A request reaches the API server.
    Api { client: String, request: Request },
    /// A CSI call's simulated duration is over.
    CsiDone { id: u64 },
    /// A write reaches the node authorizer's graph.
    GraphIn(GraphOp),
    /// The node authorizer's graph applies queued writes.
    GraphTick,
    /// The node status loop of kubelet i.
    NodeStatus(usize),
    /// A pod's containers started.
    ContainerStarted { node: usize, pod: String },
    /// The attach-detach controller reads a VolumeAttachment (after writing it, and when
    /// its operation times out).
    AttachDetachPoll {
        pv: String,
        node: usize,
        detach: bool,
        started: SimTime,
    },
    /// The attach-detach controller's back-off of (pv, node) is over.
    AttachDetachRetry { pv: String, node: usize },
    /// The attach-detach controller's VerifyVolumesAreAttached loop.
    AttachDetachVerify,
    /// The external-attacher's back-off of a VolumeAttachment is over.
    AttacherRetry { va: String },
    /// The external-provisioner's back-off of a key is over.
    ProvisionerRetry { key: String },
    /// The PV controller's periodic resync.
    BinderResync,
    /// The scenario script's tick.
    Script,
    /// The busy workload's next step or completion.
    Busy { round: u64 },
    /// Step i of the fault plan.
    Fault(usize),
}

/// The key of a (volume, node) pair.
pub(crate) fn pair_key(pv: &str, node: usize) -> String {
    format!("{pv}/{node}")
}

/// The VolumeAttachment of `pv` on `node`.
pub(crate) fn va_name(pv: &str, node: usize) -> String {
    // k8s names it csi-sha256(handle+driver+node); handles are not deterministic across
    // runs here (the driver makes UUIDs), so the name is built from the PV and node.
    format!("csi-{pv}-{}", node_name(node))
}

/// The PV and node a VolumeAttachment name refers to.
pub(crate) fn va_pair(va: &str) -> Option<(String, usize)> {
    let (pv, node) = va.strip_prefix("csi-")?.rsplit_once("-node-")?;
    Some((pv.to_owned(), node_index(&format!("node-{node}"))?))
}

/// The PV a VolumeAttachment name refers to ("" if it is not one of ours).
pub(crate) fn va_volume(va: &str) -> &str {
    va.strip_prefix("csi-")
        .and_then(|n| n.rsplit_once("-node-"))
        .map_or("", |(pv, _)| pv)
}

/// The uid of claim i.
pub(crate) fn pvc_uid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// The index of node `name` (`node-0001` is 0).
pub(crate) fn node_index(name: &str) -> Option<usize> {
    name.strip_prefix("node-")?
        .parse::<usize>()
        .ok()?
        .checked_sub(1)
}

/// The API client name of kubelet i.
pub(crate) fn kubelet_client(i: usize) -> String {
    format!("kubelet/{}", node_name(i))
}

/// Where a node stages `pv`.
pub(crate) fn staging_path(pv: &str) -> String {
    format!("plugins/kubernetes.io/csi/pv/{pv}/globalmount")
}

/// Where a node publishes `pv` for the pod with uid `pod_uid`.
pub(crate) fn target_path(pod_uid: &str, pv: &str) -> String {
    format!("pods/{pod_uid}/volumes/kubernetes.io~csi/{pv}/mount")
}

/// The plugin a call goes to.
pub(crate) fn plugin_of(call: &CsiCall) -> Plugin {
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
