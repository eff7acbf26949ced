#!/usr/bin/env bash
# The README's main command: installs dependencies, builds, then runs the
# suite's main job on the CPU (the CUDA kick is not implemented yet):
#  1. the free-expansion validation case through `sctape track`,
#  2. the forward-kick timing benchmark (results/kick_time_cpu.json).
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(bash scripts/build.sh)
mkdir -p results
echo "[sctape] free expansion of a cold uniform sphere (examples/free_expansion.json)" >&2
"$build/cli/sctape" track examples/free_expansion.json --out results/free_expansion.json
python3 - <<'PY'
import json
r = json.load(open("results/free_expansion.json"))
i, f = r["moments"]["initial"]["rms"], r["moments"]["final"]["rms"]
print("size ratio after the doubling length (expected 2):",
      ", ".join(f"{k}={f[k] / i[k]:.4f}" for k in ("sigma_x_m", "sigma_y_m", "sigma_tau_m")))
PY
echo "[sctape] forward kick timing (results/kick_time_cpu.json)" >&2
"$build/bench/sctape-bench" --benchmark_filter='kick_time' \
  --benchmark_out=results/kick_time_cpu.json --benchmark_out_format=json
