//! The CSI-client toolkit the conformance bench ([`crate::conformance`]) and the load
//! generator ([`crate::load`]) share: connecting to an endpoint ([`endpoint`]), the
//! params and secrets files ([`input`]), the requests a CO sends ([`request`]), helpers
//! around a call ([`call`]), and the scratch directories a CO makes for a plugin
//! ([`scratch`]).
//!
//! It may import the driver's CSI types and external crates only: never
//! [`crate::conformance`] or [`crate::load`], which import it.

pub(crate) mod call;
pub mod endpoint;
pub mod input;
pub(crate) mod request;
pub(crate) mod scratch;

/// A name no other run uses: `prefix-<uuid>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}
