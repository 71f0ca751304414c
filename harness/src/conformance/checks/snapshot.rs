//! Snapshots: csi-sanity's 19 specs, plus error codes, concurrency, idempotency and
//! pagination.

use std::collections::HashSet;

use driver::csi::v1::controller_service_capability::rpc::Type as T;
use driver::csi::v1::*;
use tonic::Code;

use super::{Check, Group, checks, concurrently};
use crate::conformance::context::{
    Ctx, Outcome, Resource, Verdict, describe, ensure, expect_code, fail, fake_volume_id, ok, skip,
    unique, verify_snapshot_info,
};

pub(super) fn checks() -> Vec<Check> {
    checks![Group::Snapshot;
        sanity "GetSnapshot › should return an error"
            = "GetSnapshot [Controller Server] should return an error" => get_no_id,
        sanity "GetSnapshot › should return snapshot that match the specified snapshot id"
            = "GetSnapshot [Controller Server] should return snapshot that match the specified snapshot id" => get_works,
        sanity "GetSnapshot › should return an error when the specified snapshot id does not exist"
            = "GetSnapshot [Controller Server] should return an error when the specified snapshot id does not exist" => get_unknown,
        extra "GetSnapshot › a missing snapshot_id is InvalidArgument, an unknown one NotFound" => get_codes,
        sanity "ListSnapshots › should return appropriate values (no optional values added)"
            = "ListSnapshots [Controller Server] should return appropriate values (no optional values added)" => list,
        sanity "ListSnapshots › should return snapshots that match the specified snapshot id"
            = "ListSnapshots [Controller Server] should return snapshots that match the specified snapshot id" => list_by_id,
        sanity "ListSnapshots › should return empty when the specified snapshot id does not exist"
            = "ListSnapshots [Controller Server] should return empty when the specified snapshot id does not exist" => list_by_unknown_id,
        sanity "ListSnapshots › should return snapshots that match the specified source volume id"
            = "ListSnapshots [Controller Server] should return snapshots that match the specified source volume id" => list_by_source,
        sanity "ListSnapshots › should return empty when the specified source volume id does not exist"
            = "ListSnapshots [Controller Server] should return empty when the specified source volume id does not exist" => list_by_unknown_source,
        sanity "ListSnapshots › check the presence of new snapshots in the snapshot list"
            = "ListSnapshots [Controller Server] check the presence of new snapshots in the snapshot list" => list_presence,
        extra "ListSnapshots › lists a new snapshot by its ID, and not once it is deleted" => list_presence_by_id,
        sanity "ListSnapshots › should return next token when a limited number of entries are requested"
            = "ListSnapshots [Controller Server] should return next token when a limited number of entries are requested" => list_next_token,
        extra "ListSnapshots › should fail when an invalid starting_token is passed" => list_bad_token,
        extra "ListSnapshots › pagination visits every snapshot exactly once" => list_pagination,
        sanity "DeleteSnapshot › should fail when no snapshot id is provided"
            = "DeleteSnapshot [Controller Server] should fail when no snapshot id is provided" => delete_no_id,
        sanity "DeleteSnapshot › should succeed when an invalid snapshot id is used"
            = "DeleteSnapshot [Controller Server] should succeed when an invalid snapshot id is used" => delete_unknown,
        sanity "DeleteSnapshot › should return appropriate values (no optional values added)"
            = "DeleteSnapshot [Controller Server] should return appropriate values (no optional values added)" => delete_works,
        extra "DeleteSnapshot › every repeat succeeds" => delete_repeats,
        sanity "CreateSnapshot › should fail when no name is provided"
            = "CreateSnapshot [Controller Server] should fail when no name is provided" => create_no_name,
        sanity "CreateSnapshot › should fail when no source volume id is provided"
            = "CreateSnapshot [Controller Server] should fail when no source volume id is provided" => create_no_source,
        sanity "CreateSnapshot › should succeed when requesting to create a snapshot with already existing name and same source volume ID"
            = "CreateSnapshot [Controller Server] should succeed when requesting to create a snapshot with already existing name and same source volume ID" => create_same_name,
        extra "CreateSnapshot › every repeat returns the same snapshot" => create_repeats,
        sanity "CreateSnapshot › should fail when requesting to create a snapshot with already existing name and different source volume ID"
            = "CreateSnapshot [Controller Server] should fail when requesting to create a snapshot with already existing name and different source volume ID" => create_same_name_other_source,
        sanity "CreateSnapshot › should succeed when creating snapshot with maximum-length name"
            = "CreateSnapshot [Controller Server] should succeed when creating snapshot with maximum-length name" => create_max_name,
        sanity "CreateSnapshot › should succeed when creating a snapshot with accessibility requirements"
            = "CreateSnapshot [Controller Server] should succeed when creating a snapshot with accessibility requirements" => create_with_topology,
        extra "CreateSnapshot › concurrent calls with one name give exactly one snapshot" => create_concurrent,
    ]
}

