//! Node: csi-sanity's 27 specs, plus target and staging path handling, publishing
//! before staging, concurrency on one volume, stats and condition, the whole flow
//! repeated with its teardown, and restarts.
//!
//! Every check standing for a csi-sanity spec first passes csi-sanity's `BeforeEach`
//! of its Node specs ([`Ctx::node_service_gate`]), and its volumes go through
//! csi-sanity's steps ([`Ctx::sanity_publish_chain`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use driver::csi::v1::node_service_capability::rpc::Type as N;
use driver::csi::v1::volume_capability::access_mode::Mode;
use driver::csi::v1::*;
use tonic::Code;

use super::{Check, Group, checks, concurrently};
use crate::conformance::context::{
    AccessType, Ctx, Outcome, Resource, Verdict, describe, ensure, expect_code, fail,
    fake_volume_id, ok, skip, unique,
};
use crate::conformance::paths::PathKind;

pub(super) fn checks() -> Vec<Check> {
    checks![Group::Node;
        sanity "NodeGetCapabilities › should return appropriate capabilities"
            = "Node Service NodeGetCapabilities should return appropriate capabilities" => get_capabilities,
        sanity "NodeGetInfo › should return appropriate values"
            = "Node Service NodeGetInfo should return appropriate values" => get_info,
        sanity "NodePublishVolume › should fail when no volume id is provided"
            = "Node Service NodePublishVolume should fail when no volume id is provided" => publish_no_id,
        sanity "NodePublishVolume › should fail when no target path is provided"
            = "Node Service NodePublishVolume should fail when no target path is provided" => publish_no_target,
        sanity "NodePublishVolume › should fail when no volume capability is provided"
            = "Node Service NodePublishVolume should fail when no volume capability is provided" => publish_no_cap,
        sanity "NodePublishVolume › with single node multi writer capability › should fail when volume with single node single writer access mode is already mounted at a different target path"
            = "Node Service NodePublishVolume with single node multi writer capability should fail when volume with single node single writer access mode is already mounted at a different target path" => publish_rwop,
        extra "NodePublishVolume › the driver creates target_path in the CO's directory, and removes it on NodeUnpublish" => target_path_handling,
        extra "NodePublishVolume › a mount volume is a directory at target_path" => target_is_directory,
        extra "NodePublishVolume › a block volume is a file or device at target_path, not a directory" => target_is_block,
        extra "NodePublishVolume › fails with FailedPrecondition before NodeStageVolume" => publish_before_stage,
        extra "NodePublishVolume › concurrent calls to one target succeed or are Aborted" => publish_concurrent,
        sanity "NodeUnpublishVolume › should fail when no volume id is provided"
            = "Node Service NodeUnpublishVolume should fail when no volume id is provided" => unpublish_no_id,
        sanity "NodeUnpublishVolume › should fail when no target path is provided"
            = "Node Service NodeUnpublishVolume should fail when no target path is provided" => unpublish_no_target,
        sanity "NodeUnpublishVolume › should remove target path"
            = "Node Service NodeUnpublishVolume should remove target path" => unpublish_removes_target,
        sanity "NodeStageVolume › should fail when no volume id is provided"
            = "Node Service NodeStageVolume should fail when no volume id is provided" => stage_no_id,
        sanity "NodeStageVolume › should fail when no staging target path is provided"
            = "Node Service NodeStageVolume should fail when no staging target path is provided" => stage_no_path,
        sanity "NodeStageVolume › should fail when no volume capability is provided"
            = "Node Service NodeStageVolume should fail when no volume capability is provided" => stage_no_cap,
        extra "NodeStageVolume › concurrent calls for one volume succeed or are Aborted" => stage_concurrent,
        sanity "NodeUnstageVolume › should fail when no volume id is provided"
            = "Node Service NodeUnstageVolume should fail when no volume id is provided" => unstage_no_id,
        sanity "NodeUnstageVolume › should fail when no staging target path is provided"
            = "Node Service NodeUnstageVolume should fail when no staging target path is provided" => unstage_no_path,
        sanity "NodeGetVolumeStats › should fail when no volume id is provided"
            = "Node Service NodeGetVolumeStats should fail when no volume id is provided" => stats_no_id,
        sanity "NodeGetVolumeStats › should fail when no volume path is provided"
            = "Node Service NodeGetVolumeStats should fail when no volume path is provided" => stats_no_path,
        sanity "NodeGetVolumeStats › should fail when volume is not found"
            = "Node Service NodeGetVolumeStats should fail when volume is not found" => stats_unknown,
        sanity "NodeGetVolumeStats › should fail when volume does not exist on the specified path"
            = "Node Service NodeGetVolumeStats should fail when volume does not exist on the specified path" => stats_wrong_path,
        extra "NodeGetVolumeStats › reports usage and a normal VolumeCondition for a published volume" => stats_published,
        sanity "NodeExpandVolume › should fail when no volume id is provided"
            = "Node Service NodeExpandVolume should fail when no volume id is provided" => expand_no_id,
        sanity "NodeExpandVolume › should fail when no volume path is provided"
            = "Node Service NodeExpandVolume should fail when no volume path is provided" => expand_no_path,
        sanity "NodeExpandVolume › should fail when volume is not found"
            = "Node Service NodeExpandVolume should fail when volume is not found" => expand_unknown,
        sanity "NodeExpandVolume › should work if node-expand is called after node-publish"
            = "Node Service NodeExpandVolume should work if node-expand is called after node-publish" => expand_works,
        sanity "NodeGetVolumeHealth › should fail when no volume id is provided"
            = "Node Service NodeGetVolumeHealth should fail when no volume id is provided" => health_no_id,
        sanity "NodeGetVolumeHealth › should return health for a valid volume"
            = "Node Service NodeGetVolumeHealth should return health for a valid volume" => health_works,
        sanity "NodeGetStorageHealth › should return appropriate response"
            = "Node Service NodeGetStorageHealth should return appropriate response" => storage_health,
        sanity "should work"
            = "Node Service should work" => should_work,
        sanity "should be idempotent"
            = "Node Service should be idempotent" => should_be_idempotent,
        extra "flow › every call of the node flow, teardown included, succeeds when repeated" => flow_repeated,
        extra "restart › staged and published volumes survive a driver restart" => survives_restart,
    ]
}

