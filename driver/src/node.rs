//! The CSI Node service: NodeStage mounts the subvolume at the staging path (from the
//! volume context alone: no admin round-trips on the data path), NodePublish binds it at
//! the target, and the unpublish/unstage calls undo that, tolerating mounts that are
//! already gone or broken.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::csi::v1::node_server::Node;
use crate::csi::v1::*;
use crate::instance::{Driver, credentials};
use crate::mount::{CephMount, MountError, MountState};
use crate::service::serve;
use crate::status;

/// The Node service of a driver.
#[derive(Debug, Clone)]
pub struct NodeService {
    driver: Arc<Driver>,
    claims: crate::rwop::Claims,
}

/// A path from a request: absolute, no `..`, no NUL.
fn checked_path(field: &str, p: &str) -> Result<PathBuf, Status> {
    if p.is_empty() {
        return Err(Status::invalid_argument(format!("{field} missing")));
    }
    let path = Path::new(p);
    if !path.is_absolute()
        || p.contains('\0')
        || path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(Status::invalid_argument(format!(
            "{field} must be an absolute path without '..'"
        )));
    }
    Ok(path.to_path_buf())
}

fn single_writer(cap: &VolumeCapability) -> bool {
    use volume_capability::access_mode::Mode;
    cap.access_mode
        .as_ref()
        .is_some_and(|m| m.mode == Mode::SingleNodeSingleWriter as i32)
}

fn read_only_mode(cap: &VolumeCapability) -> bool {
    use volume_capability::access_mode::Mode;
    cap.access_mode.as_ref().is_some_and(|m| {
        matches!(
            Mode::try_from(m.mode),
            Ok(Mode::SingleNodeReaderOnly | Mode::MultiNodeReaderOnly)
        )
    })
}

fn split_options(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect()
}

impl NodeService {
    /// The service of a driver.
    pub fn new(driver: Arc<Driver>) -> Self {
        let claims = crate::rwop::Claims::new(&driver.config.state_dir);
        Self { driver, claims }
    }

    /// Runs a mounter operation and counts it in the metrics.
    async fn counted<T>(
        &self,
        m: &dyn crate::mount::Mounter,
        op: &'static str,
        f: impl std::future::Future<Output = Result<T, MountError>>,
    ) -> Result<T, MountError> {
        let started = std::time::Instant::now();
        let r = f.await;
        self.driver
            .metrics
            .mount(m.name(), op, r.is_ok(), started.elapsed());
        r
    }

    /// Publishes and unpublishes are serialized per target path (two pods of one volume
    /// on one node publish at once; two calls for one target must not).
    fn lock_target(&self, target: &Path) -> Result<crate::locks::Guard, Status> {
        self.driver
            .locks
            .try_lock(&format!("node/target/{}", target.display()))
            .ok_or_else(|| {
                Status::aborted(format!(
                    "an operation on target path {} is already in progress",
                    target.display()
                ))
            })
    }

    fn lock(&self, volume_id: &str) -> Result<crate::locks::Guard, Status> {
        self.driver
            .locks
            .try_lock(&format!("node/{volume_id}"))
            .ok_or_else(|| {
                Status::aborted(format!(
                    "an operation with the given Volume ID {volume_id} already exists"
                ))
            })
    }

