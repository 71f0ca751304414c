//! Tests of the fake mounter against a small in-process stand-in for fake-ceph's session
//! routes (a hand-written HTTP/1.1 server on a tokio listener: the driver does not depend
//! on fake-ceph or axum). The stand-in checks Basic credentials and session tokens as
//! fake-ceph does; end-to-end tests against the real fake-ceph live in the root crate.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::super::kernel::testutil::{ADD_MOUNT, Bench, KEY, REMOVE_MOUNT};
use super::*;

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    token: Option<String>,
    basic: Option<String>,
    body: Value,
}

#[derive(Default)]
struct Sessions {
    open: HashMap<u64, String>,
    next: u64,
}

/// The stand-in for fake-ceph's `/mds/sessions` routes.
struct MiniCeph {
    fs_root: PathBuf,
    sessions: Mutex<Sessions>,
    seen: Mutex<Vec<Seen>>,
    /// Never answer (for deadlines).
    hang: std::sync::atomic::AtomicBool,
}

impl MiniCeph {
    fn answer(
        &self,
        method: &str,
        path: &str,
        headers: &HashMap<String, String>,
        body: &[u8],
    ) -> (u16, Value) {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let token = headers.get("x-session-token").cloned();
        let basic = headers
            .get("authorization")
            .and_then(|a| a.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        self.seen.lock().push(Seen {
            method: method.into(),
            path: path.into(),
            token: token.clone(),
            basic: basic.clone(),
            body: body.clone(),
        });
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method, parts.as_slice()) {
            ("POST", ["mds", "sessions"]) => {
                if basic.as_deref() != Some(&format!("client.vol1:{KEY}")) {
                    return (401, json!({"message": "auth: Incorrect password"}));
                }
                let root = body["root"].as_str().unwrap_or("/");
                if root == "/" {
                    return (
                        200,
                        json!({"ret": -1, "outb": "", "outs": "mds.0 rejected us (non-allowable root '/')"}),
                    );
                }
                let local = self.fs_root.join(root.trim_start_matches('/'));
                if !local.is_dir() {
                    return (
                        200,
                        json!({"ret": -2, "outb": "", "outs": format!("ceph mount failed with (2) No such file or directory: {root}")}),
                    );
                }
                let mut s = self.sessions.lock();
                s.next += 1;
                let id = 4300 + s.next;
                let token = format!("{:032x}", 0xfeed_0000_u128 + u128::from(id));
                s.open.insert(id, token.clone());
                (
                    200,
                    json!({"ret": 0, "id": id, "root": root, "local_path": local, "token": token}),
                )
            }
            (m, ["mds", "sessions", id, rest @ ..]) => {
                let Ok(id) = id.parse::<u64>() else {
                    return (404, json!({}));
                };
                let s = self.sessions.lock().open.get(&id).cloned();
                let Some(expected) = s else {
                    return match m {
                        "DELETE" => (200, json!({"ret": 0})),
                        _ => (
                            200,
                            json!({"ret": -107, "outb": "", "outs": format!("session {id} is not open")}),
                        ),
                    };
                };
                if token.as_deref() != Some(expected.as_str()) {
                    return (401, json!({"message": "auth: Incorrect session token"}));
                }
                match (m, rest) {
                    ("GET", []) => (
                        200,
                        json!({"ret": 0, "session": {"id": id, "state": "open"}}),
                    ),
                    ("DELETE", []) => {
                        self.sessions.lock().open.remove(&id);
                        (200, json!({"ret": 0}))
                    }
                    ("POST", ["ops"]) => (
                        200,
                        json!({"ret": 0, "results": [
                            {"ret": 0, "output": {"block_size": 4194304, "total_bytes": 1048576, "used_bytes": 1000, "free_bytes": 1047576}}
                        ]}),
                    ),
                    _ => (404, json!({})),
                }
            }
            _ => (404, json!({})),
        }
    }

    fn evict_all(&self) {
        self.sessions.lock().open.clear();
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }
}

