//! Fault knobs: latency, error rate, hang, MDS down, evict-all; flags and admin routes.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use fake_ceph::errno::*;
use fake_ceph::{Config, FaultRule, Faults, MountRequest};
use serde_json::json;

use crate::support::Fake;

fn rule(prefix: &str) -> FaultRule {
    FaultRule {
        prefix: prefix.into(),
        latency_ms: None,
        error_rate: None,
        errno: None,
        hang: false,
    }
}

#[tokio::test]
async fn latency_applies_to_matching_commands_only() {
    let f = Fake::new();
    f.cluster.set_faults(Faults {
        rules: vec![FaultRule {
            latency_ms: Some(150),
            ..rule("fs subvolume *")
        }],
        mds_down: false,
    });
    let t = Instant::now();
    f.ok(json!({"prefix": "fs ls"})).await;
    assert!(t.elapsed() < Duration::from_millis(100));
    let t = Instant::now();
    f.cmd(json!({"prefix": "fs subvolume ls", "vol_name": "cephfs"}))
        .await;
    assert!(t.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn hang_never_answers() {
    let f = Fake::new();
    f.cluster.set_faults(Faults {
        rules: vec![FaultRule {
            hang: true,
            ..rule("fs subvolume create")
        }],
        mds_down: false,
    });
    let r = tokio::time::timeout(
        Duration::from_millis(200),
        f.cmd(json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "sub_name": "x"})),
    )
    .await;
    assert!(r.is_err(), "a hung command answered: {r:?}");
    // Other commands still answer.
    f.ok(json!({"prefix": "fs ls"})).await;
}

async fn error_sequence(seed: u64) -> Vec<i32> {
    let f = Fake::with(Config {
        seed,
        ..Config::default()
    });
    f.cluster.set_faults(Faults {
        rules: vec![FaultRule {
            error_rate: Some(0.5),
            errno: Some(EAGAIN),
            ..rule("*")
        }],
        mds_down: false,
    });
    let mut v = Vec::new();
    for _ in 0..64 {
        v.push(f.cmd(json!({"prefix": "fs ls"})).await.ret);
    }
    v
}

#[tokio::test]
async fn error_rate_is_seeded() {
    let a = error_sequence(42).await;
    assert_eq!(a, error_sequence(42).await, "same seed, same decisions");
    assert_ne!(a, error_sequence(43).await);
    let fails = a.iter().filter(|r| **r == -EAGAIN).count();
    assert!((16..=48).contains(&fails), "{fails} of 64 at rate 0.5");
    assert!(a.iter().all(|r| *r == 0 || *r == -EAGAIN));
}

#[tokio::test]
async fn client_operations_take_faults_too() {
    let f = Fake::new();
    let m = f
        .cluster
        .mount("client.admin", &f.admin_key, MountRequest::default())
        .await
        .unwrap();
    f.cluster.set_faults(Faults {
        rules: vec![FaultRule {
            error_rate: Some(1.0),
            errno: Some(EIO),
            ..rule("client stat")
        }],
        mds_down: false,
    });
    assert_eq!(m.stat("").await.unwrap_err().errno, EIO);
    m.mkdir("ok").await.unwrap();
    f.cluster.set_faults(Faults {
        rules: vec![FaultRule {
            error_rate: Some(1.0),
            errno: Some(EACCES),
            ..rule("client session open")
        }],
        mds_down: false,
    });
    let e = f
        .cluster
        .mount("client.admin", &f.admin_key, MountRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.errno, EACCES);
}

#[tokio::test]
async fn admin_routes() {
    let f = Fake::new();
    let key = f.admin_key.clone();
    let admin = Some(("client.admin", key.as_str()));
    let body =
        json!({"rules": [{"prefix": "fs ls", "error_rate": 1.0, "errno": 11}], "mds_down": false});
    let (status, v) = f
        .http("PUT", "/admin/faults", admin, body.to_string())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["rules"][0]["prefix"], "fs ls");
    f.err(json!({"prefix": "fs ls"}), EAGAIN).await;
    let (_, v) = f.http("GET", "/admin/faults", admin, "").await;
    assert_eq!(v["rules"][0]["errno"], 11);
    // Bad rules are refused and change nothing.
    let (_, v) = f
        .http(
            "PUT",
            "/admin/faults",
            admin,
            json!({"rules": [{"prefix": "*", "error_rate": 7.0}]}).to_string(),
        )
        .await;
    assert_eq!(v["ret"], -EINVAL);
    let (_, v) = f.http("PUT", "/admin/faults", admin, "{".to_owned()).await;
    assert_eq!(v["ret"], -EINVAL);
    f.err(json!({"prefix": "fs ls"}), EAGAIN).await;
    let (_, _) = f
        .http("PUT", "/admin/faults", admin, json!({}).to_string())
        .await;
    f.ok(json!({"prefix": "fs ls"})).await;
    // MDS down through the route.
    let (_, v) = f
        .http(
            "PUT",
            "/admin/faults",
            admin,
            json!({"mds_down": true}).to_string(),
        )
        .await;
    assert_eq!(v["mds_down"], true);
    let h = f
        .ok_json(json!({"prefix": "health", "format": "json"}))
        .await;
    assert_eq!(h["status"], "HEALTH_ERR");
    f.http("PUT", "/admin/faults", admin, json!({}).to_string())
        .await;
    // Evict-all.
    let m = f
        .cluster
        .mount("client.admin", &f.admin_key, MountRequest::default())
        .await
        .unwrap();
    let (_, v) = f.http("POST", "/admin/evict-all", admin, "").await;
    assert_eq!(v["evicted"], 1);
    assert!(!m.is_open());
    // Only an admin may turn the knobs.
    let ukey = f.user("client.u", &["mon", "allow r"]).await;
    let (_, v) = f
        .http(
            "PUT",
            "/admin/faults",
            Some(("client.u", &ukey)),
            json!({"mds_down": true}).to_string(),
        )
        .await;
    assert_eq!(v["ret"], -EACCES);
    let (status, _) = f.http("GET", "/admin/faults", None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!f.cluster.faults().mds_down);
}
