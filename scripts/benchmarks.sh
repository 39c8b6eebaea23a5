#!/usr/bin/env bash
# Reproduces the measurements in docs/benchmarks.md: P1, P2, P3, P5, uvloop on/off and --workers 2
# (routing on/off: python -m loadtest.routing_bench).
# Usage: scripts/benchmarks.sh [OUT_DIR]   (loopback only; about 15 minutes on 2 cores, 8 with SKIP_INSTRUCTIONS=1)
# Throughput is measured twice: with h2load (a C client that leaves the cores to the server, as
# perf_analyzer would) and with our Python client (which also reports latency percentiles).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/benchmarks/run3}
PY=${PYTHON:-.venv/bin/python}
REPO=build/bench-repo
THREADS=${INTRA_OP_THREADS:-1}   # ONNX Runtime intra-op threads, for the server and the ORT baseline alike
PORT=18001
METRICS=18002
mkdir -p "$OUT" "$REPO"
$PY -m loadtest.bench_models --out "$REPO"
# fraud as runs 1-3 measured it: both versions, no [routing] (unversioned requests go to v2, the MLP). The
# bundled config now splits 90/10; routing has its own benchmark (python -m loadtest.routing_bench).
rm -rf "$REPO/fraud" && mkdir -p "$REPO/fraud"
cp -r models/fraud/1 models/fraud/2 "$REPO/fraud/"
printf 'max_batch_size = 64\n\n[versions]\npolicy = "all"\n' >"$REPO/fraud/config.toml"

SERVER_PID=""
start_server() {
  $PY -m server --model-repository "$REPO" --host 127.0.0.1 --grpc-port $PORT --metrics-host 127.0.0.1 \
    --metrics-port $METRICS --intra-op-threads "$THREADS" --log-level WARNING "$@" >"build/bench-server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 240); do
    curl -sf "127.0.0.1:$METRICS/v2/health/ready" >/dev/null && return 0
    sleep 0.5
  done
  echo "the server did not become ready; see build/bench-server.log" >&2
  exit 1
}
stop_server() { kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""; }
trap '[ -n "$SERVER_PID" ] && kill -TERM "$SERVER_PID" 2>/dev/null || true' EXIT
load() { $PY -m loadtest --target 127.0.0.1:$PORT "$@"; }
ceiling=(--baseline --model-repository "$REPO" --intra-op-threads "$THREADS")

half_max() {  # half of the highest throughput in a report: the P3 open-loop rate for that client
  $PY -c "import json; r = json.load(open('$1')); print(int(max(l['throughput_req_per_s'] for l in r['levels']) / 2))"
}

start_server
load --model fraud --engine h2load --concurrency 16,64 --baseline --output-dir "$OUT/p1-fraud-h2load"
load --model fraud --concurrency 1,16,64 "${ceiling[@]}" --output-dir "$OUT/p1-fraud"
load --model mlp --engine h2load --concurrency 64 "${ceiling[@]}" --output-dir "$OUT/p2-mlp-h2load"
load --model mlp --concurrency 1,64 "${ceiling[@]}" --output-dir "$OUT/p2-mlp"
load --model mlp_nobatch --engine h2load --concurrency 64 --output-dir "$OUT/p2-mlp-nobatch"
# P3 at half of the maximum each client reached: h2load at a constant rate, ours with Poisson arrivals.
# A 3 s warm-up: P3 asks about the steady state, and the first seconds after the mlp runs were slower in some runs.
load --model fraud --engine h2load --rate "$(half_max "$OUT/p1-fraud-h2load/report.json")" --warmup 3 \
  --output-dir "$OUT/p3-fraud-open-h2load"
load --model fraud --rate "$(half_max "$OUT/p1-fraud/report.json")" --arrival poisson --warmup 3 \
  --output-dir "$OUT/p3-fraud-open"
# Latency against load with h2load: 25, 50, 75 and 90 % of its maximum (the plot behind P3).
curve=$($PY -c "import json; r = json.load(open('$OUT/p1-fraud-h2load/report.json')); \
m = max(l['throughput_req_per_s'] for l in r['levels']); print(','.join(str(int(m * f)) for f in (0.25, 0.5, 0.75, 0.9)))")
load --model fraud --engine h2load --rate "$curve" --warmup 3 --output-dir "$OUT/fraud-latency-curve-h2load"
stop_server

start_server --no-uvloop
load --model fraud --engine h2load --concurrency 64 --output-dir "$OUT/no-uvloop-fraud"
stop_server

# The Python client: h2load counts successes from ModelStatistics, which reach one worker only.
start_server --workers 2
load --model fraud --concurrency 64 --output-dir "$OUT/workers2-fraud"
stop_server

$PY -m loadtest.memory --model-repository "$REPO" --model mlp --server-arg=--intra-op-threads \
  --server-arg="$THREADS" >"$OUT/p5-memory.json"
if [ "${SKIP_INSTRUCTIONS:-0}" != 1 ] && command -v valgrind >/dev/null; then  # about 7 minutes
  $PY -m loadtest.instructions --model-repository "$REPO" --model fraud --server-arg=--intra-op-threads \
    --server-arg="$THREADS" >"$OUT/p1-instructions.json"
fi
$PY -m loadtest.targets "$OUT" | tee "$OUT/targets.md"
