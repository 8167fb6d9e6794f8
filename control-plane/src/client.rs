//! The CLI's HTTP client for the REST API: hyper-util's pooled client over
//! plain HTTP, a bearer token on every request when one is given, and a
//! timeout per request.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request failed before an HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server URL is not usable.
    #[error("bad server URL `{url}`: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The request could not be built (bad header value, such as a token
    /// with a newline).
    #[error("cannot build the request")]
    Build(#[source] http::Error),
    /// Connecting or exchanging failed.
    #[error("cannot reach the control plane at {url}")]
    Request {
        /// The URL asked.
        url: String,
        /// hyper's error.
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    /// Reading the answer failed.
    #[error("reading the answer from {url} failed")]
    Body {
        /// The URL asked.
        url: String,
        /// hyper's error.
        #[source]
        source: hyper::Error,
    },
    /// No answer in time.
    #[error("no answer from {url} within {timeout:?}")]
    Timeout {
        /// The URL asked.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The whole body.
    pub body: Bytes,
}

impl Response {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The API's error message: `error`, then one line per field error
    /// (`path: message`, or `line N: path: message`), or the raw body.
    pub fn error_message(&self) -> String {
        let v = self.json();
        let Some(error) = v.get("error").and_then(Value::as_str) else {
            return format!(
                "{}: {}",
                self.status,
                String::from_utf8_lossy(&self.body).trim()
            );
        };
        let mut out = error.to_string();
        for e in v["errors"].as_array().into_iter().flatten() {
            out.push_str("\n  ");
            if let Some(line) = e["line"].as_u64() {
                out.push_str(&format!("line {line}: "));
            }
            if let Some(path) = e["path"].as_str().filter(|p| !p.is_empty()) {
                out.push_str(path);
                out.push_str(": ");
            }
            out.push_str(e["message"].as_str().unwrap_or(""));
        }
        out
    }
}

/// A client of one control plane.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    inner: HyperClient<HttpConnector, Full<Bytes>>,
}

impl Client {
    /// A client of the control plane at `server` (`http://host:port`).
    pub fn new(server: &str, token: Option<String>) -> Result<Self, ClientError> {
        let bad = |reason: &str| ClientError::BadUrl {
            url: server.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = server.parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(bad("https is not supported yet; use http://")),
            _ => return Err(bad("expected http://host:port")),
        }
        if uri.authority().is_none() {
            return Err(bad("no host"));
        }
        let inner = HyperClient::builder(TokioExecutor::new()).build_http();
        Ok(Self {
            base: server.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.is_empty()),
            inner,
        })
    }

    /// Sends `method path` (path from `/api/v1/...`) with an optional body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Bytes)>,
    ) -> Result<Response, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder().method(method).uri(&url);
        if let Some(token) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some((content_type, bytes)) => {
                req = req.header(header::CONTENT_TYPE, content_type);
                bytes
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(body)).map_err(ClientError::Build)?;
        let exchange = async {
            let resp = self
                .inner
                .request(req)
                .await
                .map_err(|source| ClientError::Request {
                    url: url.clone(),
                    source,
                })?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|source| ClientError::Body {
                    url: url.clone(),
                    source,
                })?
                .to_bytes();
            Ok(Response { status, body })
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout {
                url,
                timeout: REQUEST_TIMEOUT,
            }),
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Response, ClientError> {
        self.request(Method::GET, path, None).await
    }

    /// `method path` with a JSON body.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Response, ClientError> {
        let bytes = Bytes::from(body.to_string());
        self.request(method, path, Some(("application/json", bytes)))
            .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Response, ClientError> {
        self.request(Method::DELETE, path, None).await
    }
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved
/// characters and `*`).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'*' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_segments() {
        assert!(Client::new("http://127.0.0.1:15000/", None).is_ok());
        for bad in ["127.0.0.1:15000", "https://cp:15000", "ftp://x", "http://"] {
            assert!(Client::new(bad, None).is_err(), "{bad}");
        }
        assert_eq!(segment("news-1.a_b:c*"), "news-1.a_b:c*");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn error_message_lists_fields() {
        let resp = Response {
            status: StatusCode::BAD_REQUEST,
            body: Bytes::from(
                r#"{"error":"2 errors","errors":[{"path":"weight","message":"too big"},{"path":"a.b","line":3,"message":"bad"}]}"#,
            ),
        };
        assert_eq!(
            resp.error_message(),
            "2 errors\n  weight: too big\n  line 3: a.b: bad"
        );
        let raw = Response {
            status: StatusCode::BAD_GATEWAY,
            body: Bytes::from("upstream down"),
        };
        assert_eq!(raw.error_message(), "502 Bad Gateway: upstream down");
    }
}
