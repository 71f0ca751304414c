//! The generated tonic server and client talk over a Unix domain socket, the
//! transport kubelet and the CSI sidecars use.

use std::path::PathBuf;

use driver::csi::v1::identity_client::IdentityClient;
use driver::csi::v1::identity_server::{Identity, IdentityServer};
use driver::csi::v1::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, PluginCapability, ProbeRequest, ProbeResponse, plugin_capability,
};
use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::{Endpoint, Server, Uri};
use tonic::{Request, Response, Status};

const NAME: &str = "cephfs.csi.example.org";
const VERSION: &str = "0.1.0-test";

/// A minimal Identity service.
#[derive(Debug, Default)]
struct TestIdentity;

#[tonic::async_trait]
impl Identity for TestIdentity {
    async fn get_plugin_info(
        &self,
        _request: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        Ok(Response::new(GetPluginInfoResponse {
            name: NAME.to_owned(),
            vendor_version: VERSION.to_owned(),
            manifest: [("transport".to_owned(), "uds".to_owned())].into(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _request: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        Ok(Response::new(GetPluginCapabilitiesResponse {
            capabilities: vec![PluginCapability {
                r#type: Some(plugin_capability::Type::Service(
                    plugin_capability::Service {
                        r#type: plugin_capability::service::Type::ControllerService as i32,
                    },
                )),
            }],
        }))
    }

    async fn probe(
        &self,
        _request: Request<ProbeRequest>,
    ) -> Result<Response<ProbeResponse>, Status> {
        Ok(Response::new(ProbeResponse { ready: Some(true) }))
    }
}

#[tokio::test]
async fn identity_round_trip_over_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket: PathBuf = dir.path().join("csi.sock");

    let listener = UnixListener::bind(&socket).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .add_service(IdentityServer::new(TestIdentity))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                let _ = stop_rx.await;
            }),
    );

    // The URI is required by the API but ignored: the connector dials the socket.
    let connector_path = socket.clone();
    let channel = Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = connector_path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .unwrap();
    let mut client = IdentityClient::new(channel);

    let info = client
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, NAME);
    assert_eq!(info.vendor_version, VERSION);
    assert_eq!(info.manifest["transport"], "uds");

    let caps = client
        .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    let Some(plugin_capability::Type::Service(service)) = &caps.capabilities[0].r#type else {
        panic!("unexpected capability: {caps:?}");
    };
    assert_eq!(
        service.r#type(),
        plugin_capability::service::Type::ControllerService
    );

    let probe = client.probe(ProbeRequest {}).await.unwrap().into_inner();
    assert_eq!(probe.ready, Some(true));

    drop(client);
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}
