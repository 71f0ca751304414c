//! What a check sees: the clients, the configuration, the advertised capabilities,
//! its scratch directories, and the list of what it created (for the cleanup).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use driver::csi::v1::controller_client::ControllerClient;
use driver::csi::v1::group_controller_client::GroupControllerClient;
use driver::csi::v1::identity_client::IdentityClient;
use driver::csi::v1::node_client::NodeClient;
use driver::csi::v1::*;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::input::{Params, Secrets};
use super::paths::{PathHooks, PathKind};

/// The access type of every capability the bench sends (csi-sanity's
/// `--csi.testvolumeaccesstype`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AccessType {
    /// `MountVolume{}`: the SP places a directory at target_path.
    #[default]
    Mount,
    /// `BlockVolume{}`: the SP places the block device (a file) at target_path.
    Block,
}

impl AccessType {
    pub fn name(self) -> &'static str {
        match self {
            AccessType::Mount => "mount",
            AccessType::Block => "block",
        }
    }
}

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

/// `Code: message`, short.
pub fn describe(s: &Status) -> String {
    let mut m = s.message().to_owned();
    if m.len() > 200 {
        m.truncate(200);
        m.push('…');
    }
    format!("{:?}: {m}", s.code())
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
    pub identity: IdentityClient<Channel>,
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
    pub attach_limit: bool,
    /// The access type of every capability sent.
    pub access_type: AccessType,
    /// How the CO's paths are made, checked and removed.
    pub paths: PathHooks,
    pub caps: Caps,
}

/// The capabilities the driver advertised (or the error it answered with).
#[derive(Debug, Clone)]
pub struct Caps {
    pub plugin: Result<HashSet<i32>, String>,
    pub controller: Result<HashSet<i32>, String>,
    pub node: Result<HashSet<i32>, String>,
    pub group: Result<HashSet<i32>, String>,
    pub node_info: Result<NodeGetInfoResponse, String>,
}

