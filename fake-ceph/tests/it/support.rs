//! Test support: a fake cluster behind its router, and helpers that send commands.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use fake_ceph::{Cluster, Config, Reply};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// A cluster and its router, with client.admin's credentials.
pub struct Fake {
    pub cluster: Cluster,
    pub app: Router,
    pub admin_key: String,
}

impl Fake {
    /// A healthy cluster whose clones take no time.
    pub fn new() -> Self {
        let mut config = Config::default();
        config.volumes.clone_time = Duration::ZERO;
        config.volumes.clone_pickup = Duration::ZERO;
        Self::with(config)
    }

    pub fn with(config: Config) -> Self {
        let cluster = Cluster::new(config).unwrap();
        let app = fake_ceph::router(cluster.clone());
        let admin_key = cluster.admin_key();
        Self {
            cluster,
            app,
            admin_key,
        }
    }

    /// Sends an HTTP request with Basic credentials; the status and JSON body.
    pub async fn http(
        &self,
        method: &str,
        uri: &str,
        creds: Option<(&str, &str)>,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some((user, key)) = creds {
            req = req.header(
                "authorization",
                format!("Basic {}", B64.encode(format!("{user}:{key}"))),
            );
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(body.into()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, v)
    }

    /// A command as `entity` with `key` on `POST /request`.
    pub async fn cmd_as(&self, entity: &str, key: &str, cmd: Value) -> Reply {
        let (status, v) = self
            .http("POST", "/request", Some((entity, key)), cmd.to_string())
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        serde_json::from_value(v).unwrap()
    }

    /// A command sent as librados `mgr_command` sends it (`?target=mgr`), as admin.
    pub async fn mgr(&self, cmd: Value) -> Reply {
        let key = self.admin_key.clone();
        let (status, v) = self
            .http(
                "POST",
                "/request?target=mgr",
                Some(("client.admin", &key)),
                cmd.to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        serde_json::from_value(v).unwrap()
    }

    /// A command as client.admin.
    pub async fn cmd(&self, cmd: Value) -> Reply {
        let key = self.admin_key.clone();
        self.cmd_as("client.admin", &key, cmd).await
    }

    /// A command that must succeed with an empty status; its output.
    pub async fn ok(&self, cmd: Value) -> String {
        let r = self.cmd(cmd.clone()).await;
        assert_eq!(r.ret, 0, "{cmd} -> {r:?}");
        r.outb
    }

    /// A command that must succeed; its output parsed as JSON.
    pub async fn ok_json(&self, cmd: Value) -> Value {
        let out = self.ok(cmd.clone()).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{cmd}: {e}: {out}"))
    }

    /// A command that must fail with `errno`; its status message.
    pub async fn err(&self, cmd: Value, errno: i32) -> String {
        let r = self.cmd(cmd.clone()).await;
        assert_eq!(r.ret, -errno, "{cmd} -> {r:?}");
        assert!(r.outb.is_empty(), "{r:?}");
        assert!(!r.outs.is_empty(), "a failure carries a message: {r:?}");
        r.outs
    }

    /// An MDS command (`/tell/mds.a`) as client.admin.
    pub async fn tell(&self, cmd: Value) -> Reply {
        let key = self.admin_key.clone();
        let (status, v) = self
            .http(
                "POST",
                "/tell/mds.a",
                Some(("client.admin", &key)),
                cmd.to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        serde_json::from_value(v).unwrap()
    }

    /// Creates the `csi` group and a subvolume in it; its path.
    pub async fn subvolume(&self, name: &str, size: Option<u64>) -> String {
        self.ok(json!({"prefix": "fs subvolumegroup create", "vol_name": "cephfs", "group_name": "csi"}))
            .await;
        let mut c = json!({"prefix": "fs subvolume create", "vol_name": "cephfs", "group_name": "csi", "sub_name": name});
        if let Some(s) = size {
            c["size"] = json!(s);
        }
        self.ok(c).await;
        self.ok(json!({"prefix": "fs subvolume getpath", "vol_name": "cephfs", "group_name": "csi", "sub_name": name}))
            .await
            .trim_end()
            .to_owned()
    }

    /// Creates an entity with the given caps; its key.
    pub async fn user(&self, entity: &str, caps: &[&str]) -> String {
        let v = self
            .ok_json(json!({"prefix": "auth get-or-create", "entity": entity, "caps": caps, "format": "json"}))
            .await;
        v[0]["key"].as_str().unwrap().to_owned()
    }
}

/// Builds a subvolume command for volume `cephfs`, group `csi`.
pub fn sv(prefix: &str, name: &str, extra: Value) -> Value {
    let mut c = json!({"prefix": prefix, "vol_name": "cephfs", "group_name": "csi", "sub_name": name, "format": "json"});
    if let (Some(c), Value::Object(e)) = (c.as_object_mut(), extra) {
        c.extend(e);
    }
    c
}

/// Waits until `f` is true (polling), for asynchronous effects such as purges.
pub async fn eventually(mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition never became true");
}
