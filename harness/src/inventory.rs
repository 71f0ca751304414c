//! What the back ends hold, read over their own wire protocols (fake-ceph's command JSON
//! and MDS `tell`, Manila v2), so that embedded and external back ends are checked the
//! same way.
//!
//! A run takes an [`Inventory`] when its stack is up and another after teardown; what
//! the second holds and the first did not is leaked. Against an external back end that
//! already holds volumes this counts only what the run left; runs that share one external
//! back end must not overlap (each would count the other's volumes).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context as _;
use driver::ceph::cli::CliTransport;
use driver::ceph::http::HttpTransport;
use driver::ceph::{Credentials, Target, Transport as _};
use serde_json::{Value, json};

/// The deadline of each inventory call.
const TIMEOUT: Duration = Duration::from_secs(30);

/// How [`CephAccess`] reaches its cluster.
#[derive(Debug, Clone)]
enum Wire {
    /// A fake-ceph's command JSON over HTTP, and its `tell` endpoint.
    Http {
        transport: HttpTransport,
        http: reqwest::Client,
    },
    /// A real cluster through the `ceph` and `rados` commands (the driver's cli
    /// transport), `tell` included.
    Cli(CliTransport),
}

/// client.admin's access to a fake-ceph over HTTP, or to a real Ceph cluster through its
/// command-line tools.
#[derive(Debug, Clone)]
pub struct CephAccess {
    url: String,
    wire: Wire,
    creds: Credentials,
}

