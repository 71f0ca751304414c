//! Talking to Ceph: credentials, the admin transports, and the typed operations the
//! controller needs (the mgr `volumes` commands, FSMap lookups, RADOS omap for the
//! journal).
//!
//! Every call carries a deadline: a hung backend fails the call with a timeout instead of
//! holding the caller (and its volume lock) for ever.

use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};

use secrecy::{ExposeSecret as _, SecretString};

use crate::cause::Cause;

pub mod cli;
pub mod http;

/// cephx credentials from the CSI secrets. `Debug` never shows the key (a
/// [`SecretString`]).
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The entity ID without `client.` (`admin`).
    pub id: String,
    /// The base64 key.
    pub key: SecretString,
}

impl Credentials {
    /// Credentials of `client.<id>` (a leading `client.` is dropped) with `key`.
    pub fn new(id: &str, key: impl Into<String>) -> Self {
        Self {
            id: id.trim_start_matches("client.").to_owned(),
            key: SecretString::from(key.into()),
        }
    }

    /// The key, for the one call that hands it to Ceph.
    pub fn key(&self) -> &str {
        self.key.expose_secret()
    }

    /// The entity name (`client.<id>`).
    pub fn entity(&self) -> String {
        format!("client.{}", self.id)
    }
}

/// Where a command goes, as librados addresses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `mon_command` (also RADOS object operations on the HTTP transport).
    Mon,
    /// `mgr_command` (the `volumes` module).
    Mgr,
}

/// A failed Ceph call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CephError {
    /// Ceph answered with `ret < 0`.
    #[error("{prefix}: [errno {errno}] {message}")]
    Command {
        /// The command prefix.
        prefix: String,
        /// The positive errno.
        errno: i32,
        /// Ceph's status message.
        message: String,
    },
    /// No answer within the deadline.
    #[error("{prefix}: no answer from Ceph within {timeout:?}")]
    Timeout {
        /// The command prefix.
        prefix: String,
        /// The deadline.
        timeout: Duration,
    },
    /// Credentials refused (HTTP 401, or EACCES/EPERM on authentication).
    #[error("{prefix}: credentials refused")]
    Unauthorized {
        /// The command prefix.
        prefix: String,
    },
    /// The backend could not be reached or answered garbage.
    #[error("{prefix}: {message}")]
    Transport {
        /// The command prefix.
        prefix: String,
        /// What went wrong (never contains a key).
        message: String,
        /// The underlying failure (an HTTP client's, a process's, a JSON reader's).
        #[source]
        cause: Option<Cause>,
    },
    /// This transport is not available for this cluster.
    #[error("{0}")]
    Unsupported(String),
}

/// The errnos the driver reacts to (re-exported: the transports read them).
pub use crate::errno;

impl CephError {
    /// The errno of a command failure.
    pub fn errno(&self) -> Option<i32> {
        match self {
            CephError::Command { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// Whether this is ENOENT.
    pub fn is_not_found(&self) -> bool {
        self.errno() == Some(errno::ENOENT)
    }
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The output buffer.
    pub outb: String,
    /// The status string.
    pub outs: String,
}

/// How commands reach a cluster.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// Sends one command (the JSON librados would carry) and waits at most `timeout`.
    async fn command(
        &self,
        creds: &Credentials,
        target: Target,
        cmd: &Value,
        timeout: Duration,
    ) -> Result<Answer, CephError>;

    /// Whether the admin interface answers at all (for Probe).
    async fn reachable(&self, timeout: Duration) -> bool;
}

/// A subvolume as `fs subvolume info` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubvolumeInfo {
    /// The quota, `None` when infinite.
    pub bytes_quota: Option<u64>,
    /// Bytes used.
    pub bytes_used: u64,
    /// `complete`, `pending`, ...
    pub state: String,
    /// The data path.
    pub path: String,
}

/// The state of a clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloneState {
    /// Waiting for a cloner.
    Pending,
    /// Copying.
    InProgress,
    /// Done.
    Complete,
    /// Failed (with Ceph's reason) or canceled.
    Failed(String),
}

