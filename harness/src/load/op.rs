//! The operations the load generator can drive, and each worker's setup and teardown.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use driver::csi::v1::controller_client::ControllerClient;
use driver::csi::v1::identity_client::IdentityClient;
use driver::csi::v1::node_client::NodeClient;
use driver::csi::v1::*;
use tonic::Status;
use tonic::transport::Channel;

use crate::client::input::{Params, Secrets};
use crate::client::request::{AccessType, Requests};
use crate::client::scratch::remove_scratch;
use crate::client::unique;

/// One operation of the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    Probe,
    GetPluginInfo,
    GetPluginCapabilities,
    ControllerGetCapabilities,
    NodeGetCapabilities,
    NodeGetInfo,
    /// CreateVolume then DeleteVolume of a new volume.
    CreateDeleteVolume,
    ListVolumes,
    GetCapacity,
    /// CreateSnapshot then DeleteSnapshot of the worker's volume.
    CreateDeleteSnapshot,
    /// NodeStage (when advertised), NodePublish, NodeUnpublish, NodeUnstage.
    NodeCycle,
    /// NodeGetVolumeStats of the worker's published volume.
    NodeGetVolumeStats,
}

impl Rpc {
    pub const ALL: [Rpc; 12] = [
        Rpc::Probe,
        Rpc::GetPluginInfo,
        Rpc::GetPluginCapabilities,
        Rpc::ControllerGetCapabilities,
        Rpc::NodeGetCapabilities,
        Rpc::NodeGetInfo,
        Rpc::CreateDeleteVolume,
        Rpc::ListVolumes,
        Rpc::GetCapacity,
        Rpc::CreateDeleteSnapshot,
        Rpc::NodeCycle,
        Rpc::NodeGetVolumeStats,
    ];

    /// The canonical name (what `--rpc` prints and JSON reports).
    pub fn name(self) -> &'static str {
        match self {
            Rpc::Probe => "Probe",
            Rpc::GetPluginInfo => "GetPluginInfo",
            Rpc::GetPluginCapabilities => "GetPluginCapabilities",
            Rpc::ControllerGetCapabilities => "ControllerGetCapabilities",
            Rpc::NodeGetCapabilities => "NodeGetCapabilities",
            Rpc::NodeGetInfo => "NodeGetInfo",
            Rpc::CreateDeleteVolume => "CreateVolume+DeleteVolume",
            Rpc::ListVolumes => "ListVolumes",
            Rpc::GetCapacity => "GetCapacity",
            Rpc::CreateDeleteSnapshot => "CreateSnapshot+DeleteSnapshot",
            Rpc::NodeCycle => "NodeStage+NodePublish+NodeUnpublish+NodeUnstage",
            Rpc::NodeGetVolumeStats => "NodeGetVolumeStats",
        }
    }

    fn aliases(self) -> &'static [&'static str] {
        match self {
            Rpc::CreateDeleteVolume => &["CreateVolume", "CreateDeleteVolume"],
            Rpc::CreateDeleteSnapshot => &["CreateSnapshot", "CreateDeleteSnapshot"],
            Rpc::NodeCycle => &[
                "NodeCycle",
                "NodeStage",
                "NodePublish",
                "NodeStage+NodePublish",
                "NodePublish+NodeUnpublish",
            ],
            _ => &[],
        }
    }

    /// Whether it needs a volume per worker.
    fn needs_volume(self) -> bool {
        matches!(
            self,
            Rpc::CreateDeleteSnapshot | Rpc::NodeCycle | Rpc::NodeGetVolumeStats
        )
    }
}

/// `--rpc`: a canonical name or an alias, case- and dash-insensitive.
pub fn parse_rpc(s: &str) -> Result<Rpc, String> {
    let norm = |x: &str| {
        x.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '+')
            .collect::<String>()
            .to_ascii_lowercase()
    };
    let want = norm(s);
    Rpc::ALL
        .into_iter()
        .find(|r| norm(r.name()) == want || r.aliases().iter().any(|a| norm(a) == want))
        .ok_or_else(|| {
            format!(
                "unknown --rpc {s:?}; one of: {}",
                Rpc::ALL.map(Rpc::name).join(", ")
            )
        })
}

/// What every worker shares.
#[derive(Debug)]
pub struct Env {
    pub rpc: Rpc,
    pub identity: IdentityClient<Channel>,
    pub controller: ControllerClient<Channel>,
    pub node: NodeClient<Channel>,
    pub params: Params,
    pub secrets: Secrets,
    pub volume_id: Option<String>,
    pub volume_context: Params,
    pub volume_size: i64,
    pub base: PathBuf,
}

