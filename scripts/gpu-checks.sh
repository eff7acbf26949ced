#!/usr/bin/env bash
# The CUDA backend's checks on a machine with a GPU, sized for one device
# call: the default run finishes within SCTAPE_GPU_CHECKS_SECONDS (470 s) of
# wall time on a fresh H100/H200 machine that has only the carried .deps/.
# Every stage writes its log and results under $OUT (the device tool's return
# folder; else ./gpu-checks), runs under a time limit, runs even when an
# earlier stage failed, and a one-screen summary ends the run (also in
# $OUT/summary.txt). Exit 0 when every stage passed, 1 otherwise, 2 on a bad
# argument.
#
#   bash scripts/gpu-deps.sh                 # here, with network: .debs into .deps/ (carry ".deps")
#   bash scripts/gpu-checks.sh               # there: build tests kick_time sanitize sweep mpi_cuda
#   bash scripts/gpu-checks.sh kick_time     # selected stages only (build/cuda already built)
#
# Stages (the default runs the first six, in this order):
#   build       unpack .deps when present; configure the cuda preset for this
#               GPU's architecture only (nvidia-smi compute_cap, else native)
#               and build sctape_gpu_tests, sctape-bench and sctape
#   tests       the [gpu] tests (a missing GPU is a failure here, not a skip)
#   kick_time   one kick at N_part = 1e6 on 64^3 and 128^3, float32 and
#               float64: per substep, whole kick (no timing events), replayed
#               as a CUDA graph, and its adjoint: results/kick_time_gpu.json
#   sanitize    compute-sanitizer memcheck (leak check) on one small fused
#               gradient run on a 12x16x20 grid; where the tool is missing or
#               not allowed on the device, one line says so (not a failure)
#   sweep       the quick kick_memory sweep on the GPU (SCTAPE_BENCH_QUICK=1)
#               and its fit: results/sweep_gpu.json, results/coeffs_gpu.json
#   mpi_cuda    the cuda backend over MPI ranks (docs/mpi.md): build the
#               mpi-cuda preset's sctape (carried Open MPI, else the machine's),
#               run fused, checkpoint and reversible on 1 and 2 ranks
#               (oversubscribed, one GPU) and compare objective and gradients
#               within 1e-9 (scripts/compare-rank-results.py): $OUT/mpi_cuda/
#   sanitize_all  (not default) memcheck, racecheck, initcheck and synccheck
#               on the [gpu] tests but [oom], each a quarter of the stage's limit
#   nsys        (not default) an Nsight Systems trace of the small gradient run
#
# Environment: OUT (results folder), SCTAPE_GPU_CHECKS_SECONDS (the whole
# run's budget, default 470), SCTAPE_GPU_BUILD_DIR (default build/cuda),
# SCTAPE_GPU_MPI_BUILD_DIR (default build/mpi-cuda), SCTAPE_DEPS_PREFIX (where
# .deps is unpacked, default /tmp/sctape-deps), SCTAPE_MPIRUN and SCTAPE_MPICXX
# (mpi_cuda: the machine's MPI instead of the carried Open MPI).
# Plots need matplotlib, which the GPU machine may lack: when it is there the
# sweep stage draws them under $OUT/results/plots_gpu, else draw them back here
# with `python3 fit/plot.py results/sweep_gpu.json results/coeffs_gpu.json -o
# results/plots_gpu` (never a failure).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/gpu-checks}"
build="${SCTAPE_GPU_BUILD_DIR:-build/cuda}"
mpi_build="${SCTAPE_GPU_MPI_BUILD_DIR:-build/mpi-cuda}"
deps_prefix="${SCTAPE_DEPS_PREFIX:-/tmp/sctape-deps}"
budget="${SCTAPE_GPU_CHECKS_SECONDS:-470}"
export PATH="$PATH:/usr/local/cuda/bin"
default_stages=(build tests kick_time sanitize sweep mpi_cuda)

usage() { sed -n '2,45p' "$0" | sed 's/^# \{0,1\}//'; }

# Per-stage limits in seconds, sized from the CPU machine's measurements
# (docs/gpu.md, "Running the GPU checks"); the run's budget caps them all.
declare -A stage_cap=([build]=240 [tests]=180 [kick_time]=90 [sanitize]=90 [sweep]=120 [mpi_cuda]=150
                      [sanitize_all]=600 [nsys]=300)
