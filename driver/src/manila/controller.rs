//! The CSI Controller service of the Manila back end.

use std::collections::HashMap;
use std::sync::Arc;

use std::time::Duration;

use tonic::Status;

use secrecy::ExposeSecret as _;

use super::ManilaError;
use super::api::{AccessRule, Manila, NewShare, Share, ShareSnapshot};
use super::keystone::OsCredentials;
use crate::csi::v1::controller_service_capability::rpc::Type as Capability;
use crate::csi::v1::*;
use crate::instance::Driver;
use crate::locks::Held;
use crate::service::{Controller, ControllerBackend};
use crate::status;
use crate::wait::Backoff;

const GIB: u64 = 1 << 30;

/// Share states from which a share will not recover by itself.
const FAILED: &[&str] = &[
    "error",
    "error_deleting",
    "extending_error",
    "shrinking_error",
    "shrinking_possible_data_loss_error",
    "manage_error",
    "unmanage_error",
];

/// Volume context keys a node needs, passed through from the StorageClass.
const NODE_PARAMS: &[(&str, &str)] = &[
    ("cephfs-mounter", "mounter"),
    ("cephfs-kernelMountOptions", "kernelMountOptions"),
    ("cephfs-fuseMountOptions", "fuseMountOptions"),
];

/// The Manila back end of the Controller service.
#[derive(Debug, Clone)]
pub struct ManilaController {
    driver: Arc<Driver>,
}

impl Controller<ManilaController> {
    /// The Manila Controller service of a driver.
    pub fn manila(driver: Arc<Driver>) -> Self {
        Controller::with_backend(driver.clone(), ManilaController { driver })
    }
}

/// Whole GiB for a capacity range (at least 1 GiB), or OutOfRange.
fn size_gib(range: Option<&CapacityRange>) -> Result<u64, Status> {
    let (req, limit) = range.map_or((0, 0), |r| (r.required_bytes, r.limit_bytes));
    if req < 0 || limit < 0 {
        return Err(Status::invalid_argument("capacity must not be negative"));
    }
    let req = u64::try_from(req).unwrap_or(0);
    let limit = u64::try_from(limit).unwrap_or(0);
    let gib = req.div_ceil(GIB).max(1);
    if limit > 0 && gib * GIB > limit {
        return Err(Status::out_of_range(format!(
            "shares come in whole GiB: {gib} GiB is over the limit of {limit} bytes"
        )));
    }
    Ok(gib)
}

fn bytes(gib: u64) -> i64 {
    i64::try_from(gib.saturating_mul(GIB)).unwrap_or(i64::MAX)
}

/// A share Manila failed to delete: it stays so until an administrator acts.
fn error_deleting(id: &str) -> Status {
    Status::internal(format!(
        "Manila failed to delete share {id} (error_deleting); it stays so until an \
         administrator resets its state or force-deletes it"
    ))
}

fn os_credentials(secrets: &HashMap<String, String>) -> Result<OsCredentials, Status> {
    OsCredentials::from_secrets(secrets).map_err(|e| status::manila(&e))
}

impl ManilaController {
    fn backoff(&self) -> Backoff {
        Backoff::new(self.driver.config.manila_wait)
    }

    /// Waits until a share is `available`. A share that fails is deleted (it is ours:
    /// it carries the request's name) and the failure, with Manila's own message about
    /// it, is the error.
    async fn wait_available(&self, m: &Manila<'_>, share: Share) -> Result<Share, Status> {
        let id = share.id.clone();
        let mut last = share;
        let mut backoff = self.backoff();
        loop {
            if last.status == "available" {
                return Ok(last);
            }
            if FAILED.contains(&last.status.as_str()) {
                let why = m.last_message(&id).await.unwrap_or_default();
                self.roll_back(m, &id).await;
                return Err(Status::internal(format!(
                    "share {id} went to {}{}{}; it was deleted",
                    last.status,
                    if why.is_empty() { "" } else { ": " },
                    why
                )));
            }
            if !backoff.wait().await {
                return Err(Status::deadline_exceeded(format!(
                    "share {id} is still {} after {:?}; retry to keep waiting",
                    last.status, self.driver.config.manila_wait
                )));
            }
            last = m
                .share(&id)
                .await
                .map_err(|e| status::manila(&e))?
                .ok_or_else(|| {
                    Status::aborted(format!("share {id} disappeared while being created"))
                })?;
        }
    }