async fn get_capabilities(cx: Ctx) -> Outcome {
    use node_service_capability::Type;
    cx.node_service_gate()?;
    let r = ok(
        "NodeGetCapabilities",
        cx.node()
            .node_get_capabilities(NodeGetCapabilitiesRequest {})
            .await,
    )?;
    // csi-sanity accepts every node capability of CSI v1.13, UNKNOWN included.
    for c in &r.capabilities {
        match &c.r#type {
            Some(Type::Rpc(r)) => ensure!(
                N::try_from(r.r#type).is_ok(),
                "unknown node capability {}",
                r.r#type
            ),
            None => ensure!(false, "a capability with no type"),
        }
    }
    Ok(())
}

async fn get_info(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    let r = ok(
        "NodeGetInfo",
        cx.node().node_get_info(NodeGetInfoRequest {}).await,
    )?;
    ensure!(!r.node_id.is_empty(), "NodeGetInfo: node_id is empty");
    ensure!(
        r.max_volumes_per_node >= 0,
        "NodeGetInfo: negative max_volumes_per_node {}",
        r.max_volumes_per_node
    );
    if cx.has_plugin(plugin_capability::service::Type::VolumeAccessibilityConstraints)? {
        ensure!(
            r.accessible_topology.is_some(),
            "VOLUME_ACCESSIBILITY_CONSTRAINTS advertised but NodeGetInfo has no accessible_topology"
        );
    }
    Ok(())
}

async fn publish_no_id(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    let req = NodePublishVolumeRequest {
        secrets: cx.secrets("NodePublishVolumeSecret"),
        ..Default::default()
    };
    expect_code(
        "NodePublishVolume without volume_id",
        cx.node().node_publish_volume(req).await,
        &[Code::InvalidArgument],
    )
}

async fn publish_no_target(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    let req = NodePublishVolumeRequest {
        volume_id: fake_volume_id(),
        secrets: cx.secrets("NodePublishVolumeSecret"),
        ..Default::default()
    };
    expect_code(
        "NodePublishVolume without target_path",
        cx.node().node_publish_volume(req).await,
        &[Code::InvalidArgument],
    )
}

async fn publish_no_cap(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    let req = NodePublishVolumeRequest {
        volume_id: fake_volume_id(),
        target_path: cx.target(),
        secrets: cx.secrets("NodePublishVolumeSecret"),
        ..Default::default()
    };
    let volume = req.volume_id.clone();
    let r = cx.node().node_publish_volume(req).await;
    if r.is_ok() {
        cx.track(Resource::Publish {
            volume,
            path: cx.target(),
        });
    }
    expect_code(
        "NodePublishVolume without volume_capability",
        r,
        &[Code::InvalidArgument],
    )
}

async fn publish_rwop(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    cx.need_node(
        N::SingleNodeMultiWriter,
        "Service does not have single node multi writer capability",
    )?;
    // As csi-sanity: no CreateVolume gate.
    let rwop = cx.cap_with(Mode::SingleNodeSingleWriter);
    let mut req = cx.sanity_volume_req(&unique("sanity-node-publish-single-node-single-writer"));
    req.volume_capabilities = vec![rwop.clone()];
    let v = cx.create(req).await?;
    let (pc, staged) = cx.sanity_publish_chain(&v, &rwop).await?;
    let mut p = cx.publish_req(&v, &pc.unwrap_or_default(), staged);
    p.volume_capability = Some(rwop);
    p.target_path = cx.target_named("other_target");
    let r = cx.node().node_publish_volume(p.clone()).await;
    if r.is_ok() {
        cx.track(Resource::Publish {
            volume: v.volume_id.clone(),
            path: p.target_path.clone(),
        });
    }
    expect_code(
        "NodePublishVolume of a SINGLE_NODE_SINGLE_WRITER volume at a second target path",
        r,
        &[Code::FailedPrecondition],
    )
}

