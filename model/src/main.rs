//! `make model`: the bounded check CI runs — every property within the
//! bounds, then each guard switched off and the counterexample the
//! checker finds without it. `make model-explore`: stateright's explorer,
//! to step through the protocol in a browser.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use model::{Budget, Config, Guard, Protocol};
use stateright::{Checker, Model};

#[derive(Parser)]
#[command(about = "The order protocol, model-checked")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Check every property within CI's bounds, then every guard's switch.
    Check {
        /// Checker threads.
        #[arg(long, env = "MODEL_THREADS", default_value_t = 2)]
        threads: usize,
        /// Fail if fewer distinct states are explored.
        #[arg(long, env = "MODEL_MIN_STATES", default_value_t = 100_000)]
        min_states: usize,
        /// Print each counterexample's trace, not only its length.
        #[arg(long)]
        traces: bool,
        /// Stop after this many states (0: explore them all).
        #[arg(long, default_value_t = 0)]
        max_states: usize,
        /// Only the properties, not the guards' switches.
        #[arg(long)]
        no_switches: bool,
        #[command(flatten)]
        bounds: Bounds,
    },
    /// Serve stateright's explorer.
    Explore {
        #[arg(long, env = "MODEL_EXPLORER_ADDR", default_value = "127.0.0.1:3000")]
        addr: String,
    },
}

/// CI's bounds, or larger ones for a longer run.
#[derive(clap::Args, Clone, Copy)]
struct Bounds {
    /// Faults of any kind on one path.
    #[arg(long, env = "MODEL_FAULTS", default_value_t = Config::ci().faults.total)]
    faults: u8,
    /// Requests each client may send, retries included.
    #[arg(long, env = "MODEL_REQUESTS", default_value_t = Config::ci().requests_per_client)]
    requests: u8,
    /// Replica crashes on one path.
    #[arg(long, env = "MODEL_CRASHES", default_value_t = Config::ci().faults.crashes)]
    crashes: u8,
    /// Statements failing with nothing written, on one path.
    #[arg(long, env = "MODEL_DB_ERRORS", default_value_t = Config::ci().faults.db_errors)]
    db_errors: u8,
    /// Statements given up on that may commit later, on one path.
    #[arg(long, env = "MODEL_LATE_COMMITS", default_value_t = Config::ci().faults.late_commits)]
    late_commits: u8,
    /// Calls refused before they leave, on one path.
    #[arg(long, env = "MODEL_REFUSALS", default_value_t = Config::ci().faults.refusals)]
    refusals: u8,
    /// Calls or voids timed out, on one path.
    #[arg(long, env = "MODEL_TIMEOUTS", default_value_t = Config::ci().faults.timeouts)]
    timeouts: u8,
    /// Injected payment 500s, on one path.
    #[arg(long, env = "MODEL_PAYMENT_ERRORS", default_value_t = Config::ci().faults.payment_errors)]
    payment_errors: u8,
    /// Clients of the keyed purchase (2: a double submit).
    #[arg(long, env = "MODEL_KEYED_CLIENTS", default_value_t = Config::ci().purchases[0].clients)]
    keyed_clients: u8,
    /// Flows outliving their lease or hold, on one path.
    #[arg(long, env = "MODEL_STALLS", default_value_t = Config::ci().faults.stalls)]
    stalls: u8,
    /// Clients hanging up before their answer, on one path.
    #[arg(long, env = "MODEL_HANGUPS", default_value_t = Config::ci().faults.hangups)]
    hangups: u8,
}

impl Bounds {
    fn config(self) -> Config {
        let mut purchases = Config::ci().purchases;
        purchases[0].clients = self.keyed_clients;
        Config {
            purchases,
            requests_per_client: self.requests,
            faults: Budget {
                total: self.faults,
                crashes: self.crashes,
                db_errors: self.db_errors,
                late_commits: self.late_commits,
                refusals: self.refusals,
                timeouts: self.timeouts,
                payment_errors: self.payment_errors,
                stalls: self.stalls,
                hangups: self.hangups,
            },
            ..Config::ci()
        }
    }
}

fn main() -> ExitCode {
    let command = Cli::parse().command;
    let command = command.unwrap_or_else(|| Cli::parse_from(["model", "check"]).command.unwrap());
    match command {
        Command::Check {
            threads,
            min_states,
            traces,
            no_switches,
            max_states,
            bounds,
        } => check(
            bounds.config(),
            threads,
            (min_states, max_states),
            traces,
            !no_switches,
        ),
        Command::Explore { addr } => {
            println!("explorer: http://{addr}/");
            Protocol::new(Config::ci()).checker().serve(addr.as_str());
            ExitCode::SUCCESS
        }
    }
}

fn check(
    config: Config,
    threads: usize,
    (min_states, max_states): (usize, usize),
    traces: bool,
    switches: bool,
) -> ExitCode {
    let started = Instant::now();
    let mut checker = Protocol::new(config).checker().threads(threads);
    if max_states > 0 {
        checker = checker.target_state_count(max_states);
    }
    let checker = checker.spawn_bfs().join();
    let states = checker.unique_state_count();
    println!(
        "states: {states} (depth {}, {:.1} s)",
        checker.max_depth(),
        started.elapsed().as_secs_f64()
    );
    let mut ok = states >= min_states;
    if !ok {
        println!("fewer than {min_states} states: the bounds are too small to mean much");
    }
    for property in checker.model().properties() {
        match checker.discovery(property.name) {
            None => println!("property {}: holds", property.name),
            Some(path) => {
                ok = false;
                println!("property {}: VIOLATED", property.name);
                print!("{}", model::trace::tell(checker.model(), &path.into_vec()));
            }
        }
    }
    for guard in Guard::ALL.into_iter().filter(|_| switches) {
        ok &= switch(guard, traces);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The check with `guard` off must find a counterexample.
fn switch(guard: Guard, traces: bool) -> bool {
    match model::counterexample(model::counterexample_config(guard)) {
        Some(found) => {
            println!(
                "without {}: counterexample in {} steps ({})",
                guard.name(),
                found.steps(),
                found.property
            );
            if traces {
                print!("{}", found.trace());
            }
            true
        }
        None => {
            println!("without {}: NO counterexample", guard.name());
            false
        }
    }
}
