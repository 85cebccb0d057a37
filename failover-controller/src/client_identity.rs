//! The client certificate of HTTPS probes, for health URLs behind mutual
//! TLS: the PEM files of `probe.client_cert_file` and
//! `probe.client_key_file`, read and checked once at start-up.
//!
//! A mesh or gateway that requires mTLS (Istio `STRICT`, a gateway in
//! `MUTUAL` mode) refuses a caller without a certificate that its client CA
//! signed, so without one every region behind it would be voted down. The
//! two settings go together (a certificate and its private key, or
//! neither); each file must hold what its name says; and the key must be
//! the certificate's. Every mistake is refused at start-up with a message
//! that begins with the field at fault, so that it shows there and not as
//! regions voted down. The certificate is sent only to servers that ask for
//! one: plain TLS health URLs are probed as before.

use std::fmt;
use std::io::Cursor;
use std::ops::Range;
use std::path::Path;

use rustls::pki_types::pem::{self, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// The setting naming the certificate file.
pub const CERT_FIELD: &str = "probe.client_cert_file";
/// The setting naming the private key file.
pub const KEY_FIELD: &str = "probe.client_key_file";

/// Why the client identity cannot be used. Every message begins with the
/// setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum ClientIdentityError {
    #[error(
        "{missing}: required with {present} (set a certificate and its private key, or neither)"
    )]
    OnlyOneSet {
        missing: &'static str,
        present: &'static str,
    },
    #[error("{field}: cannot read {path:?}: {source}")]
    Read {
        field: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{field}: {path:?} is not PEM: {message}")]
    Pem {
        field: &'static str,
        path: String,
        message: String,
    },
    #[error("probe.client_cert_file: {path:?} holds no PEM certificate (BEGIN CERTIFICATE)")]
    NoCertificate { path: String },
    #[error(
        "probe.client_key_file: {path:?} holds no PEM private key (BEGIN PRIVATE KEY, \
         RSA PRIVATE KEY or EC PRIVATE KEY)"
    )]
    NoPrivateKey { path: String },
    #[error("probe.client_key_file: {path:?} holds {count} private keys; exactly one is expected")]
    SeveralPrivateKeys { path: String, count: usize },
    #[error("probe.client_key_file: {path:?}: the private key cannot be used: {message}")]
    UnusableKey { path: String, message: String },
    #[error("probe.client_cert_file: {path:?}: the first certificate cannot be parsed: {message}")]
    BadCertificate { path: String, message: String },
    #[error(
        "probe.client_key_file: the private key in {key_path:?} does not match the certificate \
         in {cert_path:?} (probe.client_cert_file)"
    )]
    KeyMismatch { cert_path: String, key_path: String },
}

/// A checked client identity: the certificates of `probe.client_cert_file`
/// (leaf first) and the private key of `probe.client_key_file`, as one PEM
/// document for [`reqwest::Identity::from_pem`].
///
/// Holds private key material, so its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct ClientIdentity {
    pem: Vec<u8>,
}

impl ClientIdentity {
    /// The identity for reqwest's rustls client.
    pub fn to_reqwest(&self) -> reqwest::Result<reqwest::Identity> {
        reqwest::Identity::from_pem(&self.pem)
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientIdentity(<redacted>)")
    }
}