    /// Deletes a failed share, best effort.
    async fn roll_back(&self, m: &Manila<'_>, id: &str) {
        match m.delete_share(id).await {
            Ok(_) => tracing::info!(share = id, "rolled back a failed share"),
            Err(e) => tracing::warn!(share = id, error = %e, "could not roll back a failed share"),
        }
    }

    /// The share's read-write cephx rule for `client`, granted if missing, once Manila
    /// has given it a key.
    async fn cephx_rule(
        &self,
        m: &Manila<'_>,
        share_id: &str,
        client: &str,
    ) -> Result<AccessRule, Status> {
        let mine = |r: &AccessRule| {
            r.access_type == "cephx" && r.access_to == client && r.access_level == "rw"
        };
        let rules = m
            .access_rules(share_id)
            .await
            .map_err(|e| status::manila(&e))?;
        let rule = match rules.into_iter().find(mine) {
            Some(r) => r,
            None => m
                .allow_cephx(share_id, client)
                .await
                .map_err(|e| status::manila(&e))?,
        };
        let rule_id = rule.id.clone();
        let mut current = rule;
        let mut backoff = self.backoff();
        loop {
            if current.state == "error" {
                self.roll_back(m, share_id).await;
                return Err(Status::internal(format!(
                    "the cephx rule for {client} on share {share_id} went to error; the share was deleted"
                )));
            }
            if current
                .access_key
                .as_ref()
                .is_some_and(|k| !k.expose_secret().is_empty())
            {
                return Ok(current);
            }
            if !backoff.wait().await {
                return Err(Status::deadline_exceeded(format!(
                    "the cephx rule for {client} on share {share_id} has no key yet; retry to keep waiting"
                )));
            }
            let rules = m
                .access_rules(share_id)
                .await
                .map_err(|e| status::manila(&e))?;
            current = rules.into_iter().find(|r| r.id == rule_id).ok_or_else(|| {
                Status::aborted(format!(
                    "access rule {rule_id} of share {share_id} disappeared"
                ))
            })?;
        }
    }

    /// The share's metadata: the StorageClass's `appendShareMetadata` (a JSON object,
    /// values as strings) and the driver's name, as the Manila CSI plugin sets them.
    fn share_metadata(
        &self,
        p: &HashMap<String, String>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, Status> {
        let mut metadata = serde_json::Map::new();
        if let Some(extra) = p.get("appendShareMetadata").filter(|s| !s.is_empty()) {
            let v: serde_json::Value = serde_json::from_str(extra).map_err(|e| {
                Status::invalid_argument(format!("appendShareMetadata is not JSON: {e}"))
            })?;
            let obj = v.as_object().ok_or_else(|| {
                Status::invalid_argument("appendShareMetadata must be a JSON object")
            })?;
            for (k, v) in obj {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                metadata.insert(k.clone(), serde_json::Value::String(v));
            }
        }
        metadata.insert(
            "csi.storage.k8s.io/driver".into(),
            self.driver.config.driver_name.clone().into(),
        );
        Ok(metadata)
    }

    fn snapshot_view(s: &ShareSnapshot) -> Snapshot {
        Snapshot {
            size_bytes: bytes(s.size),
            snapshot_id: s.id.clone(),
            source_volume_id: s.share_id.clone(),
            creation_time: s.created_at.as_deref().and_then(crate::timefmt::parse_utc),
            ready_to_use: s.status == "available",
            group_snapshot_id: String::new(),
            accessible_topology: Vec::new(),
        }
    }
}

/// The capabilities of the Manila CSI plugin: shares are created, deleted and grown,
/// snapshots created and deleted; nothing is attached, listed or cloned from a share.
#[tonic::async_trait]
impl ControllerBackend for ManilaController {
    fn capabilities(&self) -> Vec<Capability> {
        vec![
            Capability::CreateDeleteVolume,
            Capability::CreateDeleteSnapshot,
            Capability::ExpandVolume,
            Capability::SingleNodeMultiWriter,
        ]
    }

