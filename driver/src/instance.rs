//! The state one driver instance shares between its services: config, one admin
//! transport per cluster, operation locks, mounters, metrics. Nothing here outlives the
//! process, and nothing needs to: volumes live in Ceph, mounts in the kernel (or in the
//! fake mounter's records on disk).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use tonic::{Code, Status};

use crate::ceph::cli::CliTransport;
use crate::ceph::http::HttpTransport;
use crate::ceph::{Admin, CephError, Credentials, Transport};
use crate::config::{AdminConfig, ClusterConfig, Config, MounterKind};
use crate::locks::Locks;
use crate::metrics::Metrics;
use crate::mount::Mounter;

/// One driver instance. Cheap to share (`Arc`); the harness runs many in one process.
#[derive(Debug)]
pub struct Driver {
    /// The configuration.
    pub config: Config,
    transports: HashMap<String, Arc<dyn Transport>>,
    /// Locks on request names and volume IDs.
    pub locks: Locks,
    /// The node's mounters by kind.
    pub mounters: BTreeMap<&'static str, Arc<dyn Mounter>>,
    /// Prometheus metrics of this instance.
    pub metrics: Metrics,
    /// The last readiness check and when it was made.
    readiness: parking_lot::Mutex<Option<(Instant, bool)>>,
    /// The Manila client state (HTTP client, token cache), made on first use.
    manila: std::sync::OnceLock<crate::manila::Backend>,
    /// File systems looked up recently: (cluster, name) -> (FSCID, metadata pool, when).
    /// A cache only: every entry can be looked up again, and expires.
    fs_cache: parking_lot::Mutex<HashMap<FsKey, FsEntry>>,
}

/// (cluster ID, file system name).
type FsKey = (String, String);
/// (FSCID, metadata pool, when looked up).
type FsEntry = (i64, String, Instant);

/// How long a file system lookup is trusted.
const FS_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

impl Driver {
    /// Builds a driver: a transport per cluster and the mounters the node may use.
    pub fn new(config: Config, mounters: Vec<Arc<dyn Mounter>>) -> Result<Self, CephError> {
        let mut transports: HashMap<String, Arc<dyn Transport>> = HashMap::new();
        for c in &config.clusters {
            let t: Arc<dyn Transport> = match &c.admin {
                AdminConfig::Http { url } => Arc::new(HttpTransport::new(url)?),
                AdminConfig::Cli { conf, ceph, rados } => Arc::new(CliTransport::new(
                    conf,
                    &c.monitors,
                    ceph.as_deref(),
                    rados.as_deref(),
                )),
            };
            transports.insert(c.cluster_id.clone(), t);
        }
        Ok(Self {
            config,
            transports,
            locks: Locks::default(),
            mounters: mounters.into_iter().map(|m| (m.name(), m)).collect(),
            metrics: Metrics::new(),
            readiness: parking_lot::Mutex::new(None),
            manila: std::sync::OnceLock::new(),
            fs_cache: parking_lot::Mutex::new(HashMap::new()),
        })
    }

    /// The cluster config and transport of a cluster ID.
    pub fn cluster(&self, id: &str) -> Result<(&ClusterConfig, &dyn Transport), Status> {
        let c = self
            .config
            .cluster(id)
            .ok_or_else(|| Status::invalid_argument(format!("unknown clusterID '{id}'")))?;
        let t = self
            .transports
            .get(id)
            .ok_or_else(|| Status::invalid_argument(format!("unknown clusterID '{id}'")))?;
        Ok((c, t.as_ref()))
    }

