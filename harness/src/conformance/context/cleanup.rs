//! What a check created and its undoing: the bench's list of [`Resource`]s, csi-sanity's
//! cleanup list beside it, and the cleanup in either [`CleanupStyle`]. Imports
//! [`super`] only.

use std::collections::HashSet;

use driver::csi::v1::*;
use tonic::{Code, Status};

use super::{Ctx, Verdict, describe, maybe_pending};

/// Something a check created, undone by the cleanup unless the check undid it.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    Volume(String),
    Snapshot(String),
    GroupSnapshot(String, Vec<String>),
    ControllerPublish {
        volume: String,
        node: String,
    },
    Stage {
        volume: String,
        path: String,
    },
    Publish {
        volume: String,
        path: String,
    },
    /// A CreateVolume that did not answer (Aborted, timeout): the volume may appear
    /// later; the cleanup repeats the call to learn its ID, then deletes it.
    PendingVolume(Box<CreateVolumeRequest>),
    /// The same for CreateSnapshot.
    PendingSnapshot(Box<CreateSnapshotRequest>),
}

/// What csi-sanity's cleanup list (`Resources`) holds: an entry per successful
/// CreateVolume, per successful ControllerPublishVolume naming a volume and a node,
/// and per successful CreateSnapshot; a successful delete removes the first entry
/// with the ID. The bench keeps the same list for the checks that stand for
/// csi-sanity's specs, so that their cleanup makes the calls csi-sanity's does.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Registered {
    Volume { id: String, node: Option<String> },
    Snapshot(String),
}

impl Registered {
    fn id(&self) -> &str {
        match self {
            Registered::Volume { id, .. } | Registered::Snapshot(id) => id,
        }
    }
}

/// How a check's leftovers are undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupStyle {
    /// As csi-sanity's `Resources.Cleanup`, for a check that stands for one of its
    /// specs: newest entry first, each volume NodeUnpublished at the target path
    /// and NodeUnstaged at the staging path (`node`: csi-sanity's ExpandVolume and
    /// ModifyVolume specs have no node client and skip both; NotFound is fine),
    /// ControllerUnpublished from the node it was published to, then deleted;
    /// each snapshot deleted. Any other error fails the check, as csi-sanity's
    /// `resource cleanup failed`. The bench's own undo then removes whatever is
    /// still left (a publish at another path, a create that answered late).
    Sanity { node: bool },
    /// The bench's own: what the check made, undone newest first.
    Bench,
}

/// What a cleanup found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanupOutcome {
    /// Errors of csi-sanity's cleanup calls ([`CleanupStyle::Sanity`]): they fail
    /// the check, as they fail csi-sanity's spec.
    pub failed: Vec<String>,
    /// What could not be undone.
    pub leftovers: Vec<String>,
}

impl Ctx {
    // Bookkeeping for the cleanup.

    /// Records `r` for the cleanup (and in csi-sanity's list, as its wrappers do).
    pub fn track(&self, r: Resource) {
        let reg = match &r {
            Resource::Volume(id) => Some(Registered::Volume {
                id: id.clone(),
                node: None,
            }),
            Resource::ControllerPublish { volume, node }
                if !volume.is_empty() && !node.is_empty() =>
            {
                Some(Registered::Volume {
                    id: volume.clone(),
                    node: Some(node.clone()),
                })
            }
            Resource::Snapshot(id) => Some(Registered::Snapshot(id.clone())),
            _ => None,
        };
        if let Some(reg) = reg {
            self.registered().push(reg);
        }
        self.created().push(r);
    }
    /// `r` was undone by the check. A deleted volume or snapshot also leaves
    /// csi-sanity's list (its first entry with the ID, as csi-sanity removes it);
    /// an unpublish does not (csi-sanity's cleanup repeats it).
    pub fn forget(&self, r: &Resource) {
        if let Resource::Volume(id) | Resource::Snapshot(id) = r {
            let mut reg = self.registered();
            if let Some(i) = reg.iter().position(|x| x.id() == id) {
                reg.remove(i);
            }
        }
        let mut v = self.created();
        if let Some(i) = v.iter().rposition(|x| x == r) {
            v.remove(i);
        }
    }
    fn registered(&self) -> std::sync::MutexGuard<'_, Vec<Registered>> {
        self.scratch
            .registered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    /// How many calls were repeated after an Aborted answer so far.
    fn created(&self) -> std::sync::MutexGuard<'_, Vec<Resource>> {
        // A panicking check leaves a consistent list (pushes and removes are atomic).
        self.scratch
            .created
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    /// Whether the check made `r` (and has not undone it).
    pub fn made(&self, r: &Resource) -> bool {
        self.created().contains(r)
    }
    pub fn take_created(&self) -> Vec<Resource> {
        std::mem::take(&mut *self.created())
    }

