//! Shares: the API (list, create, show, update, delete, actions, export locations,
//! metadata), the share view at each microversion, and the asynchronous transitions
//! that do the Ceph work (create, create from snapshot, extend, shrink, delete).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::access_rule;
use crate::ceph::{CloneState, EINVAL};
use crate::error::{ApiError, ApiResult};
use crate::message::{Action, Detail};
use crate::resources::{self, DEFAULT_AZ};
use crate::state::{
    AppState, Db, ExportLocation, RuleState, Share, ShareStatus, SnapshotStatus, usage,
};
use crate::time::Timestamp;
use crate::wire::{Ctx, accepted, body_object, paging, parse_bool, parse_metadata, reply, truthy};

/// Bytes in a GiB (Manila sizes are GiB; Ceph quotas are bytes).
pub const GIB: u64 = 1 << 30;

/// The host Manila's scheduler would have placed shares on (admin-only field).
const HOST: &str = "fake-manila@cephfs#cephfs";

/// Protocols Manila knows; only CEPHFS has a back end here.
const PROTOCOLS: &[&str] = &["NFS", "CIFS", "GLUSTERFS", "HDFS", "CEPHFS", "MAPRFS"];

/// `self` and `bookmark` links of a resource.
pub fn links(ctx: &Ctx, project_id: &str, kind: &str, id: &str) -> Value {
    let url = ctx.url();
    json!([
        {"href": format!("{url}/v2/{project_id}/{kind}/{id}"), "rel": "self"},
        {"href": format!("{url}/{project_id}/{kind}/{id}"), "rel": "bookmark"},
    ])
}

/// The share's `access_rules_status`: `error` if a rule failed, `syncing` while any rule
/// is on its way, `active` otherwise.
pub fn access_rules_status(db: &Db, share_id: &str) -> &'static str {
    let mut syncing = false;
    for r in db.rules.values().filter(|r| r.share_id == share_id) {
        if r.state == RuleState::Error {
            return "error";
        }
        syncing |= r.state.is_transitional();
    }
    if syncing { "syncing" } else { "active" }
}

/// The detailed share view at the request's version (`manila/api/views/shares.py`).
pub fn share_view(ctx: &Ctx, db: &Db, s: &Share) -> Value {
    let v = ctx.version;
    let mut o = Map::new();
    let mut put = |k: &str, val: Value| {
        o.insert(k.to_owned(), val);
    };
    let status = match s.status {
        // Before 2.54 `creating_from_snapshot` is shown as `creating`.
        ShareStatus::CreatingFromSnapshot if !v.at_least(54) => "creating",
        st => st.as_str(),
    };
    put("id", json!(s.id));
    put("size", json!(s.size));
    put("availability_zone", json!(s.availability_zone));
    put("created_at", json!(s.created_at.manila()));
    put("status", json!(status));
    put("name", json!(s.name));
    put("description", json!(s.description));
    put("project_id", json!(s.project_id));
    put("snapshot_id", json!(s.snapshot_id));
    put("share_network_id", Value::Null);
    put("share_proto", json!(s.share_proto));
    if !v.at_least(9) {
        let paths: Vec<&str> = s.export_locations.iter().map(|e| e.path.as_str()).collect();
        put("export_location", json!(paths.first()));
        put("export_locations", json!(paths));
    }
    put("metadata", json!(s.metadata));
    if v.at_least(6) {
        put("share_type", json!(s.share_type_id));
        put("share_type_name", json!(ctx.state.config().share_type_name));
    } else {
        put("share_type", json!(ctx.state.config().share_type_name));
    }
    put("volume_type", json!(ctx.state.config().share_type_name));
    put("links", links(ctx, &s.project_id, "shares", &s.id));
    put("is_public", json!(s.is_public));
    if ctx.is_admin() {
        put("share_server_id", Value::Null);
        put("host", json!(HOST));
    }
    if v.at_least(2) {
        put("snapshot_support", json!(true));
    }
    if v.at_least(5) {
        put("task_state", Value::Null);
    }
    if v.at_least(10) {
        let ars = match access_rules_status(db, &s.id) {
            "syncing" if !v.at_least(28) => "out_of_sync",
            x => x,
        };
        put("access_rules_status", json!(ars));
    }
    if v.at_least(11) {
        put("replication_type", Value::Null);
        put("has_replicas", json!(false));
    }
    if v.at_least(16) {
        put("user_id", json!(s.user_id));
    }
    if v.at_least(24) {
        put("create_share_from_snapshot_support", json!(true));
    }
    if v.at_least(27) {
        put("revert_to_snapshot_support", json!(false));
    }
    if v.at_least(31) {
        put("share_group_id", Value::Null);
        put("source_share_group_snapshot_member_id", Value::Null);
    }
    if v.at_least(32) {
        put("mount_snapshot_support", json!(false));
    }
    if v.at_least(54) {
        let progress = match s.status {
            ShareStatus::Creating | ShareStatus::CreatingFromSnapshot => json!("0%"),
            ShareStatus::Error => Value::Null,
            _ => json!("100%"),
        };
        put("progress", progress);
    }
    if v.at_least(69) {
        put("is_soft_deleted", json!(false));
        put("scheduled_to_be_deleted_at", Value::Null);
    }
    if v.at_least(80) {
        put("source_backup_id", Value::Null);
    }
    if v.at_least(90) {
        put("encryption_key_ref", Value::Null);
    }
    if v.at_least(99) {
        put("snapshot_inherit_share_access_support", json!(false));
    }
    Value::Object(o)
}

