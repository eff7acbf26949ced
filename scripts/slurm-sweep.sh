#!/usr/bin/env bash
# Runs the kick_memory sweep as a Slurm job array, then merges and fits it.
# `scripts/slurm-sweep.sh --help` lists the options; docs/cluster.md explains.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

usage() {
  cat <<'EOF'
usage: scripts/slurm-sweep.sh [options]

Submits the kick_memory sweep as a Slurm job array of N shards: task i runs
  sctape-bench --shard i/N --benchmark_out=OUT/shard-i.json
on one CPU; a job that starts only when every task succeeded (afterok) then runs
  sctape merge OUT/shard-*.json -o OUT/sweep.json
  sctape fit OUT/sweep.json -o OUT/coeffs.json
Prints the job ids. Build first (bash scripts/build.sh); the build and OUT must
be on a file system the compute nodes share.

  --shards N         number of array tasks (default 4; at most the sweep's runs)
  --build DIR        build folder with bench/sctape-bench and cli/sctape
                     (default build/cuda if it has them, else build/cpu)
  --out DIR          where shards, logs, sweep.json and coeffs.json go
                     (default slurm-sweeps/<date>-<time> in the repository, which git
                     ignores; created, must be new or empty)
  --partition P      Slurm partition (default: the cluster's default partition)
  --time T           time limit per shard task, as sbatch --time (default 02:00:00)
  --merge-time T     time limit of the merge-and-fit job (default 00:15:00)
  --mem M            memory per shard task, as sbatch --mem (e.g. 32G; default: the partition's)
  --backend B        cpu, cuda or auto (default cpu); for cuda also give --sbatch-arg=--gres=gpu:1
  --filter REGEX     --benchmark_filter choosing the runs (default kick_memory: all of them)
  --quick            the CI subset (SCTAPE_BENCH_QUICK=1)
  --long             the long lattices (SCTAPE_BENCH_LONG=1)
  --sbatch-arg ARG   passed to every sbatch call; repeat it (--account=..., --qos=..., --gres=...)
  --wait             wait for the merge job, print shards done as they finish, exit with its status
  -h, --help         this text

Exit codes: 0 submitted (with --wait: merged and fitted); 1 a job failed (--wait),
or the merge job was refused after the array (the array is then cancelled); 2 bad
options or a sweep that cannot be split into N shards (nothing submitted).
EOF
}

die() { echo "slurm-sweep.sh: error: $*" >&2; exit 2; }

shards=4 build="" out="" partition="" time_limit=02:00:00 merge_time=00:15:00 mem="" backend=cpu
filter=kick_memory quick=0 long=0 wait_for_it=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --quick) quick=1 ;;
    --long) long=1 ;;
    --wait) wait_for_it=1 ;;
    --shards|--build|--out|--partition|--time|--merge-time|--mem|--backend|--filter|--sbatch-arg)
      [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"
      case "$1" in
        --shards) shards=$2 ;; --build) build=$2 ;; --out) out=$2 ;; --partition) partition=$2 ;;
        --time) time_limit=$2 ;; --merge-time) merge_time=$2 ;; --mem) mem=$2 ;; --backend) backend=$2 ;;
        --filter) filter=$2 ;; --sbatch-arg) extra+=("$2") ;;
      esac
      shift ;;
    --*=*) name=${1%%=*}; set -- "$name" "${1#*=}" "${@:2}"; continue ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done

[[ "$shards" =~ ^[1-9][0-9]{0,5}$ ]] || die "--shards '$shards': expected a whole number from 1"
[ "$quick$long" != 11 ] || die "--quick and --long choose different sweeps: give one"
case "$backend" in cpu|cuda|auto) ;; *) die "--backend '$backend': expected cpu, cuda or auto" ;; esac
if [ -z "$build" ]; then
  build="$repo/build/cpu"
  [ -x "$repo/build/cuda/bench/sctape-bench" ] && build="$repo/build/cuda"
fi
build=$(cd "$build" 2>/dev/null && pwd) || die "--build: no folder '$build'"
bench="$build/bench/sctape-bench" sctape="$build/cli/sctape"
for binary in "$bench" "$sctape"; do
  [ -x "$binary" ] || die "no $binary: build first (bash scripts/build.sh) or give --build DIR"
done
command -v sbatch >/dev/null || die "no sbatch on PATH: run this on a Slurm login node"

