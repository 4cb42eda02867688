//! The run as a picture: answers per second by status class and the p50 /
//! p99 latency over the run, in buckets that suit its length (100 ms for a
//! run of a few seconds, up to 10 s), with the breaker's state as a band
//! above them and the caller's marks (faults switched on and off) as
//! vertical lines, so a breaker opening and recovering, and why, is
//! visible at a glance. Plain SVG written by hand: no plotting dependency
//! for two line charts.

use std::fmt::Write as _;

use crate::report::{Report, Second};

/// A line: its legend, its colour, and its value in a bucket.
type Series<'a> = (&'a str, &'a str, fn(&Second) -> f64);

/// A count of the bucket, per second of the run it covers.
fn rate(count: u64, bucket: &Second) -> f64 {
    count as f64 * 1000.0 / bucket.width_ms.max(1) as f64
}

const WIDTH: f64 = 960.0;
const PANEL: f64 = 220.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
/// The breaker's band, under the title.
const BAND_Y: f64 = 38.0;
const BAND_H: f64 = 14.0;
/// The marks' labels sit in two rows under the band.
const MARK_ROW: f64 = BAND_Y + BAND_H + 28.0;
const TOP: f64 = MARK_ROW + 48.0;
const GAP: f64 = 60.0;
/// Up to this many buckets every point gets a dot; beyond, only points a
/// line would not show (a value between two empty buckets).
const DOTS_UP_TO: usize = 40;

/// The breaker's colours, by state.
const STATES: [(&str, &str); 4] = [
    ("closed", "#a5d6a7"),
    ("half_open", "#ffe082"),
    ("open", "#ef9a9a"),
    ("unknown", "#e0e0e0"),
];

/// The time axis shared by the band, the marks and both panels.
struct Axis {
    end_ms: f64,
}

impl Axis {
    fn x(&self, ms: f64) -> f64 {
        LEFT + PLOT_W * ms / self.end_ms
    }
}

pub fn render(report: &Report, title: &str) -> String {
    let buckets = &report.timeline;
    let axis = Axis {
        end_ms: buckets.last().map_or(1, |b| b.start_ms + b.width_ms).max(1) as f64,
    };
    let height = TOP + 2.0 * PANEL + GAP + 50.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
    band(&mut svg, report, &axis);

    let throughput: [Series; 4] = [
        ("2xx", "#2e7d32", |s| rate(s.ok, s)),
        ("4xx", "#ef6c00", |s| rate(s.client_errors, s)),
        ("5xx", "#c62828", |s| rate(s.server_errors, s)),
        ("no answer", "#616161", |s| rate(s.failures, s)),
    ];
    panel(
        &mut svg,
        buckets,
        &axis,
        TOP,
        ("answers per second", false),
        &throughput,
    );
    let latency: [Series; 2] = [
        ("p50 ms", "#1565c0", |s| s.p50_ms),
        ("p99 ms", "#6a1b9a", |s| s.p99_ms),
    ];
    panel(
        &mut svg,
        buckets,
        &axis,
        TOP + PANEL + GAP,
        ("latency (ms)", true),
        &latency,
    );
    marks(&mut svg, report, &axis, &[TOP, TOP + PANEL + GAP]);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds into the run</text>"#,
        LEFT + PLOT_W / 2.0,
        height - 10.0
    );
    svg.push_str("</svg>\n");
    svg
}

