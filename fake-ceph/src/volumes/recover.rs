//! Recovery of the `volumes` module's state: its records read back from the metadata
//! store ([`Volumes::restore`]) and reconciled with the tree ([`Volumes::reconcile`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::mds::QuotaRealm;

use super::*;

impl Volumes {
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
        let mut to_trash: Vec<PathBuf> = Vec::new();
        self.reconcile_groups(fs, &vols, &mut out, &mut to_trash)?;
        self.reconcile_subvolumes(fs, &vols, &mut out, &mut to_trash)?;
        self.recount_pending_clones(fs);
        trash_recovered(&vols.join("_deleting"), to_trash, &mut out)?;
        Ok(out)
    }

    /// Group directories: made again for records that lost them; those without a record
    /// are to go to the trash.
    fn reconcile_groups(
        &self,
        fs: &str,
        vols: &Path,
        out: &mut Reconciled,
        to_trash: &mut Vec<PathBuf>,
    ) -> std::io::Result<()> {
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
        for name in subdirs(vols)? {
            if (name.starts_with('_') && name != NO_GROUP)
                || self.groups.contains_key(&(fs.to_owned(), name.clone()))
            {
                continue;
            }
            to_trash.push(vols.join(&name));
        }
        Ok(())
    }

    /// Each group's subvolumes against their directories: snapshots and data that are
    /// gone are dropped from the records, directories without a record are to go to the
    /// trash, and a retained subvolume left without snapshots is removed.
    fn reconcile_subvolumes(
        &mut self,
        fs: &str,
        vols: &Path,
        out: &mut Reconciled,
        to_trash: &mut Vec<PathBuf>,
    ) -> std::io::Result<()> {
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
        Ok(())
    }

    /// Keeps as a snapshot's pending clones only the clones that still wait for it.
    fn recount_pending_clones(&mut self, fs: &str) {
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
    }
}

/// Moves what recovery found without a record to the trash (`recovered-<n>`), each path
/// once; a directory inside one already moved went with it.
fn trash_recovered(
    trash_dir: &Path,
    mut to_trash: Vec<PathBuf>,
    out: &mut Reconciled,
) -> std::io::Result<()> {
    to_trash.sort();
    to_trash.dedup();
    for dir in to_trash {
        // A directory inside one already trashed went with it.
        if !dir.exists() {
            continue;
        }
        std::fs::create_dir_all(trash_dir)?;
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
    Ok(())
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
