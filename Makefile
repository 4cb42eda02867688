# reliable-orders. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ORDER_URL ?= http://localhost:8080
PAYMENT_URL ?= http://localhost:8081

.PHONY: help build-native run stop status smoke test bench lint ci

help: ## Show the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

build-native: ## Build the release binaries
	cargo build --release --bins

run: build-native ## Start both services natively in the background (8080, 8081; logs in logs/)
	@scripts/services.sh start

stop: ## Stop the services started by `make run`
	@scripts/services.sh stop

status: ## Tell whether the services of `make run` are running
	@scripts/services.sh status

smoke: ## Send one order to a running order-service and pretty-print the answer
	@curl -sS -i -X POST $(ORDER_URL)/orders \
	  -H "Content-Type: application/json" \
	  -d '{"merchant_id": "merchant_123", "amount": 99.99, "currency": "USD"}' \
	  | sed -n '1p;/^\r\?$$/,$$p' | { read -r status; echo "$$status"; python3 -m json.tool 2>/dev/null || cat; }

test: ## Run the whole test suite
	cargo test --workspace --all-targets

bench: ## Measure the actors' cost per order beside a whole order's latency
	cargo bench -p order-service --bench pipeline

lint: ## rustfmt and clippy, as CI runs them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

ci: ## What CI runs
	bash .ci/run
