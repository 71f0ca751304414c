//! Keystone and Manila are separate endpoints: each answers `GET /` with its own
//! versions, whatever the headers; each serves only its own API; the catalog sends
//! clients to Manila's.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};

use crate::support::{Env, KEYSTONE_URL, MANILA_URL, Service, env, env_with};

/// `method /` on one endpoint with `headers`.
async fn root(
    env: &Env,
    service: Service,
    method: Method,
    headers: &[(&str, &str)],
) -> crate::support::Answer {
    let mut r = Request::builder().method(method).uri("/");
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    env.raw_to(service, r.body(Body::empty()).expect("request"))
        .await
}

/// Manila's version list, as `manila/api/versions.py` builds it at a root of
/// `MANILA_URL` advertising up to `max`.
fn manila_versions(max: &str) -> Value {
    let entry = |id: &str, status: &str, min: &str, max: &str, path: &str| {
        json!({
            "id": id,
            "status": status,
            "version": max,
            "min_version": min,
            "updated": "2015-08-27T11:33:21Z",
            "links": [
                {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"},
                {"rel": "self", "href": format!("{MANILA_URL}/{path}/")},
            ],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.share+json;version=1"}],
        })
    };
    // Current Manila lists v2.0 alone (the v1.0 API is gone).
    json!({"versions": [entry("v2.0", "CURRENT", "2.0", max, "v2")]})
}

#[tokio::test]
async fn manilas_root_lists_its_versions_without_headers() {
    let env = env().await;
    let a = root(&env, Service::Manila, Method::GET, &[]).await;
    assert_eq!(a.status, StatusCode::MULTIPLE_CHOICES, "{}", a.text);
    assert_eq!(a.body, manila_versions("2.99"));
    assert_eq!(a.headers["content-type"], "application/json");
    // The root is unversioned: no version is echoed, nothing varies with the header.
    assert!(!a.headers.contains_key("x-openstack-manila-api-version"));
    assert!(!a.headers.contains_key("vary"));
}

#[tokio::test]
async fn manilas_root_ignores_version_headers_and_methods() {
    let env = env().await;
    for headers in [
        // manilaclient's discovery.
        &[("X-Openstack-Manila-Api-Version", "2.91")][..],
        // keystoneauth's two headers.
        &[
            ("X-OpenStack-Manila-API-Version", "2.82"),
            ("OpenStack-API-Version", "shared-file-system 2.82"),
        ][..],
        // Out of range and malformed: still not negotiated at the root.
        &[("X-OpenStack-Manila-API-Version", "9.99")][..],
        &[("X-OpenStack-Manila-API-Version", "x.y")][..],
        // A token changes nothing either.
        &[("X-Auth-Token", "bogus")][..],
    ] {
        let a = root(&env, Service::Manila, Method::GET, headers).await;
        assert_eq!(a.status, StatusCode::MULTIPLE_CHOICES, "{headers:?}");
        assert_eq!(a.body, manila_versions("2.99"), "{headers:?}");
        assert!(!a.headers.contains_key("x-openstack-manila-api-version"));
    }
    // Manila routes every method of `/` to the version list.
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let a = root(&env, Service::Manila, method.clone(), &[]).await;
        assert_eq!(a.status, StatusCode::MULTIPLE_CHOICES, "{method}");
        assert_eq!(a.body, manila_versions("2.99"), "{method}");
    }
}

#[tokio::test]
async fn manilas_root_advertises_the_configured_maximum() {
    let env = env_with(|c| c.max_version = "2.50".parse().expect("version")).await;
    let a = root(&env, Service::Manila, Method::GET, &[]).await;
    assert_eq!(a.body, manila_versions("2.50"));
    let a = env
        .raw(Request::get("/v2/").body(Body::empty()).expect("request"))
        .await;
    assert_eq!(a.body["versions"][0]["version"], "2.50");
}

#[tokio::test]
async fn keystones_root_lists_keystones_versions_whatever_the_headers() {
    let env = env().await;
    for headers in [&[][..], &[("X-OpenStack-Manila-API-Version", "2.91")][..]] {
        let a = root(&env, Service::Keystone, Method::GET, headers).await;
        assert_eq!(a.status, StatusCode::MULTIPLE_CHOICES, "{headers:?}");
        let values = a.body["versions"]["values"]
            .as_array()
            .expect("Keystone's versions.values");
        assert_eq!(values.len(), 1);
        assert_eq!(values[0]["id"], "v3.14");
        assert_eq!(values[0]["status"], "stable");
        assert_eq!(values[0]["links"][0]["href"], format!("{KEYSTONE_URL}/v3/"));
    }
}

