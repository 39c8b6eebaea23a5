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
# `pip install .` also builds the native extension where its toolchain is (CMakeLists.txt); here the `native` target
# builds it into build/native instead, so the venv installs leave it out (and do not run CMake at all).
SKIP_NATIVE := OIP_NATIVE=OFF

.PHONY: run test lint typecheck unit unit-python native-asan native-tsan stubs models loadtest-setup observability-setup native constraints clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: pyproject.toml constraints.txt | $(BIN)/python
	$(SKIP_NATIVE) $(BIN)/python -m $(INSTALL_RUNTIME)
	touch $@

$(VENV)/.dev: pyproject.toml constraints.txt | $(BIN)/python
	$(SKIP_NATIVE) $(BIN)/python -m $(INSTALL_DEV)
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime native
	$(BIN)/python -m server --model-repository $(MODELS) --host $(HOST) --grpc-port $(GRPC_PORT) --metrics-port $(METRICS_PORT)

test: lint typecheck loadtest-setup observability-setup native unit unit-python

# h2load (Debian nghttp2-client) for the load test's h2load engine; its tests are skipped without it.
loadtest-setup:
	@bash loadtest/setup_h2load.sh || echo "h2load is not installed: the h2load engine and its tests are unavailable"

# promtool (Debian package prometheus) checks and unit-tests deploy/prometheus/alerts.yaml; its tests are skipped without it.
observability-setup:
	@bash deploy/prometheus/setup_promtool.sh || echo "promtool is not installed: the alert rule tests are skipped"

# The native data plane's extension (docs/native-data-plane.md), into build/native (native/, which CMakeLists.txt
# also builds into the wheel of `pip install .`); where the toolchain cannot be installed it says so in one line and the
# native tests skip.
# nanobind only (pinned): `make run` builds the extension without the dev tools.
$(VENV)/.nanobind: constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt nanobind
	touch $@

native: $(VENV)/.nanobind
	@bash scripts/setup_native.sh
	@if command -v protoc >/dev/null && pkg-config --exists grpc++ protobuf 2>/dev/null; then \
	  mkdir -p build && cmake -S native -B build/native -DPython_EXECUTABLE=$(abspath $(BIN)/python) >build/native.log 2>&1 \
	  && cmake --build build/native -j2 >>build/native.log 2>&1 \
	  || echo "native: the build failed (see build/native.log); the native tests skip"; \
	fi

# The native extension under AddressSanitizer (use-after-free, overflows: a read after a call's Finish crashed the
# prototype only under load), then its tests and the server suites against it. Python itself is not instrumented:
# ASan is preloaded (with libstdc++, or ASan cannot intercept C++ throws: Python does not link it), leak checks are
# off (the interpreter keeps its own memory at exit). The RSS test is left out: ASan's allocator holds freed memory
# in quarantine by design.
ASAN_PRELOAD = $(shell gcc -print-file-name=libasan.so) $(shell gcc -print-file-name=libstdc++.so)
native-asan: $(VENV)/.dev
	@bash scripts/setup_native.sh
	cmake -S native -B build/native-asan -DPython_EXECUTABLE=$(abspath $(BIN)/python) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS="-fsanitize=address -fno-omit-frame-pointer" >build/native-asan.log 2>&1
	cmake --build build/native-asan -j2 >>build/native-asan.log 2>&1
	OIP_NATIVE_BUILD=$(abspath build/native-asan) LD_PRELOAD="$(ASAN_PRELOAD)" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  SERVER_GRPC_FRONTEND=native $(BIN)/python -m pytest $(PYTEST_ARGS) tests/native tests/integration/test_infer.py \
	  tests/integration/test_batching.py tests/integration/test_batch_isolation.py tests/integration/test_stream.py \
	  tests/integration/test_fuzz_live.py tests/integration/test_shutdown.py tests/integration/test_overload.py \
	  tests/integration/test_routing.py tests/integration/test_tracing.py tests/integration/test_stream_limits.py \
	  --deselect tests/integration/test_overload.py::test_memory_comes_back_after_large_requests \
	  --deselect tests/integration/test_stream_limits.py::test_a_stream_that_is_not_read_holds_bounded_memory  # ASan keeps freed memory

