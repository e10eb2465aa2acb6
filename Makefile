# vaultbridge — the two commands that matter: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-faults test-hashicorp test-hashicorp-main test-hashicorp-faults vault-bin lint typecheck unit integration crds dev-up dev-down bench clean lock tools

LOCK := requirements/lock.txt

# Exactly the locked, hash-checked versions (docs/development.md: "Dependencies and the lock"),
# then vaultbridge itself without resolving anything (its build backend is in the lock too).
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

## demo: start the local control plane + OpenBao + operator, apply examples, show the Secrets
demo: $(STAMP)
	$(BIN)/python -m vaultbridge.devenv.demo

## test: lint, type-check, then unit and integration tests against the real servers (OpenBao),
## then every Vault-facing integration test (tests/vault_facing.py) against HashiCorp Vault
## too (built once within VAULT_BUILD_BUDGET seconds, else a loud "NOT TESTED" box;
## docs/development.md)
VAULT_BUILD_BUDGET ?= 1800
test: $(STAMP) lint typecheck tools
	@scripts/ensure-postgres.sh
	@scripts/ensure-chromium.sh
	$(BIN)/pytest -m "not faults" tests
	@VAULT_BUILD_BUDGET=$(VAULT_BUILD_BUDGET) scripts/test-hashicorp.sh $(BIN) build
	@echo "Now concurrently, each in its own dev environment: the OpenBao fault session and the"
	@echo "two HashiCorp Vault sessions; each one's output is printed when it ends"
	$(MAKE) -j3 --output-sync=target test-faults test-hashicorp-main test-hashicorp-faults

## test-hashicorp-main, test-hashicorp-faults: the Vault-facing tests (but the fault tests,
## resp. only those) against HashiCorp Vault, steps of `make test` (binary built first by
## `scripts/test-hashicorp.sh build`; without it a NOT TESTED box)
test-hashicorp-main test-hashicorp-faults: test-hashicorp-%: $(STAMP)
	@scripts/test-hashicorp.sh $(BIN) $*

## tools: build (once, cached in ~/.cache/vaultbridge) the pinned Helm, Prometheus and promtool
## that the chart and alerting tests use, printing done/total packages and an estimate
tools: $(STAMP)
	$(BIN)/python -m vaultbridge.devenv.helm
	$(BIN)/python -m vaultbridge.devenv.prometheus

## test-faults: fault-injection tests (freeze/seal Vault, restart the API server, kill the
## operator) in their own pytest session with their own throwaway dev environment
test-faults: $(STAMP) tools
	@home=$$(mktemp -d /tmp/vaultbridge-faults.XXXXXX); echo "fault tests: dev environment in $$home"; \
	VAULTBRIDGE_DEV_HOME=$$home $(BIN)/pytest -m faults tests/integration; rc=$$?; \
	if [ $$rc -eq 0 ]; then rm -rf $$home; else echo "logs kept in $$home/logs"; fi; exit $$rc

## test-hashicorp: the whole integration suite against HashiCorp Vault Community Edition
## (built once from devenv/vault, ~20 min cold): one session for the main tests, one for the
## fault tests, each with its own throwaway dev environment. Test ids carry
## "[vault=hashicorp]"; docs/compatibility.md lists the results.
test-hashicorp: $(STAMP) tools vault-bin
	@scripts/ensure-postgres.sh
	@scripts/ensure-chromium.sh
	@for marker in "not faults" "faults"; do \
	  home=$$(mktemp -d /tmp/vaultbridge-hashicorp.XXXXXX); \
	  echo "HashiCorp Vault tests (-m '$$marker'): dev environment in $$home"; \
	  VAULTBRIDGE_VAULT_SERVER=hashicorp VAULTBRIDGE_DEV_HOME=$$home \
	    $(BIN)/pytest -m "$$marker" tests/integration; rc=$$?; \
	  if [ $$rc -ne 0 ]; then echo "logs kept in $$home/logs"; exit $$rc; fi; rm -rf $$home; \
	done

## vault-bin: build HashiCorp Vault CE from devenv/vault once (cached in ~/.cache/vaultbridge)
vault-bin: $(STAMP)
	$(BIN)/python -m vaultbridge.devenv.vault

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

## crds: regenerate deploy/crds, the CRD reference, the chart's copy and the kustomize base
crds: $(STAMP)
	$(BIN)/python -m vaultbridge.api.crdgen --out deploy/crds
	cp deploy/crds/*.yaml deploy/chart/crds/
	$(BIN)/python deploy/kustomize/render.py

dev-up: $(STAMP)
	$(BIN)/vaultbridge dev up

dev-down: $(STAMP)
	$(BIN)/vaultbridge dev down

## bench: operator vs floor benchmarks (docs/performance.md); e.g. make bench BENCH_ARGS="--quick"
BENCH_ARGS ?= --n 2000
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

## lock: re-resolve requirements/*.txt from pyproject.toml (LOCK_ARGS="--upgrade" to move pins)
lock:
	scripts/lock-deps.sh $(LOCK_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
