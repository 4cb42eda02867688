//! Builds the application: makes the reliability actors' addresses, binds
//! the listener (port 0 works, the real port is read back) and wires every
//! route in one place.
//!
//! The actors run on the thread of the first HTTP worker to build its app
//! (the workers build theirs in parallel; one takes the actors), not on the
//! actix system's thread: every message between threads wakes the other
//! one, and on a thread of their own the actors cost order-service a
//! quarter more CPU per order in memory (docs/postgres-path.md). The other
//! workers still message them across threads; each actor's state is still
//! changed by that actor alone, one message at a time. They stop with their
//! worker, which a shutdown stops only after the order flows have drained
//! (`run_until`).

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use actors::circuit_breaker::EndWatches;
use actors::clock::{SharedClock, SystemClock};
use common::auth::{AdminToken, require_admin, required_service_key};
use common::body::BodyTimeout;
use common::problem::{method_not_allowed, only, unknown_route};

use observability::http::{IncomingTrace, ServerSpan};
use observability::metrics::record_http;
use tracing_actix_web::TracingLogger;

use crate::config::Config;
use crate::limits::{Limits, admit};
use crate::metrics::OrderMetrics;
use crate::orders::{Flows, Orders};
use crate::payment::PaymentLink;
use crate::payment::admin::PaymentAdmin;
use crate::reliability::{self, Hosting, Reliability};
use crate::routes::dashboard::{self, Dashboard};
use crate::routes::{admin, health, metrics, orders};
use crate::store::{OrderStore, Storage};

pub struct Application {
    port: u16,
    server: Server,
    reliability: Reliability,
    /// Order flows in progress: a shutdown waits for them (bounded).
    flows: Arc<Flows>,
    shutdown_timeout: Duration,
}

impl Application {
    /// Call inside the actix system (the first worker runs the actors). The
    /// store is the one `DATABASE_URL` names, or this process's memory.
    pub fn build(config: Config) -> std::io::Result<Self> {
        let storage = Storage::open(config.storage())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        Self::build_with(config, storage, Arc::new(SystemClock))
    }

