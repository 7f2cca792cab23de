# Webflow WMS Bridge: developer commands. `make test` is what CI runs.
CARGO ?= cargo
SHELL := /bin/bash

.PHONY: help tools services-check fmt fmt-check lint check-structure deny audit validate-deploy test test-only test-cluster api-conformance openapi screenshots build release run bench bench-soak clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-16s %s\n", $$1, $$2}'

tools: ## Install every tool make test needs (cargo-deny, cargo-machete, validators, promtool, schemathesis, Chromium)
	bash scripts/install-test-tools.sh

services-check: ## Fail loudly unless PostgreSQL and RabbitMQ answer
	@bash scripts/check-services.sh

fmt: ## Format the code
	$(CARGO) fmt --all

fmt-check: ## Check formatting
	$(CARGO) fmt --all -- --check

lint: ## Clippy with warnings as errors
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Cargo runs test targets one after another, so broker_restart (stops the shared broker) and
# rabbitmq_cluster (a 3-node cluster beside it; needs root and rabbitmq-server) each run alone.
test-only: services-check ## Run every test (needs PostgreSQL and RabbitMQ)
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast

test-cluster: services-check ## Only the 3-node RabbitMQ cluster test (part of test-only)
	$(CARGO) build --workspace --bins
	$(CARGO) test -p e2e --test rabbitmq_cluster -- --nocapture

check-structure: ## Crate layering rules (docs/architecture.md) and unused dependencies
	python3 scripts/check-architecture.py
	cargo machete

api-conformance: services-check ## schemathesis against the real warehouse binary and its generated OpenAPI document
	$(CARGO) build --workspace --bins
	bash scripts/api-conformance.sh

openapi: ## Regenerate docs/openapi.json from the warehouse API's code
	UPDATE_OPENAPI=1 $(CARGO) test -p warehouse --lib openapi

deny: ## Supply chain: licences, banned and duplicate versions, sources (cargo-deny, deny.toml)
	$(CARGO) deny check licenses bans sources

audit: ## Known advisories (cargo-deny): needs the RustSec database, so network access
	$(CARGO) deny check advisories

screenshots: services-check ## Retake docs/screenshots with the browser tests
	$(CARGO) build --workspace --bins
	UPDATE_SCREENSHOTS=1 $(CARGO) test -p e2e --test browser

validate-deploy: ## Render and validate the Kubernetes overlays, docker-compose.yml, the alert rules and the dashboard offline
	@bash scripts/validate-deploy.sh

test: fmt-check lint check-structure deny validate-deploy test-only api-conformance ## Formatting, lints, crate structure, supply chain, manifests, every test, then API conformance

build: ## Debug build of every binary
	$(CARGO) build --workspace --bins

release: ## Release build of every binary
	$(CARGO) build --release --workspace --bins

run: services-check release ## Run the whole pipeline locally on built-in defaults
	target/release/wms-stack run

bench: services-check release ## Run the benchmarks (see docs/benchmarks.md)
	bash scripts/bench.sh

bench-soak: services-check release ## Soak: steady load for SOAK_SECS (1800) with the prune job; RSS, table sizes, p99 per window
	bash scripts/bench-soak.sh

clean:
	$(CARGO) clean
