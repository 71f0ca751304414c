//! Mounting CephFS on a node: the `Mounter` trait and its implementations.
//!
//! - [`kernel`]: `mount -t ceph <mons>:<path> <target> -o name=...,secretfile=...,mds_namespace=...`.
//! - [`fuse`]: `ceph-fuse <target> -m <mons> -n client.<id> --keyfile=... -r <path>`, waiting
//!   for it to report that it started.
//! - [`fake`]: opens an MDS session on fake-ceph over HTTP and binds the directory it hands
//!   back at the target (a bind mount when the process may mount, else a symlink), so the
//!   simulator runs without root.
//!
//! Key files are written mode 0600 in a private directory and removed right after use.
//! Every operation is idempotent: a target that is already mounted (read from
//! `/proc/self/mountinfo`, or the fake's state) is not mounted again; unmounting something
//! that is not mounted succeeds.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret as _, SecretString};

pub mod fake;
pub mod fuse;
pub mod kernel;
pub mod mountinfo;

/// What to mount: one CephFS path. `Debug` never shows the key (a [`SecretString`]).
#[derive(Clone, Debug)]
pub struct CephMount {
    /// Monitor addresses (`ip:port`).
    pub monitors: Vec<String>,
    /// The file system name (`mds_namespace` / `--client_mds_namespace`).
    pub fs_name: String,
    /// The CephFS path to mount (a subvolume path, or `rootPath` of a static volume).
    pub root_path: String,
    /// The cephx user, without `client.`.
    pub user_id: String,
    /// The cephx key. A secret: never logged, never in an error.
    pub key: SecretString,
    /// Extra mount options (kernel `-o` options or ceph-fuse `-o` options).
    pub options: Vec<String>,
    /// Mount read-only.
    pub read_only: bool,
    /// Where to mount (the staging path).
    pub target: PathBuf,
    /// The node's ID (the fake mounter reports it as the client's hostname).
    pub node_id: String,
    /// The fake-ceph base URL, for the fake mounter (from the cluster config).
    pub admin_url: Option<String>,
}

impl CephMount {
    /// The key, for the one step that hands it to the mount (a 0600 file, a pipe).
    pub fn key(&self) -> &str {
        self.key.expose_secret()
    }
}

/// The state of a mount point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountState {
    /// Nothing is mounted there (the path may or may not exist).
    NotMounted,
    /// Mounted and answering.
    Mounted,
    /// Mounted but broken: stat fails with this errno (ENOTCONN, ESTALE, EIO, EACCES,
    /// EHOSTDOWN, ESHUTDOWN), as after an eviction or a dead ceph-fuse.
    Corrupted(i32),
}

/// File system statistics of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    /// Total bytes.
    pub total_bytes: u64,
    /// Available bytes.
    pub available_bytes: u64,
    /// Used bytes.
    pub used_bytes: u64,
}

/// Mount failures. Messages never contain keys.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The mount command or call failed; `errno` when known.
    #[error("mount of {target} failed: {message}")]
    Failed {
        /// The target path.
        target: PathBuf,
        /// What went wrong (the tool's stderr, with any key removed).
        message: String,
        /// The errno, when known (EPERM for a refused root, EACCES for a bad key, ...).
        errno: Option<i32>,
    },
    /// Unmounting failed.
    #[error("unmount of {target} failed: {message}")]
    Unmount {
        /// The target path.
        target: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The mounter is not usable here (no `mount.ceph`, no `ceph-fuse`, no fake URL).
    #[error("mounter unavailable: {0}")]
    Unavailable(String),
    /// A local I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The operation did not finish in time.
    #[error("{0} timed out")]
    Timeout(String),
}

/// How a node mounts CephFS. Implementations keep no state that a restart would lose:
/// the kernel's mount table (or the fake's session records on disk) is the truth.
#[async_trait::async_trait]
pub trait Mounter: Send + Sync + std::fmt::Debug {
    /// The mounter's name (`kernel`, `fuse`, `fake`).
    fn name(&self) -> &'static str;

    /// Mounts a CephFS path at `m.target` (a directory that exists). Idempotent: if the
    /// target is already mounted, succeeds without mounting again.
    async fn mount_cephfs(&self, m: &CephMount) -> Result<(), MountError>;

    /// Binds `source` (a mounted staging path) at `target`, read-only if asked. The
    /// target's parent exists; the target itself may not (the CSI plugin creates the
    /// target path, and the mounter knows what it needs there). Idempotent.
    async fn bind(&self, source: &Path, target: &Path, read_only: bool) -> Result<(), MountError>;