fn need_snap(cx: &Ctx) -> Outcome {
    cx.need_ctrl(T::CreateDeleteSnapshot, "CreateSnapshot not supported")
}
fn need_delete(cx: &Ctx) -> Outcome {
    cx.need_ctrl(T::CreateDeleteSnapshot, "DeleteSnapshot not supported")
}
fn need_list(cx: &Ctx) -> Outcome {
    cx.need_ctrl(T::ListSnapshots, "ListSnapshots not supported")
}
fn need_get(cx: &Ctx) -> Outcome {
    cx.need_ctrl(T::GetSnapshot, "GetSnapshot not supported")
}

fn get_req(cx: &Ctx, id: &str) -> GetSnapshotRequest {
    GetSnapshotRequest {
        snapshot_id: id.to_owned(),
        secrets: cx.secrets("GetSnapshotSecret"),
    }
}

fn list_req(cx: &Ctx) -> ListSnapshotsRequest {
    ListSnapshotsRequest {
        secrets: cx.secrets("ListSnapshotsSecret"),
        ..Default::default()
    }
}

/// A volume and a snapshot of it.
/// A volume and a snapshot of it (the bench's own checks).
async fn volume_and_snapshot(cx: &Ctx) -> Result<(Volume, Snapshot), Verdict> {
    let v = cx.create_volume().await?;
    let s = cx.create_snapshot(&v.volume_id).await?;
    ensure!(
        s.source_volume_id == v.volume_id,
        "CreateSnapshot: source_volume_id {} is not the source {}",
        s.source_volume_id,
        v.volume_id
    );
    Ok((v, s))
}

/// csi-sanity's single ListSnapshots call.
async fn list_once(cx: &Ctx, req: ListSnapshotsRequest) -> Result<Vec<Option<Snapshot>>, Verdict> {
    Ok(ok("ListSnapshots", cx.ctrl().list_snapshots(req).await)?
        .entries
        .into_iter()
        .map(|e| e.snapshot)
        .collect())
}

/// csi-sanity's `verifySnapshotInfo` of an entry that may hold no snapshot.
fn verify_entry(rpc: &str, s: Option<&Snapshot>) -> Result<Snapshot, Verdict> {
    let s = s.ok_or_else(|| fail(format!("{rpc}: an entry without a snapshot")))?;
    verify_snapshot_info(rpc, s)?;
    Ok(s.clone())
}

/// Passes when the call failed, whatever the code (csi-sanity: "an error").
fn expect_error<T>(what: &str, r: Result<tonic::Response<T>, tonic::Status>) -> Outcome {
    ensure!(r.is_err(), "{what}: expected an error, got OK");
    Ok(())
}

/// Every snapshot the filter lists, following tokens.
async fn list_all(cx: &Ctx, mut req: ListSnapshotsRequest) -> Result<Vec<Snapshot>, Verdict> {
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let r = ok("ListSnapshots", cx.ctrl().list_snapshots(req.clone()).await)?;
        ensure!(
            req.max_entries == 0 || r.entries.len() <= req.max_entries as usize,
            "ListSnapshots: {} entries for max_entries {}",
            r.entries.len(),
            req.max_entries
        );
        for e in r.entries {
            out.push(
                e.snapshot
                    .ok_or_else(|| fail("ListSnapshots: an entry without a snapshot"))?,
            );
        }
        if r.next_token.is_empty() {
            return Ok(out);
        }
        ensure!(
            r.next_token != req.starting_token,
            "ListSnapshots: next_token repeats the starting_token"
        );
        req.starting_token = r.next_token;
    }
    Err(fail("ListSnapshots: pagination does not end"))
}

fn ids(s: &[Snapshot]) -> Vec<String> {
    s.iter().map(|s| s.snapshot_id.clone()).collect()
}

async fn get_no_id(cx: Ctx) -> Outcome {
    need_get(&cx)?;
    // As csi-sanity and the CSI spec: any error (the spec's table names none here).
    expect_error(
        "GetSnapshot without snapshot_id",
        cx.ctrl().get_snapshot(get_req(&cx, "")).await,
    )
}

