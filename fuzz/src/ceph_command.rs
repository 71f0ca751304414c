//! fake-ceph's command pipeline: one command per input, through `Cluster::execute`, the
//! entry `POST /request[?target=mgr]` and `POST /tell/mds.<name>` call.
//!
//! The first byte chooses the caller (`client.admin`; `client.fuzz`, whose caps are
//! limited to the `csi` group; `mds.a`) and the form of the rest:
//!
//! - below `0x80`: the rest is the body as it arrives, any bytes, sent to the monitor,
//!   the mgr, `mds.a` or `cephfs:0` (`(byte / 3) % 4`); seeds are `0{"prefix": ...}`;
//! - from `0x80`: the rest drives a generator that builds a command from one of the
//!   fake's own signatures (`fake_ceph::cluster::command_specs`), with names of what
//!   exists in the cluster, edge values and wrong types, sent where the command belongs
//!   (now and then elsewhere).
//!
//! Invariants: no panic; `ret` is 0 or a negative errno; a failure's `outs`/`outb` carry no
//! key; no answer shows the marker file placed beside the data dir (unless an input since
//! the cluster was built carried it: `support::Secrets`), and nothing beside the data dir
//! changes.

use std::path::PathBuf;

use arbitrary::Unstructured;
use fake_ceph::command::{ArgType, CommandSpec, Daemon};
use fake_ceph::{Caller, Cluster, Target};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};

use crate::support::{Entry, Secrets, diff, listing, runtime};

/// Inputs between two fresh clusters: what inputs create stays bounded.
const RESET_EVERY: u64 = 2_000;

/// The entities inputs send commands as.
const ENTITIES: [&str; 3] = ["client.admin", "client.fuzz", "mds.a"];

/// What the marker file beside the data dir holds; no answer may show it.
const MARKER: &[u8] = b"ceph-command-marker:9f3c2a71e5d04b68";

struct State {
    cluster: Cluster,
    root: tempfile::TempDir,
    data: PathBuf,
    beside: Vec<Entry>,
    keys: Vec<(String, String)>,
    /// The keys of `keys`.
    key_secrets: Secrets,
    /// The marker's contents.
    marker: Secrets,
    specs: Vec<CommandSpec>,
    inputs: u64,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Names that exist in the cluster (or nearly), and names Ceph's parsers dislike.
const WORDS: &[&str] = &[
    "cephfs",
    "csi",
    "sv0",
    "sv1",
    "snap0",
    "clone0",
    "_nogroup",
    "client.fuzz",
    "client.admin",
    "client.nobody",
    "fuzz",
    "admin",
    "mds.a",
    "a",
    "0",
    "cephfs:0",
    "cephfs.cephfs.meta",
    "cephfs.cephfs.data",
    "csi.volumes.default",
    "csi.volume.0",
    "rw",
    "r",
    "allow *",
    "allow rw path=/volumes/csi",
    "json",
    "json-pretty",
    "plain",
    "1073741824",
    "-1",
    "",
    ".",
    "..",
    "/",
    "a/b",
    "../..",
    "/volumes/csi/sv0",
    "id=1",
    "client_metadata.hostname=node-1",
    "\u{0}",
    "é",
];

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut guard = STATE.lock();
    if guard.as_ref().is_none_or(|s| s.inputs >= RESET_EVERY) {
        *guard = None;
        *guard = Some(State::new());
    }
    let st = guard.as_mut().expect("just built");
    st.inputs += 1;
    let (entity, key) = st.keys[usize::from(sel) % ENTITIES.len()].clone();
    // Caps as they are now, as the HTTP layer authenticates every request.
    let Some(caller) = st.cluster.authenticate(&entity, &key) else {
        return;
    };
    let (target, body) = if sel < 0x80 {
        let target = match (sel / 3) % 4 {
            0 => Target::Mon,
            1 => Target::Mgr,
            2 => Target::Mds("a".into()),
            _ => Target::Mds("cephfs:0".into()),
        };
        (target, rest.to_vec())
    } else {
        let mut u = Unstructured::new(rest);
        match generate(&mut u, &st.specs) {
            Ok(c) => c,
            Err(_) => return,
        }
    };
    st.check(&caller, target, &body);
}

