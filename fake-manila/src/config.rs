//! What a fake-manila instance is started with. Defaults live here, in one place.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ceph::CephConfig;
use crate::microversion::Version;
use crate::secret::Secret;

/// Everything an instance is started with.
#[derive(Debug, Clone)]
pub struct Config {
    /// The URL clients reach Keystone at (`http://host:port`, no trailing slash): the
    /// auth URL is it + `/v3`, and the catalog's `identity` entry, Keystone's links and
    /// the `WWW-Authenticate` of Manila's 401 name it.
    pub keystone_url: String,
    /// The URL clients reach Manila at (`http://host:port`, no trailing slash): the
    /// catalog's `sharev2` entry is it + `/v2`, and version documents and resource links
    /// name it.
    pub manila_url: String,
    /// fake-ceph and the identity Manila uses there.
    pub ceph: CephConfig,
    /// Users, projects and application credentials.
    pub identity: IdentityConfig,
    /// How long issued tokens live.
    pub token_ttl: Duration,
    /// The most tokens one user holds at once (at least 1): a user past it loses its own
    /// oldest token, never another user's, so memory stays bounded under a token flood.
    pub tokens_per_user: usize,
    /// The newest microversion advertised (at most [`Version::MAX`]).
    pub max_version: Version,
    /// How long each asynchronous transition takes.
    pub delays: Delays,
    /// Default quotas of every project.
    pub quotas: Quotas,
    /// The master seed. IDs and fault decisions derive from it (from 0 when there is
    /// none). Tokens derive from it only when it is given, for reproducible simulations;
    /// without one they come from the OS's RNG, so that a service started by hand has
    /// tokens nobody can predict.
    pub seed: Option<u64>,
    /// Faults in force from the start.
    pub faults: Faults,
    /// How often a clone's progress is polled.
    pub clone_poll: Duration,
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
    /// The name of the one share type (CephFS native, DHSS=False).
    pub share_type_name: String,
}

impl Config {
    /// A healthy default configuration for Keystone at `keystone_url` and Manila at
    /// `manila_url` (base URLs, without `/v3` or `/v2`), backed by `ceph`.
    pub fn new(
        keystone_url: impl Into<String>,
        manila_url: impl Into<String>,
        ceph: CephConfig,
    ) -> Self {
        Self {
            keystone_url: keystone_url.into().trim_end_matches('/').to_owned(),
            manila_url: manila_url.into().trim_end_matches('/').to_owned(),
            ceph,
            identity: IdentityConfig::default(),
            token_ttl: Duration::from_secs(3600),
            // Assumed: Keystone's fernet tokens are stateless and have no such bound.
            // Clients hold far fewer within a TTL (CSI's controller caches one per
            // credentials, the CLI takes one per call); 10,000 tokens are a few MB.
            tokens_per_user: 10_000,
            max_version: Version::MAX,
            delays: Delays::default(),
            quotas: Quotas::default(),
            seed: None,
            faults: Faults::default(),
            clone_poll: Duration::from_millis(50),
            // Manila's `max_request_body_size` (oslo.middleware sizelimit).
            max_body: 114_688,
            share_type_name: "cephfstype".into(),
        }
    }
}

/// A user, as the users file lists them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// The user name (unique within the default domain).
    pub name: String,
    /// The password. A secret: never logged, redacted by `Debug`.
    pub password: Secret,
    /// The project the user has roles in.
    pub project: String,
    /// Role names; `admin` makes the user a cloud admin.
    #[serde(default = "default_roles")]
    pub roles: Vec<String>,
    /// A fixed user ID (32 hex digits); derived from the seed if absent.
    #[serde(default)]
    pub id: Option<String>,
}

fn default_roles() -> Vec<String> {
    vec!["member".into(), "reader".into()]
}

/// An application credential.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AppCredentialSpec {
    /// Its name (unique per user).
    pub name: String,
    /// Its secret. Never logged, redacted by `Debug`.
    pub secret: Secret,
    /// The user it belongs to (by name).
    pub user: String,
    /// A fixed ID; derived from the seed if absent.
    #[serde(default)]
    pub id: Option<String>,
}

/// A project with a fixed ID.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProjectSpec {
    /// Its name.
    pub name: String,
    /// Its ID (hex digits and dashes, as Manila's `project_id_regex` wants).
    pub id: String,
}

