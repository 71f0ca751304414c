//! The temporary directory an [`Embedded`](super::Embedded) stack lives in, and the
//! removal of the ones that runs killed without cleaning up left behind. Imports nothing
//! of the crate.

use std::path::Path;

use anyhow::Context as _;

/// Where temporary roots go: `/dev/shm` when there is one.
fn base() -> std::path::PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Removes this process's own roots (`harness-…-<pid>.<start>.…`): what an interrupted
/// run leaves when its directory was dropped while its servers still wrote into it (the
/// removal then fails half way, owner file gone). Call it once the runtime that ran them
/// has shut down.
pub fn remove_own_temp_roots() {
    if let Some(me) = process_identity(std::process::id()) {
        remove_where(&base(), |owner| owner == me);
    }
}

/// A temporary directory named `prefix<pid>.<start>.…` (the process that owns it), on
/// `/dev/shm` when there is one. It also holds an owner file naming this process.
/// Directories of earlier runs whose process is gone (a run killed with SIGKILL cannot
/// clean up, and its directory holds fake-ceph's data and the admin keyring) are removed
/// first.
pub(super) fn temp_root(prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    let base = base();
    remove_where(&base, |owner| !alive(owner));
    let me = process_identity(std::process::id()).context("reading /proc/self/stat")?;
    let prefix = format!("{prefix}{me}.");
    let dir = match tempfile::Builder::new().prefix(&prefix).tempdir_in(&base) {
        Ok(d) => d,
        Err(_) => tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir()
            .context("temporary directory")?,
    };
    std::fs::write(dir.path().join(OWNER_FILE), &me).context("writing the owner file")?;
    Ok(dir)
}

/// The file in a temp root that names its process.
pub(super) const OWNER_FILE: &str = "owner";

/// `<pid>.<start time>` of a live process (the start time tells a reused PID apart).
fn process_identity(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses; the start
    // time is field 22, the 20th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let start = rest.split_whitespace().nth(19)?;
    Some(format!("{pid}.{start}"))
}

/// Whether the process `<pid>.<start>` names is still the one running under that PID.
fn alive(owner: &str) -> bool {
    owner
        .split('.')
        .next()
        .and_then(|p| p.parse::<u32>().ok())
        .and_then(process_identity)
        .is_some_and(|now| now == owner)
}

/// The owner a root's name carries: `harness-[<word>-]<pid>.<start>.<random>`
/// (`harness-real-…`, `harness-up-…`).
fn owner_of(name: &str) -> Option<String> {
    let mut rest = name.strip_prefix("harness-")?;
    while let Some((word, tail)) = rest.split_once('-') {
        if word.is_empty() || !word.bytes().all(|b| b.is_ascii_lowercase()) {
            break;
        }
        rest = tail;
    }
    let mut parts = rest.splitn(3, '.');
    let (pid, start) = (parts.next()?, parts.next()?);
    parts.next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(pid) && digits(start)).then(|| format!("{pid}.{start}"))
}

/// Removes the roots in `base` whose owner `doomed` picks. Directories of other names
/// (another program's, or this program's from before owners were named) stay.
fn remove_where(base: &Path, doomed: impl Fn(&str) -> bool) {
    let Ok(rd) = std::fs::read_dir(base) else {
        return;
    };
    for e in rd.flatten() {
        let Some(owner) = owner_of(&e.file_name().to_string_lossy()) else {
            continue;
        };
        if doomed(&owner) {
            unmount_under(&e.path());
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => {
                    tracing::info!(dir = %e.path().display(), "removed a run's leftover directory")
                }
                Err(err) => {
                    tracing::warn!(dir = %e.path().display(), error = %err, "cannot remove a run's leftover directory")
                }
            }
        }
    }
}

/// Unmounts, lazily and deepest first, every mount point under `dir` (ceph-fuse mounts
/// of a real cluster, the fake mounter's bind mounts): a tree is never removed across a
/// live mount, which would delete the mounted volume's files. Returns how many there
/// were.
pub(crate) fn unmount_under(dir: &Path) -> usize {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return 0;
    };
    let mut points: Vec<std::path::PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| std::path::PathBuf::from(unescape_mount_path(p)))
        .filter(|p| p.starts_with(dir) && p != dir)
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in &points {
        match std::process::Command::new("umount")
            .arg("-l")
            .arg(p)
            .status()
        {
            Ok(s) if s.success() => {}
            Ok(s) => tracing::warn!(mount = %p.display(), status = %s, "umount -l failed"),
            Err(e) => tracing::warn!(mount = %p.display(), error = %e, "cannot run umount"),
        }
    }
    points.len()
}

/// A mountinfo path with its octal escapes (`\040` for a space) undone.
fn unescape_mount_path(p: &str) -> String {
    let b = p.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).and_then(|d| {
            d.iter()
                .all(|c| (b'0'..=b'7').contains(c))
                .then(|| (d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'))
        });
        match (b[i], octal) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mount_path("/a\\040b/c"), "/a b/c");
        assert_eq!(unescape_mount_path("/t\\011x\\134y"), "/t\tx\\y");
        assert_eq!(unescape_mount_path("/plain\\9"), "/plain\\9");
        // Nothing is mounted under a fresh directory.
        let d = tempfile::tempdir().unwrap();
        assert_eq!(unmount_under(d.path()), 0);
    }

    #[test]
    fn only_directories_of_dead_runs_are_removed() {
        let base = tempfile::tempdir().unwrap();
        let make = |name: &str| {
            let d = base.path().join(name);
            std::fs::create_dir_all(d.join("ceph")).unwrap();
            std::fs::write(d.join("ceph").join("keyring"), "secret").unwrap();
            d
        };
        let me = process_identity(std::process::id()).unwrap();
        let pid = std::process::id();
        let dead = make("harness-4194304999.1.abc");
        let reused = make(&format!("harness-real-{pid}.1.abc"));
        let live = make(&format!("harness-{me}.abc"));
        let unnamed = make("harness-abc");
        let other = make("other-4194304999.1.abc");
        remove_where(base.path(), |o| !alive(o));
        assert!(!dead.exists());
        // A PID that now belongs to another process (another start time) is gone too.
        assert!(!reused.exists());
        assert!(live.exists() && unnamed.exists() && other.exists());
        // This process's own, on request, even without its owner file.
        remove_where(base.path(), |o| o == me);
        assert!(!live.exists() && unnamed.exists() && other.exists());
    }

    #[test]
    fn the_owner_is_read_from_the_name() {
        assert_eq!(owner_of("harness-12.34.xYz").as_deref(), Some("12.34"));
        assert_eq!(owner_of("harness-real-12.34.xYz").as_deref(), Some("12.34"));
        assert_eq!(owner_of("harness-up-12.34.xYz").as_deref(), Some("12.34"));
        assert_eq!(owner_of("harness-12.xYz"), None);
        assert_eq!(owner_of("harness-a.34.xYz"), None);
        assert_eq!(owner_of("ceph-12.34.xYz"), None);
    }
}
