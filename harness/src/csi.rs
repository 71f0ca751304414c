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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use driver::Driver;
use driver::ceph::Target;
use driver::config::{Backend as DriverBackend, Config, Mode, MounterKind, parse_clusters};
use driver::csi::v1::controller_client::ControllerClient;
use driver::csi::v1::node_client::NodeClient;
use driver::csi::v1::*;
use driver::mount::Mounter;
use driver::mount::fake::{FakeMountMode, FakeMounter};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::fault::Plugin;
use crate::inventory::{CephAccess, Inventory, ManilaAccess};
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

/// In-memory CSI: volumes, stages and publishes as sets; the first `fail[method]` calls of
/// a method fail with `Unavailable`, and the first `lose_reply[method]` ones do their work
/// but answer `Unavailable` (a reply lost: the call timed out or the plugin died after
/// the work).
#[derive(Debug, Default)]
pub struct MockCsi {
    volumes: BTreeSet<String>,
    staged: BTreeSet<(usize, String)>,
    published: BTreeSet<(usize, String)>,
    results: BTreeMap<u64, CsiOutcome>,
    /// Calls of a method still to fail.
    pub fail: BTreeMap<&'static str, u32>,
    /// Calls of a method still to do their work and answer `Unavailable`.
    pub lose_reply: BTreeMap<&'static str, u32>,
    /// Every call made, by method.
    pub calls: BTreeMap<&'static str, u32>,
}

impl MockCsi {
    fn start(&mut self, id: u64, call: CsiCall) {
        let m = call.method();
        *self.calls.entry(m).or_default() += 1;
        if let Some(n) = self.fail.get_mut(m)
            && *n > 0
        {
            *n -= 1;
            self.results
                .insert(id, Err((tonic::Code::Unavailable, "injected".into())));
            return;
        }
        // As the driver: a node call without a volume ID is refused.
        let no_id = match &call {
            CsiCall::NodeStage { volume_id, .. }
            | CsiCall::NodePublish { volume_id, .. }
            | CsiCall::NodeUnpublish { volume_id, .. }
            | CsiCall::NodeUnstage { volume_id, .. } => volume_id.is_empty(),
            _ => false,
        };
        if no_id {
            self.results.insert(
                id,
                Err((tonic::Code::InvalidArgument, "volume_id missing".into())),
            );
            return;
        }
        let r = match call {
            CsiCall::CreateVolume { name } => {
                let volume_id = format!("vol-{name}");
                self.volumes.insert(volume_id.clone());
                Ok(CsiReply::Created {
                    volume_id,
                    context: BTreeMap::from([("subvolumePath".into(), format!("/v/{name}"))]),
                })
            }
            CsiCall::DeleteVolume { volume_id } => {
                self.volumes.remove(&volume_id);
                Ok(CsiReply::Done)
            }
            CsiCall::NodeStage { node, staging, .. } => {
                self.staged.insert((node, staging));
                Ok(CsiReply::Done)
            }
            CsiCall::NodeUnstage { node, staging, .. } => {
                self.staged.remove(&(node, staging));
                Ok(CsiReply::Done)
            }
            CsiCall::NodePublish {
                node,
                target,
                staging,
                ..
            } => {
                if self.staged.contains(&(node, staging)) {
                    self.published.insert((node, target));
                    Ok(CsiReply::Done)
                } else {
                    Err((tonic::Code::FailedPrecondition, "not staged".into()))
                }
            }
            CsiCall::NodeUnpublish { node, target, .. } => {
                self.published.remove(&(node, target));
                Ok(CsiReply::Done)
            }
            CsiCall::ControllerPublish { .. } | CsiCall::ControllerUnpublish { .. } => {
                Ok(CsiReply::Done)
            }
        };
        let r = match self.lose_reply.get_mut(m) {
            Some(n) if *n > 0 => {
                *n -= 1;
                Err((tonic::Code::Unavailable, "reply lost".into()))
            }
            _ => r,
        };
        self.results.insert(id, r);
    }

    fn finish(&mut self, id: u64) -> CsiOutcome {
        self.results
            .remove(&id)
            .unwrap_or_else(|| Err((tonic::Code::Internal, "unknown call".into())))
    }

    fn leaks(&self) -> Leaks {
        Leaks {
            mds_sessions: self.staged.len(),
            subvolumes: self.volumes.len(),
            mount_records: self.published.len(),
            ..Leaks::default()
        }
    }
}

/// A running plugin: the signal that stops it gracefully, the one that kills it, and the
/// task serving it.
struct PluginServer {
    stop: Option<oneshot::Sender<()>>,
    kill: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl PluginServer {
    /// Stops serving; with `kill`, first breaks every connection, which drops the
    /// handlers of the calls under way (a graceful stop lets them finish).
    async fn stop(mut self, kill: bool) {
        if kill {
            let _ = self.kill.send(true);
        }
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        // Killed connections end at once; a graceful stop waits for the calls under
        // way, each bounded by the driver's deadlines.
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(60), &mut task)
            .await
            .is_err()
        {
            tracing::warn!("a plugin's server did not stop within 60 s; aborting it");
            task.abort();
            let _ = task.await;
        }
    }
}

/// One plugin of an [`Embedded`] stack: its node ID, directory, socket, a connected
/// channel, the configuration a restart starts it with, and the running server
/// (`None` while it is killed).
struct Served {
    node_id: String,
    dir: PathBuf,
    socket: PathBuf,
    channel: Channel,
    config: Config,
    plugin: Option<PluginServer>,
}

/// A connection to a plugin that breaks when the plugin is killed: from then on its
/// reads and writes fail, so the server drops the connection and, with it, the handlers
/// of the calls under way on it (hyper cancels a stream's handler when its connection
/// goes), which stop at whatever await they had reached, as a killed process's would.
struct Killable {
    io: tokio::net::UnixStream,
    killed: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    dead: bool,
}

impl Killable {
    fn new(io: tokio::net::UnixStream, mut kill: watch::Receiver<bool>) -> Self {
        Self {
            io,
            killed: Box::pin(async move {
                // A dropped sender ends the plugin too.
                let _ = kill.wait_for(|k| *k).await;
            }),
            dead: false,
        }
    }

    /// Whether the plugin is killed (registers the waker for the moment it is).
    fn dead(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        if !self.dead && self.killed.as_mut().poll(cx).is_ready() {
            self.dead = true;
        }
        self.dead
    }

    fn killed_error() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::ConnectionReset, "the plugin was killed")
    }
}

