//! The cluster: the registry of every command table, starting (or recovering) a
//! cluster, and the command pipeline every request goes through (parse, look up, check
//! caps, validate, apply faults, run, count). It stands above the handler modules and
//! `crate::state`, which they share.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

use crate::auth::AuthDb;
use crate::cephx::{Caps, EntityName, Key, keyring_section};
use crate::command::{Args, CommandSpec, Daemon};
use crate::config::{Config, SecretSource};
use crate::error::{CephError, CephResult, Reply, errno};
use crate::fault::{Faults, apply_verdict};
use crate::fsmap::Maps;
use crate::mds::{Mds, STATE_OPEN, Session, SessionRecord, SessionToken};
use crate::metrics::Metrics;
use crate::mgr::{MgrThread, off_runtime, on_mgr_thread};
use crate::rados::Rados;
use crate::state::{Caller, Handler, Inner, Shared, uuid_from};
use crate::store::{ClusterRecord, Loaded, Metadata, RecordKey, Store};
use crate::tree::{DataDir, Purger, join_within};
use crate::volumes::Volumes;

/// Where a command is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The monitor (which proxies mgr commands), as librados `mon_command`:
    /// `POST /request`.
    Mon,
    /// The active mgr, as librados `mgr_command` (what go-ceph uses for the `volumes`
    /// module): `POST /request?target=mgr`. Only mgr commands are found there.
    Mgr,
    /// An MDS, as `ceph tell mds.<name>` addresses it: `POST /tell/mds.<name>`.
    Mds(String),
}

/// The ChaCha stream of a seed that secrets come from (the public values use stream 0).
const SECRET_STREAM: u64 = 0x7365_6372_6574;

/// A fake Ceph cluster. Cheap to clone; clones share the cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub(crate) inner: Arc<Inner>,
}

static COMMANDS: LazyLock<HashMap<&'static str, (CommandSpec, Handler)>> = LazyLock::new(|| {
    let mut m = HashMap::new();
    for table in [
        crate::handlers::fsmap::COMMANDS,
        crate::handlers::auth::COMMANDS,
        crate::handlers::volumes::COMMANDS,
        crate::handlers::rados::COMMANDS,
        crate::handlers::mds::MON_COMMANDS,
    ] {
        for (spec, h) in table {
            m.insert(spec.prefix, (*spec, *h));
        }
    }
    m
});

static MDS_COMMANDS: LazyLock<HashMap<&'static str, (CommandSpec, Handler)>> =
    LazyLock::new(|| {
        crate::handlers::mds::TELL_COMMANDS
            .iter()
            .map(|(s, h)| (s.prefix, (*s, *h)))
            .collect()
    });

/// Entities a real one-node cluster has besides `client.admin`, with their caps.
const DAEMON_ENTITIES: &[(&str, &[(&str, &str)])] = &[
    (
        "mds.a",
        &[
            ("mds", "allow"),
            ("mgr", "allow profile mds"),
            ("mon", "allow profile mds"),
            ("osd", "allow rw tag cephfs *=*"),
        ],
    ),
    (
        "osd.0",
        &[
            ("mgr", "allow profile osd"),
            ("mon", "allow profile osd"),
            ("osd", "allow *"),
        ],
    ),
    (
        "client.bootstrap-mds",
        &[("mon", "allow profile bootstrap-mds")],
    ),
    (
        "client.bootstrap-mgr",
        &[("mon", "allow profile bootstrap-mgr")],
    ),
    (
        "client.bootstrap-osd",
        &[("mon", "allow profile bootstrap-osd")],
    ),
    (
        "client.bootstrap-rbd",
        &[("mon", "allow profile bootstrap-rbd")],
    ),
    (
        "client.bootstrap-rbd-mirror",
        &[("mon", "allow profile bootstrap-rbd-mirror")],
    ),
    (
        "client.bootstrap-rgw",
        &[("mon", "allow profile bootstrap-rgw")],
    ),
    (
        "mgr.x",
        &[
            ("mds", "allow *"),
            ("mon", "allow profile mgr"),
            ("osd", "allow *"),
        ],
    ),
];

