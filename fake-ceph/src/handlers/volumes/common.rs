//! What the `volumes` handlers share: the names a command gives, locking a volume (and
//! advancing its clones), Ceph's errors and gates, and the tree's paths. A leaf among
//! them: it imports none of its sibling modules.

use std::path::{Path, PathBuf};

use crate::command::Args;
use crate::error::{CephError, CephResult, errno};
use crate::state::{Inner, Shared};
use crate::store::RecordKey;
use crate::tree::check_name;

use crate::volumes::clones::CloneWorld;
use crate::volumes::*;

/// The names of a subvolume in a command.
pub(super) struct Names<'a> {
    pub(super) vol: &'a str,
    pub(super) group: &'a str,
    pub(super) name: &'a str,
}

impl Names<'_> {
    pub(super) fn key(&self) -> (String, String) {
        (self.vol.to_owned(), self.group.to_owned())
    }

    pub(super) fn ceph_dir(&self) -> String {
        format!("/volumes/{}/{}", self.group, self.name)
    }
}

pub(super) fn group_arg<'a>(args: &Args<'a>, key: &str) -> &'a str {
    match args.str(key) {
        Some(g) if !g.is_empty() => g,
        _ => NO_GROUP,
    }
}

/// Ceph refuses to let a caller name the implicit group.
pub(super) fn nogroup_refused() -> CephError {
    CephError::new(
        errno::EPERM,
        format!("Operation not permitted for group '{NO_GROUP}' as it is an internal group."),
    )
}

/// A group given explicitly: `_nogroup` is refused, as Ceph refuses it.
pub(super) fn explicit_group<'a>(args: &Args<'a>, key: &str) -> CephResult<&'a str> {
    match args.str(key) {
        Some(NO_GROUP) => Err(nogroup_refused()),
        _ => Ok(group_arg(args, key)),
    }
}

pub(super) fn names<'a>(args: &Args<'a>, name_key: &str) -> CephResult<Names<'a>> {
    Ok(Names {
        vol: args.req_str("vol_name")?,
        group: explicit_group(args, "group_name")?,
        name: args.req_str(name_key)?,
    })
}

/// Checks a new group's name: the internal directories are not groups.
pub(super) fn check_group_name(group: &str) -> CephResult<()> {
    if group == NO_GROUP {
        return Err(nogroup_refused());
    }
    if matches!(group, "_deleting" | "_index" | "_legacy") {
        return Err(CephError::inval(format!(
            "'{group}' is an internal directory and not a valid group name."
        )));
    }
    check_name("subvolume group", group)
}

pub(super) fn require_mds(inner: &Inner) -> CephResult<()> {
    if inner.mds.is_down() {
        return Err(CephError::new(
            errno::ETIMEDOUT,
            "error calling ceph_mount: no MDS is active for the file system",
        ));
    }
    Ok(())
}

/// Locks the state, checks the volume exists and advances clones.
pub(super) fn open<'a>(
    inner: &'a Inner,
    vol: &str,
) -> CephResult<parking_lot::MutexGuard<'a, Shared>> {
    require_mds(inner)?;
    let mut sh = inner.shared.lock();
    sh.maps
        .fs(vol)
        .map_err(|_| CephError::noent(format!("FS '{vol}' not found")))?;
    let faults = sh.faults.clone();
    let draw = || inner.draw();
    sh.volumes.tick(&CloneWorld {
        now: inner.config.clock.now(),
        data: &inner.data,
        faults: &faults,
        draw: &draw,
        mds: &inner.mds,
    });
    Ok(sh)
}

pub(super) fn group_missing(group: &str) -> CephError {
    CephError::noent(format!("subvolume group '{group}' does not exist"))
}

pub(super) fn subvolume_missing(name: &str) -> CephError {
    CephError::noent(format!("subvolume '{name}' does not exist"))
}

pub(super) fn not_ready(name: &str, op: &str) -> CephError {
    CephError::new(
        errno::EAGAIN,
        format!("subvolume '{name}' is not ready for operation {op}"),
    )
}

pub(super) fn retained(name: &str) -> CephError {
    CephError::noent(format!(
        "subvolume '{name}' is removed and has only snapshots retained"
    ))
}

/// Ceph's `allowed_ops_by_state`: an incomplete clone allows only removal with force and
/// the clone commands; a retained subvolume only snapshot listing, info and removal.
pub(super) fn gate(sv: &Subvolume, name: &str, op: &str) -> CephResult<()> {
    match sv.state {
        State::Complete => Ok(()),
        State::SnapshotRetained => {
            if matches!(
                op,
                "info" | "snap-ls" | "snap-info" | "snap-rm" | "clone-source" | "rm"
            ) {
                Ok(())
            } else {
                Err(retained(name))
            }
        }
        _ => {
            if matches!(op, "rm-force" | "clone-status" | "clone-cancel") {
                Ok(())
            } else {
                Err(not_ready(name, op))
            }
        }
    }
}

