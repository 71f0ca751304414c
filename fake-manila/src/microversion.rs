//! Manila API microversions: parsing, negotiation, and the version rules of the API.
//!
//! Only requests under `/v2` are versioned. The version comes from the
//! `X-OpenStack-Manila-API-Version` header (matched case-insensitively, as HTTP headers
//! are); a missing header is 2.0; the standard `OpenStack-API-Version` header is ignored,
//! as Manila ignores it.

use std::fmt;
use std::str::FromStr;

/// The header that carries the microversion.
pub const HEADER: &str = "x-openstack-manila-api-version";

/// A microversion `major.minor`. Ordered as numbers (2.10 > 2.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// The major version (always 2 for the v2 API).
    pub major: u32,
    /// The minor version.
    pub minor: u32,
}

impl Version {
    /// `major.minor`.
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// The oldest version the API serves, and the one a request without a header gets.
    pub const MIN: Version = Version::new(2, 0);
    /// The newest version this fake serves (Manila's `_MAX_API_VERSION` at the reference
    /// snapshot).
    pub const MAX: Version = Version::new(2, 99);

    /// Whether this version is at least `2.minor`.
    pub fn at_least(self, minor: u32) -> bool {
        self >= Version::new(2, minor)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A version string that is not `major.minor` with decimal numbers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid API version request string {0}.")]
pub struct BadVersion(pub String);

impl FromStr for Version {
    type Err = BadVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadVersion(s.chars().take(32).collect());
        let (major, minor) = s.trim().split_once('.').ok_or_else(bad)?;
        let num = |p: &str| -> Result<u32, BadVersion> {
            if p.is_empty() || p.len() > 6 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        Ok(Version::new(num(major)?, num(minor)?))
    }
}

/// Why a requested version cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Negotiation {
    /// Malformed (HTTP 400).
    Malformed(BadVersion),
    /// Well formed but outside `[min, max]` (HTTP 406).
    Unsupported {
        /// What was asked for.
        requested: Version,
        /// The server minimum.
        min: Version,
        /// The server maximum.
        max: Version,
    },
}

/// The version a request runs at: `None` (no header) is 2.0; anything outside
/// `[Version::MIN, max]` is refused. `latest` is not accepted: clients resolve it
/// themselves, as Manila expects.
pub fn negotiate(header: Option<&str>, max: Version) -> Result<Version, Negotiation> {
    let Some(raw) = header else {
        return Ok(Version::MIN);
    };
    let v: Version = raw.parse().map_err(Negotiation::Malformed)?;
    if v < Version::MIN || v > max {
        return Err(Negotiation::Unsupported {
            requested: v,
            min: Version::MIN,
            max,
        });
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(header: Option<&str>, expected: Result<&str, &str>) {
        let got = negotiate(header, Version::MAX);
        match (got, expected) {
            (Ok(v), Ok(want)) => assert_eq!(v.to_string(), want, "{header:?}"),
            (Err(Negotiation::Malformed(_)), Err("400")) => {}
            (Err(Negotiation::Unsupported { .. }), Err("406")) => {}
            (got, want) => panic!("{header:?}: got {got:?}, wanted {want:?}"),
        }
    }

    #[test]
    fn negotiation_table() {
        check(None, Ok("2.0"));
        check(Some("2.0"), Ok("2.0"));
        check(Some("2.7"), Ok("2.7"));
        check(Some(" 2.45 "), Ok("2.45"));
        check(Some("2.99"), Ok("2.99"));
        check(Some("2.100"), Err("406"));
        check(Some("1.0"), Err("406"));
        check(Some("3.0"), Err("406"));
        check(Some("9.99"), Err("406"));
        check(Some("latest"), Err("400"));
        check(Some("abc"), Err("400"));
        check(Some("2"), Err("400"));
        check(Some("2."), Err("400"));
        check(Some("2.-1"), Err("400"));
        check(Some("2.+1"), Err("400"));
        check(Some("99999999999.1"), Err("400"));
    }

    #[test]
    fn ordering_is_numeric() {
        assert!(Version::new(2, 10) > Version::new(2, 9));
        assert!(Version::new(2, 45).at_least(45));
        assert!(!Version::new(2, 44).at_least(45));
    }
}
