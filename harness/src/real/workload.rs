//! The workload of a real-mode run, on any cluster an admin's client reaches: the
//! scenario's claims (the simulator's objects, naming a given StorageClass) and its
//! Deployment (one pod per node through pod anti-affinity) in one namespace; an admin's
//! watch of the pods for the timings (first seen, first seen bound, first seen Running)
//! until every replica runs, no pod became Running for `stall_s`, or `max_deploy_s`
//! passed; then the deletion of everything it made, waiting (at most `max_teardown_s`)
//! until its pods, claims, PVs and VolumeAttachments are gone. Every time is measured on
//! the wall clock.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Affinity, PersistentVolume, PersistentVolumeClaim, Pod, PodAffinityTerm, PodAntiAffinity,
};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use tokio_stream::StreamExt as _;

use super::tally::Tally;
use crate::csi::Embedded;
use crate::params::Params;
use crate::report::{CallTotals, RpcRow, Summary, Wall};
use crate::stats::percentiles;

/// When each pod was seen to reach each stage, by the admin's watch.
#[derive(Debug, Default)]
pub(super) struct PodTimes {
    created: BTreeMap<String, Instant>,
    bound: BTreeMap<String, Instant>,
    running: BTreeMap<String, Instant>,
}

/// How the deploy phase ended.
#[derive(Debug, Clone)]
pub(super) struct Outcome {
    why: String,
    provisioned: Option<Duration>,
    all_running: Option<Duration>,
    running: usize,
    claims: BTreeMap<String, String>,
    deploy_ended: Duration,
    /// The most MDS sessions open at fake-ceph, sampled every second.
    peak_sessions: usize,
    /// Pods the script deleted for being stuck.
    killed: u64,
    /// Each pod still there and not Running when the deploy phase ended: its wait since
    /// creation and since binding (if bound), to the end of the phase.
    stuck: Vec<(Duration, Option<Duration>)>,
}

/// Attempt #2's script (the 2018 one, `step` > 0): the Deployment grows by `step`
/// replicas every `step_interval_s`, and a pod not Running `kill_stuck_after_s` after it
/// was first seen is deleted (its ReplicaSet makes another). With `step` = 0 it does
/// nothing: every replica from the start.
struct Script {
    current: usize,
    last_scale: Instant,
    killed: BTreeSet<String>,
}

impl Script {
    fn initial(p: &Params) -> usize {
        if p.step == 0 {
            p.replicas
        } else {
            p.step.min(p.replicas)
        }
    }

    fn new(p: &Params) -> Self {
        Self {
            current: Self::initial(p),
            last_scale: Instant::now(),
            killed: BTreeSet::new(),
        }
    }

    async fn tick(
        &mut self,
        p: &Params,
        deployments: &Api<Deployment>,
        pods: &Api<Pod>,
        times: &PodTimes,
    ) -> anyhow::Result<()> {
        if p.step == 0 {
            return Ok(());
        }
        if self.current < p.replicas
            && self.last_scale.elapsed() >= Duration::from_secs_f64(p.step_interval_s)
        {
            self.current = (self.current + p.step).min(p.replicas);
            let patch = serde_json::json!({"spec": {"replicas": self.current}});
            deployments
                .patch(
                    crate::sim::DEPLOYMENT,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await
                .context("scaling the Deployment")?;
            self.last_scale = Instant::now();
        }
        let stuck_after = Duration::from_secs_f64(p.kill_stuck_after_s);
        let stuck: Vec<String> = times
            .created
            .iter()
            .filter(|(pod, at)| {
                at.elapsed() >= stuck_after
                    && !times.running.contains_key(*pod)
                    && !self.killed.contains(*pod)
            })
            .map(|(pod, _)| pod.clone())
            .collect();
        for pod in stuck {
            match pods.delete(&pod, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    return Err(anyhow::Error::from(e).context(format!("deleting stuck pod {pod}")));
                }
            }
            self.killed.insert(pod);
        }
        Ok(())
    }
}

