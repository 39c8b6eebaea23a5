#!/usr/bin/env bash
# Seldon MLServer, the benchmark peer of `python -m loadtest.peer_bench` (configuration "mlserver", loadtest/mlserver_peer.py).
#
# It goes into its own virtual environment, /tmp/peer-mlserver (PEER_MLSERVER_VENV overrides), never into .venv:
# MLServer pins its own versions of fastapi, pydantic, grpcio and protobuf. Installs mlserver (MLSERVER_VERSION,
# default 1.7.1), onnxruntime and numpy; our runtime (loadtest/mlserver_runtime.py) needs nothing else. uvloop stays
# below 0.22: from 0.22 on, MLServer 1.7.1's inference workers (parallel_workers >= 1) die at start
# (SeldonIO/MLServer#2286). Does nothing when all is there. Quiet; on failure, one line on stderr and a non-zero
# exit (pip's log stays in a file).
set -uo pipefail

readonly VENV="${PEER_MLSERVER_VENV:-/tmp/peer-mlserver}"
readonly PYTHON="${PEER_MLSERVER_PYTHON:-python3.11}"
readonly VERSION="${MLSERVER_VERSION:-1.7.1}"

fail() {
    echo "setup_mlserver: $1" >&2
    exit 1
}

installed() {
    [ -x "$VENV/bin/mlserver" ] && "$VENV/bin/python" -c '
import importlib.metadata, mlserver, onnxruntime, numpy
assert tuple(int(p) for p in importlib.metadata.version("uvloop").split(".")[:2]) < (0, 22)' >/dev/null 2>&1
}

if installed; then
    exit 0
fi
command -v "$PYTHON" >/dev/null 2>&1 || fail "$PYTHON not found (MLServer's venv needs it; PEER_MLSERVER_PYTHON overrides)"
log="$(mktemp "${TMPDIR:-/tmp}/setup_mlserver.XXXXXX")" || fail "cannot create a log file"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV" >>"$log" 2>&1 || fail "'$PYTHON -m venv $VENV' failed, see $log"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "mlserver==$VERSION" onnxruntime numpy \
    "uvloop<0.22" >>"$log" 2>&1 || fail "pip install mlserver==$VERSION onnxruntime numpy 'uvloop<0.22' into $VENV failed (no network?), see $log"
installed || fail "installed, but $VENV/bin/mlserver or 'import mlserver, onnxruntime, numpy' does not work (or uvloop >= 0.22), see $log"
rm -f "$log"
echo "setup_mlserver: installed MLServer $VERSION in $VENV"
