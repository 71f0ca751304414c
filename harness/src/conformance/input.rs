//! The params and secrets files, in the shapes csi-sanity reads.
//!
//! Two formats are accepted: JSON (a file whose first non-blank character is `{`),
//! and a hand-written parser for the flat YAML subset csi-sanity's files use:
//! `key: value` lines (values bare, `'single'`- or `"double"`-quoted), `#` comments,
//! and for secrets one level of nesting (`CreateVolumeSecret:` followed by indented
//! `key: value` lines). Anchors, lists, flow maps and multi-line scalars are refused.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};

/// A flat `string: string` map (volume parameters, snapshot parameters, mutable parameters).
pub type Params = HashMap<String, String>;

/// Per-RPC secret maps, keyed by csi-sanity's names (`CreateVolumeSecret`, ...).
#[derive(Clone, Default)]
pub struct Secrets(HashMap<String, HashMap<String, String>>);

impl std::fmt::Debug for Secrets {
    // Secrets never reach a log: print the RPC names and keys only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (rpc, map) in &self.0 {
            let mut keys: Vec<_> = map.keys().collect();
            keys.sort();
            m.entry(rpc, &keys);
        }
        m.finish()
    }
}

/// The secret-map names csi-sanity knows.
pub const SECRET_KEYS: &[&str] = &[
    "CreateVolumeSecret",
    "DeleteVolumeSecret",
    "ControllerPublishVolumeSecret",
    "ControllerUnpublishVolumeSecret",
    "ControllerValidateVolumeCapabilitiesSecret",
    "NodeStageVolumeSecret",
    "NodePublishVolumeSecret",
    "CreateSnapshotSecret",
    "DeleteSnapshotSecret",
    "ControllerExpandVolumeSecret",
    "ControllerModifyVolumeSecret",
    "ListSnapshotsSecret",
    "GetSnapshotSecret",
    "NodeExpandVolumeSecret",
    "CreateVolumeGroupSnapshotSecret",
    "DeleteVolumeGroupSnapshotSecret",
    "GetVolumeGroupSnapshotSecret",
];

impl Secrets {
    /// The map for one RPC (empty when the file has none).
    pub fn get(&self, rpc: &str) -> HashMap<String, String> {
        self.0.get(rpc).cloned().unwrap_or_default()
    }

    /// Sets the map for one RPC.
    pub fn set(&mut self, rpc: &str, map: HashMap<String, String>) {
        self.0.insert(rpc.to_owned(), map);
    }

    /// Parses a secrets file's text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut out = HashMap::new();
        if is_json(text) {
            let v: HashMap<String, HashMap<String, String>> =
                serde_json::from_str(text).context("secrets: not a JSON object of string maps")?;
            out = v;
        } else {
            let mut current: Option<String> = None;
            for (n, line) in lines(text) {
                let (indent, key, value) = split(n, line)?;
                if indent == 0 {
                    if !value.is_empty() {
                        bail!(
                            "line {n}: expected `RpcNameSecret:` followed by indented `key: value` lines"
                        );
                    }
                    out.entry(key.clone()).or_default();
                    current = Some(key);
                } else {
                    let Some(rpc) = &current else {
                        bail!("line {n}: indented line outside of a secret map");
                    };
                    out.entry(rpc.clone()).or_default().insert(key, value);
                }
            }
        }
        for rpc in out.keys() {
            if !SECRET_KEYS.contains(&rpc.as_str()) {
                bail!(
                    "secrets: unknown map `{rpc}` (known: {})",
                    SECRET_KEYS.join(", ")
                );
            }
        }
        Ok(Self(out))
    }

    /// Reads a secrets file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// Parses a flat params file's text.
pub fn parse_params(text: &str) -> anyhow::Result<Params> {
    if is_json(text) {
        return serde_json::from_str(text).context("params: not a JSON object of strings");
    }
    let mut out = Params::new();
    for (n, line) in lines(text) {
        let (indent, key, value) = split(n, line)?;
        if indent != 0 {
            bail!("line {n}: params are a flat `key: value` map; nesting is not allowed");
        }
        out.insert(key, value);
    }
    Ok(out)
}

/// Reads a params file.
pub fn load_params(path: &Path) -> anyhow::Result<Params> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_params(&text).with_context(|| format!("parsing {}", path.display()))
}

fn is_json(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

/// The meaningful lines, numbered from 1 (blank lines, comments and `---` dropped).
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let t = l.trim();
        (!t.is_empty() && !t.starts_with('#') && t != "---").then_some((i + 1, l))
    })
}

