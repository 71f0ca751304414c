//! The mgr `volumes` module: subvolume groups, subvolumes, snapshots, clones, metadata
//! and per-subvolume cephx users, with Ceph's idempotency, gating and error codes.
//!
//! Subvolumes are "v2": user data lives in `/volumes/<group>/<name>/<uuid>`, snapshots
//! in `/volumes/<group>/<name>/.snap/<snap>/<uuid>`. Removal moves the subvolume to the
//! trash and purges it in the background. Clones run through Ceph's state machine
//! (pending, in-progress, complete, failed, canceled); their progress is evaluated
//! lazily whenever a command touches the volume, so no background task is needed and
//! a test sees the same sequence every time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cephx::{Caps, EntityName};
use crate::command::{ArgSpec, ArgType, Args, CommandSpec, Daemon, opt, py_json, req};
use crate::error::{CephError, CephResult, Reply, errno};
use crate::mds::QuotaRealm;
use crate::state::{Caller, CommandTable, Handler, Inner, Shared};
use crate::store::{Marks, RecordKey};
use crate::time::{ceph_time, ceph_time_micros, now_unix};
use crate::tree::{check_name, copy_tree, du};

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
enum State {
    Complete,
    Pending,
    InProgress,
    Failed,
    Canceled,
    SnapshotRetained,
}

impl State {
    fn name(self) -> &'static str {
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
struct CloneSource {
    volume: String,
    group: String,
    subvolume: String,
    snapshot: String,
}

#[derive(Debug, Clone)]
struct CloneJob {
    source: CloneSource,
    seq: u64,
    queued: Instant,
    started: Option<Instant>,
    failure: Option<(i32, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Snapshot {
    created_at: Duration,
    /// The subvolume UUID the snapshot's data lives under.
    uuid: String,
    metadata: BTreeMap<String, String>,
    /// Pending clones: (target name, target group).
    pending_clones: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct Subvolume {
    uuid: String,
    created_at: Duration,
    mode: u32,
    uid: i64,
    gid: i64,
    pool: String,
    pool_namespace: String,
    realm: Arc<QuotaRealm>,
    state: State,
    is_clone: bool,
    clone: Option<CloneJob>,
    snapshots: BTreeMap<String, Snapshot>,
    metadata: BTreeMap<String, String>,
    /// auth_id -> access level, for `fs subvolume authorize`.
    authorized: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
struct Group {
    created_at: Duration,
    mode: u32,
    uid: i64,
    gid: i64,
    pool: Option<String>,
    quota: Option<u64>,
    subvolumes: BTreeMap<String, Subvolume>,
}

/// Who created a cephx user through `fs subvolume authorize`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AuthMeta {
    tenant_id: Option<String>,
}

/// A clone's job as the metadata store keeps it: times are Unix times, so that its
/// progress resumes where it was after a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CloneRecord {
    source: CloneSource,
    seq: u64,
    queued: Duration,
    started: Option<Duration>,
    failure: Option<(i32, String)>,
}

/// A subvolume as the metadata store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SubvolumeRecord {
    uuid: String,
    created_at: Duration,
    mode: u32,
    uid: i64,
    gid: i64,
    pool: String,
    pool_namespace: String,
    /// `ceph.quota.max_bytes`; 0 is none.
    quota: u64,
    state: State,
    is_clone: bool,
    clone: Option<CloneRecord>,
    snapshots: BTreeMap<String, Snapshot>,
    metadata: BTreeMap<String, String>,
    authorized: BTreeMap<String, String>,
}

/// A group as the metadata store keeps it (its subvolumes are records of their own).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct GroupRecord {
    created_at: Duration,
    mode: u32,
    uid: i64,
    gid: i64,
    pool: Option<String>,
    quota: Option<u64>,
}

/// The `volumes` module's state, per file system.
#[derive(Debug)]
pub struct Volumes {
    groups: BTreeMap<(String, String), Group>,
    auth_meta: BTreeMap<String, AuthMeta>,
    options: VolumesConfig,
    /// The options set with `config set mgr mgr/volumes/...`, as given: Ceph keeps them
    /// in the monitors' config database, over the defaults the cluster started with.
    overrides: BTreeMap<String, String>,
    clone_seq: u64,
    trash_seq: u64,
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

    fn mark_sv(&self, fs: &str, g: &str, n: &str) {
        self.marks.mark(RecordKey::Subvolume(
            fs.to_owned(),
            g.to_owned(),
            n.to_owned(),
        ));
    }

    fn mark_group(&self, fs: &str, g: &str) {
        self.marks
            .mark(RecordKey::Group(fs.to_owned(), g.to_owned()));
    }

    fn mark_auth_meta(&self, auth_id: &str) {
        self.marks.mark(RecordKey::AuthMeta(auth_id.to_owned()));
    }

