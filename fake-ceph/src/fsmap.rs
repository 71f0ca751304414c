//! The cluster maps: monitors, pools, file systems, and the commands that show them
//! (`fs ls`, `fs dump`, `fs volume ls`, `mon dump`, `quorum_status`, `status`, `health`,
//! `osd pool ls`, `df`, `version`).

use serde_json::{Value, json};

use crate::cephx::PoolTags;
use crate::error::{CephError, CephResult};
use crate::time::{ceph_stamp, now_unix};

/// The version string the fake reports; its output shapes follow this release.
pub const CEPH_VERSION: &str =
    "ceph version 16.2.15 (618f440892089921c3e944a991122ddc44e60516) pacific (stable)";

/// CephFS's default `max_file_size` (1 TiB): what `fs get` reports and the MDS enforces.
pub const MAX_FILE_SIZE: u64 = 1 << 40;

/// A RADOS pool.
#[derive(Debug, Clone)]
pub struct Pool {
    /// Pool id.
    pub id: i64,
    /// Pool name.
    pub name: String,
    /// Application tags (`cephfs data=<fs>`), for OSD `tag` caps.
    pub tags: PoolTags,
}

/// A CephFS file system in the FSMap.
#[derive(Debug, Clone)]
pub struct Filesystem {
    /// The FSCID.
    pub id: i64,
    /// The name (also the `volumes` volume name).
    pub name: String,
    /// Metadata pool id.
    pub metadata_pool: i64,
    /// Data pool ids; the first is the default.
    pub data_pools: Vec<i64>,
    /// The GID of its active MDS.
    pub mds_gid: u64,
    /// The MDS daemon name.
    pub mds_name: String,
}

/// Monitors, pools and file systems.
#[derive(Debug, Clone)]
pub struct Maps {
    /// The cluster fsid.
    pub fsid: String,
    /// Monitor addresses (`ip:port`, v1).
    pub mon_addrs: Vec<String>,
    /// Pools by id order.
    pub pools: Vec<Pool>,
    /// File systems.
    pub filesystems: Vec<Filesystem>,
    /// The FSMap epoch.
    pub fsmap_epoch: u64,
    /// When the maps were created.
    pub created: std::time::Duration,
}

impl Maps {
    /// A cluster with one file system named `fs_name` and its two pools.
    pub fn new(fsid: String, mon_addrs: Vec<String>, fs_name: &str) -> Self {
        let meta = format!("cephfs.{fs_name}.meta");
        let data = format!("cephfs.{fs_name}.data");
        let tag = |k: &str| PoolTags {
            tags: vec![("cephfs".into(), k.into(), fs_name.into())],
        };
        Self {
            fsid,
            mon_addrs,
            pools: vec![
                Pool {
                    id: 1,
                    name: "device_health_metrics".into(),
                    tags: PoolTags {
                        tags: vec![("mgr_devicehealth".into(), "".into(), "".into())],
                    },
                },
                Pool {
                    id: 2,
                    name: meta,
                    tags: tag("metadata"),
                },
                Pool {
                    id: 3,
                    name: data,
                    tags: tag("data"),
                },
            ],
            filesystems: vec![Filesystem {
                id: 1,
                name: fs_name.to_owned(),
                metadata_pool: 2,
                data_pools: vec![3],
                mds_gid: 4_113,
                mds_name: "a".into(),
            }],
            fsmap_epoch: 4,
            created: now_unix(),
        }
    }

