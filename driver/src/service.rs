//! The CSI boundary. Every RPC goes through [`serve`]: the request's sizes are checked
//! ([`crate::edge`]), a span names the plugin's node, the method and the volume (one
//! process may hold hundreds of plugins), the per-volume lock is taken, the call is timed
//! and counted once ([`Driver::observe`]).
//!
//! [`Controller`] is the one tonic Controller service, generic over a
//! [`ControllerBackend`] (CephFS, Manila). It answers the optional RPCs a back end does
//! not advertise with UNIMPLEMENTED (CSI: a CO calls only what is advertised), so a back
//! end implements what it supports and nothing else.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use crate::csi::v1::controller_server::Controller as ControllerRpc;
use crate::csi::v1::controller_service_capability::rpc::Type as Capability;
use crate::csi::v1::*;
use crate::edge::{Edge, shown};
use crate::instance::Driver;
use crate::locks::Held;

/// Runs one RPC body: the edge check, the lock on `held` (none for an empty name or
/// ID: the body refuses those), the call in a span `csi{node, method, volume}`, the
/// metrics and the log line of its outcome.
pub(crate) async fn serve<Q, F>(
    driver: &Driver,
    method: &'static str,
    volume: &str,
    held: Option<Held<'_>>,
    req: Q,
    call: impl FnOnce(Q) -> F,
) -> Result<Response<Q::Reply>, Status>
where
    Q: Edge,
    F: Future<Output = Result<Q::Reply, Status>>,
{
    let started = Instant::now();
    let span = tracing::info_span!(
        "csi",
        node = %driver.config.node_id,
        method,
        volume = %shown(volume),
    );
    let r = async {
        if let Some(reply) = req.edge()? {
            return Ok(reply);
        }
        let _guard = match held {
            Some(Held::VolumeName("") | Held::SnapshotName("") | Held::Id("")) | None => None,
            Some(h) => Some(driver.locks.hold(h)?),
        };
        call(req).await
    }
    .instrument(span.clone())
    .await;
    span.in_scope(|| driver.observe(method, started, &r));
    r.map(Response::new)
}

/// A ControllerGetCapabilities answer listing these RPC capabilities.
pub(crate) fn capabilities_reply(
    kinds: impl IntoIterator<Item = Capability>,
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

/// What a storage back end does for the Controller service. The service has checked
/// the request's sizes and holds the lock of its name or ID (CreateVolume and
/// CreateSnapshot: the name; DeleteVolume, ControllerExpandVolume, DeleteSnapshot: the
/// ID); a back end takes any further lock itself. The optional RPCs are called only when
/// [`capabilities`](Self::capabilities) lists theirs.
#[tonic::async_trait]
pub trait ControllerBackend: Send + Sync + std::fmt::Debug + 'static {
    /// The RPC capabilities this back end advertises.
    fn capabilities(&self) -> Vec<Capability>;

    /// Why an optional capability is not advertised, for UNIMPLEMENTED's message.
    fn why_not(&self, capability: Capability) -> String {
        format!("{} is not advertised", capability.as_str_name())
    }

    /// CreateVolume; a clone may be waited for within `wait`.
    async fn create_volume(
        &self,
        req: CreateVolumeRequest,
        wait: Duration,
    ) -> Result<CreateVolumeResponse, Status>;

    /// DeleteVolume.
    async fn delete_volume(&self, req: DeleteVolumeRequest)
    -> Result<DeleteVolumeResponse, Status>;

    /// ValidateVolumeCapabilities.
    async fn validate_volume_capabilities(
        &self,
        req: ValidateVolumeCapabilitiesRequest,
    ) -> Result<ValidateVolumeCapabilitiesResponse, Status>;

    /// ControllerExpandVolume (EXPAND_VOLUME).
    async fn expand_volume(
        &self,
        req: ControllerExpandVolumeRequest,
    ) -> Result<ControllerExpandVolumeResponse, Status>;

    /// CreateSnapshot (CREATE_DELETE_SNAPSHOT).
    async fn create_snapshot(
        &self,
        req: CreateSnapshotRequest,
    ) -> Result<CreateSnapshotResponse, Status>;

    /// DeleteSnapshot (CREATE_DELETE_SNAPSHOT).
    async fn delete_snapshot(
        &self,
        req: DeleteSnapshotRequest,
    ) -> Result<DeleteSnapshotResponse, Status>;

    /// ControllerPublishVolume (PUBLISH_UNPUBLISH_VOLUME).
    async fn publish_volume(
        &self,
        _req: ControllerPublishVolumeRequest,
    ) -> Result<ControllerPublishVolumeResponse, Status> {
        Err(not_implemented("ControllerPublishVolume"))
    }

    /// ControllerUnpublishVolume (PUBLISH_UNPUBLISH_VOLUME).
    async fn unpublish_volume(
        &self,
        _req: ControllerUnpublishVolumeRequest,
    ) -> Result<ControllerUnpublishVolumeResponse, Status> {
        Err(not_implemented("ControllerUnpublishVolume"))
    }

    /// ListVolumes (LIST_VOLUMES).
    async fn list_volumes(&self, _req: ListVolumesRequest) -> Result<ListVolumesResponse, Status> {
        Err(not_implemented("ListVolumes"))
    }

    /// GetCapacity (GET_CAPACITY).
    async fn get_capacity(&self, _req: GetCapacityRequest) -> Result<GetCapacityResponse, Status> {
        Err(not_implemented("GetCapacity"))
    }

    /// ListSnapshots (LIST_SNAPSHOTS).
    async fn list_snapshots(
        &self,
        _req: ListSnapshotsRequest,
    ) -> Result<ListSnapshotsResponse, Status> {
        Err(not_implemented("ListSnapshots"))
    }

    /// GetSnapshot (GET_SNAPSHOT).
    async fn get_snapshot(&self, _req: GetSnapshotRequest) -> Result<GetSnapshotResponse, Status> {
        Err(not_implemented("GetSnapshot"))
    }

    /// ControllerGetVolume (GET_VOLUME).
    async fn get_volume(
        &self,
        _req: ControllerGetVolumeRequest,
    ) -> Result<ControllerGetVolumeResponse, Status> {
        Err(not_implemented("ControllerGetVolume"))
    }
}

