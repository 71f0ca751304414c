//! Quotas, limits, types and availability zones.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::env;

#[tokio::test]
async fn quotas_are_enforced() {
    let env = env().await;
    let t = env.demo().await;
    let admin = env.admin().await;
    let project = env.get(&t, "2.65", "/v2/limits").await;
    assert_eq!(project.body["limits"]["absolute"]["maxTotalShares"], 50);
    let pid = {
        let a = env
            .post(
                &t,
                "2.65",
                "/v2/shares",
                json!({"share": {"share_proto": "CEPHFS", "size": 1}}),
            )
            .await;
        a.body["share"]["project_id"]
            .as_str()
            .expect("project")
            .to_owned()
    };
    let qpath = format!("/v2/quota-sets/{pid}");
    // Members may not change quotas; admins may.
    assert_eq!(
        env.put(&t, "2.65", &qpath, json!({"quota_set": {"shares": 1}}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let a = env
        .put(
            &admin,
            "2.65",
            &qpath,
            json!({"quota_set": {"shares": 2, "gigabytes": 5, "snapshots": 0}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["quota_set"]["shares"], 2);
    assert_eq!(
        env.put(&admin, "2.65", &qpath, json!({"quota_set": {"widgets": 1}}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    // Second share fits; a third is over the share count.
    let id = env.share(&t, "q2", 1).await;
    let a = env
        .post(
            &t,
            "2.65",
            "/v2/shares",
            json!({"share": {"share_proto": "CEPHFS", "size": 1}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.body["overLimit"]["code"], 413);
    assert!(
        a.body["overLimit"]["message"]
            .as_str()
            .expect("msg")
            .contains("Maximum number of shares")
    );
    assert_eq!(a.headers["retry-after"], "0");
    // Extending past the gigabytes quota is 403.
    let a = env
        .post(
            &t,
            "2.65",
            &format!("/v2/shares/{id}/action"),
            json!({"extend": {"new_size": 10}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // Snapshots quota 0.
    let a = env
        .post(
            &t,
            "2.65",
            "/v2/snapshots",
            json!({"snapshot": {"share_id": id}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    // The detail view shows use.
    let d = env.get(&t, "2.65", &format!("{qpath}/detail")).await;
    assert_eq!(
        d.body["quota_set"]["shares"],
        json!({"limit": 2, "in_use": 2, "reserved": 0})
    );
    assert_eq!(d.body["quota_set"]["gigabytes"]["in_use"], 2);
    assert!(d.body["quota_set"].get("per_share_gigabytes").is_some());
    assert!(
        env.get(&t, "2.61", &qpath).await.body["quota_set"]
            .get("per_share_gigabytes")
            .is_none()
    );
    assert_eq!(
        env.get(&t, "2.65", &format!("{qpath}/defaults")).await.body["quota_set"]["shares"],
        50
    );
    assert_eq!(
        env.get(&t, "2.6", &format!("/v2/os-quota-sets/{pid}"))
            .await
            .body["quota_set"]["shares"],
        2
    );
    assert_eq!(
        env.get(&t, "2.6", &qpath).await.status,
        StatusCode::NOT_FOUND
    );
    // Another project's quotas are not for members; names resolve.
    assert_eq!(
        env.get(&t, "2.65", "/v2/quota-sets/admin").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        env.get(&t, "2.65", "/v2/quota-sets/demo").await.body["quota_set"]["id"],
        pid.as_str()
    );
    let l = env.get(&t, "2.65", "/v2/limits").await;
    assert_eq!(l.body["limits"]["absolute"]["totalSharesUsed"], 2);
    assert_eq!(l.body["limits"]["absolute"]["maxTotalShareGigabytes"], 5);
    // Reset.
    assert_eq!(
        env.delete(&admin, "2.65", &qpath).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        env.get(&t, "2.65", &qpath).await.body["quota_set"]["shares"],
        50
    );
}

#[tokio::test]
async fn types_and_zones() {
    let env = env().await;
    let t = env.demo().await;
    let a = env.get(&t, "2.65", "/v2/types").await;
    assert_eq!(a.body["share_types"][0]["name"], "cephfstype");
    assert_eq!(a.body["volume_types"][0]["name"], "cephfstype");
    assert_eq!(
        a.body["share_types"][0]["required_extra_specs"]["driver_handles_share_servers"],
        "False"
    );
    assert_eq!(a.body["share_types"][0]["is_default"], true);
    assert_eq!(
        a.body["share_types"][0]["share_type_access:is_public"],
        true
    );
    let old = env.get(&t, "2.6", "/v2/types").await;
    assert_eq!(
        old.body["share_types"][0]["os-share-type-access:is_public"],
        true
    );
    assert!(old.body["share_types"][0].get("is_default").is_none());
    let id = a.body["share_types"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        env.get(&t, "2.65", "/v2/types/default").await.body["share_type"]["id"],
        id.as_str()
    );
    assert_eq!(
        env.get(&t, "2.65", &format!("/v2/types/{id}")).await.status,
        StatusCode::OK
    );
    let specs = env
        .get(&t, "2.65", &format!("/v2/types/{id}/extra_specs"))
        .await;
    assert_eq!(specs.body["extra_specs"]["snapshot_support"], "True");
    assert_eq!(
        env.get(&t, "2.65", "/v2/types/gold").await.status,
        StatusCode::NOT_FOUND
    );
    // A share by type ID (as OSC sends it).
    let a = env
        .post(
            &t,
            "2.65",
            "/v2/shares",
            json!({"share": {"share_proto": "CEPHFS", "size": 1, "share_type": id}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let z = env.get(&t, "2.65", "/v2/availability-zones").await;
    assert_eq!(z.body["availability_zones"][0]["name"], "nova");
}
