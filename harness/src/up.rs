//! `harness up`: the simulator's embedded back ends served on their own, for people who
//! point their own tools and tests at a live mock cluster. fake-ceph (and, with
//! `--backend manila`, fake-manila on top of it) on loopback, the driver's controller
//! plugin and N node plugins on Unix sockets under one temporary directory; their
//! endpoints, credentials, StorageClass parameters and a cephfs-csi cluster config are
//! printed as one JSON document on stdout (the CephFS controller has
//! `controllerCredentials`, so ListVolumes, GetCapacity and ControllerGetVolume work
//! too), then everything is served until SIGINT or
//! SIGTERM, and torn down (servers stopped, the directory with its sockets, node state
//! and fake-ceph's tree removed).
//!
//! The credentials are those of the embedded fakes: printing them is the point of the
//! command. They go to stdout only, never to a log.

use std::future::Future;
use std::io::Write;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::csi::{
    DRIVER_NAME, Embedded, FS_NAME, Launch, Leaks, MANILA_SHARE_TYPE, MANILA_USER, SUBVOLUME_GROUP,
    StorageBackend, storage_class_parameters,
};

/// The name of the Secret the printed StorageClass refers to.
pub const SECRET_NAME: &str = "trainride-csi";

/// `harness up`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Node plugins to serve (`node-0001`, `node-0002`, ...).
    #[arg(long, default_value_t = 1, env = "HARNESS_UP_NODES")]
    pub nodes: usize,
    /// What provisions the volumes: the CephFS controller on fake-ceph, or the Manila
    /// controller on fake-manila (itself on fake-ceph).
    #[arg(long, value_enum, default_value_t = StorageBackend::Cephfs, env = "HARNESS_UP_BACKEND")]
    pub backend: StorageBackend,
    /// The fakes' master seed (keys, IDs).
    #[arg(long, default_value_t = 1, env = "HARNESS_SEED")]
    pub seed: u64,
    /// The controller serves ControllerPublish/Unpublish (CephFS back end only).
    #[arg(long, env = "HARNESS_UP_ATTACH_REQUIRED")]
    pub attach_required: bool,
}

/// Everything a client needs to use `stack`, as one JSON document: endpoints,
/// credentials (secrets, deliberately), StorageClass parameters, the cluster config.
pub fn describe(stack: &Embedded) -> Value {
    let backend = stack.backend();
    let nodes: Vec<Value> = stack
        .node_endpoints()
        .map(|(id, dir, socket)| {
            json!({
                "node_id": id,
                "endpoint": format!("unix://{}", socket.display()),
                "socket": socket,
                "kubelet_dir": dir.join("kubelet"),
            })
        })
        .collect();
    let parameters = storage_class_parameters(backend);
    let mut sc_parameters = parameters.clone();
    for kind in ["provisioner", "node-stage", "controller-expand"] {
        sc_parameters.insert(
            format!("csi.storage.k8s.io/{kind}-secret-name"),
            SECRET_NAME.to_owned(),
        );
        sc_parameters.insert(
            format!("csi.storage.k8s.io/{kind}-secret-namespace"),
            "default".to_owned(),
        );
    }
    let mut doc = json!({
        "backend": backend.to_string(),
        "driver_name": DRIVER_NAME,
        "dir": stack.root(),
        "controller": {
            "endpoint": format!("unix://{}", stack.controller_socket().display()),
            "socket": stack.controller_socket(),
        },
        "nodes": nodes,
        "ceph": {
            "url": stack.ceph_url(),
            "monitors": stack.monitors(),
            "fs_name": FS_NAME,
            "subvolume_group": SUBVOLUME_GROUP,
            "admin_id": "admin",
            "admin_key": stack.ceph_admin_key(),
        },
        "manila": Value::Null,
        "secrets": stack.secrets().iter().collect::<std::collections::BTreeMap<_, _>>(),
        "parameters": parameters,
        "storage_class": {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": format!("trainride-{backend}")},
            "provisioner": DRIVER_NAME,
            "parameters": sc_parameters,
            "reclaimPolicy": "Delete",
            "allowVolumeExpansion": true,
        },
        "cluster_config": stack.cluster_config(),
    });
    if let Some(auth_url) = stack.os_auth_url() {
        doc["manila"] = json!({
            "url": stack.manila_url(),
            "auth_url": auth_url,
            "share_type": MANILA_SHARE_TYPE,
            "user": MANILA_USER,
            "password": MANILA_USER,
            "project": MANILA_USER,
            "domain": "Default",
            "admin_user": "admin",
            "admin_password": "admin",
        });
    }
    doc
}

/// Starts the stack `args` describes, writes [`describe`]'s document to `out`, serves
/// until `stop` completes, then tears everything down. Returns what was left in the
/// back ends at that moment (volumes the user did not delete), for the caller to report.
pub async fn up(
    args: &UpArgs,
    out: &mut (dyn Write + Send),
    stop: impl Future<Output = ()>,
) -> anyhow::Result<Leaks> {
    let stack = Embedded::launch(
        Launch {
            seed: args.seed,
            nodes: args.nodes,
            attach_required: args.attach_required,
            backend: args.backend,
            controller_credentials: true,
            ceph_faults: fake_ceph::Faults::default(),
            manila_faults: fake_manila::Faults::default(),
            timeouts: crate::params::DriverTimeouts::default(),
            durable_ceph: false,
        },
        "harness-up-",
    )
    .await?;
    let written = async {
        for (_, dir, _) in stack.node_endpoints() {
            std::fs::create_dir_all(dir.join("kubelet"))
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(&describe(&stack))?;
        writeln!(out, "{text}").context("writing to stdout")?;
        out.flush().context("writing to stdout")?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = written {
        stack.shutdown().await;
        return Err(e);
    }
    tracing::info!(
        backend = %args.backend,
        nodes = args.nodes,
        dir = %stack.root().display(),
        "serving until SIGINT or SIGTERM"
    );
    stop.await;
    let leaks = stack.leaks().await;
    stack.shutdown().await;
    Ok(leaks)
}
