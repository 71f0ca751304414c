//! The MDS: client sessions (mounts), the client operations they perform on the tree,
//! quotas, eviction, and the perf counters (`perf dump`) that benchmarks read.
//!
//! A mount is a session: a client presents its entity and key, the root it wants and
//! its metadata (hostname, mount point, ...). The fake checks the key and the MDS path
//! caps (EPERM `non-allowable root` outside them, as the real MDS answers), registers
//! the session and hands back the local directory of that subtree. Operations made
//! through the session are charged to the MDS counters and checked against the caps,
//! the subvolume quota and the session's state (an evicted session fails).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cephx::{Caps, EntityName, Perm};
use crate::cluster::Cluster;
use crate::command::{ArgType, Args, CommandSpec, Daemon, opt};
use crate::error::{CephError, CephResult, Reply, errno};
use crate::fault::apply_verdict;
use crate::mds_load::MdsConfig;
use crate::state::{Caller, CommandTable, Handler, Inner};
use crate::tree::join_within;

/// The most one `read` operation returns: one object of CephFS's default file layout
/// (`ceph.file.layout.object_size`, 4 MiB), the most a client gets from one OSD read
/// request. A longer read is answered short, as a file system may answer any read.
pub const MAX_READ_BYTES: u64 = 4 << 20;
/// The most the reads of one request (`POST /mds/sessions/{id}/ops`) return together:
/// four full reads, so that a body-sized list of reads cannot make the answer grow
/// without bound (its base64 is a third larger).
pub const MAX_REQUEST_READ_BYTES: u64 = 16 << 20;
/// The largest file a client may make: the file system's `max_file_size` (CephFS's
/// default, 1 TiB, as `fs get` reports it). Beyond it, writes and truncates are EFBIG,
/// as the MDS and clients answer.
pub const MAX_FILE_SIZE: u64 = crate::fsmap::MAX_FILE_SIZE;

fn file_too_large() -> CephError {
    CephError::new(errno::EFBIG, "File too large")
}

/// A quota realm: a subvolume's `ceph.quota.max_bytes` and the bytes under it.
#[derive(Debug, Default)]
pub struct QuotaRealm {
    max_bytes: AtomicU64,
    used: AtomicU64,
    counted: AtomicBool,
}

impl QuotaRealm {
    /// A realm with a quota (0 = none).
    pub fn new(max_bytes: u64) -> Arc<Self> {
        Arc::new(Self {
            max_bytes: AtomicU64::new(max_bytes),
            ..Self::default()
        })
    }

    /// The quota, 0 if none.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes.load(Ordering::SeqCst)
    }

    /// Sets the quota (0 removes it).
    pub fn set_max_bytes(&self, v: u64) {
        self.max_bytes.store(v, Ordering::SeqCst);
    }

    /// Bytes used, as last counted or tracked.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::SeqCst)
    }

    /// Records a fresh count of the bytes under the realm.
    pub fn set_used(&self, v: u64) {
        self.used.store(v, Ordering::SeqCst);
        self.counted.store(true, Ordering::SeqCst);
    }

    fn ensure_counted(&self, dir: &std::path::Path) {
        if !self.counted.load(Ordering::SeqCst) {
            self.set_used(crate::tree::du(dir));
        }
    }

    /// Reserves `delta` more bytes, or EDQUOT if that would pass the quota.
    fn charge(&self, delta: u64) -> CephResult<()> {
        let max = self.max_bytes();
        let mut cur = self.used.load(Ordering::SeqCst);
        loop {
            let next = cur.saturating_add(delta);
            if max > 0 && delta > 0 && next > max {
                return Err(CephError::new(errno::EDQUOT, "Disk quota exceeded"));
            }
            match self
                .used
                .compare_exchange(cur, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Ok(()),
                Err(actual) => cur = actual,
            }
        }
    }

    fn release(&self, delta: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| {
                Some(u.saturating_sub(delta))
            });
    }
}

/// A session's handle: 32 hex characters from the cluster's secrets' RNG, handed to the
/// client that opened the session so it can later show, use or close it without its
/// cephx key (a kernel umount needs no key; CSI `NodeUnstageVolume` carries no secrets).
/// It is a secret: its `Debug` prints nothing of it, and `session ls` never shows it.
struct SessionToken(String);

impl SessionToken {
    /// 128 random bits from the secrets' RNG ([`crate::config::SecretSource`]).
    fn generate(inner: &Inner) -> Self {
        let mut b = [0u8; 16];
        inner.secret_bytes(&mut b);
        Self(b.iter().map(|x| format!("{x:02x}")).collect())
    }

