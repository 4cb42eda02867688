//! What a run measured: the recorder that collects it and the report that
//! is printed (the Go original's summary, then what it never had) or
//! written as JSON.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::audit::AuditReport;
use crate::breaker::{REFUSED_TITLE, StateChange};
use crate::client::Outcome;

mod text;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// "closed" or "open".
    pub mode: String,
    pub concurrency: usize,
    pub target_rate: Option<f64>,
    pub total: u64,
    /// 2xx answers.
    pub successful: u64,
    pub failed: u64,
    pub timeouts: u64,
    pub duration_secs: f64,
    pub requests_per_sec: f64,
    pub latency: Latency,
    pub status_codes: BTreeMap<String, u64>,
    /// Requests without an HTTP answer, by cause.
    pub errors: BTreeMap<String, u64>,
    /// Error answers by their problem+json `title`.
    pub problem_titles: BTreeMap<String, u64>,
    /// Error answers by what they said of money (`charge`: `none`,
    /// `unknown`; `absent` when they said nothing).
    #[serde(default)]
    pub charge_answers: BTreeMap<String, u64>,
    pub replay: Option<ReplayReport>,
    pub audit: Option<AuditReport>,
    /// The run in buckets of `timeline_bucket_ms` (the last one as long as
    /// the run lasted into it).
    pub timeline: Vec<Second>,
    pub timeline_bucket_ms: u64,
    /// The breaker's states as followed on `/admin/breaker/events`
    /// (`--breaker`); `None` when it was not followed.
    #[serde(default)]
    pub breaker: Option<Vec<StateChange>>,
    /// Changes made during the run by others (faults set by `make fault-*`),
    /// from `--marks`.
    #[serde(default)]
    pub marks: Vec<Mark>,
    /// order_id of every 2xx, for the audit (not printed).
    #[serde(skip)]
    pub created_order_ids: Vec<String>,
    /// order_id of every error answer that said nothing was charged
    /// (`charge: none`), for the audit (not printed).
    #[serde(skip)]
    pub none_order_ids: Vec<String>,
}

/// Milliseconds, from a histogram with microsecond resolution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub average_ms: f64,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// Every replay sent is counted once, in exactly one of `same_order`,
/// `in_flight`, `violations` and `not_comparable`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplayReport {
    pub sent: u64,
    pub concurrent: u64,
    /// Both answers 2xx with the same order_id.
    pub same_order: u64,
    /// One of the two was refused with 409 because the other was in flight.
    pub in_flight: u64,
    /// Both answers 2xx with different order_ids: the server is not idempotent.
    pub violations: u64,
    /// Neither of the above: one of the two answers was another error, or
    /// no answer at all.
    pub not_comparable: u64,
}

/// Something that changed during the run, drawn as a marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub at_ms: u64,
    pub label: String,
}

/// The marks of `text` (lines `UNIX_MS LABEL`, as the Makefile's fault
/// targets append them) that fall within the run, which started at
/// `start_unix_ms` and lasted `run_ms`; times made relative to its start.
pub fn marks_within(text: &str, start_unix_ms: i64, run_ms: u64) -> Vec<Mark> {
    text.lines()
        .filter_map(|line| {
            let (at, label) = line.trim().split_once(char::is_whitespace)?;
            let at_ms = at.parse::<i64>().ok()?.checked_sub(start_unix_ms)?;
            (0..=run_ms as i64).contains(&at_ms).then(|| Mark {
                at_ms: at_ms as u64,
                label: label.trim().to_owned(),
            })
        })
        .collect()
}

/// One bucket of the timeline (a second, or what suits the run's length:
/// from 100 ms for a run of a few seconds to 10 s for a long one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// The bucket's index.
    pub second: u64,
    /// Where the bucket starts in the run, and how much of the run it covers.
    pub start_ms: u64,
    pub width_ms: u64,
    pub ok: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    pub failures: u64,
    /// Of the server errors, those refused by an open breaker.
    #[serde(default)]
    pub breaker_refused: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// What the recorder keeps apart; the timeline merges these.
const SLICE_MS: u64 = 100;
/// A picture reads well up to about this many buckets.
const MAX_BUCKETS: u64 = 120;

