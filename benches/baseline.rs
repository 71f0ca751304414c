//! The transport's limit: a do-nothing CSI server (Identity and Node; Probe and
//! NodeGetCapabilities answer with minimal responses, everything else Unimplemented)
//! on a Unix socket, served and called exactly as `benches/csi.rs` serves and calls
//! the driver (tonic, one shared channel, 64 calls in flight for c64). The gap
//! between these figures and `csi`'s is what the driver itself costs.

#![allow(clippy::unwrap_used)]

// The allocator the cephfs-csi binary uses, as in `benches/csi.rs`.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use driver::csi::v1::identity_client::IdentityClient;
use driver::csi::v1::identity_server::{Identity, IdentityServer};
use driver::csi::v1::node_client::NodeClient;
use driver::csi::v1::node_server::{Node, NodeServer};
use driver::csi::v1::*;
use tonic::codegen::tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::{Channel, Endpoint, Server, Uri};
use tonic::{Request, Response, Status};

mod common;

/// Answers Probe and the capability calls; nothing else.
#[derive(Debug, Clone, Copy)]
struct Baseline;

#[tonic::async_trait]
impl Identity for Baseline {
    async fn get_plugin_info(
        &self,
        _r: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        Ok(Response::new(GetPluginInfoResponse {
            name: "baseline.csi.trainride".to_owned(),
            vendor_version: "0".to_owned(),
            manifest: Default::default(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _r: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        Ok(Response::new(GetPluginCapabilitiesResponse::default()))
    }

    async fn probe(&self, _r: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        Ok(Response::new(ProbeResponse { ready: Some(true) }))
    }
}

#[tonic::async_trait]
impl Node for Baseline {
    async fn node_stage_volume(
        &self,
        _r: Request<NodeStageVolumeRequest>,
    ) -> Result<Response<NodeStageVolumeResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }
    async fn node_unstage_volume(
        &self,
        _r: Request<NodeUnstageVolumeRequest>,
    ) -> Result<Response<NodeUnstageVolumeResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }
    async fn node_publish_volume(
        &self,
        _r: Request<NodePublishVolumeRequest>,
    ) -> Result<Response<NodePublishVolumeResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }
    async fn node_unpublish_volume(
        &self,
        _r: Request<NodeUnpublishVolumeRequest>,
    ) -> Result<Response<NodeUnpublishVolumeResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }
    async fn node_get_volume_stats(
        &self,
        _r: Request<NodeGetVolumeStatsRequest>,
    ) -> Result<Response<NodeGetVolumeStatsResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }
    async fn node_expand_volume(
        &self,
        _r: Request<NodeExpandVolumeRequest>,
    ) -> Result<Response<NodeExpandVolumeResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }
    async fn node_get_capabilities(
        &self,
        _r: Request<NodeGetCapabilitiesRequest>,
    ) -> Result<Response<NodeGetCapabilitiesResponse>, Status> {
        Ok(Response::new(NodeGetCapabilitiesResponse::default()))
    }
    async fn node_get_info(
        &self,
        _r: Request<NodeGetInfoRequest>,
    ) -> Result<Response<NodeGetInfoResponse>, Status> {
        Ok(Response::new(NodeGetInfoResponse {
            node_id: "node-0001".to_owned(),
            ..Default::default()
        }))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Serves the baseline on a socket in `dir` and returns a channel to it.
async fn setup(dir: &std::path::Path) -> Channel {
    let socket = dir.join("baseline.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(
        Server::builder()
            .add_service(IdentityServer::new(Baseline))
            .add_service(NodeServer::new(Baseline))
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );
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

async fn probe(ch: Channel) {
    IdentityClient::new(ch)
        .probe(ProbeRequest {})
        .await
        .unwrap();
}

async fn node_caps(ch: Channel) {
    NodeClient::new(ch)
        .node_get_capabilities(NodeGetCapabilitiesRequest {})
        .await
        .unwrap();
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let channel = rt.block_on(setup(dir.path()));
    let mut g = c.benchmark_group("baseline");
    macro_rules! pair {
        ($name:literal, $op:expr) => {{
            g.throughput(Throughput::Elements(1));
            let ch = channel.clone();
            g.bench_function(concat!($name, "/c1"), |b| {
                b.to_async(&rt).iter(|| $op(ch.clone()))
            });
            const CONC: usize = 64;
            g.throughput(Throughput::Elements(CONC as u64));
            let ch = channel.clone();
            g.bench_function(concat!($name, "/c64"), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let ch = ch.clone();
                    common::sustained(iters, CONC, move |_| $op(ch.clone()))
                })
            });
        }};
    }
    pair!("probe", probe);
    pair!("node_get_capabilities", node_caps);
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
