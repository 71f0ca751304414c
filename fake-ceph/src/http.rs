//! The HTTP face of the cluster.
//!
//! | route | what |
//! |---|---|
//! | `POST /request[?target=mgr]` | one command as `mon_command` (default; proxies mgr commands) or `mgr_command` sends it, or a `rados ...` object operation, as JSON; answers `{"ret","outb","outs"}` |
//! | `POST /tell/mds.<name>` | an MDS command (`session ls`, `client evict`, `perf dump`, ...) |
//! | `POST /mds/sessions` | mount: open a session (`{"root", "fs_name", "client_metadata"}`); answers `{"ret", "id", "root", "local_path", "token"}` |
//! | `GET`/`DELETE /mds/sessions/{id}` | show / close (umount) a session |
//! | `POST /mds/sessions/{id}/ops` | client operations (`{"ops": [...]}`; a read returns at most 4 MiB, the reads of one request 16 MiB) |
//! | `GET`/`PUT /admin/faults`, `POST /admin/evict-all` | fault knobs (needs `mon allow *`) |
//! | `GET /metrics` | Prometheus text |
//! | `GET /` | fsid, file system, monitors |
//!
//! Every route but `/metrics` and `/` authenticates with HTTP Basic: the user is a
//! cephx entity (`client.admin`), the password its key, as the mgr `restful` module
//! authenticates. A bad or missing credential is 401; a Ceph failure is HTTP 200 with
//! `ret < 0`, exactly as librados hands the triple back.
//!
//! The three `/mds/sessions/{id}` routes also accept the session's own token, handed back
//! when it was opened, in the `X-Session-Token` header instead of Basic credentials: a
//! kernel umount needs no key, and CSI `NodeUnstageVolume` carries no secrets. The header,
//! when present, decides: a wrong token is 401 (compared in constant time). A session that
//! is no longer open (closed, evicted) has no token to check against; it answers as it
//! does with Basic credentials (`ENOTCONN`; closing it again is `ret 0`). Tokens are
//! secrets: they are never logged and `session ls` does not show them.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::cephx::Perm;
use crate::cluster::{Cluster, Target};
use crate::error::{CephError, errno};
use crate::fault::Faults;
use crate::mount::{MountRequest, Op};
use crate::state::Caller;

/// The router for a cluster.
pub fn router(cluster: Cluster) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/request", post(request))
        .route("/tell/{target}", post(tell))
        .route("/mds/sessions", post(session_open))
        .route(
            "/mds/sessions/{id}",
            get(session_show).delete(session_close),
        )
        .route("/mds/sessions/{id}/ops", post(session_ops))
        .route("/admin/faults", get(faults_get).put(faults_put))
        .route("/admin/evict-all", post(evict_all))
        .route("/metrics", get(metrics))
        .with_state(cluster)
}

/// An authentication failure, shaped like the `restful` module's.
fn unauthorized(msg: &str) -> Box<Response> {
    Box::new(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"fake-ceph\"")],
            axum::Json(json!({"message": format!("auth: {msg}")})),
        )
            .into_response(),
    )
}

fn authenticate(cluster: &Cluster, headers: &HeaderMap) -> Result<Caller, Box<Response>> {
    let raw = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .ok_or_else(|| unauthorized("No HTTP username/password"))?;
    let decoded = B64
        .decode(raw.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| unauthorized("No HTTP username/password"))?;
    let (user, key) = decoded
        .split_once(':')
        .ok_or_else(|| unauthorized("No HTTP username/password"))?;
    if cluster.key_of(user).is_none() {
        return Err(unauthorized("No such user"));
    }
    cluster
        .authenticate(user, key)
        .ok_or_else(|| unauthorized("Incorrect password"))
}

/// The header that carries a session token on the `/mds/sessions/{id}` routes.
pub const SESSION_TOKEN_HEADER: &str = "x-session-token";

/// The session `id`, if the request may use it. With `X-Session-Token`: the session's own
/// token (401 if wrong); without: Basic credentials of the session's entity or of an MDS
/// admin (401 if bad). The inner error is the Ceph answer (`ENOTCONN` for a session that
/// is not open, `EACCES` for another entity's session).
fn session_access(
    cluster: &Cluster,
    headers: &HeaderMap,
    id: u64,
) -> Result<Result<crate::Mount, CephError>, Box<Response>> {
    let Some(presented) = headers.get(SESSION_TOKEN_HEADER) else {
        let caller = authenticate(cluster, headers)?;
        return Ok(owned_session(cluster, &caller, id));
    };
    let presented = presented
        .to_str()
        .map_err(|_| unauthorized("Incorrect session token"))?;
    match cluster.session(id) {
        Some(m) if m.token_matches(presented) => Ok(Ok(m)),
        Some(_) => Err(unauthorized("Incorrect session token")),
        None => Ok(Err(not_open(id))),
    }
}

fn not_open(id: u64) -> CephError {
    CephError::new(errno::ENOTCONN, format!("session {id} is not open"))
}

fn ceph_error(e: CephError) -> Response {
    axum::Json(json!({"ret": -e.errno, "outb": "", "outs": e.msg})).into_response()
}

async fn index(State(cluster): State<Cluster>) -> Response {
    let c = cluster.config();
    axum::Json(json!({
        "fsid": cluster.fsid(),
        "fs_name": c.fs_name,
        "mon_addrs": c.mon_addrs,
    }))
    .into_response()
}

/// `?target=mgr` sends the command as `mgr_command` would; the default is the monitor.
fn target_param(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "target")
        .map(|(_, v)| v)
}

