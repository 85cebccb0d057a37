//! The conditions a drill ran under, as the report shows them: the
//! controller settings beside the production ones of `k8s/`, and the round
//! trips the controllers' probes measured beside the configured WAN.
//!
//! A drill is only worth what its conditions are: a failover time measured
//! with 500 ms probes and a 1 s TTL says little about production's 1 s
//! probes and 30 s TTL, so the report says which settings a drill changed.

use serde::Serialize;
use serde_json::Value;

/// The production settings, as `k8s/base/failover-controller/config.toml`
/// sets them (or, where it is silent, the controller's own defaults in
/// `failover-controller/config/default.toml`). Kept here rather than read
/// at run time so that the report renders anywhere; a test reads both files
/// and fails when they drift apart.
pub(crate) mod production {
    pub const PROBE_INTERVAL_MS: u64 = 1000;
    pub const PROBE_TIMEOUT_MS: u64 = 1000;
    pub const FAILURES_TO_DOWN: u64 = 3;
    pub const DNS_TTL_S: u64 = 30;
    /// Not set by `k8s/`, so the controller's default.
    pub const SUCCESSES_TO_UP: u64 = 3;
    /// Not set by `k8s/`, so the controller's default.
    pub const HOLD_DOWN_BASE_MS: u64 = 10_000;
}

/// The controller's default `failures_to_down`, which a drill without
/// `topology.failures_to_down` runs with.
pub(crate) const CONTROLLER_DEFAULT_FAILURES_TO_DOWN: u64 = 2;

/// One controller setting: what the drill ran with and what production has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct SettingRow {
    pub name: &'static str,
    pub drill: String,
    pub production: String,
    pub overridden: bool,
}

/// The controller settings of the drill, from `configuration.topology`
/// (where the drill file sets them; the chaos deployment writes them into
/// the controllers' configuration as `deployment/setup.rs` shows). Empty
/// when the report recorded no topology.
pub(crate) fn controller_settings(configuration: &Value) -> Vec<SettingRow> {
    let topology = &configuration["topology"];
    let Some(interval) = topology["probe_interval_ms"].as_u64() else {
        return Vec::new();
    };
    // As deployment/setup.rs: 4/5 of the interval, at least 50 ms.
    let (timeout, timeout_note) = match topology["probe_timeout_ms"].as_u64() {
        Some(timeout) => (timeout, ""),
        None => ((interval * 4 / 5).max(50), " (4/5 of the interval)"),
    };
    let (failures, failures_note) = match topology["failures_to_down"].as_u64() {
        Some(failures) => (failures, ""),
        None => (
            CONTROLLER_DEFAULT_FAILURES_TO_DOWN,
            " (the controller's default)",
        ),
    };
    let mut rows = vec![
        row(
            "probe interval",
            interval,
            production::PROBE_INTERVAL_MS,
            " ms",
            "",
        ),
        row(
            "probe timeout",
            timeout,
            production::PROBE_TIMEOUT_MS,
            " ms",
            timeout_note,
        ),
        row(
            "failed probes to turn a verdict down",
            failures,
            production::FAILURES_TO_DOWN,
            "",
            failures_note,
        ),
    ];
    if let Some(ttl) = topology["dns_ttl_s"].as_u64() {
        rows.push(row("DNS TTL", ttl, production::DNS_TTL_S, " s", ""));
    }
    // Drill files cannot change these: the deployment leaves them at the
    // controller's defaults, which production keeps too.
    rows.push(row(
        "good probes to turn a verdict up",
        production::SUCCESSES_TO_UP,
        production::SUCCESSES_TO_UP,
        "",
        " (the controller's default)",
    ));
    rows.push(row(
        "hold-down before a region returns",
        production::HOLD_DOWN_BASE_MS / 1000,
        production::HOLD_DOWN_BASE_MS / 1000,
        " s",
        " (the controller's default)",
    ));
    rows
}

fn row(name: &'static str, drill: u64, production: u64, unit: &str, note: &str) -> SettingRow {
    SettingRow {
        name,
        drill: format!("{drill}{unit}{note}"),
        production: format!("{production}{unit}"),
        overridden: drill != production,
    }
}

