//! Builds the application: starts the reliability actors, binds the
//! listener (port 0 works, the real port is read back) and wires every
//! route in one place.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use actors::circuit_breaker::EndWatches;
use actors::clock::{SharedClock, SystemClock};
use common::auth::{AdminToken, require_admin, required_service_key};
use common::body::BodyTimeout;
use common::problem::{method_not_allowed, only, unknown_route};
use rand::SeedableRng;
use rand::rngs::StdRng;

use observability::http::{IncomingTrace, ServerSpan};
use observability::metrics::record_http;
use tracing_actix_web::TracingLogger;

use crate::config::Config;
use crate::metrics::OrderMetrics;
use crate::orders::{Flows, Orders};
use crate::payment::{PaymentCall, PaymentClient};
use crate::reliability::Reliability;
use crate::routes::{admin, health, metrics, orders};
use crate::store::Storage;

pub struct Application {
    port: u16,
    server: Server,
    reliability: Reliability,
    /// Order flows in progress: a shutdown waits for them (bounded).
    flows: Arc<Flows>,
    shutdown_timeout: Duration,
}

impl Application {
    /// Call inside the actix system (the actors start on its arbiter). The
    /// store is the one `DATABASE_URL` names, or this process's memory.
    pub fn build(config: Config) -> std::io::Result<Self> {
        let storage = config
            .storage()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        Self::build_with(config, storage, Arc::new(SystemClock))
    }

