//! One fake-ceph + fake-manila pair per test, and request helpers.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use fake_manila::{AppState, CephConfig, CephIdentity, Config, Delays, Secret};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Keystone's public URL in tests (the auth URL is it + `/v3`).
pub const KEYSTONE_URL: &str = "http://keystone.test:5000";
/// Manila's public URL in tests (the catalog's `sharev2` is it + `/v2`).
pub const MANILA_URL: &str = "http://manila.test:8786";

/// A fake-ceph cluster and a fake-manila service on it: Keystone's router and Manila's,
/// over one state.
pub struct Env {
    pub cluster: fake_ceph::Cluster,
    pub keystone: Router,
    pub manila: Router,
    server: tokio::task::JoinHandle<()>,
    ceph_addr: std::net::SocketAddr,
}

/// One of the two endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Keystone,
    Manila,
}

impl Service {
    /// The endpoint that serves `path`: Keystone's for `/v3...`, Manila's otherwise.
    pub fn of(path: &str) -> Self {
        if path == "/v3" || path.starts_with("/v3/") || path.starts_with("/v3?") {
            Service::Keystone
        } else {
            Service::Manila
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A fake-ceph cluster served on a loopback port; its URL.
pub async fn ceph() -> (fake_ceph::Cluster, String, tokio::task::JoinHandle<()>) {
    ceph_with(|_| {}).await
}

/// A fake-ceph cluster with its config changed by `f`, served on a loopback port.
pub async fn ceph_with(
    f: impl FnOnce(&mut fake_ceph::Config),
) -> (fake_ceph::Cluster, String, tokio::task::JoinHandle<()>) {
    let mut cfg = fake_ceph::Config::default();
    f(&mut cfg);
    cfg.volumes.clone_time = Duration::from_millis(30);
    cfg.volumes.clone_pickup = Duration::from_millis(5);
    let cluster = fake_ceph::Cluster::new(cfg).expect("fake-ceph starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound address");
    let server = serve_ceph(&cluster, listener);
    (cluster, format!("http://{addr}"), server)
}

/// Serves `cluster` on `listener` with fake-ceph's own server, whose task owns every
/// connection: aborting it drops them all, as a killed daemon would.
fn serve_ceph(
    cluster: &fake_ceph::Cluster,
    listener: tokio::net::TcpListener,
) -> tokio::task::JoinHandle<()> {
    let app = fake_ceph::router(cluster.clone());
    tokio::spawn(async move {
        let _ = fake_ceph::service::serve(
            listener,
            app,
            fake_ceph::service::ServeConfig::default(),
            std::future::pending(),
        )
        .await;
    })
}

/// A test config: zero delays, fast clone polling.
pub fn config(cluster: &fake_ceph::Cluster, ceph_url: &str) -> Config {
    let mut c = Config::new(
        KEYSTONE_URL,
        MANILA_URL,
        CephConfig {
            url: ceph_url.to_owned(),
            identity: CephIdentity {
                entity: "client.admin".into(),
                key: Secret::new(cluster.admin_key()),
            },
            fs_name: "cephfs".into(),
            group: None,
            timeout: Duration::from_secs(10),
        },
    );
    c.delays = Delays::all(Duration::ZERO);
    c.clone_poll = Duration::from_millis(5);
    c
}

/// An environment with the default config, changed by `f`.
pub async fn env_with(f: impl FnOnce(&mut Config)) -> Env {
    env_on(|_| {}, f).await
}

/// An environment on a fake-ceph configured by `g`, with fake-manila configured by `f`.
pub async fn env_on(g: impl FnOnce(&mut fake_ceph::Config), f: impl FnOnce(&mut Config)) -> Env {
    let (cluster, ceph_url, server) = ceph_with(g).await;
    let ceph_addr = ceph_url
        .trim_start_matches("http://")
        .parse()
        .expect("fake-ceph's address");
    let mut c = config(&cluster, &ceph_url);
    f(&mut c);
    let state = AppState::new(c).expect("fake-manila starts");
    Env {
        cluster,
        keystone: fake_manila::keystone_router(state.clone()),
        manila: fake_manila::manila_router(state),
        server,
        ceph_addr,
    }
}

/// An environment with the default config.
pub async fn env() -> Env {
    env_with(|_| {}).await
}

/// An answer: status, headers, JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

/// One request: what to send.
pub struct Req<'a> {
    pub method: Method,
    pub path: &'a str,
    pub token: Option<&'a str>,
    pub version: Option<&'a str>,
    pub body: Option<Value>,
}

impl Env {
    /// Kills fake-ceph's server: the commands under way get no answer and new ones are
    /// refused until [`Env::start_ceph`].
    pub async fn stop_ceph(&mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
    }

    /// Serves the same cluster on the same port again.
    pub async fn start_ceph(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.ceph_addr)
            .await
            .expect("fake-ceph's port again");
        self.server = serve_ceph(&self.cluster, listener);
    }

    /// Sends a request to the endpoint that serves its path ([`Service::of`]).
    pub async fn send(&self, r: Req<'_>) -> Answer {
        let mut b = Request::builder().method(r.method).uri(r.path);
        if let Some(t) = r.token {
            b = b.header("X-Auth-Token", t);
        }
        if let Some(v) = r.version {
            b = b.header("X-OpenStack-Manila-API-Version", v);
        }
        let body = match r.body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let req = b.body(body).expect("valid request");
        self.raw(req).await
    }

    /// Sends a prepared request to the endpoint that serves its path ([`Service::of`]).
    pub async fn raw(&self, req: Request<Body>) -> Answer {
        let service = Service::of(req.uri().path());
        self.raw_to(service, req).await
    }

    /// Sends a prepared request to one endpoint.
    pub async fn raw_to(&self, service: Service, req: Request<Body>) -> Answer {
        let app = match service {
            Service::Keystone => &self.keystone,
            Service::Manila => &self.manila,
        };
        let resp = app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    /// `GET` at a version.
    pub async fn get(&self, token: &str, version: &str, path: &str) -> Answer {
        self.send(Req {
            method: Method::GET,
            path,
            token: Some(token),
            version: Some(version),
            body: None,
        })
        .await
    }

    /// `POST` at a version.
    pub async fn post(&self, token: &str, version: &str, path: &str, body: Value) -> Answer {
        self.send(Req {
            method: Method::POST,
            path,
            token: Some(token),
            version: Some(version),
            body: Some(body),
        })
        .await
    }

    /// `PUT` at a version.
    pub async fn put(&self, token: &str, version: &str, path: &str, body: Value) -> Answer {
        self.send(Req {
            method: Method::PUT,
            path,
            token: Some(token),
            version: Some(version),
            body: Some(body),
        })
        .await
    }

    /// `DELETE` at a version.
    pub async fn delete(&self, token: &str, version: &str, path: &str) -> Answer {
        self.send(Req {
            method: Method::DELETE,
            path,
            token: Some(token),
            version: Some(version),
            body: None,
        })
        .await
    }

    /// A token for a user scoped to a project by name.
    pub async fn token(&self, user: &str, password: &str, project: &str) -> String {
        let a = self
            .send(Req {
                method: Method::POST,
                path: "/v3/auth/tokens",
                token: None,
                version: None,
                body: Some(password_auth(user, password, project)),
            })
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        a.headers["x-subject-token"]
            .to_str()
            .expect("ascii token")
            .to_owned()
    }

    /// demo's token.
    pub async fn demo(&self) -> String {
        self.token("demo", "demo", "demo").await
    }

    /// admin's token.
    pub async fn admin(&self) -> String {
        self.token("admin", "admin", "admin").await
    }

    /// Creates a share of `size` GiB and waits until it is available; its ID.
    pub async fn share(&self, token: &str, name: &str, size: u64) -> String {
        let a = self
            .post(
                token,
                "2.65",
                "/v2/shares",
                json!({"share": {"share_proto": "CEPHFS", "size": size, "name": name}}),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let id = a.body["share"]["id"].as_str().expect("id").to_owned();
        self.wait_share(token, &id, "available").await;
        id
    }

    /// Polls a share until it has `status`; its view.
    pub async fn wait_share(&self, token: &str, id: &str, status: &str) -> Value {
        let path = format!("/v2/shares/{id}");
        wait(|| async {
            let a = self.get(token, "2.65", &path).await;
            (a.body["share"]["status"] == status).then(|| a.body["share"].clone())
        })
        .await
        .unwrap_or_else(|| panic!("share {id} never became {status}"))
    }

    /// Polls until a share is gone (404).
    pub async fn wait_gone(&self, token: &str, path: &str) {
        wait(|| async {
            (self.get(token, "2.65", path).await.status == StatusCode::NOT_FOUND).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("{path} never went away"));
    }

    /// A `volumes` command against fake-ceph as the admin; `(ret, outb, outs)`.
    pub async fn ceph(&self, mut cmd: Value) -> (i32, String, String) {
        cmd["vol_name"] = json!("cephfs");
        let admin = self.cluster.admin();
        let r = self
            .cluster
            .execute_json(&admin, fake_ceph::Target::Mgr, &cmd)
            .await;
        (r.ret, r.outb, r.outs)
    }

    /// A mon command against fake-ceph as the admin.
    pub async fn mon(&self, cmd: Value) -> (i32, String, String) {
        let r = self.cluster.admin_command(cmd).await;
        (r.ret, r.outb, r.outs)
    }
}

/// Polls `f` every 10 ms for up to 10 s.
pub async fn wait<T, F, Fut>(f: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..1000 {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// The password-method body manilaclient sends.
pub fn password_auth(user: &str, password: &str, project: &str) -> Value {
    json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}},
    }})
}