async fn get_works(cx: Ctx) -> Outcome {
    need_get(&cx)?;
    // As csi-sanity: the target between two unrelated snapshots, no gate on
    // CREATE_DELETE_SNAPSHOT.
    cx.must_volume_and_snapshot("getSnapshot-unrelated-s-1")
        .await?;
    let target = cx.must_volume_and_snapshot("getSnapshot-target-s").await?;
    cx.must_volume_and_snapshot("getSnapshot-unrelated-s-2")
        .await?;
    let r = ok(
        "GetSnapshot",
        cx.ctrl()
            .get_snapshot(get_req(&cx, &target.snapshot_id))
            .await,
    )?;
    let got = verify_entry("GetSnapshot", r.snapshot.as_ref())?;
    ensure!(
        got.snapshot_id == target.snapshot_id,
        "GetSnapshot({}) returned snapshot {}",
        target.snapshot_id,
        got.snapshot_id
    );
    Ok(())
}

async fn get_unknown(cx: Ctx) -> Outcome {
    need_get(&cx)?;
    expect_error(
        "GetSnapshot of an unknown snapshot",
        cx.ctrl().get_snapshot(get_req(&cx, "none-exist-id")).await,
    )
}

async fn get_codes(cx: Ctx) -> Outcome {
    need_get(&cx)?;
    expect_code(
        "GetSnapshot without snapshot_id",
        cx.ctrl().get_snapshot(get_req(&cx, "")).await,
        &[Code::InvalidArgument],
    )?;
    expect_code(
        "GetSnapshot of an unknown snapshot",
        cx.ctrl().get_snapshot(get_req(&cx, "none-exist-id")).await,
        &[Code::NotFound],
    )
}

async fn list(cx: Ctx) -> Outcome {
    need_list(&cx)?;
    for s in list_once(&cx, list_req(&cx)).await? {
        verify_entry("ListSnapshots", s.as_ref())?;
    }
    Ok(())
}

async fn list_by_id(cx: Ctx) -> Outcome {
    need_list(&cx)?;
    // As csi-sanity: the target between two unrelated snapshots of other volumes.
    cx.must_volume_and_snapshot("listSnapshots-unrelated-s-1")
        .await?;
    let target = cx
        .must_volume_and_snapshot("listSnapshots-target-s")
        .await?;
    cx.must_volume_and_snapshot("listSnapshots-unrelated-s-2")
        .await?;
    let mut req = list_req(&cx);
    req.snapshot_id = target.snapshot_id.clone();
    let got = list_once(&cx, req).await?;
    ensure!(
        got.len() == 1,
        "ListSnapshots(snapshot_id {}) returned {} entries, not 1",
        target.snapshot_id,
        got.len()
    );
    let s = verify_entry("ListSnapshots", got[0].as_ref())?;
    ensure!(
        s.snapshot_id == target.snapshot_id,
        "ListSnapshots(snapshot_id {}) returned snapshot {}",
        target.snapshot_id,
        s.snapshot_id
    );
    Ok(())
}

async fn list_by_unknown_id(cx: Ctx) -> Outcome {
    need_list(&cx)?;
    let mut req = list_req(&cx);
    req.snapshot_id = "none-exist-id".to_owned();
    let got = list_once(&cx, req).await?;
    ensure!(
        got.is_empty(),
        "ListSnapshots(unknown snapshot_id) returned {} entries",
        got.len()
    );
    Ok(())
}

async fn list_by_source(cx: Ctx) -> Outcome {
    need_list(&cx)?;
    cx.must_volume_and_snapshot("listSnapshots-unrelated-v-1")
        .await?;
    let target = cx
        .must_volume_and_snapshot("listSnapshots-target-v")
        .await?;
    cx.must_volume_and_snapshot("listSnapshots-unrelated-v-2")
        .await?;
    // As csi-sanity: the filter is the source the snapshot names.
    let mut req = list_req(&cx);
    req.source_volume_id = target.source_volume_id.clone();
    let got = list_once(&cx, req).await?;
    ensure!(
        got.len() == 1,
        "ListSnapshots(source_volume_id {}) returned {} entries, not 1",
        target.source_volume_id,
        got.len()
    );
    let s = verify_entry("ListSnapshots", got[0].as_ref())?;
    ensure!(
        s.source_volume_id == target.source_volume_id,
        "ListSnapshots(source_volume_id {}) returned a snapshot of {}",
        target.source_volume_id,
        s.source_volume_id
    );
    Ok(())
}

