//! Keystone's HTTP surface: the version documents, `POST`/`GET`/`HEAD`/`DELETE
//! /v3/auth/tokens`, the project and catalog look-ups, and the token check every
//! Manila request goes through ([`caller`]). The identity model behind them is
//! [`crate::identity::Identity`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::KeystoneError;
use crate::identity::*;
use crate::state::AppState;
use crate::wire::query_pairs;

/// `GET /` of Keystone's endpoint: 300 with the one version, whatever the headers.
pub async fn root(State(state): State<AppState>) -> Response {
    (
        StatusCode::MULTIPLE_CHOICES,
        axum::Json(json!({"versions": {"values": [version_object(&state.config().keystone_url)]}})),
    )
        .into_response()
}

/// `GET /v3` and `GET /v3/`.
pub async fn v3(State(state): State<AppState>) -> Response {
    axum::Json(json!({"version": version_object(&state.config().keystone_url)})).into_response()
}

/// `POST /v3/auth/tokens`.
pub async fn issue_token(State(state): State<AppState>, body: Body) -> Response {
    let body = match read_json(&state, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let cfg = state.config();
    let result = state.identity().authenticate(&body, cfg.token_ttl);
    match result {
        Ok((token, info)) => {
            tracing::debug!(user = %info.user_name, project = %info.project.name, "token issued");
            let mut resp = (
                StatusCode::CREATED,
                axum::Json(
                    state
                        .identity()
                        .token_body(&info, &cfg.keystone_url, &cfg.manila_url),
                ),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&token) {
                resp.headers_mut().insert("x-subject-token", v);
            }
            resp
        }
        Err(e) => {
            tracing::debug!(status = %e.status, "token refused");
            e.into_response()
        }
    }
}

async fn read_json(state: &AppState, body: Body) -> Result<Value, KeystoneError> {
    let bytes = axum::body::to_bytes(body, state.config().max_body)
        .await
        .map_err(|_| KeystoneError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request is too large."))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| KeystoneError::bad_request("Expecting to find valid JSON in request body."))
}

/// The caller's token from `X-Auth-Token`, or the 401 keystonemiddleware sends.
pub fn caller(state: &AppState, headers: &HeaderMap) -> Result<Arc<TokenInfo>, KeystoneError> {
    headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| state.identity().validate(t))
        .ok_or_else(|| {
            KeystoneError::middleware_401(&format!("{}/v3", state.config().keystone_url))
        })
}

/// What a caller asks of `/v3/auth/tokens`, as Keystone's policy names it
/// (`keystone/common/policies/token.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenAction {
    /// `HEAD`: `identity:check_token`.
    Check,
    /// `GET`: `identity:validate_token`.
    Validate,
    /// `DELETE`: `identity:revoke_token`.
    Revoke,
}

impl TokenAction {
    fn name(self) -> &'static str {
        match self {
            TokenAction::Check => "identity:check_token",
            TokenAction::Validate => "identity:validate_token",
            TokenAction::Revoke => "identity:revoke_token",
        }
    }

    /// Whether `caller` may act on a token of `subject_user`. Keystone's defaults are
    /// `(role:reader and system_scope:all) or rule:token_subject` (check),
    /// the same `or rule:service_role` (validate) and `(role:admin and
    /// system_scope:all) or rule:token_subject` (revoke), each ORed with its deprecated
    /// rule, `rule:admin_or_token_subject` (check, revoke) or
    /// `rule:service_admin_or_token_subject` (validate). With no system scope here and
    /// `admin` standing for a cloud admin, that is: an admin, the token's own user, and
    /// for validation also the `service` role (keystonemiddleware's service users).
    fn allows(self, caller: &TokenInfo, subject_user: Option<&str>) -> bool {
        caller.is_admin()
            || subject_user == Some(caller.user_id.as_str())
            || (self == TokenAction::Validate && caller.roles.iter().any(|r| r == "service"))
    }
}

