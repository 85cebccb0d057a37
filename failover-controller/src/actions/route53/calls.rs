//! How every Route53 API call is made: rate-limited well under the API
//! limit, counted, retried on throttling, PriorRequestNotComplete and 5xx
//! with jittered exponential backoff, and, for the calls of a change, fenced
//! by the lease: confirmed before every attempt and abandoned at the lease
//! deadline, so that a leader paused or cut off in the middle of a
//! throttled change never sends a retry after another replica could lead.

use std::future::Future;
use std::time::Duration;

use aws_sdk_route53::config::http::HttpResponse;
use aws_sdk_route53::error::{ProvideErrorMetadata, SdkError};
use rand::Rng;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{LeaseCheck, Route53Error};
use crate::metrics::Metrics;

/// The rate limit, retry policy and counters shared by every call.
pub(super) struct Calls {
    min_interval: Duration,
    next_call: Mutex<Instant>,
    max_retries: u32,
    metrics: Metrics,
}

impl Calls {
    pub fn new(max_requests_per_second: f64, max_retries: u32, metrics: Metrics) -> Self {
        Self {
            min_interval: Duration::from_secs_f64(1.0 / max_requests_per_second),
            next_call: Mutex::new(Instant::now()),
            max_retries,
            metrics,
        }
    }

    /// One API call: rate-limited, counted, retried when retrying helps.
    /// With `lease`, every attempt is preceded by a lease confirmation and
    /// raced against its deadline (checked first, so a replica that wakes
    /// up past its deadline sends nothing).
    pub async fn call<T, E, F, Fut>(
        &self,
        operation: &'static str,
        lease: Option<&dyn LeaseCheck>,
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
            let result = match lease {
                None => send().await,
                Some(lease) => fenced(operation, lease, send()).await?,
            };
            let error = match result {
                Ok(value) => {
                    self.count(operation, "ok");
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
            self.count(operation, if throttled { "throttled" } else { "error" });
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

    fn count(&self, operation: &str, outcome: &str) {
        self.metrics
            .route53_calls_total
            .with_label_values(&[operation, outcome])
            .inc();
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

/// Confirms the lease, then runs `request` until the lease deadline at the
/// latest. The request future is not polled (nothing is sent) when the
/// deadline has passed by the time it would start.
async fn fenced<T>(
    operation: &'static str,
    lease: &dyn LeaseCheck,
    request: impl Future<Output = T>,
) -> Result<T, Route53Error> {
    let lost = |reason: String| Route53Error::LeaseLost { operation, reason };
    let until = lease.confirm().await.map_err(lost)?;
    if Instant::now() >= until {
        return Err(lost(
            "the lease deadline passed before the request was sent".into(),
        ));
    }
    tokio::select! {
        biased;
        _ = tokio::time::sleep_until(until) => Err(lost(
            "the lease deadline passed with the request in flight; it was abandoned".into(),
        )),
        result = request => Ok(result),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    struct Until(Instant);

    #[async_trait::async_trait]
    impl LeaseCheck for Until {
        async fn confirm(&self) -> Result<Instant, String> {
            Ok(self.0)
        }
    }

    struct Lost;

    #[async_trait::async_trait]
    impl LeaseCheck for Lost {
        async fn confirm(&self) -> Result<Instant, String> {
            Err("not held".into())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_runs_only_within_the_lease() {
        let sent = AtomicBool::new(false);
        let request = async {
            sent.store(true, Ordering::SeqCst);
        };
        let past = Until(Instant::now());
        assert!(matches!(
            fenced("ChangeResourceRecordSets", &past, request).await,
            Err(Route53Error::LeaseLost { .. })
        ));
        assert!(!sent.load(Ordering::SeqCst), "sent past the deadline");
        let request = async { sent.store(true, Ordering::SeqCst) };
        assert!(matches!(
            fenced("ChangeResourceRecordSets", &Lost, request).await,
            Err(Route53Error::LeaseLost { .. })
        ));
        assert!(!sent.load(Ordering::SeqCst), "sent without the lease");
        // A request still running at the deadline is abandoned there.
        let soon = Until(Instant::now() + Duration::from_secs(1));
        let started = Instant::now();
        let slow = tokio::time::sleep(Duration::from_secs(10));
        assert!(fenced("GetChange", &soon, slow).await.is_err());
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        let later = Until(Instant::now() + Duration::from_secs(1));
        let fast = async { 7 };
        assert_eq!(fenced("GetChange", &later, fast).await.unwrap(), 7);
    }
}
