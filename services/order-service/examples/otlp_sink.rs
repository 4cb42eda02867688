//! An OTLP trace sink for benchmarks: the tests' receiver, counting spans
//! instead of keeping them. Prints its gRPC endpoint, then its HTTP one,
//! then (on stderr) the spans received every second. `make bench` uses it.

#[allow(dead_code)]
#[path = "../tests/telemetry/collector.rs"]
mod collector;

fn main() {
    let sink = collector::Collector::start_counting();
    println!("{}", sink.endpoint);
    println!("{}", sink.http_endpoint);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        eprintln!("spans received: {}", sink.received());
    }
}
