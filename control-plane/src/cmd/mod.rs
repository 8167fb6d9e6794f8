//! One module per subcommand, and what the API commands share: the server
//! flags, the output format, tables, and how failures map to exit codes.

pub mod apply;
pub mod call;
pub mod certs;
pub mod get;
pub mod intention;
pub mod register;
pub mod resolve;
pub mod serve;
pub mod validate;

use std::future::Future;
use std::process::ExitCode;

use crate::api::error_chain;
use crate::client::{Client, ClientError, Response};

/// Exit code for invalid input (bad config, nothing resolved, a request the
/// control plane refused).
pub const EXIT_INVALID: u8 = 1;
/// Exit code for usage and I/O errors (including an unreachable server).
pub const EXIT_ERROR: u8 = 2;

/// Where the control plane is, for every API command.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The control plane's URL.
    #[arg(
        long,
        global = true,
        env = "MESH_CP_URL",
        default_value = "http://127.0.0.1:15000"
    )]
    pub server: String,
    /// Bearer token for writes (when the control plane has one).
    #[arg(long, global = true, env = "MESH_CP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// How API commands print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    #[default]
    Table,
    /// The API's JSON, for scripts.
    Json,
}

/// A config file's text, the name to report it by, and its format (from
/// `--format`, else the extension); the error message is printed and the
/// exit code returned when the file cannot be read or the format is unknown.
pub(crate) fn read_config_file(
    file: &std::path::Path,
    format: Option<&str>,
) -> Result<(String, String, mesh_core::config::Format), ExitCode> {
    let origin = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| {
        eprintln!("meshctl: cannot read {origin}: {e}");
        ExitCode::from(EXIT_ERROR)
    })?;
    let format = match format.map(str::parse::<mesh_core::config::Format>) {
        Some(Ok(f)) => f,
        Some(Err(e)) => {
            eprintln!("meshctl: {e}");
            return Err(ExitCode::from(EXIT_ERROR));
        }
        None => mesh_core::config::Format::from_path(file),
    };
    Ok((text, origin, format))
}

/// A tokio runtime (multi-threaded or current-thread); on failure the error
/// is printed and exit code 2 returned.
pub(crate) fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().map_err(|e| {
        eprintln!("meshctl: cannot start the runtime: {e}");
        ExitCode::from(EXIT_ERROR)
    })
}

/// Runs an API command on a fresh current-thread runtime with a client of
/// `server`.
pub(crate) fn with_client<F, Fut>(server: &ServerArgs, f: F) -> ExitCode
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ExitCode>,
{
    let client = match Client::new(&server.server, server.token.clone()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("meshctl: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime(false) {
        Ok(rt) => rt.block_on(f(client)),
        Err(code) => code,
    }
}

/// The environment contract from the process environment (never panics on
/// variables that are not UTF-8; ours must be).
pub(crate) fn mesh_env() -> Result<mesh_core::config::MeshEnv, String> {
    mesh_core::config::MeshEnv::from_vars_os(std::env::vars_os()).map_err(|e| e.to_string())
}

/// The request never got an answer: exit 2.
pub(crate) fn request_failed(e: &ClientError) -> ExitCode {
    eprintln!("meshctl: {}", error_chain(e));
    ExitCode::from(EXIT_ERROR)
}

/// The control plane refused: its message, exit 1 (2 for server errors).
pub(crate) fn refused(resp: &Response) -> ExitCode {
    eprintln!("meshctl: {}", resp.error_message());
    if resp.status.is_server_error() {
        ExitCode::from(EXIT_ERROR)
    } else {
        ExitCode::from(EXIT_INVALID)
    }
}

/// Prints `value` as pretty JSON.
pub(crate) fn print_json(value: &serde_json::Value) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(_) => println!("{value}"),
    }
}

/// Prints rows under headers, columns padded to their widest cell.
pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", table(headers, rows));
}

/// The text of [`print_table`].
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        let last = cells.len().saturating_sub(1);
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i < last {
                out.push_str(&" ".repeat(w.saturating_sub(cell.chars().count()) + 2));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_aligns_columns() {
        let t = super::table(
            &["NAME", "N"],
            &[
                vec!["news".into(), "3".into()],
                vec!["a".into(), "10".into()],
            ],
        );
        assert_eq!(t, "NAME  N\nnews  3\na     10\n");
    }
}
