//! `meshctl validate FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use mesh_core::config;

use super::EXIT_INVALID;

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
    let (text, origin, format) = match super::read_config_file(&args.file, args.format.as_deref()) {
        Ok(read) => read,
        Err(code) => return code,
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