/// Every command prefix the fake serves on `/request`, sorted.
pub fn command_prefixes() -> Vec<&'static str> {
    let mut v: Vec<_> = COMMANDS.keys().copied().collect();
    v.sort_unstable();
    v
}

/// Every command signature the fake serves: those of `/request` (monitor and mgr), then
/// the MDS's `tell` commands, each sorted by prefix (a stable order, for generators of
/// commands such as the fuzz targets).
pub fn command_specs() -> Vec<CommandSpec> {
    let mut mon: Vec<CommandSpec> = COMMANDS.values().map(|(s, _)| *s).collect();
    mon.sort_unstable_by_key(|s| s.prefix);
    let mut mds: Vec<CommandSpec> = MDS_COMMANDS.values().map(|(s, _)| *s).collect();
    mds.sort_unstable_by_key(|s| s.prefix);
    mon.extend(mds);
    mon
}

impl Cluster {
    /// Starts a cluster: creates the data directory, the file system's root, and
    /// `client.admin` with `allow *` on every service. With [`Metadata::Durable`], a data
    /// dir that holds a metadata store is recovered instead: its records are loaded and
    /// reconciled with the tree (`Volumes::reconcile`), the trash is purged, and the
    /// cluster goes on where it stopped, its MDS sessions included (their clients
    /// reconnect, as after an MDS restart).
    pub fn new(config: Config) -> std::io::Result<Self> {
        let (data, store, mut loaded) = open_data(&config)?;
        let boot = loaded.cluster.as_ref().map_or(0, |c| c.boot + 1);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        if boot > 0 {
            // A restart with the same seed must not draw the same UUIDs again.
            rng.set_stream(boot);
        }
        let mut secret_rng = match config.secrets {
            SecretSource::Seed => {
                let mut r = ChaCha8Rng::seed_from_u64(config.seed);
                r.set_stream(SECRET_STREAM.wrapping_add(boot));
                r
            }
            SecretSource::Os => ChaCha8Rng::try_from_rng(&mut rand::rngs::SysRng)
                .map_err(|e| std::io::Error::other(format!("the OS random source: {e}")))?,
        };
        let fresh = loaded.cluster.is_none();
        let (maps, mut auth, mut volumes, mut rados) = match &loaded.cluster {
            None => {
                let fsid = uuid_from(&mut rng);
                let maps = Maps::new(fsid, config.mon_addrs.clone(), &config.fs_name);
                let auth = initial_auth(&config, &mut secret_rng)?;
                (
                    maps,
                    auth,
                    Volumes::new(config.volumes.clone()),
                    Rados::default(),
                )
            }
            Some(rec) => recovered_state(&config, rec, &loaded)?,
        };
        let sessions = std::mem::take(&mut loaded.sessions);
        drop(loaded);
        auth.marks = store.marks();
        volumes.marks = store.marks();
        rados.marks = store.marks();
        let pause_purging = volumes.options().pause_purging;
        let purger = Purger::start();
        let inner = Inner {
            started: Instant::now(),
            auth: RwLock::new(auth),
            shared: Mutex::new(Shared {
                maps,
                volumes,
                rados,
                faults: config.faults.clone(),
            }),
            mds: {
                let mut mds = Mds::new(config.mds.clone(), config.faults.mds_down);
                mds.marks = store.marks();
                mds
            },
            metrics: Metrics::new(),
            rng: Mutex::new(rng),
            secret_rng: Mutex::new(secret_rng),
            mgr: MgrThread::start(),
            purger,
            store,
            boot,
            data,
            config,
        };
        inner.purger.set_paused(pause_purging);
        inner.mds.number_sessions_for_boot(boot);
        if inner.store.is_durable_store() {
            inner.first_commit(fresh)?;
        }
        let fs_names: Vec<String> = {
            let sh = inner.shared.lock();
            sh.maps.filesystems.iter().map(|f| f.name.clone()).collect()
        };
        for fs in &fs_names {
            let vols = inner.data.fs_root(fs).join("volumes");
            std::fs::create_dir_all(&vols)?;
            // What an earlier run left in the trash is purged now.
            for e in std::fs::read_dir(vols.join("_deleting"))
                .into_iter()
                .flatten()
            {
                inner.purger.enqueue(e?.path());
            }
        }
        let cluster = Self {
            inner: Arc::new(inner),
        };
        if !sessions.is_empty() {
            let n = cluster.inner.restore_sessions(sessions);
            tracing::info!(sessions = n, "MDS sessions reopened for their clients");
            // Records of sessions that could not be reopened are removed now.
            let inner = &cluster.inner;
            inner.sync_through(inner.store.marked())?;
        }
        Ok(cluster)
    }

