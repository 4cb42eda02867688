//! Who may wait for a bulkhead permit, and for how long — pure: every
//! method takes `now`, so each rule is tested by passing instants.
//!
//! A fixed wait is wrong both ways. 100 callers on 10 permits of 26 ms
//! queue about 240 ms with half of a 500 ms budget left: a 250 ms limit
//! refuses some of them for nothing, where waiting would serve them all.
//! Under true overload (arrivals beyond what the permits serve) any queue
//! fills to its limit, so a limit set by the budget alone gives every
//! admitted order the whole budget's latency. So there are two modes:
//!
//! - **Normal.** A caller queues if its turn — predicted from the callers
//!   ahead of it and the median hold of a permit — plus a call's reserve
//!   (the 90th percentile hold, or the age most permits in use have
//!   reached if more, with a margin; never less than a floor) fits in its
//!   remaining budget, else it is refused at once; it waits while its
//!   budget can still cover a call, and no longer.
//! - **Overloaded.** Every wait is cut to `overload_wait`. The permits stay
//!   busy (someone always waits), an order that gets one has waited at most
//!   that long, and the others are refused after it, nothing charged: a
//!   standing queue is the one to shed (CoDel's idea). They are refused
//!   after the wait rather than at once, so that callers who send again as
//!   soon as they are answered cannot spin the service on refusals.
//!
//! Overload begins when the queue failed callers in two windows of 50 ms
//! in a row (a budget could not cover its turn, or a wait ran out before
//! its turn came: one such caller is noise, a calm queue on a busy machine
//! fails one now and then; an overload fails them window after window), or
//! when the queue grew for four windows in a row (two after a look), each
//! time by half of the permits handed out in the window and at least half
//! the permits; the waiters whose turn would come after the overload wait
//! are then refused at once. It ends when the queue empties, or for a look
//! after a while (250 ms, doubled up to eight seconds each time the look
//! finds overload again at once).
//! The look tells a closed population of callers (each sends again when
//! answered: its queue stops growing once they all wait, and they are all
//! served in budget) from an open overload (its queue keeps growing): the
//! closed callers, their waits cut, never let the queue empty.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::BulkheadConfig;

/// The growth rule's counting window.
const WINDOW: Duration = Duration::from_millis(50);
/// Windows of growth in a row that mean overload. A closed population
/// arriving together (a load test starting) grows the queue for as long as
/// its callers take to connect, then no more; an open overload found this
/// late has its excess waiters refused at once when it is found.
const GROWING_WINDOWS: u32 = 4;
/// The same after a look, which admits callers with their whole budget's
/// wait until overload is found again: a closed population let back in
/// does not grow the queue at all (its callers whose waits were cut leave
/// it and join again), so the look can be short.
const GROWING_WINDOWS_AFTER_A_LOOK: u32 = 2;
/// How long overload lasts before the first look, unless the queue empties.
/// Short: a closed population whose callers failed in a stalled moment
/// loses half its callers to the cut waits until the look lets it back in
/// (~500 refusals a second for 100 callers on 10 permits), while an open
/// overload is found again within two windows of a look.
const FIRST_LOOK: Duration = Duration::from_millis(250);
/// The longest time between looks.
const LAST_LOOK: Duration = Duration::from_secs(8);
/// Overload found again within this of a look doubles the time to the next.
const FOUND_AT_ONCE: Duration = Duration::from_millis(500);
/// The most a call's reserve adds to its 90th percentile.
const RESERVE_MARGIN: Duration = Duration::from_millis(50);
/// Recent holds the estimates are taken from.
const HOLDS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Wait for a permit, at most `max_wait`.
    Queue { max_wait: Duration, wait: Wait },
    /// The caller's remaining budget cannot cover its turn and a call.
    Refuse,
}

/// What a wait's running out says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The caller's turn was predicted within it: the queue is slower than
    /// predicted, which is overload.
    Predicted,
    /// Nothing to predict from yet (no permit has come back): nothing.
    Blind,
    /// Cut short by overload: the shedding at work.
    Shed,
}

#[derive(Debug)]
pub struct Admission {
    config: BulkheadConfig,
    holds: Holds,
    window: Window,
    /// When each permit in use was granted, oldest first.
    in_flight: VecDeque<Instant>,
    overloaded_since: Option<Instant>,
    /// The last look, while overload has not ended by the queue emptying.
    looked_at: Option<Instant>,
    look_after: Duration,
}