fn summary_view(ctx: &Ctx, s: &Share) -> Value {
    json!({"id": s.id, "name": s.name, "links": links(ctx, &s.project_id, "shares", &s.id)})
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Share {} could not be found.",
        id.chars().take(64).collect::<String>()
    ))
}

/// A share the caller may see (its project's, a public one, or any for an admin).
pub fn get<'a>(ctx: &Ctx, db: &'a Db, id: &str) -> ApiResult<&'a Share> {
    match db.shares.get(id) {
        Some(s) if ctx.is_admin() || s.project_id == ctx.project_id() || s.is_public => Ok(s),
        _ => Err(not_found(id)),
    }
}

/// A share the caller may change: 404 if it cannot see it, 403 if it only can see it.
pub fn get_mut<'a>(ctx: &Ctx, db: &'a mut Db, id: &str) -> ApiResult<&'a mut Share> {
    let s = db.shares.get_mut(id).ok_or_else(|| not_found(id))?;
    if ctx.is_admin() || s.project_id == ctx.project_id() {
        return Ok(s);
    }
    if s.is_public {
        return Err(ApiError::forbidden(
            "Policy doesn't allow this operation to be performed.",
        ));
    }
    Err(not_found(id))
}

/// `GET /shares` and `/shares/detail`.
pub fn list(ctx: &Ctx, detail: bool) -> ApiResult<Response> {
    let (offset, limit) = paging(ctx)?;
    let sort_dir = ctx.q("sort_dir").unwrap_or("desc");
    if !matches!(sort_dir, "asc" | "desc") {
        return Err(ApiError::bad_request(format!(
            "Invalid sort_dir: {}",
            sort_dir.chars().take(32).collect::<String>()
        )));
    }
    let sort_key = ctx.q("sort_key").unwrap_or("created_at");
    let db = ctx.state.db();
    // ≥ 2.69 `is_soft_deleted=True` lists only soft-deleted shares; none are modelled.
    if ctx.at_least(69) && ctx.q("is_soft_deleted").is_some_and(truthy) {
        return list_reply(ctx, &db, Vec::new(), detail, 0);
    }
    let all = ctx.all_tenants();
    let public = ctx
        .q("is_public")
        .is_some_and(|v| truthy(v) || v.eq_ignore_ascii_case("all"));
    let metadata_filter = ctx.q("metadata").and_then(parse_dict_filter);
    let mut shares: Vec<&Share> = db
        .shares
        .values()
        .filter(|s| all || s.project_id == ctx.project_id() || (public && s.is_public))
        .filter(|s| !all || ctx.q("project_id").is_none_or(|p| p == s.project_id))
        .filter(|s| ctx.q("name").is_none_or(|n| s.name.as_deref() == Some(n)))
        .filter(|s| {
            !ctx.at_least(36)
                || ctx
                    .q("name~")
                    .is_none_or(|n| s.name.as_deref().is_some_and(|x| x.contains(n)))
        })
        .filter(|s| {
            ctx.q("description")
                .is_none_or(|n| s.description.as_deref() == Some(n))
        })
        .filter(|s| ctx.q("status").is_none_or(|st| st == s.status.as_str()))
        .filter(|s| {
            ctx.q("snapshot_id")
                .is_none_or(|x| s.snapshot_id.as_deref() == Some(x))
        })
        // There is one share type: a filter naming another matches nothing.
        .filter(|_| {
            ctx.q("share_type_id")
                .or(ctx.q("share_type"))
                .is_none_or(|t| ctx.state.is_share_type(t))
        })
        .filter(|s| {
            ctx.q("availability_zone")
                .is_none_or(|z| z == s.availability_zone)
        })
        .filter(|s| {
            !ctx.at_least(35)
                || ctx
                    .q("export_location_path")
                    .is_none_or(|p| s.export_locations.iter().any(|e| e.path == p))
        })
        .filter(|s| {
            !ctx.at_least(35)
                || ctx
                    .q("export_location_id")
                    .is_none_or(|p| s.export_locations.iter().any(|e| e.id == p))
        })
        .filter(|s| {
            metadata_filter
                .as_ref()
                .is_none_or(|m| m.iter().all(|(k, v)| s.metadata.get(k) == Some(v)))
        })
        .collect();
    sort(&mut shares, sort_key, sort_dir)?;
    if let Some(marker) = ctx.q("marker") {
        let pos = shares.iter().position(|s| s.id == marker).ok_or_else(|| {
            ApiError::bad_request(format!(
                "marker [{}] not found",
                marker.chars().take(64).collect::<String>()
            ))
        })?;
        shares.drain(..=pos);
    }
    let total = shares.len();
    let page: Vec<&Share> = shares
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    let more = limit.is_some_and(|l| page.len() == l && offset + l < total);
    let mut body = list_body(ctx, &db, &page, detail, total);
    if more && let Some(last) = page.last() {
        let kind = if detail { "shares/detail" } else { "shares" };
        let l = limit.unwrap_or(0);
        body["shares_links"] = json!([{
            "href": format!("{}/v2/{}/{kind}?limit={l}&marker={}", ctx.url(), ctx.project_id(), last.id),
            "rel": "next",
        }]);
    }
    reply(StatusCode::OK, body)
}

