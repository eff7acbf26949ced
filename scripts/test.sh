#!/usr/bin/env bash
# The README's test command: installs dependencies, builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(bash scripts/build.sh)
ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