async fn target_path_handling(cx: Ctx) -> Outcome {
    need_create(&cx)?;
    cx.need_checkable_paths()?;
    let target = cx.target();
    ensure!(
        !cx.path_exists(&target).await?,
        "the bench's target path exists already"
    );
    let (v, _) = cx.published_volume().await?;
    ensure!(
        cx.path_exists(&target).await?,
        "NodePublishVolume succeeded but did not create target_path {target} (CSI spec: the SP creates it)"
    );
    for i in 0..cx.s.idempotent_count.min(3) {
        ok(
            "NodeUnpublishVolume",
            cx.node()
                .node_unpublish_volume(cx.unpublish_req(&v.volume_id))
                .await,
        )?;
        ensure!(
            !cx.path_exists(&target).await?,
            "NodeUnpublishVolume (call {}) left target_path {target} behind",
            i + 1
        );
    }
    cx.forget(&Resource::Publish {
        volume: v.volume_id.clone(),
        path: target,
    });
    let parent = cx.mount_parent().display().to_string();
    let kind = cx.path_kind(&parent).await?;
    ensure!(
        kind == PathKind::Directory,
        "after NodeUnpublishVolume the CO's directory {parent} is {kind}, not a directory (the SP removes target_path only)"
    );
    Ok(())
}

/// Publishes a volume and returns what is at its target path.
async fn published_kind(cx: &Ctx) -> Result<PathKind, Verdict> {
    need_create(cx)?;
    cx.need_checkable_paths()?;
    cx.published_volume().await?;
    cx.path_kind(&cx.target()).await
}

async fn target_is_directory(cx: Ctx) -> Outcome {
    cx.need_access_type(
        AccessType::Mount,
        "block access type: target_path holds a block device, not a mounted directory",
    )?;
    let kind = published_kind(&cx).await?;
    // CSI spec, NodePublishVolume: "For volumes with an access type of mount, the SP
    // SHALL place the mounted directory at target_path."
    ensure!(
        kind == PathKind::Directory,
        "NodePublishVolume of a mount volume: target_path {} is {kind}, not a directory (CSI spec: the SP places the mounted directory there)",
        cx.target()
    );
    Ok(())
}

async fn target_is_block(cx: Ctx) -> Outcome {
    cx.need_access_type(
        AccessType::Block,
        "mount access type: runs with --access-type block",
    )?;
    let kind = published_kind(&cx).await?;
    // CSI spec, NodePublishVolume: "For volumes with an access type of block, the SP
    // SHALL place the block device at target_path." A bind-mounted device node
    // reads as `other`, a loop file or a fake's placeholder as `file`.
    ensure!(
        matches!(kind, PathKind::File | PathKind::Other),
        "NodePublishVolume of a block volume: target_path {} is {kind}, expected a file or device (CSI spec: the SP places the block device there)",
        cx.target()
    );
    Ok(())
}

async fn publish_before_stage(cx: Ctx) -> Outcome {
    cx.need_node(N::StageUnstageVolume, "NodeStageVolume not supported")?;
    need_create(&cx)?;
    let v = cx.create_volume().await?;
    // Attached (when the driver needs that), so only the stage is missing.
    let pc = cx.attach(&v).await?;
    let req = cx.publish_req(&v, &pc, true);
    let r = cx.node().node_publish_volume(req).await;
    if r.is_ok() {
        cx.track(Resource::Publish {
            volume: v.volume_id.clone(),
            path: cx.target(),
        });
    }
    // CSI spec, NodePublishVolume errors: "Stage not performed" is FAILED_PRECONDITION.
    expect_code(
        "NodePublishVolume with a staging_target_path that was never staged",
        r,
        &[Code::FailedPrecondition],
    )
}

/// Errors other than Aborted among concurrent results.
fn not_aborted<T>(results: &[Result<T, tonic::Status>]) -> Vec<String> {
    results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .filter(|s| s.code() != Code::Aborted)
        .map(describe)
        .collect()
}

