//! The CSI Controller service: volumes are subvolumes in a subvolume group, snapshots are
//! subvolume snapshots, clones are `snapshot clone`s, and the RADOS journal makes every
//! create idempotent across retries and crashes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use crate::ceph::{Admin, CephError, CloneState, Transport, errno};
use crate::config::ClusterConfig;
use crate::csi::v1::controller_server::Controller;
use crate::csi::v1::*;
use crate::driver::{Driver, credentials, rpc, status};
use crate::journal::{Journal, Kind, Record};
use crate::volume_id::CsiId;
use crate::wait::{self, Backoff};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Rounds a requested size as ceph-csi does: below 1 MiB becomes 4 MiB; otherwise up to a
/// multiple of 4 MiB and, from 1 GiB on, up to a whole GiB. 0 (no capacity) stays 0: no
/// quota.
pub fn round_size(bytes: u64) -> u64 {
    if bytes == 0 {
        return 0;
    }
    if bytes < MIB {
        return 4 * MIB;
    }
    let r = bytes.div_ceil(4 * MIB) * 4 * MIB;
    if r >= GIB { r.div_ceil(GIB) * GIB } else { r }
}

/// The largest size [`round_size`] leaves as it is that is at most `limit`, if any (none
/// below 4 MiB).
fn largest_size_within(limit: u64) -> Option<u64> {
    if limit >= GIB {
        Some(limit / GIB * GIB)
    } else if limit >= 4 * MIB {
        Some(limit / (4 * MIB) * 4 * MIB)
    } else {
        None
    }
}

/// The size to create for a capacity range, or the spec's error. With only a limit, the
/// largest size within it: rounding the limit up could pass it, and CSI's OutOfRange is
/// for ranges no size satisfies.
fn requested_size(range: Option<&CapacityRange>) -> Result<u64, Status> {
    let Some(r) = range else { return Ok(0) };
    if r.required_bytes < 0 || r.limit_bytes < 0 {
        return Err(Status::invalid_argument("capacity must not be negative"));
    }
    let (req, limit) = (r.required_bytes as u64, r.limit_bytes as u64);
    if limit > 0 && req > limit {
        return Err(Status::invalid_argument(
            "required_bytes exceeds limit_bytes",
        ));
    }
    if req == 0 && limit > 0 {
        return largest_size_within(limit).ok_or_else(|| {
            Status::out_of_range(format!(
                "the smallest size this driver can create is {}, over the limit {limit}",
                4 * MIB
            ))
        });
    }
    let size = round_size(req);
    if limit > 0 && size > limit {
        // CSI spec: the plugin cannot satisfy the range.
        return Err(Status::out_of_range(format!(
            "the smallest size this driver can create for {req} bytes is {size}, over the limit {limit}"
        )));
    }
    Ok(size)
}

/// A ControllerGetCapabilities answer listing these RPC capabilities.
pub(crate) fn controller_capabilities(
    kinds: impl IntoIterator<Item = controller_service_capability::rpc::Type>,
) -> ControllerGetCapabilitiesResponse {
    use controller_service_capability::{Rpc, Type};
    ControllerGetCapabilitiesResponse {
        capabilities: kinds
            .into_iter()
            .map(|t| ControllerServiceCapability {
                r#type: Some(Type::Rpc(Rpc { r#type: t as i32 })),
            })
            .collect(),
    }
}

pub(crate) fn check_caps(caps: &[VolumeCapability]) -> Result<(), Status> {
    if caps.is_empty() {
        return Err(Status::invalid_argument("volume_capabilities missing"));
    }
    for c in caps {
        match &c.access_type {
            Some(volume_capability::AccessType::Mount(_)) => {}
            Some(volume_capability::AccessType::Block(_)) => {
                return Err(Status::invalid_argument(
                    "block volumes are not supported by CephFS",
                ));
            }
            None => return Err(Status::invalid_argument("access_type missing")),
        }
        match c.access_mode.as_ref().map(|m| m.mode()) {
            None => return Err(Status::invalid_argument("access_mode missing")),
            Some(volume_capability::access_mode::Mode::Unknown) => {
                return Err(Status::invalid_argument("access_mode is UNKNOWN"));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn param<'a>(p: &'a HashMap<String, String>, key: &str) -> Result<&'a str, Status> {
    p.get(key)
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Status::invalid_argument(format!("parameter '{key}' missing")))
}

/// Parses a volume or snapshot ID; `None` if malformed.
fn parse_id(id: &str) -> Option<CsiId> {
    id.parse().ok()
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC, as Ceph writes it) as a protobuf timestamp.
fn timestamp(s: &str) -> Option<prost_types::Timestamp> {
    crate::timefmt::parse_utc(s)
}

/// Where a volume lives: its cluster, file system and journal.
struct Place<'a> {
    cluster: &'a ClusterConfig,
    admin: Admin<'a>,
    fs: String,
    fscid: i64,
    pool: String,
}

impl Place<'_> {
    fn journal(&self) -> Journal<'_> {
        Journal {
            admin: self.admin,
            pool: &self.pool,
            ns: &self.cluster.ceph_fs.rados_namespace,
            instance: "default",
        }
    }

    fn group(&self) -> &str {
        &self.cluster.ceph_fs.subvolume_group
    }
}

