# The two commands: `make run` serves the bundled models, `make test` runs every check.
# Both create the virtual environment on first use; only Python 3.11+, pip and gcc are needed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MODELS ?= models
# Loopback, so the admin CLI works without a token; `make run HOST=0.0.0.0` serves the network (see README, Security).
HOST ?= 127.0.0.1
GRPC_PORT ?= 8001
METRICS_PORT ?= 8002
PYTEST_ARGS ?=

# The install commands, shared with the Dockerfile (tests/test_packaging.py checks they match).
INSTALL_RUNTIME := pip install --no-cache-dir .
INSTALL_DEV := pip install -e '.[dev]'

.PHONY: run test lint typecheck unit stubs models loadtest-setup clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m $(INSTALL_RUNTIME)
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m $(INSTALL_DEV)
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	$(BIN)/python -m server --model-repository $(MODELS) --host $(HOST) --grpc-port $(GRPC_PORT) --metrics-port $(METRICS_PORT)

test: lint typecheck loadtest-setup unit

# h2load (Debian nghttp2-client) for the load test's h2load engine; its tests are skipped without it.
loadtest-setup:
	@bash loadtest/setup_h2load.sh || echo "h2load is not installed: the h2load engine and its tests are unavailable"

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check server clients loadtest oip/codec.py tests

typecheck: $(VENV)/.dev
	$(BIN)/mypy server clients loadtest oip/codec.py

unit: $(VENV)/.dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

stubs: $(VENV)/.dev
	PYTHON=$(BIN)/python scripts/gen_stubs.sh

models: $(VENV)/.dev
	$(BIN)/python models/build.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
