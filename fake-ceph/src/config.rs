//! How a fake cluster is started: [`Config`] and where its secrets come from
//! ([`SecretSource`]). A leaf: it names the parts' own configurations and nothing of the
//! running cluster.

use std::path::PathBuf;

use crate::fault::Faults;
use crate::mds_load::MdsConfig;
use crate::store::Metadata;
use crate::volumes::VolumesConfig;

/// Everything a fake cluster is started with. `Config::default()` is a healthy one-node
/// cluster with one file system named `cephfs`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file system (and `volumes` volume) name.
    pub fs_name: String,
    /// Where the CephFS tree lives; `None` is a temporary directory removed on drop.
    pub data_dir: Option<PathBuf>,
    /// The master seed: the fsid, UUIDs and fault decisions derive from it, and keys and
    /// session tokens too unless [`Config::secrets`] says otherwise.
    pub seed: u64,
    /// Where keys and session tokens come from.
    pub secrets: SecretSource,
    /// Monitor addresses reported by `mon dump` and in subvolume `mon_addrs`.
    pub mon_addrs: Vec<String>,
    /// A fixed `client.admin` key (base64); generated from the seed if `None`.
    pub admin_key: Option<String>,
    /// Raw capacity reported by `df` and by `statfs` of unquoted trees.
    pub capacity_bytes: u64,
    /// `volumes` module options and clone timing.
    pub volumes: VolumesConfig,
    /// The MDS model.
    pub mds: MdsConfig,
    /// Faults in force from the start.
    pub faults: Faults,
    /// The clock of timed transitions (clone progress).
    pub clock: crate::time::Clock,
    /// Where the metadata is kept: in memory (the default), or durably in the data dir
    /// ([`Metadata::Durable`], which needs [`Config::data_dir`]; what the binary uses
    /// with `--data-dir`).
    pub metadata: Metadata,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            fs_name: "cephfs".into(),
            data_dir: None,
            seed: 0,
            secrets: SecretSource::Seed,
            mon_addrs: vec!["127.0.0.1:6789".into()],
            admin_key: None,
            capacity_bytes: 1 << 40,
            volumes: VolumesConfig::default(),
            mds: MdsConfig::default(),
            faults: Faults::default(),
            clock: crate::time::Clock::System,
            metadata: Metadata::InMemory,
        }
    }
}

/// Where a cluster's secrets (cephx keys, session tokens) come from. Either way they
/// come from a stream of their own, never the one the fsid and UUIDs come from, so
/// nothing shown without credentials (`GET /`, `fsid`) derives from them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SecretSource {
    /// A stream of [`Config::seed`] of their own: one seed, the same keys (simulations,
    /// tests).
    #[default]
    Seed,
    /// The operating system's random source, drawn once at start to seed a CSPRNG: what
    /// a server started by hand uses (`fake-ceph` without `--seed`).
    Os,
}
