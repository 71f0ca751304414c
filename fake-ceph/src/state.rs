//! The cluster's state as command handlers see it: [`Inner`] (configuration, the state
//! behind its locks, the MDS, the metadata store, the random sources), [`Shared`] (what
//! one lock guards), who sends a command ([`Caller`]) and what a handler is
//! ([`Handler`], [`CommandTable`]).
//!
//! A leaf for the handlers: it imports the parts' models (maps, `volumes`, RADOS,
//! entities, the MDS) but none of the modules that hold commands, so that every handler
//! module imports it and the registry above them ([`crate::cluster`]) imports them all.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use rand::{Rng, RngExt};
use rand_chacha::ChaCha8Rng;

use crate::auth::AuthDb;
use crate::cephx::{Caps, EntityName, Key};
use crate::command::{Args, CommandSpec};
use crate::config::Config;
use crate::error::{CephResult, Reply};
use crate::fault::{Faults, Verdict};
use crate::fsmap::Maps;
use crate::mds::Mds;
use crate::metrics::Metrics;
use crate::mgr::MgrThread;
use crate::rados::Rados;
use crate::store::{ClusterRecord, RecordKey, Store};
use crate::tree::{DataDir, Purger};
use crate::volumes::Volumes;

/// Who sends a command: an authenticated entity and its caps at that moment.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The entity.
    pub entity: EntityName,
    /// Its caps.
    pub caps: Arc<Caps>,
}

/// A command handler.
pub(crate) type Handler = fn(&Inner, &Args<'_>, &Caller) -> CephResult<Reply>;

/// A table of commands: each signature with its handler.
pub(crate) type CommandTable = &'static [(CommandSpec, Handler)];

/// State behind one lock: the maps, the `volumes` module, RADOS objects, faults.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) maps: Maps,
    pub(crate) volumes: Volumes,
    pub(crate) rados: Rados,
    pub(crate) faults: Faults,
}

/// The cluster's state. Fields drop in order: the purge thread stops before the data
/// directory is removed.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) started: Instant,
    pub(crate) auth: RwLock<AuthDb>,
    pub(crate) shared: Mutex<Shared>,
    pub(crate) mds: Mds,
    pub(crate) metrics: Metrics,
    pub(crate) rng: Mutex<ChaCha8Rng>,
    /// Keys and session tokens only ([`SecretSource`]).
    pub(crate) secret_rng: Mutex<ChaCha8Rng>,
    /// Runs `volumes` (mgr) commands one after another, off the async runtime.
    pub(crate) mgr: MgrThread,
    pub(crate) purger: Purger,
    /// Where changed records are committed before a command is answered.
    pub(crate) store: Store,
    /// How many times the cluster had started on its store before this start.
    pub(crate) boot: u64,
    pub(crate) data: DataDir,
}

/// A UUID (v4 layout) from the seeded RNG.
pub(crate) fn uuid_from(rng: &mut impl Rng) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl Inner {
    /// A fresh cephx key from the secrets' RNG.
    pub(crate) fn new_key(&self) -> Key {
        let now = crate::time::now_unix();
        Key::generate(
            &mut *self.secret_rng.lock(),
            now.as_secs() as u32,
            now.subsec_nanos(),
        )
    }

    /// Random bytes from the secrets' RNG (session tokens).
    pub(crate) fn secret_bytes(&self, out: &mut [u8]) {
        self.secret_rng.lock().fill_bytes(out);
    }

    /// A fresh UUID from the seeded RNG.
    pub(crate) fn new_uuid(&self) -> String {
        uuid_from(&mut *self.rng.lock())
    }

    /// A number in [0, 1) from the seeded RNG.
    pub(crate) fn draw(&self) -> f64 {
        self.rng.lock().random::<f64>()
    }

    pub(crate) fn fault_verdict(&self, prefix: &str) -> Verdict {
        let faults = self.shared.lock().faults.clone();
        if faults.rules.is_empty() {
            return Verdict::default();
        }
        faults.decide(prefix, || self.draw())
    }

    /// Commits every record marked up to `upto` (and any marked since), unless that is
    /// done already; blocks. The first caller commits for everyone waiting behind it.
    pub(crate) fn sync_through(&self, upto: u64) -> std::io::Result<()> {
        let store = &self.store;
        if store.is_committed(upto) {
            return Ok(());
        }
        let _leader = store.lead();
        if store.is_committed(upto) {
            return Ok(());
        }
        let (keys, covered, batch) = {
            // Marks are made under one of these locks: holding both, the set holds
            // whole commands.
            let sh = self.shared.lock();
            let auth = self.auth.read();
            let (keys, covered) = store.take_marked();
            let batch: Vec<(RecordKey, Option<Vec<u8>>)> = keys
                .iter()
                .map(|k| (k.clone(), self.record(&sh, &auth, k)))
                .collect();
            (keys, covered, batch)
        };
        match store.write(&batch) {
            Ok(()) => {
                store.set_committed(covered);
                Ok(())
            }
            Err(e) => {
                store.restore_marked(keys);
                Err(e)
            }
        }
    }

    /// A record's current value; `None` if it no longer exists.
    fn record(&self, sh: &Shared, auth: &AuthDb, key: &RecordKey) -> Option<Vec<u8>> {
        match key {
            RecordKey::Cluster => crate::store::encode(&ClusterRecord::new(
                sh.maps.fsid.clone(),
                sh.maps.created,
                sh.maps
                    .filesystems
                    .first()
                    .map(|f| f.name.clone())
                    .unwrap_or_default(),
                self.boot,
            )),
            RecordKey::Options => sh.volumes.options_record(),
            RecordKey::Entity(n) => auth.record(n),
            RecordKey::AuthMeta(id) => sh.volumes.auth_meta_record(id),
            RecordKey::Group(f, g) => sh.volumes.group_record(f, g),
            RecordKey::Subvolume(f, g, n) => {
                sh.volumes.subvolume_record(&self.config.clock, f, g, n)
            }
            RecordKey::Object(p, ns, o) => {
                sh.rados.object_record(&(p.clone(), ns.clone(), o.clone()))
            }
            RecordKey::Omap(p, ns, o, k) => {
                sh.rados.omap_record(&(p.clone(), ns.clone(), o.clone()), k)
            }
            RecordKey::Session(id) => self.mds.session_record(*id),
        }
    }

    /// Bytes used by every file system's tree (for `df` and unquoted `statfs`).
    pub(crate) fn fs_used_bytes(&self) -> u64 {
        crate::tree::du(&self.data.root().join("fs"))
    }
}
