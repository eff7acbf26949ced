#!/usr/bin/env bash
# gpu_checks_stand_in.sh SCRIPT — tests the logic of scripts/gpu-checks.sh on a
# machine without a GPU: stand-ins for cmake, nvidia-smi, compute-sanitizer,
# nvcc and the three GPU binaries (sctape_gpu_tests, sctape-bench, sctape)
# record what they were asked to do in a trace and answer like the real ones.
# Checked: the stages' order and arguments (this GPU's architecture only, the
# three targets, the quick sweep, the 1e6-particle kick filter), every result
# under $OUT, the summary, the exit codes (0 all passed, 1 a stage failed, 2
# bad argument), a refused or missing compute-sanitizer as one line and not a
# failure, a missing GPU as a failure, and a hanging stage stopped within the
# run's time budget with the later stages reported as not run.
set -uo pipefail
script=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
tmp=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# A repository root holding only the scripts (no .deps/ to unpack).
mkdir -p "$tmp/repo/scripts" "$tmp/fakebin" "$tmp/build/tests" "$tmp/build/bench" "$tmp/build/cli"
cp "$script" "$tmp/repo/scripts/gpu-checks.sh"
cp "$(dirname "$script")/compare-rank-results.py" "$tmp/repo/scripts/"

stub() {  # stub PATH BODY
  printf '#!/usr/bin/env bash\n%s\n' "$2" > "$1"
  chmod +x "$1"
}
stub "$tmp/fakebin/cmake" 'echo "cmake $*" >> "$TRACE"'
stub "$tmp/fakebin/ninja" 'exit 0'
stub "$tmp/fakebin/pkg-config" 'exit 0'
stub "$tmp/fakebin/nvcc" 'exit 0'
stub "$tmp/fakebin/mpirun" '
echo "mpirun $*" >> "$TRACE"
while [ "${1#-}" != "$1" ]; do case "$1" in -n) shift 2 ;; *) shift ;; esac; done
exec "$@"'
stub "$tmp/fakebin/nvidia-smi" 'case "$*" in *compute_cap*name*|*name*) echo "NVIDIA H100 80GB HBM3, 9.0, 81559 MiB" ;; *compute_cap*) echo "9.0" ;; esac'
stub "$tmp/fakebin/compute-sanitizer" '
echo "compute-sanitizer $*" >> "$TRACE"
case "${STUB_SANITIZER:-ok}" in
  refuse) echo "========= Error: Target application terminated before first instrumented API call"; exit 1 ;;
  errors) echo "========= Invalid __global__ read of size 8"; echo "========= ERROR SUMMARY: 2 errors"; exit 3 ;;
esac
while [ "${1#--}" != "$1" ]; do case "$1" in --tool|--leak-check|--error-exitcode) shift 2 ;; *) shift ;; esac; done
"$@"; rc=$?; echo "========= ERROR SUMMARY: 0 errors"; exit $rc'
stub "$tmp/build/tests/sctape_gpu_tests" '
echo "sctape_gpu_tests $*" >> "$TRACE"
[ "${STUB_TESTS_RC:-0}" = 77 ] && { echo "no usable GPU (stand-in): the [gpu] tests were NOT run (exit 77 = skipped)"; exit 77; }
echo "All tests passed (1234 assertions in 21 test cases)"'
stub "$tmp/build/bench/sctape-bench" '
echo "sctape-bench $* quick=${SCTAPE_BENCH_QUICK:-0}" >> "$TRACE"
echo "Running sctape-bench (stand-in)"
sleep "${STUB_BENCH_SLEEP:-0}"
for a in "$@"; do case "$a" in --benchmark_out=*) file=${a#--benchmark_out=} ;; --benchmark_filter=*) filter=${a#--benchmark_filter=} ;; esac; done
case "$filter" in
  kick_memory) echo "{\"benchmarks\": [{\"run_name\": \"kick_memory/fused\"}, {\"run_name\": \"kick_memory/autograd\"}]}" > "$file" ;;
  kick_time*) {
    echo "{\"benchmarks\": ["
    sep=""
    for d in float32 float64; do for g in 64 128; do
      echo "$sep{\"name\": \"kick_time_gpu/$d/N_part:1000000/grid:$g/real_time\", \"kick_ms\": 0.30, \"graph_kick_ms\": 0.25, \"adjoint_ms\": 0.5, \"host_waits_per_kick\": 0}"
      sep=","
    done; done
    echo "]}"; } > "$file" ;;
