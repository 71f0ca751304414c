//! `harness compare`: two runs' summaries side by side, read back from their directories,
//! with the mode of each (missing: simulated) deciding whether its figures are modelled
//! or measured.

use std::path::Path;

use assert_cmd::Command;
use harness::compare::{Cell, Comparison, Origin, SECONDS, Value, compare, difference, round_to};
use harness::{BackendKind, Output};
use serde_json::json;

use crate::{assert_clean, scenario};

/// Two shares on three nodes, as the other small tests run them.
const SMALL: &[&str] = &["shares=2", "replicas=3"];

/// Runs the small skip-attach scenario (`extra` overrides on top) into `dir`.
async fn run_into(dir: &Path, extra: &[&str]) -> harness::Run {
    let sets: Vec<&str> = SMALL.iter().chain(extra).copied().collect();
    let p = scenario("attempt-3-skip-attach", &sets);
    let r = harness::run(p, 7, BackendKind::Real, Output::Dir(dir.to_owned()))
        .await
        .unwrap();
    assert_clean(&r);
    r
}

fn summary_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

fn write_summary(dir: &Path, v: &serde_json::Value) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("summary.json"), v.to_string()).unwrap();
}

fn number(c: &Cell) -> f64 {
    match c.value {
        Value::Number(x) => x,
        ref v => panic!("not a number: {v:?}"),
    }
}

fn row<'a>(c: &'a Comparison, figure: &str) -> &'a harness::compare::Row {
    c.row(figure)
        .unwrap_or_else(|| panic!("no row {figure}: {:#?}", c.rows))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_against_skip_attach_shows_both_times_and_the_calls_only_one_side_made() {
    let dir = tempfile::tempdir().unwrap();
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    let ra = run_into(&da, &[]).await;
    let rb = run_into(&db, &["attach_required=true"]).await;
    let c = compare(&da, &db).unwrap();
    let md = c.markdown();

    // Both all-Running times as the summaries hold them, to the millisecond, and B − A.
    let held = |d: &Path| summary_json(d)["all_running_s"].as_f64().unwrap();
    assert_eq!(Some(held(&da)), ra.summary.all_running_s);
    assert_eq!(Some(held(&db)), rb.summary.all_running_s);
    let (ta, tb) = (round_to(held(&da), SECONDS), round_to(held(&db), SECONDS));
    assert!((ta - held(&da)).abs() <= 0.0005, "{ta}");
    let r = row(&c, "time to all Running (s)");
    assert_eq!((number(&r.a), number(&r.b)), (ta, tb));
    assert_eq!(
        (r.a.origin, r.b.origin),
        (Some(Origin::Modelled), Some(Origin::Modelled))
    );
    let diff = r.b_minus_a.clone().unwrap();
    assert_eq!(diff, difference(ta, tb));
    assert!(
        (diff.parse::<f64>().unwrap() - (tb - ta)).abs() < 1e-9,
        "{diff}"
    );
    assert_eq!(r.b_over_a, Some(tb / ta));
    let line = md
        .lines()
        .find(|l| l.starts_with("| time to all Running (s) "))
        .unwrap();
    for want in [
        format!("| {ta} [modelled] "),
        format!("| {tb} [modelled] "),
        format!("| {diff} "),
    ] {
        assert!(line.contains(&want), "{want:?} not in {line}");
    }

    // Only the attaching run calls ControllerPublishVolume: 0 on A's side.
    let published = rb
        .summary
        .rpcs
        .iter()
        .find(|r| r.method == "ControllerPublishVolume" && r.code == "Ok")
        .unwrap()
        .sim
        .count as f64;
    assert!(published > 0.0);
    assert!(
        !ra.summary
            .rpcs
            .iter()
            .any(|r| r.method == "ControllerPublishVolume")
    );
    let r = row(&c, "CSI ControllerPublishVolume Ok (calls)");
    assert_eq!((number(&r.a), number(&r.b)), (0.0, published));
    assert_eq!(r.b_over_a, None);
    let line = md
        .lines()
        .find(|l| l.starts_with("| CSI ControllerPublishVolume Ok (calls) "))
        .unwrap();
    assert!(line.contains("| 0 [modelled] "), "{line}");
    let total = |r: &harness::Run| r.summary.csi_calls.calls as f64;
    let r = row(&c, "CSI calls");
    assert_eq!((number(&r.a), number(&r.b)), (total(&ra), total(&rb)));

    // Neither summary says its mode: both read as simulated, and say so.
    assert_eq!(
        (c.a.mode.as_str(), c.b.mode.as_str()),
        ("simulated", "simulated")
    );
    assert!(md.contains("| A (simulated) "), "{md}");
    assert!(md.contains("simulator's models"), "{md}");
    // Wall clock is measured whatever the mode.
    let r = row(&c, "wall time (s)");
    assert_eq!(r.a.origin, Some(Origin::Measured));
    assert_eq!(number(&r.a), round_to(ra.summary.wall.total_s, SECONDS));

    // The same summary without `mode` and with a field the reader does not know, against
    // one written by a real control plane.
    let mut old = summary_json(&da);
    old.as_object_mut().unwrap().remove("mode");
    old["added_later"] = json!({"x": [1, 2]});
    let mut real = summary_json(&db);
    real["mode"] = json!("real control plane");
    write_summary(&dir.path().join("old"), &old);
    write_summary(&dir.path().join("real"), &real);
    let c = compare(&dir.path().join("old"), &dir.path().join("real")).unwrap();
    assert_eq!(c.a.mode, "simulated");
    assert_eq!(c.b.mode, "real control plane");
    let r = row(&c, "time to all Running (s)");
    assert_eq!(
        (r.a.origin, r.b.origin),
        (Some(Origin::Modelled), Some(Origin::Measured))
    );
    assert_eq!((number(&r.a), number(&r.b)), (ta, tb));
    let md = c.markdown();
    assert!(md.contains(&format!("| {tb} [measured] ")), "{md}");
    assert!(md.contains("| B (real control plane) "), "{md}");
}

