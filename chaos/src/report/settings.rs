//! The conditions a drill ran under, as the report shows them: the
//! controller settings beside the production ones of `k8s/`, and the round
//! trips the controllers' probes measured beside the configured WAN.
//!
//! A drill is only worth what its conditions are: a failover time measured
//! with 500 ms probes and a 1 s TTL says little about production's 1 s
//! probes and 30 s TTL, so the report says which settings a drill changed.

use serde::Serialize;
use serde_json::Value;

use crate::controller_settings::ControllerSettings;

/// One controller setting: what the drill ran with and what production has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct SettingRow {
    pub name: String,
    pub drill: String,
    pub production: String,
    pub overridden: bool,
}

/// The settings the controllers ran with, as the drill recorded them
/// (`configuration.controller`, written by the deployment from production's
/// file and the drill's overrides), beside production's own (the same
/// file, embedded in this binary). Empty when the report recorded none
/// (reports written before the settings were).
pub(crate) fn controller_settings(configuration: &Value) -> Vec<SettingRow> {
    let Some(settings) = configuration["controller"]["settings"].as_array() else {
        return Vec::new();
    };
    let production = ControllerSettings::production();
    settings
        .iter()
        .filter_map(|setting| {
            let key = setting["key"].as_str()?;
            let value = setting["value"].as_u64()?;
            let in_production = production
                .settings
                .iter()
                .find(|p| p.key == key)
                .map(|p| p.value);
            Some(SettingRow {
                name: describe(key),
                drill: with_unit(key, value),
                production: in_production.map_or("-".to_owned(), |v| with_unit(key, v)),
                overridden: setting["overridden"].as_bool().unwrap_or(false),
            })
        })
        .collect()
}

/// A reader's name for a setting, with its key.
fn describe(key: &str) -> String {
    let name = match key {
        "probe.interval_ms" => "probe interval",
        "probe.timeout_ms" => "probe timeout",
        "probe.failures_to_down" => "failed probes to turn a verdict down",
        "probe.successes_to_up" => "good probes to turn a verdict up",
        "probe.vote_freshness_ms" => "a vote counts for",
        "decision.hold_down_base_ms" => "hold-down before a region returns",
        "lease.ttl_ms" => "leader lease",
        "dns.ttl_seconds" => "DNS TTL",
        _ => return key.to_owned(),
    };
    format!("{name} ({key})")
}

fn with_unit(key: &str, value: u64) -> String {
    if key.ends_with("_ms") {
        format!("{value} ms")
    } else if key.ends_with("_seconds") {
        format!("{value} s")
    } else {
        value.to_string()
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
    /// How long a region's death held writes to its rows (the WAN model's
    /// lease transfer; `None` without one, or in a report from before).
    pub lease_transfer_s: Option<f64>,
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
        lease_transfer_s: wan["lease_transfer_s"].as_f64(),
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

    /// A drill that overrides settings shows them as overridden, beside
    /// production's values from `k8s/`.
    #[test]
    fn overridden_settings_are_marked_beside_production() {
        use crate::controller_settings::ControllerOverrides;
        let overrides = ControllerOverrides {
            probe: std::collections::BTreeMap::from([("interval_ms".into(), 500)]),
            dns_ttl_s: Some(1),
            ..ControllerOverrides::default()
        };
        let used = ControllerSettings::new(&overrides).unwrap();
        let configuration = serde_json::json!({ "controller": used });
        let rows = controller_settings(&configuration);
        let by_key = |key: &str| {
            rows.iter()
                .find(|row| row.name.contains(key))
                .unwrap_or_else(|| panic!("no row for {key}: {rows:?}"))
                .clone()
        };
        let ttl = by_key("dns.ttl_seconds");
        assert!(ttl.overridden);
        assert_eq!(ttl.drill, "1 s");
        assert_eq!(ttl.production, "30 s");
        assert!(by_key("probe.interval_ms").overridden);
        let timeout = by_key("probe.timeout_ms");
        assert!(!timeout.overridden);
        assert_eq!(timeout.drill, timeout.production);

        let production = serde_json::json!({ "controller": ControllerSettings::production() });
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
