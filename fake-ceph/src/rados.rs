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
use serde_json::{Value, json};

use crate::cephx::Perm;
use crate::command::{ArgSpec, ArgType, Args, CommandSpec, Daemon, opt, req};
use crate::error::{CephError, CephResult, Reply, errno};
use crate::state::{Caller, CommandTable, Handler, Inner};
use crate::store::{Marks, ObjectKey, OmapKey, RecordKey};
use crate::time::{ceph_stamp, now_unix};

/// Longest object name the OSD accepts by default (`osd_max_object_name_len`).
const MAX_OBJECT_NAME: usize = 2048;
/// Most keys `omap_get_vals` returns in one call when no maximum is given.
const DEFAULT_MAX_RETURN: usize = 512;
/// librados' `LIBRADOS_ALL_NSPACES`: the namespace an object listing of every namespace
/// is sent in, and the one the OSD checks caps against for it. No object lives there.
pub const ALL_NSPACES: &str = "\u{1}";

#[derive(Debug, Clone, Default)]
struct Object {
    data: Vec<u8>,
    omap: BTreeMap<String, String>,
    mtime: std::time::Duration,
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
    objects: BTreeMap<ObjectKey, Object>,
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
    fn write<'k>(
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
    fn remove(&mut self, key: &ObjectKey) -> bool {
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

struct Target<'a> {
    pool: &'a str,
    ns: &'a str,
    object: &'a str,
}

impl Target<'_> {
    fn key(&self) -> (String, String, String) {
        (
            self.pool.to_owned(),
            self.ns.to_owned(),
            self.object.to_owned(),
        )
    }
}

fn no_object(t: &Target<'_>) -> CephError {
    CephError::noent(format!(
        "error operating on object {}/{}/{}: (2) No such file or directory",
        t.pool, t.ns, t.object
    ))
}

/// Resolves and authorises the target of a RADOS operation.
fn target<'a>(inner: &Inner, args: &Args<'a>, c: &Caller, need: Perm) -> CephResult<Target<'a>> {
    let pool = args.req_str("pool")?;
    let ns = args.str("namespace").unwrap_or("");
    let object = args.str("object").unwrap_or("");
    if object.len() > MAX_OBJECT_NAME || object.contains('\0') {
        return Err(CephError::new(errno::ENAMETOOLONG, "object name too long"));
    }
    // librados refuses an operation on an object in the listing-only namespace.
    if ns == ALL_NSPACES {
        return Err(CephError::inval("invalid namespace"));
    }
    check_osd_caps(inner, c, pool, ns, object, need)?;
    Ok(Target { pool, ns, object })
}

/// Whether `c` may do what needs `need` on `object` in `pool`/`ns` (EPERM if not; ENOENT
/// for a missing pool).
fn check_osd_caps(
    inner: &Inner,
    c: &Caller,
    pool: &str,
    ns: &str,
    object: &str,
    need: Perm,
) -> CephResult<()> {
    let sh = inner.shared.lock();
    let p = sh.maps.pool_by_name(pool).ok_or_else(|| {
        CephError::noent(format!(
            "error opening pool '{pool}': (2) No such file or directory"
        ))
    })?;
    if !c.caps.osd_allows(pool, &p.tags, ns, object, need) {
        return Err(CephError::new(
            errno::EPERM,
            "error operating on object: (1) Operation not permitted",
        ));
    }
    Ok(())
}

fn need_object<'a>(t: &Target<'a>) -> CephResult<()> {
    if t.object.is_empty() {
        return Err(CephError::inval(
            "missing required parameter object(CephString)",
        ));
    }
    Ok(())
}

