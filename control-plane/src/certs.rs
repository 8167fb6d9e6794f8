//! Certificates without a PKI: a mesh root CA and SPIFFE leaf certificates,
//! made with rcgen (ring, the workspace's crypto provider), for
//! `meshctl certs` and for tests.
//!
//! # The files
//!
//! `meshctl certs ca --out DIR` writes:
//!
//! | file | what |
//! | --- | --- |
//! | `ca.pem` | the root CA certificate (self-signed, ECDSA P-256, `CA:TRUE, pathlen:0`, URI SAN `spiffe://<trust domain>`) |
//! | `ca-key.pem` | its private key (PKCS#8, mode 0600) |
//!
//! `meshctl certs issue --service NAME --ca DIR --out DIR` writes:
//!
//! | file | what | env |
//! | --- | --- | --- |
//! | `cert.pem` | the leaf alone: URI SAN `spiffe://<td>/ns/<ns>/svc/<name>`, CN `<name>`, EKUs serverAuth + clientAuth | `MESH_TLS_CERT` |
//! | `key.pem` | its private key (PKCS#8, mode 0600) | `MESH_TLS_KEY` |
//! | `ca.pem` | a copy of the CA certificate (the trust anchor) | `MESH_TLS_CA` |
//!
//! The leaf is written alone, not as a chain: the CA is a root that every
//! peer already has as `MESH_TLS_CA`, so sending it in the handshake would
//! only add bytes. Each output directory is then a complete
//! `MESH_TLS_CERT/KEY/CA` set.
//!
//! The trust domain of a leaf defaults to the CA's (read from its URI SAN).
//! Validity starts at issue time and lasts exactly the TTL; a leaf may not
//! outlive its CA. Nothing is overwritten unless asked (`force`), and all
//! outputs are checked before any is written.
//!
//! ```
//! use std::time::Duration;
//! use mesh_control_plane::certs::Ca;
//!
//! let ca = Ca::generate("mesh.local", Duration::from_secs(3600))?;
//! let leaf = ca.issue("news-service", "default", None, Duration::from_secs(600))?;
//! assert_eq!(leaf.spiffe_id.as_str(), "spiffe://mesh.local/ns/default/svc/news-service");
//! assert!(leaf.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
//! # Ok::<(), mesh_control_plane::certs::CertsError>(())
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mesh_core::identity::{SpiffeId, SpiffeIdError, validate_segment, validate_trust_domain};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

/// The CA certificate's file name.
pub const CA_CERT: &str = "ca.pem";
/// The CA key's file name.
pub const CA_KEY: &str = "ca-key.pem";
/// The leaf certificate's file name.
pub const LEAF_CERT: &str = "cert.pem";
/// The leaf key's file name.
pub const LEAF_KEY: &str = "key.pem";
/// Default lifetime of a CA: one year (`8760h`).
pub const DEFAULT_CA_TTL: Duration = Duration::from_secs(8760 * 3600);
/// Default lifetime of a leaf: one day (`24h`).
pub const DEFAULT_LEAF_TTL: Duration = Duration::from_secs(24 * 3600);

