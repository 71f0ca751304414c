//! The temporary directory an [`Embedded`](super::Embedded) stack lives in, and the
//! removal of the ones that runs killed without cleaning up left behind. Imports nothing
//! of the crate.

use std::path::Path;

use anyhow::Context as _;

/// A temporary directory named `prefix…`, on `/dev/shm` when there is one. It holds an
/// owner file naming this process; directories of earlier runs whose process is gone (a
/// run killed with SIGKILL cannot clean up, and its directory holds fake-ceph's data and
/// the admin keyring) are removed first.
pub(super) fn temp_root(prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    remove_abandoned(&base, prefix);
    let dir = match tempfile::Builder::new().prefix(prefix).tempdir_in(&base) {
        Ok(d) => d,
        Err(_) => tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .context("temporary directory")?,
    };
    if let Some(me) = process_identity(std::process::id()) {
        std::fs::write(dir.path().join(OWNER_FILE), me).context("writing the owner file")?;
    }
    Ok(dir)
}

/// The file in a temp root that names its process.
pub(super) const OWNER_FILE: &str = "owner";

/// `<pid> <start time>` of a live process (the start time tells a reused PID apart).
fn process_identity(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses; the start
    // time is field 22, the 20th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let start = rest.split_whitespace().nth(19)?;
    Some(format!("{pid} {start}"))
}

/// Removes `base/prefix*` directories whose owner file names a process that is gone.
/// Directories without an owner file (another program's, or one being made) stay.
fn remove_abandoned(base: &Path, prefix: &str) {
    let Ok(rd) = std::fs::read_dir(base) else {
        return;
    };
    for e in rd.flatten() {
        if !e.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let Ok(owner) = std::fs::read_to_string(e.path().join(OWNER_FILE)) else {
            continue;
        };
        let alive = owner
            .split_whitespace()
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .and_then(process_identity)
            .is_some_and(|now| now == owner.trim());
        if !alive {
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => {
                    tracing::info!(dir = %e.path().display(), "removed an abandoned run's directory")
                }
                Err(err) => {
                    tracing::warn!(dir = %e.path().display(), error = %err, "cannot remove an abandoned run's directory")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_directories_of_dead_runs_are_removed() {
        let base = tempfile::tempdir().unwrap();
        let make = |name: &str, owner: Option<&str>| {
            let d = base.path().join(name);
            std::fs::create_dir_all(d.join("ceph")).unwrap();
            std::fs::write(d.join("ceph").join("keyring"), "secret").unwrap();
            if let Some(o) = owner {
                std::fs::write(d.join(OWNER_FILE), o).unwrap();
            }
            d
        };
        let me = process_identity(std::process::id()).unwrap();
        let pid = std::process::id();
        let dead = make("harness-dead", Some("4194304999 1"));
        let reused = make("harness-reused", Some(&format!("{pid} 1")));
        let live = make("harness-live", Some(&me));
        let unowned = make("harness-unowned", None);
        let other = make("other-dead", Some("4194304999 1"));
        remove_abandoned(base.path(), "harness-");
        assert!(!dead.exists());
        // A PID that now belongs to another process (another start time) is gone too.
        assert!(!reused.exists());
        assert!(live.exists() && unowned.exists() && other.exists());
    }
}