    /// Undoes what the check left behind, in `style` (retrying Aborted answers as
    /// `--aborted-retry` allows).
    pub async fn cleanup(&self, style: CleanupStyle) -> CleanupOutcome {
        let mut out = CleanupOutcome::default();
        let (mut gone_volumes, mut gone_snapshots) = (HashSet::new(), HashSet::new());
        let mut node_cleaned = false;
        if let CleanupStyle::Sanity { node } = style {
            node_cleaned = node;
            let registered = std::mem::take(&mut *self.registered());
            for r in registered.into_iter().rev() {
                match r {
                    Registered::Volume {
                        id,
                        node: published,
                    } => {
                        let ok = self
                            .sanity_cleanup_volume(&id, published.as_deref(), node, &mut out.failed)
                            .await;
                        if ok {
                            gone_volumes.insert(id);
                        }
                    }
                    Registered::Snapshot(id) => {
                        let req = self.delete_snapshot_req(&id);
                        let r = self
                            .retrying(|| {
                                let (mut c, req) = (self.ctrl(), req.clone());
                                async move { c.delete_snapshot(req).await }
                            })
                            .await;
                        match r {
                            Ok(_) => {
                                gone_snapshots.insert(id);
                            }
                            Err(e) => out.failed.push(format!(
                                "DeleteSnapshot for snapshot ID {id} failed: {}",
                                describe(&e)
                            )),
                        }
                    }
                }
            }
        }
        let staging = self.staging();
        let target = self.target();
        for r in self.take_created().into_iter().rev() {
            // What csi-sanity's cleanup undid already.
            let done = match &r {
                Resource::Volume(id) | Resource::ControllerPublish { volume: id, .. } => {
                    gone_volumes.contains(id)
                }
                Resource::Snapshot(id) => gone_snapshots.contains(id),
                Resource::Publish { volume, path } => {
                    node_cleaned && *path == target && gone_volumes.contains(volume)
                }
                Resource::Stage { volume, path } => {
                    node_cleaned && *path == staging && gone_volumes.contains(volume)
                }
                _ => false,
            };
            if done {
                continue;
            }
            let (what, result) = self.undo(r).await;
            match result {
                // Gone already: nothing to undo.
                Err(e) if e.code() == Code::NotFound => {}
                Err(e) => out.leftovers.push(format!("{what}: {}", describe(&e))),
                Ok(()) => {}
            }
        }
        out
    }

    /// csi-sanity's `cleanupVolume`; appends its errors to `failed` and returns
    /// whether the volume was deleted.
    async fn sanity_cleanup_volume(
        &self,
        id: &str,
        published: Option<&str>,
        node: bool,
        failed: &mut Vec<String>,
    ) -> bool {
        // csi-sanity ignores NotFound from the node calls ("isRelevantError").
        let relevant = |r: Result<(), Status>| r.err().filter(|e| e.code() != Code::NotFound);
        if node {
            let req = NodeUnpublishVolumeRequest {
                volume_id: id.to_owned(),
                target_path: self.target(),
            };
            let r = self
                .retrying(|| {
                    let (mut c, req) = (self.node(), req.clone());
                    async move { c.node_unpublish_volume(req).await }
                })
                .await;
            if let Some(e) = relevant(r.map(drop)) {
                failed.push(format!(
                    "NodeUnpublishVolume for volume ID {id} failed: {}",
                    describe(&e)
                ));
            }
            match self.has_node(node_service_capability::rpc::Type::StageUnstageVolume) {
                Ok(true) => {
                    let req = self.unstage_req(id);
                    let r = self
                        .retrying(|| {
                            let (mut c, req) = (self.node(), req.clone());
                            async move { c.node_unstage_volume(req).await }
                        })
                        .await;
                    if let Some(e) = relevant(r.map(drop)) {
                        failed.push(format!(
                            "NodeUnstageVolume for volume ID {id} failed: {}",
                            describe(&e)
                        ));
                    }
                }
                Ok(false) => {}
                Err(Verdict::Fail(m) | Verdict::Skip(m)) => failed.push(m),
            }
        }
        if let Some(n) = published {
            let req = self.controller_unpublish_req(id, n);
            let r = self
                .retrying(|| {
                    let (mut c, req) = (self.ctrl(), req.clone());
                    async move { c.controller_unpublish_volume(req).await }
                })
                .await;
            if let Err(e) = r {
                failed.push(format!(
                    "ControllerUnpublishVolume for volume ID {id} failed: {}",
                    describe(&e)
                ));
            }
        }
        let req = self.delete_req(id);
        let r = self
            .retrying(|| {
                let (mut c, req) = (self.ctrl(), req.clone());
                async move { c.delete_volume(req).await }
            })
            .await;
        match r {
            Ok(_) => true,
            Err(e) => {
                failed.push(format!(
                    "DeleteVolume for volume ID {id} failed: {}",
                    describe(&e)
                ));
                false
            }
        }
    }