/// Where the workload goes: its namespace and the StorageClass its claims name.
#[derive(Debug, Clone)]
pub struct Target {
    /// The namespace of the claims, the Deployment and its pods.
    pub namespace: String,
    /// The claims' StorageClass.
    pub class: String,
}

/// The scenario's claims, then its Deployment.
async fn create_objects(p: &Params, admin: &Client, target: &Target) -> anyhow::Result<()> {
    let pp = PostParams::default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), &target.namespace);
    for s in 0..p.shares {
        let mut c = crate::sim::objects::claim(s);
        c.metadata.uid = None;
        c.metadata.namespace = Some(target.namespace.clone());
        c.status = None;
        if let Some(spec) = c.spec.as_mut() {
            spec.storage_class_name = Some(target.class.clone());
        }
        claims.create(&pp, &c).await.context("creating a claim")?;
    }
    let (mut d, _) = crate::sim::objects::deployment(p, Script::initial(p));
    d.metadata.namespace = Some(target.namespace.clone());
    spread_one_per_node(&mut d);
    Api::<Deployment>::namespaced(admin.clone(), &target.namespace)
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
pub(super) async fn deploy(
    p: &Params,
    admin: &Client,
    target: &Target,
    stack: Option<&Embedded>,
) -> anyhow::Result<(PodTimes, Outcome)> {
    let t0 = Instant::now();
    create_objects(p, admin, target).await?;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &target.namespace);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), &target.namespace);
    let mut stream = std::pin::pin!(kube::runtime::watcher(pods.clone(), Default::default()));
    let mut times = PodTimes::default();
    let mut provisioned = None;
    let mut peak_sessions = 0;
    let mut last_progress = Instant::now();
    let stall = Duration::from_secs_f64(p.stall_s.max(1.0));
    let max = Duration::from_secs_f64(p.max_deploy_s.max(1.0));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut script = Script::new(p);
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &target.namespace);
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
                script.tick(p, &deployments, &pods, &times).await?;
                peak_sessions = peak_sessions.max(stack.and_then(Embedded::session_count).unwrap_or(0));
                if provisioned.is_none() && all_bound(&claims).await? {
                    provisioned = Some(t0.elapsed());
                }
            }
        }
    };
    let all_running = (why == "all pods Running").then(|| t0.elapsed());
    // Idle pods stay Running `hold_s` before teardown, as in the simulator.
    if all_running.is_some() && p.workload == crate::params::Workload::Idle {
        let until = Instant::now() + Duration::from_secs_f64(p.hold_s);
        while Instant::now() < until {
            tokio::time::sleep(
                until
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_secs(1)),
            )
            .await;
            peak_sessions = peak_sessions.max(stack.and_then(Embedded::session_count).unwrap_or(0));
        }
    }
    let claims_at_end = claim_phases(&claims).await?;
    if provisioned.is_none() && claims_at_end.values().all(|c| c == "Bound") {
        provisioned = Some(t0.elapsed());
    }
    let ended = Instant::now();
    let stuck = times
        .created
        .iter()
        .filter(|(pod, _)| !times.running.contains_key(*pod) && !script.killed.contains(*pod))
        .map(|(pod, created)| {
            let bound = times
                .bound
                .get(pod)
                .map(|b| ended.saturating_duration_since(*b));
            (ended.saturating_duration_since(*created), bound)
        })
        .collect();
    let outcome = Outcome {
        why,
        provisioned,
        all_running,
        running: times.running.len(),
        claims: claims_at_end,
        deploy_ended: t0.elapsed(),
        stuck,
        peak_sessions: peak_sessions.max(stack.and_then(Embedded::session_count).unwrap_or(0)),
        killed: script.killed.len() as u64,
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
pub(super) async fn tear_down(
    admin: &Client,
    p: &Params,
    target: &Target,
) -> anyhow::Result<BTreeMap<&'static str, usize>> {
    let ns = target.namespace.as_str();
    let dp = DeleteParams::background();
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), ns);
    let _ = deployments.delete(crate::sim::DEPLOYMENT, &dp).await;
    let max = Instant::now() + Duration::from_secs_f64(p.max_teardown_s.max(1.0));
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), ns);
    let pvs: Api<PersistentVolume> = Api::all(admin.clone());
    let vas: Api<VolumeAttachment> = Api::all(admin.clone());
    let count_pods = || async { Ok(pods.list(&ListParams::default()).await?.items.len()) };
    wait_none(count_pods, max).await?;
    // This run's volumes: the PVs bound to claims in its namespace.
    let ours = our_volumes(&pvs, ns).await?;
    let _ = claims.delete_collection(&dp, &ListParams::default()).await;
    let count_claims = || async { Ok(claims.list(&ListParams::default()).await?.items.len()) };
    let count_pvs = || async {
        let names: BTreeSet<String> = pvs
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter_map(|v| v.metadata.name)
            .collect();
        Ok(ours.intersection(&names).count())
    };
    let count_vas = || async {
        Ok(vas
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|va| {
                va.spec
                    .source
                    .persistent_volume_name
                    .as_ref()
                    .is_some_and(|n| ours.contains(n))
            })
            .count())
    };
    wait_none(count_claims, max).await?;
    wait_none(count_pvs, max).await?;
    wait_none(count_vas, max).await?;
    let mut left = BTreeMap::new();
    for (kind, n) in [
        ("pods", count_pods().await?),
        ("persistentvolumeclaims", count_claims().await?),
        ("persistentvolumes", count_pvs().await?),
        ("volumeattachments", count_vas().await?),
    ] {
        if n > 0 {
            left.insert(kind, n);
        }
    }
    Ok(left)
}

