#!/bin/sh
# skip_without_matplotlib.sh COMMAND [ARGS...]
#
# Runs COMMAND when Debian's /usr/bin/python3 (the interpreter fit/plot.py is
# run with) can import matplotlib.pyplot. Otherwise it says so and exits 77,
# which ctest (SKIP_RETURN_CODE 77) reports as skipped, never as passed.
# Any failure of COMMAND becomes exit 1, so that 77 only ever means
# "matplotlib missing".
if ! /usr/bin/python3 -c 'import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot' 2>/dev/null; then
  echo "SKIPPED: /usr/bin/python3 cannot import matplotlib.pyplot (apt-get install python3-matplotlib):" \
       "plot.py was NOT tested (exit 77 = skipped)"
  exit 77
fi
"$@"
status=$?
if [ "$status" -ne 0 ]; then
  echo "FAILED: exit code $status from: $*"
  exit 1
fi