/// The round trips between vantage points and regions, measured and
/// configured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct LatencyMatrix {
    /// The probed regions, the columns.
    pub regions: Vec<String>,
    /// One row per vantage point (the controller replica's region).
    pub rows: Vec<LatencyRow>,
    /// Whether the drill ran across a WAN model (else: loopback).
    pub wan: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct LatencyRow {
    pub vantage: String,
    pub cells: Vec<LatencyCell>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct LatencyCell {
    /// The probes' smoothed round trip, server time included.
    pub measured_ms: Option<f64>,
    /// The WAN model's round trip between the two regions.
    pub configured_ms: Option<f64>,
}

/// The matrix over `regions`; `None` when nothing was measured and no WAN
/// was configured (nothing to show but the loopback).
pub(crate) fn latency_matrix(configuration: &Value, regions: &[String]) -> Option<LatencyMatrix> {
    let measured = &configuration["measured_rtt_ms"];
    let wan = &configuration["topology"]["wan"];
    let has_measurements = measured.as_object().is_some_and(|rows| !rows.is_empty());
    if !has_measurements && !wan.is_object() {
        return None;
    }
    let rows = regions
        .iter()
        .map(|vantage| LatencyRow {
            vantage: vantage.clone(),
            cells: regions
                .iter()
                .map(|region| LatencyCell {
                    measured_ms: measured[vantage][region].as_f64(),
                    configured_ms: configured_rtt(wan, vantage, region),
                })
                .collect(),
        })
        .collect();
    Some(LatencyMatrix {
        regions: regions.to_vec(),
        rows,
        wan: wan.is_object(),
    })
}

/// As `spec::Wan::rtt`: `local_rtt_ms` inside a region, `rtt_ms["a/b"]`
/// (either order) between two.
fn configured_rtt(wan: &Value, a: &str, b: &str) -> Option<f64> {
    if !wan.is_object() {
        return None;
    }
    if a == b {
        return wan["local_rtt_ms"].as_f64();
    }
    let rtt = &wan["rtt_ms"];
    rtt[format!("{a}/{b}")]
        .as_f64()
        .or_else(|| rtt[format!("{b}/{a}")].as_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The constants above are what `k8s/` and the controller's defaults
    /// say; this fails when either file changes without them.
    #[test]
    fn production_settings_match_k8s_and_the_controller_defaults() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let read = |path: &str| -> toml::Value {
            toml::from_str(&std::fs::read_to_string(root.join(path)).unwrap()).unwrap()
        };
        let k8s = read("k8s/base/failover-controller/config.toml");
        let defaults = read("failover-controller/config/default.toml");
        let int = |value: &toml::Value| value.as_integer().unwrap() as u64;
        assert_eq!(
            int(&k8s["probe"]["interval_ms"]),
            production::PROBE_INTERVAL_MS
        );
        assert_eq!(
            int(&k8s["probe"]["timeout_ms"]),
            production::PROBE_TIMEOUT_MS
        );
        assert_eq!(
            int(&k8s["probe"]["failures_to_down"]),
            production::FAILURES_TO_DOWN
        );
        assert_eq!(int(&k8s["dns"]["ttl_seconds"]), production::DNS_TTL_S);
        assert!(k8s["probe"].get("successes_to_up").is_none());
        assert!(k8s.get("decision").is_none());
        assert_eq!(
            int(&defaults["probe"]["successes_to_up"]),
            production::SUCCESSES_TO_UP
        );
        assert_eq!(
            int(&defaults["decision"]["hold_down_base_ms"]),
            production::HOLD_DOWN_BASE_MS
        );
        assert_eq!(
            int(&defaults["probe"]["failures_to_down"]),
            CONTROLLER_DEFAULT_FAILURES_TO_DOWN
        );
    }

    #[test]
    fn a_drill_with_laboratory_settings_is_marked_as_overriding_production() {
        let configuration = serde_json::json!({"topology": {
            "probe_interval_ms": 500, "dns_ttl_s": 1,
            "probe_timeout_ms": null, "failures_to_down": null,
        }});
        let rows = controller_settings(&configuration);
        let by_name = |name: &str| rows.iter().find(|row| row.name == name).unwrap().clone();
        assert!(by_name("probe interval").overridden);
        assert_eq!(
            by_name("probe timeout").drill,
            "400 ms (4/5 of the interval)"
        );
        assert_eq!(
            by_name("failed probes to turn a verdict down").drill,
            "2 (the controller's default)"
        );
        assert_eq!(by_name("DNS TTL").production, "30 s");
        assert!(!by_name("good probes to turn a verdict up").overridden);

        let production = serde_json::json!({"topology": {
            "probe_interval_ms": 1000, "probe_timeout_ms": 1000,
            "failures_to_down": 3, "dns_ttl_s": 30,
        }});
        assert!(controller_settings(&production)
            .iter()
            .all(|row| !row.overridden));
        assert!(controller_settings(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn the_matrix_pairs_each_measurement_with_the_configured_round_trip() {
        let regions = ["us-east-1".to_string(), "eu-west-1".to_string()];
        let configuration = serde_json::json!({
            "topology": {"wan": {"rtt_ms": {"us-east-1/eu-west-1": 70.0}, "local_rtt_ms": 1.0}},
            "measured_rtt_ms": {"eu-west-1": {"us-east-1": 74.8, "eu-west-1": 5.3}},
        });
        let matrix = latency_matrix(&configuration, &regions).unwrap();
        let eu = &matrix.rows[1];
        assert_eq!(eu.vantage, "eu-west-1");
        assert_eq!(eu.cells[0].measured_ms, Some(74.8));
        assert_eq!(eu.cells[0].configured_ms, Some(70.0));
        assert_eq!(eu.cells[1].configured_ms, Some(1.0));
        assert_eq!(matrix.rows[0].cells[1].measured_ms, None);
        assert_eq!(latency_matrix(&serde_json::json!({}), &regions), None);
    }
}
