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
        let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
        let s = secs.rem_euclid(86_400);
        format!(
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}",
            s / 3600,
            (s / 60) % 60,
            s % 60
        )
    }

    /// Keystone's format: `2015-11-06T15:32:17.893769Z`.
    pub fn keystone(self) -> String {
        format!("{}Z", self.manila())
    }
}

/// Days since 1970-01-01 to a civil (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
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
