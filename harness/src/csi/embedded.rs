//! The running [`Embedded`] stack: where its parts answer, the faults it has in force,
//! kills and restarts of its plugins and of fake-ceph, the leak check, and its shutdown.
//! How it starts is in [`super::launch`]. Imports the other parts of [`super`], the
//! fakes, [`crate::inventory`] and [`crate::fault`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;
use tonic::transport::Channel;

use super::plugin::{PluginServer, Served, serve};
use super::workdir::OWNER_FILE;
use super::{FS_NAME, Leaks, SUBVOLUME_GROUP, StorageBackend, node_name};
use crate::fault::Plugin;
use crate::inventory::{CephAccess, Inventory, ManilaAccess};

/// The subvolume groups the leak check lists: the CSI group (CephFS back end) and Ceph's
/// default group (Manila's shares).
pub(super) const GROUPS: [Option<&str>; 2] = [Some(SUBVOLUME_GROUP), None];

/// The back ends (fake-ceph on loopback and, for the Manila back end, fake-manila on top
/// of it, or [`External`] ones), the driver's controller plugin and one node plugin per
/// node, each on its own Unix socket under one temporary directory (on `/dev/shm` when
/// there is one). Dropping it removes the directory; [`Embedded::shutdown`] stops the
/// servers first.
pub struct Embedded {
    pub(super) root: tempfile::TempDir,
    pub(super) backend: StorageBackend,
    /// The in-process fake-ceph; `None` with external back ends.
    pub(super) cluster: Option<fake_ceph::Cluster>,
    /// How the in-process fake-ceph was made and where it is served, to start it again.
    pub(super) ceph_server: Option<CephServer>,
    pub(super) ceph: CephAccess,
    pub(super) monitors: Vec<String>,
    /// Keystone's auth URL, with the Manila back end.
    pub(super) os_auth_url: Option<String>,
    /// Manila's endpoint, when the stack started fake-manila itself.
    pub(super) manila_url: Option<String>,
    pub(super) manila: Option<ManilaAccess>,
    /// What the back ends held when the plugins were up: the leak check counts only
    /// what is new since.
    pub(super) baseline: Inventory,
    pub(super) clusters: serde_json::Value,
    pub(super) secrets: HashMap<String, String>,
    pub(super) controller: Served,
    pub(super) nodes: Vec<Served>,
    pub(super) servers: Vec<tokio::task::JoinHandle<()>>,
    /// The fake mounters' shared connection pool to fake-ceph (restarted plugins use it
    /// too).
    pub(super) http: reqwest::Client,
    /// The fake mounters' deadline per call to fake-ceph.
    pub(super) mount_http_timeout: Option<Duration>,
    /// The embedded fake-manila's state (its faults are switched through it).
    pub(super) manila_state: Option<fake_manila::AppState>,
    /// The faults in force: the scenario's, and the windows a fault plan has open.
    pub(super) faults: FaultState,
}

/// The embedded fake-ceph's serving: its configuration, address and task (aborting the
/// task closes every connection to it, as a killed process's would be).
pub(super) struct CephServer {
    pub(super) config: fake_ceph::Config,
    pub(super) addr: std::net::SocketAddr,
    pub(super) task: tokio::task::JoinHandle<()>,
    /// Restarts so far.
    pub(super) restarts: u64,
}

/// Serves `cluster` on `listener` as the fake-ceph binary does (its connection limits
/// and timeouts), until the task is aborted.
pub(super) fn spawn_ceph(
    cluster: &fake_ceph::Cluster,
    listener: tokio::net::TcpListener,
) -> tokio::task::JoinHandle<()> {
    let app = fake_ceph::router(cluster.clone());
    tokio::spawn(async move {
        let _ = fake_ceph::service::serve(
            listener,
            app,
            fake_ceph::service::ServeConfig::default(),
            std::future::pending(),
        )
        .await;
    })
}

/// The faults an [`Embedded`] stack has in force, kept so that windows of different
/// kinds can open and close independently.
#[derive(Debug, Default)]
pub(super) struct FaultState {
    pub(super) ceph_static: Vec<fake_ceph::FaultRule>,
    pub(super) ceph_windows: BTreeMap<u32, Vec<fake_ceph::FaultRule>>,
    pub(super) mds_down: bool,
    pub(super) manila_static: fake_manila::Faults,
    pub(super) manila_windows: BTreeMap<u32, fake_manila::Faults>,
}

