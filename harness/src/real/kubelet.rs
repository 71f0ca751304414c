//! A hollow kubelet's volume manager on a real API server (after Kubernetes'
//! `pkg/kubelet/volumemanager` and `pkg/volume/csi`): it watches the pods bound to its node and, for each,
//! does what the kubelet's volume manager and pod workers do with CSI volumes, under the
//! node's own identity (so the node authorizer judges every read):
//!
//! 1. resolve each claim: GET the PVC, its PV, and the Secret the PV names for staging;
//! 2. with `attachRequired`, wait until the node's status lists the volume as attached
//!    (the attach-detach controller writes it) and the VolumeAttachment the kubelet
//!    derives from the handle (`csi-<sha256(handle + driver + node)>`) says attached;
//! 3. list the volume in the node's `volumesInUse`, NodeStage it once per node (the
//!    staging directory is `plugins/kubernetes.io/csi/<driver>/<sha256(handle)>/
//!    globalmount`), NodePublish it per pod (`pods/<uid>/volumes/kubernetes.io~csi/
//!    <pv>/mount`) on the node's real plugin over gRPC;
//! 4. report the pod Running (its status, as the status manager patches it);
//! 5. when the pod is being deleted: NodeUnpublish, NodeUnstage after the node's last
//!    user, drop it from `volumesInUse`, then delete the pod with grace 0 (the kubelet's
//!    final delete, once its volumes are reclaimed).
//!
//! A failed step is tried again after the operation executor's exponential back-off:
//! 500 ms, doubling, at most 2 min 2 s. The real kubelet's desired-state populator
//! re-reads claims every 100 ms instead; here those reads back off as well, which keeps
//! a thousand pods from flooding a 2-core API server with 403s (simplification).
//! Containers are not run: a pod is Running once its volumes are published.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher;
use kube::{Api, Client};
use sha2::{Digest as _, Sha256};
use tokio::sync::{Mutex, watch};
use tokio_stream::StreamExt as _;
use tonic::transport::Channel;
use tracing::Instrument as _;

use super::node::NodeIdentity;
use super::tally::Tally;
use crate::csi::{CsiCall, CsiOutcome, call_node};

/// The kubelet's CSI call deadline (`csiTimeout`).
const CSI_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the node's Lease is renewed (`nodeLeaseRenewIntervalFraction` of 40 s).
const LEASE_RENEW: Duration = Duration::from_secs(10);

/// What a hollow kubelet needs besides its identity.
#[derive(Debug, Clone)]
pub struct KubeletSetup {
    /// The CSI driver's name.
    pub driver: String,
    /// CSIDriver `attachRequired`.
    pub attach_required: bool,
    /// The node plugin's directory (the kubelet's root is `<dir>/kubelet`).
    pub dir: PathBuf,
    /// A channel to the node plugin.
    pub channel: Channel,
}

/// One node's kubelet.
#[derive(Debug)]
pub struct HollowKubelet {
    node: NodeIdentity,
    setup: KubeletSetup,
    tally: Arc<Tally>,
    /// Staged volumes by handle: pods using each; the lock serialises stage/unstage.
    staged: Mutex<HashMap<String, Arc<Mutex<usize>>>>,
    /// The unique names listed in the node's `volumesInUse`.
    in_use: Mutex<BTreeSet<String>>,
}

/// A claim resolved to what the node plugin needs.
#[derive(Debug, Clone)]
struct Resolved {
    pv: String,
    handle: String,
    context: BTreeMap<String, String>,
    secrets: HashMap<String, String>,
}

/// The unique volume name a kubelet and the attach-detach controller use.
fn unique_name(driver: &str, handle: &str) -> String {
    format!("kubernetes.io/csi/{driver}^{handle}")
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The VolumeAttachment name the kubelet and the attach-detach controller derive.
pub fn attachment_name(handle: &str, driver: &str, node: &str) -> String {
    format!("csi-{}", sha256_hex(&format!("{handle}{driver}{node}")))
}

/// The HTTP status of an API error, if the server answered.
fn api_code(e: &anyhow::Error) -> Option<u16> {
    e.chain()
        .find_map(|c| match c.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(s)) => Some(s.code),
            _ => None,
        })
}

