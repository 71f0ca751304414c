//! No input from the network panics a handler or gets a 500: arbitrary paths, methods,
//! headers and bodies, sent to both endpoints, get Manila's or Keystone's error bodies.

use axum::body::Body;
use axum::http::{HeaderValue, Request};
use proptest::prelude::*;

use crate::support::{Env, Service, env};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

const SEGMENTS: &[&str] = &[
    "v2",
    "v3",
    "shares",
    "detail",
    "action",
    "export_locations",
    "metadata",
    "snapshots",
    "share-access-rules",
    "types",
    "quota-sets",
    "limits",
    "messages",
    "auth",
    "tokens",
    "projects",
    "admin",
    "faults",
    "%ff",
    "..",
    "",
    "0123abcd",
    "default",
    "x%20y",
];

/// Paths from known segments and the ID of a real share.
fn path(share_id: &str) -> impl Strategy<Value = String> {
    let mut segments: Vec<String> = SEGMENTS.iter().map(|s| (*s).to_owned()).collect();
    segments.push(share_id.to_owned());
    let prefix = prop::sample::select(vec![
        "/v2/shares".to_owned(),
        format!("/v2/shares/{share_id}"),
        "/v2/snapshots".to_owned(),
        "/v2".to_owned(),
        "/v3".to_owned(),
        String::new(),
    ]);
    (
        prefix,
        prop::collection::vec(prop::sample::select(segments), 0..4),
    )
        .prop_map(|(p, s)| format!("{p}/{}", s.join("/")))
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        Just(b"{\"share\": {\"share_proto\": \"CEPHFS\", \"size\": 1e99}}".to_vec()),
        Just(b"{\"allow_access\": {\"access_type\": \"cephx\", \"access_to\": null}}".to_vec()),
        Just(b"{\"extend\": {\"new_size\": 99999999999999999999}}".to_vec()),
        Just(b"{\"quota_set\": {\"shares\": \"-7\"}}".to_vec()),
        Just(b"{\"auth\": {\"identity\": {\"methods\": [1]}}}".to_vec()),
        Just(
            b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
                .to_vec()
        ),
    ]
}

fn method() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"][..])
}

fn version() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        (0u32..4, 0u32..120).prop_map(|(a, b)| Some(format!("{a}.{b}").into_bytes())),
        // Not UTF-8 (obs-text is allowed on the wire).
        Just(Some(b"\xff2.5".to_vec())),
        Just(Some(b"2.5.1".to_vec())),
    ]
}

async fn check(env: &Env, token: &str, m: &str, p: &str, v: Option<Vec<u8>>, b: Vec<u8>) {
    // Every request goes to both endpoints: each must answer it without a 500.
    for service in [Service::Keystone, Service::Manila] {
        let mut r = Request::builder()
            .method(m)
            .uri(p)
            .header("x-auth-token", token);
        if let Some(v) = &v {
            let v = HeaderValue::from_bytes(v).expect("valid header bytes");
            r = r.header("x-openstack-manila-api-version", v);
        }
        let a = env
            .raw_to(service, r.body(Body::from(b.clone())).expect("request"))
            .await;
        assert!(
            !a.status.is_server_error(),
            "{service:?} {m} {p}: {} {}",
            a.status,
            a.text
        );
        if a.status.is_client_error() && m != "HEAD" {
            assert!(
                a.body.is_object(),
                "{service:?} {m} {p}: {} has no JSON error body: {}",
                a.status,
                a.text
            );
        }
    }
}

#[test]
fn arbitrary_requests_get_error_bodies_not_500s() {
    let rt = runtime();
    let (env, token, id) = rt.block_on(async {
        let env = env().await;
        let t = env.admin().await;
        let id = env.share(&t, "target", 1).await;
        (env, t, id)
    });
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(512));
    runner
        .run(&(method(), path(&id), version(), body()), |(m, p, v, b)| {
            rt.block_on(check(&env, &token, m, &p, v, b));
            Ok(())
        })
        .expect("no request gets a 500 or a bare error");
}