impl FaultState {
    fn ceph(&self) -> fake_ceph::Faults {
        let mut rules = self.ceph_static.clone();
        for w in self.ceph_windows.values() {
            rules.extend(w.iter().cloned());
        }
        fake_ceph::Faults {
            rules,
            mds_down: self.mds_down,
        }
    }

    /// Each rate the largest of the scenario's and the open windows'.
    fn manila(&self) -> fake_manila::Faults {
        let mut f = self.manila_static.clone();
        for w in self.manila_windows.values() {
            f.latency_ms = f.latency_ms.max(w.latency_ms);
            f.error_rate = f.error_rate.max(w.error_rate);
            f.stuck_creating_rate = f.stuck_creating_rate.max(w.stuck_creating_rate);
            f.share_error_rate = f.share_error_rate.max(w.share_error_rate);
            f.access_error_rate = f.access_error_rate.max(w.access_error_rate);
        }
        f
    }
}

impl std::fmt::Debug for Embedded {
    // Not derived: the secrets must not reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("root", &self.root.path())
            .field("backend", &self.backend)
            .field("ceph_url", &self.ceph.url())
            .field("external", &self.cluster.is_none())
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

impl Embedded {
    /// The temporary directory everything lives in.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// What provisions the volumes.
    pub fn backend(&self) -> StorageBackend {
        self.backend
    }

    /// fake-ceph's base URL.
    pub fn ceph_url(&self) -> &str {
        self.ceph.url()
    }

    /// fake-ceph's monitor addresses (as `mon dump` and export locations give them).
    pub fn monitors(&self) -> &[String] {
        &self.monitors
    }

    /// `client.admin`'s key at fake-ceph. A secret: never log it.
    pub fn ceph_admin_key(&self) -> &str {
        self.ceph.admin_key()
    }

    /// Keystone's auth URL (`.../v3`, what `os-authURL` holds), with the Manila back end.
    pub fn os_auth_url(&self) -> Option<&str> {
        self.os_auth_url.as_deref()
    }

    /// Manila's endpoint (its versions at `/`, the API under `/v2`), when this stack
    /// serves fake-manila itself; an external one is found through Keystone's catalog.
    pub fn manila_url(&self) -> Option<&str> {
        self.manila_url.as_deref()
    }

    /// The driver's cluster config (what `cephfs-csi --cluster-config` reads).
    pub fn cluster_config(&self) -> &serde_json::Value {
        &self.clusters
    }

    /// The CSI secrets of every call (provisioner and node-stage secret). Secrets: never
    /// log them.
    pub fn secrets(&self) -> &HashMap<String, String> {
        &self.secrets
    }

    /// The controller plugin's socket.
    pub fn controller_socket(&self) -> &Path {
        &self.controller.socket
    }

    /// Each node plugin's node ID, directory and socket.
    pub fn node_endpoints(&self) -> impl Iterator<Item = (&str, &Path, &Path)> {
        self.nodes
            .iter()
            .map(|n| (n.node_id.as_str(), n.dir.as_path(), n.socket.as_path()))
    }

    /// A channel to the controller plugin.
    pub fn controller_channel(&self) -> Channel {
        self.controller.channel.clone()
    }

    /// fake-ceph's MDS `perf dump` (`Null`, with a warning, when it cannot be read).
    pub async fn perf_dump(&self) -> serde_json::Value {
        match &self.cluster {
            Some(c) => c.perf_dump(),
            None => self.ceph.perf_dump(FS_NAME).await.unwrap_or_else(|e| {
                tracing::warn!("reading the MDS counters: {e:#}");
                serde_json::Value::Null
            }),
        }
    }

    /// The MDS sessions open at the in-process fake-ceph (`None` when it is external).
    pub fn session_count(&self) -> Option<usize> {
        self.cluster.as_ref().map(fake_ceph::Cluster::session_count)
    }

