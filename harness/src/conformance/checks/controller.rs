//! Controller (volumes): csi-sanity's 36 specs (its pending pagination spec run as
//! the bench's own), plus concurrency, idempotency, capacity, pagination, content
//! sources and volume condition.

use std::collections::HashSet;

use driver::csi::v1::controller_service_capability::rpc::Type as T;
use driver::csi::v1::*;
use tonic::Code;

use super::controller_publish as publish;
use super::{Check, Group, checks, concurrently};
use crate::conformance::context::{
    Ctx, INVALID_VOLUME_ID, Outcome, Resource, Verdict, describe, ensure, expect_code, fail,
    fake_volume_id, ok, skip, unique,
};

pub(super) fn checks() -> Vec<Check> {
    checks![Group::Controller;
        sanity "ControllerGetCapabilities › should return appropriate capabilities"
            = "Controller Service [Controller Server] ControllerGetCapabilities should return appropriate capabilities" => get_capabilities,
        sanity "GetCapacity › should return capacity (no optional values added)"
            = "Controller Service [Controller Server] GetCapacity should return capacity (no optional values added)" => get_capacity,
        sanity "ListVolumes › should return appropriate values (no optional values added)"
            = "Controller Service [Controller Server] ListVolumes should return appropriate values (no optional values added)" => list_volumes,
        sanity "ListVolumes › should fail when an invalid starting_token is passed"
            = "Controller Service [Controller Server] ListVolumes should fail when an invalid starting_token is passed" => list_volumes_bad_token,
        sanity "ListVolumes › check the presence of new volumes and absence of deleted ones in the volume list"
            = "Controller Service [Controller Server] ListVolumes check the presence of new volumes and absence of deleted ones in the volume list" => list_volumes_presence,
        extra "ListVolumes › lists a new volume by its ID, and not once it is deleted" => list_volumes_presence_by_id,
        pending "ListVolumes › pagination should detect volumes added between pages and accept tokens when the last volume from a page is deleted"
            = "Controller Service [Controller Server] ListVolumes pagination should detect volumes added between pages and accept tokens when the last volume from a page is deleted" => list_volumes_pagination_changes,
        extra "ListVolumes › pagination visits every volume exactly once" => list_volumes_pagination,
        sanity "CreateVolume › should fail when no name is provided"
            = "Controller Service [Controller Server] CreateVolume should fail when no name is provided" => create_no_name,
        sanity "CreateVolume › should fail when no volume capabilities are provided"
            = "Controller Service [Controller Server] CreateVolume should fail when no volume capabilities are provided" => create_no_caps,
        sanity "CreateVolume › should return appropriate values SingleNodeWriter NoCapacity"
            = "Controller Service [Controller Server] CreateVolume should return appropriate values SingleNodeWriter NoCapacity" => create_no_capacity,
        sanity "CreateVolume › should return appropriate values SingleNodeWriter WithCapacity 1Gi"
            = "Controller Service [Controller Server] CreateVolume should return appropriate values SingleNodeWriter WithCapacity 1Gi" => create_with_capacity,
        sanity "CreateVolume › should not fail when requesting to create a volume with already existing name and same capacity"
            = "Controller Service [Controller Server] CreateVolume should not fail when requesting to create a volume with already existing name and same capacity" => create_same_name,
        sanity "CreateVolume › should fail when requesting to create a volume with already existing name and different capacity"
            = "Controller Service [Controller Server] CreateVolume should fail when requesting to create a volume with already existing name and different capacity" => create_same_name_other_size,
        sanity "CreateVolume › should not fail when creating volume with maximum-length name"
            = "Controller Service [Controller Server] CreateVolume should not fail when creating volume with maximum-length name" => create_max_name,
        sanity "CreateVolume › should create volume from an existing source snapshot"
            = "Controller Service [Controller Server] CreateVolume should create volume from an existing source snapshot" => create_from_snapshot,
        extra "CreateVolume › a volume made from a snapshot names that snapshot as its content_source" => create_from_snapshot_names_it,
        sanity "CreateVolume › should fail when the volume source snapshot is not found"
            = "Controller Service [Controller Server] CreateVolume should fail when the volume source snapshot is not found" => create_from_missing_snapshot,
        sanity "CreateVolume › should create volume from an existing source volume"
            = "Controller Service [Controller Server] CreateVolume should create volume from an existing source volume" => create_from_volume,
        extra "CreateVolume › a clone names its source volume as its content_source" => create_from_volume_names_it,
        sanity "CreateVolume › should fail when the volume source volume is not found"
            = "Controller Service [Controller Server] CreateVolume should fail when the volume source volume is not found" => create_from_missing_volume,
        sanity "CreateVolume › should create volume with a volume attribute class"
            = "Controller Service [Controller Server] CreateVolume should create volume with a volume attribute class" => create_with_vac,
        sanity "CreateVolume › should not create volume with an invalid volume attribute class"
            = "Controller Service [Controller Server] CreateVolume should not create volume with an invalid volume attribute class" => create_with_bad_vac,
        extra "CreateVolume › concurrent calls with one name give exactly one volume" => create_concurrent,
        extra "CreateVolume › every repeat returns the same volume" => create_repeats,
        extra "CreateVolume › the capacity returned is within the requested range" => create_range,
        extra "CreateVolume › required_bytes above limit_bytes is refused" => create_bad_range,
        extra "CreateVolume › a capability without access mode or access type is refused" => create_bad_cap,
        sanity "DeleteVolume › should fail when no volume id is provided"
            = "Controller Service [Controller Server] DeleteVolume should fail when no volume id is provided" => delete_no_id,
        sanity "DeleteVolume › should succeed when an invalid volume id is used"
            = "Controller Service [Controller Server] DeleteVolume should succeed when an invalid volume id is used" => delete_unknown,
        sanity "DeleteVolume › should return appropriate values (no optional values added)"
            = "Controller Service [Controller Server] DeleteVolume should return appropriate values (no optional values added)" => delete_works,
        extra "DeleteVolume › every repeat succeeds and the volume is gone" => delete_repeats,
        extra "DeleteVolume › concurrent calls on one volume succeed or are Aborted" => delete_concurrent,
        sanity "ValidateVolumeCapabilities › should fail when no volume id is provided"
            = "Controller Service [Controller Server] ValidateVolumeCapabilities should fail when no volume id is provided" => validate_no_id,
        sanity "ValidateVolumeCapabilities › should fail when no volume capabilities are provided"
            = "Controller Service [Controller Server] ValidateVolumeCapabilities should fail when no volume capabilities are provided" => validate_no_caps,
        sanity "ValidateVolumeCapabilities › should return appropriate values (no optional values added)"
            = "Controller Service [Controller Server] ValidateVolumeCapabilities should return appropriate values (no optional values added)" => validate_works,
        sanity "ValidateVolumeCapabilities › should fail when the requested volume does not exist"
            = "Controller Service [Controller Server] ValidateVolumeCapabilities should fail when the requested volume does not exist" => validate_unknown,
        sanity "ControllerPublishVolume › should fail when no volume id is provided"
            = "Controller Service [Controller Server] ControllerPublishVolume should fail when no volume id is provided" => publish::publish_no_id,
        sanity "ControllerPublishVolume › should fail when no node id is provided"
            = "Controller Service [Controller Server] ControllerPublishVolume should fail when no node id is provided" => publish::publish_no_node,
        sanity "ControllerPublishVolume › should fail when no volume capability is provided"
            = "Controller Service [Controller Server] ControllerPublishVolume should fail when no volume capability is provided" => publish::publish_no_cap,
        sanity "ControllerPublishVolume › should fail when publishing more volumes than the node max attach limit"
            = "Controller Service [Controller Server] ControllerPublishVolume should fail when publishing more volumes than the node max attach limit" => publish::publish_attach_limit,
        sanity "ControllerPublishVolume › should fail when the volume does not exist"
            = "Controller Service [Controller Server] ControllerPublishVolume should fail when the volume does not exist" => publish::publish_unknown_volume,
        sanity "ControllerPublishVolume › should fail when the node does not exist"
            = "Controller Service [Controller Server] ControllerPublishVolume should fail when the node does not exist" => publish::publish_unknown_node,
        sanity "ControllerPublishVolume › should fail when the volume is already published but is incompatible"
            = "Controller Service [Controller Server] ControllerPublishVolume should fail when the volume is already published but is incompatible" => publish::publish_incompatible,
        sanity "volume lifecycle › should work"
            = "Controller Service [Controller Server] volume lifecycle should work" => publish::lifecycle,
        sanity "volume lifecycle › should be idempotent"
            = "Controller Service [Controller Server] volume lifecycle should be idempotent" => publish::lifecycle_idempotent,
        extra "volume lifecycle › publish, unpublish and delete succeed, each call repeated" => publish::lifecycle_full,
        sanity "ControllerUnpublishVolume › should fail when no volume id is provided"
            = "Controller Service [Controller Server] ControllerUnpublishVolume should fail when no volume id is provided" => publish::unpublish_no_id,
        extra "GetCapacity › answers are consistent for the test parameters" => capacity_consistent,
        extra "ControllerGetVolume › returns the volume, its condition, and NotFound or InvalidArgument" => get_volume,
    ]
}