/// Reads and checks the identity named by the two settings (paths, as
/// configured): `Ok(None)` when both are empty, the identity when both name
/// a usable certificate and its private key, an error naming the field at
/// fault otherwise.
pub fn read(
    client_cert_file: &str,
    client_key_file: &str,
) -> Result<Option<ClientIdentity>, ClientIdentityError> {
    match (client_cert_file.is_empty(), client_key_file.is_empty()) {
        (true, true) => return Ok(None),
        (false, true) => {
            return Err(ClientIdentityError::OnlyOneSet {
                missing: KEY_FIELD,
                present: CERT_FIELD,
            })
        }
        (true, false) => {
            return Err(ClientIdentityError::OnlyOneSet {
                missing: CERT_FIELD,
                present: KEY_FIELD,
            })
        }
        (false, false) => {}
    }
    let cert_file = PemFile::read(CERT_FIELD, Path::new(client_cert_file))?;
    let key_file = PemFile::read(KEY_FIELD, Path::new(client_key_file))?;

    let certificates: Vec<&Section> = cert_file
        .sections
        .iter()
        .filter(|s| s.kind == SectionKind::Certificate)
        .collect();
    if certificates.is_empty() {
        return Err(ClientIdentityError::NoCertificate {
            path: cert_file.shown,
        });
    }
    let keys: Vec<(&Section, PrivateKeyDer<'static>)> = key_file
        .sections
        .iter()
        .filter_map(|s| private_key(s).map(|key| (s, key)))
        .collect();
    let (key_section, key) = match keys.as_slice() {
        [] => {
            return Err(ClientIdentityError::NoPrivateKey {
                path: key_file.shown,
            })
        }
        [(section, key)] => (*section, key.clone_key()),
        several => {
            return Err(ClientIdentityError::SeveralPrivateKeys {
                path: key_file.shown,
                count: several.len(),
            })
        }
    };

    check_key_matches(&certificates, key, &cert_file.shown, &key_file.shown)?;

    // Only the certificate and key sections go to reqwest, whatever else the
    // files hold (comments, EC parameters, a certificate beside the key).
    let mut document = Vec::new();
    let texts = certificates
        .iter()
        .map(|section| cert_file.text(section))
        .chain([key_file.text(key_section)]);
    for text in texts {
        document.extend_from_slice(text);
        if !text.ends_with(b"\n") {
            document.push(b'\n');
        }
    }
    Ok(Some(ClientIdentity { pem: document }))
}

/// Loads the key with the provider the probes' client uses (reqwest's
/// rustls-tls uses ring when no process default is installed, and the
/// controller installs none), and compares its public key with the leaf
/// certificate's.
fn check_key_matches(
    certificates: &[&Section],
    key: PrivateKeyDer<'static>,
    cert_shown: &str,
    key_shown: &str,
) -> Result<(), ClientIdentityError> {
    let provider = rustls::crypto::ring::default_provider();
    let signing_key = provider.key_provider.load_private_key(key).map_err(|e| {
        ClientIdentityError::UnusableKey {
            path: key_shown.to_string(),
            message: e.to_string(),
        }
    })?;
    let chain = certificates
        .iter()
        .map(|s| CertificateDer::from(s.der.clone()))
        .collect();
    match CertifiedKey::new(chain, signing_key).keys_match() {
        // As rustls itself: a key whose public half cannot be derived is not
        // refused for that alone.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(ClientIdentityError::KeyMismatch {
                cert_path: cert_shown.to_string(),
                key_path: key_shown.to_string(),
            })
        }
        Err(other) => Err(ClientIdentityError::BadCertificate {
            path: cert_shown.to_string(),
            message: other.to_string(),
        }),
    }
}

/// One PEM section: its kind, its decoded bytes, and where its text is in
/// the file.
struct Section {
    kind: SectionKind,
    der: Vec<u8>,
    text: Range<usize>,
}

/// A PEM file as read: its bytes and its sections in file order.
struct PemFile {
    shown: String,
    bytes: Vec<u8>,
    sections: Vec<Section>,
}

impl PemFile {
    fn read(field: &'static str, path: &Path) -> Result<Self, ClientIdentityError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ClientIdentityError::Read {
            field,
            path: shown.clone(),
            source,
        })?;
        let sections = sections(&bytes).map_err(|e| ClientIdentityError::Pem {
            field,
            path: shown.clone(),
            message: e.to_string(),
        })?;
        Ok(Self {
            shown,
            bytes,
            sections,
        })
    }

    /// The section's text, from its BEGIN line to its END line.
    fn text(&self, section: &Section) -> &[u8] {
        let text = &self.bytes[section.text.clone()];
        let begin = text
            .windows(b"-----BEGIN".len())
            .rposition(|w| w == b"-----BEGIN")
            .unwrap_or(0);
        &text[begin..]
    }
}

/// Every PEM section of `bytes` that rustls knows, with the range of text
/// each was read from (which may start with text between sections).
fn sections(bytes: &[u8]) -> Result<Vec<Section>, pem::Error> {
    let mut cursor = Cursor::new(bytes);
    let mut sections = Vec::new();
    loop {
        let start = cursor.position() as usize;
        let Some((kind, der)) = pem::from_buf(&mut cursor)? else {
            return Ok(sections);
        };
        sections.push(Section {
            kind,
            der,
            text: start..cursor.position() as usize,
        });
    }
}