/// The breaker's state over the run: as followed on its event stream, else
/// as the answers show it (open where orders were refused by it).
fn band(svg: &mut String, report: &Report, axis: &Axis) {
    let mut spans: Vec<(f64, f64, &str)> = Vec::new();
    let caption = match &report.breaker {
        Some(changes) => {
            let mut from = 0.0;
            let mut state = "unknown";
            // Changes after the last request are past the picture's end.
            for change in changes.iter().filter(|c| (c.at_ms as f64) < axis.end_ms) {
                let at = change.at_ms as f64;
                spans.push((from, at, state));
                (from, state) = (at, change.state.as_str());
            }
            spans.push((from, axis.end_ms, state));
            "breaker, as order-service reported it"
        }
        None => {
            for b in &report.timeline {
                let state = if b.breaker_refused > 0 {
                    "open"
                } else if b.ok + b.client_errors + b.server_errors > 0 {
                    // Only an HTTP answer says the breaker let it through;
                    // a refused connection says nothing of it.
                    "closed"
                } else {
                    "unknown"
                };
                let end = (b.start_ms + b.width_ms) as f64;
                spans.push((b.start_ms as f64, end, state));
            }
            "breaker, from the answers: open where orders got 503 \"Circuit breaker open\""
        }
    };
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="end" fill="#555">breaker</text>"##,
        LEFT - 6.0,
        BAND_Y + BAND_H - 3.0
    );
    for (from, to, state) in spans.into_iter().filter(|(f, t, _)| t > f) {
        let color = STATES
            .iter()
            .find(|(name, _)| *name == state)
            .map_or(STATES[3].1, |(_, color)| color);
        let _ = writeln!(
            svg,
            r#"<rect class="breaker-{state}" x="{:.1}" y="{BAND_Y}" width="{:.1}" height="{BAND_H}" fill="{color}" stroke="none"/>"#,
            axis.x(from),
            // A half-open moment of a few ms stays visible.
            (axis.x(to) - axis.x(from)).max(2.0)
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="{}" fill="#555">{}</text>"##,
        BAND_Y + BAND_H + 13.0,
        escape(caption)
    );
    for (n, (name, color)) in STATES.iter().enumerate() {
        let lx = LEFT + PLOT_W - 90.0 * (STATES.len() - n) as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{color}"/><text x="{}" y="{}">{name}</text>"#,
            BAND_Y + BAND_H + 4.0,
            lx + 14.0,
            BAND_Y + BAND_H + 13.0
        );
    }
}

/// A dashed line across the band and inside each panel at each mark (not
/// across captions or legends), its label under the band (two rows,
/// alternating, so neighbours do not overlap).
fn marks(svg: &mut String, report: &Report, axis: &Axis, panels: &[f64]) {
    for (n, mark) in report.marks.iter().enumerate() {
        let x = axis.x(mark.at_ms as f64);
        let y = MARK_ROW + 14.0 * (n % 2) as f64;
        let spans = std::iter::once((BAND_Y, BAND_Y + BAND_H))
            .chain(panels.iter().map(|t| (*t, t + PANEL)));
        for (y1, y2) in spans {
            let _ = writeln!(
                svg,
                r##"<line class="mark" x1="{x:.1}" x2="{x:.1}" y1="{y1}" y2="{y2}" stroke="#37474f" stroke-dasharray="4 3"/>"##
            );
        }
        // Near the right edge the label goes to the line's left.
        let (tx, anchor) = if x > LEFT + PLOT_W * 0.75 {
            (x - 3.0, "end")
        } else {
            (x + 3.0, "start")
        };
        let _ = writeln!(
            svg,
            r##"<text x="{tx:.1}" y="{y}" text-anchor="{anchor}" fill="#37474f">{}</text>"##,
            escape(&mark.label)
        );
    }
}

/// Answers of a bucket, of any kind.
fn answers(b: &Second) -> u64 {
    b.ok + b.client_errors + b.server_errors + b.failures
}

/// One panel; with `gaps`, its lines break over buckets without answers.
fn panel(
    svg: &mut String,
    buckets: &[Second],
    axis: &Axis,
    top: f64,
    (label, gaps): (&str, bool),
    series: &[Series],
) {
    let highest = buckets
        .iter()
        .flat_map(|s| series.iter().map(move |(_, _, f)| f(s)))
        .fold(0.0, f64::max);
    let (step, max_y) = scale(highest);
    let y = |v: f64| top + PANEL - PANEL * v / max_y;
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{top}" width="{PLOT_W}" height="{PANEL}" fill="none" stroke="#bbb"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="{}" font-weight="bold">{label}</text>"#,
        top - 8.0
    );
    let mut value = 0.0;
    while value <= max_y + 1e-9 {
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end" fill="#555">{value}</text><line x1="{LEFT}" x2="{}" y1="{yy}" y2="{yy}" stroke="#eee"/>"##,
            LEFT - 6.0,
            y(value) + 4.0,
            LEFT + PLOT_W,
            yy = y(value)
        );
        value += step;
    }
    seconds(svg, axis, top + PANEL + 15.0);
    for (n, line) in series.iter().enumerate() {
        draw(svg, buckets, axis, (gaps, &y), line);
        // The legend above the frame, right-aligned: never under a line.
        let (name, color, _) = line;
        let lx = LEFT + PLOT_W - 110.0 * (series.len() - n) as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{color}"/><text x="{}" y="{}">{name}</text>"#,
            top - 18.0,
            lx + 14.0,
            top - 9.0
        );
    }
}

