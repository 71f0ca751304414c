//! Per-subvolume cephx users: `fs subvolume authorize`, `deauthorize`,
//! `authorized_list` and `evict`.

use serde_json::{Value, json};

use crate::cephx::{Caps, EntityName};
use crate::command::{Args, py_json};
use crate::error::{CephError, CephResult, Reply, errno};
use crate::state::{Caller, Inner, Shared};

use super::common::*;
use crate::volumes::*;

// ---------------------------------------------------------------------------------
// Per-subvolume cephx users

pub(super) fn auth_caps_for(
    sh: &Shared,
    auth_id: &str,
    exclude: Option<(&str, &str, &str)>,
) -> Vec<(String, String)> {
    let mut mds = Vec::new();
    let mut osd = Vec::new();
    for ((fs, g), group) in &sh.volumes.groups {
        for (name, sv) in &group.subvolumes {
            if exclude == Some((fs.as_str(), g.as_str(), name.as_str())) {
                continue;
            }
            if let Some(level) = sv.authorized.get(auth_id) {
                mds.push(format!(
                    "allow {level} path=/volumes/{g}/{name}/{}",
                    sv.uuid
                ));
                let ns = if sv.pool_namespace.is_empty() {
                    String::new()
                } else {
                    format!(" namespace={}", sv.pool_namespace)
                };
                osd.push(format!("allow {level} pool={}{ns}", sv.pool));
            }
        }
    }
    if mds.is_empty() {
        return Vec::new();
    }
    osd.dedup();
    vec![
        ("mds".into(), mds.join(",")),
        ("mon".into(), "allow r".into()),
        ("osd".into(), osd.join(",")),
    ]
}

pub(super) fn subvolume_authorize(
    inner: &Inner,
    args: &Args<'_>,
    _c: &Caller,
) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let auth_id = args.req_str("auth_id")?;
    let level = args.str("access_level").unwrap_or("rw");
    if !matches!(level, "r" | "rw") {
        // Ceph asks the monitor for caps with the bad level, the monitor refuses, and
        // the module fails parsing the empty answer.
        return Err(CephError::inval(
            "Traceback (most recent call last):\n  File \"/usr/share/ceph/mgr/volumes/fs/operations/versions/subvolume_v1.py\", \
             in _authorize_subvolume\njson.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
        ));
    }
    let tenant = args.str("tenant_id").map(str::to_owned);
    let entity = EntityName::parse(&format!("client.{auth_id}"))?;
    let mut sh = open(inner, n.vol)?;
    let sh = &mut *sh;
    get_sv(sh, &n, "allow-access")?;
    let exists = inner.auth.read().contains(&entity);
    match sh.volumes.auth_meta.get(auth_id) {
        None if exists && !args.flag("allow_existing_id") => {
            return Err(CephError::new(
                errno::EPERM,
                format!(
                    "auth ID: {auth_id} exists and not created by mgr plugin. Not allowed to modify"
                ),
            ));
        }
        Some(meta) if meta.tenant_id != tenant => {
            return Err(CephError::new(
                errno::EPERM,
                format!("auth ID: {auth_id} is already in use"),
            ));
        }
        _ => {}
    }
    if !sh.volumes.auth_meta.contains_key(auth_id) {
        sh.volumes.mark_auth_meta(auth_id);
    }
    sh.volumes
        .auth_meta
        .entry(auth_id.to_owned())
        .or_insert(AuthMeta {
            tenant_id: tenant.clone(),
        });
    if let Some(sv) = sh.volumes.sv_mut(n.vol, n.group, n.name) {
        sv.authorized.insert(auth_id.to_owned(), level.to_owned());
    }
    let pairs = auth_caps_for(sh, auth_id, None);
    let caps = Caps::parse(&pairs)?;
    let key = {
        let mut db = inner.auth.write();
        if db.contains(&entity) {
            db.set_caps(&entity, caps);
        } else {
            db.put(entity.clone(), inner.new_key(), caps);
        }
        db.get(entity.as_str())
            .map(|e| e.key.expose().to_owned())
            .unwrap_or_default()
    };
    // The key is returned only to callers that name a tenant, as Manila does.
    Ok(Reply::ok(if tenant.is_some() {
        key + "\n"
    } else {
        String::new()
    }))
}

pub(super) fn subvolume_deauthorize(
    inner: &Inner,
    args: &Args<'_>,
    _c: &Caller,
) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let auth_id = args.req_str("auth_id")?;
    let entity = EntityName::parse(&format!("client.{auth_id}"))?;
    let mut sh = open(inner, n.vol)?;
    let sh = &mut *sh;
    let sv = get_sv_mut(sh, &n, "deny-access")?;
    let was_here = sv.authorized.remove(auth_id).is_some();
    // Ceph only refuses an auth ID it never created; deauthorizing one that is not
    // (or no longer) authorized on this subvolume succeeds.
    if !was_here && !sh.volumes.auth_meta.contains_key(auth_id) {
        return Err(CephError::noent(format!(
            "auth ID: {auth_id} doesn't exist"
        )));
    }
    let pairs = auth_caps_for(sh, auth_id, None);
    let mut db = inner.auth.write();
    if pairs.is_empty() {
        db.remove(&entity);
        sh.volumes.auth_meta.remove(auth_id);
        sh.volumes.mark_auth_meta(auth_id);
    } else {
        db.set_caps(&entity, Caps::parse(&pairs)?);
    }
    Ok(Reply::ok(""))
}

pub(super) fn subvolume_authorized_list(
    inner: &Inner,
    args: &Args<'_>,
    _c: &Caller,
) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let sh = open(inner, n.vol)?;
    let sv = get_sv(&sh, &n, "auth-list")?;
    let v: Vec<Value> = sv.authorized.iter().map(|(k, l)| json!({k: l})).collect();
    Ok(Reply::ok(py_json(&v, 4)))
}

pub(super) fn subvolume_evict(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let n = names(args, "sub_name")?;
    let auth_id = args.req_str("auth_id")?;
    let path = {
        let sh = open(inner, n.vol)?;
        let sv = get_sv(&sh, &n, "evict")?;
        // An auth ID with no sessions (or none at all) evicts nothing, successfully.
        format!("{}/{}", n.ceph_dir(), sv.uuid)
    };
    let f1 = format!("auth_name={auth_id}");
    let f2 = format!("client_metadata.root={path}");
    inner.mds.evict(&[f1.as_str(), f2.as_str()])?;
    Ok(Reply::ok(""))
}
