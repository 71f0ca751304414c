//! The service's state: configuration, the identity directory, the Manila database
//! (shares, access rules, snapshots, messages, quotas), the Ceph client, the seeded RNGs
//! and the faults in force. One [`AppState`] is one service; clones share it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ceph::{CephClient, CephError};
use crate::config::{Config, Faults, Quotas};
use crate::identity::{Identity, TokenSource};
use crate::secret::Secret;
use crate::time::Timestamp;

/// A failure to start the service.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The identity config is inconsistent.
    #[error("identity config: {0}")]
    Identity(String),
    /// The fault config is out of range.
    #[error("faults: {0}")]
    Faults(String),
    /// The Ceph client could not be built.
    #[error("ceph client: {0}")]
    Ceph(#[from] CephError),
}

/// A share's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ShareStatus {
    Creating,
    CreatingFromSnapshot,
    Available,
    Error,
    Extending,
    ExtendingError,
    Shrinking,
    ShrinkingError,
    ShrinkingPossibleDataLossError,
    Deleting,
    ErrorDeleting,
}

impl ShareStatus {
    /// Manila's name (`manila/common/constants.py`).
    pub fn as_str(self) -> &'static str {
        match self {
            ShareStatus::Creating => "creating",
            ShareStatus::CreatingFromSnapshot => "creating_from_snapshot",
            ShareStatus::Available => "available",
            ShareStatus::Error => "error",
            ShareStatus::Extending => "extending",
            ShareStatus::ExtendingError => "extending_error",
            ShareStatus::Shrinking => "shrinking",
            ShareStatus::ShrinkingError => "shrinking_error",
            ShareStatus::ShrinkingPossibleDataLossError => "shrinking_possible_data_loss_error",
            ShareStatus::Deleting => "deleting",
            ShareStatus::ErrorDeleting => "error_deleting",
        }
    }

    /// Parses a name, for `reset_status` and list filters.
    pub fn parse(s: &str) -> Option<Self> {
        use ShareStatus::*;
        [
            Creating,
            CreatingFromSnapshot,
            Available,
            Error,
            Extending,
            ExtendingError,
            Shrinking,
            ShrinkingError,
            ShrinkingPossibleDataLossError,
            Deleting,
            ErrorDeleting,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// One export location of a share.
#[derive(Debug, Clone)]
pub struct ExportLocation {
    /// Its ID.
    pub id: String,
    /// `mon1:port,mon2:port:/volumes/<group>/<share>/<uuid>`.
    pub path: String,
    /// Whether it is the preferred one.
    pub preferred: bool,
    /// When it was made.
    pub created_at: Timestamp,
}

/// A share.
#[derive(Debug, Clone)]
pub struct Share {
    /// Its ID (a UUID); also the subvolume name.
    pub id: String,
    /// Creation order, for stable sorting.
    pub seq: u64,
    /// Its (display) name.
    pub name: Option<String>,
    /// Its description.
    pub description: Option<String>,
    /// The owning project.
    pub project_id: String,
    /// The creating user.
    pub user_id: String,
    /// Size in GiB.
    pub size: u64,
    /// Its status.
    pub status: ShareStatus,
    /// The share type's ID.
    pub share_type_id: String,
    /// The protocol, upper case.
    pub share_proto: String,
    /// The snapshot it was created from.
    pub snapshot_id: Option<String>,
    /// Its availability zone.
    pub availability_zone: String,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
    /// Whether other projects may see it.
    pub is_public: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Option<Timestamp>,
    /// Where it can be mounted (empty until available).
    pub export_locations: Vec<ExportLocation>,
    /// The size an extension in progress has reserved against the quota.
    pub reserved_size: Option<u64>,
    /// The ID of its one instance.
    pub instance_id: String,
    /// Serializes access-rule work (apply, deny, delete) on this share's subvolume.
    pub access_lock: Arc<tokio::sync::Mutex<()>>,
}

/// An access rule's `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum RuleState {
    QueuedToApply,
    Applying,
    Active,
    Error,
    QueuedToDeny,
    Denying,
}

impl RuleState {
    /// Manila's name (≥ 2.28).
    pub fn as_str(self) -> &'static str {
        match self {
            RuleState::QueuedToApply => "queued_to_apply",
            RuleState::Applying => "applying",
            RuleState::Active => "active",
            RuleState::Error => "error",
            RuleState::QueuedToDeny => "queued_to_deny",
            RuleState::Denying => "denying",
        }
    }

    /// Whether the rule is on its way somewhere.
    pub fn is_transitional(self) -> bool {
        !matches!(self, RuleState::Active | RuleState::Error)
    }
}