/// The private key of a section, in the encodings reqwest accepts.
fn private_key(section: &Section) -> Option<PrivateKeyDer<'static>> {
    let der = section.der.clone();
    match section.kind {
        SectionKind::PrivateKey => Some(PrivateKeyDer::Pkcs8(der.into())),
        SectionKind::RsaPrivateKey => Some(PrivateKeyDer::Pkcs1(der.into())),
        SectionKind::EcPrivateKey => Some(PrivateKeyDer::Sec1(der.into())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file in the temporary directory, removed on drop.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(contents: &str) -> Self {
            let path =
                std::env::temp_dir().join(format!("fc-id-{}.pem", uuid::Uuid::new_v4().simple()));
            std::fs::write(&path, contents).unwrap();
            Self(path)
        }

        fn path(&self) -> String {
            self.0.display().to_string()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// A self-signed client certificate and its key, both PEM.
    fn certificate_and_key() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["probe.example".to_string()]).unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    fn error(cert: &str, key: &str) -> String {
        read(cert, key).unwrap_err().to_string()
    }

    #[test]
    fn neither_file_means_no_identity() {
        assert!(read("", "").unwrap().is_none());
    }

    #[test]
    fn a_certificate_and_its_key_make_one_pem_document_for_reqwest() {
        let (certificate, key) = certificate_and_key();
        // Text around and between the sections, and an unrelated section in
        // the key file, stay out of the document reqwest gets.
        let cert_file = TempFile::new(&format!("subject: probe.example\n{certificate}"));
        let (other_certificate, _) = certificate_and_key();
        let key_file = TempFile::new(&format!("# the key\n{key}\n{other_certificate}"));
        let identity = read(&cert_file.path(), &key_file.path()).unwrap().unwrap();
        let document: Vec<(SectionKind, Vec<u8>)> = sections(&identity.pem)
            .unwrap()
            .into_iter()
            .map(|s| (s.kind, s.der))
            .collect();
        let expected: Vec<(SectionKind, Vec<u8>)> =
            sections(format!("{certificate}{key}").as_bytes())
                .unwrap()
                .into_iter()
                .map(|s| (s.kind, s.der))
                .collect();
        assert_eq!(document, expected);
        let text = String::from_utf8(identity.pem.clone()).unwrap();
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{text}");
        assert!(
            !text.contains("probe.example") && !text.contains('#'),
            "{text}"
        );
        identity.to_reqwest().expect("reqwest accepts the identity");
        assert_eq!(format!("{identity:?}"), "ClientIdentity(<redacted>)");
    }

    #[test]
    fn refuses_what_cannot_identify_the_probes() {
        let (certificate, key) = certificate_and_key();
        let (other_certificate, other_key) = certificate_and_key();
        let cert_file = TempFile::new(&certificate);
        let key_file = TempFile::new(&key);
        let two_keys = TempFile::new(&format!("{key}{other_key}"));
        let garbage =
            TempFile::new("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let truncated = TempFile::new("-----BEGIN PRIVATE KEY-----\nMIIB\n");
        let other_cert_file = TempFile::new(&other_certificate);
        let (cert, key) = (cert_file.path(), key_file.path());

        let err = error(&two_keys.path(), &key);
        assert!(
            err.starts_with("probe.client_cert_file:") && err.contains("no PEM certificate"),
            "{err}"
        );
        let err = error(&cert, &two_keys.path());
        assert!(
            err.starts_with("probe.client_key_file:") && err.contains("2 private keys"),
            "{err}"
        );
        let err = error(&cert, &truncated.path());
        assert!(
            err.starts_with("probe.client_key_file:") && err.contains("is not PEM"),
            "{err}"
        );
        let err = error(&garbage.path(), &key);
        assert!(
            err.starts_with("probe.client_cert_file:") && err.contains("cannot be parsed"),
            "{err}"
        );
        let err = error(&other_cert_file.path(), &key);
        assert!(
            err.starts_with("probe.client_key_file:") && err.contains("does not match"),
            "{err}"
        );
    }
}
