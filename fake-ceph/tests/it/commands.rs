//! Map, auth and framework commands: shapes, errors, caps, bad input.

use axum::http::StatusCode;
use fake_ceph::errno::*;
use serde_json::json;

use crate::support::Fake;

#[tokio::test]
async fn fs_ls_and_dump_describe_the_file_system() {
    let f = Fake::new();
    let ls = f
        .ok_json(json!({"prefix": "fs ls", "format": "json"}))
        .await;
    assert_eq!(ls[0]["name"], "cephfs");
    assert_eq!(ls[0]["metadata_pool"], "cephfs.cephfs.meta");
    assert_eq!(ls[0]["data_pools"][0], "cephfs.cephfs.data");
    assert!(ls[0]["metadata_pool_id"].is_i64());

    let r = f.cmd(json!({"prefix": "fs dump", "format": "json"})).await;
    assert_eq!(r.ret, 0);
    assert!(r.outs.starts_with("dumped fsmap epoch "), "{}", r.outs);
    let dump: serde_json::Value = serde_json::from_str(&r.outb).unwrap();
    let fs = &dump["filesystems"][0];
    assert_eq!(fs["id"], 1);
    assert_eq!(fs["mdsmap"]["fs_name"], "cephfs");
    assert_eq!(fs["mdsmap"]["metadata_pool"], ls[0]["metadata_pool_id"]);

    let v = f.ok_json(json!({"prefix": "fs volume ls"})).await;
    assert_eq!(v, json!([{"name": "cephfs"}]));

    let plain = f.ok(json!({"prefix": "fs ls"})).await;
    assert!(
        plain.starts_with("name: cephfs, metadata pool: cephfs.cephfs.meta"),
        "{plain}"
    );
}