fn not_implemented(method: &str) -> Status {
    Status::unimplemented(format!("{method} is not implemented by this back end"))
}

/// The Controller service of a driver over a back end.
#[derive(Debug)]
pub struct Controller<B> {
    driver: Arc<Driver>,
    backend: B,
}

impl<B: ControllerBackend> Controller<B> {
    /// The service of `driver` over `backend`.
    pub fn with_backend(driver: Arc<Driver>, backend: B) -> Self {
        Self { driver, backend }
    }

    /// The back end.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// UNIMPLEMENTED unless the back end advertises `capability`.
    fn advertised(&self, method: &str, capability: Capability) -> Result<(), Status> {
        if self.backend.capabilities().contains(&capability) {
            return Ok(());
        }
        Err(Status::unimplemented(format!(
            "{method} is not supported: {}",
            self.backend.why_not(capability)
        )))
    }
}

#[tonic::async_trait]
impl<B: ControllerBackend> ControllerRpc for Controller<B> {
    async fn create_volume(
        &self,
        r: Request<CreateVolumeRequest>,
    ) -> Result<Response<CreateVolumeResponse>, Status> {
        let wait = crate::wait::budget(
            self.driver.config.clone_wait,
            crate::wait::caller_timeout(r.metadata()),
        );
        let req = r.into_inner();
        let name = req.name.clone();
        let held = Some(Held::VolumeName(&name));
        serve(&self.driver, "CreateVolume", &name, held, req, |q| {
            self.backend.create_volume(q, wait)
        })
        .await
    }

    async fn delete_volume(
        &self,
        r: Request<DeleteVolumeRequest>,
    ) -> Result<Response<DeleteVolumeResponse>, Status> {
        let req = r.into_inner();
        let id = req.volume_id.clone();
        serve(
            &self.driver,
            "DeleteVolume",
            &id,
            Some(Held::Id(&id)),
            req,
            |q| self.backend.delete_volume(q),
        )
        .await
    }

    async fn controller_publish_volume(
        &self,
        r: Request<ControllerPublishVolumeRequest>,
    ) -> Result<Response<ControllerPublishVolumeResponse>, Status> {
        self.advertised(
            "ControllerPublishVolume",
            Capability::PublishUnpublishVolume,
        )?;
        let req = r.into_inner();
        let id = req.volume_id.clone();
        serve(
            &self.driver,
            "ControllerPublishVolume",
            &id,
            None,
            req,
            |q| self.backend.publish_volume(q),
        )
        .await
    }

    async fn controller_unpublish_volume(
        &self,
        r: Request<ControllerUnpublishVolumeRequest>,
    ) -> Result<Response<ControllerUnpublishVolumeResponse>, Status> {
        self.advertised(
            "ControllerUnpublishVolume",
            Capability::PublishUnpublishVolume,
        )?;
        let req = r.into_inner();
        let id = req.volume_id.clone();
        serve(
            &self.driver,
            "ControllerUnpublishVolume",
            &id,
            None,
            req,
            |q| self.backend.unpublish_volume(q),
        )
        .await
    }

