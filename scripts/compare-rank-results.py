#!/usr/bin/env python3
"""Compares `sctape track` RESULTs of one config run on different MPI rank
counts: the objective, every gradient and every particle_gradient_rms of each
OTHER against BASE within a relative tolerance. Prints one line per number,
exits 0 when all agree, 1 on a mismatch, 2 on bad input (a missing file or
key, a non-finite number, a bad tolerance).

    python3 scripts/compare-rank-results.py --tolerance 1e-9 one_rank.json two_ranks.json [...]

Used by scripts/gpu-checks.sh's mpi_cuda stage (the cuda backend over 1 and
2 ranks); the Python standard library only.
"""
import argparse
import json
import math
import sys


def fail_input(message):
    print(f"compare-rank-results: error: {message}", file=sys.stderr)
    sys.exit(2)


def numbers(path):
    """{name: value} of the RESULT's objective, gradients and particle_gradient_rms."""
    try:
        with open(path, encoding="utf-8") as f:
            rm = json.load(f)["reverse_mode"]
        out = {"objective": rm["objective"]["value"]}
        out.update({f"d/d {k}": v for k, v in rm["gradients"].items()})
        out.update({f"particle_gradient_rms {k}": v for k, v in rm.get("particle_gradient_rms", {}).items()})
    except (OSError, ValueError, KeyError, TypeError) as e:
        fail_input(f"cannot read a RESULT with reverse_mode.objective and gradients from {path}: {e!r}")
    for name, v in out.items():
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            fail_input(f"{path}: {name} is {v!r}, not a finite number")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tolerance", type=float, required=True, help="relative tolerance, e.g. 1e-9")
    ap.add_argument("base", help="RESULT on one rank")
    ap.add_argument("others", nargs="+", help="RESULTs of the same config on more ranks")
    args = ap.parse_args()
    if not (0 < args.tolerance < 1):
        fail_input(f"--tolerance must be in (0, 1), got {args.tolerance}")
    base = numbers(args.base)
    mismatches = 0
    for path in args.others:
        other = numbers(path)
        if set(other) != set(base):
            fail_input(f"{path} reports {sorted(other)} but {args.base} {sorted(base)}")
        for name, b in base.items():
            v = other[name]
            ok = abs(v - b) <= args.tolerance * abs(b) if b != 0 else v == 0
            mismatches += not ok
            rel = abs(v - b) / abs(b) if b != 0 else abs(v)
            print(f"{'ok  ' if ok else 'FAIL'}  {path}: {name} {v!r} vs {b!r} (relative {rel:.1e}, tolerance {args.tolerance:g})")
    print(f"{mismatches} mismatch(es)" if mismatches else "all numbers agree")
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