pub(super) fn get_sv<'s>(sh: &'s Shared, n: &Names<'_>, op: &str) -> CephResult<&'s Subvolume> {
    let group = sh.volumes.groups.get(&n.key()).ok_or_else(|| {
        if n.group == NO_GROUP {
            subvolume_missing(n.name)
        } else {
            group_missing(n.group)
        }
    })?;
    let sv = group
        .subvolumes
        .get(n.name)
        .ok_or_else(|| subvolume_missing(n.name))?;
    gate(sv, n.name, op)?;
    Ok(sv)
}

pub(super) fn get_sv_mut<'s>(
    sh: &'s mut Shared,
    n: &Names<'_>,
    op: &str,
) -> CephResult<&'s mut Subvolume> {
    let group = sh.volumes.groups.get_mut(&n.key()).ok_or_else(|| {
        if n.group == NO_GROUP {
            subvolume_missing(n.name)
        } else {
            group_missing(n.group)
        }
    })?;
    let sv = group
        .subvolumes
        .get_mut(n.name)
        .ok_or_else(|| subvolume_missing(n.name))?;
    gate(sv, n.name, op)?;
    sh.volumes.marks.mark(RecordKey::Subvolume(
        n.vol.to_owned(),
        n.group.to_owned(),
        n.name.to_owned(),
    ));
    Ok(sv)
}

pub(super) fn parse_mode(mode: Option<&str>, default: u32) -> CephResult<u32> {
    match mode {
        None => Ok(default),
        Some(m) => u32::from_str_radix(m, 8)
            .ok()
            .filter(|v| *v <= 0o7777)
            .ok_or_else(|| CephError::inval(format!("Invalid mode '{m}'"))),
    }
}

pub(super) fn check_pool(sh: &Shared, vol: &str, pool: Option<&str>) -> CephResult<String> {
    let fs = sh.maps.fs(vol)?;
    match pool {
        None => Ok(sh
            .maps
            .pool(fs.data_pools[0])
            .map(|p| p.name.clone())
            .unwrap_or_default()),
        Some(p) => {
            let ok = sh
                .maps
                .pool_by_name(p)
                .is_some_and(|pool| fs.data_pools.contains(&pool.id));
            if ok {
                Ok(p.to_owned())
            } else {
                Err(CephError::inval(format!(
                    "Invalid pool layout '{p}'. It must be a valid data pool"
                )))
            }
        }
    }
}

/// The `size` of a create: a positive number of bytes; 0 or absent means no quota.
pub(super) fn create_size(args: &Args<'_>) -> CephResult<Option<u64>> {
    let bad = |raw: &str| CephError::inval(format!("invalid size specified: '{raw}'"));
    match args.int_checked("size", bad)? {
        Some(s) if s < 0 => Err(bad(&s.to_string())),
        Some(0) | None => Ok(None),
        Some(s) => Ok(Some(s as u64)),
    }
}

/// A subvolume's (or clone's) pool layout: Ceph words this check differently from the
/// group one.
pub(super) fn check_subvolume_pool(
    sh: &Shared,
    vol: &str,
    pool: Option<&str>,
) -> CephResult<String> {
    check_pool(sh, vol, pool).map_err(|e| match pool {
        Some(p) if e.errno == errno::EINVAL => CephError::inval(format!(
            "invalid pool layout '{p}' -- need a valid data pool"
        )),
        _ => e,
    })
}

/// The `new_size` of a resize: bytes, or `inf`/`infinite` for no quota (`None`).
pub(super) fn parse_new_size(raw: &str) -> CephResult<Option<u64>> {
    let t = raw.trim().to_lowercase();
    if t == "inf" || t == "infinite" {
        return Ok(None);
    }
    match t.parse::<i64>() {
        Ok(v) if v > 0 => Ok(Some(v as u64)),
        Ok(_) => Err(CephError::inval("Invalid subvolume size")),
        Err(_) => Err(CephError::inval(format!("invalid size option '{t}'"))),
    }
}

pub(super) fn bytes_pcent(used: u64, quota: u64) -> String {
    if quota == 0 {
        "undefined".into()
    } else {
        format!("{:.2}", used as f64 * 100.0 / quota as f64)
    }
}

pub(super) fn local_dir(inner: &Inner, vol: &str, group: &str, name: &str) -> PathBuf {
    inner
        .data
        .fs_root(vol)
        .join("volumes")
        .join(group)
        .join(name)
}

pub(super) fn io_err(ctx: &str) -> impl Fn(std::io::Error) -> CephError + '_ {
    move |e| CephError::from_io(ctx, &e)
}

/// Moves `dir` to the trash and queues it for purging.
pub(super) fn trash(inner: &Inner, sh: &mut Shared, vol: &str, dir: &Path) -> CephResult<()> {
    if !dir.exists() {
        return Ok(());
    }
    sh.volumes.trash_seq += 1;
    let trash_dir = inner.data.fs_root(vol).join("volumes").join("_deleting");
    std::fs::create_dir_all(&trash_dir).map_err(io_err("trash"))?;
    let dest = trash_dir.join(format!("{}-{}", sh.volumes.trash_seq, inner.new_uuid()));
    std::fs::rename(dir, &dest).map_err(io_err("trash"))?;
    inner.purger.enqueue(dest);
    Ok(())
}
