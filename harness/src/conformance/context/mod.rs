//! What a check sees: the clients, the configuration, the advertised capabilities
//! ([`caps`]), its scratch directories, and the list of what it created and its
//! cleanup ([`cleanup`]). Imports [`super::paths`] and [`crate::client`], the CSI-client
//! toolkit.

mod caps;
mod cleanup;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use driver::csi::v1::controller_client::ControllerClient;
use driver::csi::v1::group_controller_client::GroupControllerClient;
use driver::csi::v1::identity_client::IdentityClient;
use driver::csi::v1::node_client::NodeClient;
use driver::csi::v1::*;
use tonic::transport::Channel;
use tonic::{Code, Status};

pub use self::caps::Caps;
use self::cleanup::Registered;
pub use self::cleanup::{CleanupStyle, Resource};
use super::paths::{PathHooks, PathKind};
pub use crate::client::call::describe;
use crate::client::call::repeat_aborted;
use crate::client::input::{Params, Secrets};
pub use crate::client::request::AccessType;
use crate::client::request::Requests;
pub use crate::client::unique;

/// Why a check did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not applicable to this driver (the reason says which capability is missing).
    Skip(String),
    /// A rule was broken (the message is the failing assertion).
    Fail(String),
}

/// A check's result.
pub type Outcome = Result<(), Verdict>;

/// A check's body.
pub type CheckFn = fn(Ctx) -> Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// Fails the check with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::conformance::context::Verdict::Fail(format!($($arg)+)));
        }
    };
}
pub(crate) use ensure;

/// A failure verdict.
pub fn fail(msg: impl Into<String>) -> Verdict {
    Verdict::Fail(msg.into())
}

/// A skip verdict.
pub fn skip(reason: impl Into<String>) -> Verdict {
    Verdict::Skip(reason.into())
}

/// The response of a call that must succeed.
pub fn ok<T>(rpc: &str, r: Result<tonic::Response<T>, Status>) -> Result<T, Verdict> {
    r.map(tonic::Response::into_inner)
        .map_err(|s| fail(format!("{rpc} failed: {}", describe(&s))))
}

/// Passes when the call failed with one of `want`.
pub fn expect_code<T>(rpc: &str, r: Result<tonic::Response<T>, Status>, want: &[Code]) -> Outcome {
    match r {
        Ok(_) => Err(fail(format!("{rpc}: expected {}, got OK", codes(want)))),
        Err(s) if want.contains(&s.code()) => Ok(()),
        Err(s) => Err(fail(format!(
            "{rpc}: expected {}, got {}",
            codes(want),
            describe(&s)
        ))),
    }
}

fn codes(want: &[Code]) -> String {
    want.iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Everything the bench was told, and what it found out once at the start.
#[derive(Debug)]
pub struct Shared {
    /// Identity on `--endpoint` (the node plugin's).
    pub identity: IdentityClient<Channel>,
    /// Identity on `--controller-endpoint`, when that is another endpoint.
    pub identity_ctrl: Option<IdentityClient<Channel>>,
    pub controller: ControllerClient<Channel>,
    pub group: GroupControllerClient<Channel>,
    pub node: NodeClient<Channel>,
    pub params: Params,
    pub snapshot_params: Params,
    pub mutable_params: Params,
    pub secrets: Secrets,
    pub volume_size: i64,
    pub expand_size: i64,
    pub concurrency: usize,
    pub idempotent_count: usize,
    pub restart_cmd: Option<String>,
    pub restart_timeout: Duration,
    /// How long sequential calls answered Aborted are retried (zero: never, as csi-sanity).
    pub aborted_retry: Duration,
    /// How long the bench's own undo retries calls answered Aborted.
    pub cleanup_retry: Duration,
    pub attach_limit: bool,
    /// The access type of every capability sent.
    pub access_type: AccessType,
    /// How the CO's paths are made, checked and removed.
    pub paths: PathHooks,
    pub caps: Caps,
}

/// csi-sanity's made-up volume ID that drivers consider valid in form
/// (`IDGenerator.GenerateUniqueValidVolumeID`): `fake-vol-id-` and 10 characters.
pub fn fake_volume_id() -> String {
    format!("fake-vol-id-{}", &uuid::Uuid::new_v4().to_string()[..10])
}

/// csi-sanity's made-up node ID (`GenerateUniqueValidNodeID`).
pub fn fake_node_id() -> String {
    format!("fake-node-id-{}", &uuid::Uuid::new_v4().to_string()[..10])
}

/// csi-sanity's volume ID a driver may consider invalid (`GenerateInvalidVolumeID`).
pub const INVALID_VOLUME_ID: &str = "fake-vol-id";

/// Whether a failed create may still have created something.
fn maybe_pending(s: &Status) -> bool {
    matches!(
        s.code(),
        Code::Aborted | Code::DeadlineExceeded | Code::Unavailable | Code::Cancelled
    )
}

/// One check's world. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub s: Arc<Shared>,
    scratch: Arc<Scratch>,
}

