//! Timestamps in the formats Ceph prints.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// The clock the cluster's timed transitions (clones) follow: the system clock, or a
/// manual one that only moves when told to (for tests that pin a sequence of states).
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// `Instant::now()`.
    #[default]
    System,
    /// A clock that starts at creation and moves by [`Clock::advance`].
    Manual(Arc<Mutex<Instant>>),
}

impl Clock {
    /// A manual clock.
    pub fn manual() -> Self {
        Clock::Manual(Arc::new(Mutex::new(Instant::now())))
    }

    /// The current instant.
    pub fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            Clock::Manual(t) => *t.lock(),
        }
    }

    /// Moves a manual clock forward; the system clock ignores it.
    pub fn advance(&self, d: Duration) {
        if let Clock::Manual(t) = self {
            *t.lock() += d;
        }
    }

    /// An instant of this clock as Unix time, to be kept beyond the process.
    pub fn to_unix(&self, t: Instant) -> Duration {
        let (now, unix) = (self.now(), now_unix());
        if t <= now {
            unix.saturating_sub(now - t)
        } else {
            unix + (t - now)
        }
    }

    /// A Unix time kept by [`Clock::to_unix`] as an instant of this clock, in this
    /// process; a time before the clock's origin becomes now.
    pub fn from_unix(&self, u: Duration) -> Instant {
        let (now, unix) = (self.now(), now_unix());
        if u <= unix {
            now.checked_sub(unix - u).unwrap_or(now)
        } else {
            now + (u - unix)
        }
    }
}

/// Seconds and nanoseconds since the Unix epoch.
pub fn now_unix() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// `t` (since the Unix epoch) in UTC with `format` (strftime); a time beyond jiff's
/// range (year 9999) is shown as its last second.
fn utc(t: Duration, format: &str) -> String {
    let secs = i64::try_from(t.as_secs()).unwrap_or(i64::MAX);
    let ts = jiff::Timestamp::from_second(secs).unwrap_or(jiff::Timestamp::MAX);
    ts.strftime(format).to_string()
}

/// `YYYY-MM-DD HH:MM:SS`, as `fs subvolume info` prints times.
pub fn ceph_time(t: Duration) -> String {
    utc(t, "%Y-%m-%d %H:%M:%S")
}

/// `YYYY-MM-DD HH:MM:SS.ffffff`, as `fs subvolume snapshot info` prints `created_at`.
pub fn ceph_time_micros(t: Duration) -> String {
    format!("{}.{:06}", ceph_time(t), t.subsec_micros())
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, as the monmap stamps its times.
pub fn ceph_stamp_z(t: Duration) -> String {
    let s = ceph_stamp(t);
    format!("{}Z", s.trim_end_matches("+0000"))
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff+0000`, as the monitor stamps maps.
pub fn ceph_stamp(t: Duration) -> String {
    format!(
        "{}.{:06}+0000",
        utc(t, "%Y-%m-%dT%H:%M:%S"),
        t.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(secs: u64, expected: &str) {
        assert_eq!(ceph_time(Duration::from_secs(secs)), expected);
    }

    #[test]
    fn formats() {
        check(0, "1970-01-01 00:00:00");
        check(1_447_423_027, "2015-11-13 13:57:07");
        check(951_782_400, "2000-02-29 00:00:00");
        check(4_102_444_799, "2099-12-31 23:59:59");
        assert_eq!(
            ceph_time_micros(Duration::new(1_655_214_898, 618_769_000)),
            "2022-06-14 13:54:58.618769"
        );
        assert_eq!(
            ceph_stamp(Duration::new(0, 1_000)),
            "1970-01-01T00:00:00.000001+0000"
        );
    }
}
