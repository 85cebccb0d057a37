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

    /// Turns the verdict down without a run of failures: a vantage point in
    /// a blind spell votes every region down (see [`observe_round`]).
    fn force_down(&mut self) {
        self.verdict = Verdict::Down;
    }
}

/// What a vantage point remembers of its last blind spell: rounds in which
/// every region failed at once (the vantage point cut off, or a dependency
/// every region shares, such as the database, gone).
#[derive(Debug, Clone, Default)]
pub struct Blindness {
    /// The trackers as they were before the spell began.
    before: Option<Vec<VerdictTracker>>,
    /// Rounds after the spell in which failures are not yet counted.
    grace_rounds_left: u32,
}

/// Feeds one probe round to a vantage point's trackers (one per region, in
/// the order of `outcomes`), so that a blind spell decides nothing about any
/// region.
///
/// Blind rounds still count, so that the vantage point ends up voting every
/// region down and is discarded by the tally. Once any region is voted down
/// in a blind round, every region is: a shared outage does not begin in the
/// same probe round everywhere, and a region whose failures began one round
/// before the others' reached K first, so that for a round or two this
/// vantage point voted it down and the others up, was not discarded, and
/// (seen in the database-stall drill, with two vantage points doing the
/// same) drained it, although it was no worse off than the rest. The first
/// round that is not blind puts every tracker back as it was before the
/// spell, and for as many rounds as a recovery takes to be believed (`successes_to_up`) a
/// region's failures are not counted yet. Regions come back from a shared
/// outage one by one, as their connection pools fill again, not in one
/// probe round: without this, the failures of the outage (and then of a
/// recovery one or two rounds slower than the others') voted a region down
/// as soon as the vantage point saw another one up, and it was drained
/// although it was as healthy as the rest (seen in the database-crash
/// drill: drained 1.6 s after the database restarted, then held out for the
/// hold-down). A region still failing after that grace is voted down as
/// usual, K failures later.
pub fn observe_round(
    trackers: &mut [&mut VerdictTracker],
    outcomes: &[ProbeOutcome],
    blindness: &mut Blindness,
) {
    let blind = outcomes.len() > 1 && outcomes.iter().all(|o| *o == ProbeOutcome::Failure);
    if blind {
        if blindness.before.is_none() {
            blindness.before = Some(trackers.iter().map(|t| (**t).clone()).collect());
        }
    } else if let Some(before) = blindness.before.take() {
        blindness.grace_rounds_left = before.iter().map(|t| t.successes_to_up).max().unwrap_or(0);
        for (tracker, before) in trackers.iter_mut().zip(before) {
            **tracker = before;
        }
    }
    let in_grace = !blind && blindness.grace_rounds_left > 0;
    for (tracker, outcome) in trackers.iter_mut().zip(outcomes) {
        if in_grace && *outcome == ProbeOutcome::Failure {
            continue;
        }
        tracker.observe(*outcome);
    }
    if blind && trackers.iter().any(|t| t.verdict() == Verdict::Down) {
        for tracker in trackers.iter_mut() {
            tracker.force_down();
        }
    }
    if in_grace {
        blindness.grace_rounds_left -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProbeOutcome::*;

    /// A database outage: every region fails for a while, then they come
    /// back a few rounds apart. The late one is not voted down.
    #[test]
    fn blind_rounds_decide_nothing_about_any_region() {
        let mut a = VerdictTracker::new(2, 3);
        let mut b = VerdictTracker::new(2, 3);
        let mut blindness = Blindness::default();
        for _ in 0..10 {
            observe_round(&mut [&mut a, &mut b], &[Failure, Failure], &mut blindness);
        }
        // Blind: every region down, so that the tally discards the vantage.
        assert_eq!((a.verdict(), b.verdict()), (Verdict::Down, Verdict::Down));
        // A is back three rounds before B: both are as before the outage.
        for _ in 0..3 {
            observe_round(&mut [&mut a, &mut b], &[Success, Failure], &mut blindness);
            assert_eq!((a.verdict(), b.verdict()), (Verdict::Up, Verdict::Up));
        }
        observe_round(&mut [&mut a, &mut b], &[Success, Success], &mut blindness);
        assert_eq!(b.verdict(), Verdict::Up);
        // After the grace, a region that stays down while another is up is
        // voted down after K failures.
        observe_round(&mut [&mut a, &mut b], &[Success, Failure], &mut blindness);
        assert_eq!(b.verdict(), Verdict::Up);
        observe_round(&mut [&mut a, &mut b], &[Success, Failure], &mut blindness);
        assert_eq!(b.verdict(), Verdict::Down);
        // A region that was down before the outage stays down.
        for _ in 0..4 {
            observe_round(&mut [&mut a, &mut b], &[Failure, Failure], &mut blindness);
        }
        observe_round(&mut [&mut a, &mut b], &[Success, Failure], &mut blindness);
        assert_eq!((a.verdict(), b.verdict()), (Verdict::Up, Verdict::Down));
        // One region alone is never blind.
        let mut c = VerdictTracker::new(2, 3);
        let mut blindness = Blindness::default();
        observe_round(&mut [&mut c], &[Failure], &mut blindness);
        observe_round(&mut [&mut c], &[Failure], &mut blindness);
        assert_eq!(c.verdict(), Verdict::Down);
    }

    /// A shared outage seen one round earlier in one region: while the
    /// vantage point is blind it never votes that region down alone, and
    /// afterwards the early region is as the others.
    #[test]
    fn a_staggered_blind_spell_votes_every_region_down_together() {
        let mut a = VerdictTracker::new(3, 3);
        let mut b = VerdictTracker::new(3, 3);
        let mut c = VerdictTracker::new(3, 3);
        let mut blindness = Blindness::default();
        let verdicts = |a: &VerdictTracker, b: &VerdictTracker, c: &VerdictTracker| {
            (a.verdict(), b.verdict(), c.verdict())
        };
        // A fails a round before B and C.
        observe_round(
            &mut [&mut a, &mut b, &mut c],
            &[Failure, Success, Success],
            &mut blindness,
        );
        for _ in 0..5 {
            observe_round(&mut [&mut a, &mut b, &mut c], &[Failure; 3], &mut blindness);
            let votes = verdicts(&a, &b, &c);
            assert!(
                votes == (Verdict::Up, Verdict::Up, Verdict::Up)
                    || votes == (Verdict::Down, Verdict::Down, Verdict::Down),
                "a blind vantage point voted {votes:?}"
            );
        }
        assert_eq!(
            verdicts(&a, &b, &c),
            (Verdict::Down, Verdict::Down, Verdict::Down)
        );
        // B and C come back first: A is not voted down for the outage.
        for _ in 0..3 {
            observe_round(
                &mut [&mut a, &mut b, &mut c],
                &[Failure, Success, Success],
                &mut blindness,
            );
            assert_eq!(
                verdicts(&a, &b, &c),
                (Verdict::Up, Verdict::Up, Verdict::Up)
            );
        }
    }

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
