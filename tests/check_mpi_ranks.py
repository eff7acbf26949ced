#!/usr/bin/env python3
"""`sctape track` over 1, 2 and 4 MPI ranks (oversubscribed): the same results
(bitwise with the fixed-point deposit, within 1e-12 with the float one),
per-rank tape bytes equal to the law exactly, and failures that end every
rank with one error and no output. Run by ctest in the `mpi` preset
(docs/mpi.md); exits 1 with the failed checks listed."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

RANKS = (1, 2, 4)
# Reordered float64 sums: rank r adds its particles, then the ranks' partial
# sums are added, so a sum of N terms changes by at most about N * 2^-53
# relative to the sum of their magnitudes (2000 * 1.1e-16 = 2.2e-13); 1e-12
# is that bound with a margin for the cancellation in the gradients.
REL_TOL = 1e-12
CONFIG = {
    "kinetic_energy_eV": 1.0e7, "bunch_charge_C": 1e-9, "n_particles": 2000, "seed": 3,
    "distribution": {"type": "gaussian", "sigma_x_m": 1e-3, "sigma_y_m": 1.2e-3, "sigma_tau_m": 2e-6,
                     "sigma_px": 1e-5, "sigma_py": 1e-5, "sigma_delta": 1e-4},
    "lattice": [{"type": "drift", "length_m": 0.5, "slices": 3}],
    "space_charge": {"enabled": True, "grid": [8, 8, 8]},
    "dtype": "float64", "threads": 1, "objective": "sigma_x",
    "gradients": ["bunch_charge_C", "kinetic_energy_eV", "distribution.sigma_x_m", "distribution.sigma_px",
                  "lattice.0.length_m"],
}
KICKS, CELLS, WORD = 3, 8 * 8 * 8, 8
failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def tape_law(strategy, n):
    """Per-rank tape bytes (docs/tape-accounting.md) for a rank holding n particles."""
    if strategy == "fused":
        return KICKS * (6 * n + 2 * CELLS) * WORD + 4 * n * WORD
    if strategy == "checkpoint":
        return KICKS * 6 * n * WORD + 2 * n * WORD
    return 48 * n + 2 * n * WORD  # reversible


def start_footprint_kb():
    """The smallest address-space limit (KB, within 8 MB) under which `sctape --help` starts."""
    def starts(kb):
        cmd = f'ulimit -v {kb}; exec "$0" --help'
        return subprocess.run(["/bin/sh", "-c", cmd, ARGS.sctape], capture_output=True).returncode == 0
    lo, hi = 0, 1 << 22  # 4 GB
    if not starts(hi):
        raise SystemExit(f"{ARGS.sctape} does not start within a 4 GB address space")
    while hi - lo > 8192:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if starts(mid) else (mid, hi)
    return hi


def split(n, ranks):
    return [n // ranks + (1 if r < n % ranks else 0) for r in range(ranks)]


def mpirun(args, ranks, extra_env=None, wrapper=(), cwd=None):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
    env.update(extra_env or {})
    cmd = [ARGS.mpirun, "--oversubscribe", "-n", str(ranks), *wrapper, ARGS.sctape, "track", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=cwd)


def close(a, b, scale):
    return abs(a - b) <= REL_TOL * max(abs(scale), 1e-300)


def read_csv(path):
    with open(path) as f:
        next(f)
        return [[float(v) for v in line.split(",")] for line in f]


def same_results(strategy, deterministic):
    """Runs `strategy` on 1, 2, 4 ranks and compares with the one-rank run:
    with the fixed-point deposit (deterministic; `reversible` has it whenever
    it runs over MPI) the objective, every gradient and the dumped particles
    and particle gradients are bitwise equal (docs/mpi.md: every sum over
    particles is exact then); with the float deposit within REL_TOL."""
    config = dict(CONFIG, strategy=strategy)
    mode = "fixed" if deterministic else "float"
    cfg = os.path.join(ARGS.tmp, f"{strategy}.json")
    with open(cfg, "w") as f:
        json.dump(config, f)
    env = {"SCTAPE_DETERMINISTIC_DEPOSIT": "1"} if deterministic else {}
    results, dumps = {}, {}
    for p in RANKS:
        out, prefix = prefix_of(strategy, mode, p) + ".json", prefix_of(strategy, mode, p)
        r = mpirun([cfg, "--out", out, "--dump-particles", prefix, "--quiet"], p, env)
        check(r.returncode == 0,
              f"{strategy} ({mode} deposit), {p} ranks: exit 0 (got {r.returncode}: {r.stderr.strip()[-300:]})")
        if r.returncode != 0:
            return
        with open(out) as f:
            results[p] = json.load(f)
        dumps[p] = {k: open(f"{prefix}_{k}.csv").read() for k in ("initial", "final", "gradient")}
    plan_per_rank(strategy, results)
    base = results[1]["reverse_mode"]
    for p in RANKS:
        res, mpi = results[p], results[p]["mpi"]
        rm = res["reverse_mode"]
        check(res["n_particles"] == CONFIG["n_particles"] and mpi["ranks"] == p and
              mpi["particles_per_rank"] == split(CONFIG["n_particles"], p),
              f"{strategy}, {p} ranks: the particles split {mpi['particles_per_rank']}")
        law = [tape_law(strategy, n) for n in mpi["particles_per_rank"]]
        check(mpi["tape_bytes_per_rank"] == law,
              f"{strategy}, {p} ranks: tape bytes per rank {mpi['tape_bytes_per_rank']} equal the law {law} exactly")
        check(rm["memory"]["tape_bytes"] == law[0], f"{strategy}, {p} ranks: reverse_mode.memory is rank 0's")
        check(dumps[p]["initial"] == dumps[1]["initial"], f"{strategy}, {p} ranks: the same initial particles, bitwise")
        if p == 1:
            continue
        v, v1 = rm["objective"]["value"], base["objective"]["value"]
        if deterministic:  # repr: the shortest string that reads back as the same double
            check(repr(v) == repr(v1),
                  f"{strategy}, {p} ranks, fixed-point deposit: objective {v!r} vs {v1!r} bitwise equal")
            for name, g1 in base["gradients"].items():
                g = rm["gradients"][name]
                check(repr(g) == repr(g1),
                      f"{strategy}, {p} ranks, fixed-point deposit: d/d {name} {g!r} vs {g1!r} bitwise equal")
            check(json.dumps(res["moments"]) == json.dumps(results[1]["moments"]),
                  f"{strategy}, {p} ranks, fixed-point deposit: initial and final moments bitwise equal")
            rms, rms1 = rm["particle_gradient_rms"], base["particle_gradient_rms"]
            check(all(repr(rms[k]) == repr(v) for k, v in rms1.items()),
                  f"{strategy}, {p} ranks, fixed-point deposit: particle_gradient_rms {rms} vs {rms1} bitwise equal")
            for kind in ("final", "gradient"):
                check(dumps[p][kind] == dumps[1][kind],
                      f"{strategy}, {p} ranks, fixed-point deposit: {kind} particles bitwise equal")
            continue
        check(close(v, v1, v1), f"{strategy}, {p} ranks: objective {v!r} vs {v1!r} within {REL_TOL}")
        for name, r1 in base["particle_gradient_rms"].items():  # over every rank's particles
            r = rm["particle_gradient_rms"][name]
            check(close(r, r1, r1), f"{strategy}, {p} ranks: particle_gradient_rms {name} {r!r} vs {r1!r} within {REL_TOL}")
        for name, g1 in base["gradients"].items():
            g = rm["gradients"][name]
            check(close(g, g1, g1), f"{strategy}, {p} ranks: d/d {name} {g!r} vs {g1!r} within {REL_TOL}")
        for kind in ("final", "gradient"):
            a = read_csv(f"{prefix_of(strategy, mode, p)}_{kind}.csv")
            b = read_csv(f"{prefix_of(strategy, mode, 1)}_{kind}.csv")
            worst = 0.0
            for c in range(6):
                scale = max(abs(row[c]) for row in b) or 1.0
                worst = max([worst] + [abs(x[c] - y[c]) / scale for x, y in zip(a, b)])
            check(len(a) == len(b) and worst <= REL_TOL,
                  f"{strategy}, {p} ranks: {kind} particles within {REL_TOL} of each column's largest (worst {worst:.2e})")


def bitwise_fodo_sigma():
    """The deterministic mode's other sums: a quadrupole's map adjoint (its
    strength's gradient), sigma extents (mean and rms over every rank), an
    emittance objective, float32 columns, and an uneven split (3 ranks)."""
    config = json.loads(json.dumps(CONFIG))
    config.update(strategy="fused", dtype="float32", objective="emittance_x", n_particles=1000,
                  lattice=[{"type": "quadrupole", "length_m": 0.1, "k1_per_m2": 5.0, "slices": 2},
                           {"type": "drift", "length_m": 0.3, "slices": 2}],
                  gradients=["lattice.0.k1_per_m2", "lattice.0.length_m", "bunch_charge_C", "kinetic_energy_eV",
                             "distribution.sigma_x_m", "distribution.sigma_delta"])
    config["space_charge"]["extent"] = {"mode": "sigma", "factor": [6, 6, 6]}
    cfg = os.path.join(ARGS.tmp, "fodo_sigma.json")
    with open(cfg, "w") as f:
        json.dump(config, f)
    results = {}
    for p in (1, 3):
        out = os.path.join(ARGS.tmp, f"fodo_sigma_{p}.json")
        r = mpirun([cfg, "--out", out, "--quiet"], p, {"SCTAPE_DETERMINISTIC_DEPOSIT": "1"})
        check(r.returncode == 0,
              f"fodo, sigma extents, float32, {p} ranks: exit 0 (got {r.returncode}: {r.stderr[-300:]})")
        if r.returncode != 0:
            return
        with open(out) as f:
            results[p] = json.load(f)["reverse_mode"]
    a, b = results[3], results[1]
    same = repr(a["objective"]["value"]) == repr(b["objective"]["value"]) and all(
        repr(a["gradients"][k]) == repr(v) for k, v in b["gradients"].items())
    check(same, f"fodo, sigma extents, float32, fixed-point deposit: 3 ranks' objective and gradients bitwise "
                f"equal to one rank's ({a['objective']['value']!r}, {a['gradients']} vs {b['gradients']})")


def prefix_of(strategy, mode, ranks):
    return os.path.join(ARGS.tmp, f"{strategy}_{mode}_{ranks}")


def plan_per_rank(strategy, results):
    """`sctape plan --ranks P` (fitted on one-rank sweeps) predicts each measured
    per-rank tape exactly: the largest share's, rank 0's."""
    for p, res in results.items():
        r = subprocess.run([ARGS.sctape, "plan", ARGS.coeffs, "--n-part", str(CONFIG["n_particles"]), "--grid", "8", "8",
                            "8", "--kicks", str(KICKS), "--dtype", "float64", "--strategy", strategy, "--ranks", str(p)],
                           capture_output=True, text=True, timeout=60)
        rows = [line.split() for line in r.stdout.splitlines() if line.startswith(strategy + " ")]
        predicted = int(rows[0][4]) if r.returncode == 0 and len(rows) == 1 else None
        measured = res["mpi"]["tape_bytes_per_rank"][0]
        check(predicted == measured, f"plan --ranks {p}: {strategy} tape per rank {predicted} equals the measured {measured}")


def failure(name, ranks, config_change, expect, wrapper=(), aborted=False):
    """A run that must fail on every rank: exit 2, one error, nothing written."""
    config = json.loads(json.dumps(dict(CONFIG, strategy="fused")))
    config_change(config)
    cfg, out = os.path.join(ARGS.tmp, f"fail_{name}.json"), os.path.join(ARGS.tmp, f"fail_{name}_result.json")
    with open(cfg, "w") as f:
        json.dump(config, f)
    r = mpirun([cfg, "--out", out, "--quiet"], ranks, wrapper=wrapper)
    errors = [line for line in r.stderr.splitlines() if line.startswith("sctape track: error")]
    check(r.returncode == 2, f"failure ({name}), {ranks} ranks: exit 2 (got {r.returncode})")
    check(len(errors) == 1 and expect in errors[0], f"failure ({name}): one error naming '{expect}': {errors}")
    check(not os.path.exists(out), f"failure ({name}): no output written")
    if not aborted:  # (Open MPI's banner after an MPI_Abort is not always printed: not checked)
        check("MPI_ABORT" not in r.stdout + r.stderr, f"failure ({name}): every rank ends by itself, no MPI_Abort")


def main():
    for strategy in ("fused", "checkpoint"):
        same_results(strategy, deterministic=False)
        same_results(strategy, deterministic=True)
    same_results("reversible", deterministic=True)  # over MPI it always has the fixed-point deposit
    bitwise_fodo_sigma()

    def outside(c):  # found after the extents' reduction: every rank knows it
        c["space_charge"]["extent"] = {"mode": "sigma", "factor": [0.5, 0.5, 0.5]}
    failure("bad input at run time", 4, outside, "particles outside the grid")

    def large(c):
        c["n_particles"] = 3000000
    # rank 1 alone runs out of memory: its address space limited to 250 MB
    # beyond what the binary needs to start (a CUDA build maps libcufft,
    # hundreds of MB, before main)
    limit_kb = 250000 + start_footprint_kb()
    oom = os.path.join(ARGS.tmp, "rank1_small_memory.sh")
    with open(oom, "w") as f:
        f.write(f'#!/bin/sh\nif [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then ulimit -v {limit_kb}; fi\nexec "$@"\n')
    os.chmod(oom, 0o755)
    failure("out of memory", 2, large, "error on rank 1 of 2: out of memory", wrapper=(oom,), aborted=True)

    # rank 1 alone cannot read CONFIG (it starts in another directory): the
    # checks before the run are agreed on, so no rank waits in a reduction
    config_name = "one_rank_unreadable.json"
    with open(os.path.join(ARGS.tmp, config_name), "w") as f:
        json.dump(dict(CONFIG, strategy="fused"), f)
    elsewhere = os.path.join(ARGS.tmp, "rank1_elsewhere.sh")
    with open(elsewhere, "w") as f:
        f.write('#!/bin/sh\nif [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then cd /; fi\nexec "$@"\n')
    os.chmod(elsewhere, 0o755)
    out = os.path.join(ARGS.tmp, "one_rank_unreadable_result.json")
    r = mpirun([config_name, "--out", out, "--quiet"], 2, wrapper=(elsewhere,), cwd=ARGS.tmp)
    errors = [line for line in r.stderr.splitlines() if line.startswith("sctape track: error")]
    check(r.returncode == 2, f"failure (CONFIG unreadable on rank 1): exit 2 (got {r.returncode})")
    check(len(errors) == 1 and "rank 1: " in errors[0] and config_name in errors[0],
          f"failure (CONFIG unreadable on rank 1): one error naming rank 1 and the file: {errors}")
    check(not os.path.exists(out) and "MPI_ABORT" not in r.stdout + r.stderr,
          "failure (CONFIG unreadable on rank 1): no output, every rank ends by itself")

    print(f"{len(failures)} failed checks" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sctape", required=True)
    parser.add_argument("--mpirun", required=True)
    parser.add_argument("--coeffs", required=True, help="results/coeffs_cpu.json, for sctape plan --ranks")
    parser.add_argument("--tmp", default=None)
    ARGS = parser.parse_args()
    ARGS.sctape = os.path.abspath(ARGS.sctape)  # ranks may start in other directories
    if ARGS.tmp is None:
        ARGS.tmp = tempfile.mkdtemp()
    os.makedirs(ARGS.tmp, exist_ok=True)
    sys.exit(main())
