//! An OTLP trace sink for benchmarks: the tests' receiver, counting spans
//! instead of keeping them. Prints its gRPC endpoint, then its HTTP one,
//! then (on stderr) the spans received, whenever the count changes
//! (checked ten times a second). `make bench` uses it.

#[allow(dead_code)]
#[path = "../tests/telemetry/collector.rs"]
mod collector;

fn main() {
    let sink = collector::Collector::start_counting();
    println!("{}", sink.endpoint);
    println!("{}", sink.http_endpoint);
    let mut reported = u64::MAX;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let received = sink.received();
        if received != reported {
            eprintln!("spans received: {received}");
            reported = received;
        }
    }
}
