//! Accepting connections to the CSI endpoint with bounds: at most
//! [`ConnLimits::max_connections`] open at once (the next ones wait in the listen
//! backlog), and a connection that sends nothing for [`ConnLimits::first_byte_timeout`]
//! after it was accepted is closed, so silent clients cannot hold every slot. Accept
//! errors (out of file descriptors) pause accepting instead of spinning.
//!
//! The Unix socket is 0660 and only the CO connects to it, but a node plugin serves
//! the kubelet and its registrar on one socket, and `tcp://` endpoints are reachable by
//! anything on the network: neither may be starved by stuck or idle peers.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tonic::transport::server::Connected;

/// Bounds on the CSI endpoint's connections (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// How long an accepted connection may stay silent before its first byte.
    pub first_byte_timeout: Duration,
}

impl ConnLimits {
    /// Assumed: a CO keeps a handful of connections (kubelet, registrar, sidecars); a
    /// quarter of the usual 1,024 open files leaves the rest for mounts and back ends.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
    /// Assumed: gRPC clients send their preface as soon as they connect.
    pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            first_byte_timeout: Self::DEFAULT_FIRST_BYTE_TIMEOUT,
        }
    }
}

/// A listener tonic can take connections from.
pub trait Accept: Send + 'static {
    /// The connection.
    type Io: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static;
    /// Accepts the next connection.
    fn accept(&self) -> impl std::future::Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Accept for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&self) -> std::io::Result<Self::Io> {
        tokio::net::UnixListener::accept(self).await.map(|(s, _)| s)
    }
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> std::io::Result<Self::Io> {
        let (s, _) = tokio::net::TcpListener::accept(self).await?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }
}

/// The connections of `listener`, each holding a slot of `limits` until it is dropped.
/// Never yields an error: a failed accept is logged and accepting pauses for 50 ms. A
/// task accepts (spawned on the current runtime); it ends, closing the listener, when
/// the stream is dropped.
pub fn incoming<L: Accept>(
    listener: L,
    limits: ConnLimits,
) -> impl tokio_stream::Stream<Item = std::io::Result<Guarded<L::Io>>> + Send + 'static {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let first_byte = limits.first_byte_timeout;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        loop {
            // Wait for a slot before accepting: over the limit, clients queue in the
            // backlog instead of being accepted and left unserved.
            let permit = tokio::select! {
                () = tx.closed() => return,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let io = loop {
                tokio::select! {
                    () = tx.closed() => return,
                    a = listener.accept() => match a {
                        Ok(io) => break io,
                        Err(e) => {
                            tracing::warn!(error = %e, "accepting a CSI connection failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                }
            };
            let conn = Guarded {
                io,
                _permit: permit,
                first_byte: Some(Box::pin(tokio::time::sleep(first_byte))),
            };
            if tx.send(Ok(conn)).await.is_err() {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// An accepted connection: holds its slot, and fails its reads with `TimedOut` if no
/// byte came before its first-byte deadline.
#[derive(Debug)]
pub struct Guarded<S> {
    io: S,
    _permit: OwnedSemaphorePermit,
    /// Until the first byte is read.
    first_byte: Option<Pin<Box<Sleep>>>,
}

impl<S: Connected> Connected for Guarded<S> {
    type ConnectInfo = S::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.first_byte = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let expired = this
                    .first_byte
                    .as_mut()
                    .is_some_and(|d| d.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no request on a new CSI connection in time",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
