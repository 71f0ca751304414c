//! fake-ceph throughput and memory.
//!
//! - `in_process/*`: commands through `Cluster::execute` (what the harness does), one at a
//!   time and 64 concurrent on the multi-threaded runtime.
//! - `http/*`: the same commands over loopback HTTP with keep-alive connections.
//! - `mutating/{in_memory,durable}/*`: commands that change state (a subvolume create
//!   and rm, an omap key set and removed), with the metadata in memory (the harness,
//!   and the binary without `--data-dir`) and committed to the durable store in a
//!   temporary data dir (the binary with `--data-dir`; `TMPDIR` places it), one pair at
//!   a time and 64 concurrent (whose commits are grouped). The durable runs print how
//!   many commands shared a commit.
//! - `sessions/open_close`: mount + unmount of one session.
//! - Before the timed benches, the memory of 100,000 open sessions is measured from
//!   `/proc/self/statm` and printed (criterion measures time, not memory).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use fake_ceph::{Cluster, Config, Metadata, MountRequest, Target};
use serde_json::json;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn cluster_with_subvolume(rt: &tokio::runtime::Runtime) -> (Cluster, String) {
    let cluster = Cluster::new(Config::default()).expect("cluster");
    let path = rt.block_on(async {
        cluster
            .admin_command(json!({"prefix": "fs subvolumegroup create", "vol_name": "cephfs", "group_name": "csi"}))
            .await;
        cluster
            .admin_command(json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "group_name": "csi", "sub_name": "bench"}))
            .await;
        cluster
            .admin_command(json!({"prefix": "fs subvolume getpath", "vol_name": "cephfs", "group_name": "csi", "sub_name": "bench"}))
            .await
            .outb
            .trim_end()
            .to_owned()
    });
    (cluster, path)
}

/// The simple commands: a mon map read, a mgr volumes read, a health check.
fn simple_commands() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("fs_ls", json!({"prefix": "fs ls", "format": "json"}).to_string().into_bytes()),
        (
            "subvolume_getpath",
            json!({"prefix": "fs subvolume getpath", "vol_name": "cephfs", "group_name": "csi", "sub_name": "bench"})
                .to_string()
                .into_bytes(),
        ),
        ("health", json!({"prefix": "health", "format": "json"}).to_string().into_bytes()),
    ]
}

fn in_process(c: &mut Criterion) {
    let rt = runtime();
    let (cluster, _) = cluster_with_subvolume(&rt);
    let admin = cluster.admin();
    let mut g = c.benchmark_group("in_process");
    for (name, body) in simple_commands() {
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("{name}/seq"), |b| {
            b.to_async(&rt).iter(|| async {
                let r = cluster.execute(&admin, Target::Mon, &body).await;
                assert_eq!(r.ret, 0);
            })
        });
        const CONC: usize = 64;
        const PER: usize = 16;
        g.throughput(Throughput::Elements((CONC * PER) as u64));
        let body = Arc::new(body);
        g.bench_function(format!("{name}/c64"), |b| {
            b.to_async(&rt).iter(|| {
                let (cluster, admin, body) = (cluster.clone(), admin.clone(), body.clone());
                async move {
                    let mut set = tokio::task::JoinSet::new();
                    for _ in 0..CONC {
                        let (cluster, admin, body) = (cluster.clone(), admin.clone(), body.clone());
                        set.spawn(async move {
                            for _ in 0..PER {
                                let r = cluster.execute(&admin, Target::Mon, &body).await;
                                assert_eq!(r.ret, 0);
                            }
                        });
                    }
                    while set.join_next().await.is_some() {}
                }
            })
        });
    }
    g.finish();
}

fn http(c: &mut Criterion) {
    let rt = runtime();
    let (cluster, _) = cluster_with_subvolume(&rt);
    let key = cluster.admin_key();
    let url = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = fake_ceph::router(cluster.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/request")
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let mut g = c.benchmark_group("http");
    for (name, body) in simple_commands() {
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("{name}/seq"), |b| {
            b.to_async(&rt).iter(|| async {
                let r = client
                    .post(&url)
                    .basic_auth("client.admin", Some(&key))
                    .body(body.clone())
                    .send()
                    .await
                    .expect("send");
                assert!(r.status().is_success());
                let _ = r.bytes().await.expect("body");
            })
        });
        const CONC: usize = 16;
        const PER: usize = 16;
        g.throughput(Throughput::Elements((CONC * PER) as u64));
        g.bench_function(format!("{name}/c16"), |b| {
            b.to_async(&rt).iter(|| {
                let (client, url, key, body) =
                    (client.clone(), url.clone(), key.clone(), body.clone());
                async move {
                    let mut set = tokio::task::JoinSet::new();
                    for _ in 0..CONC {
                        let (client, url, key, body) =
                            (client.clone(), url.clone(), key.clone(), body.clone());
                        set.spawn(async move {
                            for _ in 0..PER {
                                let r = client
                                    .post(&url)
                                    .basic_auth("client.admin", Some(&key))
                                    .body(body.clone())
                                    .send()
                                    .await
                                    .expect("send");
                                let _ = r.bytes().await.expect("body");
                            }
                        });
                    }
                    while set.join_next().await.is_some() {}
                }
            })
        });
    }
    g.finish();
}

