//! The CSI boundary's argument checks, made before a handler sees a request: the
//! fields CSI requires of a Controller request (InvalidArgument when missing, whatever
//! the back end), the volume capabilities a CephFS volume can have, and size limits:
//! every ID, name and path of a request is bounded, so nothing unbounded is echoed
//! into an error (whose text travels in a gRPC header) or a log line.
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

/// InvalidArgument when a field CSI requires is empty.
fn required(field: &str, v: &str) -> Result<(), Status> {
    if v.is_empty() {
        return Err(Status::invalid_argument(format!("{field} missing")));
    }
    Ok(())
}

/// Volume capabilities a CephFS volume can have: mount access (not block) with a known
/// access mode; at least one.
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

/// ValidateVolumeCapabilities' answer for a volume that exists: its capabilities
/// confirmed, with the context and parameters it was asked about, or the reason they
/// are not.
pub(crate) fn verdict(
    req: ValidateVolumeCapabilitiesRequest,
) -> ValidateVolumeCapabilitiesResponse {
    match check_caps(&req.volume_capabilities) {
        Ok(()) => ValidateVolumeCapabilitiesResponse {
            confirmed: Some(validate_volume_capabilities_response::Confirmed {
                volume_context: req.volume_context,
                volume_capabilities: req.volume_capabilities,
                parameters: req.parameters,
                mutable_parameters: Default::default(),
            }),
            message: String::new(),
        },
        Err(e) => ValidateVolumeCapabilitiesResponse {
            confirmed: None,
            message: e.message().to_owned(),
        },
    }
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
        required("name", &self.name)?;
        name("name", &self.name)?;
        check_caps(&self.volume_capabilities)?;
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
        required("volume_id", &self.volume_id)?;
        Ok(long(&self.volume_id).then_some(DeleteVolumeResponse {}))
    }
}

impl Edge for ControllerPublishVolumeRequest {
    type Reply = ControllerPublishVolumeResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        required("volume_id", &self.volume_id)?;
        required("node_id", &self.node_id)?;
        let cap = self
            .volume_capability
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("volume_capability missing"))?;
        check_caps(std::slice::from_ref(cap))?;
        id("volume", &self.volume_id)?;
        id("node", &self.node_id)?;
        Ok(None)
    }
}

impl Edge for ControllerUnpublishVolumeRequest {
    type Reply = ControllerUnpublishVolumeResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        required("volume_id", &self.volume_id)?;
        Ok((long(&self.volume_id) || long(&self.node_id))
            .then_some(ControllerUnpublishVolumeResponse {}))
    }
}

impl Edge for ValidateVolumeCapabilitiesRequest {
    type Reply = ValidateVolumeCapabilitiesResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        required("volume_id", &self.volume_id)?;
        if self.volume_capabilities.is_empty() {
            return Err(Status::invalid_argument("volume_capabilities missing"));
        }
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
        required("name", &self.name)?;
        required("source_volume_id", &self.source_volume_id)?;
        name("name", &self.name)?;
        id("volume", &self.source_volume_id)?;
        Ok(None)
    }
}

impl Edge for DeleteSnapshotRequest {
    type Reply = DeleteSnapshotResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        required("snapshot_id", &self.snapshot_id)?;
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
        required("snapshot_id", &self.snapshot_id)?;
        id("snapshot", &self.snapshot_id).map(|()| None)
    }
}

impl Edge for ControllerExpandVolumeRequest {
    type Reply = ControllerExpandVolumeResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        required("volume_id", &self.volume_id)?;
        if self.capacity_range.is_none() {
            return Err(Status::invalid_argument("capacity_range missing"));
        }
        id("volume", &self.volume_id).map(|()| None)
    }
}

