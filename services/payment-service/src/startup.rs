//! Builds the application: opens the ledger, binds the listener (port 0
//! works, the real port is read back) and wires every route in one place.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use common::auth::{
    AdminToken, ServiceKey, require_admin, require_service_key, required_service_key,
};
use common::body::BodyTimeout;
use common::problem::{method_not_allowed, only, unknown_route};

use observability::http::ServerSpan;
use observability::metrics::record_http;
use tracing_actix_web::TracingLogger;

use crate::config::Config;
use crate::faults::FaultInjector;
use crate::ledger::Ledger;
use crate::metrics::PaymentMetrics;
use crate::openapi;
use crate::routes::{self, admin, charge, charges, health, ledger};
use crate::state::{AppState, SimulatedWork};

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Fails without a service key: payment-service takes charges only
    /// from callers that present `PAYMENT_API_KEY`.
    pub fn build(config: Config) -> std::io::Result<Self> {
        let service_key = required_service_key(config.api_key.as_deref())?;
        let service_key = web::Data::new(ServiceKey::new(Some(service_key.to_owned())));
        let ledger = match &config.ledger_path {
            Some(path) => Ledger::open(path, config.commit_delay())?,
            None => Ledger::in_memory(),
        };
        let state = web::Data::new(AppState {
            ledger: Arc::new(ledger),
            faults: FaultInjector::new(config.faults, config.fault_seed),
            work: SimulatedWork {
                validate: Duration::from_millis(config.validate_ms),
                gateway: Duration::from_millis(config.gateway_ms),
            },
            requests: AtomicU64::new(0),
            metrics: PaymentMetrics::default(),
        });
        let http_metrics = web::Data::new(state.metrics.http.clone());
        let admin_token = web::Data::new(AdminToken::new(config.server.admin_token.clone()));
        let body_timeout = BodyTimeout(Duration::from_millis(config.server.body_timeout_ms));

        let tls = config
            .server
            .tls
            .server_config(config.client_ca.as_deref())?;
        let listener = TcpListener::bind(SocketAddr::new(config.server.bind_addr, config.port))?;
        let port = listener.local_addr()?.port();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(admin_token.clone())
                .app_data(service_key.clone())
                .app_data(body_timeout)
                .app_data(http_metrics.clone())
                .wrap(from_fn(record_http))
                .wrap(TracingLogger::<ServerSpan>::new())
                .configure(routes)
        })
        .shutdown_timeout(config.server.shutdown_timeout_secs);
        if let Some(workers) = config.server.workers {
            server = server.workers(workers);
        }
        let server = match tls {
            Some(tls) => server
                .tls_handshake_timeout(common::tls::HANDSHAKE_TIMEOUT)
                .max_connection_rate(common::tls::HANDSHAKES_PER_WORKER)
                .listen_rustls_0_23(listener, tls)?,
            None => server.listen(listener)?,
        };
        Ok(Self {
            port,
            server: server.run(),
        })
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

/// Every route, in one place.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        only("/charge", "POST", web::post().to(charge::charge)).wrap(from_fn(require_service_key)),
    )
    // A caller's fence: it never lets a key be charged.
    .service(
        only("/charges/{key}/void", "POST", web::post().to(charges::void))
            .wrap(from_fn(require_service_key)),
    )
    // Every charge and order id: for operators and audits only.
    .service(
        only("/charges/{key}", "GET", web::get().to(charges::get_charge))
            .wrap(from_fn(require_admin)),
    )
    .service(only("/ledger", "GET", web::get().to(ledger::audit)).wrap(from_fn(require_admin)))
    .service(only("/health", "GET", web::get().to(health::health)))
    .service(only(
        "/metrics",
        "GET",
        web::get().to(routes::metrics::metrics),
    ))
    .service(only(
        "/openapi.json",
        "GET",
        web::get().to(openapi::openapi_json),
    ))
    .service(
        web::scope("/admin").wrap(from_fn(require_admin)).service(
            web::resource("/faults")
                .route(web::get().to(admin::get_faults))
                .route(web::put().to(admin::put_faults))
                .default_service(method_not_allowed("GET, PUT")),
        ),
    )
    .default_service(web::to(unknown_route));
}
