//! The mgr `volumes` module: subvolume groups, subvolumes, snapshots, clones, metadata
//! and per-subvolume cephx users, with Ceph's idempotency, gating and error codes.
//!
//! Subvolumes are "v2": user data lives in `/volumes/<group>/<name>/<uuid>`, snapshots
//! in `/volumes/<group>/<name>/.snap/<snap>/<uuid>`. Removal moves the subvolume to the
//! trash and purges it in the background. Clones run through Ceph's state machine
//! (pending, in-progress, complete, failed, canceled); their progress is evaluated
//! lazily whenever a command touches the volume, so no background task is needed and
//! a test sees the same sequence every time.
//!
//! This module holds the model (the records, their store encoding, recovery in
//! `recover` and the clone reconciler in `clones`); the commands are in
//! `handlers::volumes`.

pub(crate) mod clones;
mod recover;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{CephError, CephResult};
use crate::mds::QuotaRealm;
use crate::store::{Marks, RecordKey};

/// The name of the implicit group of subvolumes created without one.
pub const NO_GROUP: &str = "_nogroup";

/// `volumes` module options (Ceph's `mgr/volumes/*`) and the fake's clone timing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumesConfig {
    /// `max_concurrent_clones` (Ceph default 4).
    pub max_concurrent_clones: usize,
    /// `snapshot_clone_no_wait`: refuse a clone with EAGAIN when every cloner is busy.
    pub snapshot_clone_no_wait: bool,
    /// `snapshot_clone_delay`: seconds a new clone stays pending before a cloner picks it.
    pub snapshot_clone_delay: Duration,
    /// The fake's time for a cloner thread to pick up a pending clone.
    pub clone_pickup: Duration,
    /// The fake's time for an in-progress clone to copy its data, before size.
    pub clone_time: Duration,
    /// The fake's copy rate; 0 means size adds no time.
    pub clone_bytes_per_sec: u64,
    /// `pause_cloning`.
    pub pause_cloning: bool,
    /// `pause_purging`.
    pub pause_purging: bool,
}

impl Default for VolumesConfig {
    fn default() -> Self {
        Self {
            max_concurrent_clones: 4,
            snapshot_clone_no_wait: true,
            snapshot_clone_delay: Duration::ZERO,
            clone_pickup: Duration::from_millis(20),
            clone_time: Duration::from_millis(500),
            clone_bytes_per_sec: 0,
            pause_cloning: false,
            pause_purging: false,
        }
    }
}

/// A subvolume's lifecycle state, as `info` and `clone status` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum State {
    Complete,
    Pending,
    InProgress,
    Failed,
    Canceled,
    SnapshotRetained,
}

impl State {
    pub(crate) fn name(self) -> &'static str {
        match self {
            State::Complete => "complete",
            State::Pending => "pending",
            State::InProgress => "in-progress",
            State::Failed => "failed",
            State::Canceled => "canceled",
            State::SnapshotRetained => "snapshot-retained",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CloneSource {
    pub(crate) volume: String,
    pub(crate) group: String,
    pub(crate) subvolume: String,
    pub(crate) snapshot: String,
}

#[derive(Debug, Clone)]
pub(crate) struct CloneJob {
    pub(crate) source: CloneSource,
    pub(crate) seq: u64,
    pub(crate) queued: Instant,
    pub(crate) started: Option<Instant>,
    pub(crate) failure: Option<(i32, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub(crate) created_at: Duration,
    /// The subvolume UUID the snapshot's data lives under.
    pub(crate) uuid: String,
    pub(crate) metadata: BTreeMap<String, String>,
    /// Pending clones: (target name, target group).
    pub(crate) pending_clones: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Subvolume {
    pub(crate) uuid: String,
    pub(crate) created_at: Duration,
    pub(crate) mode: u32,
    pub(crate) uid: i64,
    pub(crate) gid: i64,
    pub(crate) pool: String,
    pub(crate) pool_namespace: String,
    pub(crate) realm: Arc<QuotaRealm>,
    pub(crate) state: State,
    pub(crate) is_clone: bool,
    pub(crate) clone: Option<CloneJob>,
    pub(crate) snapshots: BTreeMap<String, Snapshot>,
    pub(crate) metadata: BTreeMap<String, String>,
    /// auth_id -> access level, for `fs subvolume authorize`.
    pub(crate) authorized: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Group {
    pub(crate) created_at: Duration,
    pub(crate) mode: u32,
    pub(crate) uid: i64,
    pub(crate) gid: i64,
    pub(crate) pool: Option<String>,
    pub(crate) quota: Option<u64>,
    pub(crate) subvolumes: BTreeMap<String, Subvolume>,
}

/// Who created a cephx user through `fs subvolume authorize`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct AuthMeta {
    pub(crate) tenant_id: Option<String>,
}

/// A clone's job as the metadata store keeps it: times are Unix times, so that its
/// progress resumes where it was after a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CloneRecord {
    pub(crate) source: CloneSource,
    pub(crate) seq: u64,
    pub(crate) queued: Duration,
    pub(crate) started: Option<Duration>,
    pub(crate) failure: Option<(i32, String)>,
}

/// A subvolume as the metadata store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SubvolumeRecord {
    pub(crate) uuid: String,
    pub(crate) created_at: Duration,
    pub(crate) mode: u32,
    pub(crate) uid: i64,
    pub(crate) gid: i64,
    pub(crate) pool: String,
    pub(crate) pool_namespace: String,
    /// `ceph.quota.max_bytes`; 0 is none.
    pub(crate) quota: u64,
    pub(crate) state: State,
    pub(crate) is_clone: bool,
    pub(crate) clone: Option<CloneRecord>,
    pub(crate) snapshots: BTreeMap<String, Snapshot>,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) authorized: BTreeMap<String, String>,
}

/// A group as the metadata store keeps it (its subvolumes are records of their own).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GroupRecord {
    pub(crate) created_at: Duration,
    pub(crate) mode: u32,
    pub(crate) uid: i64,
    pub(crate) gid: i64,
    pub(crate) pool: Option<String>,
    pub(crate) quota: Option<u64>,
}

