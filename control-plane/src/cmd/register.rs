//! `meshctl register SERVICE ADDRESS [--id] [--weight] [--zone] [--label k=v] [--ttl]`
//! and `meshctl deregister SERVICE ID`.
//!
//! Registering again with the same id renews the endpoint (a heartbeat), so
//! an agent can run `meshctl register` on a timer shorter than its TTL.

use std::process::ExitCode;

use http::Method;
use serde_json::{Map, Value, json};

use super::{EXIT_ERROR, Output, ServerArgs, print_json, refused, request_failed, with_client};
use crate::client::segment;

/// Arguments of `meshctl register`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service the endpoint belongs to.
    service: String,
    /// The endpoint's address, IP:PORT.
    address: String,
    /// The endpoint's id within the service (default: from the address).
    #[arg(long)]
    id: Option<String>,
    /// Load-balancing weight (1 to 1000000; default 1).
    #[arg(long)]
    weight: Option<u64>,
    /// Zone (locality).
    #[arg(long)]
    zone: Option<String>,
    /// A label, `key=value` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Time to live after each registration/heartbeat, e.g. `30s`; without
    /// it the endpoint stays until deregistered.
    #[arg(long)]
    ttl: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    server: ServerArgs,
}

/// The default id for an address: its characters, with those an id may
/// not hold (`[`, `]`, `%`) turned into `-`.
pub fn default_id(address: &str) -> String {
    address
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_matches('-')
        .to_string()
}

/// Registers; exit 1 when refused (bad address, weight or TTL...).
pub fn run(args: Args) -> ExitCode {
    let mut body = Map::new();
    body.insert("address".into(), json!(args.address));
    if let Some(w) = args.weight {
        body.insert("weight".into(), json!(w));
    }
    if let Some(z) = &args.zone {
        body.insert("zone".into(), json!(z));
    }
    if let Some(t) = &args.ttl {
        body.insert("ttl".into(), json!(t));
    }
    let mut labels = Map::new();
    for l in &args.labels {
        match l.split_once('=') {
            Some((k, v)) => {
                labels.insert(k.to_string(), json!(v));
            }
            None => {
                eprintln!("meshctl: --label `{l}`: expected KEY=VALUE");
                return ExitCode::from(EXIT_ERROR);
            }
        }
    }
    if !labels.is_empty() {
        body.insert("labels".into(), Value::Object(labels));
    }
    let id = args.id.clone().unwrap_or_else(|| default_id(&args.address));
    let path = format!(
        "/api/v1/services/{}/endpoints/{}",
        segment(&args.service),
        segment(&id)
    );
    let output = args.output;
    let service = args.service.clone();
    with_client(&args.server, |client| async move {
        let resp = match client
            .send_json(Method::PUT, &path, &Value::Object(body))
            .await
        {
            Ok(r) => r,
            Err(e) => return request_failed(&e),
        };
        if !resp.status.is_success() {
            return refused(&resp);
        }
        let body = resp.json();
        match output {
            Output::Json => print_json(&body),
            Output::Table => {
                let ttl = body["ttl"]
                    .as_str()
                    .map_or(String::new(), |t| format!(", ttl {t}"));
                println!(
                    "{service}/{id} at {}: {}{ttl}",
                    body["address"].as_str().unwrap_or(""),
                    body["outcome"].as_str().unwrap_or("registered"),
                );
            }
        }
        ExitCode::SUCCESS
    })
}

/// Arguments of `meshctl deregister`.
#[derive(Debug, clap::Args)]
pub struct DeregisterArgs {
    /// The service.
    service: String,
    /// The endpoint's id (as registered; see `meshctl get endpoints`).
    id: String,
    #[command(flatten)]
    server: ServerArgs,
}

/// Deregisters; exit 1 when there is no such endpoint.
pub fn deregister(args: DeregisterArgs) -> ExitCode {
    let path = format!(
        "/api/v1/services/{}/endpoints/{}",
        segment(&args.service),
        segment(&args.id)
    );
    with_client(&args.server, |client| async move {
        match client.delete(&path).await {
            Ok(r) if r.status.is_success() => {
                println!("{}/{}: deregistered", args.service, args.id);
                ExitCode::SUCCESS
            }
            Ok(r) => refused(&r),
            Err(e) => request_failed(&e),
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_ids() {
        assert_eq!(super::default_id("127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(super::default_id("[::1]:8080"), "::1-:8080");
    }
}
