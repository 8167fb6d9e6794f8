//! The authorization layer in front of a real tonic server (helloworld),
//! called through the mesh's own gRPC channel: a denied caller gets
//! PERMISSION_DENIED and the service is not called; an allowed one gets OK.
//! Identities come from a test layer standing in for mTLS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::helloworld::greeter_client::GreeterClient;
use common::helloworld::greeter_server::{Greeter, GreeterServer};
use common::helloworld::{HelloReply, HelloRequest};
use mesh_core::config::{Format, parse_str};
use mesh_core::identity::SpiffeId;
use mesh_tonic::MeshGrpcExt;
use mesh_tower::authz::{AuthzLayer, AuthzMetrics};
use mesh_tower::ext::PeerIdentity;
use tonic::{Code, Request, Response, Status};

const PEER_HEADER: &str = "x-test-peer";

const POLICY: &str = "\
default_policy: allow
intentions:
  - { source: greeter-client, destination: greeter, action: allow }
  - source: ops
    destination: greeter
    permissions:
      - { action: deny, path_exact: /helloworld.Greeter/SayHello }
  - { source: \"*\", destination: greeter, action: deny }
";

struct Hello(Arc<AtomicUsize>);

#[tonic::async_trait]
impl Greeter for Hello {
    async fn say_hello(&self, req: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(HelloReply {
            message: format!("Hello {}", req.into_inner().name),
        }))
    }
}

/// Turns the test header into `PeerIdentity`, as the mTLS acceptor will.
fn peer_from_header(mut req: http::Request<tonic::body::Body>) -> http::Request<tonic::body::Body> {
    let id = req
        .headers()
        .get(PEER_HEADER)
        .map(|v| SpiffeId::parse(v.to_str().unwrap()).unwrap());
    req.extensions_mut().insert(PeerIdentity(id));
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_server_enforces_intentions() {
    let config = parse_str(POLICY, Format::Yaml, "policy.yaml").unwrap();
    let authz = AuthzLayer::from_config("greeter", &config, AuthzMetrics::global()).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(
                tower::ServiceBuilder::new()
                    .map_request(peer_from_header)
                    .layer(authz),
            )
            .add_service(GreeterServer::new(Hello(calls.clone())))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            ),
    );

    let mesh = common::mesh(&format!(
        "services:\n  greeter:\n    protocol: grpc\n    endpoints: [{{ address: {addr} }}]\n"
    ));
    let say = |peer: Option<String>| {
        let channel = mesh.grpc_channel("greeter");
        async move {
            let mut req = Request::new(HelloRequest {
                name: "mesh".into(),
            });
            if let Some(p) = &peer {
                req.metadata_mut().insert(PEER_HEADER, p.parse().unwrap());
            }
            GreeterClient::new(channel).say_hello(req).await
        }
    };
    let id = |name: &str| {
        Some(
            SpiffeId::for_service("mesh.local", "default", name)
                .unwrap()
                .to_string(),
        )
    };

    // Allowed: OK, the service answers.
    let reply = say(id("greeter-client")).await.unwrap();
    assert_eq!(reply.get_ref().message, "Hello mesh");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Denied by `* -> greeter`, by an L7 permission on the gRPC path, and
    // as an anonymous caller: PERMISSION_DENIED, generic message, service
    // not called.
    for peer in [id("web"), id("ops"), None] {
        let status = say(peer.clone()).await.unwrap_err();
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{peer:?}: {status:?}"
        );
        assert_eq!(status.message(), "permission denied");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "denied calls never reach the service"
    );

    drop(stop);
    server.await.unwrap().unwrap();
}
