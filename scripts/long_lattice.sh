#!/usr/bin/env bash
# The opt-in long-lattice study (about 30 min on a 2-core machine): a matched
# FODO ring of 10, 100, 1000 and 10^4 kicks (10^5 particles, 32^3, float64)
# per strategy, with sctape-bench's progress line per run as it finishes:
#   results/long_lattice_cpu.json   tape, peak, forward and backward time, states held
#   results/plots/long_lattice_float64.png, .svg
# and `sctape plan`'s predictions of every run's tape and peak (laws fitted on
# the default sweep, which holds none of these runs) checked within 2%.
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(bash scripts/build.sh)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "[sctape] long lattices: 15 runs, the 10^4-kick ones take minutes each" >&2
SCTAPE_BENCH_LONG=1 "$build/bench/sctape-bench" --backend cpu --benchmark_filter=kick_memory \
  --benchmark_counters_tabular=false --benchmark_out="$tmp/long.json" --benchmark_out_format=json >&2
mv "$tmp/long.json" results/long_lattice_cpu.json
/usr/bin/python3 fit/plot.py --long-lattice results/long_lattice_cpu.json -o results/plots
"$build/cli/sctape" plan results/coeffs_cpu.json --against results/long_lattice_cpu.json --snapshots 10 \
  --lattice examples/fodo_cell.json
