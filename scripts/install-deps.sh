#!/usr/bin/env bash
# Installs sctape's build and run dependencies from Debian packages;
# `install-deps.sh fuzz` adds clang with libFuzzer (scripts/fuzz.sh);
# `install-deps.sh slurm` adds Slurm and munge (tests/slurm_sweep_test.sh).
# `install-deps.sh mpi` adds Open MPI (the `mpi` preset, docs/mpi.md).
# Idempotent: does nothing when every package is already installed.
set -euo pipefail

packages=(build-essential cmake ninja-build pkg-config
          libeigen3-dev nlohmann-json3-dev libbenchmark-dev catch2 libfftw3-dev
          python3 python3-matplotlib
          python3-torch)  # bench/torch_probe.py's tests (1.13 on bookworm)
if [ "${1:-}" = fuzz ]; then packages+=(clang libclang-rt-14-dev libomp-14-dev); fi
if [ "${1:-}" = slurm ]; then packages+=(slurm-wlm munge); fi
if [ "${1:-}" = mpi ]; then packages+=(libopenmpi-dev openmpi-bin); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "[sctape] installing: ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