/// Users, projects and application credentials: the `--users` file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The users.
    pub users: Vec<UserSpec>,
    /// Application credentials.
    #[serde(default)]
    pub application_credentials: Vec<AppCredentialSpec>,
    /// Projects that need a fixed ID; the others get one derived from the seed.
    #[serde(default)]
    pub projects: Vec<ProjectSpec>,
}

impl Default for IdentityConfig {
    /// `demo`/`demo` in project `demo`, and `admin`/`admin` in project `admin` with the
    /// admin role.
    fn default() -> Self {
        Self {
            users: vec![
                UserSpec {
                    name: "demo".into(),
                    password: "demo".into(),
                    project: "demo".into(),
                    roles: default_roles(),
                    id: None,
                },
                UserSpec {
                    name: "admin".into(),
                    password: "admin".into(),
                    project: "admin".into(),
                    roles: vec!["admin".into(), "member".into(), "reader".into()],
                    id: None,
                },
            ],
            application_credentials: Vec::new(),
            projects: Vec::new(),
        }
    }
}

/// How long each asynchronous transition takes before its Ceph work starts. Zero is
/// allowed (benchmarks): the transition then only waits for Ceph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delays {
    /// `creating` → `available` (and `creating_from_snapshot`).
    pub create: Duration,
    /// `deleting` → gone.
    pub delete: Duration,
    /// `extending`/`shrinking` → `available`.
    pub resize: Duration,
    /// Access rule `queued_to_apply` → `applying` → `active` (each step), and deny.
    pub access: Duration,
    /// Snapshot `creating` → `available` and `deleting` → gone.
    pub snapshot: Duration,
}

impl Delays {
    /// The same delay everywhere.
    pub fn all(d: Duration) -> Self {
        Self {
            create: d,
            delete: d,
            resize: d,
            access: d,
            snapshot: d,
        }
    }
}

impl Default for Delays {
    /// Long enough for a client polling every 2 s to see a transitional state at times,
    /// short enough for tests.
    fn default() -> Self {
        Self::all(Duration::from_millis(500))
    }
}

/// Quota limits of one project. `-1` is unlimited, as in Manila.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quotas {
    /// Number of shares.
    pub shares: i64,
    /// Total share size, GiB.
    pub gigabytes: i64,
    /// Number of snapshots.
    pub snapshots: i64,
    /// Total snapshot size, GiB.
    pub snapshot_gigabytes: i64,
    /// Share networks (always 0 in use: DHSS=False).
    pub share_networks: i64,
    /// Share groups (not modelled; 0 in use).
    pub share_groups: i64,
    /// Share group snapshots (not modelled; 0 in use).
    pub share_group_snapshots: i64,
    /// Replicas (not modelled; 0 in use).
    pub share_replicas: i64,
    /// Replica size (not modelled; 0 in use).
    pub replica_gigabytes: i64,
    /// Largest single share, GiB.
    pub per_share_gigabytes: i64,
    /// Backups (not modelled; 0 in use).
    pub backups: i64,
    /// Backup size (not modelled; 0 in use).
    pub backup_gigabytes: i64,
}

impl Default for Quotas {
    /// Manila's defaults (`manila/quota.py`).
    fn default() -> Self {
        Self {
            shares: 50,
            gigabytes: 1000,
            snapshots: 50,
            snapshot_gigabytes: 1000,
            share_networks: 10,
            share_groups: 50,
            share_group_snapshots: 50,
            share_replicas: 100,
            replica_gigabytes: 1000,
            per_share_gigabytes: -1,
            backups: 10,
            backup_gigabytes: 1000,
        }
    }
}

