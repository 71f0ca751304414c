//! Waiting within one RPC for something Ceph or Manila does asynchronously (a clone, a
//! share, an access rule): a backoff up to a deadline, and the deadline the caller gave
//! (gRPC's `grpc-timeout`), so that a wait ends with an answer the caller still reads.

use std::time::Duration;

/// Waits between checks: from 2 ms doubling to a longest step (2 s unless set), until
/// a deadline.
#[derive(Debug)]
pub(crate) struct Backoff {
    deadline: tokio::time::Instant,
    delay: Duration,
    longest: Duration,
}

impl Backoff {
    /// A backoff that gives up after `wait`.
    pub(crate) fn new(wait: Duration) -> Self {
        Self {
            deadline: tokio::time::Instant::now() + wait,
            delay: Duration::from_millis(2),
            longest: Duration::from_secs(2),
        }
    }

    /// The same, with steps of at most `longest`.
    pub(crate) fn with_longest_step(mut self, longest: Duration) -> Self {
        self.longest = longest;
        self
    }

    /// Sleeps before the next check; `false` once the deadline has passed.
    pub(crate) async fn wait(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        if now >= self.deadline {
            return false;
        }
        tokio::time::sleep(self.delay.min(self.deadline - now)).await;
        self.delay = (self.delay * 2).min(self.longest);
        true
    }
}

/// The time left to the caller, from gRPC's `grpc-timeout` header (`<digits><unit>`,
/// unit one of `H M S m u n`); `None` when the caller set no deadline or the header is
/// malformed.
pub(crate) fn caller_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    parse_grpc_timeout(metadata.get("grpc-timeout")?.to_str().ok()?)
}

fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    // gRPC over HTTP/2: TimeoutValue is at most 8 ASCII digits.
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// How long an RPC may wait for something asynchronous: at most `configured`, and,
/// when the caller set a deadline, a fifth of it short of that deadline, so the answer
/// (Aborted: retry to keep waiting) arrives before the caller gives up on the call.
pub(crate) fn budget(configured: Duration, caller: Option<Duration>) -> Duration {
    match caller {
        Some(t) => configured.min(t - t / 5),
        None => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(v: &str, expected: Option<Duration>) {
        assert_eq!(parse_grpc_timeout(v), expected, "{v}");
    }

    #[test]
    fn grpc_timeouts_parse() {
        check("10S", Some(Duration::from_secs(10)));
        check("2M", Some(Duration::from_secs(120)));
        check("1H", Some(Duration::from_secs(3600)));
        check("150m", Some(Duration::from_millis(150)));
        check("99999999u", Some(Duration::from_micros(99_999_999)));
        check("5n", Some(Duration::from_nanos(5)));
        check("S", None);
        check("10", None);
        check("10s", None);
        check("-1S", None);
        check("1 S", None);
        check("123456789S", None);
    }

    #[test]
    fn the_budget_ends_before_the_callers_deadline() {
        let s = Duration::from_secs;
        assert_eq!(budget(s(20), None), s(20));
        assert_eq!(budget(s(20), Some(s(10))), s(8));
        assert_eq!(budget(s(5), Some(s(150))), s(5));
        assert_eq!(budget(s(5), Some(Duration::ZERO)), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_gives_up_at_its_deadline() {
        let started = tokio::time::Instant::now();
        let mut b = Backoff::new(Duration::from_secs(5));
        let mut checks = 0;
        while b.wait().await {
            checks += 1;
        }
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(5) && waited < Duration::from_millis(5001));
        // 2, 4, ... 1024 ms, then 2 s steps: a dozen checks, not thousands.
        assert!((10..=14).contains(&checks), "{checks}");
        let mut b =
            Backoff::new(Duration::from_secs(5)).with_longest_step(Duration::from_millis(500));
        let mut steps = 0;
        while b.wait().await {
            steps += 1;
        }
        // 2 ... 256 ms (0.5 s in all), then 0.5 s steps for the other 4.5 s.
        assert!((16..=19).contains(&steps), "{steps}");
    }
}