    async fn validate_volume_capabilities(
        &self,
        r: Request<ValidateVolumeCapabilitiesRequest>,
    ) -> Result<Response<ValidateVolumeCapabilitiesResponse>, Status> {
        let req = r.into_inner();
        let id = req.volume_id.clone();
        serve(
            &self.driver,
            "ValidateVolumeCapabilities",
            &id,
            None,
            req,
            |q| self.backend.validate_volume_capabilities(q),
        )
        .await
    }

    async fn list_volumes(
        &self,
        r: Request<ListVolumesRequest>,
    ) -> Result<Response<ListVolumesResponse>, Status> {
        self.advertised("ListVolumes", Capability::ListVolumes)?;
        let req = r.into_inner();
        let token = req.starting_token.clone();
        serve(&self.driver, "ListVolumes", &token, None, req, |q| {
            self.backend.list_volumes(q)
        })
        .await
    }

    async fn get_capacity(
        &self,
        r: Request<GetCapacityRequest>,
    ) -> Result<Response<GetCapacityResponse>, Status> {
        self.advertised("GetCapacity", Capability::GetCapacity)?;
        let req = r.into_inner();
        serve(&self.driver, "GetCapacity", "", None, req, |q| {
            self.backend.get_capacity(q)
        })
        .await
    }

    async fn controller_get_capabilities(
        &self,
        _r: Request<ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<ControllerGetCapabilitiesResponse>, Status> {
        Ok(Response::new(capabilities_reply(
            self.backend.capabilities(),
        )))
    }

    async fn create_snapshot(
        &self,
        r: Request<CreateSnapshotRequest>,
    ) -> Result<Response<CreateSnapshotResponse>, Status> {
        self.advertised("CreateSnapshot", Capability::CreateDeleteSnapshot)?;
        let req = r.into_inner();
        let name = req.name.clone();
        let held = Some(Held::SnapshotName(&name));
        serve(&self.driver, "CreateSnapshot", &name, held, req, |q| {
            self.backend.create_snapshot(q)
        })
        .await
    }

    async fn delete_snapshot(
        &self,
        r: Request<DeleteSnapshotRequest>,
    ) -> Result<Response<DeleteSnapshotResponse>, Status> {
        self.advertised("DeleteSnapshot", Capability::CreateDeleteSnapshot)?;
        let req = r.into_inner();
        let id = req.snapshot_id.clone();
        serve(
            &self.driver,
            "DeleteSnapshot",
            &id,
            Some(Held::Id(&id)),
            req,
            |q| self.backend.delete_snapshot(q),
        )
        .await
    }

    async fn list_snapshots(
        &self,
        r: Request<ListSnapshotsRequest>,
    ) -> Result<Response<ListSnapshotsResponse>, Status> {
        self.advertised("ListSnapshots", Capability::ListSnapshots)?;
        let req = r.into_inner();
        let id = req.snapshot_id.clone();
        serve(&self.driver, "ListSnapshots", &id, None, req, |q| {
            self.backend.list_snapshots(q)
        })
        .await
    }

    async fn get_snapshot(
        &self,
        r: Request<GetSnapshotRequest>,
    ) -> Result<Response<GetSnapshotResponse>, Status> {
        self.advertised("GetSnapshot", Capability::GetSnapshot)?;
        let req = r.into_inner();
        let id = req.snapshot_id.clone();
        serve(&self.driver, "GetSnapshot", &id, None, req, |q| {
            self.backend.get_snapshot(q)
        })
        .await
    }

    async fn controller_expand_volume(
        &self,
        r: Request<ControllerExpandVolumeRequest>,
    ) -> Result<Response<ControllerExpandVolumeResponse>, Status> {
        self.advertised("ControllerExpandVolume", Capability::ExpandVolume)?;
        let req = r.into_inner();
        let id = req.volume_id.clone();
        serve(
            &self.driver,
            "ControllerExpandVolume",
            &id,
            Some(Held::Id(&id)),
            req,
            |q| self.backend.expand_volume(q),
        )
        .await
    }

    async fn controller_get_volume(
        &self,
        r: Request<ControllerGetVolumeRequest>,
    ) -> Result<Response<ControllerGetVolumeResponse>, Status> {
        self.advertised("ControllerGetVolume", Capability::GetVolume)?;
        let req = r.into_inner();
        let id = req.volume_id.clone();
        serve(&self.driver, "ControllerGetVolume", &id, None, req, |q| {
            self.backend.get_volume(q)
        })
        .await
    }

    async fn controller_modify_volume(
        &self,
        _r: Request<ControllerModifyVolumeRequest>,
    ) -> Result<Response<ControllerModifyVolumeResponse>, Status> {
        self.advertised("ControllerModifyVolume", Capability::ModifyVolume)?;
        Err(not_implemented("ControllerModifyVolume"))
    }
}