impl tokio::io::AsyncRead for Killable {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.dead(cx) {
            return std::task::Poll::Ready(Err(Self::killed_error()));
        }
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Killable {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.dead(cx) {
            return std::task::Poll::Ready(Err(Self::killed_error()));
        }
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.dead(cx) {
            return std::task::Poll::Ready(Err(Self::killed_error()));
        }
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Killable {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
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

/// What an [`Embedded`] stack is started with.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// The master seed of fake-ceph (keys, UUIDs) and fake-manila (IDs, tokens).
    pub seed: u64,
    /// Node plugins to serve.
    pub nodes: usize,
    /// The controller advertises and serves ControllerPublish (CephFS back end only).
    pub attach_required: bool,
    /// What provisions the volumes.
    pub backend: StorageBackend,
    /// Give the CephFS controller `controllerCredentials` (client.admin's keyring in a
    /// 0600 file under the directory), so that the RPCs without secrets (ListVolumes,
    /// GetCapacity, ControllerGetVolume) are served. The simulation makes none of them.
    pub controller_credentials: bool,
    /// Fault rules for the embedded fake-ceph (refused with external back ends: set them
    /// there).
    pub ceph_faults: fake_ceph::Faults,
    /// Faults of the embedded fake-manila (refused with external back ends).
    pub manila_faults: fake_manila::Faults,
    /// The driver's deadlines.
    pub timeouts: crate::params::DriverTimeouts,
    /// Keep the embedded fake-ceph's metadata on disk (`fake_ceph::Metadata::Durable`,
    /// in the run's temporary directory), so that [`Embedded::restart_ceph`] finds every
    /// volume, user and journal object again. Off, commands commit nothing.
    pub durable_ceph: bool,
}

/// Back ends that run outside this process, for [`Embedded::launch_on`]: a fake-ceph
/// (on this machine: the fake mounter links the directories it names) and, for the
/// Manila back end, a fake-manila on top of it.
#[derive(Clone)]
pub struct External {
    /// fake-ceph's base URL.
    pub ceph_url: String,
    /// Its client.admin key.
    pub ceph_admin_key: String,
    /// The Keystone auth URL of the Manila back end (a fake-manila's first stdout line:
    /// `http://host:port/v3`); Manila is found through its catalog.
    pub os_auth_url: Option<String>,
    /// The Manila user, project and domain (names).
    pub os_user: String,
    /// The user's password.
    pub os_password: String,
    /// The project.
    pub os_project: String,
    /// The user's and project's domain.
    pub os_domain: String,
}

impl std::fmt::Debug for External {
    // Not derived: the key and the password must not reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("External")
            .field("ceph_url", &self.ceph_url)
            .field("os_auth_url", &self.os_auth_url)
            .field("os_user", &self.os_user)
            .field("os_project", &self.os_project)
            .finish_non_exhaustive()
    }
}

/// The subvolume groups the leak check lists: the CSI group (CephFS back end) and Ceph's
/// default group (Manila's shares).
const GROUPS: [Option<&str>; 2] = [Some(SUBVOLUME_GROUP), None];

/// The back ends (fake-ceph on loopback and, for the Manila back end, fake-manila on top
/// of it, or [`External`] ones), the driver's controller plugin and one node plugin per
/// node, each on its own Unix socket under one temporary directory (on `/dev/shm` when
/// there is one). Dropping it removes the directory; [`Embedded::shutdown`] stops the
/// servers first.
pub struct Embedded {
    root: tempfile::TempDir,
    backend: StorageBackend,
    /// The in-process fake-ceph; `None` with external back ends.
    cluster: Option<fake_ceph::Cluster>,
    /// How the in-process fake-ceph was made and where it is served, to start it again.
    ceph_server: Option<CephServer>,
    ceph: CephAccess,
    monitors: Vec<String>,
    /// Keystone's auth URL, with the Manila back end.
    os_auth_url: Option<String>,
    /// Manila's endpoint, when the stack started fake-manila itself.
    manila_url: Option<String>,
    manila: Option<ManilaAccess>,
    /// What the back ends held when the plugins were up: the leak check counts only
    /// what is new since.
    baseline: Inventory,
    clusters: serde_json::Value,
    secrets: HashMap<String, String>,
    controller: Served,
    nodes: Vec<Served>,
    servers: Vec<tokio::task::JoinHandle<()>>,
    /// The fake mounters' shared connection pool to fake-ceph (restarted plugins use it
    /// too).
    http: reqwest::Client,
    /// The fake mounters' deadline per call to fake-ceph.
    mount_http_timeout: Option<Duration>,
    /// The embedded fake-manila's state (its faults are switched through it).
    manila_state: Option<fake_manila::AppState>,
    /// The faults in force: the scenario's, and the windows a fault plan has open.
    faults: FaultState,
}

/// The embedded fake-ceph's serving: its configuration, address and task (aborting the
/// task closes every connection to it, as a killed process's would be).
struct CephServer {
    config: fake_ceph::Config,
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
    /// Restarts so far.
    restarts: u64,
}

/// Serves `cluster` on `listener` as the fake-ceph binary does (its connection limits
/// and timeouts), until the task is aborted.
fn spawn_ceph(
    cluster: &fake_ceph::Cluster,
    listener: tokio::net::TcpListener,
) -> tokio::task::JoinHandle<()> {
    let app = fake_ceph::router(cluster.clone());
    tokio::spawn(async move {
        let _ = fake_ceph::service::serve(
            listener,
            app,
            fake_ceph::service::ServeConfig::default(),
            std::future::pending(),
        )
        .await;
    })
}

/// The faults an [`Embedded`] stack has in force, kept so that windows of different
/// kinds can open and close independently.
#[derive(Debug, Default)]
struct FaultState {
    ceph_static: Vec<fake_ceph::FaultRule>,
    ceph_windows: BTreeMap<u32, Vec<fake_ceph::FaultRule>>,
    mds_down: bool,
    manila_static: fake_manila::Faults,
    manila_windows: BTreeMap<u32, fake_manila::Faults>,
}

impl FaultState {
    fn ceph(&self) -> fake_ceph::Faults {
        let mut rules = self.ceph_static.clone();
        for w in self.ceph_windows.values() {
            rules.extend(w.iter().cloned());
        }
        fake_ceph::Faults {
            rules,
            mds_down: self.mds_down,
        }
    }

    /// Each rate the largest of the scenario's and the open windows'.
    fn manila(&self) -> fake_manila::Faults {
        let mut f = self.manila_static.clone();
        for w in self.manila_windows.values() {
            f.latency_ms = f.latency_ms.max(w.latency_ms);
            f.error_rate = f.error_rate.max(w.error_rate);
            f.stuck_creating_rate = f.stuck_creating_rate.max(w.stuck_creating_rate);
            f.share_error_rate = f.share_error_rate.max(w.share_error_rate);
            f.access_error_rate = f.access_error_rate.max(w.access_error_rate);
        }
        f
    }
}

impl std::fmt::Debug for Embedded {
    // Not derived: the secrets must not reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("root", &self.root.path())
            .field("backend", &self.backend)
            .field("ceph_url", &self.ceph.url())
            .field("external", &self.cluster.is_none())
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

/// A temporary directory named `prefix…`, on `/dev/shm` when there is one. It holds an
/// owner file naming this process; directories of earlier runs whose process is gone (a
/// run killed with SIGKILL cannot clean up, and its directory holds fake-ceph's data and
/// the admin keyring) are removed first.
fn temp_root(prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    remove_abandoned(&base, prefix);
    let dir = match tempfile::Builder::new().prefix(prefix).tempdir_in(&base) {
        Ok(d) => d,
        Err(_) => tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .context("temporary directory")?,
    };
    if let Some(me) = process_identity(std::process::id()) {
        std::fs::write(dir.path().join(OWNER_FILE), me).context("writing the owner file")?;
    }
    Ok(dir)
}

/// The file in a temp root that names its process.
const OWNER_FILE: &str = "owner";

/// `<pid> <start time>` of a live process (the start time tells a reused PID apart).
fn process_identity(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses; the start
    // time is field 22, the 20th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let start = rest.split_whitespace().nth(19)?;
    Some(format!("{pid} {start}"))
}

/// Removes `base/prefix*` directories whose owner file names a process that is gone.
/// Directories without an owner file (another program's, or one being made) stay.
fn remove_abandoned(base: &Path, prefix: &str) {
    let Ok(rd) = std::fs::read_dir(base) else {
        return;
    };
    for e in rd.flatten() {
        if !e.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let Ok(owner) = std::fs::read_to_string(e.path().join(OWNER_FILE)) else {
            continue;
        };
        let alive = owner
            .split_whitespace()
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .and_then(process_identity)
            .is_some_and(|now| now == owner.trim());
        if !alive {
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => {
                    tracing::info!(dir = %e.path().display(), "removed an abandoned run's directory")
                }
                Err(err) => {
                    tracing::warn!(dir = %e.path().display(), error = %err, "cannot remove an abandoned run's directory")
                }
            }
        }
    }
}

/// Writes a keyring with client.admin's `key` to `root/keys/` (0600); returns its path.
fn write_keyring(root: &Path, key: &str) -> anyhow::Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = root.join("keys");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("ceph.client.admin.keyring");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "[client.admin]\n\tkey = {key}")?;
    Ok(path)
}

