//! Configuration: the driver's settings and the cluster config file (a JSON list of
//! clusters, like ceph-csi's `config.json`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::volume_id::valid_cluster_id;

/// The defaults of [`Config::new`], which are also the `cephfs-csi` flags' defaults.
pub mod defaults {
    /// The CSI driver name.
    pub const DRIVER_NAME: &str = "cephfs.csi.trainride";
    /// Seconds the Manila back end waits within one RPC.
    pub const MANILA_WAIT_S: u64 = 60;
    /// Seconds CreateVolume waits for a clone within one RPC. A small clone takes 6 to
    /// 18 s on real Pacific here; the caller's deadline caps the wait further (the
    /// external-provisioner's --timeout).
    pub const CLONE_WAIT_S: u64 = 60;
    /// Seconds of every Ceph call's deadline.
    pub const CEPH_TIMEOUT_S: u64 = 30;
    /// Seconds of every mount's deadline.
    pub const MOUNT_TIMEOUT_S: u64 = 60;
    /// Where the node keeps its records (fake mounts, single-writer claims).
    pub const STATE_DIR: &str = "/var/lib/cephfs-csi";
}

/// Which services the process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Identity + Controller.
    Controller,
    /// Identity + Node.
    Node,
    /// Identity + Controller + Node.
    All,
}

impl Mode {
    /// Whether the controller service runs.
    pub fn controller(self) -> bool {
        matches!(self, Mode::Controller | Mode::All)
    }

    /// Whether the node service runs.
    pub fn node(self) -> bool {
        matches!(self, Mode::Node | Mode::All)
    }
}

/// What the controller provisions volumes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Backend {
    /// Subvolumes through the Ceph admin interface (the cluster config).
    #[default]
    Cephfs,
    /// Shares through OpenStack Manila (credentials in the CSI secrets).
    Manila,
}

/// Which mounter a node uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MounterKind {
    /// `mount -t ceph`.
    Kernel,
    /// `ceph-fuse`.
    Fuse,
    /// Sessions on fake-ceph, bound or symlinked at the target.
    Fake,
}

/// Everything a driver instance runs with. Defaults live in [`defaults`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The CSI driver name (GetPluginInfo).
    pub driver_name: String,
    /// This node's ID (NodeGetInfo); required in node mode.
    pub node_id: String,
    /// Which services to serve.
    pub mode: Mode,
    /// What the controller provisions from.
    pub backend: Backend,
    /// How long the Manila back end waits for a share, rule or snapshot to settle
    /// within one RPC (a retry waits again).
    pub manila_wait: Duration,
    /// How long CreateVolume waits for a clone to complete within one RPC (a retry
    /// waits again).
    pub clone_wait: Duration,
    /// The clusters this driver may reach.
    pub clusters: Vec<ClusterConfig>,
    /// The node's default mounter (a StorageClass `mounter` parameter overrides it).
    pub mounter: MounterKind,
    /// Advertise PUBLISH_UNPUBLISH_VOLUME and implement ControllerPublish/Unpublish.
    pub attach_required: bool,
    /// Deadline of every call to a Ceph backend.
    pub ceph_timeout: Duration,
    /// Deadline of every mount or unmount.
    pub mount_timeout: Duration,
    /// Where the node keeps records of its mounts (fake mounter) across restarts.
    pub state_dir: PathBuf,
    /// The journal instance suffix (ceph-csi's `--instanceid`).
    pub instance_id: String,
    /// Most volumes a node may have staged (NodeGetInfo.max_volumes_per_node; 0 = no limit).
    pub max_volumes_per_node: i64,
    /// The node's topology segments (NodeGetInfo.accessible_topology), full keys.
    pub topology: std::collections::BTreeMap<String, String>,
}

impl Config {
    /// A config with the defaults and the given name, node and clusters.
    pub fn new(driver_name: &str, node_id: &str, mode: Mode, clusters: Vec<ClusterConfig>) -> Self {
        Self {
            driver_name: driver_name.to_owned(),
            node_id: node_id.to_owned(),
            mode,
            backend: Backend::Cephfs,
            manila_wait: Duration::from_secs(defaults::MANILA_WAIT_S),
            clone_wait: Duration::from_secs(defaults::CLONE_WAIT_S),
            clusters,
            mounter: MounterKind::Kernel,
            attach_required: false,
            ceph_timeout: Duration::from_secs(defaults::CEPH_TIMEOUT_S),
            mount_timeout: Duration::from_secs(defaults::MOUNT_TIMEOUT_S),
            state_dir: PathBuf::from(defaults::STATE_DIR),
            instance_id: "default".to_owned(),
            max_volumes_per_node: 0,
            topology: Default::default(),
        }
    }

    /// The cluster with this ID.
    pub fn cluster(&self, id: &str) -> Option<&ClusterConfig> {
        self.clusters.iter().find(|c| c.cluster_id == id)
    }
}

