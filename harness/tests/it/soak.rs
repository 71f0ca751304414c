//! The fault soak and each fault kind, against the real driver and fakes: the fault
//! fires (the run counts it, and calls fail because of it) and is survived (every claim
//! bound, every pod running, nothing leaked, no claim given two volumes).

use harness::fault::FaultCounts;
use harness::soak::{BackendChoice, SoakArgs};
use serde_json::json;

use crate::{assert_clean, run_real, scenario};

fn calls(r: &harness::Run, method: &str, ok: bool) -> usize {
    r.summary
        .rpcs
        .iter()
        .filter(|row| row.method == method && (row.code == "Ok") == ok)
        .map(|row| row.sim.count)
        .sum()
}

/// The soak scenario on `backend` with `plan` (and more settings).
fn soak(backend: &str, plan: serde_json::Value, sets: &[&str]) -> harness::params::Params {
    let mut all = vec![format!("backend={backend}"), format!("fault_plan={plan}")];
    all.extend(sets.iter().map(|s| (*s).to_owned()));
    let sets: Vec<&str> = all.iter().map(String::as_str).collect();
    scenario("soak", &sets)
}

/// One seed of the soak scenario from seed 1, on both back ends, the whole matrix,
/// writing to `out`.
fn soak_args(out: &std::path::Path) -> SoakArgs {
    SoakArgs {
        seeds: 1,
        first_seed: 1,
        scenario: "soak".into(),
        backend: BackendChoice::Both,
        set: Vec::new(),
        out: Some(out.to_owned()),
        reproducible: false,
        no_ceph_restarts: false,
    }
}

/// Everything came up and went away.
fn survived(r: &harness::Run) {
    let s = &r.summary;
    assert_eq!(s.outcome, "all pods Running", "{:?}", s.pods_not_running);
    assert_eq!(s.running, s.replicas);
    assert!(s.claims.values().all(|c| c == "Bound"), "{:?}", s.claims);
    assert!(s.duplicates.is_empty(), "{:?}", s.duplicates);
    assert!(s.faults.refused.is_empty(), "{:?}", s.faults.refused);
    assert!(s.checkpoint_errors.is_empty(), "{:?}", s.checkpoint_errors);
    assert_clean(r);
}

