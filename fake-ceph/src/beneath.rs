//! Paths resolved beneath a session's root, one component at a time, without ever
//! leaving it: what a client operation touches is reached through directory file
//! descriptors opened with `O_NOFOLLOW`, so neither a symlink in the tree nor one swapped
//! in while an operation runs can lead outside the root.
//!
//! Symlinks are followed as libcephfs follows them (`Client::path_walk`): a relative
//! target from the directory holding the link, an absolute one from the mount root, `..`
//! never above the root, at most [`MAX_LINKS`] links per path (then `ELOOP`). The
//! resolved path (names from the root) is returned with the result, so that MDS caps
//! can be checked on where a path leads, as the MDS checks them on the inode a client
//! reaches.
//!
//! Why a walker of our own over `rustix` rather than `cap-std`: cap-std follows links
//! that stay beneath its root but refuses absolute targets (libcephfs resolves them from
//! the mount root) and does not say where a path led, which the caps check needs; its
//! `openat2(RESOLVE_BENEATH)` fast path has the same limits. rustix (already in the
//! tree through tempfile) gives the `*at` system calls as safe functions, and the walk
//! needs no `openat2`, so it works on any Linux kernel and under seccomp filters that
//! refuse `openat2`.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// Most symlinks one path may pass through (Linux's `MAXSYMLINKS`; libcephfs allows as
/// many).
pub const MAX_LINKS: usize = 40;

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Opens the directory `name` in `dir` without following a symlink there (`ENOTDIR` if
/// it is one, as the MDS answers a path through a non-directory).
fn open_subdir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    match rustix::fs::openat(dir, name, dir_flags(), Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(rustix::io::Errno::LOOP) => Err(rustix::io::Errno::NOTDIR.into()),
        Err(e) => Err(e.into()),
    }
}

/// A directory trusted by the caller (the file system's root in the data dir) and a
/// path below it that must consist of real directories only: a session's root.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
}

impl Root {
    /// Opens `base` (a directory of the fake's own, trusted) and walks `below` (names
    /// separated by `/`) from it, refusing symlinks (`ENOTDIR`) and `..`.
    pub fn open(base: &Path, below: &str) -> io::Result<Self> {
        let mut fd = rustix::fs::open(base, dir_flags(), Mode::empty())?;
        for name in below.split('/').filter(|c| !c.is_empty() && *c != ".") {
            if name == ".." {
                return Err(rustix::io::Errno::INVAL.into());
            }
            fd = open_subdir(fd.as_fd(), OsStr::new(name))?;
        }
        Ok(Self { fd })
    }

    /// The root directory itself.
    #[cfg(test)]
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Resolves `path` (relative to the root; a leading `/` is the root) beneath the
    /// root. The last component is followed if it is a symlink only when `follow_last`
    /// (`stat`, `open` do; `unlink`, `rename`, `rmdir` do not). With `create_dirs`,
    /// missing directories named in `path` itself (not in a link's target) are made,
    /// as `mkdir -p` makes them.
    pub fn resolve(&self, path: &str, follow_last: bool, create_dirs: bool) -> io::Result<Entry> {
        let mut pending: VecDeque<(OsString, bool)> =
            components(path.as_bytes()).map(|c| (c, true)).collect();
        // Directories opened below the root, with their names.
        let mut stack: Vec<(OwnedFd, OsString)> = Vec::new();
        let mut links = 0usize;
        let mut created = false;
        while let Some((name, literal)) = pending.pop_front() {
            if name == ".." {
                stack.pop();
                continue;
            }
            let cur = stack.last().map_or(self.fd.as_fd(), |(fd, _)| fd.as_fd());
            let last = pending.is_empty();
            if last && !follow_last && !create_dirs {
                return Entry::named(cur, &stack, name, created);
            }
            let st = match rustix::fs::statat(cur, &name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => Some(st),
                Err(rustix::io::Errno::NOENT) => None,
                Err(e) => return Err(e.into()),
            };
            let Some(st) = st else {
                if create_dirs && literal {
                    match rustix::fs::mkdirat(cur, &name, Mode::from_raw_mode(0o777)) {
                        Ok(()) => created = true,
                        Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    let fd = open_subdir(cur, &name)?;
                    stack.push((fd, name));
                    continue;
                }
                if last {
                    // A name to be created (or reported missing) by the operation.
                    return Entry::named(cur, &stack, name, created);
                }
                return Err(rustix::io::Errno::NOENT.into());
            };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink if follow_last || !last => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(rustix::io::Errno::LOOP.into());
                    }
                    let target = rustix::fs::readlinkat(cur, &name, Vec::new())?;
                    let target = target.as_bytes();
                    if target.first() == Some(&b'/') {
                        stack.clear();
                    }
                    for c in components(target).collect::<Vec<_>>().into_iter().rev() {
                        pending.push_front((c, false));
                    }
                }
                FileType::Directory if !last => {
                    let fd = open_subdir(cur, &name)?;
                    stack.push((fd, name));
                }
                _ if last => return Entry::named(cur, &stack, name, created),
                _ => return Err(rustix::io::Errno::NOTDIR.into()),
            }
        }
        // The path ends at a directory (the root, or after `..`).
        let dir = match stack.pop() {
            Some((fd, name)) => {
                let parent = stack.last().map_or(self.fd.as_fd(), |(fd, _)| fd.as_fd());
                let mut e = Entry::named(parent, &stack, name, created)?;
                e.dir = Some(fd);
                return Ok(e);
            }
            None => self.fd.try_clone()?,
        };
        Ok(Entry {
            parent: None,
            name: None,
            dir: Some(dir),
            rel: String::new(),
            created,
        })
    }
}

