//! How much availability a drill's request count can vouch for: the
//! one-sided lower confidence bound on the success probability.
//!
//! A drill without a failure does not prove 100%: zero failures in N
//! requests bounds availability at about 1 - 3/N with 95% confidence (the
//! rule of three), so a 99.99% claim needs some 30,000 requests. With
//! failures, the bound is Clopper-Pearson's exact one: the availability at
//! which seeing this many failures or fewer has a 5% chance. Exact rather
//! than Wilson's approximation because for zero failures it *is* the rule
//! of three's `0.05^(1/N)`, so the report and docs/drills.md agree.

use serde::Serialize;

use crate::model::Totals;

/// The confidence of every bound the report prints.
pub(crate) const CONFIDENCE: f64 = 0.95;

/// The bound for one drill, with what a claim of the SLO would need.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct AvailabilityBound {
    pub requests: u64,
    /// Failed after the retry plus unknown outcome: a client that was not
    /// told the outcome was not served.
    pub failures: u64,
    /// Availability is at least this, with [`CONFIDENCE`].
    pub lower: f64,
    /// The SLO the error budget uses (0.9999).
    pub slo: f64,
    /// Whether `lower` reaches the SLO.
    pub supports_slo: bool,
    /// Requests without a failure that a claim of the SLO needs.
    pub requests_for_slo: u64,
}

impl AvailabilityBound {
    /// `None` for a drill without requests: nothing to bound.
    pub fn new(totals: &Totals, slo: f64) -> Option<Self> {
        let requests = totals.requests;
        if requests == 0 {
            return None;
        }
        let failures = (totals.failed + totals.unknown).min(requests);
        let lower = lower_bound(requests, failures, 1.0 - CONFIDENCE);
        // (slo)^N <= alpha  <=>  N >= ln(alpha) / ln(slo).
        let requests_for_slo = if slo > 0.0 && slo < 1.0 {
            ((1.0 - CONFIDENCE).ln() / slo.ln()).ceil() as u64
        } else {
            0
        };
        Some(Self {
            requests,
            failures,
            lower,
            slo,
            supports_slo: lower >= slo,
            requests_for_slo,
        })
    }
}

/// Clopper-Pearson's one-sided lower bound on the success probability
/// after `failures` failures in `trials`, at level `alpha`: `1 - q`, where
/// `q` is the failure probability at which `P(F <= failures) = alpha`.
pub(crate) fn lower_bound(trials: u64, failures: u64, alpha: f64) -> f64 {
    if trials == 0 || failures >= trials {
        return 0.0;
    }
    if failures == 0 {
        return alpha.powf(1.0 / trials as f64);
    }
    // P(F <= failures) falls as q grows: bisect for the q where it is alpha.
    let (mut low, mut high) = (0.0_f64, 1.0_f64);
    for _ in 0..64 {
        let middle = (low + high) / 2.0;
        if binomial_cdf(trials, failures, middle) > alpha {
            low = middle;
        } else {
            high = middle;
        }
    }
    1.0 - high
}

/// `P(F <= k)` for `F ~ Binomial(n, q)`, summed in log space so that a
/// first term like `0.99^180000` does not underflow to zero.
fn binomial_cdf(n: u64, k: u64, q: f64) -> f64 {
    if q <= 0.0 {
        return 1.0;
    }
    if q >= 1.0 {
        return if k >= n { 1.0 } else { 0.0 };
    }
    let log_odds = q.ln() - (-q).ln_1p();
    let mut log_term = n as f64 * (-q).ln_1p();
    let mut log_sum = log_term;
    for j in 0..k {
        log_term += ((n - j) as f64 / (j + 1) as f64).ln() + log_odds;
        let (big, small) = if log_term > log_sum {
            (log_term, log_sum)
        } else {
            (log_sum, log_term)
        };
        log_sum = big + (small - big).exp().ln_1p();
    }
    log_sum.exp().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(requests: u64, failed: u64, unknown: u64) -> Totals {
        Totals {
            requests,
            failed,
            unknown,
            ok: requests - failed - unknown,
            ..Totals::default()
        }
    }

    #[test]
    fn zero_failures_give_the_rule_of_three() {
        let bound = AvailabilityBound::new(&totals(30_000, 0, 0), 0.9999).unwrap();
        assert!(
            (bound.lower - (1.0 - 3.0 / 30_000.0)).abs() < 2e-7,
            "{bound:?}"
        );
        assert!(bound.supports_slo);
        assert_eq!(bound.requests_for_slo, 29_956);
        let small = AvailabilityBound::new(&totals(2_700, 0, 0), 0.9999).unwrap();
        assert!((small.lower - 0.99889).abs() < 1e-5, "{small:?}");
        assert!(!small.supports_slo);
    }

    #[test]
    fn failures_lower_the_bound_as_clopper_pearson_says() {
        // Reference values from exact binomial sums in Python (math.comb,
        // bisected to 1e-15), the 5% quantile of Beta(n - k, k + 1).
        assert!((lower_bound(100, 1, 0.05) - 0.953_440).abs() < 1e-5);
        assert!((lower_bound(1_000, 10, 0.05) - 0.983_097).abs() < 1e-5);
        assert!((lower_bound(180_000, 3, 0.05) - 0.999_957).abs() < 1e-6);
        // Unknown outcomes count as failures.
        let bound = AvailabilityBound::new(&totals(100, 0, 1), 0.9999).unwrap();
        assert_eq!(bound.failures, 1);
        assert!((bound.lower - 0.953_440).abs() < 1e-5);
    }

    #[test]
    fn nothing_to_bound_without_requests_and_nothing_left_when_all_failed() {
        assert_eq!(AvailabilityBound::new(&totals(0, 0, 0), 0.9999), None);
        assert_eq!(lower_bound(10, 10, 0.05), 0.0);
    }
}
