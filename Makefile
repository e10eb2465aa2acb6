# vaultbridge — the two commands that matter: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit integration crds dev-up dev-down bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

## demo: start the local control plane + OpenBao + operator, apply examples, show the Secrets
demo: $(STAMP)
	$(BIN)/python -m vaultbridge.devenv.demo

## test: lint, type-check, then unit and integration tests against the real servers
test: $(STAMP) lint typecheck
	@scripts/ensure-postgres.sh
	$(BIN)/pytest tests

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

crds: $(STAMP)
	$(BIN)/python -m vaultbridge.api.crdgen --out deploy/crds

dev-up: $(STAMP)
	$(BIN)/vaultbridge dev up

dev-down: $(STAMP)
	$(BIN)/vaultbridge dev down

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