    /// Compares in constant time (for tokens of the expected length).
    fn matches(&self, presented: &str) -> bool {
        let a = self.0.as_bytes();
        let b = presented.trim().as_bytes();
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

const STATE_OPEN: u8 = 0;
const STATE_CLOSED: u8 = 1;
const STATE_EVICTED: u8 = 2;

/// One client session.
#[derive(Debug)]
pub struct Session {
    id: u64,
    nonce: u32,
    token: SessionToken,
    entity: EntityName,
    caps: Arc<Caps>,
    fs: String,
    root: String,
    local_root: PathBuf,
    /// The file system's root in the data dir: operations open the session's root from
    /// it, one directory at a time, for every operation ([`crate::beneath`]).
    fs_root: PathBuf,
    metadata: BTreeMap<String, String>,
    realm: Option<Arc<QuotaRealm>>,
    opened: Instant,
    state: AtomicU8,
    num_caps: AtomicU64,
    completed: AtomicU64,
}

impl Session {
    /// The session (client) id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The root path in CephFS.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The local directory that the root is.
    pub fn local_root(&self) -> &std::path::Path {
        &self.local_root
    }

    fn is_kernel(&self) -> bool {
        self.metadata.contains_key("kernel_version")
    }

    fn inst(&self) -> String {
        format!("client.{} 127.0.0.1:0/{}", self.id, self.nonce)
    }

    fn state_name(&self) -> &'static str {
        match self.state.load(Ordering::SeqCst) {
            STATE_OPEN => "open",
            STATE_CLOSED => "closed",
            _ => "killing",
        }
    }

    fn client_metadata(&self) -> Value {
        let mut m = serde_json::Map::new();
        // What the MDS learns of a client's feature bits (ceph-fuse 16.2 sends these).
        m.insert(
            "client_features".into(),
            json!({"feature_bits": "0x000000000007ffff"}),
        );
        m.insert(
            "metric_spec".into(),
            json!({"metric_flags": {"feature_bits": "0x000000000000ffff"}}),
        );
        for (k, v) in &self.metadata {
            m.insert(k.clone(), json!(v));
        }
        m.insert("entity_id".into(), json!(self.entity.id()));
        m.insert("root".into(), json!(self.root));
        Value::Object(m)
    }

    fn dump(&self) -> Value {
        let decay = |halflife: f64| json!({"value": 0, "halflife": halflife});
        let completed = self.completed.load(Ordering::Relaxed);
        json!({
            "id": self.id,
            "entity": {
                "name": {"type": "client", "num": self.id},
                "addr": {"type": "any", "addr": "127.0.0.1:0", "nonce": self.nonce},
            },
            "state": self.state_name(),
            "num_leases": 0,
            "num_caps": self.num_caps.load(Ordering::Relaxed),
            "request_load_avg": 0,
            "uptime": self.opened.elapsed().as_secs_f64(),
            "requests_in_flight": 0,
            "num_completed_requests": 0,
            "num_completed_flushes": 0,
            "reconnecting": false,
            "recall_caps": decay(60.0),
            "release_caps": decay(60.0),
            "recall_caps_throttle": decay(1.5),
            "recall_caps_throttle2o": decay(0.5),
            "session_cache_liveness": decay(300.0),
            "cap_acquisition": decay(30.0),
            "last_trim_completed_requests_tid": completed,
            "last_trim_completed_flushes_tid": 0,
            "delegated_inos": [],
            "inst": self.inst(),
            "completed_requests": [],
            "prealloc_inos": [],
            "client_metadata": self.client_metadata(),
        })
    }

    /// Whether a `key=value` filter of `session ls` / `client evict` matches (the filter
    /// has been checked by [`check_filter`]).
    fn matches(&self, filter: &str) -> CephResult<bool> {
        let (k, v) = filter
            .split_once('=')
            .ok_or_else(|| CephError::inval(format!("Invalid filter '{filter}'")))?;
        Ok(match k {
            "id" => v.parse::<u64>().is_ok_and(|id| id == self.id),
            "auth_name" => self.entity.id() == v || self.entity.as_str() == v,
            "state" => self.state_name() == v,
            "addr" => self.inst().contains(v),
            _ => match k.strip_prefix("client_metadata.") {
                Some("root") => self.root == v,
                Some("entity_id") => self.entity.id() == v,
                Some(key) => self.metadata.get(key).is_some_and(|x| x == v),
                None => return Err(CephError::inval(format!("Invalid filter key '{k}'"))),
            },
        })
    }
}

/// The MDS request types Ceph keeps latency counters for (`req_<name>_latency`).
const REQ_KINDS: [&str; 29] = [
    "create",
    "getattr",
    "getfilelock",
    "link",
    "lookup",
    "lookuphash",
    "lookupino",
    "lookupname",
    "lookupparent",
    "lookupsnap",
    "lssnap",
    "mkdir",
    "mknod",
    "mksnap",
    "open",
    "readdir",
    "rename",
    "renamesnap",
    "rmdir",
    "rmsnap",
    "rmxattr",
    "setattr",
    "setdirlayout",
    "setfilelock",
    "setlayout",
    "setxattr",
    "symlink",
    "unlink",
    "getvxattr",
];

fn req_index(kind: &str) -> usize {
    REQ_KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}

#[derive(Debug, Default)]
struct Latency {
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Latency {
    fn record(&self, ns: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    fn dump(&self) -> Value {
        let n = self.count.load(Ordering::Relaxed);
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        json!({"avgcount": n, "sum": sum, "avgtime": if n == 0 { 0.0 } else { sum / n as f64 }})
    }
}

#[derive(Debug, Default)]
struct Counters {
    request: AtomicU64,
    handle_client_request: AtomicU64,
    handle_client_session: AtomicU64,
    session_add: AtomicU64,
    session_remove: AtomicU64,
    inodes: AtomicU64,
    inodes_added: AtomicU64,
    inodes_removed: AtomicU64,
    caps: AtomicU64,
    caps_added: AtomicU64,
    caps_removed: AtomicU64,
    reply: Latency,
    req: [Latency; REQ_KINDS.len()],
}

/// Checks a `key=value` filter of `session ls` / `client evict` as the MDS does, whether
/// or not any session is there to match.
fn check_filter(filter: &str) -> CephResult<()> {
    let (k, _) = filter
        .split_once('=')
        .ok_or_else(|| CephError::inval(format!("Invalid filter '{filter}'")))?;
    match k {
        "id" | "auth_name" | "state" | "addr" => Ok(()),
        k if k.starts_with("client_metadata.") => Ok(()),
        k => Err(CephError::inval(format!("Invalid filter key '{k}'"))),
    }
}

/// The MDS of the (single) active rank.
#[derive(Debug)]
pub struct Mds {
    config: MdsConfig,
    load: RwLock<crate::mds_load::LoadModel>,
    sessions: RwLock<HashMap<u64, Arc<Session>>>,
    next_id: AtomicU64,
    counters: Counters,
    down: AtomicBool,
    /// Blocklisted client addresses and when the entry expires.
    blocklist: Mutex<Vec<(String, std::time::Duration)>>,
    /// Every session opened or removed is marked for the metadata store (under the
    /// sessions' lock).
    pub(crate) marks: crate::store::Marks,
}

/// What the metadata store keeps of an open session: what its client presents when it
/// reconnects after an MDS restart. Caps, quota realm and paths are derived again.
#[derive(Serialize, Deserialize)]
struct SessionRecord {
    id: u64,
    nonce: u32,
    token: String,
    entity: String,
    fs: String,
    root: String,
    metadata: BTreeMap<String, String>,
}

impl Mds {
    /// A fresh MDS.
    pub fn new(config: MdsConfig, down: bool) -> Self {
        Self {
            load: RwLock::new(config.load),
            config,
            sessions: RwLock::new(HashMap::new()),
            next_id: AtomicU64::new(4_300),
            counters: Counters::default(),
            down: AtomicBool::new(down),
            blocklist: Mutex::new(Vec::new()),
            marks: crate::store::Marks::default(),
        }
    }

    /// Registers a session, marked for the metadata store.
    fn insert(&self, session: Arc<Session>) {
        let mut sessions = self.sessions.write();
        self.marks
            .mark(crate::store::RecordKey::Session(session.id));
        sessions.insert(session.id, session);
    }

    /// The store's record of session `id`; `None` if it is not open.
    pub(crate) fn session_record(&self, id: u64) -> Option<Vec<u8>> {
        let sessions = self.sessions.read();
        let s = sessions.get(&id)?;
        crate::store::encode(&SessionRecord {
            id: s.id,
            nonce: s.nonce,
            token: s.token.0.clone(),
            entity: s.entity.as_str().to_owned(),
            fs: s.fs.clone(),
            root: s.root.clone(),
            metadata: s.metadata.clone(),
        })
    }

    /// Numbers the sessions of the `boot`th start on a metadata store from a range of
    /// their own, as Ceph's monitors never hand a client id out twice: a session closed
    /// before a restart is never taken by another one after it.
    pub(crate) fn number_sessions_for_boot(&self, boot: u64) {
        self.next_id.store(4_300 + (boot << 32), Ordering::Relaxed);
    }

    /// Whether the MDS is down (a fault).
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Takes the MDS down or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Counts `n` client requests made by the mgr's own client (subvolume commands).
    pub fn charge_internal(&self, n: u64) {
        self.counters.request.fetch_add(n, Ordering::Relaxed);
        self.counters
            .handle_client_request
            .fetch_add(n, Ordering::Relaxed);
        self.counters.reply.count.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one client request of `kind` that took `took`.
    fn record_request(&self, kind: &str, took: std::time::Duration) {
        let ns = took.as_nanos() as u64;
        let c = &self.counters;
        c.request.fetch_add(1, Ordering::Relaxed);
        c.handle_client_request.fetch_add(1, Ordering::Relaxed);
        c.reply.record(ns);
        c.req[req_index(kind)].record(ns);
    }

    /// Open sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.read().len()
    }

    /// `mds_server.handle_client_request` so far.
    pub fn handle_client_request(&self) -> u64 {
        self.counters.handle_client_request.load(Ordering::Relaxed)
    }

    /// Caps held by all clients.
    pub fn caps(&self) -> u64 {
        self.counters.caps.load(Ordering::Relaxed)
    }

    /// Inodes in cache (estimate): the live ones, trimmed to the cache limit but never
    /// below what caps pin.
    pub fn inodes(&self) -> u64 {
        crate::mds_load::cached_inodes(
            self.counters.inodes.load(Ordering::Relaxed),
            self.caps(),
            &self.config,
        )
    }

    /// The memory estimate of the model, in bytes.
    pub fn rss_estimate(&self) -> u64 {
        crate::mds_load::rss_bytes(
            self.session_count() as u64,
            self.caps(),
            self.inodes(),
            &self.config,
        )
    }

    /// The request capacity model in force.
    pub fn load_model(&self) -> crate::mds_load::LoadModel {
        *self.load.read()
    }

    /// Replaces the request capacity model (`max_mds` changed, a faster MDS).
    pub fn set_load_model(&self, m: crate::mds_load::LoadModel) {
        *self.load.write() = m;
    }

    fn sessions_matching(&self, filters: &[&str]) -> CephResult<Vec<Arc<Session>>> {
        for f in filters {
            check_filter(f)?;
        }
        let all: Vec<Arc<Session>> = self.sessions.read().values().cloned().collect();
        let mut out = Vec::new();
        for s in all {
            let mut ok = true;
            for f in filters {
                ok &= s.matches(f)?;
            }
            if ok {
                out.push(s);
            }
        }
        out.sort_by_key(|s| s.id);
        Ok(out)
    }

    fn remove(&self, id: u64, new_state: u8) -> Option<Arc<Session>> {
        let s = {
            let mut sessions = self.sessions.write();
            let s = sessions.remove(&id)?;
            self.marks.mark(crate::store::RecordKey::Session(id));
            s
        };
        s.state.store(new_state, Ordering::SeqCst);
        self.counters.session_remove.fetch_add(1, Ordering::Relaxed);
        let caps = s.num_caps.swap(0, Ordering::Relaxed);
        let _ = self
            .counters
            .caps
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c.saturating_sub(caps))
            });
        Some(s)
    }

