//! The directories a CO makes for a plugin (target parents, staging paths), and their
//! removal. Imports nothing of the crate.

use std::path::Path;

/// Removes what is left in a scratch directory the bench made, never recursively
/// (a leftover mount must not have its contents deleted), then the directory.
pub fn remove_scratch(dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let is_dir = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir());
            let r = if is_dir {
                std::fs::remove_dir(&p)
            } else {
                std::fs::remove_file(&p)
            };
            if let Err(e) = r {
                problems.push(format!("left behind {}: {e}", p.display()));
            }
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => problems.push(format!("left behind {}: {e}", dir.display())),
    }
    problems
}
