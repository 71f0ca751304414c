//! The params and secrets files, in the shapes csi-sanity reads.
//!
//! YAML (and so JSON), read with `yaml_serde` into the shapes csi-sanity reads: params a
//! flat map, secrets one map per RPC (`CreateVolumeSecret:` followed by indented
//! `key: value` lines). Scalars become strings as Go's YAML does for a
//! `map[string]string` (`size: 10` is `"10"`, `empty:` is `""`); a list or a nested
//! map where a value belongs is refused. Imports nothing of the crate.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use yaml_serde::Value;

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
        for (rpc, map) in mapping(text).context("secrets")? {
            let Value::Mapping(m) = map else {
                bail!("secrets: `{rpc}` must be a map of `key: value` lines");
            };
            out.insert(
                rpc.clone(),
                flat(m).with_context(|| format!("secrets: {rpc}"))?,
            );
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

    /// Reads the secrets file at `path` when given; none otherwise.
    pub fn load_or_empty(path: Option<&Path>) -> anyhow::Result<Self> {
        path.map(Self::load)
            .transpose()
            .map(Option::unwrap_or_default)
    }
}

/// Parses a flat params file's text.
pub fn parse_params(text: &str) -> anyhow::Result<Params> {
    let map = mapping(text).context("params")?;
    flat(
        map.into_iter()
            .map(|(k, v)| (Value::String(k), v))
            .collect(),
    )
    .context("params")
}

/// The top-level map of a YAML (or JSON) text, its keys as strings; an empty text is an
/// empty map.
fn mapping(text: &str) -> anyhow::Result<Vec<(String, Value)>> {
    let doc: Value = yaml_serde::from_str(text).context("not YAML")?;
    match doc {
        Value::Null => Ok(Vec::new()),
        Value::Mapping(m) => m
            .into_iter()
            .map(|(k, v)| Ok((scalar(k).context("a key")?, v)))
            .collect(),
        _ => bail!("expected a map of `key: value` lines"),
    }
}

/// A map whose values are all scalars, as strings.
fn flat(m: yaml_serde::Mapping) -> anyhow::Result<HashMap<String, String>> {
    m.into_iter()
        .map(|(k, v)| {
            let key = scalar(k).context("a key")?;
            let value = scalar(v).with_context(|| format!("`{key}`"))?;
            Ok((key, value))
        })
        .collect()
}

/// A scalar as Go's YAML gives it to a string: strings as written, numbers and
/// booleans as text, null as "".
fn scalar(v: Value) -> anyhow::Result<String> {
    match v {
        Value::Null => Ok(String::new()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::String(s) => Ok(s),
        Value::Sequence(_) => bail!("a list where a string value belongs"),
        Value::Mapping(_) => bail!("a nested map where a string value belongs"),
        Value::Tagged(t) => scalar(t.value),
    }
}

/// Reads a params file.
pub fn load_params(path: &Path) -> anyhow::Result<Params> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_params(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Reads the params file at `path` when given; an empty map otherwise.
pub fn load_params_or_empty(path: Option<&Path>) -> anyhow::Result<Params> {
    path.map(load_params)
        .transpose()
        .map(Option::unwrap_or_default)
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

    proptest::proptest! {
        /// Any flat map of printable text written as YAML (keys and values quoted as a
        /// YAML writer quotes them) or as JSON reads back as it was.
        #[test]
        fn any_written_params_read_back(
            // Printable text: YAML allows no raw control characters.
            m in proptest::collection::hash_map("[a-zA-Z0-9_./-]{1,16}", "[^\\p{C}\\u{85}\\u{2028}\\u{2029}]{0,24}", 0..8)
        ) {
            let yaml = yaml_serde::to_string(&m).unwrap();
            proptest::prop_assert_eq!(&parse_params(&yaml).unwrap(), &m, "{}", yaml);
            let json = serde_json::to_string(&m).unwrap();
            proptest::prop_assert_eq!(&parse_params(&json).unwrap(), &m, "{}", json);
        }

        /// Arbitrary text is parsed or refused, never a panic.
        #[test]
        fn arbitrary_text_never_panics(text in "(?s).{0,200}") {
            let _ = parse_params(&text);
            let _ = Secrets::parse(&text);
        }
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