/// `create` (optionally exclusive), with optional omap values set in the same atomic
/// write op: an exclusive create that finds the object leaves its omap untouched.
fn rados_create(inner: &Inner, args: &Args<'_>, c: &Caller) -> CephResult<Reply> {
    let t = target(inner, args, c, Perm::RW)?;
    need_object(&t)?;
    let vals = match args.value("vals") {
        Some(v) => string_map(v)?,
        None => Vec::new(),
    };
    let mut sh = inner.shared.lock();
    let key = t.key();
    if sh.rados.objects.contains_key(&key) && args.flag("exclusive") {
        return Err(CephError::new(
            errno::EEXIST,
            format!("error creating {}/{}: (17) File exists", t.pool, t.object),
        ));
    }
    let o = sh.rados.write(key, vals.iter().map(|(k, _)| k.as_str()));
    o.omap.extend(vals);
    o.mtime = now_unix();
    Ok(Reply::ok(""))
}

fn string_map(v: &Value) -> CephResult<Vec<(String, String)>> {
    let Value::Object(vals) = v else {
        return Err(CephError::inval("bad or missing field 'vals'"));
    };
    vals.iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|v| (k.clone(), v.to_owned()))
                .ok_or_else(|| CephError::inval(format!("bad or missing field 'vals.{k}'")))
        })
        .collect()
}

fn rados_rm(inner: &Inner, args: &Args<'_>, c: &Caller) -> CephResult<Reply> {
    let t = target(inner, args, c, Perm::RW)?;
    need_object(&t)?;
    let mut sh = inner.shared.lock();
    if !sh.rados.remove(&t.key()) {
        return Err(no_object(&t));
    }
    Ok(Reply::ok(""))
}

fn rados_stat(inner: &Inner, args: &Args<'_>, c: &Caller) -> CephResult<Reply> {
    let t = target(inner, args, c, Perm::R)?;
    need_object(&t)?;
    let sh = inner.shared.lock();
    let o = sh
        .rados
        .objects
        .get(&t.key())
        .ok_or_else(|| no_object(&t))?;
    let v = json!({"pool": t.pool, "namespace": t.ns, "object": t.object, "size": o.data.len(), "mtime": ceph_stamp(o.mtime)});
    Ok(Reply::ok(v.to_string()))
}

/// An object listing is a PGLS op: the OSD checks the caller's caps for a read in the
/// listed namespace with no object name, so a grant limited to a namespace lists only
/// that namespace, listing every namespace (`all`) needs a grant naming none (or a
/// wildcard one matching [`ALL_NSPACES`]), and an `object_prefix` grant lists nothing.
fn rados_ls(inner: &Inner, args: &Args<'_>, c: &Caller) -> CephResult<Reply> {
    let all_ns = args.flag("all");
    let t = if all_ns {
        let pool = args.req_str("pool")?;
        check_osd_caps(inner, c, pool, ALL_NSPACES, "", Perm::R)?;
        Target {
            pool,
            ns: ALL_NSPACES,
            object: "",
        }
    } else {
        target(inner, args, c, Perm::R)?
    };
    let sh = inner.shared.lock();
    let v: Vec<Value> = sh
        .rados
        .objects
        .keys()
        .filter(|(p, n, _)| p == t.pool && (all_ns || n == t.ns))
        .map(|(_, n, o)| json!({"namespace": n, "name": o}))
        .collect();
    Ok(Reply::ok(Value::Array(v).to_string()))
}

fn rados_omap_set(inner: &Inner, args: &Args<'_>, c: &Caller) -> CephResult<Reply> {
    let t = target(inner, args, c, Perm::RW)?;
    need_object(&t)?;
    let kv = string_map(args.value("vals").unwrap_or(&Value::Null))?;
    let mut sh = inner.shared.lock();
    // Like librados, omap_set on a missing object creates it.
    let o = sh.rados.write(t.key(), kv.iter().map(|(k, _)| k.as_str()));
    o.omap.extend(kv);
    o.mtime = now_unix();
    Ok(Reply::ok(""))
}

