//! Configuration: each setting is an environment variable and a flag, so
//! `payment-service --help` documents every knob and its default.

use std::path::PathBuf;

use clap::Parser;
use common::server::ServerArgs;

use crate::faults::Faults;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "payment-service",
    version,
    about = "Idempotent charge ledger with runtime fault injection (the downstream of order-service)"
)]
pub struct Config {
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8081)]
    pub port: u16,

    #[command(flatten)]
    pub server: ServerArgs,

    /// The key callers of POST /charge present as `Authorization: Bearer
    /// <key>` (order-service's PAYMENT_API_KEY). Required.
    #[arg(
        long = "payment-api-key",
        env = "PAYMENT_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,

    /// Initial faults; change them at runtime with PUT /admin/faults.
    #[command(flatten)]
    pub faults: Faults,

    /// Simulated time of the `validate` step, in milliseconds.
    #[arg(
        long = "payment-validate-ms",
        env = "PAYMENT_VALIDATE_MS",
        default_value_t = 5
    )]
    pub validate_ms: u64,

    /// Simulated time of the `gatewayCall` step, in milliseconds.
    #[arg(
        long = "payment-gateway-ms",
        env = "PAYMENT_GATEWAY_MS",
        default_value_t = 20
    )]
    pub gateway_ms: u64,

    /// Append-only ledger log; unset, charges live in memory only and a
    /// restart forgets them.
    #[arg(long = "payment-ledger-path", env = "PAYMENT_LEDGER_PATH")]
    pub ledger_path: Option<PathBuf>,

    /// Seed for the fault dice, for reproducible runs; unset, seeded from the OS.
    #[arg(long = "payment-fault-seed", env = "PAYMENT_FAULT_SEED")]
    pub fault_seed: Option<u64>,
}

impl Config {
    /// The defaults, as if started with no environment and no flags.
    pub fn defaults() -> Self {
        let mut config = Self::parse_from(["payment-service"]);
        // `parse_from` still reads the environment; undo what it may have taken.
        config.server.admin_token = None;
        config.api_key = None;
        config.faults = Faults::default();
        config.ledger_path = None;
        config.fault_seed = None;
        config
    }
}