declare -A status detail seconds_taken

tests_bin() { echo "$build/tests/sctape_gpu_tests"; }
bench_bin() { echo "$build/bench/sctape-bench"; }
cli_bin() { echo "$build/cli/sctape"; }

# run_limited SECONDS LOG COMMAND...: the command's output into LOG (and the
# terminal), stopped after SECONDS; returns its exit status (124: timed out).
run_limited() {
  local limit=$1 log=$2
  shift 2
  [ "$limit" -ge 1 ] || return 124  # (timeout 0 would mean no limit)
  timeout --kill-after=5 "$limit" "$@" 2>&1 | tee -a "$log"
  return "${PIPESTATUS[0]}"
}

gpu_arch() {
  local cap
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .\r')
  case "$cap" in
    [0-9][0-9]|[0-9][0-9][0-9]) echo "$cap" ;;
    *) echo native ;;
  esac
}

# Unpacks the carried .deps once per run and exports its paths (gpu-deps.sh).
deps_unpacked=0
use_deps() {  # use_deps LOG
  [ "$deps_unpacked" = 1 ] && return 0
  if [ -d .deps ] && ls .deps/*.deb > /dev/null 2>&1; then
    eval "$(bash scripts/gpu-deps.sh --unpack "$deps_prefix" 2>> "$1")" || return 1
  fi
  deps_unpacked=1
}

stage_build() {
  local limit=$1 log=$2 arch tool
  use_deps "$log" || { detail[build]="unpacking .deps failed"; return 1; }
  for tool in cmake ninja pkg-config nvcc; do
    command -v "$tool" > /dev/null ||
      { detail[build]="$tool not found (gpu-deps.sh --tools brings cmake, ninja, pkg-config)"; return 1; }
  done
  arch=$(gpu_arch)
  detail[build]="CUDA architecture $arch"
  echo "architecture: $arch" >> "$log"
  local start=$SECONDS rc
  run_limited "$limit" "$log" cmake --preset cuda -B "$build" -DCMAKE_CUDA_ARCHITECTURES="$arch"
  rc=$?
  [ "$rc" -eq 0 ] || { detail[build]="configuring for $arch failed"; return "$rc"; }
  run_limited $((limit - (SECONDS - start))) "$log" \
    cmake --build "$build" -j "$(nproc)" --target sctape_gpu_tests sctape-bench sctape
  rc=$?
  [ "$rc" -eq 0 ] || { detail[build]="building for $arch failed"; return "$rc"; }
  detail[build]="CUDA architecture $arch, 3 targets built"
}

stage_tests() {
  local limit=$1 log=$2 rc
  run_limited "$limit" "$log" "$(tests_bin)" --gpu-or-skip "[gpu]" --durations yes
  rc=$?
  # Catch2's last line: "All tests passed (N assertions in M test cases)" or the failures
  detail[tests]=$(grep -E "All tests passed|test cases:|no usable GPU" "$log" | tail -n 1)
  [ "$rc" -eq 77 ] && { detail[tests]="no usable GPU: the [gpu] tests did not run"; return 1; }
  return "$rc"
}

# One small gradient run (2000 particles, 2 kicks, a 12x16x20 grid, fused).
write_small_config() {
  cat > "$1" <<'JSON'
{
  "kinetic_energy_eV": 250000000.0, "bunch_charge_C": 1e-09, "n_particles": 2000, "seed": 1,
  "distribution": {"type": "gaussian", "sigma_x_m": 0.001, "sigma_y_m": 0.001, "sigma_tau_m": 2e-06,
                   "sigma_px": 1e-05, "sigma_py": 1e-05, "sigma_delta": 1e-04},
  "lattice": [{"type": "drift", "length_m": 1.0, "slices": 2}],
  "space_charge": {"enabled": true, "grid": [12, 16, 20]},
  "dtype": "float64", "backend": "cuda", "strategy": "fused", "objective": "sigma_x",
  "gradients": ["bunch_charge_C", "kinetic_energy_eV", "lattice.0.length_m"]
}
JSON
}

stage_sanitize() {
  local limit=$1 log=$2 rc first
  if ! command -v compute-sanitizer > /dev/null; then
    detail[sanitize]="compute-sanitizer is not installed on this machine: memcheck not run"
    return 77
  fi
  write_small_config "$out/sanitize_config.json"
  run_limited "$limit" "$log" compute-sanitizer --tool memcheck --leak-check full --error-exitcode 3 \
    "$(cli_bin)" track "$out/sanitize_config.json" --quiet --out "$out/sanitize_result.json"
  rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then return 124; fi
  if grep -q "ERROR SUMMARY: 0 errors" "$log" && [ "$rc" -eq 0 ]; then
    detail[sanitize]="memcheck: 0 errors, no leaks (small fused gradient, 12x16x20)"
    return 0
  fi
  if [ "$rc" -eq 3 ] || grep -q "ERROR SUMMARY: [1-9]" "$log"; then
    detail[sanitize]="memcheck: $(grep -m 1 "ERROR SUMMARY" "$log")"
    return 1
  fi
  if ! grep -q "ERROR SUMMARY" "$log"; then  # the tool never attached: refused here
    first=$(grep -m 1 -iE "error|not supported|permission" "$log" | cut -c 1-100)
    detail[sanitize]="compute-sanitizer not allowed on this device (exit $rc: ${first:-no message}): memcheck not run"
    return 77
  fi
  detail[sanitize]="the gradient run failed under memcheck (exit $rc)"
  return 1
}

stage_sweep() {
  local limit=$1 log=$2 start=$SECONDS points
  mkdir -p "$out/results"
  SCTAPE_BENCH_QUICK=1 run_limited "$limit" "$log" "$(bench_bin)" --backend cuda --benchmark_filter=kick_memory \
    --benchmark_counters_tabular=false --benchmark_out="$out/results/sweep_gpu.json" \
    --benchmark_out_format=json || return $?
  run_limited $((limit - (SECONDS - start))) "$log" \
    "$(cli_bin)" fit "$out/results/sweep_gpu.json" -o "$out/results/coeffs_gpu.json" || return $?
  points=$(grep -c '"run_name"' "$out/results/sweep_gpu.json" 2>/dev/null)
  detail[sweep]="${points:-?} points fitted: results/sweep_gpu.json, results/coeffs_gpu.json"
  if python3 -c 'import matplotlib' 2>/dev/null; then
    python3 fit/plot.py "$out/results/sweep_gpu.json" "$out/results/coeffs_gpu.json" \
      -o "$out/results/plots_gpu" >> "$log" 2>&1 && detail[sweep]+=", plots_gpu/"
  else
    detail[sweep]+=" (no matplotlib here: plots drawn back on the CPU machine)"
  fi
}

# MPI for the mpi_cuda stage: SCTAPE_MPIRUN (and SCTAPE_MPICXX) when set (a
# CUDA-aware MPI of the machine), else the carried Debian Open MPI (relocated
# into the unpacked prefix by OPAL_PREFIX and PMIX_INSTALL_PREFIX), else the
# machine's mpirun. Sets mpirun_bin and mpicxx_bin (empty: FindMPI searches).
find_mpi() {
  mpirun_bin="" mpicxx_bin=""
  if [ -n "${SCTAPE_MPIRUN:-}" ]; then
    mpirun_bin=$SCTAPE_MPIRUN
    mpicxx_bin=${SCTAPE_MPICXX:-}
  elif [ -x "$deps_prefix/usr/bin/orterun" ]; then
    export OPAL_PREFIX="$deps_prefix/usr"
    export PMIX_INSTALL_PREFIX="$deps_prefix/usr/lib/x86_64-linux-gnu/pmix2"
    mpirun_bin="$deps_prefix/usr/bin/orterun"
    mpicxx_bin="$deps_prefix/usr/bin/mpicxx.openmpi"
  elif command -v mpirun > /dev/null; then
    mpirun_bin=$(command -v mpirun)
  fi
  [ -n "$mpirun_bin" ]
}

# A small config per strategy for the runs over ranks (2000 particles, 2
# kicks, 12x16x20, float64, backend cuda): the gradients of charge, energy,
# beam size and element length.
write_rank_config() {  # write_rank_config FILE STRATEGY
  write_small_config "$1"
  sed -i "s/\"strategy\": \"fused\"/\"strategy\": \"$2\"/; s/\"lattice.0.length_m\"]/\"lattice.0.length_m\", \"distribution.sigma_x_m\"]/" "$1"
}

stage_mpi_cuda() {
  local limit=$1 log=$2 start=$SECONDS arch rc strategy ranks dir="$out/mpi_cuda" compared=0 failed=0
  use_deps "$log" || { detail[mpi_cuda]="unpacking .deps failed"; return 1; }
  find_mpi || { detail[mpi_cuda]="no MPI: neither a carried Open MPI (gpu-deps.sh) nor mpirun on this machine"; return 1; }
  echo "mpirun: $mpirun_bin" >> "$log"
  arch=$(gpu_arch)
  run_limited "$limit" "$log" cmake --preset mpi-cuda -B "$mpi_build" -DCMAKE_CUDA_ARCHITECTURES="$arch" \
    ${mpicxx_bin:+-DMPI_CXX_COMPILER="$mpicxx_bin"}
  rc=$?
  [ "$rc" -eq 0 ] || { detail[mpi_cuda]="configuring the mpi-cuda preset failed"; return "$rc"; }
  run_limited $((limit - (SECONDS - start))) "$log" cmake --build "$mpi_build" -j "$(nproc)" --target sctape
  rc=$?
  [ "$rc" -eq 0 ] || { detail[mpi_cuda]="building the mpi-cuda preset's sctape failed"; return "$rc"; }
  mkdir -p "$dir"
  for strategy in fused checkpoint reversible; do
    write_rank_config "$dir/$strategy.json" "$strategy"
    for ranks in 1 2; do
      OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 run_limited $((limit - (SECONDS - start))) "$log" \
        "$mpirun_bin" --oversubscribe -n "$ranks" "$mpi_build/cli/sctape" track "$dir/$strategy.json" --quiet \
        --out "$dir/${strategy}_$ranks.json"
      rc=$?
      [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && return 124
      [ "$rc" -eq 0 ] || { failed=1; echo "$strategy on $ranks rank(s): exit $rc" >> "$log"; }
    done
    # 1e-9 relative: test_gpu.cpp's GPU-vs-CPU gradient tolerance, for the same
    # cause (the device's atomic and block summation order, here also split over ranks)
    if [ -s "$dir/${strategy}_1.json" ] && [ -s "$dir/${strategy}_2.json" ]; then
      python3 scripts/compare-rank-results.py --tolerance 1e-9 "$dir/${strategy}_1.json" "$dir/${strategy}_2.json" \
        >> "$log" 2>&1 && compared=$((compared + 1)) || failed=1
    fi
  done
  detail[mpi_cuda]="$compared of 3 strategies agree on 1 and 2 ranks within 1e-9 (mpi_cuda/)"
  return "$failed"
}

stage_kick_time() {
  local limit=$1 log=$2
  mkdir -p "$out/results"
  run_limited "$limit" "$log" "$(bench_bin)" --backend cuda --benchmark_filter='kick_time_gpu/.*/N_part:1000000/' \
    --benchmark_out="$out/results/kick_time_gpu.json" --benchmark_out_format=json || return $?
  detail[kick_time]="results/kick_time_gpu.json"
}

