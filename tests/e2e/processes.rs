//! The binaries as a user runs them: `fake-ceph` and `cephfs-csi` as processes, the
//! driver killed (SIGKILL) and restarted between every two steps of a lifecycle.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use driver::csi::v1::controller_client::ControllerClient;
use driver::csi::v1::node_client::NodeClient;
use driver::csi::v1::*;

use crate::support::{channel, mount_cap, params};

/// A binary of the workspace, built by `cargo test --workspace` (or `cargo build`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace` first",
        p.display()
    );
    p
}

pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start_fake_ceph(dir: &Path) -> (Proc, String, String) {
    let keyring = dir.join("keyring");
    let mut child = Command::new(bin("fake-ceph"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--keyring-out",
            keyring.to_str().unwrap(),
            "--clone-time-ms",
            "100",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let text = std::fs::read_to_string(&keyring).unwrap();
    let key = text
        .lines()
        .nth(1)
        .unwrap()
        .split(" = ")
        .nth(1)
        .unwrap()
        .to_owned();
    (Proc(child), line.trim().to_owned(), key)
}

fn start_driver(dir: &Path, config: &Path) -> Proc {
    start_driver_with(dir, config, &[])
}

/// `cephfs-csi` with the fake mounter, the cluster config and `extra` flags, once its
/// socket accepts connections.
pub fn start_driver_with(dir: &Path, config: &Path, extra: &[&str]) -> Proc {
    let socket = dir.join("csi.sock");
    let _ = std::fs::remove_file(&socket);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("driver.log"))
        .unwrap();
    let child = Command::new(bin("cephfs-csi"))
        .env("RUST_LOG", "debug")
        .args([
            "--endpoint",
            &format!("unix://{}", socket.display()),
            "--node-id",
            "node-0001",
            "--cluster-config",
            config.to_str().unwrap(),
            "--mounter",
            "fake",
            "--fake-mount-mode",
            "symlink",
            "--state-dir",
            dir.join("state").to_str().unwrap(),
            "--ceph-timeout",
            "5",
            "--topology",
            "zone=z1",
            "--max-volumes-per-node",
            "100",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut child = Proc(child);
    // Ready when the socket accepts a connection; a driver that exited says why.
    for _ in 0..1000 {
        if let Some(status) = child.0.try_wait().unwrap() {
            let log = std::fs::read_to_string(dir.join("driver.log")).unwrap_or_default();
            panic!("cephfs-csi exited with {status}:\n{log}");
        }
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("cephfs-csi did not listen on {} in 5 s", socket.display());
}

pub async fn admin(url: &str, key: &str, cmd: serde_json::Value) -> serde_json::Value {
    let out = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-u",
            &format!("client.admin:{key}"),
            "-d",
            &cmd.to_string(),
            &format!("{url}/request"),
        ])
        .output()
        .await
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_killed_between_every_two_steps_converges() {
    let dir = tempfile::tempdir().unwrap();
    let (_ceph, url, key) = start_fake_ceph(dir.path());
    let r = admin(&url, &key, serde_json::json!({"prefix": "fs subvolumegroup create", "vol_name": "cephfs", "group_name": "csi"})).await;
    assert_eq!(r["ret"], 0);
    let config = dir.path().join("clusters.json");
    std::fs::write(
        &config,
        serde_json::json!([{"clusterID": "c1", "monitors": ["127.0.0.1:6789"], "admin": {"transport": "http", "url": url}}]).to_string(),
    )
    .unwrap();
    let secrets: std::collections::HashMap<String, String> = [
        ("adminID".to_owned(), "admin".to_owned()),
        ("adminKey".to_owned(), key.clone()),
    ]
    .into();
    let socket = dir.path().join("csi.sock");
    let staging = dir.path().join("staging");
    let target = dir.path().join("target");
    std::fs::create_dir_all(&staging).unwrap();

    // Each step runs against a freshly started driver; the one before is SIGKILLed.
    let mut driver = start_driver(dir.path(), &config);
    // The node reports what its flags say.
    let info = NodeClient::new(channel(&socket).await)
        .node_get_info(NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.node_id, "node-0001");
    assert_eq!(info.max_volumes_per_node, 100);
    assert_eq!(
        info.accessible_topology.unwrap().segments,
        [(
            "topology.cephfs.csi.trainride/zone".to_owned(),
            "z1".to_owned()
        )]
        .into()
    );
    let restart = |d: &mut Proc| {
        let _ = d.0.kill();
        let _ = d.0.wait();
        *d = start_driver(dir.path(), &config);
    };
    let vol = ControllerClient::new(channel(&socket).await)
        .create_volume(CreateVolumeRequest {
            name: "pvc-kill".into(),
            capacity_range: Some(CapacityRange {
                required_bytes: 1 << 30,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![mount_cap()],
            parameters: params(),
            secrets: secrets.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    restart(&mut driver);
    let stage = NodeStageVolumeRequest {
        volume_id: vol.volume_id.clone(),
        staging_target_path: staging.to_str().unwrap().into(),
        volume_capability: Some(mount_cap()),
        secrets: secrets.clone(),
        volume_context: vol.volume_context.clone(),
        ..Default::default()
    };
    NodeClient::new(channel(&socket).await)
        .node_stage_volume(stage.clone())
        .await
        .unwrap();
    restart(&mut driver);
    // A retried stage after the restart finds the mount and succeeds.
    NodeClient::new(channel(&socket).await)
        .node_stage_volume(stage)
        .await
        .unwrap();
    restart(&mut driver);
    let publish = NodePublishVolumeRequest {
        volume_id: vol.volume_id.clone(),
        staging_target_path: staging.to_str().unwrap().into(),
        target_path: target.to_str().unwrap().into(),
        volume_capability: Some(mount_cap()),
        volume_context: vol.volume_context.clone(),
        ..Default::default()
    };
    NodeClient::new(channel(&socket).await)
        .node_publish_volume(publish)
        .await
        .unwrap();
    std::fs::write(target.join("f"), b"x").unwrap();
    restart(&mut driver);
    NodeClient::new(channel(&socket).await)
        .node_unpublish_volume(NodeUnpublishVolumeRequest {
            volume_id: vol.volume_id.clone(),
            target_path: target.to_str().unwrap().into(),
        })
        .await
        .unwrap();
    restart(&mut driver);
    NodeClient::new(channel(&socket).await)
        .node_unstage_volume(NodeUnstageVolumeRequest {
            volume_id: vol.volume_id.clone(),
            staging_target_path: staging.to_str().unwrap().into(),
        })
        .await
        .unwrap();
    restart(&mut driver);
    ControllerClient::new(channel(&socket).await)
        .delete_volume(DeleteVolumeRequest {
            volume_id: vol.volume_id.clone(),
            secrets: secrets.clone(),
        })
        .await
        .unwrap();
    let ls = admin(
        &url,
        &key,
        serde_json::json!({"prefix": "fs subvolume ls", "vol_name": "cephfs", "group_name": "csi"}),
    )
    .await;
    assert_eq!(ls["outb"].as_str().unwrap().trim(), "[]");
    let sessions = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-u",
            &format!("client.admin:{key}"),
            "-d",
            "{\"prefix\": \"session ls\", \"format\": \"json\"}",
            &format!("{url}/tell/mds.a"),
        ])
        .output()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&sessions.stdout).unwrap();
    assert_eq!(v["outb"], "[]", "sessions left behind");
    assert!(!target.exists());
    drop(driver);
    // Seven driver processes logged at debug level; none of them wrote the key.
    let log = std::fs::read_to_string(dir.path().join("driver.log")).unwrap();
    assert!(log.contains("cephfs-csi serving"), "{log}");
    assert!(
        !log.contains(&key),
        "the admin key reached the driver's log"
    );
    // stderr is a file, not a terminal: no colour escapes (issue 14, item 15).
    assert!(
        !log.contains('\x1b'),
        "ANSI escapes in the log file: {log:?}"
    );
}