#[derive(Debug)]
struct Scratch {
    /// The parent of every target path (created by the bench, like a CO would).
    mount_parent: PathBuf,
    /// The staging target path itself (created by the bench, like a CO would).
    staging: PathBuf,
    created: Mutex<Vec<Resource>>,
    /// csi-sanity's cleanup list for the same objects.
    registered: Mutex<Vec<Registered>>,
    /// Calls repeated after an Aborted answer.
    retries: AtomicU32,
}

impl Ctx {
    /// A context whose scratch directories are `mount_parent` and `staging`.
    pub fn new(s: Arc<Shared>, mount_parent: PathBuf, staging: PathBuf) -> Self {
        Self {
            s,
            scratch: Arc::new(Scratch {
                mount_parent,
                staging,
                created: Mutex::new(Vec::new()),
                registered: Mutex::new(Vec::new()),
                retries: AtomicU32::new(0),
            }),
        }
    }

    pub fn ctrl(&self) -> ControllerClient<Channel> {
        self.s.controller.clone()
    }
    pub fn node(&self) -> NodeClient<Channel> {
        self.s.node.clone()
    }
    pub fn ident(&self) -> IdentityClient<Channel> {
        self.s.identity.clone()
    }
    /// Every distinct Identity endpoint, named as csi-sanity names them: the node
    /// plugin's, and the controller's when `--controller-endpoint` is another one.
    pub fn identities(&self) -> Vec<(&'static str, IdentityClient<Channel>)> {
        let mut v = vec![("Node Service", self.s.identity.clone())];
        if let Some(c) = &self.s.identity_ctrl {
            v.push(("Controller Service", c.clone()));
        }
        v
    }
    pub fn group(&self) -> GroupControllerClient<Channel> {
        self.s.group.clone()
    }
    pub fn secrets(&self, rpc: &str) -> HashMap<String, String> {
        self.s.secrets.get(rpc)
    }

    /// `<mount parent>/target`: the driver creates it (CSI spec), the bench does not.
    pub fn target(&self) -> String {
        self.target_named("target")
    }
    /// Another target path in the same parent.
    pub fn target_named(&self, name: &str) -> String {
        self.scratch.mount_parent.join(name).display().to_string()
    }
    pub fn mount_parent(&self) -> &Path {
        &self.scratch.mount_parent
    }
    /// The staging target path (created by the bench).
    pub fn staging(&self) -> String {
        self.scratch.staging.display().to_string()
    }

    // What is at a path, as the driver sees it.