    fn served_mut(&mut self, which: Plugin) -> anyhow::Result<&mut Served> {
        match which {
            Plugin::Controller => Ok(&mut self.controller),
            Plugin::Node(i) => {
                let n = self.nodes.len();
                self.nodes
                    .get_mut(i)
                    .with_context(|| format!("no node {i} (the stack has {n})"))
            }
        }
    }

    /// Whether the plugin's server is running (not killed).
    pub fn is_running(&self, which: Plugin) -> bool {
        match which {
            Plugin::Controller => self.controller.plugin.is_some(),
            Plugin::Node(i) => self.nodes.get(i).is_some_and(|n| n.plugin.is_some()),
        }
    }

    /// Kills a plugin, as SIGKILL would: every connection to it breaks at once, which
    /// drops the handlers of the calls under way wherever they are (a Ceph command
    /// already sent is still carried out by fake-ceph; what the handler had not done yet
    /// is never done), and nothing answers on its socket until [`Embedded::restart`].
    /// Killing a killed plugin does nothing.
    pub async fn kill(&mut self, which: Plugin) -> anyhow::Result<()> {
        if let Some(p) = self.served_mut(which)?.plugin.take() {
            p.stop(true).await;
            tracing::info!(plugin = %which, "plugin killed");
        }
        Ok(())
    }

    /// Starts a new driver instance for a killed plugin, with the same configuration, on
    /// the same socket and state directory, and connects to it; returns the new channel.
    /// The driver keeps no state a restart loses (volumes and their journal are in Ceph,
    /// mounts in records under the state directory), which is what a soak checks.
    pub async fn restart(&mut self, which: Plugin) -> anyhow::Result<Channel> {
        let http = self.http.clone();
        let timeout = self.mount_http_timeout;
        let s = self.served_mut(which)?;
        anyhow::ensure!(s.plugin.is_none(), "the {which} plugin is running");
        let (plugin, _, channel) = serve(s.config.clone(), &s.dir.clone(), &http, timeout)
            .await
            .with_context(|| format!("restarting the {which} plugin"))?;
        s.plugin = Some(plugin);
        s.channel = channel.clone();
        tracing::info!(plugin = %which, "plugin restarted");
        Ok(channel)
    }

    /// A channel to a node plugin.
    pub fn node_channel(&self, i: usize) -> Option<Channel> {
        self.nodes.get(i).map(|n| n.channel.clone())
    }

    fn cluster_for_faults(&self) -> anyhow::Result<&fake_ceph::Cluster> {
        self.cluster.as_ref().context(
            "fake-ceph faults are switched on the embedded fake-ceph only (set an external \
             one's through its /admin/faults)",
        )
    }

    /// Opens (`Some`) or closes (`None`) fault window `window` of fake-ceph rules.
    pub fn set_ceph_window(
        &mut self,
        window: u32,
        rules: Option<Vec<fake_ceph::FaultRule>>,
    ) -> anyhow::Result<()> {
        self.cluster_for_faults()?;
        match rules {
            Some(r) => self.faults.ceph_windows.insert(window, r),
            None => self.faults.ceph_windows.remove(&window),
        };
        self.cluster_for_faults()?.set_faults(self.faults.ceph());
        Ok(())
    }

    /// Closes every fault window and brings the MDS back (the scenario's own faults
    /// stay).
    pub fn heal(&mut self) -> anyhow::Result<()> {
        if let Some(c) = &self.cluster {
            self.faults.ceph_windows.clear();
            self.faults.mds_down = false;
            c.set_faults(self.faults.ceph());
        }
        if let Some(m) = &self.manila_state {
            self.faults.manila_windows.clear();
            m.set_faults(self.faults.manila())
                .map_err(|e| anyhow::anyhow!("fake-manila faults: {e}"))?;
        }
        Ok(())
    }

    /// Takes the MDS down or brings it back.
    pub fn set_mds_down(&mut self, down: bool) -> anyhow::Result<()> {
        self.cluster_for_faults()?;
        self.faults.mds_down = down;
        self.cluster_for_faults()?.set_faults(self.faults.ceph());
        Ok(())
    }

