//! Private certificate authorities for HTTPS probes: the PEM bundle of
//! `probe.ca_file`, read and checked once at start-up.
//!
//! Internal load balancers and service meshes often present certificates
//! from a private CA that no public root signs. The prober trusts the
//! bundle's certificates *in addition to* the public web PKI roots, so a
//! mix of public and private health URLs keeps working. Each certificate
//! must be usable as a trust anchor: a bundle that would silently trust
//! nothing is refused, so that the mistake shows at start-up and not as
//! every private region voted down.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// Why a CA bundle cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaBundleError {
    #[error("cannot read {path:?}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path:?} is not a PEM bundle: {message}")]
    Pem { path: String, message: String },
    #[error("{path:?} holds no PEM certificate (BEGIN CERTIFICATE)")]
    Empty { path: String },
    #[error("{path:?}: certificate {index} of the bundle is not a valid trust anchor")]
    NotTrustAnchor { path: String, index: usize },
}

/// Reads the bundle at `path`: every certificate in it, in file order.
///
/// Fails when the file cannot be read, is not PEM, has no certificate, or
/// has a certificate that cannot serve as a trust anchor (so every
/// certificate returned is one rustls will accept as a root).
pub fn read(path: &Path) -> Result<Vec<CertificateDer<'static>>, CaBundleError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| CaBundleError::Read {
        path: shown.clone(),
        source,
    })?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CaBundleError::Pem {
            path: shown.clone(),
            message: e.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(CaBundleError::Empty { path: shown });
    }
    for (index, certificate) in certificates.iter().enumerate() {
        let mut store = rustls::RootCertStore::empty();
        if store.add(certificate.clone()).is_err() {
            return Err(CaBundleError::NotTrustAnchor { path: shown, index });
        }
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file in the temporary directory, removed on drop.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(contents: &[u8]) -> Self {
            let path =
                std::env::temp_dir().join(format!("fc-ca-{}.pem", uuid::Uuid::new_v4().simple()));
            std::fs::write(&path, contents).unwrap();
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn reads_every_certificate_of_a_bundle() {
        let bundle = format!("# two private CAs\n{}\n{}", ca_pem(), ca_pem());
        let file = TempFile::new(bundle.as_bytes());
        assert_eq!(read(&file.0).unwrap().len(), 2);
    }

    #[test]
    fn refuses_what_would_trust_nothing() {
        let missing = std::env::temp_dir().join("fc-ca-does-not-exist.pem");
        assert!(matches!(read(&missing), Err(CaBundleError::Read { .. })));

        let empty = TempFile::new(b"not a certificate\n");
        assert!(matches!(read(&empty.0), Err(CaBundleError::Empty { .. })));

        let key_only = TempFile::new(
            rcgen::KeyPair::generate()
                .unwrap()
                .serialize_pem()
                .as_bytes(),
        );
        assert!(matches!(
            read(&key_only.0),
            Err(CaBundleError::Empty { .. })
        ));

        let garbage =
            TempFile::new(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        assert!(matches!(
            read(&garbage.0),
            Err(CaBundleError::NotTrustAnchor { index: 0, .. })
        ));

        let truncated = TempFile::new(b"-----BEGIN CERTIFICATE-----\nMIIB\n");
        assert!(matches!(read(&truncated.0), Err(CaBundleError::Pem { .. })));
    }
}
