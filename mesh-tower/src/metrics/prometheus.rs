//! Prometheus text exposition of the mesh's instruments at `GET /metrics`.
//!
//! One pipeline: an OpenTelemetry SDK meter provider whose reader is the
//! Prometheus exporter; the same [`super::Metrics`] instruments feed OTLP or
//! this. [`init_from_env`] installs it as the global provider when
//! `MESH_METRICS_ADDR` is set and serves it; [`pipeline`] and [`serve`] do
//! the two steps for callers that manage providers themselves.
//!
//! OpenTelemetry names become Prometheus names the usual way: dots to
//! underscores, the unit as a suffix, `_total` on counters
//! (`http.client.request.duration` -> `http_client_request_duration_seconds`).
//!
//! ```no_run
//! # async fn run() -> Result<(), mesh_tower::metrics::prometheus::MetricsError> {
//! // MESH_METRICS_ADDR=127.0.0.1:9464
//! let telemetry = mesh_tower::metrics::prometheus::init_from_env().await?;
//! let metrics = mesh_tower::metrics::Metrics::global(); // after init
//! // ... serve and call through the mesh ...
//! if let Some(t) = telemetry {
//!     t.shutdown().await;
//! }
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why the Prometheus pipeline could not be set up or rendered.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The exporter could not be built.
    #[error("building the Prometheus exporter")]
    Exporter(#[source] opentelemetry_sdk::error::OTelSdkError),
    /// Encoding the text format failed.
    #[error("encoding Prometheus text")]
    Encode(#[source] ::prometheus::Error),
    /// `MESH_METRICS_ADDR` is not `ip:port`.
    #[error("MESH_METRICS_ADDR `{value}` is not an ip:port address")]
    Addr {
        /// The variable's value.
        value: String,
        /// The parse error.
        #[source]
        source: std::net::AddrParseError,
    },
    /// The listener could not be bound.
    #[error("binding the /metrics listener on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Renders the registry the exporter writes to. Cheap to clone.
#[derive(Clone)]
pub struct Exposition {
    registry: ::prometheus::Registry,
}

impl std::fmt::Debug for Exposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exposition").finish_non_exhaustive()
    }
}

impl Exposition {
    /// The current values, in the Prometheus text format (0.0.4).
    pub fn render(&self) -> Result<String, MetricsError> {
        ::prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .map_err(MetricsError::Encode)
    }
}

/// A meter provider read by a Prometheus exporter, and the exposition of
/// what it collects. `service` becomes the resource's `service.name`.
pub fn pipeline(service: Option<&str>) -> Result<(SdkMeterProvider, Exposition), MetricsError> {
    let registry = ::prometheus::Registry::new();
    let exporter = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .build()
        .map_err(MetricsError::Exporter)?;
    let mut resource = Resource::builder();
    if let Some(s) = service {
        resource = resource.with_attribute(KeyValue::new("service.name", s.to_string()));
    }
    let provider = SdkMeterProvider::builder()
        .with_reader(exporter)
        .with_resource(resource.build())
        .build();
    Ok((provider, Exposition { registry }))
}

/// The running `/metrics` server: stops when [`MetricsServer::shutdown`] is
/// awaited or when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes open connections, and waits for the task.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Serves `exposition` at `GET /metrics` on `listener` (HTTP/1.1; other
/// paths 404, other methods 405). Must be called within a tokio runtime.
pub fn serve(listener: TcpListener, exposition: Exposition) -> Result<MetricsServer, MetricsError> {
    let addr = listener.local_addr().map_err(|source| MetricsError::Bind {
        addr: ([0, 0, 0, 0], 0).into(),
        source,
    })?;
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let exposition = exposition.clone();
                    conns.spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            let resp = respond(&exposition, &req);
                            async move { Ok::<_, Infallible>(resp) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        conns.shutdown().await;
    });
    Ok(MetricsServer {
        addr,
        stop,
        task: Some(task),
    })
}

fn respond(exposition: &Exposition, req: &http::Request<Incoming>) -> http::Response<Full<Bytes>> {
    let plain = |status: http::StatusCode, body: String| {
        let mut resp = http::Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        resp
    };
    if req.uri().path() != "/metrics" {
        return plain(http::StatusCode::NOT_FOUND, "try /metrics\n".into());
    }
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return plain(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "GET /metrics\n".into(),
        );
    }
    match exposition.render() {
        Ok(text) => {
            let mut resp = plain(http::StatusCode::OK, text);
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(::prometheus::TEXT_FORMAT),
            );
            resp
        }
        Err(e) => plain(http::StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

/// The installed pipeline: the global meter provider and its `/metrics`
/// server.
#[derive(Debug)]
pub struct Telemetry {
    /// The provider, installed as the global one.
    pub provider: SdkMeterProvider,
    /// The `/metrics` server.
    pub server: MetricsServer,
    /// Renders the same text the server answers with.
    pub exposition: Exposition,
}

impl Telemetry {
    /// Stops the server and shuts the provider down.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
        let _ = self.provider.shutdown();
    }
}

/// Builds the [`pipeline`], installs its provider as the global one, and
/// serves `/metrics` on `addr`. `service` names the resource.
pub async fn install(addr: SocketAddr, service: Option<&str>) -> Result<Telemetry, MetricsError> {
    let (provider, exposition) = pipeline(service)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let server = serve(listener, exposition.clone())?;
    opentelemetry::global::set_meter_provider(provider.clone());
    Ok(Telemetry {
        provider,
        server,
        exposition,
    })
}

/// [`install`] on `MESH_METRICS_ADDR` with the resource named by
/// `MESH_SERVICE` (else `OTEL_SERVICE_NAME`); `Ok(None)` when the variable
/// is unset or empty. Call it before [`super::Metrics::global`].
pub async fn init_from_env() -> Result<Option<Telemetry>, MetricsError> {
    let Some(value) = std::env::var("MESH_METRICS_ADDR")
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(None);
    };
    let addr: SocketAddr = value.trim().parse().map_err(|source| MetricsError::Addr {
        value: value.clone(),
        source,
    })?;
    let service = std::env::var("MESH_SERVICE")
        .or_else(|_| std::env::var("OTEL_SERVICE_NAME"))
        .ok()
        .filter(|s| !s.trim().is_empty());
    install(addr, service.as_deref()).await.map(Some)
}
