#!/usr/bin/env bash
# Cheetah's SpaceChargeKick measured with bench/torch_probe.py, fitted with
# `sctape fit` and drawn with fit/plot.py next to sctape's four strategies.
# Opt-in (not in CI): it installs cheetah-accelerator from PyPI into
# build/cheetah-venv (examples/cheetah_venv.sh). About 3 minutes on 2 cores.
#
#   bash examples/cheetah_probe.sh [--quick] [OUT_DIR]     (default results/cheetah)
#
# Writes OUT_DIR/sweep_cpu.json and timeline_<strategy>_<dtype>.json
# (examples/cheetah_probe.py), OUT_DIR/coeffs_cpu.json (its fit),
# OUT_DIR/coeffs_with_sctape.json (the fit of it merged with
# results/sweep_cpu.json) and OUT_DIR/coefficients_<dtype>_tape_bytes.{png,svg}:
# alpha_part and alpha_cells per phase, Cheetah, Cheetah with checkpointing and
# sctape's autograd, fused, checkpoint and reversible side by side, and
# OUT_DIR/timeline_<strategy>_float32.{png,svg} (memory against time).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=()
if [ "${1:-}" = --quick ]; then quick=(--quick); shift; fi
out=${1:-results/cheetah}
sctape=$(bash scripts/build.sh)/cli/sctape
python=$(bash examples/cheetah_venv.sh)
mkdir -p "$out"
"$python" examples/cheetah_probe.py "${quick[@]}" --out-dir "$out"
"$sctape" fit "$out/sweep_cpu.json" -o "$out/coeffs_cpu.json"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# one sweep and one fit for plot.py: the probe's runs and sctape's committed default sweep
/usr/bin/python3 bench/torch_probe.py concat results/sweep_cpu.json "$out/sweep_cpu.json" -o "$tmp/sweep.json" > /dev/null
"$sctape" fit "$tmp/sweep.json" -o "$out/coeffs_with_sctape.json" > /dev/null
/usr/bin/python3 fit/plot.py "$tmp/sweep.json" "$out/coeffs_with_sctape.json" --measure tape_bytes -o "$tmp/plots" \
  --timeline "$out/timeline_autograd_float32.json" --timeline "$out/timeline_checkpoint_float32.json" > /dev/null
for ext in png svg; do
  for dtype in float32 float64; do
    cp "$tmp/plots/coefficients_${dtype}_tape_bytes.$ext" "$out/"
    echo "$out/coefficients_${dtype}_tape_bytes.$ext"
  done
  for strategy in autograd checkpoint; do  # plot.py names them after the label cheetah:<strategy>
    cp "$tmp/plots/timeline_cheetah:${strategy}_float32.$ext" "$out/timeline_${strategy}_float32.$ext"
    echo "$out/timeline_${strategy}_float32.$ext"
  done
done
