#!/usr/bin/python3
"""rank_sweep — the per-rank memory law measured over MPI ranks.

    /usr/bin/python3 bench/rank_sweep.py --sctape build/mpi/cli/sctape \\
        --out results/rank_sweep_cpu.json --held-out results/rank_sweep_heldout_cpu.json
    build/mpi/cli/sctape fit results/rank_sweep_cpu.json -o results/coeffs_rank_cpu.json
    build/mpi/cli/sctape plan results/coeffs_rank_cpu.json --against results/rank_sweep_heldout_cpu.json

Runs `mpirun -n P sctape track CONFIG` (oversubscribed: more ranks than cores
is fine, only bytes are measured) for every strategy x dtype x N_part x grid x
ranks of the fit set, and a held-out set whose ranks, N_part and grids are
none of the fit's, and writes each as a kick_memory sweep (Google Benchmark
JSON, as sctape-bench writes) that `sctape fit`, `sctape plan --against`
and fit/plot.py read. Every entry is rank 0's, the largest share (ceil(N_part / ranks)
particles): counters N_part (the bunch's), ranks, N_part_rank (rank 0's
particles), N_cells, N_kicks, tape_bytes and tape_<scope>_bytes (the last
kick's growth), alloc_delta_bytes, tape_bytes_total and peak_bytes_total;
every rank's particles, tape and peak are kept beside them
(docs/mpi.md, "The per-rank law fitted over ranks").

Progress (done/total, time left) goes to standard error. Exit codes: 0
written, 1 a run failed (nothing written), 2 bad usage (nothing written).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

SCHEMA_VERSION = 1  # of the rank sweep's context keys and per-entry counters
UNITS = "bytes for *_bytes*, per kick unless *_total; *_per_rank lists are whole-run bytes, rank 0 first"
STRATEGIES = ("fused", "checkpoint", "reversible")  # autograd does not run over ranks (docs/mpi.md)
DTYPES = ("float64", "float32")
KICKS = 2  # of the fit set: the per-kick counters are the last kick's growth, and two kicks give it

# Fit set: every rank share from 1000 to 64000 particles on 8^3 to 32^3, so
# that both phases of the peak (particle-bound, grid-bound) have points; two
# shares repeat at another rank count (4000 = 4000/1 = 16000/4, 16000 = 16000/1 = 64000/4),
# which shows whether a rank holds anything that grows with the ranks.
FIT = {"n_part": (4000, 16000, 64000), "grids": ((8, 8, 8), (16, 16, 16), (32, 32, 32)), "ranks": (1, 2, 4)}
# Held out: ranks 3, 5 and 6 (uneven splits), bunch sizes and grids the fit
# never saw, and one run of 4 kicks; (N_part, grid, ranks, kicks).
HELD_OUT = ((10000, (16, 16, 32), 3, KICKS), (50000, (24, 24, 24), 3, KICKS), (90000, (32, 16, 8), 6, KICKS),
            (100000, (32, 32, 32), 5, 4))
# --quick (the ctest): float64 only, the whole fit design (one rank and
# several are fitted apart: each needs points in both phases of the peak)
QUICK_FIT = FIT
QUICK_HELD_OUT = ((10000, (16, 16, 32), 3, KICKS),)

# The bunch every run tracks: the MPI test's (tests/check_mpi_ranks.py), a
# drift of one slice per kick, one thread per rank (the laws are per thread count:
# the float deposit keeps one grid per thread).
BASE_CONFIG = {
    "kinetic_energy_eV": 1.0e7, "bunch_charge_C": 1e-9, "seed": 3,
    "distribution": {"type": "gaussian", "sigma_x_m": 1e-3, "sigma_y_m": 1.2e-3, "sigma_tau_m": 2e-6,
                     "sigma_px": 1e-5, "sigma_py": 1e-5, "sigma_delta": 1e-4},
    "threads": 1, "objective": "sigma_x", "gradients": ["bunch_charge_C"], "backend": "cpu",
}


class SweepError(Exception):
    pass


def case_name(strategy, dtype, n_part, grid, ranks, kicks):
    g = "x".join(str(n) for n in grid)
    return f"kick_memory/{strategy}/{dtype}/N_part:{n_part}/grid:{g}/N_kicks:{kicks}/ranks:{ranks}"


def fit_cases(strategies, dtypes, design):
    return [(s, d, n, g, p, KICKS) for s in strategies for d in dtypes for n in design["n_part"]
            for g in design["grids"] for p in design["ranks"]]


def held_out_cases(strategies, dtypes, cases):
    return [(s, d, n, g, p, k) for s in strategies for d in dtypes for n, g, p, k in cases]


def mpirun_env():
    # Open MPI refuses root and more ranks than cores unless told; neither matters for byte counts
    return dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                OMPI_MCA_rmaps_base_oversubscribe="1")


def run_case(args, case, tmp):
    strategy, dtype, n_part, grid, ranks, kicks = case
    config = dict(BASE_CONFIG, n_particles=n_part, dtype=dtype, strategy=strategy,
                  lattice=[{"type": "drift", "length_m": 0.25 * kicks, "slices": kicks}],
                  space_charge={"enabled": True, "grid": list(grid)})
    cfg, out = os.path.join(tmp, "config.json"), os.path.join(tmp, "result.json")
    with open(cfg, "w") as f:
        json.dump(config, f)
    if os.path.exists(out):
        os.unlink(out)
    cmd = [args.mpirun, "--oversubscribe", "-n", str(ranks), args.sctape, "track", cfg, "--out", out, "--quiet"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=mpirun_env(), timeout=args.timeout)
    except subprocess.TimeoutExpired:
        raise SweepError(f"{case_name(*case)}: no result after {args.timeout} s")
    if r.returncode != 0:
        raise SweepError(f"{case_name(*case)}: mpirun exited {r.returncode}: {r.stderr.strip()[-400:]}")
    with open(out) as f:
        return entry(case, json.load(f))


def entry(case, result):
    """The sweep entry of one run: rank 0's counters, every rank's totals beside them."""
    strategy, dtype, n_part, grid, ranks, kicks = case
    name = case_name(*case)
    mpi, memory = result.get("mpi"), result["reverse_mode"]["memory"]
    if not mpi or mpi["ranks"] != ranks:
        raise SweepError(f"{name}: the RESULT has no mpi section for {ranks} ranks (is sctape built with the mpi preset?)")
    share = mpi["particles_per_rank"][0]
    if share != math.ceil(n_part / ranks):
        raise SweepError(f"{name}: rank 0 holds {share} particles, not ceil({n_part}/{ranks})")
    e = {"name": name, "run_name": name, "run_type": "iteration", "iterations": 1, "time_unit": "ms",
         "real_time": 1e3 * result["timing"]["total_s"],
         "N_part": n_part, "ranks": ranks, "N_part_rank": share, "N_cells": grid[0] * grid[1] * grid[2],
         "N_kicks": kicks,
         "tape_bytes": memory["tape_bytes_per_kick"], "alloc_delta_bytes": memory["allocator_delta_bytes_per_kick"],
         "tape_bytes_total": memory["tape_bytes"], "peak_bytes_total": memory["peak_bytes"]}
    for scope, nbytes in memory["tape_bytes_per_kick_by_scope"].items():
        e[f"tape_{scope}_bytes"] = nbytes
    e["particles_per_rank"] = mpi["particles_per_rank"]
    e["tape_bytes_per_rank"] = mpi["tape_bytes_per_rank"]
    e["peak_bytes_per_rank"] = mpi["peak_bytes_per_rank"]
    return e, result.get("sctape_version", "unknown")


def progress(done, total, started, name):
    elapsed = time.perf_counter() - started
    left = elapsed / done * (total - done)
    sys.stderr.write(f"[{done}/{total}] {name}  elapsed {elapsed:.0f} s, ~{left:.0f} s left\n")
    sys.stderr.flush()


def mpi_version(mpirun):
    r = subprocess.run([mpirun, "--version"], capture_output=True, text=True, env=mpirun_env(), timeout=60)
    lines = r.stdout.strip().splitlines()
    return lines[0] if r.returncode == 0 and lines else "unknown"


def sweep(args, cases, role, done, total, started, tmp):
    entries, version = [], "unknown"
    for case in cases:
        e, version = run_case(args, case, tmp)
        entries.append(e)
        done += 1
        progress(done, total, started, e["name"])
    context = {"kind": "sctape-rank-sweep", "rank_sweep_schema_version": SCHEMA_VERSION, "role": role,
               "sctape_version": version, "backend": "cpu", "device": f"cpu: {os.cpu_count()} cores",
               "memory_space": "host (host_memory)", "threads": "1", "mpi": mpi_version(args.mpirun),
               "measured_rank": "rank 0: the largest share, ceil(N_part / ranks) particles",
               "lattice": "a drift of 0.25 m per kick, one slice per kick", "units": UNITS}
    return {"context": context, "benchmarks": entries}, done


def write_json(doc, path):
    """Atomically: a temporary file renamed into place."""
    text = json.dumps(doc, indent=1, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".rank_sweep-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def parse_args(argv):
    p = argparse.ArgumentParser(prog="rank_sweep.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Exit codes: 0 written, 1 a run failed (nothing written), 2 bad usage.")
    p.add_argument("--sctape", required=True, help="sctape built with the mpi preset (build/mpi/cli/sctape)")
    p.add_argument("--mpirun", default="mpirun", help="Open MPI's mpirun (default: mpirun on PATH)")
    p.add_argument("--out", required=True, help="the fit set's sweep JSON")
    p.add_argument("--held-out", help="the held-out set's sweep JSON (ranks, N_part and grids not in the fit)")
    p.add_argument("--quick", action="store_true",
                   help="float64 only, one held-out case (%d + %d runs: the ctest)" %
                        (len(fit_cases(STRATEGIES, DTYPES[:1], QUICK_FIT)),
                         len(held_out_cases(STRATEGIES, DTYPES[:1], QUICK_HELD_OUT))))
    p.add_argument("--timeout", type=float, default=300, help="seconds one mpirun may take (default 300)")
    args = p.parse_args(argv)
    if not (os.path.isfile(args.sctape) and os.access(args.sctape, os.X_OK)):
        p.error(f"--sctape: '{args.sctape}' is not an executable file")
    for flag, path in (("--out", args.out), ("--held-out", args.held_out)):
        if path is None:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            p.error(f"{flag}: the folder '{folder}' does not exist")
        if os.path.exists(path) and not os.path.isfile(path):
            p.error(f"{flag}: '{path}' exists and is not a regular file")
    if args.held_out and os.path.abspath(args.held_out) == os.path.abspath(args.out):
        p.error("--out and --held-out name the same file")
    if not (args.timeout > 0 and math.isfinite(args.timeout)):
        p.error("--timeout needs a positive number of seconds")
    return args


def main(argv):
    args = parse_args(argv)
    dtypes = DTYPES[:1] if args.quick else DTYPES
    fit = fit_cases(STRATEGIES, dtypes, QUICK_FIT if args.quick else FIT)
    held = held_out_cases(STRATEGIES, dtypes, QUICK_HELD_OUT if args.quick else HELD_OUT) if args.held_out else []
    started, total = time.perf_counter(), len(fit) + len(held)
    try:
        with tempfile.TemporaryDirectory(prefix="rank_sweep-") as tmp:
            fit_doc, done = sweep(args, fit, "fit", 0, total, started, tmp)
            held_doc = sweep(args, held, "held-out", done, total, started, tmp)[0] if held else None
    except (SweepError, OSError, subprocess.SubprocessError, KeyError, ValueError) as e:
        sys.stderr.write(f"rank_sweep.py: error: {e} (nothing written)\n")
        return 1
    write_json(fit_doc, args.out)
    if held_doc:
        write_json(held_doc, args.held_out)
    sys.stderr.write(f"rank_sweep.py: {len(fit)} fit runs -> {args.out}" +
                     (f", {len(held)} held-out runs -> {args.held_out}" if held else "") +
                     f" ({time.perf_counter() - started:.0f} s)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
