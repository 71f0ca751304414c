//! GroupController (VolumeGroupSnapshot): csi-sanity's 6 specs.

use driver::csi::v1::*;
use tonic::Code;

use super::{Check, Group, checks};
use crate::conformance::context::{Ctx, Outcome, Resource, ensure, expect_code, ok, skip};

pub(super) fn checks() -> Vec<Check> {
    checks![Group::GroupController;
        sanity "CreateVolumeGroupSnapshot › should fail when no name is provided" => create_no_name,
        extra "CreateVolumeGroupSnapshot › should fail when no source volume ids are provided" => create_no_sources,
        sanity "GetVolumeGroupSnapshot › should fail when no volume id is provided" => get_no_id,
        sanity "GetVolumeGroupSnapshot › should fail when an invalid volume id is used" => get_unknown,
        sanity "DeleteVolumeGroupSnapshot › should fail when no volume id is provided" => delete_no_id,
        sanity "DeleteVolumeGroupSnapshot › should succeed when an invalid volume id is used" => delete_unknown,
        sanity "GroupControllerGetCapabilities › should return appropriate capabilities" => capabilities,
    ]
}

async fn create_no_name(cx: Ctx) -> Outcome {
    cx.need_group()?;
    let v = cx.volume_or_fake().await?;
    let r = cx
        .group()
        .create_volume_group_snapshot(CreateVolumeGroupSnapshotRequest {
            name: String::new(),
            source_volume_ids: vec![v.volume_id],
            secrets: cx.secrets("CreateVolumeGroupSnapshotSecret"),
            parameters: cx.s.snapshot_params.clone(),
        })
        .await;
    if let Ok(r) = &r
        && let Some(g) = &r.get_ref().group_snapshot
    {
        cx.track(Resource::GroupSnapshot(
            g.group_snapshot_id.clone(),
            g.snapshots.iter().map(|s| s.snapshot_id.clone()).collect(),
        ));
    }
    expect_code(
        "CreateVolumeGroupSnapshot without name",
        r,
        &[Code::InvalidArgument],
    )
}

async fn create_no_sources(cx: Ctx) -> Outcome {
    cx.need_group()?;
    let r = cx
        .group()
        .create_volume_group_snapshot(CreateVolumeGroupSnapshotRequest {
            name: crate::conformance::context::unique("conformance-group"),
            source_volume_ids: Vec::new(),
            secrets: cx.secrets("CreateVolumeGroupSnapshotSecret"),
            parameters: cx.s.snapshot_params.clone(),
        })
        .await;
    if let Ok(r) = &r
        && let Some(g) = &r.get_ref().group_snapshot
    {
        cx.track(Resource::GroupSnapshot(
            g.group_snapshot_id.clone(),
            g.snapshots.iter().map(|s| s.snapshot_id.clone()).collect(),
        ));
    }
    expect_code(
        "CreateVolumeGroupSnapshot without source_volume_ids",
        r,
        &[Code::InvalidArgument],
    )
}

fn get_req(cx: &Ctx, id: &str) -> GetVolumeGroupSnapshotRequest {
    GetVolumeGroupSnapshotRequest {
        group_snapshot_id: id.to_owned(),
        snapshot_ids: Vec::new(),
        secrets: cx.secrets("GetVolumeGroupSnapshotSecret"),
    }
}

fn delete_req(cx: &Ctx, id: &str) -> DeleteVolumeGroupSnapshotRequest {
    DeleteVolumeGroupSnapshotRequest {
        group_snapshot_id: id.to_owned(),
        snapshot_ids: Vec::new(),
        secrets: cx.secrets("DeleteVolumeGroupSnapshotSecret"),
    }
}

async fn get_no_id(cx: Ctx) -> Outcome {
    cx.need_group()?;
    expect_code(
        "GetVolumeGroupSnapshot without group_snapshot_id",
        cx.group().get_volume_group_snapshot(get_req(&cx, "")).await,
        &[Code::InvalidArgument],
    )
}

async fn get_unknown(cx: Ctx) -> Outcome {
    cx.need_group()?;
    expect_code(
        "GetVolumeGroupSnapshot of an unknown group snapshot",
        cx.group()
            .get_volume_group_snapshot(get_req(&cx, "fake-group-snapshot-id"))
            .await,
        &[Code::NotFound],
    )
}

async fn delete_no_id(cx: Ctx) -> Outcome {
    cx.need_group()?;
    expect_code(
        "DeleteVolumeGroupSnapshot without group_snapshot_id",
        cx.group()
            .delete_volume_group_snapshot(delete_req(&cx, ""))
            .await,
        &[Code::InvalidArgument],
    )
}

async fn delete_unknown(cx: Ctx) -> Outcome {
    cx.need_group()?;
    ok(
        "DeleteVolumeGroupSnapshot of an unknown id (must succeed)",
        cx.group()
            .delete_volume_group_snapshot(delete_req(&cx, "fake-group-snapshot-id"))
            .await,
    )
    .map(drop)
}

async fn capabilities(cx: Ctx) -> Outcome {
    use group_controller_service_capability::{Type, rpc};
    if !cx.has_plugin(plugin_capability::service::Type::GroupControllerService)? {
        return Err(skip("GroupControllerService not supported"));
    }
    let r = ok(
        "GroupControllerGetCapabilities",
        cx.group()
            .group_controller_get_capabilities(GroupControllerGetCapabilitiesRequest {})
            .await,
    )?;
    for c in &r.capabilities {
        match &c.r#type {
            Some(Type::Rpc(r)) => ensure!(
                rpc::Type::try_from(r.r#type).is_ok_and(|t| t != rpc::Type::Unknown),
                "unknown group controller capability {}",
                r.r#type
            ),
            None => ensure!(false, "a capability with no type"),
        }
    }
    Ok(())
}
