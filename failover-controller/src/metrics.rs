//! Prometheus metrics. The names are a contract with the alert rules: keep
//! them.

use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Every metric of the controller, registered in its own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub probe_total: IntCounterVec,
    pub probe_rtt_seconds: HistogramVec,
    pub region_state: IntGaugeVec,
    pub region_votes: IntGaugeVec,
    pub vantage_disagreement: IntGaugeVec,
    pub votes_ignored_total: IntCounterVec,
    pub dns_serving: IntGaugeVec,
    pub decisions_total: IntCounterVec,
    pub actions_total: IntCounterVec,
    pub action_duration_seconds: HistogramVec,
    pub route53_calls_total: IntCounterVec,
    pub lease_held: IntGauge,
    pub lease_epoch: IntGauge,
    pub frozen: IntGauge,
    pub view_age_seconds: Gauge,
    pub view_stale: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let rtt_buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
        ];
        let action_buckets = vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        ];
        Self {
            probe_total: counter(
                "failover_probe_total",
                "Probes sent, by vantage point, target region and result (ok, fail, timeout).",
                &["vantage", "target", "result"],
            ),
            probe_rtt_seconds: histogram(
                "failover_probe_rtt_seconds",
                "Round-trip time of successful probes.",
                &["vantage", "target"],
                rtt_buckets,
            ),
            region_state: gauge_vec(
                "failover_region_state",
                "1 for the region's current state (healthy, draining, drained, recovering), 0 for the others.",
                &["target_region", "state"],
            ),
            region_votes: gauge_vec(
                "failover_region_votes",
                "Counted vantage points voting up or down on the region.",
                &["target_region", "verdict"],
            ),
            vantage_disagreement: gauge_vec(
                "failover_vantage_disagreement",
                "1 when the counted vantage points disagree about the region.",
                &["target_region"],
            ),
            votes_ignored_total: counter(
                "failover_votes_ignored_total",
                "Votes read in a decision round but not counted, by reason: unknown_vantage (cast by a vantage point that is not a configured region), unknown_region (cast on a region that is not configured). Counted every round the vote is read.",
                &["reason"],
            ),
            dns_serving: gauge_vec(
                "failover_dns_serving",
                "Whether this replica's DNS answers may send clients to the region: 1 serving, 0 out by its drain flag, -1 left out early by the votes (flag still clear).",
                &["target_region"],
            ),
            decisions_total: counter(
                "failover_decisions_total",
                "Decisions made, by region and decision.",
                &["target_region", "decision"],
            ),
            actions_total: counter(
                "failover_actions_total",
                "Actions taken, by action and outcome.",
                &["action", "outcome"],
            ),
            action_duration_seconds: histogram(
                "failover_action_duration_seconds",
                "How long each action took, verification included.",
                &["action"],
                action_buckets,
            ),
            route53_calls_total: counter(
                "failover_route53_calls_total",
                "Route53 API calls, by operation and outcome (ok, error, throttled).",
                &["operation", "outcome"],
            ),
            lease_held: gauge("failover_lease_held", "1 while this replica holds the leader lease."),
            lease_epoch: gauge("failover_lease_epoch", "The lease epoch this replica last saw."),
            frozen: gauge("failover_frozen", "1 while automation is frozen."),
            view_age_seconds: {
                let g = Gauge::new(
                    "failover_view_age_seconds",
                    "Seconds since this replica's last successful decision round read votes, overrides and drain flags from the database (since start while none has).",
                )
                .expect("valid metric");
                registry
                    .register(Box::new(g.clone()))
                    .expect("unique metric");
                g
            },
            view_stale: gauge(
                "failover_view_stale",
                "1 while this replica's view is older than decision.max_view_age_ms (or it never had one): its DNS answers SERVFAIL for the zone and /readyz fails.",
            ),
            registry,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ServiceMonitor adds the pod's `region` (the controller's own) to
    /// every series; a metric's own `region` label would be renamed
    /// `exported_region` and read as the controller's. The probed region is
    /// `target_region` everywhere.
    #[test]
    fn no_metric_has_a_label_that_collides_with_the_scrape_target() {
        let metrics = Metrics::new();
        metrics
            .region_state
            .with_label_values(&["eu-west-1", "healthy"])
            .set(1);
        metrics
            .decisions_total
            .with_label_values(&["eu-west-1", "drain"])
            .inc();
        for family in metrics.registry.gather() {
            for metric in family.get_metric() {
                for label in metric.get_label() {
                    assert_ne!(
                        label.name(),
                        "region",
                        "{} has a `region` label",
                        family.name()
                    );
                }
            }
        }
        assert!(metrics.render().contains("target_region=\"eu-west-1\""));
    }
}
