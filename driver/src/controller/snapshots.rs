//! CephFS snapshots: subvolume snapshots, reserved in the journal under their request
//! name so that CreateSnapshot is idempotent; listed and looked up through the journal.

use tonic::Status;

use super::{Cephfs, Place, parse_id, timestamp};
use crate::ceph::CephError;
use crate::csi::v1::*;
use crate::instance::credentials;
use crate::journal::Kind;
use crate::locks::Held;
use crate::status;
use crate::volume_id::CsiId;

impl Cephfs {
    pub(super) async fn snapshot_create(
        &self,
        req: CreateSnapshotRequest,
    ) -> Result<CreateSnapshotResponse, Status> {
        let creds = credentials(&req.secrets)?;
        let id = parse_id(&req.source_volume_id).ok_or_else(|| {
            Status::not_found(format!("volume '{}' not found", req.source_volume_id))
        })?;
        let (_, t) = self.driver.cluster(&id.cluster_id).map_err(|_| {
            Status::not_found(format!("volume '{}' not found", req.source_volume_id))
        })?;
        let (place, vol) = self
            .existing_volume(&req.source_volume_id, t, &creds)
            .await?;
        let journal = place.journal();
        let rec = match journal
            .lookup(Kind::Snapshot, &req.name)
            .await
            .map_err(|e| status::ceph("journal", &e))?
        {
            Some(r) if r.source.as_deref() != Some(req.source_volume_id.as_str()) => {
                return Err(Status::already_exists(format!(
                    "snapshot '{}' exists for another volume",
                    req.name
                )));
            }
            Some(r) => r,
            None => journal
                .reserve(
                    Kind::Snapshot,
                    &req.name,
                    "csi-snap-",
                    None,
                    Some(&req.source_volume_id),
                    Some(&vol.image),
                )
                .await
                .map_err(|e| status::ceph("journal reserve", &e))?,
        };
        let a = &place.admin;
        a.snapshot_create(&place.fs, place.group(), &vol.image, &rec.image)
            .await
            .map_err(|e| status::ceph("fs subvolume snapshot create", &e))?;
        let (created, _) = a
            .snapshot_info(&place.fs, place.group(), &vol.image, &rec.image)
            .await
            .map_err(|e| status::ceph("fs subvolume snapshot info", &e))?;
        let snap_id = CsiId::new(&id.cluster_id, place.fscid, &rec.uuid)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(CreateSnapshotResponse {
            snapshot: Some(Snapshot {
                size_bytes: vol.size.unwrap_or(0) as i64,
                snapshot_id: snap_id.to_string(),
                source_volume_id: req.source_volume_id.clone(),
                creation_time: timestamp(&created),
                ready_to_use: true,
                group_snapshot_id: String::new(),
                accessible_topology: Vec::new(),
            }),
        })
    }

    pub(super) async fn snapshot_delete(
        &self,
        req: DeleteSnapshotRequest,
    ) -> Result<DeleteSnapshotResponse, Status> {
        let Some(id) = parse_id(&req.snapshot_id) else {
            return Ok(DeleteSnapshotResponse {});
        };
        let creds = credentials(&req.secrets)?;
        let Ok((_, t)) = self.driver.cluster(&id.cluster_id) else {
            return Ok(DeleteSnapshotResponse {});
        };
        let Some(place) = self.place_by_id(&id, t, &creds).await? else {
            return Ok(DeleteSnapshotResponse {});
        };
        let journal = place.journal();
        let Some(rec) = journal
            .by_uuid(Kind::Snapshot, &id.uuid)
            .await
            .map_err(|e| status::ceph("journal", &e))?
        else {
            return Ok(DeleteSnapshotResponse {});
        };
        // As for volumes: a racing CreateSnapshot of the same name holds this lock.
        let _name = self.driver.locks.hold(Held::SnapshotName(&rec.name))?;
        let parent = rec.parent.clone().unwrap_or_default();
        // Clones from this snapshot that no CreateVolume will ever return would block
        // its removal (pending) or leak (complete): they go first.
        self.remove_orphaned_clones(&place, &req.snapshot_id, None)
            .await?;
        let a = &place.admin;
        match a
            .snapshot_info(&place.fs, place.group(), &parent, &rec.image)
            .await
        {
            Ok((_, true)) => {
                return Err(Status::failed_precondition(format!(
                    "snapshot {} has pending clones",
                    req.snapshot_id
                )));
            }
            Ok(_) => a
                .snapshot_rm(&place.fs, place.group(), &parent, &rec.image)
                .await
                .map_err(|e| status::ceph("fs subvolume snapshot rm", &e))?,
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(status::ceph("fs subvolume snapshot info", &e)),
        }
        journal
            .undo(Kind::Snapshot, &rec.name, &rec.uuid)
            .await
            .map_err(|e| status::ceph("journal undo", &e))?;
        Ok(DeleteSnapshotResponse {})
    }

