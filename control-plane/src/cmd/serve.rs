//! `meshctl serve`: the control plane.
//!
//! Every flag also comes from the environment: `MESH_CP_CONFIG`,
//! `MESH_CP_DATA_DIR`, `MESH_CP_HTTP_ADDR`, `MESH_CP_GRPC_ADDR`,
//! `MESH_CP_TOKEN`, `MESH_CP_INSECURE`, and `MESH_DNS_SERVER` for services
//! discovered by DNS. Addresses accept port 0 (a free port is picked) and
//! `:PORT` for `127.0.0.1:PORT`.
//!
//! Once listening, it prints what it bound, one `key: value` per line, then
//! `ready` (scripts and tests read these):
//!
//! ```text
//! http: http://127.0.0.1:15000
//! grpc: 127.0.0.1:15010
//! data: mesh-data/mesh.db
//! ready
//! ```
//!
//! Ctrl-C or SIGTERM stops it cleanly. Exit codes: 0 after a clean stop, 1
//! when the `--config` file is invalid (every error printed, as by
//! `meshctl validate`), 2 for every other startup failure (a locked or
//! corrupt database, an address in use, a public address without a token).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::api::error_chain;
use crate::serve::{self, DEFAULT_GRPC_ADDR, DEFAULT_HTTP_ADDR, ServeError, ServeOptions};
use crate::store::DB_FILE;

use super::{EXIT_ERROR, EXIT_INVALID};

/// Arguments of `meshctl serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A config file (YAML, TOML or JSON) applied at start; an invalid file
    /// stops the start.
    #[arg(long, env = "MESH_CP_CONFIG")]
    config: Option<PathBuf>,
    /// Where the state (SQLite) lives.
    #[arg(long, env = "MESH_CP_DATA_DIR", default_value = serve::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// REST API, /metrics and /healthz address.
    #[arg(long, env = "MESH_CP_HTTP_ADDR", default_value = DEFAULT_HTTP_ADDR, value_parser = parse_addr)]
    http_addr: SocketAddr,
    /// xDS (gRPC) address.
    #[arg(long, env = "MESH_CP_GRPC_ADDR", default_value = DEFAULT_GRPC_ADDR, value_parser = parse_addr)]
    grpc_addr: SocketAddr,
    /// Require `Authorization: Bearer <token>` for API writes.
    #[arg(long, env = "MESH_CP_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Allow a non-loopback address without a token.
    #[arg(long, env = "MESH_CP_INSECURE")]
    insecure: bool,
    /// DNS server (`ip:port`) for services with `dns:`; default: the system's.
    #[arg(long, env = "MESH_DNS_SERVER")]
    dns_server: Option<SocketAddr>,
}

/// `IP:PORT`, `[IPv6]:PORT`, or `:PORT` (loopback).
fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("127.0.0.1{s}")
    } else {
        s.to_string()
    };
    full.parse()
        .map_err(|_| format!("`{s}` is not an address (IP:PORT, [IPv6]:PORT or :PORT)"))
}

/// Runs the control plane until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> ExitCode {
    let opts = ServeOptions {
        data_dir: args.data_dir,
        http_addr: args.http_addr,
        grpc_addr: args.grpc_addr,
        token: args.token.filter(|t| !t.is_empty()),
        insecure: args.insecure,
        config: args.config,
        dns_server: args.dns_server,
    };
    let db = opts.data_dir.join(DB_FILE);
    let runtime = match super::runtime(true) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let running = match serve::start(opts).await {
            Ok(r) => r,
            Err(ServeError::Config(errors)) => {
                eprintln!("{errors}");
                let n = errors.errors.len();
                eprintln!(
                    "meshctl serve: {}: invalid: {n} error{}; not starting",
                    errors.origin,
                    if n == 1 { "" } else { "s" }
                );
                return ExitCode::from(EXIT_INVALID);
            }
            Err(e) => {
                eprintln!("meshctl serve: {}", error_chain(&e));
                return ExitCode::from(EXIT_ERROR);
            }
        };
        let stop = stop_signal();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "http: http://{}\ngrpc: {}\ndata: {}\nready",
            running.http_addr(),
            running.grpc_addr(),
            db.display()
        );
        let _ = out.flush();
        drop(out);
        match running.run_until(stop).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("meshctl serve: {}", error_chain(&e));
                ExitCode::from(EXIT_ERROR)
            }
        }
    })
}

/// Ctrl-C, or SIGTERM on Unix. The handlers are installed when this is
/// called (before `ready` is printed), so a signal sent right after `ready`
/// is never lost to the default action.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
