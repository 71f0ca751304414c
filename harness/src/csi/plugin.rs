//! One plugin of an [`Embedded`](super::Embedded) stack served in-process: the driver
//! on its Unix socket, behind connections that a kill breaks, and a channel to it. It
//! imports the driver only.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use driver::Driver;
use driver::config::Config;
use driver::mount::Mounter;
use driver::mount::fake::{FakeMountMode, FakeMounter};
use tokio::sync::{oneshot, watch};
use tonic::transport::{Channel, Endpoint, Uri};

/// A running plugin: the signal that stops it gracefully, the one that kills it, and the
/// task serving it.
pub(super) struct PluginServer {
    stop: Option<oneshot::Sender<()>>,
    kill: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl PluginServer {
    /// Asks the server to stop gracefully, without waiting for it (a later
    /// [`PluginServer::stop`] waits).
    pub(super) fn ask_to_stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    /// Stops serving; with `kill`, first breaks every connection, which drops the
    /// handlers of the calls under way (a graceful stop lets them finish).
    pub(super) async fn stop(mut self, kill: bool) {
        if kill {
            let _ = self.kill.send(true);
        }
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        // Killed connections end at once; a graceful stop waits for the calls under
        // way, each bounded by the driver's deadlines.
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(60), &mut task)
            .await
            .is_err()
        {
            tracing::warn!("a plugin's server did not stop within 60 s; aborting it");
            task.abort();
            let _ = task.await;
        }
    }
}

/// One plugin of an [`Embedded`] stack: its node ID, directory, socket, a connected
/// channel, the configuration a restart starts it with, and the running server
/// (`None` while it is killed).
pub(super) struct Served {
    pub(super) node_id: String,
    pub(super) dir: PathBuf,
    pub(super) socket: PathBuf,
    pub(super) channel: Channel,
    pub(super) config: Config,
    pub(super) plugin: Option<PluginServer>,
}

/// A connection to a plugin that breaks when the plugin is killed: from then on its
/// reads and writes fail, so the server drops the connection and, with it, the handlers
/// of the calls under way on it (hyper cancels a stream's handler when its connection
/// goes), which stop at whatever await they had reached, as a killed process's would.
struct Killable {
    io: tokio::net::UnixStream,
    killed: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    dead: bool,
}

impl Killable {
    fn new(io: tokio::net::UnixStream, mut kill: watch::Receiver<bool>) -> Self {
        Self {
            io,
            killed: Box::pin(async move {
                // A dropped sender ends the plugin too.
                let _ = kill.wait_for(|k| *k).await;
            }),
            dead: false,
        }
    }

    /// Whether the plugin is killed (registers the waker for the moment it is).
    fn dead(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        if !self.dead && self.killed.as_mut().poll(cx).is_ready() {
            self.dead = true;
        }
        self.dead
    }

    fn killed_error() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::ConnectionReset, "the plugin was killed")
    }
}

impl tokio::io::AsyncRead for Killable {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.dead(cx) {
            return std::task::Poll::Ready(Err(Self::killed_error()));
        }
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Killable {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.dead(cx) {
            return std::task::Poll::Ready(Err(Self::killed_error()));
        }
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.dead(cx) {
            return std::task::Poll::Ready(Err(Self::killed_error()));
        }
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Killable {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

/// Serves a plugin with `config` on `dir/csi.sock` (a killed plugin's socket is replaced)
/// and connects to it. The fake mounters of all plugins share `http`'s connection pool
/// to fake-ceph; `http_timeout` is their deadline per call. A config that asks for
/// ceph-fuse (a real cluster) gets the real mounter.
pub(super) async fn serve(
    config: Config,
    dir: &Path,
    http: &reqwest::Client,
    http_timeout: Option<Duration>,
) -> anyhow::Result<(PluginServer, PathBuf, Channel)> {
    use tokio_stream::StreamExt as _;
    let socket = dir.join("csi.sock");
    let mounter: Arc<dyn Mounter> = if config.mounter == driver::config::MounterKind::Fuse {
        // A real cluster: real ceph-fuse mounts.
        Arc::new(driver::mount::fuse::FuseMounter::new(config.mount_timeout))
    } else {
        let mut fake = FakeMounter::new(config.state_dir.clone(), FakeMountMode::Symlink)
            .with_client(http.clone());
        if let Some(t) = http_timeout {
            fake = fake.with_http_timeout(t);
        }
        Arc::new(fake)
    };
    let driver = Arc::new(Driver::new(config, vec![mounter])?);
    // As the driver's own `serve` does: a stale socket (a killed plugin's) is replaced,
    // and the socket appears only once it is listening.
    match std::fs::remove_file(&socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(anyhow::Error::from(e).context(format!("removing {}", socket.display())));
        }
    }
    let listener = driver::server::bind_unix(&socket)
        .with_context(|| format!("binding {}", socket.display()))?;
    let (tx, rx) = oneshot::channel::<()>();
    let (kill, killed) = watch::channel(false);
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener)
        .map(move |conn| conn.map(|io| Killable::new(io, killed.clone())));
    let task = tokio::spawn(async move {
        let served = driver::server::router(driver)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = served {
            tracing::warn!("a plugin's server failed: {e}");
        }
    });
    // A loaded machine may take a while: wait up to 30 s, then connect (retrying, as a
    // CO retries a plugin that is starting).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let channel = loop {
        let s = socket.clone();
        let attempt = if socket.exists() {
            Endpoint::try_from("http://[::]:50051")?
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let s = s.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(s).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                }))
                .await
                .map_err(anyhow::Error::from)
        } else {
            Err(anyhow::anyhow!("the socket is not there yet"))
        };
        match attempt {
            Ok(c) => break c,
            Err(e) if std::time::Instant::now() > deadline => {
                return Err(e.context(format!("connecting to {}", socket.display())));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    Ok((
        PluginServer {
            stop: Some(tx),
            kill,
            task,
        },
        socket,
        channel,
    ))
}
