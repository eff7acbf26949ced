#!/usr/bin/python3
"""Writes results/paper/README.md: each figure of the memory-scaling paper
(../shared/seeds in the suite's workspace; Dhamrait et al., PASC '26) beside
sctape's, with the paper's numbers and sctape's from the committed JSON.

    /usr/bin/python3 fit/paper_summary.py --coeffs results/coeffs_cpu.json \\
        [--timelines results/paper] [--lorentz-force F.json] [--free-expansion F.json] \\
        -o results/paper/README.md

Nothing here measures or fits: every number is read from the JSON that
scripts/main.sh wrote (the paper's numbers are quoted from its text). Bad
input is `paper_summary.py: error: ...` with exit code 2 and nothing written.
"""
import argparse
import json
import math
import os
import sys
import tempfile

STRATEGIES = ["autograd", "fused", "checkpoint", "reversible"]
DTYPES = ["float32", "float64"]
MEASURE = "alloc_delta_bytes"  # the paper's ΔM: the allocator's growth


class InputError(Exception):
    pass


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise InputError(f"cannot read '{path}': {e.strerror}")
    except ValueError as e:
        raise InputError(f"'{path}' is not valid JSON: {e}")


def number(obj, key, where):
    v = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        raise InputError(f"{where}: {key} must be a finite number, got {v!r}")
    return v


def coefficient(fits, strategy, dtype, scope, key, path):
    for f in fits:
        if (f.get("strategy"), f.get("dtype"), f.get("measure"), f.get("scope")) == (strategy, dtype, MEASURE, scope):
            return number(f, key, f"'{path}': fit {strategy}/{dtype}/{scope}")
    raise InputError(f"'{path}' has no {MEASURE} fit for {strategy}/{dtype}/{scope}")


def bytes_text(v):
    return "0" if abs(v) < 0.5 else f"{v:,.0f}"


# ---------------------------------------------------------------- sections

def coefficient_rows(coeffs, path):
    fits = coeffs.get("fits") if isinstance(coeffs, dict) else None
    if not isinstance(fits, list):
        raise InputError(f"'{path}' has no \"fits\" list")

    def row(label, scope, paper_part, paper_cells):
        cells = [label, paper_part, paper_cells]
        for dtype in DTYPES:
            part = [bytes_text(coefficient(fits, s, dtype, scope, "alpha_part_bytes", path)) for s in STRATEGIES]
            cell = [bytes_text(coefficient(fits, s, dtype, scope, "alpha_cells_bytes", path)) for s in STRATEGIES]
            cells.append(" / ".join(part))
            cells.append(" / ".join(cell))
        return "| " + " | ".join(cells) + " |"

    head = ["| figure: ΔM per kick of | paper α_part [B] | paper α_cells [B] | "
            "sctape float32 α_part [B] | sctape float32 α_cells [B] | sctape float64 α_part [B] | "
            "sctape float64 α_cells [B] |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    return head + [
        row("Figs. 2-3: the whole kick", "total", "1,400", "1,200"),
        row("Fig. 4: the integrated Green function", "green", "none (no N_part term)",
            "most of the kick's α_cells"),
        row("Fig. 5: charge deposition", "deposit", "≈ 550", "≈ 8"),
        row("Fig. 6: field gather", "gather", "most of the kick's α_part", "none (no N_cells term)"),
    ]


def write(path, text):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".paper-summary-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def bytes_at(events, time_s):
    """The allocator's level at time_s: the last event at or before it."""
    level = 0
    for e in events:
        if e["time_s"] > time_s:
            break
        level = e["current_bytes"]
    return level