/// The `volumes` module's state, per file system.
#[derive(Debug)]
pub struct Volumes {
    pub(crate) groups: BTreeMap<(String, String), Group>,
    pub(crate) auth_meta: BTreeMap<String, AuthMeta>,
    pub(crate) options: VolumesConfig,
    /// The options set with `config set mgr mgr/volumes/...`, as given: Ceph keeps them
    /// in the monitors' config database, over the defaults the cluster started with.
    pub(crate) overrides: BTreeMap<String, String>,
    pub(crate) clone_seq: u64,
    pub(crate) trash_seq: u64,
    /// Every change is marked for the metadata store.
    pub(crate) marks: Marks,
}

impl Volumes {
    /// Empty, with the given options.
    pub fn new(options: VolumesConfig) -> Self {
        Self {
            groups: BTreeMap::new(),
            auth_meta: BTreeMap::new(),
            options,
            overrides: BTreeMap::new(),
            clone_seq: 0,
            trash_seq: 0,
            marks: Marks::default(),
        }
    }

    /// The options in force.
    pub(crate) fn options(&self) -> &VolumesConfig {
        &self.options
    }

    pub(crate) fn mark_sv(&self, fs: &str, g: &str, n: &str) {
        self.marks.mark(RecordKey::Subvolume(
            fs.to_owned(),
            g.to_owned(),
            n.to_owned(),
        ));
    }

    pub(crate) fn mark_group(&self, fs: &str, g: &str) {
        self.marks
            .mark(RecordKey::Group(fs.to_owned(), g.to_owned()));
    }

    pub(crate) fn mark_auth_meta(&self, auth_id: &str) {
        self.marks.mark(RecordKey::AuthMeta(auth_id.to_owned()));
    }

    /// A group, made (and marked) if missing: the implicit `_nogroup` is made so.
    pub(crate) fn group_entry(&mut self, fs: &str, g: &str) -> &mut Group {
        let key = (fs.to_owned(), g.to_owned());
        if !self.groups.contains_key(&key) {
            self.mark_group(fs, g);
        }
        self.groups.entry(key).or_default()
    }

