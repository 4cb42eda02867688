//! Command-line flags. The Go original used Go's `flag` package, whose long
//! flags take one dash (`-url`, `-idempotent`); [`normalize_args`] turns
//! those into the `--url` form clap expects, so both spellings work.

use std::time::Duration;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Load generator for reliable-orders: closed or open model, HDR latency, idempotency and ledger checks",
    long_about = "Load generator for reliable-orders.\n\n\
        Closed model (default): -c connections send back to back, -n requests in all or for --duration.\n\
        Open model (--rate or rate --stages): requests are *scheduled* at the arrival rate and their latency \
        is measured from the intended send time, not from when a free connection finally sent them, so a \
        stalled server shows up in the percentiles instead of hiding behind coordinated omission.\n\n\
        Go-style single-dash flags work too: loadgen -url http://localhost:8080/orders -n 1000 -c 100 -t 5s -idempotent"
)]
pub struct Args {
    /// Target URL.
    #[arg(long, default_value = "http://localhost:8080/orders")]
    pub url: String,

    /// Total requests (closed model; ignored with --duration).
    #[arg(short = 'n', long = "requests", default_value_t = 100)]
    pub requests: u64,

    /// Concurrent connections (the most requests in flight).
    #[arg(short = 'c', long = "concurrency", default_value_t = 10)]
    pub concurrency: usize,

    /// Timeout of one request (e.g. 5s, 500ms).
    #[arg(short = 't', long = "timeout", default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Send a unique Idempotency-Key with every request.
    #[arg(long)]
    pub idempotent: bool,

    /// Run for this long instead of -n requests (e.g. 30s).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Open model: requests per second, latency from the intended send time.
    #[arg(long)]
    pub rate: Option<f64>,

    /// Ramp linearly through stages "DURATION:TARGET,…" from 0: the arrival
    /// rate with --rate (its value is ignored), else the concurrency.
    #[arg(long, value_parser = Stages::parse)]
    pub stages: Option<Stages>,

    /// HTTP method (GET for a health endpoint; bodies go with POST).
    #[arg(long, default_value = "POST")]
    pub method: String,

    /// merchant_id of the order body.
    #[arg(long, default_value = "merchant_123")]
    pub merchant: String,

    /// amount of the order body (a JSON number).
    #[arg(long, default_value = "99.99")]
    pub amount: String,

    /// currency of the order body.
    #[arg(long, default_value = "USD")]
    pub currency: String,

    /// Resend this percentage of requests with the same Idempotency-Key (half
    /// after the original completes, half concurrently) and check the same
    /// order_id comes back. Implies -idempotent.
    #[arg(long, default_value_t = 0.0)]
    pub replay_pct: f64,

    /// After the run, audit payment-service's ledger at this base URL: the
    /// run's charges against its 201s, duplicate charges, and the final
    /// status (from the --url's order-service) of orders charged without a
    /// 201 seen.
    #[arg(long)]
    pub audit: Option<String>,

    /// Write an SVG timeline: answers per second by status class, p50/p99,
    /// the breaker's state as a band, and the --marks.
    #[arg(long)]
    pub timeline: Option<std::path::PathBuf>,

    /// Follow the circuit breaker of the order-service at this base URL on
    /// its /admin/breaker/events stream: its exact state goes into the
    /// timeline's band, the progress line and the report. Without it, the
    /// band is read off the answers ("Circuit breaker open" refusals).
    #[arg(long, value_name = "ORDER_URL")]
    pub breaker: Option<String>,

    /// Admin token for --breaker and --audit (the same on both services
    /// under `make run`, which keeps it in run/admin-token).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Draw the changes listed in this file (lines "UNIX_MS LABEL", as the
    /// Makefile's fault-* targets append to run/marks) that fall within the
    /// run as markers on the timeline.
    #[arg(long, value_name = "FILE")]
    pub marks: Option<std::path::PathBuf>,

    /// A client key of order-service's CLIENT_KEYS, sent with every request
    /// as `Authorization: Bearer <key>`.
    #[arg(long, env = "CLIENT_KEY", hide_env_values = true)]
    pub client_key: Option<String>,

    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,

    /// Seed for the replay choice, for reproducible runs.
    #[arg(long)]
    pub seed: Option<u64>,
}