fn list_body(ctx: &Ctx, db: &Db, page: &[&Share], detail: bool, total: usize) -> Value {
    let items: Vec<Value> = page
        .iter()
        .map(|s| {
            if detail {
                share_view(ctx, db, s)
            } else {
                summary_view(ctx, s)
            }
        })
        .collect();
    let mut body = json!({"shares": items});
    if ctx.at_least(42) && ctx.q("with_count").is_some_and(truthy) {
        body["count"] = json!(total);
    }
    body
}

fn list_reply(
    ctx: &Ctx,
    db: &Db,
    page: Vec<&Share>,
    detail: bool,
    total: usize,
) -> ApiResult<Response> {
    reply(StatusCode::OK, list_body(ctx, db, &page, detail, total))
}

fn sort(shares: &mut [&Share], key: &str, dir: &str) -> ApiResult<()> {
    let cmp = |a: &&Share, b: &&Share| -> std::cmp::Ordering {
        let primary = match key {
            "id" => a.id.cmp(&b.id),
            "name" | "display_name" => a.name.cmp(&b.name),
            "size" => a.size.cmp(&b.size),
            "status" => a.status.as_str().cmp(b.status.as_str()),
            "project_id" => a.project_id.cmp(&b.project_id),
            "share_proto" => a.share_proto.cmp(&b.share_proto),
            _ => a.seq.cmp(&b.seq),
        };
        primary.then(a.seq.cmp(&b.seq))
    };
    if !matches!(
        key,
        "created_at"
            | "id"
            | "name"
            | "display_name"
            | "size"
            | "status"
            | "project_id"
            | "share_proto"
            | "updated_at"
            | "share_type_id"
            | "availability_zone"
            | "host"
            | "snapshot_id"
    ) {
        return Err(ApiError::bad_request(format!(
            "Wrong sort_key filter provided: '{}'.",
            key.chars().take(32).collect::<String>()
        )));
    }
    shares.sort_by(cmp);
    if dir == "desc" {
        shares.reverse();
    }
    Ok(())
}

/// A metadata filter as clients send it (`{'k': 'v'}` or JSON).
fn parse_dict_filter(raw: &str) -> Option<BTreeMap<String, String>> {
    let v: Value = serde_json::from_str(raw)
        .or_else(|_| serde_json::from_str(&raw.replace('\'', "\"")))
        .ok()?;
    let m = v.as_object()?;
    Some(
        m.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
            })
            .collect(),
    )
}

/// An optional string field (null allowed); another type is 400.
pub fn opt_string(m: &Map<String, Value>, keys: &[&str]) -> ApiResult<Option<String>> {
    for k in keys {
        match m.get(*k) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => {
                if s.chars().count() > 255 {
                    return Err(ApiError::bad_request(format!(
                        "{k} has more than 255 characters."
                    )));
                }
                return Ok(Some(s.clone()));
            }
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "{k} is not a string or unicode"
                )));
            }
        }
    }
    Ok(None)
}

/// A positive whole size in GiB (a JSON integer or a string holding one).
pub fn parse_size(v: Option<&Value>, what: &str) -> ApiResult<u64> {
    let n = match v {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n > 0 && n <= (1 << 24) => Ok(n),
        _ => Err(ApiError::bad_request(format!(
            "{what} must be an integer and greater than 0"
        ))),
    }
}

/// What a `POST /shares` body asks for, checked as Manila checks it before it looks at
/// the database.
struct NewShare {
    proto: String,
    name: Option<String>,
    description: Option<String>,
    metadata: BTreeMap<String, String>,
    is_public: bool,
    az: String,
    snapshot_id: Option<String>,
}

