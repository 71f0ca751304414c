//! The smaller resources: share types, quota sets, limits, availability zones and user
//! messages.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::config::Quotas;
use crate::error::{ApiError, ApiResult};
use crate::message::{self, Action, Detail};
use crate::state::{AppState, Db, Message, usage};
use crate::time::Timestamp;
use crate::wire::{Ctx, accepted, body_object, json_body, paging, reply};

/// The one availability zone.
pub const DEFAULT_AZ: &str = "nova";

fn extra_specs() -> Value {
    json!({
        "driver_handles_share_servers": "False",
        "snapshot_support": "True",
        "create_share_from_snapshot_support": "True",
        "revert_to_snapshot_support": "False",
        "mount_snapshot_support": "False",
        "share_backend_name": "CEPHFS",
    })
}

fn type_view(ctx: &Ctx) -> Value {
    let mut o = json!({
        "id": ctx.state.default_type_id(),
        "name": ctx.state.config().share_type_name,
        "extra_specs": extra_specs(),
        "required_extra_specs": {"driver_handles_share_servers": "False"},
    });
    let key = if ctx.at_least(7) {
        "share_type_access:is_public"
    } else {
        "os-share-type-access:is_public"
    };
    o[key] = json!(true);
    if ctx.at_least(41) {
        o["description"] = json!("CephFS native shares on fake-ceph");
    }
    if ctx.at_least(46) {
        o["is_default"] = json!(true);
    }
    o
}

/// `GET /types`: both `share_types` and `volume_types`, as Manila answers.
pub fn types(ctx: &Ctx) -> ApiResult<Response> {
    let v = type_view(ctx);
    reply(
        StatusCode::OK,
        json!({"share_types": [v.clone()], "volume_types": [v]}),
    )
}

/// `GET /types/{id}` (`default`, the ID or the name).
pub fn type_show(ctx: &Ctx, id: &str) -> ApiResult<Response> {
    if !ctx.state.is_share_type(id) && id != "default" {
        return Err(ApiError::not_found(format!(
            "Share type with ID {} could not be found.",
            id.chars().take(64).collect::<String>()
        )));
    }
    let v = type_view(ctx);
    reply(
        StatusCode::OK,
        json!({"share_type": v.clone(), "volume_type": v}),
    )
}

/// `GET /types/{id}/extra_specs`.
pub fn type_extra_specs(ctx: &Ctx, id: &str) -> ApiResult<Response> {
    if !ctx.state.is_share_type(id) && id != "default" {
        return Err(ApiError::not_found(format!(
            "Share type with ID {} could not be found.",
            id.chars().take(64).collect::<String>()
        )));
    }
    reply(StatusCode::OK, json!({"extra_specs": extra_specs()}))
}

/// Quota names shown at a version.
fn quota_shown(ctx: &Ctx, name: &str) -> bool {
    match name {
        "share_groups" | "share_group_snapshots" => ctx.at_least(40),
        "share_replicas" | "replica_gigabytes" => ctx.at_least(53),
        "per_share_gigabytes" => ctx.at_least(62),
        "backups" | "backup_gigabytes" => ctx.at_least(80),
        _ => true,
    }
}

fn in_use(db: &Db, project: &str, name: &str) -> i64 {
    let (n, gb, sn, sgb) = usage(db, project);
    match name {
        "shares" => n,
        "gigabytes" => gb,
        "snapshots" => sn,
        "snapshot_gigabytes" => sgb,
        _ => 0,
    }
}

fn quota_set(ctx: &Ctx, db: &Db, project: &str, q: &Quotas, detail: bool) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(project));
    for (name, limit) in q.entries() {
        if !quota_shown(ctx, name) {
            continue;
        }
        let v = if detail {
            json!({"limit": limit, "in_use": in_use(db, project, name), "reserved": 0})
        } else {
            json!(limit)
        };
        o.insert(name.into(), v);
    }
    json!({"quota_set": o})
}

