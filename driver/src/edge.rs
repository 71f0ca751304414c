//! The CSI boundary's size limits: every ID, name and path of a request is bounded
//! before a handler sees it, so nothing unbounded is echoed into an error (whose text
//! travels in a gRPC header) or a log line.
//!
//! CSI's "Size Limits" make 128 bytes the limit of a string field; our volume and
//! snapshot IDs, and the names a CO sends, are shorter. So a longer ID names nothing of
//! ours: lookups answer NotFound, deletions and unpublishes succeed (CSI: nothing to
//! remove), a page token is invalid (Aborted); a longer name is InvalidArgument, and so
//! is a path longer than PATH_MAX.

use tonic::Status;

use crate::csi::v1::*;

/// CSI's limit of a string field, in bytes.
pub const MAX_STRING: usize = 128;
/// The longest path a request may carry (Linux's PATH_MAX).
pub const MAX_PATH: usize = 4096;

/// A request checked at the edge: `Ok(Some(reply))` answers it without the handler
/// (a deletion of something that cannot exist), `Ok(None)` lets it through.
pub(crate) trait Edge {
    /// The RPC's reply.
    type Reply;
    /// The check.
    fn edge(&self) -> Result<Option<Self::Reply>, Status>;
}

fn long(v: &str) -> bool {
    v.len() > MAX_STRING
}

/// NotFound for an ID too long to be ours (the ID itself is not echoed).
fn unknown(what: &str, v: &str) -> Status {
    Status::not_found(format!(
        "no {what} has an ID of {} bytes (CSI allows {MAX_STRING})",
        v.len()
    ))
}

fn name(field: &str, v: &str) -> Result<(), Status> {
    if long(v) {
        return Err(Status::invalid_argument(format!(
            "{field} is {} bytes long; CSI allows {MAX_STRING}",
            v.len()
        )));
    }
    Ok(())
}

fn id(what: &str, v: &str) -> Result<(), Status> {
    if long(v) {
        return Err(unknown(what, v));
    }
    Ok(())
}

fn path(field: &str, v: &str) -> Result<(), Status> {
    if v.len() > MAX_PATH {
        return Err(Status::invalid_argument(format!(
            "{field} is {} bytes long; paths are at most {MAX_PATH}",
            v.len()
        )));
    }
    Ok(())
}

fn token(v: &str) -> Result<(), Status> {
    if long(v) {
        // CSI: an invalid starting_token is Aborted.
        return Err(Status::aborted(format!(
            "invalid starting_token of {} bytes",
            v.len()
        )));
    }
    Ok(())
}

/// At most [`MAX_STRING`] bytes of `v`, for a log line.
pub(crate) fn shown(v: &str) -> String {
    if v.len() <= MAX_STRING {
        return v.to_owned();
    }
    let mut end = MAX_STRING;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &v[..end], v.len())
}

macro_rules! pass {
    ($($t:ty => $r:ty),* $(,)?) => {$(
        impl Edge for $t {
            type Reply = $r;
            fn edge(&self) -> Result<Option<$r>, Status> {
                Ok(None)
            }
        }
    )*};
}

pass!(GetCapacityRequest => GetCapacityResponse);

impl Edge for CreateVolumeRequest {
    type Reply = CreateVolumeResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        name("name", &self.name)?;
        match self
            .volume_content_source
            .as_ref()
            .and_then(|s| s.r#type.as_ref())
        {
            Some(volume_content_source::Type::Snapshot(s)) => id("snapshot", &s.snapshot_id)?,
            Some(volume_content_source::Type::Volume(v)) => id("volume", &v.volume_id)?,
            None => {}
        }
        Ok(None)
    }
}

impl Edge for DeleteVolumeRequest {
    type Reply = DeleteVolumeResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        Ok(long(&self.volume_id).then_some(DeleteVolumeResponse {}))
    }
}

impl Edge for ControllerPublishVolumeRequest {
    type Reply = ControllerPublishVolumeResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        id("volume", &self.volume_id)?;
        id("node", &self.node_id)?;
        Ok(None)
    }
}

impl Edge for ControllerUnpublishVolumeRequest {
    type Reply = ControllerUnpublishVolumeResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        Ok((long(&self.volume_id) || long(&self.node_id))
            .then_some(ControllerUnpublishVolumeResponse {}))
    }
}

impl Edge for ValidateVolumeCapabilitiesRequest {
    type Reply = ValidateVolumeCapabilitiesResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        id("volume", &self.volume_id).map(|()| None)
    }
}

impl Edge for ListVolumesRequest {
    type Reply = ListVolumesResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        token(&self.starting_token).map(|()| None)
    }
}

