//! `harness run --control-plane real` and `harness run --kubeconfig FILE`.
//!
//! Real control plane: a [`LocalCluster`] in `<out>/cluster` (every component's log in
//! `<out>/cluster/log`), the scenario's [`workload`](super::workload) on it in the
//! `default` namespace with the simulator's StorageClass, then the leak check of the
//! API and of the back end. Every figure is measured on the wall clock: pod times from an
//! admin's watch, node CSI calls from the hollow kubelets, controller CSI calls from the
//! sidecars' own `csi_sidecar_operations_seconds`, 403s as the kubelets met them, peak
//! RSS summed over this process and its children. The scenario's modelled parameters
//! (latencies, authorizer costs, QPS) do not apply: the real components have their own.
//!
//! An existing cluster (`--kubeconfig`): deploy/ installed there, a StorageClass of the
//! driver named by `--storage-class`; the workload runs in a namespace of its own
//! (`trainride-<seed>`, made and removed by the run), with no kubelet or back end of ours
//! to count: the report has the API's view (pod times, claims, what was left).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, PostParams};

use super::cluster::{LocalCluster, admin_client};
use super::tally::Tally;
use super::workload::{self, Target};
use crate::api::NAMESPACE;
use crate::params::Params;
use crate::report::Summary;

/// Where the programs and manifests are.
#[derive(Debug, Clone)]
pub struct RealOptions {
    /// The directory `ci/install-kube.sh` printed.
    pub kube_bin: PathBuf,
    /// The repository's `deploy/`.
    pub deploy: PathBuf,
}

/// What real mode does not do: fault plans (their anchors are the simulator's events),
/// and on an existing cluster, fake-ceph's fault rules (its Ceph is not ours).
fn supported(p: &Params, local: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        p.fault_plan.is_empty(),
        "real mode runs without fault plans (scenario {} has {})",
        p.name,
        p.fault_plan.len()
    );
    anyhow::ensure!(
        local || p.ceph_faults.is_empty(),
        "ceph_faults apply to the embedded fake-ceph of --control-plane real, not to a \
         cluster's own Ceph"
    );
    Ok(())
}

/// Runs scenario `p` on a local control plane, writing the cluster's files under
/// `out/cluster`; the summary (the caller writes the reports).
pub async fn run(p: &Params, seed: u64, o: &RealOptions, out: &Path) -> anyhow::Result<Summary> {
    supported(p, true)?;
    let t0 = Instant::now();
    let rss = super::rss::PeakRss::sample_every(Duration::from_millis(500));
    let stop = crate::stop_signals()?;
    let cluster = LocalCluster::start(p, seed, o, &out.join("cluster")).await?;
    let target = Target {
        namespace: NAMESPACE.into(),
        class: crate::sim::objects::storage_class(p)
            .metadata
            .name
            .unwrap_or_default(),
    };
    let body = async {
        let deployed = workload::deploy(p, &cluster.admin, &target, Some(&cluster.stack)).await;
        let left = workload::tear_down(&cluster.admin, p, &target).await;
        anyhow::Ok((deployed, left))
    };
    let result = tokio::select! {
        r = body => r,
        () = stop => Err(anyhow::anyhow!("interrupted")),
    };
    let hcr = cluster.stack.perf_dump().await["mds_server"]["handle_client_request"]
        .as_u64()
        .unwrap_or(0);
    let controller_rpcs = if result.is_ok() {
        cluster.controller_rpcs().await
    } else {
        BTreeMap::new()
    };
    let tally = cluster.tally.clone();
    let leaks = cluster.stop(result.is_err()).await;
    let (deployed, left) = result?;
    let (times, outcome) = deployed?;
    let mut summary =
        workload::summarise(p, seed, &times, &outcome, &tally, controller_rpcs, left?);
    summary.clean = summary.clean && leaks.none();
    summary.leaks = leaks;
    summary.wall.fake_ceph_hcr = hcr;
    summary.wall.total_s = t0.elapsed().as_secs_f64();
    summary.wall.peak_rss_mib = rss.peak_mib();
    Ok(summary)
}

/// Runs scenario `p` on the cluster `kubeconfig` reaches, its claims of StorageClass
/// `class`, in namespace `trainride-<seed>`.
pub async fn run_on_cluster(
    p: &Params,
    seed: u64,
    kubeconfig: &Path,
    class: &str,
) -> anyhow::Result<Summary> {
    supported(p, false)?;
    let t0 = Instant::now();
    let stop = crate::stop_signals()?;
    let admin = admin_client(kubeconfig).await?;
    let target = Target {
        namespace: format!("trainride-{seed}"),
        class: class.to_owned(),
    };
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(target.namespace.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| {
            format!(
                "creating namespace {} (a run of this seed may still be there: delete it first)",
                target.namespace
            )
        })?;
    let body = async {
        let deployed = workload::deploy(p, &admin, &target, None).await;
        let left = workload::tear_down(&admin, p, &target).await;
        anyhow::Ok((deployed, left))
    };
    let result = tokio::select! {
        r = body => r,
        () = stop => Err(anyhow::anyhow!("interrupted")),
    };
    let removed = remove_namespace(&namespaces, &target.namespace).await;
    let (deployed, left) = result?;
    removed.with_context(|| format!("deleting namespace {}", target.namespace))?;
    let (times, outcome) = deployed?;
    let tally = Tally::default();
    let mut summary =
        workload::summarise(p, seed, &times, &outcome, &tally, BTreeMap::new(), left?);
    summary.mode = "cluster".into();
    summary.wall.total_s = t0.elapsed().as_secs_f64();
    summary.wall.peak_rss_mib = crate::report::peak_rss_mib();
    Ok(summary)
}

/// Deletes namespace `name` and waits (at most a minute) until the namespace controller
/// has removed it.
async fn remove_namespace(namespaces: &Api<Namespace>, name: &str) -> anyhow::Result<()> {
    namespaces.delete(name, &DeleteParams::background()).await?;
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        match namespaces.get_opt(name).await? {
            None => return Ok(()),
            Some(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    anyhow::bail!("namespace {name} is still there after a minute")
}

/// Writes `summary.json` and `report.md` to `out`.
pub fn write_reports(summary: &Summary, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("summary.json"), crate::provenance::json(summary)?)?;
    std::fs::write(out.join("report.md"), summary.markdown())?;
    Ok(())
}

/// [`run`], then [`write_reports`].
pub async fn run_and_report(
    p: &Params,
    seed: u64,
    o: &RealOptions,
    out: &Path,
) -> anyhow::Result<Summary> {
    let summary = run(p, seed, o, out).await?;
    write_reports(&summary, out)?;
    Ok(summary)
}