impl State {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("a temporary directory");
        let data = root.path().join("data");
        let outside = root.path().join("outside");
        std::fs::create_dir(&outside).expect("outside dir");
        std::fs::write(outside.join("marker"), MARKER).expect("marker file");
        let config = fake_ceph::Config {
            data_dir: Some(data.clone()),
            seed: 14,
            ..fake_ceph::Config::default()
        };
        let cluster = Cluster::new(config).expect("fake-ceph starts");
        let fuzz_key = runtime().block_on(setup(&cluster));
        let mut keys = Vec::new();
        for entity in ENTITIES {
            let key = match entity {
                "client.fuzz" => fuzz_key.clone(),
                e => cluster.key_of(e).expect("a built-in entity"),
            };
            keys.push((entity.to_owned(), key));
        }
        let beside = listing(root.path(), &[&data]);
        let mut key_secrets = Secrets::default();
        for (entity, key) in &keys {
            key_secrets.add(&format!("the key of {entity}"), key.as_bytes());
        }
        let mut marker = Secrets::default();
        marker.add("the marker beside the data dir", MARKER);
        Self {
            cluster,
            root,
            data,
            beside,
            keys,
            key_secrets,
            marker,
            specs: fake_ceph::cluster::command_specs(),
            inputs: 0,
        }
    }

    fn check(&mut self, caller: &Caller, target: Target, body: &[u8]) {
        self.key_secrets.saw(body);
        self.marker.saw(body);
        let reply = runtime().block_on(self.cluster.execute(caller, target.clone(), body));
        let shown = || {
            format!(
                "{target:?} as {}: {}",
                caller.entity,
                String::from_utf8_lossy(body)
            )
        };
        assert!(
            reply.ret <= 0,
            "ret {} is neither 0 nor -errno for {}",
            reply.ret,
            shown()
        );
        if reply.ret < 0 {
            for out in [&reply.outs, &reply.outb] {
                if let Some(what) = self.key_secrets.shown_in(out.as_bytes()) {
                    panic!("{what} is in a failure's answer to {}: {reply:?}", shown());
                }
            }
        }
        for out in [&reply.outs, &reply.outb] {
            if let Some(what) = self.marker.shown_in(out.as_bytes()) {
                panic!("{what} is in the answer to {}", shown());
            }
        }
        let now = listing(self.root.path(), &[&self.data]);
        assert!(
            now == self.beside,
            "something beside the data dir changed after {}: {}",
            shown(),
            diff(&self.beside, &now)
        );
    }
}

/// The names inputs find: a group, subvolumes in and out of it, a snapshot, an omap
/// object, and `client.fuzz` with caps on the `csi` group only. Its key.
async fn setup(cluster: &Cluster) -> String {
    for cmd in [
        json!({"prefix": "fs subvolumegroup create", "vol_name": "cephfs", "group_name": "csi"}),
        json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "sub_name": "sv0",
               "group_name": "csi", "size": 1_073_741_824}),
        json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "sub_name": "sv1"}),
        json!({"prefix": "fs subvolume snapshot create", "vol_name": "cephfs",
               "sub_name": "sv0", "snap_name": "snap0", "group_name": "csi"}),
        json!({"prefix": "rados create", "pool": "cephfs.cephfs.meta", "namespace": "csi",
               "object": "csi.volumes.default", "vals": {"csi.volume.0": "sv0"}}),
        json!({"prefix": "auth get-or-create", "entity": "client.fuzz", "caps": [
            "mon", "allow r", "mgr", "allow rw",
            "mds", "allow rw path=/volumes/csi",
            "osd", "allow rw pool=cephfs.cephfs.meta namespace=csi"]}),
    ] {
        let r = cluster.admin_command(cmd.clone()).await;
        assert_eq!(r.ret, 0, "setup {cmd}: {}", r.outs);
    }
    cluster
        .key_of("client.fuzz")
        .expect("client.fuzz was just made")
}

