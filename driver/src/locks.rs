//! Per-volume operation locks: a second operation on a name or ID that already has one in
//! flight is refused (the caller answers `Aborted`, and the CO retries). A lock lives only
//! as long as its RPC, and every backend call of an RPC has a deadline, so a hung backend
//! cannot hold a lock for ever.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;

/// A set of held keys.
#[derive(Debug, Default, Clone)]
pub struct Locks {
    held: Arc<Mutex<HashSet<String>>>,
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct Guard {
    held: Arc<Mutex<HashSet<String>>>,
    key: String,
}

impl Locks {
    /// Takes `key` if nobody holds it.
    pub fn try_lock(&self, key: &str) -> Option<Guard> {
        let mut h = self.held.lock();
        if !h.insert(key.to_owned()) {
            return None;
        }
        Some(Guard {
            held: self.held.clone(),
            key: key.to_owned(),
        })
    }

    /// How many keys are held.
    pub fn held(&self) -> usize {
        self.held.lock().len()
    }
}

/// What a controller operation locks. A volume's request name is locked by CreateVolume
/// and also by DeleteVolume and the removal of an orphaned clone, so that a retried
/// create and a deletion of the same volume exclude each other; likewise a snapshot's
/// name. IDs guard the operations that name an existing volume or snapshot. Each kind
/// has its own keys.
#[derive(Debug, Clone, Copy)]
pub enum Held<'a> {
    /// A CreateVolume request name.
    VolumeName(&'a str),
    /// A CreateSnapshot request name.
    SnapshotName(&'a str),
    /// A volume or snapshot ID.
    Id(&'a str),
}

impl Locks {
    /// Takes `what`'s lock, or answers Aborted (CSI: an operation is pending on it; the
    /// CO retries).
    pub fn hold(&self, what: Held<'_>) -> Result<Guard, tonic::Status> {
        let (key, shown) = match what {
            Held::VolumeName(n) => (format!("volume-name/{n}"), format!("volume '{n}'")),
            Held::SnapshotName(n) => (format!("snapshot-name/{n}"), format!("snapshot '{n}'")),
            Held::Id(id) => (format!("id/{id}"), format!("'{id}'")),
        };
        self.try_lock(&key).ok_or_else(|| {
            tonic::Status::aborted(format!("an operation on {shown} is in progress; retry"))
        })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.held.lock().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let l = Locks::default();
        let g = l.try_lock("a").unwrap();
        assert!(l.try_lock("a").is_none());
        assert!(l.try_lock("b").is_some());
        drop(g);
        assert!(l.try_lock("a").is_some());
        assert_eq!(l.held(), 0);
    }
}