/// The names of the PVs bound to claims in namespace `ns`.
async fn our_volumes(pvs: &Api<PersistentVolume>, ns: &str) -> anyhow::Result<BTreeSet<String>> {
    Ok(pvs
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|v| {
            v.spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .and_then(|r| r.namespace.as_deref())
                == Some(ns)
        })
        .filter_map(|v| v.metadata.name)
        .collect())
}

/// Polls `count` until it says nothing is left or `until` passes.
async fn wait_none<F, Fut>(count: F, until: Instant) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<usize>>,
{
    while Instant::now() < until {
        if count().await? == 0 {
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
pub(super) fn summarise(
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
    // Stuck pods count with their wait so far, as in the simulator's summary.
    let mut startup = durations(&times.created, &times.running);
    startup.extend(outcome.stuck.iter().map(|s| s.0));
    let mut schedule_to_run = durations(&times.bound, &times.running);
    schedule_to_run.extend(outcome.stuck.iter().filter_map(|s| s.1));
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
        pods_killed: outcome.killed,
        provisioned_s: outcome.provisioned.map(|d| d.as_secs_f64()),
        all_running_s: outcome.all_running.map(|d| d.as_secs_f64()),
        sim_total_s: outcome.deploy_ended.as_secs_f64(),
        pod_startup: percentiles(&startup),
        pod_startup_not_running: outcome.stuck.len() as u64,
        schedule_to_run: percentiles(&schedule_to_run),
        running_curve_s: crate::report::running_curve(&running_at, p.replicas),
        peak_mds_sessions: outcome.peak_sessions as i64,
        rpcs,
        csi_calls,
        mds_hcr: None,
        forbidden: counts.forbidden.clone(),
        backoffs: counts.backoffs,
        volume_attachments: 0,
        foreign_device_paths: 0,
        api_clients: counts.api_clients.clone(),
        authz_graph: (0, 0),
        events: (0, 0, 0),
        events_hash: String::new(),
        clean: leaked_objects.is_empty(),
        leaked_objects,
        leaks: Default::default(),
        wall: Wall {
            fake_ceph_peak_sessions: outcome.peak_sessions,
            ..Wall::default()
        },
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