/// What a controller operation locks (`Locks`: held for the RPC, refused while held).
/// A volume's request name is locked by CreateVolume and also by DeleteVolume and the
/// removal of an orphaned clone, so that a retried create and a deletion of the same
/// volume exclude each other; likewise a snapshot's name. IDs guard the operations that
/// name an existing volume or snapshot. Each kind has its own keys.
enum Held<'a> {
    VolumeName(&'a str),
    SnapshotName(&'a str),
    Id(&'a str),
}

/// The Controller service of a driver.
#[derive(Debug, Clone)]
pub struct ControllerService {
    driver: Arc<Driver>,
}

impl ControllerService {
    /// The service of a driver.
    pub fn new(driver: Arc<Driver>) -> Self {
        Self { driver }
    }

    /// Takes `what`'s lock, or answers Aborted (CSI: an operation is pending on it).
    fn lock(&self, what: Held<'_>) -> Result<crate::locks::Guard, Status> {
        let (key, shown) = match what {
            Held::VolumeName(n) => (format!("volume-name/{n}"), format!("volume '{n}'")),
            Held::SnapshotName(n) => (format!("snapshot-name/{n}"), format!("snapshot '{n}'")),
            Held::Id(id) => (format!("id/{id}"), format!("'{id}'")),
        };
        self.driver.locks.try_lock(&key).ok_or_else(|| {
            Status::aborted(format!("an operation on {shown} is in progress; retry"))
        })
    }

    async fn place_by_name<'a>(
        &'a self,
        cluster_id: &str,
        fs: &str,
        t: &'a dyn Transport,
        creds: &'a crate::ceph::Credentials,
    ) -> Result<Place<'a>, Status> {
        let (cluster, _) = self.driver.cluster(cluster_id)?;
        let admin = self.driver.admin(t, creds);
        let (fscid, pool) = self
            .driver
            .fs_by_name(cluster_id, &admin, fs)
            .await
            .map_err(|e| {
                if e.is_not_found() {
                    Status::invalid_argument(format!("file system '{fs}' not found"))
                } else {
                    status("fs dump", &e)
                }
            })?;
        Ok(Place {
            cluster,
            admin,
            fs: fs.to_owned(),
            fscid,
            pool,
        })
    }

    /// The place of an existing ID; `Ok(None)` when its cluster or file system is gone.
    async fn place_by_id<'a>(
        &'a self,
        id: &CsiId,
        t: &'a dyn Transport,
        creds: &'a crate::ceph::Credentials,
    ) -> Result<Option<Place<'a>>, Status> {
        let Some(cluster) = self.driver.config.cluster(&id.cluster_id) else {
            return Ok(None);
        };
        let admin = self.driver.admin(t, creds);
        let (fs, pool) = match self
            .driver
            .fs_by_id(&id.cluster_id, &admin, id.location_id)
            .await
        {
            Ok(f) => f,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(status("fs dump", &e)),
        };
        Ok(Some(Place {
            cluster,
            admin,
            fs,
            fscid: id.location_id,
            pool,
        }))
    }

    /// Makes sure the (empty) subvolume of a reservation exists; its path.
    async fn ensure_subvolume(
        &self,
        place: &Place<'_>,
        r: &Record,
        size: u64,
        pool_layout: Option<&str>,
        fresh: bool,
    ) -> Result<String, Status> {
        let (fs, group, a) = (&place.fs, place.group(), &place.admin);
        // A reservation made just now has no subvolume yet; an older one may.
        if !fresh {
            match a.subvolume_getpath(fs, group, &r.image).await {
                Ok(p) => return Ok(p),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(status("fs subvolume getpath", &e)),
            }
        }
        a.subvolume_create(fs, group, &r.image, size, pool_layout)
            .await
            .map_err(|e| status("fs subvolume create", &e))?;
        a.subvolume_getpath(fs, group, &r.image)
            .await
            .map_err(|e| status("fs subvolume getpath", &e))
    }

    /// Makes sure the clone of a reservation exists and is complete, waiting for it
    /// within this RPC up to `wait`; its path. A clone still unfinished after that
    /// answers Aborted, and the retry finds it and waits again.
    ///
    /// A clone comes from a snapshot, or from a volume through a temporary snapshot
    /// named after the new subvolume (as ceph-csi does). The journal lists it as
    /// unfinished from before it starts until just before it is returned, so that a
    /// clone whose CreateVolume is never retried is found again when its source is
    /// deleted (`remove_orphaned_clones`).
    async fn ensure_clone(
        &self,
        place: &Place<'_>,
        r: &Record,
        size: u64,
        pool_layout: Option<&str>,
        source: &Source,
        wait: Duration,
    ) -> Result<String, Status> {
        let (fs, group, a) = (&place.fs, place.group(), &place.admin);
        let journal = place.journal();
        let (parent, snap) = match source {
            Source::Snapshot { parent, snap, .. } => (parent.as_str(), snap.as_str()),
            Source::Volume { image, .. } => (image.as_str(), r.image.as_str()),
        };
        // Steps of at most 1 s: a clone of a small volume takes seconds on real Ceph (an
        // empty one about 7 s on Pacific here), and a check costs one mgr command.
        let mut backoff = Backoff::new(wait).with_longest_step(Duration::from_secs(1));
        loop {
            let state = match a.clone_status(fs, group, &r.image).await {
                Err(e) if e.is_not_found() => {
                    journal
                        .clone_started(&r.uuid, source.id())
                        .await
                        .map_err(|e| status("journal", &e))?;
                    if matches!(source, Source::Volume { .. }) {
                        a.snapshot_create(fs, group, parent, snap)
                            .await
                            .map_err(|e| status("fs subvolume snapshot create", &e))?;
                    }
                    match a
                        .snapshot_clone(fs, group, parent, snap, &r.image, pool_layout)
                        .await
                    {
                        Ok(()) => {}
                        Err(e) if e.errno() == Some(errno::EAGAIN) => {
                            return Err(Status::resource_exhausted(format!(
                                "clone of {parent}: all cloners are busy, retry later ({e})"
                            )));
                        }
                        Err(e) => return Err(status("fs subvolume snapshot clone", &e)),
                    }
                    "pending"
                }
                Err(e) => return Err(status("fs clone status", &e)),
                Ok(CloneState::Pending) => "pending",
                Ok(CloneState::InProgress) => "in progress",
                Ok(CloneState::Failed(why)) => {
                    // Remove the failed clone so that the retry starts a new one; the
                    // reservation (and the temporary snapshot) stay for it.
                    match a.subvolume_rm(fs, group, &r.image, true).await {
                        Ok(()) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(status("fs subvolume rm", &e)),
                    }
                    return Err(Status::internal(format!(
                        "clone from {} failed ({why}); it was removed, and a retry starts a new one",
                        source.id()
                    )));
                }
                Ok(CloneState::Complete) => {
                    if matches!(source, Source::Volume { .. }) {
                        // Forced: on a retry after a crash it may be gone already.
                        a.snapshot_rm(fs, group, parent, snap)
                            .await
                            .map_err(|e| status("fs subvolume snapshot rm", &e))?;
                    }
                    if size > 0 {
                        a.subvolume_resize(fs, group, &r.image, size)
                            .await
                            .map_err(|e| status("fs subvolume resize", &e))?;
                    }
                    let path = a
                        .subvolume_getpath(fs, group, &r.image)
                        .await
                        .map_err(|e| status("fs subvolume getpath", &e))?;
                    journal
                        .clone_finished(&r.uuid)
                        .await
                        .map_err(|e| status("journal", &e))?;
                    return Ok(path);
                }
            };
            if !backoff.wait().await {
                return Err(Status::aborted(format!(
                    "clone from {} is still {state} after {wait:?}; retry to keep waiting",
                    source.id()
                )));
            }
        }
    }

    /// Removes the clones of a source that is being deleted whose CreateVolume never
    /// returned them: their subvolume (a pending one is canceled first), the temporary
    /// snapshot of a volume source (`parent_image`), and their reservation. Such a clone
    /// belongs to no PV: its PVC was deleted while it was pending, and the provisioner
    /// stopped retrying without calling DeleteVolume. Kubernetes keeps a source from
    /// being deleted while a PVC is still provisioned from it, so a clone left here is
    /// one nobody waits for. A clone whose CreateVolume is in flight right now holds its
    /// name's lock: the deletion answers Aborted and its retry looks again.
    async fn remove_orphaned_clones(
        &self,
        place: &Place<'_>,
        source_id: &str,
        parent_image: Option<&str>,
    ) -> Result<usize, Status> {
        let (fs, group, a) = (&place.fs, place.group(), &place.admin);
        let journal = place.journal();
        let mut removed = 0;
        for uuid in journal
            .clones_of(source_id)
            .await
            .map_err(|e| status("journal", &e))?
        {
            let Some(rec) = journal
                .by_uuid(Kind::Volume, &uuid)
                .await
                .map_err(|e| status("journal", &e))?
            else {
                journal
                    .clone_finished(&uuid)
                    .await
                    .map_err(|e| status("journal", &e))?;
                continue;
            };
            let _guard = self.lock(Held::VolumeName(&rec.name))?;
            // Under the lock: it may have been returned since the listing.
            if !journal
                .clone_listed(&uuid)
                .await
                .map_err(|e| status("journal", &e))?
            {
                continue;
            }
            if let Ok(CloneState::Pending | CloneState::InProgress) =
                a.clone_status(fs, group, &rec.image).await
            {
                match a.clone_cancel(fs, group, &rec.image).await {
                    Ok(()) => {}
                    // Finished or gone meanwhile: removed below all the same.
                    Err(e) if e.is_not_found() || e.errno() == Some(errno::EINVAL) => {}
                    Err(e) => return Err(status("fs clone cancel", &e)),
                }
            }
            match a.subvolume_rm(fs, group, &rec.image, true).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(status("fs subvolume rm", &e)),
            }
            if let Some(p) = parent_image {
                a.snapshot_rm(fs, group, p, &rec.image)
                    .await
                    .map_err(|e| status("fs subvolume snapshot rm", &e))?;
            }
            journal
                .undo(Kind::Volume, &rec.name, &uuid)
                .await
                .map_err(|e| status("journal undo", &e))?;
            journal
                .clone_finished(&uuid)
                .await
                .map_err(|e| status("journal", &e))?;
            tracing::info!(
                clone = %rec.image,
                source = source_id,
                "removed a clone whose CreateVolume never returned it"
            );
            removed += 1;
        }
        Ok(removed)
    }

    async fn create_volume(
        &self,
        req: CreateVolumeRequest,
        wait: Duration,
    ) -> Result<CreateVolumeResponse, Status> {
        if req.name.is_empty() {
            return Err(Status::invalid_argument("name missing"));
        }
        check_caps(&req.volume_capabilities)?;
        let params = &req.parameters;
        let cluster_id = param(params, "clusterID")?;
        let fs = param(params, "fsName")?;
        let creds = credentials(&req.secrets)?;
        let size = requested_size(req.capacity_range.as_ref())?;
        let _guard = self.lock(Held::VolumeName(&req.name))?;
        let (_, t) = self.driver.cluster(cluster_id)?;
        let place = self.place_by_name(cluster_id, fs, t, &creds).await?;
        let journal = place.journal();
        let (source, source_id) = self
            .resolve_source(&place, req.volume_content_source.as_ref())
            .await?;
        let prefix = params
            .get("volumeNamePrefix")
            .filter(|p| !p.is_empty())
            .map_or("csi-vol-", String::as_str);
        let pool_layout = params
            .get("pool")
            .map(String::as_str)
            .filter(|p| !p.is_empty());
        let mut fresh = false;
        let record = match journal
            .lookup(Kind::Volume, &req.name)
            .await
            .map_err(|e| status("journal", &e))?
        {
            Some(r) => {
                if r.size != Some(size) {
                    return Err(Status::already_exists(format!(
                        "volume '{}' exists with another size",
                        req.name
                    )));
                }
                if r.source != source_id {
                    return Err(Status::already_exists(format!(
                        "volume '{}' exists with another content source",
                        req.name
                    )));
                }
                r
            }
            None => {
                fresh = true;
                journal
                    .reserve(
                        Kind::Volume,
                        &req.name,
                        prefix,
                        Some(size),
                        source_id.as_deref(),
                        None,
                    )
                    .await
                    .map_err(|e| status("journal reserve", &e))?
            }
        };
        let made = match &source {
            Some(src) => {
                self.ensure_clone(&place, &record, size, pool_layout, src, wait)
                    .await
            }
            None => {
                self.ensure_subvolume(&place, &record, size, pool_layout, fresh)
                    .await
            }
        };
        let path = match made {
            Ok(p) => p,
            Err(s) => {
                // A request Ceph refuses outright (a bad pool, say) leaves nothing behind;
                // anything that may still succeed keeps its reservation for the retry.
                if matches!(
                    s.code(),
                    tonic::Code::InvalidArgument | tonic::Code::PermissionDenied
                ) {
                    let _ = journal.undo(Kind::Volume, &req.name, &record.uuid).await;
                }
                return Err(s);
            }
        };
        let id = CsiId::new(cluster_id, place.fscid, &record.uuid)
            .map_err(|e| Status::internal(e.to_string()))?;
        let mut ctx: HashMap<String, String> = params
            .iter()
            .filter(|(k, _)| !k.starts_with("csi.storage.k8s.io/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        ctx.insert("subvolumeName".into(), record.image.clone());
        ctx.insert("subvolumePath".into(), path);
        ctx.insert("monitors".into(), place.cluster.monitors.join(","));
        Ok(CreateVolumeResponse {
            volume: Some(Volume {
                capacity_bytes: size as i64,
                volume_id: id.to_string(),
                volume_context: ctx,
                content_source: req.volume_content_source.clone(),
                accessible_topology: vec![],
            }),
        })
    }

    async fn resolve_source(
        &self,
        place: &Place<'_>,
        src: Option<&VolumeContentSource>,
    ) -> Result<(Option<Source>, Option<String>), Status> {
        let Some(src) = src.and_then(|s| s.r#type.as_ref()) else {
            return Ok((None, None));
        };
        let journal = place.journal();
        match src {
            volume_content_source::Type::Snapshot(s) => {
                let rec = match parse_id(&s.snapshot_id) {
                    Some(id)
                        if id.cluster_id == place.cluster.cluster_id
                            && id.location_id == place.fscid =>
                    {
                        journal
                            .by_uuid(Kind::Snapshot, &id.uuid)
                            .await
                            .map_err(|e| status("journal", &e))?
                    }
                    _ => None,
                };
                let rec = rec.ok_or_else(|| {
                    Status::not_found(format!("snapshot '{}' not found", s.snapshot_id))
                })?;
                let parent = rec.parent.clone().unwrap_or_default();
                match place
                    .admin
                    .snapshot_info(&place.fs, place.group(), &parent, &rec.image)
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {
                        return Err(Status::not_found(format!(
                            "snapshot '{}' not found",
                            s.snapshot_id
                        )));
                    }
                    Err(e) => return Err(status("fs subvolume snapshot info", &e)),
                }
                Ok((
                    Some(Source::Snapshot {
                        parent,
                        snap: rec.image,
                        id: s.snapshot_id.clone(),
                    }),
                    Some(s.snapshot_id.clone()),
                ))
            }
            volume_content_source::Type::Volume(v) => {
                let rec = match parse_id(&v.volume_id) {
                    Some(id)
                        if id.cluster_id == place.cluster.cluster_id
                            && id.location_id == place.fscid =>
                    {
                        journal
                            .by_uuid(Kind::Volume, &id.uuid)
                            .await
                            .map_err(|e| status("journal", &e))?
                    }
                    _ => None,
                };
                let rec = rec.ok_or_else(|| {
                    Status::not_found(format!("volume '{}' not found", v.volume_id))
                })?;
                Ok((
                    Some(Source::Volume {
                        image: rec.image,
                        id: v.volume_id.clone(),
                    }),
                    Some(v.volume_id.clone()),
                ))
            }
        }
    }

    async fn delete_volume(
        &self,
        req: DeleteVolumeRequest,
    ) -> Result<DeleteVolumeResponse, Status> {
        if req.volume_id.is_empty() {
            return Err(Status::invalid_argument("volume_id missing"));
        }
        // CSI spec: deleting a volume that does not exist (or cannot) succeeds.
        let Some(id) = parse_id(&req.volume_id) else {
            return Ok(DeleteVolumeResponse {});
        };
        let creds = credentials(&req.secrets)?;
        let Ok((_, t)) = self.driver.cluster(&id.cluster_id) else {
            return Ok(DeleteVolumeResponse {});
        };
        let _guard = self.lock(Held::Id(&req.volume_id))?;
        let Some(place) = self.place_by_id(&id, t, &creds).await? else {
            return Ok(DeleteVolumeResponse {});
        };
        let journal = place.journal();
        let Some(rec) = journal
            .by_uuid(Kind::Volume, &id.uuid)
            .await
            .map_err(|e| status("journal", &e))?
        else {
            return Ok(DeleteVolumeResponse {});
        };
        // A CreateVolume of the same name (a retry racing this deletion) would make the
        // subvolume again after it is removed here, and leave it without its journal
        // entry: the two exclude each other through the name's lock.
        let _name = self.lock(Held::VolumeName(&rec.name))?;
        let rm = || {
            place
                .admin
                .subvolume_rm(&place.fs, place.group(), &rec.image, true)
        };
        let mut result = rm().await;
        if matches!(&result, Err(e) if e.errno() == Some(errno::ENOTEMPTY))
            // The temporary snapshot of a clone that no CreateVolume will ever return
            // holds the volume: remove that clone, then try again.
            && self
                .remove_orphaned_clones(&place, &req.volume_id, Some(&rec.image))
                .await?
                > 0
        {
            result = rm().await;
        }
        match result {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) if e.errno() == Some(errno::ENOTEMPTY) => {
                return Err(Status::failed_precondition(format!(
                    "volume {} has snapshots; delete them first",
                    req.volume_id
                )));
            }
            Err(e) => return Err(status("fs subvolume rm", &e)),
        }
        journal
            .undo(Kind::Volume, &rec.name, &rec.uuid)
            .await
            .map_err(|e| status("journal undo", &e))?;
        Ok(DeleteVolumeResponse {})
    }

    /// The record of an existing volume, or NotFound.
    async fn existing_volume<'a>(
        &'a self,
        volume_id: &str,
        t: &'a dyn Transport,
        creds: &'a crate::ceph::Credentials,
    ) -> Result<(Place<'a>, Record), Status> {
        let not_found = || Status::not_found(format!("volume '{volume_id}' not found"));
        let id = parse_id(volume_id).ok_or_else(not_found)?;
        let place = self
            .place_by_id(&id, t, creds)
            .await?
            .ok_or_else(not_found)?;
        let rec = place
            .journal()
            .by_uuid(Kind::Volume, &id.uuid)
            .await
            .map_err(|e| status("journal", &e))?
            .ok_or_else(not_found)?;
        match place
            .admin
            .subvolume_info(&place.fs, place.group(), &rec.image)
            .await
        {
            Ok(_) => Ok((place, rec)),
            Err(e) if e.is_not_found() => Err(not_found()),
            Err(e) if e.errno() == Some(errno::EAGAIN) => Ok((place, rec)),
            Err(e) => Err(status("fs subvolume info", &e)),
        }
    }

    async fn validate(
        &self,
        req: ValidateVolumeCapabilitiesRequest,
    ) -> Result<ValidateVolumeCapabilitiesResponse, Status> {
        if req.volume_id.is_empty() {
            return Err(Status::invalid_argument("volume_id missing"));
        }
        if req.volume_capabilities.is_empty() {
            return Err(Status::invalid_argument("volume_capabilities missing"));
        }
        let id = parse_id(&req.volume_id)
            .ok_or_else(|| Status::not_found(format!("volume '{}' not found", req.volume_id)))?;
        if let Ok(creds) = credentials(&req.secrets) {
            let (_, t) = self
                .driver
                .cluster(&id.cluster_id)
                .map_err(|_| Status::not_found(format!("volume '{}' not found", req.volume_id)))?;
            self.existing_volume(&req.volume_id, t, &creds).await?;
        }
        let supported = check_caps(&req.volume_capabilities).is_ok();
        Ok(ValidateVolumeCapabilitiesResponse {
            confirmed: supported.then(|| validate_volume_capabilities_response::Confirmed {
                volume_context: req.volume_context.clone(),
                volume_capabilities: req.volume_capabilities.clone(),
                parameters: req.parameters.clone(),
                mutable_parameters: Default::default(),
            }),
            message: if supported {
                String::new()
            } else {
                "block volumes are not supported".into()
            },
        })
    }

    async fn expand(
        &self,
        req: ControllerExpandVolumeRequest,
    ) -> Result<ControllerExpandVolumeResponse, Status> {
        if req.volume_id.is_empty() {
            return Err(Status::invalid_argument("volume_id missing"));
        }
        let range = req
            .capacity_range
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("capacity_range missing"))?;
        let size = requested_size(Some(range))?;
        let id = parse_id(&req.volume_id)
            .ok_or_else(|| Status::not_found(format!("volume '{}' not found", req.volume_id)))?;
        let creds = credentials(&req.secrets)?;
        let (_, t) = self
            .driver
            .cluster(&id.cluster_id)
            .map_err(|_| Status::not_found(format!("volume '{}' not found", req.volume_id)))?;
        let _guard = self.lock(Held::Id(&req.volume_id))?;
        let (place, rec) = self.existing_volume(&req.volume_id, t, &creds).await?;
        if size > 0 {
            match place
                .admin
                .subvolume_resize(&place.fs, place.group(), &rec.image, size)
                .await
            {
                Ok(()) => {}
                Err(e) if e.errno() == Some(errno::EINVAL) => {
                    return Err(Status::out_of_range(format!("cannot resize: {e}")));
                }
                Err(e) => return Err(status("fs subvolume resize", &e)),
            }
        }
        Ok(ControllerExpandVolumeResponse {
            capacity_bytes: size as i64,
            node_expansion_required: false,
        })
    }

    async fn create_snapshot(
        &self,
        req: CreateSnapshotRequest,
    ) -> Result<CreateSnapshotResponse, Status> {
        if req.name.is_empty() {
            return Err(Status::invalid_argument("name missing"));
        }
        if req.source_volume_id.is_empty() {
            return Err(Status::invalid_argument("source_volume_id missing"));
        }
        let creds = credentials(&req.secrets)?;
        let id = parse_id(&req.source_volume_id).ok_or_else(|| {
            Status::not_found(format!("volume '{}' not found", req.source_volume_id))
        })?;
        let (_, t) = self.driver.cluster(&id.cluster_id).map_err(|_| {
            Status::not_found(format!("volume '{}' not found", req.source_volume_id))
        })?;
        let _guard = self.lock(Held::SnapshotName(&req.name))?;
        let (place, vol) = self
            .existing_volume(&req.source_volume_id, t, &creds)
            .await?;
        let journal = place.journal();
        let rec = match journal
            .lookup(Kind::Snapshot, &req.name)
            .await
            .map_err(|e| status("journal", &e))?
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
                .map_err(|e| status("journal reserve", &e))?,
        };
        let a = &place.admin;
        a.snapshot_create(&place.fs, place.group(), &vol.image, &rec.image)
            .await
            .map_err(|e| status("fs subvolume snapshot create", &e))?;
        let (created, _) = a
            .snapshot_info(&place.fs, place.group(), &vol.image, &rec.image)
            .await
            .map_err(|e| status("fs subvolume snapshot info", &e))?;
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

    async fn delete_snapshot(
        &self,
        req: DeleteSnapshotRequest,
    ) -> Result<DeleteSnapshotResponse, Status> {
        if req.snapshot_id.is_empty() {
            return Err(Status::invalid_argument("snapshot_id missing"));
        }
        let Some(id) = parse_id(&req.snapshot_id) else {
            return Ok(DeleteSnapshotResponse {});
        };
        let creds = credentials(&req.secrets)?;
        let Ok((_, t)) = self.driver.cluster(&id.cluster_id) else {
            return Ok(DeleteSnapshotResponse {});
        };
        let _guard = self.lock(Held::Id(&req.snapshot_id))?;
        let Some(place) = self.place_by_id(&id, t, &creds).await? else {
            return Ok(DeleteSnapshotResponse {});
        };
        let journal = place.journal();
        let Some(rec) = journal
            .by_uuid(Kind::Snapshot, &id.uuid)
            .await
            .map_err(|e| status("journal", &e))?
        else {
            return Ok(DeleteSnapshotResponse {});
        };
        // As for volumes: a racing CreateSnapshot of the same name holds this lock.
        let _name = self.lock(Held::SnapshotName(&rec.name))?;
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
                .map_err(|e| status("fs subvolume snapshot rm", &e))?,
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(status("fs subvolume snapshot info", &e)),
        }
        journal
            .undo(Kind::Snapshot, &rec.name, &rec.uuid)
            .await
            .map_err(|e| status("journal undo", &e))?;
        Ok(DeleteSnapshotResponse {})
    }

    /// The snapshot with this UUID in `place`, as CSI describes it; `None` when the
    /// journal has no complete record or Ceph no longer has the snapshot.
    async fn snapshot_entry(
        &self,
        place: &Place<'_>,
        cluster_id: &str,
        uuid: &str,
    ) -> Result<Option<Snapshot>, Status> {
        let Some(rec) = place
            .journal()
            .by_uuid(Kind::Snapshot, uuid)
            .await
            .map_err(|e| status("journal", &e))?
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
            Err(e) => return Err(status("fs subvolume snapshot info", &e)),
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
    async fn snapshot_by_id(
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

    async fn get_snapshot(&self, req: GetSnapshotRequest) -> Result<GetSnapshotResponse, Status> {
        if req.snapshot_id.is_empty() {
            return Err(Status::invalid_argument("snapshot_id missing"));
        }
        let creds = credentials(&req.secrets)?;
        match self.snapshot_by_id(&req.snapshot_id, &creds).await? {
            Some(s) => Ok(GetSnapshotResponse { snapshot: Some(s) }),
            None => Err(Status::not_found(format!(
                "snapshot {} does not exist",
                req.snapshot_id
            ))),
        }
    }

    async fn list_snapshots(
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
                    Err(e) => return Err(status("fs ls", &e)),
                };
                for fs in fss {
                    let place = self
                        .place_by_name(&cluster.cluster_id, &fs, t, &creds)
                        .await?;
                    let (names, _) = place
                        .journal()
                        .list(Kind::Snapshot, "", usize::MAX >> 1)
                        .await
                        .map_err(|e| status("journal", &e))?;
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

impl ControllerService {
    /// Whether every cluster has credentials for the RPCs without secrets.
    fn standing_everywhere(&self) -> bool {
        let c = &self.driver.config.clusters;
        !c.is_empty() && c.iter().all(|c| c.controller_credentials.is_some())
    }

    fn standing(&self, cluster: &ClusterConfig) -> Result<crate::ceph::Credentials, Status> {
        cluster
            .controller_credentials
            .as_ref()
            .ok_or_else(|| {
                Status::unimplemented(format!(
                    "cluster '{}' has no controllerCredentials for RPCs that carry no secrets",
                    cluster.cluster_id
                ))
            })?
            .read()
            .map_err(|e| Status::unavailable(format!("reading controller credentials: {e}")))
    }

    /// Every volume of every cluster and file system, in a stable order.
    async fn all_volumes(&self) -> Result<Vec<(Volume, VolumeCondition)>, Status> {
        let mut out = Vec::new();
        for cluster in &self.driver.config.clusters {
            let creds = self.standing(cluster)?;
            let (_, t) = self.driver.cluster(&cluster.cluster_id)?;
            let admin = self.driver.admin(t, &creds);
            let fss = admin.fs_names().await.map_err(|e| status("fs ls", &e))?;
            for fs in &fss {
                let place = self
                    .place_by_name(&cluster.cluster_id, fs, t, &creds)
                    .await?;
                let journal = place.journal();
                let (names, _) = journal
                    .list(Kind::Volume, "", usize::MAX >> 1)
                    .await
                    .map_err(|e| status("journal", &e))?;
                // One listing per file system tells which journalled volumes lost their
                // subvolume (VOLUME_CONDITION requires a condition on every entry).
                let present: std::collections::HashSet<String> = place
                    .admin
                    .subvolume_ls(&place.fs, place.group())
                    .await
                    .map_err(|e| status("fs subvolume ls", &e))?
                    .into_iter()
                    .collect();
                for (_, uuid) in names {
                    let Some(rec) = journal
                        .by_uuid(Kind::Volume, &uuid)
                        .await
                        .map_err(|e| status("journal", &e))?
                    else {
                        continue;
                    };
                    let Ok(id) = CsiId::new(&cluster.cluster_id, place.fscid, &uuid) else {
                        continue;
                    };
                    let condition = if present.contains(&rec.image) {
                        VolumeCondition {
                            abnormal: false,
                            message: String::new(),
                        }
                    } else {
                        VolumeCondition {
                            abnormal: true,
                            message: format!("subvolume {} is missing", rec.image),
                        }
                    };
                    out.push((
                        Volume {
                            capacity_bytes: rec.size.unwrap_or(0) as i64,
                            volume_id: id.to_string(),
                            volume_context: [("subvolumeName".to_owned(), rec.image.clone())]
                                .into(),
                            content_source: None,
                            accessible_topology: vec![],
                        },
                        condition,
                    ));
                }
            }
        }
        out.sort_by(|a, b| a.0.volume_id.cmp(&b.0.volume_id));
        Ok(out)
    }

    async fn list(&self, req: ListVolumesRequest) -> Result<ListVolumesResponse, Status> {
        if req.max_entries < 0 {
            return Err(Status::invalid_argument("max_entries must not be negative"));
        }
        let all = self.all_volumes().await?;
        // The token is the ID of the first volume of the next page: pages stay right when
        // volumes come and go between calls.
        let start = if req.starting_token.is_empty() {
            0
        } else {
            if parse_id(&req.starting_token).is_none() {
                return Err(Status::aborted(format!(
                    "invalid starting_token '{}'",
                    req.starting_token
                )));
            }
            all.partition_point(|v| v.0.volume_id < req.starting_token)
        };
        let max = if req.max_entries == 0 {
            usize::MAX
        } else {
            req.max_entries as usize
        };
        let end = start.saturating_add(max).min(all.len());
        Ok(ListVolumesResponse {
            entries: all[start..end]
                .iter()
                .cloned()
                .map(|(v, c)| list_volumes_response::Entry {
                    volume: Some(v),
                    status: Some(list_volumes_response::VolumeStatus {
                        published_node_ids: vec![],
                        volume_condition: Some(c),
                    }),
                })
                .collect(),
            next_token: all
                .get(end)
                .map(|v| v.0.volume_id.clone())
                .unwrap_or_default(),
        })
    }

    async fn capacity(&self, req: GetCapacityRequest) -> Result<GetCapacityResponse, Status> {
        let cluster = match req.parameters.get("clusterID") {
            Some(id) => self.driver.cluster(id)?.0,
            None => self
                .driver
                .config
                .clusters
                .first()
                .ok_or_else(|| Status::failed_precondition("no cluster configured"))?,
        };
        let creds = self.standing(cluster)?;
        let (_, t) = self.driver.cluster(&cluster.cluster_id)?;
        let avail = self
            .driver
            .admin(t, &creds)
            .available_bytes()
            .await
            .map_err(|e| status("df", &e))?;
        Ok(GetCapacityResponse {
            available_capacity: avail as i64,
            maximum_volume_size: None,
            minimum_volume_size: None,
        })
    }

    async fn get_volume(
        &self,
        req: ControllerGetVolumeRequest,
    ) -> Result<ControllerGetVolumeResponse, Status> {
        if req.volume_id.is_empty() {
            return Err(Status::invalid_argument("volume_id missing"));
        }
        let not_found = || Status::not_found(format!("volume '{}' not found", req.volume_id));
        let id = parse_id(&req.volume_id).ok_or_else(not_found)?;
        let (cluster, t) = self
            .driver
            .cluster(&id.cluster_id)
            .map_err(|_| not_found())?;
        let creds = self.standing(cluster)?;
        let place = self
            .place_by_id(&id, t, &creds)
            .await?
            .ok_or_else(not_found)?;
        let rec = place
            .journal()
            .by_uuid(Kind::Volume, &id.uuid)
            .await
            .map_err(|e| status("journal", &e))?
            .ok_or_else(not_found)?;
        // CSI VolumeCondition: abnormal when the subvolume is gone behind the journal's
        // back or its clone failed.
        let condition = match place
            .admin
            .subvolume_info(&place.fs, place.group(), &rec.image)
            .await
        {
            Ok(info) if info.state == "complete" => VolumeCondition {
                abnormal: false,
                message: String::new(),
            },
            Ok(info) => VolumeCondition {
                abnormal: true,
                message: format!("subvolume state is {}", info.state),
            },
            Err(e) if e.is_not_found() => VolumeCondition {
                abnormal: true,
                message: format!("subvolume {} is missing", rec.image),
            },
            Err(e) if e.errno() == Some(errno::EAGAIN) => VolumeCondition {
                abnormal: false,
                message: "clone in progress".into(),
            },
            Err(e) => return Err(status("fs subvolume info", &e)),
        };
        Ok(ControllerGetVolumeResponse {
            volume: Some(Volume {
                capacity_bytes: rec.size.unwrap_or(0) as i64,
                volume_id: req.volume_id.clone(),
                volume_context: [("subvolumeName".to_owned(), rec.image.clone())].into(),
                content_source: None,
                accessible_topology: vec![],
            }),
            status: Some(controller_get_volume_response::VolumeStatus {
                published_node_ids: vec![],
                volume_condition: Some(condition),
            }),
        })
    }
}

impl ControllerService {
    /// ControllerPublishVolume. CephFS needs nothing attached (the node mounts over the
    /// network), so publishing checks and records nothing but what the spec asks to
    /// refuse: a volume or, where the cluster keeps a node registry, a node that does not
    /// exist. The node's attach limit is left to Kubernetes, which enforces it through
    /// CSINode's allocatable count.
    async fn publish(
        &self,
        req: ControllerPublishVolumeRequest,
    ) -> Result<ControllerPublishVolumeResponse, Status> {
        if req.volume_id.is_empty() {
            return Err(Status::invalid_argument("volume_id missing"));
        }
        if req.node_id.is_empty() {
            return Err(Status::invalid_argument("node_id missing"));
        }
        let cap = req
            .volume_capability
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("volume_capability missing"))?;
        check_caps(std::slice::from_ref(cap))?;
        let not_found = || Status::not_found(format!("volume '{}' not found", req.volume_id));
        let id = parse_id(&req.volume_id).ok_or_else(not_found)?;
        let (cluster, t) = self
            .driver
            .cluster(&id.cluster_id)
            .map_err(|_| not_found())?;
        // The request's secrets, else the controller's standing ones, else the nodes'
        // (they wrote the registry, so they can read it).
        let creds = match credentials(&req.secrets) {
            Ok(c) => Some(c),
            Err(_) => match &cluster.controller_credentials {
                Some(s) => Some(s.read().map_err(|e| {
                    Status::unavailable(format!("reading controller credentials: {e}"))
                })?),
                None => crate::registry::node_credentials(cluster)?,
            },
        };
        let Some(creds) = creds else {
            // Nothing to read Ceph with: the volume ID is all there is to check.
            return Ok(ControllerPublishVolumeResponse::default());
        };
        let (place, _) = self.existing_volume(&req.volume_id, t, &creds).await?;
        if cluster.node_credentials.is_some()
            && !crate::registry::is_registered(
                &place.admin,
                cluster,
                &self.driver.config.instance_id,
                &place.pool,
                &req.node_id,
            )
            .await?
        {
            return Err(Status::not_found(format!(
                "node '{}' is not registered in cluster '{}' (its plugin has not answered NodeGetInfo)",
                req.node_id, cluster.cluster_id
            )));
        }
        Ok(ControllerPublishVolumeResponse::default())
    }
}

/// A clone's source.
enum Source {
    /// A snapshot: its subvolume, its name in Ceph and its CSI ID.
    Snapshot {
        parent: String,
        snap: String,
        id: String,
    },
    /// A volume: its subvolume and its CSI ID.
    Volume { image: String, id: String },
}

impl Source {
    /// The source's CSI ID.
    fn id(&self) -> &str {
        match self {
            Source::Snapshot { id, .. } | Source::Volume { id, .. } => id,
        }
    }
}

#[tonic::async_trait]
impl Controller for ControllerService {
    async fn create_volume(
        &self,
        r: Request<CreateVolumeRequest>,
    ) -> Result<Response<CreateVolumeResponse>, Status> {
        let wait = wait::budget(
            self.driver.config.clone_wait,
            wait::caller_timeout(r.metadata()),
        );
        let req = r.into_inner();
        rpc!(
            self,
            "CreateVolume",
            req,
            req.name.clone(),
            self.create_volume(req, wait)
        )
    }

    async fn delete_volume(
        &self,
        r: Request<DeleteVolumeRequest>,
    ) -> Result<Response<DeleteVolumeResponse>, Status> {
        let req = r.into_inner();
        rpc!(
            self,
            "DeleteVolume",
            req,
            req.volume_id.clone(),
            self.delete_volume(req)
        )
    }

    async fn controller_publish_volume(
        &self,
        r: Request<ControllerPublishVolumeRequest>,
    ) -> Result<Response<ControllerPublishVolumeResponse>, Status> {
        if !self.driver.config.attach_required {
            return Err(Status::unimplemented(
                "ControllerPublishVolume is not supported without --attach-required",
            ));
        }
        let req = r.into_inner();
        rpc!(
            self,
            "ControllerPublishVolume",
            req,
            req.volume_id.clone(),
            self.publish(req)
        )
    }

    async fn controller_unpublish_volume(
        &self,
        r: Request<ControllerUnpublishVolumeRequest>,
    ) -> Result<Response<ControllerUnpublishVolumeResponse>, Status> {
        if !self.driver.config.attach_required {
            return Err(Status::unimplemented(
                "ControllerUnpublishVolume is not supported without --attach-required",
            ));
        }
        let req = r.into_inner();
        rpc!(
            self,
            "ControllerUnpublishVolume",
            req,
            req.volume_id.clone(),
            async {
                if req.volume_id.is_empty() {
                    return Err(Status::invalid_argument("volume_id missing"));
                }
                Ok(ControllerUnpublishVolumeResponse {})
            }
        )
    }

    async fn validate_volume_capabilities(
        &self,
        r: Request<ValidateVolumeCapabilitiesRequest>,
    ) -> Result<Response<ValidateVolumeCapabilitiesResponse>, Status> {
        let req = r.into_inner();
        rpc!(
            self,
            "ValidateVolumeCapabilities",
            req,
            req.volume_id.clone(),
            self.validate(req)
        )
    }

    async fn list_volumes(
        &self,
        r: Request<ListVolumesRequest>,
    ) -> Result<Response<ListVolumesResponse>, Status> {
        let req = r.into_inner();
        rpc!(
            self,
            "ListVolumes",
            req,
            req.starting_token.clone(),
            self.list(req)
        )
    }

    async fn get_capacity(
        &self,
        r: Request<GetCapacityRequest>,
    ) -> Result<Response<GetCapacityResponse>, Status> {
        let req = r.into_inner();
        rpc!(self, "GetCapacity", req, String::new(), self.capacity(req))
    }

    async fn controller_get_capabilities(
        &self,
        _r: Request<ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<ControllerGetCapabilitiesResponse>, Status> {
        use controller_service_capability::rpc::Type as T;
        let mut kinds = vec![
            T::CreateDeleteVolume,
            T::CreateDeleteSnapshot,
            T::ExpandVolume,
            T::CloneVolume,
            T::ListSnapshots,
            T::GetSnapshot,
            T::SingleNodeMultiWriter,
        ];
        if self.driver.config.attach_required {
            kinds.push(T::PublishUnpublishVolume);
        }
        if self.standing_everywhere() {
            kinds.extend([
                T::ListVolumes,
                T::GetCapacity,
                T::GetVolume,
                T::VolumeCondition,
            ]);
        }
        Ok(Response::new(controller_capabilities(kinds)))
    }

    async fn create_snapshot(
        &self,
        r: Request<CreateSnapshotRequest>,
    ) -> Result<Response<CreateSnapshotResponse>, Status> {
        let req = r.into_inner();
        rpc!(
            self,
            "CreateSnapshot",
            req,
            req.name.clone(),
            self.create_snapshot(req)
        )
    }

    async fn delete_snapshot(
        &self,
        r: Request<DeleteSnapshotRequest>,
    ) -> Result<Response<DeleteSnapshotResponse>, Status> {
        let req = r.into_inner();
        rpc!(
            self,
            "DeleteSnapshot",
            req,
            req.snapshot_id.clone(),
            self.delete_snapshot(req)
        )
    }

    async fn list_snapshots(
        &self,
        r: Request<ListSnapshotsRequest>,
    ) -> Result<Response<ListSnapshotsResponse>, Status> {
        let req = r.into_inner();
        rpc!(
            self,
            "ListSnapshots",
            req,
            req.snapshot_id.clone(),
            self.list_snapshots(req)
        )
    }

    async fn get_snapshot(
        &self,
        r: Request<GetSnapshotRequest>,
    ) -> Result<Response<GetSnapshotResponse>, Status> {
        let req = r.into_inner();
        rpc!(
            self,
            "GetSnapshot",
            req,
            req.snapshot_id.clone(),
            self.get_snapshot(req)
        )
    }

    async fn controller_expand_volume(
        &self,
        r: Request<ControllerExpandVolumeRequest>,
    ) -> Result<Response<ControllerExpandVolumeResponse>, Status> {
        let req = r.into_inner();
        rpc!(
            self,
            "ControllerExpandVolume",
            req,
            req.volume_id.clone(),
            self.expand(req)
        )
    }

    async fn controller_get_volume(
        &self,
        r: Request<ControllerGetVolumeRequest>,
    ) -> Result<Response<ControllerGetVolumeResponse>, Status> {
        let req = r.into_inner();
        rpc!(
            self,
            "ControllerGetVolume",
            req,
            req.volume_id.clone(),
            self.get_volume(req)
        )
    }

    async fn controller_modify_volume(
        &self,
        _r: Request<ControllerModifyVolumeRequest>,
    ) -> Result<Response<ControllerModifyVolumeResponse>, Status> {
        Err(Status::unimplemented(
            "ControllerModifyVolume is not supported",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: u64, expected: u64) {
        assert_eq!(round_size(bytes), expected, "{bytes}");
    }

    #[test]
    fn sizes_round_as_ceph_csi() {
        check(0, 0);
        check(1, 4 * MIB);
        check(MIB, 4 * MIB);
        check(5 * MIB, 8 * MIB);
        check(GIB, GIB);
        check(GIB + GIB / 2, 2 * GIB);
        check(10 * GIB, 10 * GIB);
    }

    #[test]
    fn timestamps_parse() {
        let t = timestamp("2022-06-14 13:54:58.618769").unwrap();
        assert_eq!(t.seconds, 1_655_214_898);
        assert_eq!(t.nanos, 618_769_000);
        assert_eq!(timestamp("1970-01-01 00:00:00").unwrap().seconds, 0);
        assert!(timestamp("garbage").is_none());
    }

    #[test]
    fn capacity_ranges() {
        let r = |req: i64, lim: i64| CapacityRange {
            required_bytes: req,
            limit_bytes: lim,
        };
        assert_eq!(requested_size(None).unwrap(), 0);
        assert_eq!(requested_size(Some(&r(GIB as i64, 0))).unwrap(), GIB);
        assert_eq!(requested_size(Some(&r(0, GIB as i64))).unwrap(), GIB);
        assert_eq!(
            requested_size(Some(&r(-1, 0))).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            requested_size(Some(&r(10, 5))).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            requested_size(Some(&r(5 * MIB as i64, 6 * MIB as i64)))
                .unwrap_err()
                .code(),
            tonic::Code::OutOfRange
        );
    }

    /// A limit alone gives the largest size within it: rounding the limit up passed it
    /// and answered OutOfRange for ranges that smaller sizes satisfy (found by the `csi`
    /// fuzz target: `required_bytes: 0, limit_bytes: i64::MAX`).
    #[test]
    fn a_limit_alone_gives_the_largest_size_within_it() {
        let limit = |lim: u64| {
            requested_size(Some(&CapacityRange {
                required_bytes: 0,
                limit_bytes: lim as i64,
            }))
        };
        let max = i64::MAX as u64;
        assert_eq!(limit(max).unwrap(), max / GIB * GIB);
        assert_eq!(limit(5 * MIB + 1).unwrap(), 4 * MIB);
        assert_eq!(limit(4 * MIB).unwrap(), 4 * MIB);
        assert_eq!(limit(GIB + GIB / 2).unwrap(), GIB);
        assert_eq!(limit(GIB - 1).unwrap(), GIB - 4 * MIB);
        assert_eq!(limit(MIB).unwrap_err().code(), tonic::Code::OutOfRange);
        for size in [limit(max), limit(5 * MIB + 1), limit(GIB + GIB / 2)] {
            let size = size.unwrap();
            assert_eq!(round_size(size), size, "{size} is a size the driver makes");
        }
    }
}
