#!/usr/bin/env bash
# paper_timelines.sh SCTAPE [OUT_DIR]
#
# The memory timelines of the memory-scaling paper's Fig. 1 case
# (examples/paper_table1.json): OUT_DIR/timeline_forward.json without
# derivatives (the config without objective and gradients), and
# OUT_DIR/timeline_<strategy>.json for each strategy. OUT_DIR defaults to
# results/paper. `fit/plot.py --paper-timelines OUT_DIR` draws them.
set -euo pipefail
cd "$(dirname "$0")/.."
sctape=$1
out=${2:-results/paper}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Writes the paper config with `strategy` set, or with no reverse mode for "forward".
write_config() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
config = json.load(open("examples/paper_table1.json"))
if sys.argv[1] == "forward":
    del config["objective"], config["gradients"]
else:
    config["strategy"] = sys.argv[1]
json.dump(config, open(sys.argv[2], "w"), indent=2)
PY
}

for run in forward autograd fused checkpoint reversible; do
  write_config "$run" "$tmp/$run.json"
  "$sctape" track "$tmp/$run.json" --quiet --out "$tmp/result_$run.json" --timeline "$out/timeline_$run.json"
  echo "$out/timeline_$run.json"
done
