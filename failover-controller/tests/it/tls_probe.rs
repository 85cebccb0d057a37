//! HTTPS probes against real TLS servers on loopback: a throwaway private CA
//! signs the servers' certificates, and the real prober (reqwest + rustls)
//! probes them as `https://localhost:<port>/healthz/instance`. Trusted through
//! `probe.ca_file`, a region is up while it answers 200 and down on 503;
//! without the CA, or with an expired or wrong-host certificate, the probe
//! fails and the vote's `last_error` says which certificate check refused.
//! The fixtures (CA, TLS server, settings) serve `mtls_probe` too.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU8;
use std::sync::Arc;

use failover_controller::config::{self, Settings};
use failover_controller::metrics::Metrics;
use failover_controller::probe::Prober;
use failover_controller::verdict::Verdict;
use failover_controller::votes::OwnVote;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::task::JoinSet;

use crate::helpers::{health_router, Health};

/// A private CA made for one test: its certificate (PEM and DER) and its
/// signer.
pub struct TestCa {
    pub pem: String,
    pub der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate and its key, as rustls wants them.
pub struct ServerIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// A client certificate and its key, PEM, as the probe settings name them.
pub struct ClientIdentityPem {
    pub certificate: String,
    pub key: String,
}

/// Whether a server certificate is inside its validity period.
pub enum Validity {
    Current,
    /// Valid only during 2000: long expired.
    Expired,
}

/// Whether a server asks for a client certificate.
pub enum ClientAuth {
    /// Any client may connect (an ALB, a gateway without mTLS).
    None,
    /// Only clients with a certificate this CA signed, as a mesh in STRICT
    /// mode (rustls' `WebPkiClientVerifier`, client authentication
    /// mandatory).
    Required(CertificateDer<'static>),
}

impl TestCa {
    pub fn new() -> Self {
        Self::named("failover-controller test CA")
    }

