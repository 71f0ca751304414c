//! The Ceph side: Manila's CephFS driver calls, sent to fake-ceph's HTTP wire API.
//!
//! fake-ceph takes one mon/mgr command as JSON on `POST <url>/request` (`?target=mgr` for
//! the `volumes` module, as `mgr_command` sends it), authenticated with HTTP Basic as a
//! cephx entity (`client.admin`) and its key, and answers Ceph's `{"ret","outb","outs"}`.
//! The calls and their arguments are those of Manila's CephFS native driver
//! (`manila/share/drivers/cephfs/driver.py`): a share is a subvolume named after the share
//! ID, created with `namespace_isolated` and mode 755 in the configured group; a cephx
//! rule is `fs subvolume authorize` with the project as `tenant_id` (so the key comes
//! back); deny is `deauthorize` then `evict`.

use std::time::Duration;

use serde_json::{Value, json};

/// Where a cephx key was kept before `crate::secret` held every kind of secret; the
/// path stays for the crate's users.
pub use crate::secret::Secret;

/// The Ceph identity Manila acts as.
#[derive(Debug, Clone)]
pub struct CephIdentity {
    /// The cephx entity, e.g. `client.admin`.
    pub entity: String,
    /// Its key.
    pub key: Secret,
}

/// A keyring that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// No section for the entity.
    #[error("the keyring has no section for {0}")]
    NoSection(String),
    /// A section without a `key =` line.
    #[error("the keyring section for {0} has no key")]
    NoKey(String),
}

/// Reads `entity`'s key from a Ceph keyring (`[client.admin]\n\tkey = AQ...==`). When
/// `entity` is `None`, the first section is taken.
pub fn parse_keyring(text: &str, entity: Option<&str>) -> Result<CephIdentity, KeyringError> {
    let mut section: Option<String> = None;
    let mut wanted_seen = false;
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if wanted_seen {
                break;
            }
            let name = name.trim().to_owned();
            wanted_seen = entity.is_none_or(|e| e == name);
            section = Some(name);
            continue;
        }
        if !wanted_seen {
            continue;
        }
        if let Some((k, v)) = line.split_once('=')
            && k.trim() == "key"
            && let Some(name) = &section
        {
            return Ok(CephIdentity {
                entity: name.clone(),
                key: Secret::new(v.trim()),
            });
        }
    }
    let name = entity.map(str::to_owned).or(section).unwrap_or_default();
    if wanted_seen {
        Err(KeyringError::NoKey(name))
    } else {
        Err(KeyringError::NoSection(name))
    }
}

/// A failed Ceph call. Messages name the command prefix and Ceph's status text, never a
/// key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CephError {
    /// The command ran and failed (`ret < 0`).
    #[error("{prefix}: error {errno}: {message}")]
    Command {
        /// The command prefix.
        prefix: String,
        /// The errno (positive).
        errno: i32,
        /// Ceph's `outs`.
        message: String,
    },
    /// fake-ceph could not be reached or answered something that is not a Ceph reply.
    #[error("{prefix}: {message}")]
    Transport {
        /// The command prefix.
        prefix: String,
        /// What went wrong.
        message: String,
    },
}

impl CephError {
    /// The errno, if the command ran.
    pub fn errno(&self) -> Option<i32> {
        match self {
            CephError::Command { errno, .. } => Some(*errno),
            CephError::Transport { .. } => None,
        }
    }
}

/// `EINVAL`.
pub const EINVAL: i32 = 22;
/// `ENOENT`.
pub const ENOENT: i32 = 2;

/// A clone's state, from `fs clone status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloneState {
    /// Not finished yet (`pending`, `in-progress`).
    Running,
    /// Done.
    Complete,
    /// `failed` or `canceled`.
    Failed(String),
}

