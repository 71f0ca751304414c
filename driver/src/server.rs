//! Serving the CSI services on a Unix socket or a TCP address, and metrics over HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use tonic::transport::Server;

use crate::config::Backend;
use crate::controller::ControllerService;
use crate::csi::v1::controller_server::ControllerServer;
use crate::csi::v1::identity_server::IdentityServer;
use crate::csi::v1::node_server::NodeServer;
use crate::identity::IdentityService;
use crate::incoming::{ConnLimits, incoming};
use crate::instance::Driver;
use crate::node::NodeService;
use crate::service::Controller;

/// Where the CSI services listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

/// A malformed endpoint.
#[derive(Debug, thiserror::Error)]
#[error("bad endpoint '{0}': expected unix:///path/csi.sock, /path/csi.sock or tcp://host:port")]
pub struct EndpointError(String);

impl std::str::FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(p) = s
            .strip_prefix("unix://")
            .or_else(|| s.strip_prefix("unix:"))
        {
            if p.starts_with('/') {
                return Ok(Endpoint::Unix(PathBuf::from(p)));
            }
        } else if let Some(a) = s.strip_prefix("tcp://") {
            return a
                .parse()
                .map(Endpoint::Tcp)
                .map_err(|_| EndpointError(s.to_owned()));
        } else if s.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(s)));
        }
        Err(EndpointError(s.to_owned()))
    }
}

/// The tonic router with the services of the driver's mode.
pub fn router(driver: Arc<Driver>) -> tonic::transport::server::Router {
    let mut server = Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
    let mut router = server.add_service(IdentityServer::new(IdentityService::new(driver.clone())));
    if driver.config.mode.controller() {
        router = match driver.config.backend {
            Backend::Cephfs => router.add_service(ControllerServer::new(ControllerService::new(
                driver.clone(),
            ))),
            Backend::Manila => {
                router.add_service(ControllerServer::new(Controller::manila(driver.clone())))
            }
        };
    }
    if driver.config.mode.node() {
        router = router.add_service(NodeServer::new(NodeService::new(driver)));
    }
    router
}

/// Serves until `shutdown` completes, with `ConnLimits::default`. A stale Unix socket
/// file is replaced.
pub async fn serve(
    driver: Arc<Driver>,
    endpoint: &Endpoint,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    serve_with(driver, endpoint, ConnLimits::default(), shutdown).await
}

/// HTTP/2 keepalive on CSI connections: a ping every 30 s to an idle peer, which must
/// answer within 10 s or the connection is closed (a CO that died without closing).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Calls in progress on one connection; more wait for a stream (the CO's own limits are
/// far lower: the sidecars' --worker-threads default to 10 to 100).
const MAX_STREAMS_PER_CONNECTION: u32 = 1024;

/// [`serve`] with the given connection bounds.
pub async fn serve_with(
    driver: Arc<Driver>,
    endpoint: &Endpoint,
    limits: ConnLimits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let router = router(driver);
    match endpoint {
        Endpoint::Unix(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            let listener = bind_unix(path)?;
            router
                .serve_with_incoming_shutdown(incoming(listener, limits), shutdown)
                .await?;
            let _ = std::fs::remove_file(path);
        }
        Endpoint::Tcp(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            router
                .serve_with_incoming_shutdown(incoming(listener, limits), shutdown)
                .await?;
        }
    }
    Ok(())
}

/// The mode of the CSI socket: the owner (the CO's user, root under kubelet) and its
/// group may connect, nobody else, whatever the process's umask.
pub const SOCKET_MODE: u32 = 0o660;

/// Binds and listens on a Unix socket that appears at `path` only once it is listening
/// with [`SOCKET_MODE`]: bound under a temporary name beside it, made 0660, then renamed
/// into place. So no one connects while it has the umask's mode, and a client that sees
/// the file never meets a socket that is bound but not yet listening.
pub fn bind_unix(path: &std::path::Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the socket path has no file name"))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        rand::random::<u32>()
    ));
    let listener = tokio::net::UnixListener::bind(&tmp)?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(SOCKET_MODE))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}

/// What the metrics server allows, so that its port can never take the process's file
/// descriptors or CPU away from the CSI socket.
#[derive(Debug, Clone, Copy)]
pub struct MetricsLimits {
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// How long a client may take to send its request head.
    pub header_timeout: Duration,
    /// How long one connection may live, whatever it does.
    pub connection_timeout: Duration,
}

