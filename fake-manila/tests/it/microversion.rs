//! Microversion negotiation, discovery, and the gating of routes, actions and fields.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;

use crate::support::{MANILA_URL, Req, env};

#[tokio::test]
async fn discovery_documents() {
    let env = env().await;
    for path in ["/v2", "/v2/"] {
        let a = env
            .send(Req {
                method: Method::GET,
                path,
                token: None,
                version: None,
                body: None,
            })
            .await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        let versions = a.body["versions"].as_array().expect("versions");
        assert_eq!(versions.len(), 1, "gophercloud wants exactly one");
        assert_eq!(versions[0]["id"], "v2.0");
        assert_eq!(versions[0]["status"], "CURRENT");
        assert_eq!(versions[0]["min_version"], "2.0");
        assert_eq!(versions[0]["version"], "2.99");
        assert_eq!(versions[0]["links"][1]["href"], format!("{MANILA_URL}/v2/"));
    }
    // manilaclient discovers from Manila's `/` with its version header: the root.
    let req = Request::get("/")
        .header("X-Openstack-Manila-Api-Version", "2.91")
        .body(Body::empty())
        .expect("request");
    let a = env.raw(req).await;
    assert_eq!(a.status, StatusCode::MULTIPLE_CHOICES);
    assert_eq!(a.body["versions"][0]["version"], "2.99");
}

#[tokio::test]
async fn negotiation_and_echo() {
    let env = env().await;
    let t = env.demo().await;
    // No header: 2.0, echoed.
    let a = env
        .send(Req {
            method: Method::GET,
            path: "/v2/shares",
            token: Some(&t),
            version: None,
            body: None,
        })
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["x-openstack-manila-api-version"], "2.0");
    assert_eq!(a.headers["vary"], "X-OpenStack-Manila-API-Version");
    // The header name is matched whatever its case (the legacy CLI's casing).
    let req = Request::get("/v2/shares")
        .header("X-Openstack-Manila-Api-Version", "2.91")
        .header("x-auth-token", &t)
        .body(Body::empty())
        .expect("request");
    let a = env.raw(req).await;
    assert_eq!(a.headers["x-openstack-manila-api-version"], "2.91");
    // OpenStack-API-Version alone is ignored by Manila.
    let req = Request::get("/v2/shares")
        .header("OpenStack-API-Version", "shared-file-system 2.50")
        .header("x-auth-token", &t)
        .body(Body::empty())
        .expect("request");
    assert_eq!(
        env.raw(req).await.headers["x-openstack-manila-api-version"],
        "2.0"
    );
    // Out of range: 406 computeFault; malformed: 400.
    let a = env.get(&t, "9.99", "/v2/shares").await;
    assert_eq!(a.status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(
        a.body["computeFault"]["message"],
        "Version 9.99 is not supported by the API. Minimum is 2.0 and maximum is 2.99."
    );
    assert_eq!(a.headers["vary"], "X-OpenStack-Manila-API-Version");
    assert_eq!(
        env.get(&t, "2.100", "/v2/shares").await.status,
        StatusCode::NOT_ACCEPTABLE
    );
    let a = env.get(&t, "abc", "/v2/shares").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body["badRequest"]["message"].is_string());
    assert_eq!(
        env.get(&t, "latest", "/v2/shares").await.status,
        StatusCode::BAD_REQUEST
    );
    // Errors echo the version too.
    let a = env.get(&t, "2.33", "/v2/shares/nope").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.headers["x-openstack-manila-api-version"], "2.33");
}

