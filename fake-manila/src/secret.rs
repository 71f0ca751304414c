//! [`Secret`]: a cephx key, a password, an application credential's secret or a
//! Keystone token. Its `Debug` is [`secrecy`]'s, which prints a redaction, so that a
//! struct holding secrets can derive `Debug`; it has no `Display`, and its value comes
//! out only through [`Secret::expose`]. A leaf: every module that holds a secret
//! imports it, and it imports nothing of the crate.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret string: never shown by `Debug` (a redaction) and without `Display`.
#[derive(Debug, Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(SecretString::from(s.into()))
    }

    /// The secret itself, for the one place that must send, compare or show it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

/// Equal secrets have equal bytes; compared in constant time for equal lengths.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.expose().as_bytes(), other.expose().as_bytes())
    }
}

impl Eq for Secret {}

/// Hashes as its `str` does, so that a map keyed by secrets (the live tokens) is looked
/// up with the `&str` a request presents.
impl Hash for Secret {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.expose().hash(state);
    }
}

impl Borrow<str> for Secret {
    fn borrow(&self) -> &str {
        self.expose()
    }
}

/// Read from configuration files (users and application credentials) as a string.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

/// Written as the string it is: only a configuration that holds it is serialized.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.expose())
    }
}

/// Compares two byte strings without stopping at the first difference (for strings of
/// the same length; the length itself is not hidden).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = Secret::new("AQAz7EVWygILFRAAdIcuJ12opU/JKyfFmxhuaw==");
        let shown = format!("{s:?}");
        assert!(!shown.contains("AQAz7EVW"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            user: String,
            password: Secret,
        }
        let h = Holder {
            user: "kim".into(),
            password: "correct-horse-battery-staple".into(),
        };
        let shown = format!("{h:?}");
        assert!(!shown.contains("correct-horse"), "{shown}");
        assert!(shown.contains("kim"), "{shown}");
    }

    #[test]
    fn equality_hash_and_lookup_follow_the_value() {
        let a = Secret::new("token-1");
        assert_eq!(a, Secret::from("token-1"));
        assert_ne!(a, Secret::from("token-2"));
        let mut m = std::collections::HashMap::new();
        m.insert(a, 1);
        assert_eq!(m.get("token-1"), Some(&1));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
