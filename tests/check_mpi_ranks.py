#!/usr/bin/env python3
"""`sctape track` over 1, 2 and 4 MPI ranks (oversubscribed): the same results
(bitwise with the fixed-point deposit, within 1e-12 with the float one),
per-rank tape bytes equal to the law exactly, and failures that end every
rank with one error and no output. Run by ctest in the `mpi` preset
(docs/mpi.md); exits 1 with the failed checks listed."""
import argparse
import json
import math
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
# autograd against fused at the same rank count: the serial test's tolerances
# (tests/test_gradients.cpp, "autograd and fused gradients agree"): gradients
# within 1e-10 relative and particle gradients within 1e-10 of each column's
# rms (the same float64 arithmetic rounded in another order over 3 kicks;
# measured there ~3e-11), the objective within 1e-15 (the same final beam,
# its moments summed in another order).
AUTOGRAD_FUSED_TOL, AUTOGRAD_FUSED_OBJECTIVE_TOL = 1e-10, 1e-15
# sigma extents, a quadrupole and an emittance: the extents' means over every
# rank, the map entries' gradients (k1) and the objective's cross moment
SIGMA_QUAD = dict(json.loads(json.dumps(CONFIG)), objective="emittance_x",
                  lattice=[{"type": "quadrupole", "length_m": 0.1, "k1_per_m2": 5.0, "slices": 2},
                           {"type": "drift", "length_m": 0.3, "slices": 1}],
                  gradients=["lattice.0.k1_per_m2", "lattice.0.length_m", "lattice.1.length_m", "bunch_charge_C",
                             "kinetic_energy_eV", "distribution.sigma_x_m", "distribution.sigma_delta"])
SIGMA_QUAD["space_charge"]["extent"] = {"mode": "sigma", "factor": [6, 6, 6]}
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


def within(a, b, tol):
    return abs(a - b) <= tol * max(abs(b), 1e-300)


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
        agree_within(f"{strategy}, {p} ranks", res, results[1], prefix_of(strategy, mode, p),
                     prefix_of(strategy, mode, 1), REL_TOL)


def agree_within(label, res, base, prefix, base_prefix, tol, moments=False, objective_tol=None, column_scale=max):
    """Objective (within objective_tol if given), particle_gradient_rms and
    every gradient within tol relative; the dumped particle gradients (and
    final particles) within tol of column_scale (max: the largest, or rms) of
    each column's magnitudes; with moments, the RESULT's moments too."""
    rm, rm1 = res["reverse_mode"], base["reverse_mode"]
    v, v1 = rm["objective"]["value"], rm1["objective"]["value"]
    check(within(v, v1, objective_tol or tol), f"{label}: objective {v!r} vs {v1!r} within {objective_tol or tol}")
    for name, r1 in rm1["particle_gradient_rms"].items():  # over every rank's particles
        r = rm["particle_gradient_rms"][name]
        check(within(r, r1, tol), f"{label}: particle_gradient_rms {name} {r!r} vs {r1!r} within {tol}")
    for name, g1 in rm1["gradients"].items():
        g = rm["gradients"][name]
        check(within(g, g1, tol), f"{label}: d/d {name} {g!r} vs {g1!r} within {tol}")
    if moments:
        moments_within(label, res["moments"], base["moments"], tol)
    for kind in ("final", "gradient"):
        a = read_csv(f"{prefix}_{kind}.csv")
        b = read_csv(f"{base_prefix}_{kind}.csv")
        worst = 0.0
        for c in range(6):
            scale = column_scale([abs(row[c]) for row in b]) or 1.0
            worst = max([worst] + [abs(x[c] - y[c]) / scale for x, y in zip(a, b)])
        check(len(a) == len(b) and worst <= tol,
              f"{label}: {kind} particles within {tol} of each column's {column_scale.__name__} (worst {worst:.2e})")


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


AXES = {"x": ("x_m", "px"), "y": ("y_m", "py"), "tau": ("tau_m", "delta")}
SIGMA = {"x_m": "sigma_x_m", "px": "sigma_px", "y_m": "sigma_y_m", "py": "sigma_py", "tau_m": "sigma_tau_m",
         "delta": "sigma_delta"}
ELECTRON_MASS_EV = 0.51099895000e6


