//! Serving the CSI services on a Unix socket or a TCP address, and metrics over HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Server;

use crate::config::Backend;
use crate::controller::ControllerService;
use crate::csi::v1::controller_server::ControllerServer;
use crate::csi::v1::identity_server::IdentityServer;
use crate::csi::v1::node_server::NodeServer;
use crate::driver::Driver;
use crate::identity::IdentityService;
use crate::manila::controller::ManilaController;
use crate::node::NodeService;

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
    let mut server = Server::builder();
    let mut router = server.add_service(IdentityServer::new(IdentityService::new(driver.clone())));
    if driver.config.mode.controller() {
        router = match driver.config.backend {
            Backend::Cephfs => router.add_service(ControllerServer::new(ControllerService::new(
                driver.clone(),
            ))),
            Backend::Manila => {
                router.add_service(ControllerServer::new(ManilaController::new(driver.clone())))
            }
        };
    }
    if driver.config.mode.node() {
        router = router.add_service(NodeServer::new(NodeService::new(driver)));
    }
    router
}

/// Serves until `shutdown` completes. A stale Unix socket file is replaced.
pub async fn serve(
    driver: Arc<Driver>,
    endpoint: &Endpoint,
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
            let listener = tokio::net::UnixListener::bind(path)?;
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?;
            let _ = std::fs::remove_file(path);
        }
        Endpoint::Tcp(addr) => {
            router.serve_with_shutdown(*addr, shutdown).await?;
        }
    }
    Ok(())
}

/// Serves `GET /metrics` (any path) with the driver's metrics, until the task is dropped.
pub async fn serve_metrics(driver: Arc<Driver>, listener: tokio::net::TcpListener) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let d = driver.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let body = d.metrics.render();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
