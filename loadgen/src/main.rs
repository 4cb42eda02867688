use std::process::ExitCode;

use clap::Parser;
use loadgen::cli::{Args, normalize_args};
use loadgen::engine::{Plan, run};

fn main() -> ExitCode {
    let args = Args::parse_from(normalize_args(std::env::args()));
    let plan = match Plan::from_args(&args) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // Before the first request: the audit weighs the charges made since.
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    runtime.block_on(async {
        let mut report = run(plan).await;
        if let Some(payment) = &args.audit {
            // The order ids of every 201 were collected for this.
            match loadgen::audit::audit(payment, &report.created_order_ids, started_ms).await {
                Ok(audit) => report.audit = Some(audit),
                Err(e) => eprintln!("loadgen: audit failed: {e}"),
            }
        }
        if let Some(path) = &args.timeline {
            let svg = loadgen::timeline::render(&report, &format!("loadgen {}", args.url));
            match std::fs::write(path, svg) {
                Ok(()) => eprintln!("timeline written to {}", path.display()),
                Err(e) => eprintln!("loadgen: cannot write {}: {e}", path.display()),
            }
        }
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("report serializes")
            );
        } else {
            print!("{}", report.to_text());
        }
    });
    ExitCode::SUCCESS
}
