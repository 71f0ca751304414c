//! A hollow kubelet's identity on a real API server: its own client (the node's
//! certificate, `system:node:<name>`, so the node authorizer and NodeRestriction judge
//! every request as they judge a kubelet's), and what a kubelet registers at start
//! (after Kubernetes' `pkg/kubelet/kubelet_node_status.go` and `nodelease`): its Node with the kubelet's labels and the
//! `controller-managed-attach-detach` annotation (without it the attach-detach
//! controller ignores the node), a Ready status with room for pods, its Lease in
//! `kube-node-lease`, and its CSINode (owned by the Node), to which a registered CSI
//! driver is added as the kubelet does after NodeGetInfo. The client is held to the
//! kubelet's own rate limit ([`throttle`](super::throttle): 50 QPS, burst 100).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus};
use k8s_openapi::api::storage::v1::{CSINode, CSINodeDriver, CSINodeSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use super::throttle::{ClientLimit, KUBELET_BURST, KUBELET_QPS, LimitLayer};

/// One hollow node's API identity.
#[derive(Clone)]
pub struct NodeIdentity {
    name: String,
    client: Client,
    limit: Arc<ClientLimit>,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn now() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::now()
}

/// Creates `obj`, or leaves the one that exists (a restarted kubelet finds its objects).
async fn create_or_keep<K>(api: &Api<K>, obj: &K) -> anyhow::Result<()>
where
    K: Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl NodeIdentity {
    /// The client of node `name`, from its kubeconfig (`ControlPlane::node_kubeconfig`),
    /// with the kubelet's rate limit.
    pub async fn connect(kubeconfig: &Path, name: &str) -> anyhow::Result<Self> {
        let file = Kubeconfig::read_from(kubeconfig)
            .with_context(|| format!("reading {}", kubeconfig.display()))?;
        let config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await?;
        let limit = Arc::new(ClientLimit::new(KUBELET_QPS, KUBELET_BURST));
        let client = kube::client::ClientBuilder::try_from(config)?
            .with_layer(&LimitLayer(limit.clone()))
            .build();
        Ok(Self {
            name: name.to_owned(),
            client,
            limit,
        })
    }

    /// The client's rate limit, with what it counted.
    pub fn limit(&self) -> &Arc<ClientLimit> {
        &self.limit
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client, as the node.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Registers the node as a kubelet does at start: Node, Ready status, Lease, CSINode.
    pub async fn register(&self) -> anyhow::Result<()> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_owned(), self.name.clone()),
            ("kubernetes.io/os".to_owned(), "linux".to_owned()),
            ("kubernetes.io/arch".to_owned(), "amd64".to_owned()),
        ]);
        let annotations = BTreeMap::from([(
            "volumes.kubernetes.io/controller-managed-attach-detach".to_owned(),
            "true".to_owned(),
        )]);
        let node = Node {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(labels),
                annotations: Some(annotations),
                ..Default::default()
            },
            ..Default::default()
        };
        create_or_keep(&nodes, &node)
            .await
            .with_context(|| format!("registering Node {}", self.name))?;
        self.report_ready().await?;
        self.renew_lease().await?;
        let uid = nodes
            .get(&self.name)
            .await?
            .metadata
            .uid
            .unwrap_or_default();
        let csinode = CSINode {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: self.name.clone(),
                    uid,
                    ..Default::default()
                }]),
                ..Default::default()
            },
            spec: CSINodeSpec {
                drivers: Vec::new(),
            },
            ..Default::default()
        };
        let csinodes: Api<CSINode> = Api::all(self.client.clone());
        create_or_keep(&csinodes, &csinode)
            .await
            .with_context(|| format!("registering CSINode {}", self.name))
    }

    /// Node status: Ready, with room for 110 pods (what the scheduler needs to place one).
    pub async fn report_ready(&self) -> anyhow::Result<()> {
        let room = BTreeMap::from([
            ("cpu".to_owned(), Quantity("16".into())),
            ("memory".to_owned(), Quantity("64Gi".into())),
            ("pods".to_owned(), Quantity("110".into())),
        ]);
        let status = NodeStatus {
            capacity: Some(room.clone()),
            allocatable: Some(room),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: Some("KubeletReady".into()),
                message: Some("hollow kubelet is posting ready status".into()),
                last_heartbeat_time: Some(Time(now())),
                last_transition_time: Some(Time(now())),
            }]),
            ..Default::default()
        };
        let patch = serde_json::json!({ "status": status });
        let nodes: Api<Node> = Api::all(self.client.clone());
        nodes
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("reporting Node {} Ready", self.name))?;
        Ok(())
    }

    /// The node's heartbeat: its Lease in `kube-node-lease`, 40 s, renewed now.
    pub async fn renew_lease(&self) -> anyhow::Result<()> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.name.clone()),
                lease_duration_seconds: Some(40),
                renew_time: Some(MicroTime(now())),
                ..Default::default()
            }),
        };
        leases
            .patch(
                &self.name,
                &PatchParams::apply("hollow-kubelet").force(),
                &Patch::Apply(&lease),
            )
            .await
            .with_context(|| format!("renewing the Lease of {}", self.name))?;
        Ok(())
    }

    /// Adds a CSI driver to the node's CSINode, as the kubelet's plugin registration does
    /// after the driver's NodeGetInfo answered `node_id`.
    pub async fn register_driver(&self, driver: &str, node_id: &str) -> anyhow::Result<()> {
        let csinodes: Api<CSINode> = Api::all(self.client.clone());
        let mut csinode = csinodes.get(&self.name).await?;
        csinode.spec.drivers.retain(|d| d.name != driver);
        csinode.spec.drivers.push(CSINodeDriver {
            name: driver.to_owned(),
            node_id: node_id.to_owned(),
            topology_keys: Some(Vec::new()),
            allocatable: None,
        });
        csinodes
            .replace(&self.name, &PostParams::default(), &csinode)
            .await
            .with_context(|| format!("adding {driver} to CSINode {}", self.name))?;
        Ok(())
    }
}
