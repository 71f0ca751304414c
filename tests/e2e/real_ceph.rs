//! The lifecycle against a real Ceph cluster: the `cli` admin transport (`ceph` and
//! `rados`) and real ceph-fuse mounts. Runs when `TRAINRIDE_REAL_CEPH` names the
//! directory of a cluster started by `ci/ceph-cluster.sh start` (as root: ceph-fuse and
//! bind mounts need it); says it skipped otherwise.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use driver::config::MounterKind;
use driver::csi::v1::*;
use driver::mount::fuse::FuseMounter;
use serde_json::Value;
use tonic::Code;

use crate::support::{Csi, mount_cap, publish_req, stage_req, unpublish_req, unstage_req};

const GIB: i64 = 1 << 30;

/// A cluster from `ci/ceph-cluster.sh`.
pub struct RealCeph {
    pub dir: PathBuf,
    pub admin_key: String,
}

impl RealCeph {
    /// The cluster `TRAINRIDE_REAL_CEPH` names, if any.
    pub fn from_env() -> Option<Self> {
        let dir = PathBuf::from(std::env::var_os("TRAINRIDE_REAL_CEPH")?);
        let admin_key = std::fs::read_to_string(dir.join("admin.key"))
            .unwrap()
            .trim()
            .to_owned();
        Some(Self { dir, admin_key })
    }

    pub fn cluster_config(&self) -> String {
        std::fs::read_to_string(self.dir.join("cluster-config.json")).unwrap()
    }

