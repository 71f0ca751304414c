//! MDS sessions: mounts, caps, quotas, statfs, eviction, counters, the HTTP routes.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use fake_ceph::errno::*;
use fake_ceph::{Faults, MountRequest, Op};
use serde_json::{Value, json};

use crate::support::{Fake, sv};

fn req(root: &str, host: &str) -> MountRequest {
    let mut md = BTreeMap::new();
    md.insert("hostname".to_owned(), host.to_owned());
    md.insert("mount_point".to_owned(), format!("/var/lib/kubelet/{host}"));
    MountRequest {
        fs_name: Some("cephfs".into()),
        root: root.into(),
        client_metadata: md,
    }
}

async fn restricted_user(f: &Fake, path: &str) -> String {
    f.user(
        "client.vol1",
        &[
            "mds",
            &format!("allow rw path={path}"),
            "mon",
            "allow r",
            "osd",
            "allow rw pool=cephfs.cephfs.data",
        ],
    )
    .await
}

#[tokio::test]
async fn a_mount_is_a_session_confined_by_path_caps() {
    let f = Fake::new();
    let path = f.subvolume("v", Some(1 << 20)).await;
    let key = restricted_user(&f, &path).await;
    let m = f
        .cluster
        .mount("client.vol1", &key, req(&path, "node-1"))
        .await
        .unwrap();
    assert_eq!(m.root(), path);
    assert_eq!(
        m.local_root(),
        f.cluster
            .fs_root("cephfs")
            .join(path.trim_start_matches('/'))
    );
    // Outside the grant: EPERM "non-allowable root", as the MDS rejects it.
    for root in ["/", "/volumes", "/volumes/csi", &format!("{path}x")] {
        let e = f
            .cluster
            .mount("client.vol1", &key, req(root, "node-1"))
            .await
            .unwrap_err();
        assert_eq!(e.errno, EPERM, "{root}");
        assert!(e.msg.contains("non-allowable root"), "{e}");
    }
    // A subdirectory of the grant is fine once it exists.
    m.mkdir("sub").await.unwrap();
    f.cluster
        .mount("client.vol1", &key, req(&format!("{path}/sub"), "node-1"))
        .await
        .unwrap();
    let e = f
        .cluster
        .mount("client.vol1", &key, req(&format!("{path}/nope"), "n"))
        .await
        .unwrap_err();
    assert_eq!(e.errno, ENOENT);
    // Wrong key or unknown entity.
    let e = f
        .cluster
        .mount("client.vol1", &f.admin_key, req(&path, "n"))
        .await
        .unwrap_err();
    assert_eq!(e.errno, EACCES);
    // Paths cannot climb out of the mount.
    for bad in ["..", "../..", "sub/../../x", "../../../../../../etc/passwd"] {
        let e = m.op(Op::Stat { path: bad.into() }).await.unwrap_err();
        assert_eq!(e.errno, EACCES, "{bad}");
    }
}

#[tokio::test]
async fn read_only_caps_refuse_writes() {
    let f = Fake::new();
    let path = f.subvolume("ro", None).await;
    let key = f
        .user(
            "client.reader",
            &["mds", &format!("allow r path={path}"), "mon", "allow r"],
        )
        .await;
    let m = f
        .cluster
        .mount("client.reader", &key, req(&path, "n"))
        .await
        .unwrap();
    assert_eq!(m.mkdir("d").await.unwrap_err().errno, EACCES);
    assert_eq!(m.write_file("f", b"x").await.unwrap_err().errno, EACCES);
    assert!(m.stat("").await.unwrap().is_dir);
}

