#!/usr/bin/python3
"""Match a beam into a FODO channel with space charge by Gauss-Newton.

The channel is the cell of examples/fodo_ring.json (quadrupoles +-8 1/m^2,
1 m cells of 8 kicks, starting at the focusing quadrupole's centre, where
alpha = 0) repeated 125 times: 1000 space-charge kicks. The beam is an
uncorrelated waterbag of 10 MeV electrons; its bunch charge (150 pC) is
raised from fodo_ring.json's 10 pC until space charge depresses the phase
advance per cell by about 21% at the bunch centre (rms envelope equation,
smooth approximation; printed with the result). The beam matched at zero
current (beta_x = 3.22 m, beta_y = 2.24 m) is then visibly mismatched.

The four parameters p = (sigma_x_m, sigma_px, sigma_y_m, sigma_py) of the
initial beam are fitted, at the fixed rms emittance of fodo_ring.json
(3.1e-7 m per plane: sigma_u = sqrt(beta_u eps), sigma_pu = sqrt(eps/beta_u),
so the unknowns are beta_x and beta_y; with sizes and spreads free, the fit
lowers M by inflating the emittance, which weakens space charge), so that
the channel gives back the beam it got:

    M = sum over checkpoints c and u = x, y of (sigma_u(c)/sigma_u(0) - 1)^2
                                             + (sigma_pu(c)/sigma_pu(0) - 1)^2

The checkpoints are the channel's end (1000 kicks) and, by default, the ends
of cells 1 to 4 (--match-cells). The channel's end alone is not enough: a
mismatched beam's envelope oscillation can happen to return to its start
after 125 cells, and the bunch's slices (different tune depressions along
it) decohere; with the channel's end alone the fit lowered M below 1e-5 while the
envelope oscillates nearly as much as before (measured with the sizes and
spreads free: M 4.8e-3 -> 4e-6, oscillation +-8% -> +-7%). The first cells pin the periodic
(matched) solution of the cell; the channel's end keeps the whole channel.

Each checkpoint adds four squared residuals r_k, one per final moment. `sctape
track` returns the gradient of ONE objective per run, so the Jacobian
dr_k/dp_j takes one reverse-mode run per moment (objectives sigma_x,
sigma_px, sigma_y, sigma_py), each with the `reversible` strategy and the
gradients of all four parameters; the chain rule through sigma_u(0) (which
scales with its parameter) is applied here on the host. With the exact 4x4
Jacobian (chained once more to log-betas), Levenberg-Marquardt (Gauss-Newton
with a damping that grows when a step fails) converges in a few iterations.
It works in log-betas, so no size or spread can become negative, and caps
each step at a factor exp(0.3) in beta. A trial point is first tracked without gradients (cheap); only
an accepted point pays for the four gradient runs.

`reversible` keeps no tape per kick: one fixed-point state for the whole
channel. The RESULTs' memory figures (peak and tape) are recorded next to
what `fused` keeps for the same run: the matched beam's channel-end run once
more with strategy fused, measured (its quadrupole maps keep six columns each,
more than the drift law K*(6N + 2C)*w; docs/tape-accounting.md).

Validation: the beam before (matched at zero current) and after matching
is tracked without gradients through channels of 0, s, 2s, ... cells (one
short run per checkpoint, the same seeded beam each time), giving sigma_x,
sigma_y at those cell ends and the envelope's oscillation amplitude. The
zero-current beam is also tracked without space charge, where it must be
matched: that checks the channel and the checkpoint runs themselves.

Writes --out (default results/match_fodo.json) and, unless --no-plot, a
figure (results/plots/match_fodo.png and .svg; needs matplotlib).
--quick runs a tiny case (few particles, 4 cells, 2 iterations) for the test.
"""
import argparse
import concurrent.futures
import glob
import json
import math
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARAMETERS = ["sigma_x_m", "sigma_px", "sigma_y_m", "sigma_py"]
OBJECTIVES = ["sigma_x", "sigma_px", "sigma_y", "sigma_py"]  # the final moment of each parameter
EMITTANCE_M = 3.1e-7  # rms geometric emittance in x and y, as in fodo_ring.json
CELL_LENGTH_M = 1.0
KICKS_PER_CELL = 8
MAX_LOG_STEP = 0.3  # at most a 35% change of a beta per iteration


