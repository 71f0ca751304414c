//! The Manila v2 HTTP surface: version documents, and one dispatcher for `/v2/...` that
//! authenticates the token, negotiates the microversion, applies request faults, routes
//! by method and path, and stamps the version headers on every answer.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::keystone;
use crate::microversion::{self, Negotiation, Version};
use crate::state::AppState;
use crate::wire::{Ctx, decode_segment, json_body, query_pairs};
use crate::{access_rule, resources, share, snapshot};

/// One version object: its `id`, `status` and microversion range (empty strings for a
/// version without microversions), the `updated`, `describedby` link and `media-types`
/// that Manila's `manila/api/versions.py` gives every version, and its `self` link.
fn version_entry(
    id: &str,
    status: &str,
    range: Option<(Version, Version)>,
    self_href: String,
) -> Value {
    let (min, max) = range.map_or((String::new(), String::new()), |(min, max)| {
        (min.to_string(), max.to_string())
    });
    json!({
        "id": id,
        "status": status,
        "version": max,
        "min_version": min,
        "updated": "2015-08-27T11:33:21Z",
        "links": [
            {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"},
            {"rel": "self", "href": self_href},
        ],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.share+json;version=1"}],
    })
}

/// The Manila v2.0 version object, advertising `[2.0, max]`.
pub fn version_object(manila_url: &str, max: Version) -> Value {
    version_entry(
        "v2.0",
        "CURRENT",
        Some((Version::MIN, max)),
        format!("{manila_url}/v2/"),
    )
}

/// The root of Manila's endpoint (`/`, any method, no token): 300 Multiple Choices with
/// its one API version, v2.0, as current Manila answers (the v1.0 API it once listed as
/// DEPRECATED is gone; see the reference's §2). The request's
/// headers change nothing: the root is unversioned, so no version header or `Vary` is
/// sent back either.
pub async fn root(State(state): State<AppState>) -> Response {
    let cfg = state.config();
    (
        StatusCode::MULTIPLE_CHOICES,
        axum::Json(json!({"versions": [version_object(&cfg.manila_url, cfg.max_version)]})),
    )
        .into_response()
}

fn stamp(resp: &mut Response, version: Option<Version>) {
    if let Some(v) = version.and_then(|v| HeaderValue::from_str(&v.to_string()).ok()) {
        resp.headers_mut()
            .insert("x-openstack-manila-api-version", v);
    }
    resp.headers_mut().insert(
        header::VARY,
        HeaderValue::from_static("X-OpenStack-Manila-API-Version"),
    );
}

/// Every `/v2...` request.
pub async fn manila(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = uri.path().to_owned();
    let started = std::time::Instant::now();
    let (status, version, project, resp) = handle(&state, &method, &uri, &headers, body).await;
    state
        .metrics()
        .request(method.as_str(), &path, status.as_u16(), started.elapsed());
    // The one log line per request: no query, no body, no headers (tokens, keys and
    // names stay out of logs). Debug level: a benchmark sends tens of thousands a second.
    let version = version.map(|v| v.to_string()).unwrap_or_default();
    let project = project.unwrap_or_default();
    if status.is_server_error() {
        tracing::warn!(%method, %path, status = status.as_u16(), %version, %project, "manila request");
    } else {
        tracing::debug!(%method, %path, status = status.as_u16(), %version, %project, "manila request");
    }
    resp
}

async fn handle(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> (StatusCode, Option<Version>, Option<String>, Response) {
    let path = uri.path();
    let cfg = state.config();
    // Version discovery needs no token and is not versioned.
    if (path == "/v2" || path == "/v2/") && *method == Method::GET {
        let mut resp =
            axum::Json(json!({"versions": [version_object(&cfg.manila_url, cfg.max_version)]}))
                .into_response();
        stamp(&mut resp, None);
        return (StatusCode::OK, None, None, resp);
    }
    let token = match keystone::caller(state, headers) {
        Ok(t) => t,
        Err(e) => {
            let mut resp = e.into_response();
            stamp(&mut resp, None);
            return (StatusCode::UNAUTHORIZED, None, None, resp);
        }
    };
    let project = Some(token.project.id.clone());
    let requested = headers
        .get(microversion::HEADER)
        .map(|v| v.to_str().unwrap_or("?"));
    let version = match microversion::negotiate(requested, cfg.max_version) {
        Ok(v) => v,
        Err(Negotiation::Malformed(e)) => {
            let mut resp = ApiError::bad_request(e.to_string()).into_response();
            stamp(&mut resp, None);
            return (StatusCode::BAD_REQUEST, None, project, resp);
        }
        Err(Negotiation::Unsupported {
            requested,
            min,
            max,
        }) => {
            let e = ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                format!(
                    "Version {requested} is not supported by the API. Minimum is {min} and maximum is {max}."
                ),
            );
            let mut resp = e.into_response();
            stamp(&mut resp, None);
            return (StatusCode::NOT_ACCEPTABLE, None, project, resp);
        }
    };
    let result = async {
        let faults = state.faults();
        if faults.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
        }
        if state.draw(faults.error_rate) {
            // Half 500, half 503, from the same seeded stream.
            return Err(if state.draw(0.5) {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The service is temporarily unavailable (injected fault).",
                )
            } else {
                ApiError::internal(
                    "The server has either erred or is incapable of performing the requested operation (injected fault).",
                )
            });
        }
        let ctx = Ctx {
            state: state.clone(),
            token,
            version,
            query: query_pairs(uri.query()),
        };
        let body = if matches!(*method, Method::POST | Method::PUT) {
            let bytes = axum::body::to_bytes(body, cfg.max_body)
                .await
                .map_err(|_| ApiError::over_limit("Request is too large."))?;
            Some(bytes)
        } else {
            None
        };
        route(&ctx, method, path, body.as_deref())
    }
    .await;
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    stamp(&mut resp, Some(version));
    (resp.status(), Some(version), project, resp)
}

