//! A fake Ceph cluster on a loopback port and a driver on a Unix socket, in-process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use driver::Driver;
use driver::config::{Config, Mode, MounterKind, parse_clusters};
use driver::csi::v1::controller_client::ControllerClient;
use driver::csi::v1::identity_client::IdentityClient;
use driver::csi::v1::node_client::NodeClient;
use driver::csi::v1::*;
use driver::mount::Mounter;
use driver::mount::fake::{FakeMountMode, FakeMounter};
use fake_ceph::Cluster;
use serde_json::json;
use tonic::transport::{Channel, Endpoint, Uri};

/// fake-ceph served on loopback, with the `csi` group created.
pub struct Ceph {
    pub cluster: Cluster,
    pub url: String,
    pub admin_key: String,
}

impl Ceph {
    pub async fn start() -> Self {
        let mut config = fake_ceph::Config::default();
        config.volumes.clone_time = Duration::from_millis(200);
        config.volumes.clone_pickup = Duration::ZERO;
        Self::start_config(config).await
    }

    /// fake-ceph with this config (its clock, clone times, faults).
    pub async fn start_config(config: fake_ceph::Config) -> Self {
        let cluster = Cluster::new(config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = fake_ceph::router(cluster.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let r = cluster
            .admin_command(json!({"prefix": "fs subvolumegroup create", "vol_name": "cephfs", "group_name": "csi"}))
            .await;
        assert_eq!(r.ret, 0);
        let admin_key = cluster.admin_key();
        Self {
            cluster,
            url,
            admin_key,
        }
    }

    pub fn cluster_config(&self) -> String {
        json!([{"clusterID": "c1", "monitors": ["127.0.0.1:6789"], "cephFS": {"subvolumeGroup": "csi"},
                "admin": {"transport": "http", "url": self.url}}])
        .to_string()
    }

    /// Subvolumes in the csi group.
    pub async fn subvolumes(&self) -> Vec<String> {
        let r = self
            .cluster
            .admin_command(
                json!({"prefix": "fs subvolume ls", "vol_name": "cephfs", "group_name": "csi"}),
            )
            .await;
        let v: serde_json::Value = serde_json::from_str(&r.outb).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The omap keys of a journal object (metadata pool, the `csi` namespace).
    pub async fn omap_keys(&self, object: &str) -> Vec<String> {
        let r = self
            .cluster
            .admin_command(
                json!({"prefix": "rados omap list", "pool": "cephfs.cephfs.meta",
                                  "namespace": "csi", "object": object, "start_after": "",
                                  "filter_prefix": "", "max_return": 10000}),
            )
            .await;
        if r.ret == -2 {
            return Vec::new();
        }
        assert_eq!(r.ret, 0, "{}", r.outs);
        let v: serde_json::Value = serde_json::from_str(&r.outb).unwrap();
        v["vals"].as_object().unwrap().keys().cloned().collect()
    }

    pub fn secrets(&self) -> HashMap<String, String> {
        HashMap::from([
            ("adminID".to_owned(), "admin".to_owned()),
            ("adminKey".to_owned(), self.admin_key.clone()),
        ])
    }
}

/// A driver (controller and node) serving on a Unix socket in a temporary directory.
pub struct Csi {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub driver: Arc<Driver>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Csi {
    pub async fn start(ceph: &Ceph) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        Self::start_in(ceph, dir, state_dir).await
    }

    pub async fn start_in(ceph: &Ceph, dir: tempfile::TempDir, state_dir: PathBuf) -> Self {
        let clusters = ceph.cluster_config();
        Self::start_with(dir, state_dir, &clusters).await
    }

    /// A driver whose clusters carry `controllerCredentials` (the admin key, in a keyring
    /// file in the driver's directory), so the RPCs without secrets work.
    pub async fn start_standing(ceph: &Ceph) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keyring = dir.path().join("keyring");
        std::fs::write(
            &keyring,
            format!("[client.admin]\n\tkey = {}\n", ceph.admin_key),
        )
        .unwrap();
        let mut clusters: serde_json::Value = serde_json::from_str(&ceph.cluster_config()).unwrap();
        clusters[0]["controllerCredentials"] = json!({"userID": "admin", "keyFile": keyring});
        let state_dir = dir.path().join("state");
        Self::start_with(dir, state_dir, &clusters.to_string()).await
    }

    pub async fn start_with(dir: tempfile::TempDir, state_dir: PathBuf, clusters: &str) -> Self {
        let fake: Arc<dyn Mounter> =
            Arc::new(FakeMounter::new(state_dir.clone(), FakeMountMode::Symlink));
        Self::start_mounting(
            dir,
            state_dir,
            clusters,
            MounterKind::Fake,
            fake,
            Duration::from_secs(5),
        )
        .await
    }

    /// A driver whose node mounts with `mounter` and whose Ceph calls have `ceph_timeout`.
    pub async fn start_mounting(
        dir: tempfile::TempDir,
        state_dir: PathBuf,
        clusters: &str,
        kind: MounterKind,
        mounter: Arc<dyn Mounter>,
        ceph_timeout: Duration,
    ) -> Self {
        let clusters = parse_clusters(clusters).unwrap();
        let mut config = Config::new("cephfs.csi.trainride", "node-0001", Mode::All, clusters);
        config.mounter = kind;
        config.ceph_timeout = ceph_timeout;
        config.state_dir = state_dir.clone();
        Self::start_config(dir, config, mounter).await
    }

    /// A driver with this config (its state dir included) and mounter.
    pub async fn start_config(
        dir: tempfile::TempDir,
        config: Config,
        mounter: Arc<dyn Mounter>,
    ) -> Self {
        let socket = dir.path().join("csi.sock");
        let state_dir = config.state_dir.clone();
        let driver = Arc::new(Driver::new(config, vec![mounter]).unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let endpoint = driver::server::Endpoint::Unix(socket.clone());
        let d = driver.clone();
        let task = tokio::spawn(async move {
            driver::server::serve(d, &endpoint, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        for _ in 0..200 {
            if socket.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Self {
            dir,
            socket,
            state_dir,
            driver,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops serving (as a killed driver would stop answering); the directory survives.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    pub async fn channel(&self) -> Channel {
        channel(&self.socket).await
    }

    pub async fn controller(&self) -> ControllerClient<Channel> {
        ControllerClient::new(self.channel().await)
    }

    pub async fn node(&self) -> NodeClient<Channel> {
        NodeClient::new(self.channel().await)
    }

    pub async fn identity(&self) -> IdentityClient<Channel> {
        IdentityClient::new(self.channel().await)
    }
}

/// A gRPC channel over a Unix socket.
pub async fn channel(socket: &Path) -> Channel {
    let socket = socket.to_path_buf();
    Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let s = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
            }
        }))
        .await
        .unwrap()
}

pub fn mount_cap() -> VolumeCapability {
    VolumeCapability {
        access_type: Some(volume_capability::AccessType::Mount(
            volume_capability::MountVolume::default(),
        )),
        access_mode: Some(volume_capability::AccessMode {
            mode: volume_capability::access_mode::Mode::MultiNodeMultiWriter as i32,
        }),
    }
}

pub fn params() -> HashMap<String, String> {
    HashMap::from([
        ("clusterID".to_owned(), "c1".to_owned()),
        ("fsName".to_owned(), "cephfs".to_owned()),
    ])
}

pub fn create_request(ceph: &Ceph, name: &str, size: i64) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.to_owned(),
        capacity_range: Some(CapacityRange {
            required_bytes: size,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![mount_cap()],
        parameters: params(),
        secrets: ceph.secrets(),
        ..Default::default()
    }
}

fn path_str(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// NodeStageVolume of `v` at `staging` with `secrets`.
pub fn stage_req(
    v: &Volume,
    staging: &Path,
    secrets: HashMap<String, String>,
) -> NodeStageVolumeRequest {
    NodeStageVolumeRequest {
        volume_id: v.volume_id.clone(),
        staging_target_path: path_str(staging),
        volume_capability: Some(mount_cap()),
        secrets,
        volume_context: v.volume_context.clone(),
        ..Default::default()
    }
}

/// NodePublishVolume of `v`, staged at `staging`, at `target`.
pub fn publish_req(v: &Volume, staging: &Path, target: &Path) -> NodePublishVolumeRequest {
    NodePublishVolumeRequest {
        volume_id: v.volume_id.clone(),
        staging_target_path: path_str(staging),
        target_path: path_str(target),
        volume_capability: Some(mount_cap()),
        volume_context: v.volume_context.clone(),
        ..Default::default()
    }
}

/// NodeUnpublishVolume of the volume `id` at `target`.
pub fn unpublish_req(id: &str, target: &Path) -> NodeUnpublishVolumeRequest {
    NodeUnpublishVolumeRequest {
        volume_id: id.to_owned(),
        target_path: path_str(target),
    }
}

/// NodeUnstageVolume of the volume `id` at `staging`.
pub fn unstage_req(id: &str, staging: &Path) -> NodeUnstageVolumeRequest {
    NodeUnstageVolumeRequest {
        volume_id: id.to_owned(),
        staging_target_path: path_str(staging),
    }
}
