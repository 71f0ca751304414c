//! The `fs subvolume ...` commands on subvolumes themselves (create, rm, getpath, info,
//! ls, exist, resize) and their metadata (`fs subvolume metadata ...`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::command::{Args, py_json};
use crate::error::{CephError, CephResult, Reply, errno};
use crate::mds::QuotaRealm;
use crate::state::{Caller, Inner, Shared};
use crate::time::{ceph_time, now_unix};
use crate::tree::{check_name, du};

use super::common::*;
use crate::volumes::*;

// ---------------------------------------------------------------------------------
// Subvolumes

pub(super) fn subvolume_create(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let mut sh = open(inner, n.vol)?;
    check_name("subvolume", n.name)?;
    let mode = parse_mode(args.str("mode"), 0o755)?;
    let size = create_size(args)?;
    let pool = check_subvolume_pool(&sh, n.vol, args.str("pool_layout"))?;
    if n.group != NO_GROUP && !sh.volumes.groups.contains_key(&n.key()) {
        return Err(group_missing(n.group));
    }
    let group_pool = sh.volumes.groups.get(&n.key()).and_then(|g| g.pool.clone());
    let pool = match (args.str("pool_layout"), group_pool) {
        (None, Some(gp)) => gp,
        _ => pool,
    };
    let ns = if args.flag("namespace_isolated") {
        format!("fsvolumens_{}", n.name)
    } else {
        String::new()
    };
    let dir = local_dir(inner, n.vol, n.group, n.name);
    let new_uuid = inner.new_uuid();
    sh.volumes.mark_sv(n.vol, n.group, n.name);
    let group = sh.volumes.group_entry(n.vol, n.group);
    match group.subvolumes.get_mut(n.name) {
        Some(sv) if sv.state == State::SnapshotRetained => {
            // v2: creating a removed-with-retained-snapshots subvolume recreates it.
            sv.uuid = new_uuid;
            sv.state = State::Complete;
            sv.mode = mode;
            sv.pool = pool;
            sv.realm.set_max_bytes(size.unwrap_or(0));
            sv.realm.set_used(0);
            let data = dir.join(&sv.uuid);
            std::fs::create_dir_all(&data).map_err(io_err("mkdir"))?;
            set_mode(&data, mode);
        }
        Some(sv) => {
            gate(sv, n.name, "create")?;
            // Idempotent: an existing subvolume gets the given attributes.
            if args.str("mode").is_some() {
                sv.mode = mode;
                set_mode(&dir.join(&sv.uuid), mode);
            }
            if let Some(uid) = args.int("uid") {
                sv.uid = uid;
            }
            if let Some(gid) = args.int("gid") {
                sv.gid = gid;
            }
            if args.str("pool_layout").is_some() {
                sv.pool = pool;
            }
            if args.int("size").is_some() {
                sv.realm.set_max_bytes(size.unwrap_or(0));
            }
        }
        None => {
            let data = dir.join(&new_uuid);
            std::fs::create_dir_all(&data).map_err(io_err("mkdir"))?;
            set_mode(&data, mode);
            group.subvolumes.insert(
                n.name.to_owned(),
                Subvolume {
                    uuid: new_uuid,
                    created_at: now_unix(),
                    mode,
                    uid: args.int("uid").unwrap_or(0),
                    gid: args.int("gid").unwrap_or(0),
                    pool,
                    pool_namespace: ns,
                    realm: QuotaRealm::new(size.unwrap_or(0)),
                    state: State::Complete,
                    is_clone: false,
                    clone: None,
                    snapshots: BTreeMap::new(),
                    metadata: BTreeMap::new(),
                    authorized: BTreeMap::new(),
                },
            );
        }
    }
    inner.mds.charge_internal(6);
    Ok(Reply::ok(""))
}

