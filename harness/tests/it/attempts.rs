//! The three 2018 attempts, scaled down so that each runs in seconds, on the scenarios'
//! own (calibrated) parameters; attempt 2 also at its full size, where its ceiling is.

use crate::{assert_clean, run_real, scenario};

/// s = 3 shares, r = 10 replicas.
const SMALL: &[&str] = &["shares=3", "replicas=10"];

fn small(name: &str, extra: &[&str]) -> harness::params::Params {
    let sets: Vec<&str> = SMALL.iter().chain(extra).copied().collect();
    scenario(name, &sets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_1_pods_that_hit_no_path_found_never_recover() {
    let p = small("attempt-1-attach-wreck", &[]);
    let stall = p.stall_s;
    let r = run_real(p, 1).await;
    let s = &r.summary;
    assert_eq!(s.outcome, "stalled");
    // Some pods survived.
    assert!(s.running > 0 && s.running < 10, "running {}", s.running);
    assert_eq!(s.max_running, s.running);
    assert!(s.forbidden["volumeattachments"] > 100, "{:?}", s.forbidden);
    assert!(s.foreign_device_paths > 0);
    // Every 403 is a kubelet asking for another node's VolumeAttachment: the name its
    // node's volumesAttached gave it.
    for l in r.events.iter().filter(|l| l.contains("\"e\":\"get-va\"")) {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let node = v["c"].as_str().unwrap().trim_start_matches("kubelet/");
        let va = v["o"].as_str().unwrap();
        assert!(!va.ends_with(node), "{l}");
        assert!(v["r"].as_str().unwrap().contains("no path found to object"));
    }
    let last_running = r
        .events
        .iter()
        .filter(|l| l.contains("\"e\":\"running\""))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["t_ns"]
                .as_u64()
                .unwrap()
        })
        .max()
        .unwrap();
    let last_403 = r
        .events
        .iter()
        .filter(|l| l.contains("no path found to object"))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["t_ns"]
                .as_u64()
                .unwrap()
        })
        .max()
        .unwrap();
    // Nothing became Running during the last `stall_s`, while the stuck kubelets kept
    // asking, at most one capped back-off (2 min 2 s) apart, until teardown.
    assert!(
        (last_403 - last_running) as f64 / 1e9 > stall - 122.5,
        "403s went on {} s after the last pod started",
        (last_403 - last_running) as f64 / 1e9
    );
    // The stuck pods count in the start-up percentiles, each with its wait until the
    // deploy phase ended (at least `stall_s`): the p99 is a stuck pod's, not a runner's.
    let stuck = 10 - s.running as u64;
    assert_eq!(s.pod_startup_not_running, stuck);
    assert_eq!(s.pod_startup.count as u64, 10);
    assert!(s.pod_startup.p99_ms / 1e3 > stall, "{:?}", s.pod_startup);
    let table = s.table();
    assert!(
        table.contains(&format!(
            "({stuck} not Running, counted to the deploy's end)"
        )),
        "{table}"
    );
    assert_clean(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_2_small_steps_and_kills_get_a_small_cluster_through() {
    let r = run_real(small("attempt-2-incremental", &["step=2"]), 1).await;
    let s = &r.summary;
    // Pods that kept another node's name were killed; their replacements read their
    // node's entries afresh, and at 10 nodes every replica gets there.
    assert_eq!(s.outcome, "all pods Running");
    assert!(s.foreign_device_paths > 0);
    assert!(s.pods_killed > 0, "killed {}", s.pods_killed);
    assert_eq!(s.pods_created, 10 + s.pods_killed);
    assert_clean(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_2_at_full_size_has_a_ceiling() {
    let r = run_real(scenario("attempt-2-incremental", &[]), 1).await;
    let s = &r.summary;
    // At 100 nodes the attaches of killed pods' replacements queue behind each other
    // (one per volume at a time, the attacher at 5 QPS): pods are killed before their
    // ten volumes are attached, and those that are read too late keep foreign names.
    assert!(
        ["stalled", "deploy time limit"].contains(&s.outcome.as_str()),
        "{}",
        s.outcome
    );
    assert!(s.max_running < 50, "max {}", s.max_running);
    assert!(s.peak_mds_sessions < 1000, "{}", s.peak_mds_sessions);
    assert!(s.pods_killed > 100, "killed {}", s.pods_killed);
    assert!(s.foreign_device_paths > 100);
    assert_clean(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_3_skip_attach_runs_every_pod() {
    let r = run_real(small("attempt-3-skip-attach", &[]), 1).await;
    let s = &r.summary;
    assert_eq!(s.outcome, "all pods Running");
    assert_eq!(s.running, 10);
    assert_eq!(s.volume_attachments, 0);
    assert!(!s.forbidden.contains_key("volumeattachments"));
    // One MDS session per (share, node), counted by the simulation and by fake-ceph.
    assert_eq!(s.peak_mds_sessions, 30);
    assert_eq!(s.wall.fake_ceph_peak_sessions, 30);
    assert_eq!(s.pod_startup.count, 10);
    assert!(s.all_running_s.unwrap() > s.provisioned_s.unwrap());
    let stage_ok = s
        .rpcs
        .iter()
        .find(|r| r.method == "NodeStageVolume" && r.code == "Ok")
        .unwrap();
    assert_eq!(stage_ok.sim.count, 30);
    // Every pod stays Running `hold_s` (60 s by default) before teardown begins.
    let teardown = r
        .events
        .iter()
        .find(|l| l.contains("\"e\":\"phase\"") && l.contains("\"o\":\"teardown\""))
        .unwrap();
    let at = serde_json::from_str::<serde_json::Value>(teardown).unwrap()["t_ns"]
        .as_u64()
        .unwrap() as f64
        / 1e9;
    let held = at - s.all_running_s.unwrap();
    assert!((60.0..62.0).contains(&held), "held {held} s");
    assert_clean(&r);
}
