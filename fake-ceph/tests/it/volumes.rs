//! The `volumes` module: groups, subvolumes, snapshots, clones, metadata, authorize.

use std::time::Duration;

use fake_ceph::errno::*;
use fake_ceph::{Config, FaultRule, Faults};
use serde_json::{Value, json};

use crate::support::{Fake, eventually, sv};

#[tokio::test]
async fn groups() {
    let f = Fake::new();
    let create =
        json!({"prefix": "fs subvolumegroup create", "vol_name": "cephfs", "group_name": "csi"});
    f.ok(create.clone()).await;
    f.ok(create.clone()).await; // idempotent
    assert_eq!(
        f.ok_json(json!({"prefix": "fs subvolumegroup ls", "vol_name": "cephfs"}))
            .await,
        json!([{"name": "csi"}])
    );
    assert_eq!(
        f.ok(json!({"prefix": "fs subvolumegroup getpath", "vol_name": "cephfs", "group_name": "csi"})).await,
        "/volumes/csi\n"
    );
    assert!(f.cluster.fs_root("cephfs").join("volumes/csi").is_dir());
    let info = f
        .ok_json(
            json!({"prefix": "fs subvolumegroup info", "vol_name": "cephfs", "group_name": "csi"}),
        )
        .await;
    assert_eq!(info["bytes_quota"], "infinite");
    f.err(
        json!({"prefix": "fs subvolumegroup create", "vol_name": "nofs", "group_name": "g"}),
        ENOENT,
    )
    .await;
    f.err(
        json!({"prefix": "fs subvolumegroup getpath", "vol_name": "cephfs", "group_name": "nope"}),
        ENOENT,
    )
    .await;
    // A group with subvolumes cannot go.
    f.ok(sv("fs subvolume create", "v", json!({}))).await;
    f.err(
        json!({"prefix": "fs subvolumegroup rm", "vol_name": "cephfs", "group_name": "csi"}),
        ENOTEMPTY,
    )
    .await;
    f.ok(sv("fs subvolume rm", "v", json!({}))).await;
    f.ok(json!({"prefix": "fs subvolumegroup rm", "vol_name": "cephfs", "group_name": "csi"}))
        .await;
    f.err(
        json!({"prefix": "fs subvolumegroup rm", "vol_name": "cephfs", "group_name": "csi"}),
        ENOENT,
    )
    .await;
    f.ok(json!({"prefix": "fs subvolumegroup rm", "vol_name": "cephfs", "group_name": "csi", "force": true}))
        .await;
    assert_eq!(
        f.ok_json(json!({"prefix": "fs subvolumegroup ls", "vol_name": "cephfs"}))
            .await,
        json!([])
    );
}