/// `/quota-sets/{project}[/defaults|/detail]` (`/os-quota-sets` before 2.7): show
/// (own project, or any for an admin), update and reset (admin).
pub fn quota(
    ctx: &Ctx,
    method: &Method,
    rest: &[&str],
    body: Option<&[u8]>,
) -> ApiResult<Response> {
    let (project, tail) = match rest {
        [p] => (*p, None),
        [p, t] => (*p, Some(*t)),
        _ => return Err(ApiError::no_resource()),
    };
    let identity = ctx.state.identity();
    // Clients may name the project; Manila takes what it is given, the fake resolves
    // a name to its ID so the answer is the same.
    let project_id = identity
        .project(project)
        .or_else(|| identity.project_by_name(project))
        .map_or_else(|| project.to_owned(), |p| p.id.clone());
    if !ctx.is_admin() && project_id != ctx.project_id() {
        return Err(ApiError::forbidden(
            "Policy doesn't allow quota_set:show to be performed.",
        ));
    }
    match (method.clone(), tail) {
        (Method::GET, None) => {
            let db = ctx.state.db();
            let q = ctx.state.quotas(&db, &project_id);
            reply(StatusCode::OK, quota_set(ctx, &db, &project_id, &q, false))
        }
        (Method::GET, Some("detail")) if ctx.at_least(25) => {
            let db = ctx.state.db();
            let q = ctx.state.quotas(&db, &project_id);
            reply(StatusCode::OK, quota_set(ctx, &db, &project_id, &q, true))
        }
        (Method::GET, Some("defaults")) => {
            let db = ctx.state.db();
            let q = ctx.state.config().quotas;
            let mut v = quota_set(ctx, &db, &project_id, &q, false);
            v["quota_set"]["id"] = json!(project_id);
            reply(StatusCode::OK, v)
        }
        (Method::PUT, None) => {
            if !ctx.is_admin() {
                return Err(ApiError::forbidden(
                    "Policy doesn't allow quota_set:update to be performed.",
                ));
            }
            let body = json_body(body)?;
            let m = body_object(&body, "quota_set")?;
            let mut db = ctx.state.db();
            let mut q = ctx.state.quotas(&db, &project_id);
            for (k, v) in m {
                if matches!(k.as_str(), "force" | "tenant_id" | "share_type" | "user_id") {
                    continue;
                }
                let n = match v {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                }
                .filter(|n| *n >= -1)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("Quota '{k}' must be an integer of -1 or more."))
                })?;
                if !q.set(k, n) {
                    return Err(ApiError::bad_request(format!(
                        "Bad key(s) in quota set: {}",
                        k.chars().take(64).collect::<String>()
                    )));
                }
            }
            db.quotas.insert(project_id.clone(), q);
            reply(StatusCode::OK, quota_set(ctx, &db, &project_id, &q, false))
        }
        (Method::DELETE, None) => {
            if !ctx.is_admin() {
                return Err(ApiError::forbidden(
                    "Policy doesn't allow quota_set:delete to be performed.",
                ));
            }
            ctx.state.db().quotas.remove(&project_id);
            accepted()
        }
        _ => Err(ApiError::no_resource()),
    }
}

/// `GET /limits`: absolute limits and what the project uses.
pub fn limits(ctx: &Ctx) -> ApiResult<Response> {
    let db = ctx.state.db();
    let project = ctx.project_id();
    let q = ctx.state.quotas(&db, project);
    let (n, gb, sn, sgb) = usage(&db, project);
    let mut abs = json!({
        "maxTotalShares": q.shares,
        "maxTotalShareGigabytes": q.gigabytes,
        "maxTotalShareSnapshots": q.snapshots,
        "maxTotalSnapshotGigabytes": q.snapshot_gigabytes,
        "maxTotalShareNetworks": q.share_networks,
        "totalSharesUsed": n,
        "totalShareGigabytesUsed": gb,
        "totalShareSnapshotsUsed": sn,
        "totalSnapshotGigabytesUsed": sgb,
        "totalShareNetworksUsed": 0,
    });
    if ctx.at_least(53) {
        abs["maxTotalShareReplicas"] = json!(q.share_replicas);
        abs["maxTotalReplicaGigabytes"] = json!(q.replica_gigabytes);
        abs["totalShareReplicasUsed"] = json!(0);
        abs["totalReplicaGigabytesUsed"] = json!(0);
    }
    if ctx.at_least(58) {
        abs["maxTotalShareGroups"] = json!(q.share_groups);
        abs["maxTotalShareGroupSnapshots"] = json!(q.share_group_snapshots);
        abs["totalShareGroupsUsed"] = json!(0);
        abs["totalShareGroupSnapshotsUsed"] = json!(0);
    }
    if ctx.at_least(80) {
        abs["maxTotalShareBackups"] = json!(q.backups);
        abs["maxTotalBackupGigabytes"] = json!(q.backup_gigabytes);
        abs["totalShareBackupsUsed"] = json!(0);
        abs["totalBackupGigabytesUsed"] = json!(0);
    }
    reply(
        StatusCode::OK,
        json!({"limits": {"rate": [], "absolute": abs}}),
    )
}

