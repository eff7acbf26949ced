#!/usr/bin/env bash
# scripts/slurm-sweep.sh against a real single-node Slurm that this test starts
# and stops itself (Debian's slurm-wlm and munge; scripts/install-deps.sh slurm):
#   munged, slurmctld and slurmd as root, on free ports, with a slurm.conf for
#   this machine's CPUs and memory, every file under one temporary folder; no
#   cgroups (proctrack/linuxproc, task/none), so it runs in a container too;
#   the quick sweep (SCTAPE_BENCH_QUICK=1) as a 3-task array, merged and fitted
#   by the dependent job; its coefficients must equal the unsharded sweep's
#   exactly (tape bytes are deterministic and the merged runs keep the
#   unsharded order, so the fit adds the same numbers in the same order).
# Stops every daemon it started, by pid, on every exit path; safe to run twice.
#
#   bash tests/slurm_sweep_test.sh BUILD_DIR
#
# Exit 0 passed, 1 failed, 77 skipped (not root, Slurm not installed, or the
# daemons would not start here): the reason follows "SKIPPED:".
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:?usage: tests/slurm_sweep_test.sh BUILD_DIR}" && pwd)
shards=3

skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAILED: $*"; exit 1; }
say() { echo "[slurm-test] $*"; }

[ "$(id -u)" = 0 ] || skip "the Slurm daemons need root (slurmd runs jobs as their user)"
for tool in munged mungekey slurmctld slurmd sbatch sinfo squeue scancel scontrol; do
  command -v "$tool" >/dev/null || skip "no $tool: install Slurm with 'bash scripts/install-deps.sh slurm'"
done
for binary in bench/sctape-bench cli/sctape; do
  [ -x "$build/$binary" ] || fail "no $build/$binary"
done