    /// A group, made (and marked) if missing: the implicit `_nogroup` is made so.
    fn group_entry(&mut self, fs: &str, g: &str) -> &mut Group {
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

    /// The state of the store's records over `options` (the cluster's configuration):
    /// nothing is marked and the tree is not looked at ([`Volumes::reconcile`] does that).
    pub(crate) fn restore(
        options: VolumesConfig,
        clock: &crate::time::Clock,
        loaded: &crate::store::Loaded,
    ) -> std::io::Result<Self> {
        let mut v = Self::new(options);
        if let Some(bytes) = &loaded.options {
            let overrides: BTreeMap<String, String> =
                crate::store::decode("volumes options", bytes)?;
            for (name, value) in overrides {
                // Each was checked when it was set; one this version refuses is dropped.
                if set_option(&mut v.options, &name, &value).is_ok() {
                    v.overrides.insert(name, value);
                }
            }
        }
        for ((fs, g), bytes) in &loaded.groups {
            let r: GroupRecord = crate::store::decode("subvolume group", bytes)?;
            v.groups.insert(
                (fs.clone(), g.clone()),
                Group {
                    created_at: r.created_at,
                    mode: r.mode,
                    uid: r.uid,
                    gid: r.gid,
                    pool: r.pool,
                    quota: r.quota,
                    subvolumes: BTreeMap::new(),
                },
            );
        }
        for ((fs, g, n), bytes) in &loaded.subvolumes {
            let r: SubvolumeRecord = crate::store::decode("subvolume", bytes)?;
            let clone = r.clone.map(|c| CloneJob {
                source: c.source,
                seq: c.seq,
                queued: clock.from_unix(c.queued),
                started: c.started.map(|t| clock.from_unix(t)),
                failure: c.failure,
            });
            v.clone_seq = v.clone_seq.max(clone.as_ref().map_or(0, |c| c.seq));
            v.groups
                .entry((fs.clone(), g.clone()))
                .or_default()
                .subvolumes
                .insert(
                    n.clone(),
                    Subvolume {
                        uuid: r.uuid,
                        created_at: r.created_at,
                        mode: r.mode,
                        uid: r.uid,
                        gid: r.gid,
                        pool: r.pool,
                        pool_namespace: r.pool_namespace,
                        realm: QuotaRealm::new(r.quota),
                        state: r.state,
                        is_clone: r.is_clone,
                        clone,
                        snapshots: r.snapshots,
                        metadata: r.metadata,
                        authorized: r.authorized,
                    },
                );
        }
        for (id, bytes) in &loaded.auth_meta {
            v.auth_meta
                .insert(id.clone(), crate::store::decode("auth metadata", bytes)?);
        }
        Ok(v)
    }

    /// Brings the records and the tree of file system `fs` (rooted at `fs_root`) into
    /// agreement after a restart, as if every command cut short by the crash had either
    /// finished or never started:
    ///
    /// - a directory under `/volumes` that the `volumes` module would have made but that
    ///   has no record (a group, a subvolume, a stray data directory, a snapshot: what a
    ///   create leaves when it dies before its commit) goes to the trash;
    /// - a subvolume whose data directory is gone (what a removal leaves when it dies
    ///   before its commit, or damage) is removed, or keeps only its snapshots if it has
    ///   any, as `rm --retain-snapshots` does; a snapshot whose directory is gone is
    ///   removed, and a retained subvolume left without snapshots with it;
    /// - a group whose directory is gone gets it back (a group holds no data);
    /// - a snapshot's pending clones are those clones that still wait for it.
    ///
    /// Changed records are marked. Names starting with `_` under `/volumes` other than
    /// `_nogroup` (the trash, `_index`, `_legacy`) and files are left alone.
    pub(crate) fn reconcile(&mut self, fs: &str, fs_root: &Path) -> std::io::Result<Reconciled> {
        let mut out = Reconciled::default();
        let vols = fs_root.join("volumes");
        std::fs::create_dir_all(&vols)?;
        let trash_dir = vols.join("_deleting");
        let mut to_trash: Vec<PathBuf> = Vec::new();
        // Groups: records without directories are made again; directories without
        // records go.
        for ((f, g), group) in &self.groups {
            let dir = vols.join(g);
            if f == fs && !dir.is_dir() {
                std::fs::create_dir_all(&dir)?;
                set_mode(&dir, group.mode);
                out.remade.push(format!("/volumes/{g}"));
            }
        }
        for name in subdirs(&vols)? {
            if (name.starts_with('_') && name != NO_GROUP)
                || self.groups.contains_key(&(fs.to_owned(), name.clone()))
            {
                continue;
            }
            to_trash.push(vols.join(&name));
        }
        let keys: Vec<(String, String)> = self
            .groups
            .keys()
            .filter(|(f, _)| f == fs)
            .cloned()
            .collect();
        for key in keys {
            let gdir = vols.join(&key.1);
            // Subvolume directories without records.
            for name in subdirs(&gdir)? {
                if !self.groups[&key].subvolumes.contains_key(&name) {
                    to_trash.push(gdir.join(&name));
                }
            }
            let names: Vec<String> = self.groups[&key].subvolumes.keys().cloned().collect();
            for name in names {
                let svdir = gdir.join(&name);
                let path = format!("/volumes/{}/{name}", key.1);
                let Some(sv) = self
                    .groups
                    .get_mut(&key)
                    .and_then(|g| g.subvolumes.get_mut(&name))
                else {
                    continue;
                };
                let mut changed = false;
                // Snapshots whose directories are gone.
                let gone: Vec<String> = sv
                    .snapshots
                    .iter()
                    .filter(|(snap, s)| !svdir.join(".snap").join(snap).join(&s.uuid).is_dir())
                    .map(|(snap, _)| snap.clone())
                    .collect();
                for snap in gone {
                    sv.snapshots.remove(&snap);
                    out.dropped.push(format!("{path}@{snap}"));
                    changed = true;
                }
                // Snapshot directories without records.
                for snap in subdirs(&svdir.join(".snap"))? {
                    if !sv.snapshots.contains_key(&snap) {
                        to_trash.push(svdir.join(".snap").join(snap));
                    }
                }
                let has_data = sv.state != State::SnapshotRetained && svdir.join(&sv.uuid).is_dir();
                if sv.state != State::SnapshotRetained && !has_data {
                    sv.state = State::SnapshotRetained;
                    sv.realm.set_used(0);
                    if !sv.snapshots.is_empty() {
                        out.dropped.push(format!("{path} (data; snapshots kept)"));
                    }
                    changed = true;
                }
                let remove = sv.state == State::SnapshotRetained && sv.snapshots.is_empty();
                // Data directories of other incarnations (a recreate that died).
                for d in subdirs(&svdir)? {
                    if looks_like_uuid(&d) && (d != sv.uuid || !has_data) {
                        to_trash.push(svdir.join(d));
                    }
                }
                if remove {
                    if let Some(g) = self.groups.get_mut(&key) {
                        g.subvolumes.remove(&name);
                    }
                    out.dropped.push(path);
                    if svdir.exists() {
                        to_trash.push(svdir);
                    }
                }
                if changed || remove {
                    self.mark_sv(fs, &key.1, &name);
                }
            }
        }
        // Pending clones are the clones still waiting for their snapshot.
        let waiting: std::collections::BTreeSet<(String, String, String, String, String, String)> =
            self.groups
                .iter()
                .filter(|((f, _), _)| f == fs)
                .flat_map(|((_, g), group)| {
                    group.subvolumes.iter().filter_map(move |(n, sv)| {
                        let job = sv.clone.as_ref()?;
                        matches!(sv.state, State::Pending | State::InProgress).then(|| {
                            let s = &job.source;
                            (
                                s.group.clone(),
                                s.subvolume.clone(),
                                s.snapshot.clone(),
                                n.clone(),
                                g.clone(),
                                s.volume.clone(),
                            )
                        })
                    })
                })
                .collect();
        let mut fixed = Vec::new();
        for ((f, g), group) in self.groups.iter_mut().filter(|((f, _), _)| f == fs) {
            for (n, sv) in group.subvolumes.iter_mut() {
                for (snap, s) in sv.snapshots.iter_mut() {
                    let before = s.pending_clones.len();
                    s.pending_clones.retain(|(tn, tg)| {
                        waiting.contains(&(
                            g.clone(),
                            n.clone(),
                            snap.clone(),
                            tn.clone(),
                            tg.clone(),
                            f.clone(),
                        ))
                    });
                    if s.pending_clones.len() != before {
                        fixed.push((g.clone(), n.clone()));
                    }
                }
            }
        }
        for (g, n) in fixed {
            self.mark_sv(fs, &g, &n);
        }
        to_trash.sort();
        to_trash.dedup();
        for dir in to_trash {
            // A directory inside one already trashed went with it.
            if !dir.exists() {
                continue;
            }
            std::fs::create_dir_all(&trash_dir)?;
            let mut k = 0u64;
            let dest = loop {
                let d = trash_dir.join(format!("recovered-{k}"));
                if !d.exists() {
                    break d;
                }
                k += 1;
            };
            std::fs::rename(&dir, &dest)?;
            out.trashed.push(dir);
        }
        Ok(out)
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

    /// Advances clones to `now`, replaying what the cloner threads did meanwhile: a
    /// pending clone starts when it has waited `snapshot_clone_delay` plus the pickup
    /// time and a cloner is free (oldest first); an in-progress one finishes after its
    /// copy time, copying the snapshot's data (or failing), and frees its cloner at that
    /// moment for the next one.
    fn tick(&mut self, inner: &Inner, faults: &crate::fault::Faults) {
        struct Active {
            seq: u64,
            key: (String, String, String),
            started: Option<Instant>,
            eligible: Instant,
            duration: Duration,
            bytes: u64,
            src_dir: Option<PathBuf>,
            source: CloneSource,
        }
        let now = inner.config.clock.now();
        let opts = self.options.clone();
        if opts.pause_cloning {
            return;
        }
        let mut active: Vec<Active> = Vec::new();
        for ((fs, g), group) in &self.groups {
            for (name, sv) in &group.subvolumes {
                let (Some(job), State::Pending | State::InProgress) = (&sv.clone, sv.state) else {
                    continue;
                };
                let src_dir = self.snapshot_data_dir(inner, &job.source);
                let bytes = src_dir.as_deref().map_or(0, du);
                let mut duration = opts.clone_time;
                if opts.clone_bytes_per_sec > 0 {
                    duration +=
                        Duration::from_secs_f64(bytes as f64 / opts.clone_bytes_per_sec as f64);
                }
                active.push(Active {
                    seq: job.seq,
                    key: (fs.clone(), g.clone(), name.clone()),
                    started: job.started,
                    eligible: job.queued + opts.snapshot_clone_delay + opts.clone_pickup,
                    duration,
                    bytes,
                    src_dir,
                    source: job.source.clone(),
                });
            }
        }
        active.sort_by_key(|a| a.seq);
        let max = opts.max_concurrent_clones.max(1);
        let mut free_since: Option<Instant> = None;
        loop {
            let finish = active
                .iter()
                .enumerate()
                .filter_map(|(i, a)| a.started.map(|s| (s + a.duration, i)))
                .min();
            let running = active.iter().filter(|a| a.started.is_some()).count();
            let start = if running < max {
                active
                    .iter()
                    .enumerate()
                    .find(|(_, a)| a.started.is_none())
                    .map(|(i, a)| (free_since.map_or(a.eligible, |f| f.max(a.eligible)), i))
            } else {
                None
            };
            match (
                finish.filter(|(t, _)| *t <= now),
                start.filter(|(t, _)| *t <= now),
            ) {
                (Some((tf, i)), s) if s.is_none_or(|(ts, _)| tf <= ts) => {
                    let job = active.remove(i);
                    free_since = Some(tf);
                    self.finish_clone(inner, faults, &job.key, job.src_dir, job.bytes, &job.source);
                }
                (_, Some((ts, i))) => {
                    active[i].started = Some(ts);
                    let (fs, g, n) = &active[i].key;
                    if let Some(sv) = self.sv_mut(fs, g, n) {
                        sv.state = State::InProgress;
                        if let Some(j) = sv.clone.as_mut() {
                            j.started = Some(ts);
                        }
                    }
                }
                _ => break,
            }
        }
    }

    /// Completes a clone: copies the snapshot's data, or records why it failed.
    fn finish_clone(
        &mut self,
        inner: &Inner,
        faults: &crate::fault::Faults,
        key: &(String, String, String),
        src_dir: Option<PathBuf>,
        bytes: u64,
        source: &CloneSource,
    ) {
        let (fs, g, n) = key;
        let injected = faults.decide("clone", || inner.draw()).fail;
        let Some(sv) = self.sv_mut(fs, g, n) else {
            return;
        };
        let dest = inner
            .data
            .fs_root(fs)
            .join("volumes")
            .join(g)
            .join(n)
            .join(&sv.uuid);
        let quota = sv.realm.max_bytes();
        let outcome = if let Some(e) = injected {
            Err((e, crate::error::strerror(e).to_owned()))
        } else if quota > 0 && bytes > quota {
            Err((errno::EDQUOT, "Disk quota exceeded".to_owned()))
        } else {
            match src_dir {
                Some(src) => copy_tree(&src, &dest)
                    .map(|_| ())
                    .map_err(|e| (e.raw_os_error().unwrap_or(errno::EIO), e.to_string())),
                None => Err((errno::ENOENT, "source snapshot does not exist".to_owned())),
            }
        };
        match outcome {
            Ok(()) => {
                sv.state = State::Complete;
                sv.realm.set_used(bytes);
                if let Some(j) = sv.clone.as_mut() {
                    j.failure = None;
                }
            }
            Err(f) => {
                sv.state = State::Failed;
                if let Some(j) = sv.clone.as_mut() {
                    j.failure = Some(f);
                }
            }
        }
        inner.mds.charge_internal(4);
        self.detach_pending_clone(source, n, g);
    }

    /// A subvolume to change: it is marked changed.
    fn sv_mut(&mut self, fs: &str, g: &str, n: &str) -> Option<&mut Subvolume> {
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

    fn snapshot_data_dir(&self, inner: &Inner, src: &CloneSource) -> Option<PathBuf> {
        let sv = self
            .groups
            .get(&(src.volume.clone(), src.group.clone()))?
            .subvolumes
            .get(&src.subvolume)?;
        let snap = sv.snapshots.get(&src.snapshot)?;
        Some(
            inner
                .data
                .fs_root(&src.volume)
                .join("volumes")
                .join(&src.group)
                .join(&src.subvolume)
                .join(".snap")
                .join(&src.snapshot)
                .join(&snap.uuid),
        )
    }

    fn detach_pending_clone(&mut self, src: &CloneSource, target: &str, target_group: &str) {
        if let Some(snap) = self
            .sv_mut(&src.volume, &src.group, &src.subvolume)
            .and_then(|sv| sv.snapshots.get_mut(&src.snapshot))
        {
            snap.pending_clones
                .retain(|(n, g)| !(n == target && g == target_group));
        }
    }

    fn running_clones(&self) -> usize {
        self.groups
            .values()
            .flat_map(|g| g.subvolumes.values())
            .filter(|s| matches!(s.state, State::Pending | State::InProgress))
            .count()
    }
}

/// What [`Volumes::reconcile`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Reconciled {
    /// Records dropped because their data was gone (CephFS paths; `@snap` for a
    /// snapshot).
    pub dropped: Vec<String>,
    /// Directories without a record, moved to the trash (local paths).
    pub trashed: Vec<PathBuf>,
    /// Group directories made again for their records (CephFS paths).
    pub remade: Vec<String>,
}

/// The names of the directories in `dir` (none if it does not exist).
fn subdirs(dir: &Path) -> std::io::Result<Vec<String>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e?;
        if e.file_type()?.is_dir()
            && let Some(name) = e.file_name().to_str()
        {
            out.push(name.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// Whether a name has the shape of the UUIDs the fake names data directories with.
fn looks_like_uuid(name: &str) -> bool {
    name.len() == 36
        && name.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The names of a subvolume in a command.
struct Names<'a> {
    vol: &'a str,
    group: &'a str,
    name: &'a str,
}

impl Names<'_> {
    fn key(&self) -> (String, String) {
        (self.vol.to_owned(), self.group.to_owned())
    }

    fn ceph_dir(&self) -> String {
        format!("/volumes/{}/{}", self.group, self.name)
    }
}

fn group_arg<'a>(args: &Args<'a>, key: &str) -> &'a str {
    match args.str(key) {
        Some(g) if !g.is_empty() => g,
        _ => NO_GROUP,
    }
}

/// Ceph refuses to let a caller name the implicit group.
fn nogroup_refused() -> CephError {
    CephError::new(
        errno::EPERM,
        format!("Operation not permitted for group '{NO_GROUP}' as it is an internal group."),
    )
}

/// A group given explicitly: `_nogroup` is refused, as Ceph refuses it.
fn explicit_group<'a>(args: &Args<'a>, key: &str) -> CephResult<&'a str> {
    match args.str(key) {
        Some(NO_GROUP) => Err(nogroup_refused()),
        _ => Ok(group_arg(args, key)),
    }
}

