//! The per-region state machine: healthy -> draining -> drained ->
//! recovering -> healthy. Leave fast, return slowly.
//!
//! The machine only says what it wants ([`Intent`]); the planner applies the
//! safety rules and overrides, and tells the machine what was started and
//! what finished. The hold-down before a region returns grows exponentially
//! with flapping (every drain, and every relapse while it recovers) and
//! decays with a half-life.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::quorum::QuorumVerdict;

/// Where a region is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum RegionState {
    /// Serving traffic.
    Healthy,
    /// Decided to drain; the drain actions have not all been verified yet.
    Draining,
    /// Not serving; waiting for the majority to see it up.
    Drained,
    /// Seen up again; not serving until the hold-down has passed and the
    /// restore actions are verified.
    Recovering,
}

impl RegionState {
    /// Every state, for the one-hot `failover_region_state` gauge.
    pub const ALL: [RegionState; 4] = [
        RegionState::Healthy,
        RegionState::Draining,
        RegionState::Drained,
        RegionState::Recovering,
    ];

    /// The label in metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RegionState::Healthy => "healthy",
            RegionState::Draining => "draining",
            RegionState::Drained => "drained",
            RegionState::Recovering => "recovering",
        }
    }

    /// Whether the region takes traffic in this state.
    pub fn is_serving(self) -> bool {
        self == RegionState::Healthy
    }
}

/// What the machine would do next if nothing forbids it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Stay,
    Drain,
    Restore,
}

/// Exponential hold-down with decay.
#[derive(Debug, Clone)]
pub struct HoldDown {
    base: Duration,
    max: Duration,
    half_life: Duration,
    /// Drains counted with decay: +1 per drain, halves every half-life.
    penalty: f64,
    updated: Instant,
}

impl HoldDown {
    pub fn new(base: Duration, max: Duration, half_life: Duration, now: Instant) -> Self {
        Self {
            base,
            max,
            half_life,
            penalty: 0.0,
            updated: now,
        }
    }

    fn decayed(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.penalty * 0.5f64.powf(elapsed / self.half_life.as_secs_f64())
    }

    /// Counts one drain (one flap when it happens again soon).
    pub fn record_drain(&mut self, now: Instant) {
        self.penalty = self.decayed(now) + 1.0;
        self.updated = now;
    }

    /// The hold-down that applies now: base after one drain, doubling with
    /// each further recent drain, capped at max.
    pub fn current(&self, now: Instant) -> Duration {
        let exponent = (self.decayed(now) - 1.0).clamp(0.0, 30.0);
        let scaled = self.base.as_secs_f64() * 2f64.powf(exponent);
        Duration::from_secs_f64(scaled.min(self.max.as_secs_f64()))
    }
}

/// One region's machine.
#[derive(Debug, Clone)]
pub struct RegionMachine {
    state: RegionState,
    since: Instant,
    hold_down: HoldDown,
    /// When the hold-down of the current recovery ends.
    recover_at: Option<Instant>,
    /// The last round an operator's override decided for the region.
    last_held: Option<Instant>,
}

impl RegionMachine {
    pub fn new(state: RegionState, hold_down: HoldDown, now: Instant) -> Self {
        Self {
            state,
            since: now,
            hold_down,
            recover_at: None,
            last_held: None,
        }
    }

    pub fn state(&self) -> RegionState {
        self.state
    }

    pub fn since(&self) -> Instant {
        self.since
    }

    /// The hold-down that a recovery starting now would wait.
    pub fn hold_down(&self, now: Instant) -> Duration {
        self.hold_down.current(now)
    }

    /// When the current recovery may restore the region.
    pub fn recover_at(&self) -> Option<Instant> {
        self.recover_at
    }

    fn enter(&mut self, state: RegionState, now: Instant) {
        if self.state != state {
            self.state = state;
            self.since = now;
        }
    }

    /// An override decides for the region this round: the votes do not move
    /// it, and a hold-down that follows counts from its end.
    pub fn hold(&mut self, now: Instant) {
        self.last_held = Some(now);
    }

