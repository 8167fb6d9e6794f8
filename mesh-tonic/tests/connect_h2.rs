//! A `MeshChannel` to a tonic server with `max_concurrent_streams(2)` and
//! a slow handler: ten concurrent calls all succeed over at least five
//! connections (the server's SETTINGS limit is learned); with a high limit
//! the same load shares one connection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::helloworld::greeter_client::GreeterClient;
use common::helloworld::greeter_server::{Greeter, GreeterServer};
use common::helloworld::{HelloReply, HelloRequest};
use common::{endpoints, mesh};
use mesh_tonic::MeshGrpcExt;
use tokio::sync::oneshot;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

struct Slow;

#[tonic::async_trait]
impl Greeter for Slow {
    async fn say_hello(&self, r: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Response::new(HelloReply {
            message: format!("Hello {}", r.into_inner().name),
        }))
    }
}

/// A slow greeter allowing `max_streams` per connection; counts accepts.
async fn server(max_streams: u32) -> (SocketAddr, Arc<AtomicUsize>, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(move |s| {
        counted.fetch_add(1, Ordering::SeqCst);
        s
    });
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .max_concurrent_streams(Some(max_streams))
            .add_service(GreeterServer::new(Slow))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (addr, accepted, stop)
}

async fn ten_calls(addr: SocketAddr) {
    let mesh = mesh(&format!(
        "services:\n  greeter:\n    protocol: grpc\n    endpoints: {}\n",
        endpoints(&[addr])
    ));
    let channel = mesh.grpc_channel("greeter");
    let calls: Vec<_> = (0..10)
        .map(|i| {
            let mut client = GreeterClient::new(channel.clone());
            tokio::spawn(async move {
                let name = format!("n{i}");
                let reply = client
                    .say_hello(HelloRequest { name: name.clone() })
                    .await
                    .unwrap();
                assert_eq!(reply.into_inner().message, format!("Hello {name}"));
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_limit_of_2_spreads_ten_calls_over_five_connections() {
    let (addr, accepted, _stop) = server(2).await;
    ten_calls(addr).await;
    let n = accepted.load(Ordering::SeqCst);
    assert!(
        n >= 5,
        "10 calls at 2 streams per connection used {n} connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_stream_limit_uses_one_connection() {
    let (addr, accepted, _stop) = server(1000).await;
    ten_calls(addr).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}