    /// Evicts sessions matching the filters (all if none); how many were evicted.
    pub fn evict(&self, filters: &[&str]) -> CephResult<usize> {
        let victims = self.sessions_matching(filters)?;
        let mut bl = self.blocklist.lock();
        // Eviction blocklists the client for mon_osd_blocklist_default_expire (1 h).
        let until = crate::time::now_unix() + std::time::Duration::from_secs(3600);
        for s in &victims {
            if self.remove(s.id, STATE_EVICTED).is_some() {
                bl.push((format!("127.0.0.1:0/{}", s.nonce), until));
            }
        }
        Ok(victims.len())
    }

    /// The `perf dump` JSON: the MDS sections Ceph has (`mds`, `mds_server`,
    /// `mds_sessions`, `mds_mem`) with every counter Ceph 16.2 reports; the ones the
    /// model does not drive stay 0.
    pub fn perf_dump(&self, started: Instant) -> Value {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let req = load(&c.request);
        let hcr = load(&c.handle_client_request);
        let sessions = self.sessions.read();
        let n = sessions.len() as u64;
        let uptime_sum: f64 = sessions
            .values()
            .map(|s| s.opened.elapsed().as_secs_f64())
            .sum();
        drop(sessions);
        let inodes = self.inodes();
        let caps = self.caps();
        let mut mds = serde_json::Map::new();
        mds.insert("request".into(), json!(req));
        mds.insert("reply".into(), json!(load(&c.reply.count)));
        mds.insert("reply_latency".into(), c.reply.dump());
        for k in [
            "slow_reply",
            "forward",
            "dir_fetch",
            "dir_commit",
            "dir_split",
            "dir_merge",
        ] {
            mds.insert(k.into(), json!(0));
        }
        mds.insert("inodes".into(), json!(inodes));
        for k in [
            "inodes_top",
            "inodes_bottom",
            "inodes_pin_tail",
            "inodes_pinned",
            "inodes_expired",
        ] {
            mds.insert(k.into(), json!(0));
        }
        mds.insert("inodes_with_caps".into(), json!(inodes.min(caps)));
        mds.insert("caps".into(), json!(caps));
        mds.insert("subtrees".into(), json!(2));
        for k in [
            "traverse",
            "traverse_hit",
            "traverse_forward",
            "traverse_discover",
            "traverse_dir_fetch",
            "traverse_remote_ino",
            "traverse_lock",
        ] {
            mds.insert(k.into(), json!(0));
        }
        mds.insert("load_cent".into(), json!(req * 100));
        for k in [
            "q",
            "exported",
            "exported_inodes",
            "imported",
            "imported_inodes",
            "openino_dir_fetch",
            "openino_backtrace_fetch",
            "openino_peer_discover",
            "root_rfiles",
            "root_rbytes",
            "root_rsnaps",
            "scrub_backtrace_fetch",
            "scrub_set_tag",
            "scrub_backtrace_repaired",
            "scrub_inotable_repaired",
            "scrub_dir_inodes",
            "scrub_dir_base_inodes",
            "scrub_dirfrag_rstats",
            "scrub_file_inodes",
            "handle_inode_file_caps",
            "ceph_cap_op_revoke",
            "ceph_cap_op_grant",
            "ceph_cap_op_trunc",
            "ceph_cap_op_flushsnap_ack",
            "ceph_cap_op_flush_ack",
            "handle_client_caps",
            "handle_client_caps_dirty",
            "handle_client_cap_release",
            "process_request_cap_release",
        ] {
            mds.insert(k.into(), json!(0));
        }
        mds.insert("uptime".into(), json!(started.elapsed().as_secs_f64()));

        let mut server = serde_json::Map::new();
        server.insert("dispatch_client_request".into(), json!(hcr));
        server.insert("dispatch_server_request".into(), json!(0));
        server.insert("handle_client_request".into(), json!(hcr));
        server.insert(
            "handle_client_session".into(),
            json!(load(&c.handle_client_session)),
        );
        server.insert("handle_peer_request".into(), json!(0));
        for (i, kind) in REQ_KINDS.iter().enumerate() {
            server.insert(format!("req_{kind}_latency"), c.req[i].dump());
        }
        server.insert("cap_revoke_eviction".into(), json!(0));
        server.insert("cap_acquisition_throttle".into(), json!(0));

        let rss = self.rss_estimate() / 1024;
        json!({
            "mds": mds,
            "mds_server": server,
            "mds_sessions": {
                "session_count": n,
                "session_add": load(&c.session_add),
                "session_remove": load(&c.session_remove),
                "sessions_open": n,
                "sessions_stale": 0,
                "total_load": 0,
                "average_load": 0,
                "avg_session_uptime": if n == 0 { 0.0 } else { uptime_sum / n as f64 },
                "mdthresh_evicted": 0,
            },
            "mds_mem": {
                "ino": inodes,
                "ino+": load(&c.inodes_added),
                "ino-": load(&c.inodes_removed),
                "dir": 0,
                "dir+": 0,
                "dir-": 0,
                "dn": inodes,
                "dn+": load(&c.inodes_added),
                "dn-": load(&c.inodes_removed),
                "cap": caps,
                "cap+": load(&c.caps_added),
                "cap-": load(&c.caps_removed),
                "rss": rss,
                "heap": rss,
            },
        })
    }
}

/// What a client asks for when it mounts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MountRequest {
    /// The file system (`mds_namespace` / `--client_mds_namespace`); default the first.
    #[serde(default)]
    pub fs_name: Option<String>,
    /// The root path to mount (`-r` for ceph-fuse, `:<path>` for the kernel).
    #[serde(default = "default_root")]
    pub root: String,
    /// Client metadata: `hostname`, `mount_point`, `pid`, `kernel_version`, ...
    #[serde(default)]
    pub client_metadata: BTreeMap<String, String>,
}

fn default_root() -> String {
    "/".into()
}

/// One client operation on a mount. Paths are relative to the mount root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// `mkdir -p`.
    Mkdir {
        /// Path.
        path: String,
    },
    /// Create or extend a file. With `data` (base64) the bytes are written at
    /// `offset`; without, the file grows to `offset + len` (sparse).
    Write {
        /// Path.
        path: String,
        /// Offset.
        #[serde(default)]
        offset: u64,
        /// Length when no data is given.
        #[serde(default)]
        len: u64,
        /// Base64 bytes.
        #[serde(default)]
        data: Option<String>,
    },
    /// Set a file's size.
    Truncate {
        /// Path.
        path: String,
        /// New size.
        size: u64,
    },
    /// Read up to `len` bytes at `offset` (base64 in the result).
    Read {
        /// Path.
        path: String,
        /// Offset.
        #[serde(default)]
        offset: u64,
        /// Length.
        len: u64,
    },
    /// `stat`.
    Stat {
        /// Path.
        path: String,
    },
    /// List a directory.
    Readdir {
        /// Path.
        path: String,
    },
    /// Remove a file.
    Unlink {
        /// Path.
        path: String,
    },
    /// Remove an empty directory.
    Rmdir {
        /// Path.
        path: String,
    },
    /// Rename within the mount.
    Rename {
        /// From.
        from: String,
        /// To.
        to: String,
    },
    /// Read a virtual xattr (`ceph.quota.max_bytes`, `ceph.dir.rbytes`, ...).
    Getxattr {
        /// Path.
        path: String,
        /// Name.
        name: String,
    },
    /// Set `ceph.quota.max_bytes` on the mount root of a subvolume.
    Setxattr {
        /// Path.
        path: String,
        /// Name.
        name: String,
        /// Value.
        value: String,
    },
    /// File system statistics as `statfs(2)` on the mount would give them.
    Statfs,
}

impl Op {
    /// Writes `data` at the start of `path` (creating it).
    pub fn write(path: &str, data: &[u8]) -> Op {
        Op::Write {
            path: path.into(),
            offset: 0,
            len: 0,
            data: Some(B64.encode(data)),
        }
    }

