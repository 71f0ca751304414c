//! The monitor's map and status commands (`fs ls`, `fs dump`, `mon dump`, `status`,
//! `health`, `df`, `osd pool ls`, `fs volume info`, `fs status`, ...), answered from the
//! maps ([`crate::fsmap::Maps`]) and the tree's usage.

use crate::command::{ArgType, Args, CommandSpec, Daemon, opt};
use crate::error::{CephError, CephResult, Reply};
use crate::fsmap::{CEPH_VERSION, Maps, Pool, mon_name};
use crate::state::{Caller, CommandTable, Inner, Shared};
use crate::time::ceph_stamp;
use serde_json::{Value, json};

/// The health checks in force now.
fn health_json(sh: &Shared, mds_down: bool, detail: bool) -> Value {
    let mut checks = serde_json::Map::new();
    if mds_down {
        let mut c = json!({
            "severity": "HEALTH_ERR",
            "summary": {"message": "1 filesystem is offline", "count": 1},
            "muted": false,
        });
        if detail {
            c["detail"] = json!([{"message": format!("fs {} is offline because no MDS is active for it.", sh.maps.filesystems.first().map_or("", |f| f.name.as_str()))}]);
        }
        checks.insert("MDS_ALL_DOWN".into(), c);
    }
    let status = if checks.is_empty() {
        "HEALTH_OK"
    } else {
        "HEALTH_ERR"
    };
    json!({"status": status, "checks": checks, "mutes": []})
}

fn fs_ls(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let sh = inner.shared.lock();
    let f = args.format();
    if f.is_json() {
        return Ok(Reply::ok(f.render(&sh.maps.fs_ls_json())));
    }
    let mut out = String::new();
    for fs in &sh.maps.filesystems {
        let pools: Vec<String> = fs
            .data_pools
            .iter()
            .map(|p| sh.maps.pool_name(*p))
            .collect();
        out.push_str(&format!(
            "name: {}, metadata pool: {}, data pools: [{} ]\n",
            fs.name,
            sh.maps.pool_name(fs.metadata_pool),
            pools.join(" ")
        ));
    }
    Ok(Reply::ok(out))
}

fn fs_dump(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let mds_down = inner.mds.is_down();
    let sh = inner.shared.lock();
    let dump = sh.maps.fs_dump_json(!mds_down);
    let status = format!("dumped fsmap epoch {}", sh.maps.fsmap_epoch);
    let f = args.format();
    if f.is_json() {
        return Ok(Reply::ok_with_status(f.render(&dump), status));
    }
    let mut out = format!(
        "e{}\nenable_multiple, ever_enabled_multiple: 1,1\n",
        sh.maps.fsmap_epoch
    );
    out.push_str(&format!(
        "legacy client fscid: {}\n \n",
        dump["default_fscid"]
    ));
    for fs in &sh.maps.filesystems {
        out.push_str(&format!(
            "Filesystem '{}' ({})\nfs_name\t{}\nepoch\t{}\nmax_mds\t1\nin\t0\nup\t{}\nmetadata_pool\t{}\ndata_pools\t{:?}\n",
            fs.name,
            fs.id,
            fs.name,
            sh.maps.fsmap_epoch,
            if mds_down { "{}".to_string() } else { format!("{{0={}}}", fs.mds_gid) },
            fs.metadata_pool,
            fs.data_pools
        ));
    }
    Ok(Reply::ok_with_status(out, status))
}

fn fs_volume_ls(inner: &Inner, _a: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let sh = inner.shared.lock();
    let v: Vec<Value> = sh
        .maps
        .filesystems
        .iter()
        .map(|f| json!({"name": f.name}))
        .collect();
    Ok(Reply::ok(
        serde_json::to_string_pretty(&v).unwrap_or_default(),
    ))
}