/// Top-level collections: a first path segment that is none of these is a project ID.
const COLLECTIONS: &[&str] = &[
    "shares",
    "share-access-rules",
    "snapshots",
    "types",
    "quota-sets",
    "os-quota-sets",
    "limits",
    "availability-zones",
    "os-availability-zone",
    "messages",
];

/// Routes a `/v2/...` request by its first segment (after the optional project ID).
fn route(ctx: &Ctx, method: &Method, path: &str, body: Option<&[u8]>) -> ApiResult<Response> {
    let segs = segments(ctx, path)?;
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.first().copied() {
        Some("shares" | "share-access-rules") => route_shares(ctx, method, &s, body),
        Some("snapshots") => route_snapshots(ctx, method, &s, body),
        _ => route_resources(ctx, method, &s, body),
    }
}

/// The decoded path segments after `/v2/`, without the project ID if the URL has one
/// (it must look like one and be the token's).
fn segments(ctx: &Ctx, path: &str) -> ApiResult<Vec<String>> {
    let rest = path
        .strip_prefix("/v2/")
        .ok_or_else(ApiError::no_resource)?;
    let mut segs: Vec<String> = rest
        .trim_end_matches('/')
        .split('/')
        .map(decode_segment)
        .collect();
    if segs
        .first()
        .is_some_and(|s| !COLLECTIONS.contains(&s.as_str()))
    {
        // `/v2/{project_id}/...`: the ID must look like one and be the token's.
        let pid = segs.remove(0);
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(ApiError::no_resource());
        }
        if pid != ctx.project_id() {
            return Err(ApiError::bad_request("Malformed request url"));
        }
        if segs.is_empty() {
            return Err(ApiError::no_resource());
        }
    }
    Ok(segs)
}

/// 404 below microversion 2.`min`.
fn gate(ctx: &Ctx, min: u32) -> ApiResult<()> {
    if ctx.version.at_least(min) {
        Ok(())
    } else {
        Err(ApiError::no_resource())
    }
}

/// 404 from microversion 2.`max_excl` on.
fn below(ctx: &Ctx, max_excl: u32) -> ApiResult<()> {
    if ctx.version.at_least(max_excl) {
        Err(ApiError::no_resource())
    } else {
        Ok(())
    }
}

/// What no route matched: 405 under a known collection, 404 elsewhere.
fn not_routed(s: &[&str]) -> ApiResult<Response> {
    match s {
        [first, ..] if COLLECTIONS.contains(first) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "The method specified is not allowed for this resource.",
        )),
        _ => Err(ApiError::no_resource()),
    }
}