    /// The fault-rule name of the operation (`client mkdir`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Mkdir { .. } => "client mkdir",
            Op::Write { .. } => "client write",
            Op::Truncate { .. } => "client truncate",
            Op::Read { .. } => "client read",
            Op::Stat { .. } => "client stat",
            Op::Readdir { .. } => "client readdir",
            Op::Unlink { .. } => "client unlink",
            Op::Rmdir { .. } => "client rmdir",
            Op::Rename { .. } => "client rename",
            Op::Getxattr { .. } => "client getxattr",
            Op::Setxattr { .. } => "client setxattr",
            Op::Statfs => "client statfs",
        }
    }

    /// The MDS request this operation is, or `None` if it never reaches the MDS.
    fn request_kind(&self, existed: bool) -> Option<&'static str> {
        Some(match self {
            Op::Mkdir { .. } if existed => "lookup",
            Op::Mkdir { .. } => "mkdir",
            Op::Write { .. } if existed => "open",
            Op::Write { .. } => "create",
            Op::Truncate { .. } => "setattr",
            Op::Read { .. } => "open",
            Op::Stat { .. } | Op::Getxattr { .. } => "getattr",
            Op::Readdir { .. } => "readdir",
            Op::Unlink { .. } => "unlink",
            Op::Rmdir { .. } => "rmdir",
            Op::Rename { .. } => "rename",
            Op::Setxattr { .. } => "setxattr",
            Op::Statfs => return None,
        })
    }

    fn is_write(&self) -> bool {
        matches!(
            self,
            Op::Mkdir { .. }
                | Op::Write { .. }
                | Op::Truncate { .. }
                | Op::Unlink { .. }
                | Op::Rmdir { .. }
                | Op::Rename { .. }
                | Op::Setxattr { .. }
        )
    }

    fn path(&self) -> &str {
        match self {
            Op::Mkdir { path }
            | Op::Write { path, .. }
            | Op::Truncate { path, .. }
            | Op::Read { path, .. }
            | Op::Stat { path }
            | Op::Readdir { path }
            | Op::Unlink { path }
            | Op::Rmdir { path }
            | Op::Getxattr { path, .. }
            | Op::Setxattr { path, .. } => path,
            Op::Rename { from, .. } => from,
            Op::Statfs => "",
        }
    }
}

/// `statfs` of a mount: with a quota, total is the quota (as ceph-fuse and the kernel
/// client report it); without, the cluster's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statfs {
    /// `f_bsize`.
    pub block_size: u64,
    /// Total bytes.
    pub total_bytes: u64,
    /// Used bytes.
    pub used_bytes: u64,
    /// Free bytes.
    pub free_bytes: u64,
}

/// What `stat` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatInfo {
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Size in bytes (for a directory, CephFS reports `rbytes`; here the local size).
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
}

/// The result of one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OpOutput {
    /// Nothing to return.
    Done,
    /// `stat`.
    Stat(StatInfo),
    /// `readdir`: names.
    Entries(Vec<String>),
    /// `read`: base64 bytes; `getxattr`: the value.
    Data(String),
    /// `statfs`.
    Statfs(Statfs),
}

/// Client requests that a model says a client made, charged to the MDS without being
/// executed (a simulator's bulk workload; [`Cluster::charge_modelled`],
/// [`Mount::charge_modelled`]): they are counted as executed ones are
/// (`mds.request`, `mds_server.handle_client_request`, `req_<kind>_latency`), with the
/// model's reply latency, and their creates grow the session's caps and the inode
/// counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct ModelledRequests<'a> {
    /// Requests by kind, named as in `req_<kind>_latency` (`create`, `mkdir`, ...).
    pub by_kind: &'a [(&'a str, u64)],
    /// Their reply latencies, summed.
    pub reply_latency: std::time::Duration,
    /// Inodes they created.
    pub inodes_created: u64,
    /// Inodes the client's own cache keeps (ceph-fuse's `client_cache_size`): its caps
    /// grow with its creates up to this, within the MDS's limits
    /// ([`crate::mds_load::caps_limit_per_client`]).
    pub client_cache_inodes: u64,
}

/// The MDS counters a load report reads, at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MdsCounters {
    /// `mds_server.handle_client_request`.
    pub handle_client_request: u64,
    /// `mds.reply_latency.avgcount`.
    pub reply_count: u64,
    /// `mds.reply_latency.sum`, seconds.
    pub reply_latency_sum_s: f64,
    /// `mds_sessions.session_count`.
    pub sessions: u64,
    /// `mds.caps`.
    pub caps: u64,
    /// `mds.inodes` (cached).
    pub inodes: u64,
    /// `mds_mem.rss`, bytes.
    pub rss_bytes: u64,
}

/// A mounted file system: one MDS session. Dropping it does not unmount; call
/// [`Mount::unmount`] (or let the MDS evict it).
#[derive(Debug, Clone)]
pub struct Mount {
    cluster: Cluster,
    session: Arc<Session>,
}

impl Cluster {
    /// Opens an MDS session as `entity` (authenticated with `key`), as a kernel or
    /// FUSE mount does.
    pub async fn mount(&self, entity: &str, key: &str, req: MountRequest) -> CephResult<Mount> {
        let inner = &self.inner;
        if let Some(reply) = apply_verdict(&inner.fault_verdict("client session open")).await {
            return Err(CephError::new(-reply.ret, reply.outs));
        }
        if inner.mds.is_down() {
            return Err(CephError::new(
                errno::ETIMEDOUT,
                "mount timed out: no MDS is active",
            ));
        }
        let caller: Caller = self
            .authenticate(entity, key)
            .ok_or_else(|| CephError::new(errno::EACCES, "authentication failed"))?;
        let (fs, realm_lookup) = {
            let sh = inner.shared.lock();
            let fs = match &req.fs_name {
                Some(n) => sh.maps.fs(n)?.name.clone(),
                None => sh
                    .maps
                    .filesystems
                    .first()
                    .map(|f| f.name.clone())
                    .ok_or_else(|| CephError::noent("no file system"))?,
            };
            let realm = sh.volumes.realm_for_path(&fs, &req.root);
            (fs, realm)
        };
        let root = normalise_root(&req.root)?;
        if !caller.caps.mds_root_allowed(&fs, &root) {
            return Err(CephError::new(
                errno::EPERM,
                format!("mds.0 rejected us (non-allowable root '{root}')"),
            ));
        }
        let fs_root = inner.data.fs_root(&fs);
        let local_root = join_within(&fs_root, &root)?;
        // The root must be a directory reached without symlinks: the MDS's path
        // traversal does not follow them (ENOTDIR).
        if let Err(e) = crate::beneath::Root::open(&fs_root, &root) {
            let errno = e.raw_os_error().unwrap_or(errno::EIO);
            return Err(CephError::new(
                errno,
                format!(
                    "ceph mount failed with ({errno}) {}: {root}",
                    crate::error::strerror(errno)
                ),
            ));
        }
        if let Some((realm, path)) = &realm_lookup {
            realm.ensure_counted(&join_within(&inner.data.fs_root(&fs), path)?);
        }
        let id = inner.mds.next_id.fetch_add(1, Ordering::Relaxed);
        let nonce = (inner.draw() * f64::from(u32::MAX)) as u32;
        let token = SessionToken::generate(inner);
        let session = Arc::new(Session {
            id,
            nonce,
            token,
            entity: caller.entity,
            caps: caller.caps,
            fs,
            root,
            local_root,
            fs_root,
            metadata: req.client_metadata,
            realm: realm_lookup.map(|(r, _)| r),
            opened: Instant::now(),
            state: AtomicU8::new(STATE_OPEN),
            num_caps: AtomicU64::new(1),
            completed: AtomicU64::new(0),
        });
        let c = &inner.mds.counters;
        c.session_add.fetch_add(1, Ordering::Relaxed);
        c.handle_client_session.fetch_add(1, Ordering::Relaxed);
        c.caps.fetch_add(1, Ordering::Relaxed);
        inner.mds.insert(session.clone());
        let mount = Mount {
            cluster: self.clone(),
            session,
        };
        // The session is answered once the session map holding it is durable.
        if let Err(e) = self.commit_marked().await {
            tracing::error!(error = %e, "metadata commit failed");
            mount.unmount();
            return Err(CephError::new(
                errno::EIO,
                "mount failed: Input/output error",
            ));
        }
        Ok(mount)
    }

