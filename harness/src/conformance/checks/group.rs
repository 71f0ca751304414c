//! GroupController (VolumeGroupSnapshot): csi-sanity's 6 specs, plus a missing
//! source list.
//!
//! As csi-sanity, the requests carry the snapshot secrets (CreateSnapshotSecret,
//! ListSnapshotsSecret for Get, DeleteSnapshotSecret): it has no group secrets.

use driver::csi::v1::*;
use tonic::Code;

use super::{Check, Group, checks};
use crate::conformance::context::{
    Ctx, INVALID_VOLUME_ID, Outcome, Resource, ensure, expect_code, fail, ok, skip,
};

pub(super) fn checks() -> Vec<Check> {
    checks![Group::GroupController;
        sanity "CreateVolumeGroupSnapshot › should fail when no name is provided"
            = "GroupController Service [GroupController VolumeGroupSnapshots] CreateVolumeGroupSnapshot should fail when no name is provided" => create_no_name,
        extra "CreateVolumeGroupSnapshot › should fail when no source volume ids are provided" => create_no_sources,
        sanity "GetVolumeGroupSnapshot › should fail when no volume id is provided"
            = "GroupController Service [GroupController VolumeGroupSnapshots] GetVolumeGroupSnapshot should fail when no volume id is provided" => get_no_id,
        sanity "GetVolumeGroupSnapshot › should fail when an invalid volume id is used"
            = "GroupController Service [GroupController VolumeGroupSnapshots] GetVolumeGroupSnapshot should fail when an invalid volume id is used" => get_unknown,
        sanity "DeleteVolumeGroupSnapshot › should fail when no volume id is provided"
            = "GroupController Service [GroupController VolumeGroupSnapshots] DeleteVolumeGroupSnapshot should fail when no volume id is provided" => delete_no_id,
        sanity "DeleteVolumeGroupSnapshot › should succeed when an invalid volume id is used"
            = "GroupController Service [GroupController VolumeGroupSnapshots] DeleteVolumeGroupSnapshot should succeed when an invalid volume id is used" => delete_unknown,
        sanity "GroupControllerGetCapabilities › should return appropriate capabilities"
            = "GroupController Service [GroupController Server] GroupControllerGetCapabilities should return appropriate capabilities" => capabilities,
    ]
}

/// csi-sanity's gate of every group spec: the plugin (on `--endpoint`) offers the
/// group controller service.
fn need_service(cx: &Ctx) -> Outcome {
    if !cx.has_plugin(plugin_capability::service::Type::GroupControllerService)? {
        return Err(skip("GroupControllerService not supported"));
    }
    Ok(())
}

/// csi-sanity's gate of the VolumeGroupSnapshots specs: the service, then
/// CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT, asked with GroupControllerGetCapabilities
/// (which must answer at least one capability).
fn need_group(cx: &Ctx) -> Outcome {
    need_service(cx)?;
    let caps =
        cx.s.caps
            .group
            .clone()
            .map_err(|e| fail(format!("GroupControllerGetCapabilities failed: {e}")))?;
    ensure!(
        !caps.is_empty(),
        "GroupControllerGetCapabilities returned no capabilities"
    );
    let t = group_controller_service_capability::rpc::Type::CreateDeleteGetVolumeGroupSnapshot;
    if !caps.contains(&(t as i32)) {
        return Err(skip("VolumeGroupSnapshots not supported"));
    }
    Ok(())
}

fn track_group(
    cx: &Ctx,
    r: &Result<tonic::Response<CreateVolumeGroupSnapshotResponse>, tonic::Status>,
) {
    if let Ok(r) = r
        && let Some(g) = &r.get_ref().group_snapshot
    {
        cx.track(Resource::GroupSnapshot(
            g.group_snapshot_id.clone(),
            g.snapshots.iter().map(|s| s.snapshot_id.clone()).collect(),
        ));
    }
}

async fn create_no_name(cx: Ctx) -> Outcome {
    need_group(&cx)?;
    let r = cx
        .group()
        .create_volume_group_snapshot(CreateVolumeGroupSnapshotRequest {
            secrets: cx.secrets("CreateSnapshotSecret"),
            ..Default::default()
        })
        .await;
    track_group(&cx, &r);
    expect_code(
        "CreateVolumeGroupSnapshot without name",
        r,
        &[Code::InvalidArgument],
    )
}

async fn create_no_sources(cx: Ctx) -> Outcome {
    need_group(&cx)?;
    let r = cx
        .group()
        .create_volume_group_snapshot(CreateVolumeGroupSnapshotRequest {
            name: crate::conformance::context::unique("conformance-group"),
            source_volume_ids: Vec::new(),
            secrets: cx.secrets("CreateSnapshotSecret"),
            parameters: cx.s.snapshot_params.clone(),
        })
        .await;
    track_group(&cx, &r);
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
        secrets: cx.secrets("ListSnapshotsSecret"),
    }
}

fn delete_req(cx: &Ctx, id: &str) -> DeleteVolumeGroupSnapshotRequest {
    DeleteVolumeGroupSnapshotRequest {
        group_snapshot_id: id.to_owned(),
        snapshot_ids: Vec::new(),
        secrets: cx.secrets("DeleteSnapshotSecret"),
    }
}

async fn get_no_id(cx: Ctx) -> Outcome {
    need_group(&cx)?;
    expect_code(
        "GetVolumeGroupSnapshot without group_snapshot_id",
        cx.group().get_volume_group_snapshot(get_req(&cx, "")).await,
        &[Code::InvalidArgument],
    )
}

async fn get_unknown(cx: Ctx) -> Outcome {
    need_group(&cx)?;
    expect_code(
        "GetVolumeGroupSnapshot of an unknown group snapshot",
        cx.group()
            .get_volume_group_snapshot(get_req(&cx, INVALID_VOLUME_ID))
            .await,
        &[Code::NotFound],
    )
}

async fn delete_no_id(cx: Ctx) -> Outcome {
    need_group(&cx)?;
    expect_code(
        "DeleteVolumeGroupSnapshot without group_snapshot_id",
        cx.group()
            .delete_volume_group_snapshot(delete_req(&cx, ""))
            .await,
        &[Code::InvalidArgument],
    )
}

async fn delete_unknown(cx: Ctx) -> Outcome {
    need_group(&cx)?;
    ok(
        "DeleteVolumeGroupSnapshot of an unknown id (must succeed)",
        cx.group()
            .delete_volume_group_snapshot(delete_req(&cx, INVALID_VOLUME_ID))
            .await,
    )
    .map(drop)
}

async fn capabilities(cx: Ctx) -> Outcome {
    use group_controller_service_capability::{Type, rpc};
    need_service(&cx)?;
    let r = ok(
        "GroupControllerGetCapabilities",
        cx.group()
            .group_controller_get_capabilities(GroupControllerGetCapabilitiesRequest {})
            .await,
    )?;
    // As csi-sanity: at least one capability, each one it knows.
    ensure!(
        !r.capabilities.is_empty(),
        "GroupControllerGetCapabilities returned no capabilities"
    );
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
