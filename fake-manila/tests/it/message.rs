//! User messages: every failure that leaves one in Manila leaves one here, with Manila's
//! action and detail codes and text (`manila/message/message_field.py`); failures that
//! leave none in Manila leave none here.

use axum::http::StatusCode;
use fake_ceph::{FaultRule, Faults};
use serde_json::{Value, json};

use crate::support::{Env, env, wait};

/// Fails every command with `prefix` from now on (EIO).
fn fail_ceph(env: &Env, prefix: &str) {
    env.cluster.set_faults(Faults {
        rules: vec![FaultRule {
            prefix: prefix.into(),
            latency_ms: None,
            error_rate: Some(1.0),
            errno: Some(5),
            hang: false,
        }],
        mds_down: false,
    });
}

/// The messages about share `id`, newest first.
async fn messages(env: &Env, t: &str, id: &str) -> Vec<Value> {
    let a = env
        .get(t, "2.37", &format!("/v2/messages?resource_id={id}"))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    a.body["messages"].as_array().expect("messages").clone()
}

/// Asserts that the only message about `id` has these codes and Manila's text for them.
async fn check(env: &Env, t: &str, id: &str, action: &str, detail: &str, text: &str) {
    let m = messages(env, t, id).await;
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0]["action_id"], action, "{m:?}");
    assert_eq!(m[0]["detail_id"], detail, "{m:?}");
    assert_eq!(m[0]["resource_type"], "SHARE");
    assert_eq!(m[0]["resource_id"], id);
    assert_eq!(m[0]["message_level"], "ERROR");
    assert_eq!(m[0]["user_message"], text);
}

