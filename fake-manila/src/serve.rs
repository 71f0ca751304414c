//! Binding and serving the two endpoints, for the binary and for in-process users (the
//! harness, tests, benchmarks).
//!
//! Keystone and Manila listen on ports of their own, as in a real cloud. The catalog
//! must name the ports clients reach, so the order is: bind both ([`Listeners::bind`] or
//! [`Listeners::loopback`]), build the [`Config`](crate::Config) from
//! [`Listeners::keystone_url`] and [`Listeners::manila_url`], make the
//! [`AppState`], then [`Listeners::serve`] (or [`Listeners::spawn`]) it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use fake_ceph::service::ServeConfig;
use tokio::net::TcpListener;

use crate::state::AppState;
use crate::{keystone_router, manila_router};

/// Keystone's and Manila's listening sockets.
#[derive(Debug)]
pub struct Listeners {
    keystone: TcpListener,
    manila: TcpListener,
    keystone_addr: SocketAddr,
    manila_addr: SocketAddr,
}

impl Listeners {
    /// Binds Keystone's and Manila's addresses (port 0 picks a free port).
    pub async fn bind(keystone: SocketAddr, manila: SocketAddr) -> io::Result<Self> {
        let k = TcpListener::bind(keystone).await?;
        let m = TcpListener::bind(manila).await?;
        Ok(Self {
            keystone_addr: k.local_addr()?,
            manila_addr: m.local_addr()?,
            keystone: k,
            manila: m,
        })
    }

    /// Binds two free loopback ports.
    pub async fn loopback() -> io::Result<Self> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::bind(any, any).await
    }

    /// Where Keystone listens.
    pub fn keystone_addr(&self) -> SocketAddr {
        self.keystone_addr
    }

    /// Where Manila listens.
    pub fn manila_addr(&self) -> SocketAddr {
        self.manila_addr
    }

    /// `http://<Keystone's address>`: the auth URL is this + `/v3`.
    pub fn keystone_url(&self) -> String {
        format!("http://{}", self.keystone_addr)
    }

    /// `http://<Manila's address>`: the catalog's `sharev2` URL is this + `/v2`.
    pub fn manila_url(&self) -> String {
        format!("http://{}", self.manila_addr)
    }

    /// Serves [`keystone_router`] and [`manila_router`] over `state` until `shutdown`
    /// resolves, then lets requests in flight finish, with the default timeouts and
    /// connection limit ([`ServeConfig::default`]).
    pub async fn serve(
        self,
        state: AppState,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        self.serve_with(state, ServeConfig::default(), shutdown)
            .await
    }

    /// [`Listeners::serve`] with `config`'s timeouts and connection limit, which each
    /// listener applies on its own (fake-ceph's [`fake_ceph::service::serve`] serves
    /// both). An error of either server ends both.
    pub async fn serve_with(
        self,
        state: AppState,
        config: ServeConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            // Resolves once `shutdown` fired (or its sender is gone with it).
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let keystone = fake_ceph::service::serve(
            self.keystone,
            keystone_router(state.clone()),
            config.clone(),
            stopped(rx.clone()),
        );
        let manila =
            fake_ceph::service::serve(self.manila, manila_router(state), config, stopped(rx));
        let signal = async move {
            shutdown.await;
            let _ = tx.send(true);
            Ok::<(), io::Error>(())
        };
        tokio::try_join!(keystone, manila, signal)?;
        Ok(())
    }

    /// Serves both on a task of their own until the task is aborted (dropping the
    /// handle leaves them running).
    pub fn spawn(self, state: AppState) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            if let Err(e) = self.serve(state, std::future::pending()).await {
                tracing::error!(error = %e, "fake-manila stopped serving");
            }
        })
    }
}
