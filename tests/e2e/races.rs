//! Two operations on one volume at once: whatever order they land in, nothing leaks.

use std::collections::BTreeSet;

use driver::csi::v1::*;
use tonic::Code;

use crate::support::*;

const GIB: i64 = 1 << 30;

/// CreateVolume (a retry) and DeleteVolume of the same volume race; afterwards every ID
/// either call returned is deleted until that succeeds. Then no subvolume and no
/// journal entry may be left: a subvolume without its journal entry could never be
/// found by any CSI call again. (Before CreateVolume and DeleteVolume excluded each
/// other, 7 rounds in 40 leaked one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_and_delete_of_one_volume_at_once_leave_nothing() {
    let ceph = Ceph::start().await;
    let csi = Csi::start(&ceph).await;
    for round in 0..40 {
        let name = format!("pvc-race-{round}");
        let mut ctl = csi.controller().await;
        let first = ctl
            .create_volume(create_request(&ceph, &name, GIB))
            .await
            .unwrap()
            .into_inner()
            .volume
            .unwrap();
        let mut ids = BTreeSet::from([first.volume_id.clone()]);
        let (mut a, mut b) = (ctl.clone(), ctl.clone());
        let create = create_request(&ceph, &name, GIB);
        let delete = DeleteVolumeRequest {
            volume_id: first.volume_id.clone(),
            secrets: ceph.secrets(),
        };
        let (created, deleted) =
            tokio::join!(async move { a.create_volume(create).await }, async move {
                b.delete_volume(delete).await
            });
        match created {
            Ok(r) => {
                ids.insert(r.into_inner().volume.unwrap().volume_id);
            }
            Err(e) => assert_eq!(e.code(), Code::Aborted, "round {round}: {e:?}"),
        }
        if let Err(e) = deleted {
            assert_eq!(e.code(), Code::Aborted, "round {round}: {e:?}");
        }
        for id in ids {
            let mut tries = 0;
            loop {
                match ctl
                    .delete_volume(DeleteVolumeRequest {
                        volume_id: id.clone(),
                        secrets: ceph.secrets(),
                    })
                    .await
                {
                    Ok(_) => break,
                    Err(e) if e.code() == Code::Aborted && tries < 100 => tries += 1,
                    Err(e) => panic!("round {round}: {e:?}"),
                }
            }
        }
        assert!(
            ceph.subvolumes().await.is_empty(),
            "round {round}: left {:?}",
            ceph.subvolumes().await
        );
        assert!(
            ceph.omap_keys("csi.volumes.default").await.is_empty(),
            "round {round}"
        );
    }
}

/// The objects of the driver's RADOS namespace (`csi`) in the metadata pool.
async fn journal_objects(ceph: &Ceph) -> Vec<String> {
    let r = ceph
        .cluster
        .admin_command(
            serde_json::json!({"prefix": "rados ls", "pool": "cephfs.cephfs.meta",
                                          "namespace": "csi", "format": "json"}),
        )
        .await;
    assert_eq!(r.ret, 0, "{}", r.outs);
    let v: serde_json::Value = serde_json::from_str(&r.outb).unwrap();
    let mut names: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().or(o["name"].as_str()).unwrap().to_owned())
        .filter(|n| n.starts_with("csi.volume.") || n.starts_with("csi.snap."))
        .collect();
    names.sort();
    names
}

/// A controller killed between writing a reservation's per-UUID object and the name's
/// pointer leaves that object; the retry of the same name takes it up (the UUID comes
/// from the name), so no object is left that no name leads to. (Before, 53 kills during
/// creates left 22 such objects.)
#[tokio::test]
async fn a_reservation_cut_short_is_taken_up_by_the_retry() {
    let ceph = Ceph::start().await;
    let csi = Csi::start(&ceph).await;
    let mut ctl = csi.controller().await;
    let req = create_request(&ceph, "pvc-crash", GIB);
    let first = ctl
        .create_volume(req.clone())
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let uuid = first.volume_id.rsplit('-').take(5).collect::<Vec<_>>();
    let uuid = uuid.into_iter().rev().collect::<Vec<_>>().join("-");
    ctl.delete_volume(DeleteVolumeRequest {
        volume_id: first.volume_id.clone(),
        secrets: ceph.secrets(),
    })
    .await
    .unwrap();
    assert!(journal_objects(&ceph).await.is_empty());
    // What a crash right after the first write of a reservation leaves: the per-UUID
    // object with its fields (an older size, even), and no pointer to it.
    let r = ceph
        .cluster
        .admin_command(
            serde_json::json!({"prefix": "rados create", "pool": "cephfs.cephfs.meta",
            "namespace": "csi", "object": format!("csi.volume.{uuid}"), "exclusive": true,
            "vals": {"csi.volname": "pvc-crash", "csi.imagename": format!("csi-vol-{uuid}"),
                     "csi.volume.size": "4194304"}}),
        )
        .await;
    assert_eq!(r.ret, 0, "{}", r.outs);
    assert_eq!(
        journal_objects(&ceph).await,
        vec![format!("csi.volume.{uuid}")]
    );
    // The retry.
    let again = ctl
        .create_volume(req)
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(again.volume_id, first.volume_id);
    assert_eq!(again.capacity_bytes, GIB);
    assert_eq!(
        journal_objects(&ceph).await,
        vec![format!("csi.volume.{uuid}")]
    );
    ctl.delete_volume(DeleteVolumeRequest {
        volume_id: again.volume_id,
        secrets: ceph.secrets(),
    })
    .await
    .unwrap();
    assert!(journal_objects(&ceph).await.is_empty());
    assert!(ceph.subvolumes().await.is_empty());
}