    /// The CephFS mount a volume context describes.
    fn ceph_mount(
        &self,
        ctx: &HashMap<String, String>,
        secrets: &HashMap<String, String>,
        cap: &VolumeCapability,
        target: &Path,
    ) -> Result<(CephMount, Option<String>), Status> {
        let is_static = ctx.get("staticVolume").is_some_and(|v| v == "true");
        let root = if is_static {
            ctx.get("rootPath")
        } else {
            ctx.get("subvolumePath")
        }
        .filter(|p| p.starts_with('/') && !p.contains(".."))
        .ok_or_else(|| {
            Status::invalid_argument(if is_static {
                "volume context of a static volume must have an absolute rootPath"
            } else {
                "volume context has no subvolumePath"
            })
        })?
        .clone();
        let creds = if is_static {
            // Static volumes are mounted with a user's key, never an admin's.
            let id = secrets.get("userID").filter(|s| !s.is_empty());
            let key = secrets.get("userKey").filter(|s| !s.is_empty());
            match (id, key) {
                (Some(i), Some(k)) => crate::ceph::Credentials::new(i, k.as_str()),
                _ => {
                    return Err(Status::invalid_argument(
                        "static volumes need userID and userKey secrets",
                    ));
                }
            }
        } else {
            credentials(secrets)?
        };
        let cluster = ctx
            .get("clusterID")
            .and_then(|c| self.driver.config.cluster(c));
        let monitors: Vec<String> = match ctx.get("monitors").filter(|m| !m.is_empty()) {
            Some(m) => m.split(',').map(str::to_owned).collect(),
            None => cluster.map(|c| c.monitors.clone()).ok_or_else(|| {
                Status::invalid_argument("volume context names no monitors and no known clusterID")
            })?,
        };
        let fs_name = ctx.get("fsName").cloned().unwrap_or_default();
        let mounter_name = ctx.get("mounter").cloned();
        let use_fuse = mounter_name.as_deref() == Some("fuse");
        let mut options = Vec::new();
        if let Some(c) = cluster {
            options.extend(split_options(if use_fuse {
                &c.ceph_fs.fuse_mount_options
            } else {
                &c.ceph_fs.kernel_mount_options
            }));
        }
        options.extend(split_options(
            ctx.get(if use_fuse {
                "fuseMountOptions"
            } else {
                "kernelMountOptions"
            })
            .map_or("", String::as_str),
        ));
        if let Some(volume_capability::AccessType::Mount(m)) = &cap.access_type {
            options.extend(m.mount_flags.iter().cloned());
        }
        let admin_url = cluster.and_then(|c| match &c.admin {
            crate::config::AdminConfig::Http { url } => Some(url.clone()),
            crate::config::AdminConfig::Cli { .. } => None,
        });
        Ok((
            CephMount {
                monitors,
                fs_name,
                root_path: root,
                user_id: creds.id,
                key: creds.key,
                options,
                read_only: read_only_mode(cap),
                target: target.to_path_buf(),
                node_id: self.driver.config.node_id.clone(),
                admin_url,
            },
            mounter_name,
        ))
    }

