//! The requests a CO sends, filled in as csi-sanity fills them: the capability's access
//! type, the CreateVolume parameters and size, and each RPC's secrets. Imports
//! [`super::input`] and the driver's CSI types only.

use std::collections::HashMap;

use driver::csi::v1::volume_capability::access_mode::Mode;
use driver::csi::v1::*;

use super::input::{Params, Secrets};

/// The access type of every capability a client sends (csi-sanity's
/// `--csi.testvolumeaccesstype`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AccessType {
    /// `MountVolume{}`: the SP places a directory at target_path.
    #[default]
    Mount,
    /// `BlockVolume{}`: the SP places the block device (a file) at target_path.
    Block,
}

impl AccessType {
    /// The name `--access-type` takes.
    pub fn name(self) -> &'static str {
        match self {
            AccessType::Mount => "mount",
            AccessType::Block => "block",
        }
    }
}

/// What a client's requests carry besides their arguments.
#[derive(Debug, Clone, Copy)]
pub struct Requests<'a> {
    /// The access type of every capability.
    pub access_type: AccessType,
    /// The CreateVolume parameters.
    pub params: &'a Params,
    /// The secrets, per RPC.
    pub secrets: &'a Secrets,
    /// The required_bytes of a new volume.
    pub volume_size: i64,
}

impl Requests<'_> {
    /// A capability with `mode` and the access type (empty `MountVolume{}` or
    /// `BlockVolume{}`, as csi-sanity sends).
    pub fn capability(&self, mode: Mode) -> VolumeCapability {
        let access_type = match self.access_type {
            AccessType::Mount => {
                volume_capability::AccessType::Mount(volume_capability::MountVolume::default())
            }
            AccessType::Block => {
                volume_capability::AccessType::Block(volume_capability::BlockVolume::default())
            }
        };
        VolumeCapability {
            access_type: Some(access_type),
            access_mode: Some(volume_capability::AccessMode { mode: mode as i32 }),
        }
    }

    /// SINGLE_NODE_WRITER with the access type, as csi-sanity uses.
    pub fn single_node_writer(&self) -> VolumeCapability {
        self.capability(Mode::SingleNodeWriter)
    }

    /// csi-sanity's `MakeCreateVolumeReq`: `name`, the volume size as required_bytes
    /// (no limit), one SINGLE_NODE_WRITER capability, the parameters and
    /// CreateVolumeSecret; no topology.
    pub fn create_volume(&self, name: &str) -> CreateVolumeRequest {
        CreateVolumeRequest {
            name: name.to_owned(),
            capacity_range: Some(CapacityRange {
                required_bytes: self.volume_size,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![self.single_node_writer()],
            parameters: self.params.clone(),
            secrets: self.secrets.get("CreateVolumeSecret"),
            ..Default::default()
        }
    }

    /// DeleteVolume of `id` with DeleteVolumeSecret.
    pub fn delete_volume(&self, id: &str) -> DeleteVolumeRequest {
        DeleteVolumeRequest {
            volume_id: id.to_owned(),
            secrets: self.secrets.get("DeleteVolumeSecret"),
        }
    }

    /// CreateSnapshot `name` of the volume `source`, with `parameters` and
    /// CreateSnapshotSecret.
    pub fn create_snapshot(
        &self,
        name: &str,
        source: &str,
        parameters: Params,
    ) -> CreateSnapshotRequest {
        CreateSnapshotRequest {
            source_volume_id: source.to_owned(),
            name: name.to_owned(),
            secrets: self.secrets.get("CreateSnapshotSecret"),
            parameters,
            accessibility_requirements: None,
        }
    }

    /// DeleteSnapshot of `id` with DeleteSnapshotSecret.
    pub fn delete_snapshot(&self, id: &str) -> DeleteSnapshotRequest {
        DeleteSnapshotRequest {
            snapshot_id: id.to_owned(),
            secrets: self.secrets.get("DeleteSnapshotSecret"),
        }
    }

    /// ControllerPublishVolume of `volume` (with its context) to `node`, read-write.
    pub fn controller_publish(
        &self,
        volume: &Volume,
        node: &str,
    ) -> ControllerPublishVolumeRequest {
        ControllerPublishVolumeRequest {
            volume_id: volume.volume_id.clone(),
            node_id: node.to_owned(),
            volume_capability: Some(self.single_node_writer()),
            readonly: false,
            secrets: self.secrets.get("ControllerPublishVolumeSecret"),
            volume_context: volume.volume_context.clone(),
        }
    }

    /// ControllerUnpublishVolume of `volume` from `node`.
    pub fn controller_unpublish(
        &self,
        volume: &str,
        node: &str,
    ) -> ControllerUnpublishVolumeRequest {
        ControllerUnpublishVolumeRequest {
            volume_id: volume.to_owned(),
            node_id: node.to_owned(),
            secrets: self.secrets.get("ControllerUnpublishVolumeSecret"),
        }
    }

    /// NodeStageVolume of `volume` (with its context) at `staging`.
    pub fn node_stage(
        &self,
        volume: &Volume,
        publish_context: &HashMap<String, String>,
        staging: &str,
    ) -> NodeStageVolumeRequest {
        NodeStageVolumeRequest {
            volume_id: volume.volume_id.clone(),
            publish_context: publish_context.clone(),
            staging_target_path: staging.to_owned(),
            volume_capability: Some(self.single_node_writer()),
            secrets: self.secrets.get("NodeStageVolumeSecret"),
            volume_context: volume.volume_context.clone(),
        }
    }

    /// NodeUnstageVolume of `volume` at `staging`.
    pub fn node_unstage(&self, volume: &str, staging: &str) -> NodeUnstageVolumeRequest {
        NodeUnstageVolumeRequest {
            volume_id: volume.to_owned(),
            staging_target_path: staging.to_owned(),
        }
    }

    /// NodePublishVolume of `volume` (with its context) at `target`, read-write, from
    /// `staging` when it was staged there.
    pub fn node_publish(
        &self,
        volume: &Volume,
        publish_context: &HashMap<String, String>,
        staging: Option<&str>,
        target: &str,
    ) -> NodePublishVolumeRequest {
        NodePublishVolumeRequest {
            volume_id: volume.volume_id.clone(),
            publish_context: publish_context.clone(),
            staging_target_path: staging.unwrap_or_default().to_owned(),
            target_path: target.to_owned(),
            volume_capability: Some(self.single_node_writer()),
            readonly: false,
            secrets: self.secrets.get("NodePublishVolumeSecret"),
            volume_context: volume.volume_context.clone(),
        }
    }

    /// NodeUnpublishVolume of `volume` at `target`.
    pub fn node_unpublish(&self, volume: &str, target: &str) -> NodeUnpublishVolumeRequest {
        NodeUnpublishVolumeRequest {
            volume_id: volume.to_owned(),
            target_path: target.to_owned(),
        }
    }
}
