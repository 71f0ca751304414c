//! Where the cluster's metadata is kept: in memory only, or also in a durable store in
//! the data dir, so that a fake-ceph started again on the same directory finds every
//! acknowledged command's effect.
//!
//! The state the handlers work on is always the in-memory one ([`crate::auth::AuthDb`],
//! [`crate::volumes::Volumes`], [`crate::rados::Rados`], the maps); there is one set of
//! handlers. What changes is what happens to a record a handler changes: each part of
//! the state marks the records it changes (`Marks`, under that part's lock), and the
//! command pipeline, before it answers, asks the store to make every record marked so
//! far durable (`Inner::sync_through`). Without a durable store
//! ([`Metadata::InMemory`]) marking does nothing and there is nothing to wait for; with
//! one ([`Metadata::Durable`]) the marked records are written to a [redb] database in
//! `<data-dir>/meta/` and committed with [`redb::Durability::Immediate`] (an `fdatasync`), so
//! they survive the process being killed and the machine losing power.
//!
//! Commits are grouped: a command that finds a commit under way waits for it, and the
//! next commit takes every record marked meanwhile, from any number of commands, in one
//! transaction. A command that changed nothing and finds nothing pending pays one atomic
//! load. A read that sees another command's uncommitted change waits for that commit
//! too, so nothing is answered that a crash could take back.
//!
//! Invariant: every mark happens while its marker holds the lock of the state it
//! changed (the cluster state's mutex or the auth database's lock), and a commit reads
//! the marked records holding both, so a commit never holds half of a command.
//!
//! Why redb: a pure-Rust embedded key-value store with ACID transactions, whose commit
//! with `Durability::Immediate` is persistent when it returns and which recovers to the
//! last committed transaction after a crash (copy-on-write B-trees, two checksummed
//! commit slots); it has no dependency but `libc`, locks its file against a second
//! writer process, and is actively maintained.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// Inserts a record's value, or removes the record for `None`.
macro_rules! put {
    ($table:expr, $key:expr, $value:expr) => {
        match $value {
            Some(v) => $table.insert($key, v).map(|_| ()),
            None => $table.remove($key).map(|_| ()),
        }
    };
}

/// Where a cluster keeps its metadata (cephx entities, maps, subvolume groups,
/// subvolumes, snapshots, clones, RADOS objects and their omap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Metadata {
    /// In memory only: gone with the process. For simulations, tests and benches, and
    /// for the binary on a temporary data dir.
    #[default]
    InMemory,
    /// Also in a store in `<data-dir>/meta/`, committed before each mutating command is
    /// answered, and recovered when a cluster starts on a data dir that holds one.
    /// Needs [`crate::Config::data_dir`].
    Durable,
}

/// The directory under the data dir that holds the store (mode 0700).
pub const META_DIR: &str = "meta";
/// The store's file name in [`META_DIR`] (mode 0600: it holds cephx keys).
pub const STORE_FILE: &str = "metadata.redb";

/// The version of the records' layout; a store of another version is refused.
const FORMAT: u32 = 1;

const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const ENTITIES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("entities");
const AUTH_META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("auth_meta");
const GROUPS: TableDefinition<'_, (&str, &str), &[u8]> = TableDefinition::new("groups");
const SUBVOLUMES: TableDefinition<'_, (&str, &str, &str), &[u8]> =
    TableDefinition::new("subvolumes");
const OBJECTS: TableDefinition<'_, (&str, &str, &str), &[u8]> = TableDefinition::new("objects");
const OMAP: TableDefinition<'_, (&str, &str, &str, &str), &[u8]> = TableDefinition::new("omap");
/// The MDS's session map (Ceph keeps it in the metadata pool: clients reconnect to their
/// sessions after an MDS restart).
const SESSIONS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("sessions");

/// The key of `META` that holds the [`ClusterRecord`].
const CLUSTER_KEY: &str = "cluster";
/// The key of `META` that holds the `volumes` module's options set at run time.
const OPTIONS_KEY: &str = "volumes_options";