fn mon_dump(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let sh = inner.shared.lock();
    let m = sh.maps.monmap_json();
    let f = args.format();
    let status = "dumped monmap epoch 1".to_string();
    if f.is_json() {
        return Ok(Reply::ok_with_status(f.render(&m), status));
    }
    let mut out = format!(
        "epoch 1\nfsid {}\nlast_changed {}\ncreated {}\nmin_mon_release 16 (pacific)\nelection_strategy: 1\n",
        sh.maps.fsid,
        m["modified"].as_str().unwrap_or(""),
        m["created"].as_str().unwrap_or("")
    );
    for (rank, addr) in sh.maps.mon_addrs.iter().enumerate() {
        let ip = addr.rsplit_once(':').map_or(addr.as_str(), |(ip, _)| ip);
        out.push_str(&format!(
            "{rank}: [v2:{ip}:3300/0,v1:{addr}/0] mon.{}\n",
            mon_name(rank)
        ));
    }
    Ok(Reply::ok_with_status(out, status))
}

fn quorum_status(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let sh = inner.shared.lock();
    let n = sh.maps.mon_addrs.len();
    let v = json!({
        "election_epoch": 3,
        "quorum": (0..n).collect::<Vec<_>>(),
        "quorum_names": (0..n).map(mon_name).collect::<Vec<_>>(),
        "quorum_leader_name": mon_name(0),
        "quorum_age": inner.started.elapsed().as_secs(),
        "features": {
            "quorum_con": "4540138314316775423",
            "quorum_mon": ["kraken", "luminous", "mimic", "osdmap-prune", "nautilus", "octopus", "pacific", "elector-pinging"]
        },
        "monmap": sh.maps.monmap_json(),
    });
    // quorum_status answers JSON whatever the format.
    Ok(Reply::ok(args.format().render(&v)))
}

fn health(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let sh = inner.shared.lock();
    let detail = args.str("detail") == Some("detail");
    let h = health_json(&sh, inner.mds.is_down(), detail);
    let f = args.format();
    if f.is_json() {
        return Ok(Reply::ok(f.render(&h)));
    }
    let mut out = h["status"].as_str().unwrap_or("HEALTH_OK").to_string();
    if let Some(checks) = h["checks"].as_object() {
        for (name, c) in checks {
            out.push_str(&format!(
                "; {}",
                c["summary"]["message"].as_str().unwrap_or(name)
            ));
            if detail {
                out.push_str(&format!("\n[ERR] {name}: {}", c["summary"]["message"]));
            }
        }
    }
    out.push('\n');
    Ok(Reply::ok(out))
}

fn status(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let mds_down = inner.mds.is_down();
    let sh = inner.shared.lock();
    let n = sh.maps.mon_addrs.len();
    let up = u64::from(!mds_down);
    let by_rank: Vec<Value> = if mds_down {
        vec![]
    } else {
        sh.maps
            .filesystems
            .iter()
            .map(|f| json!({"filesystem_id": f.id, "rank": 0, "name": f.mds_name, "status": "up:active", "gid": f.mds_gid}))
            .collect()
    };
    let pools = sh.maps.pools.len();
    let v = json!({
        "fsid": sh.maps.fsid,
        "health": health_json(&sh, mds_down, false),
        "election_epoch": 3,
        "quorum": (0..n).collect::<Vec<_>>(),
        "quorum_names": (0..n).map(mon_name).collect::<Vec<_>>(),
        "quorum_age": inner.started.elapsed().as_secs(),
        "monmap": {"epoch": 1, "min_mon_release_name": "pacific", "num_mons": n},
        "osdmap": {"epoch": 20, "num_osds": 1, "num_up_osds": 1, "osd_up_since": sh.maps.created.as_secs(), "num_in_osds": 1, "osd_in_since": sh.maps.created.as_secs(), "num_remapped_pgs": 0},
        "pgmap": {
            "pgs_by_state": [{"state_name": "active+clean", "count": pools * 8}],
            "num_pgs": pools * 8,
            "num_pools": pools,
            "num_objects": sh.rados.object_count(),
            "data_bytes": 0,
            "bytes_used": 0,
            "bytes_avail": inner.config.capacity_bytes,
            "bytes_total": inner.config.capacity_bytes,
        },
        "fsmap": {
            "epoch": sh.maps.fsmap_epoch,
            "id": sh.maps.filesystems.first().map_or(0, |f| f.id),
            "up": up,
            "in": 1,
            "max": 1,
            "by_rank": by_rank,
            "up:standby": 0,
        },
        "mgrmap": {"available": true, "num_standbys": 0, "modules": ["iostat", "restful"], "services": {}},
        "servicemap": {"epoch": 1, "modified": ceph_stamp(sh.maps.created), "services": {}},
        "progress_events": {},
    });
    let f = args.format();
    if f.is_json() {
        return Ok(Reply::ok(f.render(&v)));
    }
    let out = format!(
        "  cluster:\n    id:     {}\n    health: {}\n \n  services:\n    mon: {n} daemons, quorum {}\n    mgr: x(active)\n    mds: {}/1 daemons up\n    osd: 1 osds: 1 up, 1 in\n",
        sh.maps.fsid,
        v["health"]["status"].as_str().unwrap_or(""),
        (0..n).map(mon_name).collect::<Vec<_>>().join(","),
        up
    );
    Ok(Reply::ok(out))
}