/// Where an embedded fake-manila answers.
struct ManilaEndpoints {
    /// Keystone's auth URL (`http://127.0.0.1:PORT/v3`).
    auth_url: String,
    /// Manila's endpoint (`http://127.0.0.1:PORT`; the API under `/v2`).
    manila_url: String,
}

/// Serves a fake-manila (zero state delays, no quotas, the share type
/// [`MANILA_SHARE_TYPE`], `faults`) over `ceph`, Keystone and Manila each on a loopback
/// port of its own; returns where they answer, its state and the task serving them.
async fn serve_manila(
    seed: u64,
    ceph: &CephAccess,
    faults: &fake_manila::Faults,
    ceph_timeout: Option<Duration>,
) -> anyhow::Result<(
    ManilaEndpoints,
    fake_manila::AppState,
    tokio::task::JoinHandle<()>,
)> {
    // Bound before the state is made: Keystone's catalog names these URLs.
    let listeners = fake_manila::Listeners::loopback()
        .await
        .context("binding loopback ports")?;
    let mut config = fake_manila::Config::new(
        listeners.keystone_url(),
        listeners.manila_url(),
        fake_manila::CephConfig {
            url: ceph.url().to_owned(),
            identity: fake_manila::CephIdentity {
                entity: "client.admin".into(),
                key: fake_manila::Secret::new(ceph.admin_key()),
            },
            fs_name: FS_NAME.into(),
            group: None,
            timeout: ceph_timeout.unwrap_or(Duration::from_secs(30)),
        },
    );
    config.seed = Some(seed);
    config.faults = faults.clone();
    // The simulation charges its own durations; real waits would only cost wall time.
    config.delays = fake_manila::Delays::all(Duration::ZERO);
    config.quotas.shares = -1;
    config.quotas.gigabytes = -1;
    config.share_type_name = MANILA_SHARE_TYPE.into();
    let endpoints = ManilaEndpoints {
        auth_url: format!("{}/v3", listeners.keystone_url()),
        manila_url: listeners.manila_url(),
    };
    let state = fake_manila::AppState::new(config).context("fake-manila")?;
    Ok((endpoints, state.clone(), listeners.spawn(state)))
}

/// The CSI secrets of the Manila back end whose Keystone is at `auth_url`.
fn manila_secrets(
    auth_url: &str,
    user: &str,
    password: &str,
    project: &str,
    domain: &str,
) -> HashMap<String, String> {
    HashMap::from([
        ("os-authURL".to_owned(), auth_url.to_owned()),
        ("os-userName".to_owned(), user.to_owned()),
        ("os-password".to_owned(), password.to_owned()),
        ("os-projectName".to_owned(), project.to_owned()),
        ("os-domainName".to_owned(), domain.to_owned()),
    ])
}

impl Embedded {
    /// Starts the stack `l` describes, with embedded back ends, in a new temporary
    /// directory named `prefix…`.
    pub async fn launch(l: Launch, prefix: &str) -> anyhow::Result<Self> {
        Self::launch_on(l, prefix, None).await
    }

