//! Build script for the `driver` crate.
//!
//! 1. Compiles `proto/csi.proto` with `protox` (a pure-Rust protobuf compiler
//!    that bundles the Google well-known types, so no system `protoc`).
//! 2. Generates the prost messages and the tonic clients and servers with
//!    `tonic-prost-build` (server methods default to UNIMPLEMENTED).
//! 3. Reads the `csi.v1.csi_secret` field option through `prost-reflect` and,
//!    for every message that has such a field, suppresses prost's derived
//!    `Debug` and writes a redacting `Debug` impl into
//!    `$OUT_DIR/csi_redacted_debug.rs` instead. The list is derived from the
//!    descriptor, never maintained by hand. Non-secret fields print as prost's
//!    derived `Debug` would (enum fields by variant name); secret maps print
//!    their keys and `"<redacted>"` for each value; other secret fields print
//!    `"<redacted>"`. Because prost's `skip_debug` also drops `Debug` from
//!    types nested in a skipped message, those get generated impls too (a
//!    nested enum prints its proto value name).
//! 4. Writes the encoded `FileDescriptorSet` (extension options included) to
//!    `$OUT_DIR/csi_descriptor.bin` so tests can cross-check the list.

use std::collections::BTreeSet;
use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::{env, fs};

use heck::{ToSnakeCase, ToUpperCamelCase};
use prost_reflect::{
    DescriptorPool, EnumDescriptor, ExtensionDescriptor, FieldDescriptor, Kind, MessageDescriptor,
    OneofDescriptor, Value,
};

const PROTO_DIR: &str = "proto";
const PROTO_FILE: &str = "csi.proto";
const PACKAGE: &str = "csi.v1";
const SECRET_OPTION: &str = "csi.v1.csi_secret";

/// Rust path (from the `csi` module) of the module holding the generated code.
const V1: &str = "v1";
/// Rust path of the hand-written redaction helpers.
const REDACT: &str = "crate::csi::redact";

type BuildResult<T> = Result<T, Box<dyn Error>>;

