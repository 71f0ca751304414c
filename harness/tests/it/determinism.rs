//! One seed, one event log, with the real driver's calls in the loop.

use crate::{assert_clean, run_real, scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_replays_the_same_event_log_and_another_seed_does_not() {
    let p = scenario(
        "attempt-1-attach-wreck",
        &["shares=2", "replicas=4", "stall_s=300"],
    );
    let a = run_real(p.clone(), 5).await;
    let b = run_real(p.clone(), 5).await;
    let c = run_real(p, 6).await;
    assert!(a.events.len() > 200, "{} events", a.events.len());
    let first_difference = a.events.iter().zip(&b.events).position(|(x, y)| x != y);
    assert_eq!(first_difference, None, "the runs diverge");
    assert_eq!(a.events.len(), b.events.len());
    assert_eq!(a.summary.events_hash, b.summary.events_hash);
    assert_ne!(a.summary.events_hash, c.summary.events_hash);
    for r in [&a, &b, &c] {
        assert_clean(r);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_clock_bound_on_real_calls_does_not_change_the_log() {
    let p = scenario("attempt-3-skip-attach", &["shares=3", "replicas=4"]);
    let wide = run_real(p.clone().set("max_inflight=64").unwrap(), 9).await;
    let narrow = run_real(p.set("max_inflight=1").unwrap(), 9).await;
    assert_eq!(wide.events, narrow.events);
    assert_clean(&wide);
    assert_clean(&narrow);
}

/// `summary.json` without its `wall` section (the wall-clock measurements, kept apart
/// there) and `series.json`, as `harness run` writes them into `dir`.
fn reproducible_files(dir: &std::path::Path) -> (String, Vec<u8>) {
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    let mut summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    let wall = summary.as_object_mut().unwrap().remove("wall");
    assert!(wall.is_some_and(|w| w["total_s"].as_f64() > Some(0.0)));
    let series = std::fs::read(dir.join("series.json")).unwrap();
    (serde_json::to_string_pretty(&summary).unwrap(), series)
}

/// One seed writes the same summary and series on every run: fake-ceph's counters (MDS
/// requests, sessions) are read with no real call under way, the busy workload's reply
/// latency is the model's, and Manila's delays are on the simulated clock. Only the
/// `wall` figures differ, and they are apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_writes_the_same_summary_and_series_byte_for_byte() {
    let busy = [
        "shares=2",
        "replicas=5",
        "busy.dirs=1000",
        "busy.files=20000",
        "busy.bytes=20000000",
    ];
    for (name, sets) in [
        ("attempt-3-skip-attach", &["shares=3", "replicas=8"][..]),
        ("busy-1k", &busy[..]),
        // Manila at full size: 100 node plugins, each with its own connections to
        // Keystone and Manila (at fake-manila's default connection limit its closing of
        // pooled connections failed NodeStage calls, differently on every run).
        ("idle-1k-manila", &["hold_s=0"][..]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for run in ["a", "b"] {
            let out = dir.path().join(run);
            let p = scenario(name, sets);
            let r = harness::run(
                p,
                4,
                harness::BackendKind::Real,
                harness::Output::Dir(out.clone()),
            )
            .await
            .unwrap();
            assert_clean(&r);
            assert!(r.summary.mds_hcr.is_some_and(|h| h.total > 0), "{name}");
            files.push(reproducible_files(&out));
        }
        assert_eq!(files[0].0, files[1].0, "{name}: summary.json differs");
        assert!(files[0].1 == files[1].1, "{name}: series.json differs");
    }
}