impl Admission {
    pub fn new(config: BulkheadConfig, now: Instant) -> Self {
        Self {
            config,
            holds: Holds::default(),
            window: Window::starting(now, 0, 0, false),
            in_flight: VecDeque::new(),
            overloaded_since: None,
            looked_at: None,
            look_after: FIRST_LOOK,
        }
    }

    /// A caller got a permit at once (one was free and nobody waited): the
    /// queue is empty, so any overload is over.
    pub fn granted_at_once(&mut self, now: Instant) {
        self.tick(now, 0);
        self.window.granted += 1;
        self.in_flight.push_back(now);
        self.drained();
    }

    /// A permit came back with nobody waiting for it: the queue emptied.
    pub fn drained(&mut self) {
        self.overloaded_since = None;
        self.looked_at = None;
    }

    /// A caller found every permit taken or others waiting, `ahead` of them.
    pub fn queue(&mut self, now: Instant, budget: Duration, ahead: usize) -> Decision {
        self.tick(now, ahead);
        let call = self.reserve(now);
        let mut max_wait = budget.saturating_sub(call);
        if let Some(bound) = self.config.max_wait {
            max_wait = max_wait.min(bound);
        }
        if self.overloaded() && budget > call {
            let max_wait = max_wait.min(self.config.overload_wait);
            return Decision::Queue {
                max_wait,
                wait: Wait::Shed,
            };
        }
        if self.turn(ahead) > max_wait {
            // Only a budget that would cover a call without the queue says
            // the queue is too long; a caller that spent its budget on
            // earlier attempts says nothing about it.
            if budget > call {
                self.failed(now);
            }
            return Decision::Refuse;
        }
        let wait = match self.holds.recent.is_empty() {
            true => Wait::Blind,
            false => Wait::Predicted,
        };
        Decision::Queue { max_wait, wait }
    }

    /// A waiter was handed a permit, `waiting` still waiting.
    pub fn handed(&mut self, now: Instant, waiting: usize) {
        self.tick(now, waiting);
        self.window.granted += 1;
        self.in_flight.push_back(now);
    }

    /// The permit granted at `granted_at` came back, `held` that long if it
    /// was used for a call.
    pub fn released(&mut self, granted_at: Instant, held: Option<Duration>) {
        if let Some(at) = self.in_flight.iter().position(|t| *t == granted_at) {
            self.in_flight.remove(at);
        }
        if let Some(held) = held {
            self.holds.push(held);
        }
    }

    /// A waiter's wait, not cut by overload, ran out before its turn, with
    /// `waiting` still queued: the queue is slower than its prediction.
    pub fn expired(&mut self, now: Instant, waiting: usize) {
        self.tick(now, waiting);
        self.failed(now);
    }

    pub fn overloaded(&self) -> bool {
        self.overloaded_since.is_some()
    }

    /// Recent holds of a permit: their median and 90th percentile.
    #[cfg(test)]
    fn hold(&self) -> (Duration, Duration) {
        (self.holds.p50, self.holds.p90)
    }

    /// What a wait must leave of a budget for the call: the 90th percentile
    /// of recent holds, or the age most permits in use have reached if that
    /// is more, with a margin as large, up to 50 ms; never less than the
    /// floor. A call given less would time out now and then, and the
    /// breaker would count our own queue as payment failing; a permit
    /// handed over later than that is given back unused (see
    /// [`Permit`](super::Permit)). The holds learn a slowdown only as its
    /// calls come back; the permits in use show it while they are out.
    pub fn reserve(&self, now: Instant) -> Duration {
        let call = self.holds.p90.max(self.age_of_most_in_flight(now));
        (call + call.min(RESERVE_MARGIN)).max(self.config.reserve_floor)
    }

    /// How long more than half of the permits in use have been out: one
    /// call stuck, or a few, moves it no more than a calm queue's noise.
    fn age_of_most_in_flight(&self, now: Instant) -> Duration {
        self.in_flight
            .get(self.in_flight.len() / 2)
            .map_or(Duration::ZERO, |granted| {
                now.saturating_duration_since(*granted)
            })
    }