/// Allows `access_type:access_to` on `id` and waits for the rule to end in `state`.
async fn allow(env: &Env, t: &str, id: &str, access_type: &str, access_to: &str, state: &str) {
    let a = env
        .post(
            t,
            "2.82",
            &format!("/v2/shares/{id}/action"),
            json!({"allow_access": {"access_type": access_type, "access_to": access_to, "access_level": "rw"}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let rid = a.body["access"]["id"].as_str().expect("rule id").to_owned();
    let show = format!("/v2/share-access-rules/{rid}");
    wait(|| async {
        (env.get(t, "2.82", &show).await.body["access"]["state"] == state).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("{access_type}:{access_to} never became {state}"));
}

#[tokio::test]
async fn a_protocol_the_back_end_does_not_serve_fails_the_capabilities_filter() {
    let env = env().await;
    let t = env.demo().await;
    let a = env
        .post(
            &t,
            "2.65",
            "/v2/shares",
            json!({"share": {"share_proto": "NFS", "size": 1}}),
        )
        .await;
    let id = a.body["share"]["id"].as_str().expect("id").to_owned();
    env.wait_share(&t, &id, "error").await;
    check(
        &env,
        &t,
        &id,
        "001",
        "008",
        "allocate host: No storage could be allocated for this share request, Capabilities filter didn't succeed.",
    )
    .await;
    // The filters of the list take the codes.
    let a = env
        .get(&t, "2.37", "/v2/messages?action_id=001&detail_id=008")
        .await;
    assert_eq!(a.body["messages"].as_array().map(Vec::len), Some(1));
    let a = env.get(&t, "2.37", "/v2/messages?detail_id=002").await;
    assert_eq!(a.body["messages"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn a_failed_create_and_a_failed_clone() {
    let env = env().await;
    let t = env.demo().await;
    let src = env.share(&t, "source", 1).await;
    let a = env
        .post(
            &t,
            "2.82",
            "/v2/snapshots",
            json!({"snapshot": {"share_id": src, "name": "snap"}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    let sid = a.body["snapshot"]["id"].as_str().expect("id").to_owned();
    let path = format!("/v2/snapshots/{sid}");
    wait(|| async {
        (env.get(&t, "2.82", &path).await.body["snapshot"]["status"] == "available").then_some(())
    })
    .await
    .expect("snapshot available");
    let create = |body: Value| async {
        let a = env.post(&t, "2.65", "/v2/shares", body).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        a.body["share"]["id"].as_str().expect("id").to_owned()
    };
    // The driver's create call fails: the share manager's message.
    fail_ceph(&env, "fs subvolume create");
    let id = create(json!({"share": {"share_proto": "CEPHFS", "size": 1}})).await;
    env.wait_share(&t, &id, "error").await;
    check(
        &env,
        &t,
        &id,
        "002",
        "001",
        "create: An unknown error occurred.",
    )
    .await;
    // The clone cannot start: the create call fails the same way.
    fail_ceph(&env, "fs subvolume snapshot clone");
    let id =
        create(json!({"share": {"share_proto": "CEPHFS", "size": 1, "snapshot_id": sid}})).await;
    env.wait_share(&t, &id, "error").await;
    check(
        &env,
        &t,
        &id,
        "002",
        "001",
        "create: An unknown error occurred.",
    )
    .await;
    // The clone started and then failed: the periodic status update's message.
    fail_ceph(&env, "fs clone status");
    let id =
        create(json!({"share": {"share_proto": "CEPHFS", "size": 1, "snapshot_id": sid}})).await;
    env.wait_share(&t, &id, "error").await;
    check(
        &env,
        &t,
        &id,
        "005",
        "017",
        "update: Share Driver has failed to create the share from snapshot. This operation can be re-attempted by creating a new share. Contact your administrator to determine the cause of this failure.",
    )
    .await;
}

#[tokio::test]
async fn failed_resizes() {
    let env = env().await;
    let t = env.demo().await;
    let id = env.share(&t, "resized", 2).await;
    let action = format!("/v2/shares/{id}/action");
    fail_ceph(&env, "fs subvolume resize");
    // Shrink: `shrinking_error`, and Manila leaves no message for a plain driver failure.
    let a = env
        .post(&t, "2.65", &action, json!({"shrink": {"new_size": 1}}))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    let s = env.wait_share(&t, &id, "shrinking_error").await;
    assert_eq!(s["size"], 2);
    assert_eq!(messages(&env, &t, &id).await, Vec::<Value>::new());
    // Extend: `extending_error` with the driver's message.
    let admin = env.admin().await;
    let a = env
        .post(
            &admin,
            "2.65",
            &action,
            json!({"reset_status": {"status": "available"}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    let a = env
        .post(&t, "2.65", &action, json!({"extend": {"new_size": 3}}))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    let s = env.wait_share(&t, &id, "extending_error").await;
    assert_eq!(s["size"], 2);
    check(
        &env,
        &t,
        &id,
        "008",
        "015",
        "extend: Share Driver failed to extend share, The share status has been set to extending_error. This action cannot be re-attempted until the status has been rectified. Contact your administrator to determine the cause of this failure.",
    )
    .await;
}

#[tokio::test]
async fn refused_access_rules() {
    let env = env().await;
    let t = env.demo().await;
    let id = env.share(&t, "guarded", 1).await;
    // Not cephx: the CephFS driver's InvalidShareAccessType.
    allow(&env, &t, &id, "ip", "10.0.0.1", "error").await;
    check(
        &env,
        &t,
        &id,
        "010",
        "021",
        "update access rules: Failed to grant access to client. The access level or type may be unsupported. You may try again with a different access level or access type.",
    )
    .await;
    let forbidden = "update access rules: Failed to grant access to client. The client ID used may be forbidden. You may try again with a different client identifier.";
    // The ID Manila itself uses: InvalidShareAccess.
    let id = env.share(&t, "guarded-2", 1).await;
    allow(&env, &t, &id, "cephx", "admin", "error").await;
    check(&env, &t, &id, "010", "020", forbidden).await;
    // An auth ID the volumes module did not create: Ceph's "not allowed" is
    // InvalidShareAccess too.
    let (ret, _, outs) = env
        .mon(json!({"prefix": "auth get-or-create", "entity": "client.outsider", "caps": ["mon", "allow r"]}))
        .await;
    assert_eq!(ret, 0, "{outs}");
    let id = env.share(&t, "guarded-3", 1).await;
    allow(&env, &t, &id, "cephx", "outsider", "error").await;
    check(&env, &t, &id, "010", "020", forbidden).await;
    // Any other failure of the driver leaves the rule in error and no message.
    fail_ceph(&env, "fs subvolume authorize");
    let id = env.share(&t, "guarded-4", 1).await;
    allow(&env, &t, &id, "cephx", "carol", "error").await;
    assert_eq!(messages(&env, &t, &id).await, Vec::<Value>::new());
}