fn main() -> BuildResult<()> {
    println!("cargo:rerun-if-changed={PROTO_DIR}/{PROTO_FILE}");
    println!("cargo:rerun-if-changed=build.rs");

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let mut compiler = protox::Compiler::new([PROTO_DIR])?;
    compiler.include_imports(true);
    compiler.open_file(PROTO_FILE)?;
    let pool = compiler.descriptor_pool();

    let secret = pool
        .get_extension_by_name(SECRET_OPTION)
        .ok_or_else(|| format!("{SECRET_OPTION} is not defined by {PROTO_FILE}"))?;
    let redacted = secret_bearing_messages(&pool, &secret);
    if redacted.is_empty() {
        return Err(format!("no field of {PROTO_FILE} is marked with {SECRET_OPTION}").into());
    }

    fs::write(
        out_dir.join("csi_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Every server trait method gets a default body answering UNIMPLEMENTED,
        // so an RPC a newer spec adds (v1.13's health RPCs) is served as
        // "not supported" until someone implements it; the driver advertises no
        // capability for such an RPC.
        .generate_default_stubs(true)
        .skip_debug(redacted.iter().map(|m| format!(".{}", m.full_name())))
        .compile_fds(compiler.file_descriptor_set())?;

    let code = DebugGenerator::new(&secret).generate(&redacted)?;
    fs::write(out_dir.join("csi_redacted_debug.rs"), code)?;
    Ok(())
}

/// Whether `field` carries `[(csi_secret) = true]`.
fn is_secret(field: &FieldDescriptor, secret: &ExtensionDescriptor) -> bool {
    let options = field.options();
    options.has_extension(secret)
        && matches!(options.get_extension(secret).as_ref(), Value::Bool(true))
}

/// Every message of the CSI package (nested ones included, map entries
/// excluded) with at least one secret field, in descriptor order.
fn secret_bearing_messages(
    pool: &DescriptorPool,
    secret: &ExtensionDescriptor,
) -> Vec<MessageDescriptor> {
    pool.all_messages()
        .filter(|m| m.package_name() == PACKAGE && !m.is_map_entry())
        .filter(|m| m.fields().any(|f| is_secret(&f, secret)))
        .collect()
}

/// prost's identifier sanitising (keywords become raw identifiers, and so on).
fn sanitize(ident: String) -> String {
    match ident.as_str() {
        "as" | "break" | "const" | "continue" | "else" | "enum" | "false" | "fn" | "for" | "if"
        | "impl" | "in" | "let" | "loop" | "match" | "mod" | "move" | "mut" | "pub" | "ref"
        | "return" | "static" | "struct" | "trait" | "true" | "type" | "unsafe" | "use"
        | "where" | "while" | "dyn" | "abstract" | "become" | "box" | "do" | "final" | "macro"
        | "override" | "priv" | "typeof" | "unsized" | "virtual" | "yield" | "async" | "await"
        | "try" | "gen" => format!("r#{ident}"),
        "_" | "super" | "self" | "Self" | "extern" | "crate" => format!("{ident}_"),
        s if s.starts_with(|c: char| c.is_numeric()) => format!("_{ident}"),
        _ => ident,
    }
}

/// The Rust field (or module) identifier prost generates for a proto name.
fn to_snake(name: &str) -> String {
    sanitize(name.to_snake_case())
}

/// The Rust type identifier prost generates for a proto name.
fn to_upper_camel(name: &str) -> String {
    sanitize(name.to_upper_camel_case())
}

/// The name shown by `Debug` for a field: the identifier without `r#`.
fn display_name(ident: &str) -> &str {
    ident.strip_prefix("r#").unwrap_or(ident)
}

/// Rust module path (relative to the `csi` module) of the items nested in
/// `message`: `v1::outer::inner`.
fn module_of(message: &MessageDescriptor) -> String {
    let mut segments = Vec::new();
    let mut current = Some(message.clone());
    while let Some(m) = current {
        segments.push(to_snake(m.name()));
        current = m.parent_message();
    }
    segments.push(V1.to_owned());
    segments.reverse();
    segments.join("::")
}

/// Rust path (relative to the `csi` module) of a generated message type.
fn message_path(message: &MessageDescriptor) -> String {
    match message.parent_message() {
        Some(parent) => format!("{}::{}", module_of(&parent), to_upper_camel(message.name())),
        None => format!("{V1}::{}", to_upper_camel(message.name())),
    }
}

/// Rust path of a generated enum type, if it belongs to the CSI package.
fn enum_path(enum_desc: &EnumDescriptor) -> Option<String> {
    if enum_desc.package_name() != PACKAGE {
        return None;
    }
    Some(match enum_desc.parent_message() {
        Some(parent) => format!(
            "{}::{}",
            module_of(&parent),
            to_upper_camel(enum_desc.name())
        ),
        None => format!("{V1}::{}", to_upper_camel(enum_desc.name())),
    })
}

/// Rust path of the enum prost generates for a (real) oneof.
fn oneof_path(oneof: &OneofDescriptor) -> String {
    format!(
        "{}::{}",
        module_of(oneof.parent_message()),
        to_upper_camel(oneof.name())
    )
}

/// A real oneof (not the synthetic one behind a proto3 `optional` field).
fn real_oneof(field: &FieldDescriptor) -> Option<OneofDescriptor> {
    field.containing_oneof().filter(|o| !o.is_synthetic())
}

/// How prost represents a (non-oneof) field in Rust.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Plain,
    Optional,
    List,
    Map,
}

fn shape(field: &FieldDescriptor) -> Shape {
    if field.is_map() {
        Shape::Map
    } else if field.is_list() {
        Shape::List
    } else if field.supports_presence() {
        Shape::Optional
    } else {
        Shape::Plain
    }
}

struct DebugGenerator<'a> {
    secret: &'a ExtensionDescriptor,
    out: String,
    done: BTreeSet<String>,
}

impl<'a> DebugGenerator<'a> {
    fn new(secret: &'a ExtensionDescriptor) -> Self {
        Self {
            secret,
            out: String::new(),
            done: BTreeSet::new(),
        }
    }

