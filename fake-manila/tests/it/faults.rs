//! Faults: seeded, reproducible, settable through the admin route.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fake_manila::Faults;
use serde_json::json;

use crate::support::{Env, env_with, wait};

async fn statuses(env: &Env, n: usize) -> Vec<u16> {
    let t = env.demo().await;
    let mut out = Vec::new();
    for _ in 0..n {
        let a = env.get(&t, "2.65", "/v2/shares").await;
        if a.status.is_server_error() {
            let name = if a.status == StatusCode::SERVICE_UNAVAILABLE {
                "serviceUnavailable"
            } else {
                "computeFault"
            };
            assert_eq!(a.body[name]["code"], a.status.as_u16(), "{}", a.text);
        }
        out.push(a.status.as_u16());
    }
    out
}

fn with_errors(seed: u64) -> impl FnOnce(&mut fake_manila::Config) {
    move |c| {
        c.seed = Some(seed);
        c.faults = Faults {
            error_rate: 0.5,
            ..Faults::default()
        };
    }
}

#[tokio::test]
async fn error_rate_is_seeded_and_reproducible() {
    let a = statuses(&env_with(with_errors(7)).await, 40).await;
    let b = statuses(&env_with(with_errors(7)).await, 40).await;
    let c = statuses(&env_with(with_errors(8)).await, 40).await;
    assert_eq!(a, b, "one seed, one sequence");
    assert_ne!(a, c, "another seed, another sequence");
    assert!(
        a.contains(&200) && a.contains(&500) && a.contains(&503),
        "{a:?}"
    );
}

#[tokio::test]
async fn share_and_access_faults() {
    let env = env_with(|c| {
        c.faults = Faults {
            stuck_creating_rate: 1.0,
            ..Faults::default()
        }
    })
    .await;
    let t = env.demo().await;
    let a = env
        .post(
            &t,
            "2.65",
            "/v2/shares",
            json!({"share": {"share_proto": "CEPHFS", "size": 1}}),
        )
        .await;
    let stuck = a.body["share"]["id"].as_str().expect("id").to_owned();
    // Change the faults through the admin route: shares now end in error.
    let admin = env.admin().await;
    let put = |token: String, body: serde_json::Value| {
        let env = &env;
        async move {
            env.raw(
                Request::put("/admin/faults")
                    .header("x-auth-token", token)
                    .body(Body::from(body.to_string()))
                    .expect("request"),
            )
            .await
        }
    };
    assert_eq!(
        put(t.clone(), json!({"share_error_rate": 1.0}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        put(admin.clone(), json!({"share_error_rate": 2.0}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        put(admin.clone(), json!({"nonsense": 1})).await.status,
        StatusCode::BAD_REQUEST
    );
    let a = put(admin.clone(), json!({"share_error_rate": 1.0})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["share_error_rate"], 1.0);
    let a = env
        .post(
            &t,
            "2.65",
            "/v2/shares",
            json!({"share": {"share_proto": "CEPHFS", "size": 1}}),
        )
        .await;
    let failed = a.body["share"]["id"].as_str().expect("id").to_owned();
    env.wait_share(&t, &failed, "error").await;
    let m = env
        .get(&t, "2.37", &format!("/v2/messages?resource_id={failed}&message_level=ERROR&limit=1&sort_key=created_at&sort_dir=desc"))
        .await;
    assert_eq!(m.body["messages"][0]["action_id"], "001");
    assert_eq!(m.body["messages"][0]["detail_id"], "002");
    assert_eq!(m.body["messages"][0]["resource_type"], "SHARE");
    let mid = m.body["messages"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        env.get(&t, "2.37", &format!("/v2/messages/{mid}"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        env.delete(&t, "2.37", &format!("/v2/messages/{mid}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    // The stuck one is still creating, and Ceph never saw it.
    assert_eq!(
        env.get(&t, "2.65", &format!("/v2/shares/{stuck}"))
            .await
            .body["share"]["status"],
        "creating"
    );
    let (ret, _, _) = env
        .ceph(json!({"prefix": "fs subvolume getpath", "sub_name": stuck}))
        .await;
    assert_eq!(ret, -2);
    // Access rules ending in error.
    put(admin.clone(), json!({"access_error_rate": 1.0})).await;
    let id = env.share(&t, "ok", 1).await;
    let a = env
        .post(
            &t,
            "2.65",
            &format!("/v2/shares/{id}/action"),
            json!({"allow_access": {"access_type": "cephx", "access_to": "dave"}}),
        )
        .await;
    let rid = a.body["access"]["id"].as_str().expect("id").to_owned();
    wait(|| async {
        (env.get(&t, "2.65", &format!("/v2/share-access-rules/{rid}"))
            .await
            .body["access"]["state"]
            == "error")
            .then_some(())
    })
    .await
    .expect("rule errors");
    assert_eq!(env.cluster.key_of("client.dave"), None);
    let got = env
        .raw(
            Request::get("/admin/faults")
                .header("x-auth-token", admin)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(got.body["access_error_rate"], 1.0);
}

#[tokio::test]
async fn latency_is_added() {
    let env = env_with(|c| {
        c.faults = Faults {
            latency_ms: 120,
            ..Faults::default()
        }
    })
    .await;
    let t = env.demo().await;
    let started = std::time::Instant::now();
    env.get(&t, "2.65", "/v2/shares").await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(120));
}

#[tokio::test]
async fn ids_follow_the_seed() {
    async fn ids(seed: u64) -> (String, String) {
        let env = env_with(move |c| c.seed = Some(seed)).await;
        let t = env.demo().await;
        let a = env
            .post(
                &t,
                "2.65",
                "/v2/shares",
                json!({"share": {"share_proto": "CEPHFS", "size": 1}}),
            )
            .await;
        let project = a.body["share"]["project_id"]
            .as_str()
            .expect("project")
            .to_owned();
        (
            a.body["share"]["id"].as_str().expect("id").to_owned(),
            project,
        )
    }
    assert_eq!(ids(11).await, ids(11).await);
    assert_ne!(ids(11).await.0, ids(12).await.0);
}
