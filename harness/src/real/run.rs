//! `harness run --control-plane real`: a scenario on a local control plane of
//! Kubernetes' own programs, in real time.
//!
//! The run starts [`ControlPlane`] in `<out>/cluster` (every component's log in
//! `<out>/cluster/log`), applies deploy/'s objects as rendered by `kubectl kustomize`
//! (the base, or the attach-required overlay) except the controller Deployment and the
//! node DaemonSet, whose work is done here: the driver's controller and one node plugin
//! per node run in-process on Unix sockets ([`Embedded`]), the real external-provisioner
//! (and external-attacher) run as processes on the controller's socket under deploy/'s
//! ServiceAccount, and one [`HollowKubelet`] per node serves the node's pods under its
//! own node identity. It creates the scenario's Secret, StorageClass and claims (the
//! simulator's objects) and its Deployment (one pod per node through pod
//! anti-affinity), watches the pods as an admin, then deletes everything and checks
//! that the API and the back end are empty.
//!
//! Every figure is measured on the wall clock: pod times from the admin's watch (first
//! seen, first seen bound, first seen Running), node CSI calls from the kubelets,
//! controller CSI calls from the sidecars' own `csi_sidecar_operations_seconds`, 403s as
//! the kubelets met them, peak RSS summed over this process and its children.
//! The scenario's modelled parameters (latencies, authorizer costs, QPS) do not apply:
//! the real components have their own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Affinity, PersistentVolume, PersistentVolumeClaim, Pod, PodAffinityTerm, PodAntiAffinity,
    Secret,
};
use k8s_openapi::api::storage::v1::{StorageClass, VolumeAttachment};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use tokio_stream::StreamExt as _;

use super::kubelet::{HollowKubelet, KubeletSetup};
use super::node::NodeIdentity;
use super::tally::Tally;
use super::{ControlPlane, sidecars};
use crate::api::NAMESPACE;
use crate::csi::{DRIVER_NAME, Embedded, Launch, node_name};
use crate::params::Params;
use crate::report::{CallTotals, RpcRow, Summary, Wall};
use crate::stats::percentiles;

/// Where the programs and manifests are.
#[derive(Debug, Clone)]
pub struct RealOptions {
    /// The directory `ci/install-kube.sh` printed.
    pub kube_bin: PathBuf,
    /// The repository's `deploy/`.
    pub deploy: PathBuf,
}

/// When each pod was seen to reach each stage, by the admin's watch.
#[derive(Debug, Default)]
struct PodTimes {
    created: BTreeMap<String, Instant>,
    bound: BTreeMap<String, Instant>,
    running: BTreeMap<String, Instant>,
}

/// Runs scenario `p` on a local control plane, writing the cluster's files under
/// `out/cluster`; the summary (the caller writes the reports).
pub async fn run(p: &Params, seed: u64, o: &RealOptions, out: &Path) -> anyhow::Result<Summary> {
    anyhow::ensure!(
        p.step == 0,
        "real mode scales all replicas at once (step = 0); scenario {} scales in steps of {}",
        p.name,
        p.step
    );
    anyhow::ensure!(
        p.fault_plan.is_empty() && p.ceph_faults.is_empty(),
        "real mode runs without fault plans and Ceph faults"
    );
    let t0 = Instant::now();
    let dir = out.join("cluster");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cp = ControlPlane::start(&o.kube_bin, &dir).await?;
    let rss = super::rss::PeakRss::sample_every(Duration::from_millis(500));
    let stop = stop_signals()?;
    let result = tokio::select! {
        r = on_control_plane(p, seed, o, &mut cp) => r,
        () = stop => Err(anyhow::anyhow!("interrupted")),
    };
    cp.stop().await;
    let mut summary = result?;
    summary.wall.total_s = t0.elapsed().as_secs_f64();
    summary.wall.peak_rss_mib = rss.peak_mib();
    Ok(summary)
}

/// SIGINT or SIGTERM (handlers installed now): the run then stops every component in
/// order and removes what it made.
fn stop_signals() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Runs scenario `p` on a local control plane and writes `summary.json` and
/// `report.md` to `out` (the cluster's files and logs in `out/cluster`).
pub async fn run_and_report(
    p: &Params,
    seed: u64,
    o: &RealOptions,
    out: &Path,
) -> anyhow::Result<Summary> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let summary = run(p, seed, o, out).await?;
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    std::fs::write(out.join("report.md"), summary.markdown())?;
    Ok(summary)
}

