//! `/metrics` (the control plane's own, Prometheus text format 0.0.4),
//! `/api/v1/xds/nodes` and `/api/v1/snapshot`.
//!
//! | metric | type | meaning |
//! | --- | --- | --- |
//! | `mesh_cp_xds_connected_streams` | gauge | ADS streams open now |
//! | `mesh_cp_xds_pushes_total` | counter | responses sent |
//! | `mesh_cp_xds_acks_total` / `mesh_cp_xds_nacks_total` | counter | ACKs / NACKs received |
//! | `mesh_cp_xds_push_latency_seconds` | summary (sum, count) | snapshot change -> response sent |
//! | `mesh_cp_snapshot_version` | gauge | version of the snapshot being served |
//! | `mesh_cp_config_version` | gauge | running config version |
//! | `mesh_cp_services` | gauge | services in the config |
//! | `mesh_cp_intentions` | gauge | intentions in the config |
//! | `mesh_cp_registered_endpoints` | gauge | live registered endpoints |
//! | `mesh_cp_discovered_endpoints` | gauge | registered + DNS endpoints in the snapshot |

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::ApiState;
use super::time::rfc3339;
use crate::state::XdsStats;

pub(crate) async fn metrics(State(st): State<ApiState>) -> impl IntoResponse {
    let snapshot = st.control.snapshot();
    let registered = st.control.registrations().len();
    let discovered: usize = snapshot.discovered.values().map(Vec::len).sum();
    let gauges = [
        (
            "mesh_cp_snapshot_version",
            "Version of the snapshot being served.",
            snapshot.version,
        ),
        (
            "mesh_cp_config_version",
            "Running config version (0: none applied).",
            snapshot.config_version,
        ),
        (
            "mesh_cp_services",
            "Services in the running config.",
            as_u64(snapshot.config.services.len()),
        ),
        (
            "mesh_cp_intentions",
            "Intentions in the running config.",
            as_u64(snapshot.config.intentions.len()),
        ),
        (
            "mesh_cp_registered_endpoints",
            "Live endpoints registered through the API.",
            as_u64(registered),
        ),
        (
            "mesh_cp_discovered_endpoints",
            "Registered and DNS endpoints in the snapshot.",
            as_u64(discovered),
        ),
    ];
    let mut out = render_xds(&st.status.stats);
    for (name, help, value) in gauges {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

fn as_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The xDS counters in Prometheus text.
pub(crate) fn render_xds(stats: &XdsStats) -> String {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut out = String::new();
    let _ = write!(
        out,
        "# HELP mesh_cp_xds_connected_streams ADS streams open now.\n\
         # TYPE mesh_cp_xds_connected_streams gauge\n\
         mesh_cp_xds_connected_streams {}\n\
         # HELP mesh_cp_xds_pushes_total xDS responses sent.\n\
         # TYPE mesh_cp_xds_pushes_total counter\n\
         mesh_cp_xds_pushes_total {}\n\
         # HELP mesh_cp_xds_acks_total xDS ACKs received.\n\
         # TYPE mesh_cp_xds_acks_total counter\n\
         mesh_cp_xds_acks_total {}\n\
         # HELP mesh_cp_xds_nacks_total xDS NACKs received.\n\
         # TYPE mesh_cp_xds_nacks_total counter\n\
         mesh_cp_xds_nacks_total {}\n\
         # HELP mesh_cp_xds_push_latency_seconds Time from a snapshot change to the response sent.\n\
         # TYPE mesh_cp_xds_push_latency_seconds summary\n\
         mesh_cp_xds_push_latency_seconds_sum {}\n\
         mesh_cp_xds_push_latency_seconds_count {}\n",
        load(&stats.connected),
        load(&stats.pushes),
        load(&stats.acks),
        load(&stats.nacks),
        // Microseconds to seconds; f64 is exact far beyond any real sum.
        load(&stats.push_latency_us_sum) as f64 / 1e6,
        load(&stats.push_latency_count),
    );
    out
}

pub(crate) async fn xds_nodes(State(st): State<ApiState>) -> Json<Value> {
    let nodes: Vec<Value> = st
        .status
        .nodes()
        .into_iter()
        .map(|n| {
            let nack = n.last_nack.as_ref().map(|k| {
                json!({
                    "type_url": k.type_url,
                    "version": k.version,
                    "message": k.message,
                    "at": rfc3339(k.at),
                })
            });
            json!({
                "node_id": n.node_id,
                "cluster": n.cluster,
                "user_agent": n.user_agent,
                "connected_at": rfc3339(n.connected_at),
                "acked": n.acked,
                "last_nack": nack,
            })
        })
        .collect();
    Json(json!({ "snapshot_version": st.control.snapshot().version, "nodes": nodes }))
}

pub(crate) async fn snapshot(State(st): State<ApiState>) -> Json<Value> {
    let s = st.control.snapshot();
    Json(json!({
        "version": s.version,
        "config_version": s.config_version,
        "discovered": s.discovered,
        // What xDS clients get translated or not at all (never a NACK).
        "warnings": crate::xds::resources::warnings(&s),
    }))
}