async fn handle(ceph: Arc<MiniCeph>, mut sock: tokio::net::TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let path = first.next().unwrap_or("").to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    if ceph.hang.load(std::sync::atomic::Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(30)).await;
        return;
    }
    let (status, v) = ceph.answer(&method, &path, &headers, &buf[head_end..head_end + len]);
    let body = v.to_string();
    let resp = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(resp.as_bytes()).await;
    let _ = sock.shutdown().await;
}

/// A running stand-in: its URL, state and the subvolume path that exists in it.
struct Server {
    url: String,
    ceph: Arc<MiniCeph>,
    task: tokio::task::JoinHandle<()>,
    _fs: tempfile::TempDir,
}

const ROOT: &str = "/volumes/csi/csi-vol-1/4b2c";

impl Server {
    async fn start() -> Self {
        let fs = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(fs.path().join(ROOT.trim_start_matches('/'))).unwrap();
        let ceph = Arc::new(MiniCeph {
            fs_root: fs.path().to_path_buf(),
            sessions: Mutex::default(),
            seen: Mutex::default(),
            hang: std::sync::atomic::AtomicBool::new(false),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let c = ceph.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(handle(c.clone(), sock));
            }
        });
        Self {
            url,
            ceph,
            task,
            _fs: fs,
        }
    }

    fn local(&self) -> PathBuf {
        self.ceph.fs_root.join(ROOT.trim_start_matches('/'))
    }
}

fn request(url: &str, target: &Path) -> CephMount {
    CephMount {
        monitors: vec!["127.0.0.1:6789".into()],
        fs_name: "cephfs".into(),
        root_path: ROOT.into(),
        user_id: "vol1".into(),
        key: KEY.into(),
        options: vec![],
        read_only: false,
        target: target.to_path_buf(),
        node_id: "node-1".into(),
        admin_url: Some(format!("{url}/")),
    }
}

