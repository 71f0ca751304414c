//! The `auth` commands (`auth get`, `auth get-or-create`, `auth caps`, `auth rm`,
//! `fs authorize`, ...) on the entity database ([`crate::auth::AuthDb`]).

use crate::auth::{Entity, caps_pairs};
use crate::cephx::{Caps, EntityName, keyring_section};
use crate::command::{ArgType, Args, CommandSpec, Daemon, Format, opt, req};
use crate::error::{CephError, CephResult, Reply, errno};
use crate::state::{Caller, CommandTable, Handler, Inner};
use serde_json::{Value, json};

fn entity_json(name: &EntityName, e: &Entity) -> Value {
    json!({"entity": name.as_str(), "key": e.key.expose(), "caps": e.caps.raw()})
}

fn render_entities(f: Format, list: &[(&EntityName, &Entity)]) -> String {
    if f.is_json() {
        let v: Vec<Value> = list.iter().map(|(n, e)| entity_json(n, e)).collect();
        f.render(&Value::Array(v))
    } else {
        list.iter()
            .map(|(n, e)| keyring_section(n, &e.key, &e.caps))
            .collect()
    }
}

/// `get-or-create` and `fs authorize` print a keyring without the caps lines.
fn render_created(f: Format, name: &EntityName, e: &Entity) -> String {
    if f.is_json() {
        render_entities(f, &[(name, e)])
    } else {
        format!("[{name}]\n\tkey = {}\n", e.key.expose())
    }
}

fn entity_arg(args: &Args<'_>) -> CephResult<EntityName> {
    EntityName::parse(args.req_str("entity")?)
}

fn not_found(name: &EntityName) -> CephError {
    CephError::noent(format!("failed to find {name} in keyring"))
}

fn auth_get(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let name = entity_arg(args)?;
    let db = inner.auth.read();
    let e = db.entities.get(&name).ok_or_else(|| not_found(&name))?;
    Ok(Reply::ok_with_status(
        render_entities(args.format(), &[(&name, e)]),
        format!("exported keyring for {name}"),
    ))
}

fn auth_get_key(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let name = entity_arg(args)?;
    let db = inner.auth.read();
    let e = db
        .entities
        .get(&name)
        .ok_or_else(|| CephError::noent(format!("don't have {name}")))?;
    let f = args.format();
    if f.is_json() {
        return Ok(Reply::ok(f.render(&json!({"key": e.key.expose()}))));
    }
    Ok(Reply::ok(e.key.expose().to_owned()))
}

fn auth_ls(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let db = inner.auth.read();
    let f = args.format();
    if f.is_json() {
        let v: Vec<Value> = db.iter().map(|(n, e)| entity_json(n, e)).collect();
        return Ok(Reply::ok(f.render(&json!({"auth_dump": v}))));
    }
    let mut out = String::new();
    for (n, e) in db.iter() {
        out.push_str(&format!("{n}\n\tkey: {}\n", e.key.expose()));
        for (svc, text) in e.caps.raw() {
            out.push_str(&format!("\tcaps: [{svc}] {text}\n"));
        }
    }
    Ok(Reply::ok_with_status(out, "installed auth entries:\n"))
}

/// Creates an entity with `caps` or, if it exists, checks that its caps are the same.
fn get_or_create(
    inner: &Inner,
    name: &EntityName,
    pairs: &[(String, String)],
) -> CephResult<Entity> {
    let caps = Caps::parse(pairs)?;
    let mut db = inner.auth.write();
    if let Some(e) = db.entities.get(name) {
        for (svc, text) in pairs {
            if e.caps.raw().get(svc) != Some(text) {
                return Err(CephError::inval(format!(
                    "key for {name} exists but cap {svc} does not match"
                )));
            }
        }
        return Ok(e.clone());
    }
    let key = inner.new_key();
    db.put(name.clone(), key, caps);
    db.entities
        .get(name)
        .cloned()
        .ok_or_else(|| not_found(name))
}

fn auth_get_or_create(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let name = entity_arg(args)?;
    let pairs = caps_pairs(&args.str_list("caps"))?;
    let e = get_or_create(inner, &name, &pairs)?;
    Ok(Reply::ok(render_created(args.format(), &name, &e)))
}

fn auth_get_or_create_key(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let name = entity_arg(args)?;
    let pairs = caps_pairs(&args.str_list("caps"))?;
    let e = get_or_create(inner, &name, &pairs)?;
    let f = args.format();
    if f.is_json() {
        return Ok(Reply::ok(f.render(&json!({"key": e.key.expose()}))));
    }
    Ok(Reply::ok(e.key.expose().to_owned()))
}

fn auth_add(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let name = entity_arg(args)?;
    let pairs = caps_pairs(&args.str_list("caps"))?;
    let caps = Caps::parse(&pairs)?;
    let mut db = inner.auth.write();
    if let Some(e) = db.entities.get(&name) {
        for (svc, text) in &pairs {
            if e.caps.raw().get(svc) != Some(text) {
                return Err(CephError::inval(format!(
                    "entity {name} exists but cap {svc} does not match"
                )));
            }
        }
        // Already there with these caps: success, and nothing to say.
        return Ok(Reply::ok(""));
    }
    let key = inner.new_key();
    db.put(name.clone(), key, caps);
    Ok(Reply::ok_with_status("", format!("added key for {name}")))
}

