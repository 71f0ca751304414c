//! Time stamps in the formats the two APIs print.
//!
//! Manila prints `YYYY-MM-DDTHH:MM:SS.ffffff` with **no** zone suffix (gophercloud fails
//! on a trailing `Z`); Keystone prints the same with a `Z`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time, as microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Now, by the system clock.
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    /// This time plus `d`.
    pub fn plus(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        )
    }

    /// Manila's format: `2015-09-18T10:25:24.000000`.
    pub fn manila(self) -> String {
        let secs = i64::try_from(self.0 / 1_000_000).unwrap_or(i64::MAX);
        let micros = self.0 % 1_000_000;
        // Beyond jiff's range (year 9999): its last second.
        let t = jiff::Timestamp::from_second(secs).unwrap_or(jiff::Timestamp::MAX);
        format!("{}.{micros:06}", t.strftime("%Y-%m-%dT%H:%M:%S"))
    }

    /// Keystone's format: `2015-11-06T15:32:17.893769Z`.
    pub fn keystone(self) -> String {
        format!("{}Z", self.manila())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(micros: u64, manila: &str) {
        assert_eq!(Timestamp(micros).manila(), manila);
        assert_eq!(Timestamp(micros).keystone(), format!("{manila}Z"));
    }

    #[test]
    fn formats() {
        check(0, "1970-01-01T00:00:00.000000");
        check(1_442_571_924_000_000, "2015-09-18T10:25:24.000000");
        check(1_446_823_937_893_769, "2015-11-06T15:32:17.893769");
        check(951_782_400_000_001, "2000-02-29T00:00:00.000001");
        check(4_102_444_799_999_999, "2099-12-31T23:59:59.999999");
    }
}