    /// Opens again, after a restart on a metadata store, the sessions it recorded, as
    /// their clients reconnect after an MDS restart: same id, token and root, with the
    /// caps their entity has now. A session whose entity is gone, whose caps no longer
    /// allow its root, or whose record is unreadable is dropped (its client's reconnect
    /// is refused), and so is its record. Returns how many were opened.
    pub(crate) fn restore_sessions(&self, records: Vec<(u64, Vec<u8>)>) -> usize {
        let inner = &self.inner;
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
        let inner = &self.inner;
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

    /// A mounted session by id, for the HTTP layer.
    pub fn session(&self, id: u64) -> Option<Mount> {
        let s = self.inner.mds.sessions.read().get(&id).cloned()?;
        Some(Mount {
            cluster: self.clone(),
            session: s,
        })
    }

    /// Evicts every session (the `evict-all` fault); how many.
    pub fn evict_all(&self) -> usize {
        self.inner.mds.evict(&[]).unwrap_or(0)
    }

    /// The MDS `perf dump` JSON.
    pub fn perf_dump(&self) -> Value {
        self.inner.mds.perf_dump(self.inner.started)
    }

    /// Open MDS sessions.
    pub fn session_count(&self) -> usize {
        self.inner.mds.session_count()
    }

    /// Every open session, by id.
    pub fn mounts(&self) -> Vec<Mount> {
        let mut v: Vec<Arc<Session>> = self.inner.mds.sessions.read().values().cloned().collect();
        v.sort_by_key(|s| s.id);
        v.into_iter()
            .map(|session| Mount {
                cluster: self.clone(),
                session,
            })
            .collect()
    }

    /// The MDS's request capacity model.
    pub fn mds_load_model(&self) -> crate::mds_load::LoadModel {
        self.inner.mds.load_model()
    }

    /// Replaces the MDS's request capacity model (as `fs set max_mds` would change it).
    pub fn set_mds_load_model(&self, m: crate::mds_load::LoadModel) {
        self.inner.mds.set_load_model(m);
    }

    /// Charges the same modelled requests `b` to each of `mounts` (clients that
    /// progress alike, as one pod's mounts do): the MDS counters once per client, and each
    /// session's completed requests and caps. Sessions that are no longer open are
    /// skipped; how many were is returned. Fails, charging nothing, on a down MDS
    /// (ETIMEDOUT) or a kind the MDS does not have (EINVAL).
    pub fn charge_modelled(
        &self,
        mounts: &[&Mount],
        b: &ModelledRequests<'_>,
    ) -> CephResult<usize> {
        let mds = &self.inner.mds;
        if mds.is_down() {
            return Err(CephError::new(errno::ETIMEDOUT, "no MDS is active"));
        }
        let mut total: u64 = 0;
        for (kind, n) in b.by_kind {
            if !REQ_KINDS.contains(kind) {
                return Err(CephError::inval(format!("unknown request kind '{kind}'")));
            }
            total = total.saturating_add(*n);
        }
        // Caps grow with creates up to the client's limit; beyond it the MDS recalls.
        let limit = crate::mds_load::caps_limit_per_client(
            b.client_cache_inodes,
            mds.session_count() as u64,
            &mds.config,
        )
        .max(1);
        let (mut clients, mut refused) = (0u64, 0usize);
        let (mut added, mut removed) = (0u64, 0u64);
        for m in mounts {
            let s = &m.session;
            if s.state.load(Ordering::SeqCst) != STATE_OPEN {
                refused += 1;
                continue;
            }
            clients += 1;
            if total > 0 {
                s.completed.fetch_add(total, Ordering::Relaxed);
            }
            let cur = s.num_caps.load(Ordering::Relaxed);
            let next = if cur > limit {
                limit
            } else {
                cur.saturating_add(b.inodes_created).min(limit)
            };
            if next != cur {
                // One writer per session in a model; a race loses a cap update only.
                if s.num_caps
                    .compare_exchange(cur, next, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    if next > cur {
                        added += next - cur;
                    } else {
                        removed += cur - next;
                    }
                }
            }
        }
        let c = &mds.counters;
        let all = total.saturating_mul(clients);
        if all > 0 {
            let lat_ns = u64::try_from(b.reply_latency.as_nanos()).unwrap_or(u64::MAX);
            c.request.fetch_add(all, Ordering::Relaxed);
            c.handle_client_request.fetch_add(all, Ordering::Relaxed);
            c.reply.count.fetch_add(all, Ordering::Relaxed);
            c.reply
                .sum_ns
                .fetch_add(lat_ns.saturating_mul(clients), Ordering::Relaxed);
            for (kind, n) in b.by_kind {
                let share = (u128::from(lat_ns) * u128::from(*n) / u128::from(total)) as u64;
                let k = &c.req[req_index(kind)];
                k.count
                    .fetch_add(n.saturating_mul(clients), Ordering::Relaxed);
                k.sum_ns
                    .fetch_add(share.saturating_mul(clients), Ordering::Relaxed);
            }
        }
        let inodes = b.inodes_created.saturating_mul(clients);
        if inodes > 0 {
            c.inodes.fetch_add(inodes, Ordering::Relaxed);
            c.inodes_added.fetch_add(inodes, Ordering::Relaxed);
        }
        if added > 0 {
            c.caps.fetch_add(added, Ordering::Relaxed);
            c.caps_added.fetch_add(added, Ordering::Relaxed);
        }
        if removed > 0 {
            c.caps_removed.fetch_add(removed, Ordering::Relaxed);
            let _ = c
                .caps
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| {
                    Some(x.saturating_sub(removed))
                });
        }
        Ok(refused)
    }

    /// The MDS counters a load report reads (the same figures `perf dump` shows).
    pub fn mds_counters(&self) -> MdsCounters {
        let mds = &self.inner.mds;
        let c = &mds.counters;
        MdsCounters {
            handle_client_request: mds.handle_client_request(),
            reply_count: c.reply.count.load(Ordering::Relaxed),
            reply_latency_sum_s: c.reply.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            sessions: mds.session_count() as u64,
            caps: mds.caps(),
            inodes: mds.inodes(),
            rss_bytes: mds.rss_estimate(),
        }
    }
}

fn is_dir(m: &rustix::fs::Stat) -> bool {
    rustix::fs::FileType::from_raw_mode(m.st_mode) == rustix::fs::FileType::Directory
}

fn size_of(m: &rustix::fs::Stat) -> u64 {
    u64::try_from(m.st_size).unwrap_or(0)
}

/// Reads up to `len` bytes at `offset`; fewer at the end of the file.
fn read_at_most(f: &std::fs::File, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = Vec::new();
    let mut at = offset;
    let mut chunk = vec![0u8; 64 << 10];
    while (buf.len() as u64) < len {
        let want = usize::try_from((len - buf.len() as u64).min(chunk.len() as u64))
            .unwrap_or(chunk.len());
        let n = f.read_at(&mut chunk[..want], at)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        at = at.saturating_add(n as u64);
    }
    Ok(buf)
}

