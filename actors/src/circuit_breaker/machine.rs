//! The circuit breaker's state machine, pure: every method takes `now`, so
//! each transition is tested by passing instants, with no actor and no clock.
//!
//! - Closed → Open: `consecutive_failures` failures in a row, or at least
//!   `min_calls` calls in the last `window` of which a share ≥
//!   `failure_ratio` failed. The [`TripReason`] says which, for operators.
//! - Open → HalfOpen: the first admission after `open_for`.
//! - HalfOpen: admits `half_open_calls` trial calls; all succeed → Closed,
//!   any fails → Open again. A trial that reports nothing within
//!   `trial_timeout` counts as failed: an outcome lost on the way (a
//!   cancelled request, a restarted caller) can never wedge it half-open.
//!
//! Outcomes are tagged with the epoch (a counter bumped at every transition)
//! of their admission, so a slow attempt admitted before a transition cannot
//! count in the period after it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    pub consecutive_failures: u32,
    pub failure_ratio: f64,
    pub min_calls: u32,
    pub window: Duration,
    pub open_for: Duration,
    pub half_open_calls: u32,
    /// How long a half-open trial may stay unreported before it counts as
    /// failed: the caller's whole budget plus a margin.
    pub trial_timeout: Duration,
}

impl Default for BreakerConfig {
    /// The contract's defaults.
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_ratio: 0.6,
            min_calls: 10,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(30),
            half_open_calls: 3,
            trial_timeout: Duration::from_millis(1500),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// The `cb_state` gauge's value: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Auto,
    ForcedOpen,
    ForcedClosed,
}

/// Why the breaker left the state it was in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TripReason {
    ConsecutiveFailures {
        failures: u32,
    },
    FailureRatio {
        failures: u32,
        calls: u32,
    },
    OpenTimeElapsed,
    TrialFailed,
    /// A trial reported nothing within `trial_timeout`.
    TrialTimedOut,
    TrialsSucceeded {
        trials: u32,
    },
    ModeChanged {
        mode: Mode,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub reason: TripReason,
    /// The period's counts as the transition found them (the new period
    /// starts at zero).
    pub window_calls: u32,
    pub window_failures: u32,
    pub consecutive_failures: u32,
}

/// Permission for one attempt; hand it back with the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    pub epoch: u64,
    pub trial: bool,
    pub state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub state: State,
    /// When admission may succeed again; none while an operator holds the
    /// breaker open (no probe is scheduled).
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Payment answered (a 2xx, or a 4xx other than 429: it is healthy).
    Success,
    /// 5xx, 429, timeout, connection failure: payment is not healthy.
    Failure,
    /// The attempt never reached payment (the bulkhead refused it, the
    /// budget ran out waiting): local overload, not a downstream failure.
    NotAttempted,
    /// Its caller went away before learning the outcome (a dropped
    /// request): it says nothing about payment, and frees its trial slot.
    Cancelled,
    /// It timed out with too little time to tell (a retry late in its
    /// budget, a permit that reached its caller late): payment took longer
    /// than what we left it, which says nothing about payment either.
    Inconclusive,
}

/// `GET /admin/breaker`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Status {
    pub state: State,
    pub mode: Mode,
    pub consecutive_failures: u32,
    pub window_calls: u32,
    pub window_failures: u32,
    /// Milliseconds until the next half-open probe, while open.
    pub next_probe_in_ms: Option<u64>,
    pub half_open_admitted: u32,
    pub half_open_succeeded: u32,
    pub last_transition: Option<TripReason>,
    pub transitions: u64,
}

#[derive(Debug)]
pub struct Machine {
    config: BreakerConfig,
    mode: Mode,
    state: State,
    epoch: u64,
    consecutive: u32,
    /// (when, failed) of each call in the window, oldest first.
    window: VecDeque<(Instant, bool)>,
    window_failures: u32,
    open_until: Instant,
    trials_admitted: u32,
    trials_succeeded: u32,
    /// When the latest half-open trial was admitted.
    last_trial_at: Instant,
    last_transition: Option<TripReason>,
    transitions: u64,
}

