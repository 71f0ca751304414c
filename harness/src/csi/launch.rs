//! How an [`Embedded`] stack starts: what it is started with ([`Launch`],
//! [`External`]), the embedded fake-ceph and fake-manila, the driver's cluster config and
//! secrets, and the plugins. Imports the other parts of [`super`], the driver, the fakes
//! and [`crate::inventory`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use driver::ceph::Target;
use driver::config::{Backend as DriverBackend, Config, Mode, MounterKind, parse_clusters};
use serde_json::json;

use super::embedded::{CephServer, Embedded, FaultState, GROUPS, spawn_ceph};
use super::plugin::{Served, serve};
use super::workdir::temp_root;
use super::{
    CLUSTER_ID, DRIVER_NAME, FS_NAME, MANILA_SHARE_TYPE, MANILA_USER, SUBVOLUME_GROUP,
    StorageBackend, node_name,
};
use crate::inventory::{CephAccess, Inventory, ManilaAccess};

/// What an [`Embedded`] stack is started with.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// The master seed of fake-ceph (keys, UUIDs) and fake-manila (IDs, tokens).
    pub seed: u64,
    /// Node plugins to serve.
    pub nodes: usize,
    /// The controller advertises and serves ControllerPublish (CephFS back end only).
    pub attach_required: bool,
    /// What provisions the volumes.
    pub backend: StorageBackend,
    /// Give the CephFS controller `controllerCredentials` (client.admin's keyring in a
    /// 0600 file under the directory), so that the RPCs without secrets (ListVolumes,
    /// GetCapacity, ControllerGetVolume) are served. The simulation makes none of them.
    pub controller_credentials: bool,
    /// Fault rules for the embedded fake-ceph (refused with external back ends: set them
    /// there).
    pub ceph_faults: fake_ceph::Faults,
    /// Faults of the embedded fake-manila (refused with external back ends).
    pub manila_faults: fake_manila::Faults,
    /// The driver's deadlines.
    pub timeouts: crate::params::DriverTimeouts,
    /// Keep the embedded fake-ceph's metadata on disk (`fake_ceph::Metadata::Durable`,
    /// in the run's temporary directory), so that [`Embedded::restart_ceph`] finds every
    /// volume, user and journal object again. Off, commands commit nothing.
    pub durable_ceph: bool,
}

/// Back ends that run outside this process, for [`Embedded::launch_on`]: a fake-ceph
/// (on this machine: the fake mounter links the directories it names) and, for the
/// Manila back end, a fake-manila on top of it.
#[derive(Clone)]
pub struct External {
    /// fake-ceph's base URL (empty with `ceph_conf`).
    pub ceph_url: String,
    /// A real Ceph cluster's `ceph.conf` instead of a fake-ceph: commands go through
    /// the `ceph` and `rados` tools (the driver's cli transport) and the node plugins
    /// mount with ceph-fuse (root only).
    pub ceph_conf: Option<PathBuf>,
    /// Its client.admin key.
    pub ceph_admin_key: String,
    /// The Keystone auth URL of the Manila back end (a fake-manila's first stdout line:
    /// `http://host:port/v3`); Manila is found through its catalog.
    pub os_auth_url: Option<String>,
    /// The Manila user, project and domain (names).
    pub os_user: String,
    /// The user's password.
    pub os_password: String,
    /// The project.
    pub os_project: String,
    /// The user's and project's domain.
    pub os_domain: String,
}

impl std::fmt::Debug for External {
    // Not derived: the key and the password must not reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("External")
            .field("ceph_url", &self.ceph_url)
            .field("ceph_conf", &self.ceph_conf)
            .field("os_auth_url", &self.os_auth_url)
            .field("os_user", &self.os_user)
            .field("os_project", &self.os_project)
            .finish_non_exhaustive()
    }
}