/// One record of the store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum RecordKey {
    /// The cluster's identity ([`ClusterRecord`]).
    Cluster,
    /// The `mgr/volumes/*` options set with `config set`.
    Options,
    /// A cephx entity: key and caps.
    Entity(String),
    /// Who created a cephx user through `fs subvolume authorize`.
    AuthMeta(String),
    /// A subvolume group: (file system, group).
    Group(String, String),
    /// A subvolume with its snapshots and clone state: (file system, group, name).
    Subvolume(String, String, String),
    /// A RADOS object without its omap: (pool, namespace, name).
    Object(String, String, String),
    /// One omap key of a RADOS object: (pool, namespace, object, key).
    Omap(String, String, String, String),
    /// An open MDS session, by id.
    Session(u64),
}

/// What identifies a cluster across restarts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClusterRecord {
    /// The layout version of the records.
    pub format: u32,
    /// The fsid.
    pub fsid: String,
    /// When the maps were created (Unix time).
    pub created: std::time::Duration,
    /// The file system's name.
    pub fs_name: String,
    /// How many times the cluster has started on this store, less one: it picks the
    /// seeded RNGs' streams, so that a restart with the same seed draws new UUIDs and
    /// keys.
    pub boot: u64,
}

impl ClusterRecord {
    /// A record of the current layout.
    pub fn new(fsid: String, created: std::time::Duration, fs_name: String, boot: u64) -> Self {
        Self {
            format: FORMAT,
            fsid,
            created,
            fs_name,
            boot,
        }
    }
}

/// A RADOS object's key: (pool, namespace, name).
pub(crate) type ObjectKey = (String, String, String);
/// An omap key's key: (pool, namespace, object, key).
pub(crate) type OmapKey = (String, String, String, String);

/// Everything a store held when it was opened, as encoded records.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub cluster: Option<ClusterRecord>,
    pub options: Option<Vec<u8>>,
    pub entities: Vec<(String, Vec<u8>)>,
    pub auth_meta: Vec<(String, Vec<u8>)>,
    pub groups: Vec<((String, String), Vec<u8>)>,
    pub subvolumes: Vec<((String, String, String), Vec<u8>)>,
    pub objects: Vec<(ObjectKey, Vec<u8>)>,
    pub omap: Vec<(OmapKey, Vec<u8>)>,
    pub sessions: Vec<(u64, Vec<u8>)>,
}

/// The records changed since the last commit, and how many marks there have been.
#[derive(Debug, Default)]
pub(crate) struct MarkSet {
    keys: Mutex<BTreeSet<RecordKey>>,
    count: AtomicU64,
}

/// A handle to mark records as changed. The default one (in-memory metadata) marks
/// nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Marks(Option<Arc<MarkSet>>);