def timeline_summary(path):
    doc = load(path)
    events = doc.get("events") if isinstance(doc, dict) else None
    kicks = doc.get("kicks") if isinstance(doc, dict) else None
    if not isinstance(events, list) or not events or not isinstance(kicks, list):
        raise InputError(f"'{path}' is not a TIMELINE of schema 2 (events and kicks lists)")
    for i, e in enumerate(events):
        number(e, "time_s", f"'{path}': events[{i}]")
        number(e, "current_bytes", f"'{path}': events[{i}]")
    events = sorted(events, key=lambda e: e["time_s"])
    forward = sorted((k for k in kicks if isinstance(k, dict) and k.get("backward") is False),
                     key=lambda k: number(k, "end_s", f"'{path}': kicks"))
    ends = [bytes_at(events, k["end_s"]) for k in forward]
    steps = [b - a for a, b in zip(ends, ends[1:])]
    return {"peak": max(e["current_bytes"] for e in events), "end": events[-1]["current_bytes"],
            "kicks": len(forward), "steps": steps}


def mib(v):
    return f"{v / 2**20:.2f}"


def timeline_rows(folder):
    forward = timeline_summary(os.path.join(folder, "timeline_forward.json"))
    rows = ["| run | kicks | peak above start [MiB] | growth per kick, kick to kick [MiB] | left after the run [MiB] |",
            "| --- | --- | --- | --- | --- |",
            f"| (a) without derivatives | {forward['kicks']} | {mib(forward['peak'])} | "
            f"{', '.join(mib(s) for s in forward['steps']) or '-'} | {mib(forward['end'])} |"]
    for strategy in STRATEGIES:
        t = timeline_summary(os.path.join(folder, f"timeline_{strategy}.json"))
        rows.append(f"| (b) reverse mode, {strategy} | {t['kicks']} | {mib(t['peak'])} | "
                    f"{', '.join(mib(s) for s in t['steps']) or '-'} | {mib(t['end'])} |")
    return rows


def lorentz_rows(path):
    doc = load(path)
    cases = doc.get("cases") if isinstance(doc, dict) else None
    if not isinstance(cases, list) or not cases:
        raise InputError(f"'{path}' has no \"cases\" list (write it with `sctape-validate lorentz_force`)")
    tolerance = number(doc, "tolerance_of_peak", f"'{path}'")
    rows = ["| γ | max \\|F − F_ref\\| / max \\|F_ref\\| along x | along z | tolerance |", "| --- | --- | --- | --- |"]
    for i, c in enumerate(cases):
        where = f"'{path}': cases[{i}]"
        x, z = number(c.get("along_x"), "max_error_of_peak", where), number(c.get("along_z"), "max_error_of_peak", where)
        rows.append(f"| {number(c, 'gamma', where):g} | {100 * x:.2f}% | {100 * z:.2f}% | {100 * tolerance:g}% |")
    return rows


def free_expansion_rows(path):
    doc = load(path)
    where = f"'{path}'"
    r, d = number(doc, "max_R_relative_error", where), number(doc, "max_dR_ds_relative_error", where)
    tr, td = number(doc, "tolerance_R_relative", where), number(doc, "tolerance_dR_ds_relative", where)
    n = doc.get("numerics", {})
    return ["| quantity | max relative error over the slice ends | tolerance |", "| --- | --- | --- |",
            f"| R(s) = √5 σx | {100 * r:.2f}% | {100 * tr:g}% |",
            f"| dR/ds (reverse mode) | {100 * d:.2f}% | {100 * td:g}% |",
            "",
            f"{n.get('particles', '?')} particles, {n.get('slices', '?')} slices over "
            f"{n.get('drift_length_m', float('nan')):.4f} m ({n.get('drift_length_choice', '')}), "
            f"strategy {n.get('strategy', '?')}, {n.get('dtype', '?')}."]


# ---------------------------------------------------------------- page

