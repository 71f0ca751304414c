//! Session operations stay inside the session's root, whatever symlinks a client (or
//! anyone with access to the local directory) leaves in the tree (issue 14, item 1).

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use fake_ceph::errno::*;
use fake_ceph::{Mount, MountRequest, Op, OpOutput};

use crate::support::Fake;

fn req(root: &str) -> MountRequest {
    MountRequest {
        fs_name: Some("cephfs".into()),
        root: root.into(),
        client_metadata: BTreeMap::from([("hostname".to_owned(), "node-1".to_owned())]),
    }
}

/// A directory outside the data dir holding `secret` (a file) and `sub/` (a directory),
/// and a snapshot of what is in it, to check nothing changed.
struct Outside {
    dir: tempfile::TempDir,
}

impl Outside {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), b"host secret").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn listing(&self) -> Vec<(String, u64)> {
        let mut v = Vec::new();
        let mut stack = vec![self.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let m = std::fs::symlink_metadata(e.path()).unwrap();
                if m.is_dir() {
                    stack.push(e.path());
                }
                v.push((e.path().display().to_string(), m.len()));
            }
        }
        v.sort();
        v
    }
}

async fn user_mount(f: &Fake, caps: &str, root: &str) -> Mount {
    let key = f.user("client.vol", &["mds", caps, "mon", "allow r"]).await;
    f.cluster
        .mount("client.vol", &key, req(root))
        .await
        .unwrap()
}

/// Every kind of operation through a path that a symlink would lead out of the root.
fn escaping_ops() -> Vec<Op> {
    let data = Some(B64.encode(b"written through the link"));
    let mut ops = Vec::new();
    for base in ["evil", "rel", "deep/evil", "loop"] {
        let p = |s: &str| format!("{base}/{s}");
        ops.extend([
            Op::Read {
                path: p("secret"),
                offset: 0,
                len: 100,
            },
            Op::Stat { path: p("secret") },
            Op::Readdir { path: base.into() },
            Op::Readdir { path: p("sub") },
            Op::Write {
                path: p("new"),
                offset: 0,
                len: 0,
                data: data.clone(),
            },
            Op::Write {
                path: p("secret"),
                offset: 0,
                len: 0,
                data: data.clone(),
            },
            Op::Truncate {
                path: p("secret"),
                size: 0,
            },
            Op::Mkdir { path: p("made") },
            Op::Mkdir {
                path: p("sub/made"),
            },
            Op::Unlink { path: p("secret") },
            Op::Rmdir { path: p("sub") },
            Op::Rename {
                from: p("secret"),
                to: "stolen".into(),
            },
            Op::Rename {
                from: "mine".into(),
                to: p("planted"),
            },
            Op::Getxattr {
                path: base.into(),
                name: "ceph.dir.rbytes".into(),
            },
        ]);
    }
    // Symlinks as the last component.
    for leaf in ["leaf", "relleaf"] {
        ops.extend([
            Op::Read {
                path: leaf.into(),
                offset: 0,
                len: 100,
            },
            Op::Write {
                path: leaf.into(),
                offset: 0,
                len: 0,
                data: data.clone(),
            },
            Op::Write {
                path: leaf.into(),
                offset: 0,
                len: 1 << 20,
                data: None,
            },
            Op::Truncate {
                path: leaf.into(),
                size: 1,
            },
            Op::Stat { path: leaf.into() },
            Op::Getxattr {
                path: leaf.into(),
                name: "ceph.dir.rentries".into(),
            },
        ]);
    }
    ops
}

#[tokio::test]
async fn no_operation_follows_a_symlink_out_of_the_root() {
    let f = Fake::new();
    let path = f.subvolume("v", None).await;
    let m = user_mount(&f, &format!("allow rw path={path}"), &path).await;
    let outside = Outside::new();
    let before = outside.listing();
    let local = m.local_root().to_path_buf();
    let o = outside.path();
    // Absolute and relative links to the outside, one further down, a dangling one
    // whose target is outside, and a loop.
    std::os::unix::fs::symlink(o, local.join("evil")).unwrap();
    let up = "../".repeat(local.components().count() + 2);
    let rel_target = format!("{up}{}", o.display().to_string().trim_start_matches('/'));
    std::os::unix::fs::symlink(&rel_target, local.join("rel")).unwrap();
    std::fs::create_dir(local.join("deep")).unwrap();
    std::os::unix::fs::symlink(o, local.join("deep/evil")).unwrap();
    std::os::unix::fs::symlink(o.join("secret"), local.join("leaf")).unwrap();
    std::os::unix::fs::symlink(format!("{rel_target}/secret"), local.join("relleaf")).unwrap();
    std::os::unix::fs::symlink("loop", local.join("loop")).unwrap();
    std::fs::write(local.join("mine"), b"mine").unwrap();

    for op in escaping_ops() {
        let got = m.op(op.clone()).await;
        if let Ok(out) = &got {
            // Whatever succeeded must have stayed inside: nothing of the outside shows.
            let shown = serde_json::to_string(out).unwrap();
            assert!(
                !shown.contains(&B64.encode(b"host secret")) && !shown.contains("secret"),
                "{op:?} showed the outside: {shown}"
            );
            if let OpOutput::Stat(s) = out {
                assert_ne!(s.size, 11, "{op:?} stat the outside file");
            }
        }
        assert_eq!(outside.listing(), before, "{op:?} changed the outside");
        assert_eq!(
            std::fs::read(o.join("secret")).unwrap(),
            b"host secret",
            "{op:?}"
        );
    }
    // The data dir gained no file named after the outside's content either.
    assert!(!f.cluster.data_dir().join("stolen").exists());
}