async fn get_capabilities(cx: Ctx) -> Outcome {
    use controller_service_capability::Type;
    let r = ok(
        "ControllerGetCapabilities",
        cx.ctrl()
            .controller_get_capabilities(ControllerGetCapabilitiesRequest {})
            .await,
    )?;
    for c in &r.capabilities {
        match &c.r#type {
            Some(Type::Rpc(r)) => ensure!(
                T::try_from(r.r#type).is_ok_and(|t| t != T::Unknown),
                "unknown controller capability {}",
                r.r#type
            ),
            None => ensure!(false, "a capability with no type"),
        }
    }
    Ok(())
}

async fn get_capacity(cx: Ctx) -> Outcome {
    cx.need_ctrl(T::GetCapacity, "GetCapacity not supported")?;
    ok(
        "GetCapacity",
        cx.ctrl().get_capacity(GetCapacityRequest::default()).await,
    )?;
    Ok(())
}

async fn list_all(cx: &Ctx, max: i32) -> Result<Vec<String>, Verdict> {
    let mut ids = Vec::new();
    let mut token = String::new();
    for _ in 0..100_000 {
        let r = ok(
            "ListVolumes",
            cx.ctrl()
                .list_volumes(ListVolumesRequest {
                    max_entries: max,
                    starting_token: token.clone(),
                })
                .await,
        )?;
        ensure!(
            max == 0 || r.entries.len() <= max as usize,
            "ListVolumes: {} entries for max_entries {max}",
            r.entries.len()
        );
        for e in r.entries {
            let v = e
                .volume
                .ok_or_else(|| fail("ListVolumes: an entry without a volume"))?;
            ensure!(
                !v.volume_id.is_empty(),
                "ListVolumes: an entry with an empty volume_id"
            );
            ids.push(v.volume_id);
        }
        if r.next_token.is_empty() {
            return Ok(ids);
        }
        ensure!(
            r.next_token != token,
            "ListVolumes: next_token {:?} repeats the starting_token",
            token
        );
        token = r.next_token;
    }
    Err(fail("ListVolumes: pagination does not end"))
}

