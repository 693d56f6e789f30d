//! TLS for the server's listener (rustls, with the aws-lc-rs provider the
//! workspace already builds for reqwest and janus): a certificate chain and
//! its private key, read once at start from PEM files.
//!
//! Startup refuses what would only fail at the first handshake: a file
//! that cannot be read, a certificate file with no certificate, a key file
//! with no (or an unsupported) private key, a key that does not belong to
//! the first certificate. A key file that others can read is served, with
//! a warning: the operator decides, but should know.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

/// Where the certificate chain and private key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain: the server's certificate first, then any
    /// intermediates.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the first certificate.
    pub key: PathBuf,
}

/// Why the certificate or key cannot be served.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate file is unreadable or holds no certificate.
    #[error("TLS certificate {path}: {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key file is unreadable or holds no private key.
    #[error("TLS private key {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the key).
        reason: String,
    },
    /// The key does not belong to the certificate, or rustls refused them.
    #[error("TLS certificate {cert} and key {key}: {reason}")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The rustls crypto provider: aws-lc-rs, the one reqwest and janus
/// already use, so that TLS adds no second implementation to the build.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads the certificate chain and key and makes the listener's rustls
/// configuration (TLS 1.2 and 1.3).
pub fn server_config(files: &TlsFiles) -> Result<rustls::ServerConfig, TlsError> {
    let chain = read_chain(&files.cert)?;
    let key = read_key(&files.key)?;
    warn_if_readable_by_others(&files.key);
    let pair = |reason: String| TlsError::Pair {
        cert: files.cert.clone(),
        key: files.key.clone(),
        reason,
    };
    // actix-web adds the "http/1.1" ALPN protocol when it binds.
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| pair(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                pair("the private key does not belong to the first certificate in the chain".into())
            }
            other => pair(other.to_string()),
        })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |reason: String| TlsError::Certificate {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(format!("not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(error(
            "no certificate in it (expected PEM \"BEGIN CERTIFICATE\" blocks)".into(),
        ));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let error = |reason: String| TlsError::Key {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => error(
            "no private key in it (expected PEM \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE \
             KEY\" or \"BEGIN EC PRIVATE KEY\")"
                .into(),
        ),
        // The parser's message names a position, never key material.
        other => error(format!("not PEM: {other}")),
    })
}

/// Warns if the key file can be read by its group or by others.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{mode:o}"),
                    "the TLS private key file can be read by other users; make it owner-only \
                     (chmod 600)"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    use hetally_tests::tls::TestCertificates;

    /// Fresh throw-away certificates in a temporary folder.
    fn certs() -> (tempfile::TempDir, TestCertificates) {
        let dir = tempfile::tempdir().unwrap();
        let certs = TestCertificates::write(dir.path());
        (dir, certs)
    }

    fn files(cert: &Path, key: &Path) -> TlsFiles {
        TlsFiles {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        }
    }

    #[test]
    fn a_matching_pair_is_served() {
        let (_dir, c) = certs();
        server_config(&files(&c.cert, &c.key)).unwrap();
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (_dir, c) = certs();
        let e = server_config(&files(&c.cert, &c.other_key)).unwrap_err();
        assert!(matches!(e, TlsError::Pair { .. }), "{e}");
        assert!(e.to_string().contains("does not belong"), "{e}");
    }

    #[test]
    fn missing_or_wrong_files_are_named() {
        let (dir, c) = certs();
        let absent = dir.path().join("absent.pem");
        let e = server_config(&files(&absent, &c.key)).unwrap_err();
        assert!(matches!(e, TlsError::Certificate { .. }), "{e}");
        assert!(e.to_string().contains("absent.pem"), "{e}");
        let e = server_config(&files(&c.key, &c.key)).unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
        let e = server_config(&files(&c.cert, &c.cert)).unwrap_err();
        assert!(matches!(e, TlsError::Key { .. }), "{e}");
        assert!(e.to_string().contains("no private key"), "{e}");
    }
}