/// A summary as old as can be: the few fields every harness run has written, no mode.
fn minimal(scenario: &str, all_running_s: Option<f64>) -> serde_json::Value {
    json!({
        "scenario": scenario,
        "seed": 3,
        "outcome": "all pods Running",
        "replicas": 4,
        "running": 3,
        "all_running_s": all_running_s,
        "pod_startup": {"count": 3, "p50_ms": 1500.0, "p90_ms": 2500.5, "p99_ms": 2600.0, "max_ms": 2600.0},
        "rpcs": [{"method": "NodeStageVolume", "code": "Ok", "sim": {"count": 3}}],
        "forbidden": {"volumeattachments": 12},
        "pods_not_running": {"web-3": "no path found to object"},
        "wall": {"total_s": 1.25, "peak_rss_mib": 40.0},
        "clean": true
    })
}

#[test]
fn summaries_without_a_mode_read_as_simulated_and_missing_figures_stay_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    write_summary(&da, &minimal("old", Some(10.5)));
    let mut b = minimal("cluster-run", None);
    b["mode"] = json!("cluster");
    b["rpcs"] = json!([{"method": "NodeStageVolume", "code": "Aborted", "sim": {"count": 2}}]);
    b["forbidden"] = json!({});
    write_summary(&db, &b);
    let c = compare(&da, &db).unwrap();
    assert_eq!(c.a.origin, Origin::Modelled);
    assert_eq!(c.b.origin, Origin::Measured);
    let r = row(&c, "time to all Running (s)");
    assert_eq!(
        (&r.a.value, &r.b.value),
        (&Value::Number(10.5), &Value::Missing)
    );
    assert_eq!((r.b_minus_a.as_deref(), r.b_over_a), (None, None));
    let check = |figure: &str, a: f64, b: f64| {
        let r = row(&c, figure);
        assert_eq!((number(&r.a), number(&r.b)), (a, b), "{figure}");
    };
    check("CSI NodeStageVolume Ok (calls)", 3.0, 0.0);
    check("CSI NodeStageVolume Aborted (calls)", 0.0, 2.0);
    check("403 no path found: volumeattachments", 12.0, 0.0);
    check("pods not Running (recorded)", 1.0, 1.0);
    check("replicas − running", 1.0, 1.0);
    check("pod start-up p90 (ms)", 2500.5, 2500.5);
    // Absent altogether in both: shown as missing, not as 0.
    let r = row(&c, "schedule→run p50 (ms)");
    assert_eq!((&r.a.value, &r.b.value), (&Value::Missing, &Value::Missing));
    let r = row(&c, "CSI calls");
    assert_eq!(r.a.value, Value::Missing);
}

#[test]
fn a_missing_or_malformed_summary_is_named_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    write_summary(&good, &minimal("x", Some(1.0)));
    let err = |a: &Path| format!("{:#}", compare(a, &good).unwrap_err());

    let nowhere = dir.path().join("nowhere");
    let e = err(&nowhere);
    assert!(e.contains(&nowhere.display().to_string()), "{e}");

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = err(&empty);
    assert!(
        e.contains(&empty.join("summary.json").display().to_string()),
        "{e}"
    );

    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    let file = bad.join("summary.json");
    for (text, why) in [
        ("{not json", "key must be a string"),
        (r#"{"seed": 1}"#, "missing field `scenario`"),
        (r#"{"scenario": "x", "seed": "one"}"#, "invalid type"),
    ] {
        std::fs::write(&file, text).unwrap();
        let e = err(&bad);
        assert!(e.contains(&file.display().to_string()), "{e}");
        assert!(e.contains("is not a harness run summary"), "{e}");
        assert!(e.contains(why), "{why:?} not in {e}");
    }
}

#[test]
fn harness_compare_prints_the_table_and_writes_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let (da, db, out) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("out"),
    );
    write_summary(&da, &minimal("one", Some(10.5)));
    let mut b = minimal("two", Some(12.25));
    b["mode"] = json!("real control plane");
    write_summary(&db, &b);
    let assert = Command::new(assert_cmd::cargo::cargo_bin!("harness"))
        .arg("compare")
        .arg(&da)
        .arg(&db)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    for want in [
        "| A (simulated) ",
        "| B (real control plane) ",
        "| 10.5 [modelled] ",
        "| 12.25 [measured] ",
        "| 1.75 ",
    ] {
        assert!(stdout.contains(want), "{want:?} not in {stdout}");
    }
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(stdout.starts_with(&md), "{stdout}");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap();
    assert_eq!(j["b"]["mode"], "real control plane");
    let r = j["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["figure"] == "time to all Running (s)")
        .unwrap();
    assert_eq!(
        (
            &r["a"]["value"],
            &r["a"]["origin"],
            &r["b"]["origin"],
            &r["b_minus_a"]
        ),
        (
            &json!(10.5),
            &json!("modelled"),
            &json!("measured"),
            &json!("1.75")
        )
    );
    let svg = std::fs::read_to_string(out.join("compare-startup.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.contains("all Running"), "{svg}");
    // Background, four bars per side, legend box (fill and border) and two legend keys.
    assert_eq!(svg.matches("<rect").count(), 1 + 8 + 2 + 2, "{svg}");

    // A directory without a summary: exit 2, the file named.
    let assert = Command::new(assert_cmd::cargo::cargo_bin!("harness"))
        .arg("compare")
        .arg(&da)
        .arg(&out)
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.contains(&out.join("summary.json").display().to_string()),
        "{stderr}"
    );
}
