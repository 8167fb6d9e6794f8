//! `meshctl`: the mesh's operator CLI.
//!
//! - `meshctl validate FILE`: checks a config file against the schema and
//!   prints a one-line summary, or every error with its field path and line.
//! - `meshctl resolve TARGET`: prints the endpoints discovery finds for a
//!   service name or a target URI, once or on every change (`--watch`).
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
    }
}
