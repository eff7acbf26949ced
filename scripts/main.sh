#!/usr/bin/env bash
# The README's main command: installs dependencies, builds, and runs the
# suite's main job on this machine's CPU, and on its GPU when one answers:
#   1. the default sweep over N_part x grid x N_kicks x strategy x dtype,
#   2. the fit of alpha_part and alpha_cells (coefficient table printed),
#   3. memory timelines of a 4-kick gradient run per strategy, and of the
#      memory-scaling paper's Fig. 1 case (results/paper/timeline_*.json),
#   4. the paper's validation cases, Figs. 7-8 (sctape-validate, ~45 s),
#   5. the plots (results/plots/) and every figure of the paper
#      (results/paper/fig1..fig8, README.md with the paper's numbers beside
#      sctape's), from the JSON only,
#   6. the free-expansion validation and the forward-kick timing,
#   7. when a GPU answers: the sweep, fit and plots on it (results/sweep_gpu.json,
#      coeffs_gpu.json, plots_gpu/) and the forward-kick timing there
#      (kick_time_gpu.json).
# Everything lands in results/. SCTAPE_BENCH_QUICK=1 runs the CI subset.
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(bash scripts/build.sh)
sctape="$build/cli/sctape"
bench="$build/bench/sctape-bench"
mkdir -p results/plots results/paper
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

step() { echo "[sctape] $*" >&2; }

step "1/7 sweep: one line per run as it finishes -> results/sweep_cpu.json"
"$bench" --backend cpu --benchmark_filter=kick_memory --benchmark_counters_tabular=false \
  --benchmark_out="$tmp/sweep.json" --benchmark_out_format=json >&2
mv "$tmp/sweep.json" results/sweep_cpu.json

step "2/7 fit -> results/coeffs_cpu.json"
"$sctape" fit results/sweep_cpu.json -o results/coeffs_cpu.json

step "3/7 memory timelines (examples/reverse_mode.json, one run per strategy)"
timelines=()
for strategy in autograd fused checkpoint reversible; do
  /usr/bin/python3 - "$strategy" "$tmp/$strategy.json" <<'PY'
import json, sys
config = json.load(open("examples/reverse_mode.json"))
config["strategy"] = sys.argv[1]
json.dump(config, open(sys.argv[2], "w"))
PY
  "$sctape" track "$tmp/$strategy.json" --quiet --out "$tmp/result_$strategy.json" \
    --timeline "results/timeline_$strategy.json"
  timelines+=(--timeline "results/timeline_$strategy.json")
done
step "3/7 the paper's Fig. 1 case (examples/paper_table1.json): forward only and per strategy -> results/paper/"
bash scripts/paper_timelines.sh "$sctape" results/paper > /dev/null

step "4/7 the paper's Figs. 7-8: sctape-validate -> results/paper/lorentz_force.json, free_expansion_envelope.json"
"$build/bench/sctape-validate" lorentz_force --out results/paper/lorentz_force.json
"$build/bench/sctape-validate" free_expansion --out results/paper/free_expansion_envelope.json

step "5/7 plots -> results/plots/; the paper's Figs. 1-8 and their summary -> results/paper/"
/usr/bin/python3 fit/plot.py results/sweep_cpu.json results/coeffs_cpu.json "${timelines[@]}" -o results/plots
/usr/bin/python3 fit/plot.py results/sweep_cpu.json results/coeffs_cpu.json --paper --paper-timelines results/paper \
  --lorentz-force results/paper/lorentz_force.json --free-expansion results/paper/free_expansion_envelope.json \
  -o results/paper
/usr/bin/python3 fit/paper_summary.py --coeffs results/coeffs_cpu.json --timelines results/paper \
  --lorentz-force results/paper/lorentz_force.json --free-expansion results/paper/free_expansion_envelope.json \
  -o results/paper/README.md

step "6/7 free expansion (examples/free_expansion.json), forward-kick and gradient timing"
"$sctape" track examples/free_expansion.json --quiet --out results/free_expansion.json
/usr/bin/python3 - <<'PY'
import json
r = json.load(open("results/free_expansion.json"))
i, f = r["moments"]["initial"]["rms"], r["moments"]["final"]["rms"]
print("free expansion, size ratio after the doubling length (expected 2):",
      ", ".join(f"{k}={f[k] / i[k]:.4f}" for k in ("sigma_x_m", "sigma_y_m", "sigma_tau_m")))
PY
"$bench" --backend cpu --benchmark_filter=kick_time --benchmark_out="$tmp/kick_time.json" --benchmark_out_format=json >&2
mv "$tmp/kick_time.json" results/kick_time_cpu.json
"$bench" --backend cpu --benchmark_filter=gradient_time --benchmark_out="$tmp/gradient_time.json" \
  --benchmark_out_format=json >&2
mv "$tmp/gradient_time.json" results/gradient_time_cpu.json
/usr/bin/python3 fit/speed_table.py results/kick_time_cpu.json --gradient-time results/gradient_time_cpu.json \
  --write README.md
if "$bench" --backend cuda --benchmark_list_tests > /dev/null 2>&1; then
  step "7/7 a GPU answers: sweep, fit and plots on it, and its forward kick timing"
  "$bench" --backend cuda --benchmark_filter=kick_memory --benchmark_counters_tabular=false \
    --benchmark_out="$tmp/sweep_gpu.json" --benchmark_out_format=json >&2
  mv "$tmp/sweep_gpu.json" results/sweep_gpu.json
  "$sctape" fit results/sweep_gpu.json -o results/coeffs_gpu.json
  /usr/bin/python3 fit/plot.py results/sweep_gpu.json results/coeffs_gpu.json -o results/plots_gpu
  "$bench" --backend cuda --benchmark_filter=kick_time --benchmark_out="$tmp/kick_time_gpu.json" --benchmark_out_format=json >&2
  mv "$tmp/kick_time_gpu.json" results/kick_time_gpu.json
else
  step "7/7 no GPU answers: GPU sweep and timing skipped (results/*_gpu.json unchanged)"
fi
step "done: results/ holds the sweep, the coefficients, timelines and plots"