    /// How many transactions the metadata store has committed since the cluster started
    /// (0 with in-memory metadata): fewer than the mutating commands when concurrent
    /// commands share commits.
    pub fn metadata_commits(&self) -> u64 {
        self.inner.store.commits()
    }

    /// The configuration the cluster was started with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The data directory holding the CephFS trees.
    pub fn data_dir(&self) -> &Path {
        self.inner.data.root()
    }

    /// The local directory that is `/` of a file system.
    pub fn fs_root(&self, fs: &str) -> PathBuf {
        self.inner.data.fs_root(fs)
    }

    /// The cluster fsid.
    pub fn fsid(&self) -> String {
        self.inner.shared.lock().maps.fsid.clone()
    }

    /// The `client.admin` key (base64). It is a secret: do not log it.
    pub fn admin_key(&self) -> String {
        self.key_of("client.admin").unwrap_or_default()
    }

    /// An entity's key, if it exists. It is a secret: do not log it.
    pub fn key_of(&self, entity: &str) -> Option<String> {
        self.inner
            .auth
            .read()
            .get(entity)
            .map(|e| e.key.expose().to_owned())
    }

    /// A Ceph-format keyring for one entity (`[client.admin]\n\tkey = ...`).
    pub fn keyring(&self, entity: &str) -> Option<String> {
        let db = self.inner.auth.read();
        let name = EntityName::parse(entity).ok()?;
        let e = db.get(entity)?;
        Some(keyring_section(&name, &e.key, &e.caps))
    }

    /// Checks an entity's key; the caller identity for later commands.
    pub fn authenticate(&self, entity: &str, key: &str) -> Option<Caller> {
        self.inner
            .auth
            .read()
            .authenticate(entity, key)
            .map(|(entity, caps)| Caller { entity, caps })
    }

    /// A `client.admin` caller with `allow *` on every service, for in-process use (as
    /// the `ceph` CLI run with the admin keyring on a cluster host). It does not depend
    /// on the auth database, so it works even after `auth rm client.admin`.
    pub fn admin(&self) -> Caller {
        let all = |s: &str| (s.to_owned(), "allow *".to_owned());
        Caller {
            entity: EntityName::client_admin(),
            caps: Arc::new(
                Caps::parse(&[all("mds"), all("mgr"), all("mon"), all("osd")]).unwrap_or_default(),
            ),
        }
    }

    /// Waits until every record marked so far is committed (at once without a durable
    /// store), sharing commits with the other callers waiting.
    pub(crate) async fn commit_marked(&self) -> std::io::Result<()> {
        let upto = self.inner.store.marked();
        if self.inner.store.is_committed(upto) {
            return Ok(());
        }
        let commit = || {
            let inner = self.inner.clone();
            async move {
                off_runtime(move || inner.sync_through(upto))
                    .await
                    .unwrap_or_else(|| Err(std::io::Error::other("the commit panicked")))
            }
        };
        self.inner.store.committed(upto, commit).await
    }

