//! The `fake-manila` binary: prints Keystone's auth URL, then Manila's URL, serves each
//! on a real socket of its own, stops on SIGTERM; refuses to start without Ceph
//! credentials.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::ceph;

#[tokio::test]
async fn binary_prints_both_urls_and_serves_keystone_and_manila_apart() {
    let (cluster, ceph_url, _server) = ceph().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = dir.path().join("keyring");
    std::fs::write(&keyring, cluster.keyring("client.admin").expect("keyring"))
        .expect("write keyring");
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("fake-manila"))
        .args(["--listen", "127.0.0.1:0", "--delay-ms", "0", "--seed", "3"])
        .args(["--keystone-listen", "127.0.0.1:0"])
        .arg("--ceph-url")
        .arg(&ceph_url)
        .arg("--ceph-keyring")
        .arg(&keyring)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fake-manila");
    let stdout = child.stdout.take().expect("stdout");
    let lines = tokio::task::spawn_blocking(move || {
        let mut r = BufReader::new(stdout);
        let mut lines = [String::new(), String::new()];
        for l in &mut lines {
            r.read_line(l).expect("read a URL");
        }
        lines.map(|l| l.trim().to_owned())
    })
    .await
    .expect("reader");
    let [auth_url, manila_url] = lines;
    assert!(auth_url.starts_with("http://127.0.0.1:"), "{auth_url}");
    assert!(auth_url.ends_with("/v3"), "{auth_url}");
    assert!(manila_url.starts_with("http://127.0.0.1:"), "{manila_url}");
    let keystone_root = auth_url.trim_end_matches("/v3");
    assert_ne!(keystone_root, manila_url, "two ports");
    let http = reqwest::Client::new();
    // Each root, without headers, answers its own service's versions.
    let r = http
        .get(format!("{manila_url}/"))
        .send()
        .await
        .expect("GET /");
    assert_eq!(r.status(), 300);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["versions"][0]["id"], "v2.0");
    assert_eq!(v["versions"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        v["versions"][0]["links"][1]["href"],
        format!("{manila_url}/v2/")
    );
    let r = http
        .get(format!("{keystone_root}/"))
        .send()
        .await
        .expect("GET /");
    assert_eq!(r.status(), 300);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["versions"]["values"][0]["id"], "v3.14");
    let v3 = http.get(&auth_url).send().await.expect("GET /v3");
    assert_eq!(v3.status(), 200);
    let body = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "demo", "domain": {"name": "Default"}, "password": "demo"}}},
        "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}});
    let tok = http
        .post(format!("{auth_url}/auth/tokens"))
        .json(&body)
        .send()
        .await
        .expect("token");
    assert_eq!(tok.status(), 201);
    let token = tok.headers()["x-subject-token"]
        .to_str()
        .expect("token")
        .to_owned();
    // The catalog sends clients to Manila's port.
    let body: serde_json::Value = tok.json().await.expect("token json");
    let sharev2 = body["token"]["catalog"]
        .as_array()
        .expect("catalog")
        .iter()
        .find(|e| e["type"] == "sharev2")
        .expect("sharev2")
        .clone();
    let api = sharev2["endpoints"][0]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    assert_eq!(api, format!("{manila_url}/v2"));
    let share = http
        .post(format!("{api}/shares"))
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
            .get(format!("{api}/shares/{id}"))
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
    // stderr is a pipe, not a terminal: no colour escapes (issue 14, item 15).
    assert!(!err.contains('\x1b'), "ANSI escapes in the log: {err:?}");
}

/// Starts the binary with `args` on `ceph_url`, takes demo's token, stops it; the token.
async fn first_token(ceph_url: &str, keyring: &std::path::Path, args: &[&str]) -> String {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("fake-manila"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--keystone-listen",
            "127.0.0.1:0",
        ])
        .args(args)
        .arg("--ceph-url")
        .arg(ceph_url)
        .arg("--ceph-keyring")
        .arg(keyring)
        .env_remove("FAKE_MANILA_SEED")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fake-manila");
    let stdout = child.stdout.take().expect("stdout");
    // Both lines read: the pipe stays open while the service runs.
    let (auth_url, _stdout) = tokio::task::spawn_blocking(move || {
        let mut r = BufReader::new(stdout);
        let (mut auth, mut manila) = (String::new(), String::new());
        r.read_line(&mut auth).expect("read the auth URL");
        r.read_line(&mut manila).expect("read Manila's URL");
        (auth.trim().to_owned(), r)
    })
    .await
    .expect("reader");
    let body = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "demo", "domain": {"name": "Default"}, "password": "demo"}}}}});
    let tok = reqwest::Client::new()
        .post(format!("{auth_url}/auth/tokens"))
        .json(&body)
        .send()
        .await
        .expect("token");
    assert_eq!(tok.status(), 201);
    let token = tok.headers()["x-subject-token"]
        .to_str()
        .expect("token")
        .to_owned();
    let pid = i32::try_from(child.id()).expect("pid");
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    token
}

/// Issue 14 #7: started by hand (no `--seed`), the first token differs from start to
/// start; with `--seed` it repeats, for replays.
#[tokio::test]
async fn binary_tokens_are_unpredictable_without_a_seed() {
    let (cluster, ceph_url, _server) = ceph().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = dir.path().join("keyring");
    std::fs::write(&keyring, cluster.keyring("client.admin").expect("keyring"))
        .expect("write keyring");
    let a = first_token(&ceph_url, &keyring, &[]).await;
    let b = first_token(&ceph_url, &keyring, &[]).await;
    assert_ne!(a, b, "no seed: tokens from the OS");
    let a = first_token(&ceph_url, &keyring, &["--seed", "3"]).await;
    let b = first_token(&ceph_url, &keyring, &["--seed", "3"]).await;
    assert_eq!(a, b, "a seed: tokens replay");
}
