//! The `cli` admin transport: the `ceph` and `rados` commands of a real cluster's client
//! packages, run with the cluster's `ceph.conf`, as an operator would.
//!
//! - **Credentials** never touch argv or a named file: the key goes into an anonymous
//!   (already unlinked) temporary file that becomes the child's stdin, and the child
//!   reads it as `--keyfile /dev/stdin` (a regular file, so the `ceph` CLI can read it
//!   twice, which it does; a pipe would not do). Anything the tools print is scrubbed
//!   of the key before it is kept (`rados` echoes an undecodable key in its log).
//! - **Mon and mgr commands** become `ceph <prefix words> --<arg>=<value> ...`: the CLI
//!   accepts every argument of a command by name, checks it against the command's
//!   description, and sends it to the mon or the mgr itself. Its stdout is `outb`, its
//!   stderr `outs`; on failure it prints `Error E<NAME>: <outs>` and exits with the errno.
//! - **RADOS object commands** (`rados create`, `rados omap set/get/list/rm`,
//!   `rados rm`) become `rados -p <pool> -N <ns> ...` runs: `create`, `setomapval`,
//!   `listomapvals` (whose hex dump is parsed), `rmomapkey`, `rm`. Unlike librados, the
//!   CLI cannot create an object and set its omap in one operation: `rados create`
//!   with values is an exclusive create followed by one `setomapval` per value, so a
//!   crash in between leaves an object with some of its values (the journal treats an
//!   incomplete per-UUID object as absent and never points a name at it).
//! - **Deadlines**: every run is killed when the call's deadline passes; `ceph` also
//!   gets `--connect-timeout`.
//! - **Probe** asks only whether a monitor accepts a TCP connection: it has no
//!   credentials to do more.
//!
//! The `ceph` CLI is a Python program: each call costs about 0.2-0.4 s of interpreter
//! start-up, against about 15 ms for the same command through librados. The transport
//! is for reaching real clusters faithfully, not for speed.

use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::{Answer, CephError, Credentials, Target, Transport, errno};
use crate::cause::Cause;

/// Runs `ceph` and `rados` against one cluster.
#[derive(Debug, Clone)]
pub struct CliTransport {
    conf: PathBuf,
    ceph: PathBuf,
    rados: PathBuf,
    monitors: Vec<String>,
}

/// What a finished command printed.
#[derive(Debug)]
struct Run {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    /// Without the tools' own log lines, scrubbed of the key.
    stderr: String,
}

impl CliTransport {
    /// A transport for the cluster described by `conf`, whose monitors are `monitors`
    /// (for Probe). `ceph` and `rados` default to the commands on `PATH`.
    pub fn new(
        conf: &Path,
        monitors: &[String],
        ceph: Option<&Path>,
        rados: Option<&Path>,
    ) -> Self {
        Self {
            conf: conf.to_owned(),
            ceph: ceph.map_or_else(|| PathBuf::from("ceph"), Path::to_owned),
            rados: rados.map_or_else(|| PathBuf::from("rados"), Path::to_owned),
            monitors: monitors.to_vec(),
        }
    }