[ -n "$out" ] || out="$repo/slurm-sweeps/$(date +%Y%m%d-%H%M%S)"
if [ -e "$out" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then die "--out '$out' is not empty"; fi

env_line=""
[ "$quick" = 1 ] && env_line="export SCTAPE_BENCH_QUICK=1"
[ "$long" = 1 ] && env_line="export SCTAPE_BENCH_LONG=1"
run_env() { env -u SCTAPE_BENCH_QUICK -u SCTAPE_BENCH_LONG ${env_line:+${env_line#export }} "$@"; }

# The sweep must split into N non-empty shards: sctape-bench checks it and
# lists shard 0 without running anything (exit 2 and its message otherwise).
# Only for cpu: a login node may have no GPU, and the GPU sweep has more runs.
if [ "$backend" = cpu ] && ! why=$(run_env "$bench" --backend "$backend" --shard "0/$shards" \
       --benchmark_filter="$filter" --benchmark_list_tests 2>&1 >/dev/null); then
  die "the sweep cannot be split into $shards shards, nothing submitted: $why"
fi
mkdir -p "$out/logs" || die "cannot create --out '$out'"
out=$(cd "$out" && pwd)

# The job scripts, with every value written in: what ran can be read back.
{
  echo '#!/bin/bash'
  echo '# One shard of the sweep: written by scripts/slurm-sweep.sh.'
  echo 'set -euo pipefail'
  echo 'i=${SLURM_ARRAY_TASK_ID:?run this as a Slurm array task}'
  echo 'unset SCTAPE_BENCH_QUICK SCTAPE_BENCH_LONG'
  [ -n "$env_line" ] && echo "$env_line"
  printf 'exec %q --backend %q --shard "$i/%d" --benchmark_filter=%q' "$bench" "$backend" "$shards" "$filter"
  printf ' --benchmark_counters_tabular=false --benchmark_out=%q/shard-"$i".json --benchmark_out_format=json\n' "$out"
} > "$out/shard.sh"
{
  echo '#!/bin/bash'
  echo '# Merge and fit the shards: written by scripts/slurm-sweep.sh.'
  echo 'set -euo pipefail'
  printf 'shards=()\nfor i in $(seq 0 %d); do shards+=(%q/shard-"$i".json); done\n' "$((shards - 1))" "$out"
  printf '%q merge "${shards[@]}" -o %q/sweep.json\n' "$sctape" "$out"
  printf '%q fit %q/sweep.json -o %q/coeffs.json\n' "$sctape" "$out" "$out"
} > "$out/merge.sh"
chmod +x "$out/shard.sh" "$out/merge.sh"

common=(--parsable --chdir="$out")
[ -n "$partition" ] && common+=(--partition="$partition")
common+=("${extra[@]}")
shard_opts=(--job-name=sctape-shard --array="0-$((shards - 1))" --ntasks=1 --cpus-per-task=1
            --time="$time_limit" --output="$out/logs/shard-%a.log")
[ -n "$mem" ] && shard_opts+=(--mem="$mem")
array_id=$(sbatch "${common[@]}" "${shard_opts[@]}" "$out/shard.sh") || die "sbatch refused the array"
array_id=${array_id%%;*}
merge_opts=(--job-name=sctape-merge --dependency="afterok:$array_id" --kill-on-invalid-dep=yes --ntasks=1
            --time="$merge_time" --output="$out/logs/merge.log")
echo "[slurm-sweep] array job $array_id: $shards shards -> $out/shard-<i>.json (logs in $out/logs)"
if [ "$wait_for_it" = 0 ]; then
  merge_id=$(sbatch "${common[@]}" "${merge_opts[@]}" "$out/merge.sh") || {
    scancel "$array_id"
    echo "slurm-sweep.sh: sbatch refused the merge job: array job $array_id cancelled" >&2
    exit 1
  }
  echo "[slurm-sweep] merge job ${merge_id%%;*} after the array: $out/sweep.json, $out/coeffs.json"
  exit 0
fi

# --wait: sbatch blocks until the merge job ends, or is cancelled because a
# shard failed (then Slurm 22.05's sbatch still exits 0: the coefficients'
# presence decides); meanwhile count the shards done.
sbatch "${common[@]}" "${merge_opts[@]}" --wait "$out/merge.sh" > "$out/logs/merge-id" &
waiter=$!
trap 'kill "$waiter" 2>/dev/null || true' EXIT  # a killed script leaves no sbatch behind
start=$SECONDS done_before=-1
while kill -0 "$waiter" 2>/dev/null; do
  done_now=$(find "$out" -maxdepth 1 -name 'shard-*.json' | wc -l)
  if [ "$done_now" != "$done_before" ]; then
    elapsed=$((SECONDS - start)) left="?"
    [ "$done_now" -gt 0 ] && left=$((elapsed * (shards - done_now) / done_now))
    echo "[slurm-sweep] $done_now/$shards shards done, ${elapsed} s elapsed, about ${left} s left"
    done_before=$done_now
  fi
  sleep 2
done
status=0
wait "$waiter" || status=$?
if [ "$status" != 0 ] || [ ! -s "$out/coeffs.json" ]; then
  failed=""
  for i in $(seq 0 $((shards - 1))); do [ -s "$out/shard-$i.json" ] || failed+=" $i"; done
  merge_id=$(tr -dc '0-9' < "$out/logs/merge-id")
  if [ -z "$merge_id" ]; then  # the merge job was never queued: nothing would consume the array
    scancel "$array_id"
    echo "slurm-sweep.sh: sbatch refused the merge job: array job $array_id cancelled" >&2
    exit 1
  fi
  state=$(scontrol show job "$merge_id" 2>/dev/null | grep -o 'JobState=[A-Z_]* Reason=[^ ]*' || echo "no record")
  echo "slurm-sweep.sh: the sweep failed: shards without output:${failed:- none}; merge job $merge_id: $state;" \
       "see $out/logs/" >&2
  exit 1
fi
echo "[slurm-sweep] merged and fitted: $out/sweep.json, $out/coeffs.json (table in $out/logs/merge.log)"