/// Writes a keyring with client.admin's `key` to `root/keys/` (0600); returns its path.
fn write_keyring(root: &Path, key: &str) -> anyhow::Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = root.join("keys");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("ceph.client.admin.keyring");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "[client.admin]\n\tkey = {key}")?;
    Ok(path)
}

/// Where an embedded fake-manila answers.
struct ManilaEndpoints {
    /// Keystone's auth URL (`http://127.0.0.1:PORT/v3`).
    auth_url: String,
    /// Manila's endpoint (`http://127.0.0.1:PORT`; the API under `/v2`).
    manila_url: String,
}

/// The embedded fake-manila's connection limit (each of Keystone and Manila).
const MANILA_MAX_CONNECTIONS: usize = 4096;

/// Serves a fake-manila (zero state delays, no quotas, the share type
/// [`MANILA_SHARE_TYPE`], `faults`) over `ceph`, Keystone and Manila each on a loopback
/// port of its own; returns where they answer, its state and the task serving them.
async fn serve_manila(
    seed: u64,
    ceph: &CephAccess,
    faults: &fake_manila::Faults,
    ceph_timeout: Option<Duration>,
) -> anyhow::Result<(
    ManilaEndpoints,
    fake_manila::AppState,
    tokio::task::JoinHandle<()>,
)> {
    // Bound before the state is made: Keystone's catalog names these URLs.
    let listeners = fake_manila::Listeners::loopback()
        .await
        .context("binding loopback ports")?;
    let mut config = fake_manila::Config::new(
        listeners.keystone_url(),
        listeners.manila_url(),
        fake_manila::CephConfig {
            url: ceph.url().to_owned(),
            identity: fake_manila::CephIdentity {
                entity: "client.admin".into(),
                key: fake_manila::Secret::new(ceph.admin_key()),
            },
            fs_name: FS_NAME.into(),
            group: None,
            timeout: ceph_timeout.unwrap_or(Duration::from_secs(30)),
        },
    );
    config.seed = Some(seed);
    config.faults = faults.clone();
    // The simulation charges its own durations; real waits would only cost wall time.
    config.delays = fake_manila::Delays::all(Duration::ZERO);
    config.quotas.shares = -1;
    config.quotas.gigabytes = -1;
    config.share_type_name = MANILA_SHARE_TYPE.into();
    let endpoints = ManilaEndpoints {
        auth_url: format!("{}/v3", listeners.keystone_url()),
        manila_url: listeners.manila_url(),
    };
    let state = fake_manila::AppState::new(config).context("fake-manila")?;
    // Every node plugin keeps its own pool of connections to Keystone and Manila (a
    // real Manila serves a cluster's nodes behind far larger limits): at the default
    // limit the server would close pooled connections under the clients' feet.
    let serve = fake_ceph::service::ServeConfig {
        max_connections: MANILA_MAX_CONNECTIONS,
        ..fake_ceph::service::ServeConfig::default()
    };
    let task = {
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = listeners
                .serve_with(state, serve, std::future::pending())
                .await
            {
                tracing::error!(error = %e, "fake-manila stopped serving");
            }
        })
    };
    Ok((endpoints, state, task))
}

/// The CSI secrets of the Manila back end whose Keystone is at `auth_url`.
fn manila_secrets(
    auth_url: &str,
    user: &str,
    password: &str,
    project: &str,
    domain: &str,
) -> HashMap<String, String> {
    HashMap::from([
        ("os-authURL".to_owned(), auth_url.to_owned()),
        ("os-userName".to_owned(), user.to_owned()),
        ("os-password".to_owned(), password.to_owned()),
        ("os-projectName".to_owned(), project.to_owned()),
        ("os-domainName".to_owned(), domain.to_owned()),
    ])
}

impl Embedded {
    /// Starts the stack `l` describes, with embedded back ends, in a new temporary
    /// directory named `prefix…`.
    pub async fn launch(l: Launch, prefix: &str) -> anyhow::Result<Self> {
        Self::launch_on(l, prefix, None).await
    }