/// Reads and checks a `POST /shares` body: protocol, names, metadata, visibility,
/// share type, network and availability zone.
fn new_share(ctx: &Ctx, m: &serde_json::Map<String, Value>) -> ApiResult<NewShare> {
    let proto = m
        .get("share_proto")
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase)
        .ok_or_else(|| ApiError::bad_request("Invalid share protocol provided: None"))?;
    if !PROTOCOLS.contains(&proto.as_str()) {
        return Err(ApiError::bad_request(format!(
            "Invalid share protocol provided: {}",
            proto.chars().take(32).collect::<String>()
        )));
    }
    let name = opt_string(m, &["name", "display_name"])?;
    let description = opt_string(m, &["description", "display_description"])?;
    let metadata = parse_metadata(m.get("metadata"))?;
    let is_public = match m.get("is_public") {
        None | Some(Value::Null) => false,
        Some(v) => {
            parse_bool(v).ok_or_else(|| ApiError::bad_request("Invalid value for is_public"))?
        }
    };
    if m.get("share_type").is_some_and(|v| !v.is_null())
        && m.get("volume_type").is_some_and(|v| !v.is_null())
    {
        return Err(ApiError::bad_request(
            "Cannot specify both share_type and volume_type",
        ));
    }
    let type_ref = opt_string(m, &["share_type", "volume_type"])?;
    if let Some(t) = &type_ref
        && !ctx.state.is_share_type(t)
    {
        return Err(ApiError::not_found("Share type not found."));
    }
    if m.get("share_network_id").is_some_and(|v| !v.is_null()) {
        return Err(ApiError::bad_request(
            "Share network must not be specified for a share type with driver_handles_share_servers=False.",
        ));
    }
    let az = opt_string(m, &["availability_zone"])?.unwrap_or_else(|| DEFAULT_AZ.to_owned());
    if az != DEFAULT_AZ {
        return Err(ApiError::not_found(format!(
            "Availability zone {} could not be found.",
            az.chars().take(64).collect::<String>()
        )));
    }
    let snapshot_id = opt_string(m, &["snapshot_id"])?;
    Ok(NewShare {
        proto,
        name,
        description,
        metadata,
        is_public,
        az,
        snapshot_id,
    })
}

/// The snapshot a new share is made from (its share, Ceph name and size), which must be
/// the caller's, available, and of the same protocol.
fn snapshot_source(
    ctx: &Ctx,
    db: &Db,
    snapshot_id: &Option<String>,
    proto: &str,
) -> ApiResult<Option<(String, String, u64)>> {
    let source = match snapshot_id {
        None => None,
        Some(sid) => {
            let snap = db
                .snapshots
                .get(sid)
                .filter(|s| ctx.is_admin() || s.project_id == ctx.project_id())
                .ok_or_else(|| {
                    ApiError::not_found(format!("Snapshot {sid} could not be found."))
                })?;
            if snap.status != SnapshotStatus::Available {
                return Err(ApiError::bad_request(format!(
                    "Invalid snapshot: Snapshot status must be available, but is {}.",
                    snap.status.as_str()
                )));
            }
            if snap.share_proto != proto {
                return Err(ApiError::bad_request(
                    "Share protocol must match the protocol of the snapshot's share.",
                ));
            }
            Some((snap.share_id.clone(), snap.ceph_name.clone(), snap.size))
        }
    };
    Ok(source)
}

/// The new share's size: as asked, or the snapshot's; never below the snapshot's.
fn new_share_size(
    m: &serde_json::Map<String, Value>,
    source: &Option<(String, String, u64)>,
) -> ApiResult<u64> {
    let size = match (m.get("size"), source) {
        (None | Some(Value::Null), Some((_, _, snap_size))) => *snap_size,
        (v, _) => parse_size(
            v,
            &format!(
                "Share size '{}'",
                v.map(|v| v.to_string())
                    .unwrap_or_else(|| "None".into())
                    .chars()
                    .take(32)
                    .collect::<String>()
            ),
        )?,
    };
    if let Some((_, _, snap_size)) = &source
        && size < *snap_size
    {
        return Err(ApiError::bad_request(format!(
            "Share size ({size}) must be equal or greater than snapshot size ({snap_size})."
        )));
    }
    Ok(size)
}

/// Manila's quota checks of a new share of `size` GB in `project`: 413 over a limit.
fn check_share_quotas(state: &AppState, db: &Db, project: &str, size: u64) -> ApiResult<()> {
    let q = state.quotas(db, project);
    let (n, gb, _, _) = usage(db, project);
    if q.per_share_gigabytes >= 0 && size as i64 > q.per_share_gigabytes {
        return Err(ApiError::over_limit(format!(
            "Requested share size {size}GB exceeds the allowed per-share size limit of {}GB.",
            q.per_share_gigabytes
        )));
    }
    if q.shares >= 0 && n + 1 > q.shares {
        return Err(ApiError::over_limit(format!(
            "Maximum number of shares allowed ({}) exceeded.",
            q.shares
        )));
    }
    if q.gigabytes >= 0 && gb + size as i64 > q.gigabytes {
        return Err(ApiError::over_limit(format!(
            "Requested share exceeds allowed project/user or share type gigabytes quota. \
             (requested {size}G, {gb}G of {}G already consumed)",
            q.gigabytes
        )));
    }
    Ok(())
}

