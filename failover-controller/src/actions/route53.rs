//! Route53: the latency record sets this controller owns, one per region
//! (SetIdentifier = region), removed and restored in single atomic change
//! batches, each followed by a wait for INSYNC. A region's record is either
//! an alias record (to its load balancer, on AWS) or A records with values.
//!
//! Invariants: only records with the configured name, type A and a
//! SetIdentifier naming a configured region are ever read as ours or
//! changed; the last serving record is never removed. Calls are rate-limited
//! well under the API limit and retried on throttling,
//! PriorRequestNotComplete and 5xx with jittered exponential backoff (the
//! SDK's own retries are off so that every attempt is counted).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_route53::config::http::HttpResponse;
use aws_sdk_route53::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_route53::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord,
    ResourceRecordSet, ResourceRecordSetRegion, RrType,
};
use rand::Rng;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::Settings;
use crate::metrics::Metrics;

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
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// A change batch was applied and is INSYNC.
    Changed { change_id: String },
    /// The records already were as asked: nothing sent.
    AlreadyInPlace,
}

/// One region's desired record.
#[derive(Debug, Clone)]
struct OwnedRecord {
    aws_region: String,
    health_check_id: String,
    /// Used when there is no alias target.
    values: Vec<String>,
    /// (dns name, hosted zone id, evaluate target health).
    alias: Option<(String, String, bool)>,
}

