//! What a check sees: the clients, the configuration, the advertised capabilities,
//! its scratch directories, and the list of what it created (for the cleanup).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
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
pub use super::paths::remove_scratch;
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

/// The capabilities the driver advertised (or the error it answered with).
#[derive(Debug, Clone)]
pub struct Caps {
    /// The plugin service capabilities on `--endpoint`.
    pub plugin: Result<HashSet<i32>, String>,
    /// The same on the controller's endpoint (csi-sanity's snapshot topology gate
    /// asks there).
    pub plugin_ctrl: Result<HashSet<i32>, String>,
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
        async fn services(mut c: IdentityClient<Channel>) -> Result<HashSet<i32>, String> {
            c.get_plugin_capabilities(GetPluginCapabilitiesRequest {})
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
                .map_err(|e| describe(&e))
        }
        let plugin = services(s.identity.clone()).await;
        let plugin_ctrl = match &s.identity_ctrl {
            Some(c) => services(c.clone()).await,
            None => plugin.clone(),
        };
        // As csi-sanity's gates: a capability without a type is an error (they
        // expect every one to be an RPC capability).
        fn typed(types: Vec<Option<i32>>) -> Result<HashSet<i32>, String> {
            types
                .into_iter()
                .map(|t| t.ok_or_else(|| "a capability has no type".to_owned()))
                .collect()
        }
        let controller = s
            .controller
            .clone()
            .controller_get_capabilities(ControllerGetCapabilitiesRequest {})
            .await
            .map_err(|e| describe(&e))
            .and_then(|r| {
                typed(
                    r.into_inner()
                        .capabilities
                        .into_iter()
                        .map(|c| c.r#type.map(|Ct::Rpc(r)| r.r#type))
                        .collect(),
                )
            });
        let node = s
            .node
            .clone()
            .node_get_capabilities(NodeGetCapabilitiesRequest {})
            .await
            .map_err(|e| describe(&e))
            .and_then(|r| {
                typed(
                    r.into_inner()
                        .capabilities
                        .into_iter()
                        .map(|c| c.r#type.map(|Nt::Rpc(r)| r.r#type))
                        .collect(),
                )
            });
        let group = s
            .group
            .clone()
            .group_controller_get_capabilities(GroupControllerGetCapabilitiesRequest {})
            .await
            .map_err(|e| describe(&e))
            .and_then(|r| {
                typed(
                    r.into_inner()
                        .capabilities
                        .into_iter()
                        .map(|c| c.r#type.map(|Gt::Rpc(r)| r.r#type))
                        .collect(),
                )
            });
        let node_info = s
            .node
            .clone()
            .node_get_info(NodeGetInfoRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|e| describe(&e));
        Self {
            plugin,
            plugin_ctrl,
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

/// What csi-sanity's cleanup list (`Resources`) holds: an entry per successful
/// CreateVolume, per successful ControllerPublishVolume naming a volume and a node,
/// and per successful CreateSnapshot; a successful delete removes the first entry
/// with the ID. The bench keeps the same list for the checks that stand for
/// csi-sanity's specs, so that their cleanup makes the calls csi-sanity's does.
#[derive(Debug, Clone, PartialEq)]
enum Registered {
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
    /// As [`Self::has_plugin`], asking the controller's Identity.
    pub fn has_plugin_ctrl(&self, t: plugin_capability::service::Type) -> Result<bool, Verdict> {
        Ok(Self::set(
            &self.s.caps.plugin_ctrl,
            "GetPluginCapabilities (controller)",
        )?
        .contains(&(t as i32)))
    }
    /// csi-sanity's `BeforeEach` of every Node spec: GetPluginCapabilities, then
    /// ControllerGetCapabilities when the plugin has a controller, then
    /// NodeGetCapabilities must each succeed.
    pub fn node_service_gate(&self) -> Outcome {
        if self.has_plugin(plugin_capability::service::Type::ControllerService)? {
            self.has_ctrl(controller_service_capability::rpc::Type::Unknown)?;
        }
        self.has_node(node_service_capability::rpc::Type::Unknown)?;
        Ok(())
    }
    /// csi-sanity's `controllerPublishSupported` of its node specs: the plugin has a
    /// controller and it advertises PUBLISH_UNPUBLISH_VOLUME.
    pub fn controller_publish_supported(&self) -> Result<bool, Verdict> {
        Ok(
            self.has_plugin(plugin_capability::service::Type::ControllerService)?
                && self
                    .has_ctrl(controller_service_capability::rpc::Type::PublishUnpublishVolume)?,
        )
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
    pub fn retries(&self) -> u32 {
        self.scratch.retries.load(Ordering::Relaxed)
    }
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
        mut call: F,
    ) -> Result<tonic::Response<T>, Status>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let deadline = Instant::now() + window;
        let mut delay = Duration::from_millis(20);
        loop {
            match call().await {
                Err(e) if e.code() == Code::Aborted && Instant::now() + delay < deadline => {
                    if counted {
                        self.scratch.retries.fetch_add(1, Ordering::Relaxed);
                    }
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

    /// csi-sanity's `MakeCreateVolumeReq`: `name`, the configured size as
    /// required_bytes (no limit), one SINGLE_NODE_WRITER capability, the parameters
    /// and CreateVolumeSecret; no topology.
    pub fn sanity_volume_req(&self, name: &str) -> CreateVolumeRequest {
        CreateVolumeRequest {
            name: name.to_owned(),
            capacity_range: Some(CapacityRange {
                required_bytes: self.s.volume_size,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![self.cap()],
            parameters: self.s.params.clone(),
            secrets: self.secrets("CreateVolumeSecret"),
            ..Default::default()
        }
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
                .controller_publish_volume(self.cpublish_req(volume, &node))
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
            let mut req = self.cpublish_req(v, &node);
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
            let req = self.cunpublish_req(id, n);
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
                let req = self.cunpublish_req(&volume, &n);
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
