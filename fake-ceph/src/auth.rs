//! The monitor's auth database and the `auth ...` and `fs authorize` commands.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::cephx::{Caps, EntityName, Key};
use crate::error::{CephError, CephResult};
use crate::store::{Marks, RecordKey};

/// One cephx entity: its key and caps.
#[derive(Debug, Clone)]
pub struct Entity {
    /// The secret key.
    pub key: Key,
    /// Parsed caps (shared with sessions opened under them).
    pub caps: Arc<Caps>,
}

/// Entities by name.
#[derive(Debug, Default)]
pub struct AuthDb {
    pub(crate) entities: BTreeMap<EntityName, Entity>,
    /// Every change is marked for the metadata store.
    pub(crate) marks: Marks,
}

/// An entity as the metadata store keeps it. No `Debug`: it holds the key.
#[derive(Serialize, Deserialize)]
struct EntityRecord {
    key: String,
    caps: BTreeMap<String, String>,
}

impl AuthDb {
    /// Looks up an entity.
    pub fn get(&self, name: &str) -> Option<&Entity> {
        self.entities.get(&EntityName::parse(name).ok()?)
    }

    /// Authenticates a presented entity and key; `None` if either is wrong.
    pub fn authenticate(&self, name: &str, key: &str) -> Option<(EntityName, Arc<Caps>)> {
        let name = EntityName::parse(name).ok()?;
        let e = self.entities.get(&name)?;
        e.key.matches(key).then(|| (name, e.caps.clone()))
    }

    /// Inserts or replaces an entity.
    pub fn put(&mut self, name: EntityName, key: Key, caps: Caps) {
        self.marks.mark(RecordKey::Entity(name.as_str().to_owned()));
        self.entities.insert(
            name,
            Entity {
                key,
                caps: Arc::new(caps),
            },
        );
    }

    /// Replaces an entity's caps.
    pub fn set_caps(&mut self, name: &EntityName, caps: Caps) -> bool {
        match self.entities.get_mut(name) {
            Some(e) => {
                self.marks.mark(RecordKey::Entity(name.as_str().to_owned()));
                e.caps = Arc::new(caps);
                true
            }
            None => false,
        }
    }

    /// Removes an entity; whether it existed.
    pub fn remove(&mut self, name: &EntityName) -> bool {
        let removed = self.entities.remove(name).is_some();
        if removed {
            self.marks.mark(RecordKey::Entity(name.as_str().to_owned()));
        }
        removed
    }

    /// Whether an entity exists.
    pub fn contains(&self, name: &EntityName) -> bool {
        self.entities.contains_key(name)
    }

    /// All entities, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&EntityName, &Entity)> {
        self.entities.iter()
    }

    /// How many entities there are.
    pub fn len(&self) -> usize {
        self.entities.len()
    }

    /// The store's record of an entity; `None` if there is none.
    pub(crate) fn record(&self, name: &str) -> Option<Vec<u8>> {
        let e = self.get(name)?;
        crate::store::encode(&EntityRecord {
            key: e.key.expose().to_owned(),
            caps: e.caps.raw().clone(),
        })
    }

    /// The entities of the store's records (nothing is marked).
    pub(crate) fn restore(records: &[(String, Vec<u8>)]) -> std::io::Result<Self> {
        let bad = |what: &str| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("metadata store: an entity record has a bad {what}"),
            )
        };
        let mut db = Self::default();
        for (name, bytes) in records {
            let r: EntityRecord = crate::store::decode("cephx entity", bytes)?;
            let name = EntityName::parse(name).map_err(|_| bad("name"))?;
            let key = Key::parse(&r.key).map_err(|_| bad("key"))?;
            let pairs: Vec<(String, String)> = r.caps.into_iter().collect();
            let caps = Caps::parse(&pairs).map_err(|_| bad("cap"))?;
            db.entities.insert(
                name,
                Entity {
                    key,
                    caps: Arc::new(caps),
                },
            );
        }
        Ok(db)
    }
}

/// Turns the flat `["mon", "allow r", "osd", "allow rw"]` list into pairs.
pub fn caps_pairs(list: &[&str]) -> CephResult<Vec<(String, String)>> {
    if !list.len().is_multiple_of(2) {
        return Err(CephError::inval(
            "bad capabilities request; odd number of arguments",
        ));
    }
    Ok(list
        .chunks(2)
        .map(|c| (c[0].to_owned(), c[1].to_owned()))
        .collect())
}