    /// Runs one command given as JSON bytes, exactly as `POST /request` does.
    pub async fn execute(&self, caller: &Caller, target: Target, body: &[u8]) -> Reply {
        let started = Instant::now();
        let (label, mut reply) = self.execute_inner(caller, target, body).await;
        // Nothing is answered before what it changed (or saw changed) is committed.
        if let Err(e) = self.commit_marked().await {
            tracing::error!(prefix = label, error = %e, "metadata commit failed");
            reply = CephError::new(
                errno::EIO,
                "failed to commit the change to the metadata store",
            )
            .into();
        }
        // Only the prefix, the entity and the return code are logged: bodies and
        // outputs can carry keys.
        tracing::debug!(
            prefix = label,
            entity = %caller.entity,
            ret = reply.ret,
            took_us = started.elapsed().as_micros() as u64,
            "command"
        );
        self.inner
            .metrics
            .command_done(label, reply.ret, started.elapsed());
        reply
    }

    /// Runs one command given as a JSON value.
    pub async fn execute_json(&self, caller: &Caller, target: Target, cmd: &Value) -> Reply {
        self.execute(caller, target, cmd.to_string().as_bytes())
            .await
    }

    /// Runs a command as `client.admin` against the monitor; a convenience for tests
    /// and the harness.
    pub async fn admin_command(&self, cmd: Value) -> Reply {
        let admin = self.admin();
        self.execute_json(&admin, Target::Mon, &cmd).await
    }

    async fn execute_inner(
        &self,
        caller: &Caller,
        target: Target,
        body: &[u8],
    ) -> (&'static str, Reply) {
        // Ceph quotes a bad body back; keep that bounded.
        let shown = || -> String { String::from_utf8_lossy(body).chars().take(256).collect() };
        let map: Map<String, Value> = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                let msg = format!("not JSON object {}", shown());
                return ("invalid", CephError::inval(msg).into());
            }
            Err(_) => {
                let msg = format!("unparseable JSON {}", shown());
                return ("invalid", CephError::inval(msg).into());
            }
        };
        if target == Target::Mgr && map.get("prefix").is_some_and(|p| !p.is_string()) {
            return (
                "invalid",
                CephError::inval("bad or missing field 'prefix'").into(),
            );
        }
        let prefix = map.get("prefix").and_then(Value::as_str);
        let found = prefix.and_then(|p| match &target {
            Target::Mon => COMMANDS.get(p),
            Target::Mgr => COMMANDS.get(p).filter(|(s, _)| s.daemon == Daemon::Mgr),
            Target::Mds(_) => MDS_COMMANDS.get(p),
        });
        let Some(&(spec, handler)) = found else {
            let msg = match (&target, prefix) {
                (Target::Mon, None) => "command prefix not found".to_owned(),
                (Target::Mon, Some(_)) => "command not known".to_owned(),
                (Target::Mds(_), p) => format!("unknown command prefix {}", p.unwrap_or("")),
                (_, p) => format!("No handler found for '{}'", p.unwrap_or("")),
            };
            let label = if prefix.is_some() {
                "unknown"
            } else {
                "invalid"
            };
            return (label, CephError::inval(msg).into());
        };
        if let Target::Mds(name) = &target
            && let Err(e) = self.inner.check_mds_target(name)
        {
            return (spec.prefix, e.into());
        }
        if !self.inner.allowed(caller, &spec, &map) {
            let e = if target == Target::Mgr {
                CephError::new(
                    errno::EACCES,
                    "access denied: does your client key have mgr caps? See \
                     http://docs.ceph.com/en/latest/mgr/administrator/#client-authentication",
                )
            } else {
                CephError::access_denied()
            };
            return (spec.prefix, e.into());
        }
        if let Err(e) = Args::validate(&spec, &map) {
            return (spec.prefix, e.into());
        }
        let verdict = self.inner.fault_verdict(spec.prefix);
        if let Some(reply) = apply_verdict(&verdict).await {
            return (spec.prefix, reply);
        }
        // `volumes` commands touch the tree (mkdir, rename, copies of finishing clones):
        // they must not block a runtime thread that other tasks are waiting on.
        let reply = if spec.daemon == Daemon::Mgr {
            let inner = self.inner.clone();
            let caller = caller.clone();
            let mgr = self.inner.mgr.clone_sender();
            on_mgr_thread(mgr, move || run(&inner, &spec, handler, &map, &caller))
                .await
                .unwrap_or_else(|| CephError::new(errno::EIO, "command handler failed").into())
        } else {
            run(&self.inner, &spec, handler, &map, caller)
        };
        (spec.prefix, reply)
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        let mut f = self.inner.shared.lock().faults.clone();
        f.mds_down = self.inner.mds.is_down();
        f
    }

    /// Replaces the faults in force.
    pub fn set_faults(&self, faults: Faults) {
        self.inner.mds.set_down(faults.mds_down);
        self.inner.shared.lock().faults = faults;
    }

    /// How many removed subvolumes still wait to be purged.
    pub fn purge_pending(&self) -> usize {
        self.inner.purger.pending()
    }

    /// The Prometheus text exposition of the cluster's metrics.
    pub fn metrics_text(&self) -> String {
        let inner = &self.inner;
        let subvolumes = inner.shared.lock().volumes.subvolume_count();
        inner
            .metrics
            .render(&inner.mds, subvolumes, inner.purger.pending())
    }
}