async fn list_volumes(cx: Ctx) -> Outcome {
    cx.need_ctrl(T::ListVolumes, "ListVolumes not supported")?;
    // As csi-sanity: one call, every entry a volume with an ID.
    let r = ok(
        "ListVolumes",
        cx.ctrl().list_volumes(ListVolumesRequest::default()).await,
    )?;
    for e in &r.entries {
        let v = e
            .volume
            .as_ref()
            .ok_or_else(|| fail("ListVolumes: an entry without a volume"))?;
        ensure!(
            !v.volume_id.is_empty(),
            "ListVolumes: an entry with an empty volume_id"
        );
    }
    Ok(())
}

async fn list_volumes_bad_token(cx: Ctx) -> Outcome {
    cx.need_ctrl(T::ListVolumes, "ListVolumes not supported")?;
    expect_code(
        "ListVolumes with an invalid starting_token",
        cx.ctrl()
            .list_volumes(ListVolumesRequest {
                max_entries: 0,
                starting_token: "invalid-token".to_owned(),
            })
            .await,
        &[Code::Aborted],
    )
}

/// csi-sanity's single ListVolumes call: how many entries it returns.
async fn list_count(cx: &Ctx) -> Result<usize, Verdict> {
    Ok(ok(
        "ListVolumes",
        cx.ctrl().list_volumes(ListVolumesRequest::default()).await,
    )?
    .entries
    .len())
}

async fn list_volumes_presence(cx: Ctx) -> Outcome {
    cx.need_ctrl(T::ListVolumes, "ListVolumes not supported")?;
    // As csi-sanity: entry counts of single calls, no CreateVolume gate.
    let before = list_count(&cx).await?;
    let v = cx.sanity_volume("sanity").await?;
    let mid = list_count(&cx).await?;
    ensure!(
        mid == before + 1,
        "ListVolumes: {before} entries before CreateVolume, {mid} after"
    );
    cx.delete(&v.volume_id).await?;
    let after = list_count(&cx).await?;
    ensure!(
        after == before,
        "ListVolumes: {before} entries at the start, {after} after CreateVolume and DeleteVolume"
    );
    Ok(())
}

async fn list_volumes_presence_by_id(cx: Ctx) -> Outcome {
    cx.need_ctrl(T::ListVolumes, "ListVolumes not supported")?;
    cx.need_ctrl(T::CreateDeleteVolume, "CreateVolume not supported")?;
    let before = list_all(&cx, 0).await?;
    let v = cx.create_volume().await?;
    let mid = list_all(&cx, 0).await?;
    ensure!(
        mid.contains(&v.volume_id),
        "ListVolumes does not list the new volume {}",
        v.volume_id
    );
    ensure!(
        mid.len() == before.len() + 1,
        "ListVolumes: {} volumes before CreateVolume, {} after",
        before.len(),
        mid.len()
    );
    cx.delete(&v.volume_id).await?;
    let after = list_all(&cx, 0).await?;
    ensure!(
        !after.contains(&v.volume_id),
        "ListVolumes still lists the deleted volume {}",
        v.volume_id
    );
    Ok(())
}

async fn list_volumes_pagination(cx: Ctx) -> Outcome {
    cx.need_ctrl(T::ListVolumes, "ListVolumes not supported")?;
    cx.need_ctrl(T::CreateDeleteVolume, "CreateVolume not supported")?;
    let mut mine = Vec::new();
    for _ in 0..3 {
        mine.push(cx.create_volume().await?.volume_id);
    }
    let all = list_all(&cx, 0).await?;
    for max in [1, 2] {
        let paged = list_all(&cx, max).await?;
        let unique: HashSet<_> = paged.iter().collect();
        ensure!(
            unique.len() == paged.len(),
            "ListVolumes with max_entries {max}: a volume was listed twice: {paged:?}"
        );
        ensure!(
            unique == all.iter().collect(),
            "ListVolumes with max_entries {max} lists {} volumes, without it {}",
            paged.len(),
            all.len()
        );
        for id in &mine {
            ensure!(unique.contains(id), "paged ListVolumes misses {id}");
        }
    }
    Ok(())
}

