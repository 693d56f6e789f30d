//! Throw-away TLS certificates, made fresh by each test that needs them:
//! a CA ("hetally TEST-ONLY CA"), a server certificate it signed for
//! `localhost` and `127.0.0.1`, and an unrelated key for the mismatched
//! pair tests. ECDSA P-256 through rcgen with the aws-lc-rs provider that
//! rustls uses. Nothing here is kept in the repository, so no private key
//! is ever public.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// The PEM files [`TestCertificates::write`] puts in a folder.
#[derive(Debug, Clone)]
pub struct TestCertificates {
    /// The CA certificate clients trust (`--ca-file`).
    pub ca: PathBuf,
    /// The server certificate, signed by the CA.
    pub cert: PathBuf,
    /// The server certificate's private key, mode 0600.
    pub key: PathBuf,
    /// A private key of no certificate here, mode 0600.
    pub other_key: PathBuf,
}

impl TestCertificates {
    /// Makes a new CA, server certificate and keys, and writes them into
    /// `dir` as `ca.pem`, `server.pem`, `server.key` and `other.key`.
    pub fn write(dir: &Path) -> TestCertificates {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "hetally TEST-ONLY CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("self-signed CA");

        // "127.0.0.1" parses as an IP address and becomes an IP SAN.
        let mut server_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server parameters");
        server_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        server_params.is_ca = IsCa::ExplicitNoCa;
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().expect("server key");
        let server = server_params
            .signed_by(&server_key, &ca)
            .expect("server certificate");
        let other_key = KeyPair::generate().expect("other key");

        let files = TestCertificates {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            other_key: dir.join("other.key"),
        };
        write_file(&files.ca, &ca.pem(), 0o644);
        write_file(&files.cert, &server.pem(), 0o644);
        write_file(&files.key, &server_key.serialize_pem(), 0o600);
        write_file(&files.other_key, &other_key.serialize_pem(), 0o600);
        files
    }
}

fn write_file(path: &Path, contents: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}