def moments_within(label, moments, base, tol):
    """The RESULT's moments within tol, each against the scale its sums have:
    a mean against its column's rms (the terms' magnitudes; a mean near 0
    has no digits of its own), an rms relative, a normalized emittance
    beta*gamma*sqrt(<uu><pp> - <up>^2) against the sums of <uu><pp>: relative
    tol times the cancellation (beta*gamma*sigma_u*sigma_p / eps)^2 (643 for
    tau at the end of CONFIG's drift, where tau and delta are correlated)."""
    gamma = 1 + CONFIG["kinetic_energy_eV"] / ELECTRON_MASS_EV
    beta_gamma = math.sqrt(gamma * gamma - 1)
    for when in ("initial", "final"):
        m, m1 = moments[when], base[when]
        for col, v1 in m1["mean"].items():
            scale = m1["rms"][SIGMA[col]]
            check(abs(m["mean"][col] - v1) <= tol * scale,
                  f"{label}: {when} mean {col} {m['mean'][col]!r} vs {v1!r} within {tol} of its rms {scale:.3e}")
        for key, v1 in m1["rms"].items():
            check(within(m["rms"][key], v1, tol), f"{label}: {when} {key} {m['rms'][key]!r} vs {v1!r} within {tol}")
        for axis, (u, p) in AXES.items():
            e, e1 = m["normalized_emittance_m"][axis], m1["normalized_emittance_m"][axis]
            cancellation = (beta_gamma * m1["rms"][SIGMA[u]] * m1["rms"][SIGMA[p]] / e1) ** 2
            check(within(e, e1, tol * cancellation),
                  f"{label}: {when} emittance {axis} {e!r} vs {e1!r} within {tol} x {cancellation:.3g} (cancellation)")


def rms(values):
    return math.sqrt(sum(v * v for v in values) / len(values)) if values else 0.0


def run_over_ranks(name, config, ranks=RANKS):
    """`config` on each rank count, its particles dumped; {P: RESULT}, or None after a failed run."""
    cfg = os.path.join(ARGS.tmp, f"{name}.json")
    with open(cfg, "w") as f:
        json.dump(config, f)
    results = {}
    for p in ranks:
        prefix = os.path.join(ARGS.tmp, f"{name}_{p}")
        r = mpirun([cfg, "--out", prefix + ".json", "--dump-particles", prefix, "--quiet"], p)
        check(r.returncode == 0, f"{name}, {p} ranks: exit 0 (got {r.returncode}: {r.stderr.strip()[-300:]})")
        if r.returncode != 0:
            return None
        with open(prefix + ".json") as f:
            results[p] = json.load(f)
    return results


ONE_RANK_TAPES = {}


def one_rank_tape(name, config, n):
    """autograd's tape on one rank holding all of n particles."""
    if (name, n) not in ONE_RANK_TAPES:
        results = run_over_ranks(f"{name}_alone_{n}", dict(config, strategy="autograd", n_particles=n), ranks=(1,))
        ONE_RANK_TAPES[name, n] = results[1]["reverse_mode"]["memory"]["tape_bytes"] if results else None
    return ONE_RANK_TAPES[name, n]


def autograd_over_ranks(name, config):
    """autograd on 1, 2 and 4 ranks (docs/mpi.md, "autograd over ranks"): each
    rank's tape is its one-rank tape at its share, to the byte (the reductions
    save nothing more; the extrema keep their int64 index on every rank); the
    objective, gradients, particle_gradient_rms, moments and particle gradients
    within REL_TOL of one rank (float deposit, float64: reordered sums); and
    equal to fused at the same rank count within the serial tolerances."""
    mine = run_over_ranks(name, dict(config, strategy="autograd"))
    fused = run_over_ranks(name + "_fused", dict(config, strategy="fused"))
    if not mine or not fused:
        return
    for p in RANKS:
        mpi = mine[p]["mpi"]
        check(mpi["particles_per_rank"] == split(config["n_particles"], p),
              f"{name}, {p} ranks: the particles split {mpi['particles_per_rank']}")
        alone = [one_rank_tape(name, config, n) for n in mpi["particles_per_rank"]]
        check(mpi["tape_bytes_per_rank"] == alone and mine[p]["reverse_mode"]["memory"]["tape_bytes"] == alone[0],
              f"{name}, {p} ranks: tape bytes per rank {mpi['tape_bytes_per_rank']} equal one rank's at each "
              f"share {alone} exactly (reverse_mode.memory is rank 0's)")
        prefix = os.path.join(ARGS.tmp, f"{name}_{p}")
        if p > 1:
            agree_within(f"{name}, {p} ranks vs 1", mine[p], mine[1], prefix, os.path.join(ARGS.tmp, f"{name}_1"),
                         REL_TOL, moments=True)
        agree_within(f"{name}, {p} ranks: autograd vs fused", mine[p], fused[p], prefix,
                     os.path.join(ARGS.tmp, f"{name}_fused_{p}"), AUTOGRAD_FUSED_TOL,
                     objective_tol=AUTOGRAD_FUSED_OBJECTIVE_TOL, column_scale=rms)