#[tokio::test]
async fn subvolume_create_is_idempotent_and_shaped_like_ceph() {
    let f = Fake::new();
    let path = f.subvolume("csi-vol-1", None).await;
    let parts: Vec<&str> = path.split('/').collect();
    assert_eq!(&parts[..4], ["", "volumes", "csi", "csi-vol-1"]);
    assert_eq!(parts[4].len(), 36, "uuid component: {path}");
    assert!(
        f.cluster
            .fs_root("cephfs")
            .join(path.trim_start_matches('/'))
            .is_dir()
    );
    // Again: same path, success, empty status.
    let r = f
        .cmd(sv("fs subvolume create", "csi-vol-1", json!({})))
        .await;
    assert_eq!((r.ret, r.outb.as_str(), r.outs.as_str()), (0, "", ""));
    assert_eq!(
        f.ok(sv("fs subvolume getpath", "csi-vol-1", json!({})))
            .await,
        format!("{path}\n")
    );

    let info = f
        .ok_json(sv("fs subvolume info", "csi-vol-1", json!({})))
        .await;
    assert_eq!(info["bytes_quota"], "infinite");
    assert_eq!(info["bytes_pcent"], "undefined");
    assert_eq!(info["path"], path);
    assert_eq!(info["state"], "complete");
    assert_eq!(info["type"], "subvolume");
    assert_eq!(info["mon_addrs"], json!(["127.0.0.1:6789"]));
    assert_eq!(info["data_pool"], "cephfs.cephfs.data");
    for k in [
        "atime",
        "mtime",
        "ctime",
        "created_at",
        "uid",
        "gid",
        "mode",
        "features",
        "pool_namespace",
        "bytes_used",
    ] {
        assert!(info.get(k).is_some(), "info lacks {k}: {info}");
    }
    // A size on the existing subvolume sets the quota.
    f.ok(sv(
        "fs subvolume create",
        "csi-vol-1",
        json!({"size": 1_073_741_824u64}),
    ))
    .await;
    let info = f
        .ok_json(sv("fs subvolume info", "csi-vol-1", json!({})))
        .await;
    assert_eq!(info["bytes_quota"], 1_073_741_824u64);
    assert_eq!(info["bytes_pcent"], "0.00");
    assert_eq!(
        f.ok(json!({"prefix": "fs subvolume exist", "vol_name": "cephfs", "group_name": "csi"}))
            .await,
        "subvolume exists\n"
    );
    assert_eq!(
        f.ok_json(json!({"prefix": "fs subvolume ls", "vol_name": "cephfs", "group_name": "csi"}))
            .await,
        json!([{"name": "csi-vol-1"}])
    );
    // Without a group, subvolumes land in _nogroup.
    f.ok(json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "sub_name": "plain"}))
        .await;
    let p = f
        .ok(json!({"prefix": "fs subvolume getpath", "vol_name": "cephfs", "sub_name": "plain"}))
        .await
        .trim_end()
        .to_owned();
    assert!(p.starts_with("/volumes/_nogroup/plain/"), "{p}");
    assert_eq!(
        f.ok_json(json!({"prefix": "fs subvolume ls", "vol_name": "cephfs"}))
            .await,
        json!([{"name": "plain"}])
    );
    // Naming the implicit group is refused, as Ceph 16.2.15 refuses it (checked against
    // a real cluster): ls and exist too, not only the commands on one subvolume.
    for prefix in ["fs subvolume ls", "fs subvolume exist"] {
        let m = f
            .err(
                json!({"prefix": prefix, "vol_name": "cephfs", "group_name": "_nogroup"}),
                EPERM,
            )
            .await;
        assert_eq!(
            m,
            "Operation not permitted for group '_nogroup' as it is an internal group."
        );
    }
}

#[tokio::test]
async fn subvolume_errors() {
    let f = Fake::new();
    f.err(sv("fs subvolume create", "x", json!({})), ENOENT)
        .await; // group csi missing
    f.subvolume("a", None).await;
    let m = f
        .err(sv("fs subvolume getpath", "nope", json!({})), ENOENT)
        .await;
    assert_eq!(m, "subvolume 'nope' does not exist");
    f.err(sv("fs subvolume info", "nope", json!({})), ENOENT)
        .await;
    f.err(sv("fs subvolume rm", "nope", json!({})), ENOENT)
        .await;
    f.ok(sv("fs subvolume rm", "nope", json!({"force": true})))
        .await;
    f.err(
        sv("fs subvolume create", "b", json!({"mode": "abc"})),
        EINVAL,
    )
    .await;
    f.err(
        sv("fs subvolume create", "b", json!({"pool_layout": "nopool"})),
        EINVAL,
    )
    .await;
    f.err(sv("fs subvolume create", "b", json!({"size": -5})), EINVAL)
        .await;
    f.err(
        json!({"prefix": "fs subvolume create", "vol_name": "nofs", "sub_name": "b"}),
        ENOENT,
    )
    .await;
    // Nothing was created by the failures.
    assert_eq!(
        f.ok_json(json!({"prefix": "fs subvolume ls", "vol_name": "cephfs", "group_name": "csi"}))
            .await,
        json!([{"name": "a"}])
    );
}

