//! The whole lifecycle of a volume, and the idempotency and error rules around it.

use std::time::Duration;

use driver::csi::v1::*;
use tonic::Code;

use crate::support::{Ceph, Csi, create_request, mount_cap, unpublish_req, unstage_req};

const GIB: i64 = 1 << 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_stage_publish_write_snapshot_clone_and_clean_up() {
    let ceph = Ceph::start().await;
    let csi = Csi::start(&ceph).await;
    let mut ctl = csi.controller().await;
    let mut node = csi.node().await;

    let probe = csi
        .identity()
        .await
        .probe(ProbeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(probe.ready, Some(true));

    let vol = ctl
        .create_volume(create_request(&ceph, "pvc-1", GIB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(vol.capacity_bytes, GIB);
    assert!(
        vol.volume_id.starts_with("0001-0002-c1-0000000000000001-"),
        "{}",
        vol.volume_id
    );
    let path = vol.volume_context["subvolumePath"].clone();
    assert!(path.starts_with("/volumes/csi/csi-vol-"), "{path}");
    assert_eq!(ceph.subvolumes().await.len(), 1);
    // Idempotent: the same name and size give the same volume; another size is refused.
    let again = ctl
        .create_volume(create_request(&ceph, "pvc-1", GIB))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.volume.unwrap().volume_id, vol.volume_id);
    let e = ctl
        .create_volume(create_request(&ceph, "pvc-1", 2 * GIB))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);

    // Stage and publish; write through the target; see it in the fake's tree.
    let staging = csi.dir.path().join("staging");
    let target = csi.dir.path().join("pods/p1/volume");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let stage = NodeStageVolumeRequest {
        volume_id: vol.volume_id.clone(),
        staging_target_path: staging.to_str().unwrap().to_owned(),
        volume_capability: Some(mount_cap()),
        secrets: ceph.secrets(),
        volume_context: vol.volume_context.clone(),
        ..Default::default()
    };
    node.node_stage_volume(stage.clone()).await.unwrap();
    node.node_stage_volume(stage.clone()).await.unwrap();
    assert_eq!(ceph.cluster.session_count(), 1);
    let publish = NodePublishVolumeRequest {
        volume_id: vol.volume_id.clone(),
        staging_target_path: staging.to_str().unwrap().to_owned(),
        target_path: target.to_str().unwrap().to_owned(),
        volume_capability: Some(mount_cap()),
        volume_context: vol.volume_context.clone(),
        ..Default::default()
    };
    node.node_publish_volume(publish.clone()).await.unwrap();
    node.node_publish_volume(publish.clone()).await.unwrap();
    std::fs::write(target.join("hello.txt"), b"hello from a pod").unwrap();
    let in_tree = ceph
        .cluster
        .fs_root("cephfs")
        .join(path.trim_start_matches('/'))
        .join("hello.txt");
    assert_eq!(std::fs::read(&in_tree).unwrap(), b"hello from a pod");

    let stats = node
        .node_get_volume_stats(NodeGetVolumeStatsRequest {
            volume_id: vol.volume_id.clone(),
            volume_path: target.to_str().unwrap().to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.usage[0].total, GIB);
    assert!(!stats.volume_condition.unwrap().abnormal);

    // Expand: the quota follows, and statfs shows it.
    let exp = ctl
        .controller_expand_volume(ControllerExpandVolumeRequest {
            volume_id: vol.volume_id.clone(),
            capacity_range: Some(CapacityRange {
                required_bytes: 2 * GIB,
                limit_bytes: 0,
            }),
            secrets: ceph.secrets(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(exp.capacity_bytes, 2 * GIB);
    assert!(!exp.node_expansion_required);

    // Snapshot, then a volume from it (Aborted while the clone runs).
    let snap = ctl
        .create_snapshot(CreateSnapshotRequest {
            source_volume_id: vol.volume_id.clone(),
            name: "snap-1".into(),
            secrets: ceph.secrets(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    assert!(snap.ready_to_use);
    assert!(snap.creation_time.is_some());
    let mut from_snap = create_request(&ceph, "pvc-2", GIB);
    from_snap.volume_content_source = Some(VolumeContentSource {
        r#type: Some(volume_content_source::Type::Snapshot(
            volume_content_source::SnapshotSource {
                snapshot_id: snap.snapshot_id.clone(),
            },
        )),
    });
    let clone = loop {
        match ctl.create_volume(from_snap.clone()).await {
            Ok(r) => break r.into_inner().volume.unwrap(),
            Err(e) if e.code() == Code::Aborted => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    let clone_path = clone.volume_context["subvolumePath"].clone();
    let copied = ceph
        .cluster
        .fs_root("cephfs")
        .join(clone_path.trim_start_matches('/'))
        .join("hello.txt");
    assert_eq!(std::fs::read(copied).unwrap(), b"hello from a pod");
    let listed = ctl
        .list_snapshots(ListSnapshotsRequest {
            source_volume_id: vol.volume_id.clone(),
            secrets: ceph.secrets(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.entries.len(), 1);
    let by_id = ctl
        .list_snapshots(ListSnapshotsRequest {
            snapshot_id: snap.snapshot_id.clone(),
            secrets: ceph.secrets(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_id.entries.len(), 1);
    let got = ctl
        .get_snapshot(GetSnapshotRequest {
            snapshot_id: snap.snapshot_id.clone(),
            secrets: ceph.secrets(),
        })
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    assert_eq!(got.snapshot_id, snap.snapshot_id);
    assert_eq!(got.source_volume_id, vol.volume_id);
    assert_eq!(got.creation_time, snap.creation_time);
    assert!(got.ready_to_use);

    // A volume with snapshots cannot go.
    let del = DeleteVolumeRequest {
        volume_id: vol.volume_id.clone(),
        secrets: ceph.secrets(),
    };
    assert_eq!(
        ctl.delete_volume(del.clone()).await.unwrap_err().code(),
        Code::FailedPrecondition
    );

    // Tear down.
    let unpublish = NodeUnpublishVolumeRequest {
        volume_id: vol.volume_id.clone(),
        target_path: target.to_str().unwrap().to_owned(),
    };
    node.node_unpublish_volume(unpublish.clone()).await.unwrap();
    node.node_unpublish_volume(unpublish).await.unwrap();
    assert!(!target.exists());
    let unstage = NodeUnstageVolumeRequest {
        volume_id: vol.volume_id.clone(),
        staging_target_path: staging.to_str().unwrap().to_owned(),
    };
    node.node_unstage_volume(unstage.clone()).await.unwrap();
    node.node_unstage_volume(unstage).await.unwrap();
    assert_eq!(ceph.cluster.session_count(), 0);
    let dsnap = DeleteSnapshotRequest {
        snapshot_id: snap.snapshot_id.clone(),
        secrets: ceph.secrets(),
    };
    ctl.delete_snapshot(dsnap.clone()).await.unwrap();
    ctl.delete_snapshot(dsnap).await.unwrap();
    let gone = ctl
        .get_snapshot(GetSnapshotRequest {
            snapshot_id: snap.snapshot_id.clone(),
            secrets: ceph.secrets(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "{gone:?}");
    ctl.delete_volume(del.clone()).await.unwrap();
    ctl.delete_volume(del).await.unwrap();
    ctl.delete_volume(DeleteVolumeRequest {
        volume_id: clone.volume_id.clone(),
        secrets: ceph.secrets(),
    })
    .await
    .unwrap();
    assert!(ceph.subvolumes().await.is_empty());
    // Nothing left behind: no journal objects, no mount records, no key files.
    let objects = ceph
        .cluster
        .admin_command(serde_json::json!({"prefix": "rados ls", "pool": "cephfs.cephfs.meta", "namespace": "csi"}))
        .await;
    let objects: serde_json::Value = serde_json::from_str(&objects.outb).unwrap();
    let leftover: Vec<_> = objects
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| {
            o["name"].as_str().unwrap().starts_with("csi.volume.")
                || o["name"].as_str().unwrap().starts_with("csi.snap.")
        })
        .collect();
    assert!(leftover.is_empty(), "{leftover:?}");
    let records: Vec<_> = walk(&csi.state_dir);
    assert!(records.is_empty(), "{records:?}");
    // Every RPC was counted, by method and code, and no key shows in the metrics.
    let metrics = csi.driver.metrics.render();
    assert!(
        metrics.contains(r#"cephfs_csi_rpcs_total{method="CreateVolume",code="OK"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"cephfs_csi_rpcs_total{method="CreateVolume",code="ALREADY_EXISTS"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"cephfs_csi_rpcs_total{method="NodeStageVolume",code="OK"} 2"#),
        "{metrics}"
    );
    // Ceph admin calls are counted by command and result, with their latency.
    assert!(
        metrics
            .contains(r#"cephfs_csi_backend_calls_total{call="fs subvolume create",result="ok"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"cephfs_csi_backend_seconds_count{call="fs subvolume rm"}"#),
        "{metrics}"
    );
    // Mounter operations too: one mount (the second stage found it mounted), one bind,
    // and an unmount for each of unpublish and unstage.
    for line in [
        r#"cephfs_csi_mounts_total{mounter="fake",op="mount",result="ok"} 1"#,
        r#"cephfs_csi_mounts_total{mounter="fake",op="bind",result="ok"} 1"#,
        r#"cephfs_csi_mounts_total{mounter="fake",op="unmount",result="ok"} 2"#,
        r#"cephfs_csi_mount_seconds_count{mounter="fake",op="mount"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} not in {metrics}");
    }
    assert!(!metrics.contains(&ceph.admin_key));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_creates_of_one_name_give_one_volume() {
    let ceph = Ceph::start().await;
    let csi = Csi::start(&ceph).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let mut ctl = csi.controller().await;
        let req = create_request(&ceph, "pvc-race", GIB);
        tasks.spawn(async move {
            loop {
                match ctl.create_volume(req.clone()).await {
                    Ok(r) => return r.into_inner().volume.unwrap().volume_id,
                    Err(e) if e.code() == Code::Aborted => {
                        tokio::time::sleep(Duration::from_millis(5)).await
                    }
                    Err(e) => panic!("{e:?}"),
                }
            }
        });
    }
    let mut ids = std::collections::BTreeSet::new();
    while let Some(id) = tasks.join_next().await {
        ids.insert(id.unwrap());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(ceph.subvolumes().await.len(), 1);
}

fn code<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
    r.unwrap_err().code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_spec_codes() {
    let ceph = Ceph::start().await;
    let csi = Csi::start(&ceph).await;
    let mut ctl = csi.controller().await;
    let mut node = csi.node().await;

    let mut r = create_request(&ceph, "", GIB);
    assert_eq!(
        code(ctl.create_volume(r.clone()).await),
        Code::InvalidArgument
    );
    r.name = "x".into();
    r.volume_capabilities.clear();
    assert_eq!(code(ctl.create_volume(r).await), Code::InvalidArgument);
    let mut r = create_request(&ceph, "x", GIB);
    r.secrets.clear();
    assert_eq!(code(ctl.create_volume(r).await), Code::InvalidArgument);
    let mut r = create_request(&ceph, "x", GIB);
    r.secrets.insert(
        "adminKey".into(),
        "AQAz7EVWygILFRAAdIcuJ12opU/JKyfFmxhuaw==".into(),
    );
    assert_eq!(code(ctl.create_volume(r).await), Code::Unauthenticated);
    let mut r = create_request(&ceph, "x", GIB);
    r.parameters.remove("fsName");
    assert_eq!(code(ctl.create_volume(r).await), Code::InvalidArgument);
    let mut r = create_request(&ceph, "x", GIB);
    r.parameters.insert("clusterID".into(), "../../etc".into());
    assert_eq!(code(ctl.create_volume(r).await), Code::InvalidArgument);
    let mut r = create_request(&ceph, "x", GIB);
    r.volume_capabilities[0].access_mode = Some(volume_capability::AccessMode { mode: 0 });
    assert_eq!(code(ctl.create_volume(r).await), Code::InvalidArgument);

    // GetSnapshot: an empty ID is InvalidArgument, an unknown or malformed one NotFound.
    let get = |id: &str| GetSnapshotRequest {
        snapshot_id: id.into(),
        secrets: ceph.secrets(),
    };
    assert_eq!(code(ctl.get_snapshot(get("")).await), Code::InvalidArgument);
    for id in [
        "garbage",
        "0001-0002-c1-0000000000000001-00000000-0000-0000-0000-000000000000",
    ] {
        assert_eq!(code(ctl.get_snapshot(get(id)).await), Code::NotFound);
    }

    // Deleting an unknown or malformed ID succeeds; an empty one is InvalidArgument.
    for id in [
        "garbage",
        "0001-0002-c1-0000000000000001-00000000-0000-0000-0000-000000000000",
        "../../etc/passwd",
    ] {
        ctl.delete_volume(DeleteVolumeRequest {
            volume_id: id.into(),
            secrets: ceph.secrets(),
        })
        .await
        .unwrap();
    }
    assert_eq!(
        code(
            ctl.delete_volume(DeleteVolumeRequest {
                volume_id: String::new(),
                secrets: ceph.secrets()
            })
            .await
        ),
        Code::InvalidArgument
    );
    let v = ValidateVolumeCapabilitiesRequest {
        volume_id: "0001-0002-c1-0000000000000001-00000000-0000-0000-0000-000000000000".into(),
        volume_capabilities: vec![mount_cap()],
        secrets: ceph.secrets(),
        ..Default::default()
    };
    assert_eq!(
        code(ctl.validate_volume_capabilities(v).await),
        Code::NotFound
    );

    // Node: missing fields and path tricks.
    let ok_stage = NodeStageVolumeRequest {
        volume_id: "v".into(),
        staging_target_path: "/tmp/x".into(),
        volume_capability: Some(mount_cap()),
        secrets: ceph.secrets(),
        volume_context: [("subvolumePath".to_owned(), "/volumes/csi/x/y".to_owned())].into(),
        ..Default::default()
    };
    for mutate in [
        (|r: &mut NodeStageVolumeRequest| r.volume_id.clear()) as fn(&mut NodeStageVolumeRequest),
        |r| r.staging_target_path.clear(),
        |r| r.volume_capability = None,
        |r| r.staging_target_path = "relative/path".into(),
        |r| r.staging_target_path = "/tmp/../etc".into(),
        |r| {
            r.volume_context
                .insert("subvolumePath".into(), "/volumes/../../etc".into());
        },
    ] {
        let mut r = ok_stage.clone();
        mutate(&mut r);
        assert_eq!(code(node.node_stage_volume(r).await), Code::InvalidArgument);
    }
    assert_eq!(
        code(
            node.node_publish_volume(NodePublishVolumeRequest {
                volume_id: "v".into(),
                ..Default::default()
            })
            .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            node.node_unpublish_volume(NodeUnpublishVolumeRequest {
                volume_id: "v".into(),
                target_path: String::new()
            })
            .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            node.node_get_volume_stats(NodeGetVolumeStatsRequest {
                volume_id: "v".into(),
                volume_path: "/nonexistent/path".into(),
                ..Default::default()
            })
            .await
        ),
        Code::NotFound
    );
    let _ = csi.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_backend_gives_deadline_exceeded_then_recovers() {
    let ceph = Ceph::start().await;
    let csi = Csi::start(&ceph).await;
    let mut ctl = csi.controller().await;
    ceph.cluster.set_faults(fake_ceph::Faults {
        rules: vec![fake_ceph::FaultRule {
            prefix: "fs subvolume create".into(),
            latency_ms: None,
            error_rate: None,
            errno: None,
            hang: true,
        }],
        mds_down: false,
    });
    let e = ctl
        .create_volume(create_request(&ceph, "pvc-hang", GIB))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    // The lock did not outlive the call.
    assert_eq!(csi.driver.locks.held(), 0);
    ceph.cluster.set_faults(fake_ceph::Faults::default());
    let v = ctl
        .create_volume(create_request(&ceph, "pvc-hang", GIB))
        .await
        .unwrap()
        .into_inner();
    assert!(v.volume.is_some());
    assert_eq!(ceph.subvolumes().await.len(), 1);
    let metrics = csi.driver.metrics.render();
    assert!(
        metrics.contains(
            r#"cephfs_csi_backend_calls_total{call="fs subvolume create",result="timeout"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_volume_mounts_with_a_user_key_only() {
    let ceph = Ceph::start().await;
    let csi = Csi::start(&ceph).await;
    let mut node = csi.node().await;
    // An existing subvolume and a user authorized on it, made by an administrator.
    let r = ceph
        .cluster
        .admin_command(serde_json::json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "group_name": "csi", "sub_name": "static-1"}))
        .await;
    assert_eq!(r.ret, 0);
    let path = ceph
        .cluster
        .admin_command(serde_json::json!({"prefix": "fs subvolume getpath", "vol_name": "cephfs", "group_name": "csi", "sub_name": "static-1"}))
        .await
        .outb
        .trim()
        .to_owned();
    let key = ceph
        .cluster
        .admin_command(serde_json::json!({"prefix": "fs subvolume authorize", "vol_name": "cephfs", "group_name": "csi", "sub_name": "static-1", "auth_id": "static-user", "tenant_id": "t"}))
        .await
        .outb
        .trim()
        .to_owned();
    let staging = csi.dir.path().join("static-staging");
    std::fs::create_dir_all(&staging).unwrap();
    let ctx: std::collections::HashMap<String, String> = [
        ("staticVolume", "true"),
        ("clusterID", "c1"),
        ("fsName", "cephfs"),
        ("rootPath", path.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut stage = NodeStageVolumeRequest {
        volume_id: "my-static-pv".into(),
        staging_target_path: staging.to_str().unwrap().into(),
        volume_capability: Some(mount_cap()),
        secrets: ceph.secrets(),
        volume_context: ctx,
        ..Default::default()
    };
    // Admin credentials are refused for static volumes.
    assert_eq!(
        code(node.node_stage_volume(stage.clone()).await),
        Code::InvalidArgument
    );
    stage.secrets = [
        ("userID".to_owned(), "static-user".to_owned()),
        ("userKey".to_owned(), key),
    ]
    .into();
    node.node_stage_volume(stage).await.unwrap();
    assert_eq!(ceph.cluster.session_count(), 1);
    node.node_unstage_volume(NodeUnstageVolumeRequest {
        volume_id: "my-static-pv".into(),
        staging_target_path: staging.to_str().unwrap().into(),
    })
    .await
    .unwrap();
    assert_eq!(ceph.cluster.session_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_subvolume_group_is_created_on_first_use() {
    let ceph = Ceph::start().await;
    let mut clusters: serde_json::Value = serde_json::from_str(&ceph.cluster_config()).unwrap();
    clusters[0]["cephFS"]["subvolumeGroup"] = "fresh".into();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let csi = Csi::start_with(dir, state, &clusters.to_string()).await;
    let vol = csi
        .controller()
        .await
        .create_volume(create_request(&ceph, "pvc-fresh", GIB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert!(
        vol.volume_context["subvolumePath"].starts_with("/volumes/fresh/csi-vol-"),
        "{:?}",
        vol.volume_context
    );
    let groups = ceph
        .cluster
        .admin_command(serde_json::json!({"prefix": "fs subvolumegroup ls", "vol_name": "cephfs"}))
        .await;
    assert!(groups.outb.contains("\"fresh\""), "{}", groups.outb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_writer_volume_is_published_at_one_target_at_a_time() {
    use crate::support::{publish_req, stage_req, unpublish_req, unstage_req};
    let ceph = Ceph::start().await;
    let csi = Csi::start(&ceph).await;
    let mut ctl = csi.controller().await;
    let mut req = create_request(&ceph, "rwop-1", GIB);
    let rwop = VolumeCapability {
        access_mode: Some(volume_capability::AccessMode {
            mode: volume_capability::access_mode::Mode::SingleNodeSingleWriter as i32,
        }),
        ..mount_cap()
    };
    req.volume_capabilities = vec![rwop.clone()];
    let v = ctl
        .create_volume(req)
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let root = csi.dir.path().to_path_buf();
    let staging = root.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let [a, b, c] = ["a", "b", "c"].map(|p| root.join("pods").join(p).join("mount"));
    let publish = |target: &std::path::Path| NodePublishVolumeRequest {
        volume_capability: Some(rwop.clone()),
        ..publish_req(&v, &staging, target)
    };
    let mut node = csi.node().await;
    let caps = node
        .node_get_capabilities(NodeGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    let single_node_multi_writer =
        node_service_capability::Type::Rpc(node_service_capability::Rpc {
            r#type: node_service_capability::rpc::Type::SingleNodeMultiWriter as i32,
        });
    assert!(
        caps.capabilities
            .iter()
            .any(|c| c.r#type.as_ref() == Some(&single_node_multi_writer)),
        "{caps:?}"
    );
    let mut stage = stage_req(&v, &staging, ceph.secrets());
    stage.volume_capability = Some(rwop.clone());
    node.node_stage_volume(stage).await.unwrap();
    node.node_publish_volume(publish(&a)).await.unwrap();
    node.node_publish_volume(publish(&a)).await.unwrap();
    let second = node.node_publish_volume(publish(&b)).await.unwrap_err();
    assert_eq!(second.code(), Code::FailedPrecondition, "{second:?}");
    assert!(second.message().contains(a.to_str().unwrap()), "{second:?}");
    // The claim outlives the driver process.
    let state_dir = csi.state_dir.clone();
    let dir = csi.stop().await;
    let csi = Csi::start_in(&ceph, dir, state_dir.clone()).await;
    let mut node = csi.node().await;
    assert_eq!(
        code(node.node_publish_volume(publish(&b)).await),
        Code::FailedPrecondition
    );
    // Another mode's publish is not held back (the CO decides which modes it uses).
    node.node_publish_volume(publish_req(&v, &staging, &c))
        .await
        .unwrap();
    node.node_unpublish_volume(unpublish_req(&v.volume_id, &c))
        .await
        .unwrap();
    // Unpublished at a, it may go to b.
    node.node_unpublish_volume(unpublish_req(&v.volume_id, &a))
        .await
        .unwrap();
    node.node_publish_volume(publish(&b)).await.unwrap();
    std::fs::write(b.join("f"), b"one writer").unwrap();
    // A claim whose target is gone without an unpublish (removed by hand, a crash) is
    // stale, and does not hold the volume.
    std::fs::remove_file(&b).unwrap();
    node.node_publish_volume(publish(&c)).await.unwrap();
    assert_eq!(std::fs::read(c.join("f")).unwrap(), b"one writer");
    node.node_unpublish_volume(unpublish_req(&v.volume_id, &c))
        .await
        .unwrap();
    node.node_unpublish_volume(unpublish_req(&v.volume_id, &b))
        .await
        .unwrap();
    node.node_unstage_volume(unstage_req(&v.volume_id, &staging))
        .await
        .unwrap();
    let claims = state_dir.join("rwop");
    assert_eq!(std::fs::read_dir(&claims).unwrap().count(), 0);
    ctl = csi.controller().await;
    ctl.delete_volume(DeleteVolumeRequest {
        volume_id: v.volume_id.clone(),
        secrets: ceph.secrets(),
    })
    .await
    .unwrap();
    assert!(ceph.subvolumes().await.is_empty());
    assert_eq!(ceph.cluster.session_count(), 0);
}

/// A symlink at a target path that the driver did not make (planted by someone else) is
/// neither followed nor removed: NodeUnpublishVolume (which must remove the target path)
/// fails, NodeUnstageVolume finds nothing of its own there (the CO owns the staging
/// path), and the link stays, pointing where it did.
#[tokio::test]
async fn unpublish_and_unstage_leave_alone_a_symlink_they_did_not_make() {
    let ceph = Ceph::start().await;
    let csi = Csi::start(&ceph).await;
    let mut node = csi.node().await;
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("precious"), b"keep me").unwrap();
    let planted = csi.dir.path().join("planted");
    std::os::unix::fs::symlink(elsewhere.path(), &planted).unwrap();
    let e = node
        .node_unpublish_volume(unpublish_req("any-volume", &planted))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("did not make"), "{}", e.message());
    node.node_unstage_volume(unstage_req("any-volume", &planted))
        .await
        .unwrap();
    assert_eq!(std::fs::read_link(&planted).unwrap(), elsewhere.path());
    assert_eq!(
        std::fs::read(elsewhere.path().join("precious")).unwrap(),
        b"keep me"
    );
}

/// IDs and names are bounded at the edge: a 3 MiB volume ID is not echoed back (before,
/// it came back as a 3 MiB error, and at 10 KiB clients got RESOURCE_EXHAUSTED instead
/// of NOT_FOUND because the message did not fit a header).
#[tokio::test]
async fn oversized_ids_and_names_are_refused_without_being_echoed() {
    let ceph = Ceph::start().await;
    let csi = Csi::start(&ceph).await;
    let mut ctl = csi.controller().await;
    let mut node = csi.node().await;
    for size in [10 << 10, 3 << 20] {
        let big = "v".repeat(size);
        let e = ctl
            .controller_expand_volume(ControllerExpandVolumeRequest {
                volume_id: big.clone(),
                capacity_range: Some(CapacityRange {
                    required_bytes: 1 << 30,
                    limit_bytes: 0,
                }),
                secrets: ceph.secrets(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound, "{size}");
        assert!(
            e.message().len() < 200,
            "{size}: {} bytes",
            e.message().len()
        );
        ctl.delete_volume(DeleteVolumeRequest {
            volume_id: big.clone(),
            secrets: ceph.secrets(),
        })
        .await
        .unwrap();
        let e = node
            .node_get_volume_stats(NodeGetVolumeStatsRequest {
                volume_id: big.clone(),
                volume_path: "/tmp".into(),
                staging_target_path: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound, "{size}");
        let e = ctl
            .create_volume(create_request(&ceph, &big, 1 << 30))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{size}");
        assert!(e.message().len() < 200);
    }
    // 128 bytes is a valid name (csi-sanity's maximum-length name).
    let v = ctl
        .create_volume(create_request(&ceph, &"n".repeat(128), 1 << 30))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    ctl.delete_volume(DeleteVolumeRequest {
        volume_id: v.volume_id,
        secrets: ceph.secrets(),
    })
    .await
    .unwrap();
    assert!(ceph.subvolumes().await.is_empty());
}