/// Two commands that change state and undo each other, on a name of their own.
fn mutating_pair(kind: &str, n: u64) -> [Vec<u8>; 2] {
    let name = format!("bench-{n}");
    let (a, b) = match kind {
        "subvolume_create_rm" => (
            json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "group_name": "csi", "sub_name": name}),
            json!({"prefix": "fs subvolume rm", "vol_name": "cephfs", "group_name": "csi", "sub_name": name}),
        ),
        _ => (
            json!({"prefix": "rados omap set", "pool": "cephfs.cephfs.meta", "namespace": "csi", "object": "csi.volumes.default", "vals": {name.clone(): "0123456789abcdef"}}),
            json!({"prefix": "rados omap rm", "pool": "cephfs.cephfs.meta", "namespace": "csi", "object": "csi.volumes.default", "keys": [name]}),
        ),
    };
    [a.to_string().into_bytes(), b.to_string().into_bytes()]
}

fn mutating(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("mutating");
    for metadata in [Metadata::InMemory, Metadata::Durable] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            data_dir: Some(dir.path().join("data")),
            metadata,
            ..Config::default()
        };
        let cluster = Cluster::new(config).expect("cluster");
        rt.block_on(async {
            cluster
                .admin_command(json!({"prefix": "fs subvolumegroup create", "vol_name": "cephfs", "group_name": "csi"}))
                .await;
        });
        let admin = cluster.admin();
        let mode = match metadata {
            Metadata::InMemory => "in_memory",
            Metadata::Durable => "durable",
        };
        let next = Arc::new(AtomicU64::new(0));
        for kind in ["subvolume_create_rm", "omap_set_rm"] {
            g.throughput(Throughput::Elements(2));
            g.bench_function(format!("{mode}/{kind}/seq"), |b| {
                b.to_async(&rt).iter(|| async {
                    for body in mutating_pair(kind, next.fetch_add(1, Ordering::Relaxed)) {
                        let r = cluster.execute(&admin, Target::Mon, &body).await;
                        assert_eq!(r.ret, 0, "{}", r.outs);
                    }
                })
            });
            const CONC: usize = 64;
            const PER: usize = 4;
            g.throughput(Throughput::Elements((CONC * PER * 2) as u64));
            let (commits, commands) = (cluster.metadata_commits(), Arc::new(AtomicU64::new(0)));
            g.bench_function(format!("{mode}/{kind}/c64"), |b| {
                b.to_async(&rt).iter(|| {
                    let (cluster, admin, next, commands) = (
                        cluster.clone(),
                        admin.clone(),
                        next.clone(),
                        commands.clone(),
                    );
                    async move {
                        let mut set = tokio::task::JoinSet::new();
                        for _ in 0..CONC {
                            let (cluster, admin, next, commands) = (
                                cluster.clone(),
                                admin.clone(),
                                next.clone(),
                                commands.clone(),
                            );
                            set.spawn(async move {
                                for _ in 0..PER {
                                    let n = next.fetch_add(1, Ordering::Relaxed);
                                    for body in mutating_pair(kind, n) {
                                        let r = cluster.execute(&admin, Target::Mon, &body).await;
                                        assert_eq!(r.ret, 0, "{}", r.outs);
                                        commands.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            });
                        }
                        while set.join_next().await.is_some() {}
                    }
                })
            });
            if metadata == Metadata::Durable {
                let commits = cluster.metadata_commits() - commits;
                let commands = commands.load(Ordering::Relaxed);
                println!(
                    "mutating/{mode}/{kind}/c64: {commands} commands in {commits} commits ({:.1} per commit)",
                    commands as f64 / commits.max(1) as f64
                );
            }
        }
        drop(cluster);
    }
    g.finish();
}

fn sessions(c: &mut Criterion) {
    let rt = runtime();
    let (cluster, path) = cluster_with_subvolume(&rt);
    let key = cluster.admin_key();
    let mut g = c.benchmark_group("sessions");
    g.throughput(Throughput::Elements(1));
    g.bench_function("open_close", |b| {
        b.to_async(&rt).iter(|| async {
            let m = cluster
                .mount(
                    "client.admin",
                    &key,
                    MountRequest {
                        root: path.clone(),
                        ..Default::default()
                    },
                )
                .await
                .expect("mount");
            m.unmount();
        })
    });
    g.finish();
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Opens 100,000 sessions (each with hostname and mount point metadata, as a kubelet's
/// mount would have) and prints the memory they take.
fn memory_of_sessions() {
    const N: usize = 100_000;
    let rt = runtime();
    let (cluster, path) = cluster_with_subvolume(&rt);
    let key = cluster.admin_key();
    let before = rss_bytes();
    let t = Instant::now();
    let mounts = rt.block_on(async {
        let mut v = Vec::with_capacity(N);
        for i in 0..N {
            let mut md = std::collections::BTreeMap::new();
            md.insert("hostname".to_owned(), format!("node-{:05}", i % 1000));
            md.insert("mount_point".to_owned(), format!("/var/lib/kubelet/plugins/kubernetes.io/csi/cephfs.csi.trainride/{i:032x}/globalmount"));
            v.push(
                cluster
                    .mount("client.admin", &key, MountRequest { fs_name: None, root: path.clone(), client_metadata: md })
                    .await
                    .expect("mount"),
            );
        }
        v
    });
    let took = t.elapsed();
    let after = rss_bytes();
    assert_eq!(cluster.session_count(), N);
    let used = after.saturating_sub(before);
    println!(
        "memory: {N} open sessions: {:.1} MiB RSS growth ({} bytes/session); opened in {:.2} s ({:.0} sessions/s)",
        used as f64 / (1 << 20) as f64,
        used / N as u64,
        took.as_secs_f64(),
        N as f64 / took.as_secs_f64()
    );
    drop(mounts);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = in_process, http, mutating, sessions
}

fn main() {
    // `cargo bench -- <filter>` skips the memory figure unless it matches "memory".
    let args: Vec<String> = std::env::args().collect();
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-'));
    if filter.is_none_or(|f| "memory".contains(f.as_str())) {
        memory_of_sessions();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
