//! What the fake services' binaries (`fake-ceph`, `fake-manila`) share: logging to
//! stderr, the URL as the first line on stdout, serving HTTP with timeouts and a
//! connection limit ([`serve`], [`ServeConfig`]) until SIGTERM or Ctrl-C.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// Sets up logging (stderr; `RUST_LOG`, default `info`; JSON lines when `json`; colours
/// only when stderr is a terminal, so log files hold plain text), runs
/// `run` on a new multi-threaded runtime and turns its outcome into the exit code, with
/// the error logged under `name`.
pub fn main<F>(name: &str, json: bool, run: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<()>>,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "{name} failed");
            ExitCode::FAILURE
        }
    }
}

/// Prints the service's URL as a line of its own on stdout, flushed, so that whoever
/// started the process can read where it listens. `url` may be several lines: they go
/// out in one write, so a reader that stops after the first line (and closes the pipe)
/// cannot make a later one fail with EPIPE.
pub fn announce(url: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(format!("{url}\n").as_bytes())?;
    out.flush()
}

/// Resolves on SIGTERM or Ctrl-C (never, if the handler cannot be installed).
pub async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// How the fake services hold their HTTP connections: timeouts and a connection limit,
/// so that silent, idle or half-sent connections cannot pile up until the process runs
/// out of file descriptors and every other client is locked out.
///
/// - `header_read_timeout`: a connection gets this long to deliver a complete request
///   head, counted from when the server starts waiting for one (a new connection, or a
///   kept-alive one after its last response). Silent connections, idle kept-alive ones and
///   half-sent heads are closed when it runs out.
/// - `idle_timeout`: once a request's head is in, its body and its response each may go
///   this long without a byte moving (a client that stops sending its body, or stops
///   reading the answer); the connection is closed then. A handler that takes long (a
///   `hang` or `latency` fault) is not idle: the connection waits for it.
/// - `max_connections`: open connections at most. At the limit, the connection that has
///   waited longest for a request (never sent one first, then idle kept-alive ones) is
///   closed to make room, as nginx reuses its idle connections; when every connection
///   has a request in progress, new ones wait in the listen backlog.
/// - `shutdown_grace`: on shutdown, requests in progress get this long to finish.
///
/// Only HTTP/1.1 is served (the mgr `restful` module, Keystone and Manila behind their
/// usual WSGI servers speak it; no client of the fakes uses HTTP/2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// See the type's doc.
    pub header_read_timeout: std::time::Duration,
    /// See the type's doc.
    pub idle_timeout: std::time::Duration,
    /// See the type's doc.
    pub max_connections: usize,
    /// See the type's doc.
    pub shutdown_grace: std::time::Duration,
}

impl ServeConfig {
    /// hyper's own default header timeout.
    pub const DEFAULT_HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
    /// Assumed: twice the header timeout, so a slow but moving upload is not cut.
    pub const DEFAULT_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
    /// Half of the usual 1,024 open files a process may have, leaving the rest for the
    /// data dir and the Ceph client; raise it with the open-files limit.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
    /// Assumed: long enough for any request but a hung one.
    pub const DEFAULT_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// Serves `app` on `listener` with `config`'s timeouts and limit until `shutdown`
/// resolves; then stops accepting, closes idle connections, lets requests in progress
/// finish for up to `shutdown_grace` and returns. Both fake services serve through it.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    conn::serve(listener, app, config, shutdown).await
}

mod conn {
    //! The connection handling behind [`super::serve`].

    use std::collections::HashMap;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::task::{Context, Poll, ready};
    use std::time::{Duration, Instant};

    use axum::body::Body;
    use hyper::body::{Frame, SizeHint};
    use hyper_util::rt::{TokioIo, TokioTimer};
    use parking_lot::Mutex;
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::net::TcpStream;
    use tokio::sync::{Notify, Semaphore, watch};
    use tokio::time::Sleep;

    use super::ServeConfig;

    /// What the server knows of one connection.
    #[derive(Debug)]
    struct ConnState {
        /// Requests whose head came in.
        requests: AtomicU64,
        /// Requests whose response has not been written whole.
        in_flight: AtomicUsize,
        /// When the connection last became idle (no request in progress), in
        /// milliseconds since the server started.
        idle_since_ms: AtomicU64,
        /// Asked to go.
        evicting: AtomicBool,
        evict: Notify,
    }

