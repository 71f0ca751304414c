//! cephx: keys, entity names and capabilities, parsed and checked as Ceph does.
//!
//! A key is the base64 of Ceph's 28-byte `CryptoKey` encoding: `u16` type (1 = AES),
//! `u32` seconds and `u32` nanoseconds of creation, `u16` length (16), then 16 secret
//! bytes. That is 40 characters, starting `AQ` and ending `==`.
//!
//! Capabilities are parsed per service (`mon`, `mgr`, `mds`, `osd`) into grants. The MDS
//! path rule is Ceph's: `path=/foo` matches `/foo` and `/foo/x` but not `/food`.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{CephError, CephResult};

/// The `CryptoKey` type of an AES key.
const KEY_TYPE_AES: u16 = 1;
/// The secret length of an AES key.
const AES_SECRET_LEN: usize = 16;
/// The encoded length: type, seconds, nanoseconds, length, secret.
const ENCODED_KEY_LEN: usize = 2 + 4 + 4 + 2 + AES_SECRET_LEN;

/// A cephx secret key. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    encoded: String,
}

impl Key {
    /// A new AES key with secret bytes from `rng` and the given creation time.
    pub fn generate(rng: &mut impl Rng, created_secs: u32, created_nsecs: u32) -> Self {
        let mut secret = [0u8; AES_SECRET_LEN];
        rng.fill_bytes(&mut secret);
        let mut raw = Vec::with_capacity(ENCODED_KEY_LEN);
        raw.extend_from_slice(&KEY_TYPE_AES.to_le_bytes());
        raw.extend_from_slice(&created_secs.to_le_bytes());
        raw.extend_from_slice(&created_nsecs.to_le_bytes());
        raw.extend_from_slice(&(AES_SECRET_LEN as u16).to_le_bytes());
        raw.extend_from_slice(&secret);
        Self {
            encoded: B64.encode(raw),
        }
    }

    /// Parses a base64 key as Ceph accepts it: a 28-byte AES `CryptoKey`.
    pub fn parse(s: &str) -> CephResult<Self> {
        let bad = || CephError::inval("key is not a valid base64-encoded cephx key");
        let raw = B64.decode(s.trim()).map_err(|_| bad())?;
        if raw.len() != ENCODED_KEY_LEN {
            return Err(bad());
        }
        let ty = u16::from_le_bytes([raw[0], raw[1]]);
        let len = u16::from_le_bytes([raw[10], raw[11]]) as usize;
        if ty != KEY_TYPE_AES || len != AES_SECRET_LEN {
            return Err(bad());
        }
        Ok(Self {
            encoded: B64.encode(raw),
        })
    }

    /// The base64 form, as `auth get-key` prints it. Handle with care: it is the secret.
    pub fn expose(&self) -> &str {
        &self.encoded
    }

    /// Compares with a presented key in time independent of where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        let a = self.encoded.as_bytes();
        let b = presented.trim().as_bytes();
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// A cephx entity name such as `client.admin`. Names order as Ceph orders them: by
/// entity type (mon, mds, osd, client, mgr), then by id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EntityName(String);

impl EntityName {
    fn type_rank(&self) -> u8 {
        match self.0.split_once('.').map_or("", |(t, _)| t) {
            "mon" => 1,
            "mds" => 2,
            "osd" => 4,
            "client" => 8,
            _ => 16,
        }
    }
}

impl Ord for EntityName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.type_rank(), self.id()).cmp(&(other.type_rank(), other.id()))
    }
}

impl PartialOrd for EntityName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl EntityName {
    /// Parses `type.id`; the type must be one Ceph knows.
    pub fn parse(s: &str) -> CephResult<Self> {
        let bad = || CephError::inval("bad entity name");
        let (ty, id) = s.split_once('.').ok_or_else(bad)?;
        if !matches!(ty, "client" | "mon" | "mgr" | "osd" | "mds") {
            return Err(bad());
        }
        if id.is_empty() || id.len() > 256 || id.chars().any(|c| c.is_control()) {
            return Err(bad());
        }
        Ok(Self(s.to_owned()))
    }

    /// `client.admin`.
    pub fn client_admin() -> Self {
        Self("client.admin".to_owned())
    }

