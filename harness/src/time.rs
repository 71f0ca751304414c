//! Simulated time and the timing primitives of Kubernetes clients and controllers:
//! exponential back-off, client-side token buckets, and seeded latency distributions.

use std::time::Duration;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// A point on the simulated clock, in nanoseconds since the start of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SimTime(pub u64);

impl SimTime {
    /// The start of the run.
    pub const ZERO: SimTime = SimTime(0);

    /// `self + d`.
    pub fn after(self, d: Duration) -> SimTime {
        SimTime(self.0.saturating_add(d.as_nanos() as u64))
    }

    /// The time elapsed from `earlier` to `self` (zero if `earlier` is later).
    pub fn since(self, earlier: SimTime) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Seconds since the start, for reports.
    pub fn secs(self) -> f64 {
        self.0 as f64 / 1e9
    }
}

/// The kubelet's and the attach-detach controller's per-operation back-off
/// (`goroutinemap/exponentialbackoff`): 500 ms, doubling on each error, capped at 2 min 2 s;
/// reset on success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    last: Option<Duration>,
}

impl Backoff {
    /// Kubernetes' `initialDurationBeforeRetry`.
    pub const KUBE_INITIAL: Duration = Duration::from_millis(500);
    /// Kubernetes' `maxDurationBeforeRetry`.
    pub const KUBE_MAX: Duration = Duration::from_secs(122);

    /// A back-off from `initial`, doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            last: None,
        }
    }

    /// The volume operations' back-off (500 ms → 2 min 2 s).
    pub fn kube() -> Self {
        Self::new(Self::KUBE_INITIAL, Self::KUBE_MAX)
    }

    /// Records one more consecutive error; the wait before the next retry.
    pub fn fail(&mut self) -> Duration {
        let next = match self.last {
            None => self.initial,
            Some(d) => (d * 2).min(self.max),
        };
        self.last = Some(next);
        next
    }

    /// Records a success: the next error starts from `initial` again.
    pub fn reset(&mut self) {
        self.last = None;
    }

    /// The wait after the last error, if the last outcome was an error.
    #[cfg(test)]
    pub fn current(&self) -> Option<Duration> {
        self.last
    }
}

/// A client-go style token bucket (`flowcontrol.NewTokenBucketRateLimiter(qps, burst)`),
/// used by reservation: each request gets the earliest time it may go, in request order,
/// so a client that asks faster than `qps` builds a queue.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    at: SimTime,
    /// Requests granted and the total time they waited for a token.
    pub granted: u64,
    /// Total throttle wait, in nanoseconds.
    pub waited_ns: u128,
    /// The longest single wait.
    pub max_wait: Duration,
}

impl TokenBucket {
    /// A full bucket; `qps <= 0` means unlimited.
    pub fn new(qps: f64, burst: u32) -> Self {
        Self {
            qps,
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            at: SimTime::ZERO,
            granted: 0,
            waited_ns: 0,
            max_wait: Duration::ZERO,
        }
    }

    /// Reserves one token for a request made at `now`; the time the request may go.
    pub fn reserve(&mut self, now: SimTime) -> SimTime {
        self.granted += 1;
        if self.qps <= 0.0 {
            return now;
        }
        if now > self.at {
            let refill = now.since(self.at).as_secs_f64() * self.qps;
            self.tokens = (self.tokens + refill).min(self.burst);
            self.at = now;
        }
        self.tokens -= 1.0;
        let go = if self.tokens >= 0.0 {
            self.at
        } else {
            self.at
                .after(Duration::from_secs_f64(-self.tokens / self.qps))
        };
        let go = go.max(now);
        let wait = go.since(now);
        self.waited_ns += wait.as_nanos();
        self.max_wait = self.max_wait.max(wait);
        go
    }
}

/// A latency distribution: log-normal from a median and a 99th percentile (both zero:
/// no latency).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Latency {
    /// Median, milliseconds.
    pub median_ms: f64,
    /// 99th percentile, milliseconds (>= median).
    pub p99_ms: f64,
}