/// csi-sanity's pending spec: a token stays usable when the volume that ended its page
/// is deleted, and volumes created between pages do not make the walk repeat one.
async fn list_volumes_pagination_changes(cx: Ctx) -> Outcome {
    cx.need_ctrl(T::ListVolumes, "ListVolumes not supported")?;
    cx.need_ctrl(T::CreateDeleteVolume, "CreateVolume not supported")?;
    for _ in 0..4 {
        cx.create_volume().await?;
    }
    let first = ok(
        "ListVolumes",
        cx.ctrl()
            .list_volumes(ListVolumesRequest {
                max_entries: 2,
                starting_token: String::new(),
            })
            .await,
    )?;
    ensure!(
        !first.next_token.is_empty(),
        "ListVolumes with max_entries 2 over at least 4 volumes returned no next_token"
    );
    let seen: Vec<String> = first
        .entries
        .iter()
        .filter_map(|e| e.volume.as_ref().map(|v| v.volume_id.clone()))
        .collect();
    let last = seen
        .last()
        .ok_or_else(|| fail("ListVolumes with max_entries 2 returned no entries"))?
        .clone();
    // Delete the page's last volume if it is ours; create one more volume.
    if cx.made(&Resource::Volume(last.clone())) {
        cx.delete(&last).await?;
    }
    cx.create_volume().await?;
    let mut rest = Vec::new();
    let mut token = first.next_token;
    for _ in 0..10_000 {
        let r = cx
            .ctrl()
            .list_volumes(ListVolumesRequest {
                max_entries: 2,
                starting_token: token.clone(),
            })
            .await
            .map_err(|s| {
                fail(format!(
                    "ListVolumes refused a token after the volume ending its page was deleted: {}",
                    describe(&s)
                ))
            })?
            .into_inner();
        rest.extend(
            r.entries
                .into_iter()
                .filter_map(|e| e.volume.map(|v| v.volume_id)),
        );
        if r.next_token.is_empty() {
            break;
        }
        token = r.next_token;
    }
    for id in &rest {
        ensure!(
            !seen.contains(id),
            "ListVolumes listed {id} on the first page and again after it"
        );
    }
    Ok(())
}

async fn need_create(cx: &Ctx) -> Outcome {
    cx.need_ctrl(T::CreateDeleteVolume, "CreateVolume not supported")
}

async fn create_no_name(cx: Ctx) -> Outcome {
    need_create(&cx).await?;
    let req = CreateVolumeRequest {
        secrets: cx.secrets("CreateVolumeSecret"),
        parameters: cx.s.params.clone(),
        ..Default::default()
    };
    let r = cx.ctrl().create_volume(req).await;
    track_volume(&cx, &r);
    expect_code("CreateVolume without name", r, &[Code::InvalidArgument])
}

/// A content source naming the snapshot `id`.
fn snapshot_source(id: &str) -> Option<VolumeContentSource> {
    Some(VolumeContentSource {
        r#type: Some(volume_content_source::Type::Snapshot(
            volume_content_source::SnapshotSource {
                snapshot_id: id.to_owned(),
            },
        )),
    })
}

/// A content source naming the volume `id`.
fn volume_source(id: &str) -> Option<VolumeContentSource> {
    Some(VolumeContentSource {
        r#type: Some(volume_content_source::Type::Volume(
            volume_content_source::VolumeSource {
                volume_id: id.to_owned(),
            },
        )),
    })
}

/// Tracks the volume of an answer, as csi-sanity's wrapper registers every volume
/// CreateVolume returns with an ID (also where the call should have failed).
fn track_volume<E>(cx: &Ctx, r: &Result<tonic::Response<CreateVolumeResponse>, E>) {
    if let Ok(v) = r
        && let Some(v) = &v.get_ref().volume
        && !v.volume_id.is_empty()
    {
        cx.track(Resource::Volume(v.volume_id.clone()));
    }
}

async fn create_no_caps(cx: Ctx) -> Outcome {
    need_create(&cx).await?;
    let req = CreateVolumeRequest {
        name: unique("conformance"),
        secrets: cx.secrets("CreateVolumeSecret"),
        parameters: cx.s.params.clone(),
        ..Default::default()
    };
    let r = cx.ctrl().create_volume(req).await;
    track_volume(&cx, &r);
    expect_code(
        "CreateVolume without volume_capabilities",
        r,
        &[Code::InvalidArgument],
    )
}

async fn create_no_capacity(cx: Ctx) -> Outcome {
    need_create(&cx).await?;
    // As csi-sanity (despite the name): required_bytes is the test size.
    cx.sanity_volume("sanity-controller-create-single-no-capacity")
        .await
        .map(drop)
}

/// csi-sanity's rule on a new volume's size: at least the test size, or 0 (unknown).
fn capacity_ok(cx: &Ctx, v: &Volume) -> Outcome {
    ensure!(
        v.capacity_bytes == 0 || v.capacity_bytes >= cx.s.volume_size,
        "CreateVolume: capacity_bytes {} is below required_bytes {}",
        v.capacity_bytes,
        cx.s.volume_size
    );
    Ok(())
}

async fn create_with_capacity(cx: Ctx) -> Outcome {
    need_create(&cx).await?;
    let req = cx.sanity_volume_req(&unique("sanity-controller-create-single-with-capacity"));
    let r = cx.ctrl().create_volume(req).await;
    track_volume(&cx, &r);
    let v = match r {
        Err(s) if matches!(s.code(), Code::OutOfRange | Code::Unimplemented) => {
            return Err(skip(format!(
                "Required bytes not supported ({})",
                describe(&s)
            )));
        }
        r => ok("CreateVolume", r)?
            .volume
            .ok_or_else(|| fail("CreateVolume returned no volume"))?,
    };
    ensure!(
        !v.volume_id.is_empty(),
        "CreateVolume returned an empty volume_id"
    );
    capacity_ok(&cx, &v)
}