    /// Whether the bench can tell what is at a path the driver made (not when the
    /// target's parent is made by a hook and no check hook is given).
    pub fn paths_checkable(&self) -> bool {
        self.s.paths.unchecked_reason().is_none()
    }
    /// Skips the check unless paths can be checked (csi-sanity skips "should remove
    /// target path" the same way).
    pub fn need_checkable_paths(&self) -> Outcome {
        match self.s.paths.unchecked_reason() {
            Some(r) => Err(skip(r)),
            None => Ok(()),
        }
    }
    /// What is at `path` (through --check-path-cmd when given); a failing hook fails
    /// the check.
    pub async fn path_kind(&self, path: &str) -> Result<PathKind, Verdict> {
        self.s
            .paths
            .check(Path::new(path))
            .await
            .map_err(|e| fail(e.to_string()))
    }
    /// Whether something is at `path`.
    pub async fn path_exists(&self, path: &str) -> Result<bool, Verdict> {
        Ok(self.path_kind(path).await? != PathKind::NotFound)
    }

    /// Skips the check unless the bench runs with access type `t`.
    pub fn need_access_type(&self, t: AccessType, reason: &str) -> Outcome {
        if self.s.access_type == t {
            Ok(())
        } else {
            Err(skip(reason))
        }
    }

