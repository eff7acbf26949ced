#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, the `fuzz` preset: clang++ with
# -fsanitize=fuzzer,address,undefined) and runs each for a bounded time:
#   fuzz_config      CONFIG.json text -> parse_config     (seeds: examples/*.json)
#   fuzz_point_list  `sctape fit` input -> fit_document   (seeds: results/*.json, a point list)
# SCTAPE_FUZZ_SECONDS (default 30) per target. clang and libFuzzer come from
# Debian (install-deps.sh fuzz). A finding
# (crash, sanitizer report, an exception other than the reader's own) exits 1,
# with the input saved under build/fuzz/findings/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${SCTAPE_FUZZ_SECONDS:-30}"
bash scripts/install-deps.sh fuzz
cmake --preset fuzz >&2
cmake --build --preset fuzz >&2
out=build/fuzz
mkdir -p "$out/findings"
seed() {  # seed NAME FILES...: a fresh corpus copy (libFuzzer adds to it)
  local dir="$out/corpus/$1"; shift
  rm -rf "$dir"; mkdir -p "$dir"
  cp "$@" "$dir/"
}
seed config examples/*.json
seed point_list results/sweep_cpu.json results/coeffs_cpu.json results/baseline.json
# a labelled point list of two groups, as another code would write it
printf '%s\n' '[{"code":"x","strategy":"fused","dtype":"float32","N_part":1000,"N_cells":512,"N_kicks":2,"bytes":60000},' \
  '{"code":"x","strategy":"fused","dtype":"float32","N_part":4000,"N_cells":512,"N_kicks":2,"bytes":204000},' \
  '{"code":"x","strategy":"fused","dtype":"float32","N_part":1000,"N_cells":4096,"N_kicks":2,"bytes":113000},' \
  '{"N_part":1000,"N_cells":512,"bytes":30000},{"N_part":4000,"N_cells":4096,"bytes":140000},' \
  '{"N_part":1000,"N_cells":4096,"bytes":60000}]' > "$out/corpus/point_list/points.json"
status=0
for name in config point_list; do
  echo "[fuzz] fuzz_$name for ${seconds}s" >&2
  # -max_len 65536: room for the sweep seed (larger inputs are the JSON reader's, not ours)
  "$out/fuzz/fuzz_$name" "$out/corpus/$name" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
    -rss_limit_mb=2048 -artifact_prefix="$out/findings/${name}-" -print_final_stats=1 2>"$out/fuzz_$name.log" \
    || { status=1; echo "[fuzz] fuzz_$name FOUND A FAILURE:" >&2; tail -40 "$out/fuzz_$name.log" >&2; }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$out/fuzz_$name.log" | sed "s/^/[fuzz] $name /" >&2
done
exit "$status"
