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
    /// Any JSON value: the handler parses it (mgr arguments that take a string or a
    /// number, such as `new_size`).
    Any,
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
            ArgType::Any => "CephString",
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

/// A command's arguments after validation.
#[derive(Debug)]
pub struct Args<'a> {
    map: &'a Map<String, Value>,
    daemon: Daemon,
}

/// A Python-style `str()` of a JSON value, as the mgr modules quote bad arguments.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

impl<'a> Args<'a> {
    /// Validates `map` against `spec` the way the daemon that owns the command does.
    ///
    /// The monitor checks every argument against the signature (`validate_cmd`):
    /// a missing required argument is `invalid command`, a mistyped one `bad or missing
    /// field '<name>'`. The mgr hands the JSON to the Python module as it is: a missing
    /// argument is a `KeyError` traceback, booleans follow Python truthiness, and
    /// numbers are parsed (and refused with the module's own message) by the handler.
    /// Unknown keys are ignored by both.
    pub fn validate(spec: &CommandSpec, map: &'a Map<String, Value>) -> CephResult<Self> {
        for arg in spec.args {
            match map.get(arg.name) {
                None | Some(Value::Null) if arg.required => return Err(missing(spec, arg)),
                None | Some(Value::Null) => {}
                Some(v) => match spec.daemon {
                    Daemon::Mgr if matches!(arg.ty, ArgType::Int | ArgType::Bool) => {}
                    _ => check_type(arg, v)?,
                },
            }
        }
        Ok(Self {
            map,
            daemon: spec.daemon,
        })
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

    /// An integer argument that must parse if present; `bad` builds the error from the
    /// raw value as Python would print it.
    pub fn int_checked(
        &self,
        name: &str,
        bad: impl Fn(&str) -> CephError,
    ) -> CephResult<Option<i64>> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => self.int(name).map(Some).ok_or_else(|| bad(&py_str(v))),
        }
    }

    /// A boolean argument; absent is false. Mgr commands follow Python truthiness (any
    /// non-empty string is true); mon commands accept `true`/`false`.
    pub fn flag(&self, name: &str) -> bool {
        let v = self.map.get(name);
        if self.daemon == Daemon::Mgr {
            return match v {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(Value::Number(n)) => n.as_f64().is_some_and(|x| x != 0.0),
                Some(Value::String(s)) => !s.is_empty(),
                Some(Value::Array(a)) => !a.is_empty(),
                Some(Value::Object(o)) => !o.is_empty(),
            };
        }
        match v {
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

fn missing(spec: &CommandSpec, arg: &ArgSpec) -> CephError {
    match spec.daemon {
        Daemon::Mon => CephError::inval("invalid command"),
        // The mgr module indexes `cmd['<name>']` and the KeyError reaches the caller.
        Daemon::Mgr => CephError::inval(format!(
            "Traceback (most recent call last):\n  File \"/usr/share/ceph/mgr/volumes/module.py\", \
             in handle_command\n    return handler(inbuf, cmd)\nKeyError: '{}'",
            arg.name
        )),
        Daemon::Mds | Daemon::Osd => CephError::inval(format!(
            "missing required parameter {}({})",
            arg.name,
            arg.ty.ceph_name()
        )),
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
        ArgType::Any => true,
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

/// Renders a value as the mgr's Python modules do: `json.dumps(v, indent=N)` (keys in
/// the order given; non-ASCII escaped as `\uXXXX`), followed by a newline.
pub fn py_json<T: serde::Serialize + ?Sized>(v: &T, indent: usize) -> String {
    let pad = vec![b' '; indent];
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(&pad);
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if serde::Serialize::serialize(v, &mut ser).is_err() {
        return "\n".into();
    }
    let text = String::from_utf8(buf).unwrap_or_default();
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::errno;
    use serde_json::json;

    const ARGS: &[ArgSpec] = &[
        req("vol_name", ArgType::Str),
        req("sub_name", ArgType::Str),
        opt("size", ArgType::Int),
        opt("force", ArgType::Bool),
    ];
    const MON: CommandSpec = CommandSpec {
        prefix: "test mon",
        daemon: Daemon::Mon,
        module: "mon",
        perm: "r",
        args: ARGS,
    };
    const MGR: CommandSpec = CommandSpec {
        prefix: "test mgr",
        daemon: Daemon::Mgr,
        module: "volumes",
        perm: "rw",
        args: ARGS,
    };

    fn check(spec: &CommandSpec, v: Value, expected: Result<(), &str>) {
        let map = v.as_object().unwrap().clone();
        let got = Args::validate(spec, &map).map(|_| ()).map_err(|e| {
            assert_eq!(e.errno, errno::EINVAL);
            e.msg
        });
        match (got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(m), Err(want)) => assert!(m.contains(want), "{m} !~ {want}"),
            (got, want) => panic!("{} {got:?} != {want:?}", spec.prefix),
        }
    }

    #[test]
    fn python_json() {
        assert_eq!(py_json(&json!([]), 4), "[]\n");
        assert_eq!(
            py_json(&json!([{"name": "a"}]), 4),
            "[\n    {\n        \"name\": \"a\"\n    }\n]\n"
        );
        assert_eq!(
            py_json(&json!({"k": "日"}), 2),
            "{\n  \"k\": \"\\u65e5\"\n}\n"
        );
        assert_eq!(
            py_json(&json!({"b": 1, "a": 2}), 4),
            "{\n    \"b\": 1,\n    \"a\": 2\n}\n"
        );
    }

    #[test]
    fn mon_validation() {
        check(&MON, json!({"vol_name": "a", "sub_name": "b"}), Ok(()));
        check(
            &MON,
            json!({"vol_name": "a", "sub_name": "b", "size": 5}),
            Ok(()),
        );
        check(
            &MON,
            json!({"vol_name": "a", "sub_name": "b", "size": "5"}),
            Ok(()),
        );
        check(
            &MON,
            json!({"vol_name": "a", "sub_name": "b", "x": [1]}),
            Ok(()),
        );
        check(&MON, json!({"vol_name": "a"}), Err("invalid command"));
        check(
            &MON,
            json!({"vol_name": "a", "sub_name": "b", "size": "abc"}),
            Err("bad or missing field 'size'"),
        );
        check(
            &MON,
            json!({"vol_name": "a", "sub_name": "b", "size": 1.5}),
            Err("'size'"),
        );
        check(
            &MON,
            json!({"vol_name": 1, "sub_name": "b"}),
            Err("'vol_name'"),
        );
        check(
            &MON,
            json!({"vol_name": "a", "sub_name": "b", "force": "x"}),
            Err("'force'"),
        );
    }

    #[test]
    fn mgr_validation_is_pythonic() {
        check(&MGR, json!({"vol_name": "a"}), Err("KeyError: 'sub_name'"));
        // Numbers are the handler's to parse, booleans are truthy.
        check(
            &MGR,
            json!({"vol_name": "a", "sub_name": "b", "size": "abc", "force": "maybe"}),
            Ok(()),
        );
        check(
            &MGR,
            json!({"vol_name": 1, "sub_name": "b"}),
            Err("'vol_name'"),
        );
        let map = json!({"vol_name": "a", "sub_name": "b", "force": "false", "size": "abc"});
        let map = map.as_object().unwrap();
        let args = Args::validate(&MGR, map).unwrap();
        assert!(args.flag("force"), "a non-empty string is truthy in Python");
        let err = args
            .int_checked("size", |raw| {
                CephError::inval(format!("invalid size specified: '{raw}'"))
            })
            .unwrap_err();
        assert_eq!(err.msg, "invalid size specified: 'abc'");
        let mon_map = json!({"vol_name": "a", "sub_name": "b", "force": "false"});
        let mon_args = Args::validate(&MON, mon_map.as_object().unwrap()).unwrap();
        assert!(!mon_args.flag("force"));
    }
}