async fn list_by_unknown_source(cx: Ctx) -> Outcome {
    need_list(&cx)?;
    let mut req = list_req(&cx);
    req.source_volume_id = fake_volume_id();
    let got = list_once(&cx, req).await?;
    ensure!(
        got.is_empty(),
        "ListSnapshots(unknown source_volume_id) returned {} entries",
        got.len()
    );
    Ok(())
}

async fn list_presence(cx: Ctx) -> Outcome {
    need_list(&cx)?;
    // As csi-sanity: entry counts of single calls.
    let before = list_once(&cx, list_req(&cx)).await?.len();
    let s = cx.must_volume_and_snapshot("listSnapshots-3").await?;
    let mid = list_once(&cx, list_req(&cx)).await?.len();
    ensure!(
        mid == before + 1,
        "ListSnapshots: {before} entries before CreateSnapshot, {mid} after"
    );
    cx.delete_snapshot(&s.snapshot_id).await?;
    let after = list_once(&cx, list_req(&cx)).await?.len();
    ensure!(
        after == before,
        "ListSnapshots: {before} entries at the start, {after} after CreateSnapshot and DeleteSnapshot"
    );
    Ok(())
}

async fn list_presence_by_id(cx: Ctx) -> Outcome {
    need_list(&cx)?;
    need_snap(&cx)?;
    let before = list_all(&cx, list_req(&cx)).await?;
    let (_, s) = volume_and_snapshot(&cx).await?;
    let mid = ids(&list_all(&cx, list_req(&cx)).await?);
    ensure!(
        mid.contains(&s.snapshot_id),
        "ListSnapshots does not list the new snapshot {}",
        s.snapshot_id
    );
    ensure!(
        mid.len() == before.len() + 1,
        "ListSnapshots: {} snapshots before CreateSnapshot, {} after",
        before.len(),
        mid.len()
    );
    cx.delete_snapshot(&s.snapshot_id).await?;
    let after = ids(&list_all(&cx, list_req(&cx)).await?);
    ensure!(
        !after.contains(&s.snapshot_id),
        "ListSnapshots still lists the deleted snapshot {}",
        s.snapshot_id
    );
    Ok(())
}

async fn list_next_token(cx: Ctx) -> Outcome {
    need_list(&cx)?;
    // As csi-sanity: at least 5 snapshots, a first page of exactly 2, then the rest
    // in one answer from its next_token.
    let mut total = list_once(&cx, list_req(&cx)).await?.len();
    let mut i = 0;
    while total < 5 {
        i += 1;
        cx.must_volume_and_snapshot(&format!("listSnapshots-{i}"))
            .await?;
        total += 1;
    }
    let mut req = list_req(&cx);
    req.max_entries = 2;
    let r = ok("ListSnapshots", cx.ctrl().list_snapshots(req).await)?;
    ensure!(
        r.entries.len() == 2,
        "ListSnapshots with max_entries 2 over {total} snapshots returned {} entries",
        r.entries.len()
    );
    let mut rest = list_req(&cx);
    rest.starting_token = r.next_token;
    let n = list_once(&cx, rest).await?.len();
    ensure!(
        n == total - 2,
        "ListSnapshots from the next_token without max_entries returned {n} entries, not the remaining {}",
        total - 2
    );
    Ok(())
}

async fn list_bad_token(cx: Ctx) -> Outcome {
    need_list(&cx)?;
    let mut req = list_req(&cx);
    req.starting_token = "invalid-token".to_owned();
    expect_code(
        "ListSnapshots with an invalid starting_token",
        cx.ctrl().list_snapshots(req).await,
        &[Code::Aborted],
    )
}

async fn list_pagination(cx: Ctx) -> Outcome {
    need_list(&cx)?;
    need_snap(&cx)?;
    let v = cx.create_volume().await?;
    for _ in 0..3 {
        cx.create_snapshot(&v.volume_id).await?;
    }
    let all: HashSet<_> = ids(&list_all(&cx, list_req(&cx)).await?)
        .into_iter()
        .collect();
    let mut req = list_req(&cx);
    req.max_entries = 1;
    let paged = ids(&list_all(&cx, req).await?);
    let set: HashSet<_> = paged.iter().cloned().collect();
    ensure!(
        set.len() == paged.len(),
        "ListSnapshots with max_entries 1 listed a snapshot twice"
    );
    ensure!(
        set == all,
        "ListSnapshots with max_entries 1 lists {} snapshots, without it {}",
        set.len(),
        all.len()
    );
    Ok(())
}