fn osd_pool_ls(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let sh = inner.shared.lock();
    let f = args.format();
    let detail = args.str("detail") == Some("detail");
    if f.is_json() {
        let v: Vec<Value> = if detail {
            sh.maps
                .pools
                .iter()
                .map(|p| {
                    let mut apps = serde_json::Map::new();
                    for (app, k, v) in &p.tags.tags {
                        let e = apps.entry(app.clone()).or_insert_with(|| json!({}));
                        if !k.is_empty() {
                            e[k] = json!(v);
                        }
                    }
                    pool_detail(p, &sh.maps, apps)
                })
                .collect()
        } else {
            sh.maps.pools.iter().map(|p| json!(p.name)).collect()
        };
        return Ok(Reply::ok(f.render(&Value::Array(v))));
    }
    let mut out = String::new();
    for p in &sh.maps.pools {
        out.push_str(&p.name);
        out.push('\n');
    }
    Ok(Reply::ok(out))
}

fn df(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let used = inner.fs_used_bytes();
    let sh = inner.shared.lock();
    let total = inner.config.capacity_bytes;
    let avail = total.saturating_sub(used);
    let pools: Vec<Value> = sh
        .maps
        .pools
        .iter()
        .map(|p| {
            let is_data = p.tags.tags.iter().any(|(a, k, _)| a == "cephfs" && k == "data");
            let stored = if is_data { used } else { 0 };
            json!({"name": p.name, "id": p.id, "stats": {
                "stored": stored, "objects": sh.rados.pool_object_count(&p.name), "kb_used": stored / 1024,
                "bytes_used": stored, "percent_used": if total == 0 { 0.0 } else { stored as f64 / total as f64 },
                "max_avail": avail
            }})
        })
        .collect();
    let v = json!({
        "stats": {"total_bytes": total, "total_avail_bytes": avail, "total_used_bytes": used, "total_used_raw_bytes": used,
                  "total_used_raw_ratio": if total == 0 { 0.0 } else { used as f64 / total as f64 }, "num_osds": 1, "num_per_pool_osds": 1, "num_per_pool_omap_osds": 1},
        "stats_by_class": {"hdd": {"total_bytes": total, "total_avail_bytes": avail, "total_used_bytes": used, "total_used_raw_bytes": used,
                                   "total_used_raw_ratio": if total == 0 { 0.0 } else { used as f64 / total as f64 }}},
        "pools": pools,
    });
    let f = args.format();
    if f.is_json() {
        return Ok(Reply::ok(f.render(&v)));
    }
    Ok(Reply::ok(format!(
        "--- RAW STORAGE ---\nCLASS  SIZE  AVAIL  USED\nTOTAL  {total}  {avail}  {used}\n"
    )))
}

fn version(_inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let f = args.format();
    if f.is_json() {
        return Ok(Reply::ok(f.render(&json!({"version": CEPH_VERSION}))));
    }
    Ok(Reply::ok(format!("{CEPH_VERSION}\n")))
}

/// The per-pool options `fs volume create` and the mgr set, as on 16.2.
fn pool_options(p: &Pool) -> Value {
    let has = |k: &str| {
        p.tags
            .tags
            .iter()
            .any(|(a, key, _)| a == "cephfs" && key == k)
    };
    if has("metadata") {
        json!({"pg_autoscale_bias": 4, "pg_num_min": 16, "recovery_priority": 5})
    } else if has("data") {
        json!({})
    } else {
        json!({"pg_num_max": 32, "pg_num_min": 1})
    }
}

