//! A rustls server-certificate verifier for clients of the test listeners'
//! self-signed certificates: handshake signatures are checked with the
//! provider's algorithms; the certificate is any, or pinned by its DER bytes.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// See the module documentation.
#[derive(Debug)]
pub struct TestVerifier {
    pinned: Option<Vec<u8>>,
    provider: Arc<CryptoProvider>,
}

impl TestVerifier {
    /// Accepts any certificate (signatures still checked).
    pub fn any(provider: Arc<CryptoProvider>) -> Arc<Self> {
        Arc::new(TestVerifier {
            pinned: None,
            provider,
        })
    }

    /// Accepts only the certificate with these DER bytes.
    pub fn pinned(der: Vec<u8>, provider: Arc<CryptoProvider>) -> Arc<Self> {
        Arc::new(TestVerifier {
            pinned: Some(der),
            provider,
        })
    }
}

impl ServerCertVerifier for TestVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.pinned {
            Some(der) if end_entity.as_ref() != der.as_slice() => Err(rustls::Error::General(
                "not the listener's certificate".into(),
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
