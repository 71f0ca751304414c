//! The crash-safe journal that makes CreateVolume and CreateSnapshot idempotent, kept in
//! RADOS omap in the file system's metadata pool, with ceph-csi's object and key names:
//!
//! | object | keys |
//! |---|---|
//! | `csi.volumes.<instance>` | `csi.volume.<request name>` → `<uuid>` |
//! | `csi.volume.<uuid>` | `csi.volname`, `csi.imagename` (+ `csi.volume.size`, `csi.volume.source`) |
//! | `csi.snaps.<instance>` | `csi.snap.<request name>` → `<uuid>` |
//! | `csi.snap.<uuid>` | `csi.snapname`, `csi.imagename`, `csi.source` (+ `csi.snap.sourceid`) |
//! | `csi.clones.<instance>` | `csi.clone.<uuid>` → the source's volume or snapshot ID |
//!
//! The last object is ours, not ceph-csi's: it lists the clones whose CreateVolume has
//! not yet answered success. A key is written before the clone starts and removed just
//! before CreateVolume returns the ready volume, so a clone whose CreateVolume is never
//! retried (its PVC was deleted while the clone was pending) stays listed, and deleting
//! its source finds and removes it (see `ControllerService::remove_orphaned_clones`).
//!
//! A reservation first creates the per-UUID object exclusively with its keys in one
//! atomic write, then points the name at it. The UUID is derived from the request name,
//! so a crash between the two leaves an object that the retry of the same name takes up
//! (not an orphan); a crash after leaves a reservation that the retry finds.

use crate::ceph::{Admin, CephError, errno};

/// The namespace of the journal's name-derived UUIDs (ours; any fixed UUID would do).
const UUID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x7a1c_5e2e_64b3_4c0f_9d3e_2b7f_c1a0_5d19);

/// The key prefix of the unfinished-clone list.
const CLONE_KEY: &str = "csi.clone.";

/// What the journal knows of one request name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The request name (PVC or snapshot name).
    pub name: String,
    /// The UUID.
    pub uuid: String,
    /// The subvolume (or snapshot) name in Ceph.
    pub image: String,
    /// The requested size (volumes).
    pub size: Option<u64>,
    /// The content source (a volume or snapshot ID) or, for snapshots, the source
    /// volume ID.
    pub source: Option<String>,
    /// For snapshots: the parent subvolume name.
    pub parent: Option<String>,
}

/// The two kinds of journal entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Volumes (subvolumes).
    Volume,
    /// Snapshots.
    Snapshot,
}

impl Kind {
    fn dir(self, instance: &str) -> String {
        match self {
            Kind::Volume => format!("csi.volumes.{instance}"),
            Kind::Snapshot => format!("csi.snaps.{instance}"),
        }
    }

    fn name_key_prefix(self) -> &'static str {
        match self {
            Kind::Volume => "csi.volume.",
            Kind::Snapshot => "csi.snap.",
        }
    }

    fn object(self, uuid: &str) -> String {
        format!("{}{uuid}", self.name_key_prefix())
    }

    fn name_field(self) -> &'static str {
        match self {
            Kind::Volume => "csi.volname",
            Kind::Snapshot => "csi.snapname",
        }
    }

    fn size_field(self) -> &'static str {
        "csi.volume.size"
    }

    fn source_field(self) -> &'static str {
        match self {
            Kind::Volume => "csi.volume.source",
            Kind::Snapshot => "csi.snap.sourceid",
        }
    }
}

/// The journal of one file system (its metadata pool) for one driver instance.
#[derive(Debug, Clone, Copy)]
pub struct Journal<'a> {
    /// How to reach Ceph.
    pub admin: Admin<'a>,
    /// The metadata pool.
    pub pool: &'a str,
    /// The RADOS namespace.
    pub ns: &'a str,
    /// The instance ID.
    pub instance: &'a str,
}

/// Reads a record's fields from omap values.
fn record(
    kind: Kind,
    uuid: &str,
    vals: &serde_json::Map<String, serde_json::Value>,
) -> Option<Record> {
    let get = |k: &str| vals.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    Some(Record {
        name: get(kind.name_field())?,
        uuid: uuid.to_owned(),
        image: get("csi.imagename")?,
        size: get(kind.size_field()).and_then(|s| s.parse().ok()),
        source: get(kind.source_field()).filter(|s| !s.is_empty()),
        parent: get("csi.source").filter(|s| !s.is_empty()),
    })
}

