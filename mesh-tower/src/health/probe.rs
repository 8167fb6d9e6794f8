//! One probe of one endpoint: an HTTP `GET` or a gRPC `Health/Check`, sent
//! through the pool's [`Connector`] straight to the endpoint's address.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use mesh_core::config::{HealthCheckConfig, Protocol};
use tower::{Service, ServiceExt};

use super::grpc::{self, CHECK_PATH, SERVING};
use crate::body::MeshBody;
use crate::connect::{Connector, authority, set_endpoint};
use crate::error::BoxError;

/// The `user-agent` of probes.
pub const PROBE_USER_AGENT: &str = "mesh-health-check";

/// The largest response body a probe reads (more fails the probe).
const MAX_BODY: usize = 64 * 1024;

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The request could not be built (a path that is not a URI).
    #[error("invalid probe request: {0}")]
    Request(#[source] http::Error),
    /// The connection failed or the request could not be sent.
    #[error("request failed")]
    Send(#[source] BoxError),
    /// The response body could not be read (or was larger than 64 KiB).
    #[error("reading the response failed")]
    Body(#[source] BoxError),
    /// The HTTP status was not 2xx (HTTP) or not 200 (gRPC).
    #[error("HTTP status {0}")]
    Status(StatusCode),
    /// The gRPC call failed with this status code.
    #[error("grpc-status {code}{}", if .message.is_empty() { String::new() } else { format!(": {}", .message) })]
    Grpc {
        /// The `grpc-status` code.
        code: u32,
        /// The `grpc-message`, if any.
        message: String,
    },
    /// The server answered, but not `SERVING`.
    #[error("serving status {0} (SERVING is 1)")]
    NotServing(u64),
    /// The answer was not a `HealthCheckResponse`.
    #[error(transparent)]
    Malformed(#[from] grpc::Malformed),
}

/// Probes `addr` once as `config` says for a `protocol` service named
/// `host` (sent as the `Host`/`:authority`): `Ok(())` if it passed.
pub async fn check(
    connector: &Connector,
    addr: SocketAddr,
    host: &str,
    protocol: Protocol,
    config: &HealthCheckConfig,
) -> Result<(), ProbeError> {
    let fut = async {
        match protocol {
            Protocol::Grpc => check_grpc(connector, addr, host, config).await,
            Protocol::Http | Protocol::Http2 => check_http(connector, addr, host, config).await,
        }
    };
    match tokio::time::timeout(config.timeout, fut).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::Timeout(config.timeout)),
    }
}

fn request(
    addr: SocketAddr,
    host: &str,
    method: Method,
    path: &str,
    body: MeshBody,
) -> Result<Request<MeshBody>, ProbeError> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(USER_AGENT, PROBE_USER_AGENT)
        .body(body)
        .map_err(ProbeError::Request)?;
    if let Ok(v) = HeaderValue::from_str(host) {
        req.headers_mut().insert(HOST, v);
    }
    let Some(authority) = authority(addr) else {
        return Err(ProbeError::Send(
            format!("{addr} is not a URI authority").into(),
        ));
    };
    set_endpoint(&mut req, &authority);
    Ok(req)
}

async fn send(
    connector: &Connector,
    req: Request<MeshBody>,
) -> Result<http::Response<Incoming>, ProbeError> {
    let mut connector = connector.clone();
    let svc = connector.ready().await.map_err(ProbeError::Send)?;
    svc.call(req).await.map_err(ProbeError::Send)
}

/// The whole body (bounded) and the trailers.
async fn read(body: Incoming) -> Result<(Bytes, Option<HeaderMap>), ProbeError> {
    let collected = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(ProbeError::Body)?;
    let trailers = collected.trailers().cloned();
    Ok((collected.to_bytes(), trailers))
}

async fn check_http(
    connector: &Connector,
    addr: SocketAddr,
    host: &str,
    config: &HealthCheckConfig,
) -> Result<(), ProbeError> {
    let req = request(addr, host, Method::GET, &config.path, MeshBody::empty())?;
    let resp = send(connector, req).await?;
    let status = resp.status();
    // Read the body so the connection goes back to the pool.
    read(resp.into_body()).await?;
    if status.is_success() {
        Ok(())
    } else {
        Err(ProbeError::Status(status))
    }
}

async fn check_grpc(
    connector: &Connector,
    addr: SocketAddr,
    host: &str,
    config: &HealthCheckConfig,
) -> Result<(), ProbeError> {
    let body = MeshBody::full(grpc::encode_request(&config.grpc_service));
    let mut req = request(addr, host, Method::POST, CHECK_PATH, body)?;
    let headers = req.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("te", HeaderValue::from_static("trailers"));
    let millis = config.timeout.as_millis().clamp(1, 99_999_999);
    if let Ok(v) = HeaderValue::from_str(&format!("{millis}m")) {
        headers.insert("grpc-timeout", v);
    }
    let resp = send(connector, req).await?;
    if resp.status() != StatusCode::OK {
        return Err(ProbeError::Status(resp.status()));
    }
    let (parts, body) = resp.into_parts();
    // Trailers-only responses carry the status in the headers.
    let status_in_headers = grpc_status(&parts.headers);
    let (bytes, trailers) = read(body).await?;
    let status = status_in_headers.or_else(|| trailers.as_ref().and_then(grpc_status));
    match status {
        Some((0, _)) => {}
        Some((code, message)) => return Err(ProbeError::Grpc { code, message }),
        None => {
            return Err(ProbeError::Grpc {
                code: 2,
                message: "no grpc-status in the response".into(),
            });
        }
    }
    match grpc::decode_response(&bytes)? {
        SERVING => Ok(()),
        other => Err(ProbeError::NotServing(other)),
    }
}

fn grpc_status(headers: &HeaderMap) -> Option<(u32, String)> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Some((code, message))
}