impl Edge for CreateSnapshotRequest {
    type Reply = CreateSnapshotResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        name("name", &self.name)?;
        id("volume", &self.source_volume_id)?;
        Ok(None)
    }
}

impl Edge for DeleteSnapshotRequest {
    type Reply = DeleteSnapshotResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        Ok(long(&self.snapshot_id).then_some(DeleteSnapshotResponse {}))
    }
}

impl Edge for ListSnapshotsRequest {
    type Reply = ListSnapshotsResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        token(&self.starting_token)?;
        // No snapshot has such an ID, and no volume: nothing matches.
        Ok((long(&self.snapshot_id) || long(&self.source_volume_id))
            .then(ListSnapshotsResponse::default))
    }
}

impl Edge for GetSnapshotRequest {
    type Reply = GetSnapshotResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        id("snapshot", &self.snapshot_id).map(|()| None)
    }
}

impl Edge for ControllerExpandVolumeRequest {
    type Reply = ControllerExpandVolumeResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        id("volume", &self.volume_id).map(|()| None)
    }
}

impl Edge for ControllerGetVolumeRequest {
    type Reply = ControllerGetVolumeResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        id("volume", &self.volume_id).map(|()| None)
    }
}

impl Edge for NodeStageVolumeRequest {
    type Reply = NodeStageVolumeResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        id("volume", &self.volume_id)?;
        path("staging_target_path", &self.staging_target_path)?;
        Ok(None)
    }
}

impl Edge for NodeUnstageVolumeRequest {
    type Reply = NodeUnstageVolumeResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        id("volume", &self.volume_id)?;
        path("staging_target_path", &self.staging_target_path)?;
        Ok(None)
    }
}

impl Edge for NodePublishVolumeRequest {
    type Reply = NodePublishVolumeResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        id("volume", &self.volume_id)?;
        path("staging_target_path", &self.staging_target_path)?;
        path("target_path", &self.target_path)?;
        Ok(None)
    }
}

impl Edge for NodeUnpublishVolumeRequest {
    type Reply = NodeUnpublishVolumeResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        id("volume", &self.volume_id)?;
        path("target_path", &self.target_path)?;
        Ok(None)
    }
}

impl Edge for NodeGetVolumeStatsRequest {
    type Reply = NodeGetVolumeStatsResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        id("volume", &self.volume_id)?;
        if self.volume_path.len() > MAX_PATH {
            return Err(Status::not_found(format!(
                "no volume at a path of {} bytes",
                self.volume_path.len()
            )));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn code<R>(r: Result<Option<R>, Status>) -> &'static str {
        match r {
            Ok(None) => "through",
            Ok(Some(_)) => "answered",
            Err(s) if s.code() == Code::NotFound => "NotFound",
            Err(s) if s.code() == Code::InvalidArgument => "InvalidArgument",
            Err(s) if s.code() == Code::Aborted => "Aborted",
            Err(_) => "other",
        }
    }

    #[test]
    fn ids_names_and_paths_are_bounded() {
        let ok = "x".repeat(MAX_STRING);
        let big = "x".repeat(3 << 20);
        let vol = |v: &str| ControllerExpandVolumeRequest {
            volume_id: v.to_owned(),
            ..Default::default()
        };
        assert_eq!(code(vol(&ok).edge()), "through");
        assert_eq!(code(vol(&big).edge()), "NotFound");
        let e = vol(&big).edge().unwrap_err();
        assert!(e.message().len() < 100, "{}", e.message());
        let create = |n: &str| CreateVolumeRequest {
            name: n.to_owned(),
            ..Default::default()
        };
        assert_eq!(code(create(&ok).edge()), "through");
        assert_eq!(code(create(&big).edge()), "InvalidArgument");
        let del = |v: &str| DeleteVolumeRequest {
            volume_id: v.to_owned(),
            ..Default::default()
        };
        assert_eq!(code(del(&ok).edge()), "through");
        assert_eq!(code(del(&big).edge()), "answered");
        let list = ListVolumesRequest {
            starting_token: big.clone(),
            ..Default::default()
        };
        assert_eq!(code(list.edge()), "Aborted");
        let publish = NodePublishVolumeRequest {
            volume_id: ok.clone(),
            target_path: "/".repeat(MAX_PATH + 1),
            ..Default::default()
        };
        assert_eq!(code(publish.edge()), "InvalidArgument");
        let snaps = ListSnapshotsRequest {
            source_volume_id: big.clone(),
            ..Default::default()
        };
        assert!(snaps.edge().unwrap().unwrap().entries.is_empty());
        assert_eq!(shown(&ok), ok);
        assert!(shown(&big).len() < 200);
        assert!(shown(&"é".repeat(100)).ends_with("(200 bytes)"));
    }
}
