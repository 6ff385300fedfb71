//! rustls client configurations for the libpq ssl modes.
//!
//! - `prefer` / `require`: encrypted, the certificate is not verified (as
//!   libpq does), but the handshake signatures still are.
//! - `verify-ca`: the chain is verified against the root certificates; the
//!   host name is not compared.
//! - `verify-full`: the chain and the host name are verified.

use crate::config::{ConfigError, DbConfig, SslMode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::sync::Arc;

/// Builds the TLS connector for the configured mode, or `None` for `disable`.
///
/// Fails with a [`ConfigError`] naming `DB_SSL_ROOT_CERT` when the root
/// certificate file cannot be read or holds no certificate.
pub(crate) fn connector(
    config: &DbConfig,
) -> Result<Option<tokio_postgres_rustls::MakeRustlsConnect>, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError {
            variable: "DB_SSL",
            problem: format!("TLS setup failed: {e}"),
        })?;
    let client = match config.ssl_mode() {
        SslMode::Disable => return Ok(None),
        SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertificateCheck { provider }))
            .with_no_client_auth(),
        SslMode::VerifyFull => builder
            .with_root_certificates(roots(config)?)
            .with_no_client_auth(),
        SslMode::VerifyCa => {
            let inner =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots(config)?), provider)
                    .build()
                    .map_err(|e| ConfigError {
                        variable: "DB_SSL_ROOT_CERT",
                        problem: format!("no usable root certificate: {e}"),
                    })?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly { inner }))
                .with_no_client_auth()
        }
    };
    Ok(Some(tokio_postgres_rustls::MakeRustlsConnect::new(client)))
}

fn roots(config: &DbConfig) -> Result<RootCertStore, ConfigError> {
    let mut store = RootCertStore::empty();
    match config.ssl_root_cert() {
        Some(path) => {
            let err = |problem: String| ConfigError {
                variable: "DB_SSL_ROOT_CERT",
                problem,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    err(format!(
                        "{} is not a PEM certificate file: {e}",
                        path.display()
                    ))
                })?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(err(format!(
                    "{} holds no usable certificate",
                    path.display()
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "could not load a system root certificate");
            }
            store.add_parsable_certificates(found.certs);
        }
    }
    Ok(store)
}

/// Accepts any certificate (libpq's `require`), while still checking that the
/// server holds the key of the certificate it presented.
#[derive(Debug)]
struct NoCertificateCheck {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
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

/// Verifies the chain but not the host name (libpq's `verify-ca`).
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
