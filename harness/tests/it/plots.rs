//! The time series and SVG plots a run writes beside its summary.

use std::path::Path;

use harness::plots::polylines;
use harness::{BackendKind, Output, Run};
use serde_json::Value;

use crate::{assert_clean, scenario};

async fn run_to(p: harness::params::Params, seed: u64, dir: &Path) -> Run {
    harness::run(p, seed, BackendKind::Real, Output::Dir(dir.to_owned()))
        .await
        .unwrap()
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn column(series: &Value, name: &str) -> Vec<f64> {
    series[name]
        .as_array()
        .unwrap_or_else(|| panic!("no column {name}"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

/// The data curves of a plot: polylines with one point per sample (axes and legend keys
/// have two).
fn curves(svg: &str, n: usize) -> Vec<Vec<(f64, f64)>> {
    polylines(svg)
        .into_iter()
        .filter(|l| l.len() == n)
        .collect()
}

/// Reads a curve back into values, given that its lowest value is 0, and checks each
/// point against `expected` to within a pixel.
fn assert_curve_is(curve: &[(f64, f64)], expected: &[f64]) {
    let top = expected.iter().copied().fold(0.0, f64::max);
    assert!(top > 0.0, "a flat curve");
    let zero_px = curve[expected.iter().position(|v| *v == 0.0).unwrap()].1;
    let top_px = curve[expected.iter().position(|v| *v == top).unwrap()].1;
    let px_per_unit = (zero_px - top_px) / top;
    assert!(px_per_unit > 10.0, "{px_per_unit} px per unit");
    for (i, ((_, y), v)) in curve.iter().zip(expected).enumerate() {
        let read = (zero_px - y) / px_per_unit;
        assert!(
            (read - v).abs() <= 1.0 / px_per_unit + 1e-9,
            "point {i}: plotted {read}, sampled {v}"
        );
    }
    // Time goes right.
    assert!(curve.windows(2).all(|w| w[0].0 <= w[1].0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_writes_plots_whose_curves_are_its_samples() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario(
        "attempt-3-skip-attach",
        &["shares=2", "replicas=3", "name=plots"],
    );
    let r = run_to(p, 5, dir.path()).await;
    assert_clean(&r);
    let d = dir.path();
    let series: Value = serde_json::from_str(&read(d, "series.json")).unwrap();
    let t = column(&series, "t_s");
    let n = t.len();
    // One sample a simulated second, and the last at the end of the run.
    assert!(n > 10, "{n} samples");
    assert_eq!(t[0], 0.0);
    assert_eq!(t[n - 1], r.summary.sim_total_s);
    let running = column(&series, "running");
    assert_eq!(running.iter().copied().fold(0.0, f64::max), 3.0);
    assert_eq!(running[n - 1], 0.0, "teardown deleted every pod");
    let sessions = column(&series, "mds_sessions");
    assert_eq!(sessions.iter().copied().fold(0.0, f64::max), 6.0);

    let files: Vec<&str> = r.summary.plots.iter().map(|p| p.file.as_str()).collect();
    assert_eq!(
        files,
        [
            "pods.svg",
            "mds_sessions.svg",
            "csi_rpcs.svg",
            "mds_requests.svg"
        ]
    );
    assert!(!d.join("forbidden.svg").exists());
    let report = read(d, "report.md");
    for f in &files {
        let svg = read(d, f);
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{f}"
        );
        assert!(!curves(&svg, n).is_empty(), "{f}: no curve of {n} points");
        assert!(report.contains(&format!("]({f})")), "{f} not linked");
    }
    // The Running curve climbs to the replicas and comes back to 0.
    let pods = curves(&read(d, "pods.svg"), n);
    assert_eq!(pods.len(), 2);
    assert_curve_is(&pods[0], &running);
    assert_curve_is(&pods[1], &column(&series, "pending"));
    let mds = curves(&read(d, "mds_sessions.svg"), n);
    assert_curve_is(&mds[0], &sessions);
    // fake-ceph's own session count reached the same peak, and its requests were counted.
    let ceph_sessions = column(&series, "fake_ceph_sessions");
    assert_eq!(ceph_sessions.iter().copied().fold(0.0, f64::max), 6.0);
    let hcr = r
        .summary
        .mds_hcr
        .expect("the real back end counts requests");
    assert!(hcr.total > 0 && hcr.peak_per_s >= hcr.mean_per_s && hcr.mean_per_s > 0.0);
    let calls = column(&series, "rpcs");
    assert_eq!(calls[n - 1] as u64, r.summary.csi_calls.calls);
    // 2 CreateVolume, 2 DeleteVolume, 6 of each node call.
    assert_eq!(r.summary.csi_calls.calls, 4 + 4 * 6);
    assert_eq!(r.summary.csi_calls.errors, 0);
    let summary: Value = serde_json::from_str(&read(d, "summary.json")).unwrap();
    assert_eq!(summary["plots"].as_array().unwrap().len(), 4);
    assert!(summary["mds_hcr"]["peak_per_s"].as_f64().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attach_wreck_plots_its_403s_and_stuck_pods() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario(
        "attempt-1-attach-wreck",
        &["shares=3", "replicas=10", "kill_stuck_after_s=120"],
    );
    let r = run_to(p, 1, dir.path()).await;
    assert_clean(&r);
    let d = dir.path();
    let series: Value = serde_json::from_str(&read(d, "series.json")).unwrap();
    let n = column(&series, "t_s").len();
    let forbidden = column(&series, "forbidden");
    assert_eq!(
        forbidden[n - 1] as u64,
        r.summary.forbidden.values().sum::<u64>()
    );
    assert!(forbidden[n - 1] > 100.0);
    let stuck = column(&series, "stuck");
    let most_stuck = stuck.iter().copied().fold(0.0, f64::max);
    // The pods that never got their volumes were all stuck at the end of the deploy phase.
    assert!(most_stuck as usize >= 10 - r.summary.running && most_stuck <= 10.0);
    let rate = curves(&read(d, "forbidden.svg"), n);
    assert_eq!(rate.len(), 1);
    let stuck_curves = curves(&read(d, "stuck.svg"), n);
    assert_eq!(stuck_curves.len(), 2);
    assert_curve_is(&stuck_curves[0], &stuck);
}