    fn generate(mut self, redacted: &[MessageDescriptor]) -> BuildResult<String> {
        writeln!(
            self.out,
            "// @generated by driver/build.rs from proto/{PROTO_FILE}; do not edit.\n"
        )?;
        writeln!(
            self.out,
            "/// Fully-qualified names of the messages that have at least one field\n\
             /// marked `[(csi_secret) = true]`; their `Debug` output redacts those fields."
        )?;
        writeln!(self.out, "pub const SECRET_BEARING_MESSAGES: &[&str] = &[")?;
        for message in redacted {
            writeln!(self.out, "    {:?},", message.full_name())?;
        }
        writeln!(self.out, "];\n")?;

        // prost's `skip_debug` also strips `Debug` from everything nested in a
        // skipped message (its nested messages, enums and oneof enums), so
        // those get generated impls as well.
        for message in redacted {
            self.message_tree(message)?;
        }
        self.probes(redacted)?;
        Ok(self.out)
    }

    fn message_tree(&mut self, message: &MessageDescriptor) -> BuildResult<()> {
        if message.is_map_entry() || !self.done.insert(message.full_name().to_owned()) {
            return Ok(());
        }
        self.message_impl(message)?;
        for oneof in message.oneofs().filter(|o| !o.is_synthetic()) {
            self.oneof_impl(&oneof)?;
        }
        for child in message.child_enums() {
            self.enum_impl(&child)?;
        }
        for child in message.child_messages() {
            self.message_tree(&child)?;
        }
        Ok(())
    }

    /// Debug expression for a plain/optional/list field value `expr` of
    /// `field`, honouring enums and secrets.
    fn value_expr(&self, field: &FieldDescriptor, expr: &str, shape: Shape) -> String {
        if is_secret(field, self.secret) {
            return match shape {
                Shape::Map => format!("{REDACT}::RedactedMap(&{expr})"),
                Shape::List => format!("{REDACT}::RedactedList({expr}.len())"),
                Shape::Optional => format!("{REDACT}::RedactedOption({expr}.is_some())"),
                Shape::Plain => format!("{REDACT}::Redacted"),
            };
        }
        if let Some(path) = field.kind().as_enum().and_then(enum_path) {
            return match shape {
                Shape::Plain => format!("{REDACT}::EnumValue::<{path}>::new({expr})"),
                Shape::Optional => format!("{expr}.map({REDACT}::EnumValue::<{path}>::new)"),
                Shape::List => format!("{REDACT}::EnumList::<{path}>::new(&{expr})"),
                Shape::Map => format!("&{expr}"),
            };
        }
        format!("&{expr}")
    }

    fn message_impl(&mut self, message: &MessageDescriptor) -> BuildResult<()> {
        let path = message_path(message);
        let mut body = format!("        f.debug_struct({:?})\n", message.name());
        // prost declares the plain fields first (in proto order), then one
        // field per real oneof.
        for field in message.fields().filter(|f| real_oneof(f).is_none()) {
            let ident = to_snake(field.name());
            let value = self.value_expr(&field, &format!("self.{ident}"), shape(&field));
            let value = if value.starts_with('&') {
                value
            } else {
                format!("&{value}")
            };
            writeln!(
                body,
                "            .field({:?}, {value})",
                display_name(&ident)
            )?;
        }
        for oneof in message.oneofs().filter(|o| !o.is_synthetic()) {
            let ident = to_snake(oneof.name());
            writeln!(
                body,
                "            .field({:?}, &self.{ident})",
                display_name(&ident)
            )?;
        }
        body.push_str("            .finish()\n");
        writeln!(
            self.out,
            "impl ::core::fmt::Debug for {path} {{\n    \
             fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {{\n{body}    }}\n}}\n"
        )?;
        Ok(())
    }

    fn oneof_impl(&mut self, oneof: &OneofDescriptor) -> BuildResult<()> {
        let path = oneof_path(oneof);
        let mut arms = String::new();
        for field in oneof.fields() {
            let variant = to_upper_camel(field.name());
            let name = display_name(&variant);
            let arm = if is_secret(&field, self.secret) {
                format!("Self::{variant}(_) => f.debug_tuple({name:?}).field(&{REDACT}::Redacted)")
            } else {
                let value = self.value_expr(&field, "*value", Shape::Plain);
                let value = if value == "&*value" {
                    "value".to_owned()
                } else {
                    format!("&{value}")
                };
                format!("Self::{variant}(value) => f.debug_tuple({name:?}).field({value})")
            };
            writeln!(arms, "            {arm}.finish(),")?;
        }
        writeln!(
            self.out,
            "impl ::core::fmt::Debug for {path} {{\n    \
             fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {{\n        \
             match self {{\n{arms}        }}\n    }}\n}}\n"
        )?;
        Ok(())
    }

