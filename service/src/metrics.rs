//! Prometheus metrics, one registry per application (tests run several
//! applications in one process), served only on the admin port.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric the service exports. Names are part of the contract with
/// the alert rules in `monitoring/`.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by matched route, method and status code.
    pub http_requests: IntCounterVec,
    /// Latency by route and method, buckets from 1 ms to 10 s.
    pub http_request_duration: HistogramVec,
    /// Requests being handled right now.
    pub http_requests_in_flight: IntGauge,
    /// Requests refused because the concurrency limit was reached.
    pub requests_shed: IntCounter,
    /// Pool connections by state (idle, active), refreshed at scrape time.
    pub db_pool_connections: IntGaugeVec,
    /// Account reads answered per statement (reads are batched under load).
    pub db_read_batch_size: Histogram,
    /// Transaction re-runs by SQLSTATE (40001, 40P01, 23505).
    pub db_transaction_retries: IntCounterVec,
    /// Transfers waiting for a permit of the home-region bulkhead, by the
    /// home region of the account they wait for.
    pub db_home_region_waiting: IntGaugeVec,
    /// 1 while this region's drain flag is set.
    pub region_drained: IntGauge,
    /// 1 from the shutdown signal on.
    pub shutting_down: IntGauge,
    /// Requests refused authentication, by a bounded reason.
    pub auth_refusals: IntCounterVec,
    /// Requests refused by the per-principal rate limit.
    pub rate_limited: IntCounter,
    /// Database checks /readyz made (each answers every caller for
    /// `readiness_cache_ms`).
    pub readiness_checks: IntCounter,
    /// Connections closed at once because `max_connections` were open.
    pub connections_refused: IntCounter,
}

impl Metrics {
    /// `db_connections_opened` is the request pool's own counter
    /// ([`crate::db::Pool::opened_counter`]), registered here.
    pub fn new(region: &str, instance: &str, db_connections_opened: IntCounter) -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "service_http_requests_total",
                "HTTP requests by route, method and status.",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let http_request_duration = HistogramVec::new(
            HistogramOpts::new(
                "service_http_request_duration_seconds",
                "HTTP request latency by route and method.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["route", "method"],
        )
        .expect("valid metric");
        let http_requests_in_flight = IntGauge::new(
            "service_http_requests_in_flight",
            "HTTP requests being handled.",
        )
        .expect("valid metric");
        let requests_shed = IntCounter::new(
            "service_requests_shed_total",
            "Requests refused with 503 because the concurrency limit was reached.",
        )
        .expect("valid metric");
        let db_pool_connections = IntGaugeVec::new(
            Opts::new(
                "service_db_pool_connections",
                "Database pool connections by state.",
            ),
            &["state"],
        )
        .expect("valid metric");
        let db_read_batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "service_db_read_batch_size",
                "Account reads answered by one database statement.",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
        )
        .expect("valid metric");
        let db_transaction_retries = IntCounterVec::new(
            Opts::new(
                "service_db_transaction_retries_total",
                "Transactions re-run after a retryable error, by SQLSTATE.",
            ),
            &["sqlstate"],
        )
        .expect("valid metric");
        let db_home_region_waiting = IntGaugeVec::new(
            Opts::new(
                "service_db_home_region_waiting",
                "Transfers waiting for a permit of the home-region bulkhead (db/bulkhead.rs), by the home region of their accounts: a region whose rows cannot be written (its leases moving) queues its transfers here.",
            ),
            &["home_region"],
        )
        .expect("valid metric");
        let region_drained = IntGauge::new(
            "service_region_drained",
            "1 while the drain flag of this instance's region is set.",
        )
        .expect("valid metric");
        let shutting_down = IntGauge::new(
            "service_shutting_down",
            "1 once the instance received a shutdown signal.",
        )
        .expect("valid metric");
        let auth_refusals = IntCounterVec::new(
            Opts::new(
                "service_auth_refusals_total",
                "API requests refused authentication (401), by reason.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let rate_limited = IntCounter::new(
            "service_rate_limited_total",
            "API requests refused with 429 by the per-principal rate limit.",
        )
        .expect("valid metric");
        let readiness_checks = IntCounter::new(
            "service_readiness_db_checks_total",
            "Database checks made for /readyz (cached and shared between callers).",
        )
        .expect("valid metric");
        let connections_refused = IntCounter::new(
            "service_connections_refused_total",
            "Client connections closed at once because max_connections were open.",
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "service_build_info",
                "Build and placement of this instance; always 1.",
            ),
            &["version", "region", "instance"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), region, instance])
            .set(1);

        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_request_duration.clone()),
            Box::new(http_requests_in_flight.clone()),
            Box::new(requests_shed.clone()),
            Box::new(db_pool_connections.clone()),
            Box::new(db_connections_opened),
            Box::new(db_read_batch_size.clone()),
            Box::new(db_transaction_retries.clone()),
            Box::new(db_home_region_waiting.clone()),
            Box::new(region_drained.clone()),
            Box::new(shutting_down.clone()),
            Box::new(build_info),
            Box::new(auth_refusals.clone()),
            Box::new(rate_limited.clone()),
            Box::new(readiness_checks.clone()),
            Box::new(connections_refused.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Self {
            registry,
            http_requests,
            http_request_duration,
            http_requests_in_flight,
            requests_shed,
            db_pool_connections,
            db_read_batch_size,
            db_transaction_retries,
            db_home_region_waiting,
            region_drained,
            shutting_down,
            auth_refusals,
            rate_limited,
            readiness_checks,
            connections_refused,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding cannot fail");
        String::from_utf8(buffer).expect("exposition format is UTF-8")
    }
}
