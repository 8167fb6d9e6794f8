//! `meshctl get services | endpoints SERVICE | intentions | config | versions`.

use std::process::ExitCode;

use serde_json::Value;

use super::{Output, ServerArgs, print_json, print_table, refused, request_failed, with_client};
use crate::client::segment;

/// Arguments of `meshctl get`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t, global = true)]
    output: Output,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum What {
    /// Every service (from the config or registered) with endpoint counts.
    Services,
    /// One service's endpoints and their state (static, registered, dns).
    Endpoints {
        /// The service.
        service: String,
    },
    /// The intentions.
    Intentions,
    /// The running config's text as applied (`-o json`: with version and
    /// the config as JSON).
    Config,
    /// The config history.
    Versions,
}

/// Fetches and prints; exit 1 for an unknown service.
pub fn run(args: Args) -> ExitCode {
    let path = match &args.what {
        What::Services => "/api/v1/services".to_string(),
        What::Endpoints { service } => format!("/api/v1/services/{}", segment(service)),
        What::Intentions => "/api/v1/intentions".to_string(),
        What::Config => "/api/v1/config".to_string(),
        What::Versions => "/api/v1/config/versions".to_string(),
    };
    let what = args.what.clone();
    let output = args.output;
    with_client(&args.server, |client| async move {
        let resp = match client.get(&path).await {
            Ok(r) => r,
            Err(e) => return request_failed(&e),
        };
        if !resp.status.is_success() {
            return refused(&resp);
        }
        let body = resp.json();
        match output {
            Output::Json => print_json(&body),
            Output::Table => print_human(&what, &body),
        }
        ExitCode::SUCCESS
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

fn print_human(what: &What, body: &Value) {
    match what {
        What::Services => {
            let rows: Vec<Vec<String>> = items(&body["services"])
                .iter()
                .map(|s| {
                    vec![
                        text(&s["name"]),
                        text(&s["protocol"]),
                        text(&s["endpoints"]),
                        text(&s["static"]),
                        text(&s["registered"]),
                        text(&s["discovered_by_dns"]),
                        if s["in_config"] == Value::Bool(true) {
                            "yes"
                        } else {
                            "no"
                        }
                        .to_string(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "NAME",
                    "PROTOCOL",
                    "ENDPOINTS",
                    "STATIC",
                    "REGISTERED",
                    "DNS",
                    "IN-CONFIG",
                ],
                &rows,
            );
        }
        What::Endpoints { .. } => {
            let rows: Vec<Vec<String>> = items(&body["endpoints"])
                .iter()
                .map(|e| {
                    let labels = e["labels"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| format!("{k}={}", text(v)))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "-".into());
                    let expires = e["expires_in_ms"]
                        .as_u64()
                        .map_or("-".to_string(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
                    vec![
                        text(&e["address"]),
                        text(&e["weight"]),
                        text(&e["zone"]),
                        text(&e["state"]),
                        text(&e["id"]),
                        text(&e["ttl"]),
                        expires,
                        labels,
                    ]
                })
                .collect();
            print_table(
                &[
                    "ADDRESS",
                    "WEIGHT",
                    "ZONE",
                    "STATE",
                    "ID",
                    "TTL",
                    "EXPIRES-IN",
                    "LABELS",
                ],
                &rows,
            );
        }
        What::Intentions => {
            let rows: Vec<Vec<String>> = items(&body["intentions"])
                .iter()
                .map(|i| {
                    let action = match i["permissions"].as_array() {
                        Some(p) => format!("L7 ({} permissions)", p.len()),
                        None => text(&i["action"]),
                    };
                    vec![text(&i["source"]), text(&i["destination"]), action]
                })
                .collect();
            print_table(&["SOURCE", "DESTINATION", "ACTION"], &rows);
            println!("(default policy: {})", text(&body["default_policy"]));
        }
        What::Config => {
            eprintln!(
                "# config version {} ({}, {})",
                text(&body["version"]),
                text(&body["format"]),
                text(&body["origin"])
            );
            let source = body["source"].as_str().unwrap_or("");
            print!("{source}");
            if !source.is_empty() && !source.ends_with('\n') {
                println!();
            }
        }
        What::Versions => {
            let current = body["current"].as_u64();
            let rows: Vec<Vec<String>> = items(&body["versions"])
                .iter()
                .map(|v| {
                    let mark = if v["version"].as_u64() == current {
                        "*"
                    } else {
                        ""
                    };
                    vec![
                        format!("{}{mark}", text(&v["version"])),
                        text(&v["created"]),
                        text(&v["format"]),
                        text(&v["origin"]),
                    ]
                })
                .collect();
            print_table(&["VERSION", "CREATED", "FORMAT", "ORIGIN"], &rows);
        }
    }
}