def fodo_cell():
    """The fodo_ring.json cell: half F quadrupole, drift, D quadrupole, drift, half F."""
    return [
        {"type": "quadrupole", "length_m": 0.05, "k1_per_m2": 8.0, "slices": 1},
        {"type": "drift", "length_m": 0.4, "slices": 2},
        {"type": "quadrupole", "length_m": 0.1, "k1_per_m2": -8.0, "slices": 2},
        {"type": "drift", "length_m": 0.4, "slices": 2},
        {"type": "quadrupole", "length_m": 0.05, "k1_per_m2": 8.0, "slices": 1},
    ]


# ---------------------------------------------------------------- linear optics

def matrix_product(a, b):
    return [[sum(a[i][k] * b[k][j] for k in range(2)) for j in range(2)] for i in range(2)]


def element_matrix(element, plane_sign):
    """2x2 transfer matrix of a drift or quadrupole (k > 0 focuses x; y sees -k)."""
    length = element["length_m"]
    k = plane_sign * element.get("k1_per_m2", 0.0)
    if k == 0:
        return [[1.0, length], [0.0, 1.0]]
    w = math.sqrt(abs(k))
    if k > 0:
        return [[math.cos(w * length), math.sin(w * length) / w], [-w * math.sin(w * length), math.cos(w * length)]]
    return [[math.cosh(w * length), math.sinh(w * length) / w], [w * math.sinh(w * length), math.cosh(w * length)]]


def zero_current_optics():
    """Phase advance per cell and beta at the cell start (alpha = 0 there), per plane."""
    optics = {}
    for plane, sign in (("x", 1), ("y", -1)):
        m = [[1.0, 0.0], [0.0, 1.0]]
        for element in fodo_cell():
            m = matrix_product(element_matrix(element, sign), m)
        mu = math.acos((m[0][0] + m[1][1]) / 2)
        optics[plane] = {"phase_advance_rad": mu, "beta_m": m[0][1] / math.sin(mu)}
    return optics


def beam_of_betas(betas):
    """(sigma_x_m, sigma_px, sigma_y_m, sigma_py) of the given emittance, alpha = 0."""
    beta_x, beta_y = betas
    return [math.sqrt(beta_x * EMITTANCE_M), math.sqrt(EMITTANCE_M / beta_x),
            math.sqrt(beta_y * EMITTANCE_M), math.sqrt(EMITTANCE_M / beta_y)]


# d log p / d log beta: sigma_u grows as beta^(1/2), sigma_pu as beta^(-1/2).
LOG_PARAMS_PER_LOG_BETA = [[0.5, 0.0], [-0.5, 0.0], [0.0, 0.5], [0.0, -0.5]]


def tune_depression(charge_C, sigma_tau_m, kinetic_energy_eV, optics):
    """1 - k/k0 at the bunch centre, smooth approximation of the rms envelope equation.

    A round KV-like beam of edge emittance 4*eps_rms in a channel of focusing
    k0 = mu0 / L_cell, with the generalized perveance K = 2 lambda r_e /
    (beta^2 gamma^3) of the waterbag's peak line density: k/k0 = sqrt(1 + u^2) - u,
    u = K / (2 * 4 eps_rms * k0). An estimate that sets the scale, not a tracked result.
    """
    electron_mass_eV, classical_radius_m, elementary_charge_C = 510998.95, 2.8179403262e-15, 1.602176634e-19
    gamma = 1 + kinetic_energy_eV / electron_mass_eV
    beta2 = 1 - 1 / gamma ** 2
    # The 6D waterbag (a uniform 6-ball of radius sqrt(8) sigma) projects onto tau as
    # (1 - t^2/R^2)^(5/2); its peak density is 1 / (R * 15 pi / 48).
    peak_line_density = charge_C / elementary_charge_C / (math.sqrt(8) * sigma_tau_m * 15 * math.pi / 48)
    perveance = 2 * peak_line_density * classical_radius_m / (beta2 * gamma ** 3)
    k0 = optics["x"]["phase_advance_rad"] / CELL_LENGTH_M
    u = perveance / (2 * 4 * EMITTANCE_M * k0)
    return {"perveance": perveance, "k_over_k0": math.sqrt(1 + u * u) - u,
            "tune_depression": 1 - (math.sqrt(1 + u * u) - u)}