/// The typed operations of one cluster, as one set of credentials.
#[derive(Debug, Clone, Copy)]
pub struct Admin<'a> {
    /// The transport.
    pub transport: &'a dyn Transport,
    /// The credentials.
    pub creds: &'a Credentials,
    /// The deadline of each call.
    pub timeout: Duration,
    /// Where each call is counted, if anywhere.
    pub metrics: Option<&'a crate::metrics::Metrics>,
}

/// Omap pairs as the JSON object the `rados` commands carry.
fn omap_vals(vals: &[(&str, &str)]) -> serde_json::Map<String, Value> {
    vals.iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect()
}

/// Whether Ceph said the subvolume group does not exist
/// (`subvolume group 'csi' does not exist`, ENOENT).
fn is_missing_group(e: &CephError) -> bool {
    matches!(e, CephError::Command { errno: errno::ENOENT, message, .. }
        if message.contains("subvolume group") && message.contains("does not exist"))
}

fn parse<T: serde::de::DeserializeOwned>(prefix: &str, text: &str) -> Result<T, CephError> {
    serde_json::from_str(text).map_err(|e| CephError::Transport {
        prefix: prefix.to_owned(),
        message: "unexpected output".into(),
        cause: Some(Cause::new(e)),
    })
}

impl Admin<'_> {
    async fn call(&self, target: Target, cmd: Value) -> Result<Answer, CephError> {
        let started = std::time::Instant::now();
        let r = self
            .transport
            .command(self.creds, target, &cmd, self.timeout)
            .await;
        if let Some(m) = self.metrics {
            let result = match &r {
                Ok(_) => "ok",
                Err(CephError::Command { .. }) => "ceph_error",
                Err(CephError::Timeout { .. }) => "timeout",
                Err(CephError::Unauthorized { .. }) => "unauthorized",
                Err(CephError::Transport { .. }) => "transport_error",
                Err(CephError::Unsupported(_)) => "unsupported",
            };
            let prefix = cmd.get("prefix").and_then(Value::as_str).unwrap_or("");
            m.backend(prefix, result, started.elapsed());
        }
        r
    }

    /// `fs ls`: the names of the file systems.
    pub async fn fs_names(&self) -> Result<Vec<String>, CephError> {
        let a = self
            .call(Target::Mon, json!({"prefix": "fs ls", "format": "json"}))
            .await?;
        let v: Value = parse("fs ls", &a.outb)?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["name"].as_str().map(str::to_owned))
            .collect())
    }

    /// `fs dump`: the FSCID of a file system.
    pub async fn fscid(&self, fs_name: &str) -> Result<i64, CephError> {
        let a = self
            .call(Target::Mon, json!({"prefix": "fs dump", "format": "json"}))
            .await?;
        let v: Value = parse("fs dump", &a.outb)?;
        v["filesystems"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["mdsmap"]["fs_name"] == fs_name)
            .and_then(|f| f["id"].as_i64())
            .ok_or_else(|| CephError::Command {
                prefix: "fs dump".into(),
                errno: errno::ENOENT,
                message: format!("file system '{fs_name}' not found"),
            })
    }

    /// `fs dump`: the name of the file system with this FSCID.
    pub async fn fs_name(&self, fscid: i64) -> Result<String, CephError> {
        let a = self
            .call(Target::Mon, json!({"prefix": "fs dump", "format": "json"}))
            .await?;
        let v: Value = parse("fs dump", &a.outb)?;
        v["filesystems"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["id"].as_i64() == Some(fscid))
            .and_then(|f| f["mdsmap"]["fs_name"].as_str().map(str::to_owned))
            .ok_or_else(|| CephError::Command {
                prefix: "fs dump".into(),
                errno: errno::ENOENT,
                message: format!("no file system with id {fscid}"),
            })
    }

    /// `fs ls`: the metadata pool of a file system (where the journal lives).
    pub async fn metadata_pool(&self, fs_name: &str) -> Result<String, CephError> {
        let a = self
            .call(Target::Mon, json!({"prefix": "fs ls", "format": "json"}))
            .await?;
        let v: Value = parse("fs ls", &a.outb)?;
        v.as_array()
            .into_iter()
            .flatten()
            .find(|f| f["name"] == fs_name)
            .and_then(|f| f["metadata_pool"].as_str().map(str::to_owned))
            .ok_or_else(|| CephError::Command {
                prefix: "fs ls".into(),
                errno: errno::ENOENT,
                message: format!("file system '{fs_name}' not found"),
            })
    }

    /// `fs subvolume create` (idempotent in Ceph). `size` 0 means no quota. A missing
    /// group is created first, as ceph-csi does: a fresh cluster needs no preparation.
    pub async fn subvolume_create(
        &self,
        fs: &str,
        group: &str,
        name: &str,
        size: u64,
        pool: Option<&str>,
    ) -> Result<(), CephError> {
        let mut cmd = json!({"prefix": "fs subvolume create", "vol_name": fs, "group_name": group,
                             "sub_name": name, "namespace_isolated": false, "format": "json"});
        if size > 0 {
            cmd["size"] = json!(size);
        }
        if let Some(p) = pool {
            cmd["pool_layout"] = json!(p);
        }
        match self.call(Target::Mgr, cmd.clone()).await {
            Err(e) if is_missing_group(&e) => {
                self.subvolumegroup_create(fs, group).await?;
                self.call(Target::Mgr, cmd).await.map(|_| ())
            }
            r => r.map(|_| ()),
        }
    }

    /// `fs subvolumegroup create` (idempotent in Ceph).
    pub async fn subvolumegroup_create(&self, fs: &str, group: &str) -> Result<(), CephError> {
        self.call(
            Target::Mgr,
            json!({"prefix": "fs subvolumegroup create", "vol_name": fs, "group_name": group, "format": "json"}),
        )
        .await
        .map(|_| ())
    }

    /// `fs subvolume getpath`.
    pub async fn subvolume_getpath(
        &self,
        fs: &str,
        group: &str,
        name: &str,
    ) -> Result<String, CephError> {
        let a = self
            .call(
                Target::Mgr,
                json!({"prefix": "fs subvolume getpath", "vol_name": fs, "group_name": group, "sub_name": name}),
            )
            .await?;
        Ok(a.outb.trim_end().to_owned())
    }

    /// `fs subvolume info`.
    pub async fn subvolume_info(
        &self,
        fs: &str,
        group: &str,
        name: &str,
    ) -> Result<SubvolumeInfo, CephError> {
        let a = self
            .call(
                Target::Mgr,
                json!({"prefix": "fs subvolume info", "vol_name": fs, "group_name": group, "sub_name": name, "format": "json"}),
            )
            .await?;
        let v: Value = parse("fs subvolume info", &a.outb)?;
        Ok(SubvolumeInfo {
            bytes_quota: v["bytes_quota"].as_u64(),
            bytes_used: v["bytes_used"].as_u64().unwrap_or(0),
            state: v["state"].as_str().unwrap_or("").to_owned(),
            path: v["path"].as_str().unwrap_or("").to_owned(),
        })
    }

    /// `fs subvolume ls`: the names of a group's subvolumes (none when the group is missing).
    pub async fn subvolume_ls(&self, fs: &str, group: &str) -> Result<Vec<String>, CephError> {
        let a = match self
            .call(
                Target::Mgr,
                json!({"prefix": "fs subvolume ls", "vol_name": fs, "group_name": group, "format": "json"}),
            )
            .await
        {
            Ok(a) => a,
            Err(e) if e.is_not_found() => return Ok(vec![]),
            Err(e) => return Err(e),
        };
        let v: Value = parse("fs subvolume ls", &a.outb)?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["name"].as_str().map(str::to_owned))
            .collect())
    }

    /// `fs subvolume resize` with `no_shrink`.
    pub async fn subvolume_resize(
        &self,
        fs: &str,
        group: &str,
        name: &str,
        size: u64,
    ) -> Result<(), CephError> {
        self.call(
            Target::Mgr,
            json!({"prefix": "fs subvolume resize", "vol_name": fs, "group_name": group, "sub_name": name,
                   "new_size": size.to_string(), "no_shrink": true, "format": "json"}),
        )
        .await
        .map(|_| ())
    }

    /// `fs subvolume rm` (`force` also removes an unfinished clone).
    pub async fn subvolume_rm(
        &self,
        fs: &str,
        group: &str,
        name: &str,
        force: bool,
    ) -> Result<(), CephError> {
        let mut cmd = json!({"prefix": "fs subvolume rm", "vol_name": fs, "group_name": group, "sub_name": name, "format": "json"});
        if force {
            cmd["force"] = json!(true);
        }
        self.call(Target::Mgr, cmd).await.map(|_| ())
    }

    /// `fs subvolume snapshot create` (idempotent in Ceph).
    pub async fn snapshot_create(
        &self,
        fs: &str,
        group: &str,
        name: &str,
        snap: &str,
    ) -> Result<(), CephError> {
        self.call(
            Target::Mgr,
            json!({"prefix": "fs subvolume snapshot create", "vol_name": fs, "group_name": group,
                   "sub_name": name, "snap_name": snap, "format": "json"}),
        )
        .await
        .map(|_| ())
    }

    /// `fs subvolume snapshot info`: `(created_at, has_pending_clones)`.
    pub async fn snapshot_info(
        &self,
        fs: &str,
        group: &str,
        name: &str,
        snap: &str,
    ) -> Result<(String, bool), CephError> {
        let a = self
            .call(
                Target::Mgr,
                json!({"prefix": "fs subvolume snapshot info", "vol_name": fs, "group_name": group,
                       "sub_name": name, "snap_name": snap, "format": "json"}),
            )
            .await?;
        let v: Value = parse("fs subvolume snapshot info", &a.outb)?;
        Ok((
            v["created_at"].as_str().unwrap_or("").to_owned(),
            v["has_pending_clones"] == "yes",
        ))
    }

    /// `fs subvolume snapshot rm` with `force` (a missing snapshot is fine).
    pub async fn snapshot_rm(
        &self,
        fs: &str,
        group: &str,
        name: &str,
        snap: &str,
    ) -> Result<(), CephError> {
        self.call(
            Target::Mgr,
            json!({"prefix": "fs subvolume snapshot rm", "vol_name": fs, "group_name": group,
                   "sub_name": name, "snap_name": snap, "force": true, "format": "json"}),
        )
        .await
        .map(|_| ())
    }

    /// `fs subvolume snapshot clone`.
    pub async fn snapshot_clone(
        &self,
        fs: &str,
        group: &str,
        name: &str,
        snap: &str,
        target: &str,
        pool: Option<&str>,
    ) -> Result<(), CephError> {
        let mut cmd = json!({"prefix": "fs subvolume snapshot clone", "vol_name": fs, "group_name": group,
                             "sub_name": name, "snap_name": snap, "target_sub_name": target,
                             "target_group_name": group, "format": "json"});
        if let Some(p) = pool {
            cmd["pool_layout"] = json!(p);
        }
        self.call(Target::Mgr, cmd).await.map(|_| ())
    }

    /// `fs clone status`.
    pub async fn clone_status(
        &self,
        fs: &str,
        group: &str,
        name: &str,
    ) -> Result<CloneState, CephError> {
        let a = self
            .call(
                Target::Mgr,
                json!({"prefix": "fs clone status", "vol_name": fs, "group_name": group, "clone_name": name, "format": "json"}),
            )
            .await?;
        let v: Value = parse("fs clone status", &a.outb)?;
        let s = &v["status"];
        Ok(match s["state"].as_str().unwrap_or("") {
            "pending" => CloneState::Pending,
            "in-progress" => CloneState::InProgress,
            "complete" => CloneState::Complete,
            other => {
                // Newer Ceph writes `error_msg`, its docs (and go-ceph) `errstr`: read both.
                let f = &s["failure"];
                let msg = f["error_msg"]
                    .as_str()
                    .or_else(|| f["errstr"].as_str())
                    .unwrap_or(other);
                CloneState::Failed(format!("{other}: {msg}"))
            }
        })
    }

    /// `fs clone cancel`: stops a pending or in-progress clone (it is left `canceled`,
    /// to be removed with `fs subvolume rm --force`). EINVAL once the clone finished.
    pub async fn clone_cancel(&self, fs: &str, group: &str, name: &str) -> Result<(), CephError> {
        self.call(
            Target::Mgr,
            json!({"prefix": "fs clone cancel", "vol_name": fs, "group_name": group,
                   "clone_name": name, "format": "json"}),
        )
        .await
        .map(|_| ())
    }

    /// `rados create` (exclusive) with omap values, atomically.
    pub async fn omap_create_exclusive(
        &self,
        pool: &str,
        ns: &str,
        object: &str,
        vals: &[(&str, &str)],
    ) -> Result<(), CephError> {
        let vals = omap_vals(vals);
        self.call(
            Target::Mon,
            json!({"prefix": "rados create", "pool": pool, "namespace": ns, "object": object,
                   "exclusive": true, "vals": vals}),
        )
        .await
        .map(|_| ())
    }

    /// `rados omap set` (creates the object if missing).
    pub async fn omap_set(
        &self,
        pool: &str,
        ns: &str,
        object: &str,
        vals: &[(&str, &str)],
    ) -> Result<(), CephError> {
        let vals = omap_vals(vals);
        self.call(
            Target::Mon,
            json!({"prefix": "rados omap set", "pool": pool, "namespace": ns, "object": object, "vals": vals}),
        )
        .await
        .map(|_| ())
    }

    /// `rados omap get`: the values of the keys that exist; ENOENT if the object does not.
    pub async fn omap_get(
        &self,
        pool: &str,
        ns: &str,
        object: &str,
        keys: &[&str],
    ) -> Result<serde_json::Map<String, Value>, CephError> {
        let a = self
            .call(
                Target::Mon,
                json!({"prefix": "rados omap get", "pool": pool, "namespace": ns, "object": object, "keys": keys}),
            )
            .await?;
        parse("rados omap get", &a.outb)
    }

    /// `rados omap list`: up to `max` values after `start_after` with `prefix`, and
    /// whether more follow.
    pub async fn omap_list(
        &self,
        pool: &str,
        ns: &str,
        object: &str,
        start_after: &str,
        prefix: &str,
        max: usize,
    ) -> Result<(Vec<(String, String)>, bool), CephError> {
        let a = self
            .call(
                Target::Mon,
                json!({"prefix": "rados omap list", "pool": pool, "namespace": ns, "object": object,
                       "start_after": start_after, "filter_prefix": prefix, "max_return": max}),
            )
            .await?;
        let v: Value = parse("rados omap list", &a.outb)?;
        let vals = v["vals"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Ok((vals, v["more"].as_bool().unwrap_or(false)))
    }

    /// `rados omap rm`.
    pub async fn omap_rm(
        &self,
        pool: &str,
        ns: &str,
        object: &str,
        keys: &[&str],
    ) -> Result<(), CephError> {
        self.call(
            Target::Mon,
            json!({"prefix": "rados omap rm", "pool": pool, "namespace": ns, "object": object, "keys": keys}),
        )
        .await
        .map(|_| ())
    }

    /// `rados rm`.
    pub async fn object_rm(&self, pool: &str, ns: &str, object: &str) -> Result<(), CephError> {
        self.call(
            Target::Mon,
            json!({"prefix": "rados rm", "pool": pool, "namespace": ns, "object": object}),
        )
        .await
        .map(|_| ())
    }

    /// `df`: the cluster's available bytes.
    pub async fn available_bytes(&self) -> Result<u64, CephError> {
        let a = self
            .call(Target::Mon, json!({"prefix": "df", "format": "json"}))
            .await?;
        let v: Value = parse("df", &a.outb)?;
        Ok(v["stats"]["total_avail_bytes"].as_u64().unwrap_or(0))
    }
}
