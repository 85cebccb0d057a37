//! One region's latency record as configured, and how a live record is
//! compared with it. Pure functions over the SDK's types, unit-tested.
//!
//! A record that carries a health check is never rewritten without it: the
//! configured `health_check_id` is always in the record we write, and when
//! none is configured (waived with
//! `route53.allow_records_without_health_check`) the live record's own
//! health check is kept rather than stripped.

use aws_sdk_route53::types::{
    AliasTarget, ResourceRecord, ResourceRecordSet, ResourceRecordSetRegion, RrType,
};

use super::Route53Error;

/// One region's desired record.
#[derive(Debug, Clone)]
pub(super) struct OwnedRecord {
    pub aws_region: String,
    /// Empty only when waived by `route53.allow_records_without_health_check`.
    pub health_check_id: String,
    /// Used when there is no alias target.
    pub values: Vec<String>,
    /// (dns name, hosted zone id, evaluate target health).
    pub alias: Option<(String, String, bool)>,
}

/// The record set to write for `region`: as configured, with the
/// configured health check, or else with the one `live` carries.
pub(super) fn desired(
    owned: &OwnedRecord,
    record_name: &str,
    ttl: i64,
    region: &str,
    live: Option<&ResourceRecordSet>,
) -> Result<ResourceRecordSet, Route53Error> {
    let build = |e: aws_sdk_route53::error::BuildError| Route53Error::Build(e.to_string());
    let mut builder = ResourceRecordSet::builder()
        .name(record_name)
        .r#type(RrType::A)
        .set_identifier(region)
        .region(ResourceRecordSetRegion::from(owned.aws_region.as_str()));
    let health_check = match owned.health_check_id.as_str() {
        "" => live.and_then(|l| l.health_check_id()),
        configured => Some(configured),
    };
    if let Some(id) = health_check {
        builder = builder.health_check_id(id);
    }
    if let Some((dns_name, zone_id, evaluate)) = &owned.alias {
        // An alias record has no TTL and no values: Route53 answers with the
        // target's current addresses.
        let target = AliasTarget::builder()
            .dns_name(dns_name)
            .hosted_zone_id(zone_id)
            .evaluate_target_health(*evaluate)
            .build()
            .map_err(build)?;
        return builder.alias_target(target).build().map_err(build);
    }
    builder = builder.ttl(ttl);
    for value in &owned.values {
        builder = builder.resource_records(
            ResourceRecord::builder()
                .value(value)
                .build()
                .map_err(build)?,
        );
    }
    builder.build().map_err(build)
}

/// Whether two DNS names are the same (case and the final dot aside).
pub(super) fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// Whether a live record is already as desired. A live record without the
/// desired health check has drifted, as has one with different values,
/// TTL, latency region or alias target.
pub(super) fn same_record(live: &ResourceRecordSet, desired: &ResourceRecordSet) -> bool {
    let values = |s: &ResourceRecordSet| {
        let mut v: Vec<String> = s
            .resource_records()
            .iter()
            .map(|r| r.value().to_string())
            .collect();
        v.sort();
        v
    };
    let alias = |s: &ResourceRecordSet| {
        s.alias_target().map(|t| {
            (
                t.dns_name().trim_end_matches('.').to_ascii_lowercase(),
                t.hosted_zone_id().to_string(),
                t.evaluate_target_health(),
            )
        })
    };
    live.ttl() == desired.ttl()
        && live.region() == desired.region()
        && live.health_check_id().unwrap_or_default()
            == desired.health_check_id().unwrap_or_default()
        && values(live) == values(desired)
        && alias(live) == alias(desired)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(health_check_id: &str) -> OwnedRecord {
        OwnedRecord {
            aws_region: "us-east-1".into(),
            health_check_id: health_check_id.into(),
            values: vec!["192.0.2.1".into()],
            alias: None,
        }
    }

    fn live(health_check_id: Option<&str>, value: &str) -> ResourceRecordSet {
        ResourceRecordSet::builder()
            .name("api.example.com.")
            .r#type(RrType::A)
            .set_identifier("r1")
            .region(ResourceRecordSetRegion::UsEast1)
            .ttl(60)
            .set_health_check_id(health_check_id.map(str::to_string))
            .resource_records(ResourceRecord::builder().value(value).build().unwrap())
            .build()
            .unwrap()
    }

    #[test]
    fn the_configured_health_check_is_always_written() {
        let record = desired(&owned("hc-1"), "api.example.com.", 60, "r1", None).unwrap();
        assert_eq!(record.health_check_id(), Some("hc-1"));
        // A live record with another (or no) health check does not win.
        let stale = live(Some("hc-other"), "192.0.2.1");
        let record = desired(&owned("hc-1"), "api.example.com.", 60, "r1", Some(&stale)).unwrap();
        assert_eq!(record.health_check_id(), Some("hc-1"));
    }

    #[test]
    fn a_live_record_that_lost_its_health_check_has_drifted() {
        let want = desired(&owned("hc-1"), "api.example.com.", 60, "r1", None).unwrap();
        assert!(same_record(&live(Some("hc-1"), "192.0.2.1"), &want));
        assert!(!same_record(&live(None, "192.0.2.1"), &want));
        assert!(!same_record(&live(Some("hc-1"), "192.0.2.9"), &want));
    }

    #[test]
    fn without_a_configured_health_check_the_live_one_is_kept() {
        let with_check = live(Some("hc-live"), "203.0.113.9");
        let record = desired(&owned(""), "api.example.com.", 60, "r1", Some(&with_check)).unwrap();
        assert_eq!(record.health_check_id(), Some("hc-live"));
        assert_eq!(record.resource_records()[0].value(), "192.0.2.1");
        let record = desired(&owned(""), "api.example.com.", 60, "r1", None).unwrap();
        assert_eq!(record.health_check_id(), None);
    }
}