/// Everything between the control plane's start and stop.
async fn on_control_plane(
    p: &Params,
    seed: u64,
    o: &RealOptions,
    cp: &mut ControlPlane,
) -> anyhow::Result<Summary> {
    apply_deploy(cp, o, p.attach_required).await?;
    let admin = admin_client(&cp.admin_kubeconfig()).await?;
    let stack = Embedded::launch(
        Launch {
            seed,
            nodes: p.node_count(),
            attach_required: p.attach_required,
            backend: p.backend,
            controller_credentials: false,
            ceph_faults: fake_ceph::Faults::default(),
            manila_faults: p.manila_faults.clone(),
            timeouts: p.driver,
            durable_ceph: false,
        },
        "harness-real-",
    )
    .await?;
    let result = with_stack(p, seed, cp, &admin, &stack).await;
    let leaks = stack.leaks().await;
    stack.shutdown().await;
    let mut summary = result?;
    summary.clean = summary.clean && leaks.none();
    summary.leaks = leaks;
    Ok(summary)
}

async fn with_stack(
    p: &Params,
    seed: u64,
    cp: &mut ControlPlane,
    admin: &Client,
    stack: &Embedded,
) -> anyhow::Result<Summary> {
    let metrics = sidecars::start(cp, stack.controller_socket(), p.attach_required).await?;
    let tally = Arc::new(Tally::default());
    let kubelets = start_kubelets(cp, stack, p.attach_required, &tally).await?;
    let secrets: BTreeMap<String, String> = stack
        .secrets()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let outcome = workload(p, admin, &secrets).await;
    let teardown = tear_down(admin, p).await;
    for k in kubelets {
        k.abort();
    }
    let mut controller_rpcs = BTreeMap::new();
    for url in &metrics {
        sidecars::scrape(url, &mut controller_rpcs).await;
    }
    let (times, outcome) = outcome?;
    let leaked_objects = teardown?;
    Ok(summarise(
        p,
        seed,
        &times,
        &outcome,
        &tally,
        controller_rpcs,
        leaked_objects,
    ))
}

/// A client with the admin's kubeconfig.
pub async fn admin_client(kubeconfig: &Path) -> anyhow::Result<Client> {
    let file = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// Applies deploy/'s objects but the controller Deployment and the node DaemonSet.
async fn apply_deploy(cp: &ControlPlane, o: &RealOptions, attach: bool) -> anyhow::Result<()> {
    let which = if attach {
        o.deploy.join("overlays/attach-required")
    } else {
        o.deploy.join("base")
    };
    let which = which.to_string_lossy().into_owned();
    let yaml = cp
        .kubectl(&["kustomize", &which])
        .await
        .with_context(|| format!("rendering {which}"))?;
    let items = workload_free(&yaml)?;
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    let file = cp.dir().join("deploy.json");
    std::fs::write(&file, list.to_string())?;
    cp.kubectl(&["apply", "-f", &file.to_string_lossy()])
        .await
        .with_context(|| format!("applying {which}"))?;
    Ok(())
}

/// The objects of a rendered kustomization, without its Deployments and DaemonSets.
fn workload_free(yaml: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut items = Vec::new();
    for doc in yaml_serde::Deserializer::from_str(yaml) {
        let v: serde_json::Value =
            serde::Deserialize::deserialize(doc).context("reading kubectl kustomize's output")?;
        let kind = v["kind"].as_str().unwrap_or_default();
        if v.is_null() || kind == "Deployment" || kind == "DaemonSet" {
            continue;
        }
        items.push(v);
    }
    Ok(items)
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

/// How the deploy phase ended.
#[derive(Debug, Clone)]
struct Outcome {
    why: String,
    provisioned: Option<Duration>,
    all_running: Option<Duration>,
    running: usize,
    claims: BTreeMap<String, String>,
    deploy_ended: Duration,
}

/// The scenario's objects: Secret, StorageClass, claims, then the Deployment.
async fn create_objects(
    p: &Params,
    admin: &Client,
    secrets: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let pp = PostParams::default();
    let mut secret: Secret = crate::sim::objects::secret(p);
    secret.string_data = Some(secrets.clone());
    Api::<Secret>::namespaced(admin.clone(), NAMESPACE)
        .create(&pp, &secret)
        .await
        .context("creating the Secret")?;
    let class: StorageClass = crate::sim::objects::storage_class(p);
    Api::<StorageClass>::all(admin.clone())
        .create(&pp, &class)
        .await
        .context("creating the StorageClass")?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), NAMESPACE);
    for s in 0..p.shares {
        let mut c = crate::sim::objects::claim(s);
        c.metadata.uid = None;
        c.status = None;
        claims.create(&pp, &c).await.context("creating a claim")?;
    }
    let (mut d, _) = crate::sim::objects::deployment(p, p.replicas);
    spread_one_per_node(&mut d);
    Api::<Deployment>::namespaced(admin.clone(), NAMESPACE)
        .create(&pp, &d)
        .await
        .context("creating the Deployment")?;
    Ok(())
}