/// An access rule.
#[derive(Debug, Clone)]
pub struct AccessRule {
    /// Its ID.
    pub id: String,
    /// Creation order.
    pub seq: u64,
    /// The share it belongs to.
    pub share_id: String,
    /// `ip`, `user`, `cert` or `cephx`.
    pub access_type: String,
    /// Who: for cephx the Ceph auth ID.
    pub access_to: String,
    /// `rw` or `ro`.
    pub access_level: String,
    /// Its state.
    pub state: RuleState,
    /// The cephx key, once active.
    pub access_key: Option<Secret>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Option<Timestamp>,
    /// Rule metadata (≥ 2.45).
    pub metadata: BTreeMap<String, String>,
}

/// A snapshot's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum SnapshotStatus {
    Creating,
    Available,
    Error,
    Deleting,
    ErrorDeleting,
}

impl SnapshotStatus {
    /// Manila's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotStatus::Creating => "creating",
            SnapshotStatus::Available => "available",
            SnapshotStatus::Error => "error",
            SnapshotStatus::Deleting => "deleting",
            SnapshotStatus::ErrorDeleting => "error_deleting",
        }
    }
}

/// A share snapshot.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Its ID.
    pub id: String,
    /// Creation order.
    pub seq: u64,
    /// The share it is of.
    pub share_id: String,
    /// Its name.
    pub name: Option<String>,
    /// Its description.
    pub description: Option<String>,
    /// Size in GiB (the share's size when taken).
    pub size: u64,
    /// The share's protocol.
    pub share_proto: String,
    /// Its status.
    pub status: SnapshotStatus,
    /// The owning project.
    pub project_id: String,
    /// The creating user.
    pub user_id: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Option<Timestamp>,
    /// Metadata (≥ 2.73).
    pub metadata: BTreeMap<String, String>,
    /// The subvolume snapshot's name (`<snapshot id>_<instance id>`, as Manila's driver
    /// names it).
    pub ceph_name: String,
}

/// A user message (`/messages`, ≥ 2.37).
#[derive(Debug, Clone)]
pub struct Message {
    /// Its ID.
    pub id: String,
    /// Creation order.
    pub seq: u64,
    /// The project it is for.
    pub project_id: String,
    /// What was being done.
    pub action: crate::message::Action,
    /// Why it failed.
    pub detail: crate::message::Detail,
    /// The resource type (`SHARE`, `SHARE_ACCESS_RULE`...).
    pub resource_type: &'static str,
    /// The resource's ID.
    pub resource_id: String,
    /// The request that led to it.
    pub request_id: String,
    /// When.
    pub created_at: Timestamp,
    /// When it expires.
    pub expires_at: Timestamp,
}

/// The database.
#[derive(Debug, Default)]
pub struct Db {
    /// Shares by ID.
    pub shares: HashMap<String, Share>,
    /// Access rules by ID.
    pub rules: HashMap<String, AccessRule>,
    /// Snapshots by ID.
    pub snapshots: HashMap<String, Snapshot>,
    /// User messages by ID.
    pub messages: HashMap<String, Message>,
    /// Quota overrides per project.
    pub quotas: HashMap<String, Quotas>,
    next_seq: u64,
}

impl Db {
    /// The next creation sequence number.
    pub fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }
}

/// What the service holds.
#[derive(Debug)]
pub struct Inner {
    config: Config,
    identity: Identity,
    ceph: CephClient,
    db: Mutex<Db>,
    rng: Mutex<ChaCha8Rng>,
    fault_rng: Mutex<ChaCha8Rng>,
    faults: Mutex<Faults>,
    default_type_id: String,
    metrics: crate::metrics::Metrics,
}