def autograd_empty_rank():
    """3 particles on 4 ranks: rank 3 holds none, yet runs every op and every
    reduction (forward and backward) as the others do; the results equal one
    rank's within REL_TOL."""
    config = dict(CONFIG, strategy="autograd", n_particles=3)
    results = run_over_ranks("autograd_empty_rank", config, ranks=(1, 4))
    if not results:
        return
    check(results[4]["mpi"]["particles_per_rank"] == [1, 1, 1, 0], "autograd, 3 particles on 4 ranks: rank 3 holds none")
    agree_within("autograd, 3 particles on 4 ranks vs 1", results[4], results[1],
                 os.path.join(ARGS.tmp, "autograd_empty_rank_4"), os.path.join(ARGS.tmp, "autograd_empty_rank_1"),
                 REL_TOL, moments=True)


def plan_autograd():
    """`sctape plan --ranks P`: autograd's row is its one-rank law at
    ceil(N/P) (COEFFS fitted on one rank); a rank sweep's COEFFS has no
    autograd law, which plan says with exit 2."""
    def tape(coeffs, n, ranks):
        r = subprocess.run([ARGS.sctape, "plan", coeffs, "--n-part", str(n), "--grid", "8", "8", "8", "--kicks",
                            str(KICKS), "--dtype", "float64", "--strategy", "autograd", "--ranks", str(ranks)],
                           capture_output=True, text=True, timeout=60)
        rows = [line.split() for line in r.stdout.splitlines() if line.startswith("autograd ")]
        return r, (int(rows[0][4]) if r.returncode == 0 and len(rows) == 1 else None)
    n = CONFIG["n_particles"]
    for p in (2, 4):
        per_rank, alone = tape(ARGS.coeffs, n, p)[1], tape(ARGS.coeffs, -(-n // p), 1)[1]
        check(per_rank is not None and per_rank == alone,
              f"plan --ranks {p}: autograd tape per rank {per_rank} is its one-rank law at ceil(N/P) ({alone})")
    rank_coeffs = os.path.join(os.path.dirname(ARGS.coeffs), "coeffs_rank_cpu.json")
    r, _ = tape(rank_coeffs, n, 2)
    check(r.returncode == 2 and "no autograd law" in r.stderr and not r.stdout,
          f"plan --ranks 2 --strategy autograd with a rank sweep's COEFFS: exit 2, no autograd law "
          f"(exit {r.returncode}: {r.stderr.strip()[-200:]!r})")


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
    autograd_over_ranks("autograd_minmax", CONFIG)
    autograd_over_ranks("autograd_sigma_quad", SIGMA_QUAD)
    autograd_empty_rank()
    plan_autograd()

    def outside(c):  # found after the extents' reduction: every rank knows it
        c["space_charge"]["extent"] = {"mode": "sigma", "factor": [0.5, 0.5, 0.5]}
    failure("bad input at run time", 4, outside, "particles outside the grid")

    def outside_autograd(c):  # autograd's deposit checks the same reduced extents
        outside(c)
        c["strategy"] = "autograd"
    failure("bad input at run time, autograd", 4, outside_autograd, "particles outside the grid")
    # autograd's rank ops take host tensors: with the cuda backend it is refused over ranks (docs/mpi.md)
    failure("autograd on cuda over ranks", 2, lambda c: c.update(backend="cuda", strategy="autograd"),
            'runs over MPI ranks on the CPU backend only')

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