/// Labels the Deployment's pods, selects them, and keeps two off one node (the
/// simulator places one replica per node).
fn spread_one_per_node(d: &mut Deployment) {
    let labels = BTreeMap::from([("app".to_owned(), crate::sim::DEPLOYMENT.to_owned())]);
    d.spec.selector = LabelSelector {
        match_labels: Some(labels.clone()),
        ..Default::default()
    };
    let meta = d
        .spec
        .template
        .metadata
        .get_or_insert_with(Default::default);
    meta.labels = Some(labels.clone());
    if let Some(spec) = d.spec.template.spec.as_mut() {
        spec.automount_service_account_token = Some(false);
        spec.termination_grace_period_seconds = Some(1);
        spec.affinity = Some(Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    label_selector: Some(LabelSelector {
                        match_labels: Some(labels),
                        ..Default::default()
                    }),
                    topology_key: "kubernetes.io/hostname".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
}

/// Creates the scenario's objects and watches the pods until every replica runs, no
/// pod became Running for `stall_s`, or `max_deploy_s` passed.
async fn workload(
    p: &Params,
    admin: &Client,
    secrets: &BTreeMap<String, String>,
) -> anyhow::Result<(PodTimes, Outcome)> {
    let t0 = Instant::now();
    create_objects(p, admin, secrets).await?;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), NAMESPACE);
    let mut stream = std::pin::pin!(kube::runtime::watcher(pods, Default::default()));
    let mut times = PodTimes::default();
    let mut provisioned = None;
    let mut last_progress = Instant::now();
    let stall = Duration::from_secs_f64(p.stall_s.max(1.0));
    let max = Duration::from_secs_f64(p.max_deploy_s.max(1.0));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let why = loop {
        let running_now = times.running.len();
        if running_now >= p.replicas {
            break "all pods Running".to_owned();
        }
        if last_progress.elapsed() >= stall {
            break "stalled".to_owned();
        }
        if t0.elapsed() >= max {
            break "deadline".to_owned();
        }
        tokio::select! {
            ev = stream.next() => match ev {
                Some(Ok(kube::runtime::watcher::Event::Apply(pod)
                    | kube::runtime::watcher::Event::InitApply(pod))) => {
                    if times.see(&pod) {
                        last_progress = Instant::now();
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!("watching pods: {e}"),
                None => anyhow::bail!("the pod watch ended"),
            },
            _ = tick.tick() => {
                if provisioned.is_none() && all_bound(&claims).await? {
                    provisioned = Some(t0.elapsed());
                }
            }
        }
    };
    let all_running = (why == "all pods Running").then(|| t0.elapsed());
    let claims_at_end = claim_phases(&claims).await?;
    if provisioned.is_none() && claims_at_end.values().all(|c| c == "Bound") {
        provisioned = Some(t0.elapsed());
    }
    let outcome = Outcome {
        why,
        provisioned,
        all_running,
        running: times.running.len(),
        claims: claims_at_end,
        deploy_ended: t0.elapsed(),
    };
    Ok((times, outcome))
}

impl PodTimes {
    /// Notes what `pod` shows for the first time; whether it just became Running.
    fn see(&mut self, pod: &Pod) -> bool {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let now = Instant::now();
        self.created.entry(name.clone()).or_insert(now);
        if pod.spec.as_ref().is_some_and(|s| s.node_name.is_some()) {
            self.bound.entry(name.clone()).or_insert(now);
        }
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        running && self.running.insert(name, now).is_none()
    }
}

async fn claim_phases(
    claims: &Api<PersistentVolumeClaim>,
) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(claims
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|c| {
            let phase = c.status.and_then(|s| s.phase).unwrap_or_default();
            (c.metadata.name.unwrap_or_default(), phase)
        })
        .collect())
}

async fn all_bound(claims: &Api<PersistentVolumeClaim>) -> anyhow::Result<bool> {
    Ok(claim_phases(claims).await?.values().all(|p| p == "Bound"))
}