impl Latency {
    /// A distribution with this median and p99, in milliseconds.
    pub const fn ms(median_ms: f64, p99_ms: f64) -> Self {
        Self { median_ms, p99_ms }
    }

    /// One draw.
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> Duration {
        if self.median_ms <= 0.0 {
            return Duration::ZERO;
        }
        // ln X ~ N(mu, sigma): median = e^mu, p99 = e^(mu + 2.326 sigma).
        let mu = self.median_ms.ln();
        let sigma = (self.p99_ms.max(self.median_ms) / self.median_ms).ln() / 2.326;
        // Box-Muller.
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random::<f64>();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        let ms = (mu + sigma * z).exp().min(self.median_ms * 1000.0);
        Duration::from_secs_f64(ms / 1000.0)
    }
}

/// A per-component random stream derived from the master seed: adding a component does
/// not change the draws of the others.
pub fn stream(seed: u64, component: &str) -> ChaCha8Rng {
    use rand::SeedableRng;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // FNV-1a of the component name selects the stream.
    let mut h = fnv::FnvHasher::default();
    std::hash::Hasher::write(&mut h, component.as_bytes());
    rng.set_stream(std::hash::Hasher::finish(&h));
    rng
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stream of a component is picked by the FNV-1a hash of its name: pinned, since
    /// a change would change every seed's event log.
    #[test]
    fn streams_are_picked_by_the_fnv1a_of_the_name() {
        use rand::SeedableRng;
        for (name, fnv1a) in [
            ("a", 0xaf63_dc4c_8601_ec8c_u64),
            ("kubelet", 0x3a88_6853_f64c_eead),
        ] {
            let mut want = ChaCha8Rng::seed_from_u64(7);
            want.set_stream(fnv1a);
            assert_eq!(stream(7, name), want, "{name}");
        }
    }

    #[test]
    fn kube_backoff_sequence_reaches_2m2s_on_the_9th_error_and_resets() {
        let mut b = Backoff::kube();
        let seq: Vec<f64> = (0..11).map(|_| b.fail().as_secs_f64()).collect();
        assert_eq!(
            seq,
            [
                0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 122.0, 122.0, 122.0
            ]
        );
        b.reset();
        assert_eq!(b.current(), None);
        assert_eq!(b.fail(), Duration::from_millis(500));
    }

    fn check_bucket(qps: f64, burst: u32, asks_ms: &[u64], expected_ms: &[u64]) {
        let mut tb = TokenBucket::new(qps, burst);
        let got: Vec<u64> = asks_ms
            .iter()
            .map(|&a| tb.reserve(SimTime(a * 1_000_000)).0 / 1_000_000)
            .collect();
        assert_eq!(got, expected_ms, "qps {qps} burst {burst}");
    }

    #[test]
    fn token_bucket_grants_burst_then_qps_in_request_order() {
        check_bucket(5.0, 2, &[0, 0, 0, 0], &[0, 0, 200, 400]);
        check_bucket(5.0, 1, &[0, 1000, 1000], &[0, 1000, 1200]);
        check_bucket(0.0, 1, &[0, 0, 0], &[0, 0, 0]);
        // A queue drains at qps: the 13th request of a burst-10, 5 qps client waits 600 ms.
        check_bucket(
            5.0,
            10,
            &[0; 13],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200, 400, 600],
        );
    }

    #[test]
    fn latency_draws_have_the_median_and_are_seeded() {
        let l = Latency::ms(10.0, 100.0);
        let mut a = stream(7, "x");
        let mut draws: Vec<Duration> = (0..2001).map(|_| l.sample(&mut a)).collect();
        draws.sort();
        let median = draws[1000].as_secs_f64() * 1000.0;
        assert!((8.0..12.5).contains(&median), "median {median}");
        let mut b = stream(7, "x");
        let mut c = stream(7, "y");
        let x = l.sample(&mut b);
        assert_eq!(x, {
            let mut a2 = stream(7, "x");
            l.sample(&mut a2)
        });
        assert_ne!(x, l.sample(&mut c));
        assert_eq!(Latency::ms(0.0, 0.0).sample(&mut b), Duration::ZERO);
    }
}
