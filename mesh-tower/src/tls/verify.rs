//! The rustls hooks over the live (reloadable) material: certificate
//! resolvers for both sides, the client's SPIFFE server verifier and the
//! server's swappable client verifier.

use std::sync::Arc;

use mesh_core::identity::SpiffeId;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::Shared;
use super::material::spiffe_of;

/// The server presented a certificate from the trusted CA whose SPIFFE ID
/// is not the one expected for the destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("server identity mismatch: expected {expected}, presented {}", presented.as_ref().map_or("no SPIFFE ID", |p| p.as_str()))]
pub struct IdentityMismatch {
    /// The SPIFFE ID the destination must have.
    pub expected: SpiffeId,
    /// The SPIFFE ID its certificate holds (`None`: no `spiffe://` URI SAN).
    pub presented: Option<SpiffeId>,
}

/// Finds an [`IdentityMismatch`] inside a rustls error.
pub(crate) fn mismatch_in(err: &rustls::Error) -> Option<IdentityMismatch> {
    match err {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            other.0.downcast_ref::<IdentityMismatch>().cloned()
        }
        _ => None,
    }
}

/// Presents the current certificate on both sides.
#[derive(Debug)]
pub(crate) struct LiveCert(pub(crate) Arc<Shared>);

impl ResolvesServerCert for LiveCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.material.load().key.clone())
    }
}

impl ResolvesClientCert for LiveCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.material.load().key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Verifies a server's chain against the current CA and its SPIFFE ID
/// against the expected one; DNS names and IP SANs are not looked at.
#[derive(Debug)]
pub(crate) struct SpiffeServerVerifier {
    pub(crate) shared: Arc<Shared>,
    pub(crate) expected: SpiffeId,
    pub(crate) provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        let roots = self.shared.material.load().roots.clone();
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let presented = spiffe_of(end_entity.as_ref());
        if presented.as_ref() != Some(&self.expected) {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(IdentityMismatch {
                    expected: self.expected.clone(),
                    presented,
                })),
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Verifies client certificates against the current CA (swapped on
/// reload): required (strict) or optional (permissive).
#[derive(Debug)]
pub(crate) struct LiveClientVerifier {
    pub(crate) shared: Arc<Shared>,
    pub(crate) mandatory: bool,
}

impl LiveClientVerifier {
    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        let m = self.shared.material.load();
        if self.mandatory {
            m.strict.clone()
        } else {
            m.optional.clone()
        }
    }
}

impl ClientCertVerifier for LiveClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The roots can change under us; no hints (clients send their
        // certificate anyway).
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}