async fn stage_concurrent(cx: Ctx) -> Outcome {
    cx.need_node(N::StageUnstageVolume, "NodeStageVolume not supported")?;
    need_create(&cx)?;
    let v = cx.create_volume().await?;
    // As a CO (and csi-sanity's flows): ControllerPublish first when the driver
    // advertises it, and stage with its publish context.
    let pc = cx.attach(&v).await?;
    let node = cx.node();
    let req = cx.stage_req(&v, &pc);
    cx.track(Resource::Stage {
        volume: v.volume_id.clone(),
        path: cx.staging(),
    });
    let results = concurrently(cx.s.concurrency, |_| {
        let mut c = node.clone();
        let req = req.clone();
        async move { c.node_stage_volume(req).await.map(drop) }
    })
    .await;
    let errors = not_aborted(&results);
    ensure!(
        errors.is_empty(),
        "{} concurrent NodeStageVolume calls for one volume: errors other than Aborted: {errors:?}",
        cx.s.concurrency
    );
    // Settled: a repeat succeeds, publish works on it, unstage works.
    ok(
        "NodeStageVolume (after the race)",
        cx.node().node_stage_volume(req).await,
    )?;
    cx.publish(cx.publish_req(&v, &pc, true)).await?;
    if cx.paths_checkable() {
        ensure!(
            cx.path_exists(&cx.target()).await?,
            "NodePublishVolume after the NodeStageVolume race did not create target_path"
        );
    }
    ok(
        "NodeUnpublishVolume",
        cx.node()
            .node_unpublish_volume(cx.unpublish_req(&v.volume_id))
            .await,
    )?;
    cx.forget(&Resource::Publish {
        volume: v.volume_id.clone(),
        path: cx.target(),
    });
    ok(
        "NodeUnstageVolume",
        cx.node()
            .node_unstage_volume(cx.unstage_req(&v.volume_id))
            .await,
    )?;
    cx.forget(&Resource::Stage {
        volume: v.volume_id.clone(),
        path: cx.staging(),
    });
    Ok(())
}

async fn publish_concurrent(cx: Ctx) -> Outcome {
    need_create(&cx)?;
    let v = cx.create_volume().await?;
    let (pc, staged) = cx.attach_and_stage(&v).await?;
    let req = cx.publish_req(&v, &pc, staged);
    cx.track(Resource::Publish {
        volume: v.volume_id.clone(),
        path: cx.target(),
    });
    let node = cx.node();
    let results = concurrently(cx.s.concurrency, |_| {
        let mut c = node.clone();
        let req = req.clone();
        async move { c.node_publish_volume(req).await.map(drop) }
    })
    .await;
    let errors = not_aborted(&results);
    ensure!(
        errors.is_empty(),
        "{} concurrent NodePublishVolume calls to one target: errors other than Aborted: {errors:?}",
        cx.s.concurrency
    );
    ok(
        "NodePublishVolume (after the race)",
        cx.node().node_publish_volume(req).await,
    )?;
    if cx.paths_checkable() {
        ensure!(
            cx.path_exists(&cx.target()).await?,
            "after concurrent NodePublishVolume calls, target_path does not exist"
        );
    }
    let results = concurrently(cx.s.concurrency, |_| {
        let mut c = node.clone();
        let req = cx.unpublish_req(&v.volume_id);
        async move { c.node_unpublish_volume(req).await.map(drop) }
    })
    .await;
    let errors = not_aborted(&results);
    ensure!(
        errors.is_empty(),
        "{} concurrent NodeUnpublishVolume calls of one target: errors other than Aborted: {errors:?}",
        cx.s.concurrency
    );
    ok(
        "NodeUnpublishVolume (after the race)",
        cx.node()
            .node_unpublish_volume(cx.unpublish_req(&v.volume_id))
            .await,
    )?;
    if cx.paths_checkable() {
        ensure!(
            !cx.path_exists(&cx.target()).await?,
            "after concurrent NodeUnpublishVolume calls, target_path is left behind"
        );
    }
    Ok(())
}

async fn unpublish_no_id(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    expect_code(
        "NodeUnpublishVolume without volume_id",
        cx.node()
            .node_unpublish_volume(NodeUnpublishVolumeRequest::default())
            .await,
        &[Code::InvalidArgument],
    )
}

async fn unpublish_no_target(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    let req = NodeUnpublishVolumeRequest {
        volume_id: fake_volume_id(),
        target_path: String::new(),
    };
    expect_code(
        "NodeUnpublishVolume without target_path",
        cx.node().node_unpublish_volume(req).await,
        &[Code::InvalidArgument],
    )
}

async fn unpublish_removes_target(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    // As csi-sanity: skipped when the target path cannot be checked; otherwise no
    // gate (CreateVolume must work).
    cx.need_checkable_paths()?;
    let v = cx.sanity_volume("sanity-node-unpublish-volume").await?;
    cx.sanity_publish_chain(&v, &cx.cap()).await?;
    ensure!(
        cx.path_exists(&cx.target()).await?,
        "NodePublishVolume succeeded but target path {} does not exist (the SP creates it)",
        cx.target()
    );
    ok(
        "NodeUnpublishVolume",
        cx.node()
            .node_unpublish_volume(cx.unpublish_req(&v.volume_id))
            .await,
    )?;
    cx.forget(&Resource::Publish {
        volume: v.volume_id.clone(),
        path: cx.target(),
    });
    ensure!(
        !cx.path_exists(&cx.target()).await?,
        "NodeUnpublishVolume did not remove target path {}",
        cx.target()
    );
    Ok(())
}