impl Marks {
    /// Records that `key` changed (or was removed). Call it holding the lock of the
    /// state that changed.
    pub(crate) fn mark(&self, key: RecordKey) {
        if let Some(set) = &self.0 {
            set.keys.lock().insert(key);
            set.count.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The metadata store of one cluster.
pub(crate) struct Store {
    db: Option<redb::Database>,
    path: Option<PathBuf>,
    marks: Arc<MarkSet>,
    /// The mark count up to which everything is committed.
    durable: AtomicU64,
    /// Held by the one thread committing at a time (the group's leader).
    leader: Mutex<()>,
    /// Whether a command is leading a commit for the commands waiting asynchronously.
    round: std::sync::atomic::AtomicBool,
    /// Wakes the commands waiting for a round to end.
    round_done: tokio::sync::Notify,
    commits: AtomicU64,
}

/// The lead of a round of commits: while it lives, other commands wait for it instead of
/// committing themselves; when it goes (even if its future is dropped), they are woken.
#[derive(Debug)]
pub(crate) struct Round<'a>(&'a Store);

impl Drop for Round<'_> {
    fn drop(&mut self) {
        self.0.round.store(false, Ordering::SeqCst);
        self.0.round_done.notify_waiters();
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("marked", &self.marked())
            .field("durable", &self.durable.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

fn other(context: &str) -> impl Fn(redb::Error) -> std::io::Error + '_ {
    move |e| std::io::Error::other(format!("metadata store: {context}: {e}"))
}

fn redb_err<E: Into<redb::Error>>(context: &str) -> impl Fn(E) -> std::io::Error + '_ {
    move |e| other(context)(e.into())
}

/// Whether `data_dir` holds a store file.
pub(crate) fn exists(data_dir: &Path) -> bool {
    data_dir.join(META_DIR).join(STORE_FILE).is_file()
}

impl Store {
    /// No durable store: marks are dropped and every change is "durable" at once.
    pub(crate) fn in_memory() -> Self {
        Self {
            db: None,
            path: None,
            marks: Arc::default(),
            durable: AtomicU64::new(0),
            leader: Mutex::new(()),
            round: std::sync::atomic::AtomicBool::new(false),
            round_done: tokio::sync::Notify::new(),
            commits: AtomicU64::new(0),
        }
    }

    /// Opens (or creates) the store in `<data_dir>/meta/`: the directory is made 0700
    /// and the file 0600 before anything is written to them, whatever they were.
    pub(crate) fn open(data_dir: &Path) -> std::io::Result<(Self, Loaded)> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        let dir = data_dir.join(META_DIR);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        let path = dir.join(STORE_FILE);
        drop(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)?,
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let db = redb::Builder::new()
            // A file changed behind redb's back is reported, not trusted.
            .set_check_integrity_on_open(true)
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => std::io::Error::new(
                    std::io::ErrorKind::ResourceBusy,
                    format!(
                        "metadata store {} is in use by another fake-ceph",
                        path.display()
                    ),
                ),
                e => other("opening")(e.into()),
            })?;
        // Every table exists from the first open on, so that reads need not ask.
        let tx = db.begin_write().map_err(redb_err("creating tables"))?;
        {
            tx.open_table(META).map_err(redb_err("creating tables"))?;
            tx.open_table(ENTITIES)
                .map_err(redb_err("creating tables"))?;
            tx.open_table(AUTH_META)
                .map_err(redb_err("creating tables"))?;
            tx.open_table(GROUPS).map_err(redb_err("creating tables"))?;
            tx.open_table(SUBVOLUMES)
                .map_err(redb_err("creating tables"))?;
            tx.open_table(OBJECTS)
                .map_err(redb_err("creating tables"))?;
            tx.open_table(OMAP).map_err(redb_err("creating tables"))?;
            tx.open_table(SESSIONS)
                .map_err(redb_err("creating tables"))?;
        }
        tx.commit().map_err(redb_err("creating tables"))?;
        let loaded = load(&db)?;
        Ok((
            Self {
                db: Some(db),
                path: Some(path),
                marks: Arc::default(),
                durable: AtomicU64::new(0),
                leader: Mutex::new(()),
                round: std::sync::atomic::AtomicBool::new(false),
                round_done: tokio::sync::Notify::new(),
                commits: AtomicU64::new(0),
            },
            loaded,
        ))
    }

    /// Whether changes are kept beyond the process.
    pub(crate) fn is_durable_store(&self) -> bool {
        self.db.is_some()
    }

    /// A handle for the parts of the state to mark their changed records with.
    pub(crate) fn marks(&self) -> Marks {
        if self.db.is_some() {
            Marks(Some(self.marks.clone()))
        } else {
            Marks(None)
        }
    }

    /// How many marks there have been: what a command waits to see committed.
    pub(crate) fn marked(&self) -> u64 {
        self.marks.count.load(Ordering::SeqCst)
    }

    /// Whether every mark up to `upto` is committed.
    pub(crate) fn is_committed(&self, upto: u64) -> bool {
        self.durable.load(Ordering::SeqCst) >= upto
    }

    /// How many transactions have been committed since the store was opened.
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    /// Waits, without blocking a thread, until every mark up to `upto` is committed:
    /// one waiting command at a time leads a round (runs `commit`, which commits all
    /// that is marked then, on a thread it may block), the others wait for the round's
    /// end and look again, so the commands that arrive during one commit share the next.
    pub(crate) async fn committed<F, Fut>(&self, upto: u64, commit: F) -> std::io::Result<()>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = std::io::Result<()>>,
    {
        loop {
            if self.is_committed(upto) {
                return Ok(());
            }
            let ended = self.round_done.notified();
            tokio::pin!(ended);
            // Registered before looking, so that a round ending now is not missed.
            ended.as_mut().enable();
            if self
                .round
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                let _round = Round(self);
                return commit().await;
            }
            ended.await;
        }
    }

    /// Becomes the committing thread (blocks while another one commits).
    pub(crate) fn lead(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.leader.lock()
    }

    /// Takes the changed records' keys and the mark count they cover. Call it holding
    /// every lock a mark is made under, so that the set holds whole commands only.
    pub(crate) fn take_marked(&self) -> (BTreeSet<RecordKey>, u64) {
        let keys = std::mem::take(&mut *self.marks.keys.lock());
        (keys, self.marked())
    }

    /// Puts back keys whose commit failed, for the next commit to write.
    pub(crate) fn restore_marked(&self, keys: impl IntoIterator<Item = RecordKey>) {
        self.marks.keys.lock().extend(keys);
    }

    /// Records that every mark up to `upto` is committed.
    pub(crate) fn set_committed(&self, upto: u64) {
        self.durable.fetch_max(upto, Ordering::SeqCst);
    }

    /// Writes records (a value, or `None` to remove) in one transaction, committed
    /// durably. Without a durable store, nothing happens.
    pub(crate) fn write(&self, batch: &[(RecordKey, Option<Vec<u8>>)]) -> std::io::Result<()> {
        let Some(db) = &self.db else {
            return Ok(());
        };
        let e = redb_err::<redb::Error>("committing");
        let tx = db.begin_write().map_err(|x| e(x.into()))?;
        {
            let mut meta = tx.open_table(META).map_err(|x| e(x.into()))?;
            let mut entities = tx.open_table(ENTITIES).map_err(|x| e(x.into()))?;
            let mut auth_meta = tx.open_table(AUTH_META).map_err(|x| e(x.into()))?;
            let mut groups = tx.open_table(GROUPS).map_err(|x| e(x.into()))?;
            let mut subvolumes = tx.open_table(SUBVOLUMES).map_err(|x| e(x.into()))?;
            let mut objects = tx.open_table(OBJECTS).map_err(|x| e(x.into()))?;
            let mut omap = tx.open_table(OMAP).map_err(|x| e(x.into()))?;
            let mut sessions = tx.open_table(SESSIONS).map_err(|x| e(x.into()))?;
            for (key, value) in batch {
                let v = value.as_deref();
                let r = match key {
                    RecordKey::Cluster => put!(meta, CLUSTER_KEY, v),
                    RecordKey::Options => put!(meta, OPTIONS_KEY, v),
                    RecordKey::Entity(n) => put!(entities, n.as_str(), v),
                    RecordKey::AuthMeta(n) => put!(auth_meta, n.as_str(), v),
                    RecordKey::Group(f, g) => put!(groups, (f.as_str(), g.as_str()), v),
                    RecordKey::Subvolume(f, g, n) => {
                        put!(subvolumes, (f.as_str(), g.as_str(), n.as_str()), v)
                    }
                    RecordKey::Object(p, ns, o) => {
                        put!(objects, (p.as_str(), ns.as_str(), o.as_str()), v)
                    }
                    RecordKey::Omap(p, ns, o, k) => {
                        put!(omap, (p.as_str(), ns.as_str(), o.as_str(), k.as_str()), v)
                    }
                    RecordKey::Session(id) => put!(sessions, *id, v),
                };
                r.map_err(|x| e(x.into()))?;
            }
        }
        tx.commit().map_err(|x| e(x.into()))?;
        self.commits.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Reads every record.
fn load(db: &redb::Database) -> std::io::Result<Loaded> {
    let e = redb_err::<redb::Error>("reading");
    let tx = db.begin_read().map_err(|x| e(x.into()))?;
    let mut out = Loaded::default();
    let meta = tx.open_table(META).map_err(|x| e(x.into()))?;
    if let Some(v) = meta.get(CLUSTER_KEY).map_err(|x| e(x.into()))? {
        let rec: ClusterRecord = serde_json::from_slice(v.value()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "metadata store: the cluster record is unreadable",
            )
        })?;
        if rec.format != FORMAT {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "metadata store: records of layout {} (this fake-ceph reads {FORMAT})",
                    rec.format
                ),
            ));
        }
        out.cluster = Some(rec);
    }
    out.options = meta
        .get(OPTIONS_KEY)
        .map_err(|x| e(x.into()))?
        .map(|v| v.value().to_vec());
    out.entities = rows(&tx, ENTITIES, |k: &str| k.to_owned())?;
    out.auth_meta = rows(&tx, AUTH_META, |k: &str| k.to_owned())?;
    out.groups = rows(&tx, GROUPS, |(f, g): (&str, &str)| {
        (f.to_owned(), g.to_owned())
    })?;
    out.subvolumes = rows(&tx, SUBVOLUMES, |(f, g, n): (&str, &str, &str)| {
        (f.to_owned(), g.to_owned(), n.to_owned())
    })?;
    out.objects = rows(&tx, OBJECTS, |(p, ns, o): (&str, &str, &str)| {
        (p.to_owned(), ns.to_owned(), o.to_owned())
    })?;
    out.omap = rows(&tx, OMAP, |(p, ns, o, k): (&str, &str, &str, &str)| {
        (p.to_owned(), ns.to_owned(), o.to_owned(), k.to_owned())
    })?;
    out.sessions = rows(&tx, SESSIONS, |id: u64| id)?;
    Ok(out)
}

