//! Loading certificate material from PEM files, with typed errors naming
//! the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mesh_core::identity::SpiffeId;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// TLS material could not be loaded or used. Each variant names the file
/// at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Some of `MESH_TLS_CERT`, `MESH_TLS_KEY`, `MESH_TLS_CA` are set, not
    /// all three.
    #[error(
        "incomplete TLS environment: {missing} is not set (MESH_TLS_CERT, MESH_TLS_KEY and MESH_TLS_CA go together)"
    )]
    Incomplete {
        /// The missing variable.
        missing: &'static str,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid PEM.
    #[error("{}: invalid PEM: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The certificate (or CA) file holds no `CERTIFICATE` block.
    #[error("{}: no certificate (expected a PEM `CERTIFICATE` block)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key block.
    #[error("{}: no private key (expected a PEM `PRIVATE KEY`, `EC PRIVATE KEY` or `RSA PRIVATE KEY` block)", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The key's algorithm is not supported by the crypto provider.
    #[error("{}: unsupported private key: {source}", path.display())]
    UnsupportedKey {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// The private key is not the certificate's.
    #[error("{}: private key does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// A certificate could not be parsed as X.509.
    #[error("{}: invalid certificate: {reason}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The certificate has expired.
    #[error("{}: certificate expired {} s ago", path.display(), ago.as_secs())]
    Expired {
        /// The file.
        path: PathBuf,
        /// How long ago.
        ago: Duration,
    },
    /// The certificate is not valid yet.
    #[error("{}: certificate not valid for another {} s", path.display(), r#in.as_secs())]
    NotYetValid {
        /// The file.
        path: PathBuf,
        /// In how long it becomes valid.
        r#in: Duration,
    },
    /// The certificate has no `spiffe://` URI SAN.
    #[error("{}: certificate has no SPIFFE ID (no `spiffe://` URI subject alternative name)", path.display())]
    NoSpiffeId {
        /// The file.
        path: PathBuf,
    },
    /// The CA bundle could not be used as trust anchors.
    #[error("{}: unusable CA certificate: {source}", path.display())]
    BadCa {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// One loaded, checked set of material: what a handshake uses.
pub(crate) struct Material {
    pub(crate) key: Arc<CertifiedKey>,
    pub(crate) roots: Arc<RootCertStore>,
    pub(crate) identity: SpiffeId,
    pub(crate) not_after: SystemTime,
    /// Verifies client certificates (strict: required).
    pub(crate) strict: Arc<dyn ClientCertVerifier>,
    /// Verifies client certificates if any (permissive).
    pub(crate) optional: Arc<dyn ClientCertVerifier>,
}

/// The raw bytes of the three files.
#[derive(PartialEq, Eq, Clone)]
pub(crate) struct Files {
    pub(crate) cert: Vec<u8>,
    pub(crate) key: Vec<u8>,
    pub(crate) ca: Vec<u8>,
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

impl Files {
    pub(crate) fn read(cert: &Path, key: &Path, ca: &Path) -> Result<Files, TlsError> {
        Ok(Files {
            cert: read(cert)?,
            key: read(key)?,
            ca: read(ca)?,
        })
    }
}

fn certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Validity and SPIFFE ID of a DER certificate.
pub(crate) struct CertInfo {
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
    pub(crate) spiffe: Option<SpiffeId>,
}

/// Reads validity and the first `spiffe://` URI SAN of `der`.
pub(crate) fn cert_info(der: &[u8]) -> Result<CertInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let time = |t: i64| {
        if t >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(t.unsigned_abs())
        } else {
            SystemTime::UNIX_EPOCH - Duration::from_secs(t.unsigned_abs())
        }
    };
    let validity = cert.validity();
    let spiffe = match cert.subject_alternative_name() {
        Ok(Some(san)) => san.value.general_names.iter().find_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(uri) if uri.starts_with("spiffe://") => {
                SpiffeId::parse(uri).ok()
            }
            _ => None,
        }),
        Ok(None) => None,
        Err(e) => return Err(e.to_string()),
    };
    Ok(CertInfo {
        not_before: time(validity.not_before.timestamp()),
        not_after: time(validity.not_after.timestamp()),
        spiffe,
    })
}

/// The SPIFFE ID of a peer's DER certificate, if it has one.
pub(crate) fn spiffe_of(der: &[u8]) -> Option<SpiffeId> {
    cert_info(der).ok().and_then(|i| i.spiffe)
}

impl Material {
    /// Parses and checks `files` (read from `cert`, `key`, `ca`).
    pub(crate) fn load(
        files: &Files,
        cert: &Path,
        key: &Path,
        ca: &Path,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Material, TlsError> {
        let chain = certs(cert, &files.cert)?;
        let info = chain
            .first()
            .map(|c| cert_info(c.as_ref()))
            .transpose()
            .map_err(|reason| TlsError::BadCertificate {
                path: cert.to_path_buf(),
                reason,
            })?
            .ok_or_else(|| TlsError::NoCertificate {
                path: cert.to_path_buf(),
            })?;
        let now = SystemTime::now();
        if let Ok(ago) = now.duration_since(info.not_after) {
            return Err(TlsError::Expired {
                path: cert.to_path_buf(),
                ago,
            });
        }
        if let Ok(r#in) = info.not_before.duration_since(now) {
            return Err(TlsError::NotYetValid {
                path: cert.to_path_buf(),
                r#in,
            });
        }
        let identity = info.spiffe.ok_or_else(|| TlsError::NoSpiffeId {
            path: cert.to_path_buf(),
        })?;
        let private = match PrivateKeyDer::from_pem_slice(&files.key) {
            Ok(k) => k,
            Err(rustls_pki_types::pem::Error::NoItemsFound) => {
                return Err(TlsError::NoKey {
                    path: key.to_path_buf(),
                });
            }
            Err(source) => {
                return Err(TlsError::Pem {
                    path: key.to_path_buf(),
                    source,
                });
            }
        };
        let signing = provider
            .key_provider
            .load_private_key(private)
            .map_err(|source| TlsError::UnsupportedKey {
                path: key.to_path_buf(),
                source,
            })?;
        let certified = CertifiedKey::new(chain, signing);
        match certified.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(_) => {
                return Err(TlsError::KeyMismatch {
                    cert: cert.to_path_buf(),
                    key: key.to_path_buf(),
                });
            }
        }
        let mut roots = RootCertStore::empty();
        for c in certs(ca, &files.ca)? {
            roots.add(c).map_err(|source| TlsError::BadCa {
                path: ca.to_path_buf(),
                source,
            })?;
        }
        let roots = Arc::new(roots);
        let verifier = |optional: bool| {
            let b = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
            let b = if optional {
                b.allow_unauthenticated()
            } else {
                b
            };
            b.build().map_err(|e| TlsError::BadCa {
                path: ca.to_path_buf(),
                source: rustls::Error::General(e.to_string()),
            })
        };
        Ok(Material {
            key: Arc::new(certified),
            strict: verifier(false)?,
            optional: verifier(true)?,
            roots,
            identity,
            not_after: info.not_after,
        })
    }
}
