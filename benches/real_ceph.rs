//! The driver on a real Ceph cluster next to the same on fake-ceph: CreateVolume +
//! DeleteVolume (the real side through the `cli` transport: `ceph`/`rados` commands),
//! and NodeStageVolume + NodeUnstageVolume (the real side with ceph-fuse, the fake side
//! with the fake mounter). Needs `TRAINRIDE_REAL_CEPH` (from `ci/ceph-cluster.sh
//! start`) and root; without it only the fake side runs.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use driver::Driver;
use driver::config::{Config, Mode, MounterKind, parse_clusters};
use driver::csi::v1::controller_client::ControllerClient;
use driver::csi::v1::node_client::NodeClient;
use driver::csi::v1::*;
use driver::mount::Mounter;
use driver::mount::fake::{FakeMountMode, FakeMounter};
use driver::mount::fuse::FuseMounter;
use serde_json::json;
use tonic::transport::Channel;

mod common;

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    channel: Channel,
    secrets: HashMap<String, String>,
    cluster_id: String,
    volume: Volume,
    n: AtomicU64,
}

async fn serve(
    clusters: &str,
    kind: MounterKind,
    mounter: Arc<dyn Mounter>,
) -> (tempfile::TempDir, Channel) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(
        "cephfs.csi.trainride",
        "node-0001",
        Mode::All,
        parse_clusters(clusters).unwrap(),
    );
    config.mounter = kind;
    config.state_dir = dir.path().join("state");
    config.ceph_timeout = Duration::from_secs(60);
    let driver = Arc::new(Driver::new(config, vec![mounter]).unwrap());
    let channel = common::serve(driver, dir.path()).await;
    (dir, channel)
}

fn create(env_cluster: &str, name: &str, secrets: &HashMap<String, String>) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.to_owned(),
        capacity_range: Some(CapacityRange {
            required_bytes: 1 << 30,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![common::mount_cap()],
        parameters: [
            ("clusterID".to_owned(), env_cluster.to_owned()),
            ("fsName".to_owned(), "cephfs".to_owned()),
        ]
        .into(),
        secrets: secrets.clone(),
        ..Default::default()
    }
}

async fn finish(
    dir: tempfile::TempDir,
    channel: Channel,
    cluster_id: &str,
    secrets: HashMap<String, String>,
) -> Env {
    let volume = ControllerClient::new(channel.clone())
        .create_volume(create(
            cluster_id,
            &format!("bench-stage-{}", std::process::id()),
            &secrets,
        ))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    Env {
        root: dir.path().to_path_buf(),
        _dir: dir,
        channel,
        secrets,
        cluster_id: cluster_id.to_owned(),
        volume,
        n: AtomicU64::new(0),
    }
}

async fn fake_env() -> Env {
    let cluster = fake_ceph::Cluster::new(fake_ceph::Config::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = fake_ceph::router(cluster.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    cluster
        .admin_command(json!({"prefix": "fs subvolumegroup create", "vol_name": "cephfs", "group_name": "csi"}))
        .await;
    let clusters = json!([{"clusterID": "c1", "monitors": ["127.0.0.1:6789"], "admin": {"transport": "http", "url": url}}]).to_string();
    let state = tempfile::tempdir().unwrap();
    let mounter = Arc::new(FakeMounter::new(
        state.path().join("s"),
        FakeMountMode::Symlink,
    ));
    std::mem::forget(state);
    let (dir, channel) = serve(&clusters, MounterKind::Fake, mounter).await;
    let secrets = [
        ("adminID".to_owned(), "admin".to_owned()),
        ("adminKey".to_owned(), cluster.admin_key()),
    ]
    .into();
    finish(dir, channel, "c1", secrets).await
}

async fn real_env() -> Option<Env> {
    let d = PathBuf::from(std::env::var_os("TRAINRIDE_REAL_CEPH")?);
    let clusters = std::fs::read_to_string(d.join("cluster-config.json")).unwrap();
    let key = std::fs::read_to_string(d.join("admin.key"))
        .unwrap()
        .trim()
        .to_owned();
    let (dir, channel) = serve(
        &clusters,
        MounterKind::Fuse,
        Arc::new(FuseMounter::new(Duration::from_secs(60))),
    )
    .await;
    let secrets = [
        ("adminID".to_owned(), "admin".to_owned()),
        ("adminKey".to_owned(), key),
    ]
    .into();
    Some(finish(dir, channel, "real", secrets).await)
}

async fn create_delete(env: &Env) {
    let i = env.n.fetch_add(1, Ordering::Relaxed);
    let mut c = ControllerClient::new(env.channel.clone());
    let v = c
        .create_volume(create(
            &env.cluster_id,
            &format!("bench-cd-{}-{i}", std::process::id()),
            &env.secrets,
        ))
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

async fn stage_unstage(env: &Env) {
    let i = env.n.fetch_add(1, Ordering::Relaxed);
    let staging = env.root.join(format!("staging-{i}"));
    std::fs::create_dir_all(&staging).unwrap();
    let mut n = NodeClient::new(env.channel.clone());
    n.node_stage_volume(NodeStageVolumeRequest {
        volume_id: env.volume.volume_id.clone(),
        staging_target_path: staging.to_str().unwrap().into(),
        volume_capability: Some(common::mount_cap()),
        secrets: env.secrets.clone(),
        volume_context: env.volume.volume_context.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    n.node_unstage_volume(NodeUnstageVolumeRequest {
        volume_id: env.volume.volume_id.clone(),
        staging_target_path: staging.to_str().unwrap().into(),
    })
    .await
    .unwrap();
    let _ = std::fs::remove_dir(&staging);
}

fn bench(c: &mut Criterion) {
    let rt = common::runtime();
    let mut sides = vec![("fake-ceph", Arc::new(rt.block_on(fake_env())))];
    match rt.block_on(real_env()) {
        Some(e) => sides.push(("real-ceph", Arc::new(e))),
        None => println!("real Ceph skipped: TRAINRIDE_REAL_CEPH is not set"),
    }
    let mut g = c.benchmark_group("ceph");
    for (name, env) in &sides {
        let e = env.clone();
        g.bench_function(format!("{name}/create_delete"), |b| {
            b.to_async(&rt).iter(|| {
                let e = e.clone();
                async move { create_delete(&e).await }
            })
        });
        let e = env.clone();
        g.bench_function(format!("{name}/stage_unstage"), |b| {
            b.to_async(&rt).iter(|| {
                let e = e.clone();
                async move { stage_unstage(&e).await }
            })
        });
    }
    g.finish();
    for (_, env) in &sides {
        let env = env.clone();
        rt.block_on(async move {
            ControllerClient::new(env.channel.clone())
                .delete_volume(DeleteVolumeRequest {
                    volume_id: env.volume.volume_id.clone(),
                    secrets: env.secrets.clone(),
                })
                .await
                .unwrap();
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(10)).warm_up_time(Duration::from_secs(1)).sample_size(10);
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
