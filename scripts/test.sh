#!/usr/bin/env bash
# The README's test command: installs dependencies, builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(bash scripts/build.sh)
status=0
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" || status=$?
# ctest shows a passing test's output only with -V: the hostile-input counts
# (ok, rejected, expected failures, new violations) are printed from its log
# so that every run shows them.
log="$build/Testing/Temporary/LastTest.log"
if [ -f "$log" ]; then
  sed -n '/^hostile inputs: /,/^  all /p; /expected failures still failing/p; /NOW PASSES\|NOT A CASE/p' "$log"
fi
exit "$status"
