//! Errors as they leave the API: Manila's fault bodies and Keystone's error bodies.
//!
//! Manila wraps every error as `{"<faultName>": {"code": N, "message": "..."}}` with the
//! fault name taken from the status code (`manila/api/openstack/wsgi.py`); codes without
//! a name (406, 422, 500) are `computeFault`. Keystone answers
//! `{"error": {"code": N, "title": "...", "message": "..."}}`. Messages never carry a
//! secret: they are built from IDs, names and sizes only.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A Manila API error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message shown to the client.
    pub message: String,
}

/// A result of a Manila handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400 `badRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404 `itemNotFound`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 404 for a route or action that does not exist at the request's version.
    pub fn no_resource() -> Self {
        Self::not_found("The resource could not be found.")
    }

    /// 409 `conflictingRequest`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 413 `overLimit`: a quota is exceeded.
    pub fn over_limit(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// 422: the body lacks its top-level key.
    pub fn unprocessable() -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Unable to process the contained instructions",
        )
    }

    /// 500 `computeFault`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The fault name Manila uses for this status.
    pub fn fault_name(&self) -> &'static str {
        fault_name(self.status)
    }
}

/// Manila's status → fault name map (`wsgi.Fault._fault_names`).
pub fn fault_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 => "overLimit",
        415 => "badMediaType",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let name = self.fault_name();
        let mut inner = json!({"code": self.status.as_u16(), "message": self.message});
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            inner["retryAfter"] = json!("0");
        }
        let mut resp = (self.status, axum::Json(json!({ name: inner }))).into_response();
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("0"));
        }
        resp
    }
}

/// A Keystone error (`{"error": {"code", "title", "message"}}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct KeystoneError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message shown to the client.
    pub message: String,
    /// `WWW-Authenticate` to send with a 401, if any.
    pub www_authenticate: Option<String>,
}

impl KeystoneError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            www_authenticate: None,
        }
    }

    /// 401 with Keystone's wording.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// The keystonemiddleware answer to a request without a valid token.
    pub fn middleware_401(identity_url: &str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: "The request you have made requires authentication.".into(),
            www_authenticate: Some(format!("Keystone uri='{identity_url}'")),
        }
    }
}

impl IntoResponse for KeystoneError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error").to_owned();
        let body = json!({"error": {"code": self.status.as_u16(), "title": title, "message": self.message}});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(v) = self
            .www_authenticate
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(code: u16, name: &str) {
        let status = StatusCode::from_u16(code).expect("valid status");
        assert_eq!(fault_name(status), name, "{code}");
    }

    #[test]
    fn fault_names() {
        check(400, "badRequest");
        check(401, "unauthorized");
        check(403, "forbidden");
        check(404, "itemNotFound");
        check(405, "badMethod");
        check(406, "computeFault");
        check(409, "conflictingRequest");
        check(413, "overLimit");
        check(415, "badMediaType");
        check(422, "computeFault");
        check(500, "computeFault");
        check(501, "notImplemented");
        check(503, "serviceUnavailable");
    }
}
