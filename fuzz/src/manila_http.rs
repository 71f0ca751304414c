//! fake-manila's two endpoints: up to four requests per input, each with any method,
//! path, headers and body, through `keystone_router` or `manila_router` in process
//! (`tower::ServiceExt::oneshot`), over one state backed by an in-process fake-ceph on a
//! loopback port (fake-manila reaches Ceph only over its wire API).
//!
//! Requests are built by `arbitrary` from the input: methods (the usual ones or any
//! token), paths (raw, or made of the API's segments and the IDs of a share, a snapshot,
//! an access rule and the projects that exist), a token (demo's, admin's, none or any
//! string), a microversion header, more headers, and a body (raw bytes, or one of the
//! bodies clients send with some of its values replaced).
//!
//! Invariants: no panic (in a handler or in a transition's task: libFuzzer's panic hook
//! aborts on either); no 5xx but the injected faults' (`PUT /admin/faults` with
//! `error_rate`; the harness puts the default faults back after every request); no
//! answer, header or body, carries fake-ceph's admin key (unless a request since the
//! stack was built carried it: `support::Secrets`).

use arbitrary::{Arbitrary, Unstructured};
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use fake_manila::{AppState, CephConfig, CephIdentity, Delays, Faults, Secret};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::{Secrets, runtime};

/// Inputs between two fresh stacks: shares, rules and tokens stay bounded.
const RESET_EVERY: u64 = 5_000;

struct State {
    keystone: axum::Router,
    manila: axum::Router,
    state: AppState,
    /// fake-ceph's admin key.
    ceph_key: Secrets,
    ceph_server: tokio::task::JoinHandle<()>,
    /// demo's and admin's tokens.
    tokens: [String; 2],
    /// IDs inputs find in paths and bodies: share, snapshot, access rule, projects.
    ids: Vec<String>,
    _dir: tempfile::TempDir,
    inputs: u64,
}