#[tokio::test]
async fn routes_and_actions_are_gated() {
    let env = env().await;
    let t = env.demo().await;
    let id = env.share(&t, "gated", 1).await;
    let action = format!("/v2/shares/{id}/action");
    let status = |v: &'static str, body: serde_json::Value| {
        let (env, t, action) = (&env, t.clone(), action.clone());
        async move { env.post(&t, v, &action, body).await.status }
    };
    // extend exists from 2.7, os-extend below it; a 404 leaves the share alone.
    assert_eq!(
        status("2.0", json!({"extend": {"new_size": 2}})).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status("2.7", json!({"os-extend": {"new_size": 2}})).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status("2.6", json!({"os-extend": {"new_size": 2}})).await,
        StatusCode::ACCEPTED
    );
    env.wait_share(&t, &id, "available").await;
    // access_list: os- below 2.7, plain 2.7–2.44, gone from 2.45.
    assert_eq!(
        status("2.6", json!({"os-access_list": null})).await,
        StatusCode::OK
    );
    assert_eq!(
        status("2.44", json!({"access_list": null})).await,
        StatusCode::OK
    );
    assert_eq!(
        status("2.45", json!({"access_list": null})).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status("2.65", json!({"frobnicate": {}})).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status("2.65", json!({"extend": {"new_size": 3}, "shrink": {}})).await,
        StatusCode::BAD_REQUEST
    );
    // cephx from 2.13.
    let a = env
        .post(
            &t,
            "2.12",
            &action,
            json!({"allow_access": {"access_type": "cephx", "access_to": "x"}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // Routes.
    let rules = format!("/v2/share-access-rules?share_id={id}");
    assert_eq!(
        env.get(&t, "2.44", &rules).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(env.get(&t, "2.45", &rules).await.status, StatusCode::OK);
    let els = format!("/v2/shares/{id}/export_locations");
    assert_eq!(env.get(&t, "2.8", &els).await.status, StatusCode::NOT_FOUND);
    assert_eq!(env.get(&t, "2.9", &els).await.status, StatusCode::OK);
    assert_eq!(
        env.get(&t, "2.36", "/v2/messages").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        env.get(&t, "2.37", "/v2/messages").await.status,
        StatusCode::OK
    );
    assert_eq!(
        env.get(&t, "2.6", "/v2/availability-zones").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        env.get(&t, "2.6", "/v2/os-availability-zone").await.status,
        StatusCode::OK
    );
    assert_eq!(
        env.get(&t, "2.7", "/v2/os-availability-zone").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        env.get(&t, "2.7", "/v2/availability-zones").await.status,
        StatusCode::OK
    );
    let a = env.get(&t, "2.65", "/v2/nonsense").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.body["itemNotFound"]["code"], 404);
    assert_eq!(
        env.get(&t, "2.65", "/nothing/here").await.status,
        StatusCode::NOT_FOUND
    );
    let a = env
        .send(Req {
            method: Method::PATCH,
            path: "/v2/shares",
            token: Some(&t),
            version: Some("2.65"),
            body: None,
        })
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.body["badMethod"]["code"], 405);
}

#[tokio::test]
async fn fields_are_gated() {
    let env = env().await;
    let t = env.demo().await;
    let id = env.share(&t, "fields", 1).await;
    let path = format!("/v2/shares/{id}");
    let v20 = env.get(&t, "2.0", &path).await.body["share"].clone();
    assert_eq!(v20["share_type"], "cephfstype");
    assert!(
        v20["export_location"]
            .as_str()
            .expect("export_location")
            .contains(":/volumes/_nogroup/")
    );
    assert_eq!(v20["export_locations"].as_array().map(Vec::len), Some(1));
    assert!(v20.get("snapshot_support").is_none());
    assert!(v20.get("access_rules_status").is_none());
    let v26 = env.get(&t, "2.6", &path).await.body["share"].clone();
    assert_eq!(v26["share_type_name"], "cephfstype");
    assert_ne!(v26["share_type"], "cephfstype");
    let v9 = env.get(&t, "2.9", &path).await.body["share"].clone();
    assert!(v9.get("export_location").is_none());
    assert!(v9.get("export_locations").is_none());
    let latest = env.get(&t, "2.99", &path).await.body["share"].clone();
    for field in [
        "snapshot_support",
        "task_state",
        "access_rules_status",
        "replication_type",
        "has_replicas",
        "user_id",
        "create_share_from_snapshot_support",
        "revert_to_snapshot_support",
        "share_group_id",
        "mount_snapshot_support",
        "progress",
        "is_soft_deleted",
        "scheduled_to_be_deleted_at",
        "source_backup_id",
        "encryption_key_ref",
        "snapshot_inherit_share_access_support",
    ] {
        assert!(latest.get(field).is_some(), "{field} missing at 2.99");
    }
    assert!(latest.get("host").is_none(), "host is admin-only");
    let admin = env.admin().await;
    assert!(
        env.get(&admin, "2.99", &path).await.body["share"]
            .get("host")
            .is_some()
    );
    // Timestamps have no zone suffix.
    let created = latest["created_at"].as_str().expect("created_at");
    assert_eq!(created.len(), 26, "{created}");
    assert!(!created.ends_with('Z'));
    // Export locations: preferred from 2.14.
    let els = format!("/v2/shares/{id}/export_locations");
    assert!(
        env.get(&t, "2.13", &els).await.body["export_locations"][0]
            .get("preferred")
            .is_none()
    );
    assert_eq!(
        env.get(&t, "2.14", &els).await.body["export_locations"][0]["preferred"],
        true
    );
}

#[tokio::test]
async fn project_in_url() {
    let env = env().await;
    let t = env.demo().await;
    let pid = env.get(&t, "2.65", "/v2/limits").await;
    assert_eq!(pid.status, StatusCode::OK);
    let id = env.share(&t, "url", 1).await;
    let a = env.get(&t, "2.65", "/v2/shares").await;
    let project = a.body["shares"][0]["links"][0]["href"]
        .as_str()
        .expect("link")
        .split('/')
        .nth(4)
        .expect("project segment")
        .to_owned();
    let a = env
        .get(&t, "2.65", &format!("/v2/{project}/shares/{id}"))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let a = env
        .get(&t, "2.65", &format!("/v2/0000aaaa/shares/{id}"))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.body["badRequest"]["message"], "Malformed request url");
}