    /// [`Embedded::launch`], on `external` back ends when given.
    pub async fn launch_on(
        l: Launch,
        prefix: &str,
        external: Option<&External>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !(l.attach_required && l.backend == StorageBackend::Manila),
            "the manila back end has no ControllerPublish: attach cannot be required"
        );
        let root = temp_root(prefix)?;
        let mut servers = Vec::new();
        let (cluster, ceph_server, ceph) = match external {
            None => {
                let (cluster, server, ceph) = start_ceph(&l, root.path()).await?;
                (Some(cluster), Some(server), ceph)
            }
            Some(x) => {
                anyhow::ensure!(
                    l.ceph_faults == fake_ceph::Faults::default(),
                    "ceph_faults apply to the embedded fake-ceph only: set them on the \
                     external one (its --fault flag or /admin/faults)"
                );
                anyhow::ensure!(
                    l.manila_faults == fake_manila::Faults::default(),
                    "manila_faults apply to the embedded fake-manila only: set them on the \
                     external one (its --fault-* flags or /admin/faults)"
                );
                let access = match &x.ceph_conf {
                    Some(conf) => {
                        anyhow::ensure!(
                            l.backend == StorageBackend::Cephfs,
                            "the manila back end needs fake-manila over a fake-ceph, not a \
                             real cluster"
                        );
                        CephAccess::cli(conf, &x.ceph_admin_key)
                    }
                    None => CephAccess::new(&x.ceph_url, &x.ceph_admin_key)?,
                };
                (None, None, access)
            }
        };
        let monitors = prepare_ceph(&ceph).await?;
        let clusters = cluster_config(&l, &ceph, &monitors, root.path())?;
        let parsed = parse_clusters(&clusters.to_string())?;
        let timeouts = Timeouts::of(&l);
        let access = backend_access(&l, external, &ceph, timeouts.ceph).await?;
        let manila_state = access.manila_state;
        servers.extend(access.manila_task);
        let manila = match l.backend {
            StorageBackend::Manila => Some(ManilaAccess::new(&access.secrets)?),
            StorageBackend::Cephfs => None,
        };
        // One pool of connections to fake-ceph for every plugin's fake mounter: a pool
        // per plugin would hold up to (plugins x volumes in flight) sockets.
        let http = reqwest::Client::new();
        let plugins = PluginConfigs {
            clusters: parsed,
            backend: l.backend,
            timeouts,
            // A real cluster's volumes are mounted for real.
            mounter: if ceph.is_real() {
                MounterKind::Fuse
            } else {
                MounterKind::Fake
            },
        };
        let (controller, nodes) = start_plugins(&plugins, &l, root.path(), &http).await?;
        let baseline = Inventory::take(&ceph, FS_NAME, &GROUPS, manila.as_ref())
            .await
            .context("reading what the back ends hold")?;
        Ok(Self {
            root,
            backend: l.backend,
            cluster,
            ceph_server,
            ceph,
            monitors,
            os_auth_url: access.os_auth_url,
            manila_url: access.manila_url,
            manila,
            baseline,
            clusters,
            secrets: access.secrets,
            controller,
            nodes,
            servers,
            http,
            mount_http_timeout: timeouts.mount,
            manila_state,
            faults: FaultState {
                ceph_static: l.ceph_faults.rules.clone(),
                mds_down: l.ceph_faults.mds_down,
                manila_static: l.manila_faults.clone(),
                ..FaultState::default()
            },
        })
    }
}