pub(super) fn subvolume_rm(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let force = args.flag("force");
    let retain = args.flag("retain_snapshots");
    let mut sh = open(inner, n.vol)?;
    let sh = &mut *sh;
    let exists = sh
        .volumes
        .groups
        .get(&n.key())
        .is_some_and(|g| g.subvolumes.contains_key(n.name));
    if !exists {
        if force {
            return Ok(Reply::ok(""));
        }
        return Err(
            if n.group != NO_GROUP && !sh.volumes.groups.contains_key(&n.key()) {
                group_missing(n.group)
            } else {
                subvolume_missing(n.name)
            },
        );
    }
    let sv = get_sv(sh, &n, if force { "rm-force" } else { "rm" }).map_err(|e| {
        if e.errno == errno::EAGAIN {
            CephError::new(
                errno::EAGAIN,
                format!(
                    "subvolume '{}' is not ready for operation rm (use --force to override)",
                    n.name
                ),
            )
        } else {
            e
        }
    })?;
    let sv = sv.clone();
    let dir = local_dir(inner, n.vol, n.group, n.name);
    // Snapshots first: Ceph refuses with ENOTEMPTY even when `force` is given.
    if !sv.snapshots.is_empty() && !retain {
        return Err(CephError::new(
            errno::ENOTEMPTY,
            format!("subvolume '{}' has snapshots", n.name),
        ));
    }
    if sv.snapshots.values().any(|s| !s.pending_clones.is_empty()) {
        return Err(CephError::new(
            errno::EAGAIN,
            format!("subvolume '{}' has pending clones", n.name),
        ));
    }
    if retain && sv.state == State::SnapshotRetained {
        return Ok(Reply::ok(""));
    }
    if let Some(job) = &sv.clone
        && matches!(sv.state, State::Pending | State::InProgress)
    {
        sh.volumes
            .detach_pending_clone(&job.source, n.name, n.group);
    }
    if retain && !sv.snapshots.is_empty() {
        trash(inner, sh, n.vol, &dir.join(&sv.uuid))?;
        if let Some(svm) = sh.volumes.sv_mut(n.vol, n.group, n.name) {
            svm.state = State::SnapshotRetained;
            svm.realm.set_used(0);
        }
    } else {
        trash(inner, sh, n.vol, &dir)?;
        if let Some(g) = sh.volumes.groups.get_mut(&n.key()) {
            g.subvolumes.remove(n.name);
        }
        sh.volumes.mark_sv(n.vol, n.group, n.name);
    }
    inner.mds.charge_internal(3);
    Ok(Reply::ok(""))
}

pub(super) fn subvolume_getpath(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let sh = open(inner, n.vol)?;
    let sv = get_sv(&sh, &n, "getpath")?;
    inner.mds.charge_internal(1);
    Ok(Reply::ok(format!("{}/{}\n", n.ceph_dir(), sv.uuid)))
}

pub(super) fn subvolume_info(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let sh = open(inner, n.vol)?;
    let sv = get_sv(&sh, &n, "info")?;
    let kind = if sv.is_clone { "clone" } else { "subvolume" };
    let features = json!([
        "snapshot-clone",
        "snapshot-autoprotect",
        "snapshot-retention"
    ]);
    if sv.state == State::SnapshotRetained {
        let v = json!({
            "features": features,
            "mon_addrs": sh.maps.mon_addrs,
            "state": sv.state.name(),
            "type": kind,
        });
        return Ok(Reply::ok(py_json(&v, 4)));
    }
    let data = local_dir(inner, n.vol, n.group, n.name).join(&sv.uuid);
    let used = du(&data);
    sv.realm.set_used(used);
    let quota = sv.realm.max_bytes();
    let t = ceph_time(sv.created_at);
    let mtime = std::fs::metadata(&data)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(|| t.clone(), ceph_time);
    let v = json!({
        "atime": t,
        "bytes_pcent": bytes_pcent(used, quota),
        "bytes_quota": if quota == 0 { json!("infinite") } else { json!(quota) },
        "bytes_used": used,
        "created_at": t,
        "ctime": mtime,
        "data_pool": sv.pool,
        "features": features,
        "gid": sv.gid,
        "mode": 0o40000 | sv.mode,
        "mon_addrs": sh.maps.mon_addrs,
        "mtime": mtime,
        "path": format!("{}/{}", n.ceph_dir(), sv.uuid),
        "pool_namespace": sv.pool_namespace,
        "state": sv.state.name(),
        "type": kind,
        "uid": sv.uid,
    });
    inner.mds.charge_internal(3);
    Ok(Reply::ok(py_json(&v, 4)))
}

pub(super) fn subvolume_ls(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let vol = args.req_str("vol_name")?;
    let group = explicit_group(args, "group_name")?;
    let sh = open(inner, vol)?;
    let v: Vec<Value> = match sh.volumes.groups.get(&(vol.to_owned(), group.to_owned())) {
        Some(g) => g.subvolumes.keys().map(|n| json!({"name": n})).collect(),
        None if group == NO_GROUP => Vec::new(),
        None => return Err(group_missing(group)),
    };
    inner.mds.charge_internal(1);
    Ok(Reply::ok(py_json(&v, 4)))
}

