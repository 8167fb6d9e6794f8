//! The REST API under `/api/v1` (axum, JSON), `/healthz` and `/metrics`.
//!
//! Being built (issue "Control plane").
