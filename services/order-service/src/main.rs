use clap::Parser;
use order_service::{Application, Config};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let config = Config::parse();
    common::logging::init();
    let app = Application::build(config)?;
    tracing::info!(port = app.port(), "order-service listening");
    app.run_until_stopped().await?;
    tracing::info!("order-service stopped");
    Ok(())
}
