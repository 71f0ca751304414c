//! The `harness` binary.

use assert_cmd::Command;

#[test]
fn harness_run_writes_the_reports_with_overrides_applied() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let assert = Command::new(assert_cmd::cargo::cargo_bin!("harness"))
        .args(["run", "attempt-3-skip-attach", "--seed", "3", "--out"])
        .arg(&out)
        .args([
            "--set",
            "shares=2",
            "--set",
            "replicas=3",
            "--set",
            "name=tiny",
        ])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(stdout.contains("all pods Running"), "{stdout}");
    assert!(stdout.contains("clean (no leaks)"), "{stdout}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["scenario"], "tiny");
    assert_eq!(s["seed"], 3);
    assert_eq!(s["params"]["shares"], 2);
    assert_eq!(s["running"], 3);
    assert_eq!(s["peak_mds_sessions"], 6);
    assert_eq!(s["clean"], true);
    assert!(s["all_running_s"].as_f64().unwrap() > 0.0);
    assert!(s["pod_startup"]["p99_ms"].as_f64().unwrap() > 0.0);
    assert!(s["wall"]["total_s"].as_f64().unwrap() > 0.0);
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    assert_eq!(
        events.lines().count() as u64,
        s["events"][1].as_u64().unwrap()
    );
    assert!(
        std::fs::read_to_string(out.join("report.md"))
            .unwrap()
            .contains("# harness run: tiny")
    );
}

#[test]
fn harness_refuses_unknown_scenarios_and_parameters() {
    Command::new(assert_cmd::cargo::cargo_bin!("harness"))
        .args(["run", "no-such-scenario"])
        .assert()
        .code(2);
    Command::new(assert_cmd::cargo::cargo_bin!("harness"))
        .args(["run", "attempt-3-skip-attach", "--set", "sharez=2"])
        .assert()
        .code(2);
}
