//! Start-up validation: every message names the offending field.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use super::Settings;

impl Settings {
    /// Checks the settings as a whole; the error names the first bad field.
    pub fn validate(&self) -> Result<(), String> {
        let names: Vec<&str> = self.regions.iter().map(|r| r.name.as_str()).collect();
        if names.is_empty() {
            return Err("regions: at least one region is required".into());
        }
        let mut seen = BTreeSet::new();
        for (i, region) in self.regions.iter().enumerate() {
            if region.name.is_empty() {
                return Err(format!("regions[{i}].name: must not be empty"));
            }
            if !seen.insert(region.name.as_str()) {
                return Err(format!(
                    "regions[{i}].name: duplicate region {:?}",
                    region.name
                ));
            }
            validate_region_endpoints(i, region)?;
        }
        if self.region.is_empty() {
            return Err("region: this replica's region is required (FAILOVER_REGION)".into());
        }
        if !names.contains(&self.region.as_str()) {
            return Err(format!(
                "region: {:?} is not one of the configured regions",
                self.region
            ));
        }
        let role = &self.database_runtime_role;
        if !role.is_empty() && !crate::db::is_role_name(role) {
            return Err(
                "database_runtime_role: must be a lower-case SQL identifier (letters, digits, underscores)"
                    .into(),
            );
        }
        let p = &self.probe;
        if p.interval_ms < 50 {
            return Err("probe.interval_ms: must be at least 50".into());
        }
        if p.timeout_ms == 0 || p.timeout_ms > p.interval_ms {
            return Err("probe.timeout_ms: must be between 1 and probe.interval_ms".into());
        }
        if !(p.cold_round_trips.is_finite() && (0.0..=20.0).contains(&p.cold_round_trips)) {
            return Err("probe.cold_round_trips: must be between 0 and 20".into());
        }
        for (from, row) in &p.round_trip_ms {
            for (to, rtt) in row {
                let field = format!("probe.round_trip_ms.{from}.{to}");
                for region in [from, to] {
                    if !names.contains(&region.as_str()) {
                        return Err(format!(
                            "{field}: {region:?} is not one of the configured regions"
                        ));
                    }
                }
                if !(rtt.is_finite() && *rtt >= 0.0 && *rtt <= 10_000.0) {
                    return Err(format!(
                        "{field}: must be between 0 and 10000 ms, not {rtt}"
                    ));
                }
                let timeout = p.timeout_for(from, to);
                if timeout > p.interval_ms {
                    return Err(format!(
                        "{field}: a cold connection ({} round trips of {rtt} ms and \
                         timeout_margin_ms {}) takes {timeout} ms, more than probe.interval_ms \
                         {}: raise probe.interval_ms, or the region is failed on every reconnect",
                        p.cold_round_trips, p.timeout_margin_ms, p.interval_ms
                    ));
                }
            }
        }
        if p.failures_to_down == 0 {
            return Err("probe.failures_to_down: must be at least 1".into());
        }
        if p.successes_to_up == 0 {
            return Err("probe.successes_to_up: must be at least 1".into());
        }
        if p.vote_freshness_ms < p.interval_ms * 2 {
            return Err("probe.vote_freshness_ms: must be at least twice probe.interval_ms".into());
        }
        if !p.path.starts_with('/') {
            return Err("probe.path: must start with /".into());
        }
        if !matches!(self.probe.instance_scheme.as_str(), "http" | "https") {
            return Err(format!(
                "probe.instance_scheme: must be \"http\" or \"https\", not {:?}",
                self.probe.instance_scheme
            ));
        }
        if p.path.trim_end_matches('/') == ADMISSION_PATH {
            return Err(format!("probe.path: {}", admission_probe_message()));
        }
        if !p.local_address.is_empty() && p.local_address.parse::<std::net::IpAddr>().is_err() {
            return Err("probe.local_address: must be an IP address or empty".into());
        }
        if !p.ca_file.is_empty() {
            crate::ca_bundle::read(std::path::Path::new(&p.ca_file))
                .map_err(|e| format!("probe.ca_file: {e}"))?;
        }
        // Both or neither, readable, a certificate and the key that is its
        // own; the error names the field.
        crate::client_identity::read(&p.client_cert_file, &p.client_key_file)
            .map_err(|e| e.to_string())?;
        let d = &self.decision;
        if d.interval_ms < 10 {
            return Err("decision.interval_ms: must be at least 10".into());
        }
        if d.min_healthy_regions == 0 || d.min_healthy_regions > names.len() {
            return Err(
                "decision.min_healthy_regions: must be between 1 and the number of regions".into(),
            );
        }
        if d.hold_down_base_ms == 0 || d.hold_down_max_ms < d.hold_down_base_ms {
            return Err(
                "decision.hold_down_max_ms: must be at least decision.hold_down_base_ms (> 0)"
                    .into(),
            );
        }
        if d.hold_down_half_life_ms == 0 {
            return Err("decision.hold_down_half_life_ms: must be positive".into());
        }
        let l = &self.lease;
        if l.name.is_empty() {
            return Err("lease.name: must not be empty".into());
        }
        if l.renew_interval_ms == 0 || l.renew_interval_ms * 2 > l.ttl_ms {
            return Err(
                "lease.renew_interval_ms: must be positive and at most half of lease.ttl_ms".into(),
            );
        }
        if d.max_view_age_ms < l.ttl_ms || d.max_view_age_ms < d.interval_ms * 4 {
            return Err(
                "decision.max_view_age_ms: must be at least lease.ttl_ms and at least four \
                 decision.interval_ms (a healthy replica refreshes its view every round)"
                    .into(),
            );
        }
        self.validate_dns(&names)?;
        self.validate_route53()
    }

