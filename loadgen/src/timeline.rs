//! The run as a picture: answers per second by status class and the p50 /
//! p99 latency over the run, in buckets that suit its length (100 ms for a
//! run of a few seconds, up to 10 s), so a breaker opening and recovering
//! is visible at a glance. Plain SVG written by hand: no plotting
//! dependency for two line charts.

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
const TOP: f64 = 56.0;
const GAP: f64 = 60.0;

pub fn render(report: &Report, title: &str) -> String {
    let buckets = &report.timeline;
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

    let throughput: [Series; 4] = [
        ("2xx", "#2e7d32", |s| rate(s.ok, s)),
        ("4xx", "#ef6c00", |s| rate(s.client_errors, s)),
        ("5xx", "#c62828", |s| rate(s.server_errors, s)),
        ("no answer", "#616161", |s| rate(s.failures, s)),
    ];
    panel(&mut svg, buckets, TOP, "answers per second", &throughput);
    let latency: [Series; 2] = [
        ("p50 ms", "#1565c0", |s| s.p50_ms),
        ("p99 ms", "#6a1b9a", |s| s.p99_ms),
    ];
    panel(
        &mut svg,
        buckets,
        TOP + PANEL + GAP,
        "latency (ms)",
        &latency,
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds into the run</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        height - 10.0
    );
    svg.push_str("</svg>\n");
    svg
}

fn panel(svg: &mut String, buckets: &[Second], top: f64, label: &str, series: &[Series]) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let max_y = buckets
        .iter()
        .flat_map(|s| series.iter().map(move |(_, _, f)| f(s)))
        .fold(0.0, f64::max)
        .max(1.0);
    // Each bucket is drawn at its middle, on a time axis in seconds.
    let end_ms = buckets.last().map_or(1, |b| b.start_ms + b.width_ms).max(1) as f64;
    let x_ms = |ms: f64| LEFT + plot_w * ms / end_ms;
    let middle = |b: &Second| b.start_ms as f64 + b.width_ms as f64 / 2.0;
    let y = |v: f64| top + PANEL - PANEL * v / max_y;
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL}" fill="none" stroke="#bbb"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="{}" font-weight="bold">{label}</text>"#,
        top - 8.0
    );
    for tick in 0..=4 {
        let value = max_y * tick as f64 / 4.0;
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end" fill="#555">{value:.0}</text><line x1="{LEFT}" x2="{}" y1="{yy}" y2="{yy}" stroke="#eee"/>"##,
            LEFT - 6.0,
            y(value) + 4.0,
            LEFT + plot_w,
            yy = y(value)
        );
    }
    // About ten labels, at round seconds (tenths for a short run).
    let end_s = end_ms / 1000.0;
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
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">{text}</text>"##,
            x_ms(t * 1000.0),
            top + PANEL + 15.0
        );
        t += step;
    }
    for (n, (name, color, value)) in series.iter().enumerate() {
        let points: Vec<String> = buckets
            .iter()
            .map(|b| format!("{:.1},{:.1}", x_ms(middle(b)), y(value(b))))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        // The legend above the frame, right-aligned: never under a line.
        let lx = LEFT + plot_w - 110.0 * (series.len() - n) as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{color}"/><text x="{}" y="{}">{name}</text>"#,
            top - 18.0,
            lx + 14.0,
            top - 9.0
        );
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
