# caesar-rest developer entry points. `make` alone lists them.
# Everything runs on 127.0.0.1; state lives in .run/ (see scripts/lib.sh).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
API := http://127.0.0.1:$${CAESAR_API_PORT:-8080}

.PHONY: help secrets install up down test test-unit test-fuzz kube lint format typecheck bench status logs clean dashboards asyncapi

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

secrets: ## random credentials for docker compose: .env and deploy/rabbitmq/definitions.json (kept if present)
	python3 scripts/credentials.py compose

install: ## install RabbitMQ, uv, secantusdb and the project venv
	scripts/infra.sh install

up: install ## start infra and all services, run the demo, print the URLs (CAESAR_AUTH_ENABLED=true: with Keycloak; CAESAR_TRACING=true: with Jaeger)
	scripts/infra.sh start
	if [[ "$${CAESAR_AUTH_ENABLED:-false}" == true ]]; then scripts/keycloak.sh start; fi
	if [[ "$${CAESAR_TRACING:-false}" == true ]]; then scripts/jaeger.sh start; fi
	if [[ "$${CAESAR_TRACING:-false}" == true ]]; then export "$$(scripts/jaeger.sh env)"; fi; \
	  scripts/services.sh start
	if [[ "$${CAESAR_AUTH_ENABLED:-false}" == true ]]; then \
	  echo "auth on: get a token with: scripts/keycloak.sh token alice alice-dev-password"; \
	else $(PY) scripts/demo.py; fi
	@echo "api:     $(API)/caesar/api/v1.0/apps"
	@echo "docs:    $(API)/docs"
	@echo "metrics: $(API)/metrics"
	@if [[ "$${CAESAR_TRACING:-false}" == true ]]; then \
	  echo "traces:  $$(scripts/jaeger.sh url) (query API: $$(scripts/jaeger.sh url)/api/traces?service=caesar-runner)"; fi

down: ## stop all services and the infrastructure
	scripts/services.sh stop
	scripts/keycloak.sh stop
	scripts/jaeger.sh stop
	scripts/k8s.sh stop
	scripts/infra.sh stop

test: ## full suite as CI runs it (ruff, format, mypy, pytest with live infra, coverage)
	scripts/test.sh

test-unit: ## unit tests only: no RabbitMQ, database or services needed, well under a minute
	.venv/bin/pytest -q -p no:cacheprovider tests/unit

test-fuzz: ## Hypothesis property tests with fresh random seeds (failures print a reproduce blob)
	HYPOTHESIS_PROFILE=explore .venv/bin/pytest -q -p no:cacheprovider -m property tests/unit

kube: ## start the local Kubernetes test cluster (etcd, API server, controllers, scheduler, kwok) on 127.0.0.1
	scripts/k8s.sh start
	scripts/k8s.sh env

lint: ## ruff check and ruff format --check
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: ## ruff format (rewrites files)
	.venv/bin/ruff format .

typecheck: ## mypy: strict on libs and services; tests with their override (pyproject)
	.venv/bin/mypy libs/*/src services/*/src clients/*/src
	.venv/bin/mypy tests

dashboards: ## write the Grafana dashboards (deploy/grafana/dashboards/*.json) from deploy/grafana/dashboards.py
	$(PY) deploy/grafana/dashboards.py

asyncapi: ## write the AsyncAPI document of the events to .run/asyncapi.json and validate it (@asyncapi/parser)
	scripts/asyncapi.sh install
	scripts/asyncapi.sh generate .run/asyncapi.json
	scripts/asyncapi.sh validate .run/asyncapi.json

bench: ## run the benchmarks (bench/results/)
	$(PY) bench/run_all.py

status: ## what runs: infrastructure and services
	@scripts/infra.sh status
	@scripts/keycloak.sh status
	@scripts/jaeger.sh status
	@scripts/prometheus.sh status
	@scripts/services.sh status

logs: ## follow the service logs
	tail -n 20 -F $(addprefix .run/logs/,$(addsuffix .log,api scheduler runner monitor accounting))

clean: down ## stop everything and delete .run/ (all local data)
	rm -rf .run
