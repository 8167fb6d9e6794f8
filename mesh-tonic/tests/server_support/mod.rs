//! Helpers of the server-layer tests: a metrics pipeline read back as
//! Prometheus text, and a tonic helloworld server behind `GrpcServerLayer`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_tonic::MeshChannel;
use mesh_tonic::server::GrpcServerLayer;
use mesh_tower::metrics::prometheus::{Exposition, pipeline};
use mesh_tower::metrics::{Metrics, SCOPE};
use mesh_tower::trace::TraceContext;
use opentelemetry::metrics::MeterProvider;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

use crate::common::helloworld::greeter_client::GreeterClient;
use crate::common::helloworld::greeter_server::{Greeter, GreeterServer};
use crate::common::helloworld::{HelloReply, HelloRequest};

/// A meter provider with a Prometheus exposition, and the mesh's metrics
/// on it. Keep the provider alive for the test.
pub struct Telemetry {
    _provider: Box<dyn std::any::Any + Send + Sync>,
    pub exposition: Exposition,
    pub metrics: Metrics,
}

pub fn telemetry() -> Telemetry {
    let (provider, exposition) = pipeline(Some("test")).unwrap();
    let metrics = Metrics::new(&provider.meter(SCOPE));
    Telemetry {
        _provider: Box::new(provider),
        exposition,
        metrics,
    }
}

impl Telemetry {
    /// The sum of the series `name` whose labels include all of `want`.
    pub fn get(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        let text = self.exposition.render().unwrap();
        let mut sum = 0.0;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let (n, labels) = series.split_once('{').unwrap_or((series, ""));
            if n != name {
                continue;
            }
            let has = |k: &str, v: &str| labels.contains(&format!("{k}=\"{v}\""));
            if want.iter().all(|(k, v)| has(k, v)) {
                sum += value.parse::<f64>().unwrap();
            }
        }
        sum
    }

    /// How many calls `grpc.server.call.duration` counted with `want`.
    pub fn calls(&self, want: &[(&str, &str)]) -> f64 {
        self.get("grpc_server_call_duration_seconds_count", want)
    }

    /// Waits (bounded: 5 s) until `calls(want) >= n`; returns the count.
    pub async fn wait_calls(&self, want: &[(&str, &str)], n: f64) -> f64 {
        for _ in 0..100 {
            let c = self.calls(want);
            if c >= n {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.calls(want)
    }

    /// The whole exposition, for failure messages.
    pub fn text(&self) -> String {
        self.exposition.render().unwrap()
    }
}

/// A greeter whose answer depends on the name it is sent:
/// `fail` -> UNAVAILABLE (trailers-only), `slow` -> answers after 10 s,
/// `chain` -> calls `downstream` (no timeout of its own) and relays it,
/// anything else -> OK. It records the trace context it saw.
#[derive(Clone, Default)]
pub struct Probe {
    pub downstream: Option<MeshChannel>,
    pub traces: Arc<Mutex<Vec<Option<TraceContext>>>>,
}

#[tonic::async_trait]
impl Greeter for Probe {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        self.traces
            .lock()
            .unwrap()
            .push(request.extensions().get::<TraceContext>().cloned());
        let name = request.into_inner().name;
        match name.as_str() {
            "fail" => Err(Status::unavailable("injected")),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(Response::new(HelloReply { message: name }))
            }
            "chain" => {
                let channel = self.downstream.clone().expect("a downstream");
                let reply = GreeterClient::new(channel)
                    .say_hello(HelloRequest {
                        name: "from-a".into(),
                    })
                    .await?;
                Ok(Response::new(reply.into_inner()))
            }
            _ => Ok(Response::new(HelloReply {
                message: format!("Hello {name}"),
            })),
        }
    }
}

/// A tonic server with `layer` around `probe`; stops when dropped.
pub struct LayeredServer {
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

pub async fn layered(layer: GrpcServerLayer, probe: Probe) -> LayeredServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(GreeterServer::new(probe))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            ),
    );
    LayeredServer { addr, _stop: stop }
}

/// A plain tonic channel to `addr`.
pub async fn client(addr: SocketAddr) -> GreeterClient<tonic::transport::Channel> {
    GreeterClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

pub fn hello(name: &str) -> Request<HelloRequest> {
    Request::new(HelloRequest {
        name: name.to_string(),
    })
}