/// Makes the embedded fake-ceph `l` describes (its data under `root/ceph`) and serves it
/// on a loopback port.
async fn start_ceph(
    l: &Launch,
    root: &Path,
) -> anyhow::Result<(fake_ceph::Cluster, CephServer, CephAccess)> {
    let config = fake_ceph::Config {
        seed: l.seed,
        data_dir: Some(root.join("ceph")),
        faults: l.ceph_faults.clone(),
        metadata: if l.durable_ceph {
            fake_ceph::Metadata::Durable
        } else {
            fake_ceph::Metadata::InMemory
        },
        ..Default::default()
    };
    let cluster = fake_ceph::Cluster::new(config.clone()).context("fake-ceph")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a loopback port")?;
    let addr = listener.local_addr()?;
    let task = spawn_ceph(&cluster, listener);
    let ceph = CephAccess::new(&format!("http://{addr}"), &cluster.admin_key())?;
    let server = CephServer {
        config,
        addr,
        task,
        restarts: 0,
    };
    Ok((cluster, server, ceph))
}

/// Checks that `ceph` has the file system [`FS_NAME`], creates the CSI subvolume group in
/// it, and returns its monitors.
async fn prepare_ceph(ceph: &CephAccess) -> anyhow::Result<Vec<String>> {
    let fs_names = ceph.fs_names().await?;
    anyhow::ensure!(
        fs_names.iter().any(|f| f == FS_NAME),
        "the Ceph cluster at {} has no file system {FS_NAME:?} (it has {fs_names:?})",
        ceph.url()
    );
    ceph.command(
        Target::Mgr,
        json!({"prefix": "fs subvolumegroup create", "vol_name": FS_NAME,
               "group_name": SUBVOLUME_GROUP}),
    )
    .await
    .context("creating the csi subvolume group")?;
    ceph.monitors().await
}

/// The driver's cluster config: one cluster, [`CLUSTER_ID`], at `ceph`; with controller
/// credentials (CephFS back end), a keyring written under `root`.
fn cluster_config(
    l: &Launch,
    ceph: &CephAccess,
    monitors: &[String],
    root: &Path,
) -> anyhow::Result<serde_json::Value> {
    let admin = if ceph.is_real() {
        json!({"transport": "cli", "conf": ceph.url()})
    } else {
        json!({"transport": "http", "url": ceph.url()})
    };
    let mut clusters = json!([{"clusterID": CLUSTER_ID, "monitors": monitors,
                               "cephFS": {"subvolumeGroup": SUBVOLUME_GROUP},
                               "admin": admin}]);
    if l.controller_credentials && l.backend == StorageBackend::Cephfs {
        let keyring = write_keyring(root, ceph.admin_key())?;
        clusters[0]["controllerCredentials"] = json!({"userID": "admin", "keyFile": keyring});
    }
    Ok(clusters)
}

/// The driver's deadlines a scenario sets (`None`: the driver's defaults).
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    ceph: Option<Duration>,
    mount: Option<Duration>,
    manila_wait: Option<Duration>,
}

impl Timeouts {
    fn of(l: &Launch) -> Self {
        let ms = |v: Option<u64>| v.map(Duration::from_millis);
        Self {
            ceph: ms(l.timeouts.ceph_timeout_ms),
            mount: ms(l.timeouts.mount_timeout_ms),
            manila_wait: ms(l.timeouts.manila_wait_ms),
        }
    }
}

/// How the plugins reach the storage back end: the CSI secrets, Keystone's and Manila's
/// URLs, and an embedded fake-manila's state and serving task.
struct BackendAccess {
    os_auth_url: Option<String>,
    manila_url: Option<String>,
    secrets: HashMap<String, String>,
    manila_state: Option<fake_manila::AppState>,
    manila_task: Option<tokio::task::JoinHandle<()>>,
}

