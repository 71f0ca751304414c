//! The simulation's real back end ([`RealCsi`]): an [`Embedded`] stack and the calls under
//! way on it, each made over gRPC by [`super::call`], with their wall-clock latencies.
//! Imports the other parts of [`super`], the driver's CSI clients, [`crate::inventory`]
//! and [`crate::fault`].

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use driver::csi::v1::controller_client::ControllerClient;
use driver::csi::v1::node_client::NodeClient;
use tokio::sync::Semaphore;
use tonic::transport::Channel;

use super::call::call_real;
use super::embedded::Embedded;
use super::launch::{External, Launch};
use super::{CsiCall, CsiOutcome, Leaks, storage_class_parameters};
use crate::fault::Plugin;
use crate::inventory::Inventory;

struct NodePlugin {
    client: NodeClient<Channel>,
    dir: PathBuf,
}

/// A real call: its method, and the task making it or, once awaited, its outcome and
/// wall time.
type InFlight = (&'static str, CallState);

enum CallState {
    Running(tokio::task::JoinHandle<(CsiOutcome, Duration)>),
    Done(CsiOutcome, Duration),
}

/// Measured wall-clock latency of real calls, by method.
pub type WallLatencies = BTreeMap<&'static str, hdrhistogram::Histogram<u64>>;

/// The simulation's real back end: an [`Embedded`] stack and the calls under way.
pub struct RealCsi {
    stack: Embedded,
    secrets: HashMap<String, String>,
    parameters: HashMap<String, String>,
    controller: ControllerClient<Channel>,
    nodes: Vec<NodePlugin>,
    inflight: HashMap<u64, InFlight>,
    permits: Arc<Semaphore>,
    /// Measured wall latency per method, microseconds.
    pub wall: WallLatencies,
    /// The most MDS sessions fake-ceph had open when a NodeStage finished or its
    /// counters were read.
    peak_sessions: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for RealCsi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealCsi")
            .field("stack", &self.stack)
            .finish_non_exhaustive()
    }
}

