//! What a client asks of its mount: the session it opens ([`MountRequest`]), the
//! operations ([`Op`]) and what they answer ([`OpOutput`], [`StatInfo`], [`Statfs`]).
//! A leaf: plain data and the request kinds the MDS counts them as.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

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

pub(crate) fn default_root() -> String {
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
    pub(crate) fn request_kind(&self, existed: bool) -> Option<&'static str> {
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

    pub(crate) fn is_write(&self) -> bool {
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

    pub(crate) fn path(&self) -> &str {
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
