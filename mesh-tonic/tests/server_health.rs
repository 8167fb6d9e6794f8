//! `mesh_tonic::health` on a real tonic server: SERVING while it runs,
//! NOT_SERVING as soon as graceful shutdown begins (while calls are still
//! answered during the drain), then the server stops, open `Watch` streams
//! included. Seen by tonic's health client and by Python grpcio's
//! (`grpc_health.v1`, a peer).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod server_support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::helloworld::greeter_server::GreeterServer;
use mesh_tonic::health::Health;
use mesh_tonic::server::GrpcServerLayer;
use server_support::{Probe, client, hello, telemetry};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const GREETER: &str = "helloworld.Greeter";

/// A greeter with the health service; `begin` starts the shutdown sequence
/// (NOT_SERVING, `drain`, stop). `done` finishes when the server stopped.
struct Served {
    addr: SocketAddr,
    begin: oneshot::Sender<()>,
    done: JoinHandle<Result<(), tonic::transport::Error>>,
}

async fn serve(drain: Duration) -> Served {
    let t = telemetry();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (health, health_service) = Health::new();
    health.serving::<GreeterServer<Probe>>().await;
    assert_eq!(health.names(), ["", GREETER]);
    let (begin, begun) = oneshot::channel::<()>();
    let signal = async {
        let _ = begun.await;
    };
    let done = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(GrpcServerLayer::new(&t.metrics, "greeter"))
            .add_service(health_service)
            .add_service(GreeterServer::new(Probe::default()))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                health.shutdown_after(signal, drain),
            ),
    );
    Served { addr, begin, done }
}

fn check(service: &str) -> tonic::Request<HealthCheckRequest> {
    tonic::Request::new(HealthCheckRequest {
        service: service.to_string(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_health_client_sees_serving_then_not_serving_then_the_server_stops() {
    let served = serve(Duration::from_millis(800)).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", served.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", GREETER] {
        let status = health
            .check(check(service))
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let mut watch = health.watch(check(GREETER)).await.unwrap().into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    served.begin.send(()).unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    let status = health.check(check("")).await.unwrap().into_inner().status;
    assert_eq!(status, ServingStatus::NotServing as i32);
    // Draining: calls are still answered.
    let mut greeter = client(served.addr).await;
    greeter.say_hello(hello("during-drain")).await.unwrap();

    // After the drain the watch ends and the server stops.
    let end = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .unwrap();
    assert!(matches!(end, Ok(None)), "{end:?}");
    drop(health);
    drop(greeter);
    let stopped = tokio::time::timeout(Duration::from_secs(10), served.done).await;
    assert!(stopped.unwrap().unwrap().is_ok());
}

// === Python grpcio's health client (peer) ===

/// `tests/py/health_client.py` with `args`; its stdout lines arrive on the
/// channel. Killed on drop.
struct PyHealth {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl PyHealth {
    fn start(addr: SocketAddr, service: &str, mode: &str) -> PyHealth {
        let mut child = Command::new(mesh_tests::grpcio::python().unwrap())
            .arg(mesh_tests::grpcio::script("health_client.py"))
            .args(["--target", &addr.to_string(), "--service", service, mode])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        PyHealth { child, lines }
    }

    /// The next line (bounded wait: 20 s, Python's start-up included).
    async fn next(&self) -> String {
        tokio::task::block_in_place(|| self.lines.recv_timeout(Duration::from_secs(20)))
            .expect("a line from health_client.py")
    }
}

impl Drop for PyHealth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_health_client_sees_serving_then_not_serving_after_shutdown_begins() {
    if !mesh_tests::grpcio::available() {
        return;
    }
    let served = serve(Duration::from_millis(1500)).await;
    assert_eq!(
        PyHealth::start(served.addr, "", "check").next().await,
        "STATUS SERVING"
    );
    let watch = PyHealth::start(served.addr, GREETER, "watch");
    assert_eq!(watch.next().await, "STATUS SERVING");

    served.begin.send(()).unwrap();
    assert_eq!(watch.next().await, "STATUS NOT_SERVING");
    assert_eq!(
        PyHealth::start(served.addr, GREETER, "check").next().await,
        "STATUS NOT_SERVING"
    );
    // After the drain: the stream ends cleanly and the server stops.
    assert_eq!(watch.next().await, "END");
    let stopped = tokio::time::timeout(Duration::from_secs(10), served.done).await;
    assert!(stopped.unwrap().unwrap().is_ok());
}