    fn enum_impl(&mut self, enum_desc: &EnumDescriptor) -> BuildResult<()> {
        let Some(path) = enum_path(enum_desc) else {
            return Ok(());
        };
        writeln!(
            self.out,
            "impl ::core::fmt::Debug for {path} {{\n    \
             fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {{\n        \
             f.write_str(self.as_str_name())\n    }}\n}}\n"
        )?;
        Ok(())
    }

    /// Test support: builds each secret-bearing message with every secret
    /// field it can fill set to `sentinel` and returns its `Debug` output.
    fn probes(&mut self, redacted: &[MessageDescriptor]) -> BuildResult<()> {
        writeln!(
            self.out,
            "/// One secret-bearing message, with its secret fields filled in, as\n\
             /// printed by `{{:?}}` and `{{:#?}}`.\n\
             #[cfg(test)]\n\
             #[derive(Debug)]\n\
             pub(crate) struct SecretDebugProbe {{\n    \
             pub message: &'static str,\n    \
             pub secret_fields: usize,\n    \
             pub map_keys: bool,\n    \
             pub debug: String,\n    \
             pub pretty: String,\n}}\n\n\
             #[cfg(test)]\n\
             #[allow(clippy::useless_conversion, clippy::needless_update)]\n\
             pub(crate) fn secret_debug_probes(sentinel: &str, key: &str) -> Vec<SecretDebugProbe> {{\n    \
             let mut probes = Vec::new();"
        )?;
        for message in redacted {
            let mut inits = String::new();
            let mut filled = 0usize;
            let mut map_keys = false;
            for field in message.fields().filter(|f| is_secret(f, self.secret)) {
                let Some((ident, init)) = probe_init(&field) else {
                    continue;
                };
                filled += 1;
                map_keys |= field.is_map();
                writeln!(inits, "            {ident}: {init},")?;
            }
            writeln!(
                self.out,
                "    {{\n        let m = {path} {{\n{inits}            ..::core::default::Default::default()\n        }};\n        \
                 probes.push(SecretDebugProbe {{\n            message: {name:?},\n            \
                 secret_fields: {filled},\n            map_keys: {map_keys},\n            \
                 debug: format!(\"{{m:?}}\"),\n            pretty: format!(\"{{m:#?}}\"),\n        }});\n    }}",
                path = message_path(message),
                name = message.full_name(),
            )?;
        }
        writeln!(self.out, "    probes\n}}")?;
        Ok(())
    }
}

/// A Rust initialiser that puts the sentinel into a secret field, for the
/// field types that can hold text.
fn probe_init(field: &FieldDescriptor) -> Option<(String, String)> {
    let text = |kind: &Kind| -> Option<&'static str> {
        match kind {
            Kind::String => Some("sentinel.to_owned()"),
            Kind::Bytes => Some("sentinel.as_bytes().to_vec().into()"),
            _ => None,
        }
    };
    if let Some(oneof) = real_oneof(field) {
        let value = text(&field.kind())?;
        return Some((
            to_snake(oneof.name()),
            format!(
                "Some({}::{}({value}))",
                oneof_path(&oneof),
                to_upper_camel(field.name())
            ),
        ));
    }
    let ident = to_snake(field.name());
    let init = match shape(field) {
        Shape::Map => {
            let entry = field.kind();
            let entry = entry.as_message()?;
            let key = entry.map_entry_key_field().kind();
            let value = entry.map_entry_value_field().kind();
            if !matches!(key, Kind::String) {
                return None;
            }
            let value = text(&value)?;
            format!("[(key.to_owned(), {value})].into_iter().collect()")
        }
        Shape::List => format!("vec![{}]", text(&field.kind())?),
        Shape::Optional => format!("Some({})", text(&field.kind())?),
        Shape::Plain => text(&field.kind())?.to_owned(),
    };
    Some((ident, init))
}
