//! The `fs subvolume snapshot ...` commands, `snapshot clone` and the `fs clone ...`
//! commands.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::command::{Args, py_json};
use crate::error::{CephError, CephResult, Reply, errno};
use crate::mds::QuotaRealm;
use crate::state::{Caller, Inner};
use crate::time::{ceph_time_micros, now_unix};
use crate::tree::{check_name, copy_tree};

use super::common::*;
use crate::volumes::*;

// ---------------------------------------------------------------------------------
// Snapshots and clones

pub(super) fn snapshot_create(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let snap = args.req_str("snap_name")?;
    check_name("snapshot", snap)?;
    let mut sh = open(inner, n.vol)?;
    if n.group == snap {
        return Err(CephError::inval(
            "subvolumegroup and subvolume snapshot name can't be same",
        ));
    }
    let sv = get_sv_mut(&mut sh, &n, "snap-create")?;
    if sv.snapshots.contains_key(snap) {
        return Ok(Reply::ok(""));
    }
    let dir = local_dir(inner, n.vol, n.group, n.name);
    let dest = dir.join(".snap").join(snap).join(&sv.uuid);
    copy_tree(&dir.join(&sv.uuid), &dest).map_err(io_err("snapshot"))?;
    sv.snapshots.insert(
        snap.to_owned(),
        Snapshot {
            created_at: now_unix(),
            uuid: sv.uuid.clone(),
            metadata: BTreeMap::new(),
            pending_clones: Vec::new(),
        },
    );
    inner.mds.charge_internal(2);
    Ok(Reply::ok(""))
}

pub(super) fn snapshot_rm(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let snap = args.req_str("snap_name")?;
    let force = args.flag("force");
    let mut sh = open(inner, n.vol)?;
    let sh = &mut *sh;
    let sv = match get_sv_mut(sh, &n, "snap-rm") {
        Ok(sv) => sv,
        Err(e) if force && e.errno == errno::ENOENT => return Ok(Reply::ok("")),
        Err(e) => return Err(e),
    };
    let Some(s) = sv.snapshots.get(snap) else {
        if force {
            return Ok(Reply::ok(""));
        }
        return Err(CephError::noent(format!(
            "snapshot '{snap}' does not exist"
        )));
    };
    if !s.pending_clones.is_empty() {
        return Err(CephError::new(
            errno::EAGAIN,
            format!("snapshot '{snap}' has pending clones"),
        ));
    }
    sv.snapshots.remove(snap);
    let retained_and_empty = sv.state == State::SnapshotRetained && sv.snapshots.is_empty();
    let dir = local_dir(inner, n.vol, n.group, n.name);
    // Into the trash in one rename: a crash leaves the snapshot whole or gone.
    trash(inner, sh, n.vol, &dir.join(".snap").join(snap))?;
    if retained_and_empty {
        // The last retained snapshot is gone: the subvolume goes with it.
        trash(inner, sh, n.vol, &dir)?;
        if let Some(g) = sh.volumes.groups.get_mut(&n.key()) {
            g.subvolumes.remove(n.name);
        }
        sh.volumes.mark_sv(n.vol, n.group, n.name);
    }
    inner.mds.charge_internal(2);
    Ok(Reply::ok(""))
}

/// `snapshot protect`/`unprotect`: no-ops since snapshots are auto-protected, kept for
/// old clients; Ceph answers with a deprecation warning in the status.
pub(super) fn snapshot_protect(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let snap = args.req_str("snap_name")?;
    let sh = open(inner, n.vol)?;
    let sv = get_sv(&sh, &n, "snap-protect")?;
    if !sv.snapshots.contains_key(snap) {
        return Err(CephError::noent(format!(
            "snapshot '{snap}' does not exist"
        )));
    }
    let verb = if args.req_str("prefix")?.ends_with("unprotect") {
        "unprotect"
    } else {
        "protect"
    };
    Ok(Reply::ok_with_status(
        "",
        format!(
            "Deprecation warning: 'snapshot {verb}' call is deprecated and will be removed in a future release"
        ),
    ))
}

pub(super) fn snapshot_ls(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let sh = open(inner, n.vol)?;
    let sv = get_sv(&sh, &n, "snap-ls")?;
    let v: Vec<Value> = sv.snapshots.keys().map(|s| json!({"name": s})).collect();
    Ok(Reply::ok(py_json(&v, 4)))
}

pub(super) fn snapshot_info(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let snap = args.req_str("snap_name")?;
    let sh = open(inner, n.vol)?;
    let sv = get_sv(&sh, &n, "snap-info")?;
    let s = sv
        .snapshots
        .get(snap)
        .ok_or_else(|| CephError::noent(format!("snapshot '{snap}' does not exist")))?;
    let mut v = json!({
        "created_at": ceph_time_micros(s.created_at),
        "data_pool": sv.pool,
        "has_pending_clones": if s.pending_clones.is_empty() { "no" } else { "yes" },
    });
    if !s.pending_clones.is_empty() {
        v["pending_clones"] = Value::Array(
            s.pending_clones
                .iter()
                .map(|(name, g)| {
                    if g == NO_GROUP {
                        json!({"name": name})
                    } else {
                        json!({"name": name, "target_group": g})
                    }
                })
                .collect(),
        );
    }
    Ok(Reply::ok(py_json(&v, 4)))
}

