//! The `app-ui` handlers: a small HTML page and a JSON endpoint, both with
//! the news fetched from `news-service` through the mesh client.
//!
//! The handler shows the whole client-side contract: build a request to
//! `http://news-service/...` (the host is the service, the mesh picks the
//! instance), carry the incoming trace context, call the [`MeshClient`],
//! and read what the mesh tells about the call from the response's
//! extensions ([`ServedBy`], [`Attempts`]).

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use http_body_util::{BodyExt, Empty, Limited};
use mesh_tower::ext::{Attempts, ServedBy};
use mesh_tower::trace::TraceContext;
use mesh_tower::{BoxError, MeshClient};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

use crate::news::{News, Story};

/// The largest `news-service` body read.
const MAX_BODY: usize = 64 * 1024;

/// Why the news could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The mesh client failed (no endpoints, timeout, circuit open, ...).
    #[error("calling news-service")]
    Call(#[source] BoxError),
    /// news-service answered with an error status (after the retries).
    #[error("news-service answered {0}")]
    Status(StatusCode),
    /// The body could not be read or parsed.
    #[error("reading the news-service answer")]
    Body(#[source] BoxError),
}

/// The body of `GET /api/news`: the news and how the mesh got them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiNews {
    /// Version of the instance that served the news.
    pub version: String,
    /// Address of the instance that served the news (its own word).
    pub address: String,
    /// The endpoint the mesh sent the successful attempt to.
    pub served_by: Option<String>,
    /// Attempts the call took (1: no retry).
    pub attempts: u32,
    /// Headlines.
    pub items: Vec<Story>,
}

/// Fetches `/news` through the mesh, continuing `trace` if given.
pub async fn fetch_news(
    client: &MeshClient,
    trace: Option<TraceContext>,
) -> Result<ApiNews, FetchError> {
    let mut request = http::Request::get("http://news-service/news")
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| FetchError::Call(e.into()))?;
    if let Some(trace) = trace {
        // The mesh client injects `traceparent` as a child of this context.
        request.extensions_mut().insert(trace);
    }
    let response = client
        .clone()
        .oneshot(request)
        .await
        .map_err(FetchError::Call)?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status()));
    }
    let served_by: Option<SocketAddr> = response.extensions().get::<ServedBy>().map(|s| s.0);
    let attempts = response.extensions().get::<Attempts>().map_or(1, |a| a.0);
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(FetchError::Body)?
        .to_bytes();
    let news: News = serde_json::from_slice(&body).map_err(|e| FetchError::Body(e.into()))?;
    Ok(ApiNews {
        version: news.version,
        address: news.address,
        served_by: served_by.map(|a| a.to_string()),
        attempts,
        items: news.items,
    })
}

/// The app's routes: `/` (HTML), `/api/news` (JSON), `/healthz`.
pub fn router(news: MeshClient) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/news", get(api))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(news)
}

/// A 502 with the error and its causes.
fn bad_gateway(err: &FetchError) -> Response {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    (StatusCode::BAD_GATEWAY, text).into_response()
}

async fn api(State(news): State<MeshClient>, trace: Option<Extension<TraceContext>>) -> Response {
    match fetch_news(&news, trace.map(|t| t.0)).await {
        Ok(body) => Json(body).into_response(),
        Err(e) => bad_gateway(&e),
    }
}

async fn page(State(news): State<MeshClient>, trace: Option<Extension<TraceContext>>) -> Response {
    let news = match fetch_news(&news, trace.map(|t| t.0)).await {
        Ok(news) => news,
        Err(e) => return bad_gateway(&e),
    };
    let items: String = news
        .items
        .iter()
        .map(|s| format!("    <li>{}</li>\n", escape(&s.title)))
        .collect();
    Html(format!(
        "<!doctype html>\n<html>\n<head><title>News</title></head>\n<body>\n  <h1>News</h1>\n  <ul>\n{items}  </ul>\n  \
         <p>Served by news-service {} at {} ({} attempt(s)).</p>\n</body>\n</html>\n",
        escape(&news.version),
        escape(&news.address),
        news.attempts,
    ))
    .into_response()
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_html() {
        assert_eq!(
            super::escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
    }
}