/// Where the subvolumes live and how to reach fake-ceph.
#[derive(Debug, Clone)]
pub struct CephConfig {
    /// fake-ceph's base URL.
    pub url: String,
    /// The identity Manila uses (Manila's `cephfs_auth_id`).
    pub identity: CephIdentity,
    /// The file system (Manila's `cephfs_filesystem_name`).
    pub fs_name: String,
    /// The subvolume group shares are created in; `None` is Ceph's default `_nogroup`.
    pub group: Option<String>,
    /// The deadline of every call.
    pub timeout: Duration,
}

/// A client of fake-ceph's wire API with one connection pool.
#[derive(Debug, Clone)]
pub struct CephClient {
    http: reqwest::Client,
    config: CephConfig,
}

impl CephClient {
    /// A client for `config`.
    pub fn new(config: CephConfig) -> Result<Self, CephError> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| CephError::Transport {
                prefix: "http".into(),
                message: e.to_string(),
            })?;
        let mut config = config;
        config.url = config.url.trim_end_matches('/').to_owned();
        Ok(Self { http, config })
    }

    /// The configuration.
    pub fn config(&self) -> &CephConfig {
        &self.config
    }

    /// The group directory name in paths.
    pub fn group_dir(&self) -> &str {
        self.config.group.as_deref().unwrap_or("_nogroup")
    }

    /// Sends one command; `outb` on success.
    ///
    /// Manila's CephFS driver keeps one librados client and gives each command
    /// `RADOS_TIMEOUT` (10 s): while the monitors or the manager restart, librados
    /// reconnects and sends the command again, and the call fails only when the
    /// deadline passes. So here: a command that got no answer (refused, or the
    /// connection dropped under it) is sent again after a short pause until
    /// `config.timeout` from the first try. The `volumes` commands Manila sends are
    /// idempotent (`create` of an existing subvolume, `rm` with `force`, `authorize` of
    /// an authorized ID), so a command that ran but whose answer was lost may run twice,
    /// as with librados.
    pub async fn command(&self, mgr: bool, cmd: Value) -> Result<String, CephError> {
        let prefix = cmd["prefix"].as_str().unwrap_or("").to_owned();
        let url = if mgr {
            format!("{}/request?target=mgr", self.config.url)
        } else {
            format!("{}/request", self.config.url)
        };
        let body = cmd.to_string();
        let transport = |message: String| CephError::Transport {
            prefix: prefix.clone(),
            message,
        };
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        let mut pause = Duration::from_millis(20);
        let (status, body) = loop {
            match tokio::time::timeout_at(deadline, self.send(&url, body.clone())).await {
                Err(_) => {
                    return Err(transport(format!(
                        "timed out after {:?}",
                        self.config.timeout
                    )));
                }
                Ok(Ok(r)) => break r,
                // No answer: Ceph is away. Try again while the deadline allows.
                Ok(Err(e)) if tokio::time::Instant::now() + pause < deadline => {
                    tracing::debug!(prefix, error = %e.without_url(), "no answer from Ceph; sending again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                // reqwest's error text names the URL, never the credentials.
                Ok(Err(e)) => return Err(transport(e.without_url().to_string())),
            }
        };
        if !status.is_success() {
            return Err(transport(format!("HTTP {status}")));
        }
        let v: Value =
            serde_json::from_slice(&body).map_err(|e| transport(format!("bad answer: {e}")))?;
        let ret = v["ret"].as_i64().unwrap_or(-5);
        if ret < 0 {
            return Err(CephError::Command {
                prefix,
                errno: i32::try_from(-ret).unwrap_or(5),
                message: v["outs"].as_str().unwrap_or("").to_owned(),
            });
        }
        Ok(v["outb"].as_str().unwrap_or("").to_owned())
    }

    /// One try: the answer's status and body, or the transport's error.
    async fn send(
        &self,
        url: &str,
        body: String,
    ) -> Result<(reqwest::StatusCode, axum::body::Bytes), reqwest::Error> {
        let id = &self.config.identity;
        let resp = self
            .http
            .post(url)
            .basic_auth(&id.entity, Some(id.key.expose()))
            .body(body)
            .send()
            .await?;
        let status = resp.status();
        Ok((status, resp.bytes().await?))
    }

    /// A `volumes` command with `vol_name` and the group filled in.
    async fn volumes(&self, prefix: &str, args: Value) -> Result<String, CephError> {
        let mut cmd = json!({"prefix": prefix, "format": "json", "vol_name": self.config.fs_name});
        if let Some(g) = &self.config.group {
            cmd["group_name"] = json!(g);
        }
        if let (Some(obj), Value::Object(extra)) = (cmd.as_object_mut(), args) {
            obj.extend(extra);
        }
        self.command(true, cmd).await
    }

    /// Creates the subvolume of a share (`size` in bytes).
    pub async fn create_subvolume(&self, name: &str, size: u64) -> Result<(), CephError> {
        self.volumes(
            "fs subvolume create",
            json!({"sub_name": name, "size": size, "namespace_isolated": true, "mode": "755"}),
        )
        .await
        .map(drop)
    }

    /// The subvolume's path (`/volumes/<group>/<name>/<uuid>`).
    pub async fn getpath(&self, name: &str) -> Result<String, CephError> {
        let out = self
            .volumes("fs subvolume getpath", json!({"sub_name": name}))
            .await?;
        Ok(out.trim().to_owned())
    }

    /// The monitors' `ip:port` (v1 addresses), from `mon dump`.
    pub async fn mon_addrs(&self) -> Result<Vec<String>, CephError> {
        let out = self
            .command(false, json!({"prefix": "mon dump", "format": "json"}))
            .await?;
        let v: Value = serde_json::from_str(&out).map_err(|e| CephError::Transport {
            prefix: "mon dump".into(),
            message: format!("bad monmap: {e}"),
        })?;
        let mons = v["mons"].as_array().cloned().unwrap_or_default();
        Ok(mons
            .iter()
            .filter_map(|m| {
                let v1 = m["public_addrs"]["addrvec"].as_array().and_then(|addrs| {
                    addrs
                        .iter()
                        .find(|a| a["type"] == "v1")
                        .and_then(|a| a["addr"].as_str())
                });
                v1.or_else(|| m["addr"].as_str())
                    .map(|a| a.trim_end_matches("/0").to_owned())
            })
            .collect())
    }

    /// Resizes a subvolume, refusing to go below what is used (Manila passes
    /// `no_shrink`).
    pub async fn resize(&self, name: &str, size: u64) -> Result<(), CephError> {
        self.volumes(
            "fs subvolume resize",
            json!({"sub_name": name, "new_size": size.to_string(), "no_shrink": true}),
        )
        .await
        .map(drop)
    }

    /// Removes a subvolume (`force`: a missing one is fine).
    pub async fn remove_subvolume(&self, name: &str) -> Result<(), CephError> {
        self.volumes("fs subvolume rm", json!({"sub_name": name, "force": true}))
            .await
            .map(drop)
    }

    /// Authorizes `auth_id` on a subvolume for `tenant`; its key.
    pub async fn authorize(
        &self,
        name: &str,
        auth_id: &str,
        level: &str,
        tenant: &str,
    ) -> Result<Secret, CephError> {
        let out = self
            .volumes(
                "fs subvolume authorize",
                json!({"sub_name": name, "auth_id": auth_id, "access_level": level, "tenant_id": tenant}),
            )
            .await?;
        Ok(Secret::new(out.trim()))
    }

    /// Takes `auth_id`'s access to a subvolume away and evicts its clients. An auth ID
    /// Ceph no longer knows counts as done.
    pub async fn deauthorize(&self, name: &str, auth_id: &str) -> Result<(), CephError> {
        let args = json!({"sub_name": name, "auth_id": auth_id});
        match self.volumes("fs subvolume deauthorize", args.clone()).await {
            Ok(_) => {}
            Err(e) if e.errno() == Some(ENOENT) => {}
            Err(e) => return Err(e),
        }
        match self.volumes("fs subvolume evict", args).await {
            Ok(_) => Ok(()),
            Err(e) if e.errno() == Some(ENOENT) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Snapshots a subvolume.
    pub async fn create_snapshot(&self, name: &str, snap: &str) -> Result<(), CephError> {
        self.volumes(
            "fs subvolume snapshot create",
            json!({"sub_name": name, "snap_name": snap}),
        )
        .await
        .map(drop)
    }

    /// Removes a snapshot (`force`: a missing one is fine).
    pub async fn remove_snapshot(&self, name: &str, snap: &str) -> Result<(), CephError> {
        self.volumes(
            "fs subvolume snapshot rm",
            json!({"sub_name": name, "snap_name": snap, "force": true}),
        )
        .await
        .map(drop)
    }

    /// Starts cloning a snapshot into a new subvolume.
    pub async fn clone_snapshot(
        &self,
        source: &str,
        snap: &str,
        target: &str,
    ) -> Result<(), CephError> {
        let mut args = json!({"sub_name": source, "snap_name": snap, "target_sub_name": target});
        if let Some(g) = &self.config.group {
            args["target_group_name"] = json!(g);
        }
        self.volumes("fs subvolume snapshot clone", args)
            .await
            .map(drop)
    }

    /// How a clone is doing.
    pub async fn clone_status(&self, target: &str) -> Result<CloneState, CephError> {
        let out = self
            .volumes("fs clone status", json!({"clone_name": target}))
            .await?;
        let v: Value = serde_json::from_str(&out).map_err(|e| CephError::Transport {
            prefix: "fs clone status".into(),
            message: format!("bad status: {e}"),
        })?;
        Ok(match v["status"]["state"].as_str().unwrap_or("") {
            "complete" => CloneState::Complete,
            "pending" | "in-progress" => CloneState::Running,
            other => {
                let msg = v["status"]["failure"]["error_msg"]
                    .as_str()
                    .unwrap_or(other)
                    .to_owned();
                CloneState::Failed(msg)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RING: &str = "[client.admin]\n\tkey = AQAz7EVWygILFRAAdIcuJ12opU/JKyfFmxhuaw==\n\tcaps mon = \"allow *\"\n[client.manila]\n\tkey = AQBBBEVWygILFRAAdIcuJ12opU/JKyfFmxhuaw==\n";

    fn check(text: &str, entity: Option<&str>, expected: Result<(&str, &str), KeyringError>) {
        let got = parse_keyring(text, entity);
        match (got, expected) {
            (Ok(id), Ok((name, key))) => {
                assert_eq!(id.entity, name);
                assert_eq!(id.key.expose(), key);
            }
            (Err(e), Err(want)) => assert_eq!(e, want),
            (got, want) => panic!("got {got:?}, wanted {want:?}"),
        }
    }

    #[test]
    fn keyrings() {
        check(
            RING,
            None,
            Ok(("client.admin", "AQAz7EVWygILFRAAdIcuJ12opU/JKyfFmxhuaw==")),
        );
        check(
            RING,
            Some("client.manila"),
            Ok(("client.manila", "AQBBBEVWygILFRAAdIcuJ12opU/JKyfFmxhuaw==")),
        );
        check(
            RING,
            Some("client.nope"),
            Err(KeyringError::NoSection("client.nope".into())),
        );
        check(
            "[client.x]\n",
            None,
            Err(KeyringError::NoKey("client.x".into())),
        );
        check("", None, Err(KeyringError::NoSection(String::new())));
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("AQAz7EVWygILFRAAdIcuJ12opU/JKyfFmxhuaw==");
        assert!(!format!("{s:?}").contains("AQ"));
    }
}