async fn create_same_name(cx: Ctx) -> Outcome {
    need_create(&cx).await?;
    let req = cx.sanity_volume_req(&unique("sanity-controller-create-twice"));
    let a = cx.create(req.clone()).await?;
    capacity_ok(&cx, &a)?;
    let b = cx.create(req).await?;
    capacity_ok(&cx, &b)?;
    ensure!(
        a.volume_id == b.volume_id,
        "CreateVolume repeated with the same name and capacity returned another volume: {} then {}",
        a.volume_id,
        b.volume_id
    );
    Ok(())
}

async fn create_same_name_other_size(cx: Ctx) -> Outcome {
    need_create(&cx).await?;
    let size1 = cx.s.volume_size;
    let mut req = cx.sanity_volume_req(&unique("sanity-controller-create-twice-different"));
    // A limit keeps the first volume smaller than the second request.
    req.capacity_range = Some(CapacityRange {
        required_bytes: size1,
        limit_bytes: size1,
    });
    let a = cx.create(req.clone()).await?;
    if a.capacity_bytes == 0 {
        return Err(skip("capacity of the volume is unknown"));
    }
    ensure!(
        a.capacity_bytes == size1,
        "CreateVolume with required and limit {size1}: capacity_bytes {}",
        a.capacity_bytes
    );
    let size2 = 2 * cx.s.volume_size;
    let mut other = req;
    other.capacity_range = Some(CapacityRange {
        required_bytes: size2,
        limit_bytes: size2,
    });
    let r = cx.ctrl().create_volume(other).await;
    track_volume(&cx, &r);
    expect_code(
        "CreateVolume with an existing name and another capacity",
        r,
        &[Code::AlreadyExists],
    )
}

async fn create_max_name(cx: Ctx) -> Outcome {
    need_create(&cx).await?;
    // csi-sanity's maximum length, 128 characters.
    let mut name = unique("sanity-controller-create-maxlen");
    while name.len() < 128 {
        name.push('a');
    }
    let v = cx.create(cx.sanity_volume_req(&name)).await?;
    capacity_ok(&cx, &v)
}

