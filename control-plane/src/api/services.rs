//! `/api/v1/services`: services, their endpoints, and registration.
//!
//! A registration (`PUT .../endpoints/{id}`) takes a JSON object:
//!
//! ```json
//! {"address": "127.0.0.1:8081", "weight": 3, "zone": "a",
//!  "labels": {"version": "v2"}, "ttl": "30s"}
//! ```
//!
//! Only `address` is required (weight defaults to 1; no `ttl`: the endpoint
//! lives until deregistered). The TTL is between 1s and 24h. Registering the
//! same id again replaces the endpoint and renews it, like a heartbeat
//! (`PUT .../endpoints/{id}/heartbeat`), so an agent may simply re-register.
//! A service need not be in the config to have registered endpoints.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use mesh_core::Endpoint;
use mesh_core::config::{format_duration, is_service_name, parse_duration};
use mesh_core::endpoint::MAX_WEIGHT;
use serde_json::{Map, Value, json};

use super::time::rfc3339;
use super::{ApiError, ApiState, FieldError};
use crate::store::endpoints::RegisterOutcome;
use crate::store::{Registered, Registration};

/// Shortest TTL accepted.
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// Longest TTL accepted.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

const FIELDS: &str = "address, weight, zone, labels, ttl";

pub(crate) async fn list(State(st): State<ApiState>) -> Json<Value> {
    let snapshot = st.control.snapshot();
    let registered = st.control.registrations();
    let dns = st.control.dns_endpoints();
    let config_json = snapshot.config.to_json();
    let mut names: Vec<String> = snapshot.config.services.keys().cloned().collect();
    names.extend(registered.iter().map(|r| r.registration.service.clone()));
    names.sort();
    names.dedup();
    let services: Vec<Value> = names
        .iter()
        .map(|name| {
            let cfg = snapshot.config.services.get(name);
            json!({
                "name": name,
                "in_config": cfg.is_some(),
                "protocol": config_json["services"][name]["protocol"],
                "dns": config_json["services"][name]["dns"],
                "endpoints": snapshot.endpoints(name).len(),
                "static": cfg.map_or(0, |c| c.endpoints.len()),
                "registered": registered.iter().filter(|r| &r.registration.service == name).count(),
                "discovered_by_dns": dns.get(name).map_or(0, Vec::len),
            })
        })
        .collect();
    Json(json!({ "snapshot_version": snapshot.version, "services": services }))
}

pub(crate) async fn one(
    State(st): State<ApiState>,
    Path(service): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let snapshot = st.control.snapshot();
    let registered: Vec<Registered> = st
        .control
        .registrations()
        .into_iter()
        .filter(|r| r.registration.service == service)
        .collect();
    let cfg = snapshot.config.services.get(&service);
    if cfg.is_none() && registered.is_empty() {
        return Err(ApiError::not_found(format!(
            "service `{service}` not found"
        )));
    }
    let dns = st
        .control
        .dns_endpoints()
        .remove(&service)
        .unwrap_or_default();
    let now = SystemTime::now();
    let endpoints: Vec<Value> = snapshot
        .endpoints(&service)
        .iter()
        .map(|ep| {
            let mut v = endpoint_json(ep);
            let state = if let Some(r) = registered
                .iter()
                .find(|r| r.registration.endpoint.address == ep.address)
            {
                registration_fields(&mut v, r, now);
                "registered"
            } else if dns.iter().any(|d| d.address == ep.address) {
                "dns"
            } else {
                "static"
            };
            v["state"] = json!(state);
            v
        })
        .collect();
    let config_json = snapshot.config.to_json();
    Ok(Json(json!({
        "name": service,
        "in_config": cfg.is_some(),
        "protocol": config_json["services"][&service]["protocol"],
        "dns": config_json["services"][&service]["dns"],
        "snapshot_version": snapshot.version,
        "endpoints": endpoints,
    })))
}

fn endpoint_json(ep: &Endpoint) -> Value {
    json!({
        "address": ep.address.to_string(),
        "weight": ep.weight,
        "zone": ep.zone,
        "labels": ep.labels,
    })
}

fn registration_fields(v: &mut Value, r: &Registered, now: SystemTime) {
    v["id"] = json!(r.registration.id);
    v["ttl"] = json!(r.registration.ttl.map(format_duration));
    v["expires_in_ms"] = json!(
        r.expires_in(now)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    );
    v["registered"] = json!(rfc3339(r.registered));
    v["last_heartbeat"] = json!(rfc3339(r.heartbeat));
}

pub(crate) async fn register(
    State(st): State<ApiState>,
    Path((service, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let reg = parse_registration(&service, &id, &body).map_err(ApiError::bad_request)?;
    let outcome = st.control.register(&reg)?;
    let (status, word) = match outcome {
        RegisterOutcome::Created => (StatusCode::CREATED, "created"),
        RegisterOutcome::Changed => (StatusCode::OK, "changed"),
        RegisterOutcome::Renewed => (StatusCode::OK, "renewed"),
        RegisterOutcome::AddressInUse { id: holder } => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "address {} is already registered for `{service}` as `{holder}`",
                    reg.endpoint.address
                ),
            ));
        }
    };
    let mut v = endpoint_json(&reg.endpoint);
    if let Some(r) = st
        .control
        .registrations()
        .iter()
        .find(|r| r.registration.service == reg.service && r.registration.id == reg.id)
    {
        registration_fields(&mut v, r, SystemTime::now());
    }
    v["service"] = json!(service);
    v["outcome"] = json!(word);
    Ok((status, Json(v)))
}

