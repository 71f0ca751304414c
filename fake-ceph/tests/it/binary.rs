//! The `fake-ceph` binary, started as a user would start it.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

struct Running {
    child: Child,
    url: String,
}

fn start(args: &[&str]) -> Running {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("fake-ceph"))
        .args(args)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "first line: {line:?}");
    Running { child, url }
}

fn stop(r: Running) -> String {
    let pid = r.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = r.child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit {:?}", out.status);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn command(url: &str, key: &str, cmd: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{url}/request"))
        .basic_auth("client.admin", Some(key))
        .body(cmd.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn serves_writes_a_keyring_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("ceph.client.admin.keyring");
    let data = dir.path().join("data");
    let r = start(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--fs-name",
        "myfs",
        "--keyring-out",
        keyring.to_str().unwrap(),
        "--seed",
        "7",
    ]);
    let text = std::fs::read_to_string(&keyring).unwrap();
    assert_eq!(
        std::fs::metadata(&keyring).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(text.starts_with("[client.admin]\n\tkey = AQ"), "{text}");
    let key = text
        .lines()
        .nth(1)
        .unwrap()
        .split(" = ")
        .nth(1)
        .unwrap()
        .to_owned();
    let v = command(&r.url, &key, json!({"prefix": "fs volume ls"})).await;
    assert_eq!(
        serde_json::from_str::<Value>(v["outb"].as_str().unwrap()).unwrap(),
        json!([{"name": "myfs"}])
    );
    command(
        &r.url,
        &key,
        json!({"prefix": "fs subvolumegroup create", "vol_name": "myfs", "group_name": "csi"}),
    )
    .await;
    let v = command(&r.url, &key, json!({"prefix": "fs subvolume create", "vol_name": "myfs", "group_name": "csi", "sub_name": "s"})).await;
    assert_eq!(v["ret"], 0);
    let p = command(&r.url, &key, json!({"prefix": "fs subvolume getpath", "vol_name": "myfs", "group_name": "csi", "sub_name": "s"})).await;
    let path = p["outb"]
        .as_str()
        .unwrap()
        .trim()
        .trim_start_matches('/')
        .to_owned();
    assert!(data.join("fs/myfs").join(&path).is_dir());
    let logs = stop(r);
    assert!(logs.contains("fake-ceph serving"), "{logs}");
    assert!(
        logs.contains("fs subvolume create"),
        "commands are logged: {logs}"
    );
    assert!(!logs.contains(&key), "the admin key leaked into the logs");
    // stderr is a pipe, not a terminal: no colour escapes (issue 14, item 15).
    assert!(!logs.contains('\x1b'), "ANSI escapes in the log: {logs:?}");
}

#[tokio::test]
async fn temporary_data_dir_is_removed_and_faults_come_from_flags() {
    let r = start(&[
        "--fault",
        "error:fs ls=1:EAGAIN",
        "--admin-key",
        "AQAz7EVWygILFRAAdIcuJ12opU/JKyfFmxhuaw==",
        "--log-format",
        "json",
    ]);
    let key = "AQAz7EVWygILFRAAdIcuJ12opU/JKyfFmxhuaw==";
    let v = command(&r.url, key, json!({"prefix": "fs ls"})).await;
    assert_eq!(v["ret"], -11);
    let v = command(&r.url, key, json!({"prefix": "fs volume ls"})).await;
    assert_eq!(v["ret"], 0);
    let logs = stop(r);
    let dir = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["fields"]["data_dir"].as_str().map(str::to_owned))
        .unwrap();
    assert!(dir.contains("fake-ceph-"), "{dir}");
    assert!(!std::path::Path::new(&dir).exists(), "{dir} left behind");
    assert!(!logs.contains(key));
}

#[test]
fn bad_flags_and_a_used_data_dir_fail_clearly() {
    let out = Command::new(assert_cmd::cargo::cargo_bin!("fake-ceph"))
        .args(["--fault", "slow:*=1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad fault"),
        "{out:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("something"), b"x").unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin!("fake-ceph"))
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not empty"),
        "{out:?}"
    );
}

/// The admin key and the fsid `GET /` shows, from a binary started with `args`.
async fn admin_key_and_fsid(args: &[&str]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("keyring");
    let mut all = vec!["--keyring-out", keyring.to_str().unwrap()];
    all.extend_from_slice(args);
    let r = start(&all);
    let key = std::fs::read_to_string(&keyring)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .split(" = ")
        .nth(1)
        .unwrap()
        .to_owned();
    let index: Value = reqwest::get(format!("{}/", r.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stop(r);
    (secret_of(&key), index["fsid"].as_str().unwrap().to_owned())
}

/// The secret bytes of a cephx key (base64 of type, creation time, length, secret):
/// the creation time differs between starts whatever the seed.
pub fn secret_of(key: &str) -> String {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(key)
        .unwrap();
    assert_eq!(raw.len(), 28, "{key}");
    raw[12..].iter().map(|b| format!("{b:02x}")).collect()
}

/// A server started by hand draws its secrets from the OS; `--seed N` reproduces a run
/// (issue 14, item 7: the admin key was the same on every start without `--seed`).
#[tokio::test]
async fn secrets_come_from_the_os_unless_a_seed_is_asked_for() {
    let (k1, f1) = admin_key_and_fsid(&[]).await;
    let (k2, f2) = admin_key_and_fsid(&[]).await;
    assert_ne!(k1, k2, "two starts without --seed share the admin key");
    assert_ne!(f1, f2, "two starts without --seed share the fsid");
    let (s1, g1) = admin_key_and_fsid(&["--seed", "5"]).await;
    let (s2, g2) = admin_key_and_fsid(&["--seed", "5"]).await;
    assert_eq!((s1, g1), (s2, g2), "--seed 5 is reproducible");
}