fn run(
    inner: &Inner,
    spec: &CommandSpec,
    handler: Handler,
    map: &Map<String, Value>,
    caller: &Caller,
) -> Reply {
    match Args::validate(spec, map) {
        Ok(args) => handler(inner, &args, caller).into(),
        Err(e) => e.into(),
    }
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, msg)
}

/// The data dir and the metadata store the configuration asks for, with what the store
/// held. A durable cluster's data dir either holds a store (recovered, even if the
/// store's first commit never happened, as long as nothing else is there) or is empty.
fn open_data(config: &Config) -> std::io::Result<(DataDir, Store, Loaded)> {
    if config.metadata == Metadata::InMemory {
        let data = DataDir::new(config.data_dir.as_deref())?;
        return Ok((data, Store::in_memory(), Loaded::default()));
    }
    let Some(dir) = config.data_dir.as_deref() else {
        return Err(invalid(
            "durable metadata needs a data dir that outlives the process".to_owned(),
        ));
    };
    if !crate::store::exists(dir) {
        // A start that died before it made its store leaves an empty `meta`.
        let _ = std::fs::remove_dir(dir.join(crate::store::META_DIR));
        let data = DataDir::new(Some(dir))?;
        let (store, loaded) = Store::open(data.root())?;
        return Ok((data, store, loaded));
    }
    let data = DataDir::existing(dir)?;
    let (store, loaded) = Store::open(data.root())?;
    if loaded.cluster.is_none() {
        let others = std::fs::read_dir(data.root())?
            .filter_map(Result::ok)
            .any(|e| e.file_name() != crate::store::META_DIR);
        if others {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "data dir {} is not empty and its metadata store holds no cluster",
                    data.root().display()
                ),
            ));
        }
    }
    Ok((data, store, loaded))
}

/// A new cluster's entities: `client.admin` and the daemons a one-node cluster has.
fn initial_auth(config: &Config, secret_rng: &mut ChaCha8Rng) -> std::io::Result<AuthDb> {
    let now = crate::time::now_unix();
    let admin_key = match &config.admin_key {
        Some(k) => Key::parse(k).map_err(|e| std::io::Error::other(e.msg))?,
        None => Key::generate(secret_rng, now.as_secs() as u32, now.subsec_nanos()),
    };
    let mut auth = AuthDb::default();
    let all = |s: &str| (s.to_owned(), "allow *".to_owned());
    let admin_caps = Caps::parse(&[all("mds"), all("mgr"), all("mon"), all("osd")])
        .map_err(|e| std::io::Error::other(e.msg))?;
    auth.put(
        EntityName::parse("client.admin").map_err(|e| std::io::Error::other(e.msg))?,
        admin_key,
        admin_caps,
    );
    // The daemons' and bootstrap entities a one-node cluster has, as `auth ls` shows.
    for (name, caps) in DAEMON_ENTITIES {
        let pairs: Vec<(String, String)> = caps
            .iter()
            .map(|(s, c)| ((*s).to_owned(), (*c).to_owned()))
            .collect();
        let caps = Caps::parse(&pairs).map_err(|e| std::io::Error::other(e.msg))?;
        let name = EntityName::parse(name).map_err(|e| std::io::Error::other(e.msg))?;
        let key = Key::generate(secret_rng, now.as_secs() as u32, now.subsec_nanos());
        auth.put(name, key, caps);
    }
    Ok(auth)
}

