//! Snapshots: subvolume snapshots named as Manila's CephFS driver names them, with the
//! `creating` → `available` and `deleting` → gone transitions.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::share::{self, links, opt_string};
use crate::state::{AppState, Db, ShareStatus, Snapshot, SnapshotStatus, usage};
use crate::time::Timestamp;
use crate::wire::{Ctx, accepted, body_object, paging, parse_metadata, reply};

fn view(ctx: &Ctx, s: &Snapshot) -> Value {
    let mut o = json!({
        "id": s.id,
        "share_id": s.share_id,
        "share_size": s.size,
        "created_at": s.created_at.manila(),
        "status": s.status.as_str(),
        "name": s.name,
        "description": s.description,
        "size": s.size,
        "share_proto": s.share_proto,
        "links": links(ctx, &s.project_id, "snapshots", &s.id),
    });
    if ctx.at_least(12) && ctx.is_admin() {
        o["provider_location"] = json!(s.ceph_name);
    }
    if ctx.at_least(17) {
        o["user_id"] = json!(s.user_id);
        o["project_id"] = json!(s.project_id);
    }
    if ctx.at_least(73) {
        o["metadata"] = json!(s.metadata);
    }
    o
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Snapshot {} could not be found.",
        id.chars().take(64).collect::<String>()
    ))
}

fn get<'a>(ctx: &Ctx, db: &'a Db, id: &str) -> ApiResult<&'a Snapshot> {
    match db.snapshots.get(id) {
        Some(s) if ctx.is_admin() || s.project_id == ctx.project_id() => Ok(s),
        _ => Err(not_found(id)),
    }
}

/// `GET /snapshots` and `/snapshots/detail`.
pub fn list(ctx: &Ctx, detail: bool) -> ApiResult<Response> {
    let (offset, limit) = paging(ctx)?;
    let db = ctx.state.db();
    let all = ctx.all_tenants();
    let mut snaps: Vec<&Snapshot> = db
        .snapshots
        .values()
        .filter(|s| all || s.project_id == ctx.project_id())
        .filter(|s| ctx.q("name").is_none_or(|n| s.name.as_deref() == Some(n)))
        .filter(|s| {
            ctx.q("name~")
                .is_none_or(|n| s.name.as_deref().is_some_and(|x| x.contains(n)))
        })
        .filter(|s| ctx.q("share_id").is_none_or(|x| x == s.share_id))
        .filter(|s| ctx.q("status").is_none_or(|x| x == s.status.as_str()))
        .filter(|s| !all || ctx.q("project_id").is_none_or(|p| p == s.project_id))
        .collect();
    snaps.sort_by_key(|s| std::cmp::Reverse(s.seq));
    if ctx.q("sort_dir") == Some("asc") {
        snaps.reverse();
    }
    let items: Vec<Value> = snaps
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .map(|s| {
            if detail {
                view(ctx, s)
            } else {
                json!({"id": s.id, "name": s.name, "links": links(ctx, &s.project_id, "snapshots", &s.id)})
            }
        })
        .collect();
    reply(StatusCode::OK, json!({"snapshots": items}))
}

/// `POST /snapshots`: 202 with the snapshot in `creating`.
pub fn create(ctx: &Ctx, body: &Value) -> ApiResult<Response> {
    let m = body_object(body, "snapshot")?;
    let share_id = m
        .get("share_id")
        .and_then(Value::as_str)
        .ok_or_else(ApiError::unprocessable)?;
    let name = opt_string(m, &["name", "display_name"])?;
    let description = opt_string(m, &["description", "display_description"])?;
    let metadata = if ctx.at_least(73) {
        parse_metadata(m.get("metadata"))?
    } else {
        Default::default()
    };
    let state = ctx.state.clone();
    let mut db = state.db();
    let (project, size, proto) = {
        let s = share::get_mut(ctx, &mut db, share_id)?;
        if s.status != ShareStatus::Available {
            return Err(ApiError::bad_request(format!(
                "Invalid share: Source share status must be available, but is {}.",
                s.status.as_str()
            )));
        }
        (s.project_id.clone(), s.size, s.share_proto.clone())
    };
    let q = state.quotas(&db, &project);
    let (_, _, n, gb) = usage(&db, &project);
    if q.snapshots >= 0 && n + 1 > q.snapshots {
        return Err(ApiError::over_limit(format!(
            "Maximum number of snapshots allowed ({}) exceeded.",
            q.snapshots
        )));
    }
    if q.snapshot_gigabytes >= 0 && gb + size as i64 > q.snapshot_gigabytes {
        return Err(ApiError::over_limit(format!(
            "Requested snapshot exceeds allowed project/user or share type snapshot gigabytes quota. \
             (requested {size}G, {gb}G of {}G already consumed)",
            q.snapshot_gigabytes
        )));
    }
    let id = state.new_uuid();
    let instance = state.new_uuid();
    let snap = Snapshot {
        id: id.clone(),
        seq: db.seq(),
        share_id: share_id.to_owned(),
        name,
        description,
        size,
        share_proto: proto,
        status: SnapshotStatus::Creating,
        project_id: project,
        user_id: ctx.token.user_id.clone(),
        created_at: Timestamp::now(),
        updated_at: None,
        metadata,
        // Manila's CephFS driver: "<snapshot id>_<snapshot instance id>".
        ceph_name: format!("{id}_{instance}"),
    };
    let v = view(ctx, &snap);
    db.snapshots.insert(id.clone(), snap);
    drop(db);
    tokio::spawn(take(state, id));
    reply(StatusCode::ACCEPTED, json!({"snapshot": v}))
}