/// The slices merged into buckets of the smallest width from 100 ms to
/// 10 s that keeps the run (`run_ms`, up to its last request) within
/// [`MAX_BUCKETS`]: a run of a second gets ten points, not one. The last
/// bucket's width is what the run covered of it, so its rate is not read as
/// a collapse.
fn buckets(slices: Vec<(Second, Histogram<u64>)>, run_ms: u64) -> (Vec<Second>, u64) {
    let run_ms = run_ms.max(1);
    let width = [100, 200, 500, 1_000, 2_000, 5_000, 10_000]
        .into_iter()
        .find(|w| run_ms.div_ceil(*w) <= MAX_BUCKETS)
        .unwrap_or(10_000);
    let per_bucket = (width / SLICE_MS) as usize;
    let mut timeline = Vec::new();
    for (index, chunk) in slices.chunks(per_bucket).enumerate() {
        let start_ms = index as u64 * width;
        let mut bucket = Second {
            second: index as u64,
            start_ms,
            width_ms: width.min(run_ms.saturating_sub(start_ms)).max(1),
            ..Second::default()
        };
        let mut hist = histogram(2);
        for (slice, slice_hist) in chunk {
            bucket.ok += slice.ok;
            bucket.client_errors += slice.client_errors;
            bucket.server_errors += slice.server_errors;
            bucket.failures += slice.failures;
            bucket.breaker_refused += slice.breaker_refused;
            let _ = hist.add(slice_hist);
        }
        if !hist.is_empty() {
            bucket.p50_ms = hist.value_at_quantile(0.5) as f64 / 1000.0;
            bucket.p99_ms = hist.value_at_quantile(0.99) as f64 / 1000.0;
        }
        timeline.push(bucket);
    }
    // A sliver at the end (a run that ended just past a bucket's start) is
    // folded into the bucket before it: drawn alone, its rate would be
    // noise or a fake collapse.
    if timeline.len() >= 2 && timeline.last().is_some_and(|b| b.width_ms * 2 < width) {
        let sliver = timeline.pop().expect("two buckets");
        let last = timeline.last_mut().expect("one bucket left");
        last.width_ms += sliver.width_ms;
        last.ok += sliver.ok;
        last.client_errors += sliver.client_errors;
        last.server_errors += sliver.server_errors;
        last.failures += sliver.failures;
        last.breaker_refused += sliver.breaker_refused;
        // Its answers were few: the percentiles stay the bucket's own.
        if last.p99_ms == 0.0 {
            (last.p50_ms, last.p99_ms) = (sliver.p50_ms, sliver.p99_ms);
        }
    }
    (timeline, width)
}

fn histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, sigfig).expect("valid histogram bounds")
}

/// Collects every result of a run (behind one lock: a sample costs a few
/// tens of nanoseconds, far below a request).
pub struct Recorder {
    start: Instant,
    latency: Histogram<u64>,
    total: u64,
    successful: u64,
    breaker_refused: u64,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<&'static str, u64>,
    titles: BTreeMap<String, u64>,
    charges: BTreeMap<String, u64>,
    /// 100 ms slices, merged into the timeline's buckets at the end.
    slices: Vec<(Second, Histogram<u64>)>,
    /// When the last request was due, from the start: the timeline ends
    /// there, not after the last answers drained in.
    last_at_ms: u64,
    pub order_ids: Vec<String>,
    pub none_order_ids: Vec<String>,
    pub replay: ReplayReport,
    collect_orders: bool,
}

impl Recorder {
    pub fn new(start: Instant, collect_orders: bool) -> Self {
        Self {
            start,
            latency: histogram(3),
            total: 0,
            successful: 0,
            breaker_refused: 0,
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
            titles: BTreeMap::new(),
            charges: BTreeMap::new(),
            slices: Vec::new(),
            last_at_ms: 0,
            order_ids: Vec::new(),
            none_order_ids: Vec::new(),
            replay: ReplayReport::default(),
            collect_orders,
        }
    }

    /// Answers so far: all, not 2xx, refused by the breaker.
    pub fn completed(&self) -> (u64, u64, u64) {
        (
            self.total,
            self.total - self.successful,
            self.breaker_refused,
        )
    }

    /// One request, scheduled (or sent) at `at`, answered `latency` later.
    pub fn record(&mut self, at: Instant, latency: Duration, outcome: &Outcome) {
        let micros = (latency.as_micros() as u64).clamp(1, 3_600_000_000);
        self.latency.saturating_record(micros);
        self.total += 1;
        let at_ms = at.saturating_duration_since(self.start).as_millis() as u64;
        self.last_at_ms = self.last_at_ms.max(at_ms);
        let slice = (at_ms / SLICE_MS) as usize;
        while self.slices.len() <= slice {
            self.slices.push((Second::default(), histogram(2)));
        }
        let (bucket, hist) = &mut self.slices[slice];
        hist.saturating_record(micros);
        match outcome {
            Outcome::Response {
                status,
                order_id,
                problem_title,
                charge,
            } => {
                *self.statuses.entry(*status).or_default() += 1;
                match status {
                    200..=299 => {
                        self.successful += 1;
                        bucket.ok += 1;
                        if self.collect_orders
                            && let Some(id) = order_id
                        {
                            self.order_ids.push(id.clone());
                        }
                    }
                    400..=499 => bucket.client_errors += 1,
                    _ => bucket.server_errors += 1,
                }
                if let Some(title) = problem_title {
                    if title == REFUSED_TITLE {
                        bucket.breaker_refused += 1;
                        self.breaker_refused += 1;
                    }
                    *self.titles.entry(title.clone()).or_default() += 1;
                    let said = charge.as_deref().unwrap_or("absent");
                    *self.charges.entry(said.to_owned()).or_default() += 1;
                    if self.collect_orders
                        && said == "none"
                        && let Some(id) = order_id
                    {
                        self.none_order_ids.push(id.clone());
                    }
                }
            }
            Outcome::Failed(failure) => {
                *self.errors.entry(failure.as_str()).or_default() += 1;
                bucket.failures += 1;
            }
        }
    }

