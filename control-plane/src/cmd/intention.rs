//! `meshctl intention create SRC DST --allow|--deny` and
//! `meshctl intention delete SRC DST`.

use std::process::ExitCode;

use http::Method;
use serde_json::json;

use super::{Output, ServerArgs, print_json, refused, request_failed, with_client};
use crate::client::segment;

/// Arguments of `meshctl intention`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create an L4 intention: may SOURCE call DESTINATION?
    Create {
        /// Calling service, or `*`.
        source: String,
        /// Called service, or `*`.
        destination: String,
        /// Allow the calls.
        #[arg(long, conflicts_with = "deny", required_unless_present = "deny")]
        allow: bool,
        /// Deny the calls.
        #[arg(long)]
        deny: bool,
        /// Replace an existing intention for the pair instead of failing.
        #[arg(long)]
        replace: bool,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Delete the intention SOURCE -> DESTINATION.
    Delete {
        /// Calling service, or `*`.
        source: String,
        /// Called service, or `*`.
        destination: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Runs `create` or `delete`; exit 1 when refused (exists, not found, invalid).
pub fn run(args: Args) -> ExitCode {
    match args.command {
        Command::Create {
            source,
            destination,
            allow,
            deny: _,
            replace,
            output,
            server,
        } => {
            let action = if allow { "allow" } else { "deny" };
            with_client(&server, |client| async move {
                let body =
                    json!({ "source": source, "destination": destination, "action": action });
                let resp = if replace {
                    let path = format!(
                        "/api/v1/intentions/{}/{}",
                        segment(&source),
                        segment(&destination)
                    );
                    client.send_json(Method::PUT, &path, &body).await
                } else {
                    client
                        .send_json(Method::POST, "/api/v1/intentions", &body)
                        .await
                };
                let resp = match resp {
                    Ok(r) => r,
                    Err(e) => return request_failed(&e),
                };
                if !resp.status.is_success() {
                    return refused(&resp);
                }
                let body = resp.json();
                match output {
                    Output::Json => print_json(&body),
                    Output::Table => println!(
                        "intention {source} -> {destination}: {action} (config version {})",
                        body["config_version"]
                    ),
                }
                ExitCode::SUCCESS
            })
        }
        Command::Delete {
            source,
            destination,
            output,
            server,
        } => with_client(&server, |client| async move {
            let path = format!(
                "/api/v1/intentions/{}/{}",
                segment(&source),
                segment(&destination)
            );
            let resp = match client.delete(&path).await {
                Ok(r) => r,
                Err(e) => return request_failed(&e),
            };
            if !resp.status.is_success() {
                return refused(&resp);
            }
            let body = resp.json();
            match output {
                Output::Json => print_json(&body),
                Output::Table => println!(
                    "intention {source} -> {destination} deleted (config version {})",
                    body["config_version"]
                ),
            }
            ExitCode::SUCCESS
        }),
    }
}