# The native extension under ThreadSanitizer: data races between the I/O, responder and batcher threads and the
# Python threads that call in (answers, finishes, tables). Only our code is instrumented: Debian's gRPC and Python
# are not, so synchronisation inside them (a completion-queue hand-off, the GIL) is invisible to TSan; the
# suppressions in native/tsan.supp name those sources of false reports and nothing in native/src. Reports go to
# build/tsan-report.* (the server runs inside pytest, which holds stderr), printed and failing the target at the end.
# The suites are those whose timing holds under TSan's 5-15x slowdown (deadline, drain and flood tests do not); forked
# children's "dup thread" notes (TSan after fork) are not reports.
TSAN_PRELOAD = $(shell gcc -print-file-name=libtsan.so) $(shell gcc -print-file-name=libstdc++.so)
native-tsan: $(VENV)/.dev
	@bash scripts/setup_native.sh
	cmake -S native -B build/native-tsan -DPython_EXECUTABLE=$(abspath $(BIN)/python) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" >build/native-tsan.log 2>&1
	cmake --build build/native-tsan -j2 >>build/native-tsan.log 2>&1
	rm -f build/tsan-report.*
	OIP_NATIVE_BUILD=$(abspath build/native-tsan) LD_PRELOAD="$(TSAN_PRELOAD)" \
	  TSAN_OPTIONS="die_after_fork=0 second_deadlock_stack=1 suppressions=$(abspath native/tsan.supp) log_path=$(abspath build/tsan-report)" \
	  SERVER_GRPC_FRONTEND=native $(BIN)/python -m pytest $(PYTEST_ARGS) tests/native/test_server.py \
	  tests/native/test_request_queue.py tests/integration/test_infer.py tests/integration/test_stream.py \
	  tests/integration/test_routing.py -k "not 64_mib"
	@reports=$$(grep -l "WARNING: ThreadSanitizer" build/tsan-report.* 2>/dev/null); \
	  if [ -n "$$reports" ]; then cat $$reports; echo "native-tsan: data races reported above"; exit 1; fi

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check server clients loadtest oip/codec.py tests

typecheck: $(VENV)/.dev
	$(BIN)/mypy server clients loadtest oip/codec.py

unit: $(VENV)/.dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Every suite that starts a server, again on the Python frontend where `unit` ran them on the native one (the
# default where the extension is built): one behaviour, two implementations (docs/native-data-plane.md).
SERVER_SUITES := tests/integration tests/compat tests/clients tests/loadtest
unit-python: $(VENV)/.dev
	@if ls build/native/oip_native*.so >/dev/null 2>&1; then \
	  echo "unit-python: the server suites again on the Python frontend (grpc.aio)"; \
	  SERVER_GRPC_FRONTEND=python $(BIN)/python -m pytest $(PYTEST_ARGS) $(SERVER_SUITES); \
	else echo "unit-python: the native extension is not built here, so unit already ran on the Python frontend"; fi

stubs: $(VENV)/.dev
	PYTHON=$(BIN)/python scripts/gen_stubs.sh

models: $(VENV)/.dev
	$(BIN)/python models/build.py

# Resolve the dev environment afresh in a throw-away venv and pin what it chose.
constraints:
	rm -rf build/constraints-venv && $(PYTHON) -m venv build/constraints-venv
	build/constraints-venv/bin/python -m pip install --quiet --upgrade pip
	$(SKIP_NATIVE) build/constraints-venv/bin/python -m pip install --quiet -e '.[dev]'
	( echo "# Pinned by \`make constraints\`: every dependency of the server and its dev tools, tested together."; \
	  build/constraints-venv/bin/python -m pip freeze --all --exclude-editable | grep -v -e '^oip-inference-server' -e '^pip==' ) > constraints.txt

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