    /// How many waiters' turns come within the overload wait.
    pub fn places_within_overload_wait(&self) -> usize {
        let hold = self.holds.p50.as_micros().max(1);
        let within =
            self.config.overload_wait.as_micros() * self.config.max_concurrent as u128 / hold;
        usize::try_from(within).unwrap_or(usize::MAX)
    }

    /// When a caller with `ahead` callers before it is predicted to get a
    /// permit: a permit comes back every median hold ÷ permits.
    fn turn(&self, ahead: usize) -> Duration {
        let places = u32::try_from(ahead + 1).unwrap_or(u32::MAX);
        let permits = u32::try_from(self.config.max_concurrent.max(1)).unwrap_or(u32::MAX);
        self.holds.p50.saturating_mul(places) / permits
    }

    /// The queue failed a caller: overload if it failed one in the window
    /// before too. One failure alone is a calm queue's noise (a stalled
    /// moment, a few slow calls); an overload fails callers window after
    /// window.
    fn failed(&mut self, now: Instant) {
        if self.window.failed_before {
            self.enter(now);
        }
        self.window.failed = true;
    }

    fn enter(&mut self, now: Instant) {
        if self.overloaded() {
            return;
        }
        self.look_after = match self.looked_at {
            Some(looked) if now.saturating_duration_since(looked) < FOUND_AT_ONCE => {
                (self.look_after * 2).min(LAST_LOOK)
            }
            _ => FIRST_LOOK,
        };
        self.overloaded_since = Some(now);
    }

    /// Closes the window if its time is up, `waiting` callers queued now.
    fn tick(&mut self, now: Instant, waiting: usize) {
        if let Some(since) = self.overloaded_since
            && now.saturating_duration_since(since) >= self.look_after
        {
            // Look, with no growth carried over from before.
            self.overloaded_since = None;
            self.looked_at = Some(now);
            self.window = Window::starting(now, waiting, 0, false);
        }
        let elapsed = now.saturating_duration_since(self.window.start);
        if elapsed < WINDOW {
            return;
        }
        // A window left open longer than two saw a lull: no growth.
        let grew = elapsed < 2 * WINDOW && self.window.grew(waiting, self.config.max_concurrent);
        let growing = if grew { self.window.growing + 1 } else { 0 };
        let needed = match self.looked_at {
            Some(_) => GROWING_WINDOWS_AFTER_A_LOOK,
            None => GROWING_WINDOWS,
        };
        if growing >= needed {
            self.enter(now);
        }
        let failed = self.window.failed && elapsed < 2 * WINDOW;
        self.window = Window::starting(now, waiting, growing, failed);
    }
}

#[derive(Debug)]
struct Window {
    start: Instant,
    /// Callers waiting when it started.
    waiting: usize,
    /// Permits granted within it, at once or to waiters.
    granted: usize,
    /// Windows in a row, before this one, in which the queue grew.
    growing: u32,
    /// The queue failed a caller in the window just before this one.
    failed_before: bool,
    /// The queue failed a caller in this one.
    failed: bool,
}

impl Window {
    fn starting(start: Instant, waiting: usize, growing: u32, failed_before: bool) -> Self {
        Self {
            start,
            waiting,
            granted: 0,
            growing,
            failed_before,
            failed: false,
        }
    }

    /// Whether the queue, `waiting` long at its end, grew by half what the
    /// permits served and by half the permits. Callers that left the queue
    /// without a permit (their waits cut short) and came back count once.
    fn grew(&self, waiting: usize, permits: usize) -> bool {
        let threshold = (self.granted / 2).max(permits / 2).max(1);
        waiting >= self.waiting + threshold
    }
}

/// The last `HOLDS` holds, their median and 90th percentile recomputed
/// every eighth sample. The median, not the mean, predicts turns: a moment
/// when the whole machine stalled puts ten holds of 150 ms among 64 of
/// 26, which moves the mean by 23 ms, a queue of 90's predicted wait by
/// 200, and for as long as those holds stay among the 64 the queue would
/// refuse every caller at its tail; the median does not move.
#[derive(Debug, Default)]
struct Holds {
    recent: Vec<Duration>,
    next: usize,
    p50: Duration,
    p90: Duration,
    since_sorted: usize,
}

