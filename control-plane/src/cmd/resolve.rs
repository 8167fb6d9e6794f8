//! `meshctl resolve TARGET [--watch] [--json]`.
//!
//! Prints what discovery finds for a service name (resolved through
//! `MESH_CONFIG`, `MESH_ENDPOINTS_<SVC>` and DNS, in that order) or an explicit
//! target URI (`static:///a:1,b:2`, `dns:///host:port`, `dns:///_http._tcp.name`).

use std::process::ExitCode;

use futures_util::StreamExt;
use mesh_core::Endpoint;
use mesh_core::config::{DnsTarget, MeshEnv};
use mesh_discovery::resolve::{self, Plan};
use mesh_discovery::{DiscoveryError, DnsError, EndpointSet, Update};
use serde_json::json;

use super::{EXIT_ERROR, EXIT_INVALID};
use crate::api::error_chain;

/// Arguments of `meshctl resolve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A service name, or a target URI: `static:///h:p,h:p`, `dns:///host:port`,
    /// `dns:///_http._tcp.name`.
    target: String,
    /// Keep running and print every change of the endpoint set (Ctrl-C stops).
    #[arg(long)]
    watch: bool,
    /// Print JSON: `{"endpoints":[{"address":"127.0.0.1:8080","weight":10}]}`
    /// (with --watch, one such object per line, per change).
    #[arg(long)]
    json: bool,
}

/// Runs the command: 0 when endpoints were found, 1 when the target resolves
/// to nothing, 2 on bad targets, bad environment or I/O errors.
pub fn run(args: Args) -> ExitCode {
    let env = match super::mesh_env() {
        Ok(env) => env,
        Err(msg) => {
            eprintln!("meshctl: {msg}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let runtime = match super::runtime(false) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async {
        if args.watch {
            watch(&args, &env).await
        } else {
            once(&args, &env).await
        }
    })
}

async fn once(args: &Args, env: &MeshEnv) -> ExitCode {
    let resolution = match resolve::resolve_once(&args.target, env).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("meshctl: {}: {}", args.target, error_chain(&e));
            // A name that does not exist resolves to nothing: invalid input,
            // not a failure of meshctl.
            let nothing = matches!(
                e,
                DiscoveryError::Dns(
                    DnsError::NotFound(_)
                        | DnsError::NoAddresses(_)
                        | DnsError::NoSrvTargets { .. }
                )
            );
            return ExitCode::from(if nothing { EXIT_INVALID } else { EXIT_ERROR });
        }
    };
    if args.json {
        println!("{}", endpoints_json(&resolution.endpoints));
    } else {
        println!(
            "{}: {} endpoint{} ({})",
            args.target,
            resolution.endpoints.len(),
            plural(resolution.endpoints.len()),
            describe(&resolution.plan)
        );
        for ep in &resolution.endpoints {
            println!("  {}", endpoint_line(ep));
        }
    }
    if resolution.endpoints.is_empty() {
        ExitCode::from(EXIT_INVALID)
    } else {
        ExitCode::SUCCESS
    }
}

async fn watch(args: &Args, env: &MeshEnv) -> ExitCode {
    let mut updates = match resolve::watch(&args.target, env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("meshctl: {}: {}", args.target, error_chain(&e));
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let mut set = EndpointSet::new();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return ExitCode::SUCCESS,
            update = updates.next() => {
                let Some(update) = update else {
                    eprintln!("meshctl: {}: discovery stopped", args.target);
                    return ExitCode::from(EXIT_ERROR);
                };
                print_update(args, &mut set, update);
            }
        }
    }
}

fn print_update(args: &Args, set: &mut EndpointSet, update: Update) {
    let before = set.endpoints();
    set.apply(update);
    let after = set.endpoints();
    if args.json {
        println!("{}", endpoints_json(&after));
        return;
    }
    if set.exists() == Some(false) {
        println!("{}: does not exist", args.target);
        return;
    }
    println!(
        "{}: {} endpoint{}",
        args.target,
        after.len(),
        plural(after.len())
    );
    for ep in &after {
        let mark = if before.contains(ep) { ' ' } else { '+' };
        println!("{mark} {}", endpoint_line(ep));
    }
    for gone in before
        .iter()
        .filter(|ep| !after.iter().any(|a| a.address == ep.address))
    {
        println!("- {}", gone.address);
    }
}

fn endpoints_json(endpoints: &[Endpoint]) -> serde_json::Value {
    json!({
        "endpoints": endpoints
            .iter()
            .map(|ep| json!({ "address": ep.address.to_string(), "weight": ep.weight }))
            .collect::<Vec<_>>()
    })
}

fn endpoint_line(ep: &Endpoint) -> String {
    let mut line = format!("{}  weight={}", ep.address, ep.weight);
    if let Some(zone) = &ep.zone {
        line.push_str(&format!("  zone={zone}"));
    }
    for (k, v) in &ep.labels {
        line.push_str(&format!("  {k}={v}"));
    }
    line
}

fn describe(plan: &Plan) -> String {
    match plan {
        Plan::Static { origin, .. } => format!("static, from {}", origin.as_str()),
        Plan::Dns { origin, target } => match target {
            DnsTarget::Host { host, port } => {
                format!("dns A/AAAA {host}:{port}, from {}", origin.as_str())
            }
            DnsTarget::Srv { name } => format!("dns SRV {name}, from {}", origin.as_str()),
        },
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let ep = Endpoint::new("127.0.0.1:8080".parse().unwrap()).with_weight(10);
        assert_eq!(
            endpoints_json(&[ep]).to_string(),
            r#"{"endpoints":[{"address":"127.0.0.1:8080","weight":10}]}"#
        );
    }
}
