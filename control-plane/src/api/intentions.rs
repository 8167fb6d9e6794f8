//! `/api/v1/intentions`: create, list, update, delete, as in Consul.
//!
//! An intention is the same JSON object as an entry of the config's
//! `intentions:` list: `{"source": "app-ui", "destination": "news",
//! "action": "allow"}`, or with `permissions` instead of `action` for L7
//! rules. A pair `(source, destination)` has at most one intention.
//!
//! Intentions live in the config (one source of truth, see
//! [`crate::store`]): every change here is a new config version, validated
//! like any config, so an intention naming a bad source is refused with the
//! same messages as in a file (paths relative to the intention: `action`,
//! `permissions[0].methods`...).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use mesh_core::config::MeshConfig;
use serde_json::{Map, Value, json};

use super::{ApiError, ApiState, FieldError};
use crate::serve::control::ChangeError;

pub(crate) async fn list(State(st): State<ApiState>) -> Json<Value> {
    let (config, info, _) = st.control.config();
    let json = config.to_json();
    Json(json!({
        "config_version": info.map_or(0, |i| i.version),
        "default_policy": json["default_policy"],
        "intentions": json["intentions"],
    }))
}

pub(crate) async fn one(
    State(st): State<ApiState>,
    Path((source, destination)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (config, _, _) = st.control.config();
    let json = config.to_json();
    position(&config, &source, &destination)
        .and_then(|i| json["intentions"].get(i).cloned())
        .map(Json)
        .ok_or_else(|| not_found(&source, &destination))
}

pub(crate) async fn create(
    State(st): State<ApiState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let obj = body_object(&body)?;
    let field = |name: &str| obj.get(name).and_then(Value::as_str).map(str::to_string);
    let (Some(source), Some(destination)) = (field("source"), field("destination")) else {
        let mut errors = Vec::new();
        for name in ["source", "destination"] {
            if field(name).is_none() {
                errors.push(ApiError::field(name, "required: a service name or `*`"));
            }
        }
        return Err(ApiError::bad_request(errors));
    };
    let origin = format!("intention create {source} -> {destination}");
    let mut index = 0;
    let result = st.control.edit_config(&origin, |cfg, json| {
        if position(cfg, &source, &destination).is_some() {
            return Err(ChangeError::Exists(format!(
                "intention {source} -> {destination}"
            )));
        }
        index = cfg.intentions.len();
        push(json, Value::Object(obj));
        Ok(())
    });
    let ((), version) = result.map_err(|e| change_error(e, index))?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "config_version": version, "source": source, "destination": destination, "created": true }),
        ),
    ))
}

pub(crate) async fn upsert(
    State(st): State<ApiState>,
    Path((source, destination)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let mut obj = body_object(&body)?;
    let mut errors = Vec::new();
    for (name, want) in [("source", &source), ("destination", &destination)] {
        match obj.get(name) {
            None => {}
            Some(Value::String(s)) if s == want => {}
            Some(other) => errors.push(ApiError::field(
                name,
                format!(
                    "{other} differs from the URL's `{want}` (leave it out, or make them equal)"
                ),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::bad_request(errors));
    }
    obj.insert("source".into(), json!(source));
    obj.insert("destination".into(), json!(destination));
    let origin = format!("intention update {source} -> {destination}");
    let mut index = 0;
    let result = st.control.edit_config(&origin, |cfg, json| {
        match position(cfg, &source, &destination) {
            Some(i) => {
                index = i;
                if let Some(slot) = json["intentions"].get_mut(i) {
                    *slot = Value::Object(obj);
                }
                Ok(false)
            }
            None => {
                index = cfg.intentions.len();
                push(json, Value::Object(obj));
                Ok(true)
            }
        }
    });
    let (created, version) = result.map_err(|e| change_error(e, index))?;
    Ok(Json(
        json!({ "config_version": version, "source": source, "destination": destination, "created": created }),
    ))
}

pub(crate) async fn delete(
    State(st): State<ApiState>,
    Path((source, destination)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let origin = format!("intention delete {source} -> {destination}");
    let ((), version) = st.control.edit_config(&origin, |cfg, json| {
        let i = position(cfg, &source, &destination)
            .ok_or_else(|| ChangeError::NotFound(format!("intention {source} -> {destination}")))?;
        if let Some(list) = json["intentions"].as_array_mut()
            && i < list.len()
        {
            list.remove(i);
        }
        Ok(())
    })?;
    Ok(Json(
        json!({ "config_version": version, "source": source, "destination": destination, "deleted": true }),
    ))
}

fn position(cfg: &MeshConfig, source: &str, destination: &str) -> Option<usize> {
    cfg.intentions
        .iter()
        .position(|it| it.source == source && it.destination == destination)
}

fn push(json: &mut Value, intention: Value) {
    match json["intentions"].as_array_mut() {
        Some(list) => list.push(intention),
        None => json["intentions"] = Value::Array(vec![intention]),
    }
}

fn not_found(source: &str, destination: &str) -> ApiError {
    ApiError::not_found(format!("intention {source} -> {destination} not found"))
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(_) => Err(ApiError::bad_request(vec![ApiError::field(
            "",
            "the body must be a JSON object",
        )])),
        Err(e) => Err(ApiError::bad_request(vec![ApiError::field(
            "",
            format!("the body is not JSON: {e}"),
        )])),
    }
}

/// Config errors about intention `index`, with paths relative to it.
fn change_error(e: ChangeError, index: usize) -> ApiError {
    match e {
        ChangeError::Invalid(errors) => {
            let prefix = format!("intentions[{index}]");
            let fields: Vec<FieldError> = errors
                .errors
                .iter()
                .map(|e| {
                    let path = match e.path.strip_prefix(&prefix) {
                        Some(rest) => rest.trim_start_matches('.').to_string(),
                        None => e.path.clone(),
                    };
                    FieldError {
                        path,
                        line: None,
                        message: e.message.clone(),
                    }
                })
                .collect();
            ApiError::bad_request(fields)
        }
        other => other.into(),
    }
}
