//! The `fs subvolumegroup ...` commands.

use serde_json::{Value, json};

use crate::command::{Args, py_json};
use crate::error::{CephError, CephResult, Reply, errno};
use crate::state::{Caller, Inner};
use crate::time::{ceph_time, now_unix};
use crate::tree::du;

use super::common::*;
use crate::volumes::*;

// ---------------------------------------------------------------------------------
// Subvolume groups

pub(super) fn group_create(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let vol = args.req_str("vol_name")?;
    let group = args.req_str("group_name")?;
    let mut sh = open(inner, vol)?;
    check_group_name(group)?;
    let mode = parse_mode(args.str("mode"), 0o755)?;
    let pool = match args.str("pool_layout") {
        Some(p) => Some(check_pool(&sh, vol, Some(p))?),
        None => None,
    };
    let size = create_size(args)?;
    let dir = inner.data.fs_root(vol).join("volumes").join(group);
    sh.volumes.mark_group(vol, group);
    let g = sh
        .volumes
        .groups
        .entry((vol.to_owned(), group.to_owned()))
        .or_insert_with(|| Group {
            created_at: now_unix(),
            mode,
            ..Group::default()
        });
    // Idempotent: an existing group just gets the given attributes.
    if args.str("mode").is_some() {
        g.mode = mode;
    }
    if let Some(uid) = args.int("uid") {
        g.uid = uid;
    }
    if let Some(gid) = args.int("gid") {
        g.gid = gid;
    }
    if pool.is_some() {
        g.pool = pool;
    }
    if size.is_some() {
        g.quota = size;
    }
    std::fs::create_dir_all(&dir).map_err(io_err("mkdir"))?;
    set_mode(&dir, g.mode);
    inner.mds.charge_internal(3);
    Ok(Reply::ok(""))
}

pub(super) fn group_rm(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let vol = args.req_str("vol_name")?;
    let group = args.req_str("group_name")?;
    let mut sh = open(inner, vol)?;
    let key = (vol.to_owned(), group.to_owned());
    let Some(g) = sh.volumes.groups.get(&key) else {
        if args.flag("force") {
            return Ok(Reply::ok(""));
        }
        return Err(group_missing(group));
    };
    if !g.subvolumes.is_empty() {
        return Err(CephError::new(
            errno::ENOTEMPTY,
            // Ceph says this even with `force`: force only forgives a missing group.
            format!("error in rmdir /volumes/{group}"),
        ));
    }
    sh.volumes.groups.remove(&key);
    sh.volumes.mark_group(vol, group);
    let dir = inner.data.fs_root(vol).join("volumes").join(group);
    trash(inner, &mut sh, vol, &dir)?;
    inner.mds.charge_internal(2);
    Ok(Reply::ok(""))
}

pub(super) fn group_ls(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let vol = args.req_str("vol_name")?;
    let sh = open(inner, vol)?;
    let v: Vec<Value> = sh
        .volumes
        .groups
        .keys()
        .filter(|(f, g)| f == vol && !g.starts_with('_'))
        .map(|(_, g)| json!({"name": g}))
        .collect();
    inner.mds.charge_internal(1);
    Ok(Reply::ok(py_json(&v, 4)))
}

pub(super) fn group_getpath(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let vol = args.req_str("vol_name")?;
    let group = args.req_str("group_name")?;
    let sh = open(inner, vol)?;
    if !sh
        .volumes
        .groups
        .contains_key(&(vol.to_owned(), group.to_owned()))
    {
        return Err(group_missing(group));
    }
    inner.mds.charge_internal(1);
    Ok(Reply::ok(format!("/volumes/{group}\n")))
}

pub(super) fn group_info(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let vol = args.req_str("vol_name")?;
    let group = args.req_str("group_name")?;
    let sh = open(inner, vol)?;
    let g = sh
        .volumes
        .groups
        .get(&(vol.to_owned(), group.to_owned()))
        .ok_or_else(|| group_missing(group))?;
    let dir = inner.data.fs_root(vol).join("volumes").join(group);
    let used = du(&dir);
    let t = ceph_time(g.created_at);
    let pool = check_pool(&sh, vol, g.pool.as_deref())?;
    let v = json!({
        "atime": t, "ctime": t, "mtime": t, "created_at": t,
        "uid": g.uid, "gid": g.gid, "mode": 0o40000 | g.mode,
        "data_pool": pool,
        "bytes_used": used,
        "bytes_quota": g.quota.map_or(json!("infinite"), |q| json!(q)),
        "bytes_pcent": bytes_pcent(used, g.quota.unwrap_or(0)),
        "mon_addrs": sh.maps.mon_addrs,
    });
    inner.mds.charge_internal(2);
    Ok(Reply::ok(py_json(&v, 4)))
}

pub(super) fn group_exist(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let vol = args.req_str("vol_name")?;
    let sh = open(inner, vol)?;
    let any = sh
        .volumes
        .groups
        .keys()
        .any(|(f, g)| f == vol && !g.starts_with('_'));
    Ok(Reply::ok(if any {
        "subvolumegroup exists\n"
    } else {
        "no subvolumegroup exists\n"
    }))
}
