//! The CephFS tree on the host: a directory per file system under the data dir, names
//! that cannot escape it, and the asynchronous purge of removed subvolumes.
//!
//! Layout, as a client mounting `/` of file system `cephfs` would see it:
//!
//! ```text
//! <data-dir>/fs/cephfs/volumes/<group>/<subvolume>/<uuid>/   user data
//! <data-dir>/fs/cephfs/volumes/<group>/<subvolume>/.snap/<snap>/<uuid>/   snapshots
//! <data-dir>/fs/cephfs/volumes/_deleting/<id>/   trash, purged in the background
//! ```

use std::collections::VecDeque;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::error::{CephError, CephResult, errno};

/// The longest name component CephFS accepts.
pub const NAME_MAX: usize = 255;

/// Where the fake keeps its CephFS trees. A temporary directory is removed on drop.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl DataDir {
    /// Uses `path` (created if missing; it must be empty: a cluster starts there from
    /// nothing) or, with `None`, a new temporary directory.
    pub fn new(path: Option<&Path>) -> std::io::Result<Self> {
        match path {
            Some(p) => {
                std::fs::create_dir_all(p)?;
                if std::fs::read_dir(p)?.next().is_some() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        format!(
                            "data dir {} is not empty and holds no fake-ceph metadata store \
                             ({}/{}): fake-ceph starts on an empty directory or recovers one \
                             that a fake-ceph with durable metadata left",
                            p.display(),
                            crate::store::META_DIR,
                            crate::store::STORE_FILE
                        ),
                    ));
                }
                Ok(Self {
                    root: p.canonicalize()?,
                    _temp: None,
                })
            }
            None => {
                let t = tempfile::Builder::new().prefix("fake-ceph-").tempdir()?;
                Ok(Self {
                    root: t.path().canonicalize()?,
                    _temp: Some(t),
                })
            }
        }
    }

    /// Uses `path` as it is, to recover the cluster a metadata store in it describes.
    pub fn existing(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            root: path.canonicalize()?,
            _temp: None,
        })
    }

    /// The data dir itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The local directory that is `/` of file system `fs`.
    pub fn fs_root(&self, fs: &str) -> PathBuf {
        self.root.join("fs").join(fs)
    }
}

/// Checks a subvolume, group, snapshot or key name: it becomes one path component, so
/// it must not be empty, `.`, `..`, contain `/` or NUL, or be longer than a component.
pub fn check_name(kind: &str, name: &str) -> CephResult<()> {
    if name.is_empty() {
        return Err(CephError::inval(format!("{kind} name cannot be empty")));
    }
    if name.len() > NAME_MAX {
        return Err(CephError::new(
            errno::ENAMETOOLONG,
            format!(
                "{kind} name '{}...' is too long",
                name.chars().take(32).collect::<String>()
            ),
        ));
    }
    if name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(CephError::inval(format!("invalid {kind} name '{name}'")));
    }
    if name.starts_with('_') && kind == "subvolume group" {
        return Err(CephError::inval(format!(
            "{kind} name '{name}' is reserved (names starting with '_' are internal)"
        )));
    }
    Ok(())
}

/// Joins a client's relative path onto `base`, refusing anything that would leave it
/// (`..` above the base, absolute components, NUL, over-long components).
pub fn join_within(base: &Path, rel: &str) -> CephResult<PathBuf> {
    if rel.contains('\0') {
        return Err(CephError::inval("path contains NUL"));
    }
    let mut out = base.to_path_buf();
    let mut depth = 0usize;
    for comp in Path::new(rel).components() {
        match comp {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(c) => {
                if c.len() > NAME_MAX {
                    return Err(CephError::new(errno::ENAMETOOLONG, "File name too long"));
                }
                out.push(c);
                depth += 1;
            }
            Component::ParentDir => {
                if depth == 0 {
                    return Err(CephError::new(errno::EACCES, "path escapes the mount root"));
                }
                out.pop();
                depth -= 1;
            }
            Component::Prefix(_) => return Err(CephError::inval("invalid path")),
        }
    }
    Ok(out)
}

/// Total bytes of regular files under `dir` (CephFS `rbytes`: logical sizes).
pub fn du(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if let Ok(m) = e.metadata() {
                total += m.len();
            }
        }
    }
    total
}

/// Files and directories under `dir` (CephFS `rentries`), not counting `dir`.
pub fn count_entries(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            total += 1;
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    total
}

/// Copies a directory tree (used for snapshots and clones). Symlinks are copied as links.
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<u64> {
    let mut bytes = 0;
    std::fs::create_dir_all(to)?;
    let mut stack = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((src, dst)) = stack.pop() {
        for e in std::fs::read_dir(&src)? {
            let e = e?;
            let ft = e.file_type()?;
            let target = dst.join(e.file_name());
            if ft.is_dir() {
                std::fs::create_dir_all(&target)?;
                stack.push((e.path(), target));
            } else if ft.is_symlink() {
                let link = std::fs::read_link(e.path())?;
                std::os::unix::fs::symlink(link, &target)?;
            } else {
                bytes += std::fs::copy(e.path(), &target)?;
            }
        }
    }
    Ok(bytes)
}