#[tokio::test]
async fn monitors_status_and_health() {
    let f = Fake::new();
    let r = f.cmd(json!({"prefix": "mon dump", "format": "json"})).await;
    let m: serde_json::Value = serde_json::from_str(&r.outb).unwrap();
    assert_eq!(
        m["mons"][0]["public_addrs"]["addrvec"][1]["addr"],
        "127.0.0.1:6789"
    );
    assert_eq!(m["fsid"], f.cluster.fsid());
    let q = f
        .ok_json(json!({"prefix": "quorum_status", "format": "json"}))
        .await;
    assert_eq!(q["quorum_names"], json!(["a"]));
    let h = f
        .ok_json(json!({"prefix": "health", "format": "json"}))
        .await;
    assert_eq!(h["status"], "HEALTH_OK");
    let s = f
        .ok_json(json!({"prefix": "status", "format": "json"}))
        .await;
    assert_eq!(s["health"]["status"], "HEALTH_OK");
    assert_eq!(s["fsmap"]["up"], 1);
    assert_eq!(f.ok(json!({"prefix": "health"})).await, "HEALTH_OK\n");
    let pools = f
        .ok_json(json!({"prefix": "osd pool ls", "format": "json"}))
        .await;
    assert!(
        pools
            .as_array()
            .unwrap()
            .contains(&json!("cephfs.cephfs.meta"))
    );
    let df = f.ok_json(json!({"prefix": "df", "format": "json"})).await;
    assert!(df["stats"]["total_bytes"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn unknown_missing_and_malformed_commands_get_einval() {
    let f = Fake::new();
    // As mon_command: the monitor does not know it; as mgr_command: no module has it.
    assert_eq!(
        f.err(json!({"prefix": "fs frobnicate"}), EINVAL).await,
        "command not known"
    );
    let r = f.mgr(json!({"prefix": "fs frobnicate"})).await;
    assert_eq!(
        (r.ret, r.outs.as_str()),
        (-EINVAL, "No handler found for 'fs frobnicate'")
    );
    // A mon command is not the mgr's.
    let r = f.mgr(json!({"prefix": "fs ls", "format": "json"})).await;
    assert_eq!(
        (r.ret, r.outs.as_str()),
        (-EINVAL, "No handler found for 'fs ls'")
    );
    let r = f.mgr(json!({})).await;
    assert_eq!(
        (r.ret, r.outs.as_str()),
        (-EINVAL, "No handler found for ''")
    );
    // A mgr command reaches the module either way.
    assert_eq!(f.mgr(json!({"prefix": "fs volume ls"})).await.ret, 0);
    f.err(json!({"format": "json"}), EINVAL).await;
    f.err(json!({"prefix": 5}), EINVAL).await;
    let missing = f
        .err(
            json!({"prefix": "fs subvolume create", "vol_name": "cephfs"}),
            EINVAL,
        )
        .await;
    assert!(missing.contains("sub_name"), "{missing}");
    let wrong = f
        .err(
            json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "sub_name": "x", "size": "abc"}),
            EINVAL,
        )
        .await;
    assert!(wrong.contains("size"), "{wrong}");
    // Extra arguments are ignored, as Ceph ignores them.
    f.ok(json!({"prefix": "fs ls", "format": "json", "bogus": [1, 2]}))
        .await;
    let key = f.admin_key.clone();
    for body in ["{", "", "[]", "null", "\"fs ls\"", "{\"prefix\": {}}"] {
        let (status, v) = f
            .http(
                "POST",
                "/request",
                Some(("client.admin", &key)),
                body.to_owned(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(v["ret"], -EINVAL, "{body}: {v}");
    }
}

#[tokio::test]
async fn authentication_is_required() {
    let f = Fake::new();
    let body = json!({"prefix": "fs ls"}).to_string();
    let (status, v) = f.http("POST", "/request", None, body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["message"], "auth: No HTTP username/password");
    let (status, v) = f
        .http(
            "POST",
            "/request",
            Some(("client.nobody", "AQ==")),
            body.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["message"], "auth: No such user");
    let (status, v) = f
        .http(
            "POST",
            "/request",
            Some(("client.admin", "AQAz7EVWygILFRAAdIcuJ12opU/JKyfFmxhuaw==")),
            body.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["message"], "auth: Incorrect password");
    let (status, _) = f
        .http(
            "POST",
            "/tell/mds.a",
            None,
            json!({"prefix": "session ls"}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn caps_are_enforced_per_service() {
    let f = Fake::new();
    let key = f
        .user("client.ro", &["mon", "allow r", "mgr", "allow r"])
        .await;
    let as_ro = |cmd| f.cmd_as("client.ro", &key, cmd);
    assert_eq!(
        as_ro(json!({"prefix": "fs ls", "format": "json"}))
            .await
            .ret,
        0
    );
    assert_eq!(as_ro(json!({"prefix": "fs volume ls"})).await.ret, 0);
    let denied =
        as_ro(json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "sub_name": "x"}))
            .await;
    assert_eq!(denied.ret, -EACCES);
    assert_eq!(denied.outs, "access denied");
    let denied = as_ro(json!({"prefix": "auth get-or-create", "entity": "client.y"})).await;
    assert_eq!(denied.ret, -EACCES);
    // No mds `allow *`: MDS commands are refused.
    let (_, v) = f
        .http(
            "POST",
            "/tell/mds.a",
            Some(("client.ro", &key)),
            json!({"prefix": "session ls"}).to_string(),
        )
        .await;
    assert_eq!(v["ret"], -EACCES);
    // A user with no mgr caps cannot reach the volumes module at all.
    let key2 = f.user("client.monly", &["mon", "allow r"]).await;
    let r = f
        .cmd_as(
            "client.monly",
            &key2,
            json!({"prefix": "fs subvolume ls", "vol_name": "cephfs"}),
        )
        .await;
    assert_eq!(r.ret, -EACCES);
    // `allow command` grants exactly that command.
    let key3 = f
        .user("client.cmd", &["mon", "allow command \"auth get\""])
        .await;
    let r = f
        .cmd_as(
            "client.cmd",
            &key3,
            json!({"prefix": "auth get", "entity": "client.ro", "format": "json"}),
        )
        .await;
    assert_eq!(r.ret, 0, "{r:?}");
    let r = f
        .cmd_as(
            "client.cmd",
            &key3,
            json!({"prefix": "auth rm", "entity": "client.ro"}),
        )
        .await;
    assert_eq!(r.ret, -EACCES);
}

#[tokio::test]
async fn auth_lifecycle() {
    let f = Fake::new();
    let caps = [
        "mon",
        "allow r",
        "mds",
        "allow rw path=/volumes/csi",
        "osd",
        "allow rw pool=cephfs.cephfs.data",
    ];
    let created = f
        .ok_json(json!({"prefix": "auth get-or-create", "entity": "client.a", "caps": caps, "format": "json"}))
        .await;
    assert_eq!(created[0]["entity"], "client.a");
    let key = created[0]["key"].as_str().unwrap();
    assert_eq!(key.len(), 40);
    assert!(key.starts_with("AQ") && key.ends_with("=="), "{key}");
    assert_eq!(created[0]["caps"]["mds"], "allow rw path=/volumes/csi");
    // Idempotent with the same caps.
    let again = f
        .ok_json(json!({"prefix": "auth get-or-create", "entity": "client.a", "caps": caps, "format": "json"}))
        .await;
    assert_eq!(again, created);
    // Different caps: refused, nothing changed.
    let msg = f
        .err(json!({"prefix": "auth get-or-create", "entity": "client.a", "caps": ["mon", "allow *"]}), EINVAL)
        .await;
    assert!(msg.contains("does not match"), "{msg}");
    let got = f
        .ok_json(json!({"prefix": "auth get", "entity": "client.a", "format": "json"}))
        .await;
    assert_eq!(got, created);
    let k = f
        .ok_json(json!({"prefix": "auth get-key", "entity": "client.a", "format": "json"}))
        .await;
    assert_eq!(k["key"], key);
    assert_eq!(
        f.ok(json!({"prefix": "auth get-key", "entity": "client.a"}))
            .await,
        key
    );
    let plain = f
        .ok(json!({"prefix": "auth get", "entity": "client.a"}))
        .await;
    assert!(
        plain.starts_with(&format!("[client.a]\n\tkey = {key}\n")),
        "{plain}"
    );
    f.ok(json!({"prefix": "auth caps", "entity": "client.a", "caps": ["mon", "allow rw"]}))
        .await;
    let got = f
        .ok_json(json!({"prefix": "auth get", "entity": "client.a", "format": "json"}))
        .await;
    assert_eq!(got[0]["caps"], json!({"mon": "allow rw"}));
    let ls = f
        .ok_json(json!({"prefix": "auth ls", "format": "json"}))
        .await;
    let names: Vec<&str> = ls["auth_dump"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entity"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"client.admin") && names.contains(&"client.a"),
        "{names:?}"
    );
    f.ok(json!({"prefix": "auth rm", "entity": "client.a"}))
        .await;
    f.err(json!({"prefix": "auth get", "entity": "client.a"}), ENOENT)
        .await;
    f.err(
        json!({"prefix": "auth caps", "entity": "client.a", "caps": ["mon", "allow r"]}),
        ENOENT,
    )
    .await;
    // Bad entity names and bad caps are EINVAL and create nothing.
    f.err(
        json!({"prefix": "auth get-or-create", "entity": "nodot"}),
        EINVAL,
    )
    .await;
    let m = f
        .err(json!({"prefix": "auth get-or-create", "entity": "client.b", "caps": ["mds", "allow foo"]}), EINVAL)
        .await;
    assert!(m.contains("parse failed"), "{m}");
    f.err(
        json!({"prefix": "auth get-or-create", "entity": "client.b", "caps": ["mds"]}),
        EINVAL,
    )
    .await;
    f.err(json!({"prefix": "auth get", "entity": "client.b"}), ENOENT)
        .await;
}

#[tokio::test]
async fn fs_authorize_creates_path_restricted_caps() {
    let f = Fake::new();
    let v = f
        .ok_json(json!({"prefix": "fs authorize", "filesystem": "cephfs", "entity": "client.foo", "caps": ["/bar", "rw"], "format": "json"}))
        .await;
    assert_eq!(v[0]["caps"]["mds"], "allow rw fsname=cephfs path=/bar");
    assert_eq!(v[0]["caps"]["osd"], "allow rw tag cephfs data=cephfs");
    assert_eq!(v[0]["caps"]["mon"], "allow r fsname=cephfs");
    f.err(json!({"prefix": "fs authorize", "filesystem": "nope", "entity": "client.x", "caps": ["/", "rw"]}), EINVAL)
        .await;
    f.err(json!({"prefix": "fs authorize", "filesystem": "cephfs", "entity": "client.foo", "caps": ["/other", "rw"]}), EINVAL)
        .await;
}

#[tokio::test]
async fn index_and_metrics() {
    let f = Fake::new();
    let (status, v) = f.http("GET", "/", None, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["fs_name"], "cephfs");
    f.ok(json!({"prefix": "fs ls"})).await;
    f.cmd(json!({"prefix": "nope"})).await;
    let (status, text) = f.http("GET", "/metrics", None, "").await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap().to_owned();
    assert!(
        text.contains("fake_ceph_commands_total{prefix=\"fs ls\",ret=\"0\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("fake_ceph_commands_total{prefix=\"unknown\",ret=\"-22\"} 1"),
        "{text}"
    );
    assert!(text.contains("fake_ceph_mds_sessions"), "{text}");
    assert!(!text.contains(&f.admin_key));
}

#[tokio::test]
async fn secrets_stay_out_of_debug_metrics_errors_and_files() {
    let f = Fake::new();
    let path = f.subvolume("s", Some(1 << 20)).await;
    let alice = f
        .ok(crate::support::sv(
            "fs subvolume authorize",
            "s",
            json!({"auth_id": "alice", "tenant_id": "t", "access_level": "rw"}),
        ))
        .await
        .trim()
        .to_owned();
    let bob = f.user("client.bob", &["mon", "allow r"]).await;
    let m = f
        .cluster
        .mount(
            "client.alice",
            &alice,
            fake_ceph::MountRequest {
                root: path,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    m.write_file("f", b"data").await.unwrap();
    // Failures with wrong keys, bad caps and bad bodies say nothing about keys.
    let mut texts = vec![
        format!("{:?}", f.cluster),
        format!("{:?}", f.cluster.admin()),
        format!("{m:?}"),
        f.cluster.metrics_text(),
    ];
    for cmd in [
        json!({"prefix": "auth get-or-create", "entity": "client.bob", "caps": ["mon", "allow *"]}),
        json!({"prefix": "auth caps", "entity": "client.bob", "caps": ["mon", "allow foo"]}),
        json!({"prefix": "fs subvolume authorize", "vol_name": "cephfs", "group_name": "csi", "sub_name": "s", "auth_id": "alice", "tenant_id": "other"}),
    ] {
        texts.push(f.cmd(cmd).await.outs);
    }
    let e = f
        .cluster
        .mount("client.bob", &alice, fake_ceph::MountRequest::default())
        .await
        .unwrap_err();
    texts.push(e.to_string());
    let (_, v) = f
        .http("POST", "/request", Some(("client.bob", &alice)), "{}")
        .await;
    texts.push(v.to_string());
    for t in &texts {
        for key in [&f.admin_key, &alice, &bob] {
            assert!(!t.contains(key.as_str()), "a key leaked into: {t}");
        }
    }
    // Nothing under the data dir holds a key.
    let mut stack = vec![f.cluster.data_dir().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                let text = String::from_utf8_lossy(&bytes);
                for key in [&f.admin_key, &alice, &bob] {
                    assert!(!text.contains(key.as_str()), "{} holds a key", p.display());
                }
            }
        }
    }
}