impl RealCsi {
    /// Starts the [`Embedded`] stack `l` describes, on `external` back ends when given;
    /// at most `max_inflight` calls are made at once.
    pub async fn launch(
        l: Launch,
        max_inflight: usize,
        external: Option<&External>,
    ) -> anyhow::Result<Self> {
        let stack = Embedded::launch_on(l, "harness-", external).await?;
        let nodes = stack
            .nodes
            .iter()
            .map(|n| NodePlugin {
                client: NodeClient::new(n.channel.clone()),
                dir: n.dir.clone(),
            })
            .collect();
        Ok(Self {
            secrets: stack.secrets.clone(),
            parameters: storage_class_parameters(stack.backend)
                .into_iter()
                .collect(),
            controller: ControllerClient::new(stack.controller_channel()),
            nodes,
            stack,
            inflight: HashMap::new(),
            permits: Arc::new(Semaphore::new(max_inflight.max(1))),
            wall: BTreeMap::new(),
            peak_sessions: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    pub(super) async fn start(&mut self, id: u64, call: CsiCall) {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let controller = self.controller.clone();
        let node = match &call {
            CsiCall::NodeStage { node, .. }
            | CsiCall::NodePublish { node, .. }
            | CsiCall::NodeUnpublish { node, .. }
            | CsiCall::NodeUnstage { node, .. } => self
                .nodes
                .get(*node)
                .map(|n| (n.client.clone(), n.dir.clone())),
            _ => None,
        };
        let secrets = self.secrets.clone();
        let parameters = match call {
            CsiCall::CreateVolume { .. } => self.parameters.clone(),
            _ => HashMap::new(),
        };
        let method = call.method();
        let task = tokio::spawn(async move {
            let t0 = Instant::now();
            let r = call_real(controller, node, secrets, parameters, call, permit).await;
            (r, t0.elapsed())
        });
        self.inflight.insert(id, (method, CallState::Running(task)));
    }

    pub(super) async fn finish(&mut self, id: u64) -> CsiOutcome {
        let Some((method, state)) = self.inflight.remove(&id) else {
            return Err((tonic::Code::Internal, "unknown call".into()));
        };
        let (r, took) = match state {
            CallState::Done(r, took) => (r, took),
            CallState::Running(task) => match task.await {
                Ok(x) => x,
                Err(e) => return Err((tonic::Code::Internal, format!("call task: {e}"))),
            },
        };
        if method == "NodeStageVolume"
            && let Some(n) = self.stack.session_count()
        {
            self.peak_sessions
                .fetch_max(n, std::sync::atomic::Ordering::Relaxed);
        }
        let h = self.wall.entry(method).or_insert_with(|| {
            hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 2)
                .expect("valid histogram bounds")
        });
        let _ = h.record((took.as_micros() as u64).max(1));
        r
    }

    pub(super) async fn leaks(&self) -> Leaks {
        self.stack.leaks().await
    }

    /// Waits for every real call under way to finish (keeping the outcomes for
    /// [`RealCsi::finish`]), so that what happens next meets a quiet back end.
    pub(super) async fn drain(&mut self) {
        let mut ids: Vec<u64> = self.inflight.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some((method, state)) = self.inflight.remove(&id) else {
                continue;
            };
            let state = match state {
                CallState::Running(task) => match task.await {
                    Ok((r, took)) => CallState::Done(r, took),
                    Err(e) => CallState::Done(
                        Err((tonic::Code::Internal, format!("call task: {e}"))),
                        Duration::ZERO,
                    ),
                },
                done => done,
            };
            self.inflight.insert(id, (method, state));
        }
    }

    /// Forgets calls whose outcome the simulation no longer takes (a kill cut them):
    /// their tasks run to their end on their own.
    pub(super) fn abandon(&mut self, ids: &[u64]) {
        for id in ids {
            self.inflight.remove(id);
        }
    }

    /// Kills a plugin (see [`Embedded::kill`]).
    async fn kill(&mut self, which: Plugin) -> anyhow::Result<()> {
        self.stack.kill(which).await
    }

    /// Restarts a killed plugin and connects the clients to the new instance.
    async fn restart(&mut self, which: Plugin) -> anyhow::Result<()> {
        let channel = self.stack.restart(which).await?;
        match which {
            Plugin::Controller => self.controller = ControllerClient::new(channel),
            Plugin::Node(i) => {
                if let Some(n) = self.nodes.get_mut(i) {
                    n.client = NodeClient::new(channel);
                }
            }
        }
        Ok(())
    }

    /// Applies a fault step to the back ends (kills and restarts go through
    /// [`RealCsi::kill`] and [`RealCsi::restart`]).
    pub(super) async fn inject(
        &mut self,
        action: &crate::fault::Action,
    ) -> anyhow::Result<crate::fault::Applied> {
        use crate::fault::{Action, Applied};
        let rules = |specs: &[String]| -> anyhow::Result<Vec<fake_ceph::FaultRule>> {
            specs
                .iter()
                .map(|r| {
                    r.parse::<fake_ceph::FaultSpec>()
                        .map(|s| s.0)
                        .map_err(anyhow::Error::from)
                })
                .collect()
        };
        let mut applied = Applied::default();
        match action {
            Action::CephRulesOn { window, rules: r } => {
                self.stack.set_ceph_window(*window, Some(rules(r)?))?;
            }
            Action::CephRulesOff { window } => self.stack.set_ceph_window(*window, None)?,
            Action::MdsDown => self.stack.set_mds_down(true)?,
            Action::MdsUp => self.stack.set_mds_down(false)?,
            Action::Evict { node } => applied.sessions_evicted = self.stack.evict(*node).await?,
            Action::ManilaFaultsOn { window, faults } => {
                self.stack
                    .set_manila_window(*window, Some(faults.clone()))?;
            }
            Action::ManilaFaultsOff { window } => self.stack.set_manila_window(*window, None)?,
            Action::ResetStuckShares => {
                applied.shares_reset = self.stack.reset_stuck_shares().await?
            }
            Action::Kill { plugin } => self.kill(*plugin).await?,
            Action::Restart { plugin } => self.restart(*plugin).await?,
            Action::RestartCeph => self.stack.restart_ceph().await?,
        }
        Ok(applied)
    }

    /// Heals the back ends after a run: closes every fault window, brings the MDS back
    /// and restarts every killed plugin, so that the leak check reads a healthy cluster.
    pub(super) async fn heal(&mut self) -> anyhow::Result<()> {
        self.drain().await;
        self.stack.heal()?;
        let killed: Vec<Plugin> = std::iter::once(Plugin::Controller)
            .chain((0..self.nodes.len()).map(Plugin::Node))
            .filter(|p| !self.stack.is_running(*p))
            .collect();
        for p in killed {
            self.restart(p).await?;
        }
        Ok(())
    }

    /// What the back ends hold now (a checkpoint), read over the wire.
    pub async fn inventory(&self) -> anyhow::Result<Inventory> {
        self.stack.inventory().await
    }

    /// fake-ceph's MDS `perf dump`.
    pub async fn perf_dump(&self) -> serde_json::Value {
        let d = self.stack.perf_dump().await;
        if let Some(n) = d["mds_sessions"]["session_count"].as_u64() {
            self.peak_sessions
                .fetch_max(n as usize, std::sync::atomic::Ordering::Relaxed);
        }
        d
    }

    /// The most MDS sessions fake-ceph had open when a NodeStage finished (embedded
    /// fake-ceph) or its counters were read.
    pub fn peak_sessions(&self) -> usize {
        self.peak_sessions
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The in-process fake-ceph (the busy workload charges its MDS); `None` when the
    /// back ends are external.
    pub fn cluster(&self) -> Option<&fake_ceph::Cluster> {
        self.stack.cluster.as_ref()
    }

    /// Stops every plugin and the fakes.
    pub async fn shutdown(self) {
        self.stack.shutdown().await;
    }
}
