//! The per-principal rate limit: a token bucket (GCRA, `governor`) per
//! principal, `rate_limit_per_second` sustained and `rate_limit_burst` at
//! once, answered with the IETF draft's `RateLimit-Policy` and `RateLimit`
//! headers (draft-ietf-httpapi-ratelimit-headers) and, when exhausted, 429
//! with `Retry-After`.
//!
//! The buckets live in this process: the limit holds per instance, and
//! each instance enforces 1/`rate_limit_instances_per_region` of the
//! region's limit, so that the region as a whole (behind a load balancer
//! that spreads evenly) allows the configured rate. Regions share nothing:
//! a principal that spreads its calls over several regions gets the limit
//! in each (docs/security.md).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::Settings;

type Limiter = RateLimiter<
    Arc<str>,
    DefaultKeyedStateStore<Arc<str>>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// The buckets of every principal seen, and the headers that describe them.
#[derive(Clone)]
pub struct RateLimit {
    limiter: Arc<Limiter>,
    /// `RateLimit-Policy`, the same on every answer.
    policy: HeaderValue,
    /// Seconds a drained bucket takes to fill again (the policy's window).
    window_s: u64,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The answer for one request.
#[derive(Debug)]
pub enum Decision {
    /// Admitted; the headers to answer with.
    Allowed {
        policy: HeaderValue,
        state: HeaderValue,
    },
    /// Refused: retry after this many seconds.
    Limited {
        policy: HeaderValue,
        state: HeaderValue,
        retry_after_s: u64,
    },
}

impl RateLimit {
    /// `None` when `rate_limit_per_second` is 0 (no limit).
    pub fn from_settings(settings: &Settings) -> Option<Self> {
        if settings.rate_limit_per_second <= 0.0 {
            return None;
        }
        let share = f64::from(settings.rate_limit_instances_per_region);
        let per_second = settings.rate_limit_per_second / share;
        let burst = ((f64::from(settings.rate_limit_burst) / share).floor() as u32).max(1);
        let period = Duration::from_secs_f64(1.0 / per_second);
        let quota =
            Quota::with_period(period)?.allow_burst(NonZeroU32::new(burst).expect("at least 1"));
        let window_s = (f64::from(burst) / per_second).ceil().max(1.0) as u64;
        let policy = HeaderValue::from_str(&format!("\"per-principal\";q={burst};w={window_s}"))
            .expect("a valid header value");
        Some(Self {
            limiter: Arc::new(
                RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            ),
            policy,
            window_s,
        })
    }

    /// Takes a token from `principal`'s bucket.
    pub fn check(&self, principal: &Arc<str>) -> Decision {
        match self.limiter.check_key(principal) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision::Allowed {
                    policy: self.policy.clone(),
                    state: state_header(remaining, if remaining == 0 { 1 } else { 0 }),
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                // Whole seconds (Retry-After has no fraction), rounded up
                // so that a client that honours it is admitted.
                let retry_after_s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let retry_after_s = retry_after_s.clamp(1, self.window_s.max(1));
                Decision::Limited {
                    policy: self.policy.clone(),
                    state: state_header(0, retry_after_s),
                    retry_after_s,
                }
            }
        }
    }

    /// Forgets the buckets that are full again (run now and then, so that
    /// principals seen once do not hold memory forever).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

fn state_header(remaining: u32, reset_s: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"per-principal\";r={remaining};t={reset_s}"))
        .expect("a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_second: f64, burst: u32, instances: u32) -> RateLimit {
        let overrides = crate::config::Overrides {
            region: Some("us-east-1".into()),
            database_url: Some("postgres://u@localhost/db".into()),
            rate_limit_per_second: Some(per_second),
            rate_limit_burst: Some(burst),
            rate_limit_instances_per_region: Some(instances),
            ..Default::default()
        };
        let settings =
            Settings::from_layers(crate::config::DEFAULTS_TOML.parse().unwrap(), &overrides)
                .unwrap();
        RateLimit::from_settings(&settings).unwrap()
    }

    #[test]
    fn a_burst_is_admitted_then_refused_with_a_retry_after() {
        let limit = limit(1.0, 3, 1);
        let alice: Arc<str> = Arc::from("alice");
        for _ in 0..3 {
            assert!(matches!(limit.check(&alice), Decision::Allowed { .. }));
        }
        match limit.check(&alice) {
            Decision::Limited {
                retry_after_s,
                state,
                policy,
            } => {
                assert_eq!(retry_after_s, 1);
                assert_eq!(state, "\"per-principal\";r=0;t=1");
                assert_eq!(policy, "\"per-principal\";q=3;w=3");
            }
            other => panic!("{other:?}"),
        }
        // Another principal has a bucket of its own.
        assert!(matches!(
            limit.check(&Arc::from("bob")),
            Decision::Allowed { .. }
        ));
    }

    #[test]
    fn each_instance_enforces_its_share_of_the_region() {
        let limit = limit(10.0, 40, 4);
        let alice: Arc<str> = Arc::from("alice");
        let admitted = (0..40)
            .filter(|_| matches!(limit.check(&alice), Decision::Allowed { .. }))
            .count();
        assert_eq!(admitted, 10);
    }
}