    /// The full name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the type (`admin` for `client.admin`).
    pub fn id(&self) -> &str {
        self.0.split_once('.').map_or("", |(_, id)| id)
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A set of permission bits as cap grants spell them (`r`, `w`, `x`, `p`, `s`, `*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Perm {
    /// Read.
    pub r: bool,
    /// Write.
    pub w: bool,
    /// Execute (mon/mgr/osd class methods).
    pub x: bool,
    /// MDS: set layouts and quotas.
    pub p: bool,
    /// MDS: create and delete snapshots.
    pub s: bool,
    /// `*`: everything.
    pub all: bool,
}

impl Perm {
    /// Read only.
    pub const R: Perm = Perm {
        r: true,
        w: false,
        x: false,
        p: false,
        s: false,
        all: false,
    };
    /// Read and write.
    pub const RW: Perm = Perm {
        r: true,
        w: true,
        x: false,
        p: false,
        s: false,
        all: false,
    };
    /// Read, write, execute.
    pub const RWX: Perm = Perm {
        r: true,
        w: true,
        x: true,
        p: false,
        s: false,
        all: false,
    };

    fn parse(s: &str) -> Option<Perm> {
        if s == "*" || s == "all" {
            return Some(Perm {
                all: true,
                r: true,
                w: true,
                x: true,
                p: true,
                s: true,
            });
        }
        let mut p = Perm::default();
        for c in s.chars() {
            match c {
                'r' => p.r = true,
                'w' => p.w = true,
                'x' => p.x = true,
                'p' => p.p = true,
                's' => p.s = true,
                _ => return None,
            }
        }
        (!s.is_empty()).then_some(p)
    }

    fn union(self, o: Perm) -> Perm {
        Perm {
            r: self.r || o.r,
            w: self.w || o.w,
            x: self.x || o.x,
            p: self.p || o.p,
            s: self.s || o.s,
            all: self.all || o.all,
        }
    }

    /// Whether every bit of `need` is in `self`.
    pub fn covers(self, need: Perm) -> bool {
        self.all
            || ((!need.r || self.r)
                && (!need.w || self.w)
                && (!need.x || self.x)
                && (!need.p || self.p)
                && (!need.s || self.s)
                && !need.all)
    }
}

/// One `allow ...` clause of a mon or mgr cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ServiceGrant {
    perm: Perm,
    profile: Option<String>,
    command: Option<String>,
    service: Option<String>,
    fsname: Option<String>,
}

/// One `allow ...` clause of an MDS cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct MdsGrant {
    perm: Perm,
    fsname: Option<String>,
    /// Normalised: no leading or trailing `/`; empty means the whole tree.
    path: String,
    root_squash: bool,
}

/// One `allow ...` clause of an OSD cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct OsdGrant {
    perm: Perm,
    pool: Option<String>,
    namespace: Option<String>,
    object_prefix: Option<String>,
    /// `tag <app> <key>=<value>`; `*` is a wildcard in key or value.
    tag: Option<(String, String, String)>,
    profile: Option<String>,
}

/// The application tags of a pool, for `tag cephfs data=<fs>` grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolTags {
    /// `(application, key, value)` triples, e.g. `("cephfs", "data", "cephfs")`.
    pub tags: Vec<(String, String, String)>,
}

/// An entity's parsed capabilities, with the text they came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caps {
    raw: BTreeMap<String, String>,
    mon: Vec<ServiceGrant>,
    mgr: Vec<ServiceGrant>,
    mds: Vec<MdsGrant>,
    osd: Vec<OsdGrant>,
}

/// Splits a cap string into grants at commas and semicolons outside quotes, and each
/// grant into words at whitespace outside quotes (quotes are removed).
fn split_grants(s: &str) -> Vec<Vec<String>> {
    let mut grants = Vec::new();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_quote = false;
    let mut quoted = false;
    let flush_word = |word: &mut String, words: &mut Vec<String>, quoted: &mut bool| {
        if !word.is_empty() || *quoted {
            words.push(std::mem::take(word));
        }
        *quoted = false;
    };
    for c in s.chars() {
        match c {
            '"' => {
                in_quote = !in_quote;
                quoted = true;
            }
            ',' | ';' if !in_quote => {
                flush_word(&mut word, &mut words, &mut quoted);
                grants.push(std::mem::take(&mut words));
            }
            c if c.is_whitespace() && !in_quote => flush_word(&mut word, &mut words, &mut quoted),
            c => word.push(c),
        }
    }
    flush_word(&mut word, &mut words, &mut quoted);
    grants.push(words);
    grants
}

/// The text from the start of grant `index` to the end: where Ceph's parser reports it
/// stopped when that grant does not parse.
fn rest_from(text: &str, index: usize) -> &str {
    let mut in_quote = false;
    let mut seen = 0;
    for (i, c) in text.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            ',' | ';' if !in_quote => {
                seen += 1;
                if seen == index {
                    return text[i + 1..].trim_start();
                }
            }
            _ => {}
        }
    }
    if index == 0 { text.trim_start() } else { "" }
}

fn parse_failed(service: &str, stopped_at: &str, whole: &str) -> CephError {
    CephError::inval(format!(
        "{service} capability parse failed, stopped at '{stopped_at}' of '{whole}'"
    ))
}

fn normalise_path(p: &str) -> String {
    p.trim_matches('/').to_owned()
}

/// Ceph's `MDSCapMatch::match_path`: a prefix match on a path-component boundary, with
/// leading slashes ignored.
pub fn path_within(grant_path: &str, target: &str) -> bool {
    let grant = grant_path.trim_matches('/');
    let target = target.trim_start_matches('/');
    if grant.is_empty() {
        return true;
    }
    match target.strip_prefix(grant) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

impl Caps {
    /// Parses caps given as `(service, cap text)` pairs, the way `auth get-or-create`
    /// and `auth caps` take them. Unknown services are kept as text but grant nothing.
    pub fn parse(pairs: &[(String, String)]) -> CephResult<Self> {
        let mut caps = Caps::default();
        for (service, text) in pairs {
            match service.as_str() {
                "mon" => caps.mon = parse_service_caps("mon", text)?,
                "mgr" => caps.mgr = parse_service_caps("mgr", text)?,
                "mds" => caps.mds = parse_mds_caps(text)?,
                "osd" => caps.osd = parse_osd_caps(text)?,
                other => {
                    return Err(CephError::inval(format!("unknown cap type '{other}'")));
                }
            }
            caps.raw.insert(service.clone(), text.clone());
        }
        Ok(caps)
    }

    /// The cap text per service, as `auth get` prints it.
    pub fn raw(&self) -> &BTreeMap<String, String> {
        &self.raw
    }

    /// Whether a mon command in `module` (Ceph's module name: `mon`, `auth`, `mds`, `osd`,
    /// `config-key`, ...) with the given prefix and required permission is allowed.
    pub fn mon_allows(&self, module: &str, prefix: &str, need: Perm, fs: Option<&str>) -> bool {
        service_allows(&self.mon, module, prefix, need, fs)
    }

    /// Whether a mgr command (a mgr module's command) is allowed.
    pub fn mgr_allows(&self, module: &str, prefix: &str, need: Perm, fs: Option<&str>) -> bool {
        service_allows(&self.mgr, module, prefix, need, fs)
    }

    /// Whether these caps give `allow *` on the MDS (required for `tell mds.*` commands).
    pub fn mds_allow_all(&self) -> bool {
        self.mds
            .iter()
            .any(|g| g.perm.all && g.fsname.is_none() && g.path.is_empty())
    }

    /// MDS `path_capable`: whether a session may have `root` as its root in `fs`.
    pub fn mds_root_allowed(&self, fs: &str, root: &str) -> bool {
        self.mds
            .iter()
            .filter(|g| g.fsname.as_deref().is_none_or(|n| n == fs))
            .any(|g| path_within(&g.path, root))
    }

    /// MDS `is_capable`: whether an operation needing `need` on `path` in `fs` is allowed.
    /// Grants that match the path are combined.
    pub fn mds_allows(&self, fs: &str, path: &str, need: Perm) -> bool {
        let have = self
            .mds
            .iter()
            .filter(|g| g.fsname.as_deref().is_none_or(|n| n == fs))
            .filter(|g| path_within(&g.path, path))
            .fold(Perm::default(), |acc, g| acc.union(g.perm));
        have.covers(need)
    }

    /// Whether any MDS grant matching `path` squashes root.
    pub fn mds_root_squash(&self, fs: &str, path: &str) -> bool {
        self.mds
            .iter()
            .filter(|g| g.fsname.as_deref().is_none_or(|n| n == fs))
            .any(|g| g.root_squash && path_within(&g.path, path))
    }

    /// OSD: whether an operation needing `need` on `object` in `pool`/`namespace` is
    /// allowed, given the pool's application tags.
    pub fn osd_allows(
        &self,
        pool: &str,
        tags: &PoolTags,
        namespace: &str,
        object: &str,
        need: Perm,
    ) -> bool {
        let have = self
            .osd
            .iter()
            .filter(|g| g.pool.as_deref().is_none_or(|p| p == pool))
            // OSDCapPoolNamespace::is_match: a trailing `*` matches by prefix.
            .filter(|g| {
                g.namespace
                    .as_deref()
                    .is_none_or(|n| match n.strip_suffix('*') {
                        Some(prefix) => namespace.starts_with(prefix),
                        None => n == namespace,
                    })
            })
            .filter(|g| {
                g.object_prefix
                    .as_deref()
                    .is_none_or(|p| object.starts_with(p))
            })
            .filter(|g| {
                g.tag.as_ref().is_none_or(|(app, k, v)| {
                    tags.tags.iter().any(|(ta, tk, tv)| {
                        ta == app && (k == "*" || k == tk) && (v == "*" || v == tv)
                    })
                })
            })
            .fold(Perm::default(), |acc, g| {
                let perm = match g.profile.as_deref() {
                    Some(_) => Perm::RWX,
                    None => g.perm,
                };
                acc.union(perm)
            });
        have.covers(need)
    }
}

fn service_allows(
    grants: &[ServiceGrant],
    module: &str,
    prefix: &str,
    need: Perm,
    fs: Option<&str>,
) -> bool {
    let mut have = Perm::default();
    for g in grants {
        if let (Some(gfs), Some(fs)) = (g.fsname.as_deref(), fs)
            && gfs != fs
        {
            continue;
        }
        if let Some(cmd) = &g.command {
            if cmd == prefix {
                return true;
            }
            continue;
        }
        if let Some(svc) = &g.service
            && svc != module
        {
            continue;
        }
        let perm = match g.profile.as_deref() {
            // Profiles bundle many command grants; this fake reduces them to the
            // permission level that matters for the commands it serves.
            Some("admin") => Perm::parse("*").unwrap_or_default(),
            Some("mgr" | "mds" | "osd" | "bootstrap-osd" | "bootstrap-mds") => Perm::RWX,
            Some(_) => Perm::R,
            None => g.perm,
        };
        have = have.union(perm);
    }
    have.covers(need)
}

fn parse_service_caps(service: &str, text: &str) -> CephResult<Vec<ServiceGrant>> {
    let mut out = Vec::new();
    for (index, words) in split_grants(text).into_iter().enumerate() {
        let fail = |_: &str| parse_failed(service, rest_from(text, index), text);
        if words.is_empty() {
            if text.trim().is_empty() {
                continue;
            }
            return Err(fail(""));
        }
        if words[0] != "allow" {
            return Err(fail(&words[0]));
        }
        let mut g = ServiceGrant::default();
        let mut i = 1;
        while i < words.len() {
            let w = words[i].as_str();
            match w {
                "profile" => {
                    let name = words.get(i + 1).ok_or_else(|| fail(w))?;
                    g.profile = Some(name.clone());
                    i += 2;
                }
                "command" => {
                    let name = words.get(i + 1).ok_or_else(|| fail(w))?;
                    g.command = Some(name.clone());
                    // `with key=value` restrictions are accepted and not checked.
                    i = words.len();
                }
                "service" | "module" => {
                    let name = words.get(i + 1).ok_or_else(|| fail(w))?;
                    g.service = Some(name.clone());
                    i += 2;
                }
                _ => {
                    if let Some(v) = w.strip_prefix("fsname=") {
                        g.fsname = Some(v.to_owned());
                    } else if let Some(v) = w.strip_prefix("profile=") {
                        g.profile = Some(v.to_owned());
                    } else if let Some(p) = Perm::parse(w) {
                        g.perm = g.perm.union(p);
                    } else {
                        return Err(fail(w));
                    }
                    i += 1;
                }
            }
        }
        if g.perm == Perm::default() && g.profile.is_none() && g.command.is_none() {
            return Err(fail(words.last().map_or("", |s| s.as_str())));
        }
        out.push(g);
    }
    Ok(out)
}

fn parse_mds_caps(text: &str) -> CephResult<Vec<MdsGrant>> {
    let mut out = Vec::new();
    for (index, words) in split_grants(text).into_iter().enumerate() {
        let fail = |_: &str| parse_failed("mds", rest_from(text, index), text);
        if words.is_empty() {
            if text.trim().is_empty() {
                continue;
            }
            return Err(fail(""));
        }
        if words[0] != "allow" {
            return Err(fail(&words[0]));
        }
        let mut g = MdsGrant::default();
        let mut saw_perm = false;
        for w in &words[1..] {
            let w = w.as_str();
            if let Some(v) = w.strip_prefix("fsname=") {
                g.fsname = Some(v.to_owned());
            } else if let Some(v) = w.strip_prefix("path=") {
                g.path = normalise_path(v);
            } else if w == "root_squash" {
                g.root_squash = true;
            } else if w.starts_with("uid=") || w.starts_with("gids=") {
                // Accepted; the fake does not model Unix identities.
            } else if let Some(p) = Perm::parse(w).filter(|_| !saw_perm) {
                g.perm = p;
                saw_perm = true;
            } else {
                return Err(fail(w));
            }
        }
        if !saw_perm {
            // A bare `allow` (as MDS daemons have) means everything.
            g.perm = Perm::parse("*").unwrap_or_default();
        }
        out.push(g);
    }
    Ok(out)
}

fn parse_osd_caps(text: &str) -> CephResult<Vec<OsdGrant>> {
    let mut out = Vec::new();
    for (index, words) in split_grants(text).into_iter().enumerate() {
        let fail = |_: &str| parse_failed("osd", rest_from(text, index), text);
        if words.is_empty() {
            if text.trim().is_empty() {
                continue;
            }
            return Err(fail(""));
        }
        if words[0] != "allow" {
            return Err(fail(&words[0]));
        }
        let mut g = OsdGrant::default();
        let mut i = 1;
        while i < words.len() {
            let w = words[i].as_str();
            if w == "profile" {
                g.profile = Some(words.get(i + 1).ok_or_else(|| fail(w))?.clone());
                i += 2;
            } else if w == "tag" {
                let app = words.get(i + 1).ok_or_else(|| fail(w))?;
                let kv = words.get(i + 2).ok_or_else(|| fail(w))?;
                let (k, v) = kv.split_once('=').ok_or_else(|| fail(kv))?;
                g.tag = Some((app.clone(), k.to_owned(), v.to_owned()));
                i += 3;
            } else if w == "pool" || w == "namespace" || w == "object_prefix" {
                let v = words.get(i + 1).ok_or_else(|| fail(w))?.clone();
                match w {
                    "pool" => g.pool = Some(v),
                    "namespace" => g.namespace = Some(v),
                    _ => g.object_prefix = Some(v),
                }
                i += 2;
            } else if let Some(v) = w.strip_prefix("pool=") {
                g.pool = Some(v.to_owned());
                i += 1;
            } else if let Some(v) = w.strip_prefix("namespace=") {
                g.namespace = Some(v.to_owned());
                i += 1;
            } else if let Some(v) = w.strip_prefix("object_prefix=") {
                g.object_prefix = Some(v.to_owned());
                i += 1;
            } else if w == "class-read" || w == "class-write" {
                g.perm = g.perm.union(Perm {
                    x: true,
                    ..Perm::default()
                });
                i += 1;
            } else if let Some(p) = Perm::parse(w) {
                g.perm = g.perm.union(p);
                i += 1;
            } else {
                return Err(fail(w));
            }
        }
        if g.perm == Perm::default() && g.profile.is_none() {
            return Err(fail(words.last().map_or("", |s| s.as_str())));
        }
        out.push(g);
    }
    Ok(out)
}

/// Formats a keyring section the way `ceph auth get` and `ceph-authtool` write it.
pub fn keyring_section(entity: &EntityName, key: &Key, caps: &Caps) -> String {
    let mut s = format!("[{entity}]\n\tkey = {}\n", key.expose());
    for (svc, text) in caps.raw() {
        s.push_str(&format!("\tcaps {svc} = \"{text}\"\n"));
    }
    s
}

/// Reads the `key = ...` of one entity from keyring text.
pub fn key_from_keyring(text: &str, entity: &str) -> Option<String> {
    let mut in_section = false;
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = name == entity;
        } else if in_section
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == "key"
        {
            return Some(v.trim().to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// An MDS path grant allows a root exactly when the root lies at or under the
        /// grant's path, component by component (`/ab` does not cover `/abc`), with or
        /// without slashes around either, and only in its file system when it names one.
        #[test]
        fn an_mds_path_grant_covers_exactly_its_subtree(
            grant in proptest::collection::vec("[ab]{1,2}", 0..3),
            root in proptest::collection::vec("[ab]{1,2}", 0..4),
            fsname in proptest::option::of("fs[12]"),
            trailing in proptest::bool::ANY,
        ) {
            let mut text = String::from("allow rw");
            if let Some(f) = &fsname {
                text.push_str(&format!(" fsname={f}"));
            }
            if !grant.is_empty() {
                text.push_str(&format!(" path=/{}{}", grant.join("/"), if trailing { "/" } else { "" }));
            }
            let caps = Caps::parse(&[("mds".to_owned(), text.clone())]).unwrap();
            let root_path = format!("/{}", root.join("/"));
            let within = root.len() >= grant.len() && root[..grant.len()] == grant[..];
            for fs in ["fs1", "fs2"] {
                let want = within && fsname.as_deref().is_none_or(|f| f == fs);
                proptest::prop_assert_eq!(caps.mds_root_allowed(fs, &root_path), want, "{} on {} in {}", text, root_path, fs);
            }
        }

        /// Any cap text for any service is parsed or refused with EINVAL: never a panic,
        /// never another errno.
        #[test]
        fn any_cap_text_parses_or_is_einval(
            service in "(mon|mgr|mds|osd|[a-z]{1,4})",
            text in "[ -~]{0,60}",
        ) {
            if let Err(e) = Caps::parse(&[(service, text)]) {
                proptest::prop_assert_eq!(e.errno, crate::errno::EINVAL);
            }
        }
    }
    use crate::error::errno;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn keys_look_like_ceph_keys() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let k = Key::generate(&mut rng, 1_447_423_027, 353_043_146);
        let s = k.expose();
        assert_eq!(s.len(), 40);
        assert!(s.starts_with("AQ"), "{s}");
        assert!(s.ends_with("=="), "{s}");
        assert_eq!(Key::parse(s).unwrap(), k);
        assert!(k.matches(s));
        assert!(!k.matches("AQ"));
        assert!(!format!("{k:?}").contains(s));
    }

    #[test]
    fn a_real_ceph_key_parses() {
        // The key from Ceph's documentation of the CryptoKey encoding.
        assert!(Key::parse("AQAz7EVWygILFRAAdIcuJ12opU/JKyfFmxhuaw==").is_ok());
        for bad in [
            "",
            "AQ==",
            "not base64!",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
        ] {
            assert!(Key::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn entity_names() {
        assert_eq!(EntityName::parse("client.admin").unwrap().id(), "admin");
        assert_eq!(EntityName::parse("client.a.b").unwrap().id(), "a.b");
        for bad in ["admin", "client.", "foo.bar", ""] {
            assert!(EntityName::parse(bad).is_err(), "{bad}");
        }
    }

    fn check_path(grant: &str, target: &str, expected: bool) {
        assert_eq!(path_within(grant, target), expected, "{grant} vs {target}");
    }

    #[test]
    fn path_matching_is_by_component() {
        check_path("/foo", "/foo", true);
        check_path("/foo", "/foo/x", true);
        check_path("/foo", "/food", false);
        check_path("/foo/", "/foo/x", true);
        check_path("foo", "/foo/x", true);
        check_path("/", "/anything", true);
        check_path("", "/", true);
        check_path("/volumes/csi", "/volumes", false);
        check_path("/volumes/csi/a", "/volumes/csi/ab/c", false);
    }

    fn caps(pairs: &[(&str, &str)]) -> Caps {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        Caps::parse(&pairs).unwrap()
    }

    #[test]
    fn mds_caps() {
        let c = caps(&[(
            "mds",
            "allow r fsname=cephfs path=/volumes, allow rws fsname=cephfs path=/volumes/csi",
        )]);
        assert!(c.mds_root_allowed("cephfs", "/volumes/csi/x/uuid"));
        assert!(c.mds_root_allowed("cephfs", "/volumes"));
        assert!(!c.mds_root_allowed("cephfs", "/"));
        assert!(!c.mds_root_allowed("other", "/volumes"));
        assert!(c.mds_allows("cephfs", "/volumes/csi/x", Perm::RW));
        assert!(!c.mds_allows("cephfs", "/volumes/other", Perm::RW));
        assert!(c.mds_allows("cephfs", "/volumes/other", Perm::R));
        assert!(!c.mds_allow_all());
        assert!(caps(&[("mds", "allow *")]).mds_allow_all());
        assert!(caps(&[("mds", "allow")]).mds_allow_all());
    }

    #[test]
    fn mon_and_mgr_caps() {
        let c = caps(&[("mon", "allow r"), ("mgr", "allow rw")]);
        assert!(c.mon_allows("mds", "fs ls", Perm::R, None));
        assert!(!c.mon_allows("auth", "auth get-or-create", Perm::RWX, None));
        assert!(c.mgr_allows("volumes", "fs subvolume create", Perm::RW, None));
        let c = caps(&[("mon", "allow command \"auth get\", allow r")]);
        assert!(c.mon_allows("auth", "auth get", Perm::RWX, None));
        assert!(!c.mon_allows("auth", "auth rm", Perm::RWX, None));
        let c = caps(&[("mon", "allow *")]);
        assert!(c.mon_allows("auth", "auth rm", Perm::RWX, None));
        let c = caps(&[("mon", "allow r fsname=a")]);
        assert!(c.mon_allows("mds", "fs ls", Perm::R, Some("a")));
        assert!(!c.mon_allows("mds", "fs ls", Perm::R, Some("b")));
    }

    #[test]
    fn osd_caps() {
        let data = PoolTags {
            tags: vec![("cephfs".into(), "data".into(), "cephfs".into())],
        };
        let none = PoolTags::default();
        let c = caps(&[("osd", "allow rw tag cephfs data=cephfs")]);
        assert!(c.osd_allows("cephfs.cephfs.data", &data, "", "o", Perm::RW));
        assert!(!c.osd_allows("rbd", &none, "", "o", Perm::R));
        let c = caps(&[("osd", "allow rw pool=meta namespace=csi")]);
        assert!(c.osd_allows("meta", &none, "csi", "o", Perm::RW));
        assert!(!c.osd_allows("meta", &none, "other", "o", Perm::R));
        assert!(!c.osd_allows("data", &none, "csi", "o", Perm::R));
        let c = caps(&[("osd", "allow r")]);
        assert!(!c.osd_allows("meta", &none, "csi", "o", Perm::RW));
    }

    #[test]
    fn bad_caps_are_einval() {
        for (svc, text) in [
            ("mds", "allow foo"),
            ("mon", "deny r"),
            ("osd", "allow rw pool"),
            ("mon", "allow"),
            ("bogus", "allow r"),
        ] {
            let err = Caps::parse(&[(svc.to_string(), text.to_string())]).unwrap_err();
            assert_eq!(err.errno, errno::EINVAL, "{svc} {text}");
        }
    }

    #[test]
    fn keyring_round_trip() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let key = Key::generate(&mut rng, 1, 2);
        let entity = EntityName::parse("client.admin").unwrap();
        let text = keyring_section(&entity, &key, &caps(&[("mon", "allow *")]));
        assert!(text.starts_with("[client.admin]\n\tkey = AQ"));
        assert!(text.contains("\tcaps mon = \"allow *\"\n"));
        assert_eq!(
            key_from_keyring(&text, "client.admin").as_deref(),
            Some(key.expose())
        );
        assert_eq!(key_from_keyring(&text, "client.other"), None);
    }
}