    /// [`Embedded::launch`], on `external` back ends when given.
    pub async fn launch_on(
        l: Launch,
        prefix: &str,
        external: Option<&External>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !(l.attach_required && l.backend == StorageBackend::Manila),
            "the manila back end has no ControllerPublish: attach cannot be required"
        );
        let root = temp_root(prefix)?;
        let mut servers = Vec::new();
        let (cluster, ceph_server, ceph) = match external {
            None => {
                let config = fake_ceph::Config {
                    seed: l.seed,
                    data_dir: Some(root.path().join("ceph")),
                    faults: l.ceph_faults.clone(),
                    metadata: if l.durable_ceph {
                        fake_ceph::Metadata::Durable
                    } else {
                        fake_ceph::Metadata::InMemory
                    },
                    ..Default::default()
                };
                let cluster = fake_ceph::Cluster::new(config.clone()).context("fake-ceph")?;
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .context("binding a loopback port")?;
                let addr = listener.local_addr()?;
                let task = spawn_ceph(&cluster, listener);
                let ceph = CephAccess::new(&format!("http://{addr}"), &cluster.admin_key())?;
                let server = CephServer {
                    config,
                    addr,
                    task,
                    restarts: 0,
                };
                (Some(cluster), Some(server), ceph)
            }
            Some(x) => {
                anyhow::ensure!(
                    l.ceph_faults == fake_ceph::Faults::default(),
                    "ceph_faults apply to the embedded fake-ceph only: set them on the \
                     external one (its --fault flag or /admin/faults)"
                );
                anyhow::ensure!(
                    l.manila_faults == fake_manila::Faults::default(),
                    "manila_faults apply to the embedded fake-manila only: set them on the \
                     external one (its --fault-* flags or /admin/faults)"
                );
                (None, None, CephAccess::new(&x.ceph_url, &x.ceph_admin_key)?)
            }
        };
        let fs_names = ceph.fs_names().await?;
        anyhow::ensure!(
            fs_names.iter().any(|f| f == FS_NAME),
            "fake-ceph at {} has no file system {FS_NAME:?} (it has {fs_names:?})",
            ceph.url()
        );
        ceph.command(
            Target::Mgr,
            json!({"prefix": "fs subvolumegroup create", "vol_name": FS_NAME,
                   "group_name": SUBVOLUME_GROUP}),
        )
        .await
        .context("creating the csi subvolume group")?;
        let monitors = ceph.monitors().await?;
        let mut clusters = json!([{"clusterID": CLUSTER_ID, "monitors": monitors,
                                   "cephFS": {"subvolumeGroup": SUBVOLUME_GROUP},
                                   "admin": {"transport": "http", "url": ceph.url()}}]);
        if l.controller_credentials && l.backend == StorageBackend::Cephfs {
            let keyring = write_keyring(root.path(), ceph.admin_key())?;
            clusters[0]["controllerCredentials"] = json!({"userID": "admin", "keyFile": keyring});
        }
        let parsed = parse_clusters(&clusters.to_string())?;
        let ms = |v: Option<u64>| v.map(Duration::from_millis);
        let ceph_timeout = ms(l.timeouts.ceph_timeout_ms);
        let mount_timeout = ms(l.timeouts.mount_timeout_ms);
        let manila_wait = ms(l.timeouts.manila_wait_ms);
        let mut manila_state = None;
        let (os_auth_url, manila_url, secrets) = match (l.backend, external) {
            (StorageBackend::Cephfs, _) => (
                None,
                None,
                HashMap::from([
                    ("adminID".to_owned(), "admin".to_owned()),
                    ("adminKey".to_owned(), ceph.admin_key().to_owned()),
                ]),
            ),
            (StorageBackend::Manila, None) => {
                let (at, state, task) =
                    serve_manila(l.seed, &ceph, &l.manila_faults, ceph_timeout).await?;
                manila_state = Some(state);
                servers.push(task);
                let secrets = manila_secrets(
                    &at.auth_url,
                    MANILA_USER,
                    MANILA_USER,
                    MANILA_USER,
                    "Default",
                );
                (Some(at.auth_url), Some(at.manila_url), secrets)
            }
            (StorageBackend::Manila, Some(x)) => {
                let url = x.os_auth_url.clone().context(
                    "the manila back end needs the Keystone auth URL of a fake-manila \
                     (--os-auth-url, its first stdout line)",
                )?;
                let url = url.trim_end_matches('/').to_owned();
                let secrets = manila_secrets(
                    &url,
                    &x.os_user,
                    &x.os_password,
                    &x.os_project,
                    &x.os_domain,
                );
                (Some(url), None, secrets)
            }
        };
        let manila = match l.backend {
            StorageBackend::Manila => Some(ManilaAccess::new(&secrets)?),
            StorageBackend::Cephfs => None,
        };
        let driver_backend = match l.backend {
            StorageBackend::Cephfs => DriverBackend::Cephfs,
            StorageBackend::Manila => DriverBackend::Manila,
        };
        // One pool of connections to fake-ceph for every plugin's fake mounter: a pool
        // per plugin would hold up to (plugins x volumes in flight) sockets.
        let http = reqwest::Client::new();
        let config = |node_id: &str, mode: Mode, dir: &Path| {
            let mut c = Config::new(DRIVER_NAME, node_id, mode, parsed.clone());
            c.backend = driver_backend;
            c.mounter = MounterKind::Fake;
            c.state_dir = dir.join("state");
            if let Some(t) = ceph_timeout {
                c.ceph_timeout = t;
            }
            if let Some(t) = mount_timeout {
                c.mount_timeout = t;
            }
            if let Some(t) = manila_wait {
                c.manila_wait = t;
            }
            c
        };
        let cdir = root.path().join("controller");
        std::fs::create_dir_all(&cdir)?;
        let mut c = config("controller", Mode::Controller, &cdir);
        c.attach_required = l.attach_required;
        let (plugin, socket, channel) = serve(c.clone(), &cdir, &http, mount_timeout).await?;
        let controller = Served {
            node_id: "controller".into(),
            dir: cdir,
            socket,
            channel,
            config: c,
            plugin: Some(plugin),
        };
        let mut nodes = Vec::new();
        for i in 0..l.nodes {
            let node_id = node_name(i);
            let dir = root.path().join(&node_id);
            std::fs::create_dir_all(&dir)?;
            let c = config(&node_id, Mode::Node, &dir);
            let (plugin, socket, channel) = serve(c.clone(), &dir, &http, mount_timeout).await?;
            nodes.push(Served {
                node_id,
                dir,
                socket,
                channel,
                config: c,
                plugin: Some(plugin),
            });
        }
        let baseline = Inventory::take(&ceph, FS_NAME, &GROUPS, manila.as_ref())
            .await
            .context("reading what the back ends hold")?;
        Ok(Self {
            root,
            backend: l.backend,
            cluster,
            ceph_server,
            ceph,
            monitors,
            os_auth_url,
            manila_url,
            manila,
            baseline,
            clusters,
            secrets,
            controller,
            nodes,
            servers,
            http,
            mount_http_timeout: mount_timeout,
            manila_state,
            faults: FaultState {
                ceph_static: l.ceph_faults.rules.clone(),
                mds_down: l.ceph_faults.mds_down,
                manila_static: l.manila_faults.clone(),
                ..FaultState::default()
            },
        })
    }

    /// The temporary directory everything lives in.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// What provisions the volumes.
    pub fn backend(&self) -> StorageBackend {
        self.backend
    }

    /// fake-ceph's base URL.
    pub fn ceph_url(&self) -> &str {
        self.ceph.url()
    }

    /// fake-ceph's monitor addresses (as `mon dump` and export locations give them).
    pub fn monitors(&self) -> &[String] {
        &self.monitors
    }

    /// `client.admin`'s key at fake-ceph. A secret: never log it.
    pub fn ceph_admin_key(&self) -> &str {
        self.ceph.admin_key()
    }

    /// Keystone's auth URL (`.../v3`, what `os-authURL` holds), with the Manila back end.
    pub fn os_auth_url(&self) -> Option<&str> {
        self.os_auth_url.as_deref()
    }

    /// Manila's endpoint (its versions at `/`, the API under `/v2`), when this stack
    /// serves fake-manila itself; an external one is found through Keystone's catalog.
    pub fn manila_url(&self) -> Option<&str> {
        self.manila_url.as_deref()
    }

    /// The driver's cluster config (what `cephfs-csi --cluster-config` reads).
    pub fn cluster_config(&self) -> &serde_json::Value {
        &self.clusters
    }

    /// The CSI secrets of every call (provisioner and node-stage secret). Secrets: never
    /// log them.
    pub fn secrets(&self) -> &HashMap<String, String> {
        &self.secrets
    }

    /// The controller plugin's socket.
    pub fn controller_socket(&self) -> &Path {
        &self.controller.socket
    }

    /// Each node plugin's node ID, directory and socket.
    pub fn node_endpoints(&self) -> impl Iterator<Item = (&str, &Path, &Path)> {
        self.nodes
            .iter()
            .map(|n| (n.node_id.as_str(), n.dir.as_path(), n.socket.as_path()))
    }

    /// A channel to the controller plugin.
    pub fn controller_channel(&self) -> Channel {
        self.controller.channel.clone()
    }

    /// fake-ceph's MDS `perf dump` (`Null`, with a warning, when it cannot be read).
    pub async fn perf_dump(&self) -> serde_json::Value {
        match &self.cluster {
            Some(c) => c.perf_dump(),
            None => self.ceph.perf_dump(FS_NAME).await.unwrap_or_else(|e| {
                tracing::warn!("reading the MDS counters: {e:#}");
                serde_json::Value::Null
            }),
        }
    }

    /// The MDS sessions open at the in-process fake-ceph (`None` when it is external).
    pub fn session_count(&self) -> Option<usize> {
        self.cluster.as_ref().map(fake_ceph::Cluster::session_count)
    }

    fn served_mut(&mut self, which: Plugin) -> anyhow::Result<&mut Served> {
        match which {
            Plugin::Controller => Ok(&mut self.controller),
            Plugin::Node(i) => {
                let n = self.nodes.len();
                self.nodes
                    .get_mut(i)
                    .with_context(|| format!("no node {i} (the stack has {n})"))
            }
        }
    }

    /// Whether the plugin's server is running (not killed).
    pub fn is_running(&self, which: Plugin) -> bool {
        match which {
            Plugin::Controller => self.controller.plugin.is_some(),
            Plugin::Node(i) => self.nodes.get(i).is_some_and(|n| n.plugin.is_some()),
        }
    }

    /// Kills a plugin, as SIGKILL would: every connection to it breaks at once, which
    /// drops the handlers of the calls under way wherever they are (a Ceph command
    /// already sent is still carried out by fake-ceph; what the handler had not done yet
    /// is never done), and nothing answers on its socket until [`Embedded::restart`].
    /// Killing a killed plugin does nothing.
    pub async fn kill(&mut self, which: Plugin) -> anyhow::Result<()> {
        if let Some(p) = self.served_mut(which)?.plugin.take() {
            p.stop(true).await;
            tracing::info!(plugin = %which, "plugin killed");
        }
        Ok(())
    }

    /// Starts a new driver instance for a killed plugin, with the same configuration, on
    /// the same socket and state directory, and connects to it; returns the new channel.
    /// The driver keeps no state a restart loses (volumes and their journal are in Ceph,
    /// mounts in records under the state directory), which is what a soak checks.
    pub async fn restart(&mut self, which: Plugin) -> anyhow::Result<Channel> {
        let http = self.http.clone();
        let timeout = self.mount_http_timeout;
        let s = self.served_mut(which)?;
        anyhow::ensure!(s.plugin.is_none(), "the {which} plugin is running");
        let (plugin, _, channel) = serve(s.config.clone(), &s.dir.clone(), &http, timeout)
            .await
            .with_context(|| format!("restarting the {which} plugin"))?;
        s.plugin = Some(plugin);
        s.channel = channel.clone();
        tracing::info!(plugin = %which, "plugin restarted");
        Ok(channel)
    }

    /// A channel to a node plugin.
    pub fn node_channel(&self, i: usize) -> Option<Channel> {
        self.nodes.get(i).map(|n| n.channel.clone())
    }

    fn cluster_for_faults(&self) -> anyhow::Result<&fake_ceph::Cluster> {
        self.cluster.as_ref().context(
            "fake-ceph faults are switched on the embedded fake-ceph only (set an external \
             one's through its /admin/faults)",
        )
    }

    /// Opens (`Some`) or closes (`None`) fault window `window` of fake-ceph rules.
    pub fn set_ceph_window(
        &mut self,
        window: u32,
        rules: Option<Vec<fake_ceph::FaultRule>>,
    ) -> anyhow::Result<()> {
        self.cluster_for_faults()?;
        match rules {
            Some(r) => self.faults.ceph_windows.insert(window, r),
            None => self.faults.ceph_windows.remove(&window),
        };
        self.cluster_for_faults()?.set_faults(self.faults.ceph());
        Ok(())
    }

    /// Closes every fault window and brings the MDS back (the scenario's own faults
    /// stay).
    pub fn heal(&mut self) -> anyhow::Result<()> {
        if let Some(c) = &self.cluster {
            self.faults.ceph_windows.clear();
            self.faults.mds_down = false;
            c.set_faults(self.faults.ceph());
        }
        if let Some(m) = &self.manila_state {
            self.faults.manila_windows.clear();
            m.set_faults(self.faults.manila())
                .map_err(|e| anyhow::anyhow!("fake-manila faults: {e}"))?;
        }
        Ok(())
    }

    /// Takes the MDS down or brings it back.
    pub fn set_mds_down(&mut self, down: bool) -> anyhow::Result<()> {
        self.cluster_for_faults()?;
        self.faults.mds_down = down;
        self.cluster_for_faults()?.set_faults(self.faults.ceph());
        Ok(())
    }

    /// Opens (`Some`) or closes (`None`) window `window` of fake-manila faults.
    pub fn set_manila_window(
        &mut self,
        window: u32,
        faults: Option<fake_manila::Faults>,
    ) -> anyhow::Result<()> {
        let state = self.manila_state.as_ref().context(
            "fake-manila faults are switched on the embedded fake-manila only (a scenario \
             with backend manila)",
        )?;
        match faults {
            Some(f) => self.faults.manila_windows.insert(window, f),
            None => self.faults.manila_windows.remove(&window),
        };
        state
            .set_faults(self.faults.manila())
            .map_err(|e| anyhow::anyhow!("fake-manila faults: {e}"))
    }

    /// Evicts the MDS sessions of `node` (by the `hostname` a mount gives), or all, as
    /// `ceph tell <fs>:0 session evict [filters]` does; how many there were.
    pub async fn evict(&self, node: Option<usize>) -> anyhow::Result<usize> {
        let filters: Vec<String> = node
            .map(|i| vec![format!("client_metadata.hostname={}", node_name(i))])
            .unwrap_or_default();
        let ls = self
            .ceph
            .tell_mds(FS_NAME, json!({"prefix": "session ls", "filters": filters}))
            .await?;
        let n = ls.as_array().map_or(0, Vec::len);
        self.ceph
            .tell_mds(
                FS_NAME,
                json!({"prefix": "session evict", "filters": filters}),
            )
            .await?;
        Ok(n)
    }

    /// As an operator with Manila's admin role would: resets every share stuck in
    /// `creating` to `error` (`reset_status`), so that the driver's retry deletes it and
    /// makes another; how many. Uses fake-manila's default admin (`admin`/`admin`).
    pub async fn reset_stuck_shares(&self) -> anyhow::Result<usize> {
        let (Some(auth), Some(manila)) = (&self.os_auth_url, &self.manila_url) else {
            anyhow::bail!("no embedded fake-manila to reset shares on");
        };
        crate::inventory::reset_stuck_shares(auth, manila).await
    }

    /// Kills the embedded fake-ceph and starts it again on the same data directory and
    /// port, as a restart of the cluster's daemons would: every connection to it breaks
    /// (the calls under way get no answer), the new process recovers what the old one
    /// acknowledged from its durable metadata (volumes, cephx users, the driver's
    /// journal; the admin key and fsid stay), and MDS sessions are gone, as after an MDS
    /// failover. The faults in force (the scenario's and the open windows, the MDS down)
    /// are set again on the new instance. Needs [`Launch::durable_ceph`].
    pub async fn restart_ceph(&mut self) -> anyhow::Result<()> {
        self.cluster_for_faults()?;
        let server = self
            .ceph_server
            .as_mut()
            .context("no embedded fake-ceph to restart")?;
        anyhow::ensure!(
            server.config.metadata == fake_ceph::Metadata::Durable,
            "restarting fake-ceph needs its metadata kept on disk (Launch::durable_ceph): \
             a restart would lose every volume and the driver's journal"
        );
        // The kill: the serving task owns every connection task, so aborting it drops
        // them all; the old cluster goes with the last of them.
        server.task.abort();
        let _ = (&mut server.task).await;
        self.cluster = None;
        // The old instance's store is released when its last handle is dropped (aborted
        // connection tasks are dropped by the runtime soon after); until then the new
        // one is refused its lock.
        let deadline = Instant::now() + Duration::from_secs(10);
        let cluster = loop {
            match fake_ceph::Cluster::new(server.config.clone()) {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "fake-ceph not released yet");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(anyhow::Error::from(e).context("restarting fake-ceph")),
            }
        };
        anyhow::ensure!(
            cluster.admin_key() == self.ceph.admin_key(),
            "fake-ceph came back with another admin key"
        );
        let listener = loop {
            match tokio::net::TcpListener::bind(server.addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "fake-ceph's port not free yet");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => {
                    return Err(anyhow::Error::from(e)
                        .context(format!("binding fake-ceph's port {} again", server.addr)));
                }
            }
        };
        cluster.set_faults(self.faults.ceph());
        server.task = spawn_ceph(&cluster, listener);
        server.restarts += 1;
        self.cluster = Some(cluster);
        Ok(())
    }

    /// What the back ends hold now and did not hold when the stack was up, and what is
    /// left in the plugins' directories.
    pub async fn leaks(&self) -> Leaks {
        let new = match Inventory::take(&self.ceph, FS_NAME, &GROUPS, self.manila.as_ref()).await {
            Ok(now) => now.since(&self.baseline, self.manila.as_ref()).await,
            Err(e) => Err(e),
        };
        let mut leaks = match new {
            Ok(n) => Leaks {
                mds_sessions: n.sessions,
                subvolumes: n.subvolumes,
                shares: n.shares,
                access_rules: n.access_rules,
                cephx_users: n.cephx_users,
                journal_entries: n.journal_entries,
                journal_objects: n.journal_objects,
                ..Leaks::default()
            },
            Err(e) => Leaks {
                error: Some(format!("{e:#}")),
                ..Leaks::default()
            },
        };
        for n in &self.nodes {
            leaks.mount_records += count_files(&n.dir.join("state").join("fake-mounts"));
            leaks.files += count_files(&n.dir);
        }
        leaks.files += count_files(&self.controller.dir);
        leaks.files -= leaks.mount_records;
        leaks.files += self.stray_files();
        leaks
    }

    /// Files in the run's temporary directory outside what is expected there: the
    /// owner file, fake-ceph's data directory, the harness's own keyring and the
    /// plugins' directories (counted on their own).
    fn stray_files(&self) -> usize {
        let Ok(rd) = std::fs::read_dir(self.root.path()) else {
            return 0;
        };
        let plugin_dirs: BTreeSet<PathBuf> = std::iter::once(&self.controller)
            .chain(&self.nodes)
            .map(|s| s.dir.clone())
            .collect();
        let mut n = 0;
        for e in rd.flatten() {
            let name = e.file_name();
            if name == OWNER_FILE || name == "ceph" || name == "keys" {
                continue;
            }
            let path = e.path();
            if plugin_dirs.contains(&path) {
                continue;
            }
            n += if path.is_dir() { count_files(&path) } else { 1 };
        }
        n
    }

    /// What the back ends hold now (a checkpoint of a soak), read over the wire.
    pub async fn inventory(&self) -> anyhow::Result<Inventory> {
        Inventory::take(&self.ceph, FS_NAME, &GROUPS, self.manila.as_ref()).await
    }

    /// Stops every plugin, then fake-manila and fake-ceph, and removes the directory.
    pub async fn shutdown(mut self) {
        let mut running: Vec<PluginServer> = std::iter::once(&mut self.controller)
            .chain(self.nodes.iter_mut())
            .filter_map(|s| s.plugin.take())
            .collect();
        for p in &mut running {
            if let Some(s) = p.stop.take() {
                let _ = s.send(());
            }
        }
        for p in running {
            p.stop(false).await;
        }
        for s in self.servers.drain(..) {
            s.abort();
            let _ = s.await;
        }
        if let Some(c) = self.ceph_server.take() {
            c.task.abort();
            let _ = c.task.await;
        }
        let path = self.root.path().to_owned();
        if let Err(e) = self.root.close() {
            tracing::warn!("removing {}: {e}", path.display());
        }
    }
}

