//! The `rados ...` commands: object create/remove/stat/list and omap get/set/list/remove
//! on [`crate::rados::Rados`], with OSD caps checked per object.

use crate::cephx::Perm;
use crate::command::{ArgSpec, ArgType, Args, CommandSpec, Daemon, opt, req};
use crate::error::{CephError, CephResult, Reply, errno};
use crate::rados::{ALL_NSPACES, DEFAULT_MAX_RETURN, MAX_OBJECT_NAME};
use crate::state::{Caller, CommandTable, Handler, Inner};
use crate::time::{ceph_stamp, now_unix};
use serde_json::{Value, json};

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
