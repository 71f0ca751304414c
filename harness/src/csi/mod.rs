//! The CSI side of the simulation: the calls controllers and kubelets make, and the two
//! back ends that answer them. [`RealCsi`] runs an [`Embedded`] stack (fake-ceph on
//! loopback, with the Manila back end fake-manila on top of it, or [`External`] ones; the
//! driver's controller plugin and one node plugin per simulated node, each on its own
//! Unix socket) and makes every call over real gRPC. [`MockCsi`] answers from memory, with scripted failures,
//! for the controllers' unit tests. `harness up` serves an [`Embedded`] stack on its own.
//!
//! A call is started when the simulation issues it and finished when its simulated
//! duration has passed; the simulation awaits the real outcome only then. The outcome of
//! a call depends on the calls finished before it was started (the simulation serialises
//! calls on one volume and node), never on wall-clock timing.
//!
//! For fault plans ([`crate::fault`]) the stack kills a plugin ([`Embedded::kill`]:
//! every connection to it breaks, which drops the handlers of its calls under way) and
//! starts a new driver instance on the same socket and state directory
//! ([`Embedded::restart`]); it switches the embedded fakes' faults, evicts sessions and
//! resets stuck shares. The plugins are served with the driver's own router and socket
//! binding, through connections that a kill breaks.

//! The parts: [`call`] translates a [`CsiCall`] into its gRPC request and the answer
//! into a [`CsiOutcome`]; [`mock`] is the in-memory back end; [`real`] the back end over
//! gRPC; [`embedded`] the stack it calls, [`launch`] how that stack starts, [`plugin`] how
//! one plugin is served in-process, [`workdir`] the stack's temporary directory. This
//! module may import the driver, the fakes, [`crate::inventory`], [`crate::fault`],
//! [`crate::params`] and [`crate::naming`]; the simulation and the reports import it,
//! never the other way round.

mod call;
mod embedded;
mod launch;
mod mock;
mod plugin;
mod real;
mod workdir;

pub use workdir::remove_own_temp_roots;

use std::collections::BTreeMap;

pub(crate) use self::call::call_node;
pub use self::embedded::Embedded;
pub use self::launch::{External, Launch};
pub use self::mock::MockCsi;
pub use self::real::{RealCsi, WallLatencies};
use crate::inventory::Inventory;
pub use crate::naming::node_name;
pub use crate::params::StorageBackend;

/// The CSI driver name the simulated cluster registers.
pub const DRIVER_NAME: &str = "cephfs.csi.trainride";

/// One CSI call. Paths are relative to the node's kubelet directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsiCall {
    /// CreateVolume for a claim.
    CreateVolume {
        /// `pvc-<uid>`.
        name: String,
    },
    /// DeleteVolume.
    DeleteVolume {
        /// The handle.
        volume_id: String,
    },
    /// ControllerPublishVolume.
    ControllerPublish {
        /// The handle.
        volume_id: String,
        /// The node.
        node: usize,
    },
    /// ControllerUnpublishVolume.
    ControllerUnpublish {
        /// The handle.
        volume_id: String,
        /// The node.
        node: usize,
    },
    /// NodeStageVolume.
    NodeStage {
        /// The node.
        node: usize,
        /// The handle.
        volume_id: String,
        /// The PV's volume attributes.
        context: BTreeMap<String, String>,
        /// Staging path.
        staging: String,
    },
    /// NodePublishVolume.
    NodePublish {
        /// The node.
        node: usize,
        /// The handle.
        volume_id: String,
        /// The PV's volume attributes.
        context: BTreeMap<String, String>,
        /// Staging path.
        staging: String,
        /// Target path.
        target: String,
    },
    /// NodeUnpublishVolume.
    NodeUnpublish {
        /// The node.
        node: usize,
        /// The handle.
        volume_id: String,
        /// Target path.
        target: String,
    },
    /// NodeUnstageVolume.
    NodeUnstage {
        /// The node.
        node: usize,
        /// The handle.
        volume_id: String,
        /// Staging path.
        staging: String,
    },
}

impl CsiCall {
    /// The RPC's name.
    pub fn method(&self) -> &'static str {
        match self {
            CsiCall::CreateVolume { .. } => "CreateVolume",
            CsiCall::DeleteVolume { .. } => "DeleteVolume",
            CsiCall::ControllerPublish { .. } => "ControllerPublishVolume",
            CsiCall::ControllerUnpublish { .. } => "ControllerUnpublishVolume",
            CsiCall::NodeStage { .. } => "NodeStageVolume",
            CsiCall::NodePublish { .. } => "NodePublishVolume",
            CsiCall::NodeUnpublish { .. } => "NodeUnpublishVolume",
            CsiCall::NodeUnstage { .. } => "NodeUnstageVolume",
        }
    }
}

/// A successful reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsiReply {
    /// CreateVolume's volume.
    Created {
        /// The handle.
        volume_id: String,
        /// Volume attributes for the PV.
        context: BTreeMap<String, String>,
    },
    /// Any other call.
    Done,
}

/// A call's outcome: the reply, or the gRPC code and message.
pub type CsiOutcome = Result<CsiReply, (tonic::Code, String)>;

/// Whether an error code says the operation is over. The others (the call was cut,
/// timed out, or the plugin was busy or gone) leave it maybe done: the kubelet then
/// treats a mount as uncertain and unmounts it before forgetting it, and the
/// external-provisioner goes on provisioning a claim deleted meanwhile (both keep this
/// list: `isFinalError` in the kubelet's CSI client and in the provisioner).
pub fn is_final(code: tonic::Code) -> bool {
    !matches!(
        code,
        tonic::Code::Cancelled
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unavailable
            | tonic::Code::ResourceExhausted
            | tonic::Code::Aborted
    )
}