    pub fn retries(&self) -> u32 {
        self.scratch.retries.load(Ordering::Relaxed)
    }
    /// Repeats `call` while it answers Aborted, with exponential backoff, for up to
    /// `--aborted-retry` (CSI spec: Aborted means an operation is pending; the CO
    /// retries), counting each repeat in [`Self::retries`]. Only for calls the bench
    /// makes one at a time.
    pub async fn retrying<T, F, Fut>(&self, call: F) -> Result<tonic::Response<T>, Status>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.repeat_aborted(self.s.aborted_retry, true, call).await
    }

    /// As [`Self::retrying`] for the bench's own undo, which decides no check: for up
    /// to `--cleanup-retry`, and not counted, so that what a check left pending (a
    /// clone still being made) is removed even when checks do not retry.
    async fn undo_retrying<T, F, Fut>(&self, call: F) -> Result<tonic::Response<T>, Status>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.repeat_aborted(self.s.cleanup_retry, false, call).await
    }

    async fn repeat_aborted<T, F, Fut>(
        &self,
        window: Duration,
        counted: bool,
        call: F,
    ) -> Result<tonic::Response<T>, Status>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let on_repeat = || {
            if counted {
                self.scratch.retries.fetch_add(1, Ordering::Relaxed);
            }
        };
        repeat_aborted(window, on_repeat, call).await
    }

    // Requests with the configured defaults.

    /// The requests' defaults: the access type, parameters, secrets and volume size.
    pub fn requests(&self) -> Requests<'_> {
        Requests {
            access_type: self.s.access_type,
            params: &self.s.params,
            secrets: &self.s.secrets,
            volume_size: self.s.volume_size,
        }
    }
    /// A capability with `mode` and the configured access type (empty `MountVolume{}`
    /// or `BlockVolume{}`, as csi-sanity sends).
    pub fn cap_with(&self, mode: volume_capability::access_mode::Mode) -> VolumeCapability {
        self.requests().capability(mode)
    }
    /// SINGLE_NODE_WRITER with the configured access type, as csi-sanity uses.
    pub fn cap(&self) -> VolumeCapability {
        self.requests().single_node_writer()
    }

    /// A CreateVolume request for `name` with the configured size, parameters,
    /// secrets and (with VOLUME_ACCESSIBILITY_CONSTRAINTS) this node's topology.
    pub fn create_req(&self, name: &str) -> CreateVolumeRequest {
        let topo = self
            .has_plugin(plugin_capability::service::Type::VolumeAccessibilityConstraints)
            .unwrap_or(false)
            .then(|| self.s.caps.node_info.as_ref().ok())
            .flatten()
            .and_then(|i| i.accessible_topology.clone())
            .map(|t| TopologyRequirement {
                requisite: vec![t.clone()],
                preferred: vec![t],
            });
        CreateVolumeRequest {
            accessibility_requirements: topo,
            ..self.sanity_volume_req(name)
        }
    }

    /// csi-sanity's `MakeCreateVolumeReq`: `name`, the configured size as
    /// required_bytes (no limit), one SINGLE_NODE_WRITER capability, the parameters
    /// and CreateVolumeSecret; no topology.
    pub fn sanity_volume_req(&self, name: &str) -> CreateVolumeRequest {
        self.requests().create_volume(name)
    }
    /// csi-sanity's `MustCreateVolume` of `sanity_volume_req(unique(prefix))`.
    pub async fn sanity_volume(&self, prefix: &str) -> Result<Volume, Verdict> {
        self.create(self.sanity_volume_req(&unique(prefix))).await
    }

    /// Creates a volume (tracked for the cleanup); the answer must hold a volume
    /// with an ID (csi-sanity's `MustCreateVolume`).
    pub async fn create(&self, req: CreateVolumeRequest) -> Result<Volume, Verdict> {
        let v = self
            .create_answer(req)
            .await?
            .ok_or_else(|| fail("CreateVolume returned no volume"))?;
        ensure!(
            !v.volume_id.is_empty(),
            "CreateVolume returned an empty volume_id"
        );
        Ok(v)
    }
    /// CreateVolume that must succeed; returns the answer's volume, tracked when it
    /// has an ID (csi-sanity's `CreateVolume` wrapper followed by "no error").
    pub async fn create_answer(&self, req: CreateVolumeRequest) -> Result<Option<Volume>, Verdict> {
        let r = self
            .retrying(|| {
                let mut c = self.ctrl();
                let req = req.clone();
                async move { c.create_volume(req).await }
            })
            .await;
        if let Err(e) = &r
            && maybe_pending(e)
        {
            self.track(Resource::PendingVolume(Box::new(req.clone())));
        }
        let v = ok("CreateVolume", r)?.volume;
        if let Some(v) = &v
            && !v.volume_id.is_empty()
        {
            self.track(Resource::Volume(v.volume_id.clone()));
        }
        Ok(v)
    }
    /// Creates a volume with the defaults.
    pub async fn create_volume(&self) -> Result<Volume, Verdict> {
        self.create(self.create_req(&unique("conformance"))).await
    }
    /// A real volume when the controller can create one, else a made-up ID (for the
    /// missing-field checks, which must fail before the ID matters).
    pub async fn volume_or_fake(&self) -> Result<Volume, Verdict> {
        use controller_service_capability::rpc::Type as T;
        let controller = self
            .has_plugin(plugin_capability::service::Type::ControllerService)
            .unwrap_or(false);
        if controller && self.has_ctrl(T::CreateDeleteVolume).unwrap_or(false) {
            self.create_volume().await
        } else {
            Ok(Volume {
                volume_id: "conformance-fake-volume-id".to_owned(),
                ..Default::default()
            })
        }
    }
    pub fn delete_req(&self, id: &str) -> DeleteVolumeRequest {
        self.requests().delete_volume(id)
    }
    pub async fn delete(&self, id: &str) -> Outcome {
        let req = self.delete_req(id);
        ok(
            "DeleteVolume",
            self.retrying(|| {
                let mut c = self.ctrl();
                let req = req.clone();
                async move { c.delete_volume(req).await }
            })
            .await,
        )?;
        self.forget(&Resource::Volume(id.to_owned()));
        Ok(())
    }

    pub fn snapshot_req(&self, name: &str, source: &str) -> CreateSnapshotRequest {
        self.requests()
            .create_snapshot(name, source, self.s.snapshot_params.clone())
    }
    pub async fn snapshot(&self, req: CreateSnapshotRequest) -> Result<Snapshot, Verdict> {
        let r = self
            .retrying(|| {
                let mut c = self.ctrl();
                let req = req.clone();
                async move { c.create_snapshot(req).await }
            })
            .await;
        if let Err(e) = &r
            && maybe_pending(e)
        {
            self.track(Resource::PendingSnapshot(Box::new(req.clone())));
        }
        let r = ok("CreateSnapshot", r)?;
        let s = r
            .snapshot
            .ok_or_else(|| fail("CreateSnapshot returned no snapshot"))?;
        ensure!(
            !s.snapshot_id.is_empty(),
            "CreateSnapshot returned an empty snapshot_id"
        );
        self.track(Resource::Snapshot(s.snapshot_id.clone()));
        Ok(s)
    }
    pub async fn create_snapshot(&self, source: &str) -> Result<Snapshot, Verdict> {
        self.snapshot(self.snapshot_req(&unique("conformance-snap"), source))
            .await
    }
    /// csi-sanity's `MustCreateSnapshot`: the snapshot is made and tracked, then
    /// must pass `verifySnapshotInfo`.
    pub async fn must_snapshot(&self, req: CreateSnapshotRequest) -> Result<Snapshot, Verdict> {
        let s = self.snapshot(req).await?;
        verify_snapshot_info("CreateSnapshot", &s)?;
        Ok(s)
    }
    /// csi-sanity's `MustCreateSnapshotFromVolumeRequest`: a new volume and a
    /// snapshot of it.
    pub async fn must_volume_and_snapshot(&self, prefix: &str) -> Result<Snapshot, Verdict> {
        let v = self.sanity_volume(&format!("{prefix}-volume")).await?;
        self.must_snapshot(self.snapshot_req(&unique(&format!("{prefix}-snapshot")), &v.volume_id))
            .await
    }
    pub fn delete_snapshot_req(&self, id: &str) -> DeleteSnapshotRequest {
        self.requests().delete_snapshot(id)
    }
    pub async fn delete_snapshot(&self, id: &str) -> Outcome {
        let req = self.delete_snapshot_req(id);
        ok(
            "DeleteSnapshot",
            self.retrying(|| {
                let mut c = self.ctrl();
                let req = req.clone();
                async move { c.delete_snapshot(req).await }
            })
            .await,
        )?;
        self.forget(&Resource::Snapshot(id.to_owned()));
        Ok(())
    }

    pub fn controller_publish_req(
        &self,
        volume: &Volume,
        node: &str,
    ) -> ControllerPublishVolumeRequest {
        self.requests().controller_publish(volume, node)
    }
    pub fn controller_unpublish_req(
        &self,
        volume: &str,
        node: &str,
    ) -> ControllerUnpublishVolumeRequest {
        self.requests().controller_unpublish(volume, node)
    }

    pub fn stage_req(
        &self,
        volume: &Volume,
        publish_context: &HashMap<String, String>,
    ) -> NodeStageVolumeRequest {
        self.requests()
            .node_stage(volume, publish_context, &self.staging())
    }
    pub fn unstage_req(&self, volume: &str) -> NodeUnstageVolumeRequest {
        self.requests().node_unstage(volume, &self.staging())
    }
    pub fn publish_req(
        &self,
        volume: &Volume,
        publish_context: &HashMap<String, String>,
        staged: bool,
    ) -> NodePublishVolumeRequest {
        let staging = staged.then(|| self.staging());
        self.requests()
            .node_publish(volume, publish_context, staging.as_deref(), &self.target())
    }
    pub fn unpublish_req(&self, volume: &str) -> NodeUnpublishVolumeRequest {
        self.requests().node_unpublish(volume, &self.target())
    }

    /// ControllerPublish of `volume` to this node when PUBLISH_UNPUBLISH_VOLUME is
    /// advertised (tracked); returns the publish context (empty otherwise).
    pub async fn attach(&self, volume: &Volume) -> Result<HashMap<String, String>, Verdict> {
        use controller_service_capability::rpc::Type as Ct;
        if !self.has_ctrl(Ct::PublishUnpublishVolume)? {
            return Ok(HashMap::new());
        }
        let node = self.node_id()?;
        let r = ok(
            "ControllerPublishVolume",
            self.ctrl()
                .controller_publish_volume(self.controller_publish_req(volume, &node))
                .await,
        )?;
        self.track(Resource::ControllerPublish {
            volume: volume.volume_id.clone(),
            node,
        });
        Ok(r.publish_context)
    }

    /// ControllerPublish (when advertised) and NodeStage (when advertised) of
    /// `volume`; returns the publish context and whether it was staged.
    pub async fn attach_and_stage(
        &self,
        volume: &Volume,
    ) -> Result<(HashMap<String, String>, bool), Verdict> {
        use node_service_capability::rpc::Type as Nt;
        let pc = self.attach(volume).await?;
        let staged = self.has_node(Nt::StageUnstageVolume)?;
        if staged {
            ok(
                "NodeStageVolume",
                self.node()
                    .node_stage_volume(self.stage_req(volume, &pc))
                    .await,
            )?;
            self.track(Resource::Stage {
                volume: volume.volume_id.clone(),
                path: self.staging(),
            });
        }
        Ok((pc, staged))
    }

    /// csi-sanity's node specs' start: NodeGetInfo (its node ID), ControllerPublish
    /// when [`Self::controller_publish_supported`], NodeStage when STAGE_UNSTAGE_VOLUME,
    /// then NodePublish at the target path, each with `cap` and the volume's context
    /// and each required to succeed. Returns the publish context (`None` without
    /// ControllerPublish) and whether the volume was staged.
    pub async fn sanity_publish_chain(
        &self,
        v: &Volume,
        cap: &VolumeCapability,
    ) -> Result<(Option<HashMap<String, String>>, bool), Verdict> {
        use node_service_capability::rpc::Type as Nt;
        let node = self.node_id()?;
        ensure!(!node.is_empty(), "NodeGetInfo returned an empty node_id");
        let mut pc = None;
        if self.controller_publish_supported()? {
            let mut req = self.controller_publish_req(v, &node);
            req.volume_capability = Some(cap.clone());
            let r = ok(
                "ControllerPublishVolume",
                self.ctrl().controller_publish_volume(req).await,
            )?;
            self.track(Resource::ControllerPublish {
                volume: v.volume_id.clone(),
                node,
            });
            pc = Some(r.publish_context);
        }
        let staged = self.has_node(Nt::StageUnstageVolume)?;
        let context = pc.clone().unwrap_or_default();
        if staged {
            let mut req = self.stage_req(v, &context);
            req.volume_capability = Some(cap.clone());
            ok("NodeStageVolume", self.node().node_stage_volume(req).await)?;
            self.track(Resource::Stage {
                volume: v.volume_id.clone(),
                path: self.staging(),
            });
        }
        let mut req = self.publish_req(v, &context, staged);
        req.volume_capability = Some(cap.clone());
        self.publish(req).await?;
        Ok((pc, staged))
    }

    /// NodePublish at [`Self::target`] (tracked).
    pub async fn publish(&self, req: NodePublishVolumeRequest) -> Outcome {
        let r = Resource::Publish {
            volume: req.volume_id.clone(),
            path: req.target_path.clone(),
        };
        ok(
            "NodePublishVolume",
            self.node().node_publish_volume(req).await,
        )?;
        self.track(r);
        Ok(())
    }

    /// Create, attach, stage and publish a volume: the common start of node checks.
    pub async fn published_volume(&self) -> Result<(Volume, bool), Verdict> {
        let v = self.create_volume().await?;
        let (pc, staged) = self.attach_and_stage(&v).await?;
        self.publish(self.publish_req(&v, &pc, staged)).await?;
        Ok((v, staged))
    }
}

/// csi-sanity's `verifySnapshotInfo`: an ID, a source volume ID and a creation time.
pub fn verify_snapshot_info(rpc: &str, s: &Snapshot) -> Outcome {
    ensure!(!s.snapshot_id.is_empty(), "{rpc}: snapshot_id is empty");
    ensure!(
        !s.source_volume_id.is_empty(),
        "{rpc}: snapshot {} has an empty source_volume_id",
        s.snapshot_id
    );
    ensure!(
        s.creation_time.is_some(),
        "{rpc}: snapshot {} has no creation_time",
        s.snapshot_id
    );
    Ok(())
}
