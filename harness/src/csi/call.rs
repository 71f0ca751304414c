//! The translation of a simulated [`CsiCall`] into the gRPC request a CO makes (paths
//! under the node's kubelet directory, the StorageClass's parameters and secrets), and
//! of the answer into a [`CsiOutcome`]. Imports the call types of [`super`] and the
//! driver's CSI clients.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use driver::csi::v1::controller_client::ControllerClient;
use driver::csi::v1::node_client::NodeClient;
use driver::csi::v1::*;
use tokio::sync::OwnedSemaphorePermit;
use tonic::transport::Channel;

use super::{CsiCall, CsiOutcome, CsiReply, node_name};

fn cap() -> VolumeCapability {
    VolumeCapability {
        access_type: Some(volume_capability::AccessType::Mount(Default::default())),
        access_mode: Some(volume_capability::AccessMode {
            mode: volume_capability::access_mode::Mode::MultiNodeMultiWriter as i32,
        }),
    }
}

fn status(s: tonic::Status) -> (tonic::Code, String) {
    (s.code(), s.message().to_owned())
}

/// Makes `call` over gRPC: controller calls on `controller`, node calls on `node`;
/// `permit` is held until the answer.
pub(super) async fn call_real(
    mut controller: ControllerClient<Channel>,
    node: Option<(NodeClient<Channel>, PathBuf)>,
    secrets: HashMap<String, String>,
    parameters: HashMap<String, String>,
    call: CsiCall,
    _permit: OwnedSemaphorePermit,
) -> CsiOutcome {
    match call {
        CsiCall::CreateVolume { name } => {
            let r = controller
                .create_volume(CreateVolumeRequest {
                    name,
                    capacity_range: Some(CapacityRange {
                        required_bytes: 1 << 30,
                        limit_bytes: 0,
                    }),
                    volume_capabilities: vec![cap()],
                    parameters,
                    secrets,
                    ..Default::default()
                })
                .await
                .map_err(status)?
                .into_inner();
            let v = r
                .volume
                .ok_or((tonic::Code::Internal, "no volume".to_owned()))?;
            Ok(CsiReply::Created {
                volume_id: v.volume_id,
                context: v.volume_context.into_iter().collect(),
            })
        }
        CsiCall::DeleteVolume { volume_id } => {
            controller
                .delete_volume(DeleteVolumeRequest { volume_id, secrets })
                .await
                .map_err(status)?;
            Ok(CsiReply::Done)
        }
        CsiCall::ControllerPublish { volume_id, node } => {
            controller
                .controller_publish_volume(ControllerPublishVolumeRequest {
                    volume_id,
                    node_id: node_name(node),
                    volume_capability: Some(cap()),
                    secrets,
                    ..Default::default()
                })
                .await
                .map_err(status)?;
            Ok(CsiReply::Done)
        }
        CsiCall::ControllerUnpublish { volume_id, node } => {
            controller
                .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
                    volume_id,
                    node_id: node_name(node),
                    secrets,
                })
                .await
                .map_err(status)?;
            Ok(CsiReply::Done)
        }
        call => call_node(node, secrets, call).await,
    }
}

