//! Clones: CreateVolume waits for a clone within the call and returns the ready volume;
//! only a clone still unfinished then answers Aborted, and the retry finds it. A clone
//! whose CreateVolume is never retried (its PVC was deleted meanwhile) neither leaks nor
//! blocks the deletion of its source: deleting the source removes it.

use std::time::{Duration, Instant};

use driver::config::{Config, Mode, MounterKind, parse_clusters};
use driver::csi::v1::*;
use driver::mount::fake::{FakeMountMode, FakeMounter};
use tonic::Code;

use crate::support::*;

const GIB: i64 = 1 << 30;
/// The journal object listing unfinished clones.
const CLONES: &str = "csi.clones.default";
/// The journal object mapping volume request names to UUIDs.
const VOLUMES: &str = "csi.volumes.default";

/// fake-ceph on a manual clock: a clone stays pending until the test moves time on
/// (a cloner picks it up after 1 s and copies for 2 s).
async fn frozen_ceph() -> (Ceph, fake_ceph::time::Clock) {
    let mut config = fake_ceph::Config::default();
    let clock = fake_ceph::time::Clock::manual();
    config.clock = clock.clone();
    config.volumes.clone_time = Duration::from_secs(2);
    config.volumes.clone_pickup = Duration::from_secs(1);
    (Ceph::start_config(config).await, clock)
}

/// A driver whose CreateVolume waits at most `wait` for a clone.
async fn driver(ceph: &Ceph, wait: Duration) -> Csi {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let clusters = parse_clusters(&ceph.cluster_config()).unwrap();
    let mut config = Config::new("cephfs.csi.trainride", "node-0001", Mode::All, clusters);
    config.mounter = MounterKind::Fake;
    config.state_dir = state_dir.clone();
    config.clone_wait = wait;
    let mounter = std::sync::Arc::new(FakeMounter::new(state_dir, FakeMountMode::Symlink));
    Csi::start_config(dir, config, mounter).await
}

fn from_snapshot(ceph: &Ceph, name: &str, snapshot_id: &str) -> CreateVolumeRequest {
    let mut r = create_request(ceph, name, GIB);
    r.volume_content_source = Some(VolumeContentSource {
        r#type: Some(volume_content_source::Type::Snapshot(
            volume_content_source::SnapshotSource {
                snapshot_id: snapshot_id.to_owned(),
            },
        )),
    });
    r
}

fn from_volume(ceph: &Ceph, name: &str, volume_id: &str) -> CreateVolumeRequest {
    let mut r = create_request(ceph, name, GIB);
    r.volume_content_source = Some(VolumeContentSource {
        r#type: Some(volume_content_source::Type::Volume(
            volume_content_source::VolumeSource {
                volume_id: volume_id.to_owned(),
            },
        )),
    });
    r
}