async fn request(
    State(cluster): State<Cluster>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = match authenticate(&cluster, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let target = match target_param(query.as_deref()) {
        None | Some("mon") => Target::Mon,
        Some("mgr") => Target::Mgr,
        Some(other) => {
            return ceph_error(CephError::inval(format!(
                "unknown target '{other}': use mon or mgr (MDS commands go to /tell/mds.<name>)"
            )));
        }
    };
    let reply = cluster.execute(&caller, target, &body).await;
    axum::Json(reply).into_response()
}

async fn tell(
    State(cluster): State<Cluster>,
    Path(target): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = match authenticate(&cluster, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Some(name) = target.strip_prefix("mds.").or_else(|| {
        // `<fs>:<rank>` also addresses an MDS.
        target.contains(':').then_some(target.as_str())
    }) else {
        return ceph_error(CephError::inval(format!(
            "unrecognized target '{target}': only MDS daemons (mds.<name>) take tell commands here"
        )));
    };
    let reply = cluster
        .execute(&caller, Target::Mds(name.to_owned()), &body)
        .await;
    axum::Json(reply).into_response()
}

async fn session_open(State(cluster): State<Cluster>, headers: HeaderMap, body: Bytes) -> Response {
    let caller = match authenticate(&cluster, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let req: MountRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return ceph_error(CephError::inval(format!("invalid mount request: {e}"))),
    };
    // The credentials were checked above; the mount checks them again with the caps.
    let key = cluster.key_of(caller.entity.as_str()).unwrap_or_default();
    match cluster.mount(caller.entity.as_str(), &key, req).await {
        Ok(m) => axum::Json(json!({
            "ret": 0,
            "id": m.id(),
            "root": m.root(),
            "local_path": m.local_root(),
            "token": m.token(),
        }))
        .into_response(),
        Err(e) => ceph_error(e),
    }
}

/// The session, if `caller` may use it (its own entity, or an MDS admin).
fn owned_session(cluster: &Cluster, caller: &Caller, id: u64) -> Result<crate::Mount, CephError> {
    let m = cluster.session(id).ok_or_else(|| not_open(id))?;
    if m.entity() != &caller.entity && !caller.caps.mds_allow_all() {
        return Err(CephError::access_denied());
    }
    Ok(m)
}

async fn session_show(
    State(cluster): State<Cluster>,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> Response {
    let access = match session_access(&cluster, &headers, id) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    match access {
        Ok(m) => axum::Json(json!({"ret": 0, "session": m.dump()})).into_response(),
        Err(e) => ceph_error(e),
    }
}

async fn session_close(
    State(cluster): State<Cluster>,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> Response {
    let access = match session_access(&cluster, &headers, id) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    match access {
        Ok(m) => {
            m.unmount();
            // A closed session must not come back after a restart.
            if let Err(e) = cluster.commit_marked().await {
                tracing::error!(error = %e, "metadata commit failed");
                return ceph_error(CephError::new(errno::EIO, "Input/output error"));
            }
            axum::Json(json!({"ret": 0})).into_response()
        }
        // Closing a session that is already gone is fine: umount is idempotent.
        Err(e) if e.errno == errno::ENOTCONN => axum::Json(json!({"ret": 0})).into_response(),
        Err(e) => ceph_error(e),
    }
}

async fn session_ops(
    State(cluster): State<Cluster>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    #[derive(serde::Deserialize)]
    struct Ops {
        ops: Vec<Op>,
    }
    let access = match session_access(&cluster, &headers, id) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let ops: Ops = match serde_json::from_slice(&body) {
        Ok(o) => o,
        Err(e) => return ceph_error(CephError::inval(format!("invalid ops: {e}"))),
    };
    let m = match access {
        Ok(m) => m,
        Err(e) => return ceph_error(e),
    };
    let results: Vec<Value> = m
        .run(ops.ops)
        .await
        .into_iter()
        .map(|r| match r {
            Ok(out) => json!({"ret": 0, "output": out}),
            Err(e) => json!({"ret": -e.errno, "outs": e.msg}),
        })
        .collect();
    axum::Json(json!({"ret": 0, "results": results})).into_response()
}

fn require_admin(cluster: &Cluster, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let caller = authenticate(cluster, headers)?;
    let all = Perm::RWX;
    if !caller.caps.mon_allows("mon", "admin faults", all, None) {
        return Err(Box::new(ceph_error(CephError::access_denied())));
    }
    Ok(())
}

async fn faults_get(State(cluster): State<Cluster>, headers: HeaderMap) -> Response {
    if let Err(r) = require_admin(&cluster, &headers) {
        return *r;
    }
    axum::Json(cluster.faults()).into_response()
}

async fn faults_put(State(cluster): State<Cluster>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = require_admin(&cluster, &headers) {
        return *r;
    }
    match serde_json::from_slice::<Faults>(&body) {
        Ok(f) => {
            if let Some(bad) = f.rules.iter().find(|r| {
                r.error_rate.is_some_and(|x| !(0.0..=1.0).contains(&x))
                    || r.prefix.trim().is_empty()
            }) {
                return ceph_error(CephError::inval(format!(
                    "invalid fault rule for prefix '{}': error_rate must be within [0, 1] and prefix non-empty",
                    bad.prefix
                )));
            }
            cluster.set_faults(f);
            axum::Json(cluster.faults()).into_response()
        }
        Err(e) => ceph_error(CephError::inval(format!("invalid faults: {e}"))),
    }
}

async fn evict_all(State(cluster): State<Cluster>, headers: HeaderMap) -> Response {
    if let Err(r) = require_admin(&cluster, &headers) {
        return *r;
    }
    let n = cluster.evict_all();
    axum::Json(json!({"ret": 0, "evicted": n})).into_response()
}

async fn metrics(State(cluster): State<Cluster>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        cluster.metrics_text(),
    )
        .into_response()
}