/// One cluster of the cluster config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfig {
    /// The cluster ID StorageClasses name (`clusterID`).
    #[serde(rename = "clusterID")]
    pub cluster_id: String,
    /// Monitor addresses.
    pub monitors: Vec<String>,
    /// CephFS settings.
    #[serde(default, rename = "cephFS")]
    pub ceph_fs: CephFsConfig,
    /// How the controller reaches the cluster's admin interface.
    pub admin: AdminConfig,
    /// Credentials the controller may use for the RPCs that carry no secrets
    /// (ListVolumes, GetCapacity, ControllerGetVolume). Without them those RPCs are not
    /// advertised.
    #[serde(default)]
    pub controller_credentials: Option<StandingCredentials>,
    /// Credentials node plugins use to record themselves in the cluster's node registry
    /// when they answer NodeGetInfo (`registry.rs`). With them, a controller that
    /// requires attach answers ControllerPublishVolume to an unregistered node with
    /// NotFound; without them, there is no registry and any node ID is taken.
    #[serde(default)]
    pub node_credentials: Option<StandingCredentials>,
}

/// A cephx user whose key lives in a file (a mounted Kubernetes Secret, say).
#[derive(Debug, Clone, Deserialize)]
pub struct StandingCredentials {
    /// The user, without `client.`.
    #[serde(rename = "userID")]
    pub user_id: String,
    /// A file holding the key: the bare base64 key, or a keyring with `key = ...`.
    #[serde(rename = "keyFile")]
    pub key_file: PathBuf,
}

impl StandingCredentials {
    /// Reads the key now (it may have been rotated since start).
    pub fn read(&self) -> std::io::Result<crate::ceph::Credentials> {
        let text = std::fs::read_to_string(&self.key_file)?;
        let key = text
            .lines()
            .find_map(|l| {
                let l = l.trim();
                if l.is_empty() || l.starts_with('[') {
                    return None;
                }
                if let Some((k, v)) = l.split_once('=')
                    && k.trim() == "key"
                {
                    return Some(v.trim().to_owned());
                }
                // A bare key: base64, whose only '=' are the padding at its end.
                (!l.trim_end_matches('=').contains(['=', ' '])).then(|| l.to_owned())
            })
            .ok_or_else(|| {
                std::io::Error::other(format!("no key in {}", self.key_file.display()))
            })?;
        Ok(crate::ceph::Credentials::new(&self.user_id, key))
    }
}

/// CephFS settings of a cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CephFsConfig {
    /// The subvolume group volumes are created in.
    #[serde(default = "default_group")]
    pub subvolume_group: String,
    /// The RADOS namespace of the journal.
    #[serde(default = "default_group")]
    pub rados_namespace: String,
    /// Kernel mount options added to every mount.
    #[serde(default)]
    pub kernel_mount_options: String,
    /// ceph-fuse options added to every mount.
    #[serde(default)]
    pub fuse_mount_options: String,
}

impl Default for CephFsConfig {
    fn default() -> Self {
        Self {
            subvolume_group: default_group(),
            rados_namespace: default_group(),
            kernel_mount_options: String::new(),
            fuse_mount_options: String::new(),
        }
    }
}

fn default_group() -> String {
    "csi".to_owned()
}

/// The admin transport of a cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "transport", rename_all = "lowercase")]
pub enum AdminConfig {
    /// Ceph command JSON over HTTP (`POST <url>/request`), as fake-ceph serves it.
    Http {
        /// The base URL.
        url: String,
    },
    /// The `ceph` and `rados` commands with a config file, as a real cluster is reached.
    Cli {
        /// The `ceph.conf` path (monitor addresses and client settings; no keyring is
        /// needed, the credentials come from the CSI secrets).
        conf: PathBuf,
        /// The `ceph` command (default: `ceph` on `PATH`).
        #[serde(default)]
        ceph: Option<PathBuf>,
        /// The `rados` command (default: `rados` on `PATH`).
        #[serde(default)]
        rados: Option<PathBuf>,
    },
}

/// A malformed cluster config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON of the expected shape.
    #[error("cluster config: {0}")]
    Parse(#[from] serde_json::Error),
    /// A value is out of range.
    #[error("cluster config: {0}")]
    Invalid(String),
}

/// Parses and checks a cluster config file's contents.
pub fn parse_clusters(text: &str) -> Result<Vec<ClusterConfig>, ConfigError> {
    let clusters: Vec<ClusterConfig> = serde_json::from_str(text)?;
    for c in &clusters {
        if !valid_cluster_id(&c.cluster_id) {
            return Err(ConfigError::Invalid(format!(
                "clusterID '{}' must be 1 to 36 characters of [A-Za-z0-9._-]",
                c.cluster_id
            )));
        }
        if c.monitors.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "cluster '{}' has no monitors",
                c.cluster_id
            )));
        }
    }
    let mut ids: Vec<&str> = clusters.iter().map(|c| c.cluster_id.as_str()).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(ConfigError::Invalid("duplicate clusterID".into()));
    }
    Ok(clusters)
}