struct NodePlugin {
    client: NodeClient<Channel>,
    dir: PathBuf,
}

/// A real call: its method, and the task making it or, once awaited, its outcome and
/// wall time.
type InFlight = (&'static str, CallState);

enum CallState {
    Running(tokio::task::JoinHandle<(CsiOutcome, Duration)>),
    Done(CsiOutcome, Duration),
}

/// Measured wall-clock latency of real calls, by method.
pub type WallLatencies = BTreeMap<&'static str, hdrhistogram::Histogram<u64>>;

/// The simulation's real back end: an [`Embedded`] stack and the calls under way.
pub struct RealCsi {
    stack: Embedded,
    secrets: HashMap<String, String>,
    parameters: HashMap<String, String>,
    controller: ControllerClient<Channel>,
    nodes: Vec<NodePlugin>,
    inflight: HashMap<u64, InFlight>,
    permits: Arc<Semaphore>,
    /// Measured wall latency per method, microseconds.
    pub wall: WallLatencies,
    /// The most MDS sessions fake-ceph had open when a NodeStage finished or its
    /// counters were read.
    peak_sessions: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for RealCsi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealCsi")
            .field("stack", &self.stack)
            .finish_non_exhaustive()
    }
}

impl RealCsi {
    /// Starts the [`Embedded`] stack `l` describes, on `external` back ends when given;
    /// at most `max_inflight` calls are made at once.
    pub async fn launch(
        l: Launch,
        max_inflight: usize,
        external: Option<&External>,
    ) -> anyhow::Result<Self> {
        let stack = Embedded::launch_on(l, "harness-", external).await?;
        let nodes = stack
            .nodes
            .iter()
            .map(|n| NodePlugin {
                client: NodeClient::new(n.channel.clone()),
                dir: n.dir.clone(),
            })
            .collect();
        Ok(Self {
            secrets: stack.secrets.clone(),
            parameters: storage_class_parameters(stack.backend)
                .into_iter()
                .collect(),
            controller: ControllerClient::new(stack.controller_channel()),
            nodes,
            stack,
            inflight: HashMap::new(),
            permits: Arc::new(Semaphore::new(max_inflight.max(1))),
            wall: BTreeMap::new(),
            peak_sessions: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    async fn start(&mut self, id: u64, call: CsiCall) {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let controller = self.controller.clone();
        let node = match &call {
            CsiCall::NodeStage { node, .. }
            | CsiCall::NodePublish { node, .. }
            | CsiCall::NodeUnpublish { node, .. }
            | CsiCall::NodeUnstage { node, .. } => self
                .nodes
                .get(*node)
                .map(|n| (n.client.clone(), n.dir.clone())),
            _ => None,
        };
        let secrets = self.secrets.clone();
        let parameters = match call {
            CsiCall::CreateVolume { .. } => self.parameters.clone(),
            _ => HashMap::new(),
        };
        let method = call.method();
        let task = tokio::spawn(async move {
            let t0 = Instant::now();
            let r = call_real(controller, node, secrets, parameters, call, permit).await;
            (r, t0.elapsed())
        });
        self.inflight.insert(id, (method, CallState::Running(task)));
    }

    async fn finish(&mut self, id: u64) -> CsiOutcome {
        let Some((method, state)) = self.inflight.remove(&id) else {
            return Err((tonic::Code::Internal, "unknown call".into()));
        };
        let (r, took) = match state {
            CallState::Done(r, took) => (r, took),
            CallState::Running(task) => match task.await {
                Ok(x) => x,
                Err(e) => return Err((tonic::Code::Internal, format!("call task: {e}"))),
            },
        };
        if method == "NodeStageVolume"
            && let Some(n) = self.stack.session_count()
        {
            self.peak_sessions
                .fetch_max(n, std::sync::atomic::Ordering::Relaxed);
        }
        let h = self.wall.entry(method).or_insert_with(|| {
            hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 2)
                .expect("valid histogram bounds")
        });
        let _ = h.record((took.as_micros() as u64).max(1));
        r
    }

    async fn leaks(&self) -> Leaks {
        self.stack.leaks().await
    }

    /// Waits for every real call under way to finish (keeping the outcomes for
    /// [`RealCsi::finish`]), so that what happens next meets a quiet back end.
    async fn drain(&mut self) {
        let mut ids: Vec<u64> = self.inflight.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some((method, state)) = self.inflight.remove(&id) else {
                continue;
            };
            let state = match state {
                CallState::Running(task) => match task.await {
                    Ok((r, took)) => CallState::Done(r, took),
                    Err(e) => CallState::Done(
                        Err((tonic::Code::Internal, format!("call task: {e}"))),
                        Duration::ZERO,
                    ),
                },
                done => done,
            };
            self.inflight.insert(id, (method, state));
        }
    }

    /// Forgets calls whose outcome the simulation no longer takes (a kill cut them):
    /// their tasks run to their end on their own.
    fn abandon(&mut self, ids: &[u64]) {
        for id in ids {
            self.inflight.remove(id);
        }
    }

    /// Kills a plugin (see [`Embedded::kill`]).
    async fn kill(&mut self, which: Plugin) -> anyhow::Result<()> {
        self.stack.kill(which).await
    }

    /// Restarts a killed plugin and connects the clients to the new instance.
    async fn restart(&mut self, which: Plugin) -> anyhow::Result<()> {
        let channel = self.stack.restart(which).await?;
        match which {
            Plugin::Controller => self.controller = ControllerClient::new(channel),
            Plugin::Node(i) => {
                if let Some(n) = self.nodes.get_mut(i) {
                    n.client = NodeClient::new(channel);
                }
            }
        }
        Ok(())
    }

    /// Applies a fault step to the back ends (kills and restarts go through
    /// [`RealCsi::kill`] and [`RealCsi::restart`]).
    async fn inject(
        &mut self,
        action: &crate::fault::Action,
    ) -> anyhow::Result<crate::fault::Applied> {
        use crate::fault::{Action, Applied};
        let rules = |specs: &[String]| -> anyhow::Result<Vec<fake_ceph::FaultRule>> {
            specs
                .iter()
                .map(|r| {
                    r.parse::<fake_ceph::FaultSpec>()
                        .map(|s| s.0)
                        .map_err(anyhow::Error::from)
                })
                .collect()
        };
        let mut applied = Applied::default();
        match action {
            Action::CephRulesOn { window, rules: r } => {
                self.stack.set_ceph_window(*window, Some(rules(r)?))?;
            }
            Action::CephRulesOff { window } => self.stack.set_ceph_window(*window, None)?,
            Action::MdsDown => self.stack.set_mds_down(true)?,
            Action::MdsUp => self.stack.set_mds_down(false)?,
            Action::Evict { node } => applied.sessions_evicted = self.stack.evict(*node).await?,
            Action::ManilaFaultsOn { window, faults } => {
                self.stack
                    .set_manila_window(*window, Some(faults.clone()))?;
            }
            Action::ManilaFaultsOff { window } => self.stack.set_manila_window(*window, None)?,
            Action::ResetStuckShares => {
                applied.shares_reset = self.stack.reset_stuck_shares().await?
            }
            Action::Kill { plugin } => self.kill(*plugin).await?,
            Action::Restart { plugin } => self.restart(*plugin).await?,
            Action::RestartCeph => self.stack.restart_ceph().await?,
        }
        Ok(applied)
    }

    /// Heals the back ends after a run: closes every fault window, brings the MDS back
    /// and restarts every killed plugin, so that the leak check reads a healthy cluster.
    async fn heal(&mut self) -> anyhow::Result<()> {
        self.drain().await;
        self.stack.heal()?;
        let killed: Vec<Plugin> = std::iter::once(Plugin::Controller)
            .chain((0..self.nodes.len()).map(Plugin::Node))
            .filter(|p| !self.stack.is_running(*p))
            .collect();
        for p in killed {
            self.restart(p).await?;
        }
        Ok(())
    }

    /// What the back ends hold now (a checkpoint), read over the wire.
    pub async fn inventory(&self) -> anyhow::Result<Inventory> {
        self.stack.inventory().await
    }

    /// fake-ceph's MDS `perf dump`.
    pub async fn perf_dump(&self) -> serde_json::Value {
        let d = self.stack.perf_dump().await;
        if let Some(n) = d["mds_sessions"]["session_count"].as_u64() {
            self.peak_sessions
                .fetch_max(n as usize, std::sync::atomic::Ordering::Relaxed);
        }
        d
    }

    /// The most MDS sessions fake-ceph had open when a NodeStage finished (embedded
    /// fake-ceph) or its counters were read.
    pub fn peak_sessions(&self) -> usize {
        self.peak_sessions
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The in-process fake-ceph (the busy workload charges its MDS); `None` when the
    /// back ends are external.
    pub fn cluster(&self) -> Option<&fake_ceph::Cluster> {
        self.stack.cluster.as_ref()
    }

    /// Stops every plugin and the fakes.
    pub async fn shutdown(self) {
        self.stack.shutdown().await;
    }
}

pub use crate::naming::node_name;

/// Regular files (not sockets or directories) under `dir`.
fn count_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            n += count_files(&e.path());
        } else if ft.is_file() || ft.is_symlink() {
            n += 1;
        }
    }
    n
}

