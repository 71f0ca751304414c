//! Single-writer claims: how a node enforces `SINGLE_NODE_SINGLE_WRITER` (Kubernetes'
//! ReadWriteOncePod) on NodePublishVolume.
//!
//! CSI: a volume with that access mode may be published at one target path at a time; a
//! second NodePublish at another target path fails with FAILED_PRECONDITION. A publish
//! of such a volume leaves a claim, a symlink `<state_dir>/rwop/<volume ID, encoded>`
//! whose content is the target path; NodeUnpublish of that target removes it.
//!
//! The claim is only a hint; the mount table decides. A claim whose target is no longer
//! mounted (a crash between unmount and removal, a target unmounted by hand) is stale and
//! is replaced. A claim is made with symlink(2), which fails if one exists, so two nodes'
//! worth of races reduce to one winner; concurrent publishes of one volume are also
//! serialized by the node's per-volume lock. Volumes of other access modes pay one
//! failed unlink on unpublish.

use std::path::{Path, PathBuf};

/// Claims live in this subdirectory of the node's state dir.
const CLAIMS_DIR: &str = "rwop";

/// A node's claims.
#[derive(Debug, Clone)]
pub struct Claims {
    dir: PathBuf,
}

/// What [`Claims::holder`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Holder {
    /// No claim.
    None,
    /// A claim for this target path.
    This,
    /// A claim for another target path.
    Other(PathBuf),
}

impl Claims {
    /// Claims under `state_dir/rwop`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join(CLAIMS_DIR),
        }
    }

    fn path(&self, volume_id: &str) -> PathBuf {
        self.dir.join(crate::mount::file_name(volume_id.as_bytes()))
    }

    /// Who holds `volume_id`'s claim, seen from `target`.
    pub fn holder(&self, volume_id: &str, target: &Path) -> std::io::Result<Holder> {
        match std::fs::read_link(self.path(volume_id)) {
            Ok(t) if t == target => Ok(Holder::This),
            Ok(t) => Ok(Holder::Other(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Holder::None),
            Err(e) => Err(e),
        }
    }

    /// Claims `volume_id` for `target`. Fails with `AlreadyExists` if a claim exists.
    pub fn claim(&self, volume_id: &str, target: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        // The state dir itself may not exist yet (the kernel and fuse mounters keep
        // nothing there); the claims directory is private.
        match std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
        {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        std::os::unix::fs::symlink(target, self.path(volume_id))
    }

    /// Drops `volume_id`'s claim if it is `target`'s (or, with `None`, whoever's).
    /// Succeeds when there is none.
    pub fn release(&self, volume_id: &str, target: Option<&Path>) -> std::io::Result<()> {
        let path = self.path(volume_id);
        if let Some(target) = target {
            match std::fs::read_link(&path) {
                Ok(t) if t == target => {}
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_held_until_its_target_releases_it() {
        let dir = tempfile::tempdir().unwrap();
        let c = Claims::new(dir.path());
        let (a, b) = (Path::new("/pods/a/mount"), Path::new("/pods/b/mount"));
        assert_eq!(c.holder("vol-1", a).unwrap(), Holder::None);
        c.claim("vol-1", a).unwrap();
        assert_eq!(c.holder("vol-1", a).unwrap(), Holder::This);
        assert_eq!(c.holder("vol-1", b).unwrap(), Holder::Other(a.into()));
        assert_eq!(c.holder("vol-2", b).unwrap(), Holder::None);
        let again = c.claim("vol-1", b).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        // Another target's release leaves the claim; its own removes it.
        c.release("vol-1", Some(b)).unwrap();
        assert_eq!(c.holder("vol-1", b).unwrap(), Holder::Other(a.into()));
        c.release("vol-1", Some(a)).unwrap();
        assert_eq!(c.holder("vol-1", a).unwrap(), Holder::None);
        c.release("vol-1", Some(a)).unwrap();
        c.claim("vol-1", b).unwrap();
        c.release("vol-1", None).unwrap();
        assert_eq!(c.holder("vol-1", b).unwrap(), Holder::None);
    }

    #[test]
    fn the_state_dir_is_made_on_the_first_claim() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("not").join("yet");
        let c = Claims::new(&state);
        let t = Path::new("/pods/a/mount");
        c.claim("vol-1", t).unwrap();
        assert_eq!(c.holder("vol-1", t).unwrap(), Holder::This);
        let mode = std::fs::metadata(state.join(CLAIMS_DIR))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn volume_ids_cannot_escape_the_claims_directory() {
        let dir = tempfile::tempdir().unwrap();
        let c = Claims::new(dir.path());
        let t = Path::new("/pods/a/mount");
        for id in ["..", ".", "../../etc/passwd", "a/b", &"x".repeat(4000)] {
            c.claim(id, t).unwrap();
            assert_eq!(c.holder(id, t).unwrap(), Holder::This, "{id}");
        }
        let names: Vec<_> = std::fs::read_dir(dir.path().join(CLAIMS_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 5, "{names:?}");
        assert!(names.iter().all(|n| !n.starts_with('.') && n.len() <= 200));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