    /// `ceph <args> --format json` as the admin, parsed.
    pub fn ceph(&self, args: &[&str]) -> Value {
        let out = std::process::Command::new("ceph")
            .arg("--conf")
            .arg(self.dir.join("ceph.conf"))
            .arg("--keyring")
            .arg(self.dir.join("ceph.client.admin.keyring"))
            .args(args)
            .args(["--format", "json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "ceph {args:?}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    pub fn subvolumes(&self) -> Vec<String> {
        self.ceph(&["fs", "subvolume", "ls", "cephfs", "--group_name", "csi"])
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The journal's objects in the `csi` namespace of the metadata pool.
    pub fn journal_objects(&self) -> Vec<String> {
        let out = std::process::Command::new("rados")
            .arg("--conf")
            .arg(self.dir.join("ceph.conf"))
            .arg("--keyring")
            .arg(self.dir.join("ceph.client.admin.keyring"))
            .args(["--pool", "cephfs.cephfs.meta", "--namespace", "csi", "ls"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn secrets(&self) -> HashMap<String, String> {
        HashMap::from([
            ("adminID".to_owned(), "admin".to_owned()),
            ("adminKey".to_owned(), self.admin_key.clone()),
        ])
    }

    pub async fn driver(&self) -> Csi {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        Csi::start_mounting(
            dir,
            state_dir,
            &self.cluster_config(),
            MounterKind::Fuse,
            Arc::new(FuseMounter::new(Duration::from_secs(60))),
            // Real subvolume removal has been seen to take 10 s right after bootstrap.
            Duration::from_secs(60),
        )
        .await
    }
}

fn ceph_fuse_mounts_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .map(str::to_owned)
        .collect()
}

fn params() -> HashMap<String, String> {
    HashMap::from([
        ("clusterID".to_owned(), "real".to_owned()),
        ("fsName".to_owned(), "cephfs".to_owned()),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_on_real_ceph_with_ceph_fuse() {
    let Some(ceph) = RealCeph::from_env() else {
        println!("skipped: TRAINRIDE_REAL_CEPH is not set (ci/ceph-cluster.sh start sets up one)");
        return;
    };
    let csi = ceph.driver().await;
    let mut ctl = csi.controller().await;
    let mut node = csi.node().await;
    let probe = csi.identity().await.probe(ProbeRequest {}).await.unwrap();
    assert_eq!(probe.into_inner().ready, Some(true));

    let name = format!("pvc-real-{}", uuid::Uuid::new_v4());
    let request = |name: &str, size: i64| CreateVolumeRequest {
        name: name.to_owned(),
        capacity_range: Some(CapacityRange {
            required_bytes: size,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![mount_cap()],
        parameters: params(),
        secrets: ceph.secrets(),
        ..Default::default()
    };
    let vol = ctl
        .create_volume(request(&name, GIB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let subvolume = vol.volume_context["subvolumeName"].clone();
    assert!(ceph.subvolumes().contains(&subvolume));
    let info = ceph.ceph(&[
        "fs",
        "subvolume",
        "info",
        "cephfs",
        &subvolume,
        "--group_name",
        "csi",
    ]);
    assert_eq!(info["bytes_quota"], GIB);
    assert_eq!(info["path"], vol.volume_context["subvolumePath"].as_str());
    let again = ctl.create_volume(request(&name, GIB)).await.unwrap();
    assert_eq!(again.into_inner().volume.unwrap().volume_id, vol.volume_id);
    let e = ctl
        .create_volume(request(&name, 2 * GIB))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");

    // A real ceph-fuse mount, bind-mounted to the target; the quota is the size.
    let staging = csi.dir.path().join("staging");
    let target = csi.dir.path().join("pods/p1/volume");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let stage = |volume: &Volume, staging: &Path| stage_req(volume, staging, ceph.secrets());
    node.node_stage_volume(stage(&vol, &staging)).await.unwrap();
    node.node_stage_volume(stage(&vol, &staging)).await.unwrap();
    let publish = publish_req(&vol, &staging, &target);
    node.node_publish_volume(publish.clone()).await.unwrap();
    node.node_publish_volume(publish).await.unwrap();
    std::fs::write(target.join("hello.txt"), b"hello from a pod").unwrap();
    assert_eq!(
        std::fs::read(staging.join("hello.txt")).unwrap(),
        b"hello from a pod"
    );
    let stats = |node: &mut driver::csi::v1::node_client::NodeClient<_>| {
        let req = NodeGetVolumeStatsRequest {
            volume_id: vol.volume_id.clone(),
            volume_path: target.to_str().unwrap().to_owned(),
            ..Default::default()
        };
        let mut node = node.clone();
        async move { node.node_get_volume_stats(req).await.unwrap().into_inner() }
    };
    let s = stats(&mut node).await;
    assert_eq!(s.usage[0].total, GIB);
    assert!(!s.volume_condition.unwrap().abnormal);

    // Expand: the live mount shows the new size (Ceph says within about a second).
    ctl.controller_expand_volume(ControllerExpandVolumeRequest {
        volume_id: vol.volume_id.clone(),
        capacity_range: Some(CapacityRange {
            required_bytes: 2 * GIB,
            limit_bytes: 0,
        }),
        secrets: ceph.secrets(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut grown = false;
    for _ in 0..50 {
        if stats(&mut node).await.usage[0].total == 2 * GIB {
            grown = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(grown, "the mount never showed the new quota");

    // Snapshot, clone, and read the file back through the clone's own mount.
    let snap = ctl
        .create_snapshot(CreateSnapshotRequest {
            source_volume_id: vol.volume_id.clone(),
            name: format!("snap-{name}"),
            secrets: ceph.secrets(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    assert!(snap.ready_to_use);
    let mut from_snap = request(&format!("{name}-clone"), 2 * GIB);
    from_snap.volume_content_source = Some(VolumeContentSource {
        r#type: Some(volume_content_source::Type::Snapshot(
            volume_content_source::SnapshotSource {
                snapshot_id: snap.snapshot_id.clone(),
            },
        )),
    });
    let mut clone = None;
    for _ in 0..120 {
        match ctl.create_volume(from_snap.clone()).await {
            Ok(r) => {
                clone = r.into_inner().volume;
                break;
            }
            Err(e) if e.code() == Code::Aborted => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    let clone = clone.expect("the clone never completed");
    let staging2 = csi.dir.path().join("staging-clone");
    std::fs::create_dir_all(&staging2).unwrap();
    node.node_stage_volume(stage(&clone, &staging2))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(staging2.join("hello.txt")).unwrap(),
        b"hello from a pod"
    );
    let unstage = |volume: &Volume, staging: &Path| unstage_req(&volume.volume_id, staging);
    node.node_unstage_volume(unstage(&clone, &staging2))
        .await
        .unwrap();

    // Tear down; nothing is left in Ceph or in the mount table.
    let unpublish = unpublish_req(&vol.volume_id, &target);
    node.node_unpublish_volume(unpublish.clone()).await.unwrap();
    node.node_unpublish_volume(unpublish).await.unwrap();
    node.node_unstage_volume(unstage(&vol, &staging))
        .await
        .unwrap();
    node.node_unstage_volume(unstage(&vol, &staging))
        .await
        .unwrap();
    assert!(
        ceph_fuse_mounts_under(csi.dir.path()).is_empty(),
        "{:?}",
        ceph_fuse_mounts_under(csi.dir.path())
    );
    let del_snap = DeleteSnapshotRequest {
        snapshot_id: snap.snapshot_id.clone(),
        secrets: ceph.secrets(),
    };
    ctl.delete_snapshot(del_snap.clone()).await.unwrap();
    ctl.delete_snapshot(del_snap).await.unwrap();
    for v in [&vol, &clone] {
        let del = DeleteVolumeRequest {
            volume_id: v.volume_id.clone(),
            secrets: ceph.secrets(),
        };
        ctl.delete_volume(del.clone()).await.unwrap();
        ctl.delete_volume(del).await.unwrap();
    }
    let left = ceph.subvolumes();
    assert!(!left.contains(&subvolume), "{left:?}");
    assert!(
        !left.contains(&clone.volume_context["subvolumeName"]),
        "{left:?}"
    );
    let uuid_of = |v: &Volume| v.volume_id[v.volume_id.len() - 36..].to_owned();
    let objects = ceph.journal_objects();
    for v in [&vol, &clone] {
        let mine: Vec<_> = objects
            .iter()
            .filter(|o| o.ends_with(&uuid_of(v)))
            .collect();
        assert!(mine.is_empty(), "{mine:?}");
    }
    let metrics = csi.driver.metrics.render();
    assert!(!metrics.contains(&ceph.admin_key));
}
