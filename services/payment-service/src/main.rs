use clap::Parser;
use payment_service::{Application, Config};

/// mimalloc rather than glibc's malloc: spans, messages and buffers are
/// many small allocations, often freed on another thread than the one that
/// made them, where glibc's arenas spend their time (see `make bench-telemetry`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let config = Config::parse();
    let telemetry = observability::init("payment-service");
    let app = common::server::built_or_exit("payment-service", Application::build(config));
    tracing::info!(port = app.port(), "payment-service listening");
    let served = app.run_until_stopped().await;
    // Flush the last spans off the async runtime (blocking there loses them).
    let _ = actix_web::rt::task::spawn_blocking(move || telemetry.shutdown()).await;
    served?;
    tracing::info!("payment-service stopped");
    Ok(())
}
