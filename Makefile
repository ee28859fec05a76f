# connector-controller. `make run` and `make test` work from a fresh clone: they install
# Node 24 (when the machine's node is older than 22), the npm packages and the test
# binaries (built once from the Go module proxy, cached outside the repo).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

NODE_BIN := $(shell hack/ensure-node.sh)
export PATH := $(NODE_BIN):$(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: help deps build typecheck lint format test test-unit test-integration test-reliability testbin sync-chart run clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed -E 's/:.*## /\t/'

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

deps: node_modules/.installed ## install the npm packages

build: deps ## compile TypeScript to dist/ (connectorctl is dist/controller/src/cli/connectorctl.js)
	tsc -p tsconfig.build.json
	chmod +x dist/controller/src/cli/connectorctl.js

typecheck: deps
	tsc -p tsconfig.json

lint: deps ## typescript-eslint and prettier
	eslint .
	prettier --check .

format: deps
	prettier --write .

testbin: ## build (once, cached) kube-apiserver, kubectl, etcd, helm and the Vault-API server for the tests
	hack/testbin.sh
	hack/testbin.sh helm
	hack/testbin.sh openbao

sync-chart: ## copy crds/ and the catalog into the chart; regenerate argocd-cm from the Lua
	node hack/sync-chart.ts

test-unit: deps
	vitest run --project unit

test-integration: deps testbin
	vitest run --project integration

test-reliability: deps testbin ## faults, bad input, tenancy, least privilege (test/reliability); RELIABILITY_FULL=1 for the long run
	vitest run --project reliability

test: deps typecheck lint testbin ## everything: type-check, lint, unit and integration tests
	vitest run

.PHONY: bench
bench: deps testbin ## benchmarks at 1k/5k/10k Connectors (cold start, floor, apply → Ready, quiet, drift; ARGS="--n 1000 …"); results in bench/results/
	node bench/run.ts $(ARGS)

run: deps ## the controller on embedded defaults (local control plane when no kube context answers; PGlite in .data/)
	node hack/run.ts $(ARGS)

clean:
	rm -rf dist node_modules .data