/// Deletes the Deployment and the claims, waits until pods, claims, PVs and
/// VolumeAttachments are gone (at most `max_teardown_s`); what is left, by kind.
async fn tear_down(admin: &Client, p: &Params) -> anyhow::Result<BTreeMap<&'static str, usize>> {
    let dp = DeleteParams::background();
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    let _ = deployments.delete(crate::sim::DEPLOYMENT, &dp).await;
    let max = Instant::now() + Duration::from_secs_f64(p.max_teardown_s.max(1.0));
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    wait_empty(&pods, max).await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), NAMESPACE);
    let _ = claims.delete_collection(&dp, &ListParams::default()).await;
    let pvs: Api<PersistentVolume> = Api::all(admin.clone());
    let vas: Api<VolumeAttachment> = Api::all(admin.clone());
    wait_empty(&claims, max).await?;
    wait_empty(&pvs, max).await?;
    wait_empty(&vas, max).await?;
    let mut left = BTreeMap::new();
    for (kind, n) in [
        ("pods", pods.list(&ListParams::default()).await?.items.len()),
        (
            "persistentvolumeclaims",
            claims.list(&ListParams::default()).await?.items.len(),
        ),
        (
            "persistentvolumes",
            pvs.list(&ListParams::default()).await?.items.len(),
        ),
        (
            "volumeattachments",
            vas.list(&ListParams::default()).await?.items.len(),
        ),
    ] {
        if n > 0 {
            left.insert(kind, n);
        }
    }
    Ok(left)
}

/// Polls until `api` lists nothing or `until` passes.
async fn wait_empty<K>(api: &Api<K>, until: Instant) -> anyhow::Result<()>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug + kube::Resource,
{
    while Instant::now() < until {
        if api
            .list(&ListParams::default().limit(1))
            .await?
            .items
            .is_empty()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

fn durations(from: &BTreeMap<String, Instant>, to: &BTreeMap<String, Instant>) -> Vec<Duration> {
    to.iter()
        .filter_map(|(pod, t)| from.get(pod).map(|f| t.saturating_duration_since(*f)))
        .collect()
}

/// The run's summary, in the simulator's format.
fn summarise(
    p: &Params,
    seed: u64,
    times: &PodTimes,
    outcome: &Outcome,
    tally: &Tally,
    controller_rpcs: BTreeMap<(String, String), u64>,
    leaked_objects: BTreeMap<&'static str, usize>,
) -> Summary {
    let counts = tally.counts();
    let mut rpcs: Vec<RpcRow> = counts
        .rpcs
        .iter()
        .map(|((m, c), v)| RpcRow {
            method: m.clone(),
            code: c.clone(),
            sim: percentiles(v),
        })
        .collect();
    for ((m, c), n) in controller_rpcs {
        rpcs.push(RpcRow {
            method: m,
            code: c,
            sim: crate::stats::Percentiles {
                count: n as usize,
                ..Default::default()
            },
        });
    }
    let csi_calls = CallTotals::of(&rpcs, 0.0);
    let first = times.created.values().min().copied();
    let running_at: Vec<crate::time::SimTime> = times
        .running
        .values()
        .filter_map(|t| {
            first.map(|f| crate::time::SimTime::ZERO.after(t.saturating_duration_since(f)))
        })
        .collect();
    let pods_not_running: BTreeMap<String, String> = times
        .created
        .keys()
        .filter(|pod| !times.running.contains_key(*pod))
        .map(|pod| {
            let why = counts.pod_errors.get(pod).cloned().unwrap_or_default();
            (pod.clone(), why)
        })
        .collect();
    Summary {
        scenario: p.name.clone(),
        seed,
        mode: "real control plane".into(),
        outcome: outcome.why.clone(),
        replicas: p.replicas,
        running: outcome.running,
        max_running: times.running.len(),
        pods_created: times.created.len() as u64,
        pods_killed: 0,
        provisioned_s: outcome.provisioned.map(|d| d.as_secs_f64()),
        all_running_s: outcome.all_running.map(|d| d.as_secs_f64()),
        sim_total_s: outcome.deploy_ended.as_secs_f64(),
        pod_startup: percentiles(&durations(&times.created, &times.running)),
        schedule_to_run: percentiles(&durations(&times.bound, &times.running)),
        running_curve_s: crate::report::running_curve(&running_at, p.replicas),
        peak_mds_sessions: 0,
        rpcs,
        csi_calls,
        mds_hcr: None,
        forbidden: counts.forbidden.clone(),
        backoffs: counts.backoffs,
        volume_attachments: 0,
        api_clients: BTreeMap::new(),
        authz_graph: (0, 0),
        events: (0, 0),
        events_hash: String::new(),
        clean: leaked_objects.is_empty(),
        leaked_objects,
        leaks: Default::default(),
        wall: Wall::default(),
        mock_calls: BTreeMap::new(),
        plots: Vec::new(),
        busy: None,
        faults: Default::default(),
        claims: outcome.claims.clone(),
        pods_not_running,
        duplicates: BTreeMap::new(),
        checkpoints: 0,
        checkpoint_errors: Vec::new(),
        params: p.clone(),
    }
}