/// What went wrong making, reading or writing certificates; each variant
/// names the file or input at fault.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// The trust domain is not a valid SPIFFE trust domain.
    #[error("invalid trust domain {trust_domain:?}")]
    TrustDomain {
        /// As given.
        trust_domain: String,
        /// Why.
        #[source]
        source: SpiffeIdError,
    },
    /// A service or namespace name cannot be a SPIFFE path segment.
    #[error("invalid {what} name {name:?}")]
    Name {
        /// `service` or `namespace`.
        what: &'static str,
        /// As given.
        name: String,
        /// Why.
        #[source]
        source: SpiffeIdError,
    },
    /// A TTL is zero or too long.
    #[error("invalid ttl: {0}")]
    Ttl(String),
    /// A leaf would outlive its CA.
    #[error(
        "ttl {} outlives the CA, which expires at {ca_not_after}; issue a shorter one or renew the CA",
        mesh_core::config::format_duration(*ttl)
    )]
    OutlivesCa {
        /// The TTL asked for.
        ttl: Duration,
        /// When the CA expires.
        ca_not_after: OffsetDateTime,
    },
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The CA certificate is not a usable CA certificate.
    #[error("{}: {reason}", path.display())]
    BadCaCert {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The CA key is not a usable private key.
    #[error("{}: not a usable private key (PKCS#8 PEM)", path.display())]
    BadCaKey {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rcgen::Error,
    },
    /// The CA key does not belong to the CA certificate.
    #[error("{} is not the key of {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rcgen could not make a key or certificate.
    #[error("cannot generate the {what}")]
    Generate {
        /// What was being made.
        what: &'static str,
        /// Why.
        #[source]
        source: rcgen::Error,
    },
    /// An output file exists and `force` was not given.
    #[error("{} already exists; refusing to overwrite it (use --force)", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// An output could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A mesh root CA: its certificate, key and trust domain.
#[derive(Debug)]
pub struct Ca {
    cert_pem: String,
    key: KeyPair,
    trust_domain: String,
    not_after: OffsetDateTime,
}

/// A leaf certificate and key issued by a [`Ca`].
#[derive(Debug, Clone)]
pub struct Leaf {
    /// Its identity (the URI SAN).
    pub spiffe_id: SpiffeId,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// When it expires.
    pub not_after: OffsetDateTime,
}

// === impl Ca ===

impl Ca {
    /// A new root CA for `trust_domain`, valid from now for `ttl`.
    pub fn generate(trust_domain: &str, ttl: Duration) -> Result<Ca, CertsError> {
        validate_trust_domain(trust_domain).map_err(|source| CertsError::TrustDomain {
            trust_domain: trust_domain.to_string(),
            source,
        })?;
        let (not_before, not_after) = validity(ttl)?;
        let key = KeyPair::generate().map_err(|source| CertsError::Generate {
            what: "CA key",
            source,
        })?;
        let uri = format!("spiffe://{trust_domain}");
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{trust_domain} mesh root CA"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, "proxyless mesh");
        params.subject_alt_names = vec![san_uri(&uri)?];
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params
            .self_signed(&key)
            .map_err(|source| CertsError::Generate {
                what: "CA certificate",
                source,
            })?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key,
            trust_domain: trust_domain.to_string(),
            not_after,
        })
    }

    /// Loads `dir/ca.pem` and `dir/ca-key.pem`, checking that the
    /// certificate is a CA, unexpired, with a `spiffe://<td>` URI SAN, and
    /// that the key is its key.
    pub fn load(dir: &Path) -> Result<Ca, CertsError> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| CertsError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let cert_pem = read(&cert_path)?;
        let key_pem = read(&key_path)?;
        let bad = |reason: &str| CertsError::BadCaCert {
            path: cert_path.clone(),
            reason: reason.to_string(),
        };
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|_| bad("not a PEM certificate"))?;
        let x509 = pem
            .parse_x509()
            .map_err(|_| bad("not a valid X.509 certificate"))?;
        let is_ca = x509
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(bad("not a CA certificate (no basicConstraints CA:TRUE)"));
        }
        let not_after = OffsetDateTime::from_unix_timestamp(x509.validity().not_after.timestamp())
            .map_err(|_| bad("expiry out of range"))?;
        if not_after <= OffsetDateTime::now_utc() {
            return Err(bad(&format!("the CA expired at {not_after}")));
        }
        let trust_domain = x509
            .subject_alternative_name()
            .ok()
            .flatten()
            .and_then(|san| {
                san.value.general_names.iter().find_map(|n| match n {
                    x509_parser::extensions::GeneralName::URI(u) => u
                        .strip_prefix("spiffe://")
                        .filter(|td| validate_trust_domain(td).is_ok())
                        .map(str::to_string),
                    _ => None,
                })
            })
            .ok_or_else(|| bad("no spiffe://<trust domain> URI SAN: not a mesh CA"))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|source| CertsError::BadCaKey {
            path: key_path.clone(),
            source,
        })?;
        if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(CertsError::KeyMismatch {
                cert: cert_path,
                key: key_path,
            });
        }
        Ok(Ca {
            cert_pem,
            key,
            trust_domain,
            not_after,
        })
    }

    /// Writes `dir/ca.pem` and `dir/ca-key.pem` (0600), creating `dir`;
    /// refuses existing files unless `force`.
    pub fn write(&self, dir: &Path, force: bool) -> Result<(), CertsError> {
        write_all(
            dir,
            &[
                (CA_CERT, self.cert_pem.as_str(), false),
                (CA_KEY, &self.key.serialize_pem(), true),
            ],
            force,
        )
    }

    /// The trust domain (from the CA's URI SAN).
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// When the CA expires.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Issues a leaf for `service` in `namespace`, in `trust_domain` (the
    /// CA's when `None`), valid from now for `ttl`.
    pub fn issue(
        &self,
        service: &str,
        namespace: &str,
        trust_domain: Option<&str>,
        ttl: Duration,
    ) -> Result<Leaf, CertsError> {
        let td = trust_domain.unwrap_or(&self.trust_domain);
        validate_trust_domain(td).map_err(|source| CertsError::TrustDomain {
            trust_domain: td.to_string(),
            source,
        })?;
        for (what, name) in [("service", service), ("namespace", namespace)] {
            validate_segment(name).map_err(|source| CertsError::Name {
                what,
                name: name.to_string(),
                source,
            })?;
        }
        let id =
            SpiffeId::for_service(td, namespace, service).map_err(|source| CertsError::Name {
                what: "service",
                name: service.to_string(),
                source,
            })?;
        let (not_before, not_after) = validity(ttl)?;
        if not_after > self.not_after {
            return Err(CertsError::OutlivesCa {
                ttl,
                ca_not_after: self.not_after,
            });
        }
        let key = KeyPair::generate().map_err(|source| CertsError::Generate {
            what: "leaf key",
            source,
        })?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, service);
        params.subject_alt_names = vec![san_uri(id.as_str())?];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key).map_err(|source| {
            CertsError::Generate {
                what: "issuer from the CA certificate",
                source,
            }
        })?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|source| CertsError::Generate {
                what: "leaf certificate",
                source,
            })?;
        Ok(Leaf {
            spiffe_id: id,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after,
        })
    }
}

