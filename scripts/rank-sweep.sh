#!/usr/bin/env bash
# The per-rank memory law from a clean clone: Open MPI from Debian, the `mpi`
# preset's sctape, the rank sweep (bench/rank_sweep.py: 162 fit runs and 24
# held-out ones, about 3 minutes on 2 cores), its fit, and the held-out check.
# Writes results/rank_sweep_cpu.json, results/rank_sweep_heldout_cpu.json and
# results/coeffs_rank_cpu.json (docs/mpi.md, "The per-rank law fitted over ranks").
#   bash scripts/rank-sweep.sh [--quick]     # --quick: 81 + 3 float64 runs, into build/mpi/rank_sweep_quick/
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  "") out=results; quick=() ;;
  --quick) out=build/mpi/rank_sweep_quick; quick=(--quick) ;;
  -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "rank-sweep.sh: unknown option '$1' (--quick or nothing)" >&2; exit 2 ;;
esac
bash scripts/install-deps.sh mpi
cmake --preset mpi > /dev/null
cmake --build build/mpi --target sctape -j2 > /dev/null
mkdir -p "$out"
sctape=build/mpi/cli/sctape
/usr/bin/python3 bench/rank_sweep.py --sctape "$sctape" "${quick[@]}" \
  --out "$out/rank_sweep_cpu.json" --held-out "$out/rank_sweep_heldout_cpu.json"
"$sctape" fit "$out/rank_sweep_cpu.json" -o "$out/coeffs_rank_cpu.json"
# held out: ranks, bunch sizes and grids the fit never saw; tolerance 2% (docs/mpi.md)
"$sctape" plan "$out/coeffs_rank_cpu.json" --against "$out/rank_sweep_heldout_cpu.json" --tolerance 0.02