/// What is left behind in the back end after teardown: what it holds and did not hold
/// when the stack was up.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Leaks {
    /// Open MDS sessions.
    pub mds_sessions: usize,
    /// Subvolumes in the CSI group and in Ceph's default group (Manila's shares).
    pub subvolumes: usize,
    /// Manila shares (any state) in the project.
    pub shares: usize,
    /// Manila access rules (any state) on those shares.
    pub access_rules: usize,
    /// cephx users (Manila's rules make one each).
    pub cephx_users: usize,
    /// Entries in the driver's RADOS journal (name → UUID keys of `csi.volumes.*`,
    /// `csi.snaps.*`, and unfinished clones in `csi.clones.*`).
    pub journal_entries: usize,
    /// The journal's per-UUID objects (`csi.volume.<uuid>`, `csi.snap.<uuid>`).
    pub journal_objects: usize,
    /// Fake mount records (staged volumes) on any node.
    pub mount_records: usize,
    /// Files left anywhere under the plugins' directories and in the run's temporary
    /// directory beside them (key files, stray state, sockets' temporary names).
    pub files: usize,
    /// Why the back ends' holdings could not be read (then nothing is known of them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Leaks {
    /// Nothing leaked.
    pub fn none(&self) -> bool {
        *self == Leaks::default()
    }
}

/// The back end a simulation calls.
#[derive(Debug)]
pub enum Backend {
    /// The real driver over gRPC, fake-ceph behind it.
    Real(Box<RealCsi>),
    /// In-memory answers.
    Mock(MockCsi),
}

impl Backend {
    /// Starts call `id`.
    pub async fn start(&mut self, id: u64, call: CsiCall) {
        match self {
            Backend::Real(r) => r.start(id, call).await,
            Backend::Mock(m) => m.start(id, call),
        }
    }

    /// The outcome of call `id` (awaits the real call).
    pub async fn finish(&mut self, id: u64) -> CsiOutcome {
        match self {
            Backend::Real(r) => r.finish(id).await,
            Backend::Mock(m) => m.finish(id),
        }
    }

    /// What is left behind.
    pub async fn leaks(&self) -> Leaks {
        match self {
            Backend::Real(r) => r.leaks().await,
            Backend::Mock(m) => m.leaks(),
        }
    }

    /// Waits until no real call is under way (their outcomes are kept).
    pub async fn drain(&mut self) {
        if let Backend::Real(r) = self {
            r.drain().await;
        }
    }

    /// Drops calls whose outcome will not be taken.
    pub fn abandon(&mut self, ids: &[u64]) {
        match self {
            Backend::Real(r) => r.abandon(ids),
            Backend::Mock(m) => {
                for id in ids {
                    m.results.remove(id);
                }
            }
        }
    }

    /// Applies a fault step; what the back end reports of it, or why it refused.
    pub async fn inject(
        &mut self,
        action: &crate::fault::Action,
    ) -> anyhow::Result<crate::fault::Applied> {
        match self {
            Backend::Real(r) => r.inject(action).await,
            // The mock has no back end to break: a killed plugin's calls are failed by
            // the simulation, which knows it is down.
            Backend::Mock(_) => Ok(crate::fault::Applied::default()),
        }
    }

    /// Closes every fault window and restarts every killed plugin.
    pub async fn heal(&mut self) -> anyhow::Result<()> {
        match self {
            Backend::Real(r) => r.heal().await,
            Backend::Mock(_) => Ok(()),
        }
    }

    /// What the back ends hold now (`None` for the mock).
    pub async fn inventory(&self) -> Option<anyhow::Result<Inventory>> {
        match self {
            Backend::Real(r) => Some(r.inventory().await),
            Backend::Mock(_) => None,
        }
    }
}

/// The StorageClass parameters (those the provisioner passes to CreateVolume) of
/// `backend`'s volumes.
pub fn storage_class_parameters(backend: StorageBackend) -> BTreeMap<String, String> {
    match backend {
        StorageBackend::Cephfs => BTreeMap::from([
            ("clusterID".to_owned(), CLUSTER_ID.to_owned()),
            ("fsName".to_owned(), FS_NAME.to_owned()),
        ]),
        // The Manila CSI provisioner's parameters: the share type (fake-manila's one
        // CephFS type); the rest (`availability`, `cephfs-clientID`, ...) keep defaults.
        StorageBackend::Manila => {
            BTreeMap::from([("type".to_owned(), MANILA_SHARE_TYPE.to_owned())])
        }
    }
}

/// The parts of `backend`'s CSI secret that are not secret (user and project names),
/// for the simulated Secret object; the keys and passwords stay with the back end.
pub fn secret_identity(backend: StorageBackend) -> BTreeMap<String, String> {
    match backend {
        StorageBackend::Cephfs => BTreeMap::from([("adminID".to_owned(), "admin".to_owned())]),
        StorageBackend::Manila => BTreeMap::from([
            ("os-userName".to_owned(), MANILA_USER.to_owned()),
            ("os-projectName".to_owned(), MANILA_USER.to_owned()),
            ("os-domainName".to_owned(), "Default".to_owned()),
        ]),
    }
}

/// The cluster ID of the embedded fake-ceph in the driver's cluster config.
pub const CLUSTER_ID: &str = "c1";
/// The file system of the embedded fake-ceph.
pub const FS_NAME: &str = "cephfs";
/// The subvolume group the CephFS controller provisions in.
pub const SUBVOLUME_GROUP: &str = "csi";
/// fake-manila's CephFS share type.
pub const MANILA_SHARE_TYPE: &str = "cephfstype";
/// fake-manila's default member user, its password and its project (all `demo`).
pub const MANILA_USER: &str = "demo";
