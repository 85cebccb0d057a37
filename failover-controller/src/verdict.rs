//! One vantage point's verdict on one region, with hysteresis: K consecutive
//! failures turn it down, M consecutive successes turn it up.

use serde::{Deserialize, Serialize};

/// What a vantage point believes about a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Up,
    Down,
}

impl Verdict {
    /// The label used in the database, metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Up => "up",
            Verdict::Down => "down",
        }
    }

    /// Parses the database label.
    pub fn parse(label: &str) -> Option<Self> {
        match label {
            "up" => Some(Verdict::Up),
            "down" => Some(Verdict::Down),
            _ => None,
        }
    }
}

/// The outcome of one probe round against a region (all its instances).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    Success,
    Failure,
}

/// Counts consecutive outcomes and flips the verdict at the thresholds.
#[derive(Debug, Clone)]
pub struct VerdictTracker {
    verdict: Verdict,
    failures_to_down: u32,
    successes_to_up: u32,
    consecutive_failures: u32,
    consecutive_successes: u32,
}

impl VerdictTracker {
    /// Starts optimistic (up), so that a replica that just started cannot
    /// condemn a region before it has seen K failures.
    pub fn new(failures_to_down: u32, successes_to_up: u32) -> Self {
        Self {
            verdict: Verdict::Up,
            failures_to_down: failures_to_down.max(1),
            successes_to_up: successes_to_up.max(1),
            consecutive_failures: 0,
            consecutive_successes: 0,
        }
    }

    /// The current verdict.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// Length of the current run of equal outcomes.
    pub fn consecutive(&self) -> u32 {
        self.consecutive_failures.max(self.consecutive_successes)
    }

    /// Records one outcome; returns the new verdict when it changed.
    pub fn observe(&mut self, outcome: ProbeOutcome) -> Option<Verdict> {
        match outcome {
            ProbeOutcome::Success => {
                self.consecutive_successes = self.consecutive_successes.saturating_add(1);
                self.consecutive_failures = 0;
                if self.verdict == Verdict::Down
                    && self.consecutive_successes >= self.successes_to_up
                {
                    self.verdict = Verdict::Up;
                    return Some(Verdict::Up);
                }
            }
            ProbeOutcome::Failure => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.consecutive_successes = 0;
                if self.verdict == Verdict::Up && self.consecutive_failures >= self.failures_to_down
                {
                    self.verdict = Verdict::Down;
                    return Some(Verdict::Down);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProbeOutcome::*;

    #[test]
    fn needs_k_failures_then_m_successes() {
        let mut tracker = VerdictTracker::new(2, 3);
        assert_eq!(tracker.observe(Failure), None);
        assert_eq!(tracker.observe(Success), None);
        assert_eq!(tracker.observe(Failure), None);
        assert_eq!(tracker.observe(Failure), Some(Verdict::Down));
        assert_eq!(tracker.observe(Success), None);
        assert_eq!(tracker.observe(Success), None);
        assert_eq!(tracker.observe(Failure), None);
        assert_eq!(tracker.verdict(), Verdict::Down);
        for _ in 0..2 {
            assert_eq!(tracker.observe(Success), None);
        }
        assert_eq!(tracker.observe(Success), Some(Verdict::Up));
    }
}