    async fn undo(&self, r: Resource) -> (String, Result<(), Status>) {
        let node = self.node();
        let ctrl = self.ctrl();
        match r {
            Resource::Publish { volume, path } => {
                let req = NodeUnpublishVolumeRequest {
                    volume_id: volume.clone(),
                    target_path: path.clone(),
                };
                let r = self
                    .undo_retrying(|| {
                        let (mut c, req) = (node.clone(), req.clone());
                        async move { c.node_unpublish_volume(req).await }
                    })
                    .await;
                (format!("NodeUnpublishVolume {volume} {path}"), r.map(drop))
            }
            Resource::Stage { volume, path } => {
                let req = NodeUnstageVolumeRequest {
                    volume_id: volume.clone(),
                    staging_target_path: path.clone(),
                };
                let r = self
                    .undo_retrying(|| {
                        let (mut c, req) = (node.clone(), req.clone());
                        async move { c.node_unstage_volume(req).await }
                    })
                    .await;
                (format!("NodeUnstageVolume {volume} {path}"), r.map(drop))
            }
            Resource::ControllerPublish { volume, node: n } => {
                let req = self.controller_unpublish_req(&volume, &n);
                let r = self
                    .undo_retrying(|| {
                        let (mut c, req) = (ctrl.clone(), req.clone());
                        async move { c.controller_unpublish_volume(req).await }
                    })
                    .await;
                (format!("ControllerUnpublishVolume {volume}"), r.map(drop))
            }
            Resource::Snapshot(id) => {
                let req = self.delete_snapshot_req(&id);
                let r = self
                    .undo_retrying(|| {
                        let (mut c, req) = (ctrl.clone(), req.clone());
                        async move { c.delete_snapshot(req).await }
                    })
                    .await;
                (format!("DeleteSnapshot {id}"), r.map(drop))
            }
            Resource::GroupSnapshot(id, snaps) => {
                let req = DeleteVolumeGroupSnapshotRequest {
                    group_snapshot_id: id.clone(),
                    snapshot_ids: snaps,
                    secrets: self.secrets("DeleteVolumeGroupSnapshotSecret"),
                };
                let group = self.group();
                let r = self
                    .undo_retrying(|| {
                        let (mut c, req) = (group.clone(), req.clone());
                        async move { c.delete_volume_group_snapshot(req).await }
                    })
                    .await;
                (format!("DeleteVolumeGroupSnapshot {id}"), r.map(drop))
            }
            Resource::Volume(id) => {
                let req = self.delete_req(&id);
                let r = self
                    .undo_retrying(|| {
                        let (mut c, req) = (ctrl.clone(), req.clone());
                        async move { c.delete_volume(req).await }
                    })
                    .await;
                (format!("DeleteVolume {id}"), r.map(drop))
            }
            Resource::PendingVolume(req) => {
                let what = format!("CreateVolume {} (pending, to delete it)", req.name);
                let r = self
                    .undo_retrying(|| {
                        let (mut c, req) = (ctrl.clone(), (*req).clone());
                        async move { c.create_volume(req).await }
                    })
                    .await;
                match r {
                    Ok(v) => match v.into_inner().volume {
                        Some(v) => Box::pin(self.undo(Resource::Volume(v.volume_id))).await,
                        None => (what, Ok(())),
                    },
                    // Refused for good: nothing was created.
                    Err(e) if !maybe_pending(&e) => (what, Ok(())),
                    Err(e) => (what, Err(e)),
                }
            }
            Resource::PendingSnapshot(req) => {
                let what = format!("CreateSnapshot {} (pending, to delete it)", req.name);
                let r = self
                    .undo_retrying(|| {
                        let (mut c, req) = (ctrl.clone(), (*req).clone());
                        async move { c.create_snapshot(req).await }
                    })
                    .await;
                match r {
                    Ok(s) => match s.into_inner().snapshot {
                        Some(s) => Box::pin(self.undo(Resource::Snapshot(s.snapshot_id))).await,
                        None => (what, Ok(())),
                    },
                    Err(e) if !maybe_pending(&e) => (what, Ok(())),
                    Err(e) => (what, Err(e)),
                }
            }
        }
    }
}
