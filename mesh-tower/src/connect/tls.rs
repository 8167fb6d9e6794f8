//! The mTLS transport under the pooled client: TCP from hyper-util's
//! `HttpConnector`, then a rustls handshake verifying the server's SPIFFE
//! ID (see [`crate::tls`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::BoxError;

/// The TLS handshake with an endpoint failed (other than an identity
/// mismatch, which is returned as
/// [`IdentityMismatch`](crate::tls::IdentityMismatch) itself).
#[derive(Debug, thiserror::Error)]
#[error("TLS handshake with {endpoint}: {source}")]
pub struct TlsHandshakeError {
    /// The endpoint (`host:port`).
    pub endpoint: String,
    /// Why.
    #[source]
    pub source: io::Error,
}

/// A hyper-util connector: TCP, then TLS with `config`.
#[derive(Clone)]
pub(crate) struct TlsConnect {
    pub(crate) http: HttpConnector,
    pub(crate) tls: TlsConnector,
}

impl TlsConnect {
    pub(crate) fn new(http: HttpConnector, config: Arc<ClientConfig>) -> Self {
        Self {
            http,
            tls: TlsConnector::from(config),
        }
    }
}

impl tower::Service<Uri> for TlsConnect {
    type Response = MeshTlsStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<MeshTlsStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        tower::Service::<Uri>::poll_ready(&mut self.http, cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let endpoint = uri
            .authority()
            .map_or_else(String::new, |a| a.as_str().to_string());
        let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
        // Only the IP is known (the identity is what is verified); a host
        // name is passed as is.
        let name = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(ServerName::IpAddress(ip.into())),
            Err(_) => ServerName::try_from(host.to_string()),
        };
        let tcp = self.http.call(uri);
        let tls = self.tls.clone();
        Box::pin(async move {
            let name = name.map_err(|e| Box::new(e) as BoxError)?;
            let tcp = tcp.await.map_err(|e| Box::new(e) as BoxError)?;
            let tcp: TcpStream = tcp.into_inner();
            match tls.connect(name, tcp).await {
                Ok(stream) => Ok(MeshTlsStream(TokioIo::new(stream))),
                Err(source) => {
                    if let Some(m) = source
                        .get_ref()
                        .and_then(|e| e.downcast_ref::<rustls::Error>())
                        .and_then(crate::tls::verify_mismatch)
                    {
                        return Err(Box::new(m) as BoxError);
                    }
                    Err(Box::new(TlsHandshakeError { endpoint, source }) as BoxError)
                }
            }
        })
    }
}

/// A client TLS connection, for hyper.
pub(crate) struct MeshTlsStream(TokioIo<TlsStream<TcpStream>>);

impl MeshTlsStream {
    /// The rustls session (for tests: resumption, ALPN).
    #[allow(dead_code)]
    pub(crate) fn connection(&self) -> &rustls::ClientConnection {
        self.0.inner().get_ref().1
    }
}

impl Connection for MeshTlsStream {
    fn connected(&self) -> Connected {
        let (tcp, session) = self.0.inner().get_ref();
        let connected = tcp.connected();
        if session.alpn_protocol() == Some(b"h2") {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for MeshTlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for MeshTlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}