    /// Opens (`Some`) or closes (`None`) window `window` of fake-manila faults.
    pub fn set_manila_window(
        &mut self,
        window: u32,
        faults: Option<fake_manila::Faults>,
    ) -> anyhow::Result<()> {
        let state = self.manila_state.as_ref().context(
            "fake-manila faults are switched on the embedded fake-manila only (a scenario \
             with backend manila)",
        )?;
        match faults {
            Some(f) => self.faults.manila_windows.insert(window, f),
            None => self.faults.manila_windows.remove(&window),
        };
        state
            .set_faults(self.faults.manila())
            .map_err(|e| anyhow::anyhow!("fake-manila faults: {e}"))
    }

    /// Evicts the MDS sessions of `node` (by the `hostname` a mount gives), or all, as
    /// `ceph tell <fs>:0 session evict [filters]` does; how many there were.
    pub async fn evict(&self, node: Option<usize>) -> anyhow::Result<usize> {
        let filters: Vec<String> = node
            .map(|i| vec![format!("client_metadata.hostname={}", node_name(i))])
            .unwrap_or_default();
        let ls = self
            .ceph
            .tell_mds(FS_NAME, json!({"prefix": "session ls", "filters": filters}))
            .await?;
        let n = ls.as_array().map_or(0, Vec::len);
        self.ceph
            .tell_mds(
                FS_NAME,
                json!({"prefix": "session evict", "filters": filters}),
            )
            .await?;
        Ok(n)
    }

    /// As an operator with Manila's admin role would: resets every share stuck in
    /// `creating` to `error` (`reset_status`), so that the driver's retry deletes it and
    /// makes another; how many. Uses fake-manila's default admin (`admin`/`admin`).
    pub async fn reset_stuck_shares(&self) -> anyhow::Result<usize> {
        let (Some(auth), Some(manila)) = (&self.os_auth_url, &self.manila_url) else {
            anyhow::bail!("no embedded fake-manila to reset shares on");
        };
        crate::inventory::reset_stuck_shares(auth, manila).await
    }

