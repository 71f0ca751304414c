//! The CSI Controller service: volumes are subvolumes in a subvolume group, snapshots are
//! subvolume snapshots, clones are `snapshot clone`s, and the RADOS journal makes every
//! create idempotent across retries and crashes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tonic::Status;

use crate::ceph::{Admin, CloneState, Transport, errno};
use crate::config::ClusterConfig;
use crate::csi::v1::controller_service_capability::rpc::Type as Capability;
use crate::csi::v1::*;
use crate::instance::{Driver, credentials};
use crate::journal::{Journal, Kind, Record};
use crate::locks::Held;
use crate::service::{Controller, ControllerBackend};
use crate::status;
use crate::volume_id::CsiId;
use crate::wait::Backoff;

mod snapshots;
mod standing;

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

/// The CephFS back end of the Controller service.
#[derive(Debug, Clone)]
pub struct Cephfs {
    driver: Arc<Driver>,
}

/// The Controller service over CephFS.
pub type ControllerService = Controller<Cephfs>;

impl Controller<Cephfs> {
    /// The CephFS Controller service of a driver.
    pub fn new(driver: Arc<Driver>) -> Self {
        Controller::with_backend(driver.clone(), Cephfs { driver })
    }
}

impl Cephfs {
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
                    status::ceph("fs dump", &e)
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
            Err(e) => return Err(status::ceph("fs dump", &e)),
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
                Err(e) => return Err(status::ceph("fs subvolume getpath", &e)),
            }
        }
        a.subvolume_create(fs, group, &r.image, size, pool_layout)
            .await
            .map_err(|e| status::ceph("fs subvolume create", &e))?;
        a.subvolume_getpath(fs, group, &r.image)
            .await
            .map_err(|e| status::ceph("fs subvolume getpath", &e))
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
                        .map_err(|e| status::ceph("journal", &e))?;
                    if matches!(source, Source::Volume { .. }) {
                        a.snapshot_create(fs, group, parent, snap)
                            .await
                            .map_err(|e| status::ceph("fs subvolume snapshot create", &e))?;
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
                        Err(e) => return Err(status::ceph("fs subvolume snapshot clone", &e)),
                    }
                    "pending"
                }
                Err(e) => return Err(status::ceph("fs clone status", &e)),
                Ok(CloneState::Pending) => "pending",
                Ok(CloneState::InProgress) => "in progress",
                Ok(CloneState::Failed(why)) => {
                    // Remove the failed clone so that the retry starts a new one; the
                    // reservation (and the temporary snapshot) stay for it.
                    match a.subvolume_rm(fs, group, &r.image, true).await {
                        Ok(()) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(status::ceph("fs subvolume rm", &e)),
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
                            .map_err(|e| status::ceph("fs subvolume snapshot rm", &e))?;
                    }
                    if size > 0 {
                        a.subvolume_resize(fs, group, &r.image, size)
                            .await
                            .map_err(|e| status::ceph("fs subvolume resize", &e))?;
                    }
                    let path = a
                        .subvolume_getpath(fs, group, &r.image)
                        .await
                        .map_err(|e| status::ceph("fs subvolume getpath", &e))?;
                    journal
                        .clone_finished(&r.uuid)
                        .await
                        .map_err(|e| status::ceph("journal", &e))?;
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
            .map_err(|e| status::ceph("journal", &e))?
        {
            let Some(rec) = journal
                .by_uuid(Kind::Volume, &uuid)
                .await
                .map_err(|e| status::ceph("journal", &e))?
            else {
                journal
                    .clone_finished(&uuid)
                    .await
                    .map_err(|e| status::ceph("journal", &e))?;
                continue;
            };
            let _guard = self.driver.locks.hold(Held::VolumeName(&rec.name))?;
            // Under the lock: it may have been returned since the listing.
            if !journal
                .clone_listed(&uuid)
                .await
                .map_err(|e| status::ceph("journal", &e))?
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
                    Err(e) => return Err(status::ceph("fs clone cancel", &e)),
                }
            }
            match a.subvolume_rm(fs, group, &rec.image, true).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(status::ceph("fs subvolume rm", &e)),
            }
            if let Some(p) = parent_image {
                a.snapshot_rm(fs, group, p, &rec.image)
                    .await
                    .map_err(|e| status::ceph("fs subvolume snapshot rm", &e))?;
            }
            journal
                .undo(Kind::Volume, &rec.name, &uuid)
                .await
                .map_err(|e| status::ceph("journal undo", &e))?;
            journal
                .clone_finished(&uuid)
                .await
                .map_err(|e| status::ceph("journal", &e))?;
            tracing::info!(
                clone = %rec.image,
                source = source_id,
                "removed a clone whose CreateVolume never returned it"
            );
            removed += 1;
        }
        Ok(removed)
    }

    async fn create(
        &self,
        req: CreateVolumeRequest,
        wait: Duration,
    ) -> Result<CreateVolumeResponse, Status> {
        let params = &req.parameters;
        let cluster_id = param(params, "clusterID")?;
        let fs = param(params, "fsName")?;
        let creds = credentials(&req.secrets)?;
        let size = requested_size(req.capacity_range.as_ref())?;
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
            .map_err(|e| status::ceph("journal", &e))?
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
                    .map_err(|e| status::ceph("journal reserve", &e))?
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
                            .map_err(|e| status::ceph("journal", &e))?
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
                    Err(e) => return Err(status::ceph("fs subvolume snapshot info", &e)),
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
                            .map_err(|e| status::ceph("journal", &e))?
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

    async fn delete(&self, req: DeleteVolumeRequest) -> Result<DeleteVolumeResponse, Status> {
        // CSI spec: deleting a volume that does not exist (or cannot) succeeds.
        let Some(id) = parse_id(&req.volume_id) else {
            return Ok(DeleteVolumeResponse {});
        };
        let creds = credentials(&req.secrets)?;
        let Ok((_, t)) = self.driver.cluster(&id.cluster_id) else {
            return Ok(DeleteVolumeResponse {});
        };
        let Some(place) = self.place_by_id(&id, t, &creds).await? else {
            return Ok(DeleteVolumeResponse {});
        };
        let journal = place.journal();
        let Some(rec) = journal
            .by_uuid(Kind::Volume, &id.uuid)
            .await
            .map_err(|e| status::ceph("journal", &e))?
        else {
            return Ok(DeleteVolumeResponse {});
        };
        // A CreateVolume of the same name (a retry racing this deletion) would make the
        // subvolume again after it is removed here, and leave it without its journal
        // entry: the two exclude each other through the name's lock.
        let _name = self.driver.locks.hold(Held::VolumeName(&rec.name))?;
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
            Err(e) => return Err(status::ceph("fs subvolume rm", &e)),
        }
        journal
            .undo(Kind::Volume, &rec.name, &rec.uuid)
            .await
            .map_err(|e| status::ceph("journal undo", &e))?;
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
            .map_err(|e| status::ceph("journal", &e))?
            .ok_or_else(not_found)?;
        match place
            .admin
            .subvolume_info(&place.fs, place.group(), &rec.image)
            .await
        {
            Ok(_) => Ok((place, rec)),
            Err(e) if e.is_not_found() => Err(not_found()),
            Err(e) if e.errno() == Some(errno::EAGAIN) => Ok((place, rec)),
            Err(e) => Err(status::ceph("fs subvolume info", &e)),
        }
    }

    async fn validate(
        &self,
        req: ValidateVolumeCapabilitiesRequest,
    ) -> Result<ValidateVolumeCapabilitiesResponse, Status> {
        let id = parse_id(&req.volume_id)
            .ok_or_else(|| Status::not_found(format!("volume '{}' not found", req.volume_id)))?;
        if let Ok(creds) = credentials(&req.secrets) {
            let (_, t) = self
                .driver
                .cluster(&id.cluster_id)
                .map_err(|_| Status::not_found(format!("volume '{}' not found", req.volume_id)))?;
            self.existing_volume(&req.volume_id, t, &creds).await?;
        }
        Ok(crate::edge::verdict(req))
    }

    async fn expand(
        &self,
        req: ControllerExpandVolumeRequest,
    ) -> Result<ControllerExpandVolumeResponse, Status> {
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
                Err(e) => return Err(status::ceph("fs subvolume resize", &e)),
            }
        }
        Ok(ControllerExpandVolumeResponse {
            capacity_bytes: size as i64,
            node_expansion_required: false,
        })
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