async fn delete_no_id(cx: Ctx) -> Outcome {
    need_delete(&cx)?;
    expect_code(
        "DeleteSnapshot without snapshot_id",
        cx.ctrl().delete_snapshot(cx.delete_snapshot_req("")).await,
        &[Code::InvalidArgument],
    )
}

async fn delete_unknown(cx: Ctx) -> Outcome {
    need_delete(&cx)?;
    ok(
        "DeleteSnapshot of an unknown snapshot_id (must succeed)",
        cx.ctrl()
            .delete_snapshot(cx.delete_snapshot_req("reallyfakesnapshotid"))
            .await,
    )
    .map(drop)
}

async fn delete_works(cx: Ctx) -> Outcome {
    need_delete(&cx)?;
    // As csi-sanity: the snapshot is deleted by the cleanup, which must succeed.
    let v = cx.sanity_volume("DeleteSnapshot-volume-1").await?;
    cx.must_snapshot(cx.snapshot_req(&unique("DeleteSnapshot-snapshot-1"), &v.volume_id))
        .await
        .map(drop)
}

async fn delete_repeats(cx: Ctx) -> Outcome {
    need_snap(&cx)?;
    let (_, s) = volume_and_snapshot(&cx).await?;
    for _ in 0..cx.s.idempotent_count {
        cx.delete_snapshot(&s.snapshot_id).await?;
    }
    if cx.has_ctrl(T::GetSnapshot)? {
        expect_code(
            "GetSnapshot of a deleted snapshot",
            cx.ctrl().get_snapshot(get_req(&cx, &s.snapshot_id)).await,
            &[Code::NotFound],
        )?;
    }
    Ok(())
}

/// Tracks the snapshot of an answer, as csi-sanity's wrapper registers every
/// snapshot CreateSnapshot returns with an ID.
fn track_snapshot<T>(cx: &Ctx, r: &Result<tonic::Response<CreateSnapshotResponse>, T>) {
    if let Ok(r) = r
        && let Some(s) = &r.get_ref().snapshot
        && !s.snapshot_id.is_empty()
    {
        cx.track(Resource::Snapshot(s.snapshot_id.clone()));
    }
}

async fn create_no_name(cx: Ctx) -> Outcome {
    need_snap(&cx)?;
    let req = CreateSnapshotRequest {
        source_volume_id: "testId".to_owned(),
        secrets: cx.secrets("CreateSnapshotSecret"),
        ..Default::default()
    };
    let r = cx.ctrl().create_snapshot(req).await;
    track_snapshot(&cx, &r);
    expect_code("CreateSnapshot without name", r, &[Code::InvalidArgument])
}

async fn create_no_source(cx: Ctx) -> Outcome {
    need_snap(&cx)?;
    let req = CreateSnapshotRequest {
        name: "name".to_owned(),
        secrets: cx.secrets("CreateSnapshotSecret"),
        ..Default::default()
    };
    let r = cx.ctrl().create_snapshot(req).await;
    track_snapshot(&cx, &r);
    expect_code(
        "CreateSnapshot without source_volume_id",
        r,
        &[Code::InvalidArgument],
    )
}

async fn create_same_name(cx: Ctx) -> Outcome {
    need_snap(&cx)?;
    let v = cx.sanity_volume("CreateSnapshot-volume-1").await?;
    let req = cx.snapshot_req(&unique("CreateSnapshot-snapshot-1"), &v.volume_id);
    cx.must_snapshot(req.clone()).await?;
    cx.must_snapshot(req).await.map(drop)
}

async fn create_repeats(cx: Ctx) -> Outcome {
    need_snap(&cx)?;
    let v = cx.create_volume().await?;
    let req = cx.snapshot_req(&unique("conformance-snap"), &v.volume_id);
    let a = cx.snapshot(req.clone()).await?;
    for _ in 0..cx.s.idempotent_count {
        let b = cx.snapshot(req.clone()).await?;
        ensure!(
            a.snapshot_id == b.snapshot_id,
            "CreateSnapshot repeated returned another snapshot: {} then {}",
            a.snapshot_id,
            b.snapshot_id
        );
    }
    Ok(())
}