fn rados_omap_get(inner: &Inner, args: &Args<'_>, c: &Caller) -> CephResult<Reply> {
    let t = target(inner, args, c, Perm::R)?;
    need_object(&t)?;
    let keys = args.str_list("keys");
    let sh = inner.shared.lock();
    let o = sh
        .rados
        .objects
        .get(&t.key())
        .ok_or_else(|| no_object(&t))?;
    let mut out = serde_json::Map::new();
    for k in keys {
        if let Some(v) = o.omap.get(k) {
            out.insert(k.to_owned(), json!(v));
        }
    }
    Ok(Reply::ok(Value::Object(out).to_string()))
}

fn rados_omap_list(inner: &Inner, args: &Args<'_>, c: &Caller) -> CephResult<Reply> {
    let t = target(inner, args, c, Perm::R)?;
    need_object(&t)?;
    let start_after = args.str("start_after").unwrap_or("");
    let prefix = args.str("filter_prefix").unwrap_or("");
    let max = match args.int("max_return") {
        Some(m) if m > 0 => m as usize,
        Some(_) => return Err(CephError::inval("max_return must be positive")),
        None => DEFAULT_MAX_RETURN,
    };
    let sh = inner.shared.lock();
    let o = sh
        .rados
        .objects
        .get(&t.key())
        .ok_or_else(|| no_object(&t))?;
    let mut it = o
        .omap
        .range::<str, _>((
            std::ops::Bound::Excluded(start_after),
            std::ops::Bound::Unbounded,
        ))
        .filter(|(k, _)| k.starts_with(prefix));
    let mut vals = serde_json::Map::new();
    for (k, v) in it.by_ref().take(max) {
        vals.insert(k.clone(), json!(v));
    }
    let more = it.next().is_some();
    Ok(Reply::ok(json!({"vals": vals, "more": more}).to_string()))
}

fn rados_omap_rm(inner: &Inner, args: &Args<'_>, c: &Caller) -> CephResult<Reply> {
    let t = target(inner, args, c, Perm::RW)?;
    need_object(&t)?;
    let keys = args.str_list("keys");
    let mut sh = inner.shared.lock();
    if !sh.rados.objects.contains_key(&t.key()) {
        return Err(no_object(&t));
    }
    let o = sh.rados.write(t.key(), keys.iter().copied());
    for k in keys {
        o.omap.remove(k);
    }
    o.mtime = now_unix();
    Ok(Reply::ok(""))
}

const POOL: ArgSpec = req("pool", ArgType::Str);
const NS: ArgSpec = opt("namespace", ArgType::Str);
const OBJ: ArgSpec = req("object", ArgType::Str);

macro_rules! rcmd {
    ($prefix:literal, $args:expr, $handler:expr) => {
        (
            CommandSpec {
                prefix: $prefix,
                daemon: Daemon::Osd,
                module: "osd",
                perm: "rw",
                args: $args,
            },
            $handler as Handler,
        )
    };
}

/// The RADOS object commands.
pub(crate) const COMMANDS: CommandTable = &[
    rcmd!(
        "rados create",
        &[
            POOL,
            NS,
            OBJ,
            opt("exclusive", ArgType::Bool),
            opt("vals", ArgType::Object)
        ],
        rados_create
    ),
    rcmd!("rados rm", &[POOL, NS, OBJ], rados_rm),
    rcmd!("rados stat", &[POOL, NS, OBJ], rados_stat),
    rcmd!("rados ls", &[POOL, NS, opt("all", ArgType::Bool)], rados_ls),
    rcmd!(
        "rados omap set",
        &[POOL, NS, OBJ, req("vals", ArgType::Object)],
        rados_omap_set
    ),
    rcmd!(
        "rados omap get",
        &[POOL, NS, OBJ, req("keys", ArgType::StrList)],
        rados_omap_get
    ),
    rcmd!(
        "rados omap list",
        &[
            POOL,
            NS,
            OBJ,
            opt("start_after", ArgType::Str),
            opt("filter_prefix", ArgType::Str),
            opt("max_return", ArgType::Int)
        ],
        rados_omap_list
    ),
    rcmd!(
        "rados omap rm",
        &[POOL, NS, OBJ, req("keys", ArgType::StrList)],
        rados_omap_rm
    ),
];
