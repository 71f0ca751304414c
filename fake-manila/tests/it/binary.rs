//! The `fake-manila` binary: prints its URL first, serves on a real socket, stops on
//! SIGTERM; refuses to start without Ceph credentials.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::ceph;

#[tokio::test]
async fn binary_prints_its_url_first_and_serves() {
    let (cluster, ceph_url, _server) = ceph().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = dir.path().join("keyring");
    std::fs::write(&keyring, cluster.keyring("client.admin").expect("keyring"))
        .expect("write keyring");
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("fake-manila"))
        .args(["--listen", "127.0.0.1:0", "--delay-ms", "0", "--seed", "3"])
        .arg("--ceph-url")
        .arg(&ceph_url)
        .arg("--ceph-keyring")
        .arg(&keyring)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fake-manila");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read url");
        line
    })
    .await
    .expect("reader");
    let url = line.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let http = reqwest::Client::new();
    let v3 = http.get(format!("{url}/v3")).send().await.expect("GET /v3");
    assert_eq!(v3.status(), 200);
    let body = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "demo", "domain": {"name": "Default"}, "password": "demo"}}},
        "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}});
    let tok = http
        .post(format!("{url}/v3/auth/tokens"))
        .json(&body)
        .send()
        .await
        .expect("token");
    assert_eq!(tok.status(), 201);
    let token = tok.headers()["x-subject-token"]
        .to_str()
        .expect("token")
        .to_owned();
    let share = http
        .post(format!("{url}/v2/shares"))
        .header("x-auth-token", &token)
        .header("X-OpenStack-Manila-API-Version", "2.65")
        .json(&serde_json::json!({"share": {"share_proto": "CEPHFS", "size": 1}}))
        .send()
        .await
        .expect("create");
    assert_eq!(share.status(), 200);
    let v: serde_json::Value = share.json().await.expect("json");
    let id = v["share"]["id"].as_str().expect("id").to_owned();
    let mut available = false;
    for _ in 0..200 {
        let s: serde_json::Value = http
            .get(format!("{url}/v2/shares/{id}"))
            .header("x-auth-token", &token)
            .send()
            .await
            .expect("show")
            .json()
            .await
            .expect("json");
        if s["share"]["status"] == "available" {
            available = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(available);
    let pid = i32::try_from(child.id()).expect("pid");
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("waiter")
        .expect("exit");
    assert!(status.success(), "{status:?}");
}

#[test]
fn binary_refuses_to_start_without_credentials() {
    let out = Command::new(assert_cmd::cargo::cargo_bin!("fake-manila"))
        .args(["--ceph-url", "http://127.0.0.1:1"])
        .env_remove("FAKE_MANILA_CEPH_KEY")
        .env_remove("FAKE_MANILA_CEPH_KEYRING")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--ceph-keyring"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
