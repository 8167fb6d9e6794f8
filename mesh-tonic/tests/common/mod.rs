//! Real tonic helloworld servers on 127.0.0.1:0 with injected failures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use self::record::Timeouts;
use mesh_core::config::{Format, parse_str};
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

pub mod helloworld {
    tonic::include_proto!("helloworld");
}

use helloworld::greeter_server::{Greeter, GreeterServer};
use helloworld::{HelloReply, HelloRequest};

/// A tiny lock-free-enough record of the `grpc-timeout`s a server saw.
mod record {
    use std::sync::Mutex;
    use std::time::Duration;

    #[derive(Default)]
    pub struct Timeouts(Mutex<Vec<Option<Duration>>>);

    impl Timeouts {
        pub fn push(&self, t: Option<Duration>) {
            self.0.lock().unwrap().push(t);
        }
        pub fn all(&self) -> Vec<Option<Duration>> {
            self.0.lock().unwrap().clone()
        }
    }
}

/// How a server answers.
#[derive(Clone, Copy)]
pub enum Behaviour {
    /// Always OK.
    Ok,
    /// UNAVAILABLE with this probability (a seeded splitmix64, so a sequential
    /// run is deterministic).
    FailRate(f64),
    /// Always UNAVAILABLE, before any message (trailers-only).
    Unavailable,
}

struct Svc {
    addr: SocketAddr,
    behaviour: Behaviour,
    calls: Arc<AtomicUsize>,
    failures: Arc<AtomicUsize>,
    rng: AtomicU64,
    timeouts: Arc<Timeouts>,
}

#[tonic::async_trait]
impl Greeter for Svc {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let timeout = request.metadata().get("grpc-timeout").map(|v| {
            mesh_tower::timeout::grpc::parse(&http::HeaderValue::from_bytes(v.as_bytes()).unwrap())
                .unwrap()
        });
        self.timeouts.push(timeout);
        let fail = match self.behaviour {
            Behaviour::Ok => false,
            Behaviour::Unavailable => true,
            Behaviour::FailRate(p) => {
                // splitmix64: well mixed from any seed.
                let mut z = self
                    .rng
                    .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::SeqCst)
                    .wrapping_add(0x9E37_79B9_7F4A_7C15);
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                (z % 1000) as f64 / 1000.0 < p
            }
        };
        if fail {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err(Status::unavailable("injected"));
        }
        Ok(Response::new(HelloReply {
            message: format!("Hello {} from {}", request.into_inner().name, self.addr),
        }))
    }
}

/// A running server; stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub calls: Arc<AtomicUsize>,
    pub failures: Arc<AtomicUsize>,
    pub timeouts: Arc<Timeouts>,
    /// The `:authority` of every request, as the server saw it.
    pub authorities: Arc<std::sync::Mutex<Vec<Option<String>>>>,
    _stop: oneshot::Sender<()>,
}

pub async fn server(behaviour: Behaviour, seed: u64) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let timeouts = Arc::new(Timeouts::default());
    let svc = Svc {
        addr,
        behaviour,
        calls: calls.clone(),
        failures: failures.clone(),
        rng: AtomicU64::new(seed.max(1)),
        timeouts: timeouts.clone(),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let authorities = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = authorities.clone();
    let record = tower::util::MapRequestLayer::new(move |req: http::Request<_>| {
        let authority = req.uri().authority().map(|a| a.to_string());
        seen.lock().unwrap().push(authority);
        req
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(record)
            .add_service(GreeterServer::new(svc))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            ),
    );
    Server {
        addr,
        calls,
        failures,
        timeouts,
        authorities,
        _stop: stop,
    }
}

/// A TCP endpoint that accepts connections and never answers.
pub async fn black_hole() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    (addr, task)
}

/// A mesh whose config is `yaml`.
pub fn mesh(yaml: &str) -> mesh_tower::Mesh {
    let config = parse_str(yaml, Format::Yaml, "test.yaml").unwrap();
    mesh_tower::Mesh::builder()
        .config(config)
        .wait_for_endpoints(Duration::from_millis(100))
        .build()
        .unwrap()
}

pub fn endpoints(servers: &[SocketAddr]) -> String {
    let list: Vec<String> = servers
        .iter()
        .map(|a| format!("{{ address: {a} }}"))
        .collect();
    format!("[ {} ]", list.join(", "))
}
