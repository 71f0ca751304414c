//! The report's numbers, derived again by hand from the run's own event log: pod
//! start-up percentiles (nearest rank), the Running curve, calls by method and code with
//! their simulated durations, provisioning time and peak sessions.

use std::collections::BTreeMap;

use harness::{BackendKind, Output};
use serde_json::Value;

use crate::{assert_clean, scenario};

fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_agrees_with_the_event_log() {
    let out = tempfile::tempdir().unwrap();
    let p = scenario("attempt-3-skip-attach", &["shares=2", "replicas=5"]);
    let r = harness::run(p, 5, BackendKind::Real, Output::Dir(out.path().into()))
        .await
        .unwrap();
    assert_clean(&r);
    let events: Vec<Value> = std::fs::read_to_string(out.path().join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    let secs = |e: &Value| e["t_ns"].as_u64().unwrap() as f64 / 1e9;
    let field = |e: &Value, k: &str| e[k].as_str().unwrap().to_owned();

    // Pods: created by the ReplicaSet controller, Running at the kubelet.
    let mut created = BTreeMap::new();
    let mut running = BTreeMap::new();
    for e in &events {
        match (
            field(e, "c").as_str(),
            field(e, "e").as_str(),
            field(e, "r").as_str(),
        ) {
            ("kcm", "create", "Pod") => {
                created.insert(field(e, "o"), secs(e));
            }
            (c, "running", "Running") if c.starts_with("kubelet/") => {
                running.insert(field(e, "o"), secs(e));
            }
            _ => {}
        }
    }
    assert_eq!(
        summary["pods_created"].as_u64().unwrap(),
        created.len() as u64
    );
    assert_eq!(running.len(), 5);
    let mut startup: Vec<f64> = running
        .iter()
        .map(|(pod, t)| (t - created[pod]) * 1e3)
        .collect();
    startup.sort_by(f64::total_cmp);
    let ps = &summary["pod_startup"];
    assert_eq!(ps["count"].as_u64().unwrap(), 5);
    for (k, q) in [
        ("p50_ms", 0.5),
        ("p90_ms", 0.9),
        ("p99_ms", 0.99),
        ("max_ms", 1.0),
    ] {
        let want = nearest_rank(&startup, q);
        let got = ps[k].as_f64().unwrap();
        assert!(
            (got - want).abs() < 1e-6,
            "{k}: {got} vs {want} from {startup:?}"
        );
    }
    // All Running when the last pod got there; the curve's 50 % point is the 3rd of 5.
    let mut at: Vec<f64> = running.values().copied().collect();
    at.sort_by(f64::total_cmp);
    let all = summary["all_running_s"].as_f64().unwrap();
    assert!((all - at[4]).abs() < 1e-9, "{all} vs {at:?}");
    let curve = &summary["running_curve_s"];
    assert!((curve["half_s"].as_f64().unwrap() - at[2]).abs() < 1e-9);
    assert!((curve["all_s"].as_f64().unwrap() - at[4]).abs() < 1e-9);

    // Provisioning: the deploy phase starts once every claim is bound.
    let deploy = events
        .iter()
        .find(|e| field(e, "e") == "phase" && field(e, "o") == "deploy")
        .unwrap();
    assert_eq!(field(deploy, "r"), "2 claims bound");
    assert_eq!(summary["provisioned_s"].as_f64().unwrap(), secs(deploy));

    // CSI calls: each "start" event is answered by one with its code; durations are
    // the simulated time between the two.
    let mut open: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    let mut calls: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let (mut sessions, mut peak) = (0i64, 0i64);
    for e in &events {
        let (c, m, o, r) = (field(e, "c"), field(e, "e"), field(e, "o"), field(e, "r"));
        if !m.starts_with("Node") && !m.ends_with("Volume") {
            continue;
        }
        let key = (c, m.clone(), o);
        if r == "start" {
            assert!(open.insert(key, secs(e)).is_none());
        } else {
            let started = open.remove(&key).expect("an answer follows its start");
            calls
                .entry((m.clone(), r.clone()))
                .or_default()
                .push((secs(e) - started) * 1e3);
            if r == "Ok" {
                sessions += match m.as_str() {
                    "NodeStageVolume" => 1,
                    "NodeUnstageVolume" => -1,
                    _ => 0,
                };
                peak = peak.max(sessions);
            }
        }
    }
    assert!(open.is_empty(), "calls without an answer: {open:?}");
    assert_eq!(sessions, 0);
    assert_eq!(summary["peak_mds_sessions"].as_i64().unwrap(), peak);
    // One session per volume per node: 2 shares x 5 nodes.
    assert_eq!(peak, 10);
    let rows = summary["rpcs"].as_array().unwrap();
    assert_eq!(rows.len(), calls.len(), "{rows:?} vs {calls:?}");
    for row in rows {
        let key = (field(row, "method"), field(row, "code"));
        let mut d = calls[&key].clone();
        d.sort_by(f64::total_cmp);
        assert_eq!(
            row["sim"]["count"].as_u64().unwrap(),
            d.len() as u64,
            "{key:?}"
        );
        let p50 = row["sim"]["p50_ms"].as_f64().unwrap();
        assert!((p50 - nearest_rank(&d, 0.5)).abs() < 1e-6, "{key:?}");
        let max = row["sim"]["max_ms"].as_f64().unwrap();
        assert!((max - nearest_rank(&d, 1.0)).abs() < 1e-6, "{key:?}");
    }
    assert_eq!(
        calls[&("NodeStageVolume".to_owned(), "Ok".to_owned())].len(),
        10
    );
    assert_eq!(
        calls[&("CreateVolume".to_owned(), "Ok".to_owned())].len(),
        2
    );
}

/// Every figure of summary.json says whether it was measured or modelled, and a modelled
/// one names parameters that exist; report.md prints the same table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_figure_says_where_it_comes_from() {
    let out = tempfile::tempdir().unwrap();
    let p = scenario(
        "attempt-1-attach-wreck",
        &["shares=2", "replicas=4", "stall_s=300"],
    );
    let params = serde_json::to_value(&p).unwrap();
    let r = harness::run(p, 3, BackendKind::Real, Output::Dir(out.path().into()))
        .await
        .unwrap();
    assert_clean(&r);
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    let sources = summary["sources"].as_array().unwrap();
    let mut covered = Vec::new();
    for s in sources {
        let how = s["how"].as_str().unwrap();
        assert!(
            ["measured", "modelled", "measured_count_modelled_time"].contains(&how),
            "{s}"
        );
        let rests_on: Vec<&str> = s["rests_on"]
            .as_array()
            .map(|a| a.iter().map(|k| k.as_str().unwrap()).collect())
            .unwrap_or_default();
        match how {
            "modelled" => assert!(!rests_on.is_empty(), "{s}"),
            "measured" => assert!(rests_on.is_empty(), "{s}"),
            _ => {}
        }
        for key in rests_on {
            let found = key.split('.').try_fold(&params, |at, part| at.get(part));
            assert!(found.is_some(), "{key} is not a parameter");
        }
        covered.extend(
            s["figures"]
                .as_str()
                .unwrap()
                .split(", ")
                .map(str::to_owned),
        );
    }
    // The run's identity and inputs are not figures.
    let not_figures = [
        "scenario",
        "seed",
        "mode",
        "params",
        "events_hash",
        "plots",
        "faults",
        "checkpoints",
        "replicas",
        "sources",
    ];
    for key in summary.as_object().unwrap().keys() {
        if !not_figures.contains(&key.as_str()) {
            assert!(covered.contains(key), "{key} has no source");
        }
    }
    let source = |figure: &str| {
        sources
            .iter()
            .find(|s| {
                s["figures"]
                    .as_str()
                    .unwrap()
                    .split(", ")
                    .any(|f| f == figure)
            })
            .unwrap()
    };
    assert_eq!(source("forbidden")["how"], "modelled");
    let on = source("forbidden")["rests_on"].to_string();
    assert!(
        on.contains("waitforattach_uses_devicepath") && on.contains("authz.lag"),
        "{on}"
    );
    assert_eq!(source("wall")["how"], "measured");
    assert_eq!(source("rpcs")["how"], "measured_count_modelled_time");
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.contains("## Where the figures come from"), "{md}");
    assert!(md.contains("| forbidden | modelled | `authz.lag`"), "{md}");
    // The terminal table marks each figure too.
    let table = r.summary.table();
    for row in [
        "403 no path found to object (sim)",
        "wall time (measured)",
        "peak MDS sessions (sim)",
    ] {
        assert!(table.contains(row), "{table}");
    }
}
