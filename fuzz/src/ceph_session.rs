//! fake-ceph's session operations: an MDS session on a subvolume, opened as the driver's
//! fake mounter opens one, and one `POST /mds/sessions/{id}/ops` per input, through the
//! router in process (the session's token in `X-Session-Token`, as the mounter sends it).
//!
//! The first byte chooses the session (`client.fuzz`, whose caps name the subvolume, or
//! `client.admin`, whose caps allow everything, so that only `beneath.rs` confines it;
//! both mounted at the subvolume's path) and the form of the rest: below `0x80` the body
//! as it arrives, any bytes (seeds are `0{"ops": [...]}`); from `0x80` a generator's
//! list of operations on paths made of the names in the tree, `.`, `..` and the
//! like.
//!
//! The subvolume holds, besides a directory and a file, symlinks that lead out of it
//! every way a symlink can: up (`../../..`), to `/`, to the host's directory beside the
//! data dir and its marker file, to a sibling subvolume's file by its host path, to
//! itself. Invariants: no panic; no answer shows the contents of the marker beside the
//! data dir or of the sibling's file (unless an input wrote them itself since the cluster
//! was built: `support::Secrets`), and nothing
//! outside the session's root changes: beside the data dir, in the rest of the data
//! dir. After each input the harness empties the subvolume through the session (so
//! quota accounting stays true) and plants the tree again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arbitrary::Unstructured;
use axum::body::Body;
use axum::http::Request;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use fake_ceph::{Cluster, Mount, MountRequest, Op};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::{Entry, Secrets, diff, listing, runtime};

/// Inputs between two fresh clusters.
const RESET_EVERY: u64 = 20_000;

/// The host file beside the data dir holds this; no answer may show it.
const OUTSIDE: &[u8] = b"outside-the-data-dir:4b1d8e0f2a6c9357";
/// The sibling subvolume's file holds this; no answer may show it.
const SIBLING: &[u8] = b"in-the-sibling-subvolume:c8e27a5d103f";

/// Names in the planted tree, and names paths are made of.
const NAMES: &[&str] = &[
    "d", "f", "d/f", "up", "abs", "out", "outf", "sib", "dots", "loop", "self", "new", "x", ".",
    "..", "", "/", "//", "outside", "marker",
];

const XATTRS: &[&str] = &[
    "ceph.quota.max_bytes",
    "ceph.quota.max_files",
    "ceph.dir.rbytes",
    "ceph.dir.rfiles",
    "ceph.dir.rentries",
    "ceph.dir.layout.pool",
    "user.x",
];

struct State {
    router: axum::Router,
    root: tempfile::TempDir,
    /// The session's root on the host.
    local: PathBuf,
    /// Where the planted symlinks point.
    links: Vec<(&'static str, PathBuf)>,
    /// `client.fuzz`'s session and `client.admin`'s.
    mounts: [Mount; 2],
    /// Everything outside `local`, beside the data dir and in it.
    elsewhere: Vec<Entry>,
    /// The markers' contents.
    markers: Secrets,
    inputs: u64,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

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
    let body = if sel < 0x80 {
        rest.to_vec()
    } else {
        let mut u = Unstructured::new(rest);
        let Ok(ops) = ops(&mut u) else {
            return;
        };
        serde_json::to_vec(&json!({ "ops": ops })).expect("ops serialize")
    };
    // What an input wrote does not count as leaked when it is read back.
    st.markers.saw(&body);
    st.markers.saw(&written_bytes(&body));
    let mount = &st.mounts[usize::from(sel & 1)];
    runtime().block_on(st.check(mount, &body));
}

impl State {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("a temporary directory");
        let data = root.path().join("data");
        let outside = root.path().join("outside");
        std::fs::create_dir(&outside).expect("outside dir");
        std::fs::write(outside.join("marker"), OUTSIDE).expect("marker");
        let config = fake_ceph::Config {
            data_dir: Some(data.clone()),
            seed: 14,
            ..fake_ceph::Config::default()
        };
        let cluster = Cluster::new(config).expect("fake-ceph starts");
        let (mounts, local, sibling) = runtime().block_on(setup(&cluster));
        let links = vec![
            ("up", PathBuf::from("../../../../..")),
            ("abs", PathBuf::from("/")),
            ("out", outside.clone()),
            ("outf", outside.join("marker")),
            ("sib", sibling),
            ("dots", PathBuf::from("..")),
            ("loop", PathBuf::from("loop")),
            ("self", PathBuf::from(".")),
        ];
        let mut st = Self {
            router: fake_ceph::router(cluster),
            root,
            local,
            links,
            mounts,
            elsewhere: Vec::new(),
            markers: Secrets::default(),
            inputs: 0,
        };
        runtime().block_on(st.replant());
        st.elsewhere = listing(st.root.path(), &[&st.local]);
        st.markers.add("the file beside the data dir", OUTSIDE);
        st.markers.add("the sibling subvolume's file", SIBLING);
        st
    }

