//! Command descriptors, argument validation and output formatting.
//!
//! Ceph describes every command with a signature: a prefix, typed arguments, the module
//! that owns it and the permission it needs. The monitor (or mgr) validates the JSON a
//! client sends against that signature before the handler runs. This module holds the
//! same table for the commands the fake serves, so that type errors, missing arguments
//! and permissions are answered in one place, before any handler sees the request.

use serde_json::{Map, Value};

use crate::cephx::Perm;
use crate::error::{CephError, CephResult};

/// Which daemon serves a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    /// The monitor (FSMap, auth, monmap, status, config).
    Mon,
    /// The manager, here its `volumes` module.
    Mgr,
    /// The MDS, reached with `ceph tell mds.<x>`.
    Mds,
    /// The OSDs (RADOS object operations).
    Osd,
}

/// The type of a command argument, as Ceph's signatures name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    /// `CephString`.
    Str,
    /// `CephInt`.
    Int,
    /// `CephBool`.
    Bool,
    /// `CephFloat`.
    Float,
    /// A list of strings (`n=N` string arguments).
    StrList,
    /// A JSON object (the fake's RADOS omap values).
    Object,
}

impl ArgType {
    fn ceph_name(self) -> &'static str {
        match self {
            ArgType::Str => "CephString",
            ArgType::Int => "CephInt",
            ArgType::Bool => "CephBool",
            ArgType::Float => "CephFloat",
            ArgType::StrList => "CephString(n=N)",
            ArgType::Object => "object",
        }
    }
}

/// One argument of a command signature.
#[derive(Debug, Clone, Copy)]
pub struct ArgSpec {
    /// The JSON key.
    pub name: &'static str,
    /// Its type.
    pub ty: ArgType,
    /// Whether the command fails without it.
    pub required: bool,
}

/// A required argument.
pub const fn req(name: &'static str, ty: ArgType) -> ArgSpec {
    ArgSpec {
        name,
        ty,
        required: true,
    }
}

/// An optional argument.
pub const fn opt(name: &'static str, ty: ArgType) -> ArgSpec {
    ArgSpec {
        name,
        ty,
        required: false,
    }
}

/// A command signature: what Ceph's `COMMAND(...)` macros and the mgr modules' command
/// tables declare.
#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    /// The prefix, e.g. `fs subvolume create`.
    pub prefix: &'static str,
    /// The daemon that handles it.
    pub daemon: Daemon,
    /// The cap module (`mon`, `auth`, `mds`, `osd`, `config`, `volumes`).
    pub module: &'static str,
    /// The permission it needs in that module's service.
    pub perm: &'static str,
    /// Its arguments.
    pub args: &'static [ArgSpec],
}

impl CommandSpec {
    /// The permission as bits.
    pub fn need(&self) -> Perm {
        let mut p = Perm::default();
        for c in self.perm.chars() {
            match c {
                'r' => p.r = true,
                'w' => p.w = true,
                'x' => p.x = true,
                _ => {}
            }
        }
        p
    }
}

/// A command's arguments after validation against its signature.
#[derive(Debug)]
pub struct Args<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    /// Validates `map` against `spec` the way Ceph's `validate_cmd` does: required
    /// arguments present, every present argument of the declared type. Unknown keys are
    /// ignored, as Ceph ignores them.
    pub fn validate(spec: &CommandSpec, map: &'a Map<String, Value>) -> CephResult<Self> {
        for arg in spec.args {
            match map.get(arg.name) {
                None | Some(Value::Null) if arg.required => {
                    return Err(CephError::inval(format!(
                        "missing required parameter {}({})",
                        arg.name,
                        arg.ty.ceph_name()
                    )));
                }
                None | Some(Value::Null) => {}
                Some(v) => check_type(arg, v)?,
            }
        }
        Ok(Self { map })
    }

    /// A string argument; `None` if absent.
    pub fn str(&self, name: &str) -> Option<&'a str> {
        match self.map.get(name) {
            Some(Value::String(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    /// A required string argument.
    pub fn req_str(&self, name: &str) -> CephResult<&'a str> {
        self.str(name).ok_or_else(|| {
            CephError::inval(format!("missing required parameter {name}(CephString)"))
        })
    }

    /// An integer argument (JSON number, or a string of digits as the CLI sends).
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.map.get(name) {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// A boolean argument; absent is false.
    pub fn flag(&self, name: &str) -> bool {
        match self.map.get(name) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => matches!(s.as_str(), "true" | "True" | "yes" | "1"),
            Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
            _ => false,
        }
    }

    /// A list of strings; a single string counts as a list of one.
    pub fn str_list(&self, name: &str) -> Vec<&'a str> {
        match self.map.get(name) {
            Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
            Some(Value::String(s)) => vec![s.as_str()],
            _ => Vec::new(),
        }
    }

    /// A raw JSON value.
    pub fn value(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name)
    }

    /// The requested output format (`json`, `json-pretty`, `plain`, ...).
    pub fn format(&self) -> Format {
        match self.str("format") {
            Some("json") => Format::Json,
            Some("json-pretty") => Format::JsonPretty,
            Some("xml" | "xml-pretty") => Format::Json,
            _ => Format::Plain,
        }
    }
}