#[tokio::test]
async fn quota_statfs_and_files() {
    let f = Fake::new();
    let path = f.subvolume("q", Some(1 << 20)).await;
    let key = restricted_user(&f, &path).await;
    let m = f
        .cluster
        .mount("client.vol1", &key, req(&path, "n"))
        .await
        .unwrap();
    let s = m.statfs().await.unwrap();
    assert_eq!(
        (s.total_bytes, s.used_bytes, s.free_bytes),
        (1 << 20, 0, 1 << 20)
    );
    m.mkdir("a/b").await.unwrap();
    m.write_file("a/b/f", &[1u8; 1000]).await.unwrap();
    assert_eq!(m.read_file("a/b/f").await.unwrap(), vec![1u8; 1000]);
    let s = m.statfs().await.unwrap();
    assert_eq!(s.used_bytes, 1000);
    // Past the quota: EDQUOT, and nothing is written.
    let e = m
        .op(Op::Write {
            path: "big".into(),
            offset: 0,
            len: 2 << 20,
            data: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.errno, EDQUOT);
    assert_eq!(m.stat("big").await.unwrap_err().errno, ENOENT);
    // Sparse growth within the quota counts logical bytes, as rbytes does.
    m.op(Op::Write {
        path: "sparse".into(),
        offset: 0,
        len: 500_000,
        data: None,
    })
    .await
    .unwrap();
    assert_eq!(m.statfs().await.unwrap().used_bytes, 501_000);
    let info = f.ok_json(sv("fs subvolume info", "q", json!({}))).await;
    assert_eq!(info["bytes_used"], 501_000);
    m.op(Op::Unlink {
        path: "sparse".into(),
    })
    .await
    .unwrap();
    assert_eq!(m.statfs().await.unwrap().used_bytes, 1000);
    // Resizing takes effect on statfs at once.
    f.ok(sv(
        "fs subvolume resize",
        "q",
        json!({"new_size": "2097152"}),
    ))
    .await;
    assert_eq!(m.statfs().await.unwrap().total_bytes, 2 << 20);
    let entries = m.op(Op::Readdir { path: "a".into() }).await.unwrap();
    assert_eq!(serde_json::to_value(entries).unwrap(), json!(["b"]));
    let x = m
        .op(Op::Getxattr {
            path: "".into(),
            name: "ceph.quota.max_bytes".into(),
        })
        .await
        .unwrap();
    assert_eq!(serde_json::to_value(x).unwrap(), json!("2097152"));
    m.op(Op::Rename {
        from: "a/b/f".into(),
        to: "g".into(),
    })
    .await
    .unwrap();
    m.op(Op::Rmdir { path: "a/b".into() }).await.unwrap();
    assert_eq!(
        m.op(Op::Rmdir { path: "".into() }).await.unwrap_err().errno,
        EBUSY
    );
    // Without a quota, statfs reports the cluster.
    f.ok(sv(
        "fs subvolume resize",
        "q",
        json!({"new_size": "infinite"}),
    ))
    .await;
    assert_eq!(
        m.statfs().await.unwrap().total_bytes,
        f.cluster.config().capacity_bytes
    );
}

#[tokio::test]
async fn sessions_are_listed_counted_and_evicted() {
    let f = Fake::new();
    let path = f.subvolume("e", None).await;
    let key = restricted_user(&f, &path).await;
    let m1 = f
        .cluster
        .mount("client.vol1", &key, req(&path, "node-1"))
        .await
        .unwrap();
    let m2 = f
        .cluster
        .mount("client.vol1", &key, req(&path, "node-2"))
        .await
        .unwrap();
    let ls: Value = serde_json::from_str(
        &f.tell(json!({"prefix": "session ls", "format": "json"}))
            .await
            .outb,
    )
    .unwrap();
    let ls = ls.as_array().unwrap();
    assert_eq!(ls.len(), 2);
    let s = &ls[0];
    assert_eq!(s["id"], m1.id());
    assert_eq!(s["state"], "open");
    assert_eq!(s["entity"]["name"]["type"], "client");
    assert_eq!(s["client_metadata"]["root"], path);
    assert_eq!(s["client_metadata"]["entity_id"], "vol1");
    assert_eq!(s["client_metadata"]["hostname"], "node-1");
    assert!(
        s["inst"]
            .as_str()
            .unwrap()
            .starts_with(&format!("client.{} ", m1.id()))
    );
    let perf = f.cluster.perf_dump();
    assert_eq!(perf["mds_sessions"]["session_count"], 2);
    let hcr0 = perf["mds_server"]["handle_client_request"]
        .as_u64()
        .unwrap();
    m1.mkdir("d").await.unwrap();
    m1.stat("d").await.unwrap();
    let hcr1 = f.cluster.perf_dump()["mds_server"]["handle_client_request"]
        .as_u64()
        .unwrap();
    assert_eq!(hcr1, hcr0 + 2);
    // Filters.
    let one = f
        .tell(json!({"prefix": "session ls", "filters": [format!("id={}", m2.id())], "format": "json"}))
        .await;
    let one: Value = serde_json::from_str(&one.outb).unwrap();
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["client_metadata"]["hostname"], "node-2");
    let by_host = f
        .tell(json!({"prefix": "client ls", "filters": ["client_metadata.hostname=node-1"], "format": "json"}))
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&by_host.outb)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        f.tell(json!({"prefix": "session ls", "filters": ["bogus"]}))
            .await
            .ret,
        -EINVAL
    );
    // Evict m1: its operations fail, m2 goes on.
    let r = f
        .tell(json!({"prefix": "client evict", "filters": [format!("id={}", m1.id())]}))
        .await;
    assert_eq!(r.ret, 0, "{r:?}");
    assert!(!m1.is_open());
    // ceph-fuse, blocklisted, answers ESHUTDOWN (as real ceph-fuse 16.2 does).
    assert_eq!(m1.stat("d").await.unwrap_err().errno, ESHUTDOWN);
    m2.stat("d").await.unwrap();
    assert_eq!(f.cluster.perf_dump()["mds_sessions"]["session_count"], 1);
    // `[entries][ranges]`, as Ceph 16.2 prints it.
    let r = f
        .cmd(json!({"prefix": "osd blocklist ls", "format": "json"}))
        .await;
    assert_eq!(r.outs, "listed 1 entries");
    let entries = r.outb.strip_suffix("[]").unwrap();
    let bl: Value = serde_json::from_str(entries).unwrap();
    assert_eq!(bl.as_array().unwrap().len(), 1);
    assert!(bl[0]["addr"].as_str().unwrap().starts_with("127.0.0.1:0/"));
    // A kernel client sees EACCES after eviction.
    let mut kreq = req(&path, "node-3");
    kreq.client_metadata
        .insert("kernel_version".into(), "6.1.0".into());
    let k = f.cluster.mount("client.vol1", &key, kreq).await.unwrap();
    assert_eq!(f.cluster.evict_all(), 2);
    assert_eq!(k.stat("").await.unwrap_err().errno, EACCES);
    assert_eq!(f.cluster.session_count(), 0);
    // Unmount is idempotent and counted.
    let m3 = f
        .cluster
        .mount("client.vol1", &key, req(&path, "node-4"))
        .await
        .unwrap();
    m3.unmount();
    m3.unmount();
    assert_eq!(f.cluster.session_count(), 0);
    assert_eq!(m3.stat("").await.unwrap_err().errno, ENOTCONN);
    let perf = f.cluster.perf_dump();
    assert_eq!(perf["mds_sessions"]["session_add"], 4);
    assert_eq!(perf["mds_sessions"]["session_remove"], 4);
}

