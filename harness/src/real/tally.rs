//! What the hollow kubelets saw, counted for the report: CSI calls by method and code
//! with their wall-clock latencies, the node authorizer's 403s by resource, back-offs,
//! when each pod became Running or was deleted for good, each pod's last error, and
//! the kubelets' API requests with their waits for the client rate limit. Every figure
//! is measured on the wall clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::throttle::ClientLimit;

/// The counts of every kubelet of a run.
#[derive(Debug)]
pub struct Tally {
    started: Instant,
    inner: Mutex<Counts>,
    limits: Mutex<Vec<(&'static str, Arc<ClientLimit>)>>,
}

/// A copy of the counts.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Latencies by (method, code).
    pub rpcs: BTreeMap<(String, String), Vec<Duration>>,
    /// 403s by resource.
    pub forbidden: BTreeMap<String, u64>,
    /// Back-offs, and how many were at the cap.
    pub backoffs: [u64; 2],
    /// Pods reported Running, with the time since the tally started.
    pub running: BTreeMap<String, Duration>,
    /// Pods deleted for good.
    pub gone: BTreeSet<String>,
    /// Each pod's last volume error (cleared when it runs).
    pub pod_errors: BTreeMap<String, String>,
    /// API requests by client kind: count, total wait for the rate limit (s), longest
    /// wait (s).
    pub api_clients: BTreeMap<String, (u64, f64, f64)>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            inner: Mutex::new(Counts::default()),
            limits: Mutex::new(Vec::new()),
        }
    }
}

impl Tally {
    /// When counting began.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// A CSI call ended with `code` after `took`.
    pub fn rpc(&self, method: &str, code: tonic::Code, took: Duration) {
        let code = format!("{code:?}");
        self.inner
            .lock()
            .rpcs
            .entry((method.to_owned(), code))
            .or_default()
            .push(took);
    }

    /// The API server refused a read of `resource`.
    pub fn forbidden(&self, resource: &str) {
        *self
            .inner
            .lock()
            .forbidden
            .entry(resource.to_owned())
            .or_default() += 1;
    }

    /// An operation backs off (`at_cap`: for the longest wait).
    pub fn backoff(&self, at_cap: bool) {
        let mut c = self.inner.lock();
        c.backoffs[0] += 1;
        if at_cap {
            c.backoffs[1] += 1;
        }
    }

    /// Pod `pod` was reported Running.
    pub fn running(&self, pod: &str) {
        let at = self.started.elapsed();
        let mut c = self.inner.lock();
        c.pod_errors.remove(pod);
        c.running.insert(pod.to_owned(), at);
    }

    /// Pod `pod` was deleted for good.
    pub fn gone(&self, pod: &str) {
        self.inner.lock().gone.insert(pod.to_owned());
    }

    /// The last error of pod `pod`'s volumes.
    pub fn pod_error(&self, pod: &str, error: &str) {
        self.inner
            .lock()
            .pod_errors
            .insert(pod.to_owned(), error.to_owned());
    }

    /// Counts the requests of a client of kind `kind` (`kubelet`) through its limit.
    pub fn api_client(&self, kind: &'static str, limit: Arc<ClientLimit>) {
        self.limits.lock().push((kind, limit));
    }

    /// A copy of the counts now.
    pub fn counts(&self) -> Counts {
        let mut counts = self.inner.lock().clone();
        for (kind, limit) in self.limits.lock().iter() {
            let (n, waited, longest) = limit.stats();
            let c = counts.api_clients.entry((*kind).to_owned()).or_default();
            *c = (c.0 + n, c.1 + waited, c.2.max(longest));
        }
        counts
    }
}
