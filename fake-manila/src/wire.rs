//! What the Manila handlers and their router share: the request context ([`Ctx`]), the
//! readings of queries, bodies and paths (booleans, paging, metadata, percent-decoding)
//! and the answers (`reply`, `accepted`). A leaf below the handlers and the router
//! ([`crate::api`]): it imports none of them, so both import it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::identity::TokenInfo;
use crate::microversion::Version;
use crate::state::AppState;

/// What a handler knows about its request.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The service.
    pub state: AppState,
    /// The caller's token.
    pub token: Arc<TokenInfo>,
    /// The microversion the request runs at.
    pub version: Version,
    /// Query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
}

impl Ctx {
    /// Whether the caller is a cloud admin.
    pub fn is_admin(&self) -> bool {
        self.token.is_admin()
    }

    /// The caller's project.
    pub fn project_id(&self) -> &str {
        &self.token.project.id
    }

    /// A query parameter (the first of that name).
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the request runs at 2.`minor` or later.
    pub fn at_least(&self, minor: u32) -> bool {
        self.version.at_least(minor)
    }

    /// Manila's public URL.
    pub fn url(&self) -> &str {
        &self.state.config().manila_url
    }

    /// Whether the caller asked for every project's resources and may have them.
    pub fn all_tenants(&self) -> bool {
        self.is_admin() && self.q("all_tenants").is_some_and(truthy)
    }
}

/// Manila's reading of a boolean query value (`strutils.bool_from_string`).
pub fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "t" | "true" | "on" | "y" | "yes"
    )
}

/// A strict boolean from a query value or body field; `None` if it is not one.
pub fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
            "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
            _ => None,
        },
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Decoded `key=value` pairs of a query string (`+` is a space, `%XX` a byte).
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Percent-decodes a path segment (`+` stays `+`); bad escapes are kept as they are and
/// bytes that are not UTF-8 become U+FFFD.
pub fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses a JSON body; a malformed one is 400.
pub fn json_body(body: Option<&[u8]>) -> ApiResult<Value> {
    let b = body.unwrap_or(b"");
    if b.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("Malformed request body"));
    }
    serde_json::from_slice(b).map_err(|_| ApiError::bad_request("Malformed request body"))
}

/// The object under `key` in a body, or 422 as Manila's `is_valid_body` answers.
pub fn body_object<'a>(
    body: &'a Value,
    key: &str,
) -> ApiResult<&'a serde_json::Map<String, Value>> {
    body.get(key)
        .and_then(Value::as_object)
        .ok_or_else(ApiError::unprocessable)
}

/// A JSON answer with a status.
pub fn reply(status: StatusCode, body: Value) -> ApiResult<Response> {
    Ok((status, axum::Json(body)).into_response())
}

/// An empty 202.
pub fn accepted() -> ApiResult<Response> {
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `limit`/`offset` from the query; a bad value is 400.
pub fn paging(ctx: &Ctx) -> ApiResult<(usize, Option<usize>)> {
    let num = |k: &str| -> ApiResult<Option<usize>> {
        match ctx.q(k) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<usize>()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("{k} param must be an integer"))),
        }
    };
    Ok((num("offset")?.unwrap_or(0), num("limit")?))
}

/// A metadata object: string keys of 1..=255 characters, string values up to 1023.
pub fn parse_metadata(v: Option<&Value>) -> ApiResult<BTreeMap<String, String>> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(BTreeMap::new());
    };
    let m = v.as_object().ok_or_else(|| {
        ApiError::bad_request("Malformed request body: metadata must be an object.")
    })?;
    let mut out = BTreeMap::new();
    for (k, v) in m {
        if k.is_empty() || k.chars().count() > 255 {
            return Err(ApiError::bad_request(
                "Metadata property key blank or longer than 255 characters.",
            ));
        }
        let v = v.as_str().ok_or_else(|| {
            ApiError::bad_request(format!(
                "Metadata property value for key {} is not a string.",
                k.chars().take(64).collect::<String>()
            ))
        })?;
        if v.chars().count() > 1023 {
            return Err(ApiError::bad_request(
                "Metadata property value greater than 1023 characters.",
            ));
        }
        out.insert(k.clone(), v.to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, expected: &str) {
        let q = query_pairs(Some(&format!("k={raw}")));
        assert_eq!(q, vec![("k".to_owned(), expected.to_owned())], "{raw}");
    }

    #[test]
    fn decoding() {
        check("abc", "abc");
        check("a+b", "a b");
        check("a%20b", "a b");
        check("%7B%27k%27%3A%20%27v%27%7D", "{'k': 'v'}");
        check("100%", "100%");
        check("%zz", "%zz");
        check("%4", "%4");
        check("%e2%9c%93", "\u{2713}");
        assert_eq!(decode_segment("a+b%20c%2F"), "a+b c/");
    }

    proptest::proptest! {
        /// Whatever a client puts in a query (any keys and values, encoded as browsers
        /// and python-requests do), the pairs come back as they were, in order.
        #[test]
        fn any_encoded_query_decodes_to_its_pairs(
            pairs in proptest::collection::vec((".{0,12}", ".{0,12}"), 0..6)
        ) {
            let mut enc = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &pairs {
                enc.append_pair(k, v);
            }
            let q = enc.finish();
            let got = query_pairs(Some(&q));
            // A pair with an empty key and value is written as `=`, which is kept.
            proptest::prop_assert_eq!(got, pairs);
        }

        /// Any path segment percent-encoded comes back as it was.
        #[test]
        fn any_encoded_segment_decodes_to_itself(seg in ".{0,24}") {
            let enc = percent_encoding::utf8_percent_encode(&seg, percent_encoding::NON_ALPHANUMERIC).to_string();
            proptest::prop_assert_eq!(decode_segment(&enc), seg);
        }
    }

    #[test]
    fn query_parsing() {
        let q = query_pairs(Some("name=pvc%2D1&all_tenants=1&flag&=x"));
        assert_eq!(
            q,
            vec![
                ("name".into(), "pvc-1".into()),
                ("all_tenants".into(), "1".into()),
                ("flag".into(), String::new()),
                (String::new(), "x".into()),
            ]
        );
    }
}