/// `POST /shares`.
pub fn create(ctx: &Ctx, body: &Value) -> ApiResult<Response> {
    let m = body_object(body, "share")?;
    let NewShare {
        proto,
        name,
        description,
        metadata,
        is_public,
        az,
        snapshot_id,
    } = new_share(ctx, m)?;
    let state = ctx.state.clone();
    let mut db = state.db();
    // A share from a snapshot is at least as big as the snapshot; its size defaults to it.
    let source = snapshot_source(ctx, &db, &snapshot_id, &proto)?;
    let size = new_share_size(m, &source)?;
    let project = ctx.project_id().to_owned();
    check_share_quotas(&state, &db, &project, size)?;
    let faults = state.faults();
    let stuck = state.draw(faults.stuck_creating_rate);
    let fail = !stuck && state.draw(faults.share_error_rate);
    let id = state.new_uuid();
    let seq = db.seq();
    let share = Share {
        id: id.clone(),
        seq,
        name,
        description,
        project_id: project,
        user_id: ctx.token.user_id.clone(),
        size,
        status: if source.is_some() {
            ShareStatus::CreatingFromSnapshot
        } else {
            ShareStatus::Creating
        },
        share_type_id: state.default_type_id().to_owned(),
        share_proto: proto.clone(),
        snapshot_id,
        availability_zone: az,
        metadata,
        is_public,
        created_at: Timestamp::now(),
        updated_at: None,
        export_locations: Vec::new(),
        reserved_size: None,
        instance_id: state.new_uuid(),
        access_lock: Default::default(),
    };
    let view = share_view(ctx, &db, &share);
    db.shares.insert(id.clone(), share);
    drop(db);
    // The scheduler finds no host for a protocol the CephFS back end does not serve: it
    // requires the protocol as the `storage_protocol` capability, so the capabilities
    // filter is the one that fails. An injected failure blames no filter.
    let fate = if stuck {
        Fate::Stuck
    } else if proto != "CEPHFS" {
        Fate::NoValidHost(Detail::FilterCapabilities)
    } else if fail {
        Fate::NoValidHost(Detail::NoValidHost)
    } else {
        Fate::Normal
    };
    tokio::spawn(provision(
        state,
        id,
        size,
        source.map(|(s, n, _)| (s, n)),
        fate,
    ));
    reply(StatusCode::OK, json!({"share": view}))
}

/// What happens to a new share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Normal,
    Stuck,
    /// The scheduler finds no host; the message's detail says why.
    NoValidHost(Detail),
}

async fn provision(
    state: AppState,
    id: String,
    size: u64,
    source: Option<(String, String)>,
    fate: Fate,
) {
    crate::state::pause(state.config().delays.create).await;
    match fate {
        Fate::Stuck => {
            tracing::info!(share_id = %id, "share stays in creating (injected fault)");
            return;
        }
        Fate::NoValidHost(detail) => {
            state.metrics().transition("create", false);
            set_error(
                &state,
                &id,
                ShareStatus::Error,
                Some((Action::AllocateHost, detail)),
            );
            return;
        }
        Fate::Normal => {}
    }
    let ceph = state.ceph();
    // Whether a clone was started: from then on Manila's CephFS driver reports the share
    // as `creating_from_snapshot` and the share manager's periodic status update, not
    // the create call, is what sees a failure.
    let mut cloning = false;
    let result = async {
        match &source {
            None => ceph.create_subvolume(&id, size * GIB).await?,
            Some((src, snap)) => {
                ceph.clone_snapshot(src, snap, &id).await?;
                cloning = true;
                loop {
                    match ceph.clone_status(&id).await? {
                        CloneState::Complete => break,
                        CloneState::Running => tokio::time::sleep(state.config().clone_poll).await,
                        CloneState::Failed(msg) => {
                            return Err(crate::ceph::CephError::Command {
                                prefix: "fs clone status".into(),
                                errno: 5,
                                message: msg,
                            });
                        }
                    }
                }
                // The clone has the snapshot's quota; the share may be bigger.
                ceph.resize(&id, size * GIB).await?;
            }
        }
        let path = ceph.getpath(&id).await?;
        let mons = ceph.mon_addrs().await?;
        Ok::<_, crate::ceph::CephError>(format!("{}:{path}", mons.join(",")))
    }
    .await;
    state.metrics().transition("create", result.is_ok());
    match result {
        Ok(path) => {
            let el_id = state.new_uuid();
            let mut db = state.db();
            if let Some(s) = db.shares.get_mut(&id) {
                s.export_locations = vec![ExportLocation {
                    id: el_id,
                    path,
                    preferred: true,
                    created_at: Timestamp::now(),
                }];
                s.status = ShareStatus::Available;
                s.updated_at = Some(Timestamp::now());
            }
            tracing::debug!(share_id = %id, "share available");
        }
        Err(e) => {
            tracing::warn!(share_id = %id, error = %e, "share creation failed");
            let message = if cloning {
                (Action::Update, Detail::DriverFailedCreatingFromSnap)
            } else {
                (Action::Create, Detail::UnknownError)
            };
            set_error(&state, &id, ShareStatus::Error, Some(message));
        }
    }
}

/// Puts a share in `status` and, when Manila leaves one there, a user message about it.
fn set_error(state: &AppState, id: &str, status: ShareStatus, message: Option<(Action, Detail)>) {
    let mut db = state.db();
    let Some(s) = db.shares.get_mut(id) else {
        return;
    };
    s.status = status;
    s.updated_at = Some(Timestamp::now());
    let project = s.project_id.clone();
    if let Some((action, detail)) = message {
        resources::add_message(state, &mut db, &project, action, detail, id);
    }
}