    fn validate_dns(&self, names: &[&str]) -> Result<(), String> {
        let dns = &self.dns;
        if !dns.enabled {
            return Ok(());
        }
        for (i, region) in self.regions.iter().enumerate() {
            if region.instances.is_empty() && !region.has_alias() {
                return Err(format!(
                    "regions[{i}].instances: authoritative DNS (dns.enabled) answers a region with \
                     its ip instances, or a CNAME to regions[{i}].alias_dns_name; region {:?} has \
                     neither (set one, or dns.enabled = false)",
                    region.name
                ));
            }
        }
        if !dns.zone.ends_with('.') || dns.zone.len() < 2 {
            return Err("dns.zone: must be a fully qualified name ending in a dot".into());
        }
        if dns.record.is_empty() || dns.record.contains('.') {
            return Err("dns.record: must be one label, e.g. \"api\"".into());
        }
        if dns.nameservers.is_empty() || dns.nameservers.iter().any(|n| !n.ends_with('.')) {
            return Err(
                "dns.nameservers: at least one fully qualified name ending in a dot".into(),
            );
        }
        if !dns.hostmaster.ends_with('.') {
            return Err("dns.hostmaster: must be a fully qualified name ending in a dot".into());
        }
        if !dns.default_client_region.is_empty()
            && !names.contains(&dns.default_client_region.as_str())
        {
            return Err("dns.default_client_region: not a configured region".into());
        }
        for (i, subnet) in dns.client_subnets.iter().enumerate() {
            if !names.contains(&subnet.region.as_str()) {
                return Err(format!(
                    "dns.client_subnets[{i}].region: {:?} is not a configured region",
                    subnet.region
                ));
            }
        }
        for (client, row) in &dns.latency_ms {
            if !names.contains(&client.as_str()) {
                return Err(format!("dns.latency_ms.{client}: not a configured region"));
            }
            for (target, value) in row {
                if !names.contains(&target.as_str()) || !value.is_finite() || *value < 0.0 {
                    return Err(format!(
                        "dns.latency_ms.{client}.{target}: unknown region or negative value"
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_route53(&self) -> Result<(), String> {
        let r = &self.route53;
        if !r.enabled {
            return Ok(());
        }
        if r.hosted_zone_id.is_empty() {
            return Err("route53.hosted_zone_id: required when route53.enabled".into());
        }
        if !r.record_name.ends_with('.') {
            return Err("route53.record_name: a fully qualified name ending in a dot".into());
        }
        if !(r.max_requests_per_second > 0.0 && r.max_requests_per_second <= 4.0) {
            return Err(
                "route53.max_requests_per_second: must be in (0, 4], under the API limit of 5"
                    .into(),
            );
        }
        for (i, region) in self.regions.iter().enumerate() {
            if region.aws_region.is_empty() {
                return Err(format!(
                    "regions[{i}].aws_region: required when route53.enabled"
                ));
            }
            if !region.has_alias()
                && region.instances.is_empty()
                && region.route53_values.is_empty()
            {
                return Err(format!(
                    "regions[{i}].alias_dns_name: required when route53.enabled and the region \
                     has no ip instances or route53_values (the record needs a target)"
                ));
            }
            if region.health_check_id.is_empty() && !r.allow_records_without_health_check {
                return Err(format!(
                    "regions[{i}].health_check_id: required when route53.enabled (the record's \
                     Route53 health check drains region {:?} when the controller cannot); set \
                     route53.allow_records_without_health_check = true to waive",
                    region.name
                ));
            }
        }
        Ok(())
    }
}

/// The service's admission endpoint: what the Route53 health checks probe.
const ADMISSION_PATH: &str = "/healthz/region";

/// Why the controllers must not probe the admission endpoint.
fn admission_probe_message() -> String {
    format!(
        "{ADMISSION_PATH} answers 503 for a region the controller drained, so probing it would \
         read our own drain as a failure and the region could never return; probe the \
         service's health endpoint /healthz/instance instead"
    )
}

/// Checks one region's instances, health URLs and alias target.
fn validate_region_endpoints(i: usize, region: &super::RegionSettings) -> Result<(), String> {
    if region.instances.is_empty() && region.health_urls.is_empty() {
        return Err(format!(
            "regions[{i}].instances: at least one instance (ip:port) or one entry in \
             regions[{i}].health_urls is required"
        ));
    }
    for (j, instance) in region.instances.iter().enumerate() {
        if instance.parse::<SocketAddr>().is_err() {
            return Err(format!(
                "regions[{i}].instances[{j}]: {instance:?} is not an ip:port address"
            ));
        }
    }
    for (j, url) in region.health_urls.iter().enumerate() {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| format!("regions[{i}].health_urls[{j}]: {url:?} is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(format!(
                "regions[{i}].health_urls[{j}]: {url:?} must be an http:// or https:// URL with a host"
            ));
        }
        if parsed.path().trim_end_matches('/') == ADMISSION_PATH {
            return Err(format!(
                "regions[{i}].health_urls[{j}]: {}",
                admission_probe_message()
            ));
        }
    }
    let alias_name = !region.alias_dns_name.is_empty();
    let alias_zone = !region.alias_hosted_zone_id.is_empty();
    if alias_name && !alias_zone {
        return Err(format!(
            "regions[{i}].alias_hosted_zone_id: required with regions[{i}].alias_dns_name \
             (the alias target's canonical hosted zone, e.g. the ALB's zone id)"
        ));
    }
    if alias_zone && !alias_name {
        return Err(format!(
            "regions[{i}].alias_dns_name: required with regions[{i}].alias_hosted_zone_id"
        ));
    }
    if alias_name {
        let name = region.alias_dns_name.trim_end_matches('.');
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        if !valid {
            return Err(format!(
                "regions[{i}].alias_dns_name: {:?} is not a DNS name",
                region.alias_dns_name
            ));
        }
        if !region.route53_values.is_empty() {
            return Err(format!(
                "regions[{i}].route53_values: not allowed with regions[{i}].alias_dns_name \
                 (an alias record has no values)"
            ));
        }
    }
    if region.evaluate_target_health && !alias_name {
        return Err(format!(
            "regions[{i}].evaluate_target_health: only applies to an alias record; set \
             regions[{i}].alias_dns_name"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{load, FlagOverrides};

    const ROUTE53: &str =
        "[route53]\nenabled = true\nhosted_zone_id = \"Z1\"\nrecord_name = \"api.example.com.\"\n";

    fn load_text(text: &str) -> Result<crate::config::Settings, String> {
        let path = std::env::temp_dir().join(format!("fc-validate-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, text).unwrap();
        let env = vec![("FAILOVER_REGION".to_string(), "a".to_string())];
        let loaded = load(Some(&path), env, &FlagOverrides::default()).map_err(|e| e.to_string());
        std::fs::remove_file(&path).ok();
        loaded
    }

    fn regions(second_health_check: &str) -> String {
        format!(
            "[[regions]]\nname = \"a\"\naws_region = \"us-east-1\"\ninstances = [\"127.0.0.1:1\"]\n\
             health_check_id = \"hc-a\"\n[[regions]]\nname = \"b\"\naws_region = \"eu-west-1\"\n\
             instances = [\"127.0.0.2:1\"]\nhealth_check_id = \"{second_health_check}\"\n"
        )
    }

    #[test]
    fn route53_records_need_health_checks_unless_waived() {
        let err = load_text(&format!("{ROUTE53}{}", regions(""))).unwrap_err();
        assert!(
            err.contains("regions[1].health_check_id: required when route53.enabled")
                && err.contains("route53.allow_records_without_health_check"),
            "{err}"
        );
        load_text(&format!("{ROUTE53}{}", regions("hc-b"))).unwrap();
        let waived = format!(
            "{ROUTE53}allow_records_without_health_check = true\n{}",
            regions("")
        );
        load_text(&waived).unwrap();
        // Without Route53, no health check is needed.
        load_text(&regions("")).unwrap();
    }

    #[test]
    fn unknown_clients_default_to_one_region_for_every_replica() {
        let text = regions("");
        let a = load_text(&text).unwrap();
        let mut b = a.clone();
        b.region = "b".into();
        assert_eq!(a.default_client_region(), "a");
        assert_eq!(b.default_client_region(), "a");
        let configured =
            load_text(&format!("[dns]\ndefault_client_region = \"b\"\n{text}")).unwrap();
        assert_eq!(configured.default_client_region(), "b");
    }

    /// A far region gets a cold connection's time, a near one keeps
    /// `timeout_ms`; a matrix that cannot fit in the interval, or names a
    /// region that is not configured, is refused naming the pair.
    #[test]
    fn far_regions_get_the_time_of_a_cold_connection() {
        let text = format!(
            "[probe]\ninterval_ms = 1000\ntimeout_ms = 400\n\
             [probe.round_trip_ms.a]\nb = 220.0\n{}",
            regions("")
        );
        let settings = load_text(&text).unwrap();
        // 3 round trips of 220 ms and the 200 ms margin.
        assert_eq!(settings.probe.timeout_for("a", "b"), 860);
        assert_eq!(settings.probe.timeout_for("b", "a"), 860);
        assert_eq!(settings.probe.timeout_for("a", "a"), 400);
        let slow = text.replace("b = 220.0", "b = 300.0");
        let err = load_text(&slow).unwrap_err();
        assert!(
            err.contains("probe.round_trip_ms.a.b") && err.contains("takes 1100 ms"),
            "{err}"
        );
        let unknown = text.replace("b = 220.0", "c = 70.0");
        let err = load_text(&unknown).unwrap_err();
        assert!(
            err.contains("probe.round_trip_ms.a.c: \"c\" is not one of the configured regions"),
            "{err}"
        );
    }
}