/// A command built from a signature: where it goes and its body.
fn generate(
    u: &mut Unstructured<'_>,
    specs: &[CommandSpec],
) -> arbitrary::Result<(Target, Vec<u8>)> {
    let spec = u.choose(specs)?;
    let mut target = match spec.daemon {
        Daemon::Mds => Target::Mds(if u.arbitrary()? { "a" } else { "cephfs:0" }.into()),
        // The monitor proxies mgr commands, as `ceph` sends them.
        Daemon::Mgr if u.ratio(1, 4)? => Target::Mon,
        Daemon::Mgr => Target::Mgr,
        Daemon::Mon | Daemon::Osd => Target::Mon,
    };
    if u.ratio(1, 16)? {
        target = match u.int_in_range(0..=2)? {
            0 => Target::Mon,
            1 => Target::Mgr,
            _ => Target::Mds(string(u)?),
        };
    }
    let mut map = Map::new();
    map.insert("prefix".into(), Value::from(spec.prefix));
    for arg in spec.args {
        let present = if arg.required {
            !u.ratio(1, 16)?
        } else {
            u.ratio(1, 2)?
        };
        if present {
            let v = if u.ratio(1, 10)? {
                any(u)?
            } else {
                value(u, arg.ty)?
            };
            map.insert(arg.name.into(), v);
        }
    }
    if u.ratio(1, 8)? {
        map.insert(string(u)?, any(u)?);
    }
    let body = serde_json::to_vec(&Value::Object(map)).expect("a JSON value serializes");
    Ok((target, body))
}

fn string(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    Ok(match u.int_in_range(0..=7)? {
        0 => u.arbitrary::<String>()?,
        1 => "x".repeat(u.int_in_range(200..=300)?),
        _ => (*u.choose(WORDS)?).to_owned(),
    })
}

fn int(u: &mut Unstructured<'_>) -> arbitrary::Result<i64> {
    Ok(match u.int_in_range(0..=7)? {
        0 => u.arbitrary()?,
        1 => i64::MAX,
        2 => i64::MIN,
        3 => -1,
        4 => 1 << 30,
        _ => u.int_in_range(0..=16)?,
    })
}

fn value(u: &mut Unstructured<'_>, ty: ArgType) -> arbitrary::Result<Value> {
    Ok(match ty {
        ArgType::Str => Value::from(string(u)?),
        ArgType::Int if u.ratio(1, 8)? => Value::from(int(u)?.to_string()),
        ArgType::Int => Value::from(int(u)?),
        ArgType::Bool => match u.int_in_range(0..=4)? {
            0 => Value::from("true"),
            1 => Value::from("false"),
            2 => Value::from(1),
            n => Value::from(n == 3),
        },
        ArgType::Float => Value::from(u.arbitrary::<f64>()?),
        ArgType::StrList => {
            let n = u.int_in_range(0..=4)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(Value::from(string(u)?));
            }
            Value::Array(v)
        }
        ArgType::Object => {
            let n = u.int_in_range(0..=3)?;
            let mut m = Map::new();
            for _ in 0..n {
                m.insert(string(u)?, Value::from(string(u)?));
            }
            Value::Object(m)
        }
        ArgType::Any => return any(u),
    })
}

/// A value of any JSON type.
fn any(u: &mut Unstructured<'_>) -> arbitrary::Result<Value> {
    Ok(match u.int_in_range(0..=6)? {
        0 => Value::Null,
        1 => Value::from(u.arbitrary::<bool>()?),
        2 => Value::from(int(u)?),
        3 => Value::from(u.arbitrary::<f64>()?),
        4 => Value::Array(vec![Value::from(string(u)?)]),
        5 => json!({ string(u)?: string(u)? }),
        _ => Value::from(string(u)?),
    })
}