    pub fn finish(
        self,
        elapsed: Duration,
        mode: &str,
        concurrency: usize,
        rate: Option<f64>,
    ) -> Report {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let h = &self.latency;
        let latency = if self.total == 0 {
            Latency::default()
        } else {
            Latency {
                average_ms: h.mean() / 1000.0,
                min_ms: ms(h.min()),
                p50_ms: ms(h.value_at_quantile(0.50)),
                p90_ms: ms(h.value_at_quantile(0.90)),
                p95_ms: ms(h.value_at_quantile(0.95)),
                p99_ms: ms(h.value_at_quantile(0.99)),
                p999_ms: ms(h.value_at_quantile(0.999)),
                max_ms: ms(h.max()),
            }
        };
        // A closed-model run whose users all hung ends, in the picture, at
        // the last request sent; the hang shows as its latency.
        let run_ms = if self.total == 0 {
            elapsed.as_millis() as u64
        } else {
            self.last_at_ms + 1
        };
        let (timeline, timeline_bucket_ms) = buckets(self.slices, run_ms);
        let duration_secs = elapsed.as_secs_f64();
        Report {
            mode: mode.to_owned(),
            concurrency,
            target_rate: rate,
            total: self.total,
            successful: self.successful,
            failed: self.total - self.successful,
            timeouts: self.errors.get("timeout").copied().unwrap_or(0),
            duration_secs,
            requests_per_sec: if duration_secs > 0.0 {
                self.total as f64 / duration_secs
            } else {
                0.0
            },
            latency,
            status_codes: self
                .statuses
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            errors: self
                .errors
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            problem_titles: self.titles,
            charge_answers: self.charges,
            replay: None,
            audit: None,
            timeline,
            timeline_bucket_ms,
            breaker: None,
            marks: Vec::new(),
            created_order_ids: self.order_ids,
            none_order_ids: self.none_order_ids,
        }
    }
}

#[cfg(test)]
mod timeline_tests {
    use super::*;

    fn slices(counts: &[u64]) -> Vec<(Second, Histogram<u64>)> {
        counts
            .iter()
            .map(|&ok| {
                let mut hist = histogram(2);
                for _ in 0..ok {
                    hist.record(1_000).unwrap();
                }
                (
                    Second {
                        ok,
                        ..Second::default()
                    },
                    hist,
                )
            })
            .collect()
    }

    #[test]
    fn a_short_run_gets_buckets_of_100_ms_and_a_long_one_wider() {
        let (short, width) = buckets(slices(&[5; 12]), 1_150);
        assert_eq!(width, 100);
        assert_eq!(short.len(), 12);
        // The last bucket covers 50 ms of the run: its rate is not halved.
        assert_eq!((short[11].start_ms, short[11].width_ms), (1_100, 50));
        // A sliver of 20 ms joins the bucket before it, its answers too.
        let (tail, _) = buckets(slices(&[5, 5, 5, 1]), 320);
        assert_eq!(tail.len(), 3);
        assert_eq!(
            (tail[2].start_ms, tail[2].width_ms, tail[2].ok),
            (200, 120, 6)
        );
        assert!((short[0].p50_ms - 1.0).abs() < 0.01, "{}", short[0].p50_ms);
        let (long, width) = buckets(slices(&[1; 600]), 60_000);
        assert_eq!(width, 500);
        assert_eq!(long.len(), 120);
        assert_eq!(long[0].ok, 5);
    }

    #[test]
    fn only_the_marks_within_the_run_are_kept() {
        let text =
            "999 before\n1000 fault-errors: 30 % errors\n\ngarbage\n1500 fault-clear\n2001 after\n";
        let marks = marks_within(text, 1000, 1000);
        let got: Vec<(u64, &str)> = marks.iter().map(|m| (m.at_ms, m.label.as_str())).collect();
        assert_eq!(
            got,
            [(0, "fault-errors: 30 % errors"), (500, "fault-clear")]
        );
    }

    #[test]
    fn the_timeline_ends_at_the_last_request_not_after_the_drain() {
        // Requests due until 2.95 s of a run that took 3.2 s to answer them.
        let (timeline, _) = buckets(slices(&[3; 30]), 2_951);
        assert_eq!(timeline.len(), 30);
        assert_eq!(timeline[29].width_ms, 51, "the last bucket is not diluted");
    }
}