/// `osd pool ls detail`: every field Ceph 16.2 prints for a pool.
fn pool_detail(p: &Pool, maps: &Maps, apps: serde_json::Map<String, Value>) -> Value {
    json!({
        "pool_id": p.id, "pool_name": p.name, "create_time": ceph_stamp(maps.created),
        "flags": 1, "flags_names": "hashpspool", "type": 1, "size": 1, "min_size": 1,
        "crush_rule": 0, "peering_crush_bucket_count": 0, "peering_crush_bucket_target": 0,
        "peering_crush_bucket_barrier": 0, "peering_crush_bucket_mandatory_member": 2_147_483_647,
        "object_hash": 2, "pg_autoscale_mode": "off", "pg_num": 8, "pg_placement_num": 8,
        "pg_placement_num_target": 8, "pg_num_target": 8, "pg_num_pending": 8,
        "last_pg_merge_meta": {"source_pgid": "0.0", "ready_epoch": 0, "last_epoch_started": 0,
            "last_epoch_clean": 0, "source_version": "0'0", "target_version": "0'0"},
        "last_change": "9", "last_force_op_resend": "0", "last_force_op_resend_prenautilus": "0",
        "last_force_op_resend_preluminous": "0", "auid": 0, "snap_mode": "selfmanaged",
        "snap_seq": 0, "snap_epoch": 0, "pool_snaps": [], "removed_snaps": "[]",
        "quota_max_bytes": 0, "quota_max_objects": 0, "tiers": [], "tier_of": -1,
        "read_tier": -1, "write_tier": -1, "cache_mode": "none", "target_max_bytes": 0,
        "target_max_objects": 0, "cache_target_dirty_ratio_micro": 400_000,
        "cache_target_dirty_high_ratio_micro": 600_000, "cache_target_full_ratio_micro": 800_000,
        "cache_min_flush_age": 0, "cache_min_evict_age": 0, "erasure_code_profile": "",
        "hit_set_params": {"type": "none"}, "hit_set_period": 0, "hit_set_count": 0,
        "use_gmt_hitset": true, "min_read_recency_for_promote": 0,
        "min_write_recency_for_promote": 0, "hit_set_grade_decay_rate": 0,
        "hit_set_search_last_n": 0, "grade_table": [], "stripe_width": 0,
        "expected_num_objects": 0, "fast_read": false,
        "options": pool_options(p),
        "application_metadata": apps,
    })
}

fn fs_get(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let name = args.req_str("fs_name")?;
    let mds_down = inner.mds.is_down();
    let sh = inner.shared.lock();
    let fs = sh
        .maps
        .fs(name)
        .map_err(|_| CephError::noent(format!("filesystem '{name}' not found")))?;
    let v = json!({"mdsmap": sh.maps.mdsmap_json(fs, !mds_down), "id": fs.id});
    let f = args.format();
    if f.is_json() {
        return Ok(Reply::ok(f.render(&v)));
    }
    Ok(Reply::ok(format!(
        "Filesystem '{}' ({})\nfs_name\t{}\nepoch\t{}\nmetadata_pool\t{}\ndata_pools\t{:?}\n",
        fs.name, fs.id, fs.name, sh.maps.fsmap_epoch, fs.metadata_pool, fs.data_pools
    )))
}

fn fsid(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let fsid = inner.shared.lock().maps.fsid.clone();
    let f = args.format();
    if f.is_json() {
        return Ok(Reply::ok(f.render(&json!({"fsid": fsid}))));
    }
    Ok(Reply::ok(format!("{fsid}\n")))
}

