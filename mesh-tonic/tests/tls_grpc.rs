//! gRPC over mTLS: a real tonic server on `mesh_tower::tls::incoming`
//! (strict mTLS) with `PeerIdentityLayer`, called by a generated tonic
//! client over `MeshChannel` with the mesh's mTLS connector. The handler
//! sees the caller's SPIFFE ID.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helloworld {
    tonic::include_proto!("helloworld");
}

use helloworld::greeter_client::GreeterClient;
use helloworld::greeter_server::{Greeter, GreeterServer};
use helloworld::{HelloReply, HelloRequest};
use mesh_core::config::{Format, parse_str};
use mesh_tests::tls::{Pki, spiffe};
use mesh_tonic::MeshChannel;
use mesh_tower::Mesh;
use mesh_tower::ext::PeerIdentity;
use mesh_tower::tls::{MeshAcceptor, MeshConnectInfo, PeerIdentityLayer, Tls, TlsConfig};
use tonic::{Request, Response, Status};

struct Svc;

#[tonic::async_trait]
impl Greeter for Svc {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let peer = request
            .extensions()
            .get::<PeerIdentity>()
            .ok_or_else(|| Status::internal("no PeerIdentity"))?
            .clone();
        let info = request
            .extensions()
            .get::<MeshConnectInfo>()
            .ok_or_else(|| Status::internal("no MeshConnectInfo"))?;
        assert!(info.tls);
        let who = peer
            .0
            .map_or_else(|| "anonymous".to_string(), |id| id.as_str().to_string());
        Ok(Response::new(HelloReply {
            message: format!("hello {} from {who}", request.get_ref().name),
        }))
    }
}

#[tokio::test]
async fn tonic_server_on_mtls_incoming_sees_the_mesh_channel_callers_identity() {
    let pki = Pki::new("mesh");
    let server_leaf = pki.leaf("greeter", "greeter");
    let server_tls = Tls::load(TlsConfig::new(
        &server_leaf.cert,
        &server_leaf.key,
        pki.ca(),
    ))
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(PeerIdentityLayer)
            .add_service(GreeterServer::new(Svc))
            .serve_with_incoming_shutdown(
                mesh_tower::tls::incoming(listener, MeshAcceptor::new(&server_tls)),
                async move {
                    let _ = stop_rx.await;
                },
            ),
    );

    let client_leaf = pki.leaf("app-ui", "app");
    let client_tls = Tls::load(TlsConfig::new(
        &client_leaf.cert,
        &client_leaf.key,
        pki.ca(),
    ))
    .unwrap();
    let config = parse_str(
        &format!("services:\n  greeter:\n    protocol: grpc\n    endpoints: [{{ address: \"{addr}\" }}]\n"),
        Format::Yaml,
        "mesh.yaml",
    )
    .unwrap();
    let mesh = Mesh::builder()
        .config(config)
        .tls(client_tls)
        .build()
        .unwrap();
    let mut client = GreeterClient::new(MeshChannel::new(&mesh, "greeter"));
    for i in 0..3 {
        let reply = client
            .say_hello(Request::new(HelloRequest {
                name: format!("n{i}"),
            }))
            .await
            .unwrap();
        assert_eq!(
            reply.get_ref().message,
            format!("hello n{i} from {}", spiffe("app-ui"))
        );
    }

    // A plaintext channel is refused by the strict server.
    let plain = Mesh::builder()
        .config(
            parse_str(
                &format!("services:\n  greeter:\n    protocol: grpc\n    endpoints: [{{ address: \"{addr}\" }}]\n"),
                Format::Yaml,
                "mesh.yaml",
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    let mut plain_client = GreeterClient::new(MeshChannel::new(&plain, "greeter"));
    let status = plain_client
        .say_hello(Request::new(HelloRequest { name: "x".into() }))
        .await
        .unwrap_err();
    assert_ne!(status.code(), tonic::Code::Ok);

    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}