/// A round step (1, 2 or 5 times a power of ten) and the top of the axis
/// it reaches in at most five steps, for values up to `highest`.
fn scale(highest: f64) -> (f64, f64) {
    let highest = highest.max(1.0);
    let mut magnitude = 1.0;
    loop {
        for step in [1.0, 2.0, 5.0].map(|m| m * magnitude) {
            let steps = (highest / step).ceil();
            if steps <= 5.0 {
                return (step, step * steps.max(1.0));
            }
        }
        magnitude *= 10.0;
    }
}

/// About ten labels under the panel, at round seconds (tenths for a
/// short run).
fn seconds(svg: &mut String, axis: &Axis, y: f64) {
    let end_s = axis.end_ms / 1000.0;
    let step = [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    ]
    .into_iter()
    .find(|step| end_s / step <= 10.0)
    .unwrap_or(1200.0);
    let mut t = 0.0;
    while t <= end_s + 1e-9 {
        let text = if step < 1.0 {
            format!("{t:.1}")
        } else {
            format!("{t:.0}")
        };
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{y}" text-anchor="middle" fill="#555">{text}</text>"##,
            axis.x(t * 1000.0),
        );
        t += step;
    }
}

/// One series: its line (broken over empty buckets with `gaps`), and a dot
/// where a point would stand alone.
fn draw(
    svg: &mut String,
    buckets: &[Second],
    axis: &Axis,
    (gaps, y): (bool, &dyn Fn(f64) -> f64),
    (name, color, value): &Series,
) {
    // Each bucket is drawn at its middle.
    let middle = |b: &Second| axis.x(b.start_ms as f64 + b.width_ms as f64 / 2.0);
    // A rate of an empty bucket is 0; its latency is not: the line breaks
    // there instead.
    let segments = buckets
        .split(|b| gaps && answers(b) == 0)
        .filter(|segment| !segment.is_empty());
    for segment in segments {
        let points: Vec<String> = segment
            .iter()
            .map(|b| format!("{:.1},{:.1}", middle(b), y(value(b))))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline class="series" data-name="{name}" fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
    }
    let empty = |i: Option<usize>| {
        i.and_then(|i| buckets.get(i))
            .is_none_or(|b| value(b) <= 0.0)
    };
    for (i, b) in buckets.iter().enumerate() {
        let alone = empty(i.checked_sub(1)) && empty(Some(i + 1));
        if value(b) > 0.0 && (buckets.len() <= DOTS_UP_TO || alone) {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                middle(b),
                y(value(b))
            );
        }
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::scale;

    /// Ticks fall on round values (12/25/38 and 0, 0, 1, 1, 1 did not).
    #[test]
    fn the_value_axis_ticks_on_round_numbers() {
        assert_eq!(scale(0.0), (1.0, 1.0));
        assert_eq!(scale(1.0), (1.0, 1.0));
        assert_eq!(scale(3.2), (1.0, 4.0));
        assert_eq!(scale(50.0), (10.0, 50.0));
        assert_eq!(scale(51.0), (20.0, 60.0));
        assert_eq!(scale(355.0), (100.0, 400.0));
        assert_eq!(scale(9_999.0), (2_000.0, 10_000.0));
        for highest in [0.4, 7.0, 13.0, 99.0, 101.0, 4_321.0] {
            let (step, top) = scale(highest);
            assert!(
                top >= highest && top / step <= 5.0,
                "{highest}: {step} {top}"
            );
            let digits = step / 10f64.powf(step.log10().floor());
            assert!([1.0, 2.0, 5.0].contains(&digits), "{highest}: step {step}");
        }
    }
}