impl Env {
    /// The requests' defaults: mount capabilities, the parameters, secrets and
    /// volume size.
    fn requests(&self) -> Requests<'_> {
        Requests {
            access_type: AccessType::Mount,
            params: &self.params,
            secrets: &self.secrets,
            volume_size: self.volume_size,
        }
    }
}

/// What the driver advertises that changes the node sequence.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    stage: bool,
    attach: bool,
    node_id: String,
}

impl Plan {
    /// Asks the driver (only what the chosen operation needs).
    pub async fn discover(env: &Env) -> anyhow::Result<Self> {
        if !matches!(env.rpc, Rpc::NodeCycle | Rpc::NodeGetVolumeStats) {
            return Ok(Self::default());
        }
        use controller_service_capability::Type as Ct;
        use node_service_capability::Type as Nt;
        let node = env
            .node
            .clone()
            .node_get_capabilities(NodeGetCapabilitiesRequest {})
            .await
            .context("NodeGetCapabilities")?
            .into_inner();
        let stage = node.capabilities.iter().any(|c| {
            matches!(&c.r#type, Some(Nt::Rpc(r))
                if r.r#type == node_service_capability::rpc::Type::StageUnstageVolume as i32)
        });
        let mut attach = false;
        if env.volume_id.is_none()
            && let Ok(r) = env
                .controller
                .clone()
                .controller_get_capabilities(ControllerGetCapabilitiesRequest {})
                .await
        {
            attach = r.into_inner().capabilities.iter().any(|c| {
                matches!(&c.r#type, Some(Ct::Rpc(r))
                    if r.r#type == controller_service_capability::rpc::Type::PublishUnpublishVolume as i32)
            });
        }
        let node_id = env
            .node
            .clone()
            .node_get_info(NodeGetInfoRequest {})
            .await
            .context("NodeGetInfo")?
            .into_inner()
            .node_id;
        Ok(Self {
            stage,
            attach,
            node_id,
        })
    }
}

/// A failed operation: the step that failed and its status.
#[derive(Debug)]
pub struct OpError {
    pub step: &'static str,
    pub status: Status,
}

fn step<T>(name: &'static str, r: Result<tonic::Response<T>, Status>) -> Result<T, OpError> {
    r.map(tonic::Response::into_inner)
        .map_err(|status| OpError { step: name, status })
}

/// One worker: its clients, its volume and directories.
#[derive(Debug)]
pub struct Worker {
    env: Arc<Env>,
    plan: Plan,
    identity: IdentityClient<Channel>,
    controller: ControllerClient<Channel>,
    node: NodeClient<Channel>,
    volume: Option<Volume>,
    /// Whether the bench created `volume` (and deletes it at the end).
    owns_volume: bool,
    publish_context: HashMap<String, String>,
    staging: PathBuf,
    mount_parent: PathBuf,
    /// Volumes a failed operation may have left (deleted at the end).
    leftovers: Vec<String>,
    /// Whether the volume is currently staged / published (for the teardown).
    staged: bool,
    published: bool,
}

impl Worker {
    /// Prepares worker `i`: its directories; its volume (created, or `--volume-id`);
    /// ControllerPublish when advertised; for NodeGetVolumeStats, stage and publish.
    pub async fn setup(env: Arc<Env>, plan: Plan, i: usize) -> anyhow::Result<Self> {
        let staging = env.base.join(format!("worker-{i:04}-staging"));
        let mount_parent = env.base.join(format!("worker-{i:04}-mnt"));
        let mut w = Self {
            identity: env.identity.clone(),
            controller: env.controller.clone(),
            node: env.node.clone(),
            env,
            plan,
            volume: None,
            owns_volume: false,
            publish_context: HashMap::new(),
            staging,
            mount_parent,
            leftovers: Vec::new(),
            staged: false,
            published: false,
        };
        if !w.env.rpc.needs_volume() {
            return Ok(w);
        }
        std::fs::create_dir_all(&w.staging)
            .with_context(|| format!("creating {}", w.staging.display()))?;
        std::fs::create_dir_all(&w.mount_parent)
            .with_context(|| format!("creating {}", w.mount_parent.display()))?;
        let volume = match &w.env.volume_id {
            Some(id) => Volume {
                volume_id: id.clone(),
                volume_context: w.env.volume_context.clone(),
                ..Default::default()
            },
            None => {
                let r = w
                    .controller
                    .create_volume(w.create_req())
                    .await
                    .map_err(|s| anyhow::anyhow!("CreateVolume: {:?}: {}", s.code(), s.message()))?
                    .into_inner();
                w.owns_volume = true;
                r.volume.context("CreateVolume returned no volume")?
            }
        };
        w.volume = Some(volume.clone());
        if w.plan.attach {
            let r = w
                .controller
                .controller_publish_volume(
                    w.env
                        .requests()
                        .controller_publish(&volume, &w.plan.node_id),
                )
                .await;
            match r {
                Ok(r) => w.publish_context = r.into_inner().publish_context,
                Err(s) => {
                    w.teardown_ref().await;
                    bail!("ControllerPublishVolume: {:?}: {}", s.code(), s.message());
                }
            }
        }
        if w.env.rpc == Rpc::NodeGetVolumeStats
            && let Err(e) = w.stage_and_publish().await
        {
            w.teardown_ref().await;
            bail!("{}: {:?}: {}", e.step, e.status.code(), e.status.message());
        }
        Ok(w)
    }

    fn create_req(&self) -> CreateVolumeRequest {
        self.env.requests().create_volume(&unique("load"))
    }

    fn volume(&self) -> &Volume {
        self.volume
            .as_ref()
            .expect("set up for operations that need it")
    }

    fn target(&self) -> String {
        self.mount_parent.join("target").display().to_string()
    }

    async fn stage_and_publish(&mut self) -> Result<(), OpError> {
        let v = self.volume().clone();
        let staging = self.staging.display().to_string();
        if self.plan.stage {
            step(
                "NodeStageVolume",
                self.node
                    .node_stage_volume(self.env.requests().node_stage(
                        &v,
                        &self.publish_context,
                        &staging,
                    ))
                    .await,
            )?;
            self.staged = true;
        }
        step(
            "NodePublishVolume",
            self.node
                .node_publish_volume(self.env.requests().node_publish(
                    &v,
                    &self.publish_context,
                    self.plan.stage.then_some(staging.as_str()),
                    &self.target(),
                ))
                .await,
        )?;
        self.published = true;
        Ok(())
    }

    async fn unpublish_and_unstage(&mut self) -> Result<(), OpError> {
        let id = self.volume().volume_id.clone();
        if self.published {
            step(
                "NodeUnpublishVolume",
                self.node
                    .node_unpublish_volume(self.env.requests().node_unpublish(&id, &self.target()))
                    .await,
            )?;
            self.published = false;
        }
        if self.staged {
            step(
                "NodeUnstageVolume",
                self.node
                    .node_unstage_volume(
                        self.env
                            .requests()
                            .node_unstage(&id, &self.staging.display().to_string()),
                    )
                    .await,
            )?;
            self.staged = false;
        }
        Ok(())
    }

    /// One operation.
    pub async fn run(&mut self) -> Result<(), OpError> {
        match self.env.rpc {
            Rpc::Probe => step("Probe", self.identity.probe(ProbeRequest {}).await).map(drop),
            Rpc::GetPluginInfo => step(
                "GetPluginInfo",
                self.identity.get_plugin_info(GetPluginInfoRequest {}).await,
            )
            .map(drop),
            Rpc::GetPluginCapabilities => step(
                "GetPluginCapabilities",
                self.identity
                    .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
                    .await,
            )
            .map(drop),
            Rpc::ControllerGetCapabilities => step(
                "ControllerGetCapabilities",
                self.controller
                    .controller_get_capabilities(ControllerGetCapabilitiesRequest {})
                    .await,
            )
            .map(drop),
            Rpc::NodeGetCapabilities => step(
                "NodeGetCapabilities",
                self.node
                    .node_get_capabilities(NodeGetCapabilitiesRequest {})
                    .await,
            )
            .map(drop),
            Rpc::NodeGetInfo => step(
                "NodeGetInfo",
                self.node.node_get_info(NodeGetInfoRequest {}).await,
            )
            .map(drop),
            Rpc::ListVolumes => step(
                "ListVolumes",
                self.controller
                    .list_volumes(ListVolumesRequest::default())
                    .await,
            )
            .map(drop),
            Rpc::GetCapacity => step(
                "GetCapacity",
                self.controller
                    .get_capacity(GetCapacityRequest {
                        volume_capabilities: vec![self.env.requests().single_node_writer()],
                        parameters: self.env.params.clone(),
                        accessible_topology: None,
                    })
                    .await,
            )
            .map(drop),
            Rpc::CreateDeleteVolume => self.create_delete_volume().await,
            Rpc::CreateDeleteSnapshot => self.create_delete_snapshot().await,
            Rpc::NodeCycle => self.node_cycle().await,
            Rpc::NodeGetVolumeStats => step(
                "NodeGetVolumeStats",
                self.node
                    .node_get_volume_stats(NodeGetVolumeStatsRequest {
                        volume_id: self.volume().volume_id.clone(),
                        volume_path: self.target(),
                        staging_target_path: String::new(),
                    })
                    .await,
            )
            .map(drop),
        }
    }

    /// CreateVolume then DeleteVolume of a new volume (kept for the teardown when the
    /// delete fails).
    async fn create_delete_volume(&mut self) -> Result<(), OpError> {
        let r = step(
            "CreateVolume",
            self.controller.create_volume(self.create_req()).await,
        )?;
        let id = r.volume.map(|v| v.volume_id).unwrap_or_default();
        let d = step(
            "DeleteVolume",
            self.controller
                .delete_volume(self.env.requests().delete_volume(&id))
                .await,
        );
        if d.is_err() && !id.is_empty() {
            self.leftovers.push(id);
        }
        d.map(drop)
    }

    /// CreateSnapshot then DeleteSnapshot of the worker's volume.
    async fn create_delete_snapshot(&mut self) -> Result<(), OpError> {
        let req = self.env.requests().create_snapshot(
            &unique("load-snap"),
            &self.volume().volume_id,
            HashMap::new(),
        );
        let r = step("CreateSnapshot", self.controller.create_snapshot(req).await)?;
        let id = r.snapshot.map(|s| s.snapshot_id).unwrap_or_default();
        step(
            "DeleteSnapshot",
            self.controller
                .delete_snapshot(self.env.requests().delete_snapshot(&id))
                .await,
        )
        .map(drop)
    }

    /// NodeStage (when advertised), NodePublish, NodeUnpublish, NodeUnstage; after a
    /// failure, the node is cleaned as far as possible for the next operation.
    async fn node_cycle(&mut self) -> Result<(), OpError> {
        let r = match self.stage_and_publish().await {
            Ok(()) => self.unpublish_and_unstage().await,
            Err(e) => Err(e),
        };
        if r.is_err() {
            // Start the next operation from a clean node, as far as possible.
            self.published = true;
            self.staged = self.plan.stage;
            let _ = self.unpublish_and_unstage().await;
            self.published = false;
            self.staged = false;
        }
        r
    }

    /// Undoes the setup: unpublish, unstage, ControllerUnpublish, delete what the
    /// worker created, remove its directories (never recursively).
    pub async fn teardown(mut self) {
        self.teardown_ref().await;
    }

    async fn teardown_ref(&mut self) {
        if self.volume.is_some() {
            let _ = self.unpublish_and_unstage().await;
        }
        if let Some(v) = self.volume.take() {
            if self.plan.attach {
                let _ = self
                    .controller
                    .controller_unpublish_volume(
                        self.env
                            .requests()
                            .controller_unpublish(&v.volume_id, &self.plan.node_id),
                    )
                    .await;
            }
            if self.owns_volume {
                self.leftovers.push(v.volume_id);
            }
        }
        for id in std::mem::take(&mut self.leftovers) {
            let _ = self
                .controller
                .delete_volume(self.env.requests().delete_volume(&id))
                .await;
        }
        let _ = remove_scratch(&self.mount_parent);
        let _ = remove_scratch(&self.staging);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(s: &str, expected: Option<Rpc>) {
        assert_eq!(parse_rpc(s).ok(), expected, "{s}");
    }

    #[test]
    fn rpc_names() {
        for r in Rpc::ALL {
            check(r.name(), Some(r));
        }
        check("probe", Some(Rpc::Probe));
        check("node-get-capabilities", Some(Rpc::NodeGetCapabilities));
        check("CreateVolume+DeleteVolume", Some(Rpc::CreateDeleteVolume));
        check("create-volume", Some(Rpc::CreateDeleteVolume));
        check(
            "NodeStage+NodePublish+NodeUnpublish+NodeUnstage",
            Some(Rpc::NodeCycle),
        );
        check("node-cycle", Some(Rpc::NodeCycle));
        check("Nope", None);
    }
}
