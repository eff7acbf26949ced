#!/usr/bin/env bash
# Configures and builds sctape. Uses the `cuda` preset (CPU + CUDA backend)
# when nvcc is present, otherwise `cpu`. Prints the build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
if [ -n "${SCTAPE_PRESET:-}" ]; then preset="$SCTAPE_PRESET"
elif command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then preset=cuda
else preset=cpu; fi
if [ "$preset" = cuda ] && ! command -v nvcc >/dev/null 2>&1; then export PATH="/usr/local/cuda/bin:$PATH"; fi
cmake --preset "$preset" >&2
cmake --build --preset "$preset" >&2
echo "build/$preset"
