//! ControllerPublishVolume with `--attach-required`: a cluster whose config holds
//! `nodeCredentials` keeps a node registry, and publishing to a node that never answered
//! NodeGetInfo is NotFound; the registry lives in RADOS and outlives restarts.

use std::time::Duration;

use driver::config::{Config, Mode, MounterKind, parse_clusters};
use driver::csi::v1::*;
use driver::mount::fake::{FakeMountMode, FakeMounter};
use serde_json::json;
use tonic::Code;

use crate::support::*;

/// A driver serving node `node_id` with attach required; with `registry`, the cluster
/// config names the admin key as its `nodeCredentials`.
async fn attaching(ceph: &Ceph, dir: tempfile::TempDir, node_id: &str, registry: bool) -> Csi {
    let keyring = dir.path().join("keyring");
    std::fs::write(
        &keyring,
        format!("[client.admin]\n\tkey = {}\n", ceph.admin_key),
    )
    .unwrap();
    let mut clusters: serde_json::Value = serde_json::from_str(&ceph.cluster_config()).unwrap();
    if registry {
        clusters[0]["nodeCredentials"] = json!({"userID": "admin", "keyFile": keyring});
    }
    let state_dir = dir.path().join("state");
    let clusters = parse_clusters(&clusters.to_string()).unwrap();
    let mut config = Config::new("cephfs.csi.trainride", node_id, Mode::All, clusters);
    config.mounter = MounterKind::Fake;
    config.state_dir = state_dir.clone();
    config.attach_required = true;
    config.max_volumes_per_node = 7;
    config.ceph_timeout = Duration::from_secs(5);
    let mounter = std::sync::Arc::new(FakeMounter::new(state_dir, FakeMountMode::Symlink));
    Csi::start_config(dir, config, mounter).await
}

fn publish(ceph: &Ceph, volume_id: &str, node_id: &str) -> ControllerPublishVolumeRequest {
    ControllerPublishVolumeRequest {
        volume_id: volume_id.to_owned(),
        node_id: node_id.to_owned(),
        volume_capability: Some(mount_cap()),
        secrets: ceph.secrets(),
        ..Default::default()
    }
}

async fn code(csi: &Csi, req: ControllerPublishVolumeRequest) -> Code {
    match csi.controller().await.controller_publish_volume(req).await {
        Ok(_) => Code::Ok,
        Err(e) => e.code(),
    }
}

#[tokio::test]
async fn publishing_to_a_node_that_never_registered_is_not_found() {
    let ceph = Ceph::start().await;
    let csi = attaching(&ceph, tempfile::tempdir().unwrap(), "node-a", true).await;
    let vol = csi
        .controller()
        .await
        .create_volume(create_request(&ceph, "pvc-attach", 1 << 30))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    // The plugin of node-a has not answered NodeGetInfo yet: nobody knows node-a.
    assert_eq!(
        code(&csi, publish(&ceph, &vol.volume_id, "node-a")).await,
        Code::NotFound
    );
    let info = csi
        .node()
        .await
        .node_get_info(NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.node_id, "node-a");
    assert_eq!(
        ceph.omap_keys("csi.nodes.default").await,
        vec!["csi.node.node-a".to_owned()]
    );
    assert_eq!(
        code(&csi, publish(&ceph, &vol.volume_id, "node-a")).await,
        Code::Ok
    );
    assert_eq!(
        code(&csi, publish(&ceph, &vol.volume_id, "node-a")).await,
        Code::Ok
    );
    assert_eq!(
        code(&csi, publish(&ceph, &vol.volume_id, "node-b")).await,
        Code::NotFound
    );

    // The registry is in Ceph: a restarted controller still knows node-a, and a second
    // node's plugin adds node-b.
    let dir = csi.stop().await;
    let csi = attaching(&ceph, dir, "node-b", true).await;
    assert_eq!(
        code(&csi, publish(&ceph, &vol.volume_id, "node-a")).await,
        Code::Ok
    );
    csi.node()
        .await
        .node_get_info(NodeGetInfoRequest {})
        .await
        .unwrap();
    assert_eq!(
        code(&csi, publish(&ceph, &vol.volume_id, "node-b")).await,
        Code::Ok
    );

    // Without secrets the controller reads the registry with the nodes' credentials.
    let mut bare = publish(&ceph, &vol.volume_id, "node-c");
    bare.secrets.clear();
    assert_eq!(code(&csi, bare).await, Code::NotFound);

    // Malformed requests, and a volume that is gone.
    let mut r = publish(&ceph, &vol.volume_id, "node-a");
    r.volume_capability = None;
    assert_eq!(code(&csi, r).await, Code::InvalidArgument);
    assert_eq!(
        code(&csi, publish(&ceph, "", "node-a")).await,
        Code::InvalidArgument
    );
    assert_eq!(
        code(&csi, publish(&ceph, &vol.volume_id, "")).await,
        Code::InvalidArgument
    );
    csi.controller()
        .await
        .delete_volume(DeleteVolumeRequest {
            volume_id: vol.volume_id.clone(),
            secrets: ceph.secrets(),
        })
        .await
        .unwrap();
    assert_eq!(
        code(&csi, publish(&ceph, &vol.volume_id, "node-a")).await,
        Code::NotFound
    );
    assert_eq!(
        code(&csi, publish(&ceph, "fake-vol-id", "node-a")).await,
        Code::NotFound
    );
}

#[tokio::test]
async fn without_node_credentials_any_node_is_taken() {
    let ceph = Ceph::start().await;
    let csi = attaching(&ceph, tempfile::tempdir().unwrap(), "node-a", false).await;
    let vol = csi
        .controller()
        .await
        .create_volume(create_request(&ceph, "pvc-open", 1 << 30))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(
        code(&csi, publish(&ceph, &vol.volume_id, "anything")).await,
        Code::Ok
    );
    csi.node()
        .await
        .node_get_info(NodeGetInfoRequest {})
        .await
        .unwrap();
    assert!(ceph.omap_keys("csi.nodes.default").await.is_empty());
}

#[tokio::test]
async fn a_node_that_cannot_register_does_not_answer_node_get_info() {
    let ceph = Ceph::start().await;
    let dir = tempfile::tempdir().unwrap();
    let csi = attaching(&ceph, dir, "node-a", true).await;
    // The key file is gone (a Secret not mounted): the plugin cannot register, so it
    // must not hand out an ID the controller will refuse.
    std::fs::remove_file(csi.dir.path().join("keyring")).unwrap();
    let e = csi
        .node()
        .await
        .node_get_info(NodeGetInfoRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("nodeCredentials"), "{}", e.message());
}
