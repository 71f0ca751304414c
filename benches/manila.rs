//! The Manila back end: CreateVolume+DeleteVolume pairs per second over the Unix socket,
//! against fake-manila on fake-ceph with every state transition immediate (zero delays),
//! one at a time and with 64 in flight. Each pair is: find the share by name, create it,
//! wait for `available`, grant a cephx rule, wait for its key, delete, wait for 404.

#![allow(clippy::unwrap_used)]

// The allocator the cephfs-csi binary uses.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use driver::Driver;
use driver::config::{Backend, Config, Mode};
use driver::csi::v1::controller_client::ControllerClient;
use driver::csi::v1::*;
use fake_manila::{AppState, CephConfig, CephIdentity, Delays, Quotas, Secret};
use tonic::transport::Channel;

mod common;

struct Env {
    _dir: tempfile::TempDir,
    channel: Channel,
    secrets: HashMap<String, String>,
    n: AtomicU64,
}

async fn setup() -> Env {
    let cluster = fake_ceph::Cluster::new(fake_ceph::Config::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ceph_url = format!("http://{}", listener.local_addr().unwrap());
    let app = fake_ceph::router(cluster.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Keystone and Manila on loopback ports of their own; the driver finds Manila
    // through Keystone's catalog.
    let listeners = fake_manila::Listeners::loopback().await.unwrap();
    let auth_url = format!("{}/v3", listeners.keystone_url());
    let mut config = fake_manila::Config::new(
        listeners.keystone_url(),
        listeners.manila_url(),
        CephConfig {
            url: ceph_url,
            identity: CephIdentity {
                entity: "client.admin".into(),
                key: Secret::new(cluster.admin_key()),
            },
            fs_name: "cephfs".into(),
            group: None,
            timeout: Duration::from_secs(10),
        },
    );
    config.delays = Delays::all(Duration::ZERO);
    config.quotas = Quotas {
        shares: -1,
        gigabytes: -1,
        per_share_gigabytes: -1,
        ..config.quotas
    };
    listeners.spawn(AppState::new(config).unwrap());

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(
        "cephfs.csi.trainride",
        "node-0001",
        Mode::Controller,
        vec![],
    );
    config.backend = Backend::Manila;
    config.state_dir = dir.path().join("state");
    let driver = Arc::new(Driver::new(config, vec![]).unwrap());
    let channel = common::serve(driver, dir.path()).await;
    let secrets: HashMap<String, String> = [
        ("os-authURL", auth_url),
        ("os-userName", "demo".to_owned()),
        ("os-password", "demo".to_owned()),
        ("os-projectName", "demo".to_owned()),
        ("os-domainName", "Default".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Env {
        _dir: dir,
        channel,
        secrets,
        n: AtomicU64::new(0),
    }
}

async fn create_delete(env: Arc<Env>) {
    let i = env.n.fetch_add(1, Ordering::Relaxed);
    let mut c = ControllerClient::new(env.channel.clone());
    let v = c
        .create_volume(CreateVolumeRequest {
            name: format!("bench-{i}"),
            capacity_range: Some(CapacityRange {
                required_bytes: 1 << 30,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![common::mount_cap()],
            secrets: env.secrets.clone(),
            ..Default::default()
        })
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

fn bench(c: &mut Criterion) {
    let rt = common::runtime();
    let env = Arc::new(rt.block_on(setup()));
    let mut g = c.benchmark_group("manila");
    g.throughput(Throughput::Elements(1));
    let e = env.clone();
    g.bench_function("create_delete/c1", |b| {
        b.to_async(&rt).iter(|| create_delete(e.clone()))
    });
    const CONC: usize = 64;
    g.throughput(Throughput::Elements(CONC as u64));
    let e = env.clone();
    g.bench_function("create_delete/c64", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let e = e.clone();
            common::sustained(iters, CONC, move |_| create_delete(e.clone()))
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(10);
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
