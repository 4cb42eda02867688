//! Builds the application: binds the listener (port 0 works, the real port
//! is read back) and wires every route in one place.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use common::admin::{AdminToken, require_admin};
use common::problem::unknown_route;

use crate::config::Config;
use crate::payment::{PaymentCall, PaymentClient};
use crate::routes::{health, orders};
use crate::store::{MemoryStore, OrderStore};

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub fn build(config: Config) -> std::io::Result<Self> {
        let store: Arc<dyn OrderStore> = Arc::new(MemoryStore::default());
        Self::build_with_store(config, store)
    }

    /// With a given store, so tests (and later a shared store) can plug in.
    pub fn build_with_store(config: Config, store: Arc<dyn OrderStore>) -> std::io::Result<Self> {
        let store = web::Data::from(store);
        let admin_token = web::Data::new(AdminToken::new(config.admin_token.clone()));
        let listener = TcpListener::bind(SocketAddr::new(config.bind_addr, config.port))?;
        let port = listener.local_addr()?.port();
        let payment_url = config.payment_service_url.clone();
        let budget = config.payment_timeout();
        let mut server = HttpServer::new(move || {
            // awc's client is per thread, so each worker has its own.
            let payments =
                web::Data::new(PaymentCall::new(PaymentClient::new(&payment_url), budget));
            App::new()
                .app_data(store.clone())
                .app_data(admin_token.clone())
                .app_data(payments)
                .wrap(tracing_actix_web::TracingLogger::default())
                .route("/orders", web::post().to(orders::create_order))
                .route("/orders/{id}", web::get().to(orders::get_order))
                .route("/health", web::get().to(health::health))
                .route("/ready", web::get().to(health::ready))
                .service(web::scope("/admin").wrap(from_fn(require_admin)))
                .default_service(web::to(unknown_route))
        })
        .shutdown_timeout(config.shutdown_timeout_secs);
        if let Some(workers) = config.workers {
            server = server.workers(workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from a test (SIGTERM does the same for the binary).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped; on SIGTERM/SIGINT, in-flight requests get
    /// `shutdown_timeout_secs` to finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