pub(super) fn subvolume_exist(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let vol = args.req_str("vol_name")?;
    let group = explicit_group(args, "group_name")?;
    let sh = open(inner, vol)?;
    // A missing group has no subvolumes: Ceph answers that rather than ENOENT.
    let any = sh
        .volumes
        .groups
        .get(&(vol.to_owned(), group.to_owned()))
        .is_some_and(|g| !g.subvolumes.is_empty());
    Ok(Reply::ok(if any {
        "subvolume exists\n"
    } else {
        "no subvolume exists\n"
    }))
}

pub(super) fn subvolume_resize(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let raw = args
        .value("new_size")
        .map(crate::command::py_str)
        .unwrap_or_default();
    let new = parse_new_size(&raw)?;
    let no_shrink = args.flag("no_shrink");
    let sh = open(inner, n.vol)?;
    let sv = get_sv(&sh, &n, "resize")?;
    let data = local_dir(inner, n.vol, n.group, n.name).join(&sv.uuid);
    let used = du(&data);
    sv.realm.set_used(used);
    if let Some(size) = new
        && no_shrink
        && size < used
    {
        return Err(CephError::inval(format!(
            "Can't resize the subvolume. The new size '{size}' would be lesser than the current used size '{used}'"
        )));
    }
    sv.realm.set_max_bytes(new.unwrap_or(0));
    sh.volumes.mark_sv(n.vol, n.group, n.name);
    let v = json!([
        {"bytes_used": used},
        // Ceph reports the removed quota as 0 here (and as "infinite" in `info`).
        {"bytes_quota": new.unwrap_or(0)},
        {"bytes_pcent": bytes_pcent(used, new.unwrap_or(0))},
    ]);
    inner.mds.charge_internal(2);
    Ok(Reply::ok(py_json(&v, 4)))
}

// ---------------------------------------------------------------------------------
// Metadata

pub(super) fn metadata_target<'s>(
    sh: &'s mut Shared,
    n: &Names<'_>,
    snap: Option<&str>,
    op: &str,
) -> CephResult<&'s mut BTreeMap<String, String>> {
    let sv = get_sv_mut(sh, n, op)?;
    match snap {
        None => Ok(&mut sv.metadata),
        Some(s) => sv
            .snapshots
            .get_mut(s)
            .map(|s| &mut s.metadata)
            .ok_or_else(|| CephError::noent(format!("snapshot '{s}' does not exist"))),
    }
}

pub(super) fn metadata_set(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let key = args.req_str("key_name")?.trim().to_lowercase();
    let value = args.req_str("value")?.trim().to_owned();
    if key.is_empty() {
        return Err(CephError::inval("key name cannot be empty"));
    }
    let mut sh = open(inner, n.vol)?;
    metadata_target(&mut sh, &n, args.str("snap_name"), "user_metadata_set")?.insert(key, value);
    inner.mds.charge_internal(1);
    Ok(Reply::ok(""))
}

/// The metadata a read looks at (nothing is marked).
pub(super) fn metadata_of<'s>(
    sh: &'s Shared,
    n: &Names<'_>,
    snap: Option<&str>,
    op: &str,
) -> CephResult<&'s BTreeMap<String, String>> {
    let sv = get_sv(sh, n, op)?;
    match snap {
        None => Ok(&sv.metadata),
        Some(s) => sv
            .snapshots
            .get(s)
            .map(|s| &s.metadata)
            .ok_or_else(|| CephError::noent(format!("snapshot '{s}' does not exist"))),
    }
}

pub(super) fn metadata_get(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let key = args.req_str("key_name")?.trim().to_lowercase();
    let sh = open(inner, n.vol)?;
    let md = metadata_of(&sh, &n, args.str("snap_name"), "user_metadata_get")?;
    let v = md
        .get(&key)
        .cloned()
        .ok_or_else(|| CephError::noent(format!("key '{key}' does not exist.")))?;
    // The value comes back with a newline, unless it is empty.
    Ok(Reply::ok(if v.is_empty() { v } else { v + "\n" }))
}

pub(super) fn metadata_ls(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let sh = open(inner, n.vol)?;
    let md = metadata_of(&sh, &n, args.str("snap_name"), "user_metadata_list")?;
    Ok(Reply::ok(py_json(md, 4)))
}

pub(super) fn metadata_rm(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let key = args.req_str("key_name")?.trim().to_lowercase();
    let mut sh = open(inner, n.vol)?;
    let md = metadata_target(&mut sh, &n, args.str("snap_name"), "user_metadata_remove")?;
    if md.remove(&key).is_none() && !args.flag("force") {
        return Err(CephError::noent(format!("key '{key}' does not exist.")));
    }
    Ok(Reply::ok(""))
}
