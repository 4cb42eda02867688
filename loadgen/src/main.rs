use std::process::ExitCode;

use clap::Parser;
use loadgen::cli::{Args, normalize_args};
use loadgen::engine::{Plan, run};

fn main() -> ExitCode {
    let args = Args::parse_from(normalize_args(std::env::args()));
    let plan = match Plan::from_args(&args) {
        Ok(plan) => Plan {
            interruptible: true,
            ..plan
        },
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let answered = runtime.block_on(async {
        let report = run(plan).await;
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
        report.total == 0 || report.errors.values().sum::<u64>() < report.total
    });
    if answered {
        return ExitCode::SUCCESS;
    }
    // Not one HTTP answer: nothing was measured.
    eprintln!(
        "loadgen: nothing answered at {}: is order-service running? make run starts it",
        args.url
    );
    ExitCode::FAILURE
}