#[tokio::test]
async fn symlinks_inside_the_root_resolve_as_libcephfs_resolves_them() {
    let f = Fake::new();
    let path = f.subvolume("v", None).await;
    let m = user_mount(&f, &format!("allow rw path={path}"), &path).await;
    let local = m.local_root().to_path_buf();
    m.mkdir("a/b").await.unwrap();
    m.write_file("a/b/f", b"inside").await.unwrap();
    // Relative, absolute (from the mount root, as libcephfs resolves it) and `..` that
    // would climb above the root (it stops there).
    std::os::unix::fs::symlink("a/b", local.join("rel")).unwrap();
    std::os::unix::fs::symlink("/a", local.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../../a/b/f", local.join("a/up")).unwrap();
    assert_eq!(m.read_file("rel/f").await.unwrap(), b"inside");
    assert_eq!(m.read_file("abs/b/f").await.unwrap(), b"inside");
    assert_eq!(m.read_file("a/up").await.unwrap(), b"inside");
    m.write_file("abs/b/g", b"via link").await.unwrap();
    assert_eq!(std::fs::read(local.join("a/b/g")).unwrap(), b"via link");
    // Unlink and rename act on the link itself, not on what it names.
    m.op(Op::Unlink { path: "rel".into() }).await.unwrap();
    assert!(local.join("a/b/f").exists());
    assert!(std::fs::symlink_metadata(local.join("rel")).is_err());
    // A loop is ELOOP, as the kernel answers.
    std::os::unix::fs::symlink("loop", local.join("loop")).unwrap();
    assert_eq!(m.read_file("loop").await.unwrap_err().errno, ELOOP);
}

#[tokio::test]
async fn caps_are_checked_on_where_a_symlink_leads() {
    let f = Fake::new();
    let path = f.subvolume("v", None).await;
    let admin = f
        .cluster
        .mount("client.admin", &f.admin_key, req(&path))
        .await
        .unwrap();
    admin.mkdir("w").await.unwrap();
    admin.mkdir("ro").await.unwrap();
    // Read-only on the subvolume, read-write below `w` only.
    let m = user_mount(
        &f,
        &format!("allow r path={path}, allow rw path={path}/w"),
        &path,
    )
    .await;
    m.write_file("w/ok", b"x").await.unwrap();
    std::os::unix::fs::symlink("../ro", m.local_root().join("w/link")).unwrap();
    let e = m.write_file("w/link/f", b"x").await.unwrap_err();
    assert_eq!(e.errno, EACCES, "{e}");
    assert!(!m.local_root().join("ro/f").exists());
}

#[tokio::test]
async fn a_mount_root_cannot_pass_through_a_symlink() {
    let f = Fake::new();
    let path = f.subvolume("v", None).await;
    let caps = format!("allow rw path={path}");
    let m = user_mount(&f, &caps, &path).await;
    let outside = Outside::new();
    std::os::unix::fs::symlink(outside.path(), m.local_root().join("out")).unwrap();
    let key = f.cluster.key_of("client.vol").unwrap();
    let e = f
        .cluster
        .mount("client.vol", &key, req(&format!("{path}/out")))
        .await
        .unwrap_err();
    assert_eq!(e.errno, ENOTDIR, "{e}");
    // Nor can a directory of the root be swapped for a link after the mount.
    m.mkdir("d").await.unwrap();
    let sub = f
        .cluster
        .mount("client.vol", &key, req(&format!("{path}/d")))
        .await
        .unwrap();
    std::fs::remove_dir(m.local_root().join("d")).unwrap();
    std::os::unix::fs::symlink(outside.path(), m.local_root().join("d")).unwrap();
    let e = sub.read_file("secret").await.unwrap_err();
    assert_eq!(e.errno, ENOTDIR, "{e}");
    let e = sub.op(Op::Readdir { path: "".into() }).await.unwrap_err();
    assert_eq!(e.errno, ENOTDIR, "{e}");
}