/// A symlink-mode mounter with its state in the bench and the bench's mount table.
fn symlink_mounter(b: &Bench) -> FakeMounter {
    let tools = b.tools(b.script("mount", "exit 1"), b.script("umount", "exit 1"));
    FakeMounter::new(b.path("state"), FakeMountMode::Symlink).with_tools(tools)
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn record_names() {
    let cases = [
        ("/staging/a", "%2Fstaging%2Fa.json"),
        ("/staging/a/", "%2Fstaging%2Fa.json"),
        ("/x/../staging/a b", "%2Fstaging%2Fa%20b.json"),
        ("/k/pv-1_x.y~z", "%2Fk%2Fpv-1_x.y%7Ez.json"),
        ("/%", "%2F%25.json"),
    ];
    for (path, want) in cases {
        assert_eq!(record_name(Path::new(path)), want, "{path}");
    }
    let long = format!(
        "/var/lib/kubelet/pods/{}/volumes/kubernetes.io~csi/{}/mount",
        "a".repeat(36),
        "p".repeat(200)
    );
    let n = record_name(Path::new(&long));
    assert!(n.len() <= 255 && n.ends_with(".json"), "{n}");
    let other = record_name(Path::new(&long.replace("mount", "mounu")));
    assert_ne!(n, other, "long names differ by their hash");
}

#[test]
fn modes_resolve() {
    assert_eq!(FakeMountMode::Bind.resolve(), FakeMountMode::Bind);
    assert_eq!(FakeMountMode::Symlink.resolve(), FakeMountMode::Symlink);
    let want = if effective_uid() == Some(0) {
        FakeMountMode::Bind
    } else {
        FakeMountMode::Symlink
    };
    assert_eq!(FakeMountMode::Auto.resolve(), want);
    assert_eq!(
        FakeMounter::new(PathBuf::from("/x"), FakeMountMode::Auto).mode(),
        want
    );
}

#[tokio::test]
async fn symlink_mode_end_to_end() {
    let srv = Server::start().await;
    let b = Bench::new();
    let f = symlink_mounter(&b);
    let staging = b.path("staging");
    std::fs::create_dir(&staging).unwrap();
    let m = request(&srv.url, &staging);

    f.mount_cephfs(&m).await.unwrap();
    assert_eq!(std::fs::read_link(&staging).unwrap(), srv.local());
    // The session was opened as client.vol1 with the node and target as metadata.
    let seen = srv.ceph.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/mds/sessions")
    );
    assert_eq!(
        seen[0].basic.as_deref(),
        Some(format!("client.vol1:{KEY}").as_str())
    );
    assert_eq!(seen[0].body["fs_name"], "cephfs");
    assert_eq!(seen[0].body["root"], ROOT);
    assert_eq!(seen[0].body["client_metadata"]["hostname"], "node-1");
    assert_eq!(
        seen[0].body["client_metadata"]["mount_point"],
        staging.to_str().unwrap()
    );
    // The record: 0600 in a 0700 dir, with the token and without the key.
    let dir = f.records_dir();
    assert_eq!(mode_of(&dir), 0o700);
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(mode_of(&files[0]), 0o600);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(!text.contains(KEY), "{text}");
    let rec: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(rec["kind"], "symlink");
    assert_eq!(rec["session_id"], 4301);
    assert_eq!(rec["url"], srv.url, "trailing slash trimmed");
    assert_eq!(rec["local_path"], srv.local().to_str().unwrap());
    let token = rec["token"].as_str().unwrap().to_owned();
    assert!(!format!("{:?}", f.load(&staging).unwrap()).contains(&token));

    assert_eq!(f.state(&staging).await, MountState::Mounted);
    // Idempotent: the session is checked (with the token) and no new one is opened.
    f.mount_cephfs(&m).await.unwrap();
    let seen = srv.ceph.seen();
    assert_eq!(
        seen.iter()
            .filter(|s| s.method == "POST" && s.path == "/mds/sessions")
            .count(),
        1
    );
    for s in seen.iter().filter(|s| s.path != "/mds/sessions") {
        assert_eq!(s.token.as_deref(), Some(token.as_str()), "{s:?}");
        assert_eq!(s.basic, None, "no key after the mount: {s:?}");
    }

    // Publish: a symlink to the staged directory; read-only is not enforced.
    let publish = b.path("publish");
    std::fs::create_dir(&publish).unwrap();
    assert!(f.has_work_at(&staging).await);
    assert!(!f.has_work_at(&publish).await);
    f.bind(&staging, &publish, true).await.unwrap();
    f.bind(&staging, &publish, true).await.unwrap();
    // The link names the staging target, so the publish target finds its staging record
    // without a scan; a link straight to the local directory (an older driver's) is
    // still resolved, by a scan.
    assert_eq!(std::fs::read_link(&publish).unwrap(), staging);
    assert_eq!(f.state(&publish).await, MountState::Mounted);
    assert_eq!(f.load_linked(&publish).await.unwrap().session_id, 4301);
    let older = b.path("older");
    std::os::unix::fs::symlink(srv.local(), &older).unwrap();
    assert!(f.load_linked(&older).await.is_none());
    assert_eq!(f.state(&older).await, MountState::Mounted);
    std::fs::remove_file(&older).unwrap();
    // Stats of either path come from the session (statfs through the token).
    let want = FsStats {
        total_bytes: 1 << 20,
        available_bytes: (1 << 20) - 1000,
        used_bytes: 1000,
    };
    assert_eq!(f.stats(&staging).await.unwrap(), want);
    assert_eq!(f.stats(&publish).await.unwrap(), want);
    let last = srv.ceph.seen().pop().unwrap();
    assert_eq!(last.path, "/mds/sessions/4301/ops");
    assert_eq!(last.body, json!({"ops": [{"op": "statfs"}]}));

    // Eviction shows as a corrupted mount on both paths.
    srv.ceph.evict_all();
    assert_eq!(
        f.state(&staging).await,
        MountState::Corrupted(libc::ENOTCONN)
    );
    assert_eq!(
        f.state(&publish).await,
        MountState::Corrupted(libc::ENOTCONN)
    );
    let e = f.stats(&publish).await.unwrap_err();
    assert!(
        matches!(
            e,
            MountError::Failed {
                errno: Some(libc::ENOTCONN),
                ..
            }
        ),
        "{e:?}"
    );

    // Unmount leaves an empty directory and does not touch the session; unmount and
    // remove (NodeUnpublish) leaves nothing.
    let before = srv.ceph.seen().len();
    f.unmount(&publish).await.unwrap();
    assert!(std::fs::symlink_metadata(&publish).unwrap().is_dir());
    assert_eq!(srv.ceph.seen().len(), before);
    assert_eq!(f.state(&publish).await, MountState::NotMounted);
    f.bind(&staging, &publish, false).await.unwrap();
    f.unmount_and_remove(&publish).await.unwrap();
    assert!(std::fs::symlink_metadata(&publish).is_err());
    assert_eq!(srv.ceph.seen().len(), before);
    assert!(!f.has_work_at(&publish).await);
    // Unstage closes the (already evicted) session and forgets the record.
    f.unmount(&staging).await.unwrap();
    assert!(std::fs::symlink_metadata(&staging).unwrap().is_dir());
    let last = srv.ceph.seen().pop().unwrap();
    assert_eq!(
        (last.method.as_str(), last.path.as_str()),
        ("DELETE", "/mds/sessions/4301")
    );
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
    let before = srv.ceph.seen().len();
    f.unmount(&staging).await.unwrap();
    assert_eq!(srv.ceph.seen().len(), before, "nothing left to close");
    assert_eq!(f.state(&staging).await, MountState::NotMounted);
    assert!(!f.has_work_at(&staging).await);
    assert!(!f.has_work_at(&publish).await);
    assert!(
        std::fs::read_dir(srv.local()).is_ok(),
        "the volume's data is untouched"
    );
}

