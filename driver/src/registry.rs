//! The node registry: which nodes exist, so that ControllerPublishVolume can answer
//! NotFound for a node that does not (CSI spec). CephFS keeps no list of the nodes that
//! may mount it, and a CSI controller never hears from nodes, so the node plugins write
//! one: a cluster whose config holds `nodeCredentials` has each node plugin record its ID
//! (and its attach limit) in RADOS when it answers NodeGetInfo, before the CO can know
//! the ID, and the controller reads that record on every ControllerPublishVolume to the
//! cluster's volumes. A cluster without `nodeCredentials` has no registry, and the
//! controller then takes any node ID, as Kubernetes' attacher only names nodes whose
//! CSINode exists.
//!
//! | object (metadata pool of every file system, the journal's namespace) | keys |
//! |---|---|
//! | `csi.nodes.<instance>` | `csi.node.<node ID>` → `{"maxVolumesPerNode": n}` |
//!
//! A record outlives the plugin's restarts (a restarting node still exists) and is
//! written again, idempotently, on every NodeGetInfo. Records of nodes removed from
//! the cluster are left behind; a publish to such a node succeeds, and the CO, which
//! knows the node is gone, never asks for one.

use tonic::Status;

use crate::ceph::{CephError, Credentials};
use crate::config::ClusterConfig;
use crate::instance::Driver;
use crate::status;

const KEY: &str = "csi.node.";

fn object(instance: &str) -> String {
    format!("csi.nodes.{instance}")
}

/// Records this node in every cluster that keeps a registry. Errors name the cluster.
pub(crate) async fn register(driver: &Driver) -> Result<(), Status> {
    let c = &driver.config;
    let record = serde_json::json!({"maxVolumesPerNode": c.max_volumes_per_node}).to_string();
    let key = format!("{KEY}{}", c.node_id);
    for cluster in &c.clusters {
        let Some(creds) = node_credentials(cluster)? else {
            continue;
        };
        let (_, t) = driver.cluster(&cluster.cluster_id)?;
        let admin = driver.admin(t, &creds);
        let registered = async {
            for fs in admin.fs_names().await? {
                let (_, pool) = driver.fs_by_name(&cluster.cluster_id, &admin, &fs).await?;
                admin
                    .omap_set(
                        &pool,
                        &cluster.ceph_fs.rados_namespace,
                        &object(&c.instance_id),
                        &[(&key, &record)],
                    )
                    .await?;
            }
            Ok::<(), CephError>(())
        };
        registered.await.map_err(|e| {
            status::ceph(
                &format!(
                    "registering node '{}' in cluster '{}'",
                    c.node_id, cluster.cluster_id
                ),
                &e,
            )
        })?;
    }
    Ok(())
}

/// The credentials node plugins register with, if the cluster keeps a registry.
pub(crate) fn node_credentials(cluster: &ClusterConfig) -> Result<Option<Credentials>, Status> {
    cluster
        .node_credentials
        .as_ref()
        .map(|s| {
            s.read().map_err(|e| {
                Status::unavailable(format!(
                    "reading nodeCredentials of cluster '{}': {e}",
                    cluster.cluster_id
                ))
            })
        })
        .transpose()
}

/// Whether `node_id` has registered in the metadata pool `pool` of a cluster.
pub(crate) async fn is_registered(
    admin: &crate::ceph::Admin<'_>,
    cluster: &ClusterConfig,
    instance: &str,
    pool: &str,
    node_id: &str,
) -> Result<bool, Status> {
    let key = format!("{KEY}{node_id}");
    match admin
        .omap_get(
            pool,
            &cluster.ceph_fs.rados_namespace,
            &object(instance),
            &[&key],
        )
        .await
    {
        Ok(v) => Ok(v.contains_key(&key)),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(status::ceph("node registry", &e)),
    }
}