impl Drop for State {
    fn drop(&mut self) {
        self.ceph_server.abort();
    }
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

#[derive(Debug, Arbitrary)]
struct Input {
    reqs: Vec<Req>,
}

#[derive(Debug, Arbitrary)]
struct Req {
    keystone: bool,
    method: MethodSel,
    path: PathSel,
    token: TokenSel,
    version: Option<VersionSel>,
    headers: Vec<(HeaderSel, String)>,
    body: BodySel,
}

#[derive(Debug, Arbitrary)]
enum MethodSel {
    Get,
    Post,
    Put,
    Delete,
    Head,
    Patch,
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum PathSel {
    Raw(String),
    Built {
        prefix: u8,
        segments: Vec<Segment>,
        query: Option<QuerySel>,
    },
}

#[derive(Debug, Arbitrary)]
enum Segment {
    Known(u8),
    Id(u8),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum QuerySel {
    Known(u8),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum TokenSel {
    None,
    Demo,
    Admin,
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum VersionSel {
    Micro(u8, u8),
    Latest,
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum HeaderSel {
    Known(u8),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum BodySel {
    Empty,
    Raw(Vec<u8>),
    Template { which: u8, changes: Vec<(u8, Leaf)> },
}

#[derive(Debug, Arbitrary)]
enum Leaf {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Word(u8),
    Id(u8),
    List,
    Object,
}

const PREFIXES: &[&str] = &["/v2", "/v2/{project}", "/v3", "", "/admin", "/v2/{other}"];

const SEGMENTS: &[&str] = &[
    "shares",
    "detail",
    "action",
    "export_locations",
    "metadata",
    "snapshots",
    "share-access-rules",
    "access-list",
    "types",
    "share-types",
    "default",
    "quota-sets",
    "defaults",
    "limits",
    "messages",
    "availability-zones",
    "scheduler-stats",
    "extra_specs",
    "auth",
    "tokens",
    "projects",
    "users",
    "application_credentials",
    "faults",
    "metrics",
    "..",
    ".",
    "",
    "%2e%2e",
    "%ff",
    "v2",
];

const QUERIES: &[&str] = &[
    "all_tenants=1",
    "all_tenants=true",
    "limit=1",
    "limit=-1",
    "offset=99999999999999999999",
    "sort_key=size&sort_dir=desc",
    "sort_key=bogus",
    "status=available",
    "name~=s",
    "project_id={project}",
    "share_id={share}",
    "metadata={\"a\":\"b\"}",
    "with_count=true",
    "nocatalog",
];

const HEADERS: &[&str] = &[
    "x-auth-token",
    "x-openstack-manila-api-version",
    "openstack-api-version",
    "x-subject-token",
    "content-type",
    "accept",
    "content-length",
    "x-openstack-request-id",
];

const WORDS: &[&str] = &[
    "CEPHFS",
    "NFS",
    "cephx",
    "ip",
    "rw",
    "ro",
    "alice",
    "admin",
    "demo",
    "available",
    "error",
    "default",
    "cephfstype",
    "Default",
    "password",
    "token",
    "application_credential",
    "1",
    "0",
    "-1",
    "1e99",
    "",
    "nova",
];

/// The bodies clients send (manilaclient, openstacksdk, the CSI driver), to be changed.
fn templates() -> Vec<Value> {
    vec![
        json!({"share": {"share_proto": "CEPHFS", "size": 1, "name": "s", "share_type": "default",
                          "metadata": {"k": "v"}, "snapshot_id": null}}),
        json!({"allow_access": {"access_type": "cephx", "access_to": "alice", "access_level": "rw",
                                 "metadata": {}}}),
        json!({"deny_access": {"access_id": "{rule}"}}),
        json!({"extend": {"new_size": 2}}),
        json!({"shrink": {"new_size": 1}}),
        json!({"reset_status": {"status": "error"}}),
        json!({"force_delete": null}),
        json!({"snapshot": {"share_id": "{share}", "name": "n", "force": true}}),
        json!({"quota_set": {"shares": 10, "gigabytes": 100, "force": true}}),
        json!({"metadata": {"a": "b"}}),
        json!({"share": {"name": "renamed", "display_description": "d", "is_public": false}}),
        json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "demo", "domain": {"name": "Default"}, "password": "demo"}}},
            "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}}),
        json!({"auth": {"identity": {"methods": ["token"], "token": {"id": "{token}"}},
            "scope": {"project": {"id": "{project}"}}}}),
        json!({"application_credential": {"name": "a", "roles": [{"name": "member"}]}}),
        json!({"latency_ms": 0, "error_rate": 0.5}),
    ]
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut guard = STATE.lock();
    if guard.as_ref().is_none_or(|s| s.inputs >= RESET_EVERY) {
        *guard = None;
        *guard = Some(State::new());
    }
    let st = guard.as_mut().expect("just built");
    st.inputs += 1;
    for req in input.reqs.iter().take(4) {
        if let Some((r, carried)) = st.request(req) {
            st.ceph_key.saw(&carried);
            runtime().block_on(st.check(req.keystone, r));
        }
    }
}

impl State {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ceph_config = fake_ceph::Config {
            data_dir: Some(dir.path().join("ceph")),
            seed: 14,
            ..fake_ceph::Config::default()
        };
        let cluster = fake_ceph::Cluster::new(ceph_config).expect("fake-ceph starts");
        let admin_key = cluster.admin_key();
        let mut ceph_key = Secrets::default();
        ceph_key.add("fake-ceph's admin key", admin_key.as_bytes());
        let (url, ceph_server) = runtime().block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a loopback port");
            let addr = listener.local_addr().expect("a bound address");
            let app = fake_ceph::router(cluster);
            let server = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            (format!("http://{addr}"), server)
        });
        let mut config = fake_manila::Config::new(
            "http://keystone.fuzz:5000",
            "http://manila.fuzz:8786",
            CephConfig {
                url,
                identity: CephIdentity {
                    entity: "client.admin".into(),
                    key: Secret::new(admin_key),
                },
                fs_name: "cephfs".into(),
                group: None,
                timeout: std::time::Duration::from_secs(10),
            },
        );
        config.delays = Delays::all(std::time::Duration::ZERO);
        config.clone_poll = std::time::Duration::from_millis(5);
        config.seed = Some(14);
        config.share_type_name = "default".into();
        let state = AppState::new(config).expect("fake-manila starts");
        let mut st = Self {
            keystone: fake_manila::keystone_router(state.clone()),
            manila: fake_manila::manila_router(state.clone()),
            state,
            ceph_key,
            ceph_server,
            tokens: [String::new(), String::new()],
            ids: Vec::new(),
            _dir: dir,
            inputs: 0,
        };
        runtime().block_on(st.setup());
        st
    }