    /// Feeds the majority verdict and for how long the majority has seen
    /// the region healthy; returns what the machine wants.
    ///
    /// The hold-down counts from when the region became healthy by the
    /// majority's probes, not from when this replica first read an up
    /// verdict: the `successes_to_up` probes that turned the votes up are
    /// part of it, and a leader that takes over in the middle of a recovery
    /// does not start the wait again. Health under an override counts only
    /// from the override's end.
    pub fn observe(
        &mut self,
        verdict: QuorumVerdict,
        healthy_for: Duration,
        now: Instant,
    ) -> Intent {
        match (self.state, verdict) {
            (_, QuorumVerdict::NoQuorum) => match self.state {
                RegionState::Draining => Intent::Drain,
                _ => Intent::Stay,
            },
            (RegionState::Healthy, QuorumVerdict::Down) => Intent::Drain,
            (RegionState::Healthy, QuorumVerdict::Up) => Intent::Stay,
            // A drain, once started, is finished: the flag may be half set.
            (RegionState::Draining, _) => Intent::Drain,
            (RegionState::Drained, QuorumVerdict::Down) => Intent::Stay,
            (RegionState::Drained, QuorumVerdict::Up) => {
                let mut credit = healthy_for;
                if let Some(held) = self.last_held {
                    credit = credit.min(now.saturating_duration_since(held));
                }
                let hold_down = self.hold_down.current(now);
                self.recover_at = Some(now + hold_down.saturating_sub(credit));
                self.enter(RegionState::Recovering, now);
                self.recovering_intent(now)
            }
            (RegionState::Recovering, QuorumVerdict::Down) => {
                // A relapse before the hold-down passed is a flap: it
                // lengthens the next hold-down as a drain after a restore
                // does, so a region that keeps failing waits longer each time.
                self.hold_down.record_drain(now);
                self.recover_at = None;
                self.enter(RegionState::Drained, now);
                Intent::Stay
            }
            (RegionState::Recovering, QuorumVerdict::Up) => self.recovering_intent(now),
        }
    }

    fn recovering_intent(&self, now: Instant) -> Intent {
        match self.recover_at {
            Some(at) if now >= at => Intent::Restore,
            _ => Intent::Stay,
        }
    }

    /// The planner approved a drain: the actions start now. The drain
    /// counts towards the hold-down only once its flag is set (in
    /// [`Self::drain_done`], or [`Self::follow`] when another replica set
    /// it): a drain whose actions were fenced (the lease was lost meanwhile)
    /// never happened, and the drain that follows it must not count as a
    /// flap.
    pub fn begin_drain(&mut self, now: Instant) {
        if self.state == RegionState::Healthy {
            self.enter(RegionState::Draining, now);
        } else if self.state == RegionState::Recovering {
            // Already out of service: a (manual) drain keeps it there.
            self.recover_at = None;
            self.enter(RegionState::Drained, now);
        }
    }

    /// Every drain action was verified.
    pub fn drain_done(&mut self, now: Instant) {
        if self.state == RegionState::Draining {
            self.hold_down.record_drain(now);
            self.enter(RegionState::Drained, now);
        }
    }

    /// Every restore action was verified: the region serves again.
    pub fn restore_done(&mut self, now: Instant) {
        self.recover_at = None;
        self.enter(RegionState::Healthy, now);
    }

