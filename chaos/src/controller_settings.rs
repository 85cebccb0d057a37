//! The controllers' settings in a drill: by default those of the production
//! deployment, read from the very file `k8s/` deploys
//! (`k8s/base/failover-controller/config.toml`, which Terraform renders)
//! layered on the controller's own defaults
//! (`failover-controller/config/default.toml`), both embedded at build
//! time, so that the drills and a deployment cannot drift apart. A drill
//! may override single settings in its `controller:` section; the report
//! lists every setting used and marks the overridden ones.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The configuration `k8s/` deploys.
const PRODUCTION: &str = include_str!("../../k8s/base/failover-controller/config.toml");
/// The controller's defaults, which apply where the production file is silent.
const CONTROLLER_DEFAULTS: &str = include_str!("../../failover-controller/config/default.toml");

/// The tables of the controller's configuration a drill takes from
/// production and may override: how it probes, decides and holds its lease.
/// Everything else (addresses, regions, zone, Route53) belongs to the
/// deployment the drill brings up.
const TABLES: [&str; 3] = ["probe", "decision", "lease"];

/// Keys of those tables that name files or addresses of the production
/// deployment, not behaviour: the local deployment sets its own.
const DEPLOYMENT_KEYS: [&str; 6] = [
    "path",
    "local_address",
    "ca_file",
    "client_cert_file",
    "client_key_file",
    "name",
];

/// A drill's `controller:` section: settings that differ from production.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ControllerOverrides {
    pub probe: BTreeMap<String, u64>,
    pub decision: BTreeMap<String, u64>,
    pub lease: BTreeMap<String, u64>,
    /// The TTL of the controllers' DNS answers, seconds.
    pub dns_ttl_s: Option<u32>,
}

impl ControllerOverrides {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One setting the controllers run with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Setting {
    /// `probe.interval_ms`, `dns.ttl_seconds`, ...
    pub key: String,
    pub value: u64,
    /// Set by the drill rather than taken from production.
    pub overridden: bool,
}

/// The controllers' settings of one deployment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ControllerSettings {
    /// Every behavioural setting, in the order of the configuration file.
    pub settings: Vec<Setting>,
}

impl ControllerSettings {
    /// Production's settings with `overrides` applied; the error names the
    /// drill file's field.
    pub fn new(overrides: &ControllerOverrides) -> Result<Self, String> {
        let defaults = parse(
            CONTROLLER_DEFAULTS,
            "failover-controller/config/default.toml",
        );
        let production = parse(PRODUCTION, "k8s/base/failover-controller/config.toml");
        let mut settings = Vec::new();
        for table in TABLES {
            let mut values: Vec<(String, u64)> = integers(&defaults, table);
            for (key, value) in integers(&production, table) {
                match values.iter_mut().find(|(k, _)| *k == key) {
                    Some(entry) => entry.1 = value,
                    None => values.push((key, value)),
                }
            }
            let wanted = match table {
                "probe" => &overrides.probe,
                "decision" => &overrides.decision,
                _ => &overrides.lease,
            };
            for (key, value) in wanted {
                let Some(entry) = values.iter_mut().find(|(k, _)| k == key) else {
                    let known: Vec<&str> = values.iter().map(|(k, _)| k.as_str()).collect();
                    return Err(format!(
                        "field `controller.{table}.{key}`: not a setting of the controller's \
                         [{table}] (one of {})",
                        known.join(", ")
                    ));
                };
                entry.1 = *value;
            }
            settings.extend(values.into_iter().map(|(key, value)| Setting {
                overridden: wanted.contains_key(&key),
                key: format!("{table}.{key}"),
                value,
            }));
        }
        let production_ttl = integers(&production, "dns")
            .into_iter()
            .find(|(key, _)| key == "ttl_seconds")
            .map(|(_, ttl)| ttl)
            .expect("k8s/base/failover-controller/config.toml sets dns.ttl_seconds");
        settings.push(Setting {
            key: "dns.ttl_seconds".into(),
            value: overrides.dns_ttl_s.map_or(production_ttl, u64::from),
            overridden: overrides.dns_ttl_s.is_some(),
        });
        let result = Self { settings };
        result.validate()?;
        Ok(result)
    }

    /// Production's settings, untouched.
    pub fn production() -> Self {
        Self::new(&ControllerOverrides::default()).expect("the production settings are valid")
    }

    /// The value of `key` (`probe.interval_ms`).
    pub fn get(&self, key: &str) -> u64 {
        self.settings
            .iter()
            .find(|s| s.key == key)
            .unwrap_or_else(|| panic!("no controller setting {key}"))
            .value
    }

    pub fn probe_interval_ms(&self) -> u64 {
        self.get("probe.interval_ms")
    }

    pub fn dns_ttl_s(&self) -> u32 {
        self.get("dns.ttl_seconds") as u32
    }

    /// The settings a drill changed, `key = value`.
    pub fn overridden(&self) -> Vec<String> {
        self.settings
            .iter()
            .filter(|s| s.overridden)
            .map(|s| format!("{} = {}", s.key, s.value))
            .collect()
    }

    /// The `[probe]`, `[decision]` and `[lease]` tables of the controller's
    /// configuration file, with `probe_extra` (the deployment's own probe
    /// settings, TOML lines) in `[probe]`.
    pub fn toml_tables(&self, probe_extra: &str) -> String {
        let mut text = String::new();
        for table in TABLES {
            text.push_str(&format!("[{table}]\n"));
            if table == "probe" {
                text.push_str(probe_extra);
            }
            for setting in &self.settings {
                if let Some(key) = setting.key.strip_prefix(&format!("{table}.")) {
                    text.push_str(&format!("{key} = {}\n", setting.value));
                }
            }
            text.push('\n');
        }
        text
    }