/// The records this controller owns, and the client that edits them.
pub struct Route53Records {
    client: aws_sdk_route53::Client,
    zone_id: String,
    record_name: String,
    ttl: i64,
    owned: BTreeMap<String, OwnedRecord>,
    min_interval: Duration,
    next_call: Mutex<Instant>,
    max_retries: u32,
    insync_timeout: Duration,
    metrics: Metrics,
}

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
            min_interval: Duration::from_secs_f64(1.0 / r.max_requests_per_second),
            next_call: Mutex::new(Instant::now()),
            max_retries: r.max_retries,
            insync_timeout: Duration::from_millis(r.insync_timeout_ms),
            metrics,
        }
    }

    fn desired(&self, region: &str) -> Result<ResourceRecordSet, Route53Error> {
        let owned = self
            .owned
            .get(region)
            .ok_or_else(|| Route53Error::NotOwned(region.into()))?;
        let mut builder = ResourceRecordSet::builder()
            .name(&self.record_name)
            .r#type(RrType::A)
            .set_identifier(region)
            .region(ResourceRecordSetRegion::from(owned.aws_region.as_str()));
        if !owned.health_check_id.is_empty() {
            builder = builder.health_check_id(&owned.health_check_id);
        }
        if let Some((dns_name, zone_id, evaluate)) = &owned.alias {
            // An alias record has no TTL and no values: Route53 answers with
            // the target's current addresses.
            let target = AliasTarget::builder()
                .dns_name(dns_name)
                .hosted_zone_id(zone_id)
                .evaluate_target_health(*evaluate)
                .build()
                .map_err(|e| Route53Error::Build(e.to_string()))?;
            return builder
                .alias_target(target)
                .build()
                .map_err(|e| Route53Error::Build(e.to_string()));
        }
        builder = builder.ttl(self.ttl);
        for value in &owned.values {
            builder = builder.resource_records(
                ResourceRecord::builder()
                    .value(value)
                    .build()
                    .map_err(|e| Route53Error::Build(e.to_string()))?,
            );
        }
        builder
            .build()
            .map_err(|e| Route53Error::Build(e.to_string()))
    }

    /// Reads back our own records (and only those), by region.
    pub async fn list_owned(&self) -> Result<BTreeMap<String, ResourceRecordSet>, Route53Error> {
        let mut found = BTreeMap::new();
        let mut start: Option<(String, RrType, Option<String>)> =
            Some((self.record_name.clone(), RrType::A, None));
        while let Some((name, rr_type, identifier)) = start.take() {
            let page = self
                .call("ListResourceRecordSets", || {
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

    /// Removes a region's record (drain). Refuses to remove the last one.
    pub async fn remove(&self, region: &str) -> Result<ChangeOutcome, Route53Error> {
        let present = self.list_owned().await?;
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
        )
        .await
    }

    /// Puts a region's record back as configured (restore, drift repair).
    pub async fn restore(&self, region: &str) -> Result<ChangeOutcome, Route53Error> {
        let desired = self.desired(region)?;
        let present = self.list_owned().await?;
        if let Some(current) = present.get(region) {
            if same_record(current, &desired) {
                return Ok(ChangeOutcome::AlreadyInPlace);
            }
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
        )
        .await
    }

    async fn apply(
        &self,
        changes: Vec<Change>,
        comment: &str,
    ) -> Result<ChangeOutcome, Route53Error> {
        let batch = ChangeBatch::builder()
            .set_changes(Some(changes))
            .comment(comment)
            .build()
            .map_err(|e| Route53Error::Build(e.to_string()))?;
        let output = self
            .call("ChangeResourceRecordSets", || {
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
        self.wait_insync(&change_id).await?;
        Ok(ChangeOutcome::Changed { change_id })
    }

    /// Polls GetChange until INSYNC or the timeout.
    async fn wait_insync(&self, change_id: &str) -> Result<(), Route53Error> {
        let started = Instant::now();
        loop {
            let output = self
                .call("GetChange", || {
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
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// One API call: rate-limited, counted, retried when retrying helps.
    async fn call<T, E, F, Fut>(
        &self,
        operation: &'static str,
        mut send: F,
    ) -> Result<T, Route53Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.wait_for_slot().await;
            let error = match send().await {
                Ok(value) => {
                    self.metrics
                        .route53_calls_total
                        .with_label_values(&[operation, "ok"])
                        .inc();
                    return Ok(value);
                }
                Err(error) => error,
            };
            let status = error
                .raw_response()
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            let code = error.code().unwrap_or_default().to_string();
            let throttled = matches!(
                code.as_str(),
                "Throttling"
                    | "ThrottlingException"
                    | "PriorRequestNotComplete"
                    | "RequestLimitExceeded"
            ) || status == 429;
            let retryable = throttled
                || status >= 500
                || matches!(
                    error,
                    SdkError::TimeoutError(_) | SdkError::DispatchFailure(_)
                );
            let outcome = if throttled { "throttled" } else { "error" };
            self.metrics
                .route53_calls_total
                .with_label_values(&[operation, outcome])
                .inc();
            if !retryable {
                let message = match error.message() {
                    Some(m) => format!("{code}: {m}"),
                    None => format!(
                        "{code} (status {status}): {}",
                        aws_sdk_route53::error::DisplayErrorContext(&error)
                    ),
                };
                return Err(Route53Error::Api { operation, message });
            }
            if attempt > self.max_retries {
                return Err(Route53Error::Exhausted {
                    operation,
                    attempts: attempt,
                });
            }
            let base = 100u64.saturating_mul(1 << attempt.min(6));
            let jitter = rand::thread_rng().gen_range(0..=base);
            tracing::warn!(operation, %code, status, attempt, "route53 call failed, retrying");
            tokio::time::sleep(Duration::from_millis(base / 2 + jitter)).await;
        }
    }

    async fn wait_for_slot(&self) {
        let mut next = self.next_call.lock().await;
        let now = Instant::now();
        if *next > now {
            tokio::time::sleep_until(*next).await;
        }
        *next = Instant::now() + self.min_interval;
    }
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

fn same_record(a: &ResourceRecordSet, b: &ResourceRecordSet) -> bool {
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
    a.ttl() == b.ttl()
        && a.region() == b.region()
        && a.health_check_id().unwrap_or_default() == b.health_check_id().unwrap_or_default()
        && values(a) == values(b)
        && alias(a) == alias(b)
}