fn need_stage(cx: &Ctx) -> Outcome {
    cx.need_node(N::StageUnstageVolume, "NodeStageVolume not supported")
}

fn stage_probe(cx: &Ctx, volume_id: &str, cap: bool) -> NodeStageVolumeRequest {
    NodeStageVolumeRequest {
        volume_id: volume_id.to_owned(),
        publish_context: [("device".to_owned(), "/dev/mock".to_owned())].into(),
        staging_target_path: cx.staging(),
        volume_capability: cap.then(|| cx.cap()),
        secrets: cx.secrets("NodeStageVolumeSecret"),
        volume_context: HashMap::new(),
    }
}

async fn stage_expect_invalid(cx: &Ctx, what: &str, req: NodeStageVolumeRequest) -> Outcome {
    let r = cx.node().node_stage_volume(req.clone()).await;
    if r.is_ok() && !req.staging_target_path.is_empty() {
        cx.track(Resource::Stage {
            volume: req.volume_id.clone(),
            path: req.staging_target_path.clone(),
        });
    }
    expect_code(
        &format!("NodeStageVolume without {what}"),
        r,
        &[Code::InvalidArgument],
    )
}

async fn stage_no_id(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    need_stage(&cx)?;
    let req = stage_probe(&cx, "", true);
    stage_expect_invalid(&cx, "volume_id", req).await
}
async fn stage_no_path(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    need_stage(&cx)?;
    let mut req = stage_probe(&cx, &fake_volume_id(), true);
    req.staging_target_path.clear();
    stage_expect_invalid(&cx, "staging_target_path", req).await
}
async fn stage_no_cap(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    need_stage(&cx)?;
    // As csi-sanity: a real volume (no gate; CreateVolume must work).
    let v = cx.sanity_volume("sanity-node-stage-nocaps").await?;
    let req = stage_probe(&cx, &v.volume_id, false);
    stage_expect_invalid(&cx, "volume_capability", req).await
}

async fn unstage_no_id(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    cx.need_node(N::StageUnstageVolume, "NodeUnstageVolume not supported")?;
    expect_code(
        "NodeUnstageVolume without volume_id",
        cx.node().node_unstage_volume(cx.unstage_req("")).await,
        &[Code::InvalidArgument],
    )
}

async fn unstage_no_path(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    cx.need_node(N::StageUnstageVolume, "NodeUnstageVolume not supported")?;
    let mut req = cx.unstage_req(&fake_volume_id());
    req.staging_target_path.clear();
    expect_code(
        "NodeUnstageVolume without staging_target_path",
        cx.node().node_unstage_volume(req).await,
        &[Code::InvalidArgument],
    )
}

fn need_stats(cx: &Ctx) -> Outcome {
    cx.need_node(N::GetVolumeStats, "NodeGetVolume not supported")
}

fn stats_req(id: &str, path: &str) -> NodeGetVolumeStatsRequest {
    NodeGetVolumeStatsRequest {
        volume_id: id.to_owned(),
        volume_path: path.to_owned(),
        staging_target_path: String::new(),
    }
}

async fn stats_no_id(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    need_stats(&cx)?;
    expect_code(
        "NodeGetVolumeStats without volume_id",
        cx.node()
            .node_get_volume_stats(stats_req("", "some/path"))
            .await,
        &[Code::InvalidArgument],
    )
}

async fn stats_no_path(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    need_stats(&cx)?;
    expect_code(
        "NodeGetVolumeStats without volume_path",
        cx.node()
            .node_get_volume_stats(stats_req(&fake_volume_id(), ""))
            .await,
        &[Code::InvalidArgument],
    )
}

async fn stats_unknown(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    need_stats(&cx)?;
    expect_code(
        "NodeGetVolumeStats of an unknown volume",
        cx.node()
            .node_get_volume_stats(stats_req(&fake_volume_id(), "some/path"))
            .await,
        &[Code::NotFound],
    )
}

async fn stats_wrong_path(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    need_stats(&cx)?;
    let v = cx.sanity_volume("sanity-node-get-volume-stats").await?;
    cx.sanity_publish_chain(&v, &cx.cap()).await?;
    expect_code(
        "NodeGetVolumeStats of a published volume at another path",
        cx.node()
            .node_get_volume_stats(stats_req(&v.volume_id, "some/path"))
            .await,
        &[Code::NotFound],
    )
}