    /// Marks the subvolume whose data path contains `path` (a quota set through a
    /// mount); whether there is one.
    pub(crate) fn mark_path(&self, fs: &str, path: &str) -> bool {
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        let (Some("volumes"), Some(g), Some(n)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        let known = self
            .groups
            .get(&(fs.to_owned(), g.to_owned()))
            .is_some_and(|grp| grp.subvolumes.contains_key(n));
        if known {
            self.mark_sv(fs, g, n);
        }
        known
    }

    /// The store's record of a subvolume; `None` if there is none.
    pub(crate) fn subvolume_record(
        &self,
        clock: &crate::time::Clock,
        fs: &str,
        g: &str,
        n: &str,
    ) -> Option<Vec<u8>> {
        let sv = self
            .groups
            .get(&(fs.to_owned(), g.to_owned()))?
            .subvolumes
            .get(n)?;
        crate::store::encode(&SubvolumeRecord {
            uuid: sv.uuid.clone(),
            created_at: sv.created_at,
            mode: sv.mode,
            uid: sv.uid,
            gid: sv.gid,
            pool: sv.pool.clone(),
            pool_namespace: sv.pool_namespace.clone(),
            quota: sv.realm.max_bytes(),
            state: sv.state,
            is_clone: sv.is_clone,
            clone: sv.clone.as_ref().map(|j| CloneRecord {
                source: j.source.clone(),
                seq: j.seq,
                queued: clock.to_unix(j.queued),
                started: j.started.map(|t| clock.to_unix(t)),
                failure: j.failure.clone(),
            }),
            snapshots: sv.snapshots.clone(),
            metadata: sv.metadata.clone(),
            authorized: sv.authorized.clone(),
        })
    }

    /// The store's record of a group; `None` if there is none.
    pub(crate) fn group_record(&self, fs: &str, g: &str) -> Option<Vec<u8>> {
        let grp = self.groups.get(&(fs.to_owned(), g.to_owned()))?;
        crate::store::encode(&GroupRecord {
            created_at: grp.created_at,
            mode: grp.mode,
            uid: grp.uid,
            gid: grp.gid,
            pool: grp.pool.clone(),
            quota: grp.quota,
        })
    }

    /// The store's record of who made a cephx user; `None` if nobody did.
    pub(crate) fn auth_meta_record(&self, auth_id: &str) -> Option<Vec<u8>> {
        crate::store::encode(self.auth_meta.get(auth_id)?)
    }

    /// The store's record of the options set at run time.
    pub(crate) fn options_record(&self) -> Option<Vec<u8>> {
        crate::store::encode(&self.overrides)
    }

    /// The quota realm and CephFS data path of the subvolume that contains `path`.
    pub fn realm_for_path(&self, fs: &str, path: &str) -> Option<(Arc<QuotaRealm>, String)> {
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        if parts.next()? != "volumes" {
            return None;
        }
        let group = parts.next()?;
        let name = parts.next()?;
        let uuid = parts.next()?;
        let sv = self
            .groups
            .get(&(fs.to_owned(), group.to_owned()))?
            .subvolumes
            .get(name)?;
        (sv.uuid == uuid).then(|| (sv.realm.clone(), format!("/volumes/{group}/{name}/{uuid}")))
    }

    /// How many subvolumes exist in all file systems.
    pub fn subvolume_count(&self) -> usize {
        self.groups.values().map(|g| g.subvolumes.len()).sum()
    }

    /// A subvolume to change: it is marked changed.
    pub(crate) fn sv_mut(&mut self, fs: &str, g: &str, n: &str) -> Option<&mut Subvolume> {
        let sv = self
            .groups
            .get_mut(&(fs.to_owned(), g.to_owned()))?
            .subvolumes
            .get_mut(n)?;
        self.marks.mark(RecordKey::Subvolume(
            fs.to_owned(),
            g.to_owned(),
            n.to_owned(),
        ));
        Some(sv)
    }

    pub(crate) fn detach_pending_clone(
        &mut self,
        src: &CloneSource,
        target: &str,
        target_group: &str,
    ) {
        if let Some(snap) = self
            .sv_mut(&src.volume, &src.group, &src.subvolume)
            .and_then(|sv| sv.snapshots.get_mut(&src.snapshot))
        {
            snap.pending_clones
                .retain(|(n, g)| !(n == target && g == target_group));
        }
    }

    pub(crate) fn running_clones(&self) -> usize {
        self.groups
            .values()
            .flat_map(|g| g.subvolumes.values())
            .filter(|s| matches!(s.state, State::Pending | State::InProgress))
            .count()
    }
}

/// Sets one `mgr/volumes/<opt>` option from its text, as `config set` does.
pub(crate) fn set_option(o: &mut VolumesConfig, opt: &str, value: &str) -> CephResult<()> {
    let bad = || {
        CephError::inval(format!(
            "error parsing value: '{value}' for mgr/volumes/{opt}"
        ))
    };
    let parse_bool = |v: &str| match v {
        "true" | "True" | "1" | "yes" => Ok(true),
        "false" | "False" | "0" | "no" => Ok(false),
        _ => Err(bad()),
    };
    match opt {
        "max_concurrent_clones" => o.max_concurrent_clones = value.parse().map_err(|_| bad())?,
        "snapshot_clone_no_wait" => o.snapshot_clone_no_wait = parse_bool(value)?,
        "snapshot_clone_delay" => {
            o.snapshot_clone_delay = Duration::from_secs(value.parse().map_err(|_| bad())?)
        }
        "pause_cloning" => o.pause_cloning = parse_bool(value)?,
        "pause_purging" => o.pause_purging = parse_bool(value)?,
        _ => {
            return Err(CephError::inval(format!(
                "unrecognized config option 'mgr/volumes/{opt}'"
            )));
        }
    }
    Ok(())
}

pub(crate) fn set_mode(dir: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    // The fake keeps owner access so that it can always purge what it created.
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o700));
}
