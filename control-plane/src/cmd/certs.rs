//! `meshctl certs ca --out DIR` and `meshctl certs issue --service NAME
//! --ca DIR --out DIR`: a mesh root CA and SPIFFE leaf certificates without
//! a PKI (see [`crate::certs`] for the files written).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::api::error_chain;
use crate::certs::{self, Ca, CertsError};

use super::{EXIT_ERROR, EXIT_INVALID};

/// Arguments of `meshctl certs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create a mesh root CA: DIR/ca.pem and DIR/ca-key.pem (0600).
    Ca {
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// SPIFFE trust domain of the mesh.
        #[arg(long, default_value = "mesh.local")]
        trust_domain: String,
        /// How long the CA is valid (e.g. 8760h).
        #[arg(long, default_value = "8760h")]
        ttl: String,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Issue a leaf certificate with the service's SPIFFE ID:
    /// DIR/cert.pem, DIR/key.pem (0600) and DIR/ca.pem, ready for
    /// MESH_TLS_CERT, MESH_TLS_KEY and MESH_TLS_CA.
    Issue {
        /// The service (CN and spiffe://<td>/ns/<ns>/svc/<service>).
        #[arg(long)]
        service: String,
        /// Its namespace.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// The CA directory (ca.pem, ca-key.pem from `meshctl certs ca`).
        #[arg(long)]
        ca: PathBuf,
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// How long the certificate is valid (e.g. 24h).
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// Trust domain of the SPIFFE ID (default: the CA's).
        #[arg(long)]
        trust_domain: Option<String>,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

/// Runs `ca` or `issue`: exit 0 with a one-line summary; 1 for invalid
/// input (names, TTL, an unusable CA, existing files); 2 for I/O errors.
pub fn run(args: Args) -> ExitCode {
    let result = match args.command {
        Command::Ca {
            out,
            trust_domain,
            ttl,
            force,
        } => ttl_arg(&ttl)
            .and_then(|ttl| Ca::generate(&trust_domain, ttl))
            .and_then(|ca| ca.write(&out, force).map(|()| ca))
            .map(|ca| {
                println!(
                    "wrote {} and {} (trust domain {}, expires {})",
                    out.join(certs::CA_CERT).display(),
                    out.join(certs::CA_KEY).display(),
                    ca.trust_domain(),
                    ca.not_after()
                );
            }),
        Command::Issue {
            service,
            namespace,
            ca,
            out,
            ttl,
            trust_domain,
            force,
        } => ttl_arg(&ttl)
            .and_then(|ttl| {
                let ca = Ca::load(&ca)?;
                let leaf = ca.issue(&service, &namespace, trust_domain.as_deref(), ttl)?;
                leaf.write(&out, &ca, force)?;
                Ok(leaf)
            })
            .map(|leaf| {
                println!(
                    "wrote {} for {} (expires {}), {} and {}",
                    out.join(certs::LEAF_CERT).display(),
                    leaf.spiffe_id,
                    leaf.not_after,
                    out.join(certs::LEAF_KEY).display(),
                    out.join(certs::CA_CERT).display()
                );
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshctl: {}", error_chain(&e));
            ExitCode::from(match e {
                CertsError::Read { .. } | CertsError::Write { .. } => EXIT_ERROR,
                _ => EXIT_INVALID,
            })
        }
    }
}

/// `--ttl`, in the config's duration syntax.
fn ttl_arg(text: &str) -> Result<Duration, CertsError> {
    mesh_core::config::parse_duration(text).map_err(|e| CertsError::Ttl(format!("--ttl: {e}")))
}