/// `GET /shares/{id}`.
pub fn show(ctx: &Ctx, id: &str) -> ApiResult<Response> {
    let db = ctx.state.db();
    let s = get(ctx, &db, id)?;
    reply(StatusCode::OK, json!({"share": share_view(ctx, &db, s)}))
}

/// `PUT /shares/{id}`.
pub fn update(ctx: &Ctx, id: &str, body: &Value) -> ApiResult<Response> {
    let m = body_object(body, "share")?;
    let name = opt_string(m, &["display_name", "name"])?;
    let description = opt_string(m, &["display_description", "description"])?;
    let is_public = match m.get("is_public") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            parse_bool(v).ok_or_else(|| ApiError::bad_request("Invalid value for is_public"))?,
        ),
    };
    let mut db = ctx.state.db();
    let s = get_mut(ctx, &mut db, id)?;
    if m.contains_key("display_name") || m.contains_key("name") {
        s.name = name;
    }
    if m.contains_key("display_description") || m.contains_key("description") {
        s.description = description;
    }
    if let Some(p) = is_public {
        s.is_public = p;
    }
    s.updated_at = Some(Timestamp::now());
    let s = db.shares.get(id).ok_or_else(|| not_found(id))?;
    reply(StatusCode::OK, json!({"share": share_view(ctx, &db, s)}))
}

/// `DELETE /shares/{id}`: only from `available`, `error` (and `inactive`), and without
/// snapshots.
pub fn delete(ctx: &Ctx, id: &str) -> ApiResult<Response> {
    start_delete(ctx, id, false)
}

fn start_delete(ctx: &Ctx, id: &str, force: bool) -> ApiResult<Response> {
    let mut db = ctx.state.db();
    let snaps = db.snapshots.values().filter(|s| s.share_id == id).count();
    let s = get_mut(ctx, &mut db, id)?;
    if !force && !matches!(s.status, ShareStatus::Available | ShareStatus::Error) {
        return Err(ApiError::forbidden(format!(
            "Invalid share: Share status must be one of ('available', 'error', 'inactive'). (current: {})",
            s.status.as_str()
        )));
    }
    if snaps > 0 {
        return Err(ApiError::forbidden(format!(
            "Invalid share: Share still has {snaps} dependent snapshots."
        )));
    }
    s.status = ShareStatus::Deleting;
    s.updated_at = Some(Timestamp::now());
    drop(db);
    tokio::spawn(remove(ctx.state.clone(), id.to_owned()));
    accepted()
}

async fn remove(state: AppState, id: String) {
    crate::state::pause(state.config().delays.delete).await;
    let Some(lock) = state.db().shares.get(&id).map(|s| s.access_lock.clone()) else {
        return;
    };
    let _guard = lock.lock().await;
    let users: Vec<String> = state
        .db()
        .rules
        .values()
        .filter(|r| r.share_id == id && r.access_type == "cephx")
        .map(|r| r.access_to.clone())
        .collect();
    let ceph = state.ceph();
    let result = async {
        for u in &users {
            ceph.deauthorize(&id, u).await?;
        }
        ceph.remove_subvolume(&id).await
    }
    .await;
    state.metrics().transition("delete", result.is_ok());
    let mut db = state.db();
    match result {
        Ok(()) => {
            db.shares.remove(&id);
            db.rules.retain(|_, r| r.share_id != id);
            tracing::debug!(share_id = %id, "share deleted");
        }
        Err(e) => {
            tracing::warn!(share_id = %id, error = %e, "share deletion failed");
            if let Some(s) = db.shares.get_mut(&id) {
                s.status = ShareStatus::ErrorDeleting;
                s.updated_at = Some(Timestamp::now());
            }
        }
    }
}

/// `POST /shares/{id}/action`: one key, versioned names.
pub fn action(ctx: &Ctx, id: &str, body: &Value) -> ApiResult<Response> {
    let m = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("Malformed request body"))?;
    if m.len() != 1 {
        return Err(ApiError::bad_request(
            "Malformed request body: too many body keys",
        ));
    }
    let (name, arg) = m
        .iter()
        .next()
        .ok_or_else(|| ApiError::bad_request("Malformed request body"))?;
    // Manila 2.7 renamed the `os-` actions; each name exists on one side of it only.
    let new = ctx.at_least(7);
    let (base, prefixed) = match name.strip_prefix("os-") {
        Some(b) => (b, true),
        None => (name.as_str(), false),
    };
    let known = matches!(
        base,
        "allow_access"
            | "deny_access"
            | "access_list"
            | "extend"
            | "shrink"
            | "reset_status"
            | "force_delete"
    );
    if !known {
        return Err(ApiError::bad_request(format!(
            "There is no such action: {}",
            name.chars().take(64).collect::<String>()
        )));
    }
    if prefixed == new {
        return Err(ApiError::no_resource());
    }
    match base {
        "allow_access" => access_rule::allow(ctx, id, arg),
        "deny_access" => access_rule::deny(ctx, id, arg),
        "access_list" => {
            // Removed in 2.45 in favour of `GET /share-access-rules`.
            if ctx.at_least(45) {
                return Err(ApiError::no_resource());
            }
            access_rule::access_list_action(ctx, id)
        }
        "extend" => resize(ctx, id, arg, true),
        "shrink" => resize(ctx, id, arg, false),
        "reset_status" => reset_status(ctx, id, arg),
        _ => {
            if !ctx.is_admin() {
                return Err(ApiError::forbidden(
                    "Policy doesn't allow share:force_delete to be performed.",
                ));
            }
            start_delete(ctx, id, true)
        }
    }
}