fn bad_field(name: &str) -> CephError {
    CephError::inval(format!("bad or missing field '{name}'"))
}

fn check_type(arg: &ArgSpec, v: &Value) -> CephResult<()> {
    let ok = match arg.ty {
        ArgType::Str => v.is_string(),
        ArgType::Int => match v {
            Value::Number(n) => n.is_i64(),
            Value::String(s) => s.trim().parse::<i64>().is_ok(),
            _ => false,
        },
        ArgType::Float => match v {
            Value::Number(_) => true,
            Value::String(s) => s.trim().parse::<f64>().is_ok(),
            _ => false,
        },
        ArgType::Bool => match v {
            Value::Bool(_) => true,
            Value::String(s) => matches!(s.as_str(), "true" | "false" | "True" | "False"),
            _ => false,
        },
        ArgType::StrList => match v {
            Value::String(_) => true,
            Value::Array(a) => a.iter().all(Value::is_string),
            _ => false,
        },
        ArgType::Object => v.is_object(),
    };
    if ok { Ok(()) } else { Err(bad_field(arg.name)) }
}

/// Output formats a command can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable text (the default).
    Plain,
    /// Compact JSON.
    Json,
    /// Indented JSON.
    JsonPretty,
}

impl Format {
    /// Whether the caller wants JSON.
    pub fn is_json(self) -> bool {
        self != Format::Plain
    }

    /// Renders a JSON value in this format (plain renders compact JSON).
    pub fn render(self, v: &Value) -> String {
        match self {
            Format::JsonPretty => serde_json::to_string_pretty(v).unwrap_or_default(),
            _ => v.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::errno;
    use serde_json::json;

    const SPEC: CommandSpec = CommandSpec {
        prefix: "fs subvolume create",
        daemon: Daemon::Mgr,
        module: "volumes",
        perm: "rw",
        args: &[
            req("vol_name", ArgType::Str),
            req("sub_name", ArgType::Str),
            opt("size", ArgType::Int),
            opt("namespace_isolated", ArgType::Bool),
        ],
    };

    fn check(v: Value, expected: Result<(), &str>) {
        let map = v.as_object().unwrap().clone();
        let got = Args::validate(&SPEC, &map).map(|_| ()).map_err(|e| {
            assert_eq!(e.errno, errno::EINVAL);
            e.msg
        });
        match (got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(m), Err(want)) => assert!(m.contains(want), "{m} !~ {want}"),
            (got, want) => panic!("{got:?} != {want:?}"),
        }
    }

    #[test]
    fn validation() {
        check(json!({"vol_name": "a", "sub_name": "b"}), Ok(()));
        check(json!({"vol_name": "a", "sub_name": "b", "size": 5}), Ok(()));
        check(
            json!({"vol_name": "a", "sub_name": "b", "size": "5"}),
            Ok(()),
        );
        check(json!({"vol_name": "a", "sub_name": "b", "x": [1]}), Ok(()));
        check(json!({"vol_name": "a"}), Err("sub_name"));
        check(
            json!({"vol_name": "a", "sub_name": "b", "size": "abc"}),
            Err("size"),
        );
        check(
            json!({"vol_name": "a", "sub_name": "b", "size": 1.5}),
            Err("size"),
        );
        check(json!({"vol_name": 1, "sub_name": "b"}), Err("vol_name"));
        check(
            json!({"vol_name": "a", "sub_name": "b", "namespace_isolated": "x"}),
            Err("namespace_isolated"),
        );
    }
}
