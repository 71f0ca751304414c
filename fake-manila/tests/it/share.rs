//! Shares: the lifecycle through its states with fake-ceph's subvolume behind it, lists,
//! updates, metadata, extend and shrink, delete, bad input.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fake_manila::Delays;
use serde_json::{Value, json};

use crate::support::{env, env_with, wait};

const GIB: u64 = 1 << 30;

#[tokio::test]
async fn lifecycle_through_states_with_a_subvolume() {
    let env = env_with(|c| c.delays = Delays::all(Duration::from_millis(150))).await;
    let t = env.demo().await;
    let a = env
        .post(&t, "2.65", "/v2/shares", json!({"share": {"share_proto": "cephfs", "size": 2, "name": "life",
            "description": "d", "metadata": {"k": "v"}, "scheduler_hints": {}, "is_public": false}}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let s = &a.body["share"];
    assert_eq!(s["status"], "creating");
    assert_eq!(s["share_proto"], "CEPHFS");
    assert_eq!(s["metadata"], json!({"k": "v"}));
    let id = s["id"].as_str().expect("id").to_owned();
    // Nothing in Ceph until the transition runs.
    let (ret, _, _) = env
        .ceph(json!({"prefix": "fs subvolume getpath", "sub_name": id}))
        .await;
    assert_eq!(ret, -2);
    let s = env.wait_share(&t, &id, "available").await;
    assert_eq!(s["progress"], "100%");
    // The subvolume exists with the share's size as its quota.
    let (ret, out, _) = env
        .ceph(json!({"prefix": "fs subvolume info", "sub_name": id, "format": "json"}))
        .await;
    assert_eq!(ret, 0);
    let info: Value = serde_json::from_str(&out).expect("info json");
    assert_eq!(info["bytes_quota"], 2 * GIB);
    // The export location is `<mons>:<getpath>`.
    let (_, path, _) = env
        .ceph(json!({"prefix": "fs subvolume getpath", "sub_name": id}))
        .await;
    let els = env
        .get(&t, "2.65", &format!("/v2/shares/{id}/export_locations"))
        .await;
    let el = &els.body["export_locations"][0];
    assert_eq!(el["path"], format!("127.0.0.1:6789:{}", path.trim()));
    assert!(path.starts_with(&format!("/volumes/_nogroup/{id}/")));
    assert_eq!(el["is_admin_only"], false);
    let el_id = el["id"].as_str().expect("el id");
    let one = env
        .get(
            &t,
            "2.65",
            &format!("/v2/shares/{id}/export_locations/{el_id}"),
        )
        .await;
    assert_eq!(one.body["export_location"]["path"], el["path"]);
    assert!(one.body["export_location"]["created_at"].is_string());
    // Delete: 202, `deleting`, then 404 and no subvolume.
    let a = env.delete(&t, "2.65", &format!("/v2/shares/{id}")).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    assert_eq!(a.text, "");
    assert_eq!(
        env.get(&t, "2.65", &format!("/v2/shares/{id}")).await.body["share"]["status"],
        "deleting"
    );
    env.wait_gone(&t, &format!("/v2/shares/{id}")).await;
    let (ret, _, _) = env
        .ceph(json!({"prefix": "fs subvolume getpath", "sub_name": id}))
        .await;
    assert_eq!(ret, -2);
    let a = env.get(&t, "2.65", &format!("/v2/shares/{id}")).await;
    assert_eq!(
        a.body["itemNotFound"]["message"],
        format!("Share {id} could not be found.")
    );
}

#[tokio::test]
async fn extending_shows_the_old_size_and_reserves_the_new() {
    let env = env_with(|c| c.delays = Delays::all(Duration::from_millis(200))).await;
    let t = env.demo().await;
    let id = env.share(&t, "grow", 1).await;
    let a = env
        .post(
            &t,
            "2.65",
            &format!("/v2/shares/{id}/action"),
            json!({"extend": {"new_size": 4}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let s = env.get(&t, "2.65", &format!("/v2/shares/{id}")).await;
    assert_eq!(s.body["share"]["status"], "extending");
    assert_eq!(s.body["share"]["size"], 1);
    let l = env.get(&t, "2.65", "/v2/limits").await;
    assert_eq!(l.body["limits"]["absolute"]["totalShareGigabytesUsed"], 4);
    assert_eq!(env.wait_share(&t, &id, "available").await["size"], 4);
}

#[tokio::test]
async fn transitional_states_refuse_changes() {
    let env = env_with(|c| c.delays = Delays::all(Duration::from_millis(300))).await;
    let t = env.demo().await;
    let a = env
        .post(
            &t,
            "2.65",
            "/v2/shares",
            json!({"share": {"share_proto": "CEPHFS", "size": 1}}),
        )
        .await;
    let id = a.body["share"]["id"].as_str().expect("id").to_owned();
    let a = env.delete(&t, "2.65", &format!("/v2/shares/{id}")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    let a = env
        .post(
            &t,
            "2.65",
            &format!("/v2/shares/{id}/action"),
            json!({"extend": {"new_size": 2}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = env
        .post(
            &t,
            "2.65",
            "/v2/snapshots",
            json!({"snapshot": {"share_id": id}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    env.wait_share(&t, &id, "available").await;
}

#[tokio::test]
async fn lists_filters_and_paging() {
    let env = env().await;
    let t = env.demo().await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(env.share(&t, &format!("list-{i}"), 1).await);
    }
    let count = |q: &'static str| {
        let (env, t) = (&env, t.clone());
        async move {
            let a = env.get(&t, "2.69", q).await;
            assert_eq!(a.status, StatusCode::OK, "{q}: {}", a.text);
            a.body["shares"].as_array().map(Vec::len).unwrap_or(0)
        }
    };
    assert_eq!(count("/v2/shares").await, 4);
    assert_eq!(count("/v2/shares/detail?name=list-2").await, 1);
    assert_eq!(count("/v2/shares?name=list-2").await, 1);
    assert_eq!(count("/v2/shares/detail?name=nope").await, 0);
    assert_eq!(count("/v2/shares/detail?status=available").await, 4);
    assert_eq!(count("/v2/shares/detail?status=error").await, 0);
    assert_eq!(count("/v2/shares/detail?is_soft_deleted=True").await, 0);
    assert_eq!(count("/v2/shares/detail?is_soft_deleted=False").await, 4);
    assert_eq!(
        count("/v2/shares/detail?all_tenants=1&is_public=True").await,
        4
    );
    assert_eq!(count("/v2/shares/detail?limit=3").await, 3);
    assert_eq!(count("/v2/shares/detail?limit=3&offset=2").await, 2);
    assert_eq!(count("/v2/shares/detail?name~=list").await, 4);
    // Newest first by default; ascending on request.
    let a = env
        .get(
            &t,
            "2.65",
            "/v2/shares/detail?sort_key=created_at&sort_dir=asc",
        )
        .await;
    assert_eq!(a.body["shares"][0]["id"], ids[0].as_str());
    let a = env.get(&t, "2.65", "/v2/shares").await;
    assert_eq!(a.body["shares"][0]["id"], ids[3].as_str());
    assert!(a.body["shares"][0].get("size").is_none(), "summary view");
    let a = env
        .get(&t, "2.65", "/v2/shares?limit=2&with_count=true")
        .await;
    assert_eq!(a.body["count"], 4);
    assert!(
        a.body["shares_links"][0]["href"]
            .as_str()
            .expect("next")
            .contains("marker=")
    );
    let a = env
        .get(&t, "2.65", &format!("/v2/shares?marker={}", ids[2]))
        .await;
    assert_eq!(a.body["shares"].as_array().map(Vec::len), Some(2));
    for bad in [
        "/v2/shares?limit=-1",
        "/v2/shares?offset=x",
        "/v2/shares?sort_dir=up",
        "/v2/shares?sort_key=secret",
    ] {
        assert_eq!(
            env.get(&t, "2.65", bad).await.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn update_and_metadata() {
    let env = env().await;
    let t = env.demo().await;
    let id = env.share(&t, "upd", 1).await;
    let path = format!("/v2/shares/{id}");
    let a = env
        .put(
            &t,
            "2.65",
            &path,
            json!({"share": {"display_name": "renamed", "display_description": "desc"}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["share"]["name"], "renamed");
    assert_eq!(a.body["share"]["description"], "desc");
    let md = format!("{path}/metadata");
    let a = env
        .post(&t, "2.65", &md, json!({"metadata": {"a": "1", "b": "2"}}))
        .await;
    assert_eq!(a.body["metadata"], json!({"a": "1", "b": "2"}));
    let a = env
        .put(&t, "2.65", &md, json!({"metadata": {"c": "3"}}))
        .await;
    assert_eq!(a.body["metadata"], json!({"c": "3"}));
    let a = env
        .put(&t, "2.65", &format!("{md}/d"), json!({"meta": {"d": "4"}}))
        .await;
    assert_eq!(a.body["meta"], json!({"d": "4"}));
    assert_eq!(
        env.put(&t, "2.65", &format!("{md}/d"), json!({"meta": {"e": "4"}}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        env.get(&t, "2.65", &format!("{md}/c")).await.body["meta"],
        json!({"c": "3"})
    );
    assert_eq!(
        env.delete(&t, "2.65", &format!("{md}/c")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        env.get(&t, "2.65", &format!("{md}/c")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        env.get(&t, "2.65", &md).await.body["metadata"],
        json!({"d": "4"})
    );
    assert_eq!(
        env.post(&t, "2.65", &md, json!({"metadata": {"x": 1}}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let a = env
        .get(
            &t,
            "2.65",
            "/v2/shares/detail?metadata=%7B%27d%27%3A%20%274%27%7D",
        )
        .await;
    assert_eq!(a.body["shares"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn extend_and_shrink_resize_the_subvolume() {
    let env = env().await;
    let t = env.demo().await;
    let id = env.share(&t, "resize", 1).await;
    let action = format!("/v2/shares/{id}/action");
    let quota = || async {
        let (_, out, _) = env
            .ceph(json!({"prefix": "fs subvolume info", "sub_name": id, "format": "json"}))
            .await;
        serde_json::from_str::<Value>(&out).expect("info")["bytes_quota"].as_u64()
    };
    let a = env
        .post(&t, "2.65", &action, json!({"extend": {"new_size": 3}}))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    let s = env.wait_share(&t, &id, "available").await;
    assert_eq!(s["size"], 3);
    assert_eq!(quota().await, Some(3 * GIB));
    let a = env
        .post(&t, "2.65", &action, json!({"shrink": {"new_size": 2}}))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let s = env.wait_share(&t, &id, "available").await;
    assert_eq!(s["size"], 2);
    assert_eq!(quota().await, Some(2 * GIB));
    for (body, msg) in [
        (
            json!({"extend": {"new_size": 2}}),
            "greater than current size",
        ),
        (json!({"extend": {"new_size": "x"}}), "integer"),
        (json!({"extend": {}}), "integer"),
        (json!({"shrink": {"new_size": 2}}), "less than current size"),
        (json!({"shrink": {"new_size": 0}}), "greater than 0"),
    ] {
        let a = env.post(&t, "2.65", &action, body.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
        let m = a.body["badRequest"]["message"].as_str().expect("message");
        assert!(m.contains(msg), "{body}: {m}");
    }
}

#[tokio::test]
async fn shrink_below_used_is_refused_and_the_share_stays_available() {
    let env = env().await;
    let t = env.demo().await;
    let id = env.share(&t, "full", 2).await;
    // Write 1.5 GiB (sparse) through a mount of the subvolume.
    let (_, path, _) = env
        .ceph(json!({"prefix": "fs subvolume getpath", "sub_name": id}))
        .await;
    let m = env
        .cluster
        .mount(
            "client.admin",
            &env.cluster.admin_key(),
            fake_ceph::MountRequest {
                fs_name: None,
                root: path.trim().to_owned(),
                client_metadata: Default::default(),
            },
        )
        .await
        .expect("mount");
    let r = m
        .run(vec![fake_ceph::Op::Write {
            path: "big".into(),
            offset: 0,
            len: 3 * GIB / 2,
            data: None,
        }])
        .await;
    assert!(r[0].is_ok(), "{r:?}");
    let action = format!("/v2/shares/{id}/action");
    let a = env
        .post(&t, "2.65", &action, json!({"shrink": {"new_size": 1}}))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    // Manila's share manager puts the share back in `available` at its old size and
    // leaves a message saying the driver refused.
    let msgs = wait(|| async {
        let a = env
            .get(&t, "2.65", &format!("/v2/messages?resource_id={id}"))
            .await;
        let m = a.body["messages"].as_array().cloned().unwrap_or_default();
        (!m.is_empty()).then_some(m)
    })
    .await
    .expect("a user message");
    assert_eq!(msgs[0]["action_id"], "009");
    assert_eq!(msgs[0]["detail_id"], "018");
    assert!(
        msgs[0]["user_message"]
            .as_str()
            .expect("message")
            .starts_with("shrink: Share Driver refused to shrink the share.")
    );
    let s = env.wait_share(&t, &id, "available").await;
    assert_eq!(s["size"], 2, "the share keeps its size");
    m.unmount();
    // It is an ordinary available share again: it extends and deletes.
    let a = env
        .post(&t, "2.65", &action, json!({"extend": {"new_size": 3}}))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    let s = env.wait_share(&t, &id, "available").await;
    assert_eq!(s["size"], 3);
    assert_eq!(
        env.delete(&t, "2.65", &format!("/v2/shares/{id}"))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    env.wait_gone(&t, &format!("/v2/shares/{id}")).await;
}

#[tokio::test]
async fn bad_input_gets_manila_faults() {
    let env = env().await;
    let t = env.demo().await;
    let create = |body: Value| {
        let (env, t) = (&env, t.clone());
        async move { env.post(&t, "2.65", "/v2/shares", body).await }
    };
    for (body, code) in [
        (json!({"nope": {}}), 422),
        (json!({"share": "x"}), 422),
        (json!({"share": {"share_proto": "CEPHFS", "size": 0}}), 400),
        (json!({"share": {"share_proto": "CEPHFS", "size": -1}}), 400),
        (
            json!({"share": {"share_proto": "CEPHFS", "size": "big"}}),
            400,
        ),
        (json!({"share": {"share_proto": "CEPHFS"}}), 400),
        (json!({"share": {"share_proto": "SMB3", "size": 1}}), 400),
        (json!({"share": {"size": 1}}), 400),
        (
            json!({"share": {"share_proto": "CEPHFS", "size": 1, "share_type": "gold"}}),
            404,
        ),
        (
            json!({"share": {"share_proto": "CEPHFS", "size": 1, "share_type": "cephfstype", "volume_type": "cephfstype"}}),
            400,
        ),
        (
            json!({"share": {"share_proto": "CEPHFS", "size": 1, "availability_zone": "mars"}}),
            404,
        ),
        (
            json!({"share": {"share_proto": "CEPHFS", "size": 1, "metadata": {"k": 1}}}),
            400,
        ),
        (
            json!({"share": {"share_proto": "CEPHFS", "size": 1, "name": 5}}),
            400,
        ),
        (
            json!({"share": {"share_proto": "CEPHFS", "size": 1, "share_network_id": "x"}}),
            400,
        ),
        (
            json!({"share": {"share_proto": "CEPHFS", "size": 1, "snapshot_id": "nope"}}),
            404,
        ),
    ] {
        let a = create(body.clone()).await;
        assert_eq!(a.status.as_u16(), code, "{body}: {}", a.text);
        let fault = a
            .body
            .as_object()
            .and_then(|o| o.values().next())
            .expect("fault body");
        assert_eq!(fault["code"], code);
    }
    let raw = |body: &'static [u8]| {
        let (env, t) = (&env, t.clone());
        async move {
            env.raw(
                Request::post("/v2/shares")
                    .header("x-auth-token", t)
                    .header("X-OpenStack-Manila-API-Version", "2.65")
                    .body(Body::from(body))
                    .expect("request"),
            )
            .await
        }
    };
    assert_eq!(raw(b"{bad").await.body["badRequest"]["code"], 400);
    assert_eq!(raw(b"").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(raw(b"\xff\xfe").await.status, StatusCode::BAD_REQUEST);
    let huge = vec![b' '; 1 << 20];
    let a = env
        .raw(
            Request::post("/v2/shares")
                .header("x-auth-token", t.clone())
                .body(Body::from(huge))
                .expect("request"),
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.body["overLimit"]["code"], 413);
    // A protocol the CephFS back end does not serve: no valid host.
    let a = create(json!({"share": {"share_proto": "NFS", "size": 1}})).await;
    let id = a.body["share"]["id"].as_str().expect("id").to_owned();
    env.wait_share(&t, &id, "error").await;
    let m = env
        .get(&t, "2.65", &format!("/v2/messages?resource_id={id}"))
        .await;
    assert_eq!(m.body["messages"][0]["action_id"], "001");
    assert_eq!(m.body["messages"][0]["detail_id"], "008");
    // An error share can be deleted.
    assert_eq!(
        env.delete(&t, "2.65", &format!("/v2/shares/{id}"))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    env.wait_gone(&t, &format!("/v2/shares/{id}")).await;
}

#[tokio::test]
async fn projects_are_isolated() {
    let env = env_with(|c| {
        c.identity.users.push(fake_manila::config::UserSpec {
            name: "eve".into(),
            password: "eve".into(),
            project: "eve".into(),
            roles: vec!["member".into()],
            id: None,
        });
    })
    .await;
    let demo = env.demo().await;
    let eve = env.token("eve", "eve", "eve").await;
    let admin = env.admin().await;
    let id = env.share(&demo, "mine", 1).await;
    let path = format!("/v2/shares/{id}");
    assert_eq!(
        env.get(&eve, "2.65", &path).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        env.delete(&eve, "2.65", &path).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        env.get(&eve, "2.65", &format!("{path}/export_locations"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let a = env
        .post(
            &eve,
            "2.65",
            &format!("{path}/action"),
            json!({"extend": {"new_size": 2}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(
        env.get(&eve, "2.65", "/v2/shares/detail?all_tenants=1")
            .await
            .body["shares"],
        json!([])
    );
    // The admin sees it, and lists it with all_tenants only.
    assert_eq!(env.get(&admin, "2.65", &path).await.status, StatusCode::OK);
    assert_eq!(
        env.get(&admin, "2.65", "/v2/shares/detail").await.body["shares"],
        json!([])
    );
    let a = env
        .get(&admin, "2.65", "/v2/shares/detail?all_tenants=1")
        .await;
    assert_eq!(a.body["shares"].as_array().map(Vec::len), Some(1));
    // A public share is visible to others, but not theirs to change.
    env.put(&demo, "2.65", &path, json!({"share": {"is_public": true}}))
        .await;
    assert_eq!(env.get(&eve, "2.65", &path).await.status, StatusCode::OK);
    assert_eq!(
        env.delete(&eve, "2.65", &path).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn export_locations_name_every_monitor_and_the_group() {
    let mons = ["10.0.0.1:6789", "10.0.0.2:6789", "10.0.0.3:6789"];
    let env = crate::support::env_on(
        |c| c.mon_addrs = mons.iter().map(|m| (*m).to_owned()).collect(),
        |c| c.ceph.group = Some("manila".into()),
    )
    .await;
    // Manila's driver expects its group to exist (the binary creates it at start).
    let (ret, _, _) = env
        .ceph(json!({"prefix": "fs subvolumegroup create", "group_name": "manila"}))
        .await;
    assert_eq!(ret, 0);
    let t = env.demo().await;
    let id = env.share(&t, "grouped", 1).await;
    let els = env
        .get(&t, "2.65", &format!("/v2/shares/{id}/export_locations"))
        .await;
    let path = els.body["export_locations"][0]["path"]
        .as_str()
        .expect("path")
        .to_owned();
    // CSI splits at the last ':' into monitors and root path.
    let (monitors, root) = path.rsplit_once(':').expect("monitors:path");
    assert_eq!(monitors, mons.join(","));
    assert!(
        root.starts_with(&format!("/volumes/manila/{id}/")),
        "{root}"
    );
    let (ret, _, _) = env
        .ceph(json!({"prefix": "fs subvolume getpath", "group_name": "manila", "sub_name": id}))
        .await;
    assert_eq!(ret, 0);
}

#[tokio::test]
async fn metrics_count_requests_and_transitions() {
    let env = env().await;
    let t = env.demo().await;
    let id = env.share(&t, "counted", 1).await;
    env.get(&t, "2.65", "/v2/no/such/thing/at/all/here").await;
    env.delete(&t, "2.65", &format!("/v2/shares/{id}")).await;
    env.wait_gone(&t, &format!("/v2/shares/{id}")).await;
    let a = env
        .raw(
            Request::get("/metrics")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    for line in [
        r#"fake_manila_requests_total{method="POST",route="/v2/shares",status="200"} 1"#,
        r#"fake_manila_requests_total{method="DELETE",route="/v2/shares/{id}",status="202"} 1"#,
        r#"route="/v2/{id}/{id}/{id}/{id}/...",status="404""#,
        r#"fake_manila_transitions_total{kind="create",result="ok"} 1"#,
        r#"fake_manila_transitions_total{kind="delete",result="ok"} 1"#,
        "fake_manila_request_seconds_bucket",
    ] {
        assert!(a.text.contains(line), "{line} missing from:\n{}", a.text);
    }
    assert!(!a.text.contains(&id), "no IDs in labels");
}