    async fn check(&self, mount: &Mount, body: &[u8]) {
        let req = Request::post(format!("/mds/sessions/{}/ops", mount.id()))
            .header("x-session-token", mount.token())
            .header("content-type", "application/json")
            .body(Body::from(body.to_vec()))
            .expect("a valid request");
        let resp = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("the router is infallible");
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .expect("an in-memory body")
            .to_bytes();
        let shown = || String::from_utf8_lossy(body).into_owned();
        assert!(
            status.is_success(),
            "{status} for {}: {}",
            shown(),
            String::from_utf8_lossy(&bytes)
        );
        let answer: Value = serde_json::from_slice(&bytes).expect("answers are JSON");
        let mut leaked = self.markers.shown_in(&bytes).map(str::to_owned);
        for_each_string(&answer, &mut |s| {
            if let Ok(b) = B64.decode(s) {
                leaked = leaked
                    .take()
                    .or(self.markers.shown_in(&b).map(str::to_owned));
            }
        });
        if let Some(what) = leaked {
            panic!(
                "{what} is in the answer to {}: {}",
                shown(),
                String::from_utf8_lossy(&bytes)
            );
        }
        let now = listing(self.root.path(), &[&self.local]);
        assert!(
            now == self.elsewhere,
            "something outside the session's root changed after {}: {}",
            shown(),
            diff(&self.elsewhere, &now)
        );
        self.empty().await;
        self.replant().await;
    }

    /// Removes everything in the session's root, through the session (files and
    /// directories) or directly (symlinks, which hold no quota).
    async fn empty(&self) {
        let mut ops = Vec::new();
        let mut stack = vec![(self.local.clone(), false)];
        // Post-order: a directory is removed after what it holds.
        while let Some((dir, visited)) = stack.pop() {
            if visited {
                if dir != self.local {
                    ops.push(Op::Rmdir {
                        path: self.rel(&dir),
                    });
                }
                continue;
            }
            stack.push((dir.clone(), true));
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.is_symlink() => {
                        std::fs::remove_file(&p).expect("a symlink is removed");
                    }
                    Ok(m) if m.is_dir() => stack.push((p, false)),
                    Ok(_) => ops.push(Op::Unlink { path: self.rel(&p) }),
                    Err(_) => {}
                }
            }
        }
        let results = self.mounts[1].run(ops.clone()).await;
        for (op, r) in ops.iter().zip(results) {
            assert!(r.is_ok(), "emptying the subvolume: {op:?}: {r:?}");
        }
    }

    /// The planted tree: `d/f`, a file `f` and the symlinks; no quota.
    async fn replant(&self) {
        for (name, to) in &self.links {
            std::os::unix::fs::symlink(to, self.local.join(name)).expect("a symlink is made");
        }
        let ops = vec![
            Op::Setxattr {
                path: String::new(),
                name: "ceph.quota.max_bytes".into(),
                value: "0".into(),
            },
            Op::Mkdir { path: "d".into() },
            Op::write("d/f", b"a file in a directory"),
            Op::write("f", b"a file"),
        ];
        for (op, r) in ops.iter().zip(self.mounts[1].run(ops.clone()).await) {
            assert!(r.is_ok(), "planting: {op:?}: {r:?}");
        }
    }

    fn rel(&self, p: &Path) -> String {
        p.strip_prefix(&self.local)
            .expect("under the root")
            .to_string_lossy()
            .into_owned()
    }
}

