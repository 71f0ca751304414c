//! Ceph's way of failing: a negative errno and a status message.
//!
//! Every mon, mgr and MDS command answers a triple `(ret, outb, outs)`. On success `ret` is
//! 0 and `outs` is empty for the commands a CSI driver uses (go-ceph rejects a non-empty
//! status on its "no data" commands). On failure `ret` is `-errno` and `outs` carries the
//! message. This module is the one place where failures become that triple.

use serde::{Deserialize, Serialize};

/// Linux errno values, as Ceph puts them (negated) into `ret`.
pub mod errno {
    /// Operation not permitted.
    pub const EPERM: i32 = 1;
    /// No such file or directory.
    pub const ENOENT: i32 = 2;
    /// I/O error.
    pub const EIO: i32 = 5;
    /// Try again.
    pub const EAGAIN: i32 = 11;
    /// Permission denied.
    pub const EACCES: i32 = 13;
    /// Device or resource busy.
    pub const EBUSY: i32 = 16;
    /// File exists.
    pub const EEXIST: i32 = 17;
    /// Not a directory.
    pub const ENOTDIR: i32 = 20;
    /// Is a directory.
    pub const EISDIR: i32 = 21;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// File too large.
    pub const EFBIG: i32 = 27;
    /// No space left on device.
    pub const ENOSPC: i32 = 28;
    /// Read-only file system.
    pub const EROFS: i32 = 30;
    /// File name too long.
    pub const ENAMETOOLONG: i32 = 36;
    /// Directory not empty.
    pub const ENOTEMPTY: i32 = 39;
    /// Too many levels of symbolic links.
    pub const ELOOP: i32 = 40;
    /// No data available (a missing xattr).
    pub const ENODATA: i32 = 61;
    /// Operation not supported.
    pub const EOPNOTSUPP: i32 = 95;
    /// Transport endpoint is not connected (a dead FUSE mount).
    pub const ENOTCONN: i32 = 107;
    /// Cannot send after transport endpoint shutdown (an evicted, blocklisted client).
    pub const ESHUTDOWN: i32 = 108;
    /// Connection timed out.
    pub const ETIMEDOUT: i32 = 110;
    /// Stale file handle.
    pub const ESTALE: i32 = 116;
    /// Disk quota exceeded.
    pub const EDQUOT: i32 = 122;

    /// The symbolic name of an errno, for logs and for messages shaped like Ceph's
    /// `[Errno 2] ...`.
    pub fn name(errno: i32) -> &'static str {
        match errno {
            EPERM => "EPERM",
            ENOENT => "ENOENT",
            EIO => "EIO",
            EAGAIN => "EAGAIN",
            EACCES => "EACCES",
            EBUSY => "EBUSY",
            EEXIST => "EEXIST",
            ENOTDIR => "ENOTDIR",
            EISDIR => "EISDIR",
            EINVAL => "EINVAL",
            EFBIG => "EFBIG",
            ENOSPC => "ENOSPC",
            EROFS => "EROFS",
            ENAMETOOLONG => "ENAMETOOLONG",
            ENOTEMPTY => "ENOTEMPTY",
            ELOOP => "ELOOP",
            ENODATA => "ENODATA",
            EOPNOTSUPP => "EOPNOTSUPP",
            ENOTCONN => "ENOTCONN",
            ESHUTDOWN => "ESHUTDOWN",
            ETIMEDOUT => "ETIMEDOUT",
            ESTALE => "ESTALE",
            EDQUOT => "EDQUOT",
            _ => "E?",
        }
    }

    /// Parses a name such as `EAGAIN` (or a number such as `11`) into an errno.
    pub fn parse(s: &str) -> Option<i32> {
        let s = s.trim().trim_start_matches('-');
        if let Ok(n) = s.parse::<i32>() {
            return (n > 0).then_some(n);
        }
        let all = [
            EPERM,
            ENOENT,
            EIO,
            EAGAIN,
            EACCES,
            EBUSY,
            EEXIST,
            ENOTDIR,
            EISDIR,
            EINVAL,
            EFBIG,
            ENOSPC,
            EROFS,
            ENAMETOOLONG,
            ENOTEMPTY,
            ELOOP,
            ENODATA,
            EOPNOTSUPP,
            ENOTCONN,
            ESHUTDOWN,
            ETIMEDOUT,
            ESTALE,
            EDQUOT,
        ];
        all.into_iter().find(|e| name(*e).eq_ignore_ascii_case(s))
    }
}