    /// The snapshot with this UUID in `place`, as CSI describes it; `None` when the
    /// journal has no complete record or Ceph no longer has the snapshot.
    pub(super) async fn snapshot_entry(
        &self,
        place: &Place<'_>,
        cluster_id: &str,
        uuid: &str,
    ) -> Result<Option<Snapshot>, Status> {
        let Some(rec) = place
            .journal()
            .by_uuid(Kind::Snapshot, uuid)
            .await
            .map_err(|e| status::ceph("journal", &e))?
        else {
            return Ok(None);
        };
        let Ok(sid) = CsiId::new(cluster_id, place.fscid, uuid) else {
            return Ok(None);
        };
        let created = match place
            .admin
            .snapshot_info(
                &place.fs,
                place.group(),
                rec.parent.as_deref().unwrap_or(""),
                &rec.image,
            )
            .await
        {
            Ok((created, _)) => created,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(status::ceph("fs subvolume snapshot info", &e)),
        };
        Ok(Some(Snapshot {
            size_bytes: 0,
            snapshot_id: sid.to_string(),
            source_volume_id: rec.source.clone().unwrap_or_default(),
            creation_time: timestamp(&created),
            ready_to_use: true,
            group_snapshot_id: String::new(),
            accessible_topology: Vec::new(),
        }))
    }

    /// The snapshot a snapshot ID names, `None` for a malformed or unknown one.
    pub(super) async fn snapshot_by_id(
        &self,
        snapshot_id: &str,
        creds: &crate::ceph::Credentials,
    ) -> Result<Option<Snapshot>, Status> {
        let Some(id) = parse_id(snapshot_id) else {
            return Ok(None);
        };
        let Ok((_, t)) = self.driver.cluster(&id.cluster_id) else {
            return Ok(None);
        };
        let Some(place) = self.place_by_id(&id, t, creds).await? else {
            return Ok(None);
        };
        self.snapshot_entry(&place, &id.cluster_id, &id.uuid).await
    }

    pub(super) async fn snapshot_get(
        &self,
        req: GetSnapshotRequest,
    ) -> Result<GetSnapshotResponse, Status> {
        let creds = credentials(&req.secrets)?;
        match self.snapshot_by_id(&req.snapshot_id, &creds).await? {
            Some(s) => Ok(GetSnapshotResponse { snapshot: Some(s) }),
            None => Err(Status::not_found(format!(
                "snapshot {} does not exist",
                req.snapshot_id
            ))),
        }
    }

    pub(super) async fn snapshot_list(
        &self,
        req: ListSnapshotsRequest,
    ) -> Result<ListSnapshotsResponse, Status> {
        if req.max_entries < 0 {
            return Err(Status::invalid_argument("max_entries must not be negative"));
        }
        let creds = credentials(&req.secrets)?;
        // Entries come from every cluster and file system the credentials can see, in a
        // stable order; the token is the index of the next entry.
        let mut all: Vec<Snapshot> = Vec::new();
        if !req.snapshot_id.is_empty() {
            all.extend(
                self.snapshot_by_id(&req.snapshot_id, &creds)
                    .await?
                    .filter(|s| {
                        req.source_volume_id.is_empty()
                            || req.source_volume_id == s.source_volume_id
                    }),
            );
        } else {
            for cluster in &self.driver.config.clusters {
                let (_, t) = self.driver.cluster(&cluster.cluster_id)?;
                let admin = self.driver.admin(t, &creds);
                let fss = match admin.fs_names().await {
                    Ok(f) => f,
                    Err(CephError::Unauthorized { .. }) => continue,
                    Err(e) => return Err(status::ceph("fs ls", &e)),
                };
                for fs in fss {
                    let place = self
                        .place_by_name(&cluster.cluster_id, &fs, t, &creds)
                        .await?;
                    let (names, _) = place
                        .journal()
                        .list(Kind::Snapshot, "", usize::MAX >> 1)
                        .await
                        .map_err(|e| status::ceph("journal", &e))?;
                    for (_, uuid) in names {
                        if let Some(s) = self
                            .snapshot_entry(&place, &cluster.cluster_id, &uuid)
                            .await?
                            && (req.source_volume_id.is_empty()
                                || req.source_volume_id == s.source_volume_id)
                        {
                            all.push(s);
                        }
                    }
                }
            }
        }
        all.sort_by(|a, b| a.snapshot_id.cmp(&b.snapshot_id));
        let start = if req.starting_token.is_empty() {
            0
        } else {
            req.starting_token
                .parse::<usize>()
                .ok()
                .filter(|i| *i <= all.len())
                .ok_or_else(|| {
                    Status::aborted(format!("invalid starting_token '{}'", req.starting_token))
                })?
        };
        let max = if req.max_entries == 0 {
            usize::MAX
        } else {
            req.max_entries as usize
        };
        let end = start.saturating_add(max).min(all.len());
        let next = if end < all.len() {
            end.to_string()
        } else {
            String::new()
        };
        Ok(ListSnapshotsResponse {
            entries: all[start..end]
                .iter()
                .cloned()
                .map(|s| list_snapshots_response::Entry { snapshot: Some(s) })
                .collect(),
            next_token: next,
        })
    }
}