/// Every row of `table`, its key made owned by `own` and its value copied.
fn rows<K: redb::Key + 'static, O>(
    tx: &redb::ReadTransaction,
    table: TableDefinition<'_, K, &'static [u8]>,
    own: impl for<'a> Fn(K::SelfType<'a>) -> O,
) -> std::io::Result<Vec<(O, Vec<u8>)>> {
    let e = redb_err::<redb::Error>("reading");
    let t = tx.open_table(table).map_err(|x| e(x.into()))?;
    let mut out = Vec::new();
    for row in t.iter().map_err(|x| e(x.into()))? {
        let (k, v) = row.map_err(|x| e(x.into()))?;
        out.push((own(k.value()), v.value().to_vec()));
    }
    Ok(out)
}

/// Encodes a record (JSON: the store is small, and a person can read a dump of it).
pub(crate) fn encode<T: Serialize>(v: &T) -> Option<Vec<u8>> {
    serde_json::to_vec(v).ok()
}

/// Decodes a record; the error names the kind of record, never its content (a record
/// can hold a key).
pub(crate) fn decode<'a, T: Deserialize<'a>>(kind: &str, bytes: &'a [u8]) -> std::io::Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "metadata store: a {kind} record is unreadable (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_written_are_read_back_and_removed_ones_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let (store, loaded) = Store::open(dir.path()).unwrap();
        assert!(loaded.cluster.is_none());
        let rec = ClusterRecord::new("f".into(), std::time::Duration::from_secs(5), "c".into(), 0);
        let k = |s: &str| RecordKey::Omap("p".into(), "".into(), "o".into(), s.into());
        store
            .write(&[
                (RecordKey::Cluster, encode(&rec)),
                (k("a"), Some(b"1".to_vec())),
                (k("b"), Some(b"2".to_vec())),
                (
                    RecordKey::Subvolume("c".into(), "g".into(), "s".into()),
                    Some(b"{}".to_vec()),
                ),
            ])
            .unwrap();
        store.write(&[(k("a"), None)]).unwrap();
        assert_eq!(store.commits(), 2);
        drop(store);
        let (_store, loaded) = Store::open(dir.path()).unwrap();
        assert_eq!(loaded.cluster.unwrap().fsid, "f");
        assert_eq!(
            loaded.omap,
            vec![(
                ("p".into(), "".into(), "o".into(), "b".into()),
                b"2".to_vec()
            )]
        );
        assert_eq!(loaded.subvolumes.len(), 1);
    }

    #[test]
    fn the_store_is_private_and_a_second_opener_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(META_DIR)).unwrap();
        std::fs::set_permissions(
            dir.path().join(META_DIR),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let (_store, _) = Store::open(dir.path()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join(META_DIR)), 0o700);
        assert_eq!(mode(&dir.path().join(META_DIR).join(STORE_FILE)), 0o600);
        assert!(exists(dir.path()));
        let e = Store::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("in use"), "{e}");
    }

    #[test]
    fn in_memory_marks_nothing_and_is_always_committed() {
        let s = Store::in_memory();
        s.marks().mark(RecordKey::Options);
        assert_eq!(s.marked(), 0);
        assert!(s.is_committed(s.marked()));
        assert!(s.write(&[(RecordKey::Options, None)]).is_ok());
        assert_eq!(s.commits(), 0);
    }

    #[test]
    fn a_record_of_another_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let mut rec = ClusterRecord::new("f".into(), std::time::Duration::ZERO, "c".into(), 0);
        rec.format = FORMAT + 1;
        store.write(&[(RecordKey::Cluster, encode(&rec))]).unwrap();
        drop(store);
        let e = Store::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("layout"), "{e}");
    }
}