    /// Kills the embedded fake-ceph and starts it again on the same data directory and
    /// port, as a restart of the cluster's daemons would: every connection to it breaks
    /// (the calls under way get no answer), the new process recovers what the old one
    /// acknowledged from its durable metadata (volumes, cephx users, the driver's
    /// journal; the admin key and fsid stay), and MDS sessions are gone, as after an MDS
    /// failover. The faults in force (the scenario's and the open windows, the MDS down)
    /// are set again on the new instance. Needs [`Launch::durable_ceph`].
    pub async fn restart_ceph(&mut self) -> anyhow::Result<()> {
        self.cluster_for_faults()?;
        let server = self
            .ceph_server
            .as_mut()
            .context("no embedded fake-ceph to restart")?;
        anyhow::ensure!(
            server.config.metadata == fake_ceph::Metadata::Durable,
            "restarting fake-ceph needs its metadata kept on disk (Launch::durable_ceph): \
             a restart would lose every volume and the driver's journal"
        );
        // The kill: the serving task owns every connection task, so aborting it drops
        // them all; the old cluster goes with the last of them.
        server.task.abort();
        let _ = (&mut server.task).await;
        self.cluster = None;
        // The old instance's store is released when its last handle is dropped (aborted
        // connection tasks are dropped by the runtime soon after); until then the new
        // one is refused its lock.
        let deadline = Instant::now() + Duration::from_secs(10);
        let cluster = loop {
            match fake_ceph::Cluster::new(server.config.clone()) {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "fake-ceph not released yet");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(anyhow::Error::from(e).context("restarting fake-ceph")),
            }
        };
        anyhow::ensure!(
            cluster.admin_key() == self.ceph.admin_key(),
            "fake-ceph came back with another admin key"
        );
        let listener = loop {
            match tokio::net::TcpListener::bind(server.addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "fake-ceph's port not free yet");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => {
                    return Err(anyhow::Error::from(e)
                        .context(format!("binding fake-ceph's port {} again", server.addr)));
                }
            }
        };
        cluster.set_faults(self.faults.ceph());
        server.task = spawn_ceph(&cluster, listener);
        server.restarts += 1;
        self.cluster = Some(cluster);
        Ok(())
    }

    /// What the back ends hold now and did not hold when the stack was up, and what is
    /// left in the plugins' directories.
    pub async fn leaks(&self) -> Leaks {
        // On a real cluster sessions close after the fact: a ceph-fuse client ends
        // seconds after its unmount, and the mgr's `volumes` module keeps its own
        // sessions for a minute or so after a subvolume command. Sessions still open are
        // read again for up to two minutes before they count as leaked.
        let settle = if self.ceph.is_real() {
            Duration::from_secs(120)
        } else {
            Duration::ZERO
        };
        let started = Instant::now();
        let new = loop {
            let new =
                match Inventory::take(&self.ceph, FS_NAME, &GROUPS, self.manila.as_ref()).await {
                    Ok(now) => now.since(&self.baseline, self.manila.as_ref()).await,
                    Err(e) => Err(e),
                };
            match &new {
                Ok(n) if n.sessions > 0 && started.elapsed() < settle => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                _ => break new,
            }
        };
        let mut leaks = match new {
            Ok(n) => Leaks {
                mds_sessions: n.sessions,
                subvolumes: n.subvolumes,
                shares: n.shares,
                access_rules: n.access_rules,
                cephx_users: n.cephx_users,
                journal_entries: n.journal_entries,
                journal_objects: n.journal_objects,
                ..Leaks::default()
            },
            Err(e) => Leaks {
                error: Some(format!("{e:#}")),
                ..Leaks::default()
            },
        };
        for n in &self.nodes {
            leaks.mount_records += count_files(&n.dir.join("state").join("fake-mounts"));
            leaks.files += count_files(&n.dir);
        }
        leaks.files += count_files(&self.controller.dir);
        leaks.files -= leaks.mount_records;
        leaks.files += self.stray_files();
        leaks
    }

    /// Files in the run's temporary directory outside what is expected there: the
    /// owner file, fake-ceph's data directory, the harness's own keyring and the
    /// plugins' directories (counted on their own).
    fn stray_files(&self) -> usize {
        let Ok(rd) = std::fs::read_dir(self.root.path()) else {
            return 0;
        };
        let plugin_dirs: BTreeSet<PathBuf> = std::iter::once(&self.controller)
            .chain(&self.nodes)
            .map(|s| s.dir.clone())
            .collect();
        let mut n = 0;
        for e in rd.flatten() {
            let name = e.file_name();
            if name == OWNER_FILE || name == "ceph" || name == "keys" {
                continue;
            }
            let path = e.path();
            if plugin_dirs.contains(&path) {
                continue;
            }
            n += if path.is_dir() { count_files(&path) } else { 1 };
        }
        n
    }

    /// What the back ends hold now (a checkpoint of a soak), read over the wire.
    pub async fn inventory(&self) -> anyhow::Result<Inventory> {
        Inventory::take(&self.ceph, FS_NAME, &GROUPS, self.manila.as_ref()).await
    }

    /// Stops every plugin, then fake-manila and fake-ceph, and removes the directory.
    pub async fn shutdown(mut self) {
        let mut running: Vec<PluginServer> = std::iter::once(&mut self.controller)
            .chain(self.nodes.iter_mut())
            .filter_map(|s| s.plugin.take())
            .collect();
        for p in &mut running {
            p.ask_to_stop();
        }
        for p in running {
            p.stop(false).await;
        }
        for s in self.servers.drain(..) {
            s.abort();
            let _ = s.await;
        }
        if let Some(c) = self.ceph_server.take() {
            c.task.abort();
            let _ = c.task.await;
        }
        let path = self.root.path().to_owned();
        // What teardown did not unmount (a failed run) goes before the tree does.
        let left = super::workdir::unmount_under(&path);
        if left > 0 {
            tracing::warn!(mounts = left, "unmounted what the run left mounted");
        }
        if let Err(e) = self.root.close() {
            tracing::warn!("removing {}: {e}", path.display());
        }
    }
}

/// Regular files (not sockets or directories) under `dir`.
fn count_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            n += count_files(&e.path());
        } else if ft.is_file() || ft.is_symlink() {
            n += 1;
        }
    }
    n
}