    /// demo's and admin's tokens; a share of demo's with a cephx rule and a snapshot.
    async fn setup(&mut self) {
        for (i, user) in ["demo", "admin"].into_iter().enumerate() {
            let body = json!({"auth": {"identity": {"methods": ["password"], "password": {
                "user": {"name": user, "domain": {"name": "Default"}, "password": user}}},
                "scope": {"project": {"name": user, "domain": {"name": "Default"}}}}});
            let (status, headers, v) = self
                .call(true, Method::POST, "/v3/auth/tokens", None, Some(body))
                .await;
            assert_eq!(status, 201, "token for {user}: {v}");
            self.tokens[i] = headers
                .get("x-subject-token")
                .and_then(|h| h.to_str().ok())
                .expect("a token")
                .to_owned();
            self.ids.push(
                v["token"]["project"]["id"]
                    .as_str()
                    .expect("a project")
                    .to_owned(),
            );
        }
        let demo = self.tokens[0].clone();
        let (status, _, v) = self
            .call(
                false,
                Method::POST,
                "/v2/shares",
                Some(&demo),
                Some(json!({"share": {"share_proto": "CEPHFS", "size": 1, "name": "fuzz"}})),
            )
            .await;
        assert_eq!(status, 200, "share: {v}");
        let share = v["share"]["id"].as_str().expect("a share ID").to_owned();
        self.ids.push(share.clone());
        for _ in 0..1000 {
            let (_, _, v) = self
                .call(
                    false,
                    Method::GET,
                    &format!("/v2/shares/{share}"),
                    Some(&demo),
                    None,
                )
                .await;
            if v["share"]["status"] == "available" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let (status, _, v) = self
            .call(
                false,
                Method::POST,
                &format!("/v2/shares/{share}/action"),
                Some(&demo),
                Some(
                    json!({"allow_access": {"access_type": "cephx", "access_to": "alice",
                                              "access_level": "rw"}}),
                ),
            )
            .await;
        assert_eq!(status, 200, "rule: {v}");
        self.ids
            .push(v["access"]["id"].as_str().expect("a rule ID").to_owned());
        let (status, _, v) = self
            .call(
                false,
                Method::POST,
                "/v2/snapshots",
                Some(&demo),
                Some(json!({"snapshot": {"share_id": share, "name": "snap"}})),
            )
            .await;
        assert_eq!(status, 202, "snapshot: {v}");
        self.ids.push(
            v["snapshot"]["id"]
                .as_str()
                .expect("a snapshot ID")
                .to_owned(),
        );
    }

    async fn call(
        &self,
        keystone: bool,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, axum::http::HeaderMap, Value) {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("x-openstack-manila-api-version", "2.65");
        if let Some(t) = token {
            b = b.header("x-auth-token", t);
        }
        let body = body.map_or_else(Body::empty, |v| Body::from(v.to_string()));
        let req = b
            .header("content-type", "application/json")
            .body(body)
            .expect("a valid request");
        let router = if keystone {
            &self.keystone
        } else {
            &self.manila
        };
        let resp = router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("a body").to_bytes();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Substitutes the placeholders of IDs and tokens.
    fn fill(&self, s: &str) -> String {
        s.replace("{project}", &self.ids[0])
            .replace("{other}", &self.ids[1])
            .replace("{share}", &self.ids[2])
            .replace("{rule}", &self.ids[3])
            .replace("{token}", &self.tokens[0])
    }

    fn id(&self, i: u8) -> String {
        let mut all = self.ids.clone();
        all.extend(self.tokens.iter().cloned());
        all[usize::from(i) % all.len()].clone()
    }

    /// The request an input describes, if it is one an HTTP server could receive, and
    /// what it carries (path, header values, body).
    fn request(&self, r: &Req) -> Option<(Request<Body>, Vec<u8>)> {
        let method = match &r.method {
            MethodSel::Get => Method::GET,
            MethodSel::Post => Method::POST,
            MethodSel::Put => Method::PUT,
            MethodSel::Delete => Method::DELETE,
            MethodSel::Head => Method::HEAD,
            MethodSel::Patch => Method::PATCH,
            MethodSel::Raw(m) => Method::from_bytes(m.as_bytes()).ok()?,
        };
        let path = match &r.path {
            PathSel::Raw(p) => p.clone(),
            PathSel::Built {
                prefix,
                segments,
                query,
            } => {
                let mut p = self.fill(PREFIXES[usize::from(*prefix) % PREFIXES.len()]);
                for s in segments.iter().take(6) {
                    p.push('/');
                    match s {
                        Segment::Known(i) => p.push_str(SEGMENTS[usize::from(*i) % SEGMENTS.len()]),
                        Segment::Id(i) => p.push_str(&self.id(*i)),
                        Segment::Raw(x) => p.push_str(x),
                    }
                }
                match query {
                    Some(QuerySel::Known(i)) => {
                        p.push('?');
                        p.push_str(&self.fill(QUERIES[usize::from(*i) % QUERIES.len()]));
                    }
                    Some(QuerySel::Raw(q)) => {
                        p.push('?');
                        p.push_str(q);
                    }
                    None => {}
                }
                p
            }
        };
        let mut carried = path.clone().into_bytes();
        let mut b = Request::builder().method(method).uri(path);
        match &r.token {
            TokenSel::None => {}
            TokenSel::Demo => b = b.header("x-auth-token", &self.tokens[0]),
            TokenSel::Admin => b = b.header("x-auth-token", &self.tokens[1]),
            TokenSel::Raw(t) => b = b.header("x-auth-token", HeaderValue::from_str(t).ok()?),
        }
        match &r.version {
            None => {}
            Some(VersionSel::Micro(a, c)) => {
                b = b.header("x-openstack-manila-api-version", format!("{}.{c}", a % 4));
            }
            Some(VersionSel::Latest) => b = b.header("x-openstack-manila-api-version", "latest"),
            Some(VersionSel::Raw(v)) => {
                b = b.header(
                    "x-openstack-manila-api-version",
                    HeaderValue::from_str(v).ok()?,
                );
            }
        }
        for (name, value) in r.headers.iter().take(4) {
            let name = match name {
                HeaderSel::Known(i) => {
                    HeaderName::from_static(HEADERS[usize::from(*i) % HEADERS.len()])
                }
                HeaderSel::Raw(n) => HeaderName::from_bytes(n.as_bytes()).ok()?,
            };
            b = b.header(name, HeaderValue::from_str(value).ok()?);
        }
        for v in b.headers_ref()?.values() {
            carried.extend_from_slice(v.as_bytes());
        }
        let body = match &r.body {
            BodySel::Empty => Body::empty(),
            BodySel::Raw(bytes) => {
                carried.extend_from_slice(bytes);
                Body::from(bytes.clone())
            }
            BodySel::Template { which, changes } => {
                let all = templates();
                let mut v = all[usize::from(*which) % all.len()].clone();
                self.fill_value(&mut v);
                for (at, leaf) in changes.iter().take(4) {
                    let mut slots = Vec::new();
                    pointers(&v, String::new(), &mut slots);
                    let slot = &slots[usize::from(*at) % slots.len()];
                    let new = self.leaf(leaf);
                    if let Some(x) = v.pointer_mut(slot) {
                        *x = new;
                    }
                }
                let text = v.to_string();
                carried.extend_from_slice(text.as_bytes());
                Body::from(text)
            }
        };
        Some((b.body(body).ok()?, carried))
    }

    fn fill_value(&self, v: &mut Value) {
        match v {
            Value::String(s) => *s = self.fill(s),
            Value::Array(a) => a.iter_mut().for_each(|x| self.fill_value(x)),
            Value::Object(m) => m.values_mut().for_each(|x| self.fill_value(x)),
            _ => {}
        }
    }

    fn leaf(&self, l: &Leaf) -> Value {
        match l {
            Leaf::Null => Value::Null,
            Leaf::Bool(b) => Value::from(*b),
            Leaf::Int(i) => Value::from(*i),
            Leaf::Float(f) => Value::from(*f),
            Leaf::Str(s) => Value::from(s.as_str()),
            Leaf::Word(i) => Value::from(WORDS[usize::from(*i) % WORDS.len()]),
            Leaf::Id(i) => Value::from(self.id(*i)),
            Leaf::List => json!([]),
            Leaf::Object => json!({}),
        }
    }

    async fn check(&self, keystone: bool, req: Request<Body>) {
        let shown = format!("{} {} {:?}", req.method(), req.uri(), req.headers());
        let router = if keystone {
            &self.keystone
        } else {
            &self.manila
        };
        let resp = router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let faults = self.state.faults();
        let injected = faults.error_rate > 0.0;
        if faults != Faults::default() {
            self.state
                .set_faults(Faults::default())
                .expect("the default faults are valid");
        }
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .expect("an in-memory body")
            .to_bytes();
        assert!(
            !status.is_server_error() || (injected && matches!(status.as_u16(), 500 | 503)),
            "{status} for {shown}: {}",
            String::from_utf8_lossy(&bytes)
        );
        let shown_in_headers = headers
            .values()
            .find_map(|v| self.ceph_key.shown_in(v.as_bytes()));
        if let Some(what) = self.ceph_key.shown_in(&bytes).or(shown_in_headers) {
            panic!("{what} is in the answer to {shown}");
        }
    }
}

/// The JSON pointers of every leaf (and of every container) of `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                let esc = k.replace('~', "~0").replace('/', "~1");
                pointers(x, format!("{at}/{esc}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}