    #[derive(Debug)]
    struct Registry {
        started: Instant,
        next: AtomicU64,
        conns: Mutex<HashMap<u64, Arc<ConnState>>>,
    }

    impl Registry {
        fn now_ms(&self) -> u64 {
            u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
        }

        /// Asks the connection that has waited longest for a request to go; whether
        /// there was one.
        fn evict_one(&self) -> bool {
            let conns = self.conns.lock();
            let victim = conns
                .values()
                .filter(|c| {
                    c.in_flight.load(Ordering::SeqCst) == 0 && !c.evicting.load(Ordering::SeqCst)
                })
                .min_by_key(|c| {
                    (
                        c.requests.load(Ordering::SeqCst) > 0,
                        c.idle_since_ms.load(Ordering::SeqCst),
                    )
                });
            match victim {
                Some(c) => {
                    c.evicting.store(true, Ordering::SeqCst);
                    c.evict.notify_one();
                    true
                }
                None => false,
            }
        }
    }

    pub(super) async fn serve(
        listener: tokio::net::TcpListener,
        app: axum::Router,
        config: ServeConfig,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let config = Arc::new(config);
        let registry = Arc::new(Registry {
            started: Instant::now(),
            next: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
        });
        let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => break,
                // Reap finished connection tasks as they end.
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                a = listener.accept() => a,
            };
            let stream = match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and the like: wait for a connection to close.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let permit = match slots.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    if !registry.evict_one() {
                        tracing::debug!("connection limit reached, every connection busy");
                    }
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break,
                        p = slots.clone().acquire_owned() => match p {
                            Ok(p) => p,
                            Err(_) => break,
                        },
                    }
                }
            };
            let _ = stream.set_nodelay(true);
            let id = registry.next.fetch_add(1, Ordering::Relaxed);
            let state = Arc::new(ConnState {
                requests: AtomicU64::new(0),
                in_flight: AtomicUsize::new(0),
                idle_since_ms: AtomicU64::new(registry.now_ms()),
                evicting: AtomicBool::new(false),
                evict: Notify::new(),
            });
            registry.conns.lock().insert(id, state.clone());
            let (app, config, registry, stop) = (
                app.clone(),
                config.clone(),
                registry.clone(),
                stop_rx.clone(),
            );
            tasks.spawn(async move {
                serve_connection(stream, app, &config, &state, &registry, stop).await;
                registry.conns.lock().remove(&id);
                drop(permit);
            });
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let grace = config.shutdown_grace;
        if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            tracing::warn!(
                left = tasks.len(),
                "connections still busy after the grace period"
            );
            tasks.shutdown().await;
        }
        Ok(())
    }

    async fn serve_connection(
        stream: TcpStream,
        app: axum::Router,
        config: &ServeConfig,
        state: &Arc<ConnState>,
        registry: &Arc<Registry>,
        mut stop: watch::Receiver<bool>,
    ) {
        let idle = config.idle_timeout;
        let io = TokioIo::new(StallIo::new(stream, idle));
        let svc_state = state.clone();
        let svc_registry = registry.clone();
        let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let guard = InFlight::start(&svc_state, &svc_registry);
            let req = req.map(|b| Body::new(StallBody::new(b, idle)));
            let app = app.clone();
            async move {
                let resp = tower::ServiceExt::oneshot(app, req).await;
                // The guard lives until the response body has been written whole.
                resp.map(|r| {
                    r.map(|b| {
                        Body::new(Guarded {
                            inner: b,
                            _guard: guard,
                        })
                    })
                })
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout);
        let conn = builder.serve_connection(io, svc);
        tokio::pin!(conn);
        let mut closing = false;
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection closed");
                    }
                    return;
                }
                () = state.evict.notified(), if !closing => {}
                r = stop.changed(), if !closing => {
                    if r.is_err() {
                        return;
                    }
                }
            }
            // Evicted or shutting down: a connection that never sent a request has
            // nothing to finish; any other finishes what it has in progress.
            if state.requests.load(Ordering::SeqCst) == 0 {
                return;
            }
            conn.as_mut().graceful_shutdown();
            closing = true;
        }
    }

    /// Counts a request as in progress from its head until its response is written.
    #[derive(Debug)]
    struct InFlight {
        state: Arc<ConnState>,
        registry: Arc<Registry>,
    }

    impl InFlight {
        fn start(state: &Arc<ConnState>, registry: &Arc<Registry>) -> Self {
            state.requests.fetch_add(1, Ordering::SeqCst);
            state.in_flight.fetch_add(1, Ordering::SeqCst);
            Self {
                state: state.clone(),
                registry: registry.clone(),
            }
        }
    }

    impl Drop for InFlight {
        fn drop(&mut self) {
            self.state
                .idle_since_ms
                .store(self.registry.now_ms(), Ordering::SeqCst);
            self.state.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A response body that keeps its request counted as in progress.
    struct Guarded {
        inner: Body,
        _guard: InFlight,
    }

    impl hyper::body::Body for Guarded {
        type Data = axum::body::Bytes;
        type Error = axum::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            Pin::new(&mut self.inner).poll_frame(cx)
        }

        fn is_end_stream(&self) -> bool {
            self.inner.is_end_stream()
        }

        fn size_hint(&self) -> SizeHint {
            self.inner.size_hint()
        }
    }

    /// The error of a request body or response that stalled.
    fn stalled(what: &str) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} stalled"))
    }

    /// A request body that fails when no byte of it arrives for the idle timeout.
    struct StallBody {
        inner: hyper::body::Incoming,
        idle: Duration,
        sleep: Pin<Box<Sleep>>,
    }

    impl StallBody {
        fn new(inner: hyper::body::Incoming, idle: Duration) -> Self {
            Self {
                inner,
                idle,
                sleep: Box::pin(tokio::time::sleep(idle)),
            }
        }
    }

    impl hyper::body::Body for StallBody {
        type Data = axum::body::Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(r) => {
                    let deadline = tokio::time::Instant::now() + self.idle;
                    self.sleep.as_mut().reset(deadline);
                    Poll::Ready(r.map(|f| f.map_err(std::io::Error::other)))
                }
                Poll::Pending => {
                    ready!(self.sleep.as_mut().poll(cx));
                    Poll::Ready(Some(Err(stalled("request body"))))
                }
            }
        }

        fn is_end_stream(&self) -> bool {
            self.inner.is_end_stream()
        }

        fn size_hint(&self) -> SizeHint {
            self.inner.size_hint()
        }
    }

    /// A socket whose writes fail when the client reads nothing of a response for the
    /// idle timeout.
    struct StallIo {
        inner: TcpStream,
        idle: Duration,
        sleep: Pin<Box<Sleep>>,
        waiting: bool,
    }

    impl StallIo {
        fn new(inner: TcpStream, idle: Duration) -> Self {
            Self {
                inner,
                idle,
                sleep: Box::pin(tokio::time::sleep(idle)),
                waiting: false,
            }
        }

        /// After a write attempt: progress disarms the timer, a blocked write arms it
        /// (once) and fails when it fires.
        fn check<T>(
            &mut self,
            cx: &mut Context<'_>,
            r: Poll<std::io::Result<T>>,
        ) -> Poll<std::io::Result<T>> {
            match r {
                Poll::Ready(r) => {
                    self.waiting = false;
                    Poll::Ready(r)
                }
                Poll::Pending => {
                    if !self.waiting {
                        self.waiting = true;
                        let deadline = tokio::time::Instant::now() + self.idle;
                        self.sleep.as_mut().reset(deadline);
                    }
                    ready!(self.sleep.as_mut().poll(cx));
                    Poll::Ready(Err(stalled("response")))
                }
            }
        }
    }

    impl AsyncRead for StallIo {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for StallIo {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let r = Pin::new(&mut self.inner).poll_write(cx, buf);
            self.check(cx, r)
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
            self.check(cx, r)
        }

        fn is_write_vectored(&self) -> bool {
            self.inner.is_write_vectored()
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            let r = Pin::new(&mut self.inner).poll_flush(cx);
            self.check(cx, r)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }
}
