//! The RPCs that carry no secrets (ListVolumes, GetCapacity, ControllerGetVolume: the
//! controller's standing credentials read Ceph), and ControllerPublishVolume.

use tonic::Status;

use super::{Cephfs, parse_id};
use crate::ceph::errno;
use crate::config::ClusterConfig;
use crate::csi::v1::*;
use crate::instance::credentials;
use crate::journal::Kind;
use crate::status;
use crate::volume_id::CsiId;

impl Cephfs {
    /// Whether every cluster has credentials for the RPCs without secrets.
    pub(super) fn standing_everywhere(&self) -> bool {
        let c = &self.driver.config.clusters;
        !c.is_empty() && c.iter().all(|c| c.controller_credentials.is_some())
    }

    pub(super) fn standing(
        &self,
        cluster: &ClusterConfig,
    ) -> Result<crate::ceph::Credentials, Status> {
        cluster
            .controller_credentials
            .as_ref()
            .ok_or_else(|| {
                Status::unimplemented(format!(
                    "cluster '{}' has no controllerCredentials for RPCs that carry no secrets",
                    cluster.cluster_id
                ))
            })?
            .read()
            .map_err(|e| Status::unavailable(format!("reading controller credentials: {e}")))
    }

    /// Every volume of every cluster and file system, in a stable order.
    pub(super) async fn all_volumes(&self) -> Result<Vec<(Volume, VolumeCondition)>, Status> {
        let mut out = Vec::new();
        for cluster in &self.driver.config.clusters {
            let creds = self.standing(cluster)?;
            let (_, t) = self.driver.cluster(&cluster.cluster_id)?;
            let admin = self.driver.admin(t, &creds);
            let fss = admin
                .fs_names()
                .await
                .map_err(|e| status::ceph("fs ls", &e))?;
            for fs in &fss {
                let place = self
                    .place_by_name(&cluster.cluster_id, fs, t, &creds)
                    .await?;
                let journal = place.journal();
                let (names, _) = journal
                    .list(Kind::Volume, "", usize::MAX >> 1)
                    .await
                    .map_err(|e| status::ceph("journal", &e))?;
                // One listing per file system tells which journalled volumes lost their
                // subvolume (VOLUME_CONDITION requires a condition on every entry).
                let present: std::collections::HashSet<String> = place
                    .admin
                    .subvolume_ls(&place.fs, place.group())
                    .await
                    .map_err(|e| status::ceph("fs subvolume ls", &e))?
                    .into_iter()
                    .collect();
                for (_, uuid) in names {
                    let Some(rec) = journal
                        .by_uuid(Kind::Volume, &uuid)
                        .await
                        .map_err(|e| status::ceph("journal", &e))?
                    else {
                        continue;
                    };
                    let Ok(id) = CsiId::new(&cluster.cluster_id, place.fscid, &uuid) else {
                        continue;
                    };
                    let condition = if present.contains(&rec.image) {
                        VolumeCondition {
                            abnormal: false,
                            message: String::new(),
                        }
                    } else {
                        VolumeCondition {
                            abnormal: true,
                            message: format!("subvolume {} is missing", rec.image),
                        }
                    };
                    out.push((
                        Volume {
                            capacity_bytes: rec.size.unwrap_or(0) as i64,
                            volume_id: id.to_string(),
                            volume_context: [("subvolumeName".to_owned(), rec.image.clone())]
                                .into(),
                            content_source: None,
                            accessible_topology: vec![],
                        },
                        condition,
                    ));
                }
            }
        }
        out.sort_by(|a, b| a.0.volume_id.cmp(&b.0.volume_id));
        Ok(out)
    }

    pub(super) async fn list(
        &self,
        req: ListVolumesRequest,
    ) -> Result<ListVolumesResponse, Status> {
        if req.max_entries < 0 {
            return Err(Status::invalid_argument("max_entries must not be negative"));
        }
        let all = self.all_volumes().await?;
        // The token is the ID of the first volume of the next page: pages stay right when
        // volumes come and go between calls.
        let start = if req.starting_token.is_empty() {
            0
        } else {
            if parse_id(&req.starting_token).is_none() {
                return Err(Status::aborted(format!(
                    "invalid starting_token '{}'",
                    req.starting_token
                )));
            }
            all.partition_point(|v| v.0.volume_id < req.starting_token)
        };
        let max = if req.max_entries == 0 {
            usize::MAX
        } else {
            req.max_entries as usize
        };
        let end = start.saturating_add(max).min(all.len());
        Ok(ListVolumesResponse {
            entries: all[start..end]
                .iter()
                .cloned()
                .map(|(v, c)| list_volumes_response::Entry {
                    volume: Some(v),
                    status: Some(list_volumes_response::VolumeStatus {
                        published_node_ids: vec![],
                        volume_condition: Some(c),
                    }),
                })
                .collect(),
            next_token: all
                .get(end)
                .map(|v| v.0.volume_id.clone())
                .unwrap_or_default(),
        })
    }

