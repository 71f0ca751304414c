//! The local cluster of a real-mode run: a [`ControlPlane`] of Kubernetes' own programs,
//! deploy/'s chart as `helm template` renders it for the scenario (`attachRequired`,
//! `backend`) except the controller Deployment and the node DaemonSet, whose work is done
//! here: the driver's controller and one node plugin per node in-process on Unix sockets
//! ([`Embedded`]), the Deployment's sidecars (the real external-provisioner, -resizer,
//! -snapshotter, and -attacher when attach is required) as processes with the
//! Deployment's arguments on the controller's socket under deploy/'s ServiceAccount, one
//! [`HollowKubelet`] per node; and the scenario's Secret, StorageClass and
//! VolumeSnapshotClass (the simulator's objects, with the stack's real credentials). To
//! the workload it is a cluster like any other.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use super::kubelet::{HollowKubelet, KubeletSetup};
use super::node::NodeIdentity;
use super::tally::Tally;
use super::{ControlPlane, RealOptions, sidecars};
use crate::api::NAMESPACE;
use crate::csi::{DRIVER_NAME, Embedded, Launch, StorageBackend, node_name};
use crate::params::Params;

/// A running local cluster.
pub struct LocalCluster {
    /// The control plane.
    pub cp: ControlPlane,
    /// The driver's plugins and the fakes.
    pub stack: Embedded,
    /// What the kubelets counted.
    pub tally: Arc<Tally>,
    /// The sidecars' metrics URLs.
    pub metrics: Vec<String>,
    /// An admin's client.
    pub admin: Client,
    kubelets: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster")
            .field("cp", &self.cp)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl LocalCluster {
    /// Starts a cluster for scenario `p` in `dir` (logs in `dir/log`).
    pub async fn start(p: &Params, seed: u64, o: &RealOptions, dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut cp = ControlPlane::start(&o.kube_bin, dir).await?;
        match Self::on(&mut cp, p, seed, o).await {
            Ok((stack, tally, metrics, admin, kubelets)) => Ok(Self {
                cp,
                stack,
                tally,
                metrics,
                admin,
                kubelets,
            }),
            Err(e) => {
                cp.stop().await;
                Err(e)
            }
        }
    }

    #[allow(clippy::type_complexity)]
    async fn on(
        cp: &mut ControlPlane,
        p: &Params,
        seed: u64,
        o: &RealOptions,
    ) -> anyhow::Result<(
        Embedded,
        Arc<Tally>,
        Vec<String>,
        Client,
        Vec<tokio::task::JoinHandle<()>>,
    )> {
        let sidecars = apply_deploy(cp, o, p).await?;
        let admin = admin_client(&cp.admin_kubeconfig()).await?;
        let stack = Embedded::launch(
            Launch {
                seed,
                nodes: p.node_count(),
                attach_required: p.attach_required,
                backend: p.backend,
                controller_credentials: false,
                ceph_faults: p
                    .fault_rules()
                    .map_err(|e| anyhow::anyhow!("scenario {}: {e}", p.name))?,
                manila_faults: p.manila_faults.clone(),
                timeouts: p.driver,
                durable_ceph: false,
            },
            "harness-real-",
        )
        .await?;
        let started = async {
            let metrics = sidecars::start(cp, stack.controller_socket(), &sidecars).await?;
            let tally = Arc::new(Tally::default());
            let kubelets = start_kubelets(cp, &stack, p.attach_required, &tally).await?;
            class_and_secret(p, &admin, &stack).await?;
            anyhow::Ok((tally, metrics, kubelets))
        }
        .await;
        match started {
            Ok((tally, metrics, kubelets)) => Ok((stack, tally, metrics, admin, kubelets)),
            Err(e) => {
                stack.shutdown().await;
                Err(e)
            }
        }
    }

    /// The controller's CSI calls by (method, code), as its sidecars counted them.
    pub async fn controller_rpcs(&self) -> BTreeMap<(String, String), u64> {
        let mut rpcs = BTreeMap::new();
        for url in &self.metrics {
            sidecars::scrape(url, &mut rpcs).await;
        }
        rpcs
    }

    /// Stops the kubelets, the stack and the control plane; what the back end still
    /// held. `now`: the run was interrupted, so the driver's controller is killed rather
    /// than left to finish the calls under way (a CreateVolume waiting for a Manila share
    /// waits up to its deadline).
    pub async fn stop(mut self, now: bool) -> crate::csi::Leaks {
        for k in self.kubelets.drain(..) {
            k.abort();
        }
        if now && let Err(e) = self.stack.kill(crate::fault::Plugin::Controller).await {
            tracing::warn!("killing the controller plugin: {e:#}");
        }
        let leaks = self.stack.leaks().await;
        self.stack.shutdown().await;
        self.cp.stop().await;
        leaks
    }
}

/// The scenario's Secret (the stack's credentials), StorageClass and VolumeSnapshotClass.
async fn class_and_secret(p: &Params, admin: &Client, stack: &Embedded) -> anyhow::Result<()> {
    let pp = PostParams::default();
    let mut secret: Secret = crate::sim::objects::secret(p);
    let secrets: BTreeMap<String, String> = stack
        .secrets()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    secret.string_data = Some(secrets);
    Api::<Secret>::namespaced(admin.clone(), NAMESPACE)
        .create(&pp, &secret)
        .await
        .context("creating the Secret")?;
    let class: StorageClass = crate::sim::objects::storage_class(p);
    Api::<StorageClass>::all(admin.clone())
        .create(&pp, &class)
        .await
        .context("creating the StorageClass")?;
    let snapshot_class: DynamicObject =
        serde_json::from_value(crate::sim::objects::snapshot_class())?;
    Api::<DynamicObject>::all_with(admin.clone(), &snapshot_class_resource())
        .create(&pp, &snapshot_class)
        .await
        .context("creating the VolumeSnapshotClass")?;
    Ok(())
}

/// The VolumeSnapshotClass resource (snapshot.storage.k8s.io/v1, a CRD).
pub fn snapshot_class_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "snapshot.storage.k8s.io",
        "v1",
        "VolumeSnapshotClass",
    ))
}