/// The C library's message for an errno, as Ceph prints it after `(errno)`.
pub fn strerror(e: i32) -> &'static str {
    match e {
        errno::EPERM => "Operation not permitted",
        errno::ENOENT => "No such file or directory",
        errno::EIO => "Input/output error",
        errno::EAGAIN => "Resource temporarily unavailable",
        errno::EACCES => "Permission denied",
        errno::EBUSY => "Device or resource busy",
        errno::EEXIST => "File exists",
        errno::ENOTDIR => "Not a directory",
        errno::EISDIR => "Is a directory",
        errno::EINVAL => "Invalid argument",
        errno::EFBIG => "File too large",
        errno::ENOSPC => "No space left on device",
        errno::EROFS => "Read-only file system",
        errno::ENAMETOOLONG => "File name too long",
        errno::ENOTEMPTY => "Directory not empty",
        errno::ELOOP => "Too many levels of symbolic links",
        errno::ENODATA => "No data available",
        errno::EOPNOTSUPP => "Operation not supported",
        errno::ENOTCONN => "Transport endpoint is not connected",
        errno::ESHUTDOWN => "Cannot send after transport endpoint shutdown",
        errno::ETIMEDOUT => "Connection timed out",
        errno::ESTALE => "Stale file handle",
        errno::EDQUOT => "Disk quota exceeded",
        _ => "Unknown error",
    }
}

/// A failed Ceph operation: the errno (positive) and the status message Ceph gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[errno {errno}] {msg}")]
pub struct CephError {
    /// The positive errno; the wire carries it negated.
    pub errno: i32,
    /// The status message (`outs`).
    pub msg: String,
}

impl CephError {
    /// An error with the given errno and message.
    pub fn new(errno: i32, msg: impl Into<String>) -> Self {
        Self {
            errno,
            msg: msg.into(),
        }
    }

    /// `-EINVAL` with a message.
    pub fn inval(msg: impl Into<String>) -> Self {
        Self::new(errno::EINVAL, msg)
    }

    /// `-ENOENT` with a message.
    pub fn noent(msg: impl Into<String>) -> Self {
        Self::new(errno::ENOENT, msg)
    }

    /// `-EACCES` with Ceph's "access denied" message.
    pub fn access_denied() -> Self {
        Self::new(errno::EACCES, "access denied")
    }

    /// Maps a host I/O error on the fake's own data directory to an errno, keeping the
    /// OS errno where there is one.
    pub fn from_io(context: &str, err: &std::io::Error) -> Self {
        let errno = err.raw_os_error().unwrap_or(errno::EIO);
        Self::new(errno, format!("{context}: {}", errno::name(errno)))
    }
}

/// Shorthand for results of Ceph operations.
pub type CephResult<T> = Result<T, CephError>;

/// The answer to one command: exactly what librados hands back to `mon_command`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// 0 or `-errno`.
    pub ret: i32,
    /// The output buffer: JSON or plain text, depending on the command and `format`.
    pub outb: String,
    /// The status string: empty on success for most commands, the message on failure.
    pub outs: String,
}

impl Reply {
    /// A success with an output buffer and an empty status.
    pub fn ok(outb: impl Into<String>) -> Self {
        Self {
            ret: 0,
            outb: outb.into(),
            outs: String::new(),
        }
    }

    /// A success with both an output buffer and a status string (a few commands, such as
    /// `fs dump`, say something on success).
    pub fn ok_with_status(outb: impl Into<String>, outs: impl Into<String>) -> Self {
        Self {
            ret: 0,
            outb: outb.into(),
            outs: outs.into(),
        }
    }

    /// Whether the command succeeded.
    pub fn is_ok(&self) -> bool {
        self.ret == 0
    }
}

impl From<CephError> for Reply {
    fn from(e: CephError) -> Self {
        Self {
            ret: -e.errno,
            outb: String::new(),
            outs: e.msg,
        }
    }
}

impl From<CephResult<Reply>> for Reply {
    fn from(r: CephResult<Reply>) -> Self {
        r.unwrap_or_else(Reply::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_round_trip() {
        for e in [
            errno::ENOENT,
            errno::EAGAIN,
            errno::EDQUOT,
            errno::ENOTEMPTY,
        ] {
            assert_eq!(errno::parse(errno::name(e)), Some(e));
        }
        assert_eq!(errno::parse("11"), Some(errno::EAGAIN));
        assert_eq!(errno::parse("-2"), Some(errno::ENOENT));
        assert_eq!(errno::parse("ENOPE"), None);
        assert_eq!(errno::parse("0"), None);
    }

    #[test]
    fn error_becomes_negative_ret() {
        let r: Reply = CephError::noent("subvolume 'x' does not exist").into();
        assert_eq!(r.ret, -2);
        assert_eq!(r.outs, "subvolume 'x' does not exist");
        assert!(r.outb.is_empty());
    }
}
