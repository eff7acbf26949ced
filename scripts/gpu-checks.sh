#!/usr/bin/env bash
# The CUDA backend's checks (issue "CUDA backend") on a machine with a GPU,
# in stages that fit the device tool's 10-minute calls. Every stage writes
# its log and results under $OUT (the device tool's return folder; else
# ./gpu-checks), runs even when an earlier one failed, and the script exits
# non-zero when any stage failed.
#
#   bash scripts/gpu-deps.sh                                # here: .debs into .deps/ (carry ".deps")
#   bash scripts/gpu-checks.sh build tests sanitize         # there, one call
#   bash scripts/gpu-checks.sh build sweep timing nsys      # there, another (a fresh machine rebuilds)
#
# Stages:
#   build     unpack .deps (gpu-deps.sh --unpack) when present, configure and
#             build the cuda preset (-j all cores)
#   tests     ctest on build/cuda (gpu_tests must pass, not skip), then the
#             [gpu] tests again with per-test durations
#   sanitize  compute-sanitizer memcheck (with leak check), racecheck,
#             initcheck and synccheck on the [gpu] tests but [oom] (each
#             tool limited to SCTAPE_SANITIZE_SECONDS, default 240)
#   sweep     the kick_memory sweep on the GPU and its fit: sweep_gpu.json,
#             coeffs_gpu.json, and kick_time_gpu.json (forward kick timing)
#   timing    forward and backward ms per kick at N_part = 1e6 with 64^3 and
#             128^3 grids, float32, every GPU strategy: timing_gpu.json + a table
#   nsys      an Nsight Systems trace of a 4-kick fused gradient run and its
#             NVTX range summary (forward, backward, the substeps, drift)
# The plots need matplotlib, which the GPU machine may lack: draw them back
# here from the JSON, `python3 fit/plot.py results/sweep_gpu.json
# results/coeffs_gpu.json -o results/plots_gpu`.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/gpu-checks}"
mkdir -p "$out"
build=build/cuda
tests="$build/tests/sctape_gpu_tests"
bench="$build/bench/sctape-bench"
sctape="$build/cli/sctape"
export PATH="/usr/local/cuda/bin:$PATH"

usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; }

stage_build() {
  if [ -d .deps ]; then
    eval "$(bash scripts/gpu-deps.sh --unpack /tmp/sctape-deps)" || return 1
  fi
  cmake --preset cuda && cmake --build build/cuda -j "$(nproc)"
}

stage_tests() {
  ctest --test-dir "$build" --output-on-failure || return 1
  # ctest reports a skip (exit 77) as "Skipped", not a failure: insist on a GPU here
  "$tests" --gpu-or-skip "[gpu]" --durations yes
}

stage_sanitize() {
  local limit="${SCTAPE_SANITIZE_SECONDS:-240}" failed=0 tool
  for tool in memcheck racecheck initcheck synccheck; do
    local extra=()
    [ "$tool" = memcheck ] && extra=(--leak-check full)
    echo "== compute-sanitizer --tool $tool" >&2
    timeout "$limit" compute-sanitizer --tool "$tool" "${extra[@]}" --error-exitcode 3 \
      "$tests" "[gpu]~[oom]" > "$out/sanitize_$tool.log" 2>&1
    local rc=$?
    tail -n 5 "$out/sanitize_$tool.log" >&2
    if [ "$rc" -eq 124 ]; then echo "$tool: stopped after ${limit}s (incomplete)" >&2; failed=1
    elif [ "$rc" -ne 0 ]; then echo "$tool: exit $rc" >&2; failed=1; fi
  done
  return "$failed"
}

stage_sweep() {
  mkdir -p "$out/results"
  "$bench" --backend cuda --benchmark_filter=kick_memory --benchmark_counters_tabular=false \
    --benchmark_out="$out/results/sweep_gpu.json" --benchmark_out_format=json || return 1
  "$sctape" fit "$out/results/sweep_gpu.json" -o "$out/results/coeffs_gpu.json" || return 1
  "$bench" --backend cuda --benchmark_filter=kick_time \
    --benchmark_out="$out/results/kick_time_gpu.json" --benchmark_out_format=json
}

stage_timing() {
  mkdir -p "$out/results"
  "$bench" --backend cuda \
    --benchmark_filter='kick_memory/.*/float32/N_part:1000000/grid:(64x64x64|128x128x128)/' \
    --benchmark_out="$out/results/timing_gpu.json" --benchmark_out_format=json > /dev/null || return 1
  python3 - "$out/results/timing_gpu.json" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["benchmarks"]
print(f"{'run':72s} {'forward ms/kick':>16s} {'backward ms/kick':>17s}")
for r in runs:
    print(f"{r['name']:72s} {r['forward_ms']:16.3f} {r['backward_ms']:17.3f}")
PY
}

stage_nsys() {
  command -v nsys > /dev/null || { echo "nsys not found on this machine" >&2; return 1; }
  python3 - "$out/nsys_config.json" <<'PY'
import json, sys
config = json.load(open("examples/reverse_mode.json"))
config["strategy"] = "fused"
config["backend"] = "cuda"
json.dump(config, open(sys.argv[1], "w"))
PY
  nsys profile --trace=cuda,nvtx --force-overwrite true -o "$out/nsys_track" \
    "$sctape" track "$out/nsys_config.json" --quiet --out "$out/nsys_result.json" || return 1
  nsys stats --report nvtx_sum "$out/nsys_track.nsys-rep" 2>/dev/null ||
    nsys stats --report nvtxsum "$out/nsys_track.nsys-rep"
}

if [ $# -eq 0 ] || [ "$1" = --help ] || [ "$1" = -h ]; then usage; exit 0; fi
failed=()
for stage in "$@"; do
  case "$stage" in
    build|tests|sanitize|sweep|timing|nsys) ;;
    *) echo "gpu-checks: unknown stage '$stage' (see --help)" >&2; exit 2 ;;
  esac
done
for stage in "$@"; do
  echo "[gpu-checks] $stage (log: $out/$stage.log)" >&2
  start=$SECONDS
  if "stage_$stage" > >(tee "$out/$stage.log") 2>&1; then
    echo "[gpu-checks] $stage: ok ($((SECONDS - start)) s)" >&2
  else
    echo "[gpu-checks] $stage: FAILED ($((SECONDS - start)) s)" >&2
    failed+=("$stage")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then echo "[gpu-checks] failed: ${failed[*]}" >&2; exit 1; fi
echo "[gpu-checks] all stages passed" >&2