fn auth_caps(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let name = entity_arg(args)?;
    let pairs = caps_pairs(&args.str_list("caps"))?;
    let caps = Caps::parse(&pairs)?;
    let mut db = inner.auth.write();
    if !db.set_caps(&name, caps) {
        return Err(CephError::noent(format!("couldn't find entry {name}")));
    }
    Ok(Reply::ok_with_status(
        "",
        format!("updated caps for {name}"),
    ))
}

fn auth_rm(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let name = entity_arg(args)?;
    let removed = inner.auth.write().remove(&name);
    if removed {
        Ok(Reply::ok_with_status("", "updated"))
    } else {
        Ok(Reply::ok_with_status(
            "",
            format!("entity {name} does not exist"),
        ))
    }
}

/// `fs authorize <fs> <entity> <path> <perm> [<path> <perm>...] [root_squash]`.
fn fs_authorize(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let fs = args.req_str("filesystem")?;
    inner
        .shared
        .lock()
        .maps
        .fs(fs)
        .map_err(|_| CephError::inval(format!("filesystem {fs} does not exist.")))?;
    let name = entity_arg(args)?;
    let list = args.str_list("caps");
    if list.is_empty() || !list.len().is_multiple_of(2) {
        return Err(CephError::inval(
            "caps must be given as path/permission pairs",
        ));
    }
    let squash = if args.flag("root_squash") {
        " root_squash"
    } else {
        ""
    };
    let mut mds = Vec::new();
    let mut osd_rw = false;
    for pair in list.chunks(2) {
        let (path, perm) = (pair[0], pair[1]);
        if !matches!(perm, "r" | "rw" | "rwp" | "rws" | "rwps" | "rwsp") {
            return Err(CephError::inval(
                "Permission flags must start with 'r' or 'rw'.",
            ));
        }
        osd_rw |= perm.contains('w');
        if path == "/" {
            mds.push(format!("allow {perm} fsname={fs}{squash}"));
        } else {
            mds.push(format!("allow {perm} fsname={fs} path={path}{squash}"));
        }
    }
    let osd_perm = if osd_rw { "rw" } else { "r" };
    let pairs = vec![
        ("mds".to_owned(), mds.join(", ")),
        ("mon".to_owned(), format!("allow r fsname={fs}")),
        (
            "osd".to_owned(),
            format!("allow {osd_perm} tag cephfs data={fs}"),
        ),
    ];
    let e = get_or_create(inner, &name, &pairs).map_err(|e| {
        if e.errno == errno::EINVAL && e.msg.contains("does not match") {
            CephError::inval(format!(
                "{name} already has fs capabilities that differ from those supplied. To \
                 generate a new auth key for {name}, first remove {name} from configuration \
                 files, execute 'ceph auth rm {name}', then execute this command again."
            ))
        } else {
            e
        }
    })?;
    Ok(Reply::ok(render_created(args.format(), &name, &e)))
}

const FORMAT: crate::command::ArgSpec = opt("format", ArgType::Str);
const ENTITY: crate::command::ArgSpec = req("entity", ArgType::Str);
const CAPS: crate::command::ArgSpec = opt("caps", ArgType::StrList);

macro_rules! auth_cmd {
    ($prefix:literal, $perm:literal, $args:expr, $handler:expr) => {
        (
            CommandSpec {
                prefix: $prefix,
                daemon: Daemon::Mon,
                module: "auth",
                perm: $perm,
                args: $args,
            },
            $handler as Handler,
        )
    };
}

/// The auth commands.
pub(crate) const COMMANDS: CommandTable = &[
    auth_cmd!("auth get", "rx", &[FORMAT, ENTITY], auth_get),
    auth_cmd!("auth export", "rx", &[FORMAT, ENTITY], auth_get),
    auth_cmd!("auth get-key", "rx", &[FORMAT, ENTITY], auth_get_key),
    auth_cmd!("auth print-key", "rx", &[FORMAT, ENTITY], auth_get_key),
    auth_cmd!("auth print_key", "rx", &[FORMAT, ENTITY], auth_get_key),
    auth_cmd!("auth ls", "rx", &[FORMAT], auth_ls),
    auth_cmd!("auth list", "rx", &[FORMAT], auth_ls),
    auth_cmd!(
        "auth get-or-create",
        "rwx",
        &[FORMAT, ENTITY, CAPS],
        auth_get_or_create
    ),
    auth_cmd!(
        "auth get-or-create-key",
        "rwx",
        &[FORMAT, ENTITY, CAPS],
        auth_get_or_create_key
    ),
    auth_cmd!("auth add", "rwx", &[FORMAT, ENTITY, CAPS], auth_add),
    auth_cmd!(
        "auth caps",
        "rwx",
        &[FORMAT, ENTITY, req("caps", ArgType::StrList)],
        auth_caps
    ),
    auth_cmd!("auth rm", "rwx", &[FORMAT, ENTITY], auth_rm),
    auth_cmd!("auth del", "rwx", &[FORMAT, ENTITY], auth_rm),
    auth_cmd!(
        "fs authorize",
        "rwx",
        &[
            FORMAT,
            req("filesystem", ArgType::Str),
            ENTITY,
            req("caps", ArgType::StrList),
            opt("root_squash", ArgType::Bool)
        ],
        fs_authorize
    ),
];