fn osd_pool_get(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let name = args.req_str("pool")?;
    let var = args.req_str("var")?;
    let sh = inner.shared.lock();
    let p = sh
        .maps
        .pool_by_name(name)
        .ok_or_else(|| CephError::noent(format!("unrecognized pool '{name}'")))?;
    let value = match var {
        "size" | "min_size" => json!(1),
        "pg_num" | "pgp_num" => json!(8),
        "crush_rule" => json!("replicated_rule"),
        "pg_autoscale_mode" => json!("off"),
        _ => return Err(CephError::inval(format!("invalid variable '{var}'"))),
    };
    let f = args.format();
    if f.is_json() {
        let mut m = serde_json::Map::new();
        m.insert("pool".into(), json!(p.name));
        m.insert("pool_id".into(), json!(p.id));
        m.insert(var.into(), value);
        return Ok(Reply::ok(f.render(&Value::Object(m))));
    }
    let shown = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned);
    Ok(Reply::ok(format!("{var}: {shown}\n")))
}

/// Per-pool usage as the mgr reports it: data pools hold the tree's bytes.
fn pool_usage(inner: &Inner, sh: &Shared, pool: &Pool) -> (u64, u64) {
    let used = if pool
        .tags
        .tags
        .iter()
        .any(|(a, k, _)| a == "cephfs" && k == "data")
    {
        inner.fs_used_bytes()
    } else {
        0
    };
    let _ = sh;
    (used, inner.config.capacity_bytes.saturating_sub(used))
}

/// `fs volume info` (mgr `volumes`).
fn fs_volume_info(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let vol = args.req_str("vol_name")?;
    let sh = inner.shared.lock();
    let fs = sh
        .maps
        .fs(vol)
        .map_err(|_| CephError::noent(format!("FS '{vol}' not found")))?;
    let pool_json = |id: i64| {
        sh.maps.pool(id).map(|p| {
            let (used, avail) = pool_usage(inner, &sh, p);
            json!({"avail": avail, "name": p.name, "used": used})
        })
    };
    let data: Vec<Value> = fs
        .data_pools
        .iter()
        .filter_map(|id| pool_json(*id))
        .collect();
    let meta: Vec<Value> = pool_json(fs.metadata_pool).into_iter().collect();
    let v = json!({
        "mon_addrs": sh.maps.mon_addrs,
        "pending_subvolume_deletions": inner.purger.pending(),
        "pools": {"data": data, "metadata": meta},
        "used_size": inner.fs_used_bytes(),
    });
    Ok(Reply::ok(crate::command::py_json(&v, 4)))
}

/// `fs status` (mgr `status` module).
fn fs_status(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let mds_down = inner.mds.is_down();
    let sessions = inner.mds.session_count();
    let inodes = inner.mds.inodes();
    let caps = inner.mds.caps();
    let sh = inner.shared.lock();
    let wanted = args.str("fs");
    let mut clients = Vec::new();
    let mut mdsmap = Vec::new();
    let mut pools = Vec::new();
    for fs in sh
        .maps
        .filesystems
        .iter()
        .filter(|f| wanted.is_none_or(|w| w == f.name))
    {
        clients.push(json!({"clients": sessions, "fs": fs.name}));
        if !mds_down {
            mdsmap.push(
                json!({"caps": caps, "dirs": 0, "dns": inodes, "inos": inodes,
                "name": fs.mds_name, "rank": 0, "rate": 0, "state": "active"}),
            );
        }
        for (id, kind) in std::iter::once((fs.metadata_pool, "metadata"))
            .chain(fs.data_pools.iter().map(|d| (*d, "data")))
        {
            if let Some(p) = sh.maps.pool(id) {
                let (used, avail) = pool_usage(inner, &sh, p);
                pools.push(
                    json!({"avail": avail, "id": p.id, "name": p.name, "type": kind, "used": used}),
                );
            }
        }
    }
    if let Some(w) = wanted
        && clients.is_empty()
    {
        return Err(CephError::noent(format!("Filesystem '{w}' not found")));
    }
    let v = json!({
        "clients": clients,
        "mds_version": CEPH_VERSION,
        "mdsmap": mdsmap,
        "pools": pools,
    });
    let f = args.format();
    if f.is_json() {
        return Ok(Reply::ok(v.to_string()));
    }
    let mut out = String::new();
    for fs in sh
        .maps
        .filesystems
        .iter()
        .filter(|f| wanted.is_none_or(|w| w == f.name))
    {
        out.push_str(&format!("{} - {sessions} clients\n", fs.name));
        out.push_str("RANK  STATE  MDS  ACTIVITY  DNS  INOS  DIRS  CAPS\n");
        if !mds_down {
            out.push_str(&format!(
                " 0    active  {}  Reqs: 0 /s  {inodes}  {inodes}  0  {caps}\n",
                fs.mds_name
            ));
        }
    }
    out.push_str(&format!("MDS version: {CEPH_VERSION}\n"));
    Ok(Reply::ok(out))
}