impl Holds {
    fn push(&mut self, held: Duration) {
        if self.recent.len() < HOLDS {
            self.recent.push(held);
        } else {
            self.recent[self.next] = held;
        }
        self.next = (self.next + 1) % HOLDS;
        self.since_sorted += 1;
        if self.since_sorted >= 8 || self.recent.len() < HOLDS {
            self.since_sorted = 0;
            let mut sorted = self.recent.clone();
            sorted.sort_unstable();
            self.p50 = sorted[sorted.len() / 2];
            self.p90 = sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_millis(500);

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn waits(max_wait: u64) -> Decision {
        Decision::Queue {
            max_wait: ms(max_wait),
            wait: Wait::Predicted,
        }
    }

    fn shed(max_wait: u64) -> Decision {
        Decision::Queue {
            max_wait: ms(max_wait),
            wait: Wait::Shed,
        }
    }

    /// Ten permits whose holds were all `hold`.
    fn warmed(hold: Duration, now: Instant) -> Admission {
        let mut admission = Admission::new(BulkheadConfig::default(), now);
        for _ in 0..HOLDS {
            admission.released(now, Some(hold));
        }
        admission
    }

    /// Callers failed in two windows in a row, the second at the instant
    /// returned: overload.
    fn fail_twice(a: &mut Admission, now: Instant) -> Instant {
        a.expired(now, 0);
        let then = now + WINDOW;
        a.expired(then, 0);
        assert!(a.overloaded());
        then
    }

    /// One window, its events spread evenly: `joins` callers ask to
    /// queue, `granted` waiters get permits and `left` leave without one
    /// (their waits cut short); `waiting` follows the queue.
    fn window(
        a: &mut Admission,
        start: Instant,
        (joins, granted, left): (u32, u32, u32),
        waiting: &mut usize,
    ) -> Vec<Decision> {
        let events = joins.max(granted).max(left);
        let mut decisions = Vec::new();
        for i in 0..events {
            let at = start + WINDOW * i / events;
            if i < granted {
                // The oldest permit came back and went to a waiter.
                a.in_flight.pop_front();
                *waiting = waiting.saturating_sub(1);
                a.handed(at, *waiting);
            }
            if i < left {
                *waiting = waiting.saturating_sub(1);
            }
            if i < joins {
                let decision = a.queue(at, BUDGET, *waiting);
                if matches!(decision, Decision::Queue { .. }) {
                    *waiting += 1;
                }
                decisions.push(decision);
            }
        }
        decisions
    }

    /// Windows at the same rates from `start` until `until`.
    fn windows(
        a: &mut Admission,
        start: Instant,
        until: Instant,
        rates: (u32, u32, u32),
        waiting: &mut usize,
    ) -> Vec<Decision> {
        let (mut t, mut decisions) = (start, Vec::new());
        while t < until {
            decisions.extend(window(a, t, rates, waiting));
            t += WINDOW;
        }
        decisions
    }

    #[test]
    fn a_caller_waits_while_its_budget_can_still_cover_a_call() {
        let now = Instant::now();
        let mut a = warmed(ms(26), now);
        assert_eq!(a.hold(), (ms(26), ms(26)));
        // 90 ahead of it on 10 permits of 26 ms: its turn in ~236 ms.
        assert_eq!(a.queue(now, BUDGET, 90), waits(375));
        assert!(!a.overloaded());
    }

    #[test]
    fn a_caller_whose_turn_comes_past_its_budget_is_refused_at_once() {
        let now = Instant::now();
        let mut a = warmed(ms(26), now);
        // 190 ahead: its turn in ~494 ms, and a call's reserve is 125 more.
        assert_eq!(a.queue(now, BUDGET, 190), Decision::Refuse);
    }

    #[test]
    fn one_failed_caller_is_noise_callers_failed_in_two_windows_in_a_row_are_overload() {
        let start = Instant::now();
        let mut a = warmed(ms(26), start);
        assert_eq!(a.queue(start, BUDGET, 190), Decision::Refuse);
        assert!(!a.overloaded(), "one caller failed");
        // A window with callers served and none failed between them.
        let calm = start + WINDOW;
        assert_eq!(a.queue(calm, BUDGET, 10), waits(375));
        let again = calm + WINDOW;
        a.expired(again, 10);
        assert!(!a.overloaded(), "failures two windows apart");
        assert_eq!(a.queue(again + WINDOW, BUDGET, 190), Decision::Refuse);
        assert!(a.overloaded(), "failures in two windows in a row");
    }

    #[test]
    fn a_caller_with_too_little_budget_for_any_call_says_nothing_about_the_queue() {
        let now = Instant::now();
        let mut a = warmed(ms(26), now);
        assert_eq!(a.queue(now, ms(20), 0), Decision::Refuse);
        assert!(!a.overloaded());
    }

    #[test]
    fn a_wait_leaves_the_call_its_90th_percentile_and_a_margin_and_never_less_than_the_floor() {
        let now = Instant::now();
        // 26 ms calls: 52 ms would do, the floor keeps 125 for a slowdown.
        assert_eq!(warmed(ms(26), now).queue(now, BUDGET, 0), waits(375));
        assert_eq!(warmed(ms(300), now).queue(now, BUDGET, 0), waits(150));
        let cold = Admission::new(BulkheadConfig::default(), now).queue(now, BUDGET, 0);
        let blind = Decision::Queue {
            max_wait: ms(375),
            wait: Wait::Blind,
        };
        assert_eq!(
            cold, blind,
            "with nothing learnt yet, its running out says nothing"
        );
    }

    #[test]
    fn overloaded_the_queue_keeps_the_waiters_whose_turn_comes_within_the_overload_wait() {
        let now = Instant::now();
        // Ten permits of 26 ms: one back every 2.6 ms, 38 within 100 ms.
        assert_eq!(warmed(ms(26), now).places_within_overload_wait(), 38);
        let cold = Admission::new(BulkheadConfig::default(), now);
        assert_eq!(cold.places_within_overload_wait(), 1_000_000);
    }

    #[test]
    fn a_bound_on_the_wait_caps_it_below_the_budget() {
        let now = Instant::now();
        let config = BulkheadConfig {
            max_wait: Some(ms(200)),
            ..BulkheadConfig::default()
        };
        let mut a = Admission::new(config, now);
        for _ in 0..HOLDS {
            a.released(now, Some(ms(26)));
        }
        assert_eq!(a.queue(now, BUDGET, 5), waits(200));
    }

    #[test]
    fn overloaded_every_wait_is_cut_to_the_overload_wait() {
        let start = Instant::now();
        let mut a = warmed(ms(26), start);
        let now = fail_twice(&mut a, start);
        assert_eq!(a.queue(now, BUDGET, 0), shed(100));
        assert_eq!(a.queue(now, BUDGET, 190), shed(100));
        // Never past what the budget allows.
        assert_eq!(a.queue(now, ms(175), 0), shed(50));
        assert_eq!(a.queue(now, ms(20), 0), Decision::Refuse);
    }

    #[test]
    fn a_queue_that_grows_window_after_window_means_overload() {
        let start = Instant::now();
        let mut a = warmed(ms(26), start);
        // Arrivals at twice what the permits serve: 38 a window against 19.
        let mut waiting = 20;
        let growing = start + WINDOW * GROWING_WINDOWS;
        windows(&mut a, start, growing, (38, 19, 0), &mut waiting);
        assert!(!a.overloaded(), "not before the windows are over");
        let decisions = window(&mut a, growing, (38, 19, 0), &mut waiting);
        assert!(a.overloaded());
        assert!(decisions.contains(&shed(100)));
    }

    #[test]
    fn a_closed_population_arriving_together_then_at_the_rate_served_is_not_overload() {
        let start = Instant::now();
        let mut a = warmed(ms(26), start);
        // 100 callers on 10 permits, connecting over three windows; then
        // each sends again when served.
        let mut waiting = 0;
        let connected = start + 3 * WINDOW;
        let mut decisions = windows(&mut a, start, connected, (40, 10, 0), &mut waiting);
        let end = start + 200 * WINDOW;
        decisions.extend(windows(&mut a, connected, end, (19, 19, 0), &mut waiting));
        assert!(decisions.iter().all(|d| *d == waits(375)));
        assert!(!a.overloaded());
    }

    #[test]
    fn overload_ends_when_the_queue_empties() {
        let start = Instant::now();
        let mut a = warmed(ms(26), start);
        let now = fail_twice(&mut a, start);
        a.granted_at_once(now + ms(10));
        assert!(!a.overloaded());
        let now = fail_twice(&mut a, now + ms(20));
        a.released(now, None);
        a.drained();
        assert!(!a.overloaded());
    }

    #[test]
    fn a_look_lets_a_closed_population_back_in_and_it_stays_served() {
        let mut a = warmed(ms(26), Instant::now());
        let start = fail_twice(&mut a, Instant::now());
        // 100 callers, their waits cut: those not served leave and send
        // again, so the queue stays as long as it was; after the look they
        // stop leaving once the cut waits have run out.
        let mut waiting = 90;
        let look = start + FIRST_LOOK;
        windows(&mut a, start, look, (38, 19, 19), &mut waiting);
        assert!(a.overloaded());
        windows(&mut a, look, look + 2 * WINDOW, (38, 19, 19), &mut waiting);
        assert!(!a.overloaded());
        let served = windows(
            &mut a,
            look + 2 * WINDOW,
            look + 40 * WINDOW,
            (19, 19, 0),
            &mut waiting,
        );
        assert!(!a.overloaded());
        assert!(served.iter().all(|d| *d == waits(375)));
    }

    #[test]
    fn an_open_overload_is_shed_again_within_a_few_windows_of_a_look_and_looked_at_less_often() {
        let mut a = warmed(ms(26), Instant::now());
        let start = fail_twice(&mut a, Instant::now());
        // Twice the arrivals the permits serve; overloaded, half leave.
        let (mut t, mut entered, mut waiting) = (start, start, 38);
        let mut look_after = FIRST_LOOK;
        for _ in 0..8 {
            while a.overloaded() {
                window(&mut a, t, (38, 19, 19), &mut waiting);
                t += WINDOW;
            }
            let looked = t - WINDOW;
            assert!(looked - entered >= look_after && looked - entered < look_after + WINDOW);
            // The waits cut before the look run out within two windows.
            let mut windows = 0;
            while !a.overloaded() {
                let left = if windows < 2 { 19 } else { 0 };
                window(&mut a, t, (38, 19, left), &mut waiting);
                t += WINDOW;
                windows += 1;
            }
            // Growth seen from the third window on, for two windows.
            assert!(windows <= 2 + GROWING_WINDOWS_AFTER_A_LOOK + 1, "{windows}");
            entered = t - WINDOW;
            waiting = 38;
            look_after = (look_after * 2).min(LAST_LOOK);
        }
        assert_eq!(look_after, LAST_LOOK);
    }

    #[test]
    fn a_stalled_moment_does_not_refuse_the_queue_s_tail() {
        let now = Instant::now();
        let mut a = warmed(ms(26), now);
        // The machine stalled: ten holds of 150 ms among the last 64. By
        // their mean, 89 callers ahead would take 409 ms, past any wait;
        // by their median, 234 ms. (The reserve takes the stall's 150 ms
        // as its 90th percentile: a call may be that slow again.)
        for _ in 0..10 {
            a.released(now, Some(ms(150)));
        }
        assert_eq!(a.queue(now, BUDGET, 89), waits(300));
    }

    #[test]
    fn the_estimates_follow_the_recent_holds() {
        let now = Instant::now();
        let mut a = warmed(ms(26), now);
        for _ in 0..HOLDS {
            a.released(now, Some(ms(100)));
        }
        assert_eq!(a.hold(), (ms(100), ms(100)));
        for i in 0..HOLDS as u64 {
            a.released(now, Some(ms(10 + i)));
        }
        let (median, p90) = a.hold();
        assert_eq!(median, ms(42));
        assert_eq!(p90, ms(67));
    }

    #[test]
    fn the_reserve_keeps_the_age_most_permits_in_use_have_reached() {
        let start = Instant::now();
        let mut a = warmed(ms(26), start);
        // Payment slowed down: ten calls out for 150 ms, none back yet,
        // and the holds learnt still say 26 ms.
        for _ in 0..10 {
            a.handed(start, 0);
        }
        let now = start + ms(150);
        assert_eq!(a.reserve(now), ms(200), "150 ms and a 50 ms margin");
        assert_eq!(a.queue(now, BUDGET, 0), waits(300));
        // Most of them back, a few stuck: back to the holds and the floor.
        for _ in 0..5 {
            a.released(start, Some(ms(150)));
        }
        for _ in 0..6 {
            a.handed(now, 0);
        }
        assert_eq!(a.reserve(now + ms(10)), ms(125));
    }
}