/// Splits a path into its components, dropping empty ones and `.`.
fn components(path: &[u8]) -> impl Iterator<Item = OsString> + '_ {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| OsString::from_vec(c.to_vec()))
}

/// Where a path led: a name in an open directory, or the root itself.
#[derive(Debug)]
pub struct Entry {
    /// The directory holding the entry; `None` for the root.
    parent: Option<OwnedFd>,
    /// The entry's name in `parent`; `None` for the root.
    name: Option<OsString>,
    /// The entry itself, when the walk opened it as a directory.
    dir: Option<OwnedFd>,
    /// The resolved path from the root (`a/b/c`; empty for the root).
    rel: String,
    /// Whether the walk made directories (`mkdir -p`).
    created: bool,
}

impl Entry {
    fn named(
        parent: BorrowedFd<'_>,
        stack: &[(OwnedFd, OsString)],
        name: OsString,
        created: bool,
    ) -> io::Result<Self> {
        let mut rel = String::new();
        for (_, n) in stack {
            rel.push_str(&n.to_string_lossy());
            rel.push('/');
        }
        rel.push_str(&name.to_string_lossy());
        Ok(Self {
            parent: Some(parent.try_clone_to_owned()?),
            name: Some(name),
            dir: None,
            rel,
            created,
        })
    }

    /// The resolved path from the root, `/`-separated, empty for the root.
    pub fn rel(&self) -> &str {
        &self.rel
    }

    /// Whether this is the root itself.
    pub fn is_root(&self) -> bool {
        self.name.is_none()
    }

    /// Whether the walk made directories on the way.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The holding directory and the name, or `EBUSY` for the root (which cannot be
    /// removed or renamed from inside the mount).
    pub fn parent_and_name(&self) -> io::Result<(BorrowedFd<'_>, &OsStr)> {
        match (&self.parent, &self.name) {
            (Some(p), Some(n)) => Ok((p.as_fd(), n.as_os_str())),
            _ => Err(rustix::io::Errno::BUSY.into()),
        }
    }

    /// `lstat` of the entry (its own metadata; the walk already followed any link the
    /// operation follows). `ENOENT` if it does not exist.
    pub fn stat(&self) -> io::Result<rustix::fs::Stat> {
        match (&self.dir, &self.parent, &self.name) {
            (Some(d), _, _) => Ok(rustix::fs::fstat(d)?),
            (None, Some(p), Some(n)) => Ok(rustix::fs::statat(p, n, AtFlags::SYMLINK_NOFOLLOW)?),
            _ => Err(rustix::io::Errno::NOENT.into()),
        }
    }

    /// Opens the entry with `flags` (plus `O_NOFOLLOW | O_CLOEXEC`): a symlink swapped in
    /// since the walk fails with `ELOOP` instead of being followed.
    pub fn open(&self, flags: OFlags, mode: u32) -> io::Result<std::fs::File> {
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match (&self.dir, &self.parent, &self.name) {
            (Some(d), _, _) if !flags.intersects(OFlags::WRONLY | OFlags::RDWR) => {
                // The directory is open already; reopen it with the flags asked for.
                rustix::fs::openat(d, ".", flags, Mode::empty())?
            }
            (_, Some(p), Some(n)) => rustix::fs::openat(p, n, flags, Mode::from_raw_mode(mode))?,
            (Some(_), _, _) => return Err(rustix::io::Errno::ISDIR.into()),
            _ => return Err(rustix::io::Errno::NOENT.into()),
        };
        Ok(std::fs::File::from(fd))
    }

    /// Opens the entry as a directory (`ENOTDIR` if it is not one).
    pub fn open_dir(&self) -> io::Result<OwnedFd> {
        match (&self.dir, &self.parent, &self.name) {
            (Some(d), _, _) => Ok(d.try_clone()?),
            (None, Some(p), Some(n)) => open_subdir(p.as_fd(), n),
            _ => Err(rustix::io::Errno::NOENT.into()),
        }
    }
}