async fn take(state: AppState, id: String) {
    crate::state::pause(state.config().delays.snapshot).await;
    let Some(snap) = state.db().snapshots.get(&id).cloned() else {
        return;
    };
    let result = state
        .ceph()
        .create_snapshot(&snap.share_id, &snap.ceph_name)
        .await;
    state
        .metrics()
        .transition("snapshot_create", result.is_ok());
    let mut db = state.db();
    let Some(s) = db.snapshots.get_mut(&id) else {
        return;
    };
    s.updated_at = Some(Timestamp::now());
    match result {
        Ok(()) => s.status = SnapshotStatus::Available,
        Err(e) => {
            tracing::warn!(snapshot_id = %id, error = %e, "snapshot creation failed");
            s.status = SnapshotStatus::Error;
        }
    }
}

/// `GET /snapshots/{id}`.
pub fn show(ctx: &Ctx, id: &str) -> ApiResult<Response> {
    let db = ctx.state.db();
    let s = get(ctx, &db, id)?;
    reply(StatusCode::OK, json!({"snapshot": view(ctx, s)}))
}

/// `PUT /snapshots/{id}`: name and description.
pub fn update(ctx: &Ctx, id: &str, body: &Value) -> ApiResult<Response> {
    let m = body_object(body, "snapshot")?;
    let name = opt_string(m, &["display_name", "name"])?;
    let description = opt_string(m, &["display_description", "description"])?;
    let mut db = ctx.state.db();
    get(ctx, &db, id)?;
    let s = db.snapshots.get_mut(id).ok_or_else(|| not_found(id))?;
    if m.contains_key("display_name") || m.contains_key("name") {
        s.name = name;
    }
    if m.contains_key("display_description") || m.contains_key("description") {
        s.description = description;
    }
    s.updated_at = Some(Timestamp::now());
    let s = s.clone();
    reply(StatusCode::OK, json!({"snapshot": view(ctx, &s)}))
}

/// `DELETE /snapshots/{id}`: only from `available` or `error`.
pub fn delete(ctx: &Ctx, id: &str) -> ApiResult<Response> {
    let state = ctx.state.clone();
    let mut db = state.db();
    get(ctx, &db, id)?;
    let s = db.snapshots.get_mut(id).ok_or_else(|| not_found(id))?;
    if !matches!(s.status, SnapshotStatus::Available | SnapshotStatus::Error) {
        return Err(ApiError::bad_request(format!(
            "Invalid snapshot: Share Snapshot status must be one of ('available', 'error'). (current: {})",
            s.status.as_str()
        )));
    }
    s.status = SnapshotStatus::Deleting;
    s.updated_at = Some(Timestamp::now());
    drop(db);
    tokio::spawn(remove(state, id.to_owned()));
    accepted()
}

async fn remove(state: AppState, id: String) {
    crate::state::pause(state.config().delays.snapshot).await;
    let Some(snap) = state.db().snapshots.get(&id).cloned() else {
        return;
    };
    let result = state
        .ceph()
        .remove_snapshot(&snap.share_id, &snap.ceph_name)
        .await;
    state
        .metrics()
        .transition("snapshot_delete", result.is_ok());
    let mut db = state.db();
    match result {
        Ok(()) => {
            db.snapshots.remove(&id);
        }
        Err(e) => {
            tracing::warn!(snapshot_id = %id, error = %e, "snapshot deletion failed");
            if let Some(s) = db.snapshots.get_mut(&id) {
                s.status = SnapshotStatus::ErrorDeleting;
                s.updated_at = Some(Timestamp::now());
            }
        }
    }
}

/// `GET /snapshots/{id}/export-locations` (≥ 2.32): CephFS snapshots are not mountable
/// (`mount_snapshot_support` is false), so the list is empty.
pub fn export_locations(ctx: &Ctx, id: &str) -> ApiResult<Response> {
    let db = ctx.state.db();
    get(ctx, &db, id)?;
    reply(
        StatusCode::OK,
        json!({"share_snapshot_export_locations": []}),
    )
}

/// `GET /snapshots/{id}/export-locations/{el}` (≥ 2.32): none exist.
pub fn export_location(ctx: &Ctx, id: &str, el: &str) -> ApiResult<Response> {
    let db = ctx.state.db();
    get(ctx, &db, id)?;
    Err(ApiError::not_found(format!(
        "Export location {} not found.",
        el.chars().take(64).collect::<String>()
    )))
}
