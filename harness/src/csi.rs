//! The CSI side of the simulation: the calls controllers and kubelets make, and the two
//! back ends that answer them. [`RealCsi`] runs fake-ceph on loopback, the driver's
//! controller plugin and one node plugin per simulated node, each on its own Unix socket,
//! and makes every call over real gRPC. [`MockCsi`] answers from memory, with scripted
//! failures, for the controllers' unit tests.
//!
//! A call is started when the simulation issues it and finished when its simulated
//! duration has passed; the simulation awaits the real outcome only then. The outcome of
//! a call depends on the calls finished before it was started (the simulation serialises
//! calls on one volume and node), never on wall-clock timing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use driver::config::{Config, Mode, MounterKind, parse_clusters};
use driver::csi::v1::controller_client::ControllerClient;
use driver::csi::v1::node_client::NodeClient;
use driver::csi::v1::*;
use driver::driver::Driver;
use driver::mount::Mounter;
use driver::mount::fake::{FakeMountMode, FakeMounter};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tonic::transport::{Channel, Endpoint, Uri};

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

/// What is left behind in the back end after teardown.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Leaks {
    /// Open MDS sessions.
    pub mds_sessions: usize,
    /// Subvolumes in the CSI group.
    pub subvolumes: usize,
    /// Fake mount records (staged volumes) on any node.
    pub mount_records: usize,
    /// Files left anywhere under the nodes' directories (key files, stray state).
    pub files: usize,
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
}

/// In-memory CSI: volumes, stages and publishes as sets; the first `fail[method]` calls of
/// a method fail with `Unavailable`.
#[derive(Debug, Default)]
pub struct MockCsi {
    volumes: BTreeSet<String>,
    staged: BTreeSet<(usize, String)>,
    published: BTreeSet<(usize, String)>,
    results: BTreeMap<u64, CsiOutcome>,
    /// Calls of a method still to fail.
    pub fail: BTreeMap<&'static str, u32>,
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
            files: 0,
        }
    }
}