/// The `X-Subject-Token` a caller may act on, in Keystone's order: the caller's own
/// token (401), the subject token (404 if given and not valid), the policy (403), a
/// missing subject (404).
fn subject_token(
    state: &AppState,
    headers: &HeaderMap,
    action: TokenAction,
) -> Result<Arc<TokenInfo>, KeystoneError> {
    let caller = caller(state, headers)?;
    let not_found = || KeystoneError::not_found("Could not find token.");
    let subject = match headers.get("x-subject-token") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|t| state.identity().validate(t))
                .ok_or_else(not_found)?,
        ),
        None => None,
    };
    if !action.allows(&caller, subject.as_deref().map(|s| s.user_id.as_str())) {
        return Err(KeystoneError::new(
            StatusCode::FORBIDDEN,
            format!(
                "You are not authorized to perform the requested action: {}.",
                action.name()
            ),
        ));
    }
    subject.ok_or_else(|| KeystoneError::not_found("No token in the request"))
}

/// `GET`/`HEAD /v3/auth/tokens`: validates `X-Subject-Token` (for an admin, a `service`
/// user on `GET`, or the token's own user).
pub async fn validate_token(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let action = if method == Method::HEAD {
        TokenAction::Check
    } else {
        TokenAction::Validate
    };
    let info = match subject_token(&state, &headers, action) {
        Ok(info) => info,
        Err(e) => return e.into_response(),
    };
    let cfg = state.config();
    let mut resp = axum::Json(state.identity().token_body(
        &info,
        &cfg.keystone_url,
        &cfg.manila_url,
    ))
    .into_response();
    if let Some(v) = headers.get("x-subject-token") {
        resp.headers_mut().insert("x-subject-token", v.clone());
    }
    resp
}

/// `DELETE /v3/auth/tokens`: revokes `X-Subject-Token` (for an admin or the token's own
/// user).
pub async fn revoke_token(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = subject_token(&state, &headers, TokenAction::Revoke) {
        return e.into_response();
    }
    let subject = headers.get("x-subject-token").and_then(|v| v.to_str().ok());
    if subject.is_some_and(|t| state.identity().revoke(t)) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        // Expired or revoked between the check and now.
        KeystoneError::not_found("Could not find token.").into_response()
    }
}

fn project_json(p: &Project, keystone_url: &str) -> Value {
    json!({
        "id": p.id, "name": p.name, "domain_id": DOMAIN_ID, "enabled": true, "is_domain": false,
        "parent_id": DOMAIN_ID, "description": "", "tags": [],
        "links": {"self": format!("{keystone_url}/v3/projects/{}", p.id)},
    })
}

/// `GET /v3/projects[?name=]`: the projects the caller can see (all for an admin, its
/// own otherwise).
pub async fn list_projects(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let info = match caller(&state, &headers) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let pairs = query_pairs(query.as_deref());
    let name = pairs
        .iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.as_str());
    let url = &state.config().keystone_url;
    let projects: Vec<Value> = state
        .identity()
        .projects()
        .iter()
        .filter(|p| info.is_admin() || p.id == info.project.id)
        .filter(|p| name.is_none_or(|n| n == p.name))
        .map(|p| project_json(p, url))
        .collect();
    axum::Json(json!({
        "projects": projects,
        "links": {"self": format!("{url}/v3/projects"), "previous": null, "next": null},
    }))
    .into_response()
}

/// `GET /v3/auth/projects`: the projects the caller's user has roles in.
pub async fn auth_projects(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let info = match caller(&state, &headers) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let url = &state.config().keystone_url;
    axum::Json(json!({
        "projects": [project_json(&info.project, url)],
        "links": {"self": format!("{url}/v3/auth/projects"), "previous": null, "next": null},
    }))
    .into_response()
}

/// `GET /v3/projects/{id}`: 404 unless the ID names a project the caller can see.
pub async fn show_project(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let info = match caller(&state, &headers) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    match state.identity().project(&id) {
        Some(p) if info.is_admin() || p.id == info.project.id => {
            axum::Json(json!({"project": project_json(p, &state.config().keystone_url)}))
                .into_response()
        }
        _ => KeystoneError::not_found(format!(
            "Could not find project: {}.",
            id.chars().take(64).collect::<String>()
        ))
        .into_response(),
    }
}

/// `GET /v3/auth/catalog`.
pub async fn auth_catalog(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = caller(&state, &headers) {
        return e.into_response();
    }
    let cfg = state.config();
    let (url, manila) = (&cfg.keystone_url, &cfg.manila_url);
    axum::Json(json!({
        "catalog": catalog(url, manila),
        "links": {"self": format!("{url}/v3/auth/catalog")},
    }))
    .into_response()
}