#[tokio::test]
async fn perf_dump_over_tell() {
    let f = Fake::new();
    let r = f
        .tell(json!({"prefix": "perf dump", "format": "json"}))
        .await;
    let v: Value = serde_json::from_str(&r.outb).unwrap();
    for (section, key) in [
        ("mds_server", "handle_client_request"),
        ("mds_sessions", "session_count"),
        ("mds", "request"),
        ("mds_mem", "rss"),
    ] {
        assert!(v[section][key].is_u64(), "{section}.{key} in {v}");
    }
    let r = f
        .tell(json!({"prefix": "perf dump", "logger": "mds_sessions", "format": "json"}))
        .await;
    let v: Value = serde_json::from_str(&r.outb).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 1);
    let key = f.admin_key.clone();
    let (_, v) = f
        .http(
            "POST",
            "/tell/mds.nope",
            Some(("client.admin", &key)),
            json!({"prefix": "perf dump"}).to_string(),
        )
        .await;
    assert_eq!(v["ret"], -ENOENT);
    let (_, v) = f
        .http(
            "POST",
            "/tell/osd.0",
            Some(("client.admin", &key)),
            json!({"prefix": "perf dump"}).to_string(),
        )
        .await;
    assert_eq!(v["ret"], -EINVAL);
}

#[tokio::test]
async fn mds_down_fails_new_sessions_and_operations() {
    let f = Fake::new();
    let path = f.subvolume("d", None).await;
    let m = f
        .cluster
        .mount("client.admin", &f.admin_key, req(&path, "n"))
        .await
        .unwrap();
    f.cluster.set_faults(Faults {
        rules: vec![],
        mds_down: true,
    });
    assert_eq!(
        f.cluster
            .mount("client.admin", &f.admin_key, req(&path, "n"))
            .await
            .unwrap_err()
            .errno,
        ETIMEDOUT
    );
    assert_eq!(m.stat("").await.unwrap_err().errno, ETIMEDOUT);
    f.err(sv("fs subvolume getpath", "d", json!({})), ETIMEDOUT)
        .await;
    let h = f
        .ok_json(json!({"prefix": "health", "format": "json"}))
        .await;
    assert_eq!(h["status"], "HEALTH_ERR");
    assert!(h["checks"]["MDS_ALL_DOWN"].is_object());
    f.cluster.set_faults(Faults::default());
    m.stat("").await.unwrap();
}

