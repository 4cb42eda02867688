//! An OTLP/gRPC trace sink for benchmarks: the tests' receiver, counting
//! spans instead of keeping them. Prints its endpoint, then the spans
//! received every second. `scripts/bench-telemetry.sh` uses it.

#[allow(dead_code)]
#[path = "../tests/telemetry/collector.rs"]
mod collector;

fn main() {
    let sink = collector::Collector::start_counting();
    println!("{}", sink.endpoint);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        eprintln!("spans received: {}", sink.received());
    }
}