#[tokio::test]
async fn a_restarted_mounter_unmounts_with_the_record() {
    let srv = Server::start().await;
    let b = Bench::new();
    let staging = b.path("staging");
    std::fs::create_dir(&staging).unwrap();
    symlink_mounter(&b)
        .mount_cephfs(&request(&srv.url, &staging))
        .await
        .unwrap();
    // A new process: no memory, same state dir.
    let f = symlink_mounter(&b);
    assert_eq!(f.state(&staging).await, MountState::Mounted);
    f.unmount(&staging).await.unwrap();
    assert!(srv.ceph.sessions.lock().open.is_empty());
    // A session the fake no longer knows (fake-ceph restarted): the mount is replaced.
    f.mount_cephfs(&request(&srv.url, &staging)).await.unwrap();
    srv.ceph.sessions.lock().open.insert(4302, "0".repeat(32));
    assert_eq!(
        f.state(&staging).await,
        MountState::Corrupted(libc::ENOTCONN),
        "401 to our token: gone"
    );
    f.mount_cephfs(&request(&srv.url, &staging)).await.unwrap();
    assert_eq!(f.state(&staging).await, MountState::Mounted);
    assert_eq!(f.load(&staging).unwrap().session_id, 4303);
}

#[tokio::test]
async fn mount_failures_map_errnos() {
    let srv = Server::start().await;
    let b = Bench::new();
    let f = symlink_mounter(&b);
    let staging = b.path("staging");
    std::fs::create_dir(&staging).unwrap();
    type Edit = Box<dyn Fn(&mut CephMount)>;
    let cases: Vec<(&str, Edit, i32)> = vec![
        (
            "bad key",
            Box::new(|m: &mut CephMount| m.key = "AQBvdGhlcmtleQ==".into()),
            libc::EACCES,
        ),
        (
            "root outside caps",
            Box::new(|m: &mut CephMount| m.root_path = "/".into()),
            libc::EPERM,
        ),
        (
            "missing root",
            Box::new(|m: &mut CephMount| m.root_path = "/volumes/nope".into()),
            libc::ENOENT,
        ),
    ];
    for (what, edit, errno) in cases {
        let mut m = request(&srv.url, &staging);
        edit(&mut m);
        let e = f.mount_cephfs(&m).await.unwrap_err();
        match &e {
            MountError::Failed {
                errno: got,
                message,
                ..
            } => {
                assert_eq!(*got, Some(errno), "{what}: {message}");
                assert!(!message.contains(KEY));
            }
            other => panic!("{what}: {other:?}"),
        }
        assert!(
            std::fs::symlink_metadata(&staging).unwrap().is_dir(),
            "{what}"
        );
        assert!(f.load(&staging).is_none(), "{what}");
    }
    let mut m = request(&srv.url, &staging);
    m.admin_url = None;
    assert!(matches!(
        f.mount_cephfs(&m).await.unwrap_err(),
        MountError::Unavailable(_)
    ));

    // A target that is not empty: the session is closed again and nothing recorded.
    std::fs::write(staging.join("file"), b"x").unwrap();
    let e = f
        .mount_cephfs(&request(&srv.url, &staging))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            MountError::Failed {
                errno: Some(libc::ENOTEMPTY),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(srv.ceph.sessions.lock().open.is_empty());
    assert!(f.load(&staging).is_none());
}

#[tokio::test]
async fn an_unreachable_or_hung_fake() {
    let srv = Server::start().await;
    let b = Bench::new();
    let f = symlink_mounter(&b).with_http_timeout(Duration::from_millis(300));
    let staging = b.path("staging");
    std::fs::create_dir(&staging).unwrap();
    f.mount_cephfs(&request(&srv.url, &staging)).await.unwrap();

    srv.ceph
        .hang
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let started = std::time::Instant::now();
    assert_eq!(f.state(&staging).await, MountState::Corrupted(libc::EIO));
    assert!(matches!(
        f.stats(&staging).await.unwrap_err(),
        MountError::Timeout(_)
    ));
    assert!(started.elapsed() < Duration::from_secs(5));

    srv.task.abort();
    // Give the aborted listener a moment to close.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(f.state(&staging).await, MountState::Corrupted(libc::EIO));
    let e = f
        .mount_cephfs(&request(&srv.url, &b.path("other")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            MountError::Failed {
                errno: Some(libc::EIO),
                ..
            } | MountError::Timeout(_)
        ),
        "{e:?}"
    );
    // Unmount removes the symlink but keeps the record while the session cannot be closed.
    assert!(f.unmount(&staging).await.is_err());
    assert!(std::fs::symlink_metadata(&staging).unwrap().is_dir());
    assert!(f.load(&staging).is_some());
}

#[tokio::test]
async fn bind_mode_runs_mount_and_umount() {
    let srv = Server::start().await;
    let b = Bench::new();
    let mount = b.script(
        "mount",
        &format!(
            r#"if [ "$1" = --bind ]; then T="$3"; FSTYPE=ext4; {ADD_MOUNT}; fi
if [ "$1" = -o ]; then sed -i "s# $3 rw,# $3 ro,#" "$MOUNTINFO"; fi"#
        ),
    );
    let umount = b.script("umount", &format!("T=\"$1\"; {REMOVE_MOUNT}"));
    let f =
        FakeMounter::new(b.path("state"), FakeMountMode::Bind).with_tools(b.tools(mount, umount));
    let staging = b.path("staging");
    std::fs::create_dir(&staging).unwrap();
    let mut m = request(&srv.url, &staging);
    m.read_only = true;
    f.mount_cephfs(&m).await.unwrap();
    let local = srv.local();
    let (s, l) = (staging.to_str().unwrap(), local.to_str().unwrap());
    assert_eq!(
        b.calls(),
        [
            vec!["mount", "--bind", l, s],
            vec!["mount", "-o", "remount,bind,ro", s]
        ]
    );
    assert_eq!(f.load(&staging).unwrap().kind, Kind::Bind);
    assert_eq!(f.state(&staging).await, MountState::Mounted);
    f.mount_cephfs(&m).await.unwrap();
    assert_eq!(b.calls().len(), 2, "idempotent");
    let publish = b.path("publish");
    std::fs::create_dir(&publish).unwrap();
    assert!(f.has_work_at(&staging).await);
    assert!(!f.has_work_at(&publish).await);
    f.bind(&staging, &publish, false).await.unwrap();
    assert_eq!(
        b.calls()[2],
        ["mount", "--bind", s, publish.to_str().unwrap()]
    );
    f.unmount(&publish).await.unwrap();
    f.unmount(&staging).await.unwrap();
    let calls = b.calls();
    assert_eq!(calls[3], ["umount", publish.to_str().unwrap()]);
    assert_eq!(calls[4], ["umount", s]);
    assert!(srv.ceph.sessions.lock().open.is_empty());
    assert!(f.load(&staging).is_none());
}

/// Real bind mounts, when this process may mount (root with CAP_SYS_ADMIN); skipped
/// otherwise.
#[tokio::test]
async fn real_bind_mounts_when_root() {
    let srv = Server::start().await;
    let b = Bench::new();
    let probe_src = b.path("probe-src");
    let probe = b.path("probe");
    std::fs::create_dir(&probe_src).unwrap();
    std::fs::create_dir(&probe).unwrap();
    let ok = std::process::Command::new("mount")
        .arg("--bind")
        .arg(&probe_src)
        .arg(&probe)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return;
    }
    let _ = std::process::Command::new("umount").arg(&probe).status();
    let f = FakeMounter::new(b.path("state"), FakeMountMode::Bind);
    let staging = b.path("staging");
    let publish = b.path("publish");
    std::fs::create_dir(&staging).unwrap();
    std::fs::create_dir(&publish).unwrap();
    f.mount_cephfs(&request(&srv.url, &staging)).await.unwrap();
    assert!(mountinfo::is_mount_point(&staging).unwrap());
    f.bind(&staging, &publish, true).await.unwrap();
    let entries = mountinfo::mount_points().unwrap();
    assert!(mountinfo::find(&entries, &publish).unwrap().is_read_only());
    assert!(
        std::fs::write(publish.join("x"), b"x").is_err(),
        "read-only bind"
    );
    std::fs::write(staging.join("y"), b"y").unwrap();
    assert!(srv.local().join("y").exists());
    assert_eq!(f.state(&publish).await, MountState::Mounted);
    assert_eq!(
        f.stats(&publish).await.unwrap().used_bytes,
        1000,
        "resolved to the staging session"
    );
    f.unmount(&publish).await.unwrap();
    f.unmount(&staging).await.unwrap();
    assert!(!mountinfo::is_mount_point(&staging).unwrap());
    assert!(!mountinfo::is_mount_point(&publish).unwrap());
    assert!(srv.ceph.sessions.lock().open.is_empty());
}

#[tokio::test]
async fn a_record_without_its_link_is_still_unmounted() {
    // A crash after the record was written but before the symlink: the staging path looks
    // empty, yet a session is open; unstage must still close it.
    let srv = Server::start().await;
    let b = Bench::new();
    let staging = b.path("staging");
    std::fs::create_dir(&staging).unwrap();
    let f = symlink_mounter(&b);
    f.mount_cephfs(&request(&srv.url, &staging)).await.unwrap();
    std::fs::remove_file(&staging).unwrap();
    std::fs::create_dir(&staging).unwrap();
    assert_eq!(f.state(&staging).await, MountState::NotMounted);
    assert!(f.has_work_at(&staging).await);
    f.unmount(&staging).await.unwrap();
    assert!(srv.ceph.sessions.lock().open.is_empty());
    assert!(!f.has_work_at(&staging).await);
}