// === impl Leaf ===

impl Leaf {
    /// Writes `dir/cert.pem`, `dir/key.pem` (0600) and `dir/ca.pem` (a copy
    /// of `ca`'s certificate), creating `dir`; refuses existing files unless
    /// `force`.
    pub fn write(&self, dir: &Path, ca: &Ca, force: bool) -> Result<(), CertsError> {
        write_all(
            dir,
            &[
                (LEAF_CERT, self.cert_pem.as_str(), false),
                (LEAF_KEY, self.key_pem.as_str(), true),
                (CA_CERT, ca.cert_pem(), false),
            ],
            force,
        )
    }
}

/// Validity from now (whole seconds) for exactly `ttl`.
fn validity(ttl: Duration) -> Result<(OffsetDateTime, OffsetDateTime), CertsError> {
    if ttl < Duration::from_secs(1) {
        return Err(CertsError::Ttl(format!(
            "{ttl:?} is shorter than one second"
        )));
    }
    let now = OffsetDateTime::now_utc();
    let not_before = now
        .replace_nanosecond(0)
        .map_err(|e| CertsError::Ttl(e.to_string()))?;
    let ttl = time::Duration::try_from(ttl).map_err(|e| CertsError::Ttl(e.to_string()))?;
    let not_after = not_before
        .checked_add(ttl)
        .filter(|t| t.year() <= 9999)
        .ok_or_else(|| CertsError::Ttl(format!("{ttl} is too long")))?;
    Ok((not_before, not_after))
}

fn san_uri(uri: &str) -> Result<SanType, CertsError> {
    let ia5 = rcgen::string::Ia5String::try_from(uri).map_err(|source| CertsError::Generate {
        what: "URI SAN",
        source,
    })?;
    Ok(SanType::URI(ia5))
}

/// Writes `(name, contents, secret)` files into `dir` after checking that
/// none exists (unless `force`); secrets get mode 0600.
fn write_all(dir: &Path, files: &[(&str, &str, bool)], force: bool) -> Result<(), CertsError> {
    std::fs::create_dir_all(dir).map_err(|source| CertsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    if !force {
        for (name, _, _) in files {
            let path = dir.join(name);
            if path.exists() {
                return Err(CertsError::Exists { path });
            }
        }
    }
    for (name, contents, secret) in files {
        let path = dir.join(name);
        write_file(&path, contents, *secret)
            .map_err(|source| CertsError::Write { path, source })?;
    }
    Ok(())
}

fn write_file(path: &Path, contents: &str, secret: bool) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path)?;
    #[cfg(unix)]
    if secret {
        // An existing file (--force) keeps its mode through open: set it.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}
