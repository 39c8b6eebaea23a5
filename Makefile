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

# The install commands, shared with the Dockerfile (tests/test_packaging.py checks they match). constraints.txt pins
# every package to versions tested together, so installs are fast (no backtracking) and reproducible;
# `make constraints` rewrites it from a fresh resolution.
INSTALL_RUNTIME := pip install --no-cache-dir -c constraints.txt .
INSTALL_DEV := pip install -c constraints.txt -e '.[dev]'

.PHONY: run test lint typecheck unit unit-native stubs models loadtest-setup observability-setup native constraints clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m $(INSTALL_RUNTIME)
	touch $@

$(VENV)/.dev: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m $(INSTALL_DEV)
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	$(BIN)/python -m server --model-repository $(MODELS) --host $(HOST) --grpc-port $(GRPC_PORT) --metrics-port $(METRICS_PORT)

test: lint typecheck loadtest-setup observability-setup native unit unit-native

# h2load (Debian nghttp2-client) for the load test's h2load engine; its tests are skipped without it.
loadtest-setup:
	@bash loadtest/setup_h2load.sh || echo "h2load is not installed: the h2load engine and its tests are unavailable"

# promtool (Debian package prometheus) checks and unit-tests deploy/prometheus/alerts.yaml; its tests are skipped without it.
observability-setup:
	@bash deploy/prometheus/setup_promtool.sh || echo "promtool is not installed: the alert rule tests are skipped"

# The native data plane's extension (docs/native-data-plane.md), into build/native; where the toolchain cannot be
# installed it says so in one line and the native tests skip.
native: $(VENV)/.dev
	@bash scripts/setup_native.sh
	@if command -v protoc >/dev/null && pkg-config --exists grpc++ protobuf 2>/dev/null; then \
	  mkdir -p build && cmake -S native -B build/native -DPython_EXECUTABLE=$(abspath $(BIN)/python) >build/native.log 2>&1 \
	  && cmake --build build/native -j2 >>build/native.log 2>&1 \
	  || echo "native: the build failed (see build/native.log); the native tests skip"; \
	fi

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check server clients loadtest oip/codec.py tests

typecheck: $(VENV)/.dev
	$(BIN)/mypy server clients loadtest oip/codec.py

unit: $(VENV)/.dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Every suite that starts a server, again on the native frontend (--frontend native): one behaviour, two
# implementations (docs/native-data-plane.md). Skipped, in one line, where the extension is not built.
NATIVE_SUITES := tests/integration tests/compat tests/clients tests/loadtest
unit-native: $(VENV)/.dev
	@if ls build/native/oip_native*.so >/dev/null 2>&1; then \
	  echo "unit-native: the server suites again on the native frontend"; \
	  SERVER_GRPC_FRONTEND=native $(BIN)/python -m pytest $(PYTEST_ARGS) $(NATIVE_SUITES); \
	else echo "unit-native: the native extension is not built here; its second run of the suites is skipped"; fi

stubs: $(VENV)/.dev
	PYTHON=$(BIN)/python scripts/gen_stubs.sh

models: $(VENV)/.dev
	$(BIN)/python models/build.py

# Resolve the dev environment afresh in a throw-away venv and pin what it chose.
constraints:
	rm -rf build/constraints-venv && $(PYTHON) -m venv build/constraints-venv
	build/constraints-venv/bin/python -m pip install --quiet --upgrade pip
	build/constraints-venv/bin/python -m pip install --quiet -e '.[dev]'
	( echo "# Pinned by \`make constraints\`: every dependency of the server and its dev tools, tested together."; \
	  build/constraints-venv/bin/python -m pip freeze --all --exclude-editable | grep -v -e '^oip-inference-server' -e '^pip==' ) > constraints.txt

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