impl Edge for ControllerGetVolumeRequest {
    type Reply = ControllerGetVolumeResponse;
    fn edge(&self) -> Result<Option<Self::Reply>, Status> {
        required("volume_id", &self.volume_id)?;
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
            capacity_range: Some(CapacityRange::default()),
            ..Default::default()
        };
        assert_eq!(code(vol(&ok).edge()), "through");
        assert_eq!(code(vol(&big).edge()), "NotFound");
        let e = vol(&big).edge().unwrap_err();
        assert!(e.message().len() < 100, "{}", e.message());
        let create = |n: &str| CreateVolumeRequest {
            name: n.to_owned(),
            volume_capabilities: vec![mount(
                volume_capability::access_mode::Mode::SingleNodeWriter,
            )],
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

    fn mount(mode: volume_capability::access_mode::Mode) -> VolumeCapability {
        VolumeCapability {
            access_type: Some(volume_capability::AccessType::Mount(
                volume_capability::MountVolume::default(),
            )),
            access_mode: Some(volume_capability::AccessMode { mode: mode as i32 }),
        }
    }

    /// A field CSI requires is InvalidArgument when missing, before any back end sees
    /// the request; so are capabilities a CephFS volume cannot have.
    #[test]
    fn required_fields_and_capabilities_are_checked() {
        use volume_capability::access_mode::Mode;
        let cap = mount(Mode::MultiNodeMultiWriter);
        let create = |name: &str, caps: Vec<VolumeCapability>| CreateVolumeRequest {
            name: name.to_owned(),
            volume_capabilities: caps,
            ..Default::default()
        };
        assert_eq!(code(create("pvc", vec![cap.clone()]).edge()), "through");
        assert_eq!(
            code(create("", vec![cap.clone()]).edge()),
            "InvalidArgument"
        );
        assert_eq!(code(create("pvc", vec![]).edge()), "InvalidArgument");
        let block = VolumeCapability {
            access_type: Some(volume_capability::AccessType::Block(
                volume_capability::BlockVolume::default(),
            )),
            ..cap.clone()
        };
        assert_eq!(code(create("pvc", vec![block]).edge()), "InvalidArgument");
        assert_eq!(
            code(create("pvc", vec![mount(Mode::Unknown)]).edge()),
            "InvalidArgument"
        );
        let e = create("", vec![cap.clone()]).edge().unwrap_err();
        assert_eq!(e.message(), "name missing");
        assert_eq!(
            code(DeleteVolumeRequest::default().edge()),
            "InvalidArgument"
        );
        assert_eq!(
            code(DeleteSnapshotRequest::default().edge()),
            "InvalidArgument"
        );
        assert_eq!(
            code(GetSnapshotRequest::default().edge()),
            "InvalidArgument"
        );
        assert_eq!(
            code(ControllerGetVolumeRequest::default().edge()),
            "InvalidArgument"
        );
        assert_eq!(
            code(ControllerUnpublishVolumeRequest::default().edge()),
            "InvalidArgument"
        );
        let snap = |name: &str, source: &str| CreateSnapshotRequest {
            name: name.to_owned(),
            source_volume_id: source.to_owned(),
            ..Default::default()
        };
        assert_eq!(code(snap("s", "v").edge()), "through");
        assert_eq!(code(snap("", "v").edge()), "InvalidArgument");
        assert_eq!(code(snap("s", "").edge()), "InvalidArgument");
        let expand = ControllerExpandVolumeRequest {
            volume_id: "v".into(),
            ..Default::default()
        };
        assert_eq!(code(expand.edge()), "InvalidArgument");
        let validate = ValidateVolumeCapabilitiesRequest {
            volume_id: "v".into(),
            ..Default::default()
        };
        assert_eq!(code(validate.edge()), "InvalidArgument");
        let publish = |node: &str, cap: Option<VolumeCapability>| ControllerPublishVolumeRequest {
            volume_id: "v".into(),
            node_id: node.to_owned(),
            volume_capability: cap,
            ..Default::default()
        };
        assert_eq!(code(publish("n", Some(cap.clone())).edge()), "through");
        assert_eq!(
            code(publish("", Some(cap.clone())).edge()),
            "InvalidArgument"
        );
        assert_eq!(code(publish("n", None).edge()), "InvalidArgument");
    }
}