#[tokio::test]
async fn each_endpoint_serves_only_its_own_api() {
    let env = env().await;
    // Manila's API is not on Keystone's endpoint: Keystone's 404.
    for path in [
        "/v2",
        "/v2/",
        "/v2/shares",
        "/metrics",
        "/admin/faults",
        "/v1/",
    ] {
        let a = env
            .raw_to(
                Service::Keystone,
                Request::get(path).body(Body::empty()).expect("request"),
            )
            .await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "keystone {path}");
        assert_eq!(a.body["error"]["code"], 404, "keystone {path}: {}", a.text);
        assert_eq!(a.body["error"]["title"], "Not Found");
    }
    // Keystone's API is not on Manila's: Manila's 404 (and no `/v1` either).
    for path in ["/v3", "/v3/", "/v3/auth/tokens", "/v1", "/v1/"] {
        let a = env
            .raw_to(
                Service::Manila,
                Request::get(path).body(Body::empty()).expect("request"),
            )
            .await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "manila {path}");
        assert_eq!(
            a.body["itemNotFound"]["code"], 404,
            "manila {path}: {}",
            a.text
        );
    }
    // A method a Keystone route does not take gets Keystone's 405 body.
    let a = env
        .raw_to(
            Service::Keystone,
            Request::put("/v3/auth/tokens")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.body["error"]["code"], 405);
}

#[tokio::test]
async fn the_catalog_points_at_manilas_endpoint() {
    let env = env().await;
    let t = env.demo().await;
    let a = env
        .raw(
            Request::get("/v3/auth/catalog")
                .header("x-auth-token", &t)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let catalog = a.body["catalog"].as_array().expect("catalog");
    let urls = |ty: &str| -> Vec<String> {
        catalog
            .iter()
            .filter(|e| e["type"] == ty)
            .flat_map(|e| e["endpoints"].as_array().cloned().unwrap_or_default())
            .map(|e| e["url"].as_str().expect("url").to_owned())
            .collect()
    };
    assert_eq!(urls("sharev2"), vec![format!("{MANILA_URL}/v2"); 3]);
    assert_eq!(urls("identity"), vec![format!("{KEYSTONE_URL}/v3"); 3]);
    // No legacy `share` entry that gophercloud could take first.
    assert!(urls("share").is_empty());
    // The versions the catalog URL leads to are Manila's.
    let a = env
        .raw_to(
            Service::Manila,
            Request::get("/v2").body(Body::empty()).expect("request"),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.body["versions"][0]["links"][1]["href"],
        format!("{MANILA_URL}/v2/")
    );
    // Links in Manila's answers name Manila's endpoint.
    let id = env.share(&t, "linked", 1).await;
    let s = env.get(&t, "2.65", &format!("/v2/shares/{id}")).await;
    let links = s.body["share"]["links"].as_array().expect("links");
    assert!(
        links
            .iter()
            .all(|l| l["href"].as_str().expect("href").starts_with(MANILA_URL)),
        "{links:?}"
    );
}

/// Both listeners serve through fake-ceph's serving loop: a silent connection to either
/// is closed after the header timeout, while a client is still served (issue 14, item 3).
#[tokio::test]
async fn both_listeners_close_silent_connections() {
    use tokio::io::AsyncReadExt;
    let (cluster, ceph_url, _server) = crate::support::ceph().await;
    let listeners = fake_manila::Listeners::loopback().await.expect("bind");
    let mut c = crate::support::config(&cluster, &ceph_url);
    c.keystone_url = listeners.keystone_url();
    c.manila_url = listeners.manila_url();
    let (k, m) = (listeners.keystone_url(), listeners.manila_url());
    let (ka, ma) = (listeners.keystone_addr(), listeners.manila_addr());
    let state = fake_manila::AppState::new(c).expect("state");
    let config = fake_ceph::service::ServeConfig {
        header_read_timeout: std::time::Duration::from_millis(200),
        max_connections: 4,
        ..Default::default()
    };
    tokio::spawn(listeners.serve_with(state, config, std::future::pending()));
    let mut silent = Vec::new();
    for addr in [ka, ma] {
        for _ in 0..3 {
            silent.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
        }
    }
    for url in [k, m] {
        let r = reqwest::get(format!("{url}/")).await.expect("served");
        assert_eq!(r.status(), 300);
    }
    for mut s in silent {
        let mut buf = [0u8; 64];
        let r = tokio::time::timeout(std::time::Duration::from_secs(3), s.read(&mut buf)).await;
        assert!(
            matches!(r, Ok(Ok(0)) | Ok(Err(_))),
            "a silent connection stayed open: {r:?}"
        );
    }
}