async fn check_stats(cx: &Ctx, id: &str) -> Outcome {
    use volume_usage::Unit;
    let r = ok(
        "NodeGetVolumeStats",
        cx.node()
            .node_get_volume_stats(stats_req(id, &cx.target()))
            .await,
    )?;
    for u in &r.usage {
        ensure!(
            Unit::try_from(u.unit).is_ok(),
            "NodeGetVolumeStats: unknown unit {}",
            u.unit
        );
        ensure!(
            u.available >= 0 && u.total >= 0 && u.used >= 0,
            "NodeGetVolumeStats: negative usage {u:?}"
        );
        ensure!(
            u.total == 0 || u.available <= u.total,
            "NodeGetVolumeStats: available {} > total {}",
            u.available,
            u.total
        );
    }
    if cx.has_node(N::VolumeCondition)? {
        let c = r.volume_condition.ok_or_else(|| {
            fail("VOLUME_CONDITION advertised but NodeGetVolumeStats has no volume_condition")
        })?;
        ensure!(
            !c.abnormal,
            "a freshly published volume's condition is abnormal: {:?}",
            c.message
        );
    }
    Ok(())
}

async fn stats_published(cx: Ctx) -> Outcome {
    need_stats(&cx)?;
    need_create(&cx)?;
    let (v, _) = cx.published_volume().await?;
    check_stats(&cx, &v.volume_id).await
}

fn need_expand(cx: &Ctx) -> Outcome {
    cx.need_node(N::ExpandVolume, "NodeExpandVolume not supported")
}

async fn expand_no_id(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    need_expand(&cx)?;
    // As csi-sanity: the volume path is the target's parent directory.
    let req = NodeExpandVolumeRequest {
        volume_path: cx.mount_parent().display().to_string(),
        volume_capability: Some(cx.cap()),
        ..Default::default()
    };
    expect_code(
        "NodeExpandVolume without volume_id",
        cx.node().node_expand_volume(req).await,
        &[Code::InvalidArgument],
    )
}

async fn expand_no_path(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    need_expand(&cx)?;
    let v = cx
        .sanity_volume("sanity-node-expand-volume-valid-id")
        .await?;
    let req = NodeExpandVolumeRequest {
        volume_id: v.volume_id,
        volume_capability: Some(cx.cap()),
        ..Default::default()
    };
    expect_code(
        "NodeExpandVolume without volume_path",
        cx.node().node_expand_volume(req).await,
        &[Code::InvalidArgument],
    )
}

async fn expand_unknown(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    need_expand(&cx)?;
    let req = NodeExpandVolumeRequest {
        volume_id: fake_volume_id(),
        volume_path: "some/path".to_owned(),
        ..Default::default()
    };
    expect_code(
        "NodeExpandVolume of an unknown volume",
        cx.node().node_expand_volume(req).await,
        &[Code::NotFound],
    )
}

async fn expand_works(cx: Ctx) -> Outcome {
    use controller_service_capability::rpc::Type as T;
    cx.node_service_gate()?;
    need_expand(&cx)?;
    let v = cx.sanity_volume("sanity-node-expand-volume").await?;
    // As csi-sanity: ControllerExpandVolume first when the plugin has a controller
    // that advertises EXPAND_VOLUME (no capability in that request).
    if cx.has_plugin(plugin_capability::service::Type::ControllerService)?
        && cx.has_ctrl(T::ExpandVolume)?
    {
        let r = ok(
            "ControllerExpandVolume",
            cx.ctrl()
                .controller_expand_volume(ControllerExpandVolumeRequest {
                    volume_id: v.volume_id.clone(),
                    capacity_range: Some(CapacityRange {
                        required_bytes: cx.s.expand_size,
                        limit_bytes: 0,
                    }),
                    secrets: cx.secrets("ControllerExpandVolumeSecret"),
                    volume_capability: None,
                })
                .await,
        )?;
        ensure!(
            r.capacity_bytes == cx.s.expand_size,
            "ControllerExpandVolume to {}: capacity_bytes {}",
            cx.s.expand_size,
            r.capacity_bytes
        );
    }
    cx.sanity_publish_chain(&v, &cx.cap()).await?;
    let req = NodeExpandVolumeRequest {
        volume_id: v.volume_id.clone(),
        volume_path: cx.target(),
        capacity_range: Some(CapacityRange {
            required_bytes: cx.s.expand_size,
            limit_bytes: 0,
        }),
        ..Default::default()
    };
    ok("NodeExpandVolume", cx.node().node_expand_volume(req).await).map(drop)
}

async fn health_no_id(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    cx.need_node(N::GetVolumeHealth, "NodeGetVolumeHealth not supported")?;
    expect_code(
        "NodeGetVolumeHealth without volume_id",
        cx.node()
            .node_get_volume_health(NodeGetVolumeHealthRequest::default())
            .await,
        &[Code::InvalidArgument],
    )
}

async fn health_works(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    cx.need_node(N::GetVolumeHealth, "NodeGetVolumeHealth not supported")?;
    let v = cx.sanity_volume("sanity-node-get-volume-health").await?;
    cx.sanity_publish_chain(&v, &cx.cap()).await?;
    // As csi-sanity: the volume ID only, no paths.
    let r = ok(
        "NodeGetVolumeHealth",
        cx.node()
            .node_get_volume_health(NodeGetVolumeHealthRequest {
                volume_id: v.volume_id.clone(),
                ..Default::default()
            })
            .await,
    )?;
    let h = r
        .volume_health
        .ok_or_else(|| fail("NodeGetVolumeHealth returned no volume_health"))?;
    ensure!(
        h.volume_id == v.volume_id,
        "NodeGetVolumeHealth({}) returned the health of volume {:?}",
        v.volume_id,
        h.volume_id
    );
    Ok(())
}