struct Plugin {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

struct NodePlugin {
    client: NodeClient<Channel>,
    dir: PathBuf,
}

/// A real call under way: its method and the task making it (outcome, wall time).
type InFlight = (
    &'static str,
    tokio::task::JoinHandle<(CsiOutcome, Duration)>,
);

/// Measured wall-clock latency of real calls, by method.
pub type WallLatencies = BTreeMap<&'static str, hdrhistogram::Histogram<u64>>;

/// fake-ceph, the controller plugin and the node plugins, in-process.
pub struct RealCsi {
    root: tempfile::TempDir,
    cluster: fake_ceph::Cluster,
    secrets: HashMap<String, String>,
    controller: ControllerClient<Channel>,
    nodes: Vec<NodePlugin>,
    plugins: Vec<Plugin>,
    ceph_task: tokio::task::JoinHandle<()>,
    inflight: HashMap<u64, InFlight>,
    permits: Arc<Semaphore>,
    /// Measured wall latency per method, microseconds.
    pub wall: WallLatencies,
    /// The most MDS sessions fake-ceph had open when a NodeStage finished.
    pub peak_sessions: usize,
}

impl std::fmt::Debug for RealCsi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealCsi")
            .field("root", &self.root.path())
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

impl RealCsi {
    /// Starts fake-ceph (seeded), the controller plugin and `nodes` node plugins under a
    /// temporary directory (on `/dev/shm` when there is one).
    pub async fn launch(
        seed: u64,
        nodes: usize,
        attach_required: bool,
        max_inflight: usize,
    ) -> anyhow::Result<Self> {
        let shm = Path::new("/dev/shm");
        let root = if shm.is_dir() {
            tempfile::Builder::new()
                .prefix("harness-")
                .tempdir_in(shm)
                .or_else(|_| tempfile::Builder::new().prefix("harness-").tempdir())
        } else {
            tempfile::Builder::new().prefix("harness-").tempdir()
        }
        .context("temporary directory")?;
        let config = fake_ceph::Config {
            seed,
            data_dir: Some(root.path().join("ceph")),
            ..Default::default()
        };
        let cluster = fake_ceph::Cluster::new(config).context("fake-ceph")?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = fake_ceph::router(cluster.clone());
        let ceph_task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let r = cluster
            .admin_command(json!({"prefix": "fs subvolumegroup create", "vol_name": "cephfs", "group_name": "csi"}))
            .await;
        anyhow::ensure!(r.ret == 0, "creating the csi group: {}", r.outs);
        let clusters = parse_clusters(
            &json!([{"clusterID": "c1", "monitors": ["127.0.0.1:6789"], "cephFS": {"subvolumeGroup": "csi"},
                     "admin": {"transport": "http", "url": url}}])
            .to_string(),
        )?;
        let secrets = HashMap::from([
            ("adminID".to_owned(), "admin".to_owned()),
            ("adminKey".to_owned(), cluster.admin_key()),
        ]);
        let mut plugins = Vec::new();
        let cdir = root.path().join("controller");
        std::fs::create_dir_all(&cdir)?;
        let mut config = Config::new(
            DRIVER_NAME,
            "controller",
            Mode::Controller,
            clusters.clone(),
        );
        config.attach_required = attach_required;
        config.mounter = MounterKind::Fake;
        config.state_dir = cdir.join("state");
        let (plugin, channel) = serve(config, &cdir).await?;
        plugins.push(plugin);
        let controller = ControllerClient::new(channel);
        let mut node_plugins = Vec::new();
        for i in 0..nodes {
            let dir = root.path().join(node_name(i));
            std::fs::create_dir_all(&dir)?;
            let mut config = Config::new(DRIVER_NAME, &node_name(i), Mode::Node, clusters.clone());
            config.mounter = MounterKind::Fake;
            config.state_dir = dir.join("state");
            let (plugin, channel) = serve(config, &dir).await?;
            plugins.push(plugin);
            node_plugins.push(NodePlugin {
                client: NodeClient::new(channel),
                dir,
            });
        }
        Ok(Self {
            root,
            cluster,
            secrets,
            controller,
            nodes: node_plugins,
            plugins,
            ceph_task,
            inflight: HashMap::new(),
            permits: Arc::new(Semaphore::new(max_inflight.max(1))),
            wall: BTreeMap::new(),
            peak_sessions: 0,
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
        let method = call.method();
        let task = tokio::spawn(async move {
            let t0 = Instant::now();
            let r = call_real(controller, node, secrets, call, permit).await;
            (r, t0.elapsed())
        });
        self.inflight.insert(id, (method, task));
    }

    async fn finish(&mut self, id: u64) -> CsiOutcome {
        let Some((method, task)) = self.inflight.remove(&id) else {
            return Err((tonic::Code::Internal, "unknown call".into()));
        };
        let (r, took) = match task.await {
            Ok(x) => x,
            Err(e) => return Err((tonic::Code::Internal, format!("call task: {e}"))),
        };
        if method == "NodeStageVolume" {
            self.peak_sessions = self.peak_sessions.max(self.cluster.session_count());
        }
        let h = self.wall.entry(method).or_insert_with(|| {
            hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 2)
                .expect("valid histogram bounds")
        });
        let _ = h.record((took.as_micros() as u64).max(1));
        r
    }

    async fn leaks(&self) -> Leaks {
        let r = self
            .cluster
            .admin_command(
                json!({"prefix": "fs subvolume ls", "vol_name": "cephfs", "group_name": "csi"}),
            )
            .await;
        let subvolumes = serde_json::from_str::<serde_json::Value>(&r.outb)
            .ok()
            .and_then(|v| v.as_array().map(Vec::len))
            .unwrap_or(usize::MAX);
        let mut mount_records = 0;
        let mut files = 0;
        for n in &self.nodes {
            mount_records += count_files(&n.dir.join("state").join("fake-mounts"));
            files += count_files(&n.dir);
        }
        Leaks {
            mds_sessions: self.cluster.session_count(),
            subvolumes,
            mount_records,
            files: files - mount_records,
        }
    }

    /// fake-ceph's MDS `perf dump`.
    pub fn perf_dump(&self) -> serde_json::Value {
        self.cluster.perf_dump()
    }

    /// Stops every plugin and fake-ceph.
    pub async fn shutdown(mut self) {
        for p in &mut self.plugins {
            if let Some(s) = p.stop.take() {
                let _ = s.send(());
            }
        }
        for p in self.plugins.drain(..) {
            let _ = p.task.await;
        }
        self.ceph_task.abort();
    }
}

/// The deterministic name of node `i`.
pub fn node_name(i: usize) -> String {
    format!("node-{:04}", i + 1)
}

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

async fn serve(config: Config, dir: &Path) -> anyhow::Result<(Plugin, Channel)> {
    let socket = dir.join("csi.sock");
    let mounter: Arc<dyn Mounter> = Arc::new(FakeMounter::new(
        config.state_dir.clone(),
        FakeMountMode::Symlink,
    ));
    let driver = Arc::new(Driver::new(config, vec![mounter])?);
    let (tx, rx) = oneshot::channel::<()>();
    let endpoint = driver::server::Endpoint::Unix(socket.clone());
    let task = tokio::spawn(async move {
        let _ = driver::server::serve(driver, &endpoint, async {
            let _ = rx.await;
        })
        .await;
    });
    // A loaded machine may take a while to bind the socket: wait up to 30 s, then connect
    // (retrying, as a CO retries a plugin that is starting).
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
        Plugin {
            stop: Some(tx),
            task,
        },
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
                    parameters: HashMap::from([
                        ("clusterID".to_owned(), "c1".to_owned()),
                        ("fsName".to_owned(), "cephfs".to_owned()),
                    ]),
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
