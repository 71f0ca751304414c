//! The API objects the simulation makes (the scenario's StorageClass, secret, CSIDriver,
//! nodes, claims and Deployment; the PVs the provisioner makes; the pods of the
//! ReplicaSet), and what the components read off PVs.
//!
//! A leaf beside the vocabulary: it imports [`super::vocab`] only, and any module of the
//! simulation may import it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, Container, Node, NodeStatus, ObjectReference, PersistentVolume,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus,
    PersistentVolumeClaimVolumeSource, PersistentVolumeSpec, PersistentVolumeStatus, Pod, PodSpec,
    PodStatus, PodTemplateSpec, Secret, SecretReference, Volume, VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::{CSIDriver, CSIDriverSpec, StorageClass};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::api::{ANN_PROVISIONED_BY, NAMESPACE, Store, annotate, meta};
use crate::csi::DRIVER_NAME;
use crate::naming::node_name;
use crate::params::Params;

use super::vocab::{DEPLOYMENT, SECRET, STORAGE_CLASS, pvc_uid};

/// The volume handle of PV `pv`.
pub(crate) fn volume_handle(store: &Store, pv: &str) -> Option<String> {
    Some(
        store
            .pvs
            .get(pv)?
            .spec
            .as_ref()?
            .csi
            .as_ref()?
            .volume_handle
            .clone(),
    )
}

/// The volume context (attributes) of PV `pv`.
pub(crate) fn volume_context(store: &Store, pv: &str) -> BTreeMap<String, String> {
    store
        .pvs
        .get(pv)
        .and_then(|v| v.spec.as_ref()?.csi.as_ref()?.volume_attributes.clone())
        .unwrap_or_default()
}

