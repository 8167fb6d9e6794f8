//! `meshctl apply -f FILE` and `meshctl rollback VERSION`.

use std::path::PathBuf;
use std::process::ExitCode;

use bytes::Bytes;
use http::{Method, StatusCode};
use mesh_core::config::Format;
use serde_json::{Value, json};

use super::{EXIT_INVALID, Output, ServerArgs, print_json, refused, request_failed, with_client};

/// Arguments of `meshctl apply`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file (YAML, TOML or JSON, by extension).
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Parse as this format instead of guessing from the extension.
    #[arg(long, value_parser = ["yaml", "toml", "json"])]
    format: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    server: ServerArgs,
}

/// Sends the file as the new config: exit 0 when applied (or unchanged), 1
/// with every error (as `meshctl validate` prints them) when refused.
pub fn run(args: Args) -> ExitCode {
    let (text, origin, format) = match super::read_config_file(&args.file, args.format.as_deref()) {
        Ok(read) => read,
        Err(code) => return code,
    };
    let content_type = match format {
        Format::Yaml => "application/yaml",
        Format::Toml => "application/toml",
        Format::Json => "application/json",
    };
    with_client(&args.server, |client| async move {
        let resp = match client
            .request(
                Method::PUT,
                "/api/v1/config",
                Some((content_type, Bytes::from(text))),
            )
            .await
        {
            Ok(r) => r,
            Err(e) => return request_failed(&e),
        };
        let body = resp.json();
        if resp.status == StatusCode::BAD_REQUEST && body["errors"].is_array() {
            if args.output == Output::Json {
                print_json(&body);
            }
            let errors = body["errors"].as_array().cloned().unwrap_or_default();
            for e in &errors {
                eprintln!("{}", located(&origin, e));
            }
            let n = errors.len();
            eprintln!(
                "{origin}: invalid: {n} error{}; nothing changed",
                if n == 1 { "" } else { "s" }
            );
            return ExitCode::from(EXIT_INVALID);
        }
        if !resp.status.is_success() {
            return refused(&resp);
        }
        match args.output {
            Output::Json => print_json(&body),
            Output::Table => {
                let version = &body["version"];
                let summary = body["summary"].as_str().unwrap_or("");
                if body["changed"] == json!(false) {
                    println!("{origin}: unchanged (config version {version}: {summary})");
                } else {
                    println!("{origin}: applied as config version {version}: {summary}");
                }
                // What xDS clients cannot take as written (translated or dropped).
                for w in body["warnings"].as_array().into_iter().flatten() {
                    eprintln!("warning: {}", w.as_str().unwrap_or_default());
                }
            }
        }
        ExitCode::SUCCESS
    })
}

/// `origin:line: path: message`, as `meshctl validate` prints errors.
fn located(origin: &str, e: &Value) -> String {
    let mut out = origin.to_string();
    if let Some(line) = e["line"].as_u64() {
        out.push_str(&format!(":{line}"));
    }
    out.push_str(": ");
    if let Some(path) = e["path"].as_str().filter(|p| !p.is_empty()) {
        out.push_str(path);
        out.push_str(": ");
    }
    out.push_str(e["message"].as_str().unwrap_or(""));
    out
}

/// Arguments of `meshctl rollback`.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The config version to return to (see `meshctl get versions`).
    #[arg(value_name = "VERSION")]
    target: u64,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    server: ServerArgs,
}

/// Makes a new config version equal to an earlier one.
pub fn rollback(args: RollbackArgs) -> ExitCode {
    with_client(&args.server, |client| async move {
        let resp = match client
            .send_json(
                Method::POST,
                "/api/v1/config/rollback",
                &json!({ "version": args.target }),
            )
            .await
        {
            Ok(r) => r,
            Err(e) => return request_failed(&e),
        };
        if !resp.status.is_success() {
            return refused(&resp);
        }
        let body = resp.json();
        match args.output {
            Output::Json => print_json(&body),
            Output::Table => println!(
                "rolled back to version {}: now config version {}",
                args.target, body["version"]
            ),
        }
        ExitCode::SUCCESS
    })
}