/// A node call on `node` (its client and directory; `None` when the node has no
/// plugin): paths are made absolute under its kubelet directory, which the CO makes and
/// cleans as the kubelet does.
pub(crate) async fn call_node(
    node: Option<(NodeClient<Channel>, PathBuf)>,
    secrets: HashMap<String, String>,
    call: CsiCall,
) -> CsiOutcome {
    let path = |rel: &str| -> String {
        node.as_ref()
            .map(|(_, d)| d.join("kubelet").join(rel).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let nc = || {
        node.as_ref()
            .map(|(c, _)| c.clone())
            .ok_or((tonic::Code::NotFound, "no such node".to_owned()))
    };
    match call {
        CsiCall::NodeStage {
            volume_id,
            context,
            staging,
            ..
        } => {
            let staging = path(&staging);
            // The CO creates the staging directory (CSI spec).
            std::fs::create_dir_all(&staging)
                .map_err(|e| (tonic::Code::Internal, format!("kubelet mkdir: {e}")))?;
            nc()?
                .node_stage_volume(NodeStageVolumeRequest {
                    volume_id,
                    staging_target_path: staging,
                    volume_capability: Some(cap()),
                    secrets,
                    volume_context: context.into_iter().collect(),
                    ..Default::default()
                })
                .await
                .map_err(status)?;
            Ok(CsiReply::Done)
        }
        CsiCall::NodePublish {
            volume_id,
            context,
            staging,
            target,
            ..
        } => {
            nc()?
                .node_publish_volume(NodePublishVolumeRequest {
                    volume_id,
                    staging_target_path: path(&staging),
                    target_path: path(&target),
                    volume_capability: Some(cap()),
                    volume_context: context.into_iter().collect(),
                    ..Default::default()
                })
                .await
                .map_err(status)?;
            Ok(CsiReply::Done)
        }
        CsiCall::NodeUnpublish {
            volume_id, target, ..
        } => {
            let t = path(&target);
            nc()?
                .node_unpublish_volume(NodeUnpublishVolumeRequest {
                    volume_id,
                    target_path: t.clone(),
                })
                .await
                .map_err(status)?;
            // The kubelet removes the pod's volume directories.
            remove_empty_up(Path::new(&t), 4);
            Ok(CsiReply::Done)
        }
        CsiCall::NodeUnstage {
            volume_id, staging, ..
        } => {
            let s = path(&staging);
            nc()?
                .node_unstage_volume(NodeUnstageVolumeRequest {
                    volume_id,
                    staging_target_path: s.clone(),
                })
                .await
                .map_err(status)?;
            // As the kubelet: the volume's own directories (globalmount and the PV's),
            // never the node-wide `pv` and `csi` ones another volume's stage may be
            // creating its directory under at this moment.
            remove_empty_up(Path::new(&s), UNSTAGE_LEVELS);
            Ok(CsiReply::Done)
        }

        CsiCall::CreateVolume { .. }
        | CsiCall::DeleteVolume { .. }
        | CsiCall::ControllerPublish { .. }
        | CsiCall::ControllerUnpublish { .. } => Err((
            tonic::Code::Internal,
            format!("{} is not a node call", call.method()),
        )),
    }
}

/// Removes `p` and up to `levels` empty parents (what the kubelet cleans after itself).
/// How far up from a staging path an unstage removes empty directories: the
/// `globalmount` directory and its PV's.
const UNSTAGE_LEVELS: usize = 1;

fn remove_empty_up(p: &Path, levels: usize) {
    let mut at = Some(p);
    for _ in 0..=levels {
        let Some(d) = at else { break };
        if std::fs::remove_dir(d).is_err() && d.exists() {
            break;
        }
        at = d.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One volume's unstage clean-up never removes a directory another volume's stage on
    /// the same node is creating its staging path under (that made a NodeStage fail
    /// with `kubelet mkdir: … No such file or directory` now and then).
    #[test]
    fn an_unstage_leaves_the_directories_other_volumes_stage_under() {
        let node = tempfile::tempdir().unwrap();
        let staging = |pv: &str| node.path().join("kubelet").join(staging_path_of(pv));
        let (a, b) = (staging("pv-a"), staging("pv-b"));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cleaner = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::fs::create_dir_all(&a).unwrap();
                    remove_empty_up(&a, UNSTAGE_LEVELS);
                }
            })
        };
        for _ in 0..40_000 {
            std::fs::create_dir_all(&b).expect("another volume's stage mkdir");
            // Its own unstage, by hand: globalmount and its PV's directory.
            std::fs::remove_dir(&b).unwrap();
            std::fs::remove_dir(b.parent().unwrap()).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        cleaner.join().unwrap();
        // The volume's own directories are gone.
        assert!(
            !node
                .path()
                .join("kubelet")
                .join(staging_path_of("pv-a"))
                .exists()
        );
        assert!(
            !node
                .path()
                .join("kubelet/plugins/kubernetes.io/csi/pv/pv-a")
                .exists()
        );
    }

    fn staging_path_of(pv: &str) -> String {
        format!("plugins/kubernetes.io/csi/pv/{pv}/globalmount")
    }
}
