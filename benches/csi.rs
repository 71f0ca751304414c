//! CSI RPCs per second over the Unix socket, against the driver with fake-ceph and the
//! fake mounter (symlink mode): Probe, NodeGetCapabilities, CreateVolume+DeleteVolume, and
//! a node cycle (stage, publish, unpublish, unstage), each one at a time and with 64 in
//! flight.

#![allow(clippy::unwrap_used)]

// The allocator the cephfs-csi binary uses.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use driver::Driver;
use driver::config::{Config, Mode, MounterKind, parse_clusters};
use driver::csi::v1::controller_client::ControllerClient;
use driver::csi::v1::identity_client::IdentityClient;
use driver::csi::v1::node_client::NodeClient;
use driver::csi::v1::*;
use driver::mount::Mounter;
use driver::mount::fake::{FakeMountMode, FakeMounter};
use serde_json::json;
use tonic::transport::Channel;

mod common;

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    channel: Channel,
    secrets: HashMap<String, String>,
    volumes: Vec<Volume>,
    n: AtomicU64,
}

async fn setup() -> Env {
    let cluster = fake_ceph::Cluster::new(fake_ceph::Config::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = fake_ceph::router(cluster.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    cluster
        .admin_command(json!({"prefix": "fs subvolumegroup create", "vol_name": "cephfs", "group_name": "csi"}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let clusters = parse_clusters(
        &json!([{"clusterID": "c1", "monitors": ["127.0.0.1:6789"], "admin": {"transport": "http", "url": url}}]).to_string(),
    )
    .unwrap();
    let mut config = Config::new("cephfs.csi.trainride", "node-0001", Mode::All, clusters);
    config.mounter = MounterKind::Fake;
    config.state_dir = state.clone();
    let fake: Arc<dyn Mounter> = Arc::new(FakeMounter::new(state, FakeMountMode::Symlink));
    let driver = Arc::new(Driver::new(config, vec![fake]).unwrap());
    let channel = common::serve(driver, dir.path()).await;
    let secrets: HashMap<String, String> = [
        ("adminID".to_owned(), "admin".to_owned()),
        ("adminKey".to_owned(), cluster.admin_key()),
    ]
    .into();
    // One volume per concurrent cycle: a node stages a volume once (the driver refuses a
    // second operation on a volume while one is in flight).
    let mut volumes = Vec::new();
    for i in 0..64 {
        volumes.push(
            ControllerClient::new(channel.clone())
                .create_volume(create(&format!("bench-node-volume-{i}"), &secrets))
                .await
                .unwrap()
                .into_inner()
                .volume
                .unwrap(),
        );
    }
    Env {
        root: dir.path().to_path_buf(),
        _dir: dir,
        channel,
        secrets,
        volumes,
        n: AtomicU64::new(0),
    }
}

fn create(name: &str, secrets: &HashMap<String, String>) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.to_owned(),
        capacity_range: Some(CapacityRange {
            required_bytes: 1 << 30,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![common::mount_cap()],
        parameters: [
            ("clusterID".to_owned(), "c1".to_owned()),
            ("fsName".to_owned(), "cephfs".to_owned()),
        ]
        .into(),
        secrets: secrets.clone(),
        ..Default::default()
    }
}

async fn create_delete(env: Arc<Env>, _worker: usize) {
    let i = env.n.fetch_add(1, Ordering::Relaxed);
    let mut c = ControllerClient::new(env.channel.clone());
    let v = c
        .create_volume(create(&format!("bench-{i}"), &env.secrets))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    c.delete_volume(DeleteVolumeRequest {
        volume_id: v.volume_id,
        secrets: env.secrets.clone(),
    })
    .await
    .unwrap();
}

/// Worker `worker` cycles volume `worker`: a node stages a volume once at a time (the
/// driver answers Aborted to a second operation on a volume in flight).
async fn node_cycle(env: Arc<Env>, worker: usize) {
    let i = env.n.fetch_add(1, Ordering::Relaxed);
    let staging = env.root.join(format!("staging-{i}"));
    let target = env.root.join(format!("target-{i}"));
    std::fs::create_dir_all(&staging).unwrap();
    let mut n = NodeClient::new(env.channel.clone());
    let v = &env.volumes[worker];
    n.node_stage_volume(NodeStageVolumeRequest {
        volume_id: v.volume_id.clone(),
        staging_target_path: staging.to_str().unwrap().into(),
        volume_capability: Some(common::mount_cap()),
        secrets: env.secrets.clone(),
        volume_context: v.volume_context.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    n.node_publish_volume(NodePublishVolumeRequest {
        volume_id: v.volume_id.clone(),
        staging_target_path: staging.to_str().unwrap().into(),
        target_path: target.to_str().unwrap().into(),
        volume_capability: Some(common::mount_cap()),
        volume_context: v.volume_context.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    n.node_unpublish_volume(NodeUnpublishVolumeRequest {
        volume_id: v.volume_id.clone(),
        target_path: target.to_str().unwrap().into(),
    })
    .await
    .unwrap();
    n.node_unstage_volume(NodeUnstageVolumeRequest {
        volume_id: v.volume_id.clone(),
        staging_target_path: staging.to_str().unwrap().into(),
    })
    .await
    .unwrap();
    let _ = std::fs::remove_dir(&staging);
}

async fn probe(env: Arc<Env>, _worker: usize) {
    IdentityClient::new(env.channel.clone())
        .probe(ProbeRequest {})
        .await
        .unwrap();
}

async fn node_caps(env: Arc<Env>, _worker: usize) {
    NodeClient::new(env.channel.clone())
        .node_get_capabilities(NodeGetCapabilitiesRequest {})
        .await
        .unwrap();
}

fn bench(c: &mut Criterion) {
    let rt = common::runtime();
    let env = Arc::new(rt.block_on(setup()));
    let mut g = c.benchmark_group("csi");
    macro_rules! pair {
        ($name:literal, $op:expr) => {{
            g.throughput(Throughput::Elements(1));
            let e = env.clone();
            g.bench_function(concat!($name, "/c1"), |b| {
                b.to_async(&rt).iter(|| {
                    let e = e.clone();
                    async move { $op(e, 0).await }
                })
            });
            const CONC: usize = 64;
            g.throughput(Throughput::Elements(CONC as u64));
            let e = env.clone();
            g.bench_function(concat!($name, "/c64"), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let e = e.clone();
                    common::sustained(iters, CONC, move |w| $op(e.clone(), w))
                })
            });
        }};
    }
    pair!("probe", probe);
    pair!("node_get_capabilities", node_caps);
    pair!("create_delete", create_delete);
    pair!("node_cycle", node_cycle);
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