/// `  key: value  # comment` into (indent, key, value).
fn split(n: usize, line: &str) -> anyhow::Result<(usize, String, String)> {
    if line.contains('\t') {
        bail!("line {n}: tabs are not allowed in YAML indentation");
    }
    let indent = line.len() - line.trim_start().len();
    let body = line.trim();
    let Some((key, rest)) = split_key(body) else {
        bail!("line {n}: expected `key: value`");
    };
    let key = unquote(n, key.trim())?;
    let value = scalar(n, rest.trim())?;
    if key.is_empty() {
        bail!("line {n}: empty key");
    }
    Ok((indent, key, value))
}

/// Splits at the first `:` that is followed by a space or the end, outside quotes.
fn split_key(body: &str) -> Option<(&str, &str)> {
    let bytes = body.as_bytes();
    let mut quote = None;
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if q == b => quote = None,
            (None, b':') if bytes.get(i + 1).is_none_or(|c| *c == b' ') => {
                return Some((&body[..i], &body[i + 1..]));
            }
            _ => {}
        }
    }
    None
}

/// A value: quoted (comments inside kept), or bare (a ` #` starts a comment).
fn scalar(n: usize, s: &str) -> anyhow::Result<String> {
    if s.starts_with('"') || s.starts_with('\'') {
        let Some(end) = closing_quote(s) else {
            bail!("line {n}: unterminated quote");
        };
        let rest = s[end + 1..].trim();
        if !rest.is_empty() && !rest.starts_with('#') {
            bail!("line {n}: text after the closing quote");
        }
        return unquote(n, &s[..=end]);
    }
    let s = match s.find(" #") {
        Some(i) => s[..i].trim_end(),
        None => s,
    };
    if s.starts_with(['[', '{', '&', '*', '|', '>']) {
        bail!("line {n}: only plain scalars are supported (no lists, maps, anchors or blocks)");
    }
    Ok(s.to_owned())
}

/// The byte index of the quote closing the one `s` starts with (`\"` escapes in
/// double quotes, `''` in single quotes).
fn closing_quote(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let q = *b.first()?;
    let mut i = 1;
    while i < b.len() {
        if q == b'"' && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == q {
            if q == b'\'' && b.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i);
        }
        i += 1;
    }
    None
}

fn unquote(n: usize, s: &str) -> anyhow::Result<String> {
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q) {
            let Some(inner) = inner.strip_suffix(q) else {
                bail!("line {n}: unterminated quote");
            };
            return Ok(if q == '"' {
                inner.replace("\\\"", "\"").replace("\\\\", "\\")
            } else {
                inner.replace("''", "'")
            });
        }
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: &[(&str, &str)]) {
        let got = parse_params(text).expect("parses");
        let want: Params = expected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(got, want, "{text:?}");
    }

    fn refused(text: &str) {
        assert!(parse_params(text).is_err(), "{text:?} should be refused");
    }

    #[test]
    fn params() {
        check("", &[]);
        check(
            "clusterID: c1\nfsName: cephfs\n",
            &[("clusterID", "c1"), ("fsName", "cephfs")],
        );
        check("# c\n---\na: b # note\n", &[("a", "b")]);
        check("a: 'x # y'\n", &[("a", "x # y")]);
        check("a: \"q\\\"q\"\n", &[("a", "q\"q")]);
        check("a: 'it''s'\n", &[("a", "it's")]);
        check("url: http://x:1/y\n", &[("url", "http://x:1/y")]);
        check("\"k:1\": v\n", &[("k:1", "v")]);
        check("empty:\n", &[("empty", "")]);
        check("{\"a\": \"b\"}", &[("a", "b")]);
        refused("a b\n");
        refused("a:\n  b: c\n");
        refused("a: [1, 2]\n");
        refused("a: 'open\n");
        refused("\ta: b\n");
    }

    #[test]
    fn secrets() {
        let s = Secrets::parse(
            "CreateVolumeSecret:\n  adminID: admin\n  adminKey: 'k=='\nNodeStageVolumeSecret:\n  userID: u\n",
        )
        .expect("parses");
        assert_eq!(s.get("CreateVolumeSecret")["adminKey"], "k==");
        assert_eq!(s.get("NodeStageVolumeSecret")["userID"], "u");
        assert!(s.get("DeleteVolumeSecret").is_empty());
        assert!(
            !format!("{s:?}").contains("k=="),
            "Debug must not print values"
        );
        let j = Secrets::parse("{\"DeleteVolumeSecret\": {\"a\": \"b\"}}").expect("json");
        assert_eq!(j.get("DeleteVolumeSecret")["a"], "b");
        assert!(Secrets::parse("NoSuchSecret:\n  a: b\n").is_err());
        assert!(Secrets::parse("  a: b\n").is_err());
        assert!(Secrets::parse("CreateVolumeSecret: x\n").is_err());
    }
}