    /// With a given store and clock, so tests can plug in theirs.
    pub fn build_with(
        config: Config,
        storage: impl Into<Storage>,
        clock: SharedClock,
    ) -> std::io::Result<Self> {
        let api_key = required_service_key(config.payment_api_key.as_deref())?.to_owned();
        let storage = storage.into();
        if let Storage::Shared(pg) = &storage {
            // At start if the database answers; else on first use (the
            // service is unready meanwhile, not dead).
            let pg = pg.clone();
            actix_rt::spawn(async move {
                if let Err(e) = pg.migrate().await {
                    tracing::warn!(error = %e, "database not ready at start; migrating on first use");
                }
            });
        }
        let store = storage.orders();
        // In process, the reconciler tracks the orders the flows tell it of.
        let tracked = matches!(storage, Storage::InProcess(_));
        let metrics = OrderMetrics::default();
        let reliability = Reliability::start(&config, clock, &metrics, &storage);
        let metrics = web::Data::new(metrics);
        let admin_token = web::Data::new(AdminToken::new(config.server.admin_token.clone()));
        let body_timeout = BodyTimeout(Duration::from_millis(config.server.body_timeout_ms));
        // The public edge: a caller's trace is linked, not joined, unless trusted.
        let incoming_trace = if config.trust_traceparent {
            IncomingTrace::Continue
        } else {
            IncomingTrace::Link
        };
        let listener = TcpListener::bind(SocketAddr::new(config.server.bind_addr, config.port))?;
        let port = listener.local_addr()?.port();
        let shared = web::Data::new(reliability.clone());
        let store_data = web::Data::from(store.clone());
        let (shutdown_timeout, workers) =
            (config.server.shutdown_timeout_secs, config.server.workers);
        let seeds = config.retry_seed;
        let flows = Arc::new(Flows::default());
        let worker_flows = flows.clone();
        let worker = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut server = HttpServer::new(move || {
            // awc's client is per thread, so each worker has its own pipeline.
            let rng = match seeds {
                Some(seed) => StdRng::seed_from_u64(
                    seed.wrapping_add(worker.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
                ),
                None => rand::make_rng(),
            };
            let payments = PaymentCall::new(
                PaymentClient::new(&config.payment_service_url, &api_key),
                config.call_policy(),
                shared.breaker.clone(),
                shared.bulkhead.clone(),
                shared.retry_budget.clone(),
                shared.clock.clone(),
                rng,
                metrics.get_ref().clone(),
            );
            let orders = web::Data::new(Orders {
                store: store.clone(),
                payments,
                idempotency: shared.idempotency.clone(),
                reconciler: tracked.then(|| shared.reconciler.clone()),
                metrics: metrics.get_ref().clone(),
                flows: worker_flows.clone(),
            });
            App::new()
                .app_data(orders)
                .app_data(store_data.clone())
                .app_data(shared.clone())
                .app_data(admin_token.clone())
                .app_data(body_timeout)
                .app_data(incoming_trace)
                .app_data(web::Data::new(metrics.http.clone()))
                .app_data(metrics.clone())
                .wrap(from_fn(record_http))
                .wrap(TracingLogger::<ServerSpan>::new())
                .service(only(
                    "/orders",
                    "POST",
                    web::post().to(orders::create_order),
                ))
                .service(only(
                    "/orders/{id}",
                    "GET",
                    web::get().to(orders::get_order),
                ))
                .service(only("/health", "GET", web::get().to(health::health)))
                .service(only("/ready", "GET", web::get().to(health::ready)))
                .service(only("/metrics", "GET", web::get().to(metrics::metrics)))
                .service(only(
                    "/openapi.json",
                    "GET",
                    web::get().to(crate::openapi::openapi_json),
                ))
                .service(
                    web::scope("/admin")
                        .wrap(from_fn(require_admin))
                        .service(
                            web::resource("/breaker")
                                .route(web::get().to(admin::get_breaker))
                                .route(web::put().to(admin::put_breaker))
                                .default_service(method_not_allowed("GET, PUT")),
                        )
                        .service(only(
                            "/breaker/events",
                            "GET",
                            web::get().to(admin::breaker_events),
                        )),
                )
                .default_service(web::to(unknown_route))
        });
        // Signals are ours (see `run_until`): the order flows come first.
        server = server.shutdown_timeout(shutdown_timeout).disable_signals();
        if let Some(workers) = workers {
            server = server.workers(workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Self {
            port,
            server,
            reliability,
            flows,
            shutdown_timeout: Duration::from_secs(shutdown_timeout),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The actors' addresses (tests send them messages directly).
    pub fn reliability(&self) -> &Reliability {
        &self.reliability
    }

    /// Stops the server from a test (SIGTERM does the same for the binary).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM or SIGINT, then shuts down as [`Self::run_until`];
    /// a second signal stops it at once.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        self.run_until(async move {
            shutdown_signal().await;
            actix_rt::spawn(async move {
                shutdown_signal().await;
                tracing::warn!("second signal: stopping now");
                handle.stop(false).await;
            });
        })
        .await
    }

    /// Serves until `stop` resolves (or the handle stops it), then shuts
    /// down gracefully: no new connections; the order flows in progress
    /// get `shutdown_timeout_secs` to finish, whether or not their clients
    /// are still there (a flow whose client hung up holds no connection, so
    /// the server alone would not wait for it), and new orders get 503; then
    /// the answers in flight get as long again (at worst twice the timeout
    /// in all).
    pub async fn run_until(self, stop: impl Future<Output = ()> + 'static) -> std::io::Result<()> {
        let (handle, flows, grace) = (self.server.handle(), self.flows, self.shutdown_timeout);
        let breaker = self.reliability.breaker.clone();
        actix_rt::spawn(async move {
            stop.await;
            handle.pause().await;
            // Event streams never end by themselves: end them, or a
            // watcher would hold the shutdown for its whole timeout.
            breaker.do_send(EndWatches);
            let running = flows.running();
            tracing::info!(
                order_flows = running,
                "shutting down: letting the order flows in progress finish"
            );
            let drained = flows.drained(grace).await;
            if !drained {
                tracing::warn!(
                    order_flows = flows.running(),
                    "shutdown: order flows still running are abandoned"
                );
            }
            handle.stop(drained).await;
        });
        self.server.await
    }
}

/// SIGTERM (an orchestrator stopping us) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use actix_rt::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = actix_rt::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no SIGTERM handler; stopping on Ctrl-C only");
            let _ = actix_rt::signal::ctrl_c().await;
        }
    }
}