#[tokio::test]
async fn names_cannot_escape_the_tree() {
    let f = Fake::new();
    f.subvolume("ok", None).await;
    let long = "n".repeat(300);
    for bad in [
        "",
        ".",
        "..",
        "../x",
        "a/b",
        "/etc",
        "x\u{0}y",
        long.as_str(),
    ] {
        let r = f.cmd(sv("fs subvolume create", bad, json!({}))).await;
        assert!(r.ret < 0, "{bad:?} was accepted");
        let r = f
            .cmd(json!({"prefix": "fs subvolumegroup create", "vol_name": "cephfs", "group_name": bad}))
            .await;
        assert!(r.ret < 0, "group {bad:?} was accepted");
        // An empty group name means "no group", as in Ceph.
        if !bad.is_empty() {
            let r = f
                .cmd(json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "group_name": bad, "sub_name": "v"}))
                .await;
            assert!(r.ret < 0, "group_name {bad:?} was accepted");
        }
        let r = f
            .cmd(sv(
                "fs subvolume snapshot create",
                "ok",
                json!({"snap_name": bad}),
            ))
            .await;
        assert!(r.ret < 0, "snapshot {bad:?} was accepted");
    }
    // The data dir holds only the file system tree.
    let entries: Vec<_> = std::fs::read_dir(f.cluster.data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("fs")]);
    let vols: Vec<_> = std::fs::read_dir(f.cluster.fs_root("cephfs").join("volumes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(vols, vec!["csi".to_owned()]);
}

#[tokio::test]
async fn resize_sets_and_checks_the_quota() {
    let f = Fake::new();
    f.subvolume("r", Some(10 << 20)).await;
    let out = f
        .ok_json(sv(
            "fs subvolume resize",
            "r",
            json!({"new_size": "20971520", "no_shrink": true}),
        ))
        .await;
    assert_eq!(out[1]["bytes_quota"], 20_971_520u64);
    assert_eq!(out[0]["bytes_used"], 0);
    let out = f
        .ok_json(sv(
            "fs subvolume resize",
            "r",
            json!({"new_size": "infinite"}),
        ))
        .await;
    // Ceph reports a removed quota as 0 in the resize answer, "infinite" in `info`.
    assert_eq!(out[1]["bytes_quota"], 0);
    assert_eq!(out[2]["bytes_pcent"], "undefined");
    f.err(
        sv("fs subvolume resize", "r", json!({"new_size": "abc"})),
        EINVAL,
    )
    .await;
    f.err(
        sv("fs subvolume resize", "r", json!({"new_size": "0"})),
        EINVAL,
    )
    .await;
    f.err(
        sv("fs subvolume resize", "r", json!({"new_size": "-1"})),
        EINVAL,
    )
    .await;
    // Write 3 MiB through a mount, then shrinking below that with no_shrink fails.
    let path = f
        .ok(sv("fs subvolume getpath", "r", json!({})))
        .await
        .trim_end()
        .to_owned();
    let m = f
        .cluster
        .mount(
            "client.admin",
            &f.admin_key,
            fake_ceph::MountRequest {
                root: path,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    m.write_file("big", &vec![7u8; 3 << 20]).await.unwrap();
    let msg = f
        .err(
            sv(
                "fs subvolume resize",
                "r",
                json!({"new_size": "1048576", "no_shrink": true}),
            ),
            EINVAL,
        )
        .await;
    assert!(msg.contains("lesser than the current used size"), "{msg}");
    let info = f.ok_json(sv("fs subvolume info", "r", json!({}))).await;
    assert_eq!(info["bytes_used"], 3u64 << 20);
    assert_eq!(info["bytes_quota"], "infinite");
    // Without no_shrink Ceph allows it.
    f.ok(sv(
        "fs subvolume resize",
        "r",
        json!({"new_size": "1048576"}),
    ))
    .await;
}

#[tokio::test]
async fn removal_is_asynchronous_and_respects_snapshots() {
    let f = Fake::new();
    let path = f.subvolume("d", None).await;
    let local = f
        .cluster
        .fs_root("cephfs")
        .join(path.trim_start_matches('/'));
    std::fs::write(local.join("file"), b"data").unwrap();
    f.ok(sv(
        "fs subvolume snapshot create",
        "d",
        json!({"snap_name": "s1"}),
    ))
    .await;
    let m = f
        .err(sv("fs subvolume rm", "d", json!({})), ENOTEMPTY)
        .await;
    assert!(m.contains("has snapshots"), "{m}");
    // Retain the snapshots: the data goes, the subvolume stays as snapshot-retained.
    f.ok(sv(
        "fs subvolume rm",
        "d",
        json!({"retain_snapshots": true}),
    ))
    .await;
    let info = f.ok_json(sv("fs subvolume info", "d", json!({}))).await;
    assert_eq!(info["state"], "snapshot-retained");
    assert!(info.get("path").is_none());
    let m = f
        .err(sv("fs subvolume getpath", "d", json!({})), ENOENT)
        .await;
    assert!(m.contains("snapshots retained"), "{m}");
    assert_eq!(
        f.ok_json(json!({"prefix": "fs subvolume ls", "vol_name": "cephfs", "group_name": "csi"}))
            .await,
        json!([{"name": "d"}])
    );
    eventually(|| !local.exists()).await;
    // Removing the last snapshot removes the subvolume.
    f.ok(sv(
        "fs subvolume snapshot rm",
        "d",
        json!({"snap_name": "s1"}),
    ))
    .await;
    f.err(sv("fs subvolume info", "d", json!({})), ENOENT).await;
    eventually(|| f.cluster.purge_pending() == 0).await;
    assert!(!local.parent().unwrap().exists());
}

#[tokio::test]
async fn purge_can_be_paused() {
    let mut c = Config::default();
    c.volumes.pause_purging = true;
    let f = Fake::with(c);
    let path = f.subvolume("p", None).await;
    f.ok(sv("fs subvolume rm", "p", json!({}))).await;
    f.err(sv("fs subvolume getpath", "p", json!({})), ENOENT)
        .await;
    assert_eq!(f.cluster.purge_pending(), 1);
    let trash = f.cluster.fs_root("cephfs").join("volumes/_deleting");
    assert_eq!(std::fs::read_dir(&trash).unwrap().count(), 1);
    assert!(
        !f.cluster
            .fs_root("cephfs")
            .join(path.trim_start_matches('/'))
            .exists()
    );
    f.ok(json!({"prefix": "config set", "who": "mgr", "name": "mgr/volumes/pause_purging", "value": "false"}))
        .await;
    eventually(|| f.cluster.purge_pending() == 0).await;
    assert_eq!(std::fs::read_dir(&trash).unwrap().count(), 0);
}

#[tokio::test]
async fn snapshots() {
    let f = Fake::new();
    f.subvolume("s", Some(1 << 30)).await;
    let snap = |p: &str, extra: Value| {
        let mut c = sv(p, "s", json!({"snap_name": "snap1"}));
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };
    f.ok(snap("fs subvolume snapshot create", json!({}))).await;
    f.ok(snap("fs subvolume snapshot create", json!({}))).await; // idempotent
    let info = f
        .ok_json(snap("fs subvolume snapshot info", json!({})))
        .await;
    assert_eq!(info["has_pending_clones"], "no");
    let created = info["created_at"].as_str().unwrap();
    assert_eq!(
        created.len(),
        "2022-06-14 13:54:58.618769".len(),
        "{created}"
    );
    assert_eq!(
        f.ok_json(sv("fs subvolume snapshot ls", "s", json!({})))
            .await,
        json!([{"name": "snap1"}])
    );
    let m = f
        .err(
            sv(
                "fs subvolume snapshot info",
                "s",
                json!({"snap_name": "nope"}),
            ),
            ENOENT,
        )
        .await;
    assert_eq!(m, "snapshot 'nope' does not exist");
    f.err(
        sv(
            "fs subvolume snapshot rm",
            "s",
            json!({"snap_name": "nope"}),
        ),
        ENOENT,
    )
    .await;
    f.ok(sv(
        "fs subvolume snapshot rm",
        "s",
        json!({"snap_name": "nope", "force": true}),
    ))
    .await;
    f.err(
        sv(
            "fs subvolume snapshot create",
            "missing",
            json!({"snap_name": "x"}),
        ),
        ENOENT,
    )
    .await;
    f.err(
        sv(
            "fs subvolume snapshot create",
            "s",
            json!({"snap_name": "csi"}),
        ),
        EINVAL,
    )
    .await;
    f.ok(snap("fs subvolume snapshot rm", json!({}))).await;
    f.err(snap("fs subvolume snapshot info", json!({})), ENOENT)
        .await;
}

async fn clone_state(f: &Fake, name: &str) -> Value {
    f.ok_json(json!({"prefix": "fs clone status", "vol_name": "cephfs", "clone_name": name, "group_name": "csi", "format": "json"}))
        .await["status"]
        .clone()
}

#[tokio::test]
async fn clone_copies_the_snapshot_through_the_state_machine() {
    let mut c = Config::default();
    c.volumes.clone_pickup = Duration::ZERO;
    c.volumes.clone_time = Duration::from_millis(300);
    c.volumes.max_concurrent_clones = 1;
    c.volumes.snapshot_clone_no_wait = false;
    let f = Fake::with(c);
    let path = f.subvolume("src", Some(1 << 30)).await;
    let local = f
        .cluster
        .fs_root("cephfs")
        .join(path.trim_start_matches('/'));
    std::fs::create_dir_all(local.join("dir")).unwrap();
    std::fs::write(local.join("dir/file"), b"hello clone").unwrap();
    f.ok(sv(
        "fs subvolume snapshot create",
        "src",
        json!({"snap_name": "s"}),
    ))
    .await;
    // Writes after the snapshot do not reach the clone.
    std::fs::write(local.join("later"), b"x").unwrap();
    let clone = |t: &str| {
        sv(
            "fs subvolume snapshot clone",
            "src",
            json!({"snap_name": "s", "target_sub_name": t, "target_group_name": "csi"}),
        )
    };
    f.ok(clone("c1")).await;
    f.ok(clone("c2")).await;
    // One cloner: c1 runs, c2 waits.
    let s1 = clone_state(&f, "c1").await;
    assert_eq!(s1["state"], "in-progress");
    assert_eq!(
        s1["source"],
        json!({"volume": "cephfs", "subvolume": "src", "snapshot": "s", "group": "csi"})
    );
    assert_eq!(clone_state(&f, "c2").await["state"], "pending");
    // Until complete, the clone refuses other operations with EAGAIN.
    let m = f
        .err(sv("fs subvolume getpath", "c1", json!({})), EAGAIN)
        .await;
    assert_eq!(m, "subvolume 'c1' is not ready for operation getpath");
    f.err(sv("fs subvolume info", "c1", json!({})), EAGAIN)
        .await;
    // The snapshot has pending clones: it cannot be removed, nor its subvolume.
    let info = f
        .ok_json(sv(
            "fs subvolume snapshot info",
            "src",
            json!({"snap_name": "s"}),
        ))
        .await;
    assert_eq!(info["has_pending_clones"], "yes");
    assert_eq!(info["pending_clones"][0]["name"], "c1");
    let m = f
        .err(
            sv(
                "fs subvolume snapshot rm",
                "src",
                json!({"snap_name": "s", "force": true}),
            ),
            EAGAIN,
        )
        .await;
    assert_eq!(m, "snapshot 's' has pending clones");
    // A clone onto an existing name is EEXIST.
    f.err(clone("c1"), EEXIST).await;
    f.err(
        sv(
            "fs subvolume snapshot clone",
            "src",
            json!({"snap_name": "nope", "target_sub_name": "c3"}),
        ),
        ENOENT,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(clone_state(&f, "c1").await, json!({"state": "complete"}));
    assert_eq!(clone_state(&f, "c2").await["state"], "in-progress");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(clone_state(&f, "c2").await["state"], "complete");
    let cpath = f
        .ok(sv("fs subvolume getpath", "c1", json!({})))
        .await
        .trim_end()
        .to_owned();
    let clocal = f
        .cluster
        .fs_root("cephfs")
        .join(cpath.trim_start_matches('/'));
    assert_eq!(
        std::fs::read(clocal.join("dir/file")).unwrap(),
        b"hello clone"
    );
    assert!(!clocal.join("later").exists());
    let info = f.ok_json(sv("fs subvolume info", "c1", json!({}))).await;
    assert_eq!(info["type"], "clone");
    assert_eq!(info["bytes_quota"], 1u64 << 30);
    assert_eq!(info["bytes_used"], 11);
    // Done: the snapshot is free again; cancel of a finished clone is EINVAL.
    f.err(json!({"prefix": "fs clone cancel", "vol_name": "cephfs", "clone_name": "c1", "group_name": "csi"}), EINVAL)
        .await;
    f.ok(sv(
        "fs subvolume snapshot rm",
        "src",
        json!({"snap_name": "s"}),
    ))
    .await;
    // Clone status of a plain subvolume is not supported.
    f.err(json!({"prefix": "fs clone status", "vol_name": "cephfs", "clone_name": "src", "group_name": "csi"}), EOPNOTSUPP)
        .await;
}

#[tokio::test]
async fn busy_cloners_give_eagain_and_cancel_works() {
    let mut c = Config::default();
    c.volumes.clone_pickup = Duration::ZERO;
    c.volumes.clone_time = Duration::from_secs(60);
    c.volumes.max_concurrent_clones = 2;
    let f = Fake::with(c);
    f.subvolume("src", None).await;
    f.ok(sv(
        "fs subvolume snapshot create",
        "src",
        json!({"snap_name": "s"}),
    ))
    .await;
    let clone = |t: &str| {
        sv(
            "fs subvolume snapshot clone",
            "src",
            json!({"snap_name": "s", "target_sub_name": t, "target_group_name": "csi"}),
        )
    };
    f.ok(clone("c1")).await;
    f.ok(clone("c2")).await;
    let m = f.err(clone("c3"), EAGAIN).await;
    assert_eq!(m, "all cloner threads are busy, please try again later");
    f.err(sv("fs subvolume getpath", "c3", json!({})), ENOENT)
        .await;
    f.ok(json!({"prefix": "fs clone cancel", "vol_name": "cephfs", "clone_name": "c1", "group_name": "csi"})).await;
    let s = clone_state(&f, "c1").await;
    assert_eq!(s["state"], "canceled");
    assert_eq!(s["failure"]["errno"], "4");
    // A canceled clone can only be removed with force.
    let m = f.err(sv("fs subvolume rm", "c1", json!({})), EAGAIN).await;
    assert!(m.contains("--force"), "{m}");
    f.ok(sv("fs subvolume rm", "c1", json!({"force": true})))
        .await;
    // A cloner is free again.
    f.ok(clone("c3")).await;
    // Removing an in-progress clone with force frees the snapshot.
    f.ok(sv("fs subvolume rm", "c2", json!({"force": true})))
        .await;
    f.ok(sv("fs subvolume rm", "c3", json!({"force": true})))
        .await;
    f.ok(sv(
        "fs subvolume snapshot rm",
        "src",
        json!({"snap_name": "s"}),
    ))
    .await;
}

#[tokio::test]
async fn clones_fail_on_quota_and_on_injected_faults() {
    let f = Fake::new();
    let path = f.subvolume("src", Some(4)).await;
    let local = f
        .cluster
        .fs_root("cephfs")
        .join(path.trim_start_matches('/'));
    std::fs::write(local.join("f"), b"too big").unwrap();
    f.ok(sv(
        "fs subvolume snapshot create",
        "src",
        json!({"snap_name": "s"}),
    ))
    .await;
    f.ok(sv(
        "fs subvolume snapshot clone",
        "src",
        json!({"snap_name": "s", "target_sub_name": "q", "target_group_name": "csi"}),
    ))
    .await;
    let s = clone_state(&f, "q").await;
    assert_eq!(s["state"], "failed");
    assert_eq!(
        s["failure"],
        json!({"errno": "122", "error_msg": "Disk quota exceeded"})
    );
    f.ok(sv("fs subvolume rm", "q", json!({"force": true})))
        .await;
    f.ok(sv(
        "fs subvolume resize",
        "src",
        json!({"new_size": "infinite"}),
    ))
    .await;
    f.cluster.set_faults(Faults {
        rules: vec![FaultRule {
            prefix: "clone".into(),
            latency_ms: None,
            error_rate: Some(1.0),
            errno: Some(EIO),
            hang: false,
        }],
        mds_down: false,
    });
    f.ok(sv(
        "fs subvolume snapshot create",
        "src",
        json!({"snap_name": "s2"}),
    ))
    .await;
    f.ok(sv(
        "fs subvolume snapshot clone",
        "src",
        json!({"snap_name": "s2", "target_sub_name": "e", "target_group_name": "csi"}),
    ))
    .await;
    assert_eq!(clone_state(&f, "e").await["failure"]["errno"], "5");
}

#[tokio::test]
async fn metadata() {
    let f = Fake::new();
    f.subvolume("m", None).await;
    f.ok(sv(
        "fs subvolume metadata set",
        "m",
        json!({"key_name": "CSI.Storage.K8s.io/PVC/Name", "value": "claim-1"}),
    ))
    .await;
    assert_eq!(
        f.ok(sv(
            "fs subvolume metadata get",
            "m",
            json!({"key_name": "csi.storage.k8s.io/pvc/name"})
        ))
        .await,
        "claim-1\n"
    );
    assert_eq!(
        f.ok_json(sv("fs subvolume metadata ls", "m", json!({})))
            .await,
        json!({"csi.storage.k8s.io/pvc/name": "claim-1"})
    );
    f.err(
        sv(
            "fs subvolume metadata get",
            "m",
            json!({"key_name": "nope"}),
        ),
        ENOENT,
    )
    .await;
    f.err(
        sv("fs subvolume metadata rm", "m", json!({"key_name": "nope"})),
        ENOENT,
    )
    .await;
    f.ok(sv(
        "fs subvolume metadata rm",
        "m",
        json!({"key_name": "nope", "force": true}),
    ))
    .await;
    f.ok(sv(
        "fs subvolume metadata rm",
        "m",
        json!({"key_name": "csi.storage.k8s.io/pvc/name"}),
    ))
    .await;
    assert_eq!(
        f.ok_json(sv("fs subvolume metadata ls", "m", json!({})))
            .await,
        json!({})
    );
    f.ok(sv(
        "fs subvolume snapshot create",
        "m",
        json!({"snap_name": "s"}),
    ))
    .await;
    f.ok(sv(
        "fs subvolume snapshot metadata set",
        "m",
        json!({"snap_name": "s", "key_name": "k", "value": "v"}),
    ))
    .await;
    assert_eq!(
        f.ok(sv(
            "fs subvolume snapshot metadata get",
            "m",
            json!({"snap_name": "s", "key_name": "k"})
        ))
        .await,
        "v\n"
    );
    f.err(
        sv(
            "fs subvolume snapshot metadata set",
            "m",
            json!({"snap_name": "x", "key_name": "k", "value": "v"}),
        ),
        ENOENT,
    )
    .await;
}

#[tokio::test]
async fn authorize_creates_a_user_confined_to_the_subvolume() {
    let f = Fake::new();
    let path = f.subvolume("share", None).await;
    let key = f
        .ok(sv(
            "fs subvolume authorize",
            "share",
            json!({"auth_id": "alice", "tenant_id": "t1", "access_level": "rw"}),
        ))
        .await;
    // The key comes back with a newline, as Ceph sends it.
    let key = key.strip_suffix('\n').unwrap().to_owned();
    assert!(key.starts_with("AQ") && key.len() == 40, "{key}");
    let e = f
        .ok_json(json!({"prefix": "auth get", "entity": "client.alice", "format": "json"}))
        .await;
    assert_eq!(e[0]["caps"]["mds"], format!("allow rw path={path}"));
    assert_eq!(e[0]["caps"]["osd"], "allow rw pool=cephfs.cephfs.data");
    assert_eq!(e[0]["caps"]["mon"], "allow r");
    assert_eq!(
        f.ok_json(sv("fs subvolume authorized_list", "share", json!({})))
            .await,
        json!([{"alice": "rw"}])
    );
    // Without a tenant the key is not returned.
    assert_eq!(
        f.ok(sv(
            "fs subvolume authorize",
            "share",
            json!({"auth_id": "bob", "access_level": "r"})
        ))
        .await,
        ""
    );
    // Another tenant cannot take alice over; an existing foreign user is refused.
    f.err(
        sv(
            "fs subvolume authorize",
            "share",
            json!({"auth_id": "alice", "tenant_id": "t2"}),
        ),
        EPERM,
    )
    .await;
    f.user("client.carol", &["mon", "allow r"]).await;
    f.err(
        sv(
            "fs subvolume authorize",
            "share",
            json!({"auth_id": "carol"}),
        ),
        EPERM,
    )
    .await;
    f.ok(sv(
        "fs subvolume authorize",
        "share",
        json!({"auth_id": "carol", "allow_existing_id": true}),
    ))
    .await;
    f.err(
        sv(
            "fs subvolume authorize",
            "share",
            json!({"auth_id": "dave", "access_level": "rwx"}),
        ),
        EINVAL,
    )
    .await;
    // The user mounts its subvolume and nothing else.
    let m = f
        .cluster
        .mount(
            "client.alice",
            &key,
            fake_ceph::MountRequest {
                root: path.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    m.write_file("x", b"1").await.unwrap();
    let e = f
        .cluster
        .mount(
            "client.alice",
            &key,
            fake_ceph::MountRequest {
                root: "/volumes".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.errno, EPERM);
    // Evict through the volumes module.
    f.ok(sv(
        "fs subvolume evict",
        "share",
        json!({"auth_id": "alice"}),
    ))
    .await;
    assert!(!m.is_open());
    f.ok(sv(
        "fs subvolume deauthorize",
        "share",
        json!({"auth_id": "alice"}),
    ))
    .await;
    f.err(
        json!({"prefix": "auth get", "entity": "client.alice"}),
        ENOENT,
    )
    .await;
    f.err(
        sv(
            "fs subvolume deauthorize",
            "share",
            json!({"auth_id": "alice"}),
        ),
        ENOENT,
    )
    .await;
}

#[tokio::test]
async fn subvolume_commands_count_as_mds_requests() {
    let f = Fake::new();
    let before = f.cluster.perf_dump()["mds_server"]["handle_client_request"]
        .as_u64()
        .unwrap();
    f.subvolume("c", None).await;
    let after = f.cluster.perf_dump()["mds_server"]["handle_client_request"]
        .as_u64()
        .unwrap();
    assert!(after > before, "{before} -> {after}");
}
