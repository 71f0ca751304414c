//! Controller (publishing): csi-sanity's ControllerPublishVolume, ControllerUnpublishVolume
//! and volume lifecycle specs, plus the lifecycle with every call repeated. Listed in
//! [`super::controller`]'s checks; imports the bench's context only.

use driver::csi::v1::controller_service_capability::rpc::Type as T;
use driver::csi::v1::*;
use tonic::Code;

use crate::conformance::context::{
    Ctx, Outcome, Resource, ensure, expect_code, fake_node_id, fake_volume_id, ok, skip, unique,
};

fn need_publish(cx: &Ctx) -> Outcome {
    cx.need_ctrl(
        T::PublishUnpublishVolume,
        "ControllerPublishVolume not supported",
    )
}

/// Tracks a ControllerPublish that succeeded (csi-sanity's wrapper registers it
/// when it names a volume and a node).
fn track_publish<T, E>(cx: &Ctx, req: &ControllerPublishVolumeRequest, r: &Result<T, E>) {
    if r.is_ok() {
        cx.track(Resource::ControllerPublish {
            volume: req.volume_id.clone(),
            node: req.node_id.clone(),
        });
    }
}

/// ControllerPublish of `req`, tracked when it succeeds, expecting `code`.
async fn publish_expect(
    cx: &Ctx,
    what: &str,
    req: ControllerPublishVolumeRequest,
    code: Code,
) -> Outcome {
    let r = cx.ctrl().controller_publish_volume(req.clone()).await;
    track_publish(cx, &req, &r);
    expect_code(what, r, &[code])
}

/// csi-sanity's `MakeControllerPublishVolumeReq`: no volume context.
fn publish_req(cx: &Ctx, volume: &str, node: &str) -> ControllerPublishVolumeRequest {
    ControllerPublishVolumeRequest {
        volume_id: volume.to_owned(),
        node_id: node.to_owned(),
        volume_capability: Some(cx.cap()),
        readonly: false,
        secrets: cx.secrets("ControllerPublishVolumeSecret"),
        volume_context: Default::default(),
    }
}

/// A ControllerPublish that must succeed (tracked).
async fn must_publish(cx: &Ctx, req: ControllerPublishVolumeRequest) -> Outcome {
    let r = cx.ctrl().controller_publish_volume(req.clone()).await;
    track_publish(cx, &req, &r);
    ok("ControllerPublishVolume", r).map(drop)
}

pub(super) async fn publish_no_id(cx: Ctx) -> Outcome {
    need_publish(&cx)?;
    let req = ControllerPublishVolumeRequest {
        secrets: cx.secrets("ControllerPublishVolumeSecret"),
        ..Default::default()
    };
    publish_expect(
        &cx,
        "ControllerPublishVolume without volume_id",
        req,
        Code::InvalidArgument,
    )
    .await
}

pub(super) async fn publish_no_node(cx: Ctx) -> Outcome {
    need_publish(&cx)?;
    let req = ControllerPublishVolumeRequest {
        volume_id: fake_volume_id(),
        secrets: cx.secrets("ControllerPublishVolumeSecret"),
        ..Default::default()
    };
    publish_expect(
        &cx,
        "ControllerPublishVolume without node_id",
        req,
        Code::InvalidArgument,
    )
    .await
}

pub(super) async fn publish_no_cap(cx: Ctx) -> Outcome {
    need_publish(&cx)?;
    let req = ControllerPublishVolumeRequest {
        volume_id: fake_volume_id(),
        node_id: fake_node_id(),
        secrets: cx.secrets("ControllerPublishVolumeSecret"),
        ..Default::default()
    };
    publish_expect(
        &cx,
        "ControllerPublishVolume without volume_capability",
        req,
        Code::InvalidArgument,
    )
    .await
}

pub(super) async fn publish_attach_limit(cx: Ctx) -> Outcome {
    need_publish(&cx)?;
    if !cx.s.attach_limit {
        return Err(skip(
            "testnodevolumeattachlimit not enabled (--test-node-volume-attach-limit)",
        ));
    }
    let info = cx.node_info()?;
    if info.max_volumes_per_node <= 0 {
        return Err(skip("No MaxVolumesPerNode"));
    }
    let node = info.node_id;
    ensure!(!node.is_empty(), "NodeGetInfo returned an empty node_id");
    for i in 0..info.max_volumes_per_node {
        let v = cx
            .sanity_volume(&format!("sanity-max-attach-limit-vol-{i}"))
            .await?;
        must_publish(&cx, publish_req(&cx, &v.volume_id, &node)).await?;
    }
    let v = cx.sanity_volume("sanity-max-attach-limit-vol+1").await?;
    let req = publish_req(&cx, &v.volume_id, &node);
    let r = cx.ctrl().controller_publish_volume(req.clone()).await;
    track_publish(&cx, &req, &r);
    // csi-sanity accepts any error (the CSI spec says RESOURCE_EXHAUSTED).
    ensure!(
        r.is_err(),
        "ControllerPublishVolume of volume {} beyond max_volumes_per_node {} succeeded",
        info.max_volumes_per_node + 1,
        info.max_volumes_per_node
    );
    Ok(())
}