/// The long flags the Go original spelled with one dash.
const LONG_FLAGS: &[&str] = &[
    "url",
    "requests",
    "concurrency",
    "timeout",
    "idempotent",
    "duration",
    "rate",
    "stages",
    "method",
    "merchant",
    "amount",
    "currency",
    "replay-pct",
    "audit",
    "timeline",
    "breaker",
    "admin-token",
    "marks",
    "json",
    "seed",
    "help",
    "version",
];

/// `-url x` → `--url x`; short flags (`-n`) and `--long` stay as they are.
pub fn normalize_args<I: IntoIterator<Item = String>>(args: I) -> Vec<String> {
    args.into_iter()
        .enumerate()
        .map(|(i, arg)| {
            let name = arg.strip_prefix('-').filter(|rest| !rest.starts_with('-'));
            match name {
                Some(rest)
                    if i > 0 && LONG_FLAGS.contains(&rest.split('=').next().unwrap_or("")) =>
                {
                    format!("-{arg}")
                }
                _ => arg,
            }
        })
        .collect()
}

/// `5s`, `500ms`, `2m`, `1h`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((text, "s"), |at| text.split_at(at));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("bad duration unit in {text:?} (use ms, s, m or h)")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("bad duration {text:?}"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Linear ramps: each stage goes from the previous target (0 at first) to
/// its own over its duration.
#[derive(Debug, Clone, PartialEq)]
pub struct Stages(pub Vec<(Duration, f64)>);

impl Stages {
    pub fn parse(text: &str) -> Result<Self, String> {
        let stages = text
            .split(',')
            .map(|stage| {
                let (duration, target) = stage
                    .split_once(':')
                    .ok_or_else(|| format!("stage {stage:?} is not DURATION:TARGET"))?;
                let target: f64 = target
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad target in stage {stage:?}"))?;
                if target < 0.0 {
                    return Err(format!("negative target in stage {stage:?}"));
                }
                Ok((parse_duration(duration)?, target))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if stages.is_empty() {
            return Err("no stages".into());
        }
        Ok(Self(stages))
    }

    pub fn total(&self) -> Duration {
        self.0.iter().map(|(d, _)| *d).sum()
    }

    pub fn peak(&self) -> f64 {
        self.0.iter().map(|(_, t)| *t).fold(0.0, f64::max)
    }

    /// The target at `elapsed` into the run; `None` once the stages are over.
    pub fn target_at(&self, elapsed: Duration) -> Option<f64> {
        let mut start = Duration::ZERO;
        let mut from = 0.0;
        for &(duration, to) in &self.0 {
            if elapsed < start + duration {
                let progress = (elapsed - start).as_secs_f64() / duration.as_secs_f64().max(1e-9);
                return Some(from + (to - from) * progress);
            }
            start += duration;
            from = to;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Args {
        Args::try_parse_from(normalize_args(line.split_whitespace().map(str::to_owned))).unwrap()
    }

    #[test]
    fn the_go_originals_flag_forms_parse() {
        let args =
            parse("loadgen -url http://localhost:8080/orders -n 1000 -c 100 -t 5s -idempotent");
        assert_eq!(args.url, "http://localhost:8080/orders");
        assert_eq!((args.requests, args.concurrency), (1000, 100));
        assert_eq!(args.timeout, Duration::from_secs(5));
        assert!(args.idempotent);
        let args = parse("loadgen -url=http://x/orders -n=5");
        assert_eq!((args.url.as_str(), args.requests), ("http://x/orders", 5));
    }

    #[test]
    fn the_usual_double_dash_forms_parse() {
        let args =
            parse("loadgen --url http://h/orders --duration 30s --rate 200 --replay-pct 5 --json");
        assert_eq!(args.duration, Some(Duration::from_secs(30)));
        assert_eq!(args.rate, Some(200.0));
        assert_eq!(args.replay_pct, 5.0);
        assert!(args.json);
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("5x").is_err());
    }

    #[test]
    fn stages_ramp_linearly_from_zero() {
        let stages = Stages::parse("10s:50,30s:400,10s:0").unwrap();
        assert_eq!(stages.total(), Duration::from_secs(50));
        assert_eq!(stages.peak(), 400.0);
        assert_eq!(stages.target_at(Duration::from_secs(5)), Some(25.0));
        assert_eq!(stages.target_at(Duration::from_secs(25)), Some(225.0));
        assert_eq!(stages.target_at(Duration::from_secs(45)), Some(200.0));
        assert_eq!(stages.target_at(Duration::from_secs(50)), None);
        assert!(Stages::parse("10s").is_err());
    }
}
