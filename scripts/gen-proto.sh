#!/usr/bin/env bash
# Generate the Python code of the gRPC API from proto/ with grpcio-tools (the `dev`
# extra pins it to the grpcio and protobuf the service runs with):
#   proto/test_coordinator/v1/test_coordinator.proto
#     -> src/test_coordinator/grpc_api/v1/test_coordinator_pb2.py, _pb2.pyi, _pb2_grpc.py
# The generated modules are committed; run this after changing the .proto, and commit
# what it writes (tests/unit/test_grpc_generated_code.py fails while they differ).
#
# Usage: scripts/gen-proto.sh [OUT_DIR]     (default src/test_coordinator/grpc_api/v1)
# PYTHON: the interpreter with grpcio-tools (default .venv/bin/python, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-src/test_coordinator/grpc_api/v1}
PYTHON=${PYTHON:-.venv/bin/python}
[[ -x $PYTHON ]] || PYTHON=python3
PROTO=test_coordinator/v1/test_coordinator.proto
PACKAGE=test_coordinator.grpc_api.v1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# -I proto: the file is registered as test_coordinator/v1/test_coordinator.proto, the path
# other .proto files import it by and reflection serves it under.
"$PYTHON" -m grpc_tools.protoc -I proto \
  --python_out="$work" --pyi_out="$work" --grpc_python_out="$work" "proto/$PROTO"

# protoc names the modules after the proto's path (test_coordinator.v1, which is not a
# package); they live in $PACKAGE: the stub's import of the messages, and the messages'
# __module__ (for repr and pickle).
generated="$work/test_coordinator/v1"
sed -i "s/^from test_coordinator\.v1 import test_coordinator_pb2 as /from $PACKAGE import test_coordinator_pb2 as /" \
  "$generated/test_coordinator_pb2_grpc.py"
sed -i "s/'test_coordinator\.v1\.test_coordinator_pb2'/'$PACKAGE.test_coordinator_pb2'/" \
  "$generated/test_coordinator_pb2.py"
grep -q "^from $PACKAGE import test_coordinator_pb2 as " "$generated/test_coordinator_pb2_grpc.py" \
  || { echo "gen-proto.sh: the stub's import of test_coordinator_pb2 was not rewritten" >&2; exit 1; }
grep -q "'$PACKAGE.test_coordinator_pb2'" "$generated/test_coordinator_pb2.py" \
  || { echo "gen-proto.sh: the messages' module name was not rewritten" >&2; exit 1; }

mkdir -p "$OUT_DIR"
for name in test_coordinator_pb2.py test_coordinator_pb2.pyi test_coordinator_pb2_grpc.py; do
  cp "$generated/$name" "$OUT_DIR/$name"
done
