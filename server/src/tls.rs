//! TLS for the listener (rustls with the `ring` provider): loading the certificate chain
//! and key from PEM files into an acceptor.
//!
//! With TLS on, the listener speaks HTTPS only (HTTP/1.1 via ALPN; TLS 1.2 and 1.3 with
//! rustls' safe defaults). The handshake runs inside the connection's slot and is bounded by
//! `header_read_timeout`, so the connection limit, timeouts and graceful shutdown of
//! `crate::serve` hold for TLS connections as for plain ones.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS certificates from {}: {reason}", path.display())]
    Cert { path: PathBuf, reason: String },
    #[error("cannot read a TLS private key from {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("the TLS certificate and key do not make a usable configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// An acceptor for `files`.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let certs = load_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| TlsError::Key { path: files.key.clone(), reason: e.to_string() })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::Cert { path: path.to_path_buf(), reason };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE block in the file".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_a_generated_pair_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
        assert!(acceptor(&TlsFiles { cert: cert.clone(), key: key.clone() }).is_ok());
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a pem").unwrap();
        assert!(matches!(acceptor(&TlsFiles { cert: junk.clone(), key: key.clone() }), Err(TlsError::Cert { .. })));
        assert!(matches!(acceptor(&TlsFiles { cert: cert.clone(), key: junk }), Err(TlsError::Key { .. })));
        let missing = dir.path().join("missing.pem");
        assert!(acceptor(&TlsFiles { cert: missing, key }).is_err());
    }
}