impl Journal<'_> {
    /// The record a request name points at, if its reservation is complete. A name that
    /// points at a missing per-UUID object (a crash mid-undo) is cleaned up and `None`.
    pub async fn lookup(&self, kind: Kind, name: &str) -> Result<Option<Record>, CephError> {
        let dir = kind.dir(self.instance);
        let key = format!("{}{name}", kind.name_key_prefix());
        let found = match self.admin.omap_get(self.pool, self.ns, &dir, &[&key]).await {
            Ok(v) => v,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(uuid) = found.get(&key).and_then(|v| v.as_str()) else {
            return Ok(None);
        };
        match self.by_uuid(kind, uuid).await? {
            Some(r) if r.name == name => Ok(Some(r)),
            Some(r) => Err(CephError::Transport {
                prefix: "journal".into(),
                message: format!(
                    "internal state inconsistent: {key} points at {uuid}, which belongs to {}",
                    r.name
                ),
                cause: None,
            }),
            None => {
                self.admin
                    .omap_rm(self.pool, self.ns, &dir, &[&key])
                    .await?;
                Ok(None)
            }
        }
    }

    /// The record with this UUID.
    pub async fn by_uuid(&self, kind: Kind, uuid: &str) -> Result<Option<Record>, CephError> {
        let fields = [
            kind.name_field(),
            "csi.imagename",
            kind.size_field(),
            kind.source_field(),
            "csi.source",
        ];
        match self
            .admin
            .omap_get(self.pool, self.ns, &kind.object(uuid), &fields)
            .await
        {
            Ok(vals) => Ok(record(kind, uuid, &vals)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The UUID a request name reserves: derived from the name (a UUIDv5 within this
    /// instance's and kind's namespace), so that a reservation a crash cut short before
    /// its name's pointer was written is taken up by the retry, not left as an object no
    /// name leads to.
    pub fn uuid_for(&self, kind: Kind, name: &str) -> String {
        let scope = uuid::Uuid::new_v5(&UUID_NAMESPACE, kind.dir(self.instance).as_bytes());
        uuid::Uuid::new_v5(&scope, name.as_bytes()).to_string()
    }

    /// Reserves `name`: its per-UUID object first (exclusively, with its fields), then the
    /// name's pointer. Called only when no pointer leads to a record of `name`, so a
    /// per-UUID object already there is one a crash left behind (mid-reserve, or
    /// mid-undo): it is replaced by this request's.
    pub async fn reserve(
        &self,
        kind: Kind,
        name: &str,
        image_prefix: &str,
        size: Option<u64>,
        source: Option<&str>,
        parent: Option<&str>,
    ) -> Result<Record, CephError> {
        let uuid = self.uuid_for(kind, name);
        let image = format!("{image_prefix}{uuid}");
        let size_s = size.map(|s| s.to_string()).unwrap_or_default();
        let mut vals = vec![(kind.name_field(), name), ("csi.imagename", image.as_str())];
        if size.is_some() {
            vals.push((kind.size_field(), size_s.as_str()));
        }
        if let Some(s) = source {
            vals.push((kind.source_field(), s));
        }
        if let Some(p) = parent {
            vals.push(("csi.source", p));
        }
        let object = kind.object(&uuid);
        let create = || {
            self.admin
                .omap_create_exclusive(self.pool, self.ns, &object, &vals)
        };
        match create().await {
            Ok(()) => {}
            Err(e) if e.errno() == Some(errno::EEXIST) => {
                if let Some(r) = self.by_uuid(kind, &uuid).await?
                    && r.name != name
                {
                    return Err(CephError::Transport {
                        prefix: "journal".into(),
                        message: format!("{object} belongs to another name ({})", r.name),
                        cause: None,
                    });
                }
                match self.admin.object_rm(self.pool, self.ns, &object).await {
                    Err(e) if !e.is_not_found() => return Err(e),
                    _ => {}
                }
                create().await?;
            }
            Err(e) => return Err(e),
        }
        let key = format!("{}{name}", kind.name_key_prefix());
        if let Err(e) = self
            .admin
            .omap_set(
                self.pool,
                self.ns,
                &kind.dir(self.instance),
                &[(&key, &uuid)],
            )
            .await
        {
            // Best effort: the per-UUID object alone is harmless if this fails too, and
            // the retry takes it up.
            let _ = self.admin.object_rm(self.pool, self.ns, &object).await;
            return Err(e);
        }
        Ok(Record {
            name: name.to_owned(),
            uuid,
            image,
            size,
            source: source.map(str::to_owned),
            parent: parent.map(str::to_owned),
        })
    }

    /// Removes a reservation: the name's pointer, then the per-UUID object. Missing
    /// pieces are fine (a retry after a crash).
    pub async fn undo(&self, kind: Kind, name: &str, uuid: &str) -> Result<(), CephError> {
        let key = format!("{}{name}", kind.name_key_prefix());
        match self
            .admin
            .omap_rm(self.pool, self.ns, &kind.dir(self.instance), &[&key])
            .await
        {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        match self
            .admin
            .object_rm(self.pool, self.ns, &kind.object(uuid))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Lists the clone of reservation `uuid` as unfinished, from `source` (a volume or
    /// snapshot ID). Idempotent.
    pub async fn clone_started(&self, uuid: &str, source: &str) -> Result<(), CephError> {
        let key = format!("{CLONE_KEY}{uuid}");
        self.admin
            .omap_set(self.pool, self.ns, &self.clones(), &[(&key, source)])
            .await
    }

    /// Unlists the clone of reservation `uuid`: CreateVolume is about to return it, or it
    /// was removed. A missing key is fine.
    pub async fn clone_finished(&self, uuid: &str) -> Result<(), CephError> {
        let key = format!("{CLONE_KEY}{uuid}");
        match self
            .admin
            .omap_rm(self.pool, self.ns, &self.clones(), &[&key])
            .await
        {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }

    /// The reservation UUIDs of the unfinished clones of `source`.
    pub async fn clones_of(&self, source: &str) -> Result<Vec<String>, CephError> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let (vals, more) = match self
                .admin
                .omap_list(self.pool, self.ns, &self.clones(), &after, CLONE_KEY, 1024)
                .await
            {
                Ok(v) => v,
                Err(e) if e.is_not_found() => return Ok(out),
                Err(e) => return Err(e),
            };
            if let Some((k, _)) = vals.last() {
                after.clone_from(k);
            }
            out.extend(
                vals.into_iter()
                    .filter(|(_, v)| v == source)
                    .map(|(k, _)| k.trim_start_matches(CLONE_KEY).to_owned()),
            );
            if !more || after.is_empty() {
                return Ok(out);
            }
        }
    }

    /// Whether the clone of reservation `uuid` is still listed as unfinished.
    pub async fn clone_listed(&self, uuid: &str) -> Result<bool, CephError> {
        let key = format!("{CLONE_KEY}{uuid}");
        match self
            .admin
            .omap_get(self.pool, self.ns, &self.clones(), &[&key])
            .await
        {
            Ok(v) => Ok(v.contains_key(&key)),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn clones(&self) -> String {
        format!("csi.clones.{}", self.instance)
    }

    /// A page of (name, uuid) reservations after `start_after` (a name), and whether more
    /// follow.
    pub async fn list(
        &self,
        kind: Kind,
        start_after: &str,
        max: usize,
    ) -> Result<(Vec<(String, String)>, bool), CephError> {
        let prefix = kind.name_key_prefix();
        let after = if start_after.is_empty() {
            String::new()
        } else {
            format!("{prefix}{start_after}")
        };
        match self
            .admin
            .omap_list(
                self.pool,
                self.ns,
                &kind.dir(self.instance),
                &after,
                prefix,
                max,
            )
            .await
        {
            Ok((vals, more)) => Ok((
                vals.into_iter()
                    .map(|(k, v)| (k.trim_start_matches(prefix).to_owned(), v))
                    .collect(),
                more,
            )),
            Err(e) if e.is_not_found() => Ok((Vec::new(), false)),
            Err(e) => Err(e),
        }
    }
}