async fn create_same_name_other_source(cx: Ctx) -> Outcome {
    need_snap(&cx)?;
    let name = unique("CreateSnapshot-snapshot-2");
    let v1 = cx.sanity_volume("CreateSnapshot-volume-2").await?;
    cx.must_snapshot(cx.snapshot_req(&name, &v1.volume_id))
        .await?;
    let v2 = cx.sanity_volume("CreateSnapshot-volume-3").await?;
    let r = cx
        .ctrl()
        .create_snapshot(cx.snapshot_req(&name, &v2.volume_id))
        .await;
    track_snapshot(&cx, &r);
    expect_code(
        "CreateSnapshot with an existing name and another source volume",
        r,
        &[Code::AlreadyExists],
    )
}

async fn create_max_name(cx: Ctx) -> Outcome {
    need_snap(&cx)?;
    let v = cx
        .sanity_volume("CreateSnapshot-volume-maxlen-name")
        .await?;
    // csi-sanity's maximum length, 128 characters.
    let mut name = unique("CreateSnapshot-snapshot-maxlen");
    while name.len() < 128 {
        name.push('a');
    }
    let req = cx.snapshot_req(&name, &v.volume_id);
    cx.must_snapshot(req.clone()).await?;
    cx.must_snapshot(req).await.map(drop)
}

async fn create_with_topology(cx: Ctx) -> Outcome {
    need_snap(&cx)?;
    // As csi-sanity: the plugin capability as the controller's Identity reports it.
    if !cx.has_plugin_ctrl(plugin_capability::service::Type::SnapshotAccessibilityConstraints)? {
        return Err(skip("SNAPSHOT_ACCESSIBILITY_CONSTRAINTS not supported"));
    }
    let Some(topo) = cx.node_info()?.accessible_topology else {
        return Err(skip("node does not report accessible topology"));
    };
    let mut vreq = cx.sanity_volume_req(&unique("CreateSnapshot-topology-volume"));
    vreq.accessibility_requirements = Some(TopologyRequirement {
        requisite: vec![topo.clone()],
        preferred: Vec::new(),
    });
    let v = cx.create(vreq).await?;
    let mut req = cx.snapshot_req(&unique("CreateSnapshot-topology-snapshot"), &v.volume_id);
    req.accessibility_requirements = Some(TopologyRequirement {
        requisite: vec![topo.clone()],
        preferred: vec![topo.clone()],
    });
    let s = cx.must_snapshot(req).await?;
    // accessible_topology is optional; what is reported must be the requisite one.
    for t in &s.accessible_topology {
        ensure!(
            *t == topo,
            "CreateSnapshot constrained to {:?} reports accessible topology {:?}",
            topo.segments,
            t.segments
        );
    }
    Ok(())
}

async fn create_concurrent(cx: Ctx) -> Outcome {
    need_snap(&cx)?;
    let v = cx.create_volume().await?;
    let req = cx.snapshot_req(&unique("conformance-snap-race"), &v.volume_id);
    let client = cx.ctrl();
    let results = concurrently(cx.s.concurrency, |_| {
        let mut c = client.clone();
        let req = req.clone();
        async move { c.create_snapshot(req).await.map(|r| r.into_inner()) }
    })
    .await;
    let mut got = HashSet::new();
    let mut errors = Vec::new();
    for r in &results {
        match r {
            Ok(s) => {
                if let Some(s) = &s.snapshot {
                    got.insert(s.snapshot_id.clone());
                }
            }
            Err(s) if s.code() == Code::Aborted => {}
            Err(s) => errors.push(describe(s)),
        }
    }
    for id in &got {
        cx.track(Resource::Snapshot(id.clone()));
    }
    ensure!(
        errors.is_empty(),
        "{} concurrent CreateSnapshot calls with one name: errors other than Aborted: {errors:?}",
        cx.s.concurrency
    );
    ensure!(
        got.len() <= 1,
        "{} concurrent CreateSnapshot calls with one name returned {} snapshots: {got:?}",
        cx.s.concurrency,
        got.len()
    );
    let s = cx.snapshot(req).await?;
    ensure!(
        got.is_empty() || got.contains(&s.snapshot_id),
        "after the race, CreateSnapshot returns {} but the racing calls returned {got:?}",
        s.snapshot_id
    );
    if cx.has_ctrl(T::ListSnapshots)? {
        let mut lr = list_req(&cx);
        lr.source_volume_id = v.volume_id.clone();
        let listed = list_all(&cx, lr).await?;
        ensure!(
            listed.len() == 1,
            "after concurrent CreateSnapshot calls with one name, the volume has {} snapshots",
            listed.len()
        );
    }
    Ok(())
}
