//! fake-ceph's fault knobs in a scenario (`ceph_faults`): the real driver meets failing
//! Ceph calls and the simulated controllers retry them until every pod runs.

use crate::{assert_clean, run_real, scenario};

fn calls(r: &harness::Run, method: &str, ok: bool) -> usize {
    r.summary
        .rpcs
        .iter()
        .filter(|row| row.method == method && (row.code == "Ok") == ok)
        .map(|row| row.sim.count)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_subvolume_creates_and_mounts_are_retried_until_every_pod_runs() {
    let p = scenario(
        "idle-10k",
        &[
            "shares=6",
            "replicas=5",
            r#"ceph_faults=["error:fs subvolume create=0.8", "error:client session open=0.5:110"]"#,
        ],
    );
    let r = run_real(p, 5).await;
    let s = &r.summary;
    assert_eq!(s.outcome, "all pods Running");
    assert_eq!(s.running, 5);
    // Some creates and stages failed, and the retries made one volume per claim and one
    // stage per node and volume. The fakes draw error rates in arrival order, so which
    // calls fail varies between runs; with these rates all 6 first creates succeed in
    // 0.2^6 = 1 run in 15,600 and all 30 first stages in 0.5^30.
    assert!(calls(&r, "CreateVolume", false) > 0, "{:?}", s.rpcs);
    assert!(calls(&r, "NodeStageVolume", false) > 0, "{:?}", s.rpcs);
    assert_eq!(calls(&r, "CreateVolume", true), 6);
    assert_eq!(calls(&r, "NodeStageVolume", true), 6 * 5);
    assert_clean(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_faults_slow_the_calls_but_keep_the_event_log_fixed_by_the_seed() {
    let p = scenario(
        "idle-10k",
        &[
            "shares=2",
            "replicas=3",
            r#"ceph_faults=["latency:fs subvolume create=30"]"#,
        ],
    );
    let a = run_real(p.clone(), 9).await;
    let b = run_real(p, 9).await;
    assert_eq!(a.summary.outcome, "all pods Running");
    assert_eq!(a.summary.events_hash, b.summary.events_hash);
    assert_eq!(a.events, b.events);
    // The wall latency of CreateVolume carries the injected 30 ms.
    let p50_us = a.summary.wall.csi_latency_us["CreateVolume"][0];
    assert!(p50_us >= 30_000, "CreateVolume p50 {p50_us} µs");
    assert_clean(&a);
}

#[test]
fn malformed_fault_rules_are_refused_with_the_rule_named() {
    let e = harness::params::Params::load("idle-10k")
        .unwrap()
        .set(r#"ceph_faults=["slow:fs ls=5"]"#)
        .unwrap_err();
    assert!(e.to_string().contains("slow:fs ls=5"), "{e}");
}
