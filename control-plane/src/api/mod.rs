//! The REST API under `/api/v1` (axum, JSON), `/healthz` and `/metrics`.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /api/v1/config` | running config: version, format, text, and the config as JSON |
//! | `PUT /api/v1/config` | apply a whole config; body YAML (default), JSON (`Content-Type: application/json`) or TOML (`application/toml`) |
//! | `GET /api/v1/config/versions` | the history |
//! | `GET /api/v1/config/versions/{version}` | one version with its text |
//! | `POST /api/v1/config/rollback` | `{"version": N}`: a new version equal to N |
//! | `GET /api/v1/services` | every service (config or registered) with endpoint counts |
//! | `GET /api/v1/services/{service}` | one service's endpoints, each with its state |
//! | `PUT /api/v1/services/{service}/endpoints/{id}` | register (or re-register, which renews) |
//! | `PUT /api/v1/services/{service}/endpoints/{id}/heartbeat` | renew |
//! | `DELETE /api/v1/services/{service}/endpoints/{id}` | deregister |
//! | `GET /api/v1/intentions`, `POST /api/v1/intentions` | list, create |
//! | `GET/PUT/DELETE /api/v1/intentions/{source}/{destination}` | one intention |
//! | `GET /api/v1/xds/nodes` | connected xDS nodes, their ACKs and NACKs |
//! | `GET /api/v1/snapshot` | what the xDS server is serving (version and discovered endpoints) |
//! | `GET /healthz`, `GET /metrics` | liveness, Prometheus text |
//!
//! Errors are JSON: `{"error": "...", "errors": [{"path", "line", "message"}]}`
//! with 400 for bad input (every config error with its field path; for a
//! registration the field name: `address`, `weight`, `ttl`...), 401 for a
//! missing or wrong token on a write, 404 for an unknown service, endpoint,
//! intention or version, 409 for a conflict.
//!
//! When a token is set, every request other than `GET`/`HEAD` needs
//! `Authorization: Bearer <token>`; reads are open.

mod config;
mod intentions;
mod metrics;
mod services;
mod time;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use mesh_core::config::ConfigErrors;
use serde::Serialize;
use serde_json::json;

use crate::serve::ControlPlane;
use crate::serve::control::ChangeError;
use crate::state::XdsStatus;
use crate::store::StoreError;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    control: Arc<ControlPlane>,
    status: Arc<XdsStatus>,
    token: Option<Arc<str>>,
}

impl ApiState {
    /// The API over `control`, showing `status`; writes need `token` if set.
    pub fn new(control: Arc<ControlPlane>, status: Arc<XdsStatus>, token: Option<String>) -> Self {
        Self {
            control,
            status,
            token: token.map(Arc::from),
        }
    }
}

/// The whole HTTP surface of `meshctl serve`.
pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/config", get(config::get_config).put(config::put_config))
        .route("/config/versions", get(config::versions))
        .route("/config/versions/{version}", get(config::version))
        .route("/config/rollback", post(config::rollback))
        .route("/services", get(services::list))
        .route("/services/{service}", get(services::one))
        .route(
            "/services/{service}/endpoints/{id}",
            put(services::register).delete(services::deregister),
        )
        .route(
            "/services/{service}/endpoints/{id}/heartbeat",
            put(services::heartbeat),
        )
        .route(
            "/intentions",
            get(intentions::list).post(intentions::create),
        )
        .route(
            "/intentions/{source}/{destination}",
            get(intentions::one)
                .put(intentions::upsert)
                .delete(intentions::delete),
        )
        .route("/xds/nodes", get(metrics::xds_nodes))
        .route("/snapshot", get(metrics::snapshot))
        .fallback(|| async { ApiError::not_found("no such API route") });
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics::metrics))
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

/// Writes need the bearer token, when one is set.
async fn authorize(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let Some(token) = state.token.as_deref() else {
        return next.run(req).await;
    };
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => next.run(req).await,
        Some(_) => unauthorized("wrong bearer token"),
        None => unauthorized("this control plane needs `Authorization: Bearer <token>` for writes"),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// Compares without stopping at the first difference (token guessing by timing).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One problem with a request, at a field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Field path (`services.news.retry.attempts`, `weight`...).
    pub path: String,
    /// Line in the config text, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// What is wrong and what is allowed.
    pub message: String,
}

/// An error answer: status, message, and the field errors if any.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    errors: Vec<FieldError>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            errors: Vec::new(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    fn bad_request(errors: Vec<FieldError>) -> Self {
        let message = match errors.as_slice() {
            [one] => format!("{}: {}", one.path, one.message),
            many => format!("{} errors", many.len()),
        };
        Self {
            status: StatusCode::BAD_REQUEST,
            message,
            errors,
        }
    }

    fn field(path: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            path: path.to_string(),
            line: None,
            message: message.into(),
        }
    }

    fn invalid_config(errors: &ConfigErrors) -> Self {
        let fields: Vec<FieldError> = errors
            .errors
            .iter()
            .map(|e| FieldError {
                path: e.path.clone(),
                line: e.line,
                message: e.message.clone(),
            })
            .collect();
        let n = fields.len();
        Self {
            status: StatusCode::BAD_REQUEST,
            message: format!("invalid config: {n} error{}", if n == 1 { "" } else { "s" }),
            errors: fields,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.message, "errors": self.errors });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %error_chain(&e), "store failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error_chain(&e))
    }
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::Invalid(errors) => ApiError::invalid_config(&errors),
            ChangeError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            ChangeError::Exists(what) => {
                ApiError::new(StatusCode::CONFLICT, format!("{what} exists already"))
            }
            ChangeError::Store(e) => e.into(),
        }
    }
}

/// `error: cause: cause`, for messages and logs (a cause whose text the
/// message already contains is not repeated).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = c.source();
    }
    out
}
