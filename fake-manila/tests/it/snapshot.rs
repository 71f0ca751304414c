//! Snapshots and shares created from them (clones).

use std::time::Duration;

use axum::http::StatusCode;
use fake_manila::Delays;
use serde_json::{Value, json};

use crate::support::{env, env_with, wait};

#[tokio::test]
async fn snapshot_lifecycle_and_clone() {
    let env = env_with(|c| c.delays = Delays::all(Duration::from_millis(50))).await;
    let t = env.demo().await;
    let id = env.share(&t, "src", 1).await;
    let a = env
        .post(&t, "2.82", "/v2/snapshots", json!({"snapshot": {"share_id": id, "name": "snap", "description": "d", "force": false}}))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    let snap = &a.body["snapshot"];
    assert_eq!(snap["status"], "creating");
    assert_eq!(snap["size"], 1);
    assert_eq!(snap["share_proto"], "CEPHFS");
    let sid = snap["id"].as_str().expect("id").to_owned();
    let show = format!("/v2/snapshots/{sid}");
    wait(|| async {
        (env.get(&t, "2.82", &show).await.body["snapshot"]["status"] == "available").then_some(())
    })
    .await
    .expect("snapshot available");
    // fake-ceph has the subvolume snapshot.
    let (_, out, _) = env
        .ceph(json!({"prefix": "fs subvolume snapshot ls", "sub_name": id, "format": "json"}))
        .await;
    let snaps: Value = serde_json::from_str(&out).expect("ls json");
    assert!(
        snaps[0]["name"]
            .as_str()
            .expect("name")
            .starts_with(&format!("{sid}_"))
    );
    assert_eq!(
        env.get(&t, "2.82", "/v2/snapshots/detail?name=snap")
            .await
            .body["snapshots"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        env.get(&t, "2.82", &format!("/v2/snapshots?share_id={id}"))
            .await
            .body["snapshots"][0]["id"],
        sid.as_str()
    );
    let els = env
        .get(&t, "2.82", &format!("{show}/export-locations"))
        .await;
    assert_eq!(els.body, json!({"share_snapshot_export_locations": []}));
    assert_eq!(
        env.get(&t, "2.31", &format!("{show}/export-locations"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // A share with snapshots cannot be deleted.
    let a = env.delete(&t, "2.82", &format!("/v2/shares/{id}")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(
        a.body["forbidden"]["message"]
            .as_str()
            .expect("msg")
            .contains("dependent snapshots")
    );
    // A share from the snapshot is a clone: creating_from_snapshot at 2.54+, creating below.
    let a = env
        .post(&t, "2.82", "/v2/shares", json!({"share": {"share_proto": "CEPHFS", "size": 2, "snapshot_id": sid, "name": "clone"}}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["share"]["status"], "creating_from_snapshot");
    assert_eq!(a.body["share"]["snapshot_id"], sid.as_str());
    let cid = a.body["share"]["id"].as_str().expect("id").to_owned();
    let old = env.get(&t, "2.53", &format!("/v2/shares/{cid}")).await;
    assert!(matches!(
        old.body["share"]["status"].as_str(),
        Some("creating" | "available")
    ));
    let c = env.wait_share(&t, &cid, "available").await;
    assert_eq!(c["size"], 2);
    let (ret, out, _) = env
        .ceph(json!({"prefix": "fs subvolume info", "sub_name": cid, "format": "json"}))
        .await;
    assert_eq!(ret, 0);
    let info: Value = serde_json::from_str(&out).expect("info");
    assert_eq!(info["type"], "clone");
    assert_eq!(info["bytes_quota"], 2u64 << 30);
    let els = env
        .get(&t, "2.82", &format!("/v2/shares/{cid}/export_locations"))
        .await;
    assert!(
        els.body["export_locations"][0]["path"]
            .as_str()
            .expect("path")
            .contains(&format!("/volumes/_nogroup/{cid}/"))
    );
    // Too small a share from a snapshot is refused.
    let a = env
        .post(
            &t,
            "2.82",
            "/v2/shares",
            json!({"share": {"share_proto": "CEPHFS", "size": 0, "snapshot_id": sid}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // Delete the snapshot: deleting, then gone, in Ceph too.
    let a = env.delete(&t, "2.82", &show).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    env.wait_gone(&t, &show).await;
    let (_, out, _) = env
        .ceph(json!({"prefix": "fs subvolume snapshot ls", "sub_name": id, "format": "json"}))
        .await;
    assert_eq!(serde_json::from_str::<Value>(&out).expect("ls"), json!([]));
    assert_eq!(
        env.delete(&t, "2.82", &format!("/v2/shares/{id}"))
            .await
            .status,
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn snapshot_errors() {
    let env = env().await;
    let t = env.demo().await;
    assert_eq!(
        env.post(
            &t,
            "2.82",
            "/v2/snapshots",
            json!({"snapshot": {"share_id": "nope"}})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        env.post(&t, "2.82", "/v2/snapshots", json!({"snapshot": {}}))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        env.get(&t, "2.82", "/v2/snapshots/nope").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        env.delete(&t, "2.82", "/v2/snapshots/nope").await.status,
        StatusCode::NOT_FOUND
    );
}
