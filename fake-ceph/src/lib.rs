//! fake-ceph: a fake Ceph cluster that speaks the wire protocols a CephFS CSI driver and
//! Manila's CephFS back end use, for tests, benchmarks and the cluster simulator.
//!
//! What it is: one process (or one in-process [`Cluster`]) standing in for the monitors,
//! the mgr `volumes` module, the OSDs' object store (RADOS objects with omap) and one
//! active MDS. Commands arrive as the JSON a librados `mon_command`/`mgr_command`
//! carries and are answered with Ceph's `(ret, outb, outs)` triple, with Ceph's errnos
//! and messages. Requests authenticate as cephx entities whose caps are enforced.
//! CephFS data lives in a directory tree under the data dir, which mounts (MDS sessions)
//! hand out.
//!
//! Randomness is seeded ([`Config::seed`]): the fsid, UUIDs and fault decisions follow
//! the seed, and keys and session tokens a stream of their own ([`SecretSource`]: of the
//! seed, for simulations and tests; of the OS, for a server started by hand: the binary
//! uses it unless `--seed` is given).
//!
//! Where to start reading: [`cluster`] (the command registry and pipeline), `state`
//! (what command handlers see), the handlers of each family of commands (`handlers`),
//! `volumes` (subvolumes, snapshots, clones), [`mds`] (sessions and counters),
//! `mount` (client mounts and their operations), [`mds_load`]
//! (the MDS's capacity, latency and memory model), `store` (where the metadata is
//! kept, and how a change becomes durable), `http` (the routes).
//!
//! # Durable metadata
//!
//! With [`Metadata::Durable`] (the binary with `--data-dir`), the cluster's metadata
//! (cephx entities with keys and caps, the fsid and maps, subvolume groups, subvolumes
//! with their state, quota, UUID, metadata, snapshots, clone state and authorized users,
//! the `mgr/volumes` options set at run time, RADOS objects and their omap) is committed
//! to a redb store in `<data-dir>/meta/` before a command that changed it is answered,
//! with an `fdatasync`: what was acknowledged survives `kill -9` and a power loss. A
//! cluster started on a data dir that holds a store recovers it, reconciles it with the
//! tree (`volumes::Volumes`' `reconcile`: a directory without a record, which a
//! command cut short leaves, goes to the trash; a record whose directory is gone is
//! dropped) and purges the trash. The tree itself is not synced: file data and the
//! directories a command makes reach the disk when the kernel writes them, so after a
//! power loss (never after a process crash) a subvolume whose directory did not reach
//! the disk is dropped as if it had been removed. Reads and session file operations
//! commit nothing; a quota set through a mount commits. Commits of concurrent commands
//! are grouped. In memory ([`Metadata::InMemory`], the default: simulations, tests,
//! benches, the binary on a temporary data dir) nothing is written and nothing waits.
//!
//! The MDS session map is kept, as Ceph keeps it in the metadata pool: after a restart
//! each open session is there again with its id and token, as a client reconnects to
//! its session after an MDS restart. Simplified: the reconnect is instant and always in
//! time (no `mds_reconnect_timeout`), a reopened session's caps are its entity's at the
//! restart, and its counters start again. The blocklist is not kept (Ceph keeps it in
//! the OSD map), nor are faults set through `/admin/faults`: the command line's are in
//! force after a restart.
//!
//! # Which Ceph
//!
//! Answers follow Ceph 16.2.15 (Pacific), checked against 540 samples recorded from a
//! real cluster (`tests/golden/real-pacific`, replayed by `tests/it/golden.rs`): return
//! codes, status messages, JSON shapes and key order, Python-style argument handling of
//! the mgr, the mon/mgr split (`command not known` vs `No handler found for '...'`).
//! Newer behaviour is offered where CSI drivers rely on it: `snapshot_clone_no_wait`
//! (EAGAIN "all cloner threads are busy" when `max_concurrent_clones` clones are
//! running; on by default as in Reef and later, off to behave as 16.2).
//!
//! # Where it differs from Ceph 16.2.15 on purpose
//!
//! - Names: Ceph does not validate subvolume, group or snapshot names, and some of them
//!   corrupt its tree (`a/b` leaves a stray `a`; `..` makes `/volumes` a subvolume and
//!   breaks every later create; an empty subvolume name's `rm` deletes the group). The
//!   fake refuses `""`, `.`, `..`, `/`, NUL with EINVAL and names over 255 bytes with
//!   ENAMETOOLONG, so nothing can reach outside its data dir.
//! - `fs subvolume deauthorize` keeps the entity's `mon allow r` (16.2.15 drops it).
//! - A missing snapshot is reported as `snapshot 'x' does not exist` (16.2.15 prints the
//!   name as a Python bytes value).
//! - Tracebacks that the mgr sends back on some bad input are abridged to their last
//!   line (the exception).
//! - A non-string `prefix` aborts ceph-mon 16.2.15; the fake answers EINVAL.
//! - `get_command_descriptions`, `perf schema` and the plain-text FSMap dump are not
//!   modelled (or abridged).
//!
//! # What it does not model
//!
//! - The wire is HTTP + JSON (`POST /request`, like the mgr `restful` module), not the
//!   Ceph messenger: librados itself cannot talk to it. A driver reaches it through an
//!   HTTP admin transport; the real cluster is reached through the `ceph`/`rados` CLIs.
//!   The binary serves HTTP/1.1 through [`service::serve`]: a header-read timeout, an
//!   idle timeout for stalled bodies and responses and a connection limit
//!   ([`service::ServeConfig`]) stand in for the messenger's session handling.
//! - One active MDS (rank 0), no standbys, no multi-MDS, no MDS failover; `fs volume
//!   create` of further file systems is not offered.
//! - No OSD data path: file data is plain files in the tree. RADOS objects hold omap (as
//!   UTF-8 strings) and an empty data part; there is no object data I/O. Storage figures
//!   (`df`, `status`) come from the configured capacity and the tree's size.
//! - Client operations through a session are synchronous and immediately consistent;
//!   no lease, no cap revocation between clients. Caps and memory figures in
//!   `perf dump` are a model's estimates ([`mds_load`]), not measurements: caps grow
//!   with creates up to the client's cache and `mds_max_caps_per_client`, are recalled
//!   to a fair share of `mds_cache_memory_limit` (never below `mds_min_caps_per_client`)
//!   at once, without the recall messages or the "failing to respond to cache pressure"
//!   warnings; cached inodes are the live ones trimmed to that limit. Counters the model
//!   does not drive stay 0.
//! - Request load is a model, not a queue: executed operations take their real (tiny)
//!   time; a simulator charges the requests it models in batches
//!   ([`Mount::charge_modelled`]) with the latency of [`mds_load::closed_loop`]
//!   (capacity `mu` per active rank, 6,000/s by default, scaled by
//!   `multi_mds_efficiency`). The counters of several active ranks are summed into the
//!   one rank the fake has.
//! - `session ls` lists client mounts only: a real MDS also lists the mgr's own
//!   libcephfs sessions (six on 16.2.15), which count in `session_count` there.
//! - Quotas are enforced on subvolume roots only, by bytes written through sessions
//!   (like Ceph's client-side enforcement, accounting is per realm, not per file); a
//!   session mounted above a subvolume is not held to its quota. `bytes_used` is exact
//!   where Ceph's `rbytes` lags.
//! - Paths of client operations are resolved by the fake on the client's behalf, as
//!   libcephfs resolves them: symlinks found in the tree (a client can make them through
//!   its mount; there is no `symlink` operation) are followed, absolute targets from the
//!   mount root, `..` never above it, at most 40 per path (then ELOOP); a path that a
//!   link would lead out of the root resolves beneath it instead (usually ENOENT), and
//!   caps are checked on where a path led (`beneath`). A mount root must be reached
//!   through directories only (ENOTDIR otherwise), as the MDS's path traversal does.
//! - Sizes from the network are bounded: one `read` returns at most 4 MiB (one object of
//!   the default file layout; a longer read is short, as a file system may answer), the
//!   reads of one request at most 16 MiB together (then EAGAIN), and no write or
//!   truncate makes a file larger than the file system's `max_file_size` (1 TiB, EFBIG)
//!   ([`mds::MAX_READ_BYTES`], [`mds::MAX_REQUEST_READ_BYTES`], [`mds::MAX_FILE_SIZE`]).
//! - Snapshots are full copies made at snapshot time; `.snap` is not visible inside
//!   mounts. Modes are recorded as given, but the on-disk directories keep owner access
//!   so the fake can always purge; uid/gid are recorded, not applied.
//! - Cluster state other than the tree is kept in memory only unless the metadata is
//!   durable (see above); with in-memory metadata the data dir must be empty at start.
//!   `/volumes` belongs to the `volumes` module: at recovery, a directory there that the
//!   module would have made but that has no record is removed.
//! - An MDS that is down answers new sessions and operations with ETIMEDOUT at once,
//!   where a real client would block until its mount timeout; `volumes` commands fail
//!   with ETIMEDOUT where the mgr would hang on its own mount.
//! - Faults named `clone` decide whether a finishing clone fails (with the rule's errno).

#![recursion_limit = "256"]

mod auth;
mod beneath;
pub mod cephx;
pub mod cluster;
pub mod command;
mod config;
mod error;
mod fault;
pub mod fsmap;
mod handlers;
mod http;
pub mod mds;
pub mod mds_load;
mod metrics;
mod mgr;
mod mount;
mod rados;
pub mod service;
mod state;
mod store;
pub mod time;
pub mod tree;
mod volumes;

pub use cluster::{Cluster, Target};
pub use config::{Config, SecretSource};
pub use error::{CephError, CephResult, Reply, errno};
pub use fault::{FaultRule, FaultSpec, Faults};
pub use http::router;
pub use mds_load::{LoadModel, MdsConfig};
pub use mount::{
    MOUNT_GETATTRS, MdsCounters, ModelledRequests, Mount, MountRequest, Op, OpOutput, StatInfo,
    Statfs,
};
pub use state::Caller;
pub use store::Metadata;
pub use volumes::VolumesConfig;