/// A client with the admin's kubeconfig.
pub async fn admin_client(kubeconfig: &Path) -> anyhow::Result<Client> {
    let file = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// Installs deploy/'s chart as `helm template` renders it for scenario `p` (release
/// and namespace `cephfs-csi`, `attachRequired` and `backend` set), but the controller
/// Deployment and the node DaemonSet; the Deployment's sidecars.
async fn apply_deploy(
    cp: &ControlPlane,
    o: &RealOptions,
    p: &Params,
) -> anyhow::Result<Vec<sidecars::Sidecar>> {
    let chart = o.deploy.join("chart");
    let chart = chart.to_string_lossy().into_owned();
    let attach = format!("attachRequired={}", p.attach_required);
    let backend = match p.backend {
        StorageBackend::Cephfs => "backend=cephfs",
        StorageBackend::Manila => "backend=manila",
    };
    let yaml = cp
        .helm(&[
            "template",
            sidecars::RELEASE,
            &chart,
            "--namespace",
            sidecars::NAMESPACE,
            "--set",
            &attach,
            "--set",
            backend,
        ])
        .await
        .with_context(|| format!("rendering {chart}"))?;
    let (items, controller) = workload_free(&yaml)?;
    let controller = controller.with_context(|| format!("{chart} has no controller Deployment"))?;
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    let file = cp.dir().join("deploy.json");
    std::fs::write(&file, list.to_string())?;
    cp.kubectl(&["create", "namespace", sidecars::NAMESPACE])
        .await?;
    cp.kubectl(&["apply", "-f", &file.to_string_lossy()])
        .await
        .with_context(|| format!("applying {chart}"))?;
    sidecars::of_deployment(&controller)
}

/// The objects of a rendered chart without its Deployments and DaemonSets, and its
/// (controller) Deployment.
fn workload_free(
    yaml: &str,
) -> anyhow::Result<(Vec<serde_json::Value>, Option<serde_json::Value>)> {
    let mut items = Vec::new();
    let mut controller = None;
    for doc in yaml_serde::Deserializer::from_str(yaml) {
        let v: serde_json::Value =
            serde::Deserialize::deserialize(doc).context("reading helm template's output")?;
        let kind = v["kind"].as_str().unwrap_or_default();
        if kind == "Deployment" {
            controller = Some(v);
        } else if !v.is_null() && kind != "DaemonSet" {
            items.push(v);
        }
    }
    Ok((items, controller))
}

/// Registers every node (at most 16 at once) and starts its kubelet.
async fn start_kubelets(
    cp: &ControlPlane,
    stack: &Embedded,
    attach_required: bool,
    tally: &Arc<Tally>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut kubelets = Vec::new();
    for (i, (id, dir, _)) in stack.node_endpoints().enumerate() {
        let name = node_name(i);
        anyhow::ensure!(id == name, "node plugin {i} is {id}, not {name}");
        let node = NodeIdentity::connect(&cp.node_kubeconfig(&name)?, &name).await?;
        tally.api_client("kubelet", node.limit().clone());
        let channel = stack.node_channel(i).context("a node plugin's channel")?;
        let setup = KubeletSetup {
            driver: DRIVER_NAME.into(),
            attach_required,
            dir: dir.to_owned(),
            channel,
        };
        kubelets.push(Arc::new(HollowKubelet::new(node, setup, tally.clone())));
    }
    for chunk in kubelets.chunks(16) {
        let mut set = tokio::task::JoinSet::new();
        for k in chunk {
            let k = k.clone();
            set.spawn(async move { k.register().await });
        }
        while let Some(r) = set.join_next().await {
            r.context("registering a node")??;
        }
    }
    Ok(kubelets
        .into_iter()
        .map(|k| {
            tokio::spawn(async move {
                if let Err(e) = k.serve().await {
                    tracing::warn!("kubelet: {e:#}");
                }
            })
        })
        .collect())
}
