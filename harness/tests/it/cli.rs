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
        s["events"]["logged"].as_u64().unwrap()
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

/// An error is one line on stderr, without colour codes when stderr is not a terminal,
/// each context said once, with its cause.
#[test]
fn an_error_is_one_plain_line_with_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("keyring");
    std::fs::write(
        &keyring,
        "[client.admin]\n\tkey = AQBzZXJ0aWZpY2F0ZWtleWtleWtleWtleXh4eA==\n",
    )
    .unwrap();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = Command::new(assert_cmd::cargo::cargo_bin!("harness"))
        .args(["run", "attempt-3-skip-attach", "--ceph-url"])
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("--ceph-keyring")
        .arg(&keyring)
        .assert()
        .code(2);
    let unknown = Command::new(assert_cmd::cargo::cargo_bin!("harness"))
        .args(["run", "no-such-scenario"])
        .assert()
        .code(2);
    for (out, wants) in [
        (
            refused.get_output(),
            ["harness: fake-ceph: fs ls: ", "Connection refused"],
        ),
        (unknown.get_output(), ["harness: ", "'no-such-scenario'"]),
    ] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!err.contains('\u{1b}'), "colour codes: {err:?}");
        for want in wants {
            assert!(err.contains(want), "{want:?} not in {err}");
        }
        assert!(!err.contains("fs ls: fs ls"), "{err}");
    }
}

#[test]
fn harness_run_on_an_external_fake_ceph_reads_its_key_from_a_keyring_and_never_prints_it() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cluster = fake_ceph::Cluster::new(fake_ceph::Config {
        data_dir: Some(dir.path().join("data")),
        ..Default::default()
    })
    .unwrap();
    let url = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let app = fake_ceph::router(cluster.clone());
        tokio::spawn(async move { axum::serve(l, app).await });
        url
    });
    let keyring = dir.path().join("admin.keyring");
    std::fs::write(&keyring, cluster.keyring("client.admin").unwrap()).unwrap();
    let out = dir.path().join("out");
    let assert = Command::new(assert_cmd::cargo::cargo_bin!("harness"))
        .args([
            "run",
            "idle-10k",
            "--set",
            "shares=2",
            "--set",
            "replicas=2",
        ])
        .args(["--ceph-url", &url, "--ceph-keyring"])
        .arg(&keyring)
        .arg("--out")
        .arg(&out)
        .env("HARNESS_LOG", "debug")
        .assert()
        .success();
    let o = assert.get_output();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(stdout.contains(&format!("at {url}")), "{stdout}");
    assert!(stdout.contains("clean (no leaks)"), "{stdout}");
    // Sessions were opened at the external fake-ceph, and all closed again.
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["wall"]["fake_ceph_peak_sessions"], 4);
    assert_eq!(cluster.session_count(), 0);
    let key = cluster.admin_key();
    let mut seen = String::from_utf8_lossy(&o.stderr).into_owned() + &stdout;
    for f in std::fs::read_dir(&out).unwrap() {
        seen += &std::fs::read_to_string(f.unwrap().path()).unwrap_or_default();
    }
    assert!(!seen.contains(&key), "the admin key was printed");
    // A URL without a key is refused by the argument parser.
    Command::new(assert_cmd::cargo::cargo_bin!("harness"))
        .args(["run", "idle-10k", "--ceph-url", &url])
        .assert()
        .failure();
}

/// SIGINT in the middle of a simulated run: exit 130, none of the run's temporary
/// directories left (fake-ceph's tree, sockets, keys), the partial event log renamed so
/// that it is not taken for a whole run's, and no report of an earlier run in the folder.
#[test]
fn an_interrupted_run_leaves_nothing_and_marks_its_partial_log() {
    use std::time::{Duration, Instant};
    for _ in 0..3 {
        let out = tempfile::tempdir().unwrap();
        // An earlier run's report in the same folder.
        std::fs::write(out.path().join("summary.json"), "{}").unwrap();
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("harness"))
            .args(["run", "idle-10k", "--set", "max_inflight=1", "--out"])
            .arg(out.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let log = out.path().join("events.jsonl");
        let until = Instant::now() + Duration::from_secs(60);
        while std::fs::metadata(&log).map_or(0, |m| m.len()) < 100_000 {
            assert!(Instant::now() < until, "the run wrote no events");
            assert!(child.try_wait().unwrap().is_none(), "the run ended early");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(130), "{stderr}");
        assert!(stderr.contains("events.interrupted.jsonl"), "{stderr}");
        let partial = out.path().join(harness::INTERRUPTED_EVENTS);
        assert!(std::fs::metadata(&partial).unwrap().len() > 0);
        assert!(!log.exists() && !out.path().join("summary.json").exists());
        let left: Vec<String> = ["/dev/shm", &std::env::temp_dir().to_string_lossy()]
            .iter()
            .flat_map(|base| std::fs::read_dir(base).into_iter().flatten().flatten())
            // The run's roots carry its PID in their names (`harness-<pid>.<start>.…`),
            // whether or not their owner file is still there.
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("harness-") && name.contains(&format!("-{pid}."))
            })
            .map(|e| e.path().display().to_string())
            .collect();
        assert!(left.is_empty(), "left: {left:?}");
    }
}

/// `--events none` writes no events.jsonl but the same summary (the log's hash and line
/// count included); with the log, the summary gives its size.
#[test]
fn the_event_log_is_optional_and_its_size_is_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let run = |events: &str| {
        let out = dir.path().join(events);
        Command::new(assert_cmd::cargo::cargo_bin!("harness"))
            .args([
                "run",
                "attempt-3-skip-attach",
                "--seed",
                "5",
                "--events",
                events,
            ])
            .args(["--set", "shares=2", "--set", "replicas=3", "--out"])
            .arg(&out)
            .assert()
            .success();
        let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
        let s: serde_json::Value = serde_json::from_str(&text).unwrap();
        (out, s)
    };
    let (full_dir, full) = run("full");
    let (none_dir, none) = run("none");
    let bytes = std::fs::metadata(full_dir.join("events.jsonl"))
        .unwrap()
        .len();
    assert!(bytes > 0);
    assert_eq!(full["events"]["file_bytes"].as_u64(), Some(bytes));
    assert!(!none_dir.join("events.jsonl").exists());
    assert_eq!(none["events"]["file_bytes"].as_u64(), Some(0));
    assert_eq!(none["events_hash"], full["events_hash"]);
    assert_eq!(none["events"]["logged"], full["events"]["logged"]);
    assert!(none_dir.join("report.md").is_file());
}
