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