    pub(super) async fn capacity(
        &self,
        req: GetCapacityRequest,
    ) -> Result<GetCapacityResponse, Status> {
        let cluster = match req.parameters.get("clusterID") {
            Some(id) => self.driver.cluster(id)?.0,
            None => self
                .driver
                .config
                .clusters
                .first()
                .ok_or_else(|| Status::failed_precondition("no cluster configured"))?,
        };
        let creds = self.standing(cluster)?;
        let (_, t) = self.driver.cluster(&cluster.cluster_id)?;
        let avail = self
            .driver
            .admin(t, &creds)
            .available_bytes()
            .await
            .map_err(|e| status::ceph("df", &e))?;
        Ok(GetCapacityResponse {
            available_capacity: avail as i64,
            maximum_volume_size: None,
            minimum_volume_size: None,
        })
    }

    pub(super) async fn volume_get(
        &self,
        req: ControllerGetVolumeRequest,
    ) -> Result<ControllerGetVolumeResponse, Status> {
        let not_found = || Status::not_found(format!("volume '{}' not found", req.volume_id));
        let id = parse_id(&req.volume_id).ok_or_else(not_found)?;
        let (cluster, t) = self
            .driver
            .cluster(&id.cluster_id)
            .map_err(|_| not_found())?;
        let creds = self.standing(cluster)?;
        let place = self
            .place_by_id(&id, t, &creds)
            .await?
            .ok_or_else(not_found)?;
        let rec = place
            .journal()
            .by_uuid(Kind::Volume, &id.uuid)
            .await
            .map_err(|e| status::ceph("journal", &e))?
            .ok_or_else(not_found)?;
        // CSI VolumeCondition: abnormal when the subvolume is gone behind the journal's
        // back or its clone failed.
        let condition = match place
            .admin
            .subvolume_info(&place.fs, place.group(), &rec.image)
            .await
        {
            Ok(info) if info.state == "complete" => VolumeCondition {
                abnormal: false,
                message: String::new(),
            },
            Ok(info) => VolumeCondition {
                abnormal: true,
                message: format!("subvolume state is {}", info.state),
            },
            Err(e) if e.is_not_found() => VolumeCondition {
                abnormal: true,
                message: format!("subvolume {} is missing", rec.image),
            },
            Err(e) if e.errno() == Some(errno::EAGAIN) => VolumeCondition {
                abnormal: false,
                message: "clone in progress".into(),
            },
            Err(e) => return Err(status::ceph("fs subvolume info", &e)),
        };
        Ok(ControllerGetVolumeResponse {
            volume: Some(Volume {
                capacity_bytes: rec.size.unwrap_or(0) as i64,
                volume_id: req.volume_id.clone(),
                volume_context: [("subvolumeName".to_owned(), rec.image.clone())].into(),
                content_source: None,
                accessible_topology: vec![],
            }),
            status: Some(controller_get_volume_response::VolumeStatus {
                published_node_ids: vec![],
                volume_condition: Some(condition),
            }),
        })
    }
}

impl Cephfs {
    /// ControllerPublishVolume. CephFS needs nothing attached (the node mounts over the
    /// network), so publishing checks and records nothing but what the spec asks to
    /// refuse: a volume or, where the cluster keeps a node registry, a node that does not
    /// exist. The node's attach limit is left to Kubernetes, which enforces it through
    /// CSINode's allocatable count.
    pub(super) async fn publish(
        &self,
        req: ControllerPublishVolumeRequest,
    ) -> Result<ControllerPublishVolumeResponse, Status> {
        let not_found = || Status::not_found(format!("volume '{}' not found", req.volume_id));
        let id = parse_id(&req.volume_id).ok_or_else(not_found)?;
        let (cluster, t) = self
            .driver
            .cluster(&id.cluster_id)
            .map_err(|_| not_found())?;
        // The request's secrets, else the controller's standing ones, else the nodes'
        // (they wrote the registry, so they can read it).
        let creds = match credentials(&req.secrets) {
            Ok(c) => Some(c),
            Err(_) => match &cluster.controller_credentials {
                Some(s) => Some(s.read().map_err(|e| {
                    Status::unavailable(format!("reading controller credentials: {e}"))
                })?),
                None => crate::registry::node_credentials(cluster)?,
            },
        };
        let Some(creds) = creds else {
            // Nothing to read Ceph with: the volume ID is all there is to check.
            return Ok(ControllerPublishVolumeResponse::default());
        };
        let (place, _) = self.existing_volume(&req.volume_id, t, &creds).await?;
        if cluster.node_credentials.is_some()
            && !crate::registry::is_registered(
                &place.admin,
                cluster,
                &self.driver.config.instance_id,
                &place.pool,
                &req.node_id,
            )
            .await?
        {
            return Err(Status::not_found(format!(
                "node '{}' is not registered in cluster '{}' (its plugin has not answered NodeGetInfo)",
                req.node_id, cluster.cluster_id
            )));
        }
        Ok(ControllerPublishVolumeResponse::default())
    }
}
