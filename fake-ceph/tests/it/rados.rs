//! RADOS objects with omap: the journal primitives a CSI driver needs.

use fake_ceph::errno::*;
use serde_json::{Value, json};

use crate::support::Fake;

fn op(prefix: &str, object: &str, extra: Value) -> Value {
    let mut c = json!({"prefix": prefix, "pool": "cephfs.cephfs.meta", "namespace": "csi", "object": object});
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    c
}

#[tokio::test]
async fn omap_journal_primitives() {
    let f = Fake::new();
    f.ok(op(
        "rados create",
        "csi.volume.u1",
        json!({"exclusive": true}),
    ))
    .await;
    let m = f
        .err(
            op("rados create", "csi.volume.u1", json!({"exclusive": true})),
            EEXIST,
        )
        .await;
    assert!(m.contains("File exists"), "{m}");
    f.ok(op("rados create", "csi.volume.u1", json!({}))).await; // non-exclusive: fine
    f.ok(op(
        "rados omap set",
        "csi.volumes.default",
        json!({"vals": {"csi.volume.pvc-1": "u1", "csi.volume.pvc-2": "u2"}}),
    ))
    .await;
    f.ok(op(
        "rados omap set",
        "csi.volume.u1",
        json!({"vals": {"csi.volname": "pvc-1", "csi.imagename": "csi-vol-u1"}}),
    ))
    .await;
    let got = f
        .ok_json(op(
            "rados omap get",
            "csi.volumes.default",
            json!({"keys": ["csi.volume.pvc-1", "csi.volume.missing"]}),
        ))
        .await;
    assert_eq!(got, json!({"csi.volume.pvc-1": "u1"}));
    let page = f
        .ok_json(op(
            "rados omap list",
            "csi.volumes.default",
            json!({"max_return": 1, "filter_prefix": "csi.volume."}),
        ))
        .await;
    assert_eq!(
        page,
        json!({"vals": {"csi.volume.pvc-1": "u1"}, "more": true})
    );
    let page = f
        .ok_json(op(
            "rados omap list",
            "csi.volumes.default",
            json!({"start_after": "csi.volume.pvc-1"}),
        ))
        .await;
    assert_eq!(
        page,
        json!({"vals": {"csi.volume.pvc-2": "u2"}, "more": false})
    );
    f.ok(op(
        "rados omap rm",
        "csi.volumes.default",
        json!({"keys": ["csi.volume.pvc-1", "nope"]}),
    ))
    .await;
    let got = f
        .ok_json(op(
            "rados omap get",
            "csi.volumes.default",
            json!({"keys": ["csi.volume.pvc-1"]}),
        ))
        .await;
    assert_eq!(got, json!({}));
    let ls = f
        .ok_json(json!({"prefix": "rados ls", "pool": "cephfs.cephfs.meta", "namespace": "csi"}))
        .await;
    assert_eq!(ls.as_array().unwrap().len(), 2);
    // Namespaces are separate.
    let other = f
        .ok_json(json!({"prefix": "rados ls", "pool": "cephfs.cephfs.meta", "namespace": "other"}))
        .await;
    assert_eq!(other, json!([]));
    f.ok(op("rados rm", "csi.volume.u1", json!({}))).await;
    f.err(op("rados rm", "csi.volume.u1", json!({})), ENOENT)
        .await;
    f.err(
        op("rados omap get", "csi.volume.u1", json!({"keys": ["x"]})),
        ENOENT,
    )
    .await;
    f.err(
        op("rados omap rm", "csi.volume.u1", json!({"keys": ["x"]})),
        ENOENT,
    )
    .await;
    f.err(
        json!({"prefix": "rados create", "pool": "nopool", "object": "x"}),
        ENOENT,
    )
    .await;
    f.err(op("rados omap set", "x", json!({"vals": {"k": 5}})), EINVAL)
        .await;
    f.err(
        op("rados omap set", "x", json!({"vals": "notamap"})),
        EINVAL,
    )
    .await;
}

