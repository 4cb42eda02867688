//! What a run is to do, parsed from the flags once: the request, the
//! load model and its stop, and what to watch beside it.

use std::io::IsTerminal;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;

use crate::cli::{Args, Stages};
use crate::client::{Spec, Target};

#[derive(Debug, Clone, Copy)]
pub enum Stop {
    Count(u64),
    After(Duration),
}

/// Everything a run needs, parsed from the flags.
#[derive(Debug, Clone)]
pub struct Plan {
    pub target: Target,
    pub spec: Spec,
    pub idempotent: bool,
    pub concurrency: usize,
    pub stop: Stop,
    pub rate: Option<f64>,
    pub stages: Option<Stages>,
    pub timeout: Duration,
    pub replay_pct: f64,
    pub seed: u64,
    pub progress: bool,
    /// payment-service's base URL, to audit its ledger after the run.
    pub audit: Option<String>,
    /// order-service's base URL, to follow its breaker during the run.
    pub breaker: Option<String>,
    pub admin_token: Option<String>,
    /// A file of marks to draw (`UNIX_MS LABEL` lines).
    pub marks: Option<std::path::PathBuf>,
    /// Ctrl-C (SIGINT) ends the run early, with its report: set by the
    /// binary, not by tests, whose process should keep its usual Ctrl-C.
    pub interruptible: bool,
}

impl Plan {
    pub fn from_args(args: &Args) -> Result<Self, String> {
        let method: Method = args
            .method
            .to_uppercase()
            .parse()
            .map_err(|_| format!("bad method {}", args.method))?;
        let body = (method == Method::POST).then(|| {
            Bytes::from(format!(
                r#"{{"merchant_id":{},"amount":{},"currency":{}}}"#,
                serde_json::Value::from(args.merchant.as_str()),
                args.amount,
                serde_json::Value::from(args.currency.as_str())
            ))
        });
        if !(0.0..=100.0).contains(&args.replay_pct) {
            return Err("--replay-pct must be from 0 to 100".into());
        }
        if args.concurrency == 0 {
            return Err("-c must be at least 1".into());
        }
        let stop = match (&args.stages, args.duration) {
            (Some(stages), _) => Stop::After(stages.total()),
            (None, Some(duration)) => Stop::After(duration),
            (None, None) => Stop::Count(args.requests),
        };
        Ok(Self {
            target: Target::parse(&args.url)?,
            spec: Spec {
                method,
                body,
                want_order_id: args.audit.is_some() || args.replay_pct > 0.0,
                bearer: args.client_key.clone(),
            },
            idempotent: args.idempotent || args.replay_pct > 0.0,
            concurrency: args.concurrency,
            stop,
            rate: args.rate,
            stages: args.stages.clone(),
            timeout: args.timeout,
            replay_pct: args.replay_pct,
            seed: args.seed.unwrap_or_else(rand::random),
            progress: std::io::stdout().is_terminal(),
            audit: args.audit.clone(),
            breaker: args.breaker.clone(),
            admin_token: args.admin_token.clone(),
            marks: args.marks.clone(),
            interruptible: false,
        })
    }

    pub fn open(&self) -> bool {
        self.rate.is_some()
    }
}