/// The back end's CSI secrets; with the Manila back end and no `external` one, a
/// fake-manila is started over `ceph`.
async fn backend_access(
    l: &Launch,
    external: Option<&External>,
    ceph: &CephAccess,
    ceph_timeout: Option<Duration>,
) -> anyhow::Result<BackendAccess> {
    Ok(match (l.backend, external) {
        (StorageBackend::Cephfs, _) => BackendAccess {
            os_auth_url: None,
            manila_url: None,
            secrets: HashMap::from([
                ("adminID".to_owned(), "admin".to_owned()),
                ("adminKey".to_owned(), ceph.admin_key().to_owned()),
            ]),
            manila_state: None,
            manila_task: None,
        },
        (StorageBackend::Manila, None) => {
            let (at, state, task) =
                serve_manila(l.seed, ceph, &l.manila_faults, ceph_timeout).await?;
            let secrets = manila_secrets(
                &at.auth_url,
                MANILA_USER,
                MANILA_USER,
                MANILA_USER,
                "Default",
            );
            BackendAccess {
                os_auth_url: Some(at.auth_url),
                manila_url: Some(at.manila_url),
                secrets,
                manila_state: Some(state),
                manila_task: Some(task),
            }
        }
        (StorageBackend::Manila, Some(x)) => {
            let url = x.os_auth_url.clone().context(
                "the manila back end needs the Keystone auth URL of a fake-manila \
                 (--os-auth-url, its first stdout line)",
            )?;
            let url = url.trim_end_matches('/').to_owned();
            let secrets = manila_secrets(
                &url,
                &x.os_user,
                &x.os_password,
                &x.os_project,
                &x.os_domain,
            );
            BackendAccess {
                os_auth_url: Some(url),
                manila_url: None,
                secrets,
                manila_state: None,
                manila_task: None,
            }
        }
    })
}

/// What every plugin's driver configuration shares.
struct PluginConfigs {
    clusters: Vec<driver::config::ClusterConfig>,
    backend: StorageBackend,
    timeouts: Timeouts,
    mounter: MounterKind,
}

impl PluginConfigs {
    /// The configuration of the plugin `node_id` in `mode`, its state under `dir`.
    fn config(&self, node_id: &str, mode: Mode, dir: &Path) -> Config {
        let mut c = Config::new(DRIVER_NAME, node_id, mode, self.clusters.clone());
        c.backend = match self.backend {
            StorageBackend::Cephfs => DriverBackend::Cephfs,
            StorageBackend::Manila => DriverBackend::Manila,
        };
        c.mounter = self.mounter;
        c.state_dir = dir.join("state");
        if let Some(t) = self.timeouts.ceph {
            c.ceph_timeout = t;
        }
        if let Some(t) = self.timeouts.mount {
            c.mount_timeout = t;
        }
        if let Some(t) = self.timeouts.manila_wait {
            c.manila_wait = t;
        }
        c
    }
}

/// Serves the controller plugin and one node plugin per node, each in its own directory
/// under `root`.
async fn start_plugins(
    plugins: &PluginConfigs,
    l: &Launch,
    root: &Path,
    http: &reqwest::Client,
) -> anyhow::Result<(Served, Vec<Served>)> {
    let mount_timeout = plugins.timeouts.mount;
    let cdir = root.join("controller");
    std::fs::create_dir_all(&cdir)?;
    let mut c = plugins.config("controller", Mode::Controller, &cdir);
    c.attach_required = l.attach_required;
    let (plugin, socket, channel) = serve(c.clone(), &cdir, http, mount_timeout).await?;
    let controller = Served {
        node_id: "controller".into(),
        dir: cdir,
        socket,
        channel,
        config: c,
        plugin: Some(plugin),
    };
    let mut nodes = Vec::new();
    for i in 0..l.nodes {
        let node_id = node_name(i);
        let dir = root.join(&node_id);
        std::fs::create_dir_all(&dir)?;
        let c = plugins.config(&node_id, Mode::Node, &dir);
        let (plugin, socket, channel) = serve(c.clone(), &dir, http, mount_timeout).await?;
        nodes.push(Served {
            node_id,
            dir,
            socket,
            channel,
            config: c,
            plugin: Some(plugin),
        });
    }
    Ok((controller, nodes))
}
