//! Route53: the latency record sets this controller owns, one per region
//! (SetIdentifier = region), removed and restored in single atomic change
//! batches, each followed by a wait for INSYNC. A region's record is either
//! an alias record (to its load balancer, on AWS) or A records with values,
//! and carries the region's health check.
//!
//! Invariants: only records with the configured name, type A and a
//! SetIdentifier naming a configured region are ever read as ours or
//! changed; the last serving record is never removed; a record is never
//! rewritten without its health check; every call of a change, retries and
//! INSYNC polls included, is made under a confirmed lease ([`LeaseCheck`]).
//!
//! Layout: this module (the records and their changes), `calls` (rate
//! limit, retries, lease fence of every call), `record_set` (the desired
//! record and the drift comparison).

mod calls;
mod record_set;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_route53::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecordSet, RrType,
};
use tokio::time::Instant;

use crate::config::Settings;
use crate::metrics::Metrics;
use calls::Calls;
use record_set::{desired, same_name, same_record, OwnedRecord};

/// Errors of the Route53 boundary.
#[derive(Debug, thiserror::Error)]
pub enum Route53Error {
    #[error("route53 {operation} failed: {message}")]
    Api {
        operation: &'static str,
        message: String,
    },
    #[error("route53 {operation} still throttled after {attempts} attempts")]
    Exhausted {
        operation: &'static str,
        attempts: u32,
    },
    #[error("refusing to remove {region}: it is the last serving record")]
    LastServing { region: String },
    #[error("change {change_id} not INSYNC after {waited:?}")]
    NotInSync { change_id: String, waited: Duration },
    #[error("{0} is not a region this controller owns")]
    NotOwned(String),
    #[error("invalid record set: {0}")]
    Build(String),
    /// The lease could not be confirmed before a call of a change (or ran
    /// out during one): this replica stopped acting.
    #[error("stopped before route53 {operation}: {reason}")]
    LeaseLost {
        operation: &'static str,
        reason: String,
    },
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// A change batch was applied and is INSYNC.
    Changed { change_id: String },
    /// The records already were as asked: nothing sent.
    AlreadyInPlace,
}

/// The leader's right to change records, confirmed before every call of a
/// change (each attempt and retry of the change itself, the reads before
/// it, every INSYNC poll), so that a leader that lost its lease stops
/// acting and stops waiting.
#[async_trait::async_trait]
pub trait LeaseCheck: Send + Sync {
    /// Confirms that this replica still leads; returns until when (local
    /// monotonic clock) it may act on that confirmation, or why it may not.
    async fn confirm(&self) -> Result<Instant, String>;
}

/// The records this controller owns, and the client that edits them.
pub struct Route53Records {
    client: aws_sdk_route53::Client,
    zone_id: String,
    record_name: String,
    ttl: i64,
    owned: BTreeMap<String, OwnedRecord>,
    calls: Calls,
    insync_timeout: Duration,
}

/// How often GetChange is asked while a change is PENDING.
const INSYNC_POLL: Duration = Duration::from_secs(1);