pub(super) fn snapshot_clone(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let snap = args.req_str("snap_name")?;
    let target = args.req_str("target_sub_name")?;
    let target_group = group_arg(args, "target_group_name");
    check_name("subvolume", target)?;
    let mut sh = open(inner, n.vol)?;
    let sh = &mut *sh;
    let src = get_sv(sh, &n, "clone-source")?.clone();
    let s = src
        .snapshots
        .get(snap)
        .ok_or_else(|| CephError::noent(format!("snapshot '{snap}' does not exist")))?;
    let _ = s;
    if target_group != NO_GROUP
        && !sh
            .volumes
            .groups
            .contains_key(&(n.vol.to_owned(), target_group.to_owned()))
    {
        return Err(group_missing(target_group));
    }
    if sh
        .volumes
        .groups
        .get(&(n.vol.to_owned(), target_group.to_owned()))
        .is_some_and(|g| g.subvolumes.contains_key(target))
    {
        return Err(CephError::new(
            errno::EEXIST,
            format!("subvolume '{target}' exists"),
        ));
    }
    let opts = sh.volumes.options.clone();
    if opts.snapshot_clone_no_wait && sh.volumes.running_clones() >= opts.max_concurrent_clones {
        return Err(CephError::new(
            errno::EAGAIN,
            "all cloner threads are busy, please try again later",
        ));
    }
    let pool = match args.str("pool_layout") {
        Some(p) => check_subvolume_pool(sh, n.vol, Some(p))?,
        None => src.pool.clone(),
    };
    let uuid = inner.new_uuid();
    let data = local_dir(inner, n.vol, target_group, target).join(&uuid);
    std::fs::create_dir_all(&data).map_err(io_err("mkdir"))?;
    set_mode(&data, src.mode);
    sh.volumes.clone_seq += 1;
    let seq = sh.volumes.clone_seq;
    let source = CloneSource {
        volume: n.vol.to_owned(),
        group: n.group.to_owned(),
        subvolume: n.name.to_owned(),
        snapshot: snap.to_owned(),
    };
    sh.volumes.mark_sv(n.vol, target_group, target);
    sh.volumes
        .group_entry(n.vol, target_group)
        .subvolumes
        .insert(
            target.to_owned(),
            Subvolume {
                uuid,
                created_at: now_unix(),
                mode: src.mode,
                uid: src.uid,
                gid: src.gid,
                pool,
                pool_namespace: String::new(),
                realm: QuotaRealm::new(src.realm.max_bytes()),
                state: State::Pending,
                is_clone: true,
                clone: Some(CloneJob {
                    source,
                    seq,
                    queued: inner.config.clock.now(),
                    started: None,
                    failure: None,
                }),
                snapshots: BTreeMap::new(),
                metadata: BTreeMap::new(),
                authorized: BTreeMap::new(),
            },
        );
    if let Some(s) = sh
        .volumes
        .sv_mut(n.vol, n.group, n.name)
        .and_then(|sv| sv.snapshots.get_mut(snap))
    {
        s.pending_clones
            .push((target.to_owned(), target_group.to_owned()));
    }
    inner.mds.charge_internal(3);
    Ok(Reply::ok(""))
}

pub(super) fn clone_target<'a>(args: &Args<'a>) -> CephResult<Names<'a>> {
    Ok(Names {
        vol: args.req_str("vol_name")?,
        group: group_arg(args, "group_name"),
        name: args.req_str("clone_name")?,
    })
}

pub(super) fn not_a_clone(op: &str, name: &str) -> CephError {
    CephError::new(
        errno::EOPNOTSUPP,
        format!("operation '{op}' is not allowed on subvolume '{name}' of type subvolume"),
    )
}

pub(super) fn clone_status(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = clone_target(args)?;
    let sh = open(inner, n.vol)?;
    let sv = get_sv(&sh, &n, "clone-status")?;
    let Some(job) = &sv.clone else {
        return Err(not_a_clone("clone-status", n.name));
    };
    let mut status = json!({"state": sv.state.name()});
    if sv.state != State::Complete {
        let mut source = json!({
            "volume": job.source.volume,
            "subvolume": job.source.subvolume,
            "snapshot": job.source.snapshot,
        });
        if job.source.group != NO_GROUP {
            source["group"] = json!(job.source.group);
        }
        status["source"] = source;
    }
    if let Some((e, msg)) = &job.failure {
        status["failure"] = json!({"errno": e.to_string(), "error_msg": msg});
    }
    Ok(Reply::ok(py_json(&json!({"status": status}), 2)))
}

pub(super) fn clone_cancel(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = clone_target(args)?;
    let mut sh = open(inner, n.vol)?;
    let sh = &mut *sh;
    let sv = get_sv_mut(sh, &n, "clone-cancel")?;
    let Some(job) = sv.clone.clone() else {
        return Err(not_a_clone("clone-cancel", n.name));
    };
    if !matches!(sv.state, State::Pending | State::InProgress) {
        return Err(CephError::inval(
            "cannot cancel -- clone finished (check clone status)",
        ));
    }
    sv.state = State::Canceled;
    if let Some(j) = sv.clone.as_mut() {
        j.failure = Some((4, "user interrupted clone operation".into()));
    }
    sh.volumes
        .detach_pending_clone(&job.source, n.name, n.group);
    Ok(Reply::ok(""))
}
