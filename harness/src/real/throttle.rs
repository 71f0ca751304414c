//! The client-side rate limit of a real Kubernetes client, for clients built with kube-rs
//! (which has none): client-go's token bucket (`flowcontrol.NewTokenBucketRateLimiter`),
//! the simulator's [`TokenBucket`] on the wall clock, as a tower layer under the kube
//! [`Client`](kube::Client). Every request, a watch's start included, takes a token
//! before it is sent; one that finds the bucket empty waits for its turn, as client-go's
//! `Wait` does. A hollow kubelet's client gets the kubelet's own limit (50 QPS, burst
//! 100 since v1.27: `kubeAPIQPS`, `kubeAPIBurst`).

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::time::{SimTime, TokenBucket};

/// The kubelet's default client QPS and burst (`kubeAPIQPS`, `kubeAPIBurst`, v1.27+).
pub const KUBELET_QPS: f64 = 50.0;
/// See [`KUBELET_QPS`].
pub const KUBELET_BURST: u32 = 100;

/// One client's token bucket, on the wall clock.
#[derive(Debug)]
pub struct ClientLimit {
    started: Instant,
    bucket: Mutex<TokenBucket>,
}

impl ClientLimit {
    /// A full bucket of `burst` tokens refilled at `qps` a second.
    pub fn new(qps: f64, burst: u32) -> Self {
        Self {
            started: Instant::now(),
            bucket: Mutex::new(TokenBucket::new(qps, burst)),
        }
    }

    /// Takes a token for a request made now; how long the request must wait for it.
    pub fn reserve(&self) -> Duration {
        let now = SimTime::ZERO.after(self.started.elapsed());
        self.bucket.lock().reserve(now).since(now)
    }

    /// Requests so far, their total wait (s) and the longest wait (s).
    pub fn stats(&self) -> (u64, f64, f64) {
        let b = self.bucket.lock();
        (
            b.granted,
            b.waited_ns as f64 / 1e9,
            b.max_wait.as_secs_f64(),
        )
    }
}

/// The tower layer that puts a [`ClientLimit`] in front of a client's service.
#[derive(Debug, Clone)]
pub struct LimitLayer(pub Arc<ClientLimit>);

impl<S> tower::Layer<S> for LimitLayer {
    type Service = Limited<S>;

    fn layer(&self, inner: S) -> Limited<S> {
        Limited {
            inner,
            limit: self.0.clone(),
            reserved: false,
            turn: None,
        }
    }
}

/// A service whose requests each wait for a token first. The wait is in `poll_ready`, so
/// under the kube client's `Buffer` (one worker) requests take their turns in order.
#[derive(Debug)]
pub struct Limited<S> {
    inner: S,
    limit: Arc<ClientLimit>,
    /// A token is reserved for the next request.
    reserved: bool,
    /// Its turn, when it had to wait.
    turn: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S, R> tower::Service<R> for Limited<S>
where
    S: tower::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        if !self.reserved {
            self.reserved = true;
            let wait = self.limit.reserve();
            if !wait.is_zero() {
                self.turn = Some(Box::pin(tokio::time::sleep(wait)));
            }
        }
        if let Some(turn) = self.turn.as_mut() {
            std::task::ready!(turn.as_mut().poll(cx));
            self.turn = None;
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        self.reserved = false;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer as _, Service as _, ServiceExt as _};

    /// A burst goes at once; past it, each request waits for its token (at 20 QPS, 50 ms
    /// apart), and the waits are counted.
    #[tokio::test]
    async fn requests_past_the_burst_wait_their_turn() {
        let limit = Arc::new(ClientLimit::new(20.0, 3));
        let echo = tower::service_fn(|n: u32| async move { Ok::<_, std::convert::Infallible>(n) });
        let mut svc = LimitLayer(limit.clone()).layer(echo);
        let t0 = Instant::now();
        for n in 0..3 {
            assert_eq!(svc.ready().await.unwrap().call(n).await.unwrap(), n);
        }
        assert!(t0.elapsed() < Duration::from_millis(40), "the burst waited");
        assert_eq!(limit.stats().1, 0.0);
        for n in 3..5 {
            svc.ready().await.unwrap().call(n).await.unwrap();
        }
        assert!(
            t0.elapsed() >= Duration::from_millis(95),
            "{:?}",
            t0.elapsed()
        );
        let (n, waited, longest) = limit.stats();
        assert_eq!(n, 5);
        assert!(waited > 0.0 && longest <= 0.051, "{waited} {longest}");
    }
}
