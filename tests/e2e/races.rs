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