#[derive(Debug, Default)]
struct PurgeQueue {
    items: VecDeque<PathBuf>,
    stop: bool,
}

#[derive(Debug, Default)]
struct PurgeShared {
    queue: Mutex<PurgeQueue>,
    wake: Condvar,
    paused: AtomicBool,
    pending: AtomicUsize,
}

/// Deletes trashed directories in the background, as the mgr `volumes` module's purge
/// threads do. `pause` holds the queue (Ceph's `pause_purging`).
#[derive(Debug)]
pub struct Purger {
    shared: Arc<PurgeShared>,
    thread: Option<JoinHandle<()>>,
}

impl Purger {
    /// Starts the purge thread.
    pub fn start() -> Self {
        let shared = Arc::new(PurgeShared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fake-ceph-purge".into())
            .spawn(move || purge_loop(&s))
            .ok();
        Self { shared, thread }
    }

    /// Queues a trashed directory for deletion.
    pub fn enqueue(&self, path: PathBuf) {
        self.shared.pending.fetch_add(1, Ordering::SeqCst);
        self.shared.queue.lock().items.push_back(path);
        self.shared.wake.notify_one();
    }

    /// Pauses or resumes purging.
    pub fn set_paused(&self, paused: bool) {
        self.shared.paused.store(paused, Ordering::SeqCst);
        self.shared.wake.notify_one();
    }

    /// How many trashed directories are still waiting.
    pub fn pending(&self) -> usize {
        self.shared.pending.load(Ordering::SeqCst)
    }

    /// Purges everything queued now, on the caller's thread (for shutdown and tests).
    pub fn drain(&self) {
        loop {
            let next = self.shared.queue.lock().items.pop_front();
            let Some(p) = next else { break };
            let _ = std::fs::remove_dir_all(&p);
            self.shared.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn purge_loop(s: &PurgeShared) {
    loop {
        let next = {
            let mut q = s.queue.lock();
            loop {
                if q.stop {
                    return;
                }
                if !s.paused.load(Ordering::SeqCst)
                    && let Some(p) = q.items.pop_front()
                {
                    break p;
                }
                s.wake.wait(&mut q);
            }
        };
        let _ = std::fs::remove_dir_all(&next);
        s.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Purger {
    fn drop(&mut self) {
        self.shared.queue.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_join(rel: &str, expected: Option<&str>) {
        let base = Path::new("/data/fs/cephfs/volumes/csi/v/u");
        let got = join_within(base, rel).ok();
        assert_eq!(got.as_deref(), expected.map(Path::new), "{rel}");
    }

    #[test]
    fn joins_stay_inside() {
        check_join("a/b", Some("/data/fs/cephfs/volumes/csi/v/u/a/b"));
        check_join("/a", Some("/data/fs/cephfs/volumes/csi/v/u/a"));
        check_join("a/../b", Some("/data/fs/cephfs/volumes/csi/v/u/b"));
        check_join("", Some("/data/fs/cephfs/volumes/csi/v/u"));
        check_join("..", None);
        check_join("a/../../b", None);
        check_join("../../../../etc/passwd", None);
        check_join("a\0b", None);
    }

    #[test]
    fn names() {
        for ok in ["csi-vol-1", "x", "ünïcödé", &"a".repeat(255)] {
            assert!(check_name("subvolume", ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a\0", &"a".repeat(256)] {
            assert!(check_name("subvolume", bad).is_err(), "{bad:?}");
        }
        assert!(check_name("subvolume group", "_nogroup").is_err());
    }

    #[test]
    fn purge_runs_in_background_and_pauses() {
        let d = tempfile::tempdir().unwrap();
        let p = Purger::start();
        p.set_paused(true);
        let victim = d.path().join("trash");
        std::fs::create_dir_all(victim.join("x/y")).unwrap();
        p.enqueue(victim.clone());
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(victim.exists());
        assert_eq!(p.pending(), 1);
        p.set_paused(false);
        for _ in 0..200 {
            if p.pending() == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(p.pending(), 0);
        assert!(!victim.exists());
    }

    #[test]
    fn du_and_copy() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        std::fs::create_dir_all(a.join("sub")).unwrap();
        std::fs::write(a.join("f"), b"hello").unwrap();
        std::fs::write(a.join("sub/g"), b"world!").unwrap();
        assert_eq!(du(&a), 11);
        assert_eq!(count_entries(&a), 3);
        let b = d.path().join("b");
        assert_eq!(copy_tree(&a, &b).unwrap(), 11);
        assert_eq!(std::fs::read(b.join("sub/g")).unwrap(), b"world!");
    }
}