def page(args):
    coeffs = load(args.coeffs)
    out = ["# The memory-scaling paper, figure by figure",
           "",
           "Written by `scripts/main.sh` (`fit/paper_summary.py`) from the JSON in this folder and",
           "`results/coeffs_cpu.json`; the figures beside it are drawn by `fit/plot.py` from the same JSON.",
           "The paper is Dhamrait et al., *Memory scaling of reverse-mode differentiation in beam tracking",
           "with space charge* (PASC '26): Cheetah (PyTorch) on an A100; it does not state its dtype",
           "(Cheetah's default is float32). sctape's numbers are from this machine's CPU (host allocator).",
           "",
           "## Fig. 1: memory timeline of the Table 1 case",
           "",
           "10 nC, 250 MeV electrons, uniform ellipsoid R = L = 1 mm, 5.5 m drift, 1000 particles, 32³,",
           "3 slices, float32; gradients of σx,f with respect to radius, length, charge and energy in one",
           "backward pass (`examples/paper_table1.json`). Figures: `fig1_timeline_<strategy>.png`, kicks as",
           "dashed lines. The paper: without derivatives memory is allocated and freed in each kick with no",
           "net growth; with reverse mode it grows by the same increment every kick and falls in the backward",
           "pass.",
           ""]
    if args.timelines:
        out += timeline_rows(args.timelines)
        # the paper's whole-kick law at this case: what Cheetah would add per kick
        paper_step = 1400 * 1000 + 1200 * 32**3
        out += ["", f"The paper's law at this case (1.4 kB × 1000 + 1.2 kB × 32³) is {mib(paper_step)} MiB per kick."]
    out += ["",
            "## Figs. 2-6: ΔM per kick, α_part N_part + α_cells N_cells",
            "",
            "Allocator growth per kick in the forward pass with reverse mode, fitted over the sweep",
            "(`fig2_total_<dtype>`, `fig3_coefficients_<dtype>`, `fig4_green_<dtype>`, `fig5_deposit_<dtype>`,",
            "`fig6_gather_<dtype>`). sctape's entries read autograd / fused / checkpoint / reversible.",
            "sctape's autograd records what a PyTorch op-by-op code keeps; fused, checkpoint and",
            "reversible are the ways to need less (reversible keeps nothing per kick: 48 B per particle once).",
            ""]
    out += coefficient_rows(coeffs, args.coeffs)
    if args.lorentz_force:
        out += ["", "## Fig. 7: Lorentz force of a Gaussian bunch against Eqs. 7-8",
                "",
                "1 nC, σx = σy = 1 mm, σz = 1 µm, grid ±6σ (`fig7_lorentz_force`). The paper (10⁶ particles,",
                "128³) reports excellent agreement, without a number.", ""]
        out += lorentz_rows(args.lorentz_force)
    if args.free_expansion:
        out += ["", "## Fig. 8: free expansion of the cold uniform bunch against the envelope equation (Eq. 9)",
                "",
                "R(s) and dR/ds, dR/ds by reverse mode (`fig8_free_expansion`). The paper reports excellent",
                "agreement for both, without a number.", ""]
        out += free_expansion_rows(args.free_expansion)
    return "\n".join(out) + "\n"


def main(argv):
    p = argparse.ArgumentParser(prog="paper_summary.py",
                                description="Writes the memory-scaling paper's figures beside sctape's numbers "
                                            "(results/paper/README.md) from committed JSON.",
                                epilog="Exit codes: 0 written, 2 bad input (nothing written).")
    p.add_argument("--coeffs", required=True, metavar="COEFFS.json", help="`sctape fit` output (the CPU sweep's)")
    p.add_argument("--timelines", metavar="DIR", help="folder with timeline_forward.json and timeline_<strategy>.json")
    p.add_argument("--lorentz-force", metavar="F.json", help="`sctape-validate lorentz_force` output")
    p.add_argument("--free-expansion", metavar="F.json", help="`sctape-validate free_expansion` output")
    p.add_argument("-o", "--out", required=True, metavar="README.md", help="the page to write")
    args = p.parse_args(argv)
    try:
        text = page(args)
    except InputError as e:
        print(f"paper_summary.py: error: {e}", file=sys.stderr)
        return 2
    write(args.out, text)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
