//! fake-manila: a Keystone v3 + Manila v2 fake that provisions CephFS shares on
//! fake-ceph, for tests, benchmarks and the cluster simulator.
//!
//! What it is: two HTTP endpoints, Keystone's and Manila's, as a real cloud has them,
//! that real OpenStack clients use unmodified:
//! python-manilaclient's `manila`, `openstack share ...` and openstacksdk are run against
//! it by `ci/check-manila-clients.sh`; gophercloud/manila-csi's calls (as the reference
//! records them) are covered by the tests, though no Go client runs here.
//! It issues Keystone tokens with a service catalog, serves the Manila v2 API with
//! microversion negotiation (2.0 to 2.99) and version-gated routes, actions and fields,
//! and does the work of Manila's CephFS native driver against fake-ceph's wire API
//! (`POST /request`, mon/mgr command JSON, cephx over HTTP Basic): a share is a
//! subvolume, a cephx access rule is `fs subvolume authorize` on it (the key becomes the
//! rule's `access_key`), export locations are `mons:/volumes/<group>/<share>/<uuid>`,
//! snapshots are subvolume snapshots, a share from a snapshot is a clone. Like the
//! driver's librados client, which reconnects to a restarted monitor or manager and
//! sends a command again within `RADOS_TIMEOUT`, a Ceph command that gets no answer is
//! sent again until [`CephConfig::timeout`]: a share made or deleted across a short
//! restart of Ceph ends `available` or gone.
//!
//! Where to start reading: [`keystone_router`] and [`manila_router`] (one
//! [`AppState`] behind both; [`Listeners`] binds and serves the pair), then `api` (the dispatcher: token, version,
//! faults, routes), `wire` (the request context and the readings and answers that the
//! dispatcher and the handlers share), `share` (the share view and the asynchronous
//! transitions), `access_rule`, `snapshot`, `keystone` (the identity API's
//! handlers) over `identity` (users, projects, tokens), [`ceph`] (the calls Manila's
//! driver makes).
//!
//! # What is modelled
//!
//! - Keystone: `GET /`, `GET /v3[/]`, `POST /v3/auth/tokens` (password with user and
//!   project by name or ID and domain by name or ID; application credentials by ID, or
//!   name and user; re-scoping a token), `GET`/`HEAD`/`DELETE /v3/auth/tokens`
//!   under Keystone's token policies (an admin or the token's own user; on `GET` also
//!   the `service` role; 404 for an unknown subject, then 403 `identity:..._token`),
//!   `GET /v3/projects[?name=]`, `GET /v3/projects/{id}`, `GET /v3/auth/projects`,
//!   `GET /v3/auth/catalog`. Tokens expire after the configured TTL. They come from
//!   the OS's RNG unless [`Config::seed`] is given (then from the seed, for replays).
//! - Manila: version discovery (`GET /` of its own endpoint → 300 with v2.0, as current
//!   Manila lists it, no headers needed; `GET /v2[/]` → 200 with the same),
//!   shares (list with
//!   filters, sorting, `limit`/`offset`/`marker`, `with_count`; create, show, update,
//!   delete; actions `allow_access`, `deny_access`, `access_list`, `extend`, `shrink`,
//!   `reset_status`, `force_delete` with their `os-` names below 2.7), export locations,
//!   share metadata, `/share-access-rules`, snapshots (and their empty export-location
//!   lists), share types, quota sets (show, detail, defaults, update, reset), limits,
//!   availability zones, user messages. Both URL forms (`/v2/...` and
//!   `/v2/{project_id}/...`) are routed at every version.
//! - State machines, each step after a configurable delay (zero allowed): shares
//!   `creating`/`creating_from_snapshot` → `available` | `error`, `extending` →
//!   `available` | `extending_error`, `shrinking` → `available` | `shrinking_error` (Ceph
//!   refusing to shrink below the used size puts the share back in `available` at its
//!   old size, with a user message, as Manila does),
//!   `deleting` → gone | `error_deleting`; access rules `queued_to_apply` → `applying` →
//!   `active` | `error`, `queued_to_deny` → `denying` → gone; snapshots `creating` →
//!   `available` | `error`, `deleting` → gone | `error_deleting`.
//! - Quotas per project (shares, gigabytes, snapshots, snapshot gigabytes, per-share
//!   gigabytes): 413 `overLimit` on create, 403 on extend, as Manila answers.
//! - Projects are isolated: another project's share, rule or snapshot is 404; an admin
//!   token sees everything, and lists with `all_tenants`.
//! - Faults (seeded, reproducible for one request sequence): added latency, 500/503
//!   answers, shares stuck in `creating`, shares ending in `error` (with a user message),
//!   access rules ending in `error` (as a driver failure: no user message). Set at start
//!   or through `GET`/`PUT /admin/faults` of Manila's endpoint with an admin token.
//! - Metrics on `GET /metrics` of Manila's endpoint: requests by method, route template
//!   and status, latency by route, finished transitions by kind and result.
//!
//! # Where it simplifies real Manila
//!
//! - Keystone: one domain (`Default`); only project-scoped tokens; roles are
//!   names (`admin` makes a cloud admin); no policy beyond owner/admin checks;
//!   `GET /v3/projects` shows a non-admin its own project instead of answering 403.
//! - One back end, one pool, one share type (named `cephfstype` unless configured,
//!   DHSS=False, snapshots and create-from-snapshot supported, always the default type),
//!   one availability zone (`nova`). Note that the `manila` CLI without `--share-type`
//!   and CSI's StorageClass default both ask for a type *named* `default`; name the type
//!   so (`--share-type default`) or pass the name. Shares of another
//!   protocol end in `error` with the scheduler's "no valid host" message, as a
//!   CephFS-only cloud does. No share networks, servers, groups, replicas, migrations,
//!   backups, soft delete, revert, manage/unmanage, resource locks (lock fields in
//!   `allow_access` are ignored), transfers or share instances API. No v1 API (`/v1`
//!   is 404, and the root does not list it, as in current Manila); the root answers
//!   300 to every method, as Manila's versions route does.
//! - Non-cephx rules are accepted by the API and end in `error`, as the CephFS native
//!   driver refuses them. Rule metadata is stored and shown, not filterable.
//! - `share_instance_id` and `is_admin_only` of export locations are shown to everyone
//!   (admin-only in Manila) because CSI reads them. Non-admins see all type extra specs.
//! - User messages carry Manila's action and detail codes and texts (`message`) for
//!   the failures that leave one in Manila; they expire after 30 days but are not
//!   purged, and have no `links`.
//! - Quota reservations are immediate (no `reserved`); user- and type-level quotas are
//!   not modelled.
//! - State lives in memory; a restart forgets every share (the subvolumes stay in
//!   fake-ceph). Tokens are held in memory (Keystone's fernet tokens are stateless),
//!   at most [`Config::tokens_per_user`] (10,000 unless configured) per user: a user
//!   past that loses its own oldest token, never another user's. Expired tokens are
//!   purged.
//! - A transition's Ceph work is tried once (beyond resending a command that got no
//!   answer): a failure leaves the resource in its error
//!   status (Manila's periodic tasks and retries are not modelled). No API rate limits.