impl Quotas {
    /// The limits as `(name, value)` pairs, in Manila's order.
    pub fn entries(&self) -> [(&'static str, i64); 12] {
        [
            ("gigabytes", self.gigabytes),
            ("shares", self.shares),
            ("snapshot_gigabytes", self.snapshot_gigabytes),
            ("snapshots", self.snapshots),
            ("share_networks", self.share_networks),
            ("share_groups", self.share_groups),
            ("share_group_snapshots", self.share_group_snapshots),
            ("share_replicas", self.share_replicas),
            ("replica_gigabytes", self.replica_gigabytes),
            ("per_share_gigabytes", self.per_share_gigabytes),
            ("backups", self.backups),
            ("backup_gigabytes", self.backup_gigabytes),
        ]
    }

    /// Sets one limit by name; false if the name is unknown.
    pub fn set(&mut self, name: &str, value: i64) -> bool {
        let slot = match name {
            "shares" => &mut self.shares,
            "gigabytes" => &mut self.gigabytes,
            "snapshots" => &mut self.snapshots,
            "snapshot_gigabytes" => &mut self.snapshot_gigabytes,
            "share_networks" => &mut self.share_networks,
            "share_groups" => &mut self.share_groups,
            "share_group_snapshots" => &mut self.share_group_snapshots,
            "share_replicas" => &mut self.share_replicas,
            "replica_gigabytes" => &mut self.replica_gigabytes,
            "per_share_gigabytes" => &mut self.per_share_gigabytes,
            "backups" => &mut self.backups,
            "backup_gigabytes" => &mut self.backup_gigabytes,
            _ => return false,
        };
        *slot = value;
        true
    }
}

/// Fault knobs. The default is a healthy service. Every decision draws from the seeded
/// fault RNG, in request order, so one seed and one request sequence give one outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Extra latency added to every Manila API request, in milliseconds.
    pub latency_ms: u64,
    /// Share of Manila API requests answered 500 or 503 (half each) without effect.
    pub error_rate: f64,
    /// Share of new shares that stay in `creating` for ever.
    pub stuck_creating_rate: f64,
    /// Share of new shares that end in `error` with the scheduler's user message (no
    /// valid host: action `001`, detail `002`).
    pub share_error_rate: f64,
    /// Share of new access rules that end in `error` (a driver failure, which leaves no
    /// user message in Manila).
    pub access_error_rate: f64,
}

impl Faults {
    /// Whether every rate is within `[0, 1]`.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("error_rate", self.error_rate),
            ("stuck_creating_rate", self.stuck_creating_rate),
            ("share_error_rate", self.share_error_rate),
            ("access_error_rate", self.access_error_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be within [0, 1], got {v}"));
            }
        }
        Ok(())
    }
}

/// Parses `name=value[,name=value...]` quota overrides.
pub fn parse_quota_overrides(spec: &str, quotas: &mut Quotas) -> Result<(), String> {
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("quota '{part}' is not name=value"))?;
        let v: i64 = v
            .trim()
            .parse()
            .map_err(|_| format!("quota '{part}': value is not an integer"))?;
        if v < -1 {
            return Err(format!("quota '{part}': value must be -1 or more"));
        }
        if !quotas.set(k.trim(), v) {
            return Err(format!("unknown quota '{}'", k.trim()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(spec: &str, expected: Result<(i64, i64), &str>) {
        let mut q = Quotas::default();
        match (parse_quota_overrides(spec, &mut q), expected) {
            (Ok(()), Ok((shares, gb))) => {
                assert_eq!((q.shares, q.gigabytes), (shares, gb), "{spec}");
            }
            (Err(e), Err(want)) => assert!(e.contains(want), "{spec}: {e}"),
            (got, want) => panic!("{spec}: got {got:?}, wanted {want:?}"),
        }
    }

    #[test]
    fn quota_overrides() {
        check("", Ok((50, 1000)));
        check("shares=2", Ok((2, 1000)));
        check("shares=2, gigabytes=-1", Ok((2, -1)));
        check("shares", Err("not name=value"));
        check("shares=x", Err("not an integer"));
        check("shares=-2", Err("-1 or more"));
        check("widgets=1", Err("unknown quota"));
    }

    #[test]
    fn users_file_parses() {
        let text = r#"{"users": [{"name": "alice", "password": "pw", "project": "p1", "roles": ["admin"]}],
            "application_credentials": [{"name": "ci", "secret": "s", "user": "alice"}]}"#;
        let c: IdentityConfig = serde_json::from_str(text).expect("valid users file");
        assert_eq!(c.users[0].roles, ["admin"]);
        assert_eq!(c.application_credentials[0].user, "alice");
        let c: IdentityConfig =
            serde_json::from_str(r#"{"users": [{"name": "a", "password": "b", "project": "c"}]}"#)
                .expect("defaults");
        assert_eq!(c.users[0].roles, ["member", "reader"]);
        assert!(serde_json::from_str::<IdentityConfig>(r#"{"users": [], "x": 1}"#).is_err());
    }

    #[test]
    fn fault_rates_are_checked() {
        assert!(Faults::default().validate().is_ok());
        let f = Faults {
            error_rate: 1.5,
            ..Faults::default()
        };
        assert!(f.validate().is_err());
    }
}
