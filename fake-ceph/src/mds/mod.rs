//! The MDS: its session map (client mounts), quota realms, eviction, the blocklist, and
//! the perf counters (`perf dump`, in `perf`) that benchmarks read. The mounts
//! themselves and the client operations made through them are `crate::mount`'s; the
//! MDS's commands are in `handlers::mds`.
//!
//! A mount is a session: a client presents its entity and key, the root it wants and
//! its metadata (hostname, mount point, ...). The fake checks the key and the MDS path
//! caps (EPERM `non-allowable root` outside them, as the real MDS answers), registers
//! the session and hands back the local directory of that subtree. Operations made
//! through the session are charged to the MDS counters and checked against the caps,
//! the subvolume quota and the session's state (an evicted session fails).

mod perf;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cephx::{Caps, EntityName};
use crate::error::{CephError, CephResult, errno};
use crate::mds_load::MdsConfig;

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

pub(crate) fn file_too_large() -> CephError {
    CephError::new(errno::EFBIG, "File too large")
}

/// A quota realm: a subvolume's `ceph.quota.max_bytes` and the bytes under it.
#[derive(Debug, Default)]
pub struct QuotaRealm {
    pub(crate) max_bytes: AtomicU64,
    pub(crate) used: AtomicU64,
    pub(crate) counted: AtomicBool,
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

    pub(crate) fn ensure_counted(&self, dir: &std::path::Path) {
        if !self.counted.load(Ordering::SeqCst) {
            self.set_used(crate::tree::du(dir));
        }
    }

    /// Reserves `delta` more bytes, or EDQUOT if that would pass the quota.
    pub(crate) fn charge(&self, delta: u64) -> CephResult<()> {
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

    pub(crate) fn release(&self, delta: u64) {
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
pub(crate) struct SessionToken(pub(crate) String);

impl SessionToken {
    /// 128 random bits from the secrets' RNG ([`crate::config::SecretSource`]).
    pub(crate) fn generate(b: [u8; 16]) -> Self {
        Self(b.iter().map(|x| format!("{x:02x}")).collect())
    }

    /// Compares in constant time (for tokens of the expected length).
    pub(crate) fn matches(&self, presented: &str) -> bool {
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

pub(crate) const STATE_OPEN: u8 = 0;
pub(crate) const STATE_CLOSED: u8 = 1;
pub(crate) const STATE_EVICTED: u8 = 2;

/// One client session.
#[derive(Debug)]
pub struct Session {
    pub(crate) id: u64,
    pub(crate) nonce: u32,
    pub(crate) token: SessionToken,
    pub(crate) entity: EntityName,
    pub(crate) caps: Arc<Caps>,
    pub(crate) fs: String,
    pub(crate) root: String,
    pub(crate) local_root: PathBuf,
    /// The file system's root in the data dir: operations open the session's root from
    /// it, one directory at a time, for every operation ([`crate::beneath`]).
    pub(crate) fs_root: PathBuf,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) realm: Option<Arc<QuotaRealm>>,
    pub(crate) opened: Instant,
    pub(crate) state: AtomicU8,
    pub(crate) num_caps: AtomicU64,
    pub(crate) completed: AtomicU64,
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

    pub(crate) fn is_kernel(&self) -> bool {
        self.metadata.contains_key("kernel_version")
    }

    pub(crate) fn inst(&self) -> String {
        format!("client.{} 127.0.0.1:0/{}", self.id, self.nonce)
    }

    pub(crate) fn state_name(&self) -> &'static str {
        match self.state.load(Ordering::SeqCst) {
            STATE_OPEN => "open",
            STATE_CLOSED => "closed",
            _ => "killing",
        }
    }

    pub(crate) fn client_metadata(&self) -> Value {
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

    pub(crate) fn dump(&self) -> Value {
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
    pub(crate) fn matches(&self, filter: &str) -> CephResult<bool> {
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
pub(crate) const REQ_KINDS: [&str; 29] = [
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

pub(crate) fn req_index(kind: &str) -> usize {
    REQ_KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}

#[derive(Debug, Default)]
pub(crate) struct Latency {
    pub(crate) count: AtomicU64,
    pub(crate) sum_ns: AtomicU64,
}

impl Latency {
    pub(crate) fn record(&self, ns: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub(crate) fn dump(&self) -> Value {
        let n = self.count.load(Ordering::Relaxed);
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        json!({"avgcount": n, "sum": sum, "avgtime": if n == 0 { 0.0 } else { sum / n as f64 }})
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) request: AtomicU64,
    pub(crate) handle_client_request: AtomicU64,
    pub(crate) handle_client_session: AtomicU64,
    pub(crate) session_add: AtomicU64,
    pub(crate) session_remove: AtomicU64,
    pub(crate) inodes: AtomicU64,
    pub(crate) inodes_added: AtomicU64,
    pub(crate) inodes_removed: AtomicU64,
    pub(crate) caps: AtomicU64,
    pub(crate) caps_added: AtomicU64,
    pub(crate) caps_removed: AtomicU64,
    pub(crate) reply: Latency,
    pub(crate) req: [Latency; REQ_KINDS.len()],
}

/// Checks a `key=value` filter of `session ls` / `client evict` as the MDS does, whether
/// or not any session is there to match.
pub(crate) fn check_filter(filter: &str) -> CephResult<()> {
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
    pub(crate) config: MdsConfig,
    pub(crate) load: RwLock<crate::mds_load::LoadModel>,
    pub(crate) sessions: RwLock<HashMap<u64, Arc<Session>>>,
    pub(crate) next_id: AtomicU64,
    pub(crate) counters: Counters,
    pub(crate) down: AtomicBool,
    /// Blocklisted client addresses and when the entry expires.
    pub(crate) blocklist: Mutex<Vec<(String, std::time::Duration)>>,
    /// Every session opened or removed is marked for the metadata store (under the
    /// sessions' lock).
    pub(crate) marks: crate::store::Marks,
}

/// What the metadata store keeps of an open session: what its client presents when it
/// reconnects after an MDS restart. Caps, quota realm and paths are derived again.
#[derive(Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    pub(crate) id: u64,
    pub(crate) nonce: u32,
    pub(crate) token: String,
    pub(crate) entity: String,
    pub(crate) fs: String,
    pub(crate) root: String,
    pub(crate) metadata: BTreeMap<String, String>,
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
    pub(crate) fn insert(&self, session: Arc<Session>) {
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
    pub(crate) fn record_request(&self, kind: &str, took: std::time::Duration) {
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

    pub(crate) fn sessions_matching(&self, filters: &[&str]) -> CephResult<Vec<Arc<Session>>> {
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

    pub(crate) fn remove(&self, id: u64, new_state: u8) -> Option<Arc<Session>> {
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
}
