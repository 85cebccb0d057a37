//! HTTPS probes against real TLS servers that require a client certificate,
//! as a mesh in STRICT mode does: rustls' `WebPkiClientVerifier` accepts
//! only clients whose certificate a test client CA signed. The real prober
//! presents the identity of `probe.client_cert_file` / `probe.client_key_file`:
//! with it the region is up; without it, or with a certificate from another
//! CA, the probe fails and the vote's `last_error` carries the server's TLS
//! alert. The binary refuses half an identity before binding a port.

use std::process::Command;

use failover_controller::metrics::Metrics;
use failover_controller::probe::Prober;
use failover_controller::verdict::Verdict;
use failover_controller::votes::OwnVote;

use crate::helpers::Health;
use crate::tls_probe::{
    probe_settings, probe_settings_toml, vote, ClientAuth, ProbeTlsFiles, TempFile, TestCa,
    TlsHealthServer, Validity,
};

/// A client identity written to files, as the Secret's tls.crt and tls.key.
struct IdentityFiles {
    certificate: TempFile,
    key: TempFile,
}

impl IdentityFiles {
    fn signed_by(ca: &TestCa) -> Self {
        let identity = ca.client_identity("failover-controller.geo.svc.cluster.local");
        Self {
            certificate: TempFile::new("crt", &identity.certificate),
            key: TempFile::new("key", &identity.key),
        }
    }
}

/// A prober trusting `ca_file` for the servers, presenting `identity`.
fn prober(
    regions: &[(&str, String)],
    ca_file: &TempFile,
    identity: Option<&IdentityFiles>,
) -> Prober {
    let tls = ProbeTlsFiles {
        ca_file: Some(ca_file),
        client_cert_file: identity.map(|i| &i.certificate),
        client_key_file: identity.map(|i| &i.key),
    };
    Prober::new(&probe_settings(regions, &tls), Metrics::new()).expect("prober")
}

fn assert_up(votes: &[OwnVote], region: &str) {
    let vote = vote(votes, region);
    assert_eq!(vote.verdict, Verdict::Up, "{vote:?}");
    assert_eq!(vote.last_error, "", "{vote:?}");
}

/// Asserts a down vote whose error is the server's refusal of our client
/// certificate, with the TLS alert `alert`.
fn assert_client_certificate_refused(votes: &[OwnVote], region: &str, alert: &str) {
    let vote = vote(votes, region);
    assert_eq!(vote.verdict, Verdict::Down, "{vote:?}");
    assert_eq!(
        vote.last_error,
        format!("client certificate refused: received fatal alert: {alert}"),
        "{vote:?}"
    );
}

#[tokio::test]
async fn https_probes_present_the_client_certificate_that_mutual_tls_requires() {
    let server_ca = TestCa::named("test server CA");
    let client_ca = TestCa::named("test client CA");
    let ca_file = TempFile::new("pem", &server_ca.pem);
    let server_identity = || server_ca.server_identity("localhost", Validity::Current);
    let strict = TlsHealthServer::start(
        server_identity(),
        ClientAuth::Required(client_ca.der.clone()),
    )
    .await;
    let plain = TlsHealthServer::start(server_identity(), ClientAuth::None).await;
    let regions = [("strict", strict.url()), ("plain", plain.url())];

    // With an identity the client CA signed: both regions are up (a server
    // that asks for no certificate is probed as before).
    let identity = IdentityFiles::signed_by(&client_ca);
    let mut with_identity = prober(&regions, &ca_file, Some(&identity));
    let votes = with_identity.round().await;
    assert_up(&votes, "strict");
    assert_up(&votes, "plain");
    // Through mutual TLS as without it, a 503 is a failed probe.
    strict.set(Health::Unavailable);
    let votes = with_identity.round().await;
    assert_eq!(vote(&votes, "strict").last_error, "status 503");
    strict.set(Health::Ok);
    assert_up(&with_identity.round().await, "strict");

    // Without a client certificate: the server ends the handshake, and the
    // vote says why (not a dead region: the other region is still up).
    let mut anonymous = prober(&regions, &ca_file, None);
    let votes = anonymous.round().await;
    assert_client_certificate_refused(&votes, "strict", "CertificateRequired");
    assert_up(&votes, "plain");

    // With a certificate from a CA the server does not trust.
    let stranger = IdentityFiles::signed_by(&TestCa::named("stranger CA"));
    let mut with_stranger = prober(&regions, &ca_file, Some(&stranger));
    let votes = with_stranger.round().await;
    assert_client_certificate_refused(&votes, "strict", "UnknownCA");
    assert_up(&votes, "plain");
}

#[test]
fn the_binary_refuses_half_a_client_identity_before_binding_a_port() {
    let identity = IdentityFiles::signed_by(&TestCa::new());
    let regions = [("a", "https://localhost:1/healthz/instance".to_string())];
    let tls = ProbeTlsFiles {
        client_cert_file: Some(&identity.certificate),
        ..Default::default()
    };
    let config = TempFile::new("toml", &probe_settings_toml(&regions, &tls));
    let output = Command::new(env!("CARGO_BIN_EXE_failover-controller"))
        .arg("run")
        .env("FAILOVER_CONFIG", &config.0)
        .env("FAILOVER_REGION", "a")
        .env("FAILOVER_HTTP_LISTEN", "127.0.0.1:0")
        .env("FAILOVER_DNS_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .output()
        .expect("run the controller binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "invalid configuration: probe.client_key_file: required with probe.client_cert_file"
        ),
        "{stderr}"
    );
    // The configuration error comes before telemetry and listeners.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("started"), "{stdout}");
}
