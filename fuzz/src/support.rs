//! What the harnesses share: one runtime, listings of directories to compare, and byte
//! searches.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

/// The runtime every harness runs on: two workers, as the machine has two cores; the
/// fakes' blocking work moves off them as it does in the servers.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime starts")
    });
    &RT
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// One entry of a [`listing`]: the path, its kind, its size and (for symlinks) where it
/// points.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// The path.
    pub path: PathBuf,
    /// `d`, `f`, `l` or `?`.
    pub kind: char,
    /// The size from `lstat`.
    pub len: u64,
    /// A symlink's target.
    pub link: Option<PathBuf>,
}

/// Everything under `dir` (not following symlinks), sorted, leaving out the subtrees
/// in `skip`.
pub fn listing(dir: &Path, skip: &[&Path]) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let path = e.path();
            if skip.iter().any(|s| path == *s) {
                continue;
            }
            let Ok(m) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let kind = if m.is_dir() {
                'd'
            } else if m.is_symlink() {
                'l'
            } else if m.is_file() {
                'f'
            } else {
                '?'
            };
            if kind == 'd' {
                stack.push(path.clone());
            }
            let link = (kind == 'l')
                .then(|| std::fs::read_link(&path).ok())
                .flatten();
            out.push(Entry {
                path,
                kind,
                // A directory's size changes as entries come and go; only files' count.
                len: if kind == 'f' { m.len() } else { 0 },
                link,
            });
        }
    }
    out.sort();
    out
}

/// The first difference between two listings, for a crash message.
pub fn diff(before: &[Entry], after: &[Entry]) -> String {
    let gone: Vec<_> = before.iter().filter(|e| !after.contains(e)).collect();
    let new: Vec<_> = after.iter().filter(|e| !before.contains(e)).collect();
    format!("gone or changed: {gone:?}; new or changed: {new:?}")
}

/// Runs every seed of a target (`fuzz/seeds/<target>/`) through its harness: what
/// `cargo test` here checks, without libFuzzer.
pub fn replay_seeds(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    let mut seeds: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    for seed in seeds {
        let data = std::fs::read(&seed).unwrap_or_else(|e| panic!("{}: {e}", seed.display()));
        run(&data);
    }
}