/// `/shares/...` (with export locations and metadata) and `/share-access-rules/...`.
fn route_shares(
    ctx: &Ctx,
    method: &Method,
    s: &[&str],
    body: Option<&[u8]>,
) -> ApiResult<Response> {
    match (method.clone(), s) {
        (Method::GET, ["shares"]) => share::list(ctx, false),
        (Method::GET, ["shares", "detail"]) => share::list(ctx, true),
        (Method::POST, ["shares"]) => share::create(ctx, &json_body(body)?),
        (Method::GET, ["shares", id]) => share::show(ctx, id),
        (Method::PUT, ["shares", id]) => share::update(ctx, id, &json_body(body)?),
        (Method::DELETE, ["shares", id]) => share::delete(ctx, id),
        (Method::POST, ["shares", id, "action"]) => share::action(ctx, id, &json_body(body)?),
        (Method::GET, ["shares", id, "export_locations"]) => {
            gate(ctx, 9)?;
            share::export_locations(ctx, id)
        }
        (Method::GET, ["shares", id, "export_locations", el]) => {
            gate(ctx, 9)?;
            share::export_location(ctx, id, el)
        }
        (Method::GET, ["shares", id, "metadata"]) => share::metadata_get(ctx, id),
        (Method::POST, ["shares", id, "metadata"]) => {
            share::metadata_set(ctx, id, &json_body(body)?, false)
        }
        (Method::PUT, ["shares", id, "metadata"]) => {
            share::metadata_set(ctx, id, &json_body(body)?, true)
        }
        (Method::GET, ["shares", id, "metadata", key]) => share::metadata_item(ctx, id, key),
        (Method::PUT, ["shares", id, "metadata", key]) => {
            share::metadata_put_item(ctx, id, key, &json_body(body)?)
        }
        (Method::DELETE, ["shares", id, "metadata", key]) => {
            share::metadata_delete_item(ctx, id, key)
        }
        (Method::GET, ["share-access-rules"]) => {
            gate(ctx, 45)?;
            access_rule::list(ctx)
        }
        (Method::GET, ["share-access-rules", id]) => {
            gate(ctx, 45)?;
            access_rule::show(ctx, id)
        }
        _ => not_routed(s),
    }
}

/// `/snapshots/...`.
fn route_snapshots(
    ctx: &Ctx,
    method: &Method,
    s: &[&str],
    body: Option<&[u8]>,
) -> ApiResult<Response> {
    match (method.clone(), s) {
        (Method::GET, ["snapshots"]) => snapshot::list(ctx, false),
        (Method::GET, ["snapshots", "detail"]) => snapshot::list(ctx, true),
        (Method::POST, ["snapshots"]) => snapshot::create(ctx, &json_body(body)?),
        (Method::GET, ["snapshots", id]) => snapshot::show(ctx, id),
        (Method::PUT, ["snapshots", id]) => snapshot::update(ctx, id, &json_body(body)?),
        (Method::DELETE, ["snapshots", id]) => snapshot::delete(ctx, id),
        (Method::GET, ["snapshots", id, "export-locations"]) => {
            gate(ctx, 32)?;
            snapshot::export_locations(ctx, id)
        }
        (Method::GET, ["snapshots", id, "export-locations", el]) => {
            gate(ctx, 32)?;
            snapshot::export_location(ctx, id, el)
        }
        _ => not_routed(s),
    }
}

/// Share types, quota sets, limits, availability zones and user messages.
fn route_resources(
    ctx: &Ctx,
    method: &Method,
    s: &[&str],
    body: Option<&[u8]>,
) -> ApiResult<Response> {
    match (method.clone(), s) {
        (Method::GET, ["types"]) => resources::types(ctx),
        (Method::GET, ["types", id]) => resources::type_show(ctx, id),
        (Method::GET, ["types", id, "extra_specs"]) => resources::type_extra_specs(ctx, id),
        (m, ["quota-sets", rest @ ..]) => {
            gate(ctx, 7)?;
            resources::quota(ctx, &m, rest, body)
        }
        (m, ["os-quota-sets", rest @ ..]) => {
            below(ctx, 7)?;
            resources::quota(ctx, &m, rest, body)
        }
        (Method::GET, ["limits"]) => resources::limits(ctx),
        (Method::GET, ["availability-zones"]) => {
            gate(ctx, 7)?;
            resources::availability_zones(ctx)
        }
        (Method::GET, ["os-availability-zone"]) => {
            below(ctx, 7)?;
            resources::availability_zones(ctx)
        }
        (Method::GET, ["messages"]) => {
            gate(ctx, 37)?;
            resources::messages(ctx)
        }
        (Method::GET, ["messages", id]) => {
            gate(ctx, 37)?;
            resources::message_show(ctx, id)
        }
        (Method::DELETE, ["messages", id]) => {
            gate(ctx, 37)?;
            resources::message_delete(ctx, id)
        }
        _ => not_routed(s),
    }
}
