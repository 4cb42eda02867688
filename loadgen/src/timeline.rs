//! The run as a picture: per second, answers by status class and the p50 /
//! p99 latency, so a breaker opening and recovering is visible at a glance.
//! Plain SVG written by hand: no plotting dependency for two line charts.

use std::fmt::Write as _;

use crate::report::{Report, Second};

/// A line: its legend, its colour, and its value in a second.
type Series<'a> = (&'a str, &'a str, fn(&Second) -> f64);

const WIDTH: f64 = 960.0;
const PANEL: f64 = 220.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 56.0;
const GAP: f64 = 60.0;

pub fn render(report: &Report, title: &str) -> String {
    let seconds = &report.timeline;
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
        ("2xx", "#2e7d32", |s| s.ok as f64),
        ("4xx", "#ef6c00", |s| s.client_errors as f64),
        ("5xx", "#c62828", |s| s.server_errors as f64),
        ("no answer", "#616161", |s| s.failures as f64),
    ];
    panel(&mut svg, seconds, TOP, "answers per second", &throughput);
    let latency: [Series; 2] = [
        ("p50 ms", "#1565c0", |s| s.p50_ms),
        ("p99 ms", "#6a1b9a", |s| s.p99_ms),
    ];
    panel(
        &mut svg,
        seconds,
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

fn panel(svg: &mut String, seconds: &[Second], top: f64, label: &str, series: &[Series]) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let max_y = seconds
        .iter()
        .flat_map(|s| series.iter().map(move |(_, _, f)| f(s)))
        .fold(0.0, f64::max)
        .max(1.0);
    let max_x = (seconds.len().max(2) - 1) as f64;
    let x = |i: usize| LEFT + plot_w * i as f64 / max_x;
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
    let step = (seconds.len() / 10).max(1);
    for i in (0..seconds.len()).step_by(step) {
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">{i}</text>"##,
            x(i),
            top + PANEL + 15.0
        );
    }
    for (n, (name, color, value)) in series.iter().enumerate() {
        let points: Vec<String> = seconds
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{:.1},{:.1}", x(i), y(value(s))))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        let lx = LEFT + 10.0 + 110.0 * n as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{color}"/><text x="{}" y="{}">{name}</text>"#,
            top + 8.0,
            lx + 14.0,
            top + 17.0
        );
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