    /// Runs `program` with the credentials and `args`, killing it at `deadline`.
    async fn run(
        &self,
        program: &Path,
        creds: &Credentials,
        args: &[String],
        prefix: &str,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Run, CephError> {
        let transport = |message: String, e: std::io::Error| CephError::Transport {
            prefix: prefix.to_owned(),
            message,
            cause: Some(Cause::new(e)),
        };
        let keyfile = key_stdin(creds.key())
            .map_err(|e| transport(format!("cannot hand the key to {}", program.display()), e))?;
        let child = tokio::process::Command::new(program)
            .arg("--conf")
            .arg(&self.conf)
            .arg("--name")
            .arg(creds.entity())
            .arg("--keyfile")
            .arg("/dev/stdin")
            .args(args)
            .env("LC_ALL", "C")
            .stdin(keyfile)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| transport(format!("cannot run {}", program.display()), e))?;
        let out = match tokio::time::timeout_at(deadline, child.wait_with_output()).await {
            Err(_) => {
                return Err(CephError::Timeout {
                    prefix: prefix.to_owned(),
                    timeout,
                });
            }
            Ok(Err(e)) => return Err(transport(program.display().to_string(), e)),
            Ok(Ok(out)) => out,
        };
        let scrub = |b: &[u8]| String::from_utf8_lossy(b).replace(creds.key(), "<redacted>");
        let stderr = scrub(&out.stderr)
            .lines()
            .filter(|l| !is_log_line(l) && !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        let run = Run {
            ok: out.status.success(),
            code: out.status.code(),
            stdout: scrub(&out.stdout),
            stderr,
        };
        if !run.ok && refused(&scrub(&out.stderr)) {
            return Err(CephError::Unauthorized {
                prefix: prefix.to_owned(),
            });
        }
        Ok(run)
    }

    async fn ceph(
        &self,
        creds: &Credentials,
        cmd: &Value,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Answer, CephError> {
        let mut args = vec![format!("--connect-timeout={}", timeout.as_secs().max(1))];
        args.extend(ceph_args(cmd, prefix)?);
        let run = self
            .run(
                &self.ceph,
                creds,
                &args,
                prefix,
                Instant::now() + timeout,
                timeout,
            )
            .await?;
        if run.ok {
            return Ok(Answer {
                outb: run.stdout,
                outs: run.stderr,
            });
        }
        Err(ceph_failure(prefix, &run))
    }

    async fn rados(
        &self,
        creds: &Credentials,
        cmd: &Value,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Answer, CephError> {
        let deadline = Instant::now() + timeout;
        let field = |name: &str| cmd[name].as_str().unwrap_or("");
        let (base, object) = rados_target(cmd, prefix)?;
        // One `rados` run; Ok(None) is a failure with `errno`.
        let rados = |op: Vec<String>| {
            let mut args = base.clone();
            args.extend(op);
            async move {
                let run = self
                    .run(&self.rados, creds, &args, prefix, deadline, timeout)
                    .await?;
                if run.ok {
                    Ok(run.stdout)
                } else {
                    Err(rados_failure(prefix, &run))
                }
            }
        };
        let vals = |name: &str| -> Vec<(String, String)> {
            cmd[name]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let keys: Vec<String> = cmd["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        let outb = match prefix {
            "rados create" => {
                match rados(vec!["create".into(), object.clone()]).await {
                    Ok(_) => {}
                    Err(e)
                        if e.errno() == Some(errno::EEXIST) && cmd["exclusive"] != json!(true) => {}
                    Err(e) => return Err(e),
                }
                for (k, v) in vals("vals") {
                    rados(vec!["setomapval".into(), object.clone(), k, v]).await?;
                }
                String::new()
            }
            "rados omap set" => {
                for (k, v) in vals("vals") {
                    rados(vec!["setomapval".into(), object.clone(), k, v]).await?;
                }
                String::new()
            }
            "rados omap get" => {
                let all =
                    parse_omap_dump(prefix, &rados(vec!["listomapvals".into(), object]).await?)?;
                let found: Map<String, Value> = all
                    .into_iter()
                    .filter(|(k, _)| keys.contains(k))
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                Value::Object(found).to_string()
            }
            "rados omap list" => {
                let all =
                    parse_omap_dump(prefix, &rados(vec!["listomapvals".into(), object]).await?)?;
                let max = cmd["max_return"]
                    .as_u64()
                    .and_then(|m| usize::try_from(m).ok())
                    .unwrap_or(usize::MAX);
                omap_page(all, field("start_after"), field("filter_prefix"), max)
            }
            "rados omap rm" => {
                for k in keys {
                    rados(vec!["rmomapkey".into(), object.clone(), k]).await?;
                }
                String::new()
            }
            "rados rm" => {
                rados(vec!["rm".into(), object]).await?;
                String::new()
            }
            "rados ls" => {
                // One name per line, as the mon command's JSON list gives them.
                let names: Vec<Value> = rados(vec!["ls".into()])
                    .await?
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|name| json!({"name": name, "namespace": field("namespace")}))
                    .collect();
                Value::Array(names).to_string()
            }
            other => {
                return Err(CephError::Unsupported(format!(
                    "{other}: not available through the rados command"
                )));
            }
        };
        Ok(Answer {
            outb,
            outs: String::new(),
        })
    }
}

#[async_trait::async_trait]
impl Transport for CliTransport {
    async fn command(
        &self,
        creds: &Credentials,
        _target: Target,
        cmd: &Value,
        timeout: Duration,
    ) -> Result<Answer, CephError> {
        let prefix = cmd["prefix"].as_str().unwrap_or("").to_owned();
        if prefix.starts_with("rados ") {
            self.rados(creds, cmd, &prefix, timeout).await
        } else {
            // The `ceph` CLI finds out itself whether the mon or the mgr serves a command.
            self.ceph(creds, cmd, &prefix, timeout).await
        }
    }

    async fn reachable(&self, timeout: Duration) -> bool {
        let connect = async {
            for m in &self.monitors {
                if tokio::net::TcpStream::connect(monitor_addr(m))
                    .await
                    .is_ok()
                {
                    return true;
                }
            }
            false
        };
        tokio::time::timeout(timeout, connect)
            .await
            .unwrap_or(false)
    }
}

/// The key as a child's stdin: an anonymous temporary file, already unlinked.
fn key_stdin(key: &str) -> std::io::Result<std::fs::File> {
    let mut f = tempfile::tempfile()?;
    f.write_all(key.as_bytes())?;
    f.rewind()?;
    Ok(f)
}

/// The `--pool`/`--namespace` arguments of a `rados` command and the object it names
/// (none for `rados ls`, which lists a pool's namespace).
fn rados_target(cmd: &Value, prefix: &str) -> Result<(Vec<String>, String), CephError> {
    let field = |name: &str| cmd[name].as_str().unwrap_or("");
    let object = field("object").to_owned();
    let listing = prefix == "rados ls";
    if field("pool").is_empty() || (object.is_empty() && !listing) {
        return Err(CephError::Command {
            prefix: prefix.to_owned(),
            errno: errno::EINVAL,
            message: "pool and object are required".into(),
        });
    }
    let mut base = vec!["--pool".to_owned(), field("pool").to_owned()];
    if !field("namespace").is_empty() {
        base.extend(["--namespace".to_owned(), field("namespace").to_owned()]);
    }
    Ok((base, object))
}

/// `ceph` arguments for a command: the prefix's words, then each argument by name.
fn ceph_args(cmd: &Value, prefix: &str) -> Result<Vec<String>, CephError> {
    let obj = cmd.as_object().ok_or_else(|| CephError::Command {
        prefix: prefix.to_owned(),
        errno: errno::EINVAL,
        message: "a command is a JSON object".into(),
    })?;
    let mut args: Vec<String> = prefix.split_whitespace().map(str::to_owned).collect();
    if args.is_empty() {
        return Err(CephError::Command {
            prefix: prefix.to_owned(),
            errno: errno::EINVAL,
            message: "no prefix".into(),
        });
    }
    for (k, v) in obj {
        if k == "prefix" {
            continue;
        }
        let mut push = |v: &Value| match v {
            Value::String(s) => args.push(format!("--{k}={s}")),
            Value::Bool(b) => args.push(format!("--{k}={b}")),
            Value::Number(n) => args.push(format!("--{k}={n}")),
            _ => {}
        };
        match v {
            Value::Array(items) => items.iter().for_each(&mut push),
            Value::Null => {}
            other => push(other),
        }
    }
    Ok(args)
}

/// A lines the Ceph tools log to stderr (`2026-11-26T11:55:16.261+0000 7f6e... -1 auth: ...`).
fn is_log_line(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T'
}

/// Whether the tools' output says the cluster refused the credentials.
fn refused(stderr: &str) -> bool {
    [
        "permission denied (error connecting",
        "handle_auth_bad_method",
        "failed to decode key",
        "invalid argument (error connecting",
    ]
    .iter()
    .any(|s| stderr.to_ascii_lowercase().contains(s))
}

/// The error of a failed `ceph` run: `Error E<NAME>: <message>` and the errno as its
/// exit code.
fn ceph_failure(prefix: &str, run: &Run) -> CephError {
    if let Some(line) = run.stderr.lines().find(|l| l.starts_with("Error E")) {
        let message = line.split_once(": ").map_or("", |(_, m)| m).to_owned();
        if let Some(errno) = run.code.filter(|c| *c > 0) {
            return CephError::Command {
                prefix: prefix.to_owned(),
                errno,
                message,
            };
        }
    }
    CephError::Transport {
        prefix: prefix.to_owned(),
        message: last_line(&run.stderr, run.code),
        cause: None,
    }
}

/// One page of `rados omap list`'s answer (`{"vals": {...}, "more": bool}`): the keys
/// after `start_after` that start with `filter`, in order, at most `max` of them.
fn omap_page(all: Vec<(String, String)>, start_after: &str, filter: &str, max: usize) -> String {
    let mut page: Vec<(String, String)> = all
        .into_iter()
        .filter(|(k, _)| k.as_str() > start_after && k.starts_with(filter))
        .collect();
    page.sort();
    let more = page.len() > max;
    page.truncate(max);
    let vals: Map<String, Value> = page
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    json!({"vals": vals, "more": more}).to_string()
}

/// The error of a failed `rados` run: it exits with 1 and says `...: (<errno>) <text>`.
fn rados_failure(prefix: &str, run: &Run) -> CephError {
    for line in run.stderr.lines().rev() {
        if let Some(errno) = paren_errno(line) {
            return CephError::Command {
                prefix: prefix.to_owned(),
                errno,
                message: line.to_owned(),
            };
        }
    }
    CephError::Transport {
        prefix: prefix.to_owned(),
        message: last_line(&run.stderr, run.code),
        cause: None,
    }
}

fn last_line(stderr: &str, code: Option<i32>) -> String {
    let line = stderr.lines().last().unwrap_or("").trim();
    match code {
        Some(c) => format!("exit status {c}: {line}"),
        None => format!("killed by a signal: {line}"),
    }
}

/// The errno in `... (2) No such file or directory`.
fn paren_errno(line: &str) -> Option<i32> {
    let mut rest = line;
    while let Some(open) = rest.find('(') {
        let after = &rest[open + 1..];
        if let Some(close) = after.find(')')
            && let Ok(n) = after[..close].parse::<i32>()
        {
            return Some(n.abs());
        }
        rest = after;
    }
    None
}

/// `host:port` of a monitor address as ceph configs write them
/// (`v1:127.0.0.1:6789`, `[v2:127.0.0.1:3300,v1:127.0.0.1:6789]`, `127.0.0.1`).
fn monitor_addr(m: &str) -> String {
    let first = m
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .next()
        .unwrap_or("");
    let bare = first
        .strip_prefix("v1:")
        .or_else(|| first.strip_prefix("v2:"))
        .unwrap_or(first);
    let bare = bare.split('/').next().unwrap_or(bare);
    if bare.contains(':') {
        bare.to_owned()
    } else {
        format!("{bare}:6789")
    }
}

/// Parses `rados listomapvals` output: per key, the key on its own line, then
/// `value (<n> bytes) :`, a hex dump (`00000000  70 76 ...  |pv...|`), the end offset
/// and a blank line.
fn parse_omap_dump(prefix: &str, text: &str) -> Result<Vec<(String, String)>, CephError> {
    let bad = |message: String| CephError::Transport {
        prefix: prefix.to_owned(),
        message: format!("unexpected rados output: {message}"),
        cause: None,
    };
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(key) = lines.next() {
        if key.is_empty() {
            continue;
        }
        let header = lines
            .next()
            .ok_or_else(|| bad(format!("no value after key {key:?}")))?;
        let len: usize = header
            .strip_prefix("value (")
            .and_then(|r| r.split_once(" bytes)"))
            .and_then(|(n, _)| n.parse().ok())
            .ok_or_else(|| bad(format!("{header:?} is not a value header")))?;
        let mut bytes = Vec::with_capacity(len);
        // The dump writes `*` for lines equal to the one before, up to the next offset.
        let mut last: Vec<u8> = Vec::new();
        let mut repeat = false;
        while bytes.len() < len {
            let line = lines
                .next()
                .ok_or_else(|| bad(format!("value of {key:?} cut short")))?;
            if line.trim() == "*" {
                repeat = true;
                continue;
            }
            let mut words = line.split_whitespace();
            let offset = words
                .next()
                .and_then(|o| usize::from_str_radix(o, 16).ok())
                .ok_or_else(|| bad(format!("{line:?} in the value of {key:?} has no offset")))?;
            if repeat {
                if last.is_empty() || offset < bytes.len() || offset > len {
                    return Err(bad(format!(
                        "a repeat in the value of {key:?} does not fit"
                    )));
                }
                while bytes.len() < offset {
                    bytes.extend_from_slice(&last);
                }
                bytes.truncate(offset);
                repeat = false;
            }
            if offset != bytes.len() {
                return Err(bad(format!(
                    "offset {offset:#x} in the value of {key:?} is out of place"
                )));
            }
            let mut row = Vec::with_capacity(16);
            for w in words.take_while(|w| !w.starts_with('|')) {
                let b = u8::from_str_radix(w, 16)
                    .map_err(|_| bad(format!("{w:?} in the value of {key:?} is not a byte")))?;
                row.push(b);
            }
            if row.is_empty() {
                // The end offset: only right after the last row.
                break;
            }
            bytes.extend_from_slice(&row);
            last = row;
        }
        if bytes.len() != len {
            return Err(bad(format!(
                "the value of {key:?} has {} bytes, not {len}",
                bytes.len()
            )));
        }
        // The end offset, then a blank line.
        while lines.peek().is_some_and(|l| !l.is_empty()) {
            let l = lines.next().unwrap_or("");
            if !(l.len() == 8 && l.bytes().all(|b| b.is_ascii_hexdigit())) {
                return Err(bad(format!("{l:?} after the value of {key:?}")));
            }
        }
        let value = String::from_utf8(bytes)
            .map_err(|_| bad(format!("the value of {key:?} is not UTF-8")))?;
        out.push((key.to_owned(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_becomes_named_arguments() {
        let cmd = json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "group_name": "csi",
                         "sub_name": "-x", "size": 1024, "namespace_isolated": false, "format": "json"});
        assert_eq!(
            ceph_args(&cmd, "fs subvolume create").unwrap(),
            [
                "fs",
                "subvolume",
                "create",
                "--vol_name=cephfs",
                "--group_name=csi",
                "--sub_name=-x",
                "--size=1024",
                "--namespace_isolated=false",
                "--format=json"
            ]
        );
        assert!(ceph_args(&json!({"prefix": ""}), "").is_err());
    }

    // As rados 16.2.15 printed it (see ci/ceph-cluster.sh for the cluster).
    const DUMP: &str = "csi.volname\nvalue (16 bytes) :\n00000000  70 76 63 2d 31 20 77 69  74 68 20 73 70 61 63 65  |pvc-1 with space|\n00000010\n\nk2\nvalue (3 bytes) :\n00000000  78 0a 79                                          |x.y|\n00000003\n\nempty\nvalue (0 bytes) :\n\n";

    #[test]
    fn the_omap_hex_dump_is_read_back_exactly() {
        let vals = parse_omap_dump("p", DUMP).unwrap();
        assert_eq!(
            vals,
            [
                ("csi.volname".to_owned(), "pvc-1 with space".to_owned()),
                ("k2".to_owned(), "x\ny".to_owned()),
                ("empty".to_owned(), String::new()),
            ]
        );
        assert!(parse_omap_dump("p", "").unwrap().is_empty());
    }

    // A 128-byte value with repeated rows, as rados 16.2.15 printed it.
    const REPEATS: &str = "k\nvalue (128 bytes) :\n00000000  73 61 6e 69 74 79 2d 6d  61 78 2d 6c 65 6e 67 74  |sanity-max-lengt|\n00000010  68 2d 6e 61 6d 65 2d 78  78 78 78 78 78 78 78 78  |h-name-xxxxxxxxx|\n00000020  78 78 78 78 78 78 78 78  78 78 78 78 78 78 78 78  |xxxxxxxxxxxxxxxx|\n*\n00000070  78 78 78 78 78 78 78 78  78 78 78 78 78 78 78 78  |xxxxxxxxxxxxxxxx|\n00000080\n\n";

    #[test]
    fn repeated_rows_of_the_hex_dump_are_expanded() {
        let vals = parse_omap_dump("p", REPEATS).unwrap();
        let want = format!("sanity-max-length-name-{}", "x".repeat(105));
        assert_eq!(vals, [("k".to_owned(), want)]);
        // A dump that ends in a repeat: the end offset closes it.
        let tail = "k\nvalue (48 bytes) :\n00000000  61 61 61 61 61 61 61 61  61 61 61 61 61 61 61 61  |aaaaaaaaaaaaaaaa|\n*\n00000030\n\n";
        assert_eq!(
            parse_omap_dump("p", tail).unwrap(),
            [("k".to_owned(), "a".repeat(48))]
        );
    }

    /// A value as `rados listomapvals` dumps it (Ceph's `bufferlist::hexdump`): rows of
    /// 16 bytes with their offset, a row equal to the one before as one `*` line, the end
    /// offset, and nothing at all for an empty value.
    fn rados_dump(key: &str, v: &[u8]) -> String {
        let mut s = format!("{key}\nvalue ({} bytes) :\n", v.len());
        if !v.is_empty() {
            let mut prev: Option<&[u8]> = None;
            let mut starred = false;
            for (i, row) in v.chunks(16).enumerate() {
                if prev == Some(row) {
                    if !starred {
                        s.push_str("*\n");
                        starred = true;
                    }
                    continue;
                }
                starred = false;
                s.push_str(&format!("{:08x}  ", i * 16));
                for (j, b) in row.iter().enumerate() {
                    s.push_str(&format!("{b:02x} "));
                    if j == 7 {
                        s.push(' ');
                    }
                }
                let ascii: String = row
                    .iter()
                    .map(|b| {
                        if b.is_ascii_graphic() || *b == b' ' {
                            char::from(*b)
                        } else {
                            '.'
                        }
                    })
                    .collect();
                s.push_str(&format!(" |{ascii}|\n"));
                prev = Some(row);
            }
            s.push_str(&format!("{:08x}\n", v.len()));
        }
        s.push('\n');
        s
    }

    proptest::proptest! {
        /// Any keys and values (values with runs of equal rows too) are read back
        /// exactly from their dump.
        #[test]
        fn any_omap_dump_is_read_back_exactly(
            entries in proptest::collection::vec(
                ("[a-z.]{1,12}", proptest::prop_oneof![".{0,60}", "(x{16}){1,6}[a-z ]{0,20}", "[ -~]{0,40}(y{16}){2,4}"]),
                0..5,
            )
        ) {
            let dump: String = entries.iter().map(|(k, v)| rados_dump(k, v.as_bytes())).collect();
            let got = parse_omap_dump("p", &dump).unwrap();
            proptest::prop_assert_eq!(got, entries);
        }

        /// Arbitrary output never panics the reader, and the errno reader finds the
        /// number in parentheses.
        #[test]
        fn arbitrary_output_never_panics(text in "(?s).{0,300}", n in 1i32..200, msg in "[ -~]{0,30}") {
            let _ = parse_omap_dump("p", &text);
            let _ = paren_errno(&text);
            let line = format!("rados: error ({n}) {msg}");
            // The first number in parentheses is the errno, whatever the message holds.
            proptest::prop_assert_eq!(paren_errno(&line), Some(n));
            proptest::prop_assert_eq!(paren_errno(&format!("failed: (-{n}) {msg}")), Some(n));
        }
    }

    #[test]
    fn a_mangled_hex_dump_is_an_error_not_a_wrong_value() {
        for bad in [
            "k\n",
            "k\nvalue (4 bytes) :\n00000000  70 76  |pv|\n",
            "k\nvalue (2 bytes) :\n00000000  7x 76  |pv|\n00000002\n\n",
            "k\nvalue (2 bytes) :\n00000000  70 76  |pv|\ngarbage\n\n",
            "k\nvalue (1 bytes) :\n00000000  ff  |.|\n00000001\n\n",
            "k\nvalue (32 bytes) :\n*\n00000020\n\n",
            "k\nvalue (2 bytes) :\n00000001  70 76  |pv|\n00000002\n\n",
        ] {
            assert!(parse_omap_dump("p", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_are_read_from_what_the_tools_print() {
        let run = |code, stderr: &str| Run {
            ok: false,
            code: Some(code),
            stdout: String::new(),
            stderr: stderr.to_owned(),
        };
        let e = ceph_failure(
            "fs subvolume getpath",
            &run(2, "Error ENOENT: subvolume 'nope' does not exist"),
        );
        assert_eq!(
            e,
            CephError::Command {
                prefix: "fs subvolume getpath".into(),
                errno: 2,
                message: "subvolume 'nope' does not exist".into()
            }
        );
        assert!(matches!(
            ceph_failure("x", &run(1, "something else")),
            CephError::Transport { .. }
        ));
        let e = rados_failure(
            "rados rm",
            &run(
                1,
                "error removing cephfs.cephfs.meta>csi/nobj: (2) No such file or directory",
            ),
        );
        assert!(e.is_not_found());
        let e = rados_failure(
            "rados create",
            &run(1, "error creating cephfs.cephfs.meta/o2: (17) File exists"),
        );
        assert_eq!(e.errno(), Some(errno::EEXIST));
        assert!(refused(
            "[errno 13] RADOS permission denied (error connecting to the cluster)"
        ));
        assert!(!refused("Error EACCES: access denied"));
    }

    #[test]
    fn log_lines_are_told_apart_from_messages() {
        assert!(is_log_line(
            "2026-11-26T11:55:16.261+0000 7f6e3cf1b6c0 -1 auth: unable to find a keyring"
        ));
        assert!(!is_log_line(
            "Error ENOENT: subvolume 'nope' does not exist"
        ));
    }

    #[test]
    fn monitor_addresses_in_every_spelling() {
        assert_eq!(monitor_addr("127.0.0.1:6789"), "127.0.0.1:6789");
        assert_eq!(monitor_addr("v1:10.0.0.1:6789/0"), "10.0.0.1:6789");
        assert_eq!(
            monitor_addr("[v2:127.0.0.1:3300,v1:127.0.0.1:6789]"),
            "127.0.0.1:3300"
        );
        assert_eq!(monitor_addr("mon1"), "mon1:6789");
    }

    #[tokio::test]
    async fn the_key_reaches_the_child_on_stdin_and_nowhere_else() {
        // A stand-in `ceph` that reads its --keyfile twice, as the real CLI does, and
        // prints the key in a log line and in an error.
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("ceph");
        std::fs::write(
            &script,
            "#!/bin/sh\nk1=$(cat /dev/stdin); k2=$(cat /dev/stdin)\n[ \"$k1\" = \"$k2\" ] || exit 9\necho \"2026-11-26T11:55:16.261+0000 7f -1 auth: failed to decode key '$k1'\" >&2\necho \"Error EINVAL: bad key $k1\" >&2\nexit 22\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let t = CliTransport::new(
            &dir.path().join("ceph.conf"),
            &["127.0.0.1:1".into()],
            Some(&script),
            None,
        );
        let creds = Credentials {
            id: "admin".into(),
            key: "AQBsecretsecretsecret==".into(),
        };
        let err = t
            .command(
                &creds,
                Target::Mon,
                &json!({"prefix": "health"}),
                Duration::from_secs(10),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, CephError::Unauthorized { .. }), "{err:?}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("AQBsecret"), "{shown}");
        assert!(!t.reachable(Duration::from_millis(500)).await);
    }

    #[tokio::test]
    async fn rados_ls_lists_a_namespace_as_json() {
        // A stand-in `rados` that checks its arguments and lists two objects.
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("rados");
        std::fs::write(
            &script,
            "#!/bin/sh
cat >/dev/null
shift 6
[ \"$*\" = \"--pool meta --namespace csi ls\" ] || { echo \"args: $*\" >&2; exit 22; }
printf 'csi.volumes.default\\ncsi.volume.0001\\n'
",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let t = CliTransport::new(&dir.path().join("c"), &[], None, Some(&script));
        let creds = Credentials {
            id: "admin".into(),
            key: "AQBkey==".into(),
        };
        let cmd = json!({"prefix": "rados ls", "pool": "meta", "namespace": "csi"});
        let a = t
            .command(&creds, Target::Mon, &cmd, Duration::from_secs(10))
            .await
            .unwrap();
        let v: Value = serde_json::from_str(&a.outb).unwrap();
        assert_eq!(
            v,
            json!([{"name": "csi.volumes.default", "namespace": "csi"},
                   {"name": "csi.volume.0001", "namespace": "csi"}])
        );
        // Without a pool it is refused.
        let err = t
            .command(
                &creds,
                Target::Mon,
                &json!({"prefix": "rados ls"}),
                Duration::from_secs(10),
            )
            .await
            .unwrap_err();
        assert_eq!(err.errno(), Some(errno::EINVAL));
    }

    #[tokio::test]
    async fn a_hung_command_is_killed_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("ceph");
        std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let t = CliTransport::new(&dir.path().join("c"), &[], Some(&script), None);
        let creds = Credentials {
            id: "admin".into(),
            key: "k".into(),
        };
        let started = std::time::Instant::now();
        let err = t
            .command(
                &creds,
                Target::Mgr,
                &json!({"prefix": "fs subvolume ls", "vol_name": "a"}),
                Duration::from_millis(300),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, CephError::Timeout { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