async fn storage_health(cx: Ctx) -> Outcome {
    cx.node_service_gate()?;
    cx.need_node(N::GetStorageHealth, "NodeGetStorageHealth not supported")?;
    ok(
        "NodeGetStorageHealth",
        cx.node()
            .node_get_storage_health(NodeGetStorageHealthRequest::default())
            .await,
    )
    .map(drop)
}

/// csi-sanity's end-to-end node flow, every step repeated `n` times.
/// csi-sanity's `runControllerTest`: a volume (on this node's topology when the
/// node reports one), ControllerPublished once when supported, then NodeStage and
/// NodePublish `n` times each, NodeGetVolumeStats once when supported (its usage
/// must not be empty); the teardown is the cleanup's, as there.
async fn sanity_flow(cx: &Ctx, n: usize) -> Outcome {
    cx.node_service_gate()?;
    cx.need_controller_service()?;
    let info = cx.node_info()?;
    ensure!(
        !info.node_id.is_empty(),
        "NodeGetInfo returned an empty node_id"
    );
    let mut req = cx.sanity_volume_req(&unique(&format!("sanity-node-full-{n}")));
    req.accessibility_requirements = info.accessible_topology.map(|t| TopologyRequirement {
        requisite: vec![t],
        preferred: Vec::new(),
    });
    let v = cx.create(req).await?;
    let mut pc = HashMap::new();
    if cx.controller_publish_supported()? {
        let mut req = cx.controller_publish_req(&v, &info.node_id);
        req.volume_context = v.volume_context.clone();
        let r = cx.ctrl().controller_publish_volume(req).await;
        if r.is_ok() {
            cx.track(Resource::ControllerPublish {
                volume: v.volume_id.clone(),
                node: info.node_id.clone(),
            });
        }
        pc = ok("ControllerPublishVolume", r)?.publish_context;
    }
    let staged = cx.has_node(N::StageUnstageVolume)?;
    if staged {
        for i in 0..n {
            ok(
                &format!("NodeStageVolume (call {})", i + 1),
                cx.node().node_stage_volume(cx.stage_req(&v, &pc)).await,
            )?;
            if i == 0 {
                cx.track(Resource::Stage {
                    volume: v.volume_id.clone(),
                    path: cx.staging(),
                });
            }
        }
    }
    for i in 0..n {
        ok(
            &format!("NodePublishVolume (call {})", i + 1),
            cx.node()
                .node_publish_volume(cx.publish_req(&v, &pc, staged))
                .await,
        )?;
        if i == 0 {
            cx.track(Resource::Publish {
                volume: v.volume_id.clone(),
                path: cx.target(),
            });
        }
    }
    if cx.has_node(N::GetVolumeStats)? {
        let r = ok(
            "NodeGetVolumeStats",
            cx.node()
                .node_get_volume_stats(stats_req(&v.volume_id, &cx.target()))
                .await,
        )?;
        ensure!(!r.usage.is_empty(), "NodeGetVolumeStats returned no usage");
    }
    Ok(())
}

/// The bench's whole node flow with every call, teardown included, repeated `n`
/// times.
async fn flow(cx: &Ctx, n: usize) -> Outcome {
    use controller_service_capability::rpc::Type as T;
    cx.need_controller_service()?;
    let v = cx.create_volume().await?;
    let node_id = cx.node_id()?;
    let mut pc = HashMap::new();
    let attach = cx.has_ctrl(T::PublishUnpublishVolume)?;
    if attach {
        for _ in 0..n {
            pc = ok(
                "ControllerPublishVolume",
                cx.ctrl()
                    .controller_publish_volume(cx.controller_publish_req(&v, &node_id))
                    .await,
            )?
            .publish_context;
        }
        cx.track(Resource::ControllerPublish {
            volume: v.volume_id.clone(),
            node: node_id.clone(),
        });
    }
    let staged = cx.has_node(N::StageUnstageVolume)?;
    if staged {
        for i in 0..n {
            ok(
                &format!("NodeStageVolume (call {})", i + 1),
                cx.node().node_stage_volume(cx.stage_req(&v, &pc)).await,
            )?;
            if i == 0 {
                cx.track(Resource::Stage {
                    volume: v.volume_id.clone(),
                    path: cx.staging(),
                });
            }
        }
    }
    for i in 0..n {
        ok(
            &format!("NodePublishVolume (call {})", i + 1),
            cx.node()
                .node_publish_volume(cx.publish_req(&v, &pc, staged))
                .await,
        )?;
        if i == 0 {
            cx.track(Resource::Publish {
                volume: v.volume_id.clone(),
                path: cx.target(),
            });
        }
    }
    for i in 0..n {
        ok(
            &format!("NodeUnpublishVolume (call {})", i + 1),
            cx.node()
                .node_unpublish_volume(cx.unpublish_req(&v.volume_id))
                .await,
        )?;
    }
    cx.forget(&Resource::Publish {
        volume: v.volume_id.clone(),
        path: cx.target(),
    });
    if staged {
        for i in 0..n {
            ok(
                &format!("NodeUnstageVolume (call {})", i + 1),
                cx.node()
                    .node_unstage_volume(cx.unstage_req(&v.volume_id))
                    .await,
            )?;
        }
        cx.forget(&Resource::Stage {
            volume: v.volume_id.clone(),
            path: cx.staging(),
        });
    }
    if attach {
        for _ in 0..n {
            ok(
                "ControllerUnpublishVolume",
                cx.ctrl()
                    .controller_unpublish_volume(
                        cx.controller_unpublish_req(&v.volume_id, &node_id),
                    )
                    .await,
            )?;
        }
        cx.forget(&Resource::ControllerPublish {
            volume: v.volume_id.clone(),
            node: node_id,
        });
    }
    cx.delete(&v.volume_id).await
}

