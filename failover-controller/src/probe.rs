//! Probing: every replica probes every region's instances once per interval
//! with one reused HTTP client, measures round trips, and keeps a verdict
//! per region with hysteresis.
//!
//! A region passes a round when at least one of its instances (or health
//! URLs) answers 200 on its region-health endpoint: one dead instance is the
//! load balancer's business, a dead region is ours. Health URLs may be
//! https: rustls with the webpki roots plus the private CAs of
//! `probe.ca_file` (see [`crate::ca_bundle`]), SNI from the URL's host name,
//! and the probe's source address (`probe.local_address`) applies to them
//! too. Servers that require mutual TLS get the client certificate of
//! `probe.client_cert_file` / `probe.client_key_file` (see
//! [`crate::client_identity`]). A refused certificate is a failed probe
//! whose `last_error` (in the vote, so in `failover_votes`) says what was
//! refused: the server's certificate by rustls (unknown issuer, expired,
//! wrong host name), or ours by the server (its TLS alert: certificate
//! required, unknown CA): a TLS mistake is not mistaken for a dead region.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;

use crate::ca_bundle::{self, CaBundleError};
use crate::client_identity::{self, ClientIdentityError};
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::verdict::{observe_round, Blindness, ProbeOutcome, VerdictTracker};
use crate::votes::OwnVote;

/// Errors building the prober.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("probe.ca_file: {0}")]
    CaBundle(#[from] CaBundleError),
    /// The message names the field (client_cert_file or client_key_file).
    #[error(transparent)]
    ClientIdentity(#[from] ClientIdentityError),
}

/// The result of probing one instance.
#[derive(Debug, Clone, PartialEq)]
pub enum InstanceResult {
    Ok { rtt: Duration },
    Fail { reason: String },
    Timeout,
}

impl InstanceResult {
    fn label(&self) -> &'static str {
        match self {
            InstanceResult::Ok { .. } => "ok",
            InstanceResult::Fail { .. } => "fail",
            InstanceResult::Timeout => "timeout",
        }
    }
}

struct Target {
    region: String,
    urls: Vec<String>,
    tracker: VerdictTracker,
    /// Exponentially weighted round trip, for the measured latency matrix.
    rtt_ewma_ms: Option<f64>,
    /// When the current run of successful rounds began.
    healthy_since: Option<Instant>,
    last_error: String,
    /// This region's probe timeout from this vantage point
    /// ([`crate::config::ProbeSettings::timeout_for`]).
    timeout: Duration,
}

/// One replica's prober.
pub struct Prober {
    client: reqwest::Client,
    vantage: String,
    targets: Vec<Target>,
    metrics: Metrics,
    /// The last spell in which every region failed at once
    /// (`verdict::observe_round`).
    blindness: Blindness,
}

impl Prober {
    pub fn new(settings: &Settings, metrics: Metrics) -> Result<Self, ProbeError> {
        let timeout_of = |region: &str| {
            Duration::from_millis(settings.probe.timeout_for(&settings.region, region))
        };
        // The client's own bounds are the longest target's; each probe has
        // its region's.
        let timeout = settings
            .regions
            .iter()
            .map(|r| timeout_of(&r.name))
            .max()
            .unwrap_or(Duration::from_millis(settings.probe.timeout_ms));
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            .no_proxy()
            .user_agent("failover-controller-probe");
        if let Ok(ip) = settings.probe.local_address.parse::<std::net::IpAddr>() {
            builder = builder.local_address(ip);
        }
        // Added roots go beside the built-in webpki roots, not instead of them.
        if !settings.probe.ca_file.is_empty() {
            for der in ca_bundle::read(Path::new(&settings.probe.ca_file))? {
                builder = builder.add_root_certificate(reqwest::Certificate::from_der(&der)?);
            }
        }
        // Presented only to servers that ask for a client certificate.
        if let Some(identity) = client_identity::read(
            &settings.probe.client_cert_file,
            &settings.probe.client_key_file,
        )? {
            builder = builder.identity(identity.to_reqwest()?);
        }
        let targets = settings
            .regions
            .iter()
            .map(|r| Target {
                region: r.name.clone(),
                urls: r.probe_urls(&settings.probe.instance_scheme, &settings.probe.path),
                tracker: VerdictTracker::new(
                    settings.probe.failures_to_down,
                    settings.probe.successes_to_up,
                ),
                rtt_ewma_ms: None,
                healthy_since: None,
                last_error: String::new(),
                timeout: timeout_of(&r.name),
            })
            .collect();
        Ok(Self {
            client: builder.build()?,
            vantage: settings.region.clone(),
            targets,
            metrics,
            blindness: Blindness::default(),
        })
    }