    async fn stage(&self, req: NodeStageVolumeRequest) -> Result<NodeStageVolumeResponse, Status> {
        // A Manila share is looked up and staged as the static CephFS volume it is.
        let req = if crate::manila::node::is_manila(&req.volume_context) {
            if req.volume_id.is_empty() {
                return Err(Status::invalid_argument("volume_id missing"));
            }
            crate::manila::node::resolve_stage(&self.driver, req).await?
        } else {
            req
        };
        if req.volume_id.is_empty() {
            return Err(Status::invalid_argument("volume_id missing"));
        }
        let staging = checked_path("staging_target_path", &req.staging_target_path)?;
        let cap = req
            .volume_capability
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("volume_capability missing"))?;
        if matches!(
            cap.access_type,
            Some(volume_capability::AccessType::Block(_))
        ) {
            return Err(Status::invalid_argument(
                "block volumes are not supported by CephFS",
            ));
        }
        let (m, mounter_name) =
            self.ceph_mount(&req.volume_context, &req.secrets, cap, &staging)?;
        let _guard = self.lock(&req.volume_id)?;
        if !staging.is_dir() {
            return Err(Status::invalid_argument(format!(
                "staging path {} does not exist",
                staging.display()
            )));
        }
        let mounter = self.driver.mounter(mounter_name.as_deref())?;
        match mounter.state(&staging).await {
            MountState::Mounted => return Ok(NodeStageVolumeResponse {}),
            MountState::Corrupted(_) => {
                // A broken mount (a dead ceph-fuse, an evicted session): remount.
                self.counted(&*mounter, "unmount", mounter.unmount(&staging))
                    .await
                    .map_err(|e| status::mount("unmount", &e))?;
            }
            MountState::NotMounted => {}
        }
        self.counted(&*mounter, "mount", mounter.mount_cephfs(&m))
            .await
            .map_err(|e| status::mount("mount", &e))?;
        Ok(NodeStageVolumeResponse {})
    }

    async fn unstage(
        &self,
        req: NodeUnstageVolumeRequest,
    ) -> Result<NodeUnstageVolumeResponse, Status> {
        if req.volume_id.is_empty() {
            return Err(Status::invalid_argument("volume_id missing"));
        }
        let staging = checked_path("staging_target_path", &req.staging_target_path)?;
        let _guard = self.lock(&req.volume_id)?;
        for m in self.driver.mounters_in_order() {
            if m.has_work_at(&staging).await {
                self.counted(&*m, "unmount", m.unmount(&staging))
                    .await
                    .map_err(|e| status::mount("unmount", &e))?;
            }
        }
        Ok(NodeUnstageVolumeResponse {})
    }

    async fn publish(
        &self,
        req: NodePublishVolumeRequest,
    ) -> Result<NodePublishVolumeResponse, Status> {
        if req.volume_id.is_empty() {
            return Err(Status::invalid_argument("volume_id missing"));
        }
        let target = checked_path("target_path", &req.target_path)?;
        let cap = req
            .volume_capability
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("volume_capability missing"))?;
        let staging = checked_path("staging_target_path", &req.staging_target_path)?;
        let _guard = self.lock_target(&target)?;
        let mounter = self
            .driver
            .mounter(req.volume_context.get("mounter").map(String::as_str))?;
        if mounter.state(&staging).await != MountState::Mounted {
            return Err(Status::failed_precondition(format!(
                "staging path {} is not a mount point: NodeStageVolume first",
                staging.display()
            )));
        }
        // CSI spec: the plugin creates the target path (its parent is the CO's); the
        // mounter creates what it needs there.
        if let Some(parent) = target.parent()
            && !parent.exists()
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| Status::internal(format!("creating {}: {e}", parent.display())))?;
        }
        // SINGLE_NODE_SINGLE_WRITER: one target path at a time (see crate::rwop).
        let _volume_guard = if single_writer(cap) {
            let guard = self.lock(&req.volume_id)?;
            self.claim_single_writer(&*mounter, &req.volume_id, &target)
                .await?;
            Some(guard)
        } else {
            None
        };
        if mounter.state(&target).await == MountState::Mounted {
            return Ok(NodePublishVolumeResponse {});
        }
        let ro = req.readonly || read_only_mode(cap);
        self.counted(&*mounter, "bind", mounter.bind(&staging, &target, ro))
            .await
            .map_err(|e| status::mount("bind", &e))?;
        Ok(NodePublishVolumeResponse {})
    }

    /// Takes `volume_id`'s single-writer claim for `target`, or answers FAILED_PRECONDITION
    /// when another target path still has the volume published.
    async fn claim_single_writer(
        &self,
        mounter: &dyn crate::mount::Mounter,
        volume_id: &str,
        target: &Path,
    ) -> Result<(), Status> {
        use crate::rwop::Holder;
        let io = |e: std::io::Error| Status::internal(format!("single-writer claim: {e}"));
        match self.claims.holder(volume_id, target).map_err(io)? {
            Holder::This => return Ok(()),
            Holder::Other(other) if mounter.state(&other).await != MountState::NotMounted => {
                return Err(Status::failed_precondition(format!(
                    "volume {volume_id} has access mode SINGLE_NODE_SINGLE_WRITER and is \
                     already published at {}",
                    other.display()
                )));
            }
            // A stale claim: its target is no longer published.
            Holder::Other(_) => self.claims.release(volume_id, None).map_err(io)?,
            Holder::None => {}
        }
        self.claims.claim(volume_id, target).map_err(io)
    }

    async fn unpublish(
        &self,
        req: NodeUnpublishVolumeRequest,
    ) -> Result<NodeUnpublishVolumeResponse, Status> {
        if req.volume_id.is_empty() {
            return Err(Status::invalid_argument("volume_id missing"));
        }
        let target = checked_path("target_path", &req.target_path)?;
        let _guard = self.lock_target(&target)?;
        // CSI spec: the plugin removes the target path it created.
        let mut removed = false;
        for m in self.driver.mounters_in_order() {
            if m.has_work_at(&target).await {
                self.counted(&*m, "unmount", m.unmount_and_remove(&target))
                    .await
                    .map_err(|e| status::mount("unmount", &e))?;
                removed = true;
            }
        }
        if !removed {
            crate::mount::remove_mount_point(&target)
                .await
                .map_err(|e| status::mount("removing the target", &e))?;
        }
        self.claims
            .release(&req.volume_id, Some(&target))
            .map_err(|e| Status::internal(format!("single-writer claim: {e}")))?;
        Ok(NodeUnpublishVolumeResponse {})
    }

    async fn stats(
        &self,
        req: NodeGetVolumeStatsRequest,
    ) -> Result<NodeGetVolumeStatsResponse, Status> {
        if req.volume_id.is_empty() {
            return Err(Status::invalid_argument("volume_id missing"));
        }
        if req.volume_path.is_empty() {
            return Err(Status::invalid_argument("volume_path missing"));
        }
        // A path that cannot be a volume's (relative, with '..') is one where no volume
        // is: NotFound, as for any other path without one (csi-sanity asks this).
        let path = checked_path("volume_path", &req.volume_path)
            .map_err(|_| Status::not_found(format!("no volume at {:?}", req.volume_path)))?;
        if std::fs::symlink_metadata(&path).is_err() {
            return Err(Status::not_found(format!(
                "{} does not exist",
                path.display()
            )));
        }
        let mut state = MountState::NotMounted;
        let mut mounter = None;
        for m in self.driver.mounters_in_order() {
            let s = m.state(&path).await;
            if s != MountState::NotMounted {
                state = s;
                mounter = Some(m.clone());
                break;
            }
        }
        let abnormal = |msg: String| NodeGetVolumeStatsResponse {
            usage: vec![],
            volume_condition: Some(VolumeCondition {
                abnormal: true,
                message: msg,
            }),
        };
        match (state, mounter) {
            (MountState::NotMounted, _) | (_, None) => Err(Status::not_found(format!(
                "volume {} is not mounted at {}",
                req.volume_id,
                path.display()
            ))),
            (MountState::Corrupted(errno), _) => Ok(abnormal(format!(
                "mount at {} is broken (errno {errno}): remount needed",
                path.display()
            ))),
            (MountState::Mounted, Some(m)) => match m.stats(&path).await {
                Ok(s) => Ok(NodeGetVolumeStatsResponse {
                    usage: vec![VolumeUsage {
                        available: s.available_bytes as i64,
                        total: s.total_bytes as i64,
                        used: s.used_bytes as i64,
                        unit: volume_usage::Unit::Bytes as i32,
                    }],
                    volume_condition: Some(VolumeCondition {
                        abnormal: false,
                        message: String::new(),
                    }),
                }),
                Err(e) => Ok(abnormal(format!("statfs failed: {e}"))),
            },
        }
    }
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn node_stage_volume(
        &self,
        r: Request<NodeStageVolumeRequest>,
    ) -> Result<Response<NodeStageVolumeResponse>, Status> {
        let req = r.into_inner();
        let id = req.volume_id.clone();
        serve(&self.driver, "NodeStageVolume", &id, None, req, |q| {
            self.stage(q)
        })
        .await
    }

    async fn node_unstage_volume(
        &self,
        r: Request<NodeUnstageVolumeRequest>,
    ) -> Result<Response<NodeUnstageVolumeResponse>, Status> {
        let req = r.into_inner();
        let id = req.volume_id.clone();
        serve(&self.driver, "NodeUnstageVolume", &id, None, req, |q| {
            self.unstage(q)
        })
        .await
    }

    async fn node_publish_volume(
        &self,
        r: Request<NodePublishVolumeRequest>,
    ) -> Result<Response<NodePublishVolumeResponse>, Status> {
        let req = r.into_inner();
        let id = req.volume_id.clone();
        serve(&self.driver, "NodePublishVolume", &id, None, req, |q| {
            self.publish(q)
        })
        .await
    }

    async fn node_unpublish_volume(
        &self,
        r: Request<NodeUnpublishVolumeRequest>,
    ) -> Result<Response<NodeUnpublishVolumeResponse>, Status> {
        let req = r.into_inner();
        let id = req.volume_id.clone();
        serve(&self.driver, "NodeUnpublishVolume", &id, None, req, |q| {
            self.unpublish(q)
        })
        .await
    }

    async fn node_get_volume_stats(
        &self,
        r: Request<NodeGetVolumeStatsRequest>,
    ) -> Result<Response<NodeGetVolumeStatsResponse>, Status> {
        let req = r.into_inner();
        let id = req.volume_id.clone();
        serve(&self.driver, "NodeGetVolumeStats", &id, None, req, |q| {
            self.stats(q)
        })
        .await
    }

    async fn node_expand_volume(
        &self,
        _r: Request<NodeExpandVolumeRequest>,
    ) -> Result<Response<NodeExpandVolumeResponse>, Status> {
        Err(Status::unimplemented(
            "CephFS quotas grow on the server; no node step is needed",
        ))
    }

    async fn node_get_capabilities(
        &self,
        _r: Request<NodeGetCapabilitiesRequest>,
    ) -> Result<Response<NodeGetCapabilitiesResponse>, Status> {
        use node_service_capability::{Rpc, Type, rpc::Type as T};
        let kinds = [
            T::StageUnstageVolume,
            T::GetVolumeStats,
            T::VolumeCondition,
            T::SingleNodeMultiWriter,
        ];
        Ok(Response::new(NodeGetCapabilitiesResponse {
            capabilities: kinds
                .into_iter()
                .map(|t| NodeServiceCapability {
                    r#type: Some(Type::Rpc(Rpc { r#type: t as i32 })),
                })
                .collect(),
        }))
    }

    async fn node_get_info(
        &self,
        _r: Request<NodeGetInfoRequest>,
    ) -> Result<Response<NodeGetInfoResponse>, Status> {
        // The CO learns this node's ID from the answer: the node exists for the
        // controller from then on.
        crate::registry::register(&self.driver).await?;
        Ok(Response::new(NodeGetInfoResponse {
            node_id: self.driver.config.node_id.clone(),
            max_volumes_per_node: self.driver.config.max_volumes_per_node,
            accessible_topology: (!self.driver.config.topology.is_empty()).then(|| Topology {
                segments: self.driver.config.topology.clone().into_iter().collect(),
            }),
        }))
    }
}