/// The PV `pv` the provisioner makes for claim `pvc` with the volume CreateVolume made.
pub(crate) fn provisioned_pv(
    store: &Store,
    pvc: &str,
    pv: &str,
    volume_id: String,
    context: BTreeMap<String, String>,
) -> PersistentVolume {
    let uid = store.pvcs.get(pvc).and_then(|c| c.metadata.uid.clone());
    let mut m = meta(pv, false);
    annotate(&mut m, ANN_PROVISIONED_BY, DRIVER_NAME);
    PersistentVolume {
        metadata: m,
        spec: Some(PersistentVolumeSpec {
            access_modes: Some(vec!["ReadWriteMany".into()]),
            capacity: Some(BTreeMap::from([("storage".into(), Quantity("1Gi".into()))])),
            claim_ref: Some(ObjectReference {
                name: Some(pvc.to_owned()),
                namespace: Some(NAMESPACE.into()),
                uid,
                ..Default::default()
            }),
            persistent_volume_reclaim_policy: Some("Delete".into()),
            storage_class_name: Some(STORAGE_CLASS.into()),
            csi: Some(CSIPersistentVolumeSource {
                driver: DRIVER_NAME.into(),
                volume_handle: volume_id,
                volume_attributes: Some(context),
                node_stage_secret_ref: Some(SecretReference {
                    name: Some(SECRET.into()),
                    namespace: Some(NAMESPACE.into()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: Some(PersistentVolumeStatus {
            phase: Some("Available".into()),
            ..Default::default()
        }),
    }
}

/// The scenario's StorageClass.
pub(crate) fn storage_class(p: &Params) -> StorageClass {
    StorageClass {
        metadata: meta(STORAGE_CLASS, false),
        provisioner: DRIVER_NAME.into(),
        parameters: Some({
            // The back end's own parameters (what CreateVolume gets) and the secrets.
            let mut m = crate::csi::storage_class_parameters(p.backend);
            // Name and namespace together: the real external-provisioner refuses a
            // class with one of the two.
            for kind in ["provisioner", "node-stage", "controller-expand"] {
                m.insert(
                    format!("csi.storage.k8s.io/{kind}-secret-name"),
                    SECRET.into(),
                );
                m.insert(
                    format!("csi.storage.k8s.io/{kind}-secret-namespace"),
                    NAMESPACE.into(),
                );
            }
            m
        }),
        reclaim_policy: Some("Delete".into()),
        allow_volume_expansion: Some(true),
        ..Default::default()
    }
}

/// The scenario's VolumeSnapshotClass (snapshot.storage.k8s.io/v1, a CRD the simulator
/// does not model; real mode creates it), named as the StorageClass, with the secret
/// external-snapshotter passes to CreateSnapshot and DeleteSnapshot.
pub(crate) fn snapshot_class() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotClass",
        "metadata": {"name": STORAGE_CLASS},
        "driver": DRIVER_NAME,
        "deletionPolicy": "Delete",
        "parameters": {
            "csi.storage.k8s.io/snapshotter-secret-name": SECRET,
            "csi.storage.k8s.io/snapshotter-secret-namespace": NAMESPACE,
        },
    })
}

/// The scenario's secret.
pub(crate) fn secret(p: &Params) -> Secret {
    Secret {
        metadata: meta(SECRET, true),
        // The keys themselves stay with the back end: nothing secret is stored here.
        string_data: Some(crate::csi::secret_identity(p.backend)),
        ..Default::default()
    }
}

/// The driver's CSIDriver object.
pub(crate) fn csi_driver(p: &Params) -> CSIDriver {
    CSIDriver {
        metadata: meta(DRIVER_NAME, false),
        spec: CSIDriverSpec {
            attach_required: Some(p.attach_required),
            ..Default::default()
        },
    }
}

/// Node i.
pub(crate) fn node(i: usize) -> Node {
    Node {
        metadata: meta(&node_name(i), false),
        status: Some(NodeStatus::default()),
        ..Default::default()
    }
}

/// The name of claim s.
pub(crate) fn claim_name(s: usize) -> String {
    format!("share-{s:03}")
}

/// Claim s.
pub(crate) fn claim(s: usize) -> PersistentVolumeClaim {
    let mut m = meta(&claim_name(s), true);
    m.uid = Some(pvc_uid(s));
    PersistentVolumeClaim {
        metadata: m,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteMany".into()]),
            storage_class_name: Some(STORAGE_CLASS.into()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".into(), Quantity("1Gi".into()))])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        }),
    }
}

/// The Deployment of `replicas` pods mounting every claim, and its ReplicaSet (at 0
/// replicas: the Deployment controller scales it).
pub(crate) fn deployment(p: &Params, replicas: usize) -> (Deployment, ReplicaSet) {
    let volumes: Vec<Volume> = (0..p.shares)
        .map(|s| Volume {
            name: format!("v{s:03}"),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(s),
                read_only: None,
            }),
            ..Default::default()
        })
        .collect();
    let template = PodTemplateSpec {
        metadata: None,
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "idle".into(),
                image: Some("busybox".into()),
                command: Some(vec!["sleep".into(), "infinity".into()]),
                ..Default::default()
            }],
            volumes: Some(volumes),
            ..Default::default()
        }),
    };
    let d = Deployment {
        metadata: meta(DEPLOYMENT, true),
        spec: DeploymentSpec {
            replicas: Some(replicas as i32),
            selector: LabelSelector::default(),
            template: template.clone(),
            ..Default::default()
        },
        ..Default::default()
    };
    let rs = ReplicaSet {
        metadata: meta(&replica_set_name(), true),
        spec: ReplicaSetSpec {
            replicas: Some(0),
            selector: LabelSelector::default(),
            template: Some(template),
            ..Default::default()
        },
        ..Default::default()
    };
    (d, rs)
}

/// The Deployment's ReplicaSet.
pub(crate) fn replica_set_name() -> String {
    format!("{DEPLOYMENT}-rs")
}

/// Pod n of the ReplicaSet, from its template.
pub(crate) fn replica(n: usize, template: Option<&PodTemplateSpec>) -> Pod {
    let name = format!("{DEPLOYMENT}-{n:05}");
    let mut m = meta(&name, true);
    m.uid = Some(format!("10000000-0000-4000-8000-{n:012}"));
    Pod {
        metadata: m,
        spec: template.and_then(|t| t.spec.clone()),
        status: Some(PodStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        }),
    }
}