    /// Probes every instance of every region concurrently, updates the
    /// verdicts, and returns this vantage point's votes.
    pub async fn round(&mut self) -> Vec<OwnVote> {
        let client = &self.client;
        let started = Instant::now();
        let per_region = join_all(self.targets.iter().map(|t| {
            join_all(
                t.urls
                    .iter()
                    .map(move |url| probe_one(client, url, t.timeout)),
            )
        }))
        .await;
        let mut outcomes = Vec::with_capacity(self.targets.len());
        for (target, results) in self.targets.iter_mut().zip(per_region) {
            let mut rtts = Vec::new();
            let mut errors = Vec::new();
            for result in &results {
                self.metrics
                    .probe_total
                    .with_label_values(&[&self.vantage, &target.region, result.label()])
                    .inc();
                match result {
                    InstanceResult::Ok { rtt } => {
                        self.metrics
                            .probe_rtt_seconds
                            .with_label_values(&[&self.vantage, &target.region])
                            .observe(rtt.as_secs_f64());
                        rtts.push(rtt.as_secs_f64() * 1000.0);
                    }
                    InstanceResult::Fail { reason } => errors.push(reason.clone()),
                    InstanceResult::Timeout => errors.push("timeout".into()),
                }
            }
            let outcome = if rtts.is_empty() {
                ProbeOutcome::Failure
            } else {
                ProbeOutcome::Success
            };
            outcomes.push(outcome);
            // A run of successes is as old as the round that began it; a
            // failure ends it.
            target.healthy_since = match outcome {
                ProbeOutcome::Success => Some(target.healthy_since.unwrap_or(started)),
                ProbeOutcome::Failure => None,
            };
            if let Some(best) = rtts.iter().cloned().reduce(f64::min) {
                target.rtt_ewma_ms = Some(match target.rtt_ewma_ms {
                    Some(prev) => prev * 0.8 + best * 0.2,
                    None => best,
                });
            }
            target.last_error = errors.first().cloned().unwrap_or_default();
        }
        let mut trackers: Vec<&mut VerdictTracker> =
            self.targets.iter_mut().map(|t| &mut t.tracker).collect();
        observe_round(&mut trackers, &outcomes, &mut self.blindness);
        let mut votes = Vec::with_capacity(self.targets.len());
        for target in &self.targets {
            votes.push(OwnVote {
                region: target.region.clone(),
                verdict: target.tracker.verdict(),
                consecutive: target.tracker.consecutive(),
                healthy_for: target.healthy_since.map(|since| since.elapsed()),
                rtt_ms: target.rtt_ewma_ms,
                last_error: target.last_error.clone(),
            });
        }
        votes
    }

    /// Each region's probe timeout from this vantage point.
    pub fn timeouts(&self) -> BTreeMap<String, Duration> {
        self.targets
            .iter()
            .map(|t| (t.region.clone(), t.timeout))
            .collect()
    }

    /// The smoothed round trips, per region.
    pub fn rtt_ms(&self) -> BTreeMap<String, f64> {
        self.targets
            .iter()
            .filter_map(|t| t.rtt_ewma_ms.map(|v| (t.region.clone(), v)))
            .collect()
    }
}

/// Probes one instance: 200 is success, anything else (503 included) fails.
pub async fn probe_one(client: &reqwest::Client, url: &str, timeout: Duration) -> InstanceResult {
    let started = Instant::now();
    let response = tokio::time::timeout(timeout, async {
        let response = client.get(url).send().await?;
        let status = response.status();
        // Read the (small) body so the connection can be reused.
        let _ = response.bytes().await;
        Ok::<_, reqwest::Error>(status)
    })
    .await;
    match response {
        Err(_) => InstanceResult::Timeout,
        Ok(Err(e)) if e.is_timeout() => InstanceResult::Timeout,
        Ok(Err(e)) => InstanceResult::Fail {
            reason: failure_reason(&e),
        },
        Ok(Ok(status)) if status == reqwest::StatusCode::OK => InstanceResult::Ok {
            rtt: started.elapsed(),
        },
        Ok(Ok(status)) => InstanceResult::Fail {
            reason: format!("status {}", status.as_u16()),
        },
    }
}

/// Why a request failed, for the vote's `last_error`: what rustls refused
/// (the server's certificate), what the server refused (our client
/// certificate, or its absence, told by its TLS alert), another TLS error,
/// "connect error" or "request error".
fn failure_reason(error: &reqwest::Error) -> String {
    match tls_error(error) {
        Some(tls @ rustls::Error::InvalidCertificate(_)) => format!("certificate error: {tls}"),
        Some(tls @ rustls::Error::AlertReceived(alert)) if refuses_client_certificate(*alert) => {
            format!("client certificate refused: {tls}")
        }
        Some(tls) => format!("tls error: {tls}"),
        None if error.is_connect() => "connect error".into(),
        None => "request error".into(),
    }
}

/// Whether a TLS alert from the server is about our client certificate. A
/// server sends these only about the certificate it verifies, the client's
/// (ours is refused, missing, or signed by a CA it does not trust); with
/// TLS 1.3 they arrive after our side of the handshake, with the response.
fn refuses_client_certificate(alert: rustls::AlertDescription) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        alert,
        A::CertificateRequired
            | A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
    )
}

/// The rustls error somewhere in `error`'s source chain. The TLS connector
/// wraps it in an `io::Error`, whose `source()` skips the wrapped error
/// itself, so each `io::Error` is looked into with `get_ref()`.
fn tls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}