stage_sanitize_all() {
  local limit=$1 log=$2 failed=0 tool each=$(( $1 / 4 ))
  for tool in memcheck racecheck initcheck synccheck; do
    local extra=()
    [ "$tool" = memcheck ] && extra=(--leak-check full)
    echo "== compute-sanitizer --tool $tool" >> "$log"
    run_limited "$each" "$out/sanitize_$tool.log" compute-sanitizer --tool "$tool" "${extra[@]}" \
      --error-exitcode 3 "$(tests_bin)" "[gpu]~[oom]" || failed=1
    tail -n 3 "$out/sanitize_$tool.log" >> "$log"
  done
  return "$failed"
}

stage_nsys() {
  local limit=$1 log=$2
  command -v nsys > /dev/null || { detail[nsys]="nsys is not installed on this machine"; return 77; }
  write_small_config "$out/nsys_config.json"
  run_limited "$limit" "$log" nsys profile --trace=cuda,nvtx --force-overwrite true -o "$out/nsys_track" \
    "$(cli_bin)" track "$out/nsys_config.json" --quiet --out "$out/nsys_result.json" || return $?
  nsys stats --report nvtx_sum "$out/nsys_track.nsys-rep" >> "$log" 2>&1
}

# The kick_time table: ms per kick (whole kick, graph replay, adjoint) and the
# issue's goals (float32, 1e6 particles: <= 0.35 ms at 64^3, <= 1.2 ms at 128^3;
# forward + backward <= 3x forward).
kick_table() {
  local json="$out/results/kick_time_gpu.json"
  [ -s "$json" ] || return 0
  command -v python3 > /dev/null || { echo "  (no python3: see $json)"; return 0; }
  python3 - "$json" <<'PY'
import json, sys
goal = {("float32", "64"): 0.35, ("float32", "128"): 1.2}
print(f"  {'kick':34s} {'kick ms':>8s} {'graph ms':>8s} {'adjoint ms':>10s} {'waits':>5s}  goal")
for r in json.load(open(sys.argv[1]))["benchmarks"]:
    name = r["name"].replace("kick_time_gpu/", "").split("/real_time")[0]
    dtype, grid = name.split("/")[0], name.split("grid:")[-1]
    kick, graph, adj = r.get("kick_ms", float("nan")), r.get("graph_kick_ms", float("nan")), r.get("adjoint_ms", float("nan"))
    verdict, fwd = [], graph if graph == graph else kick  # the graph's kick, else the streamed one
    if (dtype, grid) in goal:
        verdict.append(f"fwd {'ok' if fwd <= goal[dtype, grid] else 'MISSED'} (<= {goal[dtype, grid]})")
    if adj == adj and kick == kick:
        verdict.append(f"fwd+bwd {'ok' if kick + adj <= 3 * kick else 'MISSED'} (<= 3x)")
    print(f"  {name:34s} {kick:8.3f} {graph:8.3f} {adj:10.3f} {r.get('host_waits_per_kick', float('nan')):5.0f}  {', '.join(verdict)}")
PY
}

