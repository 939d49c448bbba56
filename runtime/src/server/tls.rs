//! TLS for the decision API (HTTP and gRPC) with rustls, and mutual TLS when a client CA is
//! configured: then a peer without a certificate from that CA cannot even connect.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Certificate files, in PEM.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// The server's certificate chain, leaf first.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Roots for client certificates; when set, every client must present one.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("TLS settings rejected: {0}")]
    Rejected(String),
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_error = |message: String| TlsError::Read {
        path: path.to_path_buf(),
        message,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| read_error(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| read_error(error.to_string()))?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certificates)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.to_path_buf(),
        message: error.to_string(),
    })
}

/// The acceptor for HTTP connections.
pub(crate) fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let rejected = |error: rustls::Error| TlsError::Rejected(error.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&config.cert)?;
    let key = PrivateKeyDer::from_pem_file(&config.key).map_err(|error| TlsError::Read {
        path: config.key.clone(),
        message: error.to_string(),
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(rejected)?;
    let builder = match &config.client_ca {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in certificates(path)? {
                roots.add(certificate).map_err(rejected)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|error| TlsError::Rejected(error.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut server = builder.with_single_cert(chain, key).map_err(rejected)?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// The same settings for the gRPC listener.
pub(crate) fn grpc(config: &TlsConfig) -> Result<tonic::transport::ServerTlsConfig, TlsError> {
    // Parsed here first so a bad file gets the same error as for HTTP.
    certificates(&config.cert)?;
    let identity = tonic::transport::Identity::from_pem(read(&config.cert)?, read(&config.key)?);
    let mut tls = tonic::transport::ServerTlsConfig::new().identity(identity);
    if let Some(path) = &config.client_ca {
        certificates(path)?;
        tls = tls.client_ca_root(tonic::transport::Certificate::from_pem(read(path)?));
    }
    Ok(tls)
}