    fn why_not(&self, capability: Capability) -> String {
        match capability {
            Capability::PublishUnpublishVolume => "Manila shares need no attach".into(),
            Capability::CloneVolume => "Manila makes shares from snapshots, not from shares".into(),
            other => format!(
                "the Manila back end does not advertise {}",
                other.as_str_name()
            ),
        }
    }

    async fn create_volume(
        &self,
        req: CreateVolumeRequest,
        _wait: Duration,
    ) -> Result<CreateVolumeResponse, Status> {
        let size = size_gib(req.capacity_range.as_ref())?;
        let p = &req.parameters;
        if let Some(proto) = p.get("protocol")
            && !proto.eq_ignore_ascii_case("CEPHFS")
        {
            return Err(Status::invalid_argument(format!(
                "protocol {proto} is not served by this driver (CEPHFS only)"
            )));
        }
        let client = p
            .get("cephfs-clientID")
            .filter(|c| !c.is_empty())
            .cloned()
            .unwrap_or_else(|| req.name.clone());
        let metadata = self.share_metadata(p)?;
        let snapshot_id = match req
            .volume_content_source
            .as_ref()
            .and_then(|s| s.r#type.as_ref())
        {
            None => None,
            Some(volume_content_source::Type::Snapshot(s)) => Some(s.snapshot_id.clone()),
            Some(volume_content_source::Type::Volume(_)) => {
                return Err(Status::invalid_argument(
                    "the Manila back end cannot clone volumes; clone from a snapshot",
                ));
            }
        };
        let creds = os_credentials(&req.secrets)?;
        let backend = self.driver.manila()?;
        let m = backend.client(&creds);
        if let Some(sid) = &snapshot_id {
            let snap = m
                .snapshot(sid)
                .await
                .map_err(|e| status::manila(&e))?
                .ok_or_else(|| Status::not_found(format!("snapshot {sid} not found")))?;
            if snap.size > size {
                return Err(Status::out_of_range(format!(
                    "snapshot {sid} holds {} GiB, more than the {size} GiB asked for",
                    snap.size
                )));
            }
        }
        let mut named = m
            .shares_named(&req.name)
            .await
            .map_err(|e| status::manila(&e))?;
        let share = match named.len() {
            0 => m
                .create_share(&NewShare {
                    name: req.name.clone(),
                    size,
                    share_type: p.get("type").cloned().unwrap_or_default(),
                    availability_zone: p.get("availability").filter(|s| !s.is_empty()).cloned(),
                    share_network_id: p.get("shareNetworkID").filter(|s| !s.is_empty()).cloned(),
                    snapshot_id: snapshot_id.clone(),
                    metadata,
                })
                .await
                .map_err(|e| status::manila(&e))?,
            1 => {
                let s = named.remove(0);
                if s.size != size {
                    return Err(Status::already_exists(format!(
                        "share {} named {} has {} GiB, not {size}",
                        s.id, req.name, s.size
                    )));
                }
                if s.snapshot_id.as_deref().filter(|x| !x.is_empty()) != snapshot_id.as_deref() {
                    return Err(Status::already_exists(format!(
                        "share {} named {} has another content source",
                        s.id, req.name
                    )));
                }
                s
            }
            n => {
                return Err(Status::internal(format!(
                    "{n} shares are named {}; remove all but one",
                    req.name
                )));
            }
        };
        let share = self.wait_available(&m, share).await?;
        let rule = self.cephx_rule(&m, &share.id, &client).await?;
        let mut ctx: HashMap<String, String> = HashMap::from([
            ("shareID".to_owned(), share.id.clone()),
            ("shareAccessID".to_owned(), rule.id.clone()),
        ]);
        for (from, to) in NODE_PARAMS {
            if let Some(v) = p.get(*from).filter(|v| !v.is_empty()) {
                ctx.insert((*to).to_owned(), v.clone());
            }
        }
        Ok(CreateVolumeResponse {
            volume: Some(Volume {
                capacity_bytes: bytes(share.size),
                volume_id: share.id,
                volume_context: ctx,
                content_source: req.volume_content_source.clone(),
                accessible_topology: vec![],
            }),
        })
    }

    async fn delete_volume(
        &self,
        req: DeleteVolumeRequest,
    ) -> Result<DeleteVolumeResponse, Status> {
        let creds = os_credentials(&req.secrets)?;
        let backend = self.driver.manila()?;
        let m = backend.client(&creds);
        let id = req.volume_id.as_str();
        // Deleting is accepted from available/error/inactive; while Manila is already
        // deleting, only wait.
        let Some(share) = m.share(id).await.map_err(|e| status::manila(&e))? else {
            return Ok(DeleteVolumeResponse {});
        };
        // A CreateVolume retry of the same name would find the share and return it while
        // it is deleted here: the two exclude each other through the name's lock.
        let _name = share
            .name
            .as_deref()
            .map(|n| self.driver.locks.hold(Held::VolumeName(n)))
            .transpose()?;
        // Manila refuses a user's delete of a share it failed to delete: only an
        // administrator can (reset-state, force-delete). Say so rather than "retry".
        if share.status == "error_deleting" {
            return Err(error_deleting(id));
        }
        if share.status != "deleting" {
            match m.delete_share(id).await {
                Ok(_) => {}
                Err(ManilaError::Http {
                    code: 403, message, ..
                }) if !message.to_ascii_lowercase().contains("snapshot") => {
                    return Err(Status::aborted(format!(
                        "share {id} is {}: {message}; retry once it settles",
                        share.status
                    )));
                }
                Err(e) => return Err(status::manila(&e)),
            }
        }
        let mut backoff = self.backoff();
        loop {
            match m.share(id).await.map_err(|e| status::manila(&e))? {
                None => return Ok(DeleteVolumeResponse {}),
                Some(s) if s.status == "error_deleting" => return Err(error_deleting(id)),
                Some(_) => {}
            }
            if !backoff.wait().await {
                return Err(Status::deadline_exceeded(format!(
                    "share {id} is still being deleted; retry to keep waiting"
                )));
            }
        }
    }

    async fn validate_volume_capabilities(
        &self,
        req: ValidateVolumeCapabilitiesRequest,
    ) -> Result<ValidateVolumeCapabilitiesResponse, Status> {
        // Without secrets the share cannot be looked up; with them it must exist.
        if let Ok(creds) = OsCredentials::from_secrets(&req.secrets) {
            let backend = self.driver.manila()?;
            if backend
                .client(&creds)
                .share(&req.volume_id)
                .await
                .map_err(|e| status::manila(&e))?
                .is_none()
            {
                return Err(Status::not_found(format!(
                    "volume {} not found",
                    req.volume_id
                )));
            }
        }
        Ok(crate::edge::verdict(req))
    }

    async fn expand_volume(
        &self,
        req: ControllerExpandVolumeRequest,
    ) -> Result<ControllerExpandVolumeResponse, Status> {
        let size = size_gib(req.capacity_range.as_ref())?;
        let creds = os_credentials(&req.secrets)?;
        let backend = self.driver.manila()?;
        let m = backend.client(&creds);
        let share = m
            .share(&req.volume_id)
            .await
            .map_err(|e| status::manila(&e))?
            .ok_or_else(|| Status::not_found(format!("volume {} not found", req.volume_id)))?;
        let share = if share.size >= size {
            share
        } else {
            if share.status != "available" {
                return Err(Status::aborted(format!(
                    "share {} is {}; retry once it is available",
                    share.id, share.status
                )));
            }
            m.extend(&share.id, size)
                .await
                .map_err(|e| status::manila(&e))?;
            let id = share.id.clone();
            let mut backoff = self.backoff();
            loop {
                match m.share(&id).await.map_err(|e| status::manila(&e))? {
                    Some(s) if s.status == "available" && s.size >= size => break s,
                    Some(s) if FAILED.contains(&s.status.as_str()) => {
                        return Err(Status::internal(format!(
                            "extending share {id} failed ({})",
                            s.status
                        )));
                    }
                    Some(_) => {}
                    None => return Err(Status::not_found(format!("volume {id} disappeared"))),
                }
                if !backoff.wait().await {
                    return Err(Status::deadline_exceeded(format!(
                        "share {id} is still being extended; retry to keep waiting"
                    )));
                }
            }
        };
        Ok(ControllerExpandVolumeResponse {
            capacity_bytes: bytes(share.size),
            node_expansion_required: false,
        })
    }

    async fn create_snapshot(
        &self,
        req: CreateSnapshotRequest,
    ) -> Result<CreateSnapshotResponse, Status> {
        let creds = os_credentials(&req.secrets)?;
        let backend = self.driver.manila()?;
        let m = backend.client(&creds);
        let mut named = m
            .snapshots_named(&req.name)
            .await
            .map_err(|e| status::manila(&e))?;
        let snap = match named.len() {
            0 => m
                .create_snapshot(&req.source_volume_id, &req.name)
                .await
                .map_err(|e| match e {
                    ManilaError::NotFound(_) => {
                        Status::not_found(format!("volume {} not found", req.source_volume_id))
                    }
                    e => status::manila(&e),
                })?,
            1 => {
                let s = named.remove(0);
                if s.share_id != req.source_volume_id {
                    return Err(Status::already_exists(format!(
                        "snapshot {} is of volume {}, not {}",
                        req.name, s.share_id, req.source_volume_id
                    )));
                }
                s
            }
            n => {
                return Err(Status::internal(format!(
                    "{n} snapshots are named {}; remove all but one",
                    req.name
                )));
            }
        };
        // Wait a while for it to be ready; if it is not, the CO asks again.
        let id = snap.id.clone();
        let mut last = snap;
        let mut backoff = self.backoff();
        while last.status != "available" {
            if last.status == "error" {
                if let Err(e) = m.delete_snapshot(&id).await {
                    tracing::warn!(snapshot = %id, error = %e, "could not delete a failed snapshot");
                }
                return Err(Status::internal(format!(
                    "snapshot {id} went to error; it was deleted"
                )));
            }
            if !backoff.wait().await {
                break;
            }
            last = m
                .snapshot(&id)
                .await
                .map_err(|e| status::manila(&e))?
                .ok_or_else(|| Status::aborted(format!("snapshot {id} disappeared")))?;
        }
        Ok(CreateSnapshotResponse {
            snapshot: Some(Self::snapshot_view(&last)),
        })
    }

    async fn delete_snapshot(
        &self,
        req: DeleteSnapshotRequest,
    ) -> Result<DeleteSnapshotResponse, Status> {
        let creds = os_credentials(&req.secrets)?;
        let backend = self.driver.manila()?;
        let m = backend.client(&creds);
        let id = req.snapshot_id.as_str();
        let Some(snap) = m.snapshot(id).await.map_err(|e| status::manila(&e))? else {
            return Ok(DeleteSnapshotResponse {});
        };
        // As for shares: a racing CreateSnapshot of the same name holds this lock.
        let _name = snap
            .name
            .as_deref()
            .map(|n| self.driver.locks.hold(Held::SnapshotName(n)))
            .transpose()?;
        if snap.status != "deleting" {
            m.delete_snapshot(id)
                .await
                .map_err(|e| status::manila(&e))?;
        }
        let mut backoff = self.backoff();
        loop {
            match m.snapshot(id).await.map_err(|e| status::manila(&e))? {
                None => return Ok(DeleteSnapshotResponse {}),
                Some(s) if s.status == "error_deleting" => {
                    return Err(Status::internal(format!(
                        "Manila failed to delete snapshot {id} (error_deleting)"
                    )));
                }
                Some(_) => {}
            }
            if !backoff.wait().await {
                return Err(Status::deadline_exceeded(format!(
                    "snapshot {id} is still being deleted; retry to keep waiting"
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_whole_gib() {
        let r = |req: i64, limit: i64| {
            size_gib(Some(&CapacityRange {
                required_bytes: req,
                limit_bytes: limit,
            }))
        };
        assert_eq!(size_gib(None).unwrap(), 1);
        assert_eq!(r(0, 0).unwrap(), 1);
        assert_eq!(r(1, 0).unwrap(), 1);
        assert_eq!(r(1 << 30, 0).unwrap(), 1);
        assert_eq!(r((1 << 30) + 1, 0).unwrap(), 2);
        assert_eq!(r(5 << 29, 3 << 30).unwrap(), 3);
        assert_eq!(
            r((1 << 30) + 1, 1 << 30).unwrap_err().code(),
            tonic::Code::OutOfRange
        );
        assert_eq!(r(-1, 0).unwrap_err().code(), tonic::Code::InvalidArgument);
    }
}