esac'
stub "$tmp/build/cli/sctape" '
echo "sctape $*" >> "$TRACE"
case "$1" in
  fit) echo "{}" > "$4" ;;
  track) [ -f "$2" ] || exit 2
         echo "{\"reverse_mode\": {\"objective\": {\"value\": 1.5}, \"gradients\": {\"bunch_charge_C\": ${STUB_CHARGE_GRADIENT:-2.5}}}}" > "$5" ;;
esac'

# run NAME [ENV=VALUE ...] -- [STAGES...]: runs the script; sets rc, trace, out.
run() {
  local name=$1
  shift
  out="$tmp/out-$name"
  trace="$tmp/trace-$name"
  : > "$trace"
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  env "PATH=$tmp/fakebin:$PATH" TRACE="$trace" OUT="$out" SCTAPE_GPU_BUILD_DIR="$tmp/build" \
    SCTAPE_GPU_MPI_BUILD_DIR="$tmp/build" SCTAPE_DEPS_PREFIX="$tmp/no-deps" "${envs[@]}" \
    bash "$tmp/repo/scripts/gpu-checks.sh" "$@" > "$tmp/stdout-$name" 2>&1
  rc=$?
}
expect_line() {  # expect_line FILE REGEX WHAT
  grep -qE "$2" "$1" || { fail "$3: no line matching '$2' in $(basename "$1")"; sed 's/^/    /' "$1" | tail -n 20; }
}

# 1. Everything passes: order, arguments, results, summary, exit 0.
run ok --
[ "$rc" -eq 0 ] || fail "all stages pass: exit $rc, expected 0"
order=$(sed -E 's/^([^ ]+).*/\1/' "$trace" | uniq | tr '\n' ' ')
runs="mpirun sctape mpirun sctape mpirun sctape mpirun sctape mpirun sctape mpirun sctape "
[ "$order" = "cmake sctape_gpu_tests sctape-bench compute-sanitizer sctape sctape-bench sctape cmake $runs" ] ||
  fail "stage order: got '$order'"
expect_line "$trace" '^cmake --preset mpi-cuda -B .* -DCMAKE_CUDA_ARCHITECTURES=90$' "the mpi-cuda preset for sm_90"
expect_line "$trace" '^cmake --build .* --target sctape$' "only sctape in the mpi-cuda build"
expect_line "$trace" '^mpirun --oversubscribe -n 2 .* track .*mpi_cuda/reversible.json --quiet --out .*reversible_2.json$' \
  "reversible on 2 ranks"
expect_line "$trace" '^cmake --preset cuda -B .* -DCMAKE_CUDA_ARCHITECTURES=90$' "configure for sm_90 only"
expect_line "$trace" '^cmake --build .* --target sctape_gpu_tests sctape-bench sctape$' "only the needed targets"
expect_line "$trace" '^sctape_gpu_tests --gpu-or-skip \[gpu\]' "the [gpu] tests"
expect_line "$trace" '^compute-sanitizer --tool memcheck --leak-check full .* track .*sanitize_config.json' "memcheck on a gradient run"
expect_line "$trace" 'benchmark_filter=kick_memory .* quick=1$' "the quick sweep"
expect_line "$trace" "benchmark_filter=kick_time_gpu/\.\*/N_part:1000000/" "the 1e6-particle kicks"
for f in results/sweep_gpu.json results/coeffs_gpu.json results/kick_time_gpu.json summary.txt build.log tests.log \
         sanitize.log sweep.log kick_time.log mpi_cuda.log mpi_cuda/fused_2.json mpi_cuda/checkpoint.json; do
  [ -s "$out/$f" ] || fail "missing or empty \$OUT/$f"
done
expect_line "$out/summary.txt" '^RESULT: all stages passed$' "summary result"
expect_line "$out/summary.txt" '^device: NVIDIA H100' "summary names the device"
expect_line "$out/summary.txt" '^tests +ok .*All tests passed' "summary of the tests"
expect_line "$out/summary.txt" '^sanitize +ok .*0 errors' "summary of memcheck"
expect_line "$out/summary.txt" '^mpi_cuda +ok .*3 of 3 strategies agree' "summary of the runs over ranks"
expect_line "$out/summary.txt" 'float32/N_part:1000000/grid:64 +0\.300 +0\.250 +0\.500 +0  fwd ok \(<= 0\.35\), fwd\+bwd ok' \
  "the kick table with the goals"