pub(crate) async fn heartbeat(
    State(st): State<ApiState>,
    Path((service, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let r = st
        .control
        .heartbeat(&service, &id)?
        .ok_or_else(|| ApiError::not_found(format!("endpoint `{id}` of `{service}` not found")))?;
    let mut v = endpoint_json(&r.registration.endpoint);
    registration_fields(&mut v, &r, SystemTime::now());
    Ok(Json(v))
}

pub(crate) async fn deregister(
    State(st): State<ApiState>,
    Path((service, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    if st.control.deregister(&service, &id)? {
        Ok(Json(
            json!({ "service": service, "id": id, "deregistered": true }),
        ))
    } else {
        Err(ApiError::not_found(format!(
            "endpoint `{id}` of `{service}` not found"
        )))
    }
}

/// Whether `id` may name an endpoint: 1 to 128 of `A-Z a-z 0-9 . _ : -`.
pub(crate) fn is_endpoint_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Validates a registration; every problem is reported with its field.
pub(crate) fn parse_registration(
    service: &str,
    id: &str,
    body: &[u8],
) -> Result<Registration, Vec<FieldError>> {
    let mut errors = Vec::new();
    if !is_service_name(service) {
        errors.push(ApiError::field(
            "service",
            format!("`{service}` is not a service name (1-63 of a-z, 0-9 and `-`, not starting or ending with `-`)"),
        ));
    }
    if !is_endpoint_id(id) {
        errors.push(ApiError::field(
            "id",
            format!("`{id}` is not an endpoint id (1-128 of A-Z, a-z, 0-9, `.`, `_`, `:`, `-`)"),
        ));
    }
    let obj: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(obj)) => obj,
        Ok(_) => {
            errors.push(ApiError::field("", "the body must be a JSON object"));
            return Err(errors);
        }
        Err(e) => {
            errors.push(ApiError::field("", format!("the body is not JSON: {e}")));
            return Err(errors);
        }
    };
    for key in obj.keys() {
        if !FIELDS.split(", ").any(|f| f == key) {
            errors.push(ApiError::field(
                key,
                format!("unknown field `{key}`; allowed: {FIELDS}"),
            ));
        }
    }
    let address = match obj.get("address") {
        None => {
            errors.push(ApiError::field(
                "address",
                "required, e.g. \"127.0.0.1:8080\"",
            ));
            None
        }
        Some(Value::String(s)) => match s.parse::<SocketAddr>() {
            Ok(a) if a.port() != 0 => Some(a),
            Ok(_) => {
                errors.push(ApiError::field("address", "port 0 cannot be called"));
                None
            }
            Err(_) => {
                errors.push(ApiError::field(
                    "address",
                    format!("`{s}` is not an IP:port address (e.g. 127.0.0.1:8080 or [::1]:8080)"),
                ));
                None
            }
        },
        Some(other) => {
            errors.push(ApiError::field(
                "address",
                format!("expected a string, got {other}"),
            ));
            None
        }
    };
    let weight = match obj.get("weight") {
        None | Some(Value::Null) => Some(1),
        Some(v) => match v.as_u64().and_then(|w| u32::try_from(w).ok()) {
            Some(w) if (1..=MAX_WEIGHT).contains(&w) => Some(w),
            _ => {
                errors.push(ApiError::field(
                    "weight",
                    format!("must be an integer between 1 and {MAX_WEIGHT}, got {v}"),
                ));
                None
            }
        },
    };
    let zone = match obj.get("zone") {
        None | Some(Value::Null) => None,
        Some(Value::String(z)) if !z.is_empty() => Some(z.clone()),
        Some(other) => {
            errors.push(ApiError::field(
                "zone",
                format!("expected a non-empty string, got {other}"),
            ));
            None
        }
    };
    let mut labels = BTreeMap::new();
    match obj.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                match v {
                    Value::String(s) if !k.is_empty() => {
                        labels.insert(k.clone(), s.clone());
                    }
                    _ => errors.push(ApiError::field(
                        &format!("labels.{k}"),
                        "labels are non-empty keys with string values",
                    )),
                }
            }
        }
        Some(other) => errors.push(ApiError::field(
            "labels",
            format!("expected an object of strings, got {other}"),
        )),
    }
    let ttl = match obj.get("ttl") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match parse_duration(s) {
            Ok(d) if (MIN_TTL..=MAX_TTL).contains(&d) => Some(d),
            Ok(_) => {
                errors.push(ApiError::field(
                    "ttl",
                    format!("must be between 1s and 24h, got {s}"),
                ));
                None
            }
            Err(e) => {
                errors.push(ApiError::field("ttl", format!("{e} (e.g. \"30s\")")));
                None
            }
        },
        Some(other) => {
            errors.push(ApiError::field(
                "ttl",
                format!("expected a duration string such as \"30s\", got {other}"),
            ));
            None
        }
    };
    match (address, weight) {
        (Some(address), Some(weight)) if errors.is_empty() => {
            let mut endpoint = Endpoint::new(address).with_weight(weight);
            endpoint.zone = zone;
            endpoint.labels = labels;
            Ok(Registration {
                service: service.to_string(),
                id: id.to_string(),
                endpoint,
                ttl,
            })
        }
        _ => Err(errors),
    }
}
