#!/usr/bin/env bash
# Build the project's image (the Dockerfile at the root) on the local engine,
# without a registry: the base image must be present locally (on a machine that
# cannot pull python:3.11-slim, scripts/base-image.sh makes one from Debian's
# packages). The sample ecosystem's containers and the flagship scenario on
# containers use this image.
#
# The image is labelled test-coordinator.source with a fingerprint of what it is built
# from (the Dockerfile, pyproject.toml, README.md, src/ and scenarios/), so that
# scripts/stack.sh can tell an image built from other sources and build it again.
#
# Usage: scripts/build-image.sh [TAG]     (default trading-ecosystem/test-coordinator:dev)
#        scripts/build-image.sh --fingerprint    prints the sources' fingerprint only
set -euo pipefail
cd "$(dirname "$0")/.."
LABEL=test-coordinator.source

fingerprint() {
  find Dockerfile pyproject.toml README.md src scenarios -type f \
    ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
}

if [ "${1:-}" = --fingerprint ]; then
  fingerprint
  exit 0
fi
TAG=${1:-trading-ecosystem/test-coordinator:dev}
SOURCE=$(fingerprint)
if command -v podman >/dev/null 2>&1; then
  # --format docker keeps the HEALTHCHECK (the OCI format drops it).
  podman build --pull=never --format docker --label "$LABEL=$SOURCE" -t "$TAG" . >&2
else
  docker build --pull=false --label "$LABEL=$SOURCE" -t "$TAG" . >&2
fi
echo "$TAG"
