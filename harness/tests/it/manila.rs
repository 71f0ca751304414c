//! Manila provisioning in the simulator: shares made by fake-manila on fake-ceph through
//! the driver's Manila controller, mounted by the node plugins as CephFS.

use crate::{assert_clean, run_real, scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manila_shares_reach_every_pod_and_are_all_deleted_at_teardown() {
    // idle-1k-manila scaled down: s = 2 shares, r = 5 replicas.
    let p = scenario("idle-1k-manila", &["shares=2", "replicas=5"]);
    assert_eq!(p.backend, harness::params::StorageBackend::Manila);
    let r = run_real(p.clone(), 11).await;
    let s = &r.summary;
    assert_eq!(s.outcome, "all pods Running");
    assert_eq!(s.running, 5);
    assert_eq!(s.peak_mds_sessions, 2 * 5);
    let ok = |method: &str| {
        s.rpcs
            .iter()
            .filter(|row| row.method == method && row.code == "Ok")
            .map(|row| row.sim.count)
            .sum::<usize>()
    };
    // One share per claim, each deleted again; every pod staged and published both.
    assert_eq!(ok("CreateVolume"), 2);
    assert_eq!(ok("DeleteVolume"), 2);
    assert_eq!(ok("NodeStageVolume"), 10);
    assert_eq!(ok("NodeUnstageVolume"), 10);
    assert_eq!(ok("NodePublishVolume"), 10);
    assert_eq!(ok("NodeUnpublishVolume"), 10);
    assert!(
        !s.rpcs.iter().any(|row| row.code != "Ok"),
        "failed calls: {:?}",
        s.rpcs
    );
    assert_clean(&r);
    assert_eq!(s.leaks.shares, 0);
    assert_eq!(s.leaks.access_rules, 0);
    assert_eq!(s.leaks.cephx_users, 0);
    // The seed fixes the event log with the Manila back end too.
    let again = run_real(p, 11).await;
    assert_eq!(again.summary.events_hash, s.events_hash);
    assert_eq!(again.events, r.events);
}

/// Manila's own steps (share creation, the access rule with its key, deletion) take
/// simulated time: claims bind later on Manila than on CephFS by what they are set to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manilas_delays_are_on_the_simulated_clock() {
    let small = ["shares=2", "replicas=2", "hold_s=0"];
    let fixed = |key: &str, ms: u32| {
        [
            format!("manila.{key}.median_ms={ms}"),
            format!("manila.{key}.p99_ms={ms}"),
        ]
    };
    let run = |name: &'static str, extra: Vec<String>| {
        let mut sets: Vec<String> = small.iter().map(|s| s.to_string()).collect();
        sets.extend(extra);
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let p = scenario(name, &sets);
        async move { run_real(p, 4).await }
    };
    let cephfs = run("attempt-3-skip-attach", vec![]).await;
    let mut slow = fixed("share_create", 40_000).to_vec();
    slow.extend(fixed("access_apply", 20_000));
    let manila = run("idle-1k-manila", slow).await;
    let mut none = fixed("share_create", 0).to_vec();
    none.extend(fixed("access_apply", 0));
    let instant = run("idle-1k-manila", none).await;
    for r in [&cephfs, &manila, &instant] {
        assert_eq!(r.summary.outcome, "all pods Running");
        assert_clean(r);
    }
    let bound = |r: &harness::Run| r.summary.provisioned_s.unwrap();
    // Each CreateVolume waits 40 + 20 s of Manila on top of the call's own latency.
    assert!(bound(&manila) >= 60.0, "{}", bound(&manila));
    assert!(bound(&instant) < 60.0, "{}", bound(&instant));
    assert!(bound(&manila) - bound(&instant) >= 59.0);
    // With Manila's steps at zero its timeline is the CephFS one.
    assert_eq!(bound(&instant), bound(&cephfs));
}
