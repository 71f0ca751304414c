//! What the back ends hold, read over their own wire protocols (fake-ceph's command JSON
//! and MDS `tell`, Manila v2), so that embedded and external back ends are checked the
//! same way.
//!
//! A run takes an [`Inventory`] when its stack is up and another after teardown; what
//! the second holds and the first did not is leaked. Against an external back end that
//! already holds volumes this counts only what the run left; runs that share one external
//! back end must not overlap (each would count the other's volumes).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context as _;
use driver::ceph::http::HttpTransport;
use driver::ceph::{Credentials, Target, Transport as _};
use serde_json::{Value, json};

/// The deadline of each inventory call.
const TIMEOUT: Duration = Duration::from_secs(30);

/// client.admin's access to a fake-ceph, over HTTP.
#[derive(Debug, Clone)]
pub struct CephAccess {
    url: String,
    transport: HttpTransport,
    creds: Credentials,
    http: reqwest::Client,
}

impl CephAccess {
    /// Access to the fake-ceph at `url` as client.admin with `key`.
    pub fn new(url: &str, key: &str) -> anyhow::Result<Self> {
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            transport: HttpTransport::new(url).context("fake-ceph HTTP client")?,
            creds: Credentials {
                id: "admin".into(),
                key: key.to_owned(),
            },
            http: reqwest::Client::new(),
        })
    }

    /// Base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// client.admin's key. A secret: never log it.
    pub fn admin_key(&self) -> &str {
        &self.creds.key
    }

    /// A mon (or, with `Target::Mgr`, mgr) command's output buffer.
    pub async fn command(&self, target: Target, cmd: Value) -> anyhow::Result<String> {
        let prefix = cmd["prefix"].as_str().unwrap_or("").to_owned();
        let a = self
            .transport
            .command(&self.creds, target, &cmd, TIMEOUT)
            .await
            .with_context(|| format!("fake-ceph: {prefix}"))?;
        Ok(a.outb)
    }

    /// A command to the active MDS of `fs` (rank 0), as `ceph tell <fs>:0` sends it.
    pub async fn tell_mds(&self, fs: &str, cmd: Value) -> anyhow::Result<Value> {
        let prefix = cmd["prefix"].as_str().unwrap_or("").to_owned();
        let send = self
            .http
            .post(format!("{}/tell/{fs}:0", self.url))
            .basic_auth(self.creds.entity(), Some(&self.creds.key))
            .body(cmd.to_string())
            .send();
        let resp = tokio::time::timeout(TIMEOUT, send)
            .await
            .with_context(|| format!("fake-ceph: tell {fs}:0 {prefix}: no answer"))?
            .with_context(|| format!("fake-ceph: tell {fs}:0 {prefix}"))?;
        let status = resp.status();
        let v: Value = resp
            .json()
            .await
            .with_context(|| format!("fake-ceph: tell {fs}:0 {prefix}: HTTP {status}"))?;
        let ret = v["ret"].as_i64().unwrap_or(-1);
        anyhow::ensure!(
            status.is_success() && ret == 0,
            "fake-ceph: tell {fs}:0 {prefix}: HTTP {status}, ret {ret}: {}",
            v["outs"].as_str().unwrap_or("")
        );
        let outb = v["outb"].as_str().unwrap_or("");
        if outb.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(outb).with_context(|| format!("fake-ceph: {prefix}: output"))
    }

    /// The MDS's `perf dump`.
    pub async fn perf_dump(&self, fs: &str) -> anyhow::Result<Value> {
        self.tell_mds(fs, json!({"prefix": "perf dump"})).await
    }

    /// The monitors' addresses, from `mon dump` (`ip:port`, the v1 address as the kernel
    /// client and ceph-csi's cluster config give them).
    pub async fn monitors(&self) -> anyhow::Result<Vec<String>> {
        let out = self
            .command(Target::Mon, json!({"prefix": "mon dump", "format": "json"}))
            .await?;
        let v: Value = serde_json::from_str(&out).context("mon dump: output")?;
        let mons: Vec<String> = v["mons"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| {
                        let addr = m["addr"].as_str().or(m["public_addr"].as_str())?;
                        // `ip:port/nonce`.
                        Some(addr.split('/').next().unwrap_or(addr).to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        anyhow::ensure!(!mons.is_empty(), "mon dump names no monitor");
        Ok(mons)
    }

    /// The file systems (`fs ls`).
    pub async fn fs_names(&self) -> anyhow::Result<Vec<String>> {
        let out = self
            .command(Target::Mon, json!({"prefix": "fs ls", "format": "json"}))
            .await?;
        let v: Value = serde_json::from_str(&out).context("fs ls: output")?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// A Manila project's access (the CSI secrets' `os-*` credentials).
#[derive(Debug)]
pub struct ManilaAccess {
    backend: driver::manila::Backend,
    creds: driver::manila::keystone::OsCredentials,
}

impl ManilaAccess {
    /// Access with the `os-*` keys of `secrets`.
    pub fn new(secrets: &std::collections::HashMap<String, String>) -> anyhow::Result<Self> {
        Ok(Self {
            backend: driver::manila::Backend::new(TIMEOUT).context("Manila HTTP client")?,
            creds: driver::manila::keystone::OsCredentials::from_secrets(secrets)
                .context("Manila credentials")?,
        })
    }

    fn client(&self) -> driver::manila::api::Manila<'_> {
        self.backend.client(&self.creds)
    }
}

/// What the back ends hold at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// `group/subvolume` in the given groups (`_nogroup` for Ceph's default group).
    pub subvolumes: BTreeSet<String>,
    /// cephx entities.
    pub cephx_users: BTreeSet<String>,
    /// MDS session (client) IDs.
    pub sessions: BTreeSet<u64>,
    /// Manila share IDs of the project.
    pub shares: BTreeSet<String>,
}

impl Inventory {
    /// Reads the inventory of file system `fs` (subvolumes in `groups`, `None` being
    /// Ceph's default group) and, with `manila`, of the Manila project.
    pub async fn take(
        ceph: &CephAccess,
        fs: &str,
        groups: &[Option<&str>],
        manila: Option<&ManilaAccess>,
    ) -> anyhow::Result<Self> {
        let mut inv = Self::default();
        for group in groups {
            let mut ls = json!({"prefix": "fs subvolume ls", "vol_name": fs, "format": "json"});
            if let Some(g) = group {
                ls["group_name"] = json!(g);
            }
            let out = match ceph.command(Target::Mgr, ls).await {
                Ok(o) => o,
                // A group nothing was provisioned in yet (the driver creates it on first
                // use) holds nothing.
                Err(e) if is_enoent(&e) => continue,
                Err(e) => return Err(e),
            };
            let v: Value = serde_json::from_str(&out).context("fs subvolume ls: output")?;
            for s in v.as_array().into_iter().flatten() {
                if let Some(name) = s["name"].as_str() {
                    inv.subvolumes
                        .insert(format!("{}/{name}", group.unwrap_or("_nogroup")));
                }
            }
        }
        let out = ceph
            .command(Target::Mon, json!({"prefix": "auth ls", "format": "json"}))
            .await?;
        let v: Value = serde_json::from_str(&out).context("auth ls: output")?;
        inv.cephx_users = v["auth_dump"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["entity"].as_str().map(str::to_owned))
            .collect();
        let sessions = ceph.tell_mds(fs, json!({"prefix": "session ls"})).await?;
        inv.sessions = sessions
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["id"].as_u64())
            .collect();
        if let Some(m) = manila {
            inv.shares = m
                .client()
                .shares()
                .await
                .map_err(|e| anyhow::anyhow!("Manila: listing shares: {e}"))?
                .into_iter()
                .map(|s| s.id)
                .collect();
        }
        Ok(inv)
    }

    /// What `self` holds that `before` did not: counts for the leak report. Access rules
    /// are counted on the new shares (a rule goes with its share).
    pub async fn since(
        &self,
        before: &Inventory,
        manila: Option<&ManilaAccess>,
    ) -> anyhow::Result<NewSince> {
        let mut access_rules = 0;
        let shares: Vec<&String> = self.shares.difference(&before.shares).collect();
        if let Some(m) = manila {
            for id in &shares {
                access_rules += m
                    .client()
                    .access_rules(id)
                    .await
                    .map_err(|e| anyhow::anyhow!("Manila: access rules of {id}: {e}"))?
                    .len();
            }
        }
        Ok(NewSince {
            subvolumes: self.subvolumes.difference(&before.subvolumes).count(),
            cephx_users: self.cephx_users.difference(&before.cephx_users).count(),
            sessions: self.sessions.difference(&before.sessions).count(),
            shares: shares.len(),
            access_rules,
        })
    }
}

/// Counts of what appeared between two inventories.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NewSince {
    /// Subvolumes.
    pub subvolumes: usize,
    /// cephx users.
    pub cephx_users: usize,
    /// MDS sessions.
    pub sessions: usize,
    /// Manila shares.
    pub shares: usize,
    /// Access rules on those shares.
    pub access_rules: usize,
}

fn is_enoent(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<driver::ceph::CephError>()
            .is_some_and(driver::ceph::CephError::is_not_found)
    })
}