fn reset_status(ctx: &Ctx, id: &str, arg: &Value) -> ApiResult<Response> {
    if !ctx.is_admin() {
        return Err(ApiError::forbidden(
            "Policy doesn't allow share:reset_status to be performed.",
        ));
    }
    let status = arg
        .get("status")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("Must specify 'status'"))?;
    let st = ShareStatus::parse(status).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Invalid state '{}'",
            status.chars().take(32).collect::<String>()
        ))
    })?;
    let mut db = ctx.state.db();
    let s = get_mut(ctx, &mut db, id)?;
    s.status = st;
    s.updated_at = Some(Timestamp::now());
    accepted()
}

fn resize(ctx: &Ctx, id: &str, arg: &Value, extend: bool) -> ApiResult<Response> {
    let what = if extend { "extend" } else { "shrink" };
    let new_size = match arg.get("new_size") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .ok_or_else(|| ApiError::bad_request("New share size must be specified as an integer."))?;
    let state = ctx.state.clone();
    let mut db = state.db();
    let (project, cur, status) = {
        let s = get_mut(ctx, &mut db, id)?;
        (s.project_id.clone(), s.size, s.status)
    };
    if extend {
        if status != ShareStatus::Available {
            return Err(ApiError::bad_request(format!(
                "Invalid share: Share {id} status must be 'available' to extend, but current status is: {}.",
                status.as_str()
            )));
        }
        if new_size <= cur as i64 {
            return Err(ApiError::bad_request(format!(
                "New size for extend must be greater than current size. (current: {cur}, extended: {new_size})."
            )));
        }
        let q = state.quotas(&db, &project);
        let (_, gb, _, _) = usage(&db, &project);
        let more = new_size - cur as i64;
        if (q.gigabytes >= 0 && gb + more > q.gigabytes)
            || (q.per_share_gigabytes >= 0 && new_size > q.per_share_gigabytes)
        {
            return Err(ApiError::forbidden(format!(
                "Requested share exceeds allowed project/user or share type gigabytes quota. \
                 (requested {more}G, {gb}G of {}G already consumed)",
                q.gigabytes
            )));
        }
    } else {
        if !matches!(
            status,
            ShareStatus::Available | ShareStatus::ShrinkingPossibleDataLossError
        ) {
            return Err(ApiError::bad_request(format!(
                "Invalid share: Share {id} status must be in ('available', 'shrinking_possible_data_loss_error') to shrink, but current status is: {}.",
                status.as_str()
            )));
        }
        if new_size <= 0 {
            return Err(ApiError::bad_request(
                "New size for shrink must be greater than 0.",
            ));
        }
        if new_size >= cur as i64 {
            return Err(ApiError::bad_request(format!(
                "New size for shrink must be less than current size. (current: {cur}, new: {new_size})."
            )));
        }
    }
    let new_size = u64::try_from(new_size).unwrap_or(0);
    if new_size > (1 << 24) {
        return Err(ApiError::bad_request(format!(
            "New size for {what} is too large."
        )));
    }
    if let Some(s) = db.shares.get_mut(id) {
        s.status = if extend {
            ShareStatus::Extending
        } else {
            ShareStatus::Shrinking
        };
        s.updated_at = Some(Timestamp::now());
        // The share shows its old size until the resize is done; an extension's quota
        // is reserved at once, as Manila reserves it.
        if extend {
            s.reserved_size = Some(new_size);
        }
    }
    drop(db);
    tokio::spawn(resize_task(state, id.to_owned(), cur, new_size, extend));
    accepted()
}

async fn resize_task(state: AppState, id: String, old: u64, new: u64, extend: bool) {
    crate::state::pause(state.config().delays.resize).await;
    let result = state.ceph().resize(&id, new * GIB).await;
    let kind = if extend { "extend" } else { "shrink" };
    state.metrics().transition(kind, result.is_ok());
    match result {
        Ok(()) => {
            let mut db = state.db();
            if let Some(s) = db.shares.get_mut(&id) {
                s.size = new;
                s.reserved_size = None;
                s.status = ShareStatus::Available;
                s.updated_at = Some(Timestamp::now());
            }
        }
        Err(e) => {
            tracing::warn!(share_id = %id, error = %e, extend, "share resize failed");
            {
                let mut db = state.db();
                if let Some(s) = db.shares.get_mut(&id) {
                    s.size = old;
                    s.reserved_size = None;
                }
            }
            if extend {
                set_error(
                    &state,
                    &id,
                    ShareStatus::ExtendingError,
                    Some((Action::Extend, Detail::DriverFailedExtend)),
                );
            } else if e.errno() == Some(EINVAL) {
                // Manila's CephFS driver passes `no_shrink`: Ceph refuses to go below
                // the used size, the driver raises ShareShrinkingPossibleDataLoss, and the
                // share manager puts the share back in `available` at its old size with
                // a message saying so.
                set_error(
                    &state,
                    &id,
                    ShareStatus::Available,
                    Some((Action::Shrink, Detail::DriverRefusedShrink)),
                );
            } else {
                // Any other driver failure: `shrinking_error`, and no message (the share
                // manager leaves none).
                set_error(&state, &id, ShareStatus::ShrinkingError, None);
            }
        }
    }
}