pub(super) async fn publish_unknown_volume(cx: Ctx) -> Outcome {
    need_publish(&cx)?;
    publish_expect(
        &cx,
        "ControllerPublishVolume of an unknown volume",
        publish_req(&cx, &fake_volume_id(), &fake_node_id()),
        Code::NotFound,
    )
    .await
}

pub(super) async fn publish_unknown_node(cx: Ctx) -> Outcome {
    need_publish(&cx)?;
    let v = cx.sanity_volume("sanity-controller-wrong-node").await?;
    publish_expect(
        &cx,
        "ControllerPublishVolume to an unknown node",
        publish_req(&cx, &v.volume_id, &fake_node_id()),
        Code::NotFound,
    )
    .await
}

pub(super) async fn publish_incompatible(cx: Ctx) -> Outcome {
    need_publish(&cx)?;
    cx.need_ctrl(
        T::PublishReadonly,
        "ControllerPublishVolume.readonly field not supported",
    )?;
    let v = cx
        .sanity_volume("sanity-controller-published-incompatible")
        .await?;
    let node = cx.node_id()?;
    ensure!(!node.is_empty(), "NodeGetInfo returned an empty node_id");
    let req = publish_req(&cx, &v.volume_id, &node);
    must_publish(&cx, req.clone()).await?;
    let mut ro = req;
    ro.readonly = true;
    publish_expect(
        &cx,
        "ControllerPublishVolume again, read-only",
        ro,
        Code::AlreadyExists,
    )
    .await
}

/// csi-sanity's `VolumeLifecycle`: a volume (on this node's topology, when the node
/// reports one) ControllerPublished to this node `n` times, each with the volume's
/// context; unpublish and delete are left to the cleanup, as there.
async fn lifecycle_n(cx: Ctx, n: usize) -> Outcome {
    cx.need_ctrl(
        T::PublishUnpublishVolume,
        "Controller Publish, UnpublishVolume not supported",
    )?;
    let info = cx.node_info()?;
    ensure!(
        !info.node_id.is_empty(),
        "NodeGetInfo returned an empty node_id"
    );
    let mut req = cx.sanity_volume_req(&unique(&format!("sanity-controller-publish-{n}")));
    req.accessibility_requirements = info.accessible_topology.map(|t| TopologyRequirement {
        requisite: vec![t],
        preferred: Vec::new(),
    });
    let v = cx.create(req).await?;
    for _ in 0..n {
        let mut p = publish_req(&cx, &v.volume_id, &info.node_id);
        p.volume_context = v.volume_context.clone();
        must_publish(&cx, p).await?;
    }
    Ok(())
}

/// The whole lifecycle, every call repeated: publish, unpublish, delete.
pub(super) async fn lifecycle_full(cx: Ctx) -> Outcome {
    cx.need_ctrl(T::CreateDeleteVolume, "CreateVolume not supported")?;
    cx.need_ctrl(
        T::PublishUnpublishVolume,
        "Controller Publish, UnpublishVolume not supported",
    )?;
    let n = cx.s.idempotent_count;
    let node = cx.node_id()?;
    let v = cx.create_volume().await?;
    for i in 0..n {
        ok(
            &format!("ControllerPublishVolume (call {})", i + 1),
            cx.ctrl()
                .controller_publish_volume(cx.controller_publish_req(&v, &node))
                .await,
        )?;
        if i == 0 {
            cx.track(Resource::ControllerPublish {
                volume: v.volume_id.clone(),
                node: node.clone(),
            });
        }
    }
    for i in 0..n {
        ok(
            &format!("ControllerUnpublishVolume (call {})", i + 1),
            cx.ctrl()
                .controller_unpublish_volume(cx.controller_unpublish_req(&v.volume_id, &node))
                .await,
        )?;
    }
    cx.forget(&Resource::ControllerPublish {
        volume: v.volume_id.clone(),
        node,
    });
    cx.delete(&v.volume_id).await
}

pub(super) async fn lifecycle(cx: Ctx) -> Outcome {
    lifecycle_n(cx, 1).await
}

pub(super) async fn lifecycle_idempotent(cx: Ctx) -> Outcome {
    let n = cx.s.idempotent_count;
    lifecycle_n(cx, n).await
}

pub(super) async fn unpublish_no_id(cx: Ctx) -> Outcome {
    cx.need_ctrl(
        T::PublishUnpublishVolume,
        "ControllerUnpublishVolume not supported",
    )?;
    expect_code(
        "ControllerUnpublishVolume without volume_id",
        cx.ctrl()
            .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
                secrets: cx.secrets("ControllerUnpublishVolumeSecret"),
                ..Default::default()
            })
            .await,
        &[Code::InvalidArgument],
    )
}