/// The capabilities: create, delete, expand, snapshot and clone always; attach when
/// the CSIDriver requires it; the RPCs without secrets (list, capacity, get) when every
/// cluster has standing controller credentials.
#[tonic::async_trait]
impl ControllerBackend for Cephfs {
    fn capabilities(&self) -> Vec<Capability> {
        let mut kinds = vec![
            Capability::CreateDeleteVolume,
            Capability::CreateDeleteSnapshot,
            Capability::ExpandVolume,
            Capability::CloneVolume,
            Capability::ListSnapshots,
            Capability::GetSnapshot,
            Capability::SingleNodeMultiWriter,
        ];
        if self.driver.config.attach_required {
            kinds.push(Capability::PublishUnpublishVolume);
        }
        if self.standing_everywhere() {
            kinds.extend([
                Capability::ListVolumes,
                Capability::GetCapacity,
                Capability::GetVolume,
                Capability::VolumeCondition,
            ]);
        }
        kinds
    }

    fn why_not(&self, capability: Capability) -> String {
        match capability {
            Capability::PublishUnpublishVolume => {
                "CephFS needs no attach; start the driver with --attach-required for a \
                 CSIDriver that requires it"
                    .into()
            }
            Capability::ListVolumes | Capability::GetCapacity | Capability::GetVolume => {
                "RPCs without secrets need controllerCredentials for every cluster".into()
            }
            other => format!("CephFS does not advertise {}", other.as_str_name()),
        }
    }

