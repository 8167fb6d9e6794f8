//! `mesh-demo`: the mesh working, in one command and without any setup.
//!
//! ```sh
//! cargo run --release -p mesh-examples --bin mesh-demo             # until Ctrl-C
//! cargo run --release -p mesh-examples --bin mesh-demo -- --duration 60s
//! ```
//!
//! Starts news-service v1 (twice, one flaky) and v2, app-ui, and a steady
//! load through the mesh (90/10 split, retries, outlier detection), and
//! prints a live table of golden signals every second; see
//! [`mesh_examples::demo`]. Exits 0 when stopped, 1 if nothing was served.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mesh_examples::demo::{self, Options};
use mesh_examples::faults::Faults;
use mesh_examples::{parse_duration_arg, parse_rate_arg};

/// The proxyless mesh, live: split, retries, ejection and return.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Stop after this long (e.g. 60s); default: at Ctrl-C.
    #[arg(long, value_parser = parse_duration_arg)]
    duration: Option<Duration>,
    /// Requests per second of the load loop.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    rps: u32,
    /// How often the flaky instance fails while flaky (0..1).
    #[arg(long, default_value = "0.4", value_parser = parse_rate_arg)]
    fail_rate: f64,
    /// Seed of the injected faults (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// Print plain lines even on a terminal.
    #[arg(long)]
    plain: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let options = Options {
        duration: args.duration,
        rps: args.rps,
        fail_rate: args.fail_rate,
        seed: args.seed.unwrap_or_else(Faults::random_seed),
        redraw: !args.plain && std::io::stdout().is_terminal(),
    };
    match demo::run(options).await {
        Ok(summary) if summary.ok > 0 => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!("mesh-demo: nothing was served");
            ExitCode::FAILURE
        }
        Err(e) => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("mesh-demo: {text}");
            ExitCode::FAILURE
        }
    }
}
