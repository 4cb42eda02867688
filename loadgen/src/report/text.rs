//! The report as a person reads it: the Go original's summary first, then
//! percentiles, failures, replays, the breaker, the marks and the audit.

use std::fmt::Write as _;

use super::Report;

impl Report {
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.summary(&mut out);
        self.answers(&mut out);
        self.replays(&mut out);
        self.watched(&mut out);
        if let Some(a) = &self.audit {
            out.push_str(&a.to_text());
        }
        out
    }

    /// Counts, rate and latency.
    fn summary(&self, out: &mut String) {
        let l = &self.latency;
        let _ = writeln!(out, "\n=== Load Test Results ===");
        let _ = writeln!(out, "Total Requests:  {}", self.total);
        let _ = writeln!(out, "Successful:      {}", self.successful);
        let _ = writeln!(out, "Failed:          {}", self.failed);
        let _ = writeln!(out, "Timeouts:        {}", self.timeouts);
        let _ = writeln!(out, "Duration:        {:.3}s", self.duration_secs);
        let _ = writeln!(out, "Requests/sec:    {:.2}", self.requests_per_sec);
        let _ = writeln!(out, "\nLatency:");
        for (name, value) in [
            ("Average", l.average_ms),
            ("p50", l.p50_ms),
            ("p90", l.p90_ms),
            ("p95", l.p95_ms),
            ("p99", l.p99_ms),
            ("p99.9", l.p999_ms),
            ("Min", l.min_ms),
            ("Max", l.max_ms),
        ] {
            let _ = writeln!(out, "  {name:<8} {value:>10.3}ms");
        }
        if self.mode == "open" {
            let _ = writeln!(
                out,
                "  (open model: latency from each request's intended send time)"
            );
        }
    }

    /// The answers by status, by failure, by problem and by what they said
    /// was charged.
    fn answers(&self, out: &mut String) {
        let _ = writeln!(out, "\nStatus Code Distribution:");
        for (status, count) in &self.status_codes {
            let _ = writeln!(out, "  {status}: {count}");
        }
        if !self.errors.is_empty() {
            let _ = writeln!(out, "\nFailures without an answer:");
            for (kind, count) in &self.errors {
                let _ = writeln!(out, "  {kind}: {count}");
            }
        }
        if !self.problem_titles.is_empty() {
            let _ = writeln!(out, "\nError answers by problem title:");
            for (title, count) in &self.problem_titles {
                let _ = writeln!(out, "  {title}: {count}");
            }
        }
        if !self.charge_answers.is_empty() {
            let said: Vec<String> = self
                .charge_answers
                .iter()
                .map(|(charge, n)| format!("{charge} {n}"))
                .collect();
            let _ = writeln!(
                out,
                "\nError answers by what they said was charged: {}",
                said.join(", ")
            );
        }
    }

    fn replays(&self, out: &mut String) {
        let Some(r) = &self.replay else { return };
        let _ = writeln!(out, "\nIdempotency replays:");
        let _ = writeln!(
            out,
            "  sent: {} ({} concurrent with the original)",
            r.sent, r.concurrent
        );
        let _ = writeln!(out, "  same order_id: {}", r.same_order);
        let _ = writeln!(
            out,
            "  one refused while the other was in flight (409): {}",
            r.in_flight
        );
        let _ = writeln!(
            out,
            "  not comparable (another error, or no answer): {}",
            r.not_comparable
        );
        let _ = writeln!(out, "  VIOLATIONS (different order_id): {}", r.violations);
    }

    /// The breaker's changes and the marks, in seconds from the start.
    fn watched(&self, out: &mut String) {
        if let Some(changes) = &self.breaker {
            let _ = writeln!(out, "\nBreaker (followed on /admin/breaker/events):");
            for change in changes {
                let at = change.at_ms as f64 / 1000.0;
                let _ = writeln!(out, "  {at:>8.3}s  {}", change.state);
            }
        }
        if !self.marks.is_empty() {
            let _ = writeln!(out, "\nMarks:");
            for mark in &self.marks {
                let at = mark.at_ms as f64 / 1000.0;
                let _ = writeln!(out, "  {at:>8.3}s  {}", mark.label);
            }
        }
    }
}