    async fn create_volume(
        &self,
        req: CreateVolumeRequest,
        wait: Duration,
    ) -> Result<CreateVolumeResponse, Status> {
        self.create(req, wait).await
    }

    async fn delete_volume(
        &self,
        req: DeleteVolumeRequest,
    ) -> Result<DeleteVolumeResponse, Status> {
        self.delete(req).await
    }

    async fn validate_volume_capabilities(
        &self,
        req: ValidateVolumeCapabilitiesRequest,
    ) -> Result<ValidateVolumeCapabilitiesResponse, Status> {
        self.validate(req).await
    }

    async fn expand_volume(
        &self,
        req: ControllerExpandVolumeRequest,
    ) -> Result<ControllerExpandVolumeResponse, Status> {
        self.expand(req).await
    }

    async fn create_snapshot(
        &self,
        req: CreateSnapshotRequest,
    ) -> Result<CreateSnapshotResponse, Status> {
        self.snapshot_create(req).await
    }

    async fn delete_snapshot(
        &self,
        req: DeleteSnapshotRequest,
    ) -> Result<DeleteSnapshotResponse, Status> {
        self.snapshot_delete(req).await
    }

    async fn publish_volume(
        &self,
        req: ControllerPublishVolumeRequest,
    ) -> Result<ControllerPublishVolumeResponse, Status> {
        self.publish(req).await
    }

    /// Nothing was attached, so nothing is detached.
    async fn unpublish_volume(
        &self,
        _req: ControllerUnpublishVolumeRequest,
    ) -> Result<ControllerUnpublishVolumeResponse, Status> {
        Ok(ControllerUnpublishVolumeResponse {})
    }

    async fn list_volumes(&self, req: ListVolumesRequest) -> Result<ListVolumesResponse, Status> {
        self.list(req).await
    }

    async fn get_capacity(&self, req: GetCapacityRequest) -> Result<GetCapacityResponse, Status> {
        self.capacity(req).await
    }

    async fn list_snapshots(
        &self,
        req: ListSnapshotsRequest,
    ) -> Result<ListSnapshotsResponse, Status> {
        self.snapshot_list(req).await
    }

    async fn get_snapshot(&self, req: GetSnapshotRequest) -> Result<GetSnapshotResponse, Status> {
        self.snapshot_get(req).await
    }

    async fn get_volume(
        &self,
        req: ControllerGetVolumeRequest,
    ) -> Result<ControllerGetVolumeResponse, Status> {
        self.volume_get(req).await
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
