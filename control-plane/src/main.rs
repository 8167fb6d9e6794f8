//! `meshctl`: the mesh's operator CLI.
//!
//! - `meshctl validate FILE`: checks a config file against the schema and
//!   prints a one-line summary, or every error with its field path and line.
//! - `meshctl resolve TARGET`: prints the endpoints discovery finds for a
//!   service name or a target URI, once or on every change (`--watch`).
//! - `meshctl serve`: the control plane (REST API, xDS, SQLite state).
//! - `meshctl apply -f FILE`, `meshctl rollback VERSION`,
//!   `meshctl get services|endpoints SERVICE|intentions|config|versions`,
//!   `meshctl intention create|delete`, `meshctl register`,
//!   `meshctl deregister`: the control plane's API from the shell
//!   (`--server` / `MESH_CP_URL`, `--token` / `MESH_CP_TOKEN`, `-o json`).
//! - `meshctl call URL`: sends traffic through the mesh client and reports
//!   statuses, endpoints, retries and latency (`--json`).
//! - `meshctl certs ca --out DIR`, `meshctl certs issue --service NAME --ca DIR
//!   --out DIR`: a mesh root CA and SPIFFE leaf certificates for
//!   `MESH_TLS_CERT`/`KEY`/`CA`.
//!
//! Exit codes: 0 success, 1 invalid input (a config with errors, a target that
//! resolves to nothing), 2 usage or I/O errors.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use mesh_control_plane::cmd;

/// The proxyless mesh's operator CLI.
#[derive(Debug, Parser)]
#[command(name = "meshctl", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a config file (YAML, TOML or JSON) and summarise what it configures.
    Validate(cmd::validate::Args),
    /// Print the endpoints discovery finds for a service or a target URI.
    Resolve(cmd::resolve::Args),
    /// Run the control plane: REST API, xDS server, state in SQLite.
    Serve(cmd::serve::Args),
    /// Apply a config file to the control plane (validated there; nothing
    /// changes when it is invalid).
    Apply(cmd::apply::Args),
    /// Make a new config version equal to an earlier one.
    Rollback(cmd::apply::RollbackArgs),
    /// Show services, endpoints, intentions, the config or its history.
    Get(cmd::get::Args),
    /// Create or delete intentions (who may call whom).
    Intention(cmd::intention::Args),
    /// Register an endpoint of a service (again: renew it).
    Register(cmd::register::Args),
    /// Remove a registered endpoint.
    Deregister(cmd::register::DeregisterArgs),
    /// Send traffic to a service through the mesh client and report what happened.
    Call(cmd::call::Args),
    /// Create a mesh root CA or issue a service's SPIFFE certificate.
    Certs(cmd::certs::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MESH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Validate(args) => cmd::validate::run(args),
        Command::Resolve(args) => cmd::resolve::run(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Apply(args) => cmd::apply::run(args),
        Command::Rollback(args) => cmd::apply::rollback(args),
        Command::Get(args) => cmd::get::run(args),
        Command::Intention(args) => cmd::intention::run(args),
        Command::Register(args) => cmd::register::run(args),
        Command::Deregister(args) => cmd::register::deregister(args),
        Command::Call(args) => cmd::call::run(args),
        Command::Certs(args) => cmd::certs::run(args),
    }
}
