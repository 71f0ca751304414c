//! Ceph restarting under Manila: as with librados, a command that gets no answer is sent
//! again until its deadline, so a share created or deleted across a short restart of
//! Ceph ends `available` or gone, not `error` or `error_deleting`.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{Env, env_on};

/// fake-ceph takes `ms` for every `fs subvolume create`, so one is under way when it is
/// killed.
async fn slow_creates(ms: u64) -> Env {
    env_on(
        |c| {
            c.faults.rules.push(
                format!("latency:fs subvolume create={ms}")
                    .parse::<fake_ceph::FaultSpec>()
                    .expect("a fault rule")
                    .0,
            );
        },
        |_| {},
    )
    .await
}

#[tokio::test]
async fn a_share_created_across_a_ceph_restart_becomes_available() {
    let mut env = slow_creates(300).await;
    let t = env.demo().await;
    let a = env
        .post(
            &t,
            "2.65",
            "/v2/shares",
            json!({"share": {"share_proto": "CEPHFS", "size": 1, "name": "across"}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let id = a.body["share"]["id"].as_str().expect("id").to_owned();
    // The create is in fake-ceph when it dies; it stays down for half a second.
    tokio::time::sleep(Duration::from_millis(100)).await;
    env.stop_ceph().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        env.get(&t, "2.65", &format!("/v2/shares/{id}")).await.body["share"]["status"],
        "creating"
    );
    env.start_ceph().await;
    let share = env.wait_share(&t, &id, "available").await;
    assert_eq!(share["progress"], "100%");
    let (ret, path, _) = env
        .ceph(json!({"prefix": "fs subvolume getpath", "sub_name": id}))
        .await;
    assert_eq!(ret, 0, "the subvolume exists");
    assert!(path.starts_with(&format!("/volumes/_nogroup/{id}/")));
}

#[tokio::test]
async fn a_share_deleted_while_ceph_is_down_is_gone_once_it_is_back() {
    let mut env = slow_creates(0).await;
    let t = env.demo().await;
    let id = env.share(&t, "gone", 1).await;
    env.stop_ceph().await;
    let a = env.delete(&t, "2.65", &format!("/v2/shares/{id}")).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        env.get(&t, "2.65", &format!("/v2/shares/{id}")).await.body["share"]["status"],
        "deleting"
    );
    env.start_ceph().await;
    env.wait_gone(&t, &format!("/v2/shares/{id}")).await;
    let (ret, _, _) = env
        .ceph(json!({"prefix": "fs subvolume getpath", "sub_name": id}))
        .await;
    assert_eq!(ret, -2, "the subvolume is removed");
}

#[tokio::test]
async fn ceph_away_past_the_deadline_still_fails_the_share() {
    let mut env = env_on(|_| {}, |c| c.ceph.timeout = Duration::from_millis(300)).await;
    let t = env.demo().await;
    env.stop_ceph().await;
    let a = env
        .post(
            &t,
            "2.65",
            "/v2/shares",
            json!({"share": {"share_proto": "CEPHFS", "size": 1, "name": "never"}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let id = a.body["share"]["id"].as_str().expect("id").to_owned();
    env.wait_share(&t, &id, "error").await;
}