fn names<'a>(args: &Args<'a>, name_key: &str) -> CephResult<Names<'a>> {
    Ok(Names {
        vol: args.req_str("vol_name")?,
        group: explicit_group(args, "group_name")?,
        name: args.req_str(name_key)?,
    })
}

/// Checks a new group's name: the internal directories are not groups.
fn check_group_name(group: &str) -> CephResult<()> {
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

fn require_mds(inner: &Inner) -> CephResult<()> {
    if inner.mds.is_down() {
        return Err(CephError::new(
            errno::ETIMEDOUT,
            "error calling ceph_mount: no MDS is active for the file system",
        ));
    }
    Ok(())
}

/// Locks the state, checks the volume exists and advances clones.
fn open<'a>(inner: &'a Inner, vol: &str) -> CephResult<parking_lot::MutexGuard<'a, Shared>> {
    require_mds(inner)?;
    let mut sh = inner.shared.lock();
    sh.maps
        .fs(vol)
        .map_err(|_| CephError::noent(format!("FS '{vol}' not found")))?;
    let faults = sh.faults.clone();
    sh.volumes.tick(inner, &faults);
    Ok(sh)
}

fn group_missing(group: &str) -> CephError {
    CephError::noent(format!("subvolume group '{group}' does not exist"))
}