impl CephAccess {
    /// Access to the fake-ceph at `url` as client.admin with `key`.
    pub fn new(url: &str, key: &str) -> anyhow::Result<Self> {
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            wire: Wire::Http {
                transport: HttpTransport::new(url).context("fake-ceph HTTP client")?,
                http: reqwest::Client::new(),
            },
            creds: Credentials::new("admin", key),
        })
    }

    /// Access to the real cluster `conf` describes as client.admin with `key`, through
    /// the `ceph` and `rados` commands on `PATH`.
    pub fn cli(conf: &std::path::Path, key: &str) -> Self {
        Self {
            url: conf.display().to_string(),
            wire: Wire::Cli(CliTransport::new(conf, &[], None, None)),
            creds: Credentials::new("admin", key),
        }
    }

    /// Whether this is a real cluster (reached through its command-line tools).
    pub fn is_real(&self) -> bool {
        matches!(self.wire, Wire::Cli(_))
    }

    /// Base URL (a fake-ceph's), or the real cluster's conf file.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// client.admin's key. A secret: never log it.
    pub fn admin_key(&self) -> &str {
        self.creds.key()
    }

    fn name(&self) -> &'static str {
        if self.is_real() { "ceph" } else { "fake-ceph" }
    }

    /// A mon (or, with `Target::Mgr`, mgr) command's output buffer.
    pub async fn command(&self, target: Target, cmd: Value) -> anyhow::Result<String> {
        // The driver's error names the command already.
        let a = match &self.wire {
            Wire::Http { transport, .. } => {
                transport.command(&self.creds, target, &cmd, TIMEOUT).await
            }
            Wire::Cli(transport) => transport.command(&self.creds, target, &cmd, TIMEOUT).await,
        }
        .context(self.name())?;
        Ok(a.outb)
    }

    /// A command to the active MDS of `fs` (rank 0), as `ceph tell <fs>:0` sends it.
    pub async fn tell_mds(&self, fs: &str, cmd: Value) -> anyhow::Result<Value> {
        let prefix = cmd["prefix"].as_str().unwrap_or("").to_owned();
        let outb = match &self.wire {
            Wire::Http { http, .. } => self.tell_over_http(http, fs, &cmd, &prefix).await?,
            Wire::Cli(transport) => {
                let mut tell = cmd.clone();
                tell["prefix"] = json!(format!("tell mds.{fs}:0 {prefix}"));
                tell["format"] = json!("json");
                transport
                    .command(&self.creds, Target::Mon, &tell, TIMEOUT)
                    .await
                    .context("ceph")?
                    .outb
            }
        };
        if outb.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&outb).with_context(|| format!("{}: {prefix}: output", self.name()))
    }

    async fn tell_over_http(
        &self,
        http: &reqwest::Client,
        fs: &str,
        cmd: &Value,
        prefix: &str,
    ) -> anyhow::Result<String> {
        let send = http
            .post(format!("{}/tell/{fs}:0", self.url))
            .basic_auth(self.creds.entity(), Some(self.creds.key()))
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
        Ok(v["outb"].as_str().unwrap_or("").to_owned())
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

/// The RADOS namespace of the driver's journal: its default, the subvolume group's name
/// (ceph-csi's `radosNamespace`).
pub const JOURNAL_NAMESPACE: &str = "csi";

/// The journal's directory objects, whose omap keys are its entries.
const JOURNAL_DIRS: [&str; 3] = ["csi.volumes.", "csi.snaps.", "csi.clones."];
/// The journal's per-UUID objects.
const JOURNAL_UUID_OBJECTS: [&str; 2] = ["csi.volume.", "csi.snap."];
/// The key prefix of a volume's name in `csi.volumes.<instance>`.
const VOLUME_NAME_KEY: &str = "csi.volume.";

/// What the back ends hold at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// `group/subvolume` in the given groups (`_nogroup` for Ceph's default group).
    pub subvolumes: BTreeSet<String>,
    /// cephx entities.
    pub cephx_users: BTreeSet<String>,
    /// MDS session (client) IDs.
    pub sessions: BTreeSet<u64>,
    /// Manila shares of the project: ID → (name, status).
    pub shares: BTreeMap<String, (String, String)>,
    /// The journal's entries, as `object/key`.
    pub journal_entries: BTreeSet<String>,
    /// The journal's per-UUID objects.
    pub journal_objects: BTreeSet<String>,
    /// The volumes' request names in the journal: name → UUID.
    pub journal_names: BTreeMap<String, String>,
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
                .map(|s| (s.id, (s.name.unwrap_or_default(), s.status)))
                .collect();
        }
        inv.read_journal(ceph, fs).await?;
        Ok(inv)
    }

    /// Reads the driver's journal: the objects of [`JOURNAL_NAMESPACE`] in `fs`'s
    /// metadata pool (`rados ls`) and the keys of its directory objects.
    async fn read_journal(&mut self, ceph: &CephAccess, fs: &str) -> anyhow::Result<()> {
        let out = ceph
            .command(Target::Mon, json!({"prefix": "fs ls", "format": "json"}))
            .await?;
        let v: Value = serde_json::from_str(&out).context("fs ls: output")?;
        let pool = v
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["name"] == fs)
            .and_then(|f| f["metadata_pool"].as_str())
            .with_context(|| format!("fs ls names no metadata pool of {fs}"))?
            .to_owned();
        let out = ceph
            .command(
                Target::Mon,
                json!({"prefix": "rados ls", "pool": pool, "namespace": JOURNAL_NAMESPACE}),
            )
            .await?;
        let v: Value = serde_json::from_str(&out).context("rados ls: output")?;
        let objects: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["name"].as_str().map(str::to_owned))
            .collect();
        for object in objects {
            if JOURNAL_DIRS.iter().any(|p| object.starts_with(p)) {
                for (key, value) in omap_all(ceph, &pool, &object).await? {
                    if object.starts_with(JOURNAL_DIRS[0])
                        && let Some(name) = key.strip_prefix(VOLUME_NAME_KEY)
                    {
                        self.journal_names.insert(name.to_owned(), value);
                    }
                    self.journal_entries.insert(format!("{object}/{key}"));
                }
            } else if JOURNAL_UUID_OBJECTS.iter().any(|p| object.starts_with(p)) {
                self.journal_objects.insert(object);
            }
        }
        Ok(())
    }

    /// The Manila shares of each request name that are in use or on their way (not
    /// failed, not being deleted): two for one name at once are a duplicate. (Over a
    /// run a name may see several, one after the other: a share that failed is deleted
    /// and made again.)
    pub fn live_shares_by_name(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (id, (name, status)) in &self.shares {
            if !matches!(status.as_str(), "deleting" | "error_deleting" | "error") {
                m.entry(name.clone()).or_default().insert(id.clone());
            }
        }
        m
    }

    /// What `self` holds that `before` did not: counts for the leak report. Access rules
    /// are counted on the new shares (a rule goes with its share).
    pub async fn since(
        &self,
        before: &Inventory,
        manila: Option<&ManilaAccess>,
    ) -> anyhow::Result<NewSince> {
        let mut access_rules = 0;
        let shares: Vec<&String> = self
            .shares
            .keys()
            .filter(|id| !before.shares.contains_key(*id))
            .collect();
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
            journal_entries: self
                .journal_entries
                .difference(&before.journal_entries)
                .count(),
            journal_objects: self
                .journal_objects
                .difference(&before.journal_objects)
                .count(),
        })
    }
}

