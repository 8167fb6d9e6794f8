//! `/api/v1/config`: the running config, applying one, history, rollback.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use mesh_core::config::Format;
use serde_json::{Value, json};

use super::time::rfc3339;
use super::{ApiError, ApiState};
use crate::store::VersionInfo;
use crate::store::config::format_name;

/// The format of a request body, by its `Content-Type` (YAML by default,
/// since YAML also reads most JSON).
pub(crate) fn body_format(headers: &HeaderMap) -> Format {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ct.contains("json") {
        Format::Json
    } else if ct.contains("toml") {
        Format::Toml
    } else {
        Format::Yaml
    }
}

fn info_json(info: &VersionInfo) -> Value {
    json!({
        "version": info.version,
        "created": rfc3339(info.created),
        "format": format_name(info.format),
        "origin": info.origin,
        "rollback_of": info.rollback_of,
    })
}

pub(crate) async fn get_config(State(st): State<ApiState>) -> Json<Value> {
    let (config, info, source) = st.control.config();
    let mut out = match &info {
        Some(info) => info_json(info),
        None => json!({ "version": 0, "format": "yaml", "origin": "none (nothing applied yet)" }),
    };
    if let Some(obj) = out.as_object_mut() {
        obj.insert("summary".into(), json!(config.summary().to_string()));
        obj.insert("source".into(), json!(source));
        obj.insert("config".into(), config.to_json());
    }
    Json(out)
}

pub(crate) async fn put_config(
    State(st): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let text = std::str::from_utf8(&body).map_err(|e| {
        ApiError::bad_request(vec![ApiError::field("", format!("body is not UTF-8: {e}"))])
    })?;
    let format = body_format(&headers);
    let applied = st.control.apply(text, format, "apply")?;
    let (config, _, _) = st.control.config();
    let warnings = crate::xds::resources::warnings(&st.control.snapshot());
    Ok(Json(json!({
        "version": applied.version,
        "changed": applied.changed,
        "summary": config.summary().to_string(),
        "warnings": warnings,
    })))
}

pub(crate) async fn versions(State(st): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let versions = st.control.versions()?;
    let current = versions.last().map_or(0, |v| v.version);
    let list: Vec<Value> = versions.iter().map(info_json).collect();
    Ok(Json(json!({ "current": current, "versions": list })))
}

pub(crate) async fn version(
    State(st): State<ApiState>,
    Path(version): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let not_found = || ApiError::not_found(format!("config version {version} not found"));
    let n: u64 = version.parse().map_err(|_| not_found())?;
    let cv = st.control.version(n)?.ok_or_else(not_found)?;
    let mut out = info_json(&cv.info);
    if let Some(obj) = out.as_object_mut() {
        obj.insert("source".into(), json!(cv.source));
    }
    Ok(Json(out))
}

pub(crate) async fn rollback(
    State(st): State<ApiState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(vec![ApiError::field("", format!("body is not JSON: {e}"))])
    })?;
    let Some(target) = value.get("version").and_then(Value::as_u64) else {
        return Err(ApiError::bad_request(vec![ApiError::field(
            "version",
            "required: the version number to roll back to",
        )]));
    };
    let version = st.control.rollback(target)?;
    Ok(Json(json!({ "version": version, "rollback_of": target })))
}
