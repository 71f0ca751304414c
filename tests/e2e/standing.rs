//! ListVolumes, GetCapacity and ControllerGetVolume: the RPCs that carry no secrets and
//! so need the controller's own credentials.

use driver::csi::v1::controller_client::ControllerClient;
use driver::csi::v1::*;
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;

use crate::support::{Ceph, Csi, create_request};

const GIB: i64 = 1 << 30;

use controller_service_capability::rpc::Type as T;

/// Whether the controller advertises each capability of the RPCs without secrets.
async fn standing_caps(ctl: &mut ControllerClient<Channel>) -> Vec<(T, bool)> {
    let caps = ctl
        .controller_get_capabilities(ControllerGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    let kinds: Vec<i32> = caps
        .capabilities
        .iter()
        .filter_map(|c| match &c.r#type {
            Some(controller_service_capability::Type::Rpc(r)) => Some(r.r#type),
            _ => None,
        })
        .collect();
    [
        T::ListVolumes,
        T::GetCapacity,
        T::GetVolume,
        T::VolumeCondition,
    ]
    .into_iter()
    .map(|t| (t, kinds.contains(&(t as i32))))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_controller_credentials_they_are_unimplemented_and_not_advertised() {
    let ceph = Ceph::start().await;
    let csi = Csi::start(&ceph).await;
    let mut ctl = csi.controller().await;
    for (t, advertised) in standing_caps(&mut ctl).await {
        assert!(!advertised, "{t:?} advertised");
    }
    let e = ctl
        .list_volumes(ListVolumesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
    let e = ctl
        .get_capacity(GetCapacityRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_capacity_and_condition_with_controller_credentials() {
    let ceph = Ceph::start().await;
    let csi = Csi::start_standing(&ceph).await;
    let mut ctl = csi.controller().await;
    for (t, advertised) in standing_caps(&mut ctl).await {
        assert!(advertised, "{t:?} not advertised");
    }

    let mut ids = Vec::new();
    for i in 0..5 {
        let v = ctl
            .create_volume(create_request(&ceph, &format!("pvc-{i}"), GIB))
            .await
            .unwrap()
            .into_inner()
            .volume
            .unwrap();
        ids.push(v.volume_id);
    }
    ids.sort();

    // Pages of two: every volume once, in order, and the last page has no token.
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let r = ctl
            .list_volumes(ListVolumesRequest {
                max_entries: 2,
                starting_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(r.entries.len() <= 2);
        for e in &r.entries {
            let v = e.volume.as_ref().unwrap();
            assert_eq!(v.capacity_bytes, GIB);
            let c = e
                .status
                .as_ref()
                .unwrap()
                .volume_condition
                .as_ref()
                .unwrap();
            assert!(!c.abnormal, "{c:?}");
            seen.push(v.volume_id.clone());
        }
        if r.next_token.is_empty() {
            break;
        }
        token = r.next_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);

    // A volume deleted between pages does not make the next page skip or repeat one.
    let first = ctl
        .list_volumes(ListVolumesRequest {
            max_entries: 2,
            starting_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    ctl.delete_volume(DeleteVolumeRequest {
        volume_id: ids[0].clone(),
        secrets: ceph.secrets(),
    })
    .await
    .unwrap();
    let rest = ctl
        .list_volumes(ListVolumesRequest {
            max_entries: 0,
            starting_token: first.next_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let rest: Vec<_> = rest
        .entries
        .iter()
        .map(|e| e.volume.as_ref().unwrap().volume_id.clone())
        .collect();
    assert_eq!(rest, ids[2..].to_vec());

    let e = ctl
        .list_volumes(ListVolumesRequest {
            max_entries: 1,
            starting_token: "not-a-token".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Aborted, "{e:?}");
    let e = ctl
        .list_volumes(ListVolumesRequest {
            max_entries: -1,
            starting_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

    // Capacity is what the cluster reports free.
    let cap = ctl
        .get_capacity(GetCapacityRequest {
            parameters: [("clusterID".to_owned(), "c1".to_owned())].into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let df = ceph
        .cluster
        .admin_command(json!({"prefix": "df", "format": "json"}))
        .await;
    let df: serde_json::Value = serde_json::from_str(&df.outb).unwrap();
    assert_eq!(
        cap.available_capacity as u64,
        df["stats"]["total_avail_bytes"].as_u64().unwrap()
    );
    let e = ctl
        .get_capacity(GetCapacityRequest {
            parameters: [("clusterID".to_owned(), "nope".to_owned())].into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

    // Healthy, then abnormal once the subvolume is removed behind the driver's back.
    let get = |id: String| ControllerGetVolumeRequest { volume_id: id };
    let healthy = ctl
        .controller_get_volume(get(ids[1].clone()))
        .await
        .unwrap()
        .into_inner();
    let cond = healthy.status.unwrap().volume_condition.unwrap();
    assert!(!cond.abnormal, "{cond:?}");
    let name = healthy.volume.unwrap().volume_context["subvolumeName"].clone();
    let r = ceph
        .cluster
        .admin_command(json!({"prefix": "fs subvolume rm", "vol_name": "cephfs",
                              "group_name": "csi", "sub_name": name}))
        .await;
    assert_eq!(r.ret, 0, "{}", r.outs);
    let sick = ctl
        .controller_get_volume(get(ids[1].clone()))
        .await
        .unwrap()
        .into_inner();
    let cond = sick.status.unwrap().volume_condition.unwrap();
    assert!(cond.abnormal);
    assert!(cond.message.contains(&name), "{cond:?}");
    let listed = ctl
        .list_volumes(ListVolumesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let entry = listed
        .entries
        .iter()
        .find(|e| e.volume.as_ref().unwrap().volume_id == ids[1])
        .unwrap();
    assert!(
        entry
            .status
            .as_ref()
            .unwrap()
            .volume_condition
            .as_ref()
            .unwrap()
            .abnormal
    );

    // A deleted volume is NotFound; an empty ID is InvalidArgument.
    let e = ctl
        .controller_get_volume(get(ids[0].clone()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = ctl
        .controller_get_volume(get(String::new()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
}
