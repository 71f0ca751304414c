//! Access rules: cephx users in fake-ceph with the subvolume's caps, keys, deny, lists.

use std::time::Duration;

use axum::http::StatusCode;
use fake_manila::Delays;
use serde_json::{Value, json};

use crate::support::{env, env_with, wait};

#[tokio::test]
async fn cephx_rule_becomes_a_ceph_user_with_the_key() {
    let env = env_with(|c| c.delays = Delays::all(Duration::from_millis(100))).await;
    let t = env.demo().await;
    let id = env.share(&t, "acc", 1).await;
    let action = format!("/v2/shares/{id}/action");
    let a = env
        .post(&t, "2.82", &action, json!({"allow_access": {"access_type": "cephx", "access_to": "alice", "access_level": "rw"}}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let rule = &a.body["access"];
    assert_eq!(rule["state"], "queued_to_apply");
    assert_eq!(rule["access_key"], Value::Null);
    assert_eq!(rule["share_id"], id.as_str());
    assert_eq!(rule["updated_at"], Value::Null);
    assert_eq!(rule["metadata"], json!({}));
    let rid = rule["id"].as_str().expect("rule id").to_owned();
    // The share syncs while the rule is on its way.
    let s = env.get(&t, "2.65", &format!("/v2/shares/{id}")).await;
    assert_eq!(s.body["share"]["access_rules_status"], "syncing");
    let s = env.get(&t, "2.27", &format!("/v2/shares/{id}")).await;
    assert_eq!(s.body["share"]["access_rules_status"], "out_of_sync");
    let show = format!("/v2/share-access-rules/{rid}");
    let r = wait(|| async {
        let a = env.get(&t, "2.82", &show).await;
        (a.body["access"]["state"] == "active").then(|| a.body["access"].clone())
    })
    .await
    .expect("rule becomes active");
    let key = r["access_key"].as_str().expect("key").to_owned();
    assert!(key.starts_with("AQ") && key.len() == 40, "cephx key shape");
    // fake-ceph has client.alice with that key and caps on the subvolume's path.
    assert_eq!(
        env.cluster.key_of("client.alice").as_deref(),
        Some(key.as_str())
    );
    let (_, path, _) = env
        .ceph(json!({"prefix": "fs subvolume getpath", "sub_name": id}))
        .await;
    let (ret, out, _) = env
        .mon(json!({"prefix": "auth get", "entity": "client.alice", "format": "json"}))
        .await;
    assert_eq!(ret, 0);
    let caps: Value = serde_json::from_str(&out).expect("auth json");
    assert_eq!(
        caps[0]["caps"]["mds"],
        format!("allow rw path={}", path.trim())
    );
    // The lists show it, with the key.
    let l = env
        .get(&t, "2.45", &format!("/v2/share-access-rules?share_id={id}"))
        .await;
    assert_eq!(l.body["access_list"][0]["access_key"], key.as_str());
    assert!(
        l.body["access_list"][0].get("share_id").is_none(),
        "summary view"
    );
    let l = env
        .post(&t, "2.44", &action, json!({"access_list": null}))
        .await;
    assert_eq!(l.body["access_list"][0]["access_to"], "alice");
    // Before 2.21 there is no access_key; before 2.28 states are the old ones.
    let l = env
        .post(&t, "2.20", &action, json!({"access_list": null}))
        .await;
    assert!(l.body["access_list"][0].get("access_key").is_none());
    // A duplicate is refused.
    let a = env
        .post(
            &t,
            "2.82",
            &action,
            json!({"allow_access": {"access_type": "cephx", "access_to": "alice"}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // Deny: 202, then the rule and the Ceph user are gone.
    let a = env
        .post(
            &t,
            "2.82",
            &action,
            json!({"deny_access": {"access_id": rid}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    assert_eq!(
        env.get(&t, "2.82", &show).await.body["access"]["state"],
        "queued_to_deny"
    );
    wait(|| async {
        (env.get(&t, "2.82", &show).await.status == StatusCode::NOT_FOUND).then_some(())
    })
    .await
    .expect("rule goes away");
    assert_eq!(env.cluster.key_of("client.alice"), None);
    let s = env.get(&t, "2.65", &format!("/v2/shares/{id}")).await;
    assert_eq!(s.body["share"]["access_rules_status"], "active");
    let a = env
        .post(
            &t,
            "2.82",
            &action,
            json!({"deny_access": {"access_id": rid}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn old_versions_show_old_states() {
    let env = env_with(|c| c.delays = Delays::all(Duration::from_millis(200))).await;
    let t = env.demo().await;
    let id = env.share(&t, "old", 1).await;
    let a = env
        .post(
            &t,
            "2.13",
            &format!("/v2/shares/{id}/action"),
            json!({"allow_access": {"access_type": "cephx", "access_to": "bob"}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["access"]["state"], "new");
    assert!(a.body["access"].get("access_key").is_none());
    let a = env
        .post(
            &t,
            "2.6",
            &format!("/v2/shares/{id}/action"),
            json!({"os-access_list": null}),
        )
        .await;
    assert_eq!(a.body["access_list"][0]["state"], "new");
}

#[tokio::test]
async fn rule_validation() {
    let env = env().await;
    let t = env.demo().await;
    let id = env.share(&t, "val", 1).await;
    let action = format!("/v2/shares/{id}/action");
    for (rule, msg) in [
        (
            json!({"access_type": "cephx", "access_to": "a.b"}),
            "periods",
        ),
        (json!({"access_type": "cephx", "access_to": ""}), "Ceph ID"),
        (
            json!({"access_type": "cephx", "access_to": "a b"}),
            "whitespace",
        ),
        (
            json!({"access_type": "cephx", "access_to": "x", "access_level": "admin"}),
            "access level",
        ),
        (
            json!({"access_type": "kerberos", "access_to": "x"}),
            "access types",
        ),
        (json!({"access_to": "x"}), "access_type"),
        (json!({"access_type": "cephx"}), "access_to"),
    ] {
        let a = env
            .post(&t, "2.82", &action, json!({"allow_access": rule.clone()}))
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{rule}");
        let m = a.body["badRequest"]["message"].as_str().expect("message");
        assert!(m.contains(msg), "{rule}: {m}");
    }
    // The CephFS driver refuses other types and Manila's own ID: the rule errors.
    for (ty, to) in [("ip", "10.0.0.1"), ("cephx", "admin")] {
        let a = env
            .post(
                &t,
                "2.82",
                &action,
                json!({"allow_access": {"access_type": ty, "access_to": to}}),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK);
        let rid = a.body["access"]["id"].as_str().expect("id").to_owned();
        wait(|| async {
            (env.get(&t, "2.82", &format!("/v2/share-access-rules/{rid}"))
                .await
                .body["access"]["state"]
                == "error")
                .then_some(())
        })
        .await
        .expect("rule errors");
    }
    let s = env.get(&t, "2.65", &format!("/v2/shares/{id}")).await;
    assert_eq!(s.body["share"]["access_rules_status"], "error");
    // client.admin was not touched.
    assert!(env.cluster.key_of("client.admin").is_some());
    let a = env.get(&t, "2.82", "/v2/share-access-rules").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn rules_of_other_projects_are_hidden() {
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
    let t = env.demo().await;
    let eve = env.token("eve", "eve", "eve").await;
    let id = env.share(&t, "priv", 1).await;
    let a = env
        .post(
            &t,
            "2.82",
            &format!("/v2/shares/{id}/action"),
            json!({"allow_access": {"access_type": "cephx", "access_to": "carol"}}),
        )
        .await;
    let rid = a.body["access"]["id"].as_str().expect("id").to_owned();
    // Even when the share is public, its rules (and keys) are not.
    env.put(
        &t,
        "2.65",
        &format!("/v2/shares/{id}"),
        json!({"share": {"is_public": true}}),
    )
    .await;
    assert_eq!(
        env.get(&eve, "2.82", &format!("/v2/share-access-rules/{rid}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        env.get(
            &eve,
            "2.82",
            &format!("/v2/share-access-rules?share_id={id}")
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let a = env
        .post(
            &eve,
            "2.82",
            &format!("/v2/shares/{id}/action"),
            json!({"deny_access": {"access_id": rid}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}