fn normalise_root(root: &str) -> CephResult<String> {
    if root.contains('\0') {
        return Err(CephError::inval("root contains NUL"));
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in root.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

impl Mount {
    /// The session id (the client's global id in `session ls`).
    pub fn id(&self) -> u64 {
        self.session.id
    }

    /// The local directory the mount root is.
    pub fn local_root(&self) -> &std::path::Path {
        &self.session.local_root
    }

    /// The mounted root in CephFS.
    pub fn root(&self) -> &str {
        &self.session.root
    }

    /// The session's token: a per-mount handle (32 hex characters) that shows, uses and
    /// closes the session over HTTP (`X-Session-Token`) without the cephx key. A secret:
    /// do not log it.
    pub fn token(&self) -> &str {
        &self.session.token.0
    }

    /// Whether `presented` is this session's token (compared in constant time).
    pub fn token_matches(&self, presented: &str) -> bool {
        self.session.token.matches(presented)
    }

    /// The entity the session was opened as.
    pub fn entity(&self) -> &EntityName {
        &self.session.entity
    }

    /// The client metadata the session was opened with (`hostname`, `mount_point`, ...).
    pub fn client_metadata(&self) -> &BTreeMap<String, String> {
        &self.session.metadata
    }

    /// Caps the session holds.
    pub fn num_caps(&self) -> u64 {
        self.session.num_caps.load(Ordering::Relaxed)
    }

    /// Charges requests the client made in a model (see [`ModelledRequests`]). Fails as
    /// an operation would on a dead session or a down MDS, and with EINVAL on a kind the
    /// MDS does not have; nothing is charged then.
    pub fn charge_modelled(&self, b: &ModelledRequests<'_>) -> CephResult<()> {
        if let Some(e) = self.dead_session_error() {
            return Err(e);
        }
        match self.cluster.charge_modelled(&[self], b)? {
            0 => Ok(()),
            _ => Err(CephError::new(
                errno::ENOTCONN,
                "Transport endpoint is not connected",
            )),
        }
    }

    /// The session as `session ls` shows it.
    pub fn dump(&self) -> Value {
        self.session.dump()
    }

    /// Whether the session is still open (not unmounted, not evicted).
    pub fn is_open(&self) -> bool {
        self.session.state.load(Ordering::SeqCst) == STATE_OPEN
    }

    /// Closes the session (umount). Closing twice is fine.
    pub fn unmount(&self) {
        let inner = &self.cluster.inner;
        if inner.mds.remove(self.session.id, STATE_CLOSED).is_some() {
            inner
                .mds
                .counters
                .handle_client_session
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn dead_session_error(&self) -> Option<CephError> {
        match self.session.state.load(Ordering::SeqCst) {
            STATE_OPEN => None,
            STATE_CLOSED => Some(CephError::new(
                errno::ENOTCONN,
                "Transport endpoint is not connected",
            )),
            // An evicted kernel client sees EACCES (without recover_session); ceph-fuse,
            // blocklisted, answers ESHUTDOWN (seen on 16.2.15).
            _ if self.session.is_kernel() => {
                Some(CephError::new(errno::EACCES, "Permission denied"))
            }
            _ => Some(CephError::new(
                errno::ESHUTDOWN,
                "Cannot send after transport endpoint shutdown",
            )),
        }
    }

    /// Runs operations in order; each gets its own result. Faults named after the
    /// operation (`client mkdir`, ...) apply to each.
    pub async fn run(&self, ops: Vec<Op>) -> Vec<CephResult<OpOutput>> {
        let inner = &self.cluster.inner;
        let mut injected: Vec<Option<CephError>> = Vec::with_capacity(ops.len());
        for op in &ops {
            let v = inner.fault_verdict(op.name());
            injected.push(
                apply_verdict(&v)
                    .await
                    .map(|r| CephError::new(-r.ret, r.outs)),
            );
        }
        let this = self.clone();
        let work = move || {
            // The reads of one request share one budget (MAX_REQUEST_READ_BYTES).
            let mut budget = MAX_REQUEST_READ_BYTES;
            let mut out = ops
                .iter()
                .zip(injected)
                .map(|(op, inj)| match inj {
                    Some(e) => Err(e),
                    None => this.apply(op, &mut budget),
                })
                .collect::<Vec<_>>();
            // File operations change no record; a quota set does, and is answered only
            // once committed. Reads and writes never wait for the metadata store.
            let store = &this.cluster.inner.store;
            let upto = store.marked();
            if ops.iter().any(|o| matches!(o, Op::Setxattr { .. }))
                && !store.is_committed(upto)
                && let Err(e) = this.cluster.inner.sync_through(upto)
            {
                tracing::error!(error = %e, "metadata commit failed");
                for (op, r) in ops.iter().zip(out.iter_mut()) {
                    if matches!(op, Op::Setxattr { .. }) && r.is_ok() {
                        *r = Err(CephError::new(errno::EIO, "Input/output error"));
                    }
                }
            }
            out
        };
        crate::mgr::off_runtime(work).await.unwrap_or_default()
    }

    /// Runs one operation.
    pub async fn op(&self, op: Op) -> CephResult<OpOutput> {
        self.run(vec![op])
            .await
            .pop()
            .unwrap_or_else(|| Err(CephError::new(errno::EIO, "no result")))
    }

    /// `mkdir -p`.
    pub async fn mkdir(&self, path: &str) -> CephResult<()> {
        self.op(Op::Mkdir { path: path.into() }).await.map(|_| ())
    }

    /// Writes a whole file.
    pub async fn write_file(&self, path: &str, data: &[u8]) -> CephResult<()> {
        self.op(Op::Write {
            path: path.into(),
            offset: 0,
            len: 0,
            data: Some(B64.encode(data)),
        })
        .await
        .map(|_| ())
    }

    /// Reads a whole file, one read of at most [`MAX_READ_BYTES`] after another until
    /// one comes back empty.
    pub async fn read_file(&self, path: &str) -> CephResult<Vec<u8>> {
        let mut all = Vec::new();
        loop {
            let op = Op::Read {
                path: path.into(),
                offset: all.len() as u64,
                len: MAX_READ_BYTES,
            };
            let chunk = match self.op(op).await? {
                OpOutput::Data(d) => B64
                    .decode(d)
                    .map_err(|_| CephError::new(errno::EIO, "bad data"))?,
                _ => return Err(CephError::new(errno::EIO, "unexpected result")),
            };
            if chunk.is_empty() {
                return Ok(all);
            }
            all.extend_from_slice(&chunk);
        }
    }

    /// `stat`.
    pub async fn stat(&self, path: &str) -> CephResult<StatInfo> {
        match self.op(Op::Stat { path: path.into() }).await? {
            OpOutput::Stat(s) => Ok(s),
            _ => Err(CephError::new(errno::EIO, "unexpected result")),
        }
    }

    /// `statfs`.
    pub async fn statfs(&self) -> CephResult<Statfs> {
        match self.op(Op::Statfs).await? {
            OpOutput::Statfs(s) => Ok(s),
            _ => Err(CephError::new(errno::EIO, "unexpected result")),
        }
    }

    /// Tracks inodes and caps as an operation creates (`1`) or removes (`-1`) one.
    fn charge(&self, created: i64) {
        let mds = &self.cluster.inner.mds;
        self.session.completed.fetch_add(1, Ordering::Relaxed);
        if created > 0 {
            mds.counters.inodes.fetch_add(1, Ordering::Relaxed);
            mds.counters.inodes_added.fetch_add(1, Ordering::Relaxed);
            let max = mds.config.max_caps_per_client;
            if self
                .session
                .num_caps
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                    (c < max).then_some(c + 1)
                })
                .is_ok()
            {
                mds.counters.caps.fetch_add(1, Ordering::Relaxed);
                mds.counters.caps_added.fetch_add(1, Ordering::Relaxed);
            }
        } else if created < 0 {
            mds.counters.inodes_removed.fetch_add(1, Ordering::Relaxed);
            let _ = mds
                .counters
                .inodes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                    Some(c.saturating_sub(1))
                });
            if self
                .session
                .num_caps
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                    (c > 1).then(|| c - 1)
                })
                .is_ok()
            {
                mds.counters.caps_removed.fetch_add(1, Ordering::Relaxed);
                let _ = mds
                    .counters
                    .caps
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                        Some(c.saturating_sub(1))
                    });
            }
        }
    }

    /// Resolves `rel` beneath the session's root ([`crate::beneath`]: symlinks followed
    /// as libcephfs follows them, never out of the root) and checks the caps on both the
    /// path as given and where it led. `..` above the root is refused (EACCES) before
    /// anything is looked at.
    fn check(
        &self,
        op: &Op,
        rel: &str,
        follow_last: bool,
        create_dirs: bool,
    ) -> CephResult<crate::beneath::Entry> {
        join_within(&self.session.local_root, rel)?;
        let need = if op.is_write() { Perm::RW } else { Perm::R };
        let allowed = |rel: &str| {
            let ceph_path = format!(
                "{}/{}",
                self.session.root.trim_end_matches('/'),
                rel.trim_start_matches('/')
            );
            self.session
                .caps
                .mds_allows(&self.session.fs, &ceph_path, need)
        };
        if !allowed(rel) {
            return Err(CephError::new(errno::EACCES, "Permission denied"));
        }
        let io = |e: std::io::Error| CephError::from_io(op.name(), &e);
        let root =
            crate::beneath::Root::open(&self.session.fs_root, &self.session.root).map_err(io)?;
        let entry = root.resolve(rel, follow_last, create_dirs).map_err(io)?;
        if !allowed(entry.rel()) {
            return Err(CephError::new(errno::EACCES, "Permission denied"));
        }
        Ok(entry)
    }

    /// Runs one operation: a dead session or a down MDS fails before the MDS sees it;
    /// anything else is an MDS request and is counted (but for quota refusals, which
    /// the client makes on its own, and statfs, which the monitors answer).
    fn apply(&self, op: &Op, read_budget: &mut u64) -> CephResult<OpOutput> {
        // statfs is answered from the client's cached quota and the monitors' pool
        // statistics: it keeps working in an evicted ceph-fuse mount (seen on 16.2.15).
        let evicted = self.session.state.load(Ordering::SeqCst) == STATE_EVICTED;
        if let Some(e) = self.dead_session_error()
            && !(evicted && matches!(op, Op::Statfs))
        {
            return Err(e);
        }
        let mds = &self.cluster.inner.mds;
        if mds.is_down() {
            return Err(CephError::new(errno::ETIMEDOUT, "no MDS is active"));
        }
        let started = Instant::now();
        // Whether the path existed decides create vs open, mkdir vs lookup.
        let mut existed = true;
        let result = self.apply_op(op, &mut existed, read_budget);
        if let Some(kind) = op.request_kind(existed)
            && !matches!(&result, Err(e) if e.errno == errno::EDQUOT)
        {
            mds.record_request(kind, started.elapsed());
        }
        result
    }

    fn apply_op(&self, op: &Op, existed: &mut bool, read_budget: &mut u64) -> CephResult<OpOutput> {
        use rustix::fs::OFlags;
        let io = |e: std::io::Error| CephError::from_io(op.name(), &e);
        let realm = self.session.realm.as_deref();
        let path = op.path();
        let out = match op {
            Op::Mkdir { .. } => {
                let e = self.check(op, path, true, true)?;
                *existed = !e.created();
                if e.open_dir().is_err() {
                    return Err(CephError::new(errno::EEXIST, "File exists"));
                }
                self.charge(if e.created() { 1 } else { 0 });
                OpOutput::Done
            }
            Op::Write {
                offset, len, data, ..
            } => {
                let bytes = match data {
                    Some(d) => Some(
                        B64.decode(d)
                            .map_err(|_| CephError::inval("data is not base64"))?,
                    ),
                    None => None,
                };
                let e = self.check(op, path, true, false)?;
                let old = e.stat().ok();
                *existed = old.is_some();
                if old.as_ref().is_some_and(is_dir) {
                    return Err(CephError::new(errno::EISDIR, "Is a directory"));
                }
                let old_len = old.as_ref().map_or(0, size_of);
                let end = offset.saturating_add(bytes.as_ref().map_or(*len, |b| b.len() as u64));
                if end > MAX_FILE_SIZE {
                    return Err(file_too_large());
                }
                let grow = end.saturating_sub(old_len);
                if let Some(r) = realm {
                    r.charge(grow)?;
                }
                let res = (|| -> std::io::Result<()> {
                    use std::io::{Seek, SeekFrom, Write};
                    let mut f = e.open(OFlags::WRONLY | OFlags::CREATE, 0o666)?;
                    match &bytes {
                        Some(b) => {
                            f.seek(SeekFrom::Start(*offset))?;
                            f.write_all(b)?;
                        }
                        None if end > old_len => f.set_len(end)?,
                        None => {}
                    }
                    Ok(())
                })();
                if let Err(err) = res {
                    if let Some(r) = realm {
                        r.release(grow);
                    }
                    return Err(io(err));
                }
                self.charge(if old.is_none() { 1 } else { 0 });
                OpOutput::Done
            }
            Op::Truncate { size, .. } => {
                if *size > MAX_FILE_SIZE {
                    return Err(file_too_large());
                }
                let e = self.check(op, path, true, false)?;
                let old = size_of(&e.stat().map_err(io)?);
                let f = e.open(OFlags::WRONLY, 0).map_err(io)?;
                if let Some(r) = realm {
                    if *size > old {
                        r.charge(size - old)?;
                    } else {
                        r.release(old - size);
                    }
                }
                if let Err(err) = f.set_len(*size) {
                    if let Some(r) = realm {
                        if *size > old {
                            r.release(size - old);
                        } else {
                            let _ = r.charge(old - size);
                        }
                    }
                    return Err(io(err));
                }
                self.charge(0);
                OpOutput::Done
            }
            Op::Read { offset, len, .. } => {
                // Like a file system, a read may return less than asked: at most one
                // object of the default layout per operation, within the request's
                // budget. Nothing left of the budget is EAGAIN (read on in a new
                // request), never an empty read, which would mean the end of the file.
                let want = (*len).min(MAX_READ_BYTES).min(*read_budget);
                if want == 0 && *len > 0 {
                    return Err(CephError::new(
                        errno::EAGAIN,
                        format!(
                            "this request has read {MAX_REQUEST_READ_BYTES} bytes already: \
                             read on in another request"
                        ),
                    ));
                }
                let e = self.check(op, path, true, false)?;
                let f = e.open(OFlags::RDONLY, 0).map_err(io)?;
                let buf = read_at_most(&f, *offset, want).map_err(io)?;
                *read_budget -= buf.len() as u64;
                self.charge(0);
                OpOutput::Data(B64.encode(buf))
            }
            Op::Stat { .. } => {
                let e = self.check(op, path, true, false)?;
                let m = e.stat().map_err(io)?;
                self.charge(0);
                OpOutput::Stat(StatInfo {
                    is_dir: is_dir(&m),
                    size: size_of(&m),
                    mode: m.st_mode & 0o7777,
                })
            }
            Op::Readdir { .. } => {
                let e = self.check(op, path, true, false)?;
                let dir = e.open_dir().map_err(io)?;
                let mut names: Vec<String> =
                    crate::beneath::read_dir(std::os::fd::AsFd::as_fd(&dir))
                        .map_err(io)?
                        .into_iter()
                        .map(|n| n.to_string_lossy().into_owned())
                        .collect();
                names.sort();
                self.charge(0);
                OpOutput::Entries(names)
            }
            Op::Unlink { .. } => {
                let e = self.check(op, path, false, false)?;
                if e.is_root() {
                    return Err(CephError::new(errno::EISDIR, "Is a directory"));
                }
                let m = e.stat().map_err(io)?;
                if is_dir(&m) {
                    return Err(CephError::new(errno::EISDIR, "Is a directory"));
                }
                let (dir, name) = e.parent_and_name().map_err(io)?;
                rustix::fs::unlinkat(dir, name, rustix::fs::AtFlags::empty())
                    .map_err(|x| io(x.into()))?;
                if let Some(r) = realm {
                    r.release(size_of(&m));
                }
                self.charge(-1);
                OpOutput::Done
            }
            Op::Rmdir { .. } => {
                let e = self.check(op, path, false, false)?;
                if e.is_root() {
                    return Err(CephError::new(errno::EBUSY, "Device or resource busy"));
                }
                let (dir, name) = e.parent_and_name().map_err(io)?;
                rustix::fs::unlinkat(dir, name, rustix::fs::AtFlags::REMOVEDIR)
                    .map_err(|x| io(x.into()))?;
                self.charge(-1);
                OpOutput::Done
            }
            Op::Rename { to, .. } => {
                let from = self.check(op, path, false, false)?;
                let dest = self.check(op, to, false, false)?;
                let (fd, fname) = from.parent_and_name().map_err(io)?;
                let (td, tname) = dest.parent_and_name().map_err(io)?;
                rustix::fs::renameat(fd, fname, td, tname).map_err(|x| io(x.into()))?;
                self.charge(0);
                OpOutput::Done
            }
            Op::Getxattr { name, .. } => {
                let e = self.check(op, path, true, false)?;
                self.charge(0);
                OpOutput::Data(self.getxattr(&e, name)?)
            }
            Op::Setxattr { name, value, .. } => {
                if name != "ceph.quota.max_bytes" {
                    return Err(CephError::new(errno::EOPNOTSUPP, "Operation not supported"));
                }
                let v: u64 = value
                    .trim()
                    .parse()
                    .map_err(|_| CephError::inval("Invalid argument"))?;
                let e = self.check(op, path, true, false)?;
                if !self.session.caps.mds_allows(
                    &self.session.fs,
                    &self.session.root,
                    Perm {
                        p: true,
                        ..Perm::RW
                    },
                ) {
                    return Err(CephError::new(errno::EACCES, "Permission denied"));
                }
                match realm {
                    Some(r) if e.rel().is_empty() => {
                        // The quota is the subvolume's: its record changes (and is
                        // committed before the operation is answered, by `run`).
                        let sh = self.cluster.inner.shared.lock();
                        r.set_max_bytes(v);
                        sh.volumes.mark_path(&self.session.fs, &self.session.root);
                    }
                    _ => {
                        return Err(CephError::new(
                            errno::EOPNOTSUPP,
                            "quotas are only modelled on subvolume roots",
                        ));
                    }
                }
                self.charge(0);
                OpOutput::Done
            }
            Op::Statfs => {
                self.charge(0);
                OpOutput::Statfs(self.statfs_now())
            }
        };
        Ok(out)
    }

    fn getxattr(&self, e: &crate::beneath::Entry, name: &str) -> CephResult<String> {
        let usage = || {
            let dir = e
                .open_dir()
                .map_err(|_| CephError::new(errno::ENODATA, "No data available"))?;
            crate::beneath::usage(std::os::fd::AsFd::as_fd(&dir))
                .map_err(|x| CephError::from_io("client getxattr", &x))
        };
        match name {
            "ceph.quota.max_bytes" => match self.session.realm.as_deref() {
                Some(r) if e.rel().is_empty() && r.max_bytes() > 0 => Ok(r.max_bytes().to_string()),
                _ => Err(CephError::new(errno::ENODATA, "No data available")),
            },
            "ceph.dir.rbytes" => Ok(usage()?.0.to_string()),
            "ceph.dir.rentries" => Ok(usage()?.1.to_string()),
            _ => Err(CephError::new(errno::ENODATA, "No data available")),
        }
    }

    fn statfs_now(&self) -> Statfs {
        let inner = &self.cluster.inner;
        let bs = inner.mds.config.statfs_block_size;
        let (total, used) = match self.session.realm.as_deref() {
            Some(r) if r.max_bytes() > 0 => (r.max_bytes(), r.used()),
            _ => (inner.config.capacity_bytes, inner.fs_used_bytes()),
        };
        Statfs {
            block_size: bs,
            total_bytes: total,
            used_bytes: used,
            free_bytes: total.saturating_sub(used),
        }
    }
}