    /// Aligns a follower's machine with the drain flag in the database, so
    /// that a replica taking over the lease starts from the truth.
    pub fn follow(&mut self, drained_flag: bool, now: Instant) {
        match (drained_flag, self.state) {
            (true, RegionState::Healthy | RegionState::Draining) => {
                self.hold_down.record_drain(now);
                self.enter(RegionState::Drained, now);
            }
            (false, RegionState::Healthy) => {}
            (false, _) => self.restore_done(now),
            (true, _) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(now: Instant) -> RegionMachine {
        let hold = HoldDown::new(
            Duration::from_secs(10),
            Duration::from_secs(300),
            Duration::from_secs(600),
            now,
        );
        RegionMachine::new(RegionState::Healthy, hold, now)
    }

    #[tokio::test(start_paused = true)]
    async fn leaves_fast_and_returns_after_hold_down() {
        let mut m = machine(Instant::now());
        assert_eq!(
            m.observe(QuorumVerdict::Down, Duration::ZERO, Instant::now()),
            Intent::Drain
        );
        m.begin_drain(Instant::now());
        m.drain_done(Instant::now());
        assert_eq!(m.state(), RegionState::Drained);
        assert_eq!(
            m.observe(QuorumVerdict::Up, Duration::ZERO, Instant::now()),
            Intent::Stay
        );
        assert_eq!(m.state(), RegionState::Recovering);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(
            m.observe(QuorumVerdict::Up, Duration::ZERO, Instant::now()),
            Intent::Stay
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            m.observe(QuorumVerdict::Up, Duration::ZERO, Instant::now()),
            Intent::Restore
        );
        m.restore_done(Instant::now());
        assert_eq!(m.state(), RegionState::Healthy);
    }

    #[tokio::test(start_paused = true)]
    async fn flapping_doubles_the_hold_down_and_it_decays() {
        let mut m = machine(Instant::now());
        for expected in [10, 20, 40] {
            m.begin_drain(Instant::now());
            m.drain_done(Instant::now());
            assert_eq!(m.hold_down(Instant::now()), Duration::from_secs(expected));
            m.restore_done(Instant::now());
        }
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(m.hold_down(Instant::now()), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn the_hold_down_counts_from_when_the_majority_saw_the_region_healthy() {
        let mut m = machine(Instant::now());
        m.begin_drain(Instant::now());
        m.drain_done(Instant::now());
        // The up verdict arrives 1.5 s after the first good probes (the
        // successes_to_up rounds): 8.5 s of the 10 s are left.
        let healthy = Duration::from_millis(1500);
        assert_eq!(
            m.observe(QuorumVerdict::Up, healthy, Instant::now()),
            Intent::Stay
        );
        tokio::time::advance(Duration::from_millis(8400)).await;
        assert_eq!(
            m.observe(QuorumVerdict::Up, Duration::ZERO, Instant::now()),
            Intent::Stay
        );
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(
            m.observe(QuorumVerdict::Up, Duration::ZERO, Instant::now()),
            Intent::Restore
        );
        m.restore_done(Instant::now());

        // A leader that takes over in the middle of a recovery (its machine
        // follows the drain flag) waits only what is left.
        let mut successor = machine(Instant::now());
        successor.follow(true, Instant::now());
        let healthy = Duration::from_secs(7);
        assert_eq!(
            successor.observe(QuorumVerdict::Up, healthy, Instant::now()),
            Intent::Stay
        );
        // The follow counted the drain once: 10 s hold-down, 7 s already served.
        let left = successor.recover_at().unwrap() - Instant::now();
        assert_eq!(left, Duration::from_secs(3));
    }

    /// A leader that loses its lease while its drain's actions run is
    /// fenced: the flag stays clear, and the machine follows it back to
    /// healthy. The drain the next leader (or the same replica, leading
    /// again) then carries out is the region's first, not a flap: the
    /// region-database-cut drill once came back after 20 s of hold-down
    /// instead of 10 because the fenced attempt had counted.
    #[tokio::test(start_paused = true)]
    async fn a_fenced_drain_does_not_count_towards_the_hold_down() {
        let mut m = machine(Instant::now());
        m.begin_drain(Instant::now());
        // Fenced: the flag was never set.
        m.follow(false, Instant::now());
        assert_eq!(m.state(), RegionState::Healthy);
        m.begin_drain(Instant::now());
        m.drain_done(Instant::now());
        assert_eq!(m.hold_down(Instant::now()), Duration::from_secs(10));

        // A follower that saw the drain start and then the flag set counts
        // it once too.
        let mut follower = machine(Instant::now());
        follower.begin_drain(Instant::now());
        follower.follow(true, Instant::now());
        assert_eq!(follower.state(), RegionState::Drained);
        assert_eq!(follower.hold_down(Instant::now()), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn health_under_an_override_counts_only_from_its_end() {
        let mut m = machine(Instant::now());
        m.begin_drain(Instant::now());
        m.drain_done(Instant::now());
        // Healthy all along, held out by an operator for a minute.
        for _ in 0..60 {
            m.hold(Instant::now());
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        let healthy = Duration::from_secs(120);
        assert_eq!(
            m.observe(QuorumVerdict::Up, healthy, Instant::now()),
            Intent::Stay
        );
        let left = m.recover_at().unwrap() - Instant::now();
        assert_eq!(left, m.hold_down(Instant::now()) - Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn relapse_during_recovery_goes_back_to_drained() {
        let mut m = machine(Instant::now());
        m.begin_drain(Instant::now());
        m.drain_done(Instant::now());
        m.observe(QuorumVerdict::Up, Duration::ZERO, Instant::now());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            m.observe(QuorumVerdict::Down, Duration::ZERO, Instant::now()),
            Intent::Stay
        );
        assert_eq!(m.state(), RegionState::Drained);
        // The relapse is a flap: the next recovery waits about twice as long
        // (the first drain's count decayed a little in the 5 s between).
        let grown = m.hold_down(Instant::now());
        assert!(grown > Duration::from_millis(19_900), "{grown:?}");
        m.observe(QuorumVerdict::Up, Duration::ZERO, Instant::now());
        tokio::time::advance(grown - Duration::from_secs(1)).await;
        assert_eq!(
            m.observe(QuorumVerdict::Up, Duration::ZERO, Instant::now()),
            Intent::Stay
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            m.observe(QuorumVerdict::Up, Duration::ZERO, Instant::now()),
            Intent::Restore
        );
    }
}