#[tokio::test]
async fn sessions_over_http() {
    let f = Fake::new();
    let path = f.subvolume("h", None).await;
    let key = restricted_user(&f, &path).await;
    let creds = Some(("client.vol1", key.as_str()));
    let body = json!({"root": path, "client_metadata": {"hostname": "n1"}}).to_string();
    let (status, v) = f.http("POST", "/mds/sessions", creds, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["ret"], 0, "{v}");
    let id = v["id"].as_u64().unwrap();
    assert!(std::path::Path::new(v["local_path"].as_str().unwrap()).is_dir());
    let ops = json!({"ops": [
        {"op": "mkdir", "path": "x"},
        {"op": "write", "path": "x/f", "data": "aGVsbG8="},
        {"op": "stat", "path": "x/f"},
        {"op": "stat", "path": "missing"},
        {"op": "statfs"},
    ]});
    let (_, v) = f
        .http(
            "POST",
            &format!("/mds/sessions/{id}/ops"),
            creds,
            ops.to_string(),
        )
        .await;
    let r = v["results"].as_array().unwrap();
    assert_eq!(r[0]["ret"], 0);
    assert_eq!(r[2]["output"]["size"], 5);
    assert_eq!(r[3]["ret"], -ENOENT);
    assert!(r[4]["output"]["total_bytes"].is_u64());
    let (_, v) = f
        .http("GET", &format!("/mds/sessions/{id}"), creds, "")
        .await;
    assert_eq!(v["session"]["client_metadata"]["hostname"], "n1");
    // Another entity cannot use the session.
    let other = f
        .user(
            "client.other",
            &["mds", "allow rw path=/volumes/other", "mon", "allow r"],
        )
        .await;
    let (_, v) = f
        .http(
            "GET",
            &format!("/mds/sessions/{id}"),
            Some(("client.other", &other)),
            "",
        )
        .await;
    assert_eq!(v["ret"], -EACCES);
    // Bad input never panics.
    for bad in ["{", "{\"ops\": 5}", "{\"ops\": [{\"op\": \"fly\"}]}"] {
        let (status, v) = f
            .http(
                "POST",
                &format!("/mds/sessions/{id}/ops"),
                creds,
                bad.to_owned(),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["ret"], -EINVAL, "{bad}");
    }
    let (_, v) = f
        .http("POST", "/mds/sessions", creds, "nope".to_owned())
        .await;
    assert_eq!(v["ret"], -EINVAL);
    let (_, v) = f
        .http(
            "POST",
            "/mds/sessions",
            creds,
            json!({"root": "/"}).to_string(),
        )
        .await;
    assert_eq!(v["ret"], -EPERM);
    let (_, v) = f
        .http("DELETE", &format!("/mds/sessions/{id}"), creds, "")
        .await;
    assert_eq!(v["ret"], 0);
    let (_, v) = f
        .http("DELETE", &format!("/mds/sessions/{id}"), creds, "")
        .await;
    assert_eq!(v["ret"], 0, "closing twice is fine");
    assert_eq!(f.cluster.session_count(), 0);
}