/// `GET /availability-zones` (`/os-availability-zone` before 2.7).
pub fn availability_zones(_ctx: &Ctx) -> ApiResult<Response> {
    reply(
        StatusCode::OK,
        json!({"availability_zones": [{
            "id": "0b6f5f5e-3c8a-4f6e-9d2b-6a9e3b1c7d10",
            "name": DEFAULT_AZ,
            "created_at": "2015-09-18T10:25:24.000000",
            "updated_at": null,
        }]}),
    )
}

/// Records a user message about a share (what Manila's `message_api.create` leaves for
/// users); its text follows from the two codes.
pub fn add_message(
    state: &AppState,
    db: &mut Db,
    project: &str,
    action: Action,
    detail: Detail,
    share_id: &str,
) {
    let id = state.new_uuid();
    let request_id = format!("req-{}", state.new_uuid());
    let now = Timestamp::now();
    let seq = db.seq();
    db.messages.insert(
        id.clone(),
        Message {
            id,
            seq,
            project_id: project.to_owned(),
            action,
            detail,
            resource_type: "SHARE",
            resource_id: share_id.to_owned(),
            request_id,
            created_at: now,
            // Manila's `message_ttl` default: 30 days.
            expires_at: now.plus(std::time::Duration::from_secs(30 * 86_400)),
        },
    );
}

fn message_view(m: &Message) -> Value {
    json!({
        "id": m.id,
        "project_id": m.project_id,
        "action_id": m.action.id(),
        "detail_id": m.detail.id(),
        "message_level": "ERROR",
        "request_id": m.request_id,
        "resource_id": m.resource_id,
        "resource_type": m.resource_type,
        "user_message": message::user_message(m.action, m.detail),
        "created_at": m.created_at.manila(),
        "expires_at": m.expires_at.manila(),
        "links": [],
    })
}

/// `GET /messages` (≥ 2.37): filters `resource_id`, `resource_type`, `action_id`,
/// `detail_id`, `message_level`; `sort_dir`; `limit`/`offset`.
pub fn messages(ctx: &Ctx) -> ApiResult<Response> {
    let (offset, limit) = paging(ctx)?;
    let db = ctx.state.db();
    let all = ctx.all_tenants();
    let mut list: Vec<&Message> = db
        .messages
        .values()
        .filter(|m| all || m.project_id == ctx.project_id())
        .filter(|m| ctx.q("resource_id").is_none_or(|x| x == m.resource_id))
        .filter(|m| ctx.q("resource_type").is_none_or(|x| x == m.resource_type))
        .filter(|m| ctx.q("action_id").is_none_or(|x| x == m.action.id()))
        .filter(|m| ctx.q("detail_id").is_none_or(|x| x == m.detail.id()))
        .filter(|_| {
            ctx.q("message_level")
                .is_none_or(|x| x.eq_ignore_ascii_case("ERROR"))
        })
        .collect();
    list.sort_by_key(|m| std::cmp::Reverse(m.seq));
    if ctx.q("sort_dir") == Some("asc") {
        list.reverse();
    }
    let items: Vec<Value> = list
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .map(message_view)
        .collect();
    reply(StatusCode::OK, json!({"messages": items}))
}

fn message_get<'a>(ctx: &Ctx, db: &'a Db, id: &str) -> ApiResult<&'a Message> {
    db.messages
        .get(id)
        .filter(|m| ctx.is_admin() || m.project_id == ctx.project_id())
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Message {} not found.",
                id.chars().take(64).collect::<String>()
            ))
        })
}

/// `GET /messages/{id}`.
pub fn message_show(ctx: &Ctx, id: &str) -> ApiResult<Response> {
    let db = ctx.state.db();
    let m = message_get(ctx, &db, id)?;
    reply(StatusCode::OK, json!({"message": message_view(m)}))
}

/// `DELETE /messages/{id}`: 204.
pub fn message_delete(ctx: &Ctx, id: &str) -> ApiResult<Response> {
    let mut db = ctx.state.db();
    message_get(ctx, &db, id)?;
    db.messages.remove(id);
    Ok(axum::response::IntoResponse::into_response(
        StatusCode::NO_CONTENT,
    ))
}
