//! RADOS objects with omap, per pool and namespace: enough for a CSI driver to keep a
//! crash-safe journal in Ceph, as ceph-csi does in the metadata pool's `csi` namespace.
//!
//! The operations are librados' (`create` with exclusive flag, `omap_set`,
//! `omap_get_vals_by_keys`, `omap_get_vals`, `omap_rm_keys`, `remove`, `stat`, object
//! listing), sent as JSON commands on the same endpoint as mon commands, with prefixes
//! `rados ...`. OSD caps (`pool=`, `namespace=` with Ceph's trailing-`*` prefix match,
//! `object_prefix`, `tag cephfs ...`) are enforced per object, and on listings as the OSD
//! enforces them on a PGLS (a namespace-limited grant lists only its namespace; `all`
//! needs a grant covering every namespace); values are UTF-8 strings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::{Marks, ObjectKey, OmapKey, RecordKey};

/// Longest object name the OSD accepts by default (`osd_max_object_name_len`).
pub(crate) const MAX_OBJECT_NAME: usize = 2048;
/// Most keys `omap_get_vals` returns in one call when no maximum is given.
pub(crate) const DEFAULT_MAX_RETURN: usize = 512;
/// librados' `LIBRADOS_ALL_NSPACES`: the namespace an object listing of every namespace
/// is sent in, and the one the OSD checks caps against for it. No object lives there.
pub const ALL_NSPACES: &str = "\u{1}";

#[derive(Debug, Clone, Default)]
pub(crate) struct Object {
    pub(crate) data: Vec<u8>,
    pub(crate) omap: BTreeMap<String, String>,
    pub(crate) mtime: std::time::Duration,
}

/// An object without its omap, as the metadata store keeps it (each omap key is a
/// record of its own, so that a journal of thousands of keys is not rewritten whole).
#[derive(Debug, Serialize, Deserialize)]
struct ObjectRecord {
    data: Vec<u8>,
    mtime: std::time::Duration,
}

/// Objects by (pool, namespace, name).
#[derive(Debug, Default)]
pub struct Rados {
    pub(crate) objects: BTreeMap<ObjectKey, Object>,
    /// Every change is marked for the metadata store.
    pub(crate) marks: Marks,
}

impl Rados {
    fn mark_object(&self, (p, n, o): &ObjectKey) {
        self.marks
            .mark(RecordKey::Object(p.clone(), n.clone(), o.clone()));
    }

    fn mark_omap(&self, (p, n, o): &ObjectKey, key: &str) {
        self.marks.mark(RecordKey::Omap(
            p.clone(),
            n.clone(),
            o.clone(),
            key.to_owned(),
        ));
    }

    /// The object, created if missing; it and its listed omap keys are marked changed.
    pub(crate) fn write<'k>(
        &mut self,
        key: ObjectKey,
        omap_keys: impl IntoIterator<Item = &'k str>,
    ) -> &mut Object {
        self.mark_object(&key);
        for k in omap_keys {
            self.mark_omap(&key, k);
        }
        self.objects.entry(key).or_default()
    }

    /// Removes an object and its omap; whether it existed.
    pub(crate) fn remove(&mut self, key: &ObjectKey) -> bool {
        let Some(o) = self.objects.remove(key) else {
            return false;
        };
        self.mark_object(key);
        for k in o.omap.keys() {
            self.mark_omap(key, k);
        }
        true
    }

    /// The store's record of an object (without its omap).
    pub(crate) fn object_record(&self, key: &ObjectKey) -> Option<Vec<u8>> {
        let o = self.objects.get(key)?;
        crate::store::encode(&ObjectRecord {
            data: o.data.clone(),
            mtime: o.mtime,
        })
    }

    /// The store's record of one omap key: its value.
    pub(crate) fn omap_record(&self, key: &ObjectKey, omap_key: &str) -> Option<Vec<u8>> {
        let o = self.objects.get(key)?;
        o.omap.get(omap_key).map(|v| v.as_bytes().to_vec())
    }

    /// The objects of the store's records (nothing is marked). An omap key without its
    /// object (which a commit never leaves) is dropped.
    pub(crate) fn restore(
        objects: Vec<(ObjectKey, Vec<u8>)>,
        omap: Vec<(OmapKey, Vec<u8>)>,
    ) -> std::io::Result<Self> {
        let mut r = Self::default();
        for (key, bytes) in objects {
            let rec: ObjectRecord = crate::store::decode("RADOS object", &bytes)?;
            r.objects.insert(
                key,
                Object {
                    data: rec.data,
                    omap: BTreeMap::new(),
                    mtime: rec.mtime,
                },
            );
        }
        for ((p, n, o, k), v) in omap {
            let v = String::from_utf8(v).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "metadata store: an omap value is not UTF-8",
                )
            })?;
            if let Some(obj) = r.objects.get_mut(&(p, n, o)) {
                obj.omap.insert(k, v);
            }
        }
        Ok(r)
    }

    /// How many objects exist in all pools.
    pub fn object_count(&self) -> usize {
        self.objects.len()
    }

    /// How many objects exist in one pool.
    pub fn pool_object_count(&self, pool: &str) -> usize {
        self.objects.keys().filter(|(p, _, _)| p == pool).count()
    }
}