mod access_rule;
mod api;
pub mod ceph;
pub mod config;
mod error;
mod identity;
mod keystone;
mod message;
mod metrics;
mod microversion;
mod resources;
mod secret;
mod serve;
mod share;
mod snapshot;
mod state;
mod time;
mod wire;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::json;

pub use ceph::{CephClient, CephConfig, CephIdentity, parse_keyring};
pub use config::{Config, Delays, Faults, IdentityConfig, Quotas};
pub use error::{ApiError, KeystoneError};
pub use microversion::Version;
pub use secret::Secret;
pub use serve::Listeners;
pub use state::{AppState, StartError};

/// Keystone's endpoint: its version document at `/` (300, whatever the headers) and
/// the identity API under `/v3`; anything else is a 404 with Keystone's error body. Serve
/// it at [`Config::keystone_url`].
pub fn keystone_router(state: AppState) -> Router {
    Router::new()
        .route("/", get(keystone::root))
        .route("/v3", get(keystone::v3))
        .route("/v3/", get(keystone::v3))
        .route(
            "/v3/auth/tokens",
            get(keystone::validate_token)
                .head(keystone::validate_token)
                .post(keystone::issue_token)
                .delete(keystone::revoke_token),
        )
        .route("/v3/auth/projects", get(keystone::auth_projects))
        .route("/v3/auth/catalog", get(keystone::auth_catalog))
        .route("/v3/projects", get(keystone::list_projects))
        .route("/v3/projects/{id}", get(keystone::show_project))
        .fallback(keystone_not_found)
        .method_not_allowed_fallback(keystone_method_not_allowed)
        .with_state(state)
}

/// Manila's endpoint: its version list at `/` (300, no token or header needed), the
/// Manila v2 API under `/v2`, the fault knobs under `/admin/faults` and the metrics at
/// `/metrics`; anything else is a 404 with a Manila fault body. Serve it at
/// [`Config::manila_url`], the URL the catalog's `sharev2` entry names.
pub fn manila_router(state: AppState) -> Router {
    Router::new()
        .route("/", any(api::root))
        .route("/v2", any(api::manila))
        .route("/v2/", any(api::manila))
        .route("/v2/{*rest}", any(api::manila))
        .route("/admin/faults", get(faults_get).put(faults_put))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// `GET /metrics`: Prometheus text (no secrets, no request input in labels).
async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics().render(),
    )
        .into_response()
}

async fn not_found() -> Response {
    ApiError::no_resource().into_response()
}

async fn keystone_not_found() -> Response {
    KeystoneError::not_found("The resource could not be found.").into_response()
}

async fn keystone_method_not_allowed() -> Response {
    KeystoneError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "The method specified is not allowed for this resource.",
    )
    .into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "The method specified is not allowed for this resource.",
    )
    .into_response()
}

fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let token = keystone::caller(state, headers).map_err(|e| Box::new(e.into_response()))?;
    if !token.is_admin() {
        return Err(Box::new(
            ApiError::forbidden("Only an admin may change faults.").into_response(),
        ));
    }
    Ok(())
}

/// `GET /admin/faults` (admin token).
async fn faults_get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = require_admin(&state, &headers) {
        return *r;
    }
    axum::Json(state.faults()).into_response()
}

/// `PUT /admin/faults` (admin token): replaces the faults in force.
async fn faults_put(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    if let Err(r) = require_admin(&state, &headers) {
        return *r;
    }
    let Ok(bytes) = axum::body::to_bytes(body, state.config().max_body).await else {
        return ApiError::over_limit("Request is too large.").into_response();
    };
    let faults: Faults = match serde_json::from_slice(&bytes) {
        Ok(f) => f,
        Err(e) => return ApiError::bad_request(format!("invalid faults: {e}")).into_response(),
    };
    match state.set_faults(faults) {
        Ok(()) => {
            tracing::info!(faults = ?state.faults(), "faults changed");
            axum::Json(json!(state.faults())).into_response()
        }
        Err(e) => ApiError::bad_request(e).into_response(),
    }
}