/// The service state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl AppState {
    /// A service for `config`.
    pub fn new(config: Config) -> Result<Self, StartError> {
        config.faults.validate().map_err(StartError::Faults)?;
        let seed = config.seed.unwrap_or(0);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Faults draw from their own stream, so IDs do not shift fault decisions.
        let fault_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6661_756c_7473);
        let identity = Identity::new(
            &config.identity,
            config.tokens_per_user,
            TokenSource::new(config.seed),
            &mut rng,
        )
        .map_err(StartError::Identity)?;
        let default_type_id = uuid_from(&mut rng);
        let ceph = CephClient::new(config.ceph.clone())?;
        Ok(Self {
            inner: Arc::new(Inner {
                faults: Mutex::new(config.faults.clone()),
                config,
                identity,
                ceph,
                db: Mutex::new(Db::default()),
                rng: Mutex::new(rng),
                fault_rng: Mutex::new(fault_rng),
                default_type_id,
                metrics: crate::metrics::Metrics::new(),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The identity directory and tokens.
    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// The Ceph client.
    pub fn ceph(&self) -> &CephClient {
        &self.inner.ceph
    }

    /// The database, locked. Never held across an await.
    pub fn db(&self) -> MutexGuard<'_, Db> {
        self.inner.db.lock()
    }

    /// The metrics.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.metrics
    }

    /// The ID RNG, locked.
    pub fn rng(&self) -> MutexGuard<'_, ChaCha8Rng> {
        self.inner.rng.lock()
    }

    /// A new UUID from the seeded RNG.
    pub fn new_uuid(&self) -> String {
        uuid_from(&mut self.rng())
    }

    /// The default share type's ID.
    pub fn default_type_id(&self) -> &str {
        &self.inner.default_type_id
    }

    /// Whether `name_or_id` names the one share type.
    pub fn is_share_type(&self, name_or_id: &str) -> bool {
        name_or_id == self.inner.default_type_id || name_or_id == self.inner.config.share_type_name
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.inner.faults.lock().clone()
    }

    /// Replaces the faults in force.
    pub fn set_faults(&self, faults: Faults) -> Result<(), String> {
        faults.validate()?;
        *self.inner.faults.lock() = faults;
        Ok(())
    }

    /// One fault draw: true with probability `rate`. A zero rate draws nothing, so a
    /// healthy service's fault stream does not move.
    pub fn draw(&self, rate: f64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        let x: f64 = {
            let mut rng = self.inner.fault_rng.lock();
            let v = rng.next_u64() >> 11;
            v as f64 / (1u64 << 53) as f64
        };
        x < rate
    }

    /// The quota limits of a project.
    pub fn quotas(&self, db: &Db, project_id: &str) -> Quotas {
        db.quotas
            .get(project_id)
            .copied()
            .unwrap_or(self.inner.config.quotas)
    }
}

/// Waits `d` before a transition step. Zero does not go through the timer (whose tick
/// is a millisecond): the task only yields, so zero-delay benchmarks measure the work.
pub async fn pause(d: std::time::Duration) {
    if d.is_zero() {
        tokio::task::yield_now().await;
    } else {
        tokio::time::sleep(d).await;
    }
}

/// A version-4-shaped UUID from the RNG.
pub fn uuid_from(rng: &mut ChaCha8Rng) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

/// What a project uses: `(shares, gigabytes, snapshots, snapshot_gigabytes)`.
pub fn usage(db: &Db, project_id: &str) -> (i64, i64, i64, i64) {
    let (mut n, mut gb) = (0i64, 0i64);
    for s in db.shares.values().filter(|s| s.project_id == project_id) {
        n += 1;
        gb += i64::try_from(s.reserved_size.unwrap_or(s.size).max(s.size)).unwrap_or(i64::MAX);
    }
    let (mut sn, mut sgb) = (0i64, 0i64);
    for s in db.snapshots.values().filter(|s| s.project_id == project_id) {
        sn += 1;
        sgb += i64::try_from(s.size).unwrap_or(i64::MAX);
    }
    (n, gb, sn, sgb)
}