/// Sends a request with `X-Session-Token` (and no Basic credentials); status and JSON.
async fn http_token(
    f: &Fake,
    method: &str,
    uri: &str,
    token: &str,
    body: String,
) -> (StatusCode, Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let req = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("X-Session-Token", token)
        .body(axum::body::Body::from(body))
        .unwrap();
    let resp = f.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, v)
}

#[tokio::test]
async fn session_tokens_replace_the_key_for_an_open_session() {
    let f = Fake::new();
    let path = f.subvolume("t", Some(1 << 20)).await;
    let key = restricted_user(&f, &path).await;
    let creds = Some(("client.vol1", key.as_str()));
    let body = json!({"fs_name": "cephfs", "root": path,
        "client_metadata": {"hostname": "n1", "mount_point": "/staging/t"}})
    .to_string();
    let (status, v) = f.http("POST", "/mds/sessions", creds, body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["ret"], 0, "{v}");
    let id = v["id"].as_u64().unwrap();
    let token = v["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 32, "{token}");
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
    // Each session has its own token; the library hands out the same one.
    let (_, v2) = f.http("POST", "/mds/sessions", creds, body).await;
    let id2 = v2["id"].as_u64().unwrap();
    let token2 = v2["token"].as_str().unwrap().to_owned();
    assert_ne!(token, token2);
    let m = f.cluster.session(id).unwrap();
    assert_eq!(m.token(), token);
    assert!(m.token_matches(&token));
    assert!(!m.token_matches(&token2));

    // Show and run operations with the token alone.
    let (status, v) =
        http_token(&f, "GET", &format!("/mds/sessions/{id}"), &token, "".into()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["ret"], 0, "{v}");
    assert_eq!(v["session"]["client_metadata"]["mount_point"], "/staging/t");
    let ops = json!({"ops": [{"op": "write", "path": "f", "data": "aGVsbG8="}, {"op": "statfs"}]});
    let (status, v) = http_token(
        &f,
        "POST",
        &format!("/mds/sessions/{id}/ops"),
        &token,
        ops.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let r = v["results"].as_array().unwrap();
    assert_eq!(r[0]["ret"], 0, "{v}");
    assert_eq!(r[1]["output"]["total_bytes"], 1 << 20);
    assert_eq!(r[1]["output"]["used_bytes"], 5);

    // A wrong token is refused as a bad key is: another session's, a mangled one, an
    // empty one, a non-ASCII one. Nothing happens to the session.
    let mut mangled = token.clone().into_bytes();
    mangled[31] = if mangled[31] == b'0' { b'1' } else { b'0' };
    let mangled = String::from_utf8(mangled).unwrap();
    for bad in [token2.as_str(), mangled.as_str(), "", "x", &token[..31]] {
        for (method, uri) in [
            ("GET", format!("/mds/sessions/{id}")),
            ("DELETE", format!("/mds/sessions/{id}")),
            ("POST", format!("/mds/sessions/{id}/ops")),
        ] {
            let (status, v) = http_token(&f, method, &uri, bad, ops.to_string()).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {uri} {bad:?}: {v}"
            );
        }
    }
    let req = axum::http::Request::builder()
        .method("GET")
        .uri(format!("/mds/sessions/{id}"))
        .header("X-Session-Token", &b"\xff\xfe"[..])
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(f.app.clone(), req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(f.cluster.session(id).unwrap().is_open());
    assert_eq!(f.cluster.session_count(), 2);

    // The token is nowhere in `session ls`, in Debug output, or in perf counters.
    let ls = f
        .tell(json!({"prefix": "session ls", "format": "json"}))
        .await;
    assert_eq!(ls.ret, 0);
    let plain = f.tell(json!({"prefix": "session ls"})).await;
    let (_, shown) = f
        .http("GET", &format!("/mds/sessions/{id}"), creds, "")
        .await;
    let debug = format!("{m:?}");
    for text in [
        ls.outb.as_str(),
        plain.outb.as_str(),
        &shown.to_string(),
        &debug,
        &f.cluster.perf_dump().to_string(),
        &f.cluster.metrics_text(),
    ] {
        assert!(!text.contains(&token), "token leaked: {text}");
        assert!(!text.contains(&token2), "token leaked: {text}");
    }
    assert!(debug.contains("<redacted>"), "{debug}");

    // Close with the token alone; again is fine (the session is gone: nothing to check
    // the token against, so it answers as Basic does).
    let (status, v) = http_token(
        &f,
        "DELETE",
        &format!("/mds/sessions/{id}"),
        &token,
        "".into(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["ret"], 0, "{v}");
    assert!(!m.is_open());
    assert_eq!(f.cluster.session_count(), 1);
    let (_, v) = http_token(
        &f,
        "DELETE",
        &format!("/mds/sessions/{id}"),
        &token,
        "".into(),
    )
    .await;
    assert_eq!(v["ret"], 0, "closing twice is fine: {v}");
    let (_, v) = http_token(&f, "GET", &format!("/mds/sessions/{id}"), &token, "".into()).await;
    assert_eq!(v["ret"], -ENOTCONN, "{v}");
    let (_, v) = http_token(
        &f,
        "POST",
        &format!("/mds/sessions/{id}/ops"),
        &token,
        ops.to_string(),
    )
    .await;
    assert_eq!(v["ret"], -ENOTCONN, "{v}");

    // An evicted session answers ENOTCONN to its token too (how a mounter notices).
    f.cluster.evict_all();
    let (_, v) = http_token(
        &f,
        "GET",
        &format!("/mds/sessions/{id2}"),
        &token2,
        "".into(),
    )
    .await;
    assert_eq!(v["ret"], -ENOTCONN, "{v}");

    // Without any credential it is still 401.
    let (status, _) = f
        .http("GET", &format!("/mds/sessions/{id2}"), None, "")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn session_tokens_follow_the_seed() {
    let open = || async {
        let f = Fake::new();
        let path = f.subvolume("s", None).await;
        let m = f
            .cluster
            .mount("client.admin", &f.admin_key, req(&path, "n"))
            .await
            .unwrap();
        m.token().to_owned()
    };
    assert_eq!(open().await, open().await);
}

/// One read returns at most `fake_ceph::mds::MAX_READ_BYTES` (issue 14, item 8: a read of
/// 2^64-1 bytes buffered a whole 512 MiB file), and the reads of one request share a
/// budget of `MAX_REQUEST_READ_BYTES`; the file is still read whole by reading on.
#[tokio::test]
async fn reads_are_bounded_per_operation_and_per_request() {
    use fake_ceph::mds::{MAX_READ_BYTES, MAX_REQUEST_READ_BYTES};
    let f = Fake::new();
    let path = f.subvolume("big", None).await;
    let m = f
        .cluster
        .mount("client.admin", &f.admin_key, req(&path, "n"))
        .await
        .unwrap();
    let size = 3 * MAX_READ_BYTES + 5;
    m.op(Op::Write {
        path: "sparse".into(),
        offset: 0,
        len: size,
        data: None,
    })
    .await
    .unwrap();
    m.op(Op::Write {
        path: "sparse".into(),
        offset: size - 3,
        len: 0,
        data: Some(B64.encode(b"end")),
    })
    .await
    .unwrap();
    let read = |offset: u64, len: u64| Op::Read {
        path: "sparse".into(),
        offset,
        len,
    };
    let data = |r: Result<fake_ceph::OpOutput, fake_ceph::CephError>| match r.unwrap() {
        fake_ceph::OpOutput::Data(d) => B64.decode(d).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        data(m.op(read(0, u64::MAX)).await).len() as u64,
        MAX_READ_BYTES
    );
    // Short at the end of the file, empty past it.
    assert_eq!(data(m.op(read(size - 3, u64::MAX)).await), b"end");
    assert!(data(m.op(read(size + 10, 10)).await).is_empty());
    // One request: reads share the budget; once it is spent, EAGAIN.
    let n = MAX_REQUEST_READ_BYTES / MAX_READ_BYTES + 1;
    let results = m.run((0..n).map(|_| read(0, u64::MAX)).collect()).await;
    let mut total = 0;
    for r in &results[..results.len() - 1] {
        total += data(r.clone()).len() as u64;
    }
    assert_eq!(total, MAX_REQUEST_READ_BYTES);
    assert_eq!(results.last().unwrap().as_ref().unwrap_err().errno, EAGAIN);
    // read_file reads on to the end.
    let whole = m.read_file("sparse").await.unwrap();
    assert_eq!(whole.len() as u64, size);
    assert_eq!(&whole[whole.len() - 3..], b"end");
}

/// Sizes a client sends are held to the file system's `max_file_size` (1 TiB, as
/// `fs get` shows): EFBIG beyond, as the MDS answers.
#[tokio::test]
async fn file_sizes_are_held_to_max_file_size() {
    let f = Fake::new();
    let path = f.subvolume("sizes", None).await;
    let m = f
        .cluster
        .mount("client.admin", &f.admin_key, req(&path, "n"))
        .await
        .unwrap();
    let max = 1u64 << 40;
    let grow = |offset: u64, len: u64| Op::Write {
        path: "f".into(),
        offset,
        len,
        data: None,
    };
    assert_eq!(m.op(grow(max, 1)).await.unwrap_err().errno, EFBIG);
    assert_eq!(m.op(grow(u64::MAX - 1, 5)).await.unwrap_err().errno, EFBIG);
    let e = m
        .op(Op::Write {
            path: "f".into(),
            offset: max - 1,
            len: 0,
            data: Some(B64.encode(b"xy")),
        })
        .await
        .unwrap_err();
    assert_eq!(e.errno, EFBIG);
    m.op(grow(0, 10)).await.unwrap();
    let e = m
        .op(Op::Truncate {
            path: "f".into(),
            size: max + 1,
        })
        .await
        .unwrap_err();
    assert_eq!(e.errno, EFBIG);
    assert_eq!(m.stat("f").await.unwrap().size, 10);
}

/// With `SecretSource::Os`, keys and session tokens come from the OS while everything
/// public (the fsid `GET /` shows, UUIDs) still follows the seed: nothing a client can
/// see without credentials derives from the secrets' stream.
#[tokio::test]
async fn os_secrets_keep_public_values_seeded_and_keys_unpredictable() {
    let start = |secrets| async move {
        let f = Fake::with(fake_ceph::Config {
            seed: 9,
            secrets,
            ..fake_ceph::Config::default()
        });
        let path = f.subvolume("s", None).await;
        let m = f
            .cluster
            .mount("client.admin", &f.admin_key, req(&path, "n"))
            .await
            .unwrap();
        let user = f.user("client.u", &["mon", "allow r"]).await;
        (
            f.cluster.fsid(),
            path,
            crate::binary::secret_of(&f.admin_key),
            crate::binary::secret_of(&user),
            m.token().to_owned(),
        )
    };
    let a = start(fake_ceph::SecretSource::Os).await;
    let b = start(fake_ceph::SecretSource::Os).await;
    assert_eq!((&a.0, &a.1), (&b.0, &b.1), "public values follow the seed");
    assert_ne!(a.2, b.2, "admin keys");
    assert_ne!(a.3, b.3, "generated keys");
    assert_ne!(a.4, b.4, "session tokens");
    // Seeded secrets come from a stream of their own: the same public values.
    let s = start(fake_ceph::SecretSource::Seed).await;
    assert_eq!((&s.0, &s.1), (&a.0, &a.1));
    assert_eq!(s, start(fake_ceph::SecretSource::Seed).await);
}