/// The names in a directory (without `.` and `..`).
pub fn read_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut out = Vec::new();
    for e in rustix::fs::Dir::read_from(dir)? {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push(OsString::from_vec(name.to_vec()));
        }
    }
    Ok(out)
}

/// What is under a directory, walked through file descriptors without following
/// symlinks: (bytes of regular files and links, entries). CephFS `rbytes`/`rentries`.
pub fn usage(dir: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let (mut bytes, mut entries) = (0u64, 0u64);
    let mut stack = vec![dir.try_clone_to_owned()?];
    while let Some(d) = stack.pop() {
        for name in read_dir(d.as_fd())? {
            entries += 1;
            let Ok(st) = rustix::fs::statat(&d, &name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                if let Ok(fd) = open_subdir(d.as_fd(), &name) {
                    stack.push(fd);
                }
            } else {
                bytes += u64::try_from(st.st_size).unwrap_or(0);
            }
        }
    }
    Ok((bytes, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Root) {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("root");
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::fs::write(r.join("a/b/f"), b"x").unwrap();
        std::os::unix::fs::symlink("a/b", r.join("rel")).unwrap();
        std::os::unix::fs::symlink("/a", r.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../..", r.join("a/up")).unwrap();
        std::os::unix::fs::symlink(d.path(), r.join("out")).unwrap();
        std::os::unix::fs::symlink("l2", r.join("l1")).unwrap();
        std::os::unix::fs::symlink("l1", r.join("l2")).unwrap();
        let root = Root::open(d.path(), "root").unwrap();
        (d, root)
    }

    fn check(root: &Root, path: &str, follow: bool, expected: Result<&str, i32>) {
        let got = root
            .resolve(path, follow, false)
            .map(|e| e.rel().to_owned())
            .map_err(|e| e.raw_os_error().unwrap_or(0));
        assert_eq!(
            got.as_deref().map_err(|e| *e),
            expected,
            "{path} follow={follow}"
        );
    }

    #[test]
    fn resolves_like_libcephfs_and_never_leaves_the_root() {
        let (_d, root) = tree();
        check(&root, "", true, Ok(""));
        check(&root, "a/b/f", true, Ok("a/b/f"));
        check(&root, "rel/f", true, Ok("a/b/f"));
        check(&root, "rel", true, Ok("a/b"));
        check(&root, "rel", false, Ok("rel"));
        check(&root, "abs/b", true, Ok("a/b"));
        check(&root, "a/up", true, Ok(""));
        check(&root, "a/up/a/b/f", true, Ok("a/b/f"));
        check(&root, "a/../../../a", true, Ok("a"));
        check(&root, "missing", true, Ok("missing"));
        check(&root, "missing/x", true, Err(libc_errno::ENOENT));
        check(&root, "a/b/f/x", true, Err(libc_errno::ENOTDIR));
        check(&root, "l1", true, Err(libc_errno::ELOOP));
        check(&root, "l1", false, Ok("l1"));
        // The link to the outside names a path that does not exist beneath the root.
        check(&root, "out/root", true, Err(libc_errno::ENOENT));
    }

    #[test]
    fn mkdir_p_makes_only_names_of_the_path() {
        let (d, root) = tree();
        let e = root.resolve("a/new/deeper", true, true).unwrap();
        assert!(e.created());
        assert_eq!(e.rel(), "a/new/deeper");
        assert!(d.path().join("root/a/new/deeper").is_dir());
        // Through a link whose target is missing: nothing is made there.
        std::os::unix::fs::symlink("/nowhere/x", d.path().join("root/dangling")).unwrap();
        let e = root.resolve("dangling/y", true, true).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc_errno::ENOENT));
        assert!(!d.path().join("root/nowhere").exists());
    }

    #[test]
    fn a_root_through_a_symlink_is_refused() {
        let (d, _root) = tree();
        let e = Root::open(d.path(), "root/rel").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc_errno::ENOTDIR));
        assert!(Root::open(d.path(), "root/a/b").is_ok());
    }

    #[test]
    fn usage_does_not_follow_links() {
        let (d, root) = tree();
        let (bytes, entries) = usage(root.fd()).unwrap();
        // f (1 byte) and the links' own sizes; `out` is not entered.
        let out = d.path().as_os_str().len();
        let links: usize = ["a/b", "/a", "../../..", "l2", "l1"]
            .iter()
            .map(|t| t.len())
            .sum();
        assert_eq!(bytes, (1 + links + out) as u64);
        assert_eq!(entries, 9);
    }

    /// Linux errno values used above.
    mod libc_errno {
        pub const ENOENT: i32 = 2;
        pub const ENOTDIR: i32 = 20;
        pub const ELOOP: i32 = 40;
    }
}