/// A volume and a snapshot of it.
async fn source(ceph: &Ceph, csi: &Csi) -> (Volume, Snapshot) {
    let mut ctl = csi.controller().await;
    let vol = ctl
        .create_volume(create_request(ceph, "pvc-source", GIB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let snap = ctl
        .create_snapshot(CreateSnapshotRequest {
            source_volume_id: vol.volume_id.clone(),
            name: "snap-source".into(),
            secrets: ceph.secrets(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    (vol, snap)
}

async fn delete_volume(ceph: &Ceph, csi: &Csi, id: &str) -> Result<(), tonic::Status> {
    csi.controller()
        .await
        .delete_volume(DeleteVolumeRequest {
            volume_id: id.to_owned(),
            secrets: ceph.secrets(),
        })
        .await
        .map(|_| ())
}

async fn delete_snapshot(ceph: &Ceph, csi: &Csi, id: &str) -> Result<(), tonic::Status> {
    csi.controller()
        .await
        .delete_snapshot(DeleteSnapshotRequest {
            snapshot_id: id.to_owned(),
            secrets: ceph.secrets(),
        })
        .await
        .map(|_| ())
}

async fn clone_state(ceph: &Ceph, name: &str) -> String {
    let r = ceph
        .cluster
        .admin_command(
            serde_json::json!({"prefix": "fs clone status", "vol_name": "cephfs",
                                          "group_name": "csi", "clone_name": name}),
        )
        .await;
    assert_eq!(r.ret, 0, "{}", r.outs);
    let v: serde_json::Value = serde_json::from_str(&r.outb).unwrap();
    v["status"]["state"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_clone_is_returned_ready_on_the_first_call() {
    // fake-ceph takes 200 ms per clone; the driver waits up to 20 s.
    let ceph = Ceph::start().await;
    let csi = driver(&ceph, Duration::from_secs(20)).await;
    let (vol, snap) = source(&ceph, &csi).await;
    let mut ctl = csi.controller().await;
    let started = Instant::now();
    let a = ctl
        .create_volume(from_snapshot(&ceph, "pvc-a", &snap.snapshot_id))
        .await
        .expect("the first call returns the clone")
        .into_inner()
        .volume
        .unwrap();
    let b = ctl
        .create_volume(from_volume(&ceph, "pvc-b", &vol.volume_id))
        .await
        .expect("the first call returns the clone")
        .into_inner()
        .volume
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));
    for v in [&a, &b] {
        assert_eq!(
            clone_state(&ceph, &v.volume_context["subvolumeName"]).await,
            "complete"
        );
    }
    // Nothing is listed as unfinished, and the volume source keeps no temporary snapshot.
    assert!(ceph.omap_keys(CLONES).await.is_empty());
    // A retry of a returned clone returns the same volume.
    let again = ctl
        .create_volume(from_snapshot(&ceph, "pvc-a", &snap.snapshot_id))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(again.volume_id, a.volume_id);
    // Deleting the sources leaves the returned clones alone.
    delete_snapshot(&ceph, &csi, &snap.snapshot_id)
        .await
        .unwrap();
    delete_volume(&ceph, &csi, &vol.volume_id).await.unwrap();
    let mut left = ceph.subvolumes().await;
    left.sort();
    let mut expected = vec![
        a.volume_context["subvolumeName"].clone(),
        b.volume_context["subvolumeName"].clone(),
    ];
    expected.sort();
    assert_eq!(left, expected);
    for v in [&a, &b] {
        delete_volume(&ceph, &csi, &v.volume_id).await.unwrap();
    }
    assert!(ceph.subvolumes().await.is_empty());
    assert!(ceph.omap_keys(VOLUMES).await.is_empty());
}

#[tokio::test]
async fn a_clone_that_outlasts_the_wait_answers_aborted_and_the_retry_returns_it() {
    let (ceph, clock) = frozen_ceph().await;
    let csi = driver(&ceph, Duration::from_millis(300)).await;
    let (_, snap) = source(&ceph, &csi).await;
    let mut ctl = csi.controller().await;
    let req = from_snapshot(&ceph, "pvc-late", &snap.snapshot_id);
    for _ in 0..2 {
        let e = ctl.create_volume(req.clone()).await.unwrap_err();
        assert_eq!(e.code(), Code::Aborted, "{e:?}");
        assert!(e.message().contains("still pending"), "{}", e.message());
    }
    assert_eq!(ceph.omap_keys(CLONES).await.len(), 1);
    // One subvolume for the clone however often it was asked for.
    assert_eq!(ceph.subvolumes().await.len(), 2);
    clock.advance(Duration::from_secs(5));
    let v = ctl
        .create_volume(req)
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(
        clone_state(&ceph, &v.volume_context["subvolumeName"]).await,
        "complete"
    );
    assert!(ceph.omap_keys(CLONES).await.is_empty());
    // The returned clone is nobody's orphan: deleting its source leaves it.
    delete_snapshot(&ceph, &csi, &snap.snapshot_id)
        .await
        .unwrap();
    assert_eq!(ceph.subvolumes().await.len(), 2);
}

#[tokio::test]
async fn the_wait_ends_before_the_callers_deadline() {
    let (ceph, _clock) = frozen_ceph().await;
    let csi = driver(&ceph, Duration::from_secs(20)).await;
    let (_, snap) = source(&ceph, &csi).await;
    let mut ctl = csi.controller().await;
    let mut req = tonic::Request::new(from_snapshot(&ceph, "pvc-deadline", &snap.snapshot_id));
    req.set_timeout(Duration::from_secs(2));
    let started = Instant::now();
    let e = ctl.create_volume(req).await.unwrap_err();
    let took = started.elapsed();
    // Aborted (retry), not DeadlineExceeded: the answer came before the caller gave up.
    assert_eq!(e.code(), Code::Aborted, "{e:?}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test]
async fn an_abandoned_clone_of_a_snapshot_goes_with_the_snapshot() {
    let (ceph, _clock) = frozen_ceph().await;
    let csi = driver(&ceph, Duration::from_millis(100)).await;
    let (vol, snap) = source(&ceph, &csi).await;
    let mut ctl = csi.controller().await;
    let e = ctl
        .create_volume(from_snapshot(&ceph, "pvc-gone", &snap.snapshot_id))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Aborted);
    let clone = ceph
        .subvolumes()
        .await
        .into_iter()
        .find(|n| *n != vol.volume_context["subvolumeName"])
        .unwrap();
    assert_eq!(clone_state(&ceph, &clone).await, "pending");
    // The PVC is gone and nobody retries: deleting the snapshot cancels and removes
    // the clone instead of failing on its pending clone.
    delete_snapshot(&ceph, &csi, &snap.snapshot_id)
        .await
        .unwrap();
    assert_eq!(
        ceph.subvolumes().await,
        vec![vol.volume_context["subvolumeName"].clone()]
    );
    assert!(ceph.omap_keys(CLONES).await.is_empty());
    assert_eq!(
        ceph.omap_keys(VOLUMES).await,
        vec!["csi.volume.pvc-source".to_owned()]
    );
    delete_volume(&ceph, &csi, &vol.volume_id).await.unwrap();
    assert!(ceph.subvolumes().await.is_empty());
    assert!(ceph.omap_keys(VOLUMES).await.is_empty());
    // A late retry of the abandoned request finds its source gone.
    let e = ctl
        .create_volume(from_snapshot(&ceph, "pvc-gone", &snap.snapshot_id))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(ceph.subvolumes().await.is_empty());
}

#[tokio::test]
async fn an_abandoned_clone_of_a_volume_goes_with_the_volume() {
    let (ceph, clock) = frozen_ceph().await;
    let csi = driver(&ceph, Duration::from_millis(100)).await;
    let (vol, snap) = source(&ceph, &csi).await;
    delete_snapshot(&ceph, &csi, &snap.snapshot_id)
        .await
        .unwrap();
    let mut ctl = csi.controller().await;
    for name in ["pvc-pending", "pvc-finished-unreturned"] {
        let e = ctl
            .create_volume(from_volume(&ceph, name, &vol.volume_id))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Aborted);
        if name == "pvc-pending" {
            // The second clone finishes in Ceph, but its CreateVolume is never retried.
            clock.advance(Duration::from_secs(5));
        }
    }
    assert_eq!(ceph.subvolumes().await.len(), 3);
    assert_eq!(ceph.omap_keys(CLONES).await.len(), 2);
    // The temporary snapshots of both clones hold the volume; its deletion removes
    // the clones that no CreateVolume returned, then the volume.
    delete_volume(&ceph, &csi, &vol.volume_id).await.unwrap();
    assert!(ceph.subvolumes().await.is_empty());
    assert!(ceph.omap_keys(CLONES).await.is_empty());
    assert!(ceph.omap_keys(VOLUMES).await.is_empty());
}

#[tokio::test]
async fn a_clone_whose_create_is_in_flight_holds_off_the_deletion_of_its_source() {
    let (ceph, _clock) = frozen_ceph().await;
    let csi = driver(&ceph, Duration::from_secs(2)).await;
    let (vol, snap) = source(&ceph, &csi).await;
    let mut ctl = csi.controller().await;
    let req = from_snapshot(&ceph, "pvc-busy", &snap.snapshot_id);
    let create = tokio::spawn(async move { ctl.create_volume(req).await });
    // Once the clone has started, its CreateVolume is waiting for it.
    for _ in 0..200 {
        if ceph.subvolumes().await.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let e = delete_snapshot(&ceph, &csi, &snap.snapshot_id)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Aborted, "{e:?}");
    assert_eq!(ceph.subvolumes().await.len(), 2);
    assert_eq!(create.await.unwrap().unwrap_err().code(), Code::Aborted);
    // Its retry never came: now the deletion goes through.
    delete_snapshot(&ceph, &csi, &snap.snapshot_id)
        .await
        .unwrap();
    delete_volume(&ceph, &csi, &vol.volume_id).await.unwrap();
    assert!(ceph.subvolumes().await.is_empty());
}