/// Two subvolumes in group `csi`; `client.fuzz` with caps on the first; a session of
/// `client.fuzz` and one of `client.admin`, both on the first. The sessions, the first's
/// host directory and the host path of a file in the second.
async fn setup(cluster: &Cluster) -> ([Mount; 2], PathBuf, PathBuf) {
    let admin = |cmd: Value| async move {
        let r = cluster.admin_command(cmd.clone()).await;
        assert_eq!(r.ret, 0, "setup {cmd}: {}", r.outs);
        r.outb
    };
    admin(json!({"prefix": "fs subvolumegroup create", "vol_name": "cephfs", "group_name": "csi"}))
        .await;
    let mut paths = Vec::new();
    for sv in ["sv", "other"] {
        admin(
            json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "sub_name": sv,
                     "group_name": "csi"}),
        )
        .await;
        let p = admin(
            json!({"prefix": "fs subvolume getpath", "vol_name": "cephfs",
                             "sub_name": sv, "group_name": "csi"}),
        )
        .await;
        paths.push(p.trim().to_owned());
    }
    admin(
        json!({"prefix": "auth get-or-create", "entity": "client.fuzz", "caps": [
        "mon", "allow r", "mds", "allow rwp path=/volumes/csi/sv"]}),
    )
    .await;
    let fs_root = cluster.fs_root("cephfs");
    let sibling = fs_root
        .join(paths[1].trim_start_matches('/'))
        .join("sibling");
    std::fs::write(&sibling, SIBLING).expect("the sibling's file");
    let mut mounts = Vec::new();
    for entity in ["client.fuzz", "client.admin"] {
        let key = cluster.key_of(entity).expect("the entity exists");
        let req = MountRequest {
            fs_name: Some("cephfs".into()),
            root: paths[0].clone(),
            client_metadata: BTreeMap::from([("hostname".to_owned(), "fuzz".to_owned())]),
        };
        mounts.push(cluster.mount(entity, &key, req).await.expect("mounts"));
    }
    let local = mounts[0].local_root().to_path_buf();
    let [a, b] = <[Mount; 2]>::try_from(mounts).expect("two mounts");
    ([a, b], local, sibling)
}

/// Every string in a JSON value.
fn for_each_string(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().for_each(|x| for_each_string(x, f)),
        Value::Object(m) => m.values().for_each(|x| for_each_string(x, f)),
        _ => {}
    }
}

/// What the writes of a body carry, decoded, one after another.
fn written_bytes(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        for_each_string(&v, &mut |s| {
            if let Ok(b) = B64.decode(s) {
                out.extend(b);
            }
            out.extend(s.as_bytes());
        });
    }
    out
}

fn path(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    if u.ratio(1, 16)? {
        return u.arbitrary();
    }
    let n = u.int_in_range(0..=4)?;
    let mut parts = Vec::with_capacity(n);
    for _ in 0..n {
        parts.push(*u.choose(NAMES)?);
    }
    let lead = if u.ratio(1, 4)? { "/" } else { "" };
    Ok(format!("{lead}{}", parts.join("/")))
}

fn size(u: &mut Unstructured<'_>) -> arbitrary::Result<u64> {
    Ok(match u.int_in_range(0..=5)? {
        0 => u.arbitrary()?,
        1 => u64::MAX,
        2 => 1 << 40,
        _ => u.int_in_range(0..=64)?,
    })
}

fn ops(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<Op>> {
    let n = u.int_in_range(1..=8)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(op(u)?);
    }
    Ok(v)
}

fn op(u: &mut Unstructured<'_>) -> arbitrary::Result<Op> {
    Ok(match u.int_in_range(0..=11)? {
        0 => Op::Mkdir { path: path(u)? },
        1 => Op::Write {
            path: path(u)?,
            offset: size(u)?,
            len: size(u)?,
            data: match u.int_in_range(0..=2)? {
                0 => None,
                1 => Some(B64.encode(u.arbitrary::<Vec<u8>>()?)),
                _ => Some(u.arbitrary()?),
            },
        },
        2 => Op::Truncate {
            path: path(u)?,
            size: size(u)?,
        },
        3 => Op::Read {
            path: path(u)?,
            offset: size(u)?,
            len: size(u)?,
        },
        4 => Op::Stat { path: path(u)? },
        5 => Op::Readdir { path: path(u)? },
        6 => Op::Unlink { path: path(u)? },
        7 => Op::Rmdir { path: path(u)? },
        8 => Op::Rename {
            from: path(u)?,
            to: path(u)?,
        },
        9 => Op::Getxattr {
            path: path(u)?,
            name: (*u.choose(XATTRS)?).to_owned(),
        },
        10 => Op::Setxattr {
            path: path(u)?,
            name: (*u.choose(XATTRS)?).to_owned(),
            value: match u.int_in_range(0..=3)? {
                0 => u.arbitrary()?,
                1 => "0".into(),
                2 => "100".into(),
                _ => u.arbitrary::<u64>()?.to_string(),
            },
        },
        _ => Op::Statfs,
    })
}
