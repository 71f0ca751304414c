//! The cluster simulator end to end on 1,000 CephFS clients: `attempt-3-skip-attach`
//! (s = 10 shares x r = 100 replicas on 100 nodes, skip-attach), seed 1, against the real
//! driver and fake-ceph, the event log in memory. One iteration is a whole run: fake-ceph,
//! the controller plugin and 100 node plugins started, 10 claims provisioned, 1,000
//! NodeStage and NodePublish calls, every pod Running, teardown, the leak check, shutdown.

#![allow(clippy::unwrap_used)]

// The allocator the harness binary uses.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use harness::params::Params;
use harness::{BackendKind, Output};

/// Clients (MDS sessions) a run mounts: shares x replicas.
const CLIENTS: u64 = 10 * 100;

async fn run_1k(p: Params) {
    let r = harness::run(p, 1, BackendKind::Real, Output::Memory)
        .await
        .unwrap();
    let s = &r.summary;
    // A run that went wrong would be measured as a fast one: check what it did.
    assert_eq!(s.outcome, "all pods Running");
    assert_eq!(s.peak_mds_sessions as u64, CLIENTS);
    assert!(s.clean, "leaks: {:?} {:?}", s.leaked_objects, s.leaks);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let p = Params::load("attempt-3-skip-attach").unwrap();
    assert_eq!((p.shares * p.replicas) as u64, CLIENTS);
    let mut g = c.benchmark_group("sim");
    g.throughput(Throughput::Elements(CLIENTS));
    g.bench_function("attempt-3-skip-attach/1k_clients", |b| {
        b.to_async(&rt).iter(|| run_1k(p.clone()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(30)).warm_up_time(Duration::from_secs(2)).sample_size(10);
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