# ---------------------------------------------------------------- running sctape

def find_sctape(explicit):
    if explicit:
        return explicit
    built = sorted(glob.glob(os.path.join(ROOT, "build", "*", "cli", "sctape")), key=os.path.getmtime)
    if built:
        return built[-1]  # the most recently built preset
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts", "build.sh")], check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return os.path.join(ROOT, out, "cli", "sctape")


def channel_config(case, params, cells, objective=None, space_charge=True):
    config = {
        "kinetic_energy_eV": case["kinetic_energy_eV"],
        "bunch_charge_C": case["bunch_charge_C"],
        "n_particles": case["n_particles"],
        "seed": 1,  # every run starts from the same reference sample, scaled by params
        "distribution": {"type": "waterbag", "sigma_x_m": params[0], "sigma_px": params[1],
                         "sigma_y_m": params[2], "sigma_py": params[3],
                         "sigma_tau_m": case["sigma_tau_m"], "sigma_delta": case["sigma_delta"]},
        "lattice": [{"type": "repeat", "count": cells, "lattice": fodo_cell()}],
        "space_charge": {"enabled": space_charge, "grid": case["grid"]},
        "dtype": "float64",
        "threads": 1,  # runs go in parallel instead (--jobs)
    }
    if objective:
        config.update({"strategy": "reversible", "objective": objective,
                       "gradients": ["distribution." + p for p in PARAMETERS]})
    return config


