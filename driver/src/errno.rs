//! The Linux errnos the driver reacts to, by name: Ceph answers commands with them
//! (`ret` = -errno), and mounts fail with them. A leaf: it imports nothing.

/// Operation not permitted (a cephx user whose caps do not allow it; a refused root).
pub const EPERM: i32 = 1;
/// No such file or directory.
pub const ENOENT: i32 = 2;
/// Input/output error: what a Ceph answer without a `ret` is taken for.
pub const EIO: i32 = 5;
/// Try again.
pub const EAGAIN: i32 = 11;
/// Permission denied.
pub const EACCES: i32 = 13;
/// File exists.
pub const EEXIST: i32 = 17;
/// Invalid argument.
pub const EINVAL: i32 = 22;
/// Directory not empty.
pub const ENOTEMPTY: i32 = 39;