fn filters<'a>(args: &Args<'a>) -> Vec<&'a str> {
    args.str_list("filters")
}

fn session_ls(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let list = inner.mds.sessions_matching(&filters(args))?;
    let v: Vec<Value> = list.iter().map(|s| s.dump()).collect();
    Ok(Reply::ok(args.format().render(&Value::Array(v))))
}

fn client_evict(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    inner.mds.evict(&filters(args))?;
    Ok(Reply::ok(""))
}

fn perf_dump(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let mut v = inner.mds.perf_dump(inner.started);
    if let Some(logger) = args.str("logger") {
        let section = v.get(logger).cloned().unwrap_or(json!({}));
        v = match args.str("counter") {
            Some(c) => json!({logger: {c: section.get(c).cloned().unwrap_or(Value::Null)}}),
            None => json!({logger: section}),
        };
    }
    Ok(Reply::ok(args.format().render(&v)))
}

fn mds_status(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let sh = inner.shared.lock();
    let fs = sh.maps.filesystems.first();
    let v = json!({
        "cluster_fsid": sh.maps.fsid,
        "whoami": 0,
        "id": fs.map_or(0, |f| f.mds_gid),
        "want_state": "up:active",
        "state": "up:active",
        "fs_name": fs.map_or("", |f| f.name.as_str()),
        "rank_uptime": inner.started.elapsed().as_secs_f64(),
        "mdsmap_epoch": sh.maps.fsmap_epoch,
        "osdmap_epoch": 20,
        "osdmap_epoch_barrier": 20,
        "uptime": inner.started.elapsed().as_secs_f64(),
    });
    Ok(Reply::ok(args.format().render(&v)))
}

