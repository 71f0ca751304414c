//! The in-memory API server's store: real k8s-openapi objects with resource versions.
//! Watches are delivered by the simulation (`sim`), which knows who listens to what.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass, VolumeAttachment};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Annotation the PV controller puts on claims for an external provisioner.
pub const ANN_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// Annotation of a bound claim.
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Annotation of a provisioned PV.
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The namespace of every namespaced object.
pub const NAMESPACE: &str = "default";

/// Kinds the simulation watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Pods.
    Pod,
    /// PersistentVolumeClaims.
    Pvc,
    /// PersistentVolumes.
    Pv,
    /// VolumeAttachments.
    Va,
    /// Nodes.
    Node,
    /// Deployments and ReplicaSets.
    Deployment,
}

/// Every object of the cluster, by kind and name.
#[derive(Debug, Default)]
pub struct Store {
    rv: u64,
    /// Pods.
    pub pods: BTreeMap<String, Pod>,
    /// Claims.
    pub pvcs: BTreeMap<String, PersistentVolumeClaim>,
    /// Volumes.
    pub pvs: BTreeMap<String, PersistentVolume>,
    /// VolumeAttachments.
    pub vas: BTreeMap<String, VolumeAttachment>,
    /// Nodes.
    pub nodes: BTreeMap<String, Node>,
    /// Secrets.
    pub secrets: BTreeMap<String, Secret>,
    /// StorageClasses.
    pub storage_classes: BTreeMap<String, StorageClass>,
    /// CSIDrivers.
    pub csi_drivers: BTreeMap<String, CSIDriver>,
    /// Deployments.
    pub deployments: BTreeMap<String, Deployment>,
    /// ReplicaSets.
    pub replica_sets: BTreeMap<String, ReplicaSet>,
    /// Writes so far.
    pub writes: u64,
}

impl Store {
    /// The next resource version, stamped on `meta`.
    pub fn stamp(&mut self, meta: &mut ObjectMeta) {
        self.rv += 1;
        self.writes += 1;
        meta.resource_version = Some(self.rv.to_string());
    }
}

/// Metadata with a name (and the default namespace when `namespaced`).
pub fn meta(name: &str, namespaced: bool) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespaced.then(|| NAMESPACE.to_owned()),
        ..Default::default()
    }
}

/// A pod's node, if scheduled.
pub fn pod_node(p: &Pod) -> Option<&str> {
    p.spec.as_ref()?.node_name.as_deref()
}

/// The claims a pod mounts.
pub fn pod_pvcs(p: &Pod) -> Vec<String> {
    p.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .map(|vs| {
            vs.iter()
                .filter_map(|v| v.persistent_volume_claim.as_ref())
                .map(|c| c.claim_name.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the pod is being deleted.
pub fn deleting(m: &ObjectMeta) -> bool {
    m.deletion_timestamp.is_some()
}

/// Whether the pod is Running.
pub fn pod_running(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// The PV a claim is bound to.
pub fn pvc_volume(c: &PersistentVolumeClaim) -> Option<&str> {
    c.spec.as_ref()?.volume_name.as_deref()
}

/// A claim's phase.
pub fn pvc_phase(c: &PersistentVolumeClaim) -> &str {
    c.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// A volume's phase.
pub fn pv_phase(v: &PersistentVolume) -> &str {
    v.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// An annotation's value.
pub fn annotation<'a>(m: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    m.annotations.as_ref()?.get(key).map(String::as_str)
}

/// Sets an annotation.
pub fn annotate(m: &mut ObjectMeta, key: &str, value: &str) {
    m.annotations
        .get_or_insert_with(Default::default)
        .insert(key.to_owned(), value.to_owned());
}

/// `node.status.volumesInUse`.
pub fn node_in_use(n: &Node) -> Vec<String> {
    n.status
        .as_ref()
        .and_then(|s| s.volumes_in_use.clone())
        .unwrap_or_default()
}

/// `node.status.volumesAttached`: each volume's name and device path.
pub fn node_attached(n: &Node) -> Vec<(String, String)> {
    n.status
        .as_ref()
        .and_then(|s| s.volumes_attached.as_ref())
        .map(|v| {
            v.iter()
                .map(|a| (a.name.clone(), a.device_path.clone()))
                .collect()
        })
        .unwrap_or_default()
}
