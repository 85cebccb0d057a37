//! TLS as in production: the proxy in front of each service instance is the
//! region's load balancer, and like an AWS load balancer it terminates TLS,
//! so clients and the controllers' probes speak HTTPS to it and pay the
//! handshake's round trips on the WAN. A CA made for this deployment signs
//! one certificate for the service name and every instance's public
//! address; its PEM is written to `<run dir>/tls/ca.pem`, which the
//! controllers trust (`probe.ca_file`) and the load's clients too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// The deployment's certificate authority and its load balancers' identity.
#[derive(Clone)]
pub struct DeploymentTls {
    /// PEM of the CA, for clients and probes.
    pub ca_pem: String,
    /// Where `ca_pem` is written.
    pub ca_file: PathBuf,
    /// What the proxies terminate TLS with.
    pub acceptor: TlsAcceptor,
}

impl std::fmt::Debug for DeploymentTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploymentTls")
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl DeploymentTls {
    /// A new CA and a certificate for `service_name` and `addresses`.
    pub fn create(
        run_dir: &Path,
        service_name: &str,
        addresses: &[SocketAddr],
    ) -> anyhow::Result<Self> {
        let ca_key = KeyPair::generate().context("generating the deployment CA's key")?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "chaos deployment CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let mut names = vec![service_name.trim_end_matches('.').to_owned()];
        // rcgen makes a name that parses as an IP address an IP SAN: the
        // probes and the clients' retries address instances by IP.
        names.extend(addresses.iter().map(|a| a.ip().to_string()));
        names.dedup();
        let key = KeyPair::generate().context("generating the load balancers' key")?;
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, service_name.trim_end_matches('.'));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let certificate = params.signed_by(&key, &issuer)?;

        let chain: Vec<CertificateDer<'static>> = vec![certificate.der().clone(), ca.der().clone()];
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .context("the load balancers' certificate")?;

        let dir = run_dir.join("tls");
        std::fs::create_dir_all(&dir)?;
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca.pem())
            .with_context(|| format!("cannot write {}", ca_file.display()))?;
        Ok(Self {
            ca_pem: ca.pem(),
            ca_file,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// An HTTP client builder that trusts the deployment's CA (and nothing
/// else: every HTTPS peer of the drills is one of its load balancers), or,
/// given no CA (`ca_pem` empty), the public roots.
/// `builder` also trusting the PEM CA in `file` (beside the public roots);
/// an error names `field` and the file.
pub fn trust_ca_file(
    builder: reqwest::ClientBuilder,
    file: &Path,
    field: &str,
) -> anyhow::Result<reqwest::ClientBuilder> {
    let pem =
        std::fs::read(file).with_context(|| format!("{field}: cannot read {}", file.display()))?;
    let certificate = reqwest::Certificate::from_pem(&pem)
        .with_context(|| format!("{field}: {} is not a PEM certificate", file.display()))?;
    Ok(builder.add_root_certificate(certificate))
}

pub fn client_builder(ca_pem: &str) -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        // No CA of our own (a target whose endpoints have public
        // certificates): the public roots.
        .tls_built_in_root_certs(ca_pem.trim().is_empty());
    if let Ok(certificate) = reqwest::Certificate::from_pem(ca_pem.as_bytes()) {
        builder = builder.add_root_certificate(certificate);
    }
    builder
}
