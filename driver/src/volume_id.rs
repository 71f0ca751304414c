//! Self-describing volume and snapshot IDs, in ceph-csi's version-1 layout:
//!
//! ```text
//! 0001-<len(clusterID) as 4 hex>-<clusterID>-<FSCID as 16 hex>-<uuid>
//! ```
//!
//! Decoding validates every part (hex lengths, the UUID's shape, the cluster ID's
//! characters and length), so nothing from an ID can reach a path or a command unchecked.

use std::fmt;
use std::str::FromStr;

/// The longest cluster ID (ceph-csi documents 36 so that IDs stay under 128 bytes).
pub const MAX_CLUSTER_ID: usize = 36;
const VERSION: &str = "0001";

/// A decoded volume (or snapshot) ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CsiId {
    /// The cluster ID from the cluster config.
    pub cluster_id: String,
    /// The file system ID (FSCID).
    pub location_id: i64,
    /// The UUID of the journal entry (and of the subvolume name).
    pub uuid: String,
}

/// Why an ID does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed ID: {0}")]
pub struct IdError(&'static str);

/// Whether a cluster ID is acceptable: 1 to 36 characters of `[A-Za-z0-9._-]`.
pub fn valid_cluster_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_CLUSTER_ID
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether `s` is a UUID in its 36-character hyphenated form.
pub fn valid_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

impl CsiId {
    /// A new ID; the parts must be valid.
    pub fn new(cluster_id: &str, location_id: i64, uuid: &str) -> Result<Self, IdError> {
        if !valid_cluster_id(cluster_id) {
            return Err(IdError("cluster ID"));
        }
        if !valid_uuid(uuid) {
            return Err(IdError("uuid"));
        }
        if location_id < 0 {
            return Err(IdError("location"));
        }
        Ok(Self {
            cluster_id: cluster_id.to_owned(),
            location_id,
            uuid: uuid.to_ascii_lowercase(),
        })
    }
}

impl fmt::Display for CsiId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{VERSION}-{:04x}-{}-{:016x}-{}",
            self.cluster_id.len(),
            self.cluster_id,
            self.location_id,
            self.uuid
        )
    }
}

impl FromStr for CsiId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > 128 || !s.is_ascii() {
            return Err(IdError("length"));
        }
        let rest = s.strip_prefix(VERSION).ok_or(IdError("version"))?;
        let rest = rest.strip_prefix('-').ok_or(IdError("layout"))?;
        let (len_hex, rest) = rest.split_at_checked(4).ok_or(IdError("layout"))?;
        let len = usize::from_str_radix(len_hex, 16).map_err(|_| IdError("cluster ID length"))?;
        let rest = rest.strip_prefix('-').ok_or(IdError("layout"))?;
        let (cluster_id, rest) = rest.split_at_checked(len).ok_or(IdError("cluster ID"))?;
        let rest = rest.strip_prefix('-').ok_or(IdError("layout"))?;
        let (loc_hex, rest) = rest.split_at_checked(16).ok_or(IdError("location"))?;
        if !loc_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(IdError("location"));
        }
        let location_id = i64::from_str_radix(loc_hex, 16).map_err(|_| IdError("location"))?;
        let uuid = rest.strip_prefix('-').ok_or(IdError("layout"))?;
        Self::new(cluster_id, location_id, uuid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(s: &str, expected: Option<(&str, i64, &str)>) {
        let got = s.parse::<CsiId>().ok();
        let want = expected.map(|(c, l, u)| CsiId::new(c, l, u).unwrap());
        assert_eq!(got, want, "{s}");
        if let Some(id) = got {
            assert_eq!(id.to_string(), s.to_ascii_lowercase());
        }
    }

    #[test]
    fn decodes_ceph_csi_ids() {
        check(
            "0001-0024-8250916c-200a-4097-8969-f2dfac1e28a9-0000000000000001-772511ca-2cf3-11ec-b938-c6d7496d1c1b",
            Some((
                "8250916c-200a-4097-8969-f2dfac1e28a9",
                1,
                "772511ca-2cf3-11ec-b938-c6d7496d1c1b",
            )),
        );
        check(
            "0001-0011-openshift-storage-0000000000000001-f2ac6808-4576-11ed-afe6-0a580a830013",
            Some((
                "openshift-storage",
                1,
                "f2ac6808-4576-11ed-afe6-0a580a830013",
            )),
        );
        check(
            "0001-0002-c1-000000000000000a-f2ac6808-4576-11ed-afe6-0a580a830013",
            Some(("c1", 10, "f2ac6808-4576-11ed-afe6-0a580a830013")),
        );
    }

    #[test]
    fn refuses_malformed_ids() {
        for bad in [
            "",
            "not-an-id",
            "0002-0002-c1-0000000000000001-f2ac6808-4576-11ed-afe6-0a580a830013",
            "0001-0003-c1-0000000000000001-f2ac6808-4576-11ed-afe6-0a580a830013",
            "0001-0002-c1-000000000000001-f2ac6808-4576-11ed-afe6-0a580a830013",
            "0001-0002-c1-0000000000000001-f2ac6808-4576-11ed-afe6-0a580a83001",
            "0001-0002-c1-0000000000000001-../../../../etc/passwd-xxxxxxxxxxxxx",
            "0001-0005-../..-0000000000000001-f2ac6808-4576-11ed-afe6-0a580a830013",
            "0001-0002-c1-0000000000000001-f2ac6808-4576-11ed-afe6-0a580a830013x",
            "0001-zzzz-c1-0000000000000001-f2ac6808-4576-11ed-afe6-0a580a830013",
        ] {
            assert!(bad.parse::<CsiId>().is_err(), "{bad}");
        }
        let long = format!(
            "0001-0040-{}-0000000000000001-f2ac6808-4576-11ed-afe6-0a580a830013",
            "a".repeat(64)
        );
        assert!(long.parse::<CsiId>().is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_string_decodes_or_errs_and_round_trips(s in ".{0,140}") {
            if let Ok(id) = s.parse::<CsiId>() {
                proptest::prop_assert_eq!(id.to_string(), s.to_ascii_lowercase());
                proptest::prop_assert!(valid_uuid(&id.uuid));
            }
        }
    }
}
