//! Configuration: each setting is an environment variable and a flag, so
//! `order-service --help` documents every knob and its default.

use std::net::IpAddr;
use std::time::Duration;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "order-service",
    version,
    about = "Takes orders and charges them through payment-service, reliably"
)]
pub struct Config {
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Address to bind.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0")]
    pub bind_addr: IpAddr,

    /// Base URL of payment-service.
    #[arg(
        long,
        env = "PAYMENT_SERVICE_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub payment_service_url: String,

    /// Bearer token for /admin/*; unset, the admin endpoints answer 404.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Budget for the whole payment call, in milliseconds.
    #[arg(long, env = "PAYMENT_TIMEOUT_MS", default_value_t = 500)]
    pub payment_timeout_ms: u64,

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
}

impl Config {
    /// The defaults, as if started with no environment and no flags.
    pub fn defaults() -> Self {
        let mut config = Self::parse_from(["order-service"]);
        config.admin_token = None;
        config
    }

    pub fn payment_timeout(&self) -> Duration {
        Duration::from_millis(self.payment_timeout_ms)
    }
}
