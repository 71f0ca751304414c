//! The capabilities a driver advertised, asked once at the start ([`Caps`]), and the
//! gates a check passes through on them, as csi-sanity's. Imports [`super`] only.

use std::collections::HashSet;

use driver::csi::v1::identity_client::IdentityClient;
use driver::csi::v1::*;
use tonic::transport::Channel;

use super::{Ctx, Outcome, Shared, Verdict, describe, fail, skip};

/// The capabilities the driver advertised (or the error it answered with).
#[derive(Debug, Clone)]
pub struct Caps {
    /// The plugin service capabilities on `--endpoint`.
    pub plugin: Result<HashSet<i32>, String>,
    /// The same on the controller's endpoint (csi-sanity's snapshot topology gate
    /// asks there).
    pub plugin_ctrl: Result<HashSet<i32>, String>,
    pub controller: Result<HashSet<i32>, String>,
    pub node: Result<HashSet<i32>, String>,
    pub group: Result<HashSet<i32>, String>,
    pub node_info: Result<NodeGetInfoResponse, String>,
}

impl Caps {
    /// Asks the driver.
    pub async fn discover(s: &Shared) -> Self {
        use controller_service_capability::Type as Ct;
        use group_controller_service_capability::Type as Gt;
        use node_service_capability::Type as Nt;
        use plugin_capability::Type as Pt;
        async fn services(mut c: IdentityClient<Channel>) -> Result<HashSet<i32>, String> {
            c.get_plugin_capabilities(GetPluginCapabilitiesRequest {})
                .await
                .map(|r| {
                    r.into_inner()
                        .capabilities
                        .into_iter()
                        .filter_map(|c| match c.r#type {
                            Some(Pt::Service(s)) => Some(s.r#type),
                            _ => None,
                        })
                        .collect()
                })
                .map_err(|e| describe(&e))
        }
        let plugin = services(s.identity.clone()).await;
        let plugin_ctrl = match &s.identity_ctrl {
            Some(c) => services(c.clone()).await,
            None => plugin.clone(),
        };
        // As csi-sanity's gates: a capability without a type is an error (they
        // expect every one to be an RPC capability).
        fn typed(types: Vec<Option<i32>>) -> Result<HashSet<i32>, String> {
            types
                .into_iter()
                .map(|t| t.ok_or_else(|| "a capability has no type".to_owned()))
                .collect()
        }
        let controller = s
            .controller
            .clone()
            .controller_get_capabilities(ControllerGetCapabilitiesRequest {})
            .await
            .map_err(|e| describe(&e))
            .and_then(|r| {
                typed(
                    r.into_inner()
                        .capabilities
                        .into_iter()
                        .map(|c| c.r#type.map(|Ct::Rpc(r)| r.r#type))
                        .collect(),
                )
            });
        let node = s
            .node
            .clone()
            .node_get_capabilities(NodeGetCapabilitiesRequest {})
            .await
            .map_err(|e| describe(&e))
            .and_then(|r| {
                typed(
                    r.into_inner()
                        .capabilities
                        .into_iter()
                        .map(|c| c.r#type.map(|Nt::Rpc(r)| r.r#type))
                        .collect(),
                )
            });
        let group = s
            .group
            .clone()
            .group_controller_get_capabilities(GroupControllerGetCapabilitiesRequest {})
            .await
            .map_err(|e| describe(&e))
            .and_then(|r| {
                typed(
                    r.into_inner()
                        .capabilities
                        .into_iter()
                        .map(|c| c.r#type.map(|Gt::Rpc(r)| r.r#type))
                        .collect(),
                )
            });
        let node_info = s
            .node
            .clone()
            .node_get_info(NodeGetInfoRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|e| describe(&e));
        Self {
            plugin,
            plugin_ctrl,
            controller,
            node,
            group,
            node_info,
        }
    }
}

impl Ctx {
    // Capability gates, as csi-sanity's: the gating call failing fails the check.

    fn set(r: &Result<HashSet<i32>, String>, rpc: &str) -> Result<HashSet<i32>, Verdict> {
        r.clone().map_err(|e| fail(format!("{rpc} failed: {e}")))
    }

    /// Whether the controller advertises `t` (fails when ControllerGetCapabilities fails).
    pub fn has_ctrl(&self, t: controller_service_capability::rpc::Type) -> Result<bool, Verdict> {
        Ok(Self::set(&self.s.caps.controller, "ControllerGetCapabilities")?.contains(&(t as i32)))
    }
    pub fn need_ctrl(&self, t: controller_service_capability::rpc::Type, reason: &str) -> Outcome {
        if self.has_ctrl(t)? {
            Ok(())
        } else {
            Err(skip(reason))
        }
    }
    pub fn has_node(&self, t: node_service_capability::rpc::Type) -> Result<bool, Verdict> {
        Ok(Self::set(&self.s.caps.node, "NodeGetCapabilities")?.contains(&(t as i32)))
    }
    pub fn need_node(&self, t: node_service_capability::rpc::Type, reason: &str) -> Outcome {
        if self.has_node(t)? {
            Ok(())
        } else {
            Err(skip(reason))
        }
    }
    pub fn has_plugin(&self, t: plugin_capability::service::Type) -> Result<bool, Verdict> {
        Ok(Self::set(&self.s.caps.plugin, "GetPluginCapabilities")?.contains(&(t as i32)))
    }
    /// As [`Self::has_plugin`], asking the controller's Identity.
    pub fn has_plugin_ctrl(&self, t: plugin_capability::service::Type) -> Result<bool, Verdict> {
        Ok(Self::set(
            &self.s.caps.plugin_ctrl,
            "GetPluginCapabilities (controller)",
        )?
        .contains(&(t as i32)))
    }
    /// csi-sanity's `BeforeEach` of every Node spec: GetPluginCapabilities, then
    /// ControllerGetCapabilities when the plugin has a controller, then
    /// NodeGetCapabilities must each succeed.
    pub fn node_service_gate(&self) -> Outcome {
        if self.has_plugin(plugin_capability::service::Type::ControllerService)? {
            self.has_ctrl(controller_service_capability::rpc::Type::Unknown)?;
        }
        self.has_node(node_service_capability::rpc::Type::Unknown)?;
        Ok(())
    }
    /// csi-sanity's `controllerPublishSupported` of its node specs: the plugin has a
    /// controller and it advertises PUBLISH_UNPUBLISH_VOLUME.
    pub fn controller_publish_supported(&self) -> Result<bool, Verdict> {
        Ok(
            self.has_plugin(plugin_capability::service::Type::ControllerService)?
                && self
                    .has_ctrl(controller_service_capability::rpc::Type::PublishUnpublishVolume)?,
        )
    }
    /// csi-sanity's gate of the node flows: the plugin's CONTROLLER_SERVICE.
    pub fn need_controller_service(&self) -> Outcome {
        if !self.has_plugin(plugin_capability::service::Type::ControllerService)? {
            return Err(skip(
                "Controller Service not provided: CreateVolume not supported",
            ));
        }
        Ok(())
    }
    pub fn node_info(&self) -> Result<NodeGetInfoResponse, Verdict> {
        self.s
            .caps
            .node_info
            .clone()
            .map_err(|e| fail(format!("NodeGetInfo failed: {e}")))
    }
    pub fn node_id(&self) -> Result<String, Verdict> {
        Ok(self.node_info()?.node_id)
    }
}