[ "$(wc -l < "$out/summary.txt")" -le 24 ] || fail "the summary is longer than one screen"

# 2. compute-sanitizer refused, then missing: one line, not a failure; no nvidia-smi: native.
run refuse STUB_SANITIZER=refuse -- sanitize
[ "$rc" -eq 0 ] || fail "refused sanitizer: exit $rc, expected 0"
expect_line "$out/summary.txt" '^sanitize +skipped .*not allowed on this device' "refused sanitizer reported"
rm "$tmp/fakebin/compute-sanitizer" "$tmp/fakebin/nvidia-smi"
run missing -- build sanitize
[ "$rc" -eq 0 ] || fail "missing sanitizer: exit $rc, expected 0"
expect_line "$out/summary.txt" '^sanitize +skipped .*not installed' "missing sanitizer reported"
expect_line "$trace" 'DCMAKE_CUDA_ARCHITECTURES=native$' "native architecture without nvidia-smi"

# 3. memcheck errors and a missing GPU fail the run; later stages still run.
stub "$tmp/fakebin/compute-sanitizer" 'echo "compute-sanitizer $*" >> "$TRACE"; echo "========= ERROR SUMMARY: 2 errors"; exit 3'
run failing STUB_TESTS_RC=77 -- tests sanitize kick_time
[ "$rc" -eq 1 ] || fail "failing stages: exit $rc, expected 1"
expect_line "$out/summary.txt" '^tests +FAILED .*no usable GPU' "a missing GPU is a failure"
expect_line "$out/summary.txt" '^sanitize +FAILED .*ERROR SUMMARY: 2 errors' "memcheck errors are a failure"
expect_line "$out/summary.txt" '^kick_time +ok' "later stages still run"
expect_line "$out/summary.txt" '^RESULT: 2 stage\(s\) did not pass' "summary counts the failures"

# 4. A hanging stage is stopped within the budget; what is left is reported as not run.
start=$SECONDS
run hang STUB_BENCH_SLEEP=600 SCTAPE_GPU_CHECKS_SECONDS=20 -- tests sweep kick_time
took=$((SECONDS - start))
[ "$rc" -eq 1 ] || fail "hanging stage: exit $rc, expected 1"
[ "$took" -le 35 ] || fail "hanging stage: the run took $took s with a 20 s budget"
expect_line "$out/summary.txt" '^sweep +TIMED OUT .*stopped after' "the hanging stage timed out"
expect_line "$out/summary.txt" '^kick_time +not run .*budget' "the stage after it did not start"

# 5. Results that differ over ranks fail the mpi_cuda stage; no MPI at all too.
cat > "$tmp/fakebin/mpirun" <<'STUB'
#!/usr/bin/env bash
echo "mpirun $*" >> "$TRACE"
[ "$3" = 2 ] && export STUB_CHARGE_GRADIENT=2.6
while [ "${1#-}" != "$1" ]; do case "$1" in -n) shift 2 ;; *) shift ;; esac; done
exec "$@"
STUB
run differ -- mpi_cuda
[ "$rc" -eq 1 ] || fail "ranks disagree: exit $rc, expected 1"
expect_line "$out/summary.txt" '^mpi_cuda +FAILED' "disagreeing ranks are a failure"
expect_line "$out/mpi_cuda.log" '^FAIL .*d/d bunch_charge_C 2\.6 vs 2\.5' "the comparer names the gradient"
rm "$tmp/fakebin/mpirun"
if ! command -v mpirun > /dev/null; then
  run nompi -- mpi_cuda
  [ "$rc" -eq 1 ] || fail "no MPI: exit $rc, expected 1"
  expect_line "$out/summary.txt" '^mpi_cuda +FAILED .*no MPI' "a missing MPI is named"
fi

# 6. Bad arguments: exit 2, nothing run.
run bad -- nonsense
[ "$rc" -eq 2 ] || fail "unknown stage: exit $rc, expected 2"
[ ! -s "$trace" ] || fail "unknown stage: something ran"
run badbudget SCTAPE_GPU_CHECKS_SECONDS=soon -- tests
[ "$rc" -eq 2 ] || fail "bad budget: exit $rc, expected 2"

if [ "$failures" -gt 0 ]; then echo "$failures check(s) failed"; exit 1; fi
echo "gpu-checks.sh stand-in: all checks passed"