tmp=$(mktemp -d /tmp/sctape-slurm.XXXXXX)
chmod 755 "$tmp"  # munged wants its socket's folders searchable by all
pids=()           # the daemons this test started
cleanup() {
  set +e
  if [ -f "$tmp/slurm.conf" ]; then
    export SLURM_CONF="$tmp/slurm.conf"
    for job in $(timeout 10 squeue -h -o %A 2>/dev/null); do timeout 10 scancel "$job"; done
    for _ in $(seq 30); do [ -z "$(timeout 10 squeue -h -o %A 2>/dev/null)" ] && break; sleep 1; done
    timeout 10 scontrol shutdown >/dev/null 2>&1
  fi
  for pid in "${pids[@]}"; do
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -TERM "$pid"
    for _ in $(seq 10); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    wait "$pid" 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Two free TCP ports for slurmctld and slurmd (the machine's own Slurm, if
# any, keeps its ports, socket and configuration).
read -r ctld_port slurmd_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')

mkdir -p "$tmp/munge" "$tmp/state" "$tmp/spool"
mungekey --create --keyfile="$tmp/munge/munge.key" || skip "mungekey could not create a key"
munged --foreground --socket="$tmp/munge/socket" --key-file="$tmp/munge/munge.key" \
  --pid-file="$tmp/munge/munged.pid" --log-file="$tmp/munge/munged.log" --seed-file="$tmp/munge/seed" \
  > "$tmp/munge/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S "$tmp/munge/socket" ] && break; sleep 0.2; done
[ -S "$tmp/munge/socket" ] || skip "munged did not start: $(tail -n 3 "$tmp/munge/munged.log" 2>/dev/null)"

host=$(hostname -s)
node=sctapetest
cpus=$(nproc)
memory_mib=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
cat > "$tmp/slurm.conf" <<EOF
# single-node test cluster of tests/slurm_sweep_test.sh
ClusterName=sctapetest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge/socket
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
NodeName=$node NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mib State=UNKNOWN
PartitionName=sctapetest Nodes=$node Default=YES MaxTime=30 State=UP
EOF
export SLURM_CONF="$tmp/slurm.conf"
slurmctld -D -i -f "$SLURM_CONF" > "$tmp/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" -N "$node" > "$tmp/slurmd.out" 2>&1 &
pids+=($!)
state=""
for _ in $(seq 60); do
  state=$(timeout 5 sinfo -h -n "$node" -o %T 2>/dev/null || true)
  [ "$state" = idle ] && break
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || break 2; done
  sleep 1
done
if [ "$state" != idle ]; then
  why=$(tail -n 2 "$tmp/slurmctld.log" "$tmp/slurmd.log" "$tmp/slurmctld.out" "$tmp/slurmd.out" 2>/dev/null | tr '\n' ' ')
  skip "the test cluster's node did not become idle (state '${state:-none}'): $why"
fi
say "Slurm is up: node $node ($cpus CPUs, $memory_mib MiB), ports $ctld_port/$slurmd_port"

# The unsharded reference, on this machine outside Slurm.
start=$SECONDS
SCTAPE_BENCH_QUICK=1 "$build/bench/sctape-bench" --backend cpu --benchmark_filter=kick_memory \
  --benchmark_out="$tmp/whole.json" --benchmark_out_format=json > "$tmp/whole.log" 2>&1 \
  || fail "the unsharded sweep: $(tail -n 3 "$tmp/whole.log")"
"$build/cli/sctape" fit "$tmp/whole.json" -o "$tmp/whole_coeffs.json" > "$tmp/whole_fit.log" 2>&1 \
  || fail "sctape fit of the unsharded sweep: $(tail -n 3 "$tmp/whole_fit.log")"
say "unsharded quick sweep and fit: $((SECONDS - start)) s"

start=$SECONDS
timeout 600 bash "$repo/scripts/slurm-sweep.sh" --shards "$shards" --quick --build "$build" --out "$tmp/sweep" \
  --partition sctapetest --time 00:10:00 --merge-time 00:05:00 --wait \
  || fail "slurm-sweep.sh: $(cat "$tmp"/sweep/logs/*.log 2>/dev/null | tail -n 20)"
say "sharded sweep through Slurm, merged and fitted: $((SECONDS - start)) s"

python3 - "$tmp/whole.json" "$tmp/sweep/sweep.json" "$tmp/whole_coeffs.json" "$tmp/sweep/coeffs.json" "$shards" <<'EOF' \
  || fail "the merged sweep differs from the unsharded one"
import json, sys
whole, merged, whole_coeffs, merged_coeffs = (json.load(open(p)) for p in sys.argv[1:5])
shards = sys.argv[5]
names = [r["name"] for r in whole["benchmarks"]]
assert [r["name"] for r in merged["benchmarks"]] == names, "the merged runs are not the unsharded runs in order"
assert merged["context"]["merged_shards"] == shards, merged["context"].get("merged_shards")
for a, b in zip(whole["benchmarks"], merged["benchmarks"]):
    for key in ("tape_bytes", "tape_bytes_total", "alloc_delta_bytes", "peak_bytes_total"):
        assert a[key] == b[key], (a["name"], key, a[key], b[key])
for key in ("fits", "kick_fits", "notes"):  # every coefficient, bit for bit
    assert whole_coeffs[key] == merged_coeffs[key], key + " differ"
print(f"[slurm-test] {len(names)} runs in {shards} shards; merged fit equals the unsharded fit exactly: "
      f"{len(whole_coeffs['fits'])} laws, {len(whole_coeffs['kick_fits'])} N_kicks fits")
EOF

# A shard that fails (a wrapper in place of sctape-bench fails shard 1): the
# merge job never runs, --wait exits 1, and no coefficients appear.
mkdir -p "$tmp/failing/bench" "$tmp/failing/cli"
ln -s "$build/cli/sctape" "$tmp/failing/cli/sctape"
cat > "$tmp/failing/bench/sctape-bench" <<EOF
#!/bin/bash
for a in "\$@"; do [ "\$a" = 1/$shards ] && { echo "shard 1/$shards fails on purpose" >&2; exit 3; }; done
exec "$build/bench/sctape-bench" "\$@"
EOF
chmod +x "$tmp/failing/bench/sctape-bench"
status=0
timeout 300 bash "$repo/scripts/slurm-sweep.sh" --shards "$shards" --quick --build "$tmp/failing" \
  --out "$tmp/failing-sweep" --partition sctapetest --time 00:10:00 --wait > "$tmp/failing.log" 2>&1 || status=$?
[ "$status" = 1 ] || fail "a failing shard: slurm-sweep.sh --wait exited $status, not 1: $(tail -n 5 "$tmp/failing.log")"
[ ! -e "$tmp/failing-sweep/coeffs.json" ] && [ ! -e "$tmp/failing-sweep/sweep.json" ] \
  || fail "a failing shard: a sweep or coefficients were written"
grep -q "fails on purpose" "$tmp/failing-sweep/logs/shard-1.log" || fail "shard 1's log does not hold its error"
say "a failing shard: the merge job did not run, slurm-sweep.sh --wait exited 1"

# More shards than runs: refused before anything is submitted.
status=0
bash "$repo/scripts/slurm-sweep.sh" --shards 1000 --quick --build "$build" --out "$tmp/too-many" \
  > "$tmp/too-many.log" 2>&1 || status=$?
[ "$status" = 2 ] && grep -q "fewer than the 1000 shards" "$tmp/too-many.log" \
  || fail "--shards 1000: exit $status, not 2 with the reason: $(cat "$tmp/too-many.log")"
[ -z "$(squeue -h -o %A)" ] || fail "--shards 1000 left jobs in the queue: $(squeue)"
say "--shards 1000 (more than the sweep's runs): exit 2, nothing submitted"
echo "PASSED"