/// csi-sanity's start of "from an existing source snapshot": a volume, a snapshot
/// of it asked for again until it is ready to use (bounded by the check's
/// deadline), then CreateVolume from it, which must succeed. Returns the snapshot
/// and the answer's volume (tracked when it has an ID).
async fn volume_from_snapshot(cx: &Ctx) -> Result<(Snapshot, Volume), Verdict> {
    need_create(cx).await?;
    cx.need_ctrl(T::CreateDeleteSnapshot, "Snapshot not supported")?;
    let src = cx
        .sanity_volume("sanity-controller-source-vol-snap")
        .await?;
    let sreq = cx.snapshot_req(&unique("sanity-controller-snap-from-vol"), &src.volume_id);
    let snap = loop {
        let s = cx.must_snapshot(sreq.clone()).await?;
        if s.ready_to_use {
            break s;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };
    let mut req = cx.sanity_volume_req(&unique("sanity-controller-vol-from-snap"));
    req.volume_content_source = snapshot_source(&snap.snapshot_id);
    let v = cx
        .create_answer(req)
        .await?
        .ok_or_else(|| fail("CreateVolume from a snapshot returned no volume"))?;
    Ok((snap, v))
}

async fn create_from_snapshot(cx: Ctx) -> Outcome {
    let (_, v) = volume_from_snapshot(&cx).await?;
    ensure!(
        v.content_source.is_some(),
        "CreateVolume from a snapshot: the volume has no content_source"
    );
    Ok(())
}

async fn create_from_snapshot_names_it(cx: Ctx) -> Outcome {
    let (snap, v) = volume_from_snapshot(&cx).await?;
    match v.content_source.and_then(|s| s.r#type) {
        Some(volume_content_source::Type::Snapshot(s)) => ensure!(
            s.snapshot_id == snap.snapshot_id,
            "CreateVolume from snapshot {}: content_source names snapshot {}",
            snap.snapshot_id,
            s.snapshot_id
        ),
        other => ensure!(
            false,
            "CreateVolume from a snapshot: content_source is {other:?}, not the snapshot"
        ),
    }
    Ok(())
}

async fn create_from_missing_snapshot(cx: Ctx) -> Outcome {
    need_create(&cx).await?;
    cx.need_ctrl(T::CreateDeleteSnapshot, "Snapshot not supported")?;
    let mut req = cx.sanity_volume_req(&unique("sanity-controller-vol-from-snap-not-found"));
    req.volume_content_source = snapshot_source("non-existing-snapshot-id");
    let r = cx.ctrl().create_volume(req).await;
    track_volume(&cx, &r);
    expect_code("CreateVolume from a missing snapshot", r, &[Code::NotFound])
}

/// A volume and CreateVolume cloning it, which must succeed; returns the source and
/// the answer's volume (tracked when it has an ID).
async fn clone_volume(cx: &Ctx) -> Result<(Volume, Option<Volume>), Verdict> {
    need_create(cx).await?;
    cx.need_ctrl(T::CloneVolume, "Volume Cloning not supported")?;
    let src = cx
        .sanity_volume("sanity-controller-source-vol-clone")
        .await?;
    let mut req = cx.sanity_volume_req(&unique("sanity-controller-vol-from-vol"));
    req.volume_content_source = volume_source(&src.volume_id);
    let v = cx.create_answer(req).await?;
    Ok((src, v))
}

async fn create_from_volume(cx: Ctx) -> Outcome {
    // As csi-sanity: the clone must succeed, nothing more.
    clone_volume(&cx).await.map(drop)
}

async fn create_from_volume_names_it(cx: Ctx) -> Outcome {
    let (src, v) = clone_volume(&cx).await?;
    let v = v.ok_or_else(|| fail("CreateVolume of a clone returned no volume"))?;
    match v.content_source.and_then(|s| s.r#type) {
        Some(volume_content_source::Type::Volume(s)) => ensure!(
            s.volume_id == src.volume_id,
            "CreateVolume from volume {}: content_source names volume {}",
            src.volume_id,
            s.volume_id
        ),
        other => ensure!(
            false,
            "CreateVolume from a volume: content_source is {other:?}, not the volume"
        ),
    }
    Ok(())
}

async fn create_from_missing_volume(cx: Ctx) -> Outcome {
    need_create(&cx).await?;
    cx.need_ctrl(T::CloneVolume, "Volume Cloning not supported")?;
    let mut req = cx.sanity_volume_req(&unique("sanity-controller-vol-from-vol-not-found"));
    req.volume_content_source = volume_source(&fake_volume_id());
    let r = cx.ctrl().create_volume(req).await;
    track_volume(&cx, &r);
    expect_code("CreateVolume from a missing volume", r, &[Code::NotFound])
}

async fn create_with_vac(cx: Ctx) -> Outcome {
    need_create(&cx).await?;
    cx.need_ctrl(T::ModifyVolume, "Modify volume not supported")?;
    let mut req = cx.sanity_volume_req(&unique("sanity-controller-vol-with-mutable-parameters"));
    req.mutable_parameters = cx.s.mutable_params.clone();
    cx.create_answer(req).await.map(drop)
}

async fn create_with_bad_vac(cx: Ctx) -> Outcome {
    need_create(&cx).await?;
    cx.need_ctrl(T::ModifyVolume, "Modify Volume not supported")?;
    let mut req = cx.sanity_volume_req(&unique(
        "sanity-controller-vol-with-mutable-parameters-invalid",
    ));
    req.mutable_parameters = [("XXX_FakeKey".to_owned(), "XXX_FakeValue".to_owned())].into();
    let r = cx.ctrl().create_volume(req).await;
    track_volume(&cx, &r);
    expect_code(
        "CreateVolume with unsupported mutable_parameters",
        r,
        &[Code::InvalidArgument],
    )
}

async fn create_concurrent(cx: Ctx) -> Outcome {
    need_create(&cx).await?;
    let before = if cx.has_ctrl(T::ListVolumes)? {
        Some(list_all(&cx, 0).await?)
    } else {
        None
    };
    let req = cx.create_req(&unique("conformance-race"));
    let client = cx.ctrl();
    let results = concurrently(cx.s.concurrency, |_| {
        let mut c = client.clone();
        let req = req.clone();
        async move { c.create_volume(req).await.map(|r| r.into_inner()) }
    })
    .await;
    let mut ids = HashSet::new();
    let mut errors = Vec::new();
    for r in &results {
        match r {
            Ok(v) => {
                if let Some(v) = &v.volume {
                    ids.insert(v.volume_id.clone());
                }
            }
            // CSI spec: a call for a volume with an operation pending may be Aborted.
            Err(s) if s.code() == Code::Aborted => {}
            Err(s) => errors.push(describe(s)),
        }
    }
    for id in &ids {
        cx.track(Resource::Volume(id.clone()));
    }
    ensure!(
        errors.is_empty(),
        "{} concurrent CreateVolume calls with one name: errors other than Aborted: {errors:?}",
        cx.s.concurrency
    );
    ensure!(
        ids.len() <= 1,
        "{} concurrent CreateVolume calls with one name returned {} different volumes: {ids:?}",
        cx.s.concurrency,
        ids.len()
    );
    // Once settled, a repeat answers with the one volume.
    let v = cx.create(req).await?;
    ensure!(
        ids.is_empty() || ids.contains(&v.volume_id),
        "after the race, CreateVolume returns {} but the racing calls returned {ids:?}",
        v.volume_id
    );
    if let Some(before) = before {
        let after = list_all(&cx, 0).await?;
        let new: Vec<_> = after.iter().filter(|id| !before.contains(id)).collect();
        ensure!(
            new.len() <= 1,
            "{} concurrent CreateVolume calls with one name left {} new volumes: {new:?}",
            cx.s.concurrency,
            new.len()
        );
    }
    cx.delete(&v.volume_id).await
}

async fn create_repeats(cx: Ctx) -> Outcome {
    need_create(&cx).await?;
    let req = cx.create_req(&unique("conformance"));
    let first = cx.create(req.clone()).await?;
    for i in 0..cx.s.idempotent_count {
        // Through `create`, so that a volume a broken driver makes anew is cleaned up.
        let again = cx.create(req.clone()).await?;
        ensure!(
            again.volume_id == first.volume_id
                && again.capacity_bytes == first.capacity_bytes
                && again.volume_context == first.volume_context,
            "CreateVolume repeat {}: {:?} differs from the first answer {:?}",
            i + 1,
            (
                &again.volume_id,
                again.capacity_bytes,
                &again.volume_context
            ),
            (
                &first.volume_id,
                first.capacity_bytes,
                &first.volume_context
            )
        );
    }
    cx.delete(&first.volume_id).await
}

async fn create_range(cx: Ctx) -> Outcome {
    need_create(&cx).await?;
    let mut req = cx.create_req(&unique("conformance"));
    let (lo, hi) = (cx.s.volume_size, cx.s.volume_size * 2);
    req.capacity_range = Some(CapacityRange {
        required_bytes: lo,
        limit_bytes: hi,
    });
    let v = cx.create(req).await?;
    // CSI spec: capacity_bytes 0 means unknown; otherwise within [required, limit].
    ensure!(
        v.capacity_bytes == 0 || (lo..=hi).contains(&v.capacity_bytes),
        "CreateVolume with required {lo} and limit {hi} returned capacity_bytes {}",
        v.capacity_bytes
    );
    cx.delete(&v.volume_id).await
}

async fn create_bad_range(cx: Ctx) -> Outcome {
    need_create(&cx).await?;
    let mut req = cx.create_req(&unique("conformance"));
    req.capacity_range = Some(CapacityRange {
        required_bytes: cx.s.volume_size * 2,
        limit_bytes: cx.s.volume_size,
    });
    let r = cx.ctrl().create_volume(req).await;
    track_volume(&cx, &r);
    expect_code(
        "CreateVolume with required_bytes > limit_bytes",
        r,
        &[Code::InvalidArgument, Code::OutOfRange],
    )
}

async fn create_bad_cap(cx: Ctx) -> Outcome {
    need_create(&cx).await?;
    let mut no_mode = cx.cap();
    no_mode.access_mode = None;
    let mut no_type = cx.cap();
    no_type.access_type = None;
    for (what, cap) in [("access_mode", no_mode), ("access_type", no_type)] {
        let mut req = cx.create_req(&unique("conformance"));
        req.volume_capabilities = vec![cap];
        let r = cx.ctrl().create_volume(req).await;
        track_volume(&cx, &r);
        expect_code(
            &format!("CreateVolume with a capability without {what}"),
            r,
            &[Code::InvalidArgument],
        )?;
    }
    Ok(())
}

fn need_delete(cx: &Ctx) -> Outcome {
    cx.need_ctrl(T::CreateDeleteVolume, "DeleteVolume not supported")
}

async fn delete_no_id(cx: Ctx) -> Outcome {
    need_delete(&cx)?;
    expect_code(
        "DeleteVolume without volume_id",
        cx.ctrl().delete_volume(cx.delete_req("")).await,
        &[Code::InvalidArgument],
    )
}

async fn delete_unknown(cx: Ctx) -> Outcome {
    need_delete(&cx)?;
    // CSI spec: deleting a volume that does not exist succeeds.
    ok(
        "DeleteVolume of an unknown volume_id (must succeed)",
        cx.ctrl()
            .delete_volume(cx.delete_req(INVALID_VOLUME_ID))
            .await,
    )
    .map(drop)
}

async fn delete_works(cx: Ctx) -> Outcome {
    need_delete(&cx)?;
    let v = cx
        .sanity_volume("sanity-controller-create-appropriate")
        .await?;
    cx.delete(&v.volume_id).await
}

async fn delete_repeats(cx: Ctx) -> Outcome {
    need_create(&cx).await?;
    let v = cx.create_volume().await?;
    for _ in 0..cx.s.idempotent_count {
        ok(
            "DeleteVolume (repeat after success)",
            cx.ctrl().delete_volume(cx.delete_req(&v.volume_id)).await,
        )?;
    }
    cx.forget(&Resource::Volume(v.volume_id.clone()));
    gone(&cx, &v.volume_id).await
}

/// The volume is gone: ValidateVolumeCapabilities answers NotFound, ListVolumes omits it.
async fn gone(cx: &Ctx, id: &str) -> Outcome {
    expect_code(
        "ValidateVolumeCapabilities of a deleted volume",
        cx.ctrl()
            .validate_volume_capabilities(ValidateVolumeCapabilitiesRequest {
                volume_id: id.to_owned(),
                volume_capabilities: vec![cx.cap()],
                secrets: cx.secrets("ControllerValidateVolumeCapabilitiesSecret"),
                ..Default::default()
            })
            .await,
        &[Code::NotFound],
    )?;
    if cx.has_ctrl(T::ListVolumes)? {
        let all = list_all(cx, 0).await?;
        ensure!(
            !all.contains(&id.to_owned()),
            "ListVolumes still lists deleted volume {id}"
        );
    }
    Ok(())
}

async fn delete_concurrent(cx: Ctx) -> Outcome {
    need_create(&cx).await?;
    let v = cx.create_volume().await?;
    let client = cx.ctrl();
    let req = cx.delete_req(&v.volume_id);
    let results = concurrently(cx.s.concurrency, |_| {
        let mut c = client.clone();
        let req = req.clone();
        async move { c.delete_volume(req).await.map(drop) }
    })
    .await;
    let errors: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .filter(|s| s.code() != Code::Aborted)
        .map(describe)
        .collect();
    ensure!(
        errors.is_empty(),
        "{} concurrent DeleteVolume calls of one volume: errors other than Aborted: {errors:?}",
        cx.s.concurrency
    );
    cx.delete(&v.volume_id).await?;
    gone(&cx, &v.volume_id).await
}

/// A ValidateVolumeCapabilities request as csi-sanity's: the volume, the
/// capabilities and the secrets, nothing else.
fn validate_req(
    cx: &Ctx,
    id: &str,
    caps: Vec<VolumeCapability>,
) -> ValidateVolumeCapabilitiesRequest {
    ValidateVolumeCapabilitiesRequest {
        volume_id: id.to_owned(),
        volume_capabilities: caps,
        secrets: cx.secrets("ControllerValidateVolumeCapabilitiesSecret"),
        ..Default::default()
    }
}

// ValidateVolumeCapabilities: no capability gate, as in csi-sanity.

async fn validate_no_id(cx: Ctx) -> Outcome {
    expect_code(
        "ValidateVolumeCapabilities without volume_id",
        cx.ctrl()
            .validate_volume_capabilities(validate_req(&cx, "", vec![]))
            .await,
        &[Code::InvalidArgument],
    )
}

async fn validate_no_caps(cx: Ctx) -> Outcome {
    // As csi-sanity: CreateVolume must work here.
    let v = cx
        .sanity_volume("sanity-controller-validate-nocaps")
        .await?;
    expect_code(
        "ValidateVolumeCapabilities without volume_capabilities",
        cx.ctrl()
            .validate_volume_capabilities(validate_req(&cx, &v.volume_id, vec![]))
            .await,
        &[Code::InvalidArgument],
    )
}

async fn validate_works(cx: Ctx) -> Outcome {
    let v = cx.sanity_volume("sanity-controller-validate").await?;
    let r = ok(
        "ValidateVolumeCapabilities",
        cx.ctrl()
            .validate_volume_capabilities(validate_req(&cx, &v.volume_id, vec![cx.cap()]))
            .await,
    )?;
    // CSI spec: a confirmation lists the confirmed capabilities.
    if let Some(c) = r.confirmed {
        ensure!(
            !c.volume_capabilities.is_empty(),
            "ValidateVolumeCapabilities confirmed no volume_capabilities"
        );
    }
    Ok(())
}

async fn validate_unknown(cx: Ctx) -> Outcome {
    expect_code(
        "ValidateVolumeCapabilities of an unknown volume",
        cx.ctrl()
            .validate_volume_capabilities(validate_req(&cx, &fake_volume_id(), vec![cx.cap()]))
            .await,
        &[Code::NotFound],
    )
}

async fn capacity_consistent(cx: Ctx) -> Outcome {
    cx.need_ctrl(T::GetCapacity, "GetCapacity not supported")?;
    let r = ok(
        "GetCapacity",
        cx.ctrl()
            .get_capacity(GetCapacityRequest {
                volume_capabilities: vec![cx.cap()],
                parameters: cx.s.params.clone(),
                accessible_topology: None,
            })
            .await,
    )?;
    ensure!(
        r.available_capacity >= 0,
        "GetCapacity: negative available_capacity {}",
        r.available_capacity
    );
    if let Some(max) = r.maximum_volume_size {
        ensure!(max >= 0, "GetCapacity: negative maximum_volume_size {max}");
    }
    if let Some(min) = r.minimum_volume_size {
        ensure!(min >= 0, "GetCapacity: negative minimum_volume_size {min}");
        if let Some(max) = r.maximum_volume_size {
            ensure!(
                min <= max,
                "GetCapacity: minimum_volume_size {min} > maximum_volume_size {max}"
            );
        }
    }
    Ok(())
}

async fn get_volume(cx: Ctx) -> Outcome {
    cx.need_ctrl(T::GetVolume, "ControllerGetVolume not supported")?;
    expect_code(
        "ControllerGetVolume without volume_id",
        cx.ctrl()
            .controller_get_volume(ControllerGetVolumeRequest {
                volume_id: String::new(),
            })
            .await,
        &[Code::InvalidArgument],
    )?;
    expect_code(
        "ControllerGetVolume of an unknown volume",
        cx.ctrl()
            .controller_get_volume(ControllerGetVolumeRequest {
                volume_id: "some-vol-id".to_owned(),
            })
            .await,
        &[Code::NotFound],
    )?;
    need_create(&cx).await?;
    let v = cx.create_volume().await?;
    let r = ok(
        "ControllerGetVolume",
        cx.ctrl()
            .controller_get_volume(ControllerGetVolumeRequest {
                volume_id: v.volume_id.clone(),
            })
            .await,
    )?;
    let got = r
        .volume
        .ok_or_else(|| fail("ControllerGetVolume returned no volume"))?;
    ensure!(
        got.volume_id == v.volume_id,
        "ControllerGetVolume({}) returned volume {}",
        v.volume_id,
        got.volume_id
    );
    if cx.has_ctrl(T::VolumeCondition)? {
        let cond = r.status.and_then(|s| s.volume_condition).ok_or_else(|| {
            fail("VOLUME_CONDITION advertised but ControllerGetVolume has no volume_condition")
        })?;
        ensure!(
            !cond.abnormal,
            "a new volume's condition is abnormal: {:?}",
            cond.message
        );
    }
    cx.delete(&v.volume_id).await
}
