//! The MDS's commands: `ceph tell mds.<x> session ls|client evict|perf dump|status`
//! and the monitor's `osd blocklist ls`, on the session map ([`crate::mds::Mds`]).

use crate::command::{ArgType, Args, CommandSpec, Daemon, opt};
use crate::error::{CephResult, Reply};
use crate::state::{Caller, CommandTable, Handler, Inner};
use serde_json::{Value, json};

fn filters<'a>(args: &Args<'a>) -> Vec<&'a str> {
    args.str_list("filters")
}

fn session_ls(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let list = inner.mds.sessions_matching(&filters(args))?;
    let v: Vec<Value> = list.iter().map(|s| s.dump()).collect();
    Ok(Reply::ok(args.format().render(&Value::Array(v))))
}

fn client_evict(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    inner.mds.evict(&filters(args))?;
    Ok(Reply::ok(""))
}

fn perf_dump(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let mut v = inner.mds.perf_dump(inner.started);
    if let Some(logger) = args.str("logger") {
        let section = v.get(logger).cloned().unwrap_or(json!({}));
        v = match args.str("counter") {
            Some(c) => json!({logger: {c: section.get(c).cloned().unwrap_or(Value::Null)}}),
            None => json!({logger: section}),
        };
    }
    Ok(Reply::ok(args.format().render(&v)))
}

fn mds_status(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let sh = inner.shared.lock();
    let fs = sh.maps.filesystems.first();
    let v = json!({
        "cluster_fsid": sh.maps.fsid,
        "whoami": 0,
        "id": fs.map_or(0, |f| f.mds_gid),
        "want_state": "up:active",
        "state": "up:active",
        "fs_name": fs.map_or("", |f| f.name.as_str()),
        "rank_uptime": inner.started.elapsed().as_secs_f64(),
        "mdsmap_epoch": sh.maps.fsmap_epoch,
        "osdmap_epoch": 20,
        "osdmap_epoch_barrier": 20,
        "uptime": inner.started.elapsed().as_secs_f64(),
    });
    Ok(Reply::ok(args.format().render(&v)))
}

fn blocklist_ls(inner: &Inner, args: &Args<'_>, _c: &Caller) -> CephResult<Reply> {
    let now = crate::time::now_unix();
    let mut bl = inner.mds.blocklist.lock();
    bl.retain(|(_, until)| *until > now);
    let f = args.format();
    let status = format!("listed {} entries", bl.len());
    if f.is_json() {
        let v: Vec<Value> = bl
            .iter()
            .map(|(a, until)| json!({"addr": a, "until": crate::time::ceph_stamp(*until)}))
            .collect();
        // Ceph 16.2 dumps the address list and then the (empty) range list back to
        // back: `[...][]`. That is not one JSON document, but it is what clients get.
        return Ok(Reply::ok_with_status(
            format!("{}[]", Value::Array(v)),
            status,
        ));
    }
    let mut out = String::new();
    for (a, until) in bl.iter() {
        out.push_str(&format!("{a} {}\n", crate::time::ceph_stamp(*until)));
    }
    Ok(Reply::ok_with_status(out, status))
}

const FORMAT: crate::command::ArgSpec = opt("format", ArgType::Str);
const FILTERS: crate::command::ArgSpec = opt("filters", ArgType::StrList);

macro_rules! mds_cmd {
    ($prefix:literal, $args:expr, $handler:expr) => {
        (
            CommandSpec {
                prefix: $prefix,
                daemon: Daemon::Mds,
                module: "mds",
                perm: "rw",
                args: $args,
            },
            $handler as Handler,
        )
    };
}

/// Commands sent to the MDS (`ceph tell mds.<x> ...`).
pub(crate) const TELL_COMMANDS: CommandTable = &[
    mds_cmd!("session ls", &[FORMAT, FILTERS], session_ls),
    mds_cmd!("client ls", &[FORMAT, FILTERS], session_ls),
    mds_cmd!("session evict", &[FORMAT, FILTERS], client_evict),
    mds_cmd!("client evict", &[FORMAT, FILTERS], client_evict),
    mds_cmd!(
        "perf dump",
        &[
            FORMAT,
            opt("logger", ArgType::Str),
            opt("counter", ArgType::Str)
        ],
        perf_dump
    ),
    mds_cmd!("status", &[FORMAT], mds_status),
];

/// Monitor commands about clients.
pub(crate) const MON_COMMANDS: CommandTable = &[
    (
        CommandSpec {
            prefix: "osd blocklist ls",
            daemon: Daemon::Mon,
            module: "osd",
            perm: "r",
            args: &[FORMAT],
        },
        blocklist_ls,
    ),
    (
        CommandSpec {
            prefix: "osd blacklist ls",
            daemon: Daemon::Mon,
            module: "osd",
            perm: "r",
            args: &[FORMAT],
        },
        blocklist_ls,
    ),
];