/// Serves a plugin with `config` on `dir/csi.sock` (a killed plugin's socket is replaced)
/// and connects to it. The fake mounters of all plugins share `http`'s connection pool
/// to fake-ceph; `http_timeout` is their deadline per call.
async fn serve(
    config: Config,
    dir: &Path,
    http: &reqwest::Client,
    http_timeout: Option<Duration>,
) -> anyhow::Result<(PluginServer, PathBuf, Channel)> {
    use tokio_stream::StreamExt as _;
    let socket = dir.join("csi.sock");
    let mut mounter = FakeMounter::new(config.state_dir.clone(), FakeMountMode::Symlink)
        .with_client(http.clone());
    if let Some(t) = http_timeout {
        mounter = mounter.with_http_timeout(t);
    }
    let mounter: Arc<dyn Mounter> = Arc::new(mounter);
    let driver = Arc::new(Driver::new(config, vec![mounter])?);
    // As the driver's own `serve` does: a stale socket (a killed plugin's) is replaced,
    // and the socket appears only once it is listening.
    match std::fs::remove_file(&socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(anyhow::Error::from(e).context(format!("removing {}", socket.display())));
        }
    }
    let listener = driver::server::bind_unix(&socket)
        .with_context(|| format!("binding {}", socket.display()))?;
    let (tx, rx) = oneshot::channel::<()>();
    let (kill, killed) = watch::channel(false);
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener)
        .map(move |conn| conn.map(|io| Killable::new(io, killed.clone())));
    let task = tokio::spawn(async move {
        let served = driver::server::router(driver)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = served {
            tracing::warn!("a plugin's server failed: {e}");
        }
    });
    // A loaded machine may take a while: wait up to 30 s, then connect (retrying, as a
    // CO retries a plugin that is starting).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let channel = loop {
        let s = socket.clone();
        let attempt = if socket.exists() {
            Endpoint::try_from("http://[::]:50051")?
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let s = s.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(s).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                }))
                .await
                .map_err(anyhow::Error::from)
        } else {
            Err(anyhow::anyhow!("the socket is not there yet"))
        };
        match attempt {
            Ok(c) => break c,
            Err(e) if std::time::Instant::now() > deadline => {
                return Err(e.context(format!("connecting to {}", socket.display())));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    Ok((
        PluginServer {
            stop: Some(tx),
            kill,
            task,
        },
        socket,
        channel,
    ))
}

fn cap() -> VolumeCapability {
    VolumeCapability {
        access_type: Some(volume_capability::AccessType::Mount(Default::default())),
        access_mode: Some(volume_capability::AccessMode {
            mode: volume_capability::access_mode::Mode::MultiNodeMultiWriter as i32,
        }),
    }
}

fn status(s: tonic::Status) -> (tonic::Code, String) {
    (s.code(), s.message().to_owned())
}

async fn call_real(
    mut controller: ControllerClient<Channel>,
    node: Option<(NodeClient<Channel>, PathBuf)>,
    secrets: HashMap<String, String>,
    parameters: HashMap<String, String>,
    call: CsiCall,
    _permit: OwnedSemaphorePermit,
) -> CsiOutcome {
    let path = |rel: &str| -> String {
        node.as_ref()
            .map(|(_, d)| d.join("kubelet").join(rel).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let nc = || {
        node.as_ref()
            .map(|(c, _)| c.clone())
            .ok_or((tonic::Code::NotFound, "no such node".to_owned()))
    };
    match call {
        CsiCall::CreateVolume { name } => {
            let r = controller
                .create_volume(CreateVolumeRequest {
                    name,
                    capacity_range: Some(CapacityRange {
                        required_bytes: 1 << 30,
                        limit_bytes: 0,
                    }),
                    volume_capabilities: vec![cap()],
                    parameters,
                    secrets,
                    ..Default::default()
                })
                .await
                .map_err(status)?
                .into_inner();
            let v = r
                .volume
                .ok_or((tonic::Code::Internal, "no volume".to_owned()))?;
            Ok(CsiReply::Created {
                volume_id: v.volume_id,
                context: v.volume_context.into_iter().collect(),
            })
        }
        CsiCall::DeleteVolume { volume_id } => {
            controller
                .delete_volume(DeleteVolumeRequest { volume_id, secrets })
                .await
                .map_err(status)?;
            Ok(CsiReply::Done)
        }
        CsiCall::ControllerPublish { volume_id, node } => {
            controller
                .controller_publish_volume(ControllerPublishVolumeRequest {
                    volume_id,
                    node_id: node_name(node),
                    volume_capability: Some(cap()),
                    secrets,
                    ..Default::default()
                })
                .await
                .map_err(status)?;
            Ok(CsiReply::Done)
        }
        CsiCall::ControllerUnpublish { volume_id, node } => {
            controller
                .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
                    volume_id,
                    node_id: node_name(node),
                    secrets,
                })
                .await
                .map_err(status)?;
            Ok(CsiReply::Done)
        }
        CsiCall::NodeStage {
            volume_id,
            context,
            staging,
            ..
        } => {
            let staging = path(&staging);
            // The CO creates the staging directory (CSI spec).
            std::fs::create_dir_all(&staging)
                .map_err(|e| (tonic::Code::Internal, format!("kubelet mkdir: {e}")))?;
            nc()?
                .node_stage_volume(NodeStageVolumeRequest {
                    volume_id,
                    staging_target_path: staging,
                    volume_capability: Some(cap()),
                    secrets,
                    volume_context: context.into_iter().collect(),
                    ..Default::default()
                })
                .await
                .map_err(status)?;
            Ok(CsiReply::Done)
        }
        CsiCall::NodePublish {
            volume_id,
            context,
            staging,
            target,
            ..
        } => {
            nc()?
                .node_publish_volume(NodePublishVolumeRequest {
                    volume_id,
                    staging_target_path: path(&staging),
                    target_path: path(&target),
                    volume_capability: Some(cap()),
                    volume_context: context.into_iter().collect(),
                    ..Default::default()
                })
                .await
                .map_err(status)?;
            Ok(CsiReply::Done)
        }
        CsiCall::NodeUnpublish {
            volume_id, target, ..
        } => {
            let t = path(&target);
            nc()?
                .node_unpublish_volume(NodeUnpublishVolumeRequest {
                    volume_id,
                    target_path: t.clone(),
                })
                .await
                .map_err(status)?;
            // The kubelet removes the pod's volume directories.
            remove_empty_up(Path::new(&t), 4);
            Ok(CsiReply::Done)
        }
        CsiCall::NodeUnstage {
            volume_id, staging, ..
        } => {
            let s = path(&staging);
            nc()?
                .node_unstage_volume(NodeUnstageVolumeRequest {
                    volume_id,
                    staging_target_path: s.clone(),
                })
                .await
                .map_err(status)?;
            remove_empty_up(Path::new(&s), 3);
            Ok(CsiReply::Done)
        }
    }
}

/// Removes `p` and up to `levels` empty parents (what the kubelet cleans after itself).
fn remove_empty_up(p: &Path, levels: usize) {
    let mut at = Some(p);
    for _ in 0..=levels {
        let Some(d) = at else { break };
        if std::fs::remove_dir(d).is_err() && d.exists() {
            break;
        }
        at = d.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_directories_of_dead_runs_are_removed() {
        let base = tempfile::tempdir().unwrap();
        let make = |name: &str, owner: Option<&str>| {
            let d = base.path().join(name);
            std::fs::create_dir_all(d.join("ceph")).unwrap();
            std::fs::write(d.join("ceph").join("keyring"), "secret").unwrap();
            if let Some(o) = owner {
                std::fs::write(d.join(OWNER_FILE), o).unwrap();
            }
            d
        };
        let me = process_identity(std::process::id()).unwrap();
        let pid = std::process::id();
        let dead = make("harness-dead", Some("4194304999 1"));
        let reused = make("harness-reused", Some(&format!("{pid} 1")));
        let live = make("harness-live", Some(&me));
        let unowned = make("harness-unowned", None);
        let other = make("other-dead", Some("4194304999 1"));
        remove_abandoned(base.path(), "harness-");
        assert!(!dead.exists());
        // A PID that now belongs to another process (another start time) is gone too.
        assert!(!reused.exists());
        assert!(live.exists() && unowned.exists() && other.exists());
    }
}
