//! `meshctl validate FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use mesh_core::config::{self, Format};

use super::{EXIT_ERROR, EXIT_INVALID};

/// Arguments of `meshctl validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file (format by extension: .yaml/.yml, .toml, .json).
    file: PathBuf,
    /// Parse as this format instead of guessing from the extension.
    #[arg(long, value_parser = ["yaml", "toml", "json"])]
    format: Option<String>,
}

/// Runs the command: exit 0 with a summary, 1 with every error, 2 when the
/// file cannot be read.
pub fn run(args: Args) -> ExitCode {
    let origin = args.file.display().to_string();
    let text = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("meshctl: cannot read {origin}: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let format = match args.format.as_deref().map(str::parse::<Format>) {
        Some(Ok(f)) => f,
        Some(Err(e)) => {
            eprintln!("meshctl: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
        None => Format::from_path(&args.file),
    };
    match config::parse_str(&text, format, &origin) {
        Ok(cfg) => {
            println!("{origin}: valid: {}", cfg.summary());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            let n = errors.errors.len();
            eprintln!(
                "{origin}: invalid: {n} error{}",
                if n == 1 { "" } else { "s" }
            );
            ExitCode::from(EXIT_INVALID)
        }
    }
}