#[tokio::test]
async fn osd_caps_guard_objects() {
    let f = Fake::new();
    let key = f
        .user(
            "client.csi",
            &[
                "mon",
                "allow r",
                "osd",
                "allow rw pool=cephfs.cephfs.meta namespace=csi",
            ],
        )
        .await;
    let r = f
        .cmd_as("client.csi", &key, op("rados create", "o", json!({})))
        .await;
    assert_eq!(r.ret, 0, "{r:?}");
    let mut other_ns = op("rados create", "o", json!({}));
    other_ns["namespace"] = json!("nope");
    assert_eq!(f.cmd_as("client.csi", &key, other_ns).await.ret, -EPERM);
    let mut other_pool = op("rados create", "o", json!({}));
    other_pool["pool"] = json!("cephfs.cephfs.data");
    assert_eq!(f.cmd_as("client.csi", &key, other_pool).await.ret, -EPERM);
    let rkey = f
        .user("client.r", &["osd", "allow r tag cephfs metadata=cephfs"])
        .await;
    assert_eq!(
        f.cmd_as(
            "client.r",
            &rkey,
            op("rados omap get", "o", json!({"keys": ["a"]}))
        )
        .await
        .ret,
        0
    );
    assert_eq!(
        f.cmd_as("client.r", &rkey, op("rados rm", "o", json!({})))
            .await
            .ret,
        -EPERM
    );
}

/// `rados ls` is held to OSD caps as the OSD holds a PGLS: listing one namespace needs a
/// grant matching that namespace; listing all (`all`, librados' `LIBRADOS_ALL_NSPACES`)
/// needs a grant that names no namespace (or a wildcard one), and a grant limited by
/// `object_prefix` never lists (issue 14, item 11).
#[tokio::test]
async fn rados_ls_is_held_to_the_namespace_of_the_caps() {
    let f = Fake::new();
    for (ns, obj) in [("csi", "csi.volume.a"), ("other", "secret.b"), ("", "c")] {
        let mut c = op("rados create", obj, json!({}));
        c["namespace"] = json!(ns);
        f.ok(c).await;
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let ls = |ns: &str, all: bool| json!({"prefix": "rados ls", "pool": "cephfs.cephfs.meta", "namespace": ns, "all": all});
    let names = |v: &Value| {
        let mut n: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["namespace"].as_str().unwrap(),
                    o["name"].as_str().unwrap()
                )
            })
            .collect();
        n.sort();
        n
    };
    let check = |caps: &'static str,
                 ns: &'static str,
                 all: bool,
                 expected: Result<&'static [&'static str], i32>| {
        let f = &f;
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            let entity = format!("client.t{n}");
            let key = f.user(&entity, &["mon", "allow r", "osd", caps]).await;
            let r = f.cmd_as(&entity, &key, ls(ns, all)).await;
            match expected {
                Ok(want) => {
                    assert_eq!(r.ret, 0, "{caps} ns={ns} all={all}: {r:?}");
                    let got = names(&serde_json::from_str(&r.outb).unwrap());
                    assert_eq!(got, want, "{caps} ns={ns} all={all}");
                }
                Err(e) => {
                    assert_eq!(r.ret, -e, "{caps} ns={ns} all={all}: {r:?}");
                    assert!(r.outb.is_empty(), "{r:?}");
                }
            }
        }
    };
    let pool = "allow r pool=cephfs.cephfs.meta";
    let csi = "allow rw pool=cephfs.cephfs.meta namespace=csi";
    let csi_prefix = "allow rw pool=cephfs.cephfs.meta namespace=cs*";
    let prefixed = "allow r pool=cephfs.cephfs.meta object_prefix csi.";
    check(csi, "csi", false, Ok(&["csi/csi.volume.a"])).await;
    check(csi, "csi", true, Err(EPERM)).await;
    check(csi, "other", false, Err(EPERM)).await;
    check(csi_prefix, "csi", false, Ok(&["csi/csi.volume.a"])).await;
    check(csi_prefix, "csi", true, Err(EPERM)).await;
    check(
        pool,
        "",
        true,
        Ok(&["/c", "csi/csi.volume.a", "other/secret.b"]),
    )
    .await;
    check(pool, "other", false, Ok(&["other/secret.b"])).await;
    check(prefixed, "csi", false, Err(EPERM)).await;
    check(
        "allow r",
        "",
        true,
        Ok(&["/c", "csi/csi.volume.a", "other/secret.b"]),
    )
    .await;
    // A namespace is never the all-namespaces marker itself.
    let mut marker = op("rados create", "x", json!({}));
    marker["namespace"] = json!("\u{1}");
    f.err(marker, EINVAL).await;
}