    /// The limits a drill must respect; the controller checks the rest of
    /// its configuration when it starts.
    fn validate(&self) -> Result<(), String> {
        let field = |key: &str| {
            let overridden = self.settings.iter().any(|s| s.key == key && s.overridden);
            if overridden {
                format!("field `controller.{key}`")
            } else {
                format!("production setting `{key}` (k8s/base/failover-controller/config.toml)")
            }
        };
        let interval = self.probe_interval_ms();
        if !(50..=10_000).contains(&interval) {
            return Err(format!(
                "{}: must be 50 to 10000 ms",
                field("probe.interval_ms")
            ));
        }
        let timeout = self.get("probe.timeout_ms");
        if timeout < 10 || timeout > interval * 4 {
            return Err(format!(
                "{}: must be 10 ms to 4 probe intervals ({} ms)",
                field("probe.timeout_ms"),
                interval * 4
            ));
        }
        if !(1..=10).contains(&self.get("probe.failures_to_down")) {
            return Err(format!(
                "{}: must be 1 to 10",
                field("probe.failures_to_down")
            ));
        }
        if !(1..=10).contains(&self.get("probe.successes_to_up")) {
            return Err(format!(
                "{}: must be 1 to 10",
                field("probe.successes_to_up")
            ));
        }
        if self.get("lease.renew_interval_ms") >= self.get("lease.ttl_ms") {
            return Err(format!(
                "{}: must be shorter than lease.ttl_ms",
                field("lease.renew_interval_ms")
            ));
        }
        if self.dns_ttl_s() > 300 {
            return Err(format!(
                "{}: must be at most 300 s",
                field("dns.ttl_seconds")
            ));
        }
        Ok(())
    }
}

fn parse(text: &str, name: &str) -> toml::Table {
    text.parse()
        .unwrap_or_else(|error| panic!("{name} (embedded at build time) is not TOML: {error}"))
}

/// The integer settings of one table, in file order.
fn integers(document: &toml::Table, table: &str) -> Vec<(String, u64)> {
    let Some(toml::Value::Table(values)) = document.get(table) else {
        return Vec::new();
    };
    values
        .iter()
        .filter(|(key, _)| !DEPLOYMENT_KEYS.contains(&key.as_str()))
        .filter_map(|(key, value)| {
            value
                .as_integer()
                .and_then(|v| u64::try_from(v).ok())
                .map(|v| (key.clone(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The drills' defaults are the numbers `k8s/` deploys, whatever they are.
    #[test]
    fn production_settings_come_from_the_deployed_file() {
        let production: toml::Table = PRODUCTION.parse().unwrap();
        let settings = ControllerSettings::production();
        for (table, key) in [
            ("probe", "interval_ms"),
            ("probe", "timeout_ms"),
            ("probe", "failures_to_down"),
            ("probe", "vote_freshness_ms"),
        ] {
            let deployed = production[table][key].as_integer().unwrap() as u64;
            assert_eq!(
                settings.get(&format!("{table}.{key}")),
                deployed,
                "{table}.{key}"
            );
        }
        let ttl = production["dns"]["ttl_seconds"].as_integer().unwrap() as u32;
        assert_eq!(settings.dns_ttl_s(), ttl);
        // Where production is silent, the controller's own default applies.
        let defaults: toml::Table = CONTROLLER_DEFAULTS.parse().unwrap();
        let lease_ttl = defaults["lease"]["ttl_ms"].as_integer().unwrap() as u64;
        assert_eq!(settings.get("lease.ttl_ms"), lease_ttl);
        assert!(settings.overridden().is_empty());
        assert!(!settings.toml_tables("").contains("ca_file"));
    }

    #[test]
    fn overrides_are_applied_marked_and_checked() {
        let overrides = ControllerOverrides {
            probe: BTreeMap::from([("interval_ms".into(), 500), ("timeout_ms".into(), 400)]),
            dns_ttl_s: Some(1),
            ..ControllerOverrides::default()
        };
        let settings = ControllerSettings::new(&overrides).unwrap();
        assert_eq!(settings.probe_interval_ms(), 500);
        assert_eq!(settings.dns_ttl_s(), 1);
        assert_eq!(
            settings.overridden(),
            [
                "probe.interval_ms = 500",
                "probe.timeout_ms = 400",
                "dns.ttl_seconds = 1"
            ]
        );
        assert!(settings.toml_tables("").contains("\ninterval_ms = 500\n"));

        let typo = ControllerOverrides {
            probe: BTreeMap::from([("timout_ms".into(), 400)]),
            ..ControllerOverrides::default()
        };
        let error = ControllerSettings::new(&typo).unwrap_err();
        assert!(error.contains("`controller.probe.timout_ms`"), "{error}");
        assert!(error.contains("timeout_ms"), "{error}");

        let too_long = ControllerOverrides {
            probe: BTreeMap::from([("timeout_ms".into(), 60_000)]),
            ..ControllerOverrides::default()
        };
        let error = ControllerSettings::new(&too_long).unwrap_err();
        assert!(error.contains("`controller.probe.timeout_ms`"), "{error}");
    }
}