async fn should_work(cx: Ctx) -> Outcome {
    sanity_flow(&cx, 1).await
}

async fn should_be_idempotent(cx: Ctx) -> Outcome {
    sanity_flow(&cx, cx.s.idempotent_count).await
}

async fn flow_repeated(cx: Ctx) -> Outcome {
    flow(&cx, cx.s.idempotent_count).await
}

/// Runs `--restart-cmd`, then waits until Probe answers ready.
pub(crate) async fn restart(cx: &Ctx) -> Outcome {
    let Some(cmd) = &cx.s.restart_cmd else {
        return Err(skip("no --restart-cmd given"));
    };
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .status()
        .await
        .map_err(|e| fail(format!("running --restart-cmd: {e}")))?;
    ensure!(
        status.success(),
        "--restart-cmd {cmd:?} exited with {status}"
    );
    let deadline = Instant::now() + cx.s.restart_timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        match cx.ident().probe(ProbeRequest {}).await {
            Ok(r) if r.get_ref().ready != Some(false) => return Ok(()),
            Ok(_) => last = "ready=false".to_owned(),
            Err(e) => last = describe(&e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(fail(format!(
        "the driver did not answer Probe within {:?} after --restart-cmd (last: {last})",
        cx.s.restart_timeout
    )))
}

async fn survives_restart(cx: Ctx) -> Outcome {
    if cx.s.restart_cmd.is_none() {
        return Err(skip("no --restart-cmd given"));
    }
    need_create(&cx)?;
    let v = cx.create_volume().await?;
    let (pc, staged) = cx.attach_and_stage(&v).await?;
    cx.publish(cx.publish_req(&v, &pc, staged)).await?;
    restart(&cx).await?;
    if cx.paths_checkable() {
        ensure!(
            cx.path_exists(&cx.target()).await?,
            "after the restart, target_path {} is gone",
            cx.target()
        );
    }
    if cx.has_node(N::GetVolumeStats)? {
        check_stats(&cx, &v.volume_id).await.map_err(|e| match e {
            Verdict::Fail(m) => fail(format!("after the restart: {m}")),
            s => s,
        })?;
    }
    if staged {
        ok(
            "NodeStageVolume repeated after the restart",
            cx.node().node_stage_volume(cx.stage_req(&v, &pc)).await,
        )?;
    }
    ok(
        "NodePublishVolume repeated after the restart",
        cx.node()
            .node_publish_volume(cx.publish_req(&v, &pc, staged))
            .await,
    )?;
    ok(
        "NodeUnpublishVolume after the restart",
        cx.node()
            .node_unpublish_volume(cx.unpublish_req(&v.volume_id))
            .await,
    )?;
    cx.forget(&Resource::Publish {
        volume: v.volume_id.clone(),
        path: cx.target(),
    });
    if cx.paths_checkable() {
        ensure!(
            !cx.path_exists(&cx.target()).await?,
            "NodeUnpublishVolume after the restart left target_path behind"
        );
    }
    if staged {
        ok(
            "NodeUnstageVolume after the restart",
            cx.node()
                .node_unstage_volume(cx.unstage_req(&v.volume_id))
                .await,
        )?;
        cx.forget(&Resource::Stage {
            volume: v.volume_id.clone(),
            path: cx.staging(),
        });
    }
    Ok(())
}

/// The extra node checks create volumes: the controller service and CREATE_DELETE_VOLUME.
fn need_create(cx: &Ctx) -> Outcome {
    use controller_service_capability::rpc::Type as T;
    cx.need_controller_service()?;
    cx.need_ctrl(T::CreateDeleteVolume, "CreateVolume not supported")
}