/// The state a store held, checked against the configuration: the file system's name
/// and a given admin key must be the ones the store has.
fn recovered_state(
    config: &Config,
    rec: &ClusterRecord,
    loaded: &Loaded,
) -> std::io::Result<(Maps, AuthDb, Volumes, Rados)> {
    if rec.fs_name != config.fs_name {
        return Err(invalid(format!(
            "the data dir holds file system '{}', not '{}'",
            rec.fs_name, config.fs_name
        )));
    }
    let mut maps = Maps::new(rec.fsid.clone(), config.mon_addrs.clone(), &rec.fs_name);
    maps.created = rec.created;
    let auth = AuthDb::restore(&loaded.entities)?;
    if let Some(k) = &config.admin_key {
        let given = Key::parse(k).map_err(|e| std::io::Error::other(e.msg))?;
        if auth.get("client.admin").is_some_and(|e| e.key != given) {
            // Neither key is named: both are secrets.
            return Err(invalid(
                "the given client.admin key is not the one the data dir holds".to_owned(),
            ));
        }
    }
    let volumes = Volumes::restore(config.volumes.clone(), &config.clock, loaded)?;
    let rados = Rados::restore(loaded.objects.clone(), loaded.omap.clone())?;
    Ok((maps, auth, volumes, rados))
}

impl Inner {
    /// Opens again, after a restart on a metadata store, the sessions it recorded, as
    /// their clients reconnect after an MDS restart: same id, token and root, with the
    /// caps their entity has now. A session whose entity is gone, whose caps no longer
    /// allow its root, or whose record is unreadable is dropped (its client's reconnect
    /// is refused), and so is its record. Returns how many were opened.
    pub(crate) fn restore_sessions(&self, records: Vec<(u64, Vec<u8>)>) -> usize {
        let inner = self;
        let mut restored = 0;
        for (id, bytes) in records {
            let session = serde_json::from_slice::<SessionRecord>(&bytes)
                .ok()
                .and_then(|r| self.reopened(r));
            match session {
                Some(s) => {
                    inner.mds.sessions.write().insert(s.id, Arc::new(s));
                    restored += 1;
                }
                None => {
                    let _guard = inner.mds.sessions.write();
                    inner.mds.marks.mark(crate::store::RecordKey::Session(id));
                }
            }
        }
        inner
            .mds
            .counters
            .session_add
            .fetch_add(restored as u64, Ordering::Relaxed);
        inner
            .mds
            .counters
            .caps
            .fetch_add(restored as u64, Ordering::Relaxed);
        restored
    }

    fn reopened(&self, r: SessionRecord) -> Option<Session> {
        let inner = self;
        let entity = EntityName::parse(&r.entity).ok()?;
        let caps = inner.auth.read().get(entity.as_str())?.caps.clone();
        if !caps.mds_root_allowed(&r.fs, &r.root) {
            return None;
        }
        let realm = inner.shared.lock().volumes.realm_for_path(&r.fs, &r.root);
        let fs_root = inner.data.fs_root(&r.fs);
        let local_root = join_within(&fs_root, &r.root).ok()?;
        if let Some((realm, path)) = &realm
            && let Ok(dir) = join_within(&fs_root, path)
        {
            realm.ensure_counted(&dir);
        }
        Some(Session {
            id: r.id,
            nonce: r.nonce,
            token: SessionToken(r.token),
            entity,
            caps,
            fs: r.fs,
            root: r.root,
            local_root,
            fs_root,
            metadata: r.metadata,
            realm: realm.map(|(r, _)| r),
            opened: Instant::now(),
            state: AtomicU8::new(STATE_OPEN),
            num_caps: AtomicU64::new(1),
            completed: AtomicU64::new(0),
        })
    }

