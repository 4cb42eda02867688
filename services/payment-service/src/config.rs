//! Configuration: each setting is an environment variable and a flag, so
//! `payment-service --help` documents every knob and its default.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use common::server::ServerArgs;

use crate::faults::Faults;
use crate::ledger::CommitDelay;

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

    /// PEM certificates of the CA whose client certificates may connect
    /// (mutual TLS; needs TLS_CERT). Set, a caller without a valid
    /// certificate from it is refused in the handshake, before any route;
    /// the service key is still required on top.
    #[arg(long, env = "CLIENT_CA")]
    pub client_ca: Option<std::path::PathBuf>,

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

    /// Group commit: how long a charge may wait for others before the
    /// ledger's writer syncs it, in microseconds (0: never). The writer
    /// waits only for as many charges as its last sync covered (at most
    /// PAYMENT_LEDGER_COMMIT_BATCH), so a lone client never waits; fewer
    /// syncs cost less CPU. At most 100,000 (0.1 s).
    #[arg(
        long = "payment-ledger-commit-delay-us",
        env = "PAYMENT_LEDGER_COMMIT_DELAY_US",
        default_value_t = 100,
        value_parser = clap::value_parser!(u64).range(0..=100_000)
    )]
    pub commit_delay_us: u64,

    /// Group commit: the most charges the writer waits for.
    #[arg(
        long = "payment-ledger-commit-batch",
        env = "PAYMENT_LEDGER_COMMIT_BATCH",
        default_value_t = 32,
        value_parser = clap::value_parser!(u16).range(1..=512)
    )]
    pub commit_batch: u16,

    /// Seed for the fault dice, for reproducible runs; unset, seeded from the OS.
    #[arg(long = "payment-fault-seed", env = "PAYMENT_FAULT_SEED")]
    pub fault_seed: Option<u64>,
}

impl Config {
    pub fn commit_delay(&self) -> CommitDelay {
        CommitDelay {
            wait: Duration::from_micros(self.commit_delay_us),
            charges: self.commit_batch.into(),
        }
    }

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