fn export_location_view(ctx: &Ctx, s: &Share, e: &ExportLocation, detail: bool) -> Value {
    let mut o = json!({"id": e.id, "path": e.path});
    if ctx.at_least(14) {
        o["preferred"] = json!(e.preferred);
    }
    if ctx.at_least(87) {
        o["metadata"] = json!({});
    }
    // Admin-only in Manila; CSI reads both, so they are shown to everyone here.
    o["share_instance_id"] = json!(s.instance_id);
    o["is_admin_only"] = json!(false);
    if detail {
        o["created_at"] = json!(e.created_at.manila());
        o["updated_at"] = json!(e.created_at.manila());
    }
    o
}

/// `GET /shares/{id}/export_locations` (≥ 2.9).
pub fn export_locations(ctx: &Ctx, id: &str) -> ApiResult<Response> {
    let db = ctx.state.db();
    let s = get(ctx, &db, id)?;
    let els: Vec<Value> = s
        .export_locations
        .iter()
        .map(|e| export_location_view(ctx, s, e, false))
        .collect();
    reply(StatusCode::OK, json!({"export_locations": els}))
}

/// `GET /shares/{id}/export_locations/{el_id}` (≥ 2.9).
pub fn export_location(ctx: &Ctx, id: &str, el: &str) -> ApiResult<Response> {
    let db = ctx.state.db();
    let s = get(ctx, &db, id)?;
    let e = s
        .export_locations
        .iter()
        .find(|e| e.id == el)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Export location {} not found.",
                el.chars().take(64).collect::<String>()
            ))
        })?;
    reply(
        StatusCode::OK,
        json!({"export_location": export_location_view(ctx, s, e, true)}),
    )
}

/// `GET /shares/{id}/metadata`.
pub fn metadata_get(ctx: &Ctx, id: &str) -> ApiResult<Response> {
    let db = ctx.state.db();
    let s = get(ctx, &db, id)?;
    reply(StatusCode::OK, json!({"metadata": s.metadata}))
}

/// `POST` (merge) and `PUT` (replace) `/shares/{id}/metadata`.
pub fn metadata_set(ctx: &Ctx, id: &str, body: &Value, replace: bool) -> ApiResult<Response> {
    body_object(body, "metadata")?;
    let md = parse_metadata(body.get("metadata"))?;
    let mut db = ctx.state.db();
    let s = get_mut(ctx, &mut db, id)?;
    if replace {
        s.metadata = md;
    } else {
        s.metadata.extend(md);
    }
    s.updated_at = Some(Timestamp::now());
    reply(StatusCode::OK, json!({"metadata": s.metadata}))
}

fn no_meta(key: &str) -> ApiError {
    ApiError::not_found(format!(
        "Metadata item was not found: {}",
        key.chars().take(64).collect::<String>()
    ))
}

/// `GET /shares/{id}/metadata/{key}`.
pub fn metadata_item(ctx: &Ctx, id: &str, key: &str) -> ApiResult<Response> {
    let db = ctx.state.db();
    let s = get(ctx, &db, id)?;
    let v = s.metadata.get(key).ok_or_else(|| no_meta(key))?;
    reply(StatusCode::OK, json!({"meta": {key: v}}))
}

/// `PUT /shares/{id}/metadata/{key}`: `{"meta": {key: value}}`, the key as in the URL.
pub fn metadata_put_item(ctx: &Ctx, id: &str, key: &str, body: &Value) -> ApiResult<Response> {
    let meta = body_object(body, "meta")?;
    if meta.len() != 1 || !meta.contains_key(key) {
        return Err(ApiError::bad_request("Request body and URI mismatch"));
    }
    let md = parse_metadata(body.get("meta"))?;
    let mut db = ctx.state.db();
    let s = get_mut(ctx, &mut db, id)?;
    s.metadata.extend(md.clone());
    s.updated_at = Some(Timestamp::now());
    reply(StatusCode::OK, json!({"meta": md}))
}

/// `DELETE /shares/{id}/metadata/{key}`.
pub fn metadata_delete_item(ctx: &Ctx, id: &str, key: &str) -> ApiResult<Response> {
    let mut db = ctx.state.db();
    let s = get_mut(ctx, &mut db, id)?;
    s.metadata.remove(key).ok_or_else(|| no_meta(key))?;
    s.updated_at = Some(Timestamp::now());
    Ok(axum::response::IntoResponse::into_response(StatusCode::OK))
}
