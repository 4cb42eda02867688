//! The HTTP-server settings both services share (their ports differ, so
//! each keeps its own `PORT`). Flattened into each service's `Config`, so
//! `--help` lists them with the rest.

use std::net::IpAddr;

#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Address to bind: loopback unless told otherwise, so nothing is
    /// reachable from another host by default (the image sets 0.0.0.0).
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1")]
    pub bind_addr: IpAddr,

    /// Bearer token for /admin/* (and payment's /ledger, /charges/{key});
    /// unset, those answer 404.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// HTTP worker threads; unset, one per core.
    #[arg(long = "http-workers", env = "HTTP_WORKERS")]
    pub workers: Option<usize>,

    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(
        long = "shutdown-timeout-secs",
        env = "SHUTDOWN_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub shutdown_timeout_secs: u64,

    /// Longest time to receive a request's body, in milliseconds: a body
    /// still arriving then is refused with 408, so a client trickling bytes
    /// cannot hold a worker's connection open.
    #[arg(long, env = "BODY_TIMEOUT_MS", default_value_t = 5_000)]
    pub body_timeout_ms: u64,

    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
}

/// The liveness answer of both services (`GET /health`).
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    #[schema(example = "healthy")]
    pub status: &'static str,
}

impl Health {
    pub const HEALTHY: Self = Self { status: "healthy" };
}

/// The built application, or, when it could not be built, the reason said
/// plainly once where an operator looks (the log and stderr, not a `Debug`
/// dump) and the process ended with status 1.
pub fn built_or_exit<T>(service: &str, built: std::io::Result<T>) -> T {
    built.unwrap_or_else(|e| {
        tracing::error!(error = %e, "{service} cannot start");
        eprintln!("{service}: cannot start: {e}");
        std::process::exit(1)
    })
}
