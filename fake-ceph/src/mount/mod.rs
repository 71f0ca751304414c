//! Client mounts: opening an MDS session ([`Cluster::mount`], as a kernel or FUSE mount
//! does), the [`Mount`] a client holds, and the client operations made through it.
//! Above the cluster: a mount holds its [`Cluster`] and charges the MDS it runs on.

mod apply;
mod op;

pub use op::{MountRequest, Op, OpOutput, StatInfo, Statfs};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde_json::Value;

use crate::cephx::{EntityName, Perm};
use crate::cluster::Cluster;
use crate::error::{CephError, CephResult, errno};
use crate::fault::apply_verdict;
use crate::mds::*;
use crate::state::Caller;
use crate::tree::join_within;

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

/// MDS requests a mount makes by itself: five getattrs of its root, as a ceph-fuse
/// 16.2.15 mount does (the kernel client's count was not measured).
pub const MOUNT_GETATTRS: u64 = 5;

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
        let mut bytes = [0u8; 16];
        inner.secret_bytes(&mut bytes);
        let token = SessionToken::generate(bytes);
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
        // A ceph-fuse mount getattrs its root this many times before it returns
        // (measured on Ceph 16.2.15 by ci/measure-mds.sh; an idle client then makes
        // none).
        for _ in 0..MOUNT_GETATTRS {
            inner
                .mds
                .record_request("getattr", std::time::Duration::ZERO);
        }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

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
