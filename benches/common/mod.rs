//! What the benches share: serving a driver on a Unix socket and talking to it, and
//! keeping calls in flight.

// Each bench uses a part of this module.
#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use driver::Driver;
use driver::csi::v1::*;
use tonic::transport::{Channel, Endpoint, Uri};

/// A multi-threaded runtime.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `iters × conc` calls of `op` with `conc` in flight at every moment, and returns
/// how long they took: worker `w` (in `0..conc`) calls `op(w)` again as soon as its last
/// call returns. This is the sustained throughput at concurrency `conc`; waiting for a
/// batch of `conc` calls to finish before the next starts would count the batch's tail,
/// when fewer than `conc` are in flight.
pub async fn sustained<F, Fut>(iters: u64, conc: usize, op: F) -> Duration
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let left = Arc::new(AtomicI64::new((iters * conc as u64) as i64));
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for w in 0..conc {
        let (left, op) = (left.clone(), op.clone());
        set.spawn(async move {
            while left.fetch_sub(1, Ordering::Relaxed) > 0 {
                op(w).await;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    started.elapsed()
}

/// Serves `driver` on `<dir>/csi.sock` and returns a channel to it.
pub async fn serve(driver: Arc<Driver>, dir: &Path) -> Channel {
    let socket = dir.join("csi.sock");
    let ep = driver::server::Endpoint::Unix(socket.clone());
    tokio::spawn(async move { driver::server::serve(driver, &ep, std::future::pending()).await });
    while !socket.exists() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let s = socket.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(s).await?,
                ))
            }
        }))
        .await
        .unwrap()
}

/// A multi-node-multi-writer mount capability.
pub fn mount_cap() -> VolumeCapability {
    VolumeCapability {
        access_type: Some(volume_capability::AccessType::Mount(Default::default())),
        access_mode: Some(volume_capability::AccessMode {
            mode: volume_capability::access_mode::Mode::MultiNodeMultiWriter as i32,
        }),
    }
}