    /// With a given store and clock, so tests can plug in theirs.
    pub fn build_with(
        config: Config,
        storage: impl Into<Storage>,
        clock: SharedClock,
    ) -> std::io::Result<Self> {
        required_service_key(config.payment_api_key.as_deref())?;
        let storage = storage.into();
        storage.start();
        let metrics = OrderMetrics::default();
        let tls = config.server.tls.server_config(None)?;
        let link = PaymentLink::new(&config.payment_service_url, &config.payment_tls)?;
        let limits = Limits::new(&config.limits, clock.clone(), metrics.admissions.clone())?;
        let (reliability, hosting) = Reliability::new(&config, clock, &metrics, &storage, &link);
        let listener = TcpListener::bind(SocketAddr::new(config.server.bind_addr, config.port))?;
        let port = listener.local_addr()?.port();
        let (shutdown_timeout, workers) =
            (config.server.shutdown_timeout_secs, config.server.workers);
        let flows = Arc::new(Flows::default());
        let shared = Arc::new(Shared::new(
            config,
            &storage,
            (&reliability, hosting),
            metrics,
            flows.clone(),
            link,
            limits,
        ));
        let mut server = HttpServer::new(move || app(shared.clone()));
        // Signals are ours (see `run_until`): the order flows come first.
        server = server.shutdown_timeout(shutdown_timeout).disable_signals();
        if let Some(workers) = workers {
            server = server.workers(workers);
        }
        let server = match tls {
            Some(tls) => server
                .tls_handshake_timeout(common::tls::HANDSHAKE_TIMEOUT)
                .max_connection_rate(common::tls::HANDSHAKES_PER_WORKER)
                .listen_rustls_0_23(listener, tls)?,
            None => server.listen(listener)?,
        };
        let server = server.run();
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
        let breaker = self.reliability.pipeline.breaker.clone();
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

/// What every worker's app is built from; each worker builds its own
/// payment pipeline (awc's client is per thread).
struct Shared {
    config: Config,
    store: Arc<dyn OrderStore>,
    reliability: web::Data<Reliability>,
    metrics: web::Data<OrderMetrics>,
    flows: Arc<Flows>,
    admin_token: web::Data<AdminToken>,
    /// How every worker's clients reach payment-service.
    link: PaymentLink,
    /// Every client's bucket, whichever worker serves it.
    limits: web::Data<Limits>,
    /// Numbers the workers, for their jitter seeds.
    workers: AtomicU64,
    /// The actors, until the first worker runs them.
    hosting: Mutex<Option<Hosting>>,
}

impl Shared {
    fn new(
        config: Config,
        storage: &Storage,
        (reliability, hosting): (&Reliability, Hosting),
        metrics: OrderMetrics,
        flows: Arc<Flows>,
        link: PaymentLink,
        limits: Limits,
    ) -> Self {
        Self {
            link,
            limits: web::Data::new(limits),
            admin_token: web::Data::new(AdminToken::new(config.server.admin_token.clone())),
            config,
            store: storage.orders(),
            reliability: web::Data::new(reliability.clone()),
            metrics: web::Data::new(metrics),
            flows,
            workers: AtomicU64::new(0),
            hosting: Mutex::new(Some(hosting)),
        }
    }

    /// One worker's view for the dashboard, with its own HTTP client.
    fn dashboard(&self) -> Dashboard {
        let config = &self.config;
        Dashboard {
            payment: PaymentAdmin::new(
                &self.link,
                &config.payment_service_url,
                config.payment_admin_token.clone(),
            ),
            replica: dashboard::replica(),
            store: match config.database.url {
                Some(_) => "postgresql",
                None => "memory",
            },
        }
    }

    /// Runs the actors on this worker's thread if no worker does yet. A
    /// worker whose thread dies takes them along (a request's panic ends
    /// its own task, not the thread), and `/ready` says 503 from then on.
    fn host_actors(&self) {
        let hosting = self.hosting.lock().ok().and_then(|mut h| h.take());
        if let Some(hosting) = hosting {
            hosting.start();
        }
    }

    /// One worker's order flow, with its own payment pipeline.
    fn orders(&self) -> Orders {
        let worker = self.workers.fetch_add(1, AtomicOrdering::Relaxed);
        let seed = self.config.retry.seed.map(|seed| seed.wrapping_add(worker));
        let pipeline = self.reliability.pipeline.clone();
        let metrics = self.metrics.get_ref();
        Orders {
            store: self.store.clone(),
            payments: reliability::payments(&self.config, &self.link, pipeline, seed, metrics),
            idempotency: self.reliability.idempotency.clone(),
            metrics: metrics.clone(),
            flows: self.flows.clone(),
        }
    }
}

/// One worker's app.
fn app(
    shared: Arc<Shared>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    // The public edge: a caller's trace is linked, not joined, unless trusted.
    let incoming_trace = match shared.config.trust_traceparent {
        true => IncomingTrace::Continue,
        false => IncomingTrace::Link,
    };
    shared.host_actors();
    App::new()
        .app_data(web::Data::new(shared.orders()))
        .app_data(web::Data::from(shared.store.clone()))
        .app_data(shared.reliability.clone())
        .app_data(shared.admin_token.clone())
        .app_data(shared.limits.clone())
        .app_data(BodyTimeout(Duration::from_millis(
            shared.config.server.body_timeout_ms,
        )))
        .app_data(incoming_trace)
        .app_data(web::Data::new(shared.dashboard()))
        .app_data(web::Data::new(shared.metrics.http.clone()))
        .app_data(shared.metrics.clone())
        .wrap(from_fn(record_http))
        .wrap(TracingLogger::<ServerSpan>::new())
        .configure(routes)
}

/// Every route, in one place.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(only("/orders", "POST", web::post().to(orders::create_order)).wrap(from_fn(admit)))
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
        // The page and its files, before the token's scope: a navigation
        // cannot carry the token, and they hold no data (routes::dashboard).
        .service(only(
            "/admin/dashboard",
            "GET",
            web::get().to(dashboard::page),
        ))
        .service(only(
            "/admin/dashboard/dashboard.js",
            "GET",
            web::get().to(dashboard::script),
        ))
        .service(only(
            "/admin/dashboard/dashboard.css",
            "GET",
            web::get().to(dashboard::style),
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
                ))
                .service(only(
                    "/dashboard/snapshot",
                    "GET",
                    web::get().to(dashboard::snapshot),
                ))
                .service(
                    web::resource("/payment/faults")
                        .route(web::get().to(dashboard::get_faults))
                        .route(web::put().to(dashboard::put_faults))
                        .default_service(method_not_allowed("GET, PUT")),
                ),
        )
        .default_service(web::to(unknown_route));
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