/// Every omap key and value of `object` (in [`JOURNAL_NAMESPACE`]), page by page.
async fn omap_all(
    ceph: &CephAccess,
    pool: &str,
    object: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let page = ceph
            .command(
                Target::Mon,
                json!({"prefix": "rados omap list", "pool": pool, "namespace": JOURNAL_NAMESPACE,
                       "object": object, "start_after": after, "max_return": 1000}),
            )
            .await;
        let page = match page {
            Ok(p) => p,
            // Removed since it was listed.
            Err(e) if is_enoent(&e) => return Ok(out),
            Err(e) => return Err(e),
        };
        let v: Value = serde_json::from_str(&page).context("rados omap list: output")?;
        let vals = v["vals"].as_object().cloned().unwrap_or_default();
        for (k, val) in vals {
            after.clone_from(&k);
            out.push((k, val.as_str().unwrap_or("").to_owned()));
        }
        if !v["more"].as_bool().unwrap_or(false) {
            return Ok(out);
        }
    }
}

/// Resets every share stuck in `creating` or `error_deleting` to `error`, as a Manila
/// admin does with `manila reset-state --state error` (after which its owner can
/// delete it): a token for fake-manila's default admin (`admin`/`admin` in project
/// `admin`) from the Keystone at `auth_url`, the shares of all projects from the Manila
/// at `manila_url`, `reset_status` on each stuck one. How many were reset.
pub async fn reset_stuck_shares(auth_url: &str, manila_url: &str) -> anyhow::Result<usize> {
    const VERSION: (&str, &str) = ("X-OpenStack-Manila-API-Version", "2.45");
    let http = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .context("HTTP client")?;
    let auth = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "password": "admin", "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
    let resp = http
        .post(format!("{}/auth/tokens", auth_url.trim_end_matches('/')))
        .json(&auth)
        .send()
        .await
        .context("Keystone: admin token")?;
    anyhow::ensure!(
        resp.status().is_success(),
        "Keystone: admin token: HTTP {}",
        resp.status()
    );
    let token = resp
        .headers()
        .get("X-Subject-Token")
        .and_then(|v| v.to_str().ok())
        .context("Keystone: no X-Subject-Token")?
        .to_owned();
    let base = format!("{}/v2", manila_url.trim_end_matches('/'));
    let resp = http
        .get(format!("{base}/shares/detail?all_tenants=1"))
        .header("X-Auth-Token", &token)
        .header(VERSION.0, VERSION.1)
        .send()
        .await
        .context("Manila: listing shares")?;
    anyhow::ensure!(
        resp.status().is_success(),
        "Manila: listing shares: HTTP {}",
        resp.status()
    );
    let v: Value = resp.json().await.context("Manila: shares")?;
    let stuck: Vec<String> = v["shares"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["status"] == "creating" || s["status"] == "error_deleting")
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect();
    for id in &stuck {
        let resp = http
            .post(format!("{base}/shares/{id}/action"))
            .header("X-Auth-Token", &token)
            .header(VERSION.0, VERSION.1)
            .json(&json!({"reset_status": {"status": "error"}}))
            .send()
            .await
            .with_context(|| format!("Manila: reset_status of {id}"))?;
        anyhow::ensure!(
            resp.status().is_success(),
            "Manila: reset_status of {id}: HTTP {}",
            resp.status()
        );
    }
    Ok(stuck.len())
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
    /// Journal entries.
    pub journal_entries: usize,
    /// The journal's per-UUID objects.
    pub journal_objects: usize,
}

fn is_enoent(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<driver::ceph::CephError>()
            .is_some_and(driver::ceph::CephError::is_not_found)
    })
}