impl Default for MetricsLimits {
    fn default() -> Self {
        Self {
            max_connections: 16,
            header_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `GET /metrics` with the driver's metrics (Prometheus text format), with the
/// default [`MetricsLimits`], until the task is dropped.
pub async fn serve_metrics(driver: Arc<Driver>, listener: tokio::net::TcpListener) {
    serve_metrics_limited(driver, listener, MetricsLimits::default()).await;
}

/// [`serve_metrics`] with these limits. A connection is accepted only when one of
/// `max_connections` is free, closes after one request, and is dropped when its head
/// does not arrive in time or it outlives `connection_timeout`; a failing accept
/// (EMFILE, say) is retried after a pause instead of in a spin.
pub async fn serve_metrics_limited(
    driver: Arc<Driver>,
    listener: tokio::net::TcpListener,
    limits: MetricsLimits,
) {
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(d): State<Arc<Driver>>| async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    d.metrics.render(),
                )
            }),
        )
        .with_state(driver);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut failing = false;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let sock = match listener.accept().await {
            Ok((sock, _)) => {
                failing = false;
                sock
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "metrics: accept failed; pausing");
                }
                failing = true;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(sock), service);
            let _ = tokio::time::timeout(limits.connection_timeout, conn).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The socket is 0660 whatever the umask (default 022 here, which left it 0755), and
    /// no temporary name is left beside it.
    #[tokio::test]
    async fn the_csi_socket_is_0660() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("csi.sock");
        let _listener = bind_unix(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("csi.sock")]);
        tokio::net::UnixStream::connect(&path).await.unwrap();
    }

    /// Silent clients are closed after the header timeout, at most `max_connections` are
    /// held at once, and a client that asks gets its metrics meanwhile.
    #[tokio::test]
    async fn the_metrics_port_drops_silent_clients_and_still_serves() {
        let config = crate::config::Config::new("d", "n", crate::config::Mode::All, vec![]);
        let driver = Arc::new(Driver::new(config, vec![]).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = MetricsLimits {
            max_connections: 4,
            header_timeout: Duration::from_millis(300),
            connection_timeout: Duration::from_secs(5),
        };
        tokio::spawn(serve_metrics_limited(driver, listener, limits));
        let started = std::time::Instant::now();
        let mut silent = Vec::new();
        for _ in 0..12 {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            // Half a request head, then nothing.
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            silent.push(s);
        }
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let answer = tokio::time::timeout(Duration::from_secs(4), get("/metrics"))
            .await
            .expect("a real client is served while silent ones wait");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("text/plain; version=0.0.4"), "{answer}");
        // Every silent client was closed by the server, a few at a time.
        for mut s in silent {
            let mut buf = Vec::new();
            tokio::time::timeout(Duration::from_secs(4), s.read_to_end(&mut buf))
                .await
                .expect("closed by the server")
                .ok();
        }
        // 12 silent clients, 4 at a time, 300 ms each: three rounds at least.
        assert!(
            started.elapsed() >= Duration::from_millis(850),
            "{:?}",
            started.elapsed()
        );
        let other = get("/nope").await;
        assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    }

    /// Silent clients of the CSI socket are closed after the first-byte timeout, at
    /// most `max_connections` are held at once, and Probe is answered meanwhile; a client
    /// that keeps its connection and calls again later is not cut.
    #[tokio::test]
    async fn the_csi_socket_drops_silent_clients_and_still_serves() {
        use crate::csi::v1::identity_client::IdentityClient;
        let config = crate::config::Config::new("d", "n", crate::config::Mode::Node, vec![]);
        let driver = Arc::new(Driver::new(config, vec![]).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("csi.sock");
        let limits = ConnLimits {
            max_connections: 4,
            first_byte_timeout: Duration::from_millis(300),
        };
        let endpoint = Endpoint::Unix(path.clone());
        tokio::spawn(
            async move { serve_with(driver, &endpoint, limits, std::future::pending()).await },
        );
        while !path.exists() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let connect = |path: PathBuf| async move {
            let channel = tonic::transport::Endpoint::from_static("http://localhost")
                .connect_with_connector(tower::service_fn(move |_| {
                    let path = path.clone();
                    async move {
                        tokio::net::UnixStream::connect(path)
                            .await
                            .map(hyper_util::rt::TokioIo::new)
                    }
                }))
                .await
                .unwrap();
            IdentityClient::new(channel)
        };
        // A client that is connected before the silent ones come, and stays.
        let mut early = connect(path.clone()).await;
        early.probe(crate::csi::v1::ProbeRequest {}).await.unwrap();
        let started = std::time::Instant::now();
        let mut silent = Vec::new();
        for _ in 0..12 {
            silent.push(tokio::net::UnixStream::connect(&path).await.unwrap());
        }
        let probe = async {
            let mut c = connect(path.clone()).await;
            c.probe(crate::csi::v1::ProbeRequest {}).await
        };
        tokio::time::timeout(Duration::from_secs(5), probe)
            .await
            .expect("a real client is served while silent ones wait")
            .unwrap();
        for mut s in silent {
            let mut buf = Vec::new();
            tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
                .await
                .expect("closed by the server")
                .ok();
        }
        // 12 silent clients in 3 free slots, 300 ms each: four rounds at least.
        assert!(
            started.elapsed() >= Duration::from_millis(1100),
            "{:?}",
            started.elapsed()
        );
        // The early client was past its first byte: it is still served.
        early.probe(crate::csi::v1::ProbeRequest {}).await.unwrap();
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            "unix:///run/csi.sock".parse::<Endpoint>().unwrap(),
            Endpoint::Unix("/run/csi.sock".into())
        );
        assert_eq!(
            "/run/csi.sock".parse::<Endpoint>().unwrap(),
            Endpoint::Unix("/run/csi.sock".into())
        );
        assert_eq!(
            "tcp://127.0.0.1:10000".parse::<Endpoint>().unwrap(),
            Endpoint::Tcp("127.0.0.1:10000".parse().unwrap())
        );
        for bad in ["", "unix://relative", "http://x", "tcp://nope"] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }
}