const FORMAT: crate::command::ArgSpec = opt("format", ArgType::Str);

/// The map commands.
pub(crate) const COMMANDS: CommandTable = &[
    (
        CommandSpec {
            prefix: "fs ls",
            daemon: Daemon::Mon,
            module: "fs",
            perm: "r",
            args: &[FORMAT],
        },
        fs_ls,
    ),
    (
        CommandSpec {
            prefix: "fs dump",
            daemon: Daemon::Mon,
            module: "mds",
            perm: "r",
            args: &[FORMAT, opt("epoch", ArgType::Int)],
        },
        fs_dump,
    ),
    (
        CommandSpec {
            prefix: "fs volume ls",
            daemon: Daemon::Mgr,
            module: "volumes",
            perm: "r",
            args: &[FORMAT],
        },
        fs_volume_ls,
    ),
    (
        CommandSpec {
            prefix: "mon dump",
            daemon: Daemon::Mon,
            module: "mon",
            perm: "r",
            args: &[FORMAT, opt("epoch", ArgType::Int)],
        },
        mon_dump,
    ),
    (
        CommandSpec {
            prefix: "quorum_status",
            daemon: Daemon::Mon,
            module: "mon",
            perm: "r",
            args: &[FORMAT],
        },
        quorum_status,
    ),
    (
        CommandSpec {
            prefix: "status",
            daemon: Daemon::Mon,
            module: "mon",
            perm: "r",
            args: &[FORMAT],
        },
        status,
    ),
    (
        CommandSpec {
            prefix: "health",
            daemon: Daemon::Mon,
            module: "mon",
            perm: "r",
            args: &[FORMAT, opt("detail", ArgType::Str)],
        },
        health,
    ),
    (
        CommandSpec {
            prefix: "osd pool ls",
            daemon: Daemon::Mon,
            module: "osd",
            perm: "r",
            args: &[FORMAT, opt("detail", ArgType::Str)],
        },
        osd_pool_ls,
    ),
    (
        CommandSpec {
            prefix: "df",
            daemon: Daemon::Mon,
            module: "mon",
            perm: "r",
            args: &[FORMAT, opt("detail", ArgType::Str)],
        },
        df,
    ),
    (
        CommandSpec {
            prefix: "fs get",
            daemon: Daemon::Mon,
            module: "fs",
            perm: "r",
            args: &[FORMAT, crate::command::req("fs_name", ArgType::Str)],
        },
        fs_get,
    ),
    (
        CommandSpec {
            prefix: "fsid",
            daemon: Daemon::Mon,
            module: "mon",
            perm: "r",
            args: &[FORMAT],
        },
        fsid,
    ),
    (
        CommandSpec {
            prefix: "osd pool get",
            daemon: Daemon::Mon,
            module: "osd",
            perm: "r",
            args: &[
                FORMAT,
                crate::command::req("pool", ArgType::Str),
                crate::command::req("var", ArgType::Str),
            ],
        },
        osd_pool_get,
    ),
    (
        CommandSpec {
            prefix: "fs volume info",
            daemon: Daemon::Mgr,
            module: "volumes",
            perm: "r",
            args: &[FORMAT, crate::command::req("vol_name", ArgType::Str)],
        },
        fs_volume_info,
    ),
    (
        CommandSpec {
            prefix: "fs status",
            daemon: Daemon::Mgr,
            module: "status",
            perm: "r",
            args: &[FORMAT, opt("fs", ArgType::Str)],
        },
        fs_status,
    ),
    (
        CommandSpec {
            prefix: "version",
            daemon: Daemon::Mon,
            module: "mon",
            perm: "r",
            args: &[FORMAT],
        },
        version,
    ),
];