    /// A CA whose subject is `common_name`. Two CAs meant to be told apart
    /// need two names: a verifier looks for the issuer by name, and a
    /// certificate naming a trusted CA it was not signed by is a bad
    /// signature, not an unknown issuer.
    pub fn named(common_name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let certificate = params.self_signed(&key).expect("CA certificate");
        Self {
            pem: certificate.pem(),
            der: certificate.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A client certificate for `name` (a SAN, as a mesh identity would be),
    /// signed by this CA.
    pub fn client_identity(&self, name: &str) -> ClientIdentityPem {
        let key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::new(vec![name.to_string()]).expect("client params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let certificate = params
            .signed_by(&key, &self.issuer)
            .expect("client certificate");
        ClientIdentityPem {
            certificate: certificate.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A certificate for `host`, signed by this CA.
    pub fn server_identity(&self, host: &str, validity: Validity) -> ServerIdentity {
        let key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(vec![host.to_string()]).expect("server params");
        params.distinguished_name.push(DnType::CommonName, host);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if let Validity::Expired = validity {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let certificate = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        ServerIdentity {
            chain: vec![certificate.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }
}

/// A `/healthz/instance` server over TLS on 127.0.0.1 (axum behind
/// tokio-rustls and hyper), presenting one certificate and, with
/// [`ClientAuth::Required`], accepting only clients that present one.
pub struct TlsHealthServer {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsHealthServer {
    pub async fn start(identity: ServerIdentity, client_auth: ClientAuth) -> Self {
        // The provider is named: both ring and aws-lc-rs are compiled in, so
        // rustls cannot pick a process default by itself.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("TLS versions");
        let builder = match client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Required(client_ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(client_ca).expect("client CA");
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .expect("client certificate verifier");
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(identity.chain, identity.key)
            .expect("server certificate and key");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let mode = Arc::new(AtomicU8::new(Health::Ok as u8));
        let app = health_router(Arc::clone(&mode));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind TLS health server");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            // Connections live in the set, so aborting the server ends them.
            let mut connections = JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let service = TowerToHyperService::new(app.clone());
                connections.spawn(async move {
                    // A client that refuses our certificate ends the
                    // handshake, and so do we a client without an acceptable
                    // one (rustls sends the alert first).
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self { addr, mode, task }
    }

    pub fn set(&self, health: Health) {
        self.mode
            .store(health as u8, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        format!("https://localhost:{}/healthz/instance", self.addr.port())
    }
}

impl Drop for TlsHealthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A file in the temporary directory, removed on drop.
pub struct TempFile(pub std::path::PathBuf);

impl TempFile {
    pub fn new(suffix: &str, contents: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("fc-it-{}.{suffix}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, contents).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The TLS files of `[probe]`, each optional.
#[derive(Default)]
pub struct ProbeTlsFiles<'a> {
    pub ca_file: Option<&'a TempFile>,
    pub client_cert_file: Option<&'a TempFile>,
    pub client_key_file: Option<&'a TempFile>,
}

/// The text of one probe setting: the file's path, or empty.
fn path_of(file: Option<&TempFile>) -> String {
    file.map(|f| f.0.display().to_string()).unwrap_or_default()
}

/// The `[probe]` and `[dns]` tables of [`probe_settings`], and a region per
/// URL: K = M = 1 so one round decides a verdict, no DNS (the regions have
/// health URLs only).
pub fn probe_settings_toml(regions: &[(&str, String)], tls: &ProbeTlsFiles<'_>) -> String {
    let mut text = format!(
        "[probe]\ninterval_ms = 2000\ntimeout_ms = 1500\nfailures_to_down = 1\n\
         successes_to_up = 1\nvote_freshness_ms = 6000\nca_file = '{}'\n\
         client_cert_file = '{}'\nclient_key_file = '{}'\n[dns]\nenabled = false\n",
        path_of(tls.ca_file),
        path_of(tls.client_cert_file),
        path_of(tls.client_key_file),
    );
    for (name, url) in regions {
        text.push_str(&format!(
            "[[regions]]\nname = \"{name}\"\nhealth_urls = [\"{url}\"]\n"
        ));
    }
    text
}

/// Settings through the real loader (so the TLS files are validated as at
/// start-up), from [`probe_settings_toml`].
pub fn probe_settings(regions: &[(&str, String)], tls: &ProbeTlsFiles<'_>) -> Settings {
    let file = TempFile::new("toml", &probe_settings_toml(regions, tls));
    let env = vec![("FAILOVER_REGION".to_string(), regions[0].0.to_string())];
    config::load(Some(&file.0), env, &Default::default()).expect("valid probe settings")
}

pub fn vote<'a>(votes: &'a [OwnVote], region: &str) -> &'a OwnVote {
    votes
        .iter()
        .find(|v| v.region == region)
        .unwrap_or_else(|| panic!("no vote on {region}: {votes:?}"))
}

/// Asserts a down vote whose error is a certificate error containing `detail`.
fn assert_refused(votes: &[OwnVote], region: &str, detail: &str) {
    let vote = vote(votes, region);
    assert_eq!(vote.verdict, Verdict::Down, "{vote:?}");
    assert!(
        vote.last_error.starts_with("certificate error: ") && vote.last_error.contains(detail),
        "expected a certificate error with {detail:?} on {region}: {vote:?}"
    );
}

#[tokio::test]
async fn https_probes_trust_the_private_ca_of_ca_file_and_report_certificate_errors() {
    let ca = TestCa::new();
    let ca_file = TempFile::new("pem", &ca.pem);
    let server = |host: &str, validity| {
        TlsHealthServer::start(ca.server_identity(host, validity), ClientAuth::None)
    };
    let trusted = server("localhost", Validity::Current).await;
    let expired = server("localhost", Validity::Expired).await;
    let wrong_host = server("other.example", Validity::Current).await;
    let regions = [
        ("trusted", trusted.url()),
        ("expired", expired.url()),
        ("wrong-host", wrong_host.url()),
    ];

    // With the private CA: the valid certificate is accepted and the region
    // is up; the expired and the wrong-host certificates are refused.
    let with_ca = ProbeTlsFiles {
        ca_file: Some(&ca_file),
        ..Default::default()
    };
    let mut prober = Prober::new(&probe_settings(&regions, &with_ca), Metrics::new())
        .expect("prober with the private CA");
    let votes = prober.round().await;
    let up = vote(&votes, "trusted");
    assert_eq!(up.verdict, Verdict::Up, "{up:?}");
    assert_eq!(up.last_error, "", "{up:?}");
    assert!(up.rtt_ms.is_some(), "a successful probe measures its RTT");
    assert_refused(&votes, "expired", "certificate expired");
    assert_refused(
        &votes,
        "wrong-host",
        "certificate not valid for name \"localhost\"",
    );

    // Over TLS as over HTTP, a 503 (a drained region) is a failed probe,
    // and the region is up again once it answers 200.
    trusted.set(Health::Unavailable);
    let votes = prober.round().await;
    let down = vote(&votes, "trusted");
    assert_eq!(down.verdict, Verdict::Down, "{down:?}");
    assert_eq!(down.last_error, "status 503", "{down:?}");
    trusted.set(Health::Ok);
    let votes = prober.round().await;
    assert_eq!(vote(&votes, "trusted").verdict, Verdict::Up);

    // Without `ca_file`, the public roots alone do not know the issuer.
    let public_only_settings = probe_settings(&regions, &ProbeTlsFiles::default());
    let mut public_only =
        Prober::new(&public_only_settings, Metrics::new()).expect("prober with the public roots");
    let votes = public_only.round().await;
    assert_refused(&votes, "trusted", "UnknownIssuer");
}