    /// Unmounts `target` (a CephFS mount or a bind). Succeeds if nothing is mounted there,
    /// and also for a corrupted mount (ENOTCONN, ESTALE, EIO, EACCES, ...).
    async fn unmount(&self, target: &Path) -> Result<(), MountError>;

    /// Unmounts `target` as [`Mounter::unmount`] does, then removes the mount point
    /// (NodeUnpublish: the plugin removes the target path it created).
    async fn unmount_and_remove(&self, target: &Path) -> Result<(), MountError> {
        self.unmount(target).await?;
        remove_mount_point(target).await
    }

    /// The state of `target`.
    async fn state(&self, target: &Path) -> MountState;

    /// Whether `unmount(target)` has anything to undo. Cheaper than `state`, which also
    /// checks that a mount is healthy; a mounter whose mounts can leave something behind
    /// besides the mount itself (the fake's session records) says so here.
    async fn has_work_at(&self, target: &Path) -> bool {
        self.state(target).await != MountState::NotMounted
    }

    /// statfs of a mounted `target`.
    async fn stats(&self, target: &Path) -> Result<FsStats, MountError>;
}

/// Encoded names longer than this are shortened and given a hash.
const MAX_NAME: usize = 200;

/// A file name (no `/`, at most 200 bytes plus a suffix the caller adds) that stands for
/// `bytes` (a path, a volume ID): unreserved characters stay, others (and a leading `.`)
/// become `%XX`; a name
/// that would be too long is cut and given a hash of the whole.
pub(crate) fn file_name(bytes: &[u8]) -> String {
    let mut enc = String::with_capacity(bytes.len() * 3);
    for (i, &b) in bytes.iter().enumerate() {
        // A leading '.' is encoded: no name is "." or ".." or hidden.
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') || (b == b'.' && i > 0) {
            enc.push(char::from(b));
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    if enc.len() > MAX_NAME {
        // FNV-1a: stable across builds (the names outlive the process).
        let mut h = fnv::FnvHasher::default();
        std::hash::Hasher::write(&mut h, bytes);
        let hash = std::hash::Hasher::finish(&h);
        enc.truncate(MAX_NAME - 20);
        enc.push_str(&format!("~{hash:016x}"));
    }
    enc
}

/// Removes a mount point left empty by an unmount; a missing one is fine. A leftover
/// symlink (the fake's publish link after a crash) goes too.
pub async fn remove_mount_point(target: &Path) -> Result<(), MountError> {
    match tokio::fs::remove_dir(target).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        // A mounter removes the links it made itself before this runs: a symlink still
        // here is someone else's, and is not removed.
        Err(_)
            if tokio::fs::symlink_metadata(target)
                .await
                .is_ok_and(|m| m.file_type().is_symlink()) =>
        {
            Err(MountError::Failed {
                target: target.to_path_buf(),
                message: "a symlink this driver did not make is at the target; left alone".into(),
                errno: Some(libc::EPERM),
            })
        }
        Err(e) => Err(MountError::Io {
            context: format!("removing {}", target.display()),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A long name is cut and ends with the FNV-1a of the whole: pinned, since records
    /// named so outlive the process (and a driver upgrade).
    #[test]
    fn a_long_name_ends_with_the_fnv1a_of_the_whole() {
        let name = file_name(&[b'x'; 300]);
        assert_eq!(name.len(), MAX_NAME - 20 + 17);
        assert!(name.ends_with("~e78ddf9f1ba85555"), "{name}");
        assert_eq!(file_name(b"a/b c"), "a%2Fb%20c");
        assert_eq!(file_name(b".x"), "%2Ex");
    }

    /// Keys are secrets: neither the mount request's nor the credentials' `Debug` shows
    /// them, and the one accessor each hands them on through is exact.
    #[test]
    fn debug_never_shows_a_key() {
        const KEY: &str = "AQDsecretkeysecretkeysecretkey==";
        let m = CephMount {
            monitors: vec!["10.0.0.1:6789".into()],
            fs_name: "cephfs".into(),
            root_path: "/volumes/csi/v".into(),
            user_id: "alice".into(),
            key: KEY.into(),
            options: vec![],
            read_only: false,
            target: PathBuf::from("/t"),
            node_id: "n1".into(),
            admin_url: None,
        };
        let c = crate::ceph::Credentials::new("client.alice", KEY);
        for shown in [format!("{m:?}"), format!("{c:?}"), format!("{c:#?}")] {
            assert!(!shown.contains("AQDsecret"), "{shown}");
            assert!(shown.contains("alice"), "{shown}");
        }
        assert_eq!((m.key(), c.key(), c.id.as_str()), (KEY, KEY, "alice"));
    }
}
