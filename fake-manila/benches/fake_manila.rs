//! fake-manila throughput, in process (`keystone_router`/`manila_router` `.oneshot`), with fake-ceph in the same
//! process behind a loopback HTTP socket and every transition delay at zero.
//!
//! - `keystone/token_issue`: `POST /v3/auth/tokens` (password, project by name).
//! - `manila/share_show`: `GET /v2/shares/{id}` at 2.65 (token check, version, view).
//! - `manila/share_create_wait_delete`: `POST /v2/shares`, poll `GET` until `available`,
//!   `DELETE`, poll until 404: one subvolume create, getpath, mon dump and rm in fake-ceph.
//! - `manila/share_create_wait_delete_x16`: 16 of those at once, each polling every
//!   millisecond.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use criterion::{Criterion, Throughput, criterion_group};
use fake_manila::{AppState, CephConfig, CephIdentity, Config, Delays, Secret};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// fake-ceph on a loopback socket and fake-manila's routers (Keystone's, Manila's) on it.
fn setup(rt: &tokio::runtime::Runtime) -> (Router, Router) {
    rt.block_on(async {
        let cluster = fake_ceph::Cluster::new(fake_ceph::Config::default()).expect("fake-ceph");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = fake_ceph::router(cluster.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let mut c = Config::new(
            "http://keystone.bench",
            "http://manila.bench",
            CephConfig {
                url: format!("http://{addr}"),
                identity: CephIdentity {
                    entity: "client.admin".into(),
                    key: Secret::new(cluster.admin_key()),
                },
                fs_name: "cephfs".into(),
                group: None,
                timeout: Duration::from_secs(30),
            },
        );
        c.delays = Delays::all(Duration::ZERO);
        c.quotas.shares = -1;
        c.quotas.gigabytes = -1;
        let state = AppState::new(c).expect("fake-manila");
        (
            fake_manila::keystone_router(state.clone()),
            fake_manila::manila_router(state),
        )
    })
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Value, Option<String>) {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let token = resp
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        token,
    )
}

fn auth_body() -> String {
    json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "demo", "domain": {"name": "Default"}, "password": "demo"}}},
        "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}})
    .to_string()
}

async fn token(app: &Router) -> String {
    let req = Request::post("/v3/auth/tokens")
        .body(Body::from(auth_body()))
        .expect("request");
    let (status, _, token) = call(app, req).await;
    assert_eq!(status, StatusCode::CREATED);
    token.expect("token")
}

fn get(token: &str, path: &str) -> Request<Body> {
    Request::get(path)
        .header("x-auth-token", token)
        .header("X-OpenStack-Manila-API-Version", "2.65")
        .body(Body::empty())
        .expect("request")
}

/// Between two polls: a yield for the lone client, a millisecond for each of many (16
/// clients spinning would measure their polling, not the service).
async fn between_polls(many: bool) {
    if many {
        tokio::time::sleep(Duration::from_millis(1)).await;
    } else {
        tokio::task::yield_now().await;
    }
}

async fn share_round_trip(app: &Router, token: &str, many: bool) {
    let req = Request::post("/v2/shares")
        .header("x-auth-token", token)
        .header("X-OpenStack-Manila-API-Version", "2.65")
        .body(Body::from(
            json!({"share": {"share_proto": "CEPHFS", "size": 1}}).to_string(),
        ))
        .expect("request");
    let (status, body, _) = call(app, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = format!("/v2/shares/{}", body["share"]["id"].as_str().expect("id"));
    loop {
        let (_, b, _) = call(app, get(token, &path)).await;
        match b["share"]["status"].as_str() {
            Some("available") => break,
            Some("creating") => between_polls(many).await,
            other => panic!("share went {other:?}"),
        }
    }
    let req = Request::delete(path.as_str())
        .header("x-auth-token", token)
        .header("X-OpenStack-Manila-API-Version", "2.65")
        .body(Body::empty())
        .expect("request");
    assert_eq!(call(app, req).await.0, StatusCode::ACCEPTED);
    while call(app, get(token, &path)).await.0 != StatusCode::NOT_FOUND {
        between_polls(many).await;
    }
}

fn keystone(c: &mut Criterion) {
    let rt = runtime();
    let (app, _) = setup(&rt);
    let mut g = c.benchmark_group("keystone");
    g.throughput(Throughput::Elements(1));
    g.bench_function("token_issue", |b| {
        b.to_async(&rt).iter(|| token(&app));
    });
    g.finish();
}

fn manila(c: &mut Criterion) {
    let rt = runtime();
    let (keystone, app) = setup(&rt);
    let tok = rt.block_on(token(&keystone));
    let id = rt.block_on(async {
        let req = Request::post("/v2/shares")
            .header("x-auth-token", &tok)
            .header("X-OpenStack-Manila-API-Version", "2.65")
            .body(Body::from(
                json!({"share": {"share_proto": "CEPHFS", "size": 1}}).to_string(),
            ))
            .expect("request");
        call(&app, req).await.1["share"]["id"]
            .as_str()
            .expect("id")
            .to_owned()
    });
    let show = format!("/v2/shares/{id}");
    let mut g = c.benchmark_group("manila");
    g.throughput(Throughput::Elements(1));
    g.bench_function("share_show", |b| {
        b.to_async(&rt).iter(|| async {
            assert_eq!(call(&app, get(&tok, &show)).await.0, StatusCode::OK);
        });
    });
    g.sample_size(30);
    g.bench_function("share_create_wait_delete", |b| {
        b.to_async(&rt).iter(|| share_round_trip(&app, &tok, false));
    });
    g.throughput(Throughput::Elements(16));
    g.bench_function("share_create_wait_delete_x16", |b| {
        b.to_async(&rt).iter(|| async {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..16 {
                let (app, tok) = (app.clone(), tok.clone());
                set.spawn(async move { share_round_trip(&app, &tok, true).await });
            }
            while let Some(r) = set.join_next().await {
                r.expect("round trip");
            }
        });
    });
    g.finish();
}

criterion_group!(benches, keystone, manila);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