fn faults(r: &harness::Run) -> &FaultCounts {
    &r.summary.faults
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_seeds_of_the_soak_pass_on_both_back_ends() {
    let out = tempfile::tempdir().unwrap();
    let args = SoakArgs {
        seeds: 2,
        ..soak_args(out.path())
    };
    let mut lines = Vec::new();
    let s = harness::soak::run_soak(&args, |l| lines.push(l.to_owned()))
        .await
        .unwrap();
    assert!(s.passed(), "{}\n{lines:#?}", s.table());
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l.ends_with("OK")), "{lines:#?}");
    assert_eq!(s.totals.backends["cephfs"], 1);
    assert_eq!(s.totals.backends["manila"], 1);
    assert!(
        s.totals.invariants.values().all(|n| *n == 0),
        "{:?}",
        s.totals
    );
    // Faults fired in both seeds.
    assert!(
        s.runs
            .iter()
            .all(|r| r.faults.applied.values().sum::<u64>() > 0)
    );
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("soak.json")).unwrap())
            .unwrap();
    assert_eq!(written["runs"].as_array().unwrap().len(), 2);
    assert!(out.path().join("seed-2").join("events.jsonl").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_plugin_killed_mid_stage_leaves_no_session_after_teardown() {
    // Each session open takes 300 ms of wall time at fake-ceph, so the NodeStage calls
    // are under way for real when the kills come: their handlers are dropped mid-call.
    let mut steps = Vec::new();
    for node in 0..5 {
        for k in 0..4 {
            let t = 2.0 + f64::from(k) * 2.5 + node as f64 * 0.3;
            steps.push(json!({"at": "deploy", "after_s": t,
                              "action": {"kill": {"plugin": {"node": node}}}}));
            steps.push(json!({"at": "deploy", "after_s": t + 0.5,
                              "action": {"restart": {"plugin": {"node": node}}}}));
        }
    }
    let p = soak(
        "cephfs",
        json!(steps),
        &[r#"ceph_faults=["latency:client session open=300"]"#],
    );
    let r = run_real(p, 3).await;
    let f = faults(&r);
    assert_eq!(f.applied("kill"), 20);
    assert!(f.calls_cut > 0, "{f:?}");
    assert!(
        r.summary
            .rpcs
            .iter()
            .any(|row| row.method == "NodeStageVolume" && row.code == "Unavailable"),
        "{:?}",
        r.summary.rpcs
    );
    survived(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_killed_mid_create_makes_one_volume_per_claim() {
    for backend in ["cephfs", "manila"] {
        // Subvolume creates take 300 ms of wall time: the CreateVolume calls are under
        // way when the controller dies at 0.5 s; it comes back at 3 s.
        let steps = json!([
            {"at": "start", "after_s": 0.5, "action": {"kill": {"plugin": "controller"}}},
            {"at": "start", "after_s": 3.0, "action": {"restart": {"plugin": "controller"}}},
            {"at": "teardown", "after_s": 0.5, "action": {"kill": {"plugin": "controller"}}},
            {"at": "teardown", "after_s": 3.0, "action": {"restart": {"plugin": "controller"}}},
        ]);
        let p = soak(
            backend,
            steps,
            &[r#"ceph_faults=["latency:fs subvolume create=300"]"#],
        );
        let r = run_real(p, 4).await;
        let f = faults(&r);
        assert!(f.calls_cut > 0, "{backend}: {f:?}");
        assert!(calls(&r, "CreateVolume", false) > 0, "{backend}");
        assert_eq!(calls(&r, "CreateVolume", true), 3, "{backend}");
        survived(&r);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceph_errors_and_hangs_are_retried_until_they_end() {
    for backend in ["cephfs", "manila"] {
        // Every subvolume create fails for 5 s from the start; every session open hangs
        // (the driver's 1 s deadline ends each) from 2 to 8 s into the deploy phase;
        // every removal fails for 4 s in teardown.
        let steps = json!([
            {"at": "start", "after_s": 0.0, "action": {"ceph_rules_on":
                {"window": 1, "rules": ["error:fs subvolume create=1:5"]}}},
            {"at": "start", "after_s": 5.0, "action": {"ceph_rules_off": {"window": 1}}},
            {"at": "deploy", "after_s": 2.0, "action": {"ceph_rules_on":
                {"window": 2, "rules": ["hang:client session open"]}}},
            {"at": "deploy", "after_s": 8.0, "action": {"ceph_rules_off": {"window": 2}}},
            {"at": "teardown", "after_s": 0.0, "action": {"ceph_rules_on":
                {"window": 3, "rules": ["error:fs subvolume rm=1:11"]}}},
            {"at": "teardown", "after_s": 4.0, "action": {"ceph_rules_off": {"window": 3}}},
            // Manila leaves a share it failed to remove in error_deleting: an operator
            // resets it.
            {"at": "teardown", "after_s": 6.0, "action": "reset_stuck_shares"},
        ]);
        let steps = match backend {
            "cephfs" => json!(steps.as_array().unwrap()[..6]),
            _ => steps,
        };
        let r = run_real(soak(backend, steps, &["nodes=4"]), 5).await;
        assert_eq!(faults(&r).applied("ceph-rules-on"), 3, "{backend}");
        assert!(calls(&r, "CreateVolume", false) > 0, "{backend}");
        assert!(calls(&r, "NodeStageVolume", false) > 0, "{backend}");
        assert!(calls(&r, "DeleteVolume", false) > 0, "{backend}");
        if backend == "manila" {
            assert!(faults(&r).shares_reset > 0, "{:?}", faults(&r));
        }
        survived(&r);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mds_down_and_evictions_are_survived_without_a_session_left() {
    // Four nodes, one pod each. The MDS is down from 1 to 10 s into the deploy phase;
    // node 4 is down until 40 s, so the deploy phase lasts that long, and at 30 s every
    // session is evicted under the running pods. Teardown unmounts the evicted mounts.
    let steps = json!([
        {"at": "deploy", "after_s": 1.0, "action": "mds_down"},
        {"at": "deploy", "after_s": 10.0, "action": "mds_up"},
        {"at": "deploy", "after_s": 0.0, "action": {"kill": {"plugin": {"node": 3}}}},
        {"at": "deploy", "after_s": 40.0, "action": {"restart": {"plugin": {"node": 3}}}},
        {"at": "deploy", "after_s": 30.0, "action": {"evict": {"node": null}}},
    ]);
    let r = run_real(soak("cephfs", steps, &["nodes=4"]), 6).await;
    let f = faults(&r);
    assert_eq!(f.applied("mds-down"), 1);
    assert!(f.sessions_evicted >= 3, "{f:?}");
    assert!(calls(&r, "NodeStageVolume", false) > 0);
    survived(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manila_5xx_and_shares_stuck_in_creating_are_survived() {
    // Every new share stays in creating for the first 2 s; an operator resets the stuck
    // ones at 15 s and the driver makes new ones. Manila answers 500/503 to everything
    // for 3 s of teardown.
    let steps = json!([
        {"at": "start", "after_s": 0.0, "action": {"manila_faults_on":
            {"window": 1, "faults": {"stuck_creating_rate": 1.0}}}},
        {"at": "start", "after_s": 2.0, "action": {"manila_faults_off": {"window": 1}}},
        {"at": "start", "after_s": 15.0, "action": "reset_stuck_shares"},
        {"at": "teardown", "after_s": 0.0, "action": {"manila_faults_on":
            {"window": 2, "faults": {"error_rate": 1.0}}}},
        {"at": "teardown", "after_s": 3.0, "action": {"manila_faults_off": {"window": 2}}},
    ]);
    let r = run_real(soak("manila", steps, &[]), 7).await;
    let f = faults(&r);
    assert_eq!(f.shares_reset, 3, "{f:?}");
    // Waiting for a stuck share ends in DeadlineExceeded, retried; deletes met 5xx.
    assert!(
        r.summary
            .rpcs
            .iter()
            .any(|row| row.method == "CreateVolume" && row.code == "DeadlineExceeded"),
        "{:?}",
        r.summary.rpcs
    );
    assert!(calls(&r, "DeleteVolume", false) > 0);
    survived(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reproducible_fault_plan_gives_one_event_log() {
    // Kills, an error outage, a hang, the MDS down and an eviction: every step decided
    // on the simulated clock, so the seed fixes the log.
    let plan = harness::soak::draw_plan(9, 5, harness::params::StorageBackend::Cephfs, true, true);
    assert!(plan.iter().all(harness::fault::Step::reproducible));
    let p = soak("cephfs", json!(plan), &[]);
    let a = run_real(p.clone(), 9).await;
    let b = run_real(p, 9).await;
    assert!(a.summary.faults.applied.values().sum::<u64>() > 0);
    let first_difference = a.events.iter().zip(&b.events).position(|(x, y)| x != y);
    assert_eq!(first_difference, None, "the runs diverge");
    assert_eq!(a.summary.events_hash, b.summary.events_hash);
    survived(&a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_ceph_killed_and_restarted_loses_nothing_acknowledged() {
    for backend in ["cephfs", "manila"] {
        // Subvolume creates take 300 ms of wall time, so creates are under way at the
        // first restart; the second comes with volumes staged and pods publishing, the
        // third while teardown removes them.
        let steps = json!([
            {"at": "start", "after_s": 0.2, "action": "restart_ceph"},
            {"at": "deploy", "after_s": 2.0, "action": "restart_ceph"},
            {"at": "teardown", "after_s": 0.0, "action": "restart_ceph"},
        ]);
        let p = soak(
            backend,
            steps,
            &[r#"ceph_faults=["latency:fs subvolume create=300"]"#],
        );
        let r = run_real(p, 7).await;
        assert_eq!(
            faults(&r).applied("restart-ceph"),
            3,
            "{backend}: {:?}",
            faults(&r)
        );
        // Every volume made before a restart is found after it (one per claim, none
        // made twice, all removed in teardown), and the mounts staged before the second
        // one go on (fake-ceph keeps its session map, as Ceph does an MDS restart):
        // every pod runs.
        assert_eq!(calls(&r, "CreateVolume", true), 3, "{backend}");
        survived(&r);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soak_leaves_fake_ceph_restarts_out_when_asked() {
    let out = tempfile::tempdir().unwrap();
    let mut args = SoakArgs {
        no_ceph_restarts: true,
        ..soak_args(out.path())
    };
    // A seed whose plan has fake-ceph restarts.
    let seed = (1..100)
        .find(|s| {
            let plan = harness::soak::draw_plan(*s, 5, BackendChoice::Both.of(*s), false, true);
            harness::soak::kinds_of(&plan)["ceph-restarts"] > 0
        })
        .unwrap();
    args.first_seed = seed;
    let s = harness::soak::run_soak(&args, |_| {}).await.unwrap();
    assert!(s.passed(), "{}", s.table());
    assert_eq!(s.totals.kinds["ceph-restarts"], 0, "{:?}", s.totals);
    args.no_ceph_restarts = false;
    let s = harness::soak::run_soak(&args, |_| {}).await.unwrap();
    assert!(s.passed(), "{}", s.table());
    assert!(s.totals.kinds["ceph-restarts"] > 0, "{:?}", s.totals);
}