impl Machine {
    pub fn new(config: BreakerConfig, now: Instant) -> Self {
        Self {
            config,
            mode: Mode::Auto,
            state: State::Closed,
            epoch: 0,
            consecutive: 0,
            window: VecDeque::new(),
            window_failures: 0,
            open_until: now,
            trials_admitted: 0,
            trials_succeeded: 0,
            last_trial_at: now,
            last_transition: None,
            transitions: 0,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    pub fn admit(&mut self, now: Instant) -> (Result<Admission, Rejection>, Option<Transition>) {
        if let Some(expired) = self.expire(now) {
            let retry_after = self.open_until.saturating_duration_since(now);
            let rejection = Rejection {
                state: State::Open,
                retry_after: Some(retry_after),
            };
            return (Err(rejection), Some(expired));
        }
        let admission = |m: &Self, trial| Admission {
            epoch: m.epoch,
            trial,
            state: m.state,
        };
        match (self.mode, self.state) {
            (Mode::ForcedOpen, _) => (
                Err(Rejection {
                    state: self.state,
                    retry_after: None,
                }),
                None,
            ),
            (Mode::ForcedClosed, _) | (Mode::Auto, State::Closed) => {
                (Ok(admission(self, false)), None)
            }
            (Mode::Auto, State::Open) if now < self.open_until => (
                Err(Rejection {
                    state: State::Open,
                    retry_after: Some(self.open_until - now),
                }),
                None,
            ),
            (Mode::Auto, State::Open) => {
                let transition = self.enter(State::HalfOpen, TripReason::OpenTimeElapsed, now);
                self.trials_admitted = 1;
                self.last_trial_at = now;
                (Ok(admission(self, true)), Some(transition))
            }
            (Mode::Auto, State::HalfOpen) if self.trials_admitted < self.config.half_open_calls => {
                self.trials_admitted += 1;
                self.last_trial_at = now;
                (Ok(admission(self, true)), None)
            }
            (Mode::Auto, State::HalfOpen) => (
                Err(Rejection {
                    state: State::HalfOpen,
                    // The trials decide within one attempt's time.
                    retry_after: Some(Duration::from_secs(1)),
                }),
                None,
            ),
        }
    }

    pub fn record(
        &mut self,
        admission: Admission,
        outcome: Outcome,
        now: Instant,
    ) -> Option<Transition> {
        if admission.epoch != self.epoch || self.mode == Mode::ForcedOpen {
            return None;
        }
        match (self.state, outcome) {
            (_, Outcome::NotAttempted | Outcome::Cancelled | Outcome::Inconclusive) => {
                if admission.trial {
                    self.trials_admitted = self.trials_admitted.saturating_sub(1);
                }
                None
            }
            (State::Closed, outcome) => {
                let failed = outcome == Outcome::Failure;
                self.push_window(now, failed);
                if !failed {
                    self.consecutive = 0;
                    return None;
                }
                self.consecutive += 1;
                if self.mode == Mode::ForcedClosed {
                    return None;
                }
                let calls = self.window.len() as u32;
                if self.consecutive >= self.config.consecutive_failures {
                    let failures = self.consecutive;
                    Some(self.trip(TripReason::ConsecutiveFailures { failures }, now))
                } else if calls >= self.config.min_calls
                    && f64::from(self.window_failures)
                        >= self.config.failure_ratio * f64::from(calls)
                {
                    let failures = self.window_failures;
                    Some(self.trip(TripReason::FailureRatio { failures, calls }, now))
                } else {
                    None
                }
            }
            (State::HalfOpen, Outcome::Success) if admission.trial => {
                self.trials_succeeded += 1;
                (self.trials_succeeded >= self.config.half_open_calls).then(|| {
                    let trials = self.trials_succeeded;
                    self.enter(State::Closed, TripReason::TrialsSucceeded { trials }, now)
                })
            }
            (State::HalfOpen, Outcome::Failure) if admission.trial => {
                Some(self.trip(TripReason::TrialFailed, now))
            }
            _ => None,
        }
    }

    /// Half-open with a trial unreported for `trial_timeout`: that trial
    /// counts as failed, and the breaker opens again. Every admission
    /// checks this first; the actor also checks it when asked for status.
    pub fn expire(&mut self, now: Instant) -> Option<Transition> {
        let outstanding = self.trials_admitted > self.trials_succeeded;
        let overdue =
            now.saturating_duration_since(self.last_trial_at) >= self.config.trial_timeout;
        (self.mode == Mode::Auto && self.state == State::HalfOpen && outstanding && overdue)
            .then(|| self.trip(TripReason::TrialTimedOut, now))
    }

    /// `forced_open` / `forced_closed` override admission; `auto` resets to a
    /// fresh closed breaker.
    pub fn set_mode(&mut self, mode: Mode, now: Instant) -> Option<Transition> {
        self.mode = mode;
        let reason = TripReason::ModeChanged { mode };
        let to = match mode {
            Mode::ForcedOpen => State::Open,
            Mode::ForcedClosed | Mode::Auto => State::Closed,
        };
        if to == self.state {
            // Same state, but start counting afresh.
            self.reset();
            self.last_transition = Some(reason);
            None
        } else {
            Some(self.enter(to, reason, now))
        }
    }

    pub fn status(&mut self, now: Instant) -> Status {
        self.prune(now);
        // Rounded up: 0 only once a probe would be admitted (rounded down,
        // "0" stood for up to a millisecond of refusals still to come).
        let next_probe_in_ms = (self.mode == Mode::Auto && self.state == State::Open).then(|| {
            let left = self.open_until.saturating_duration_since(now);
            left.as_micros().div_ceil(1000) as u64
        });
        Status {
            state: self.state,
            mode: self.mode,
            consecutive_failures: self.consecutive,
            window_calls: self.window.len() as u32,
            window_failures: self.window_failures,
            next_probe_in_ms,
            half_open_admitted: self.trials_admitted,
            half_open_succeeded: self.trials_succeeded,
            last_transition: self.last_transition.clone(),
            transitions: self.transitions,
        }
    }

    fn trip(&mut self, reason: TripReason, now: Instant) -> Transition {
        self.open_until = now + self.config.open_for;
        self.enter(State::Open, reason, now)
    }

    fn enter(&mut self, to: State, reason: TripReason, now: Instant) -> Transition {
        let from = self.state;
        let (window_calls, window_failures, consecutive_failures) = (
            self.window.len() as u32,
            self.window_failures,
            self.consecutive,
        );
        self.state = to;
        self.reset();
        if to == State::Open && self.open_until <= now {
            self.open_until = now + self.config.open_for;
        }
        self.transitions += 1;
        self.last_transition = Some(reason.clone());
        Transition {
            from,
            to,
            reason,
            window_calls,
            window_failures,
            consecutive_failures,
        }
    }

    /// A new period: counts start at zero and older admissions go stale.
    fn reset(&mut self) {
        self.epoch += 1;
        self.consecutive = 0;
        self.window.clear();
        self.window_failures = 0;
        self.trials_admitted = 0;
        self.trials_succeeded = 0;
    }

    fn push_window(&mut self, now: Instant, failed: bool) {
        self.prune(now);
        self.window.push_back((now, failed));
        self.window_failures += u32::from(failed);
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&(at, failed)) = self.window.front() {
            if now.saturating_duration_since(at) < self.config.window {
                break;
            }
            self.window.pop_front();
            self.window_failures -= u32::from(failed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    struct Harness {
        machine: Machine,
        now: Instant,
    }

    impl Harness {
        fn new(config: BreakerConfig) -> Self {
            let now = Instant::now();
            Self {
                machine: Machine::new(config, now),
                now,
            }
        }

        fn advance(&mut self, by: Duration) {
            self.now += by;
        }

        fn call(&mut self, outcome: Outcome) -> Option<Transition> {
            let admission = self.machine.admit(self.now).0.expect("admitted");
            self.machine.record(admission, outcome, self.now)
        }

        fn admit(&mut self) -> Result<Admission, Rejection> {
            self.machine.admit(self.now).0
        }
    }

    fn consecutive_only() -> BreakerConfig {
        BreakerConfig {
            min_calls: u32::MAX,
            ..BreakerConfig::default()
        }
    }

    #[test]
    fn five_consecutive_failures_open_it() {
        let mut h = Harness::new(consecutive_only());
        for _ in 0..4 {
            assert_eq!(h.call(Outcome::Failure), None);
        }
        let t = h.call(Outcome::Failure).expect("opens");
        assert_eq!((t.from, t.to), (State::Closed, State::Open));
        assert_eq!(t.reason, TripReason::ConsecutiveFailures { failures: 5 });
        let rejected = h.admit().unwrap_err();
        assert_eq!(rejected.state, State::Open);
        assert_eq!(rejected.retry_after, Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_success_resets_the_consecutive_count() {
        let mut h = Harness::new(consecutive_only());
        for _ in 0..4 {
            h.call(Outcome::Failure);
        }
        h.call(Outcome::Success);
        for _ in 0..4 {
            assert_eq!(h.call(Outcome::Failure), None);
        }
        assert_eq!(h.machine.state(), State::Closed);
    }

    #[test]
    fn the_ratio_rule_needs_the_minimum_number_of_calls() {
        let config = BreakerConfig {
            consecutive_failures: 1000,
            ..BreakerConfig::default()
        };
        let mut h = Harness::new(config);
        // 6 failures of 9 calls is 67 %, but 9 < min_calls.
        for outcome in [Outcome::Failure, Outcome::Failure, Outcome::Success].repeat(3) {
            assert_eq!(h.call(outcome), None);
        }
        // The 10th call, a failure: 7 of 10 = 70 % ≥ 60 %.
        let t = h.call(Outcome::Failure).expect("opens");
        assert_eq!(
            t.reason,
            TripReason::FailureRatio {
                failures: 7,
                calls: 10
            }
        );
    }

    #[test]
    fn the_ratio_rule_stays_closed_below_the_ratio() {
        let config = BreakerConfig {
            consecutive_failures: 1000,
            ..BreakerConfig::default()
        };
        let mut h = Harness::new(config);
        // 50 % failures over 100 calls.
        for outcome in [Outcome::Failure, Outcome::Success].repeat(50) {
            assert_eq!(h.call(outcome), None);
        }
    }

    #[test]
    fn calls_older_than_the_window_expire() {
        let config = BreakerConfig {
            consecutive_failures: 1000,
            ..BreakerConfig::default()
        };
        let mut h = Harness::new(config);
        for _ in 0..9 {
            h.call(Outcome::Failure);
        }
        h.advance(Duration::from_secs(10));
        // The nine failures have left the window: one call is not enough.
        assert_eq!(h.call(Outcome::Failure), None);
        let status = h.machine.status(h.now);
        assert_eq!((status.window_calls, status.window_failures), (1, 1));
        h.advance(Duration::from_secs(9));
        for _ in 0..8 {
            assert_eq!(h.call(Outcome::Failure), None);
        }
        assert!(h.call(Outcome::Failure).is_some(), "10 calls within 10 s");
    }

    #[test]
    fn half_open_after_the_open_time_then_closed_when_all_trials_succeed() {
        let mut h = Harness::new(consecutive_only());
        for _ in 0..5 {
            h.call(Outcome::Failure);
        }
        h.advance(Duration::from_secs(30) - MS);
        assert_eq!(h.admit().unwrap_err().retry_after, Some(MS));
        h.advance(MS);
        let (first, t) = h.machine.admit(h.now);
        assert_eq!(
            t.map(|t| (t.from, t.to)),
            Some((State::Open, State::HalfOpen))
        );
        let first = first.unwrap();
        assert!(first.trial);
        let second = h.admit().unwrap();
        let third = h.admit().unwrap();
        assert_eq!(
            h.admit().unwrap_err().state,
            State::HalfOpen,
            "only 3 trials"
        );
        assert_eq!(h.machine.record(first, Outcome::Success, h.now), None);
        assert_eq!(h.machine.record(second, Outcome::Success, h.now), None);
        let t = h.machine.record(third, Outcome::Success, h.now).unwrap();
        assert_eq!((t.from, t.to), (State::HalfOpen, State::Closed));
        assert!(h.admit().is_ok());
    }

    #[test]
    fn a_failed_trial_opens_it_again_for_the_full_time() {
        let mut h = Harness::new(consecutive_only());
        for _ in 0..5 {
            h.call(Outcome::Failure);
        }
        h.advance(Duration::from_secs(30));
        let trial = h.admit().unwrap();
        let other = h.admit().unwrap();
        let t = h.machine.record(trial, Outcome::Failure, h.now).unwrap();
        assert_eq!(
            (t.from, t.to, t.reason),
            (State::HalfOpen, State::Open, TripReason::TrialFailed)
        );
        // The other trial's late success belongs to the old epoch.
        assert_eq!(h.machine.record(other, Outcome::Success, h.now), None);
        assert_eq!(
            h.admit().unwrap_err().retry_after,
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn a_trial_that_never_reached_payment_frees_its_slot() {
        let mut h = Harness::new(consecutive_only());
        for _ in 0..5 {
            h.call(Outcome::Failure);
        }
        h.advance(Duration::from_secs(30));
        let trials: Vec<_> = (0..3).map(|_| h.admit().unwrap()).collect();
        assert!(h.admit().is_err());
        h.machine.record(trials[0], Outcome::NotAttempted, h.now);
        assert!(h.admit().is_ok(), "the slot is free again");
    }

    #[test]
    fn a_cancelled_trial_frees_its_slot_and_counts_nothing() {
        let mut h = Harness::new(consecutive_only());
        for _ in 0..5 {
            h.call(Outcome::Failure);
        }
        h.advance(Duration::from_secs(30));
        let trials: Vec<_> = (0..3).map(|_| h.admit().unwrap()).collect();
        assert_eq!(h.machine.record(trials[0], Outcome::Cancelled, h.now), None);
        let again = h.admit().expect("the cancelled trial's slot is free again");
        for trial in [trials[1], trials[2]] {
            assert_eq!(h.machine.record(trial, Outcome::Success, h.now), None);
        }
        let t = h.machine.record(again, Outcome::Success, h.now).unwrap();
        assert_eq!(t.to, State::Closed);
        // Closed: a cancelled call is not a call of the window.
        let call = h.admit().unwrap();
        h.machine.record(call, Outcome::Cancelled, h.now);
        assert_eq!(h.machine.status(h.now).window_calls, 0);
    }

    #[test]
    fn a_trial_that_never_reports_counts_as_failed_after_the_trial_timeout() {
        let mut h = Harness::new(consecutive_only());
        for _ in 0..5 {
            h.call(Outcome::Failure);
        }
        h.advance(Duration::from_secs(30));
        let lost = h.admit().unwrap();
        let trials = [h.admit().unwrap(), h.admit().unwrap()];
        for trial in trials {
            h.machine.record(trial, Outcome::Success, h.now);
        }
        // The lost trial holds the last slot: everyone else is refused...
        h.advance(Duration::from_millis(1499));
        assert_eq!(h.admit().unwrap_err().state, State::HalfOpen);
        assert_eq!(h.machine.expire(h.now), None);
        // ...until it is overdue, when it counts as a failure.
        h.advance(MS);
        let (rejected, t) = h.machine.admit(h.now);
        let t = t.expect("the overdue trial opens it");
        assert_eq!(
            (t.from, t.to, t.reason),
            (State::HalfOpen, State::Open, TripReason::TrialTimedOut)
        );
        assert_eq!(
            rejected.unwrap_err().retry_after,
            Some(Duration::from_secs(30))
        );
        // Its outcome, if it ever comes, belongs to a past period.
        assert_eq!(h.machine.record(lost, Outcome::Failure, h.now), None);
        h.advance(Duration::from_secs(30));
        assert!(h.admit().unwrap().trial, "it probes again");
    }

    #[test]
    fn trials_all_reported_never_expire() {
        let mut h = Harness::new(BreakerConfig {
            half_open_calls: 2,
            ..consecutive_only()
        });
        for _ in 0..5 {
            h.call(Outcome::Failure);
        }
        h.advance(Duration::from_secs(30));
        let trial = h.admit().unwrap();
        h.machine.record(trial, Outcome::Success, h.now);
        h.advance(Duration::from_secs(3600));
        assert_eq!(h.machine.expire(h.now), None);
        assert_eq!(h.machine.state(), State::HalfOpen);
    }

    #[test]
    fn local_rejections_and_inconclusive_timeouts_never_trip_it() {
        let mut h = Harness::new(BreakerConfig::default());
        for _ in 0..1000 {
            assert_eq!(h.call(Outcome::NotAttempted), None);
            assert_eq!(h.call(Outcome::Inconclusive), None);
        }
        let status = h.machine.status(h.now);
        assert_eq!((status.state, status.window_calls), (State::Closed, 0));
    }

    #[test]
    fn late_outcomes_from_before_a_transition_do_not_count() {
        let mut h = Harness::new(consecutive_only());
        let slow = h.admit().unwrap();
        for _ in 0..5 {
            h.call(Outcome::Failure);
        }
        h.advance(Duration::from_secs(30));
        let trials: Vec<_> = (0..3).map(|_| h.admit().unwrap()).collect();
        for trial in trials {
            h.machine.record(trial, Outcome::Success, h.now);
        }
        assert_eq!(h.machine.state(), State::Closed);
        assert_eq!(h.machine.record(slow, Outcome::Failure, h.now), None);
        assert_eq!(h.machine.status(h.now).consecutive_failures, 0);
    }

    #[test]
    fn forced_modes_override_and_auto_resets() {
        let mut h = Harness::new(consecutive_only());
        let t = h.machine.set_mode(Mode::ForcedOpen, h.now).unwrap();
        assert_eq!((t.from, t.to), (State::Closed, State::Open));
        h.advance(Duration::from_secs(3600));
        let held = h.admit().unwrap_err();
        assert_eq!(held.retry_after, None, "forced open never probes");

        let t = h.machine.set_mode(Mode::ForcedClosed, h.now).unwrap();
        assert_eq!(t.to, State::Closed);
        for _ in 0..100 {
            assert_eq!(h.call(Outcome::Failure), None, "forced closed never trips");
        }

        assert_eq!(h.machine.set_mode(Mode::Auto, h.now), None);
        assert_eq!(h.machine.status(h.now).consecutive_failures, 0);
        for _ in 0..4 {
            h.call(Outcome::Failure);
        }
        assert!(h.call(Outcome::Failure).is_some(), "auto trips again");
    }

    #[test]
    fn status_reports_the_next_probe() {
        let mut h = Harness::new(consecutive_only());
        for _ in 0..5 {
            h.call(Outcome::Failure);
        }
        h.advance(Duration::from_secs(10));
        let status = h.machine.status(h.now);
        assert_eq!(status.state, State::Open);
        assert_eq!(status.next_probe_in_ms, Some(20_000));
        assert_eq!(status.transitions, 1);
    }

    #[test]
    fn the_next_probe_is_never_reported_due_before_it_is() {
        let mut h = Harness::new(consecutive_only());
        for _ in 0..5 {
            h.call(Outcome::Failure);
        }
        h.advance(Duration::from_secs(30) - Duration::from_micros(400));
        assert_eq!(h.machine.status(h.now).next_probe_in_ms, Some(1));
        assert!(h.machine.admit(h.now).0.is_err(), "not due yet");
        h.advance(Duration::from_micros(400));
        assert_eq!(h.machine.status(h.now).next_probe_in_ms, Some(0));
        assert!(h.machine.admit(h.now).0.is_ok(), "due");
    }
}
