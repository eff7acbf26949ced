#!/usr/bin/env bash
# Makes build/cheetah-venv (or $CHEETAH_VENV): a virtual environment over
# Debian's /usr/bin/python3 (--system-site-packages: its python3-torch 1.13,
# numpy, scipy, matplotlib) with cheetah-accelerator from PyPI, pinned, and
# prints its python. Idempotent: does nothing when it is already there.
#
# --no-deps: Cheetah 0.8.4 declares torch>=2.3, for which pip would download a
# torch wheel (~700 MB) over Debian's; its other needs (numpy, scipy,
# matplotlib) are Debian's. What it misses from torch 1.13 is added at run
# time by examples/cheetah_probe.py (torch_113_shim, docs/torch-probe.md).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${CHEETAH_VENV:-build/cheetah-venv}
version=0.8.4
for module in torch numpy scipy matplotlib venv; do
  if ! /usr/bin/python3 -c "import $module" 2> /dev/null; then
    echo "cheetah_venv.sh: error: /usr/bin/python3 cannot import $module: apt-get install python3-$module" \
         "(scripts/install-deps.sh installs torch and matplotlib)" >&2
    exit 2
  fi
done
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$venv" >&2
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('cheetah-accelerator') != '$version')" 2> /dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "cheetah-accelerator==$version" >&2
fi
echo "$venv/bin/python"