fn blocklist_ls(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let now = crate::time::now_unix();
    let mut bl = inner.mds.blocklist.lock();
    bl.retain(|(_, until)| *until > now);
    let f = args.format();
    let status = format!("listed {} entries", bl.len());
    if f.is_json() {
        let v: Vec<Value> = bl
            .iter()
            .map(|(a, until)| json!({"addr": a, "until": crate::time::ceph_stamp(*until)}))
            .collect();
        // Ceph 16.2 dumps the address list and then the (empty) range list back to
        // back: `[...][]`. That is not one JSON document, but it is what clients get.
        return Ok(Reply::ok_with_status(
            format!("{}[]", Value::Array(v)),
            status,
        ));
    }
    let mut out = String::new();
    for (a, until) in bl.iter() {
        out.push_str(&format!("{a} {}\n", crate::time::ceph_stamp(*until)));
    }
    Ok(Reply::ok_with_status(out, status))
}

const FORMAT: crate::command::ArgSpec = opt("format", ArgType::Str);
const FILTERS: crate::command::ArgSpec = opt("filters", ArgType::StrList);

macro_rules! mds_cmd {
    ($prefix:literal, $args:expr, $handler:expr) => {
        (
            CommandSpec {
                prefix: $prefix,
                daemon: Daemon::Mds,
                module: "mds",
                perm: "rw",
                args: $args,
            },
            $handler as Handler,
        )
    };
}

/// Commands sent to the MDS (`ceph tell mds.<x> ...`).
pub(crate) const TELL_COMMANDS: CommandTable = &[
    mds_cmd!("session ls", &[FORMAT, FILTERS], session_ls),
    mds_cmd!("client ls", &[FORMAT, FILTERS], session_ls),
    mds_cmd!("session evict", &[FORMAT, FILTERS], client_evict),
    mds_cmd!("client evict", &[FORMAT, FILTERS], client_evict),
    mds_cmd!(
        "perf dump",
        &[
            FORMAT,
            opt("logger", ArgType::Str),
            opt("counter", ArgType::Str)
        ],
        perf_dump
    ),
    mds_cmd!("status", &[FORMAT], mds_status),
];

/// Monitor commands about clients.
pub(crate) const MON_COMMANDS: CommandTable = &[
    (
        CommandSpec {
            prefix: "osd blocklist ls",
            daemon: Daemon::Mon,
            module: "osd",
            perm: "r",
            args: &[FORMAT],
        },
        blocklist_ls,
    ),
    (
        CommandSpec {
            prefix: "osd blacklist ls",
            daemon: Daemon::Mon,
            module: "osd",
            perm: "r",
            args: &[FORMAT],
        },
        blocklist_ls,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cluster, Config};

    async fn mount(c: &Cluster, host: &str) -> Mount {
        let md = BTreeMap::from([
            ("hostname".to_owned(), host.to_owned()),
            ("mount_point".to_owned(), format!("/k/{host}/globalmount")),
        ]);
        let req = MountRequest {
            fs_name: None,
            root: "/".into(),
            client_metadata: md,
        };
        c.mount("client.admin", &c.admin_key(), req)
            .await
            .expect("mount")
    }

    #[tokio::test]
    async fn modelled_requests_count_like_executed_ones_and_grow_caps_to_the_limit() {
        let c = Cluster::new(Config::default()).expect("cluster");
        let (a, b) = (mount(&c, "node-1").await, mount(&c, "node-2").await);
        assert_eq!(c.mounts().len(), 2);
        assert_eq!(a.client_metadata()["hostname"], "node-1");
        let before = c.mds_counters();
        a.mkdir("d").await.expect("mkdir");
        let real = c.mds_counters();
        assert_eq!(real.handle_client_request, before.handle_client_request + 1);
        let kinds = [("create", 30), ("setattr", 30), ("getattr", 40)];
        let batch = ModelledRequests {
            by_kind: &kinds,
            reply_latency: std::time::Duration::from_millis(100),
            inodes_created: 30,
            client_cache_inodes: 20,
        };
        assert_eq!(c.charge_modelled(&[&a, &b], &batch), Ok(0));
        let after = c.mds_counters();
        assert_eq!(
            after.handle_client_request,
            real.handle_client_request + 200
        );
        assert_eq!(after.reply_count, real.reply_count + 200);
        let sum = after.reply_latency_sum_s - real.reply_latency_sum_s;
        assert!((sum - 0.2).abs() < 1e-9, "{sum}");
        // Caps grow with creates up to the client's cache (20), inodes with every create.
        assert_eq!((a.num_caps(), b.num_caps()), (20, 20));
        // a held its root and its directory, b its root.
        assert_eq!(after.caps, real.caps + 18 + 19);
        let dump = c.perf_dump();
        assert_eq!(
            dump["mds_server"]["req_create_latency"]["avgcount"],
            json!(60)
        );
        assert_eq!(dump["mds"]["request"], json!(after.handle_client_request));
        assert_eq!(dump["mds_mem"]["rss"], json!(after.rss_bytes / 1024));
        // A kind the MDS does not have charges nothing; a closed session is refused.
        let bad = ModelledRequests {
            by_kind: &[("frobnicate", 1)],
            ..batch
        };
        assert_eq!(
            c.charge_modelled(&[&a], &bad).map_err(|e| e.errno),
            Err(errno::EINVAL)
        );
        b.unmount();
        assert_eq!(c.charge_modelled(&[&a, &b], &batch), Ok(1));
        assert_eq!(
            b.charge_modelled(&batch).map_err(|e| e.errno),
            Err(errno::ENOTCONN)
        );
        assert_eq!(
            c.mds_counters().handle_client_request,
            after.handle_client_request + 100
        );
        // The load model can be changed at run time (max_mds).
        let three = crate::mds_load::LoadModel {
            active_mds: 3,
            ..c.mds_load_model()
        };
        c.set_mds_load_model(three);
        assert_eq!(c.mds_load_model().capacity(), 18_000.0);
    }
}
