# sreworks — the front door. `make help` lists the targets.
#
# Builds go to a shared cache outside the checkout so a fresh clone (CI) reuses them.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/sreworks/target

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
# Extra arguments for `make test` (cargo-nextest's), e.g. make test ARGS="-p sw-bus".
ARGS ?=
DEV_BIN := $(CARGO_TARGET_DIR)/debug/sreworks

.PHONY: help up down test build lint fmt schemas bench bench-packages bench-executor bench-workflow

help: ## List the targets
	@echo "usage: make <target>"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

up: ## Run the platform in the foreground (starts NATS, MariaDB, Redis, S3 if needed); Ctrl-C stops it
	scripts/up.sh

down: ## Stop the server and the infrastructure that `make up`/`make test` started
	scripts/down.sh

test: ## Run every test against real NATS, MariaDB and Redis (ARGS="-p crate" narrows it)
	scripts/test.sh $(ARGS)

build: ## Build the release server binary into $CARGO_TARGET_DIR/release/sreworks
	$(CARGO) build --release -p sreworks
	@echo "built $(CARGO_TARGET_DIR)/release/sreworks"

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

schemas: ## Regenerate the committed OpenAPI document and event schemas from the code
	$(CARGO) build -p sreworks
	$(DEV_BIN) generate-openapi --out docs/openapi.json
	$(DEV_BIN) generate-schemas --out-dir proto-schemas

bench: ## Load-test the gateway (loadtests/gateway-bench.sh; prints its figures)
	@test -f loadtests/gateway-bench.sh || { echo "error: loadtests/gateway-bench.sh is missing" >&2; exit 1; }
	bash loadtests/gateway-bench.sh

bench-packages: ## Package import/download vs raw S3 and package-store RSS (loadtests/package-bench.sh; SIZES=10,100,1024)
	bash loadtests/package-bench.sh

bench-executor: ## Executor apply commands/s against the k8s emulator, its own time per command, CPU and RSS (loadtests/executor-bench.sh; N=300)
	bash loadtests/executor-bench.sh

bench-workflow: ## Workflow: N concurrent 3-component launches, launches/s, launch→SUCCESS, engine overhead per step, CPU and RSS (loadtests/workflow-bench.sh; N=200)
	bash loadtests/workflow-bench.sh