def track(sctape, workdir, name, config):
    """One `sctape track`; returns its RESULT."""
    config_path = os.path.join(workdir, name + ".json")
    result_path = os.path.join(workdir, name + ".result.json")
    with open(config_path, "w") as f:
        json.dump(config, f)
    run = subprocess.run([sctape, "track", config_path, "--out", result_path, "--quiet"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit("sctape track %s failed (exit %d):\n%s" % (config_path, run.returncode, run.stderr))
    with open(result_path) as f:
        return json.load(f)


def track_all(pool, sctape, workdir, named_configs):
    futures = [pool.submit(track, sctape, workdir, name, config) for name, config in named_configs]
    return [future.result() for future in futures]


def rms(result, which):
    return [result["moments"][which]["rms"][p] for p in PARAMETERS]


def residuals(result):
    """r_k = sigma_k(end)/sigma_k(0) - 1 for the four moments."""
    return [end / start - 1 for end, start in zip(rms(result, "final"), rms(result, "initial"))]


def mismatch(r):
    return sum(v * v for v in r)


def jacobian_in_log_params(gradient_results, params):
    """d r_k / d log p_j from the four reverse-mode RESULTs (one per moment k).

    r_k = s_k/s0_k - 1 with s0_k proportional to p_k (the sample is scaled), so
    d r_k/d p_j = (d s_k/d p_j)/s0_k - s_k/s0_k * delta_kj / p_k; times p_j for log p_j.
    """
    jacobian = []
    for k, result in enumerate(gradient_results):
        start, end = rms(result, "initial")[k], rms(result, "final")[k]
        gradients = result["reverse_mode"]["gradients"]
        row = []
        for j, p in enumerate(PARAMETERS):
            d_end = gradients["distribution." + p]
            d_ratio = d_end / start - (end / start / params[k] if j == k else 0.0)
            row.append(d_ratio * params[j])
        jacobian.append(row)
    return jacobian


def solve(a, b):
    """Gaussian elimination with partial pivoting (4x4)."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        pivot = max(range(c, n), key=lambda i: abs(m[i][c]))
        m[c], m[pivot] = m[pivot], m[c]
        for i in range(c + 1, n):
            f = m[i][c] / m[c][c]
            for j in range(c, n + 1):
                m[i][j] -= f * m[c][j]
    x = [0.0] * n
    for i in reversed(range(n)):
        x[i] = (m[i][n] - sum(m[i][j] * x[j] for j in range(i + 1, n))) / m[i][i]
    return x


def jacobian_in_log_betas(jacobian_log_params):
    return [[sum(row[i] * LOG_PARAMS_PER_LOG_BETA[i][j] for i in range(4)) for j in range(2)]
            for row in jacobian_log_params]


def levenberg_marquardt_step(jacobian, r, damping):
    """Solve (J^T J + damping diag(J^T J)) d = -J^T r; cap |d_j| at MAX_LOG_STEP."""
    n, rows = len(jacobian[0]), range(len(r))
    jtj = [[sum(jacobian[k][i] * jacobian[k][j] for k in rows) for j in range(n)] for i in range(n)]
    jtr = [sum(jacobian[k][i] * r[k] for k in rows) for i in range(n)]
    for i in range(n):
        jtj[i][i] *= 1 + damping
    step = solve(jtj, [-v for v in jtr])
    largest = max(abs(v) for v in step)
    return [v * MAX_LOG_STEP / largest for v in step] if largest > MAX_LOG_STEP else step


def memory_record(result):
    """What the reversible run held."""
    memory = result["reverse_mode"]["memory"]
    return {"kicks": memory["kicks"], "reversible_peak_bytes": memory["peak_bytes"],
            "reversible_tape_bytes": memory["tape_bytes"]}


def fused_memory(sctape, workdir, case, betas, channel_cells):
    """The channel-end run of `betas` with strategy fused: its measured tape and peak."""
    config = channel_config(case, beam_of_betas(betas), channel_cells, OBJECTIVES[0])
    config["strategy"] = "fused"
    memory = track(sctape, workdir, "fused_channel_end", config)["reverse_mode"]["memory"]
    return {"fused_tape_bytes": memory["tape_bytes"], "fused_peak_bytes": memory["peak_bytes"]}


# ---------------------------------------------------------------- optimization

def progress(start_time, done, total, text):
    elapsed = time.time() - start_time
    left = elapsed / done * (total - done) if done else float("nan")
    print("[match_fodo] %s  (%.0f s elapsed, at most ~%.0f s left)" % (text, elapsed, left), flush=True)


def checkpoint_runs(case, params, checkpoints, tag, with_gradients):
    """(name, config) of every run one evaluation needs: per checkpoint, four
    reverse-mode runs (one per moment) or one forward run."""
    objectives = OBJECTIVES if with_gradients else [None]
    return [("%s_c%03d_%s" % (tag, cells, objective or "forward"), channel_config(case, params, cells, objective))
            for cells in checkpoints for objective in objectives]


def evaluate(pool, sctape, workdir, case, betas, checkpoints, tag, with_gradients):
    """Residuals of every checkpoint (and their Jacobian in log-betas, and the RESULTs)."""
    params = beam_of_betas(betas)
    results = track_all(pool, sctape, workdir, checkpoint_runs(case, params, checkpoints, tag, with_gradients))
    per_checkpoint = 4 if with_gradients else 1
    r, jacobian = [], []
    for c in range(len(checkpoints)):
        runs = results[c * per_checkpoint:(c + 1) * per_checkpoint]
        r += residuals(runs[0])
        if with_gradients:
            jacobian += jacobian_in_log_betas(jacobian_in_log_params(runs, params))
    return r, jacobian, results


def run_seconds(results):
    return sum(res["timing"]["total_s"] + res.get("reverse_mode", {}).get("timing", {}).get("forward_s", 0)
               + res.get("reverse_mode", {}).get("timing", {}).get("backward_s", 0) for res in results)


def optimize(pool, sctape, workdir, case, start_betas, checkpoints, args):
    """Levenberg-Marquardt in log-betas; returns the iteration history."""
    betas, damping, history = list(start_betas), 1e-3, []
    start_time = time.time()
    for iteration in range(args.iterations + 1):
        tag = "it%02d" % iteration
        r, jacobian, results = evaluate(pool, sctape, workdir, case, betas, checkpoints, tag, True)
        params = beam_of_betas(betas)
        channel_end = results[0]  # the first checkpoint is the whole channel
        history.append({"iteration": iteration, "mismatch": mismatch(r),
                        "mismatch_channel_end": mismatch(residuals(channel_end)),
                        "beta_x_m": betas[0], "beta_y_m": betas[1],
                        "parameters": dict(zip(PARAMETERS, params)), "residuals": r,
                        "gradient_runs": len(results), "gradient_runs_cpu_s": run_seconds(results),
                        "memory": memory_record(channel_end)})
        progress(start_time, iteration + 1, args.iterations + 1,
                 "iteration %d/%d: M = %.3e (channel end alone %.3e), beta_x %.3f m, beta_y %.3f m" % (
                     iteration, args.iterations, mismatch(r), history[-1]["mismatch_channel_end"], *betas))
        converged = iteration > 0 and history[-2]["mismatch"] - mismatch(r) < 0.01 * history[-2]["mismatch"]
        if iteration == args.iterations or mismatch(r) < args.tolerance or converged:
            break  # converged: M fell by less than 1% in the last iteration
        betas, damping = next_accepted_point(pool, sctape, workdir, case, betas, jacobian, r, damping,
                                             checkpoints, tag)
        if betas is None:
            print("[match_fodo] no step lowers M further: stopping", flush=True)
            break
    return history


def next_accepted_point(pool, sctape, workdir, case, betas, jacobian, r, damping, checkpoints, tag):
    """Raise the damping until a trial point, tracked without gradients, lowers M."""
    for attempt in range(6):
        step = levenberg_marquardt_step(jacobian, r, damping)
        trial = [b * math.exp(d) for b, d in zip(betas, step)]
        trial_r, _, _ = evaluate(pool, sctape, workdir, case, trial, checkpoints, "%s_trial%d" % (tag, attempt), False)
        if mismatch(trial_r) < mismatch(r):
            return trial, damping / 3
        damping = max(damping, 1e-3) * 10
    return None, damping


# ---------------------------------------------------------------- validation

def envelope(pool, sctape, workdir, case, params, cell_ends, name, space_charge=True):
    """sigma_x, sigma_y at cell 0 and the given cell ends: one forward run per checkpoint."""
    results = track_all(pool, sctape, workdir, [
        ("%s_%03d" % (name, cells), channel_config(case, params, cells, space_charge=space_charge))
        for cells in cell_ends])
    sigma_x = [results[0]["moments"]["initial"]["rms"]["sigma_x_m"]]
    sigma_y = [results[0]["moments"]["initial"]["rms"]["sigma_y_m"]]
    sigma_x += [res["moments"]["final"]["rms"]["sigma_x_m"] for res in results]
    sigma_y += [res["moments"]["final"]["rms"]["sigma_y_m"] for res in results]
    cell_ends = [0] + cell_ends
    return {"cells": cell_ends, "sigma_x_m": sigma_x, "sigma_y_m": sigma_y,
            "oscillation_x": oscillation(sigma_x), "oscillation_y": oscillation(sigma_y)}


def oscillation(values):
    """Half the peak-to-peak spread relative to the mean: the envelope's relative amplitude."""
    return (max(values) - min(values)) / 2 / (sum(values) / len(values))


# ---------------------------------------------------------------- figure

def plot(summary, directory):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax_m, ax_env) = plt.subplots(1, 2, figsize=(11, 4.2))
    iterations = summary["iterations"]
    ax_m.semilogy([it["iteration"] for it in iterations], [it["mismatch"] for it in iterations], "o-")
    ax_m.set_xlabel("Gauss-Newton iteration")
    ax_m.set_ylabel("mismatch M")
    ax_m.set_title("mismatch M (cells %s; %d kicks in all)" % (
        ", ".join(str(c) for c in sorted(summary["checkpoint_cells"])), summary["channel"]["kicks"]), fontsize=10)
    ax_m.grid(True, which="both", alpha=0.3)
    styles = {"zero_current_matched_no_space_charge": ("0.6", ":", "zero-current match, no space charge"),
              "zero_current_matched": ("C3", "--", "zero-current match (before)"),
              "matched": ("C0", "-", "matched with space charge (after)")}
    for key, (color, line, label) in styles.items():
        env = summary["envelopes"][key]
        s = [c * CELL_LENGTH_M for c in env["cells"]]
        ax_env.plot(s, [v * 1e3 for v in env["sigma_x_m"]], color=color, ls=line, marker="o", ms=2.5,
                    label=label + ": x")
        ax_env.plot(s, [v * 1e3 for v in env["sigma_y_m"]], color=color, ls=line, marker="s", ms=2.5,
                    alpha=0.6, label=label + ": y")
    ax_env.set_xlabel("s at cell ends [m]")
    ax_env.set_ylabel("rms size [mm]")
    ax_env.set_title("rms sizes at cell ends (x: circles, y: squares)", fontsize=10)
    ax_env.legend(fontsize=7)
    ax_env.grid(True, alpha=0.3)
    fig.tight_layout()
    os.makedirs(directory, exist_ok=True)
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(directory, "match_fodo." + ext), dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- main

def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sctape", help="the sctape binary (default: the newest build/*/cli/sctape, "
                                         "else what scripts/build.sh builds)")
    parser.add_argument("--out", default=os.path.join(ROOT, "results", "match_fodo.json"))
    parser.add_argument("--plot-dir", default=os.path.join(ROOT, "results", "plots"))
    parser.add_argument("--no-plot", action="store_true", help="write no figure")
    parser.add_argument("--quick", action="store_true",
                        help="tiny case for the test: 300 particles, 8^3, 4 cells, 2 iterations, no plot")
    parser.add_argument("--cells", type=int, default=125, help="FODO cells (8 kicks each); default 125")
    parser.add_argument("--particles", type=int, default=2000)
    parser.add_argument("--grid", type=int, default=8, help="space-charge grid nodes per axis")
    parser.add_argument("--charge-pC", type=float, default=150.0)
    parser.add_argument("--iterations", type=int, default=8, help="most Gauss-Newton iterations")
    parser.add_argument("--tolerance", type=float, default=1e-5, help="stop when M is below this")
    parser.add_argument("--match-cells", default="1,2,3,4",
                        help="cell ends whose moments M also compares with the start, besides the channel's "
                             "end (comma-separated; '' for the channel's end alone)")
    parser.add_argument("--dense-cells", type=int, default=30,
                        help="validation: envelope at every cell end up to this one, then every 10th")
    parser.add_argument("--jobs", type=int, default=2, help="sctape runs at once (one thread each)")
    args = parser.parse_args()
    if args.quick:
        args.cells, args.particles, args.iterations, args.dense_cells, args.no_plot = 4, 300, 2, 2, True
        args.match_cells = "1"
    return args


def main():
    args = parse_args()
    sctape = find_sctape(args.sctape)
    case = {"kinetic_energy_eV": 1e7, "bunch_charge_C": args.charge_pC * 1e-12, "n_particles": args.particles,
            "grid": [args.grid] * 3, "sigma_tau_m": 1e-3, "sigma_delta": 1e-4}
    optics = zero_current_optics()
    depression = tune_depression(case["bunch_charge_C"], case["sigma_tau_m"], case["kinetic_energy_eV"], optics)
    start_betas = [optics["x"]["beta_m"], optics["y"]["beta_m"]]
    start = beam_of_betas(start_betas)
    print("[match_fodo] %s; %d cells = %d kicks, %d particles, %s grid, %.0f pC: tune depression ~%.0f%%" % (
        sctape, args.cells, args.cells * KICKS_PER_CELL, args.particles, case["grid"], args.charge_pC,
        100 * depression["tune_depression"]), flush=True)
    began = time.time()
    with tempfile.TemporaryDirectory(prefix="match_fodo_") as workdir, \
            concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        # The whole channel first: its runs are the longest, so they start first.
        checkpoints = [args.cells] + sorted({int(c) for c in args.match_cells.split(",")
                                             if c.strip() and 0 < int(c) < args.cells})
        history = optimize(pool, sctape, workdir, case, start_betas, checkpoints, args)
        optimization_s = time.time() - began
        matched = [history[-1]["parameters"][p] for p in PARAMETERS]
        cell_ends = sorted(set(list(range(1, min(args.dense_cells, args.cells) + 1))
                               + list(range(10, args.cells + 1, 10)) + [args.cells]))
        print("[match_fodo] validation: %d forward runs per beam at cell ends %s" % (len(cell_ends), cell_ends),
              flush=True)
        envelopes = {
            "zero_current_matched_no_space_charge": envelope(pool, sctape, workdir, case, start, cell_ends,
                                                             "free", space_charge=False),
            "zero_current_matched": envelope(pool, sctape, workdir, case, start, cell_ends, "before"),
            "matched": envelope(pool, sctape, workdir, case, matched, cell_ends, "after")}
        fused = fused_memory(sctape, workdir, case, [history[-1]["beta_x_m"], history[-1]["beta_y_m"]], args.cells)
    summary = {
        "schema_version": 1,
        "what": "Gauss-Newton (Levenberg-Marquardt, log-parameters) matching of a waterbag beam into a FODO "
                "channel with space charge; gradients by sctape's reversible strategy",
        "sctape": sctape,
        "channel": {"cells": args.cells, "kicks": args.cells * KICKS_PER_CELL, "cell_length_m": CELL_LENGTH_M,
                    "cell": fodo_cell()},
        "beam": {"n_particles": args.particles, "grid": case["grid"], "bunch_charge_C": case["bunch_charge_C"],
                 "kinetic_energy_eV": case["kinetic_energy_eV"], "sigma_tau_m": case["sigma_tau_m"],
                 "sigma_delta": case["sigma_delta"], "emittance_rms_m": EMITTANCE_M},
        "zero_current_optics": optics,
        "space_charge_estimate": depression,
        "mismatch_definition": "M = sum over the checkpoints c and u = x, y of (sigma_u(c)/sigma_u(0) - 1)^2 "
                               "+ (sigma_pu(c)/sigma_pu(0) - 1)^2; mismatch_channel_end: the last checkpoint's term",
        "checkpoint_cells": checkpoints,
        "mismatch_channel_end_before": history[0]["mismatch_channel_end"],
        "mismatch_channel_end_after": history[-1]["mismatch_channel_end"],
        "mismatch_before": history[0]["mismatch"],
        "mismatch_after": history[-1]["mismatch"],
        "beta_m_before": {"x": history[0]["beta_x_m"], "y": history[0]["beta_y_m"]},
        "beta_m_after": {"x": history[-1]["beta_x_m"], "y": history[-1]["beta_y_m"]},
        "parameters_before": history[0]["parameters"],
        "parameters_after": history[-1]["parameters"],
        "iterations": history,
        "envelopes": envelopes,
        "envelope_oscillation_before": {"x": envelopes["zero_current_matched"]["oscillation_x"],
                                        "y": envelopes["zero_current_matched"]["oscillation_y"]},
        "envelope_oscillation_after": {"x": envelopes["matched"]["oscillation_x"],
                                       "y": envelopes["matched"]["oscillation_y"]},
        "memory": dict(history[-1]["memory"], **fused),
        "optimization_s": optimization_s,
        "total_s": time.time() - began,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=1)
    if not args.no_plot:
        plot(summary, args.plot_dir)
    print("[match_fodo] M %.3e -> %.3e in %d iterations; envelope oscillation x %.1f%% -> %.1f%%, "
          "y %.1f%% -> %.1f%%; reversible peak %.2f MB vs fused tape %.1f MB; %.0f s -> %s" % (
              summary["mismatch_before"], summary["mismatch_after"], len(history) - 1,
              100 * summary["envelope_oscillation_before"]["x"], 100 * summary["envelope_oscillation_after"]["x"],
              100 * summary["envelope_oscillation_before"]["y"], 100 * summary["envelope_oscillation_after"]["y"],
              summary["memory"]["reversible_peak_bytes"] / 1e6,
              summary["memory"]["fused_tape_bytes"] / 1e6, summary["total_s"], args.out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