impl Caps {
    /// Asks the driver.
    pub async fn discover(s: &Shared) -> Self {
        use controller_service_capability::Type as Ct;
        use group_controller_service_capability::Type as Gt;
        use node_service_capability::Type as Nt;
        use plugin_capability::Type as Pt;
        let plugin = s
            .identity
            .clone()
            .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
            .await
            .map(|r| {
                r.into_inner()
                    .capabilities
                    .into_iter()
                    .filter_map(|c| match c.r#type {
                        Some(Pt::Service(s)) => Some(s.r#type),
                        _ => None,
                    })
                    .collect()
            })
            .map_err(|e| describe(&e));
        let controller = s
            .controller
            .clone()
            .controller_get_capabilities(ControllerGetCapabilitiesRequest {})
            .await
            .map(|r| {
                r.into_inner()
                    .capabilities
                    .into_iter()
                    .filter_map(|c| c.r#type.map(|Ct::Rpc(r)| r.r#type))
                    .collect()
            })
            .map_err(|e| describe(&e));
        let node = s
            .node
            .clone()
            .node_get_capabilities(NodeGetCapabilitiesRequest {})
            .await
            .map(|r| {
                r.into_inner()
                    .capabilities
                    .into_iter()
                    .filter_map(|c| c.r#type.map(|Nt::Rpc(r)| r.r#type))
                    .collect()
            })
            .map_err(|e| describe(&e));
        let group = s
            .group
            .clone()
            .group_controller_get_capabilities(GroupControllerGetCapabilitiesRequest {})
            .await
            .map(|r| {
                r.into_inner()
                    .capabilities
                    .into_iter()
                    .filter_map(|c| c.r#type.map(|Gt::Rpc(r)| r.r#type))
                    .collect()
            })
            .map_err(|e| describe(&e));
        let node_info = s
            .node
            .clone()
            .node_get_info(NodeGetInfoRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|e| describe(&e));
        Self {
            plugin,
            controller,
            node,
            group,
            node_info,
        }
    }
}

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
}

/// A name no other run uses: `prefix-<uuid>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
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
    pub fn staging_dir(&self) -> &Path {
        &self.scratch.staging
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

    // Capability gates, as csi-sanity's: the gating call failing fails the check.

    fn set(r: &Result<HashSet<i32>, String>, rpc: &str) -> Result<HashSet<i32>, Verdict> {
        r.clone().map_err(|e| fail(format!("{rpc} failed: {e}")))
    }

    /// Whether the controller advertises `t` (fails when ControllerGetCapabilities fails).
    pub fn has_ctrl(&self, t: controller_service_capability::rpc::Type) -> Result<bool, Verdict> {
        Ok(Self::set(&self.s.caps.controller, "ControllerGetCapabilities")?.contains(&(t as i32)))
    }
    pub fn need_ctrl(&self, t: controller_service_capability::rpc::Type, reason: &str) -> Outcome {
        if self.has_ctrl(t)? {
            Ok(())
        } else {
            Err(skip(reason))
        }
    }
    pub fn has_node(&self, t: node_service_capability::rpc::Type) -> Result<bool, Verdict> {
        Ok(Self::set(&self.s.caps.node, "NodeGetCapabilities")?.contains(&(t as i32)))
    }
    pub fn need_node(&self, t: node_service_capability::rpc::Type, reason: &str) -> Outcome {
        if self.has_node(t)? {
            Ok(())
        } else {
            Err(skip(reason))
        }
    }
    pub fn has_plugin(&self, t: plugin_capability::service::Type) -> Result<bool, Verdict> {
        Ok(Self::set(&self.s.caps.plugin, "GetPluginCapabilities")?.contains(&(t as i32)))
    }
    /// The group controller gate: the plugin capability, then the group capability.
    pub fn need_group(&self) -> Outcome {
        if !self.has_plugin(plugin_capability::service::Type::GroupControllerService)? {
            return Err(skip("GroupControllerService not supported"));
        }
        let caps = Self::set(&self.s.caps.group, "GroupControllerGetCapabilities")?;
        let t = group_controller_service_capability::rpc::Type::CreateDeleteGetVolumeGroupSnapshot;
        if !caps.contains(&(t as i32)) {
            return Err(skip("VolumeGroupSnapshot not supported"));
        }
        Ok(())
    }
    /// csi-sanity's gate of the node flows: the plugin's CONTROLLER_SERVICE.
    pub fn need_controller_service(&self) -> Outcome {
        if !self.has_plugin(plugin_capability::service::Type::ControllerService)? {
            return Err(skip(
                "Controller Service not provided: CreateVolume not supported",
            ));
        }
        Ok(())
    }
    pub fn node_info(&self) -> Result<NodeGetInfoResponse, Verdict> {
        self.s
            .caps
            .node_info
            .clone()
            .map_err(|e| fail(format!("NodeGetInfo failed: {e}")))
    }
    pub fn node_id(&self) -> Result<String, Verdict> {
        Ok(self.node_info()?.node_id)
    }

    // Bookkeeping for the cleanup.

    pub fn track(&self, r: Resource) {
        self.created().push(r);
    }
    pub fn forget(&self, r: &Resource) {
        let mut v = self.created();
        if let Some(i) = v.iter().rposition(|x| x == r) {
            v.remove(i);
        }
    }
    fn created(&self) -> std::sync::MutexGuard<'_, Vec<Resource>> {
        // A panicking check leaves a consistent list (pushes and removes are atomic).
        self.scratch
            .created
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    pub fn take_created(&self) -> Vec<Resource> {
        std::mem::take(&mut *self.created())
    }

    /// Repeats `call` while it answers Aborted, with exponential backoff, for up to
    /// `--aborted-retry` (CSI spec: Aborted means an operation is pending; the CO
    /// retries). Only for calls the bench makes one at a time.
    pub async fn retrying<T, F, Fut>(&self, mut call: F) -> Result<tonic::Response<T>, Status>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let deadline = Instant::now() + self.s.aborted_retry;
        let mut delay = Duration::from_millis(20);
        loop {
            match call().await {
                Err(e) if e.code() == Code::Aborted && Instant::now() + delay < deadline => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                r => return r,
            }
        }
    }

    // Requests with the configured defaults.

    /// A capability with `mode` and the configured access type (empty `MountVolume{}`
    /// or `BlockVolume{}`, as csi-sanity sends).
    pub fn cap_with(&self, mode: volume_capability::access_mode::Mode) -> VolumeCapability {
        let access_type = match self.s.access_type {
            AccessType::Mount => {
                volume_capability::AccessType::Mount(volume_capability::MountVolume::default())
            }
            AccessType::Block => {
                volume_capability::AccessType::Block(volume_capability::BlockVolume::default())
            }
        };
        VolumeCapability {
            access_type: Some(access_type),
            access_mode: Some(volume_capability::AccessMode { mode: mode as i32 }),
        }
    }
    /// SINGLE_NODE_WRITER with the configured access type, as csi-sanity uses.
    pub fn cap(&self) -> VolumeCapability {
        self.cap_with(volume_capability::access_mode::Mode::SingleNodeWriter)
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
            name: name.to_owned(),
            capacity_range: Some(CapacityRange {
                required_bytes: self.s.volume_size,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![self.cap()],
            parameters: self.s.params.clone(),
            secrets: self.secrets("CreateVolumeSecret"),
            accessibility_requirements: topo,
            ..Default::default()
        }
    }

    /// Creates a volume (tracked for the cleanup).
    pub async fn create(&self, req: CreateVolumeRequest) -> Result<Volume, Verdict> {
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
        let r = ok("CreateVolume", r)?;
        let v = r
            .volume
            .ok_or_else(|| fail("CreateVolume returned no volume"))?;
        ensure!(
            !v.volume_id.is_empty(),
            "CreateVolume returned an empty volume_id"
        );
        self.track(Resource::Volume(v.volume_id.clone()));
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
        DeleteVolumeRequest {
            volume_id: id.to_owned(),
            secrets: self.secrets("DeleteVolumeSecret"),
        }
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
        CreateSnapshotRequest {
            source_volume_id: source.to_owned(),
            name: name.to_owned(),
            secrets: self.secrets("CreateSnapshotSecret"),
            parameters: self.s.snapshot_params.clone(),
            accessibility_requirements: None,
        }
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
    pub fn delete_snapshot_req(&self, id: &str) -> DeleteSnapshotRequest {
        DeleteSnapshotRequest {
            snapshot_id: id.to_owned(),
            secrets: self.secrets("DeleteSnapshotSecret"),
        }
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

    pub fn cpublish_req(&self, volume: &Volume, node: &str) -> ControllerPublishVolumeRequest {
        ControllerPublishVolumeRequest {
            volume_id: volume.volume_id.clone(),
            node_id: node.to_owned(),
            volume_capability: Some(self.cap()),
            readonly: false,
            secrets: self.secrets("ControllerPublishVolumeSecret"),
            volume_context: volume.volume_context.clone(),
        }
    }
    pub fn cunpublish_req(&self, volume: &str, node: &str) -> ControllerUnpublishVolumeRequest {
        ControllerUnpublishVolumeRequest {
            volume_id: volume.to_owned(),
            node_id: node.to_owned(),
            secrets: self.secrets("ControllerUnpublishVolumeSecret"),
        }
    }

    pub fn stage_req(
        &self,
        volume: &Volume,
        publish_context: &HashMap<String, String>,
    ) -> NodeStageVolumeRequest {
        NodeStageVolumeRequest {
            volume_id: volume.volume_id.clone(),
            publish_context: publish_context.clone(),
            staging_target_path: self.staging(),
            volume_capability: Some(self.cap()),
            secrets: self.secrets("NodeStageVolumeSecret"),
            volume_context: volume.volume_context.clone(),
        }
    }
    pub fn unstage_req(&self, volume: &str) -> NodeUnstageVolumeRequest {
        NodeUnstageVolumeRequest {
            volume_id: volume.to_owned(),
            staging_target_path: self.staging(),
        }
    }
    pub fn publish_req(
        &self,
        volume: &Volume,
        publish_context: &HashMap<String, String>,
        staged: bool,
    ) -> NodePublishVolumeRequest {
        NodePublishVolumeRequest {
            volume_id: volume.volume_id.clone(),
            publish_context: publish_context.clone(),
            staging_target_path: if staged {
                self.staging()
            } else {
                String::new()
            },
            target_path: self.target(),
            volume_capability: Some(self.cap()),
            readonly: false,
            secrets: self.secrets("NodePublishVolumeSecret"),
            volume_context: volume.volume_context.clone(),
        }
    }
    pub fn unpublish_req(&self, volume: &str) -> NodeUnpublishVolumeRequest {
        NodeUnpublishVolumeRequest {
            volume_id: volume.to_owned(),
            target_path: self.target(),
        }
    }

    /// ControllerPublish (when advertised) and NodeStage (when advertised) of
    /// `volume`; returns the publish context and whether it was staged.
    pub async fn attach_and_stage(
        &self,
        volume: &Volume,
    ) -> Result<(HashMap<String, String>, bool), Verdict> {
        use controller_service_capability::rpc::Type as Ct;
        use node_service_capability::rpc::Type as Nt;
        let mut pc = HashMap::new();
        if self.has_ctrl(Ct::PublishUnpublishVolume)? {
            let node = self.node_id()?;
            let r = ok(
                "ControllerPublishVolume",
                self.ctrl()
                    .controller_publish_volume(self.cpublish_req(volume, &node))
                    .await,
            )?;
            self.track(Resource::ControllerPublish {
                volume: volume.volume_id.clone(),
                node,
            });
            pc = r.publish_context;
        }
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

    /// Undoes what the check left behind, newest first (retrying Aborted answers);
    /// returns what could not be undone.
    pub async fn cleanup(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for r in self.take_created().into_iter().rev() {
            let (what, result) = self.undo(r).await;
            if let Err(e) = result {
                problems.push(format!("{what}: {}", describe(&e)));
            }
        }
        problems
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
                    .retrying(|| {
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
                    .retrying(|| {
                        let (mut c, req) = (node.clone(), req.clone());
                        async move { c.node_unstage_volume(req).await }
                    })
                    .await;
                (format!("NodeUnstageVolume {volume} {path}"), r.map(drop))
            }
            Resource::ControllerPublish { volume, node: n } => {
                let req = self.cunpublish_req(&volume, &n);
                let r = self
                    .retrying(|| {
                        let (mut c, req) = (ctrl.clone(), req.clone());
                        async move { c.controller_unpublish_volume(req).await }
                    })
                    .await;
                (format!("ControllerUnpublishVolume {volume}"), r.map(drop))
            }
            Resource::Snapshot(id) => {
                let req = self.delete_snapshot_req(&id);
                let r = self
                    .retrying(|| {
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
                    .retrying(|| {
                        let (mut c, req) = (group.clone(), req.clone());
                        async move { c.delete_volume_group_snapshot(req).await }
                    })
                    .await;
                (format!("DeleteVolumeGroupSnapshot {id}"), r.map(drop))
            }
            Resource::Volume(id) => {
                let req = self.delete_req(&id);
                let r = self
                    .retrying(|| {
                        let (mut c, req) = (ctrl.clone(), req.clone());
                        async move { c.delete_volume(req).await }
                    })
                    .await;
                (format!("DeleteVolume {id}"), r.map(drop))
            }
            Resource::PendingVolume(req) => {
                let what = format!("CreateVolume {} (pending, to delete it)", req.name);
                let r = self
                    .retrying(|| {
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
                    .retrying(|| {
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

/// Removes what is left in a scratch directory the bench made, never recursively
/// (a leftover mount must not have its contents deleted), then the directory.
pub fn remove_scratch(dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let is_dir = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir());
            let r = if is_dir {
                std::fs::remove_dir(&p)
            } else {
                std::fs::remove_file(&p)
            };
            if let Err(e) = r {
                problems.push(format!("left behind {}: {e}", p.display()));
            }
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => problems.push(format!("left behind {}: {e}", dir.display())),
    }
    problems
}