/// Parses `zone=z1,rack=r2` into topology segments keyed `topology.<driver>/zone`, ...
/// Keys and values follow Kubernetes label syntax (63 characters at most, alphanumerics
/// and `-_.` inside, alphanumeric at both ends; values may be empty).
pub fn parse_topology(
    driver_name: &str,
    spec: &str,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    fn label_ok(s: &str) -> bool {
        s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.bytes().next().is_none_or(|b| b.is_ascii_alphanumeric())
            && s.bytes().last().is_none_or(|b| b.is_ascii_alphanumeric())
    }
    let mut out = std::collections::BTreeMap::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("topology segment '{part}' is not key=value"))?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() || !label_ok(k) {
            return Err(format!("invalid topology key '{k}'"));
        }
        if !label_ok(v) {
            return Err(format!("invalid topology value '{v}' for '{k}'"));
        }
        if out
            .insert(format!("topology.{driver_name}/{k}"), v.to_owned())
            .is_some()
        {
            return Err(format!("topology key '{k}' given twice"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {

    #[test]
    fn key_files_hold_a_bare_key_or_a_keyring() {
        let dir = tempfile::tempdir().unwrap();
        let key = "AQDOPQhrt4AXFxAARwNLKvMGnDFYF9oDQRFGug==";
        for (name, text) in [
            // As `ceph auth get-key` writes it: no newline.
            ("bare", key.to_owned()),
            ("bare-nl", format!("{key}\n")),
            (
                "keyring",
                format!("[client.admin]\n\tkey = {key}\n\tcaps mon = \"allow *\"\n"),
            ),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let c = StandingCredentials {
                user_id: "client.admin".into(),
                key_file: path,
            }
            .read()
            .unwrap();
            assert_eq!((c.id.as_str(), c.key()), ("admin", key), "{name}");
        }
        let path = dir.path().join("empty");
        std::fs::write(&path, "[client.admin]\n").unwrap();
        let e = StandingCredentials {
            user_id: "admin".into(),
            key_file: path,
        }
        .read()
        .unwrap_err();
        assert!(e.to_string().contains("no key"), "{e}");
    }

    use super::*;

    #[test]
    fn parses_the_documented_shape() {
        let c = parse_clusters(
            r#"[{"clusterID": "c1", "monitors": ["127.0.0.1:6789"], "cephFS": {"subvolumeGroup": "csi"},
                 "admin": {"transport": "http", "url": "http://127.0.0.1:1234"}},
                {"clusterID": "real", "monitors": ["10.0.0.1:6789"],
                 "admin": {"transport": "cli", "conf": "/etc/ceph/ceph.conf"}}]"#,
        )
        .unwrap();
        assert_eq!(c[0].ceph_fs.subvolume_group, "csi");
        assert_eq!(c[1].ceph_fs.rados_namespace, "csi");
        assert!(matches!(&c[0].admin, AdminConfig::Http { url } if url == "http://127.0.0.1:1234"));
        assert!(matches!(&c[1].admin, AdminConfig::Cli { .. }));
    }

    #[test]
    fn refuses_bad_configs() {
        for bad in [
            "{}",
            r#"[{"clusterID": "", "monitors": ["m"], "admin": {"transport": "http", "url": "u"}}]"#,
            r#"[{"clusterID": "../x", "monitors": ["m"], "admin": {"transport": "http", "url": "u"}}]"#,
            r#"[{"clusterID": "c", "monitors": [], "admin": {"transport": "http", "url": "u"}}]"#,
            r#"[{"clusterID": "c", "monitors": ["m"], "admin": {"transport": "smoke"}}]"#,
            r#"[{"clusterID": "c", "monitors": ["m"], "admin": {"transport": "http", "url": "u"}},
                {"clusterID": "c", "monitors": ["m"], "admin": {"transport": "http", "url": "u"}}]"#,
        ] {
            assert!(parse_clusters(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn topology_segments_are_prefixed_and_validated() {
        let t = parse_topology("cephfs.csi.trainride", "zone=z1, rack=r-2").unwrap();
        assert_eq!(
            t.into_iter().collect::<Vec<_>>(),
            vec![
                (
                    "topology.cephfs.csi.trainride/rack".to_owned(),
                    "r-2".to_owned()
                ),
                (
                    "topology.cephfs.csi.trainride/zone".to_owned(),
                    "z1".to_owned()
                ),
            ]
        );
        assert!(parse_topology("d", "").unwrap().is_empty());
        for bad in [
            "zone",
            "=z",
            "zone=a/b",
            "zone=-a",
            "zone=a,zone=b",
            "k k=v",
        ] {
            assert!(parse_topology("d", bad).is_err(), "{bad}");
        }
    }
}
