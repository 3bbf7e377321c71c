#!/usr/bin/env bash
# Build the project's image (the Dockerfile at the root) on the local engine,
# without a registry: the base image must be present locally (on a machine that
# cannot pull python:3.11-slim, scripts/base-image.sh makes one from Debian's
# packages). The sample ecosystem's containers and the flagship scenario on
# containers use this image.
#
# Usage: scripts/build-image.sh [TAG]     (default trading-ecosystem/test-coordinator:dev)
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-trading-ecosystem/test-coordinator:dev}
if command -v podman >/dev/null 2>&1; then
  # --format docker keeps the HEALTHCHECK (the OCI format drops it).
  podman build --pull=never --format docker -t "$TAG" . >&2
else
  docker build --pull=false -t "$TAG" . >&2
fi
echo "$TAG"