    /// Typed operations on a cluster with some credentials.
    pub fn admin<'a>(&'a self, t: &'a dyn Transport, creds: &'a Credentials) -> Admin<'a> {
        Admin {
            transport: t,
            creds,
            timeout: self.config.ceph_timeout,
            metrics: Some(&self.metrics),
        }
    }

    /// The mounter for a volume: the fake one always in fake mode (the simulator), else
    /// the volume's `mounter` parameter if this node has it, else the default.
    pub fn mounter(&self, requested: Option<&str>) -> Result<Arc<dyn Mounter>, Status> {
        let default = match self.config.mounter {
            MounterKind::Kernel => "kernel",
            MounterKind::Fuse => "fuse",
            MounterKind::Fake => "fake",
        };
        let name = match requested {
            Some(r) if default != "fake" && self.mounters.contains_key(r) => r,
            _ => default,
        };
        self.mounters.get(name).cloned().ok_or_else(|| {
            Status::failed_precondition(format!("mounter '{name}' is not available"))
        })
    }

    /// The FSCID and metadata pool of a file system, from the cache or from Ceph
    /// (`fs dump`, `fs ls`).
    pub async fn fs_by_name(
        &self,
        cluster: &str,
        admin: &Admin<'_>,
        fs: &str,
    ) -> Result<(i64, String), CephError> {
        let key = (cluster.to_owned(), fs.to_owned());
        if let Some((id, pool, at)) = self.fs_cache.lock().get(&key).cloned()
            && at.elapsed() < FS_CACHE_TTL
        {
            return Ok((id, pool));
        }
        let id = admin.fscid(fs).await?;
        let pool = admin.metadata_pool(fs).await?;
        self.fs_cache
            .lock()
            .insert(key, (id, pool.clone(), Instant::now()));
        Ok((id, pool))
    }

    /// The name and metadata pool of the file system with this FSCID, cached likewise.
    pub async fn fs_by_id(
        &self,
        cluster: &str,
        admin: &Admin<'_>,
        fscid: i64,
    ) -> Result<(String, String), CephError> {
        let hit = self
            .fs_cache
            .lock()
            .iter()
            .find(|((c, _), (id, _, at))| {
                c == cluster && *id == fscid && at.elapsed() < FS_CACHE_TTL
            })
            .map(|((_, name), (_, pool, _))| (name.clone(), pool.clone()));
        if let Some(hit) = hit {
            return Ok(hit);
        }
        let name = admin.fs_name(fscid).await?;
        let pool = admin.metadata_pool(&name).await?;
        self.fs_cache.lock().insert(
            (cluster.to_owned(), name.clone()),
            (fscid, pool.clone(), Instant::now()),
        );
        Ok((name, pool))
    }

    /// The mounters to try on a path whose mounter is not known (unpublish, unstage,
    /// stats): only the fake one in fake mode (the simulator never uses the others), else
    /// the default first.
    pub fn mounters_in_order(&self) -> Vec<Arc<dyn Mounter>> {
        let first = match self.config.mounter {
            MounterKind::Fake => return self.mounters.get("fake").cloned().into_iter().collect(),
            MounterKind::Kernel => "kernel",
            MounterKind::Fuse => "fuse",
        };
        let mut v: Vec<Arc<dyn Mounter>> = self.mounters.get(first).cloned().into_iter().collect();
        v.extend(
            self.mounters
                .iter()
                .filter(|(n, _)| **n != first && **n != "fake")
                .map(|(_, m)| m.clone()),
        );
        v
    }

    /// Whether every cluster's admin interface answers. The answer is kept for a second:
    /// probes come often and should not each cost a round trip to Ceph.
    pub async fn reachable(&self) -> bool {
        const FRESH: std::time::Duration = std::time::Duration::from_secs(1);
        if let Some((at, ok)) = *self.readiness.lock()
            && at.elapsed() < FRESH
        {
            return ok;
        }
        let mut ok = true;
        for t in self.transports.values() {
            if !t
                .reachable(
                    self.config
                        .ceph_timeout
                        .min(std::time::Duration::from_secs(5)),
                )
                .await
            {
                ok = false;
                break;
            }
        }
        *self.readiness.lock() = Some((Instant::now(), ok));
        ok
    }

    /// The Manila back end (for the Manila controller, and for nodes staging Manila
    /// volumes whatever the controller's back end).
    pub fn manila(&self) -> Result<&crate::manila::Backend, Status> {
        if let Some(b) = self.manila.get() {
            return Ok(b);
        }
        let b = crate::manila::Backend::new(self.config.ceph_timeout)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(self.manila.get_or_init(|| b))
    }

    /// Records an RPC's outcome in the metrics and the log (never its request).
    /// Counts and logs a call's outcome (in the call's span, which names the volume).
    pub fn observe<T>(&self, method: &'static str, started: Instant, r: &Result<T, Status>) {
        let code = match r {
            Ok(_) => Code::Ok,
            Err(s) => s.code(),
        };
        self.metrics.rpc(method, code, started.elapsed());
        match r {
            Ok(_) => tracing::debug!(took_ms = started.elapsed().as_millis() as u64, "ok"),
            Err(s) => tracing::info!(code = ?s.code(), message = s.message(), "failed"),
        }
    }
}

/// Credentials from CSI secrets: `userID`/`userKey`, else `adminID`/`adminKey`.
pub fn credentials(
    secrets: &std::collections::HashMap<String, String>,
) -> Result<Credentials, Status> {
    let pick = |id: &str, key: &str| {
        let i = secrets.get(id).filter(|s| !s.is_empty())?;
        let k = secrets.get(key).filter(|s| !s.is_empty())?;
        Some(Credentials::new(i, k.as_str()))
    };
    pick("userID", "userKey")
        .or_else(|| pick("adminID", "adminKey"))
        .ok_or_else(|| {
            Status::invalid_argument(
                "secrets must hold userID and userKey, or adminID and adminKey",
            )
        })
}