summary() {
  local stage
  echo "==================== gpu-checks summary ($(date -u +%H:%M:%S) UTC, $((SECONDS - run_start)) s of $budget s)"
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,compute_cap,memory.total --format=csv,noheader 2>/dev/null |
    head -n 1 | sed 's/^/device: /'
  for stage in "${stages[@]}"; do
    printf '%-12s %-10s %5s s  %s\n' "$stage" "${status[$stage]}" "${seconds_taken[$stage]:--}" "${detail[$stage]:-}"
  done
  kick_table
  echo "logs and results: $out"
  if [ "$failures" -gt 0 ]; then echo "RESULT: $failures stage(s) did not pass"; else echo "RESULT: all stages passed"; fi
}

for arg in "$@"; do
  if [ "$arg" = --help ] || [ "$arg" = -h ]; then usage; exit 0; fi
done
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=("${default_stages[@]}")
for stage in "${stages[@]}"; do
  [ -n "${stage_cap[$stage]:-}" ] || { echo "gpu-checks: unknown stage '$stage' (see --help)" >&2; exit 2; }
done
case "$budget" in ''|*[!0-9]*) echo "gpu-checks: SCTAPE_GPU_CHECKS_SECONDS must be a whole number of seconds" >&2; exit 2 ;; esac
mkdir -p "$out"
run_start=$SECONDS
failures=0
for stage in "${stages[@]}"; do
  left=$((budget - (SECONDS - run_start)))
  limit=$(( left < stage_cap[$stage] ? left : stage_cap[$stage] ))
  if [ "$limit" -lt 10 ]; then
    status[$stage]="not run"; detail[$stage]="the run's budget of $budget s was spent"; failures=$((failures + 1))
    continue
  fi
  log="$out/$stage.log"
  : > "$log"
  echo "[gpu-checks] $stage (limit $limit s, log $log)" >&2
  start=$SECONDS
  "stage_$stage" "$limit" "$log"
  rc=$?
  seconds_taken[$stage]=$((SECONDS - start))
  case "$rc" in
    0) status[$stage]=ok ;;
    77) status[$stage]=skipped ;;  # the stage's tool is missing or refused: detail says which
    124|137) status[$stage]="TIMED OUT"; detail[$stage]="stopped after $limit s (incomplete)"; failures=$((failures + 1)) ;;
    *) status[$stage]=FAILED; detail[$stage]="${detail[$stage]:-exit $rc} (see $stage.log)"; failures=$((failures + 1)) ;;
  esac
  echo "[gpu-checks] $stage: ${status[$stage]} (${seconds_taken[$stage]} s)" >&2
done
summary | tee "$out/summary.txt"
[ "$failures" -eq 0 ]