fn subvolume_missing(name: &str) -> CephError {
    CephError::noent(format!("subvolume '{name}' does not exist"))
}

fn not_ready(name: &str, op: &str) -> CephError {
    CephError::new(
        errno::EAGAIN,
        format!("subvolume '{name}' is not ready for operation {op}"),
    )
}

fn retained(name: &str) -> CephError {
    CephError::noent(format!(
        "subvolume '{name}' is removed and has only snapshots retained"
    ))
}

/// Ceph's `allowed_ops_by_state`: an incomplete clone allows only removal with force and
/// the clone commands; a retained subvolume only snapshot listing, info and removal.
fn gate(sv: &Subvolume, name: &str, op: &str) -> CephResult<()> {
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

fn get_sv<'s>(sh: &'s Shared, n: &Names<'_>, op: &str) -> CephResult<&'s Subvolume> {
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

fn get_sv_mut<'s>(sh: &'s mut Shared, n: &Names<'_>, op: &str) -> CephResult<&'s mut Subvolume> {
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

fn parse_mode(mode: Option<&str>, default: u32) -> CephResult<u32> {
    match mode {
        None => Ok(default),
        Some(m) => u32::from_str_radix(m, 8)
            .ok()
            .filter(|v| *v <= 0o7777)
            .ok_or_else(|| CephError::inval(format!("Invalid mode '{m}'"))),
    }
}

fn check_pool(sh: &Shared, vol: &str, pool: Option<&str>) -> CephResult<String> {
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
fn create_size(args: &Args<'_>) -> CephResult<Option<u64>> {
    let bad = |raw: &str| CephError::inval(format!("invalid size specified: '{raw}'"));
    match args.int_checked("size", bad)? {
        Some(s) if s < 0 => Err(bad(&s.to_string())),
        Some(0) | None => Ok(None),
        Some(s) => Ok(Some(s as u64)),
    }
}

/// A subvolume's (or clone's) pool layout: Ceph words this check differently from the
/// group one.
fn check_subvolume_pool(sh: &Shared, vol: &str, pool: Option<&str>) -> CephResult<String> {
    check_pool(sh, vol, pool).map_err(|e| match pool {
        Some(p) if e.errno == errno::EINVAL => CephError::inval(format!(
            "invalid pool layout '{p}' -- need a valid data pool"
        )),
        _ => e,
    })
}

/// The `new_size` of a resize: bytes, or `inf`/`infinite` for no quota (`None`).
fn parse_new_size(raw: &str) -> CephResult<Option<u64>> {
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

fn bytes_pcent(used: u64, quota: u64) -> String {
    if quota == 0 {
        "undefined".into()
    } else {
        format!("{:.2}", used as f64 * 100.0 / quota as f64)
    }
}

fn local_dir(inner: &Inner, vol: &str, group: &str, name: &str) -> PathBuf {
    inner
        .data
        .fs_root(vol)
        .join("volumes")
        .join(group)
        .join(name)
}

fn set_mode(dir: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    // The fake keeps owner access so that it can always purge what it created.
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o700));
}

fn io_err(ctx: &str) -> impl Fn(std::io::Error) -> CephError + '_ {
    move |e| CephError::from_io(ctx, &e)
}

/// Moves `dir` to the trash and queues it for purging.
fn trash(inner: &Inner, sh: &mut Shared, vol: &str, dir: &Path) -> CephResult<()> {
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

// ---------------------------------------------------------------------------------
// Subvolume groups

fn group_create(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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

fn group_rm(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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

fn group_ls(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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

fn group_getpath(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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

fn group_info(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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

fn group_exist(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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

// ---------------------------------------------------------------------------------
// Subvolumes

fn subvolume_create(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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

fn subvolume_rm(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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

fn subvolume_getpath(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let sh = open(inner, n.vol)?;
    let sv = get_sv(&sh, &n, "getpath")?;
    inner.mds.charge_internal(1);
    Ok(Reply::ok(format!("{}/{}\n", n.ceph_dir(), sv.uuid)))
}

fn subvolume_info(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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

fn subvolume_ls(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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

fn subvolume_exist(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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

fn subvolume_resize(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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

fn metadata_target<'s>(
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

fn metadata_set(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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
fn metadata_of<'s>(
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

fn metadata_get(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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

fn metadata_ls(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let sh = open(inner, n.vol)?;
    let md = metadata_of(&sh, &n, args.str("snap_name"), "user_metadata_list")?;
    Ok(Reply::ok(py_json(md, 4)))
}

fn metadata_rm(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let key = args.req_str("key_name")?.trim().to_lowercase();
    let mut sh = open(inner, n.vol)?;
    let md = metadata_target(&mut sh, &n, args.str("snap_name"), "user_metadata_remove")?;
    if md.remove(&key).is_none() && !args.flag("force") {
        return Err(CephError::noent(format!("key '{key}' does not exist.")));
    }
    Ok(Reply::ok(""))
}

// ---------------------------------------------------------------------------------
// Snapshots and clones

fn snapshot_create(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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

fn snapshot_rm(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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
fn snapshot_protect(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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

fn snapshot_ls(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let sh = open(inner, n.vol)?;
    let sv = get_sv(&sh, &n, "snap-ls")?;
    let v: Vec<Value> = sv.snapshots.keys().map(|s| json!({"name": s})).collect();
    Ok(Reply::ok(py_json(&v, 4)))
}

fn snapshot_info(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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

fn snapshot_clone(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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

fn clone_target<'a>(args: &Args<'a>) -> CephResult<Names<'a>> {
    Ok(Names {
        vol: args.req_str("vol_name")?,
        group: group_arg(args, "group_name"),
        name: args.req_str("clone_name")?,
    })
}

fn not_a_clone(op: &str, name: &str) -> CephError {
    CephError::new(
        errno::EOPNOTSUPP,
        format!("operation '{op}' is not allowed on subvolume '{name}' of type subvolume"),
    )
}

fn clone_status(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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

fn clone_cancel(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
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

// ---------------------------------------------------------------------------------
// Per-subvolume cephx users

fn auth_caps_for(
    sh: &Shared,
    auth_id: &str,
    exclude: Option<(&str, &str, &str)>,
) -> Vec<(String, String)> {
    let mut mds = Vec::new();
    let mut osd = Vec::new();
    for ((fs, g), group) in &sh.volumes.groups {
        for (name, sv) in &group.subvolumes {
            if exclude == Some((fs.as_str(), g.as_str(), name.as_str())) {
                continue;
            }
            if let Some(level) = sv.authorized.get(auth_id) {
                mds.push(format!(
                    "allow {level} path=/volumes/{g}/{name}/{}",
                    sv.uuid
                ));
                let ns = if sv.pool_namespace.is_empty() {
                    String::new()
                } else {
                    format!(" namespace={}", sv.pool_namespace)
                };
                osd.push(format!("allow {level} pool={}{ns}", sv.pool));
            }
        }
    }
    if mds.is_empty() {
        return Vec::new();
    }
    osd.dedup();
    vec![
        ("mds".into(), mds.join(",")),
        ("mon".into(), "allow r".into()),
        ("osd".into(), osd.join(",")),
    ]
}

fn subvolume_authorize(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let auth_id = args.req_str("auth_id")?;
    let level = args.str("access_level").unwrap_or("rw");
    if !matches!(level, "r" | "rw") {
        // Ceph asks the monitor for caps with the bad level, the monitor refuses, and
        // the module fails parsing the empty answer.
        return Err(CephError::inval(
            "Traceback (most recent call last):\n  File \"/usr/share/ceph/mgr/volumes/fs/operations/versions/subvolume_v1.py\", \
             in _authorize_subvolume\njson.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
        ));
    }
    let tenant = args.str("tenant_id").map(str::to_owned);
    let entity = EntityName::parse(&format!("client.{auth_id}"))?;
    let mut sh = open(inner, n.vol)?;
    let sh = &mut *sh;
    get_sv(sh, &n, "allow-access")?;
    let exists = inner.auth.read().contains(&entity);
    match sh.volumes.auth_meta.get(auth_id) {
        None if exists && !args.flag("allow_existing_id") => {
            return Err(CephError::new(
                errno::EPERM,
                format!(
                    "auth ID: {auth_id} exists and not created by mgr plugin. Not allowed to modify"
                ),
            ));
        }
        Some(meta) if meta.tenant_id != tenant => {
            return Err(CephError::new(
                errno::EPERM,
                format!("auth ID: {auth_id} is already in use"),
            ));
        }
        _ => {}
    }
    if !sh.volumes.auth_meta.contains_key(auth_id) {
        sh.volumes.mark_auth_meta(auth_id);
    }
    sh.volumes
        .auth_meta
        .entry(auth_id.to_owned())
        .or_insert(AuthMeta {
            tenant_id: tenant.clone(),
        });
    if let Some(sv) = sh.volumes.sv_mut(n.vol, n.group, n.name) {
        sv.authorized.insert(auth_id.to_owned(), level.to_owned());
    }
    let pairs = auth_caps_for(sh, auth_id, None);
    let caps = Caps::parse(&pairs)?;
    let key = {
        let mut db = inner.auth.write();
        if db.contains(&entity) {
            db.set_caps(&entity, caps);
        } else {
            db.put(entity.clone(), inner.new_key(), caps);
        }
        db.get(entity.as_str())
            .map(|e| e.key.expose().to_owned())
            .unwrap_or_default()
    };
    // The key is returned only to callers that name a tenant, as Manila does.
    Ok(Reply::ok(if tenant.is_some() {
        key + "\n"
    } else {
        String::new()
    }))
}

fn subvolume_deauthorize(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let auth_id = args.req_str("auth_id")?;
    let entity = EntityName::parse(&format!("client.{auth_id}"))?;
    let mut sh = open(inner, n.vol)?;
    let sh = &mut *sh;
    let sv = get_sv_mut(sh, &n, "deny-access")?;
    let was_here = sv.authorized.remove(auth_id).is_some();
    // Ceph only refuses an auth ID it never created; deauthorizing one that is not
    // (or no longer) authorized on this subvolume succeeds.
    if !was_here && !sh.volumes.auth_meta.contains_key(auth_id) {
        return Err(CephError::noent(format!(
            "auth ID: {auth_id} doesn't exist"
        )));
    }
    let pairs = auth_caps_for(sh, auth_id, None);
    let mut db = inner.auth.write();
    if pairs.is_empty() {
        db.remove(&entity);
        sh.volumes.auth_meta.remove(auth_id);
        sh.volumes.mark_auth_meta(auth_id);
    } else {
        db.set_caps(&entity, Caps::parse(&pairs)?);
    }
    Ok(Reply::ok(""))
}

fn subvolume_authorized_list(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let sh = open(inner, n.vol)?;
    let sv = get_sv(&sh, &n, "auth-list")?;
    let v: Vec<Value> = sv.authorized.iter().map(|(k, l)| json!({k: l})).collect();
    Ok(Reply::ok(py_json(&v, 4)))
}

fn subvolume_evict(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let auth_id = args.req_str("auth_id")?;
    let path = {
        let sh = open(inner, n.vol)?;
        let sv = get_sv(&sh, &n, "evict")?;
        // An auth ID with no sessions (or none at all) evicts nothing, successfully.
        format!("{}/{}", n.ceph_dir(), sv.uuid)
    };
    let f1 = format!("auth_name={auth_id}");
    let f2 = format!("client_metadata.root={path}");
    inner.mds.evict(&[f1.as_str(), f2.as_str()])?;
    Ok(Reply::ok(""))
}

// ---------------------------------------------------------------------------------
// Module options (`config set mgr mgr/volumes/<name> <value>`)

/// Sets one `mgr/volumes/<opt>` option from its text, as `config set` does.
fn set_option(o: &mut VolumesConfig, opt: &str, value: &str) -> CephResult<()> {
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

fn config_set(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let who = args.req_str("who")?;
    let name = args.req_str("name")?;
    let value = args.req_str("value")?;
    let Some(opt) = name.strip_prefix("mgr/volumes/") else {
        // Other options are accepted and have no effect on the fake.
        let _ = who;
        return Ok(Reply::ok(""));
    };
    let mut sh = inner.shared.lock();
    let v = &mut sh.volumes;
    set_option(&mut v.options, opt, value)?;
    v.overrides.insert(opt.to_owned(), value.to_owned());
    v.marks.mark(RecordKey::Options);
    inner.purger.set_paused(v.options.pause_purging);
    Ok(Reply::ok(""))
}

fn config_rm(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let name = args.req_str("name")?;
    if let Some(opt) = name.strip_prefix("mgr/volumes/") {
        // Back to what the cluster was started with.
        let d = inner.config.volumes.clone();
        let mut sh = inner.shared.lock();
        let v = &mut sh.volumes;
        let o = &mut v.options;
        match opt {
            "max_concurrent_clones" => o.max_concurrent_clones = d.max_concurrent_clones,
            "snapshot_clone_no_wait" => o.snapshot_clone_no_wait = d.snapshot_clone_no_wait,
            "snapshot_clone_delay" => o.snapshot_clone_delay = d.snapshot_clone_delay,
            "pause_cloning" => o.pause_cloning = d.pause_cloning,
            "pause_purging" => {
                o.pause_purging = d.pause_purging;
                inner.purger.set_paused(o.pause_purging);
            }
            _ => {}
        }
        if v.overrides.remove(opt).is_some() {
            v.marks.mark(RecordKey::Options);
        }
    }
    // Removing an option that is not set succeeds, as in Ceph.
    Ok(Reply::ok(""))
}

fn config_get(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let key = args.req_str("key")?;
    let sh = inner.shared.lock();
    let o = &sh.volumes.options;
    let v = match key.strip_prefix("mgr/volumes/") {
        Some("max_concurrent_clones") => o.max_concurrent_clones.to_string(),
        Some("snapshot_clone_no_wait") => o.snapshot_clone_no_wait.to_string(),
        Some("snapshot_clone_delay") => o.snapshot_clone_delay.as_secs().to_string(),
        Some("pause_cloning") => o.pause_cloning.to_string(),
        Some("pause_purging") => o.pause_purging.to_string(),
        _ => return Err(CephError::noent(format!("unrecognized key '{key}'"))),
    };
    Ok(Reply::ok(format!("{v}\n")))
}

const FORMAT: ArgSpec = opt("format", ArgType::Str);
const VOL: ArgSpec = req("vol_name", ArgType::Str);
const SUB: ArgSpec = req("sub_name", ArgType::Str);
const GROUP: ArgSpec = opt("group_name", ArgType::Str);
const GROUP_REQ: ArgSpec = req("group_name", ArgType::Str);
const SNAP: ArgSpec = req("snap_name", ArgType::Str);
const KEY: ArgSpec = req("key_name", ArgType::Str);
const FORCE: ArgSpec = opt("force", ArgType::Bool);
const SIZE: ArgSpec = opt("size", ArgType::Int);
const POOL: ArgSpec = opt("pool_layout", ArgType::Str);
const UID: ArgSpec = opt("uid", ArgType::Int);
const GID: ArgSpec = opt("gid", ArgType::Int);
const MODE: ArgSpec = opt("mode", ArgType::Str);
const AUTH_ID: ArgSpec = req("auth_id", ArgType::Str);

macro_rules! vcmd {
    ($prefix:literal, $perm:literal, $args:expr, $handler:expr) => {
        (
            CommandSpec {
                prefix: $prefix,
                daemon: Daemon::Mgr,
                module: "volumes",
                perm: $perm,
                args: $args,
            },
            $handler as Handler,
        )
    };
}

/// The `volumes` module's commands.
pub(crate) const COMMANDS: CommandTable = &[
    vcmd!(
        "fs subvolumegroup create",
        "rw",
        &[FORMAT, VOL, GROUP_REQ, SIZE, POOL, UID, GID, MODE],
        group_create
    ),
    vcmd!(
        "fs subvolumegroup rm",
        "rw",
        &[FORMAT, VOL, GROUP_REQ, FORCE],
        group_rm
    ),
    vcmd!("fs subvolumegroup ls", "r", &[FORMAT, VOL], group_ls),
    vcmd!(
        "fs subvolumegroup getpath",
        "r",
        &[FORMAT, VOL, GROUP_REQ],
        group_getpath
    ),
    vcmd!(
        "fs subvolumegroup info",
        "r",
        &[FORMAT, VOL, GROUP_REQ],
        group_info
    ),
    vcmd!("fs subvolumegroup exist", "r", &[FORMAT, VOL], group_exist),
    vcmd!(
        "fs subvolume create",
        "rw",
        &[
            FORMAT,
            VOL,
            SUB,
            SIZE,
            GROUP,
            POOL,
            UID,
            GID,
            MODE,
            opt("namespace_isolated", ArgType::Bool)
        ],
        subvolume_create
    ),
    vcmd!(
        "fs subvolume rm",
        "rw",
        &[
            FORMAT,
            VOL,
            SUB,
            GROUP,
            FORCE,
            opt("retain_snapshots", ArgType::Bool)
        ],
        subvolume_rm
    ),
    vcmd!(
        "fs subvolume getpath",
        "rw",
        &[FORMAT, VOL, SUB, GROUP],
        subvolume_getpath
    ),
    vcmd!(
        "fs subvolume info",
        "r",
        &[FORMAT, VOL, SUB, GROUP],
        subvolume_info
    ),
    vcmd!("fs subvolume ls", "r", &[FORMAT, VOL, GROUP], subvolume_ls),
    vcmd!(
        "fs subvolume exist",
        "r",
        &[FORMAT, VOL, GROUP],
        subvolume_exist
    ),
    vcmd!(
        "fs subvolume resize",
        "rw",
        &[
            FORMAT,
            VOL,
            SUB,
            req("new_size", ArgType::Any),
            GROUP,
            opt("no_shrink", ArgType::Bool)
        ],
        subvolume_resize
    ),
    vcmd!(
        "fs subvolume metadata set",
        "rw",
        &[FORMAT, VOL, SUB, KEY, req("value", ArgType::Str), GROUP],
        metadata_set
    ),
    vcmd!(
        "fs subvolume metadata get",
        "r",
        &[FORMAT, VOL, SUB, KEY, GROUP],
        metadata_get
    ),
    vcmd!(
        "fs subvolume metadata ls",
        "r",
        &[FORMAT, VOL, SUB, GROUP],
        metadata_ls
    ),
    vcmd!(
        "fs subvolume metadata rm",
        "rw",
        &[FORMAT, VOL, SUB, KEY, GROUP, FORCE],
        metadata_rm
    ),
    vcmd!(
        "fs subvolume snapshot metadata set",
        "rw",
        &[
            FORMAT,
            VOL,
            SUB,
            SNAP,
            KEY,
            req("value", ArgType::Str),
            GROUP
        ],
        metadata_set
    ),
    vcmd!(
        "fs subvolume snapshot metadata get",
        "r",
        &[FORMAT, VOL, SUB, SNAP, KEY, GROUP],
        metadata_get
    ),
    vcmd!(
        "fs subvolume snapshot metadata ls",
        "r",
        &[FORMAT, VOL, SUB, SNAP, GROUP],
        metadata_ls
    ),
    vcmd!(
        "fs subvolume snapshot metadata rm",
        "rw",
        &[FORMAT, VOL, SUB, SNAP, KEY, GROUP, FORCE],
        metadata_rm
    ),
    vcmd!(
        "fs subvolume snapshot create",
        "rw",
        &[FORMAT, VOL, SUB, SNAP, GROUP],
        snapshot_create
    ),
    vcmd!(
        "fs subvolume snapshot rm",
        "rw",
        &[FORMAT, VOL, SUB, SNAP, GROUP, FORCE],
        snapshot_rm
    ),
    vcmd!(
        "fs subvolume snapshot ls",
        "r",
        &[FORMAT, VOL, SUB, GROUP],
        snapshot_ls
    ),
    vcmd!(
        "fs subvolume snapshot info",
        "r",
        &[FORMAT, VOL, SUB, SNAP, GROUP],
        snapshot_info
    ),
    vcmd!(
        "fs subvolume snapshot protect",
        "rw",
        &[FORMAT, VOL, SUB, SNAP, GROUP],
        snapshot_protect
    ),
    vcmd!(
        "fs subvolume snapshot unprotect",
        "rw",
        &[FORMAT, VOL, SUB, SNAP, GROUP],
        snapshot_protect
    ),
    vcmd!(
        "fs subvolume snapshot clone",
        "rw",
        &[
            FORMAT,
            VOL,
            SUB,
            SNAP,
            req("target_sub_name", ArgType::Str),
            POOL,
            GROUP,
            opt("target_group_name", ArgType::Str)
        ],
        snapshot_clone
    ),
    vcmd!(
        "fs clone status",
        "r",
        &[FORMAT, VOL, req("clone_name", ArgType::Str), GROUP],
        clone_status
    ),
    vcmd!(
        "fs clone cancel",
        "r",
        &[FORMAT, VOL, req("clone_name", ArgType::Str), GROUP],
        clone_cancel
    ),
    vcmd!(
        "fs subvolume authorize",
        "rw",
        &[
            FORMAT,
            VOL,
            SUB,
            AUTH_ID,
            GROUP,
            opt("access_level", ArgType::Str),
            opt("tenant_id", ArgType::Str),
            opt("allow_existing_id", ArgType::Bool)
        ],
        subvolume_authorize
    ),
    vcmd!(
        "fs subvolume deauthorize",
        "rw",
        &[FORMAT, VOL, SUB, AUTH_ID, GROUP],
        subvolume_deauthorize
    ),
    vcmd!(
        "fs subvolume authorized_list",
        "r",
        &[FORMAT, VOL, SUB, GROUP],
        subvolume_authorized_list
    ),
    vcmd!(
        "fs subvolume evict",
        "rw",
        &[FORMAT, VOL, SUB, AUTH_ID, GROUP],
        subvolume_evict
    ),
    (
        CommandSpec {
            prefix: "config set",
            daemon: Daemon::Mon,
            module: "config",
            perm: "rw",
            args: &[
                req("who", ArgType::Str),
                req("name", ArgType::Str),
                req("value", ArgType::Str),
                opt("force", ArgType::Bool),
            ],
        },
        config_set,
    ),
    (
        CommandSpec {
            prefix: "config rm",
            daemon: Daemon::Mon,
            module: "config",
            perm: "rw",
            args: &[req("who", ArgType::Str), req("name", ArgType::Str)],
        },
        config_rm,
    ),
    (
        CommandSpec {
            prefix: "config get",
            daemon: Daemon::Mon,
            module: "config",
            perm: "r",
            args: &[req("who", ArgType::Str), req("key", ArgType::Str)],
        },
        config_get,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "11111111-1111-4111-8111-111111111111";
    const U2: &str = "22222222-2222-4222-8222-222222222222";

    fn sv(uuid: &str, state: State) -> Subvolume {
        Subvolume {
            uuid: uuid.into(),
            created_at: Duration::ZERO,
            mode: 0o755,
            uid: 0,
            gid: 0,
            pool: "cephfs.cephfs.data".into(),
            pool_namespace: String::new(),
            realm: QuotaRealm::new(0),
            state,
            is_clone: false,
            clone: None,
            snapshots: BTreeMap::new(),
            metadata: BTreeMap::new(),
            authorized: BTreeMap::new(),
        }
    }

    fn snap(uuid: &str) -> Snapshot {
        Snapshot {
            created_at: Duration::ZERO,
            uuid: uuid.into(),
            metadata: BTreeMap::new(),
            pending_clones: Vec::new(),
        }
    }

    /// A tree under a temporary fs root and the records, reconciled.
    struct Case {
        root: tempfile::TempDir,
        v: Volumes,
    }

    impl Case {
        fn new() -> Self {
            Self {
                root: tempfile::tempdir().unwrap(),
                v: Volumes::new(VolumesConfig::default()),
            }
        }

        fn mkdir(&self, rel: &str) -> &Self {
            std::fs::create_dir_all(self.root.path().join("volumes").join(rel)).unwrap();
            self
        }

        fn group(&mut self, g: &str) -> &mut Group {
            self.v
                .groups
                .entry(("cephfs".into(), g.into()))
                .or_default()
        }

        fn reconcile(&mut self) -> Reconciled {
            let root = self.root.path().to_path_buf();
            self.v.reconcile("cephfs", &root).unwrap()
        }

        fn exists(&self, rel: &str) -> bool {
            self.root.path().join("volumes").join(rel).exists()
        }

        fn subvolumes(&self, g: &str) -> Vec<String> {
            self.v
                .groups
                .get(&("cephfs".to_owned(), g.to_owned()))
                .map(|g| g.subvolumes.keys().cloned().collect())
                .unwrap_or_default()
        }

        fn trashed(&self) -> usize {
            std::fs::read_dir(self.root.path().join("volumes/_deleting"))
                .map(|rd| rd.count())
                .unwrap_or(0)
        }
    }

    #[test]
    fn a_tree_that_matches_its_records_is_left_alone() {
        let mut c = Case::new();
        c.mkdir(&format!("csi/a/{U1}"))
            .mkdir(&format!("csi/a/.snap/s/{U1}"))
            .mkdir("_deleting/old");
        let mut a = sv(U1, State::Complete);
        a.snapshots.insert("s".into(), snap(U1));
        c.group("csi").subvolumes.insert("a".into(), a);
        assert_eq!(c.reconcile(), Reconciled::default());
        assert_eq!(c.subvolumes("csi"), ["a"]);
        assert!(c.exists(&format!("csi/a/{U1}")) && c.exists("_deleting/old"));
    }

    #[test]
    fn directories_without_records_go_to_the_trash() {
        let mut c = Case::new();
        // A create that died before its commit, in a group and in _nogroup; a group
        // whose create died; a snapshot whose create died; a recreate's new data dir.
        c.mkdir(&format!("csi/a/{U1}"))
            .mkdir(&format!("csi/a/{U2}"))
            .mkdir(&format!("csi/a/.snap/half/{U1}"))
            .mkdir(&format!("csi/unacked/{U1}"))
            .mkdir(&format!("_nogroup/unacked/{U2}"))
            .mkdir("newgroup")
            .mkdir("_index/kept");
        std::fs::write(c.root.path().join("volumes/csi/a/notes.txt"), b"x").unwrap();
        c.group("csi")
            .subvolumes
            .insert("a".into(), sv(U1, State::Complete));
        let r = c.reconcile();
        assert_eq!(r.dropped, Vec::<String>::new());
        assert_eq!(r.trashed.len(), 5, "{r:?}");
        assert_eq!(c.trashed(), 5);
        for gone in [
            format!("csi/a/{U2}"),
            "csi/a/.snap/half".to_owned(),
            "csi/unacked".to_owned(),
            "_nogroup".to_owned(),
            "newgroup".to_owned(),
        ] {
            assert!(!c.exists(&gone), "{gone}");
        }
        // What the volumes module does not make is not its to remove.
        assert!(c.exists("_index/kept") && c.exists("csi/a/notes.txt"));
        assert!(c.exists(&format!("csi/a/{U1}")));
        assert_eq!(c.subvolumes("csi"), ["a"]);
    }

    #[test]
    fn records_whose_data_is_gone_are_dropped_or_keep_their_snapshots() {
        let mut c = Case::new();
        // b: removed, the commit lost; r: removed with retained snapshots, the commit
        // lost; k: a snapshot removed, the commit lost; t: retained, its last snapshot
        // removed, the commit lost.
        c.mkdir(&format!("csi/r/.snap/s/{U1}"))
            .mkdir(&format!("csi/k/{U1}"))
            .mkdir("csi/t/.snap");
        c.group("csi")
            .subvolumes
            .insert("b".into(), sv(U1, State::Complete));
        let mut r = sv(U1, State::Complete);
        r.snapshots.insert("s".into(), snap(U1));
        c.group("csi").subvolumes.insert("r".into(), r);
        let mut k = sv(U1, State::Complete);
        k.snapshots.insert("gone".into(), snap(U1));
        c.group("csi").subvolumes.insert("k".into(), k);
        let mut t = sv(U1, State::SnapshotRetained);
        t.snapshots.insert("last".into(), snap(U1));
        c.group("csi").subvolumes.insert("t".into(), t);
        let out = c.reconcile();
        assert_eq!(
            out.dropped,
            [
                "/volumes/csi/b",
                "/volumes/csi/k@gone",
                "/volumes/csi/r (data; snapshots kept)",
                "/volumes/csi/t@last",
                "/volumes/csi/t",
            ]
        );
        assert_eq!(c.subvolumes("csi"), ["k", "r"]);
        let g = &c.v.groups[&("cephfs".to_owned(), "csi".to_owned())];
        assert_eq!(g.subvolumes["r"].state, State::SnapshotRetained);
        assert!(g.subvolumes["k"].snapshots.is_empty());
        assert!(!c.exists("csi/t"));
    }

    #[test]
    fn a_group_without_its_directory_gets_it_back_and_pending_clones_are_recounted() {
        let mut c = Case::new();
        c.mkdir(&format!("_nogroup/src/{U1}"))
            .mkdir(&format!("_nogroup/src/.snap/s/{U1}"))
            .mkdir(&format!("_nogroup/cl/{U2}"));
        c.group("empty").mode = 0o750;
        let mut src = sv(U1, State::Complete);
        let mut s = snap(U1);
        // cl is still waiting; gone's record was dropped (its create never committed).
        s.pending_clones = vec![
            ("cl".into(), NO_GROUP.into()),
            ("gone".into(), NO_GROUP.into()),
        ];
        src.snapshots.insert("s".into(), s);
        c.group(NO_GROUP).subvolumes.insert("src".into(), src);
        let mut cl = sv(U2, State::Pending);
        cl.is_clone = true;
        cl.clone = Some(CloneJob {
            source: CloneSource {
                volume: "cephfs".into(),
                group: NO_GROUP.into(),
                subvolume: "src".into(),
                snapshot: "s".into(),
            },
            seq: 1,
            queued: Instant::now(),
            started: None,
            failure: None,
        });
        c.group(NO_GROUP).subvolumes.insert("cl".into(), cl);
        let r = c.reconcile();
        assert_eq!(r.remade, ["/volumes/empty"]);
        assert!(c.exists("empty"));
        let g = &c.v.groups[&("cephfs".to_owned(), NO_GROUP.to_owned())];
        assert_eq!(
            g.subvolumes["src"].snapshots["s"].pending_clones,
            [("cl".to_owned(), NO_GROUP.to_owned())]
        );
    }

    #[test]
    fn uuid_shapes() {
        assert!(looks_like_uuid(U1));
        for bad in [
            "",
            ".snap",
            "11111111-1111-4111-8111-11111111111",
            &U1.replace('-', "x"),
        ] {
            assert!(!looks_like_uuid(bad), "{bad}");
        }
    }
}