    /// A file system by name, or Ceph's ENOENT for a volume.
    pub fn fs(&self, name: &str) -> CephResult<&Filesystem> {
        self.filesystems
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| CephError::noent(format!("volume '{name}' does not exist")))
    }

    /// A pool by id.
    pub fn pool(&self, id: i64) -> Option<&Pool> {
        self.pools.iter().find(|p| p.id == id)
    }

    /// A pool by name.
    pub fn pool_by_name(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    pub(crate) fn pool_name(&self, id: i64) -> String {
        self.pool(id).map(|p| p.name.clone()).unwrap_or_default()
    }

    fn addrvec(addr: &str) -> Value {
        let (ip, _) = addr.rsplit_once(':').unwrap_or((addr, "6789"));
        json!({"addrvec": [
            {"type": "v2", "addr": format!("{ip}:3300"), "nonce": 0},
            {"type": "v1", "addr": addr, "nonce": 0},
        ]})
    }

    /// The `mon dump` JSON.
    pub fn monmap_json(&self) -> Value {
        let mons: Vec<Value> = self
            .mon_addrs
            .iter()
            .enumerate()
            .map(|(rank, addr)| {
                json!({
                    "rank": rank,
                    "name": mon_name(rank),
                    "public_addrs": Self::addrvec(addr),
                    "addr": format!("{addr}/0"),
                    "public_addr": format!("{addr}/0"),
                    "priority": 0,
                    "weight": 0,
                    "crush_location": "{}",
                })
            })
            .collect();
        let stamp = crate::time::ceph_stamp_z(self.created);
        json!({
            "epoch": 1,
            "fsid": self.fsid,
            "modified": stamp,
            "created": stamp,
            "min_mon_release": 16,
            "min_mon_release_name": "pacific",
            "election_strategy": 1,
            "disallowed_leaders: ": "",
            "stretch_mode": false,
            "tiebreaker_mon": "",
            "removed_ranks: ": "",
            "features": {
                "persistent": ["kraken", "luminous", "mimic", "osdmap-prune", "nautilus", "octopus", "pacific", "elector-pinging"],
                "optional": []
            },
            "mons": mons,
            "quorum": (0..self.mon_addrs.len()).collect::<Vec<_>>(),
        })
    }

    pub(crate) fn mdsmap_json(&self, f: &Filesystem, mds_up: bool) -> Value {
        let addr = self
            .mon_addrs
            .first()
            .map_or("127.0.0.1:6789", |s| s.as_str());
        let ip = addr.rsplit_once(':').map_or(addr, |(ip, _)| ip);
        let gid_key = format!("gid_{}", f.mds_gid);
        let (up, info, in_) = if mds_up {
            (
                json!({"mds_0": f.mds_gid}),
                json!({ gid_key: {
                    "gid": f.mds_gid,
                    "name": f.mds_name,
                    "rank": 0,
                    "incarnation": 3,
                    "state": "up:active",
                    "state_seq": 2,
                    "addr": format!("{ip}:6801/1234"),
                    "addrs": {"addrvec": [
                        {"type": "v2", "addr": format!("{ip}:6800"), "nonce": 1234},
                        {"type": "v1", "addr": format!("{ip}:6801"), "nonce": 1234},
                    ]},
                    "join_fscid": -1,
                    "export_targets": [],
                    "features": 4_540_138_314_316_775_423_u64,
                    "flags": 0,
                    "compat": mds_compat(),
                }}),
                json!([0]),
            )
        } else {
            (json!({}), json!({}), json!([0]))
        };
        json!({
            "epoch": self.fsmap_epoch,
            "flags": 18,
            "ever_allowed_features": 0,
            "explicitly_allowed_features": 0,
            "created": ceph_stamp(self.created),
            "modified": ceph_stamp(self.created),
            "tableserver": 0,
            "root": 0,
            "session_timeout": 60,
            "session_autoclose": 300,
            "required_client_features": {},
            "max_file_size": MAX_FILE_SIZE,
            "last_failure": 0,
            "last_failure_osd_epoch": 0,
            "compat": mds_compat(),
            "max_mds": 1,
            "in": in_,
            "up": up,
            "failed": if mds_up { json!([]) } else { json!([0]) },
            "damaged": [],
            "stopped": [],
            "info": info,
            "data_pools": f.data_pools,
            "metadata_pool": f.metadata_pool,
            "enabled": true,
            "fs_name": f.name,
            "balancer": "",
            "standby_count_wanted": 0,
        })
    }

    /// The `fs dump` JSON.
    pub fn fs_dump_json(&self, mds_up: bool) -> Value {
        let filesystems: Vec<Value> = self
            .filesystems
            .iter()
            .map(|f| json!({"mdsmap": self.mdsmap_json(f, mds_up), "id": f.id}))
            .collect();
        json!({
            "epoch": self.fsmap_epoch,
            "default_fscid": self.filesystems.first().map_or(-1, |f| f.id),
            "compat": mds_compat(),
            "feature_flags": {"enable_multiple": true, "ever_enabled_multiple": true},
            "standbys": [],
            "filesystems": filesystems,
        })
    }

    /// The `fs ls` JSON.
    pub fn fs_ls_json(&self) -> Value {
        Value::Array(
            self.filesystems
                .iter()
                .map(|f| {
                    json!({
                        "name": f.name,
                        "metadata_pool": self.pool_name(f.metadata_pool),
                        "metadata_pool_id": f.metadata_pool,
                        "data_pool_ids": f.data_pools,
                        "data_pools": f.data_pools.iter().map(|p| self.pool_name(*p)).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    }
}

pub(crate) fn mon_name(rank: usize) -> String {
    let c = (b'a' + (rank % 26) as u8) as char;
    c.to_string()
}

fn mds_compat() -> Value {
    json!({
        "compat": {},
        "ro_compat": {},
        "incompat": {
            "feature_1": "base v0.20",
            "feature_2": "client writeable ranges",
            "feature_3": "default file layouts on dirs",
            "feature_4": "dir inode in separate object",
            "feature_5": "mds uses versioned encoding",
            "feature_6": "dirfrag is stored in omap",
            "feature_7": "mds uses inline data",
            "feature_8": "no anchor table",
            "feature_9": "file layout v2",
            "feature_10": "snaprealm v2"
        }
    })
}
