#!/usr/bin/env bash
# Regenerate the checked-in gRPC stubs from proto/ into OUT (default: the repo root).
# Compiling with -I proto makes protoc write absolute imports (oip.v1...).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here}
python=${PYTHON:-python3}
mkdir -p "$out"
"$python" -m grpc_tools.protoc -I "$here/proto" \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  "$here"/proto/oip/v1/*.proto
