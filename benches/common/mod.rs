//! What the benches share: serving a driver on a Unix socket and talking to it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use driver::csi::v1::*;
use driver::driver::Driver;
use tonic::transport::{Channel, Endpoint, Uri};

/// A multi-threaded runtime.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
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
