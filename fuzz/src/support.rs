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

/// Strings no answer may show (keys, marker files' contents), each with whether an input
/// has carried it since the system under test was built. The fuzzer learns such strings
/// from the very comparisons that look for them, and an input that carries one may store
/// it where later answers show it (a name, a listing); so once an input has carried a
/// string, its check stands down until the next rebuild.
#[derive(Debug, Default)]
pub struct Secrets {
    items: Vec<(String, Vec<u8>, bool)>,
}

impl Secrets {
    /// Adds a string, named `label` in failure messages.
    pub fn add(&mut self, label: &str, secret: &[u8]) {
        self.items.push((label.to_owned(), secret.to_vec(), false));
    }

    /// Notes what an input carries.
    pub fn saw(&mut self, input: &[u8]) {
        for (_, s, carried) in &mut self.items {
            *carried |= contains(input, s);
        }
    }

    /// The label of a string `answer` shows that no input has carried.
    pub fn shown_in(&self, answer: &[u8]) -> Option<&str> {
        self.items
            .iter()
            .find(|(_, s, carried)| !carried && contains(answer, s))
            .map(|(label, _, _)| label.as_str())
    }
}