/// The operation executor's back-off of one operation ([`Backoff::kube`]), counted.
struct Backoff(crate::time::Backoff);

impl Backoff {
    fn new() -> Self {
        Self(crate::time::Backoff::kube())
    }

    async fn wait(&mut self, tally: &Tally) {
        let d = self.0.fail();
        tally.backoff(d >= crate::time::Backoff::KUBE_MAX);
        tokio::time::sleep(d).await;
    }
}

impl HollowKubelet {
    /// A kubelet for `node`, counting into `tally`.
    pub fn new(node: NodeIdentity, setup: KubeletSetup, tally: Arc<Tally>) -> Self {
        Self {
            node,
            setup,
            tally,
            staged: Mutex::new(HashMap::new()),
            in_use: Mutex::new(BTreeSet::new()),
        }
    }

    fn client(&self) -> Client {
        self.node.client().clone()
    }

    fn name(&self) -> &str {
        self.node.name()
    }

    /// Registers the node as a kubelet does at start, and the driver as its plugin
    /// registration does.
    pub async fn register(&self) -> anyhow::Result<()> {
        self.node.register().await?;
        self.node
            .register_driver(&self.setup.driver, self.name())
            .await
    }

    /// Serves the node's pods and renews its Lease until the task is dropped.
    pub async fn serve(self: Arc<Self>) -> anyhow::Result<()> {
        let lease = {
            let me = self.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE_RENEW).await;
                    if let Err(e) = me.node.renew_lease().await {
                        tracing::warn!(node = me.name(), "{e:#}");
                    }
                }
            })
        };
        let out = self.clone().watch_pods().await;
        lease.abort();
        out
    }

    /// Watches the node's pods and runs one worker per pod, fed with its updates.
    async fn watch_pods(self: Arc<Self>) -> anyhow::Result<()> {
        let pods: Api<Pod> = Api::all(self.client());
        let config = watcher::Config::default().fields(&format!("spec.nodeName={}", self.name()));
        let mut stream = std::pin::pin!(watcher(pods, config));
        let mut workers: HashMap<String, watch::Sender<Option<Pod>>> = HashMap::new();
        let mut listed: BTreeSet<String> = BTreeSet::new();
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(node = self.name(), "watching pods: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            match event {
                watcher::Event::Init => listed.clear(),
                watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    listed.insert(uid.clone());
                    match workers.get(&uid) {
                        Some(tx) => {
                            let _ = tx.send(Some(pod));
                        }
                        None => {
                            let span = tracing::info_span!(
                                "pod",
                                node = self.name(),
                                pod = pod.metadata.name.as_deref().unwrap_or_default()
                            );
                            let (tx, rx) = watch::channel(Some(pod));
                            workers.insert(uid, tx);
                            tokio::spawn(self.clone().pod_worker(rx).instrument(span));
                        }
                    }
                }
                watcher::Event::Delete(pod) => {
                    let uid = pod.metadata.uid.unwrap_or_default();
                    if let Some(tx) = workers.remove(&uid) {
                        let _ = tx.send(None);
                    }
                }
                // Pods deleted while the watch was down are gone.
                watcher::Event::InitDone => workers.retain(|uid, tx| {
                    let keep = listed.contains(uid);
                    if !keep {
                        let _ = tx.send(None);
                    }
                    keep
                }),
            }
        }
        Ok(())
    }

    /// One pod from binding to its final deletion.
    async fn pod_worker(self: Arc<Self>, mut rx: watch::Receiver<Option<Pod>>) {
        let Some(pod) = rx.borrow().clone() else {
            return;
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        let mut mounted: Vec<Resolved> = Vec::new();
        let running = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Running");
        if !running && !deleting(&rx) {
            match self.mount_all(&pod, &rx, &mut mounted).await {
                Ok(()) => {
                    if let Err(e) = self.report_running(&pod).await {
                        self.tally.pod_error(&name, &format!("{e:#}"));
                    } else {
                        self.tally.running(&name);
                    }
                }
                Err(e) => self.tally.pod_error(&name, &format!("{e:#}")),
            }
        }
        // Wait for the deletion (or the pod's disappearance).
        while !deleting(&rx) {
            if rx.changed().await.is_err() {
                break;
            }
        }
        self.tear_down(&pod, &mounted).await;
    }

    /// Resolves, attaches, stages and publishes every claim of the pod; stops early
    /// when the pod is deleted meanwhile.
    async fn mount_all(
        &self,
        pod: &Pod,
        rx: &watch::Receiver<Option<Pod>>,
        mounted: &mut Vec<Resolved>,
    ) -> anyhow::Result<()> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let claims = crate::api::pod_pvcs(pod);
        for claim in claims {
            let what = (name.as_str(), claim.as_str());
            let v = self
                .until_ok(rx, what, || self.resolve(&ns, &claim))
                .await?;
            if self.setup.attach_required {
                self.until_ok(rx, what, || self.wait_attached(&v.handle))
                    .await?;
            }
            self.until_ok(rx, what, || self.stage(&v)).await?;
            mounted.push(v.clone());
            self.until_ok(rx, what, || self.publish(&v, &uid)).await?;
        }
        Ok(())
    }

    /// Runs `op` for volume `(pod, claim)` until it succeeds, backing off after each
    /// failure (the last error is the pod's, for the report); gives up when the pod is
    /// being deleted.
    async fn until_ok<T, F, Fut>(
        &self,
        rx: &watch::Receiver<Option<Pod>>,
        (pod, claim): (&str, &str),
        op: F,
    ) -> anyhow::Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<T>>,
    {
        let mut backoff = Backoff::new();
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let e = e.context(format!("volume {claim}"));
                    tracing::debug!("{e:#}");
                    if deleting(rx) {
                        return Err(e.context("the pod was deleted"));
                    }
                    self.tally.pod_error(pod, &format!("{e:#}"));
                    backoff.wait(&self.tally).await;
                }
            }
        }
    }

    /// An API read as the node; a 403 is counted under `resource`.
    async fn get<K>(&self, api: Api<K>, resource: &str, name: &str) -> anyhow::Result<K>
    where
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let out = api
            .get(name)
            .await
            .with_context(|| format!("GET {resource} {name}"));
        if let Err(e) = &out
            && api_code(e) == Some(403)
        {
            self.tally.forbidden(resource);
        }
        out
    }

    async fn resolve(&self, ns: &str, claim: &str) -> anyhow::Result<Resolved> {
        let c = self.client();
        let pvc: PersistentVolumeClaim = self
            .get(
                Api::namespaced(c.clone(), ns),
                "persistentvolumeclaims",
                claim,
            )
            .await?;
        let pv_name = pvc
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .filter(|n| !n.is_empty())
            .with_context(|| format!("claim {claim} is not bound yet"))?;
        let pv: PersistentVolume = self
            .get(Api::all(c.clone()), "persistentvolumes", &pv_name)
            .await?;
        let csi = pv
            .spec
            .as_ref()
            .and_then(|s| s.csi.clone())
            .with_context(|| format!("PV {pv_name} is not a CSI volume"))?;
        let mut secrets = HashMap::new();
        if let Some(r) = &csi.node_stage_secret_ref {
            let ns = r.namespace.clone().unwrap_or_default();
            let name = r.name.clone().unwrap_or_default();
            let s: Secret = self.get(Api::namespaced(c, &ns), "secrets", &name).await?;
            secrets = secret_strings(&s);
        }
        Ok(Resolved {
            pv: pv_name,
            handle: csi.volume_handle,
            context: csi.volume_attributes.unwrap_or_default(),
            secrets,
        })
    }

    /// The node's status lists the volume as attached, and its VolumeAttachment says so.
    async fn wait_attached(&self, handle: &str) -> anyhow::Result<()> {
        let unique = unique_name(&self.setup.driver, handle);
        let node: Node = self
            .get(Api::all(self.client()), "nodes", self.name())
            .await?;
        let listed = node
            .status
            .and_then(|s| s.volumes_attached)
            .unwrap_or_default()
            .iter()
            .any(|v| v.name == unique);
        anyhow::ensure!(
            listed,
            "volume {unique} is not yet attached to node {} (not in its status)",
            self.name()
        );
        let va_name = attachment_name(handle, &self.setup.driver, self.name());
        let va: VolumeAttachment = self
            .get(Api::all(self.client()), "volumeattachments", &va_name)
            .await?;
        let attached = va.status.is_some_and(|s| s.attached);
        anyhow::ensure!(attached, "VolumeAttachment {va_name} is not attached yet");
        Ok(())
    }

    fn staging(&self, handle: &str) -> String {
        format!(
            "plugins/kubernetes.io/csi/{}/{}/globalmount",
            self.setup.driver,
            sha256_hex(handle)
        )
    }

    fn target(pod_uid: &str, pv: &str) -> String {
        format!("pods/{pod_uid}/volumes/kubernetes.io~csi/{pv}/mount")
    }

    /// A node call on the node's plugin, timed and counted.
    async fn csi(&self, call: CsiCall, secrets: HashMap<String, String>) -> anyhow::Result<()> {
        let method = call.method();
        let client = driver::csi::v1::node_client::NodeClient::new(self.setup.channel.clone());
        let started = Instant::now();
        let out: CsiOutcome = match tokio::time::timeout(
            CSI_TIMEOUT,
            call_node(Some((client, self.setup.dir.clone())), secrets, call),
        )
        .await
        {
            Ok(out) => out,
            Err(_) => Err((tonic::Code::DeadlineExceeded, "kubelet deadline".into())),
        };
        let code = match &out {
            Ok(_) => tonic::Code::Ok,
            Err((code, _)) => *code,
        };
        self.tally.rpc(method, code, started.elapsed());
        out.map(drop)
            .map_err(|(code, msg)| anyhow::anyhow!("{method}: {code:?}: {msg}"))
    }

    /// Stages the volume unless the node has it staged; counts the pod as a user.
    async fn stage(&self, v: &Resolved) -> anyhow::Result<()> {
        let users = {
            let mut staged = self.staged.lock().await;
            staged.entry(v.handle.clone()).or_default().clone()
        };
        let mut users = users.lock().await;
        if *users == 0 {
            self.set_in_use(&v.handle, true).await?;
            let call = CsiCall::NodeStage {
                node: 0,
                volume_id: v.handle.clone(),
                context: v.context.clone(),
                staging: self.staging(&v.handle),
            };
            self.csi(call, v.secrets.clone()).await?;
        }
        *users += 1;
        Ok(())
    }

    async fn publish(&self, v: &Resolved, pod_uid: &str) -> anyhow::Result<()> {
        let call = CsiCall::NodePublish {
            node: 0,
            volume_id: v.handle.clone(),
            context: v.context.clone(),
            staging: self.staging(&v.handle),
            target: Self::target(pod_uid, &v.pv),
        };
        self.csi(call, HashMap::new()).await
    }

    /// Adds or removes a volume in the node's `volumesInUse`.
    async fn set_in_use(&self, handle: &str, used: bool) -> anyhow::Result<()> {
        let mut in_use = self.in_use.lock().await;
        let unique = unique_name(&self.setup.driver, handle);
        let changed = if used {
            in_use.insert(unique)
        } else {
            in_use.remove(&unique)
        };
        if !changed {
            return Ok(());
        }
        let patch = serde_json::json!({"status": {"volumesInUse": *in_use}});
        let nodes: Api<Node> = Api::all(self.client());
        nodes
            .patch_status(self.name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("updating volumesInUse of node {}", self.name()))?;
        Ok(())
    }

    /// Reports the pod Running, as the status manager does once its containers run.
    async fn report_running(&self, pod: &Pod) -> anyhow::Result<()> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let containers: Vec<serde_json::Value> = pod
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|c| {
                serde_json::json!({"name": c.name, "ready": true, "started": true,
                    "restartCount": 0, "image": c.image, "imageID": "",
                    "state": {"running": {"startedAt": now}}})
            })
            .collect();
        let conditions: Vec<serde_json::Value> = [
            "PodReadyToStartContainers",
            "Initialized",
            "ContainersReady",
            "Ready",
            "PodScheduled",
        ]
        .iter()
        .map(|t| serde_json::json!({"type": t, "status": "True", "lastTransitionTime": now}))
        .collect();
        let patch = serde_json::json!({"status": {
            "phase": "Running", "conditions": conditions, "containerStatuses": containers,
            "startTime": now, "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
        }});
        let pods: Api<Pod> = Api::namespaced(self.client(), &ns);
        pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("reporting pod {name} Running"))?;
        Ok(())
    }

    /// Unpublishes and (after the node's last user) unstages the pod's volumes, then
    /// deletes the pod for good.
    async fn tear_down(&self, pod: &Pod, mounted: &[Resolved]) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        for v in mounted {
            let unpublish = || async {
                let call = CsiCall::NodeUnpublish {
                    node: 0,
                    volume_id: v.handle.clone(),
                    target: Self::target(&uid, &v.pv),
                };
                self.csi(call, HashMap::new()).await
            };
            retry_forever(&self.tally, unpublish).await;
            let users = self.staged.lock().await.get(&v.handle).cloned();
            let Some(users) = users else { continue };
            let mut users = users.lock().await;
            *users = users.saturating_sub(1);
            if *users == 0 {
                let unstage = || async {
                    let call = CsiCall::NodeUnstage {
                        node: 0,
                        volume_id: v.handle.clone(),
                        staging: self.staging(&v.handle),
                    };
                    self.csi(call, HashMap::new()).await
                };
                retry_forever(&self.tally, unstage).await;
                retry_forever(&self.tally, || self.set_in_use(&v.handle, false)).await;
            }
        }
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.client(), &ns);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        let delete = || async {
            match pods.delete(&name, &params).await {
                Ok(_) => Ok(()),
                // Gone already, or a new pod of the same name.
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
                Err(e) => Err(anyhow::Error::from(e).context(format!("deleting pod {name}"))),
            }
        };
        retry_forever(&self.tally, delete).await;
        self.tally.gone(&name);
    }
}

/// Tries a teardown step until it succeeds: a kubelet never forgets a mount.
async fn retry_forever<F, Fut>(tally: &Tally, op: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut backoff = Backoff::new();
    while let Err(e) = op().await {
        tracing::debug!("teardown: {e:#}");
        backoff.wait(tally).await;
    }
}

/// Whether the pod is being deleted (or is gone).
fn deleting(rx: &watch::Receiver<Option<Pod>>) -> bool {
    rx.borrow()
        .as_ref()
        .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
}

/// A Secret's values as strings (`data` decoded, `stringData` as written).
fn secret_strings(s: &Secret) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in s.data.iter().flatten() {
        out.insert(k.clone(), String::from_utf8_lossy(&v.0).into_owned());
    }
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_kubelet() {
        // The VolumeAttachment name is the SHA-256 of handle + driver + node (FIPS
        // 180-2's test vector for "abc").
        assert_eq!(
            attachment_name("a", "b", "c"),
            "csi-ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            unique_name("cephfs.csi.trainride", "vol-1"),
            "kubernetes.io/csi/cephfs.csi.trainride^vol-1"
        );
    }
}