impl Route53Records {
    /// Builds the client: the default credential chain, or `credentials`
    /// (tests); `route53.endpoint_url` points it at a local API server.
    pub async fn new(
        settings: &Settings,
        metrics: Metrics,
        credentials: Option<Credentials>,
    ) -> Self {
        let r = &settings.route53;
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(r.aws_region.clone()))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_secs(10))
                    .build(),
            );
        if !r.endpoint_url.is_empty() {
            loader = loader.endpoint_url(r.endpoint_url.clone());
        }
        if let Some(credentials) = credentials {
            loader = loader.credentials_provider(credentials);
        }
        let sdk_config = loader.load().await;
        let owned = settings
            .regions
            .iter()
            .map(|region| {
                let values = if region.route53_values.is_empty() {
                    region
                        .instance_ips()
                        .iter()
                        .map(|ip| ip.to_string())
                        .collect()
                } else {
                    region.route53_values.clone()
                };
                let alias = region.has_alias().then(|| {
                    (
                        region.alias_dns_name.clone(),
                        region.alias_hosted_zone_id.clone(),
                        region.evaluate_target_health,
                    )
                });
                let record = OwnedRecord {
                    aws_region: region.aws_region.clone(),
                    health_check_id: region.health_check_id.clone(),
                    values,
                    alias,
                };
                (region.name.clone(), record)
            })
            .collect();
        Self {
            client: aws_sdk_route53::Client::new(&sdk_config),
            zone_id: r.hosted_zone_id.clone(),
            record_name: r.record_name.clone(),
            ttl: r.record_ttl,
            owned,
            calls: Calls::new(r.max_requests_per_second, r.max_retries, metrics),
            insync_timeout: Duration::from_millis(r.insync_timeout_ms),
        }
    }

    /// Reads back our own records (and only those), by region.
    pub async fn list_owned(&self) -> Result<BTreeMap<String, ResourceRecordSet>, Route53Error> {
        self.list_owned_under(None).await
    }

    /// Removes a region's record (drain). Refuses to remove the last one.
    pub async fn remove(
        &self,
        region: &str,
        lease: &dyn LeaseCheck,
    ) -> Result<ChangeOutcome, Route53Error> {
        let present = self.list_owned_under(Some(lease)).await?;
        let Some(current) = present.get(region) else {
            return Ok(ChangeOutcome::AlreadyInPlace);
        };
        if present.len() <= 1 {
            return Err(Route53Error::LastServing {
                region: region.into(),
            });
        }
        let change = Change::builder()
            .action(ChangeAction::Delete)
            .resource_record_set(current.clone())
            .build()
            .map_err(|e| Route53Error::Build(e.to_string()))?;
        self.apply(
            vec![change],
            &format!("failover-controller: drain {region}"),
            lease,
        )
        .await
    }

    /// Puts a region's record back as configured (restore, drift repair),
    /// with its health check.
    pub async fn restore(
        &self,
        region: &str,
        lease: &dyn LeaseCheck,
    ) -> Result<ChangeOutcome, Route53Error> {
        let owned = self
            .owned
            .get(region)
            .ok_or_else(|| Route53Error::NotOwned(region.into()))?;
        let present = self.list_owned_under(Some(lease)).await?;
        let current = present.get(region);
        let desired = desired(owned, &self.record_name, self.ttl, region, current)?;
        if current.is_some_and(|current| same_record(current, &desired)) {
            return Ok(ChangeOutcome::AlreadyInPlace);
        }
        // UPSERT keyed by name, type and our SetIdentifier: creates ours when
        // absent, replaces only ours when it drifted, never another record.
        let change = Change::builder()
            .action(ChangeAction::Upsert)
            .resource_record_set(desired)
            .build()
            .map_err(|e| Route53Error::Build(e.to_string()))?;
        self.apply(
            vec![change],
            &format!("failover-controller: restore {region}"),
            lease,
        )
        .await
    }

    async fn list_owned_under(
        &self,
        lease: Option<&dyn LeaseCheck>,
    ) -> Result<BTreeMap<String, ResourceRecordSet>, Route53Error> {
        let mut found = BTreeMap::new();
        let mut start: Option<(String, RrType, Option<String>)> =
            Some((self.record_name.clone(), RrType::A, None));
        while let Some((name, rr_type, identifier)) = start.take() {
            let page = self
                .calls
                .call("ListResourceRecordSets", lease, || {
                    self.client
                        .list_resource_record_sets()
                        .hosted_zone_id(&self.zone_id)
                        .start_record_name(&name)
                        .start_record_type(rr_type.clone())
                        .set_start_record_identifier(identifier.clone())
                        .send()
                })
                .await?;
            let mut past_our_name = false;
            for set in page.resource_record_sets() {
                if !same_name(set.name(), &self.record_name) {
                    past_our_name = true;
                    continue;
                }
                if *set.r#type() != RrType::A {
                    continue;
                }
                if let Some(id) = set.set_identifier() {
                    if self.owned.contains_key(id) {
                        found.insert(id.to_string(), set.clone());
                    }
                }
            }
            if page.is_truncated() && !past_our_name {
                if let (Some(n), Some(t)) = (page.next_record_name(), page.next_record_type()) {
                    start = Some((
                        n.to_string(),
                        t.clone(),
                        page.next_record_identifier().map(str::to_string),
                    ));
                }
            }
        }
        Ok(found)
    }

    async fn apply(
        &self,
        changes: Vec<Change>,
        comment: &str,
        lease: &dyn LeaseCheck,
    ) -> Result<ChangeOutcome, Route53Error> {
        let batch = ChangeBatch::builder()
            .set_changes(Some(changes))
            .comment(comment)
            .build()
            .map_err(|e| Route53Error::Build(e.to_string()))?;
        let output = self
            .calls
            .call("ChangeResourceRecordSets", Some(lease), || {
                self.client
                    .change_resource_record_sets()
                    .hosted_zone_id(&self.zone_id)
                    .change_batch(batch.clone())
                    .send()
            })
            .await?;
        let change_id = output
            .change_info()
            .map(|c| c.id().to_string())
            .unwrap_or_default();
        self.wait_insync(&change_id, lease).await?;
        Ok(ChangeOutcome::Changed { change_id })
    }

    /// Polls GetChange until INSYNC, the timeout, or the lease is lost:
    /// waiting is part of acting, and a replica that no longer leads stops
    /// (the new leader reads the records back and decides for itself).
    async fn wait_insync(
        &self,
        change_id: &str,
        lease: &dyn LeaseCheck,
    ) -> Result<(), Route53Error> {
        let started = Instant::now();
        loop {
            let output = self
                .calls
                .call("GetChange", Some(lease), || {
                    self.client.get_change().id(change_id).send()
                })
                .await?;
            if output
                .change_info()
                .map(|c| c.status() == &ChangeStatus::Insync)
                .unwrap_or(false)
            {
                return Ok(());
            }
            if started.elapsed() >= self.insync_timeout {
                return Err(Route53Error::NotInSync {
                    change_id: change_id.into(),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(INSYNC_POLL).await;
        }
    }
}
