//! A throwaway test PKI (rcgen, ring): a mesh CA in a temporary directory
//! and leaves with SPIFFE IDs (valid, expired, not yet valid, without a
//! SPIFFE ID), plus another CA, all as PEM files; and the curl/openssl peer
//! checks.
//!
//! Leaves carry both the serverAuth and clientAuth extended key usages (the
//! same certificate serves and calls), a `spiffe://` URI SAN and, for
//! openssl/curl convenience, the IP SAN 127.0.0.1.
//!
//! This is test-harness code: failing loudly (panicking) is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

/// The trust domain of the test PKI.
pub const TRUST_DOMAIN: &str = "mesh.local";

/// A CA and the directory its files (and its leaves') are written to.
pub struct Pki {
    dir: tempfile::TempDir,
    name: String,
    params: CertificateParams,
    key: KeyPair,
    ca_pem: String,
}

/// A leaf certificate and key, as files and PEM text.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The certificate chain file (leaf only).
    pub cert: PathBuf,
    /// The private key file (PKCS#8).
    pub key: PathBuf,
    /// The certificate PEM.
    pub cert_pem: String,
    /// The key PEM.
    pub key_pem: String,
}

/// When a leaf is valid, relative to now.
#[derive(Debug, Clone, Copy)]
pub enum Validity {
    /// From an hour ago to a day from now.
    Current,
    /// From two days ago to a day ago.
    Expired,
    /// From a day from now on.
    NotYetValid,
}

/// `spiffe://mesh.local/ns/default/svc/<service>`.
pub fn spiffe(service: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/default/svc/{service}")
}

impl Pki {
    /// A new CA named `name` (its files prefixed by it) in a new temporary
    /// directory.
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::from_secs(3 * 86400);
        params.not_after = now + Duration::from_secs(365 * 86400);
        let key = KeyPair::generate().unwrap();
        let ca_pem = params.self_signed(&key).unwrap().pem();
        let pki = Pki {
            dir,
            name: name.to_string(),
            params,
            key,
            ca_pem,
        };
        std::fs::write(pki.ca(), &pki.ca_pem).unwrap();
        pki
    }

    /// The directory files are written to.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate file.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join(format!("{}-ca.pem", self.name))
    }

    /// The CA certificate PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A current leaf for `service` (SPIFFE ID [`spiffe`]), written to
    /// `<file>.crt` / `<file>.key`.
    pub fn leaf(&self, service: &str, file: &str) -> Leaf {
        self.issue(Some(&spiffe(service)), Validity::Current, file)
    }

    /// A leaf with URI SAN `uri` (none: no SPIFFE ID) and `validity`,
    /// written to `<file>.crt` / `<file>.key` in [`dir`](Self::dir).
    pub fn issue(&self, uri: Option<&str>, validity: Validity, file: &str) -> Leaf {
        let (cert_pem, key_pem) = self.issue_pem(uri, validity);
        let cert = self.dir.path().join(format!("{file}.crt"));
        let key = self.dir.path().join(format!("{file}.key"));
        std::fs::write(&cert, &cert_pem).unwrap();
        std::fs::write(&key, &key_pem).unwrap();
        Leaf {
            cert,
            key,
            cert_pem,
            key_pem,
        }
    }

    /// A leaf's certificate and key PEM, not written anywhere.
    pub fn issue_pem(&self, uri: Option<&str>, validity: Validity) -> (String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, uri.unwrap_or("no-spiffe-id"));
        if let Some(uri) = uri {
            params
                .subject_alt_names
                .push(SanType::URI(uri.try_into().unwrap()));
        }
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        let day = Duration::from_secs(86400);
        let (from, to) = match validity {
            Validity::Current => (now - Duration::from_secs(3600), now + day),
            Validity::Expired => (now - 2 * day, now - day),
            Validity::NotYetValid => (now + day, now + 2 * day),
        };
        params.not_before = from;
        params.not_after = to;
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Whether `tool` (curl, openssl) runs. When it does not, prints a skip
/// message and returns false, or fails the test when `CI=true`.
pub fn peer_available(tool: &str) -> bool {
    let ok = std::process::Command::new(tool)
        .arg(if tool == "openssl" {
            "version"
        } else {
            "--version"
        })
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return true;
    }
    let msg = format!("SKIP: {tool} not found on PATH (apt-get install -y {tool})");
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{msg}; failing because CI=true"
    );
    eprintln!("{msg}");
    false
}