    fn check_mds_target(&self, name: &str) -> CephResult<()> {
        let sh = self.shared.lock();
        let known = sh.maps.filesystems.iter().any(|f| {
            name == f.mds_name
                || name == "0"
                || name == "*"
                || name == format!("{}:0", f.name)
                || name == f.mds_gid.to_string()
        });
        if !known {
            // Ceph answers an unknown daemon with ENOENT and nothing to say.
            return Err(CephError::noent(""));
        }
        if self.mds.is_down() {
            return Err(CephError::new(
                errno::ENOENT,
                format!("problem getting command descriptions from mds.{name}"),
            ));
        }
        Ok(())
    }

    fn allowed(&self, caller: &Caller, spec: &CommandSpec, map: &Map<String, Value>) -> bool {
        let need = spec.need();
        let fs = map
            .get("vol_name")
            .or_else(|| map.get("fs_name"))
            .or_else(|| map.get("filesystem"))
            .and_then(Value::as_str);
        match spec.daemon {
            Daemon::Mon => caller.caps.mon_allows(spec.module, spec.prefix, need, fs),
            Daemon::Mgr => caller.caps.mgr_allows(spec.module, spec.prefix, need, fs),
            Daemon::Mds => caller.caps.mds_allow_all(),
            // RADOS operations check OSD caps per object, in the handler.
            Daemon::Osd => true,
        }
    }

    /// The store's first commit of this start: a new cluster's identity and entities,
    /// or a recovered one's reconciliation and new boot count.
    fn first_commit(&self, fresh: bool) -> std::io::Result<()> {
        {
            let mut sh = self.shared.lock();
            let auth = self.auth.read();
            sh.volumes.marks.mark(RecordKey::Cluster);
            if fresh {
                for (name, _) in auth.iter() {
                    auth.marks.mark(RecordKey::Entity(name.as_str().to_owned()));
                }
            } else {
                let fs_names: Vec<String> =
                    sh.maps.filesystems.iter().map(|f| f.name.clone()).collect();
                for fs in fs_names {
                    let r = sh.volumes.reconcile(&fs, &self.data.fs_root(&fs))?;
                    tracing::info!(
                        fs = %fs,
                        boot = self.boot,
                        subvolumes = sh.volumes.subvolume_count(),
                        entities = auth.len(),
                        objects = sh.rados.object_count(),
                        dropped = ?r.dropped,
                        trashed = r.trashed.len(),
                        remade = ?r.remade,
                        "metadata recovered"
                    );
                }
            }
        }
        self.sync_through(self.store.marked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_specs_are_every_command_once_in_a_stable_order() {
        let specs = command_specs();
        let (served, mds) = specs.split_at(COMMANDS.len());
        let prefixes: Vec<_> = served.iter().map(|s| s.prefix).collect();
        assert_eq!(prefixes, command_prefixes());
        assert_eq!(mds.len(), MDS_COMMANDS.len());
        assert!(mds.iter().all(|s| s.daemon == Daemon::Mds));
        assert!(mds.windows(2).all(|w| w[0].prefix < w[1].prefix));
        assert!(mds.iter().any(|s| s.prefix == "session ls"));
        assert_eq!(command_specs()[7].prefix, specs[7].prefix);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn volumes_commands_work_on_a_current_thread_runtime() {
        let c = Cluster::new(Config::default()).expect("cluster");
        let r = c
            .admin_command(serde_json::json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "sub_name": "a"}))
            .await;
        assert_eq!(r.ret, 0, "{}", r.outs);
        let r = c
            .admin_command(serde_json::json!({"prefix": "fs subvolume getpath", "vol_name": "cephfs", "sub_name": "a"}))
            .await;
        assert_eq!(r.ret, 0, "{}", r.outs);
        assert!(r.outb.starts_with("/volumes/_nogroup/a/"), "{}", r.outb);
    }
}
