#!/usr/bin/python3
"""Plots of the scaling suite, drawn from JSON only (SWEEP.json from
sctape-bench, COEFFS.json from `sctape fit`, optional TIMELINE.json files).

    /usr/bin/python3 fit/plot.py SWEEP.json COEFFS.json [--timeline T.json ...] [-o results/plots]
    /usr/bin/python3 fit/plot.py SWEEP.json COEFFS.json --paper --paper-timelines results/paper \
        --lorentz-force LF.json --free-expansion FE.json -o results/paper

Writes PNG and SVG per figure:
  law_<strategy>_<dtype>_<measure>    ΔM per kick vs N_part at fixed N_cells and vs N_cells at
                                      fixed N_part, with the fitted law (paper Fig. 2)
  coefficients_<dtype>_<measure>      α_part and α_cells per substep and strategy (paper Fig. 3)
  timeline_<strategy>_<dtype>         memory vs time, forward/backward, substep bands (paper Fig. 1)
  kicks_<dtype>                       tape and peak bytes vs N_kicks with the fitted lines
  timing_<dtype>                      forward and backward time per strategy
  long_lattice_<dtype>                with --long-lattice RUNS.json: peak and tape vs N_kicks, log-log
  fig1_timeline_<strategy>            with --paper-timelines DIR: the paper's Fig. 1, (a) memory vs time
                                      without derivatives, (b) in reverse mode, kicks as dashed lines
  fig2_total_<dtype> ... fig6_gather_<dtype>  with --paper: the paper's Figs. 2-6 (ΔM per kick of the
                                      whole kick, coefficients, Green function, deposit, gather)
  fig7_lorentz_force                  Lorentz force in a Gaussian bunch vs Eqs. 7-8 (paper Fig. 7;
                                      --lorentz-force, from `sctape-validate lorentz_force`)
  fig8_free_expansion                 R(s) and dR/ds of a cold uniform bunch vs Eq. 9 (paper Fig. 8;
                                      --free-expansion, from `sctape-validate free_expansion`)

Strategies missing from one of the inputs are drawn from what there is (data
without a fit line, or skipped with a message); nothing here recomputes a fit.
Run it with Debian's /usr/bin/python3 (python3-matplotlib).

Every input is checked before anything is drawn: a value a figure uses that is
not a finite number (NaN, Infinity and 1e999 are valid to Python's json), a
label that is not a plain name, or a list that is not a list of objects is
`plot.py: error: 'FILE': KEY ...` with exit code 2, and nothing is written.
"""
import argparse
import json
import math
import os
import re
import shutil
import sys
import tempfile
from collections import OrderedDict

SUBSTEPS = ["s_to_t", "deposit", "green", "convolve", "field", "gather", "push", "t_to_s", "drift"]
MEASURES = {"tape_bytes": ("tape_bytes", "tape bytes per kick"),
            "alloc_delta_bytes": ("alloc_delta_bytes", "allocator ΔM per kick")}
SUBSTEP_COLORS = {name: f"C{i}" for i, name in enumerate(SUBSTEPS)}
BAR_FLOOR = 0.1  # bytes: bottom of the log axes of the coefficient bars


class InputError(Exception):
    """Bad input: reported as `plot.py: error: ...`, exit code 2."""


# ---------------------------------------------------------------- input

def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise InputError(f"cannot read '{path}': {e.strerror}")
    except RecursionError:
        raise InputError(f"'{path}' is nested too deeply")
    except ValueError as e:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
        raise InputError(f"'{path}' is not valid JSON: {e}")


# Python's json accepts NaN, Infinity and 1e999 (inf); matplotlib would draw
# them, or fail half way with some files written. Every value a figure uses
# is checked here, before anything is drawn.

SAFE_NAME = re.compile(r"^[A-Za-z0-9_.:+-]+$")  # names become parts of file names
SWEEP_NUMBERS = (["N_part", "N_cells", "N_kicks", "forward_ms", "backward_ms", "tape_bytes_total", "peak_bytes_total"]
                 + [m[0] for m in MEASURES.values()]
                 + [f"{p}{s}_bytes" for p in ("tape_", "alloc_") for s in SUBSTEPS])
FIT_NUMBERS = ["alpha_part_bytes", "alpha_part_stderr_bytes", "alpha_cells_bytes", "alpha_cells_stderr_bytes",
               "alpha_0_bytes", "alpha_0_stderr_bytes", "max_relative_residual", "linearity_p_value"]
KICK_FIT_NUMBERS = ["N_part", "N_cells", "slope_bytes_per_kick", "slope_stderr_bytes_per_kick", "intercept_bytes",
                    "intercept_stderr_bytes", "max_relative_residual", "linearity_p_value"]


def shown(value):
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_number(obj, key, where, nullable=True, positive=False):
    """obj[key], if present, is a finite number (or null when nullable); raises InputError naming where.key."""
    if key not in obj or (nullable and obj[key] is None):
        return
    v = obj[key]
    if not is_number(v) or not math.isfinite(v) or (positive and not v > 0):
        need = "a positive finite number" if positive else "a finite number" + (" or null" if nullable else "")
        raise InputError(f"{where}.{key} must be {need}, got {shown(v)}")


def check_label(obj, key, where):
    """obj[key], if present, is null or a name usable in a file name."""
    v = obj.get(key)
    if v is not None and not (isinstance(v, str) and SAFE_NAME.match(v)):
        raise InputError(f"{where}.{key} must be null or a name of letters, digits and _.:+-, got {shown(v)}")


def check_list_of_objects(doc, key, where):
    items = doc.get(key)
    if not isinstance(items, list):
        raise InputError(f"{where}.{key} must be a list, got {shown(items)}")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(f"{where}.{key}[{i}] must be an object, got {shown(item)}")
    return items


def sweep_entries(sweep, path):
    """kick_memory runs (iterations, no errors), first of each name, with strategy and dtype from the name."""
    if not isinstance(sweep, dict) or not isinstance(sweep.get("benchmarks"), list):
        raise InputError(f"'{path}': SWEEP is not a Google Benchmark JSON (no \"benchmarks\" list)")
    entries, seen = [], set()
    for i, b in enumerate(check_list_of_objects(sweep, "benchmarks", f"'{path}'")):
        name = b.get("name", "")
        where = f"'{path}': benchmarks[{i}]"
        if not isinstance(name, str):
            raise InputError(f"{where}.name must be a string, got {shown(name)}")
        parts = name.split("/")
        if not name.startswith("kick_memory/") or len(parts) < 3 or name in seen:
            continue
        if b.get("run_type", "iteration") != "iteration" or b.get("error_occurred"):
            continue
        if not all(SAFE_NAME.match(part) for part in parts[1:3]):
            raise InputError(f"{where}.name: strategy and dtype must be names of letters, digits and _.:+-, got {shown(name)}")
        for key in ("N_part", "N_cells", "N_kicks"):
            if key not in b:
                raise InputError(f"sweep entry '{name}' lacks N_part/N_cells/N_kicks ({where}.{key})")
            check_number(b, key, where, nullable=False, positive=True)
        for key in SWEEP_NUMBERS:
            check_number(b, key, where, nullable=False)
        if "ranks" in b:  # a rank sweep (bench/rank_sweep.py): its law is in rank 0's share, as `sctape fit` fits it
            if "N_part_rank" not in b:
                raise InputError(f"sweep entry '{name}' has ranks but no N_part_rank ({where})")
            check_number(b, "N_part_rank", where, nullable=False, positive=True)
            b = dict(b, N_part=b["N_part_rank"])
        seen.add(name)
        entries.append(dict(b, strategy=parts[1], dtype=parts[2]))
    if not entries:
        raise InputError(f"'{path}': SWEEP has no kick_memory measurements")
    return entries


def coeff_fits(coeffs, path):
    if not isinstance(coeffs, dict) or not isinstance(coeffs.get("fits"), list):
        raise InputError(f"'{path}': COEFFS has no \"fits\" list (write it with `sctape fit SWEEP.json -o COEFFS.json`)")
    fits = check_list_of_objects(coeffs, "fits", f"'{path}'")
    kick_fits = check_list_of_objects(coeffs, "kick_fits", f"'{path}'") if "kick_fits" in coeffs else []
    for name, rows, numbers in (("fits", fits, FIT_NUMBERS), ("kick_fits", kick_fits, KICK_FIT_NUMBERS)):
        for i, row in enumerate(rows):
            where = f"'{path}': {name}[{i}]"
            for key in ("strategy", "dtype", "measure", "scope", "code"):
                check_label(row, key, where)
            for key in numbers:
                check_number(row, key, where)
    return fits, kick_fits


def unique(values):
    return list(OrderedDict.fromkeys(values))


def find_fit(fits, strategy, dtype, measure, scope):
    for f in fits:
        if (f.get("strategy"), f.get("dtype"), f.get("measure"), f.get("scope")) == (strategy, dtype, measure, scope):
            return f
    return None


def law_value(fit, n_part, n_cells):
    """The fitted law at (N_part, N_cells); None when the fit has no coefficients."""
    if fit is None or fit.get("alpha_part_bytes") is None or fit.get("alpha_cells_bytes") is None:
        return None
    return fit["alpha_part_bytes"] * n_part + fit["alpha_cells_bytes"] * n_cells + (fit.get("alpha_0_bytes") or 0)


# ---------------------------------------------------------------- output

def save(fig, out_dir, stem, written):
    for ext in ("png", "svg"):
        path = os.path.join(out_dir, f"{stem}.{ext}")
        # no dates in the files: regenerating identical plots gives identical files
        metadata = {"Date": None} if ext == "svg" else {"Software": None}
        fig.savefig(path, dpi=130, bbox_inches="tight", metadata=metadata)
        written.append(path)
    plt.close(fig)


def bytes_label(v):
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.3g} B"


# ---------------------------------------------------------------- Fig. 2: the law

def law_panel(ax, points, fit, x_key, group_key, x_label, group_label, legend=True):
    """Data vs x_key, one colour per value of group_key, with the fitted law as lines."""
    groups = sorted(unique(p[group_key] for p in points))
    for i, g in enumerate(groups):
        pts = sorted((p for p in points if p[group_key] == g), key=lambda p: p[x_key])
        color = f"C{i % 10}"
        ax.plot([p[x_key] for p in pts], [p["y"] for p in pts], "o", color=color,
                label=f"{group_label} = {g:.0f}")
        xs = sorted(unique(p[x_key] for p in pts))
        if fit is not None and len(xs) >= 1:
            lo, hi = min(xs), max(xs)
            grid = [lo * (hi / lo) ** (k / 40) for k in range(41)] if hi > lo > 0 else [lo, hi]
            ys = [law_value(fit, x, g) if x_key == "N_part" else law_value(fit, g, x) for x in grid]
            if ys[0] is not None:
                ax.plot(grid, ys, "-", color=color, alpha=0.7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(x_label)
    ax.grid(True, which="both", alpha=0.3)
    if legend:
        ax.legend(fontsize=7)


def law_kicks(entries, strategy, dtype):
    """The N_kicks most runs of a strategy share: the N_part x grid sweep (as `sctape fit`)."""
    counts = {}
    for e in entries:
        if e["strategy"] == strategy and e["dtype"] == dtype:
            counts[e["N_kicks"]] = counts.get(e["N_kicks"], 0) + 1
    return max(sorted(counts), key=lambda k: counts[k]) if counts else None


def law_points(entries, strategy, dtype, counter):
    """(N_part, N_cells, y = counter) of the N_part x grid sweep, where the counter is > 0 (log axes)."""
    kicks = law_kicks(entries, strategy, dtype)
    return [dict(N_part=e["N_part"], N_cells=e["N_cells"], y=e[counter]) for e in entries
            if e["strategy"] == strategy and e["dtype"] == dtype and e["N_kicks"] == kicks
            and isinstance(e.get(counter), (int, float)) and e[counter] > 0]


def particles_axis(entries, short=False):
    """The law's particles: the bunch's, or in a rank sweep rank 0's share."""
    per_rank = any("ranks" in e for e in entries)
    if short:
        return "N_part per rank" if per_rank else "N_part"
    return "N_part per rank (⌈N_part / ranks⌉, rank 0)" if per_rank else "N_part (macro-particles)"


def plot_law(entries, fits, strategy, dtype, measure, out_dir, written):
    counter, label = MEASURES[measure]
    points = law_points(entries, strategy, dtype, counter)
    if len({(p["N_part"], p["N_cells"]) for p in points}) < 2:
        print(f"plot.py: {strategy}/{dtype}: fewer than 2 sweep points with {counter} > 0: law plot skipped",
              file=sys.stderr)
        return
    fit = find_fit(fits, strategy, dtype, measure, "total")
    if law_value(fit, 1, 1) is None:
        print(f"plot.py: no fit for {strategy}/{dtype}/{measure} in COEFFS: data only", file=sys.stderr)
        fit = None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 8))
    law_panel(top, points, fit, "N_part", "N_cells", particles_axis(entries), "N_cells")
    law_panel(bottom, points, fit, "N_cells", "N_part", "N_cells (physical grid)", particles_axis(entries, short=True))
    for ax in (top, bottom):
        ax.set_ylabel(f"{label} [B]")
    title = f"{strategy}, {dtype}: {label}"
    if fit is not None:
        title += f"\nα_part = {fit['alpha_part_bytes']:.4g} B, α_cells = {fit['alpha_cells_bytes']:.4g} B"
        if fit.get("max_relative_residual") is not None:
            title += f", max |rel. res.| = {fit['max_relative_residual']:.2g}"
    top.set_title(title, fontsize=10)
    save(fig, out_dir, f"law_{strategy}_{dtype}_{measure}", written)


# ---------------------------------------------------------------- Figs. 2, 4-6 in the paper's layout

# The paper measured ΔM with the allocator (torch.cuda.memory_allocated), so
# its figures use the allocator's growth; the tape bytes are in results/plots.
PAPER_MEASURE = "alloc_delta_bytes"
PAPER_LAW_FIGURES = (("fig2", "total", "the whole kick"),
                     ("fig4", "green", "the integrated Green function"),
                     ("fig5", "deposit", "charge deposition"),
                     ("fig6", "gather", "field gather"))
PAPER_STRATEGY_ORDER = ["autograd", "fused", "checkpoint", "reversible"]  # the paper's case (autograd) first


def coefficient_label(v):
    """Bytes with 3 digits; round-off of a zero coefficient (|v| < 1e-6 B) shows as 0."""
    return "0 B" if abs(v) < 1e-6 else f"{v:.3g} B"


def plot_paper_law(entries, fits, strategies, dtype, fig_name, scope, what, out_dir, written):
    """ΔM of `scope` per kick against N_part (top) and N_cells (bottom), one column per strategy,
    points and fitted lines, as the paper's Figs. 2 and 4-6 (which show Cheetah's autograd alone)."""
    counter = PAPER_MEASURE if scope == "total" else f"alloc_{scope}_bytes"
    # the strategies the N_part x grid sweep ran (binomial runs only the N_kicks series)
    columns = [s for s in strategies if len({(e["N_part"], e["N_cells"]) for e in entries
                                              if (e["strategy"], e["dtype"]) == (s, dtype)}) >= 2]
    columns.sort(key=lambda s: PAPER_STRATEGY_ORDER.index(s) if s in PAPER_STRATEGY_ORDER else len(PAPER_STRATEGY_ORDER))
    if not columns:
        return
    fig, axes = plt.subplots(2, len(columns), figsize=(3.6 * len(columns), 7), sharey="row", squeeze=False)
    for j, strategy in enumerate(columns):
        top, bottom = axes[0][j], axes[1][j]
        points = law_points(entries, strategy, dtype, counter)
        top.set_title(strategy, fontsize=10)
        if not points:  # nothing kept: a log axis has no place for 0
            for ax in (top, bottom):
                ax.text(0.5, 0.5, "ΔM = 0 B per kick\n(nothing kept" + ("" if scope == "total" else f" in {scope}") + ")", ha="center", va="center",
                        transform=ax.transAxes, fontsize=9)
                ax.set_xticks([])
            continue
        fit = find_fit(fits, strategy, dtype, PAPER_MEASURE, scope)
        fit = fit if law_value(fit, 1, 1) is not None else None
        law_panel(top, points, fit, "N_part", "N_cells", "N_part (macro-particles)", "N_cells", legend=j == 0)
        law_panel(bottom, points, fit, "N_cells", "N_part", "N_cells (grid cells)", "N_part", legend=j == 0)
        if fit is not None:
            top.set_title(f"{strategy}\nα_part = {coefficient_label(fit['alpha_part_bytes'])}, "
                          f"α_cells = {coefficient_label(fit['alpha_cells_bytes'])}", fontsize=9)
    for row in axes:
        row[0].set_ylabel("ΔM per kick [B]")
    fig.suptitle(f"{fig_name.replace('fig', 'Fig. ')}: memory kept by {what}, per kick ({dtype}, "
                 "forward pass with reverse mode; allocator growth)\npoints: measured; lines: fitted "
                 "ΔM = α_part N_part + α_cells N_cells", fontsize=10)
    fig.tight_layout()
    save(fig, out_dir, f"{fig_name}_{scope}_{dtype}", written)


def draw_paper_laws(entries, fits, strategies, dtypes, out_dir, written):
    for dtype in dtypes:
        for fig_name, scope, what in PAPER_LAW_FIGURES:
            plot_paper_law(entries, fits, strategies, dtype, fig_name, scope, what, out_dir, written)
        plot_coefficients(fits, strategies, dtype, PAPER_MEASURE, out_dir, written, stem=f"fig3_coefficients_{dtype}")


# ---------------------------------------------------------------- Fig. 3: coefficients

def plot_coefficients(fits, strategies, dtype, measure, out_dir, written, stem=None):
    scopes = SUBSTEPS + ["total"]
    rows = {s: {f.get("scope"): f for f in fits if (f.get("strategy"), f.get("dtype"), f.get("measure")) == (s, dtype, measure)}
            for s in strategies}
    strategies = [s for s in strategies if rows[s]]
    if not strategies:
        return
    fig, axes = plt.subplots(2, 1, figsize=(9, 7.5), sharex=True)
    width = 0.8 / len(strategies)
    for ax, key, unit in ((axes[0], "alpha_part", "per particle"), (axes[1], "alpha_cells", "per cell")):
        for i, strategy in enumerate(strategies):
            xs, heights, errors, edges = [], [], [], []
            for j, scope in enumerate(scopes):
                f = rows[strategy].get(scope)
                if f is None or f.get(f"{key}_bytes") is None:
                    continue
                xs.append(j + (i - (len(strategies) - 1) / 2) * width)
                heights.append(max(f[f"{key}_bytes"], 0.0))
                errors.append(f.get(f"{key}_stderr_bytes") or 0.0)
                edges.append("red" if scope == "total" else "none")  # the whole kick, as the paper's red bars
            ax.bar(xs, heights, width, yerr=errors, color=f"C{i}", edgecolor=edges, linewidth=1.5, label=strategy)
            for x, h in zip(xs, heights):
                if h < BAR_FLOOR:  # invisible on the log axis: write the value instead
                    ax.text(x, BAR_FLOOR * 1.2, "0" if h < 1e-9 else f"{h:.1g}", ha="center", va="bottom",
                            fontsize=6, rotation=90)
        ax.set_yscale("log")
        ax.set_ylim(bottom=BAR_FLOOR)
        ax.set_ylabel(f"{key} [B {unit}]")
        ax.axvline(len(scopes) - 1.5, color="grey", lw=0.8, ls=":")
        ax.grid(True, axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[1].set_xticks(range(len(scopes)))
    axes[1].set_xticklabels(scopes, rotation=30)
    axes[0].set_title(f"Coefficients per substep, {dtype}, {MEASURES[measure][1]} (total: whole kick)", fontsize=10)
    save(fig, out_dir, stem or f"coefficients_{dtype}_{measure}", written)


# ---------------------------------------------------------------- Fig. 1: timeline

def contiguous_runs(events, key):
    """[(start_index, end_index, value)] for runs of equal event[key]."""
    runs, start = [], 0
    for i in range(1, len(events) + 1):
        if i == len(events) or events[i][key] != events[start][key]:
            runs.append((start, i - 1, events[start][key]))
            start = i
    return runs


def load_timeline(path):
    doc = load_json(path)
    events = doc.get("events") if isinstance(doc, dict) else None
    if not isinstance(events, list) or not events:
        raise InputError(f"'{path}' has no \"events\" list")
    for i, e in enumerate(events):
        if not isinstance(e, dict) or not all(k in e for k in ("time_s", "current_bytes", "scope", "backward")):
            raise InputError(f"'{path}': every event needs time_s, current_bytes, scope, backward (events[{i}])")
        where = f"'{path}': events[{i}]"
        for key in ("time_s", "current_bytes"):
            check_number(e, key, where, nullable=False)
        if not isinstance(e["scope"], str):
            raise InputError(f"{where}.scope must be a string, got {shown(e['scope'])}")
        if not isinstance(e["backward"], bool):
            raise InputError(f"{where}.backward must be true or false, got {shown(e['backward'])}")
    for key in ("strategy", "dtype"):
        check_label(doc, key, f"'{path}'")
    return doc


def plot_timeline(doc, out_dir, written):
    events = sorted(doc["events"], key=lambda e: e["time_s"])
    strategy, dtype = doc.get("strategy") or doc.get("mode", "unknown"), doc.get("dtype", "unknown")
    t = [1e3 * e["time_s"] for e in events]
    mb = [e["current_bytes"] / 1e6 for e in events]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    seen = set()
    for start, end, scope in contiguous_runs(events, "scope"):
        if scope not in SUBSTEP_COLORS:  # "none", "beam", "objective": no band
            continue
        ax.axvspan(t[start], t[min(end + 1, len(t) - 1)], color=SUBSTEP_COLORS[scope], alpha=0.15, lw=0,
                   label=None if scope in seen else scope)
        seen.add(scope)
    for start, end, backward in contiguous_runs(events, "backward"):
        if backward:
            ax.axvspan(t[start], t[end], ymin=0.97, ymax=1.0, color="black", alpha=0.6, lw=0,
                       label=None if "backward" in seen else "backward pass")
            seen.add("backward")
    ax.step(t, mb, where="post", color="black", lw=1.2, label="allocated")
    ax.set_xlabel("time [ms]")
    ax.set_ylabel("allocated [MB]")
    ax.set_title(f"Memory timeline, {strategy}, {dtype}\n(bands: substep of the allocation events; "
                 "bar on top: backward pass)", fontsize=10)
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    ax.grid(True, alpha=0.3)
    save(fig, out_dir, f"timeline_{strategy}_{dtype}", written)


# ---------------------------------------------------------------- paper Fig. 1: timelines with kick markers

PAPER_STRATEGIES = ["autograd", "fused", "checkpoint", "reversible"]
MIB = 2 ** 20


def check_kicks(doc, path):
    """doc["kicks"] (TIMELINE schema 2) is a list of {index, start_s, end_s, backward} with finite times."""
    kicks = check_list_of_objects(doc, "kicks", f"'{path}'")
    for i, k in enumerate(kicks):
        where = f"'{path}': kicks[{i}]"
        for key in ("index", "start_s", "end_s"):
            if key not in k:
                raise InputError(f"{where} lacks {key}")
            check_number(k, key, where, nullable=False)
        if not isinstance(k.get("backward"), bool):
            raise InputError(f"{where}.backward must be true or false, got {shown(k.get('backward'))}")
    return kicks


def load_paper_timeline(path, mode, strategy):
    """A TIMELINE file (schema 2) of the given mode and strategy (None in forward mode), checked."""
    doc = load_timeline(path)
    if not is_number(doc.get("schema_version")) or doc["schema_version"] < 2:
        raise InputError(f"'{path}': needs TIMELINE schema_version 2 or later (kick markers), "
                         f"got {shown(doc.get('schema_version'))}: rerun `sctape track --timeline`")
    if doc.get("mode") != mode or doc.get("strategy") != strategy:
        raise InputError(f"'{path}': expected mode {shown(mode)} and strategy {shown(strategy)}, "
                         f"got {shown(doc.get('mode'))} and {shown(doc.get('strategy'))}")
    check_kicks(doc, path)
    return doc


def load_paper_timelines(directory):
    """(forward, {strategy: reverse}) from DIR/timeline_forward.json and DIR/timeline_<strategy>.json."""
    if not os.path.isdir(directory):
        raise InputError(f"--paper-timelines '{directory}' is not a folder")
    forward_path = os.path.join(directory, "timeline_forward.json")
    if not os.path.isfile(forward_path):
        raise InputError(f"--paper-timelines '{directory}' has no timeline_forward.json "
                         "(run scripts/paper_timelines.sh)")
    forward = load_paper_timeline(forward_path, "forward", None)
    reverse = OrderedDict()
    for strategy in PAPER_STRATEGIES:
        path = os.path.join(directory, f"timeline_{strategy}.json")
        if os.path.isfile(path):
            reverse[strategy] = load_paper_timeline(path, "reverse", strategy)
    if not reverse:
        raise InputError(f"--paper-timelines '{directory}' has no timeline_<strategy>.json for any of "
                         + ", ".join(PAPER_STRATEGIES))
    return forward, reverse


def draw_kick_lines(ax, kicks):
    """Each kick's start and end as dashed lines: black in the forward pass, grey when backward re-runs it."""
    for k in kicks:
        color = "grey" if k["backward"] else "black"
        for t in (k["start_s"], k["end_s"]):
            ax.axvline(1e3 * t, color=color, ls="--", lw=0.7, alpha=0.8)


def timeline_panel(ax, doc, title):
    """Allocated MiB against ms, the kicks dashed, the backward pass shaded."""
    events = sorted(doc["events"], key=lambda e: e["time_s"])
    # the run starts at 0 bytes above its start level: draw from there
    t = [0.0] + [1e3 * e["time_s"] for e in events]
    mib = [0.0] + [e["current_bytes"] / MIB for e in events]
    backward = [1e3 * e["time_s"] for e in events if e["backward"]]
    if backward:
        ax.axvspan(min(backward), t[-1], color="C1", alpha=0.12, lw=0, label="backward pass")
    draw_kick_lines(ax, doc["kicks"])
    ax.step(t, mib, where="post", color="C0", lw=1.3, label="allocated")
    ax.set_xlabel("time [ms]")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)


def kick_legend_handles():
    from matplotlib.lines import Line2D
    return [Line2D([], [], color="black", ls="--", lw=0.7, label="kick start / end (forward)"),
            Line2D([], [], color="grey", ls="--", lw=0.7, label="kick re-run in backward")]


def plot_paper_fig1(forward, reverse_doc, out_dir, written):
    """The paper's Fig. 1 for one strategy: (a) no derivatives, (b) reverse mode, on one memory scale."""
    strategy, dtype = reverse_doc["strategy"], reverse_doc.get("dtype", "")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    timeline_panel(left, forward, "(a) without derivatives")
    timeline_panel(right, reverse_doc, f"(b) reverse mode, {strategy}")
    left.set_ylabel(f"allocated above the start [MiB] ({forward.get('memory_space', 'host')})")
    left.set_ylim(bottom=0)
    handles, _ = right.get_legend_handles_labels()
    # below the panels: inside, it would hide the peak of one strategy or another
    fig.legend(handles=handles + kick_legend_handles(), fontsize=8, ncol=4, loc="upper center",
               bbox_to_anchor=(0.5, 0.0), frameon=False)
    fig.suptitle(f"Memory timeline of the Table 1 case ({dtype}): {len(forward['kicks'])} kicks, dashed",
                 fontsize=11)
    save(fig, out_dir, f"fig1_timeline_{strategy}", written)


def draw_paper_timelines(paper, out_dir):
    forward, reverse = paper
    written = []
    for doc in reverse.values():
        plot_paper_fig1(forward, doc, out_dir, written)
    return written


# ---------------------------------------------------------------- totals vs N_kicks

def plot_kicks(entries, kick_fits, strategies, dtype, out_dir, written):
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    drawn = False
    for i, strategy in enumerate(strategies):
        for fit in (k for k in kick_fits if (k.get("strategy"), k.get("dtype")) == (strategy, dtype)):
            if fit.get("slope_bytes_per_kick") is None or fit.get("intercept_bytes") is None \
                    or not isinstance(fit.get("measure"), str):
                continue  # reported but not fitted (some totals <= 0): no line to draw
            style = "-" if fit["measure"] == "tape_bytes_total" else "--"
            pts = sorted((e["N_kicks"], e[fit["measure"]]) for e in entries
                         if (e["strategy"], e["dtype"], e["N_part"], e["N_cells"]) ==
                         (strategy, dtype, fit.get("N_part"), fit.get("N_cells")) and fit["measure"] in e)
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o" if style == "-" else "s", color=f"C{i}",
                    fillstyle="full" if style == "-" else "none")
            lo, hi = pts[0][0], pts[-1][0]
            ks = [lo + (hi - lo) * j / 50 for j in range(51)]  # dense: a straight line is curved on log axes
            ax.plot(ks, [fit["slope_bytes_per_kick"] * k + fit["intercept_bytes"] for k in ks], style, color=f"C{i}",
                    label=f"{strategy} {fit['measure'].replace('_bytes_total', '')}: "
                          f"{bytes_label(fit['slope_bytes_per_kick'])}/kick")
            drawn = True
    if not drawn:
        plt.close(fig)
        return
    ax.set_xlabel("N_kicks")
    ax.set_ylabel("bytes over the run")
    ax.set_yscale("log")
    ax.set_title(f"Totals vs N_kicks, {dtype} (solid: tape, dashed: peak)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, out_dir, f"kicks_{dtype}", written)


# ---------------------------------------------------------------- long lattices

def plot_long_lattice(entries, out_dir, written):
    """Peak (solid) and tape after the forward pass (dashed) against N_kicks, log-log, per strategy:
    the runs of `SCTAPE_BENCH_LONG=1 sctape-bench` (a FODO ring, one N_part and grid)."""
    for dtype in unique(e["dtype"] for e in entries):
        runs = [e for e in entries if e["dtype"] == dtype]
        cases = unique((e["N_part"], e["N_cells"]) for e in runs)
        fig, ax = plt.subplots(figsize=(6.8, 5))
        for i, strategy in enumerate(unique(e["strategy"] for e in runs)):
            pts = sorted((e["N_kicks"], e["peak_bytes_total"], e["tape_bytes_total"]) for e in runs
                         if e["strategy"] == strategy)
            ks = [p[0] for p in pts]
            ax.plot(ks, [p[1] for p in pts], "o-", color=f"C{i}", label=f"{strategy} peak")
            ax.plot(ks, [max(p[2], 1.0) for p in pts], "s--", color=f"C{i}", fillstyle="none", alpha=0.7,
                    label=f"{strategy} tape")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("N_kicks")
        ax.set_ylabel("bytes over the gradient run")
        what = ", ".join(f"N_part = {n:.0f}, N_cells = {c:.0f}" for n, c in cases)
        ax.set_title(f"Peak and tape against N_kicks ({what}, {dtype})", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        save(fig, out_dir, f"long_lattice_{dtype}", written)


# ---------------------------------------------------------------- timing

def plot_timing(entries, strategies, dtype, out_dir, written):
    runs = [e for e in entries if e["dtype"] == dtype and e["N_kicks"] == law_kicks(entries, e["strategy"], dtype)
            and isinstance(e.get("forward_ms"), (int, float)) and isinstance(e.get("backward_ms"), (int, float))]
    present = [s for s in strategies if any(e["strategy"] == s for e in runs)]
    if not present:
        return
    # The reference case: the largest N_part·N_cells that every strategy ran.
    cases = set.intersection(*({(e["N_part"], e["N_cells"]) for e in runs if e["strategy"] == s} for s in present))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    if cases:
        ref = max(cases, key=lambda c: (c[0] * c[1], c))
        for i, s in enumerate(present):
            e = next(e for e in runs if e["strategy"] == s and (e["N_part"], e["N_cells"]) == ref)
            left.bar([i - 0.2], [e["forward_ms"]], 0.4, color="C0", label="forward" if i == 0 else None)
            left.bar([i + 0.2], [e["backward_ms"]], 0.4, color="C3", label="backward" if i == 0 else None)
        left.set_xticks(range(len(present)))
        left.set_xticklabels(present)
        left.set_ylabel("time of the whole run [ms]")
        kicks = sorted({e["N_kicks"] for e in runs if (e["N_part"], e["N_cells"]) == ref})
        left.set_title(f"N_part = {ref[0]:.0f}, N_cells = {ref[1]:.0f}, N_kicks = {kicks[0]:.0f}", fontsize=10)
        left.legend(fontsize=8)
    for i, s in enumerate(present):
        pts = sorted((e["N_part"], e["N_cells"], e["forward_ms"], e["backward_ms"]) for e in runs if e["strategy"] == s)
        right.plot([p[0] for p in pts], [p[2] for p in pts], "o", color=f"C{i}", label=f"{s} forward")
        right.plot([p[0] for p in pts], [p[3] for p in pts], "x", color=f"C{i}", label=f"{s} backward")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("N_part (all grids)")
    right.set_ylabel("time [ms]")
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=7)
    fig.suptitle(f"Forward and backward time per strategy, {dtype}", fontsize=11)
    save(fig, out_dir, f"timing_{dtype}", written)


# ---------------------------------------------------------------- paper Figs. 7 and 8 (validation)
# From sctape-validate's JSON (results/paper/lorentz_force.json and
# free_expansion_envelope.json); every value drawn is checked first.

def check_numbers(obj, key, where, length=None):
    """obj[key] is a non-empty list of finite numbers (of `length` items when given); returns it."""
    v = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(v, list) or not v or not all(is_number(x) and math.isfinite(x) for x in v):
        raise InputError(f"{where}.{key} must be a non-empty list of finite numbers, got {shown(v)}")
    if length is not None and len(v) != length:
        raise InputError(f"{where}.{key} must have {length} items like its neighbours, got {len(v)}")
    return v


def check_case(doc, path, case):
    if not isinstance(doc, dict) or doc.get("case") != case or doc.get("schema_version") != 1:
        raise InputError(f"'{path}' is not sctape-validate {case} output (schema_version 1)")


def load_lorentz_force(path):
    """The Fig. 7 data: per gamma, the force along x and along z with its reference."""
    doc = load_json(path)
    check_case(doc, path, "lorentz_force")
    for i, c in enumerate(check_list_of_objects(doc, "cases", f"'{path}'")):
        where = f"'{path}'.cases[{i}]"
        check_number(c, "gamma", where, nullable=False, positive=True)
        for axis in ("x", "z"):
            line = c.get(f"along_{axis}")
            if not isinstance(line, dict):
                raise InputError(f"{where}.along_{axis} must be an object")
            n = len(check_numbers(line, f"{axis}_m", f"{where}.along_{axis}"))
            for key in (f"F_{axis}_eV_per_m", f"F_{axis}_reference_eV_per_m"):
                check_numbers(line, key, f"{where}.along_{axis}", n)
    if not doc["cases"]:
        raise InputError(f"'{path}'.cases is empty")
    return doc


def load_free_expansion(path):
    """The Fig. 8 data: R and dR/ds at the slice ends with references, and the envelope curve."""
    doc = load_json(path)
    check_case(doc, path, "free_expansion")
    where = f"'{path}'"
    n = len(check_numbers(doc, "s_m", where))
    for key in ("R_m", "R_reference_m", "R_relative_error", "dR_ds", "dR_ds_reference", "dR_ds_relative_error"):
        check_numbers(doc, key, where, n)
    for key in ("tolerance_R_relative", "tolerance_dR_ds_relative"):
        check_number(doc, key, where, nullable=False, positive=True)
    curve = doc.get("envelope_curve")
    if not isinstance(curve, dict):
        raise InputError(f"{where}.envelope_curve must be an object")
    m = len(check_numbers(curve, "s_m", f"{where}.envelope_curve"))
    for key in ("R_m", "dR_ds"):
        check_numbers(curve, key, f"{where}.envelope_curve", m)
    return doc


def plot_lorentz_force(doc, out_dir, written):
    """Paper Fig. 7: F_x against x and F_z against z, per gamma; sctape points, quadrature lines."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for i, c in enumerate(sorted(doc["cases"], key=lambda c: c["gamma"])):
        color = f"C{i}"
        label = f"γ = {c['gamma']:g}"
        for ax, axis, scale in ((axes[0], "x", 1e3), (axes[1], "z", 1e6)):
            line = c[f"along_{axis}"]
            pos = [p * scale for p in line[f"{axis}_m"]]
            ax.plot(pos, line[f"F_{axis}_reference_eV_per_m"], "-", color=color, lw=1.2,
                    label=f"{label}, Eq. {7 if axis == 'x' else 8}")
            ax.plot(pos, line[f"F_{axis}_eV_per_m"], "o", color=color, ms=3, mfc="none",
                    label=f"{label}, sctape ({100 * line.get('max_error_of_peak', float('nan')):.2g}% of peak)")
    axes[0].set_xlabel("x [mm]  (y ≈ 0, z ≈ 0)")
    axes[0].set_ylabel("$F_x$ on an electron [eV/m]")
    axes[1].set_xlabel("z [µm]  (x ≈ 0, y ≈ 0)")
    axes[1].set_ylabel("$F_z$ on an electron [eV/m]")
    for ax in axes:
        ax.set_yscale("symlog", linthresh=max(1e-3, min_peak(doc) / 100))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, ncol=1)
    numerics = doc.get("numerics", {})
    grid = "×".join(str(g) for g in numerics.get("grid", [])) or "?"
    fig.suptitle(f"Lorentz force in a Gaussian bunch (1 nC, σx = σy = 1 mm, σz = 1 µm): "
                 f"sctape ({numerics.get('particles', '?')} particles, {grid}, ±6σ) vs Eqs. 7–8", fontsize=10)
    fig.tight_layout()
    save(fig, out_dir, "fig7_lorentz_force", written)


def min_peak(doc):
    """The smallest peak |F| over the gammas and axes: sets the linear part of the symlog axes."""
    return min(max(abs(f) for f in c[f"along_{a}"][f"F_{a}_reference_eV_per_m"]) for c in doc["cases"] for a in "xz")


def plot_free_expansion(doc, out_dir, written):
    """Paper Fig. 8: R(s) and dR/ds, sctape points against the envelope equation, relative errors below."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1.2]})
    curve = doc["envelope_curve"]
    panels = (("R_m", "R_reference_m", "R_relative_error", 1e3, "R [mm]", "tolerance_R_relative", "R = √5 σx"),
              ("dR_ds", "dR_ds_reference", "dR_ds_relative_error", 1e3, "dR/ds [mrad]", "tolerance_dR_ds_relative",
               "dR/ds, reverse mode"))
    for col, (key, ref_key, err_key, scale, label, tol_key, what) in enumerate(panels):
        top, bottom = axes[0][col], axes[1][col]
        top.plot(curve["s_m"], [v * scale for v in curve[key]], "-", color="C0", label="envelope equation (Eq. 9), RK4")
        top.plot(doc["s_m"], [v * scale for v in doc[key]], "o", color="C3", ms=5, mfc="none", label=f"sctape: {what}")
        top.set_ylabel(label)
        top.grid(alpha=0.3)
        top.legend(fontsize=8)
        bottom.plot(doc["s_m"], [100 * e for e in doc[err_key]], "o-", color="C3", ms=4)
        bottom.axhline(100 * doc[tol_key], color="k", ls="--", lw=0.8, label=f"tolerance {100 * doc[tol_key]:g}%")
        bottom.set_ylim(0, 110 * doc[tol_key])
        bottom.set_ylabel("|rel. error| [%]")
        bottom.set_xlabel("s [m]")
        bottom.grid(alpha=0.3)
        bottom.legend(fontsize=8)
    numerics = doc.get("numerics", {})
    fig.suptitle(f"Free expansion of a cold uniform bunch (10 nC, 250 MeV, R = L = 1 mm): sctape "
                 f"({numerics.get('particles', '?')} particles, {numerics.get('slices', '?')} slices) vs Eq. 9",
                 fontsize=10)
    fig.tight_layout()
    save(fig, out_dir, "fig8_free_expansion", written)


def load_paper_inputs(args):
    """The paper-figure inputs asked for, checked: {"timelines": ..., "lorentz_force": doc, "free_expansion": doc}."""
    paper = {}
    if args.paper_timelines:
        paper["timelines"] = load_paper_timelines(args.paper_timelines)
    if args.lorentz_force:
        paper["lorentz_force"] = load_lorentz_force(args.lorentz_force)
    if args.free_expansion:
        paper["free_expansion"] = load_free_expansion(args.free_expansion)
    return paper


def draw_paper(paper, out_dir):
    written = draw_paper_timelines(paper["timelines"], out_dir) if "timelines" in paper else []
    if "lorentz_force" in paper:
        plot_lorentz_force(paper["lorentz_force"], out_dir, written)
    if "free_expansion" in paper:
        plot_free_expansion(paper["free_expansion"], out_dir, written)
    return written


# ---------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="plot.py",
        description="Plots of the memory scaling suite from SWEEP.json (sctape-bench kick_memory) and "
                    "COEFFS.json (sctape fit), optionally TIMELINE.json files, and the memory-scaling paper's "
                    "figures (--paper, --paper-timelines, --lorentz-force, --free-expansion). Writes PNG and SVG.",
        epilog="Exit codes: 0 plots written, 2 bad input. Run with /usr/bin/python3 (Debian python3-matplotlib).")
    p.add_argument("sweep", metavar="SWEEP.json", nargs="?",
                   help="Google Benchmark JSON from sctape-bench --benchmark_filter=kick_memory")
    p.add_argument("coeffs", metavar="COEFFS.json", nargs="?",
                   help="coefficients from `sctape fit SWEEP.json -o COEFFS.json` (given with SWEEP.json; "
                        "both may be left out when only --paper-timelines, --lorentz-force or --free-expansion "
                        "figures are asked for)")
    p.add_argument("--timeline", metavar="TIMELINE.json", action="append", default=[],
                   help="memory timeline {schema_version, events: [{time_s, current_bytes, scope, backward}], "
                        "strategy, dtype}; repeat for one file per strategy")
    p.add_argument("--paper-timelines", metavar="DIR",
                   help="folder with timeline_forward.json and timeline_<strategy>.json (TIMELINE schema 2, "
                        "from scripts/paper_timelines.sh): draws fig1_timeline_<strategy> per strategy found")
    p.add_argument("-o", "--out-dir", default=os.path.join("results", "plots"), help="output folder (default results/plots)")
    p.add_argument("--measure", choices=["tape_bytes", "alloc_delta_bytes", "all"], default="all",
                   help="which per-kick measure to draw in the law and coefficient plots (default all)")
    p.add_argument("--long-lattice", metavar="RUNS.json",
                   help="long_lattice_<dtype>: peak and tape against N_kicks, log-log, from "
                        "`SCTAPE_BENCH_LONG=1 sctape-bench` (results/long_lattice_cpu.json)")
    p.add_argument("--paper", action="store_true",
                   help="draw the memory-scaling paper's figures from SWEEP and COEFFS instead of the suite's "
                        "(fig2_total_*, fig3_coefficients_*, fig4_green_*, fig5_deposit_*, fig6_gather_*: "
                        "allocator ΔM per kick, one column per strategy), e.g. -o results/paper")
    p.add_argument("--lorentz-force", metavar="LORENTZ_FORCE.json",
                   help="paper Fig. 7 (fig7_lorentz_force) from `sctape-validate lorentz_force` output")
    p.add_argument("--free-expansion", metavar="FREE_EXPANSION.json",
                   help="paper Fig. 8 (fig8_free_expansion) from `sctape-validate free_expansion` output")
    args = p.parse_args(argv)
    if (args.sweep is None) != (args.coeffs is None):
        p.error("SWEEP.json and COEFFS.json go together")
    if args.sweep is None and not (args.paper_timelines or args.lorentz_force or args.free_expansion or args.long_lattice):
        p.error("nothing to draw: give SWEEP.json COEFFS.json, --paper-timelines, --lorentz-force, --free-expansion or --long-lattice")
    if args.paper and args.sweep is None:
        p.error("--paper draws from SWEEP.json and COEFFS.json: give them")
    return args


def main(argv):
    args = parse_args(argv)
    global plt
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot.py: error: matplotlib is missing (apt-get install python3-matplotlib; run with /usr/bin/python3)",
              file=sys.stderr)
        return 2
    plt.rcParams["svg.hashsalt"] = "sctape"  # stable SVG ids
    try:
        entries = sweep_entries(load_json(args.sweep), args.sweep) if args.sweep else []
        fits, kick_fits = coeff_fits(load_json(args.coeffs), args.coeffs) if args.coeffs else ([], [])
        paper = load_paper_inputs(args)
        long_runs = sweep_entries(load_json(args.long_lattice), args.long_lattice) if args.long_lattice else []
        timelines = [load_timeline(path) for path in args.timeline]  # all input checked before any output
    except InputError as e:
        print(f"plot.py: error: {e}", file=sys.stderr)
        return 2
    # Drawn into a scratch folder and moved into place at the end, so that a
    # figure failing half way (values matplotlib cannot draw) leaves nothing.
    staging = tempfile.mkdtemp(prefix="sctape-plot-")
    try:
        written = draw_all(args, entries, fits, kick_fits, timelines, staging) + draw_paper(paper, staging)
        if long_runs:
            plot_long_lattice(long_runs, staging, written)
    except Exception as e:  # pylint: disable=broad-except
        shutil.rmtree(staging, ignore_errors=True)
        print(f"plot.py: error: cannot draw these inputs ({type(e).__name__}: {e}); nothing written", file=sys.stderr)
        return 2
    finally:
        plt.close("all")
    os.makedirs(args.out_dir, exist_ok=True)
    for path in written:
        final = os.path.join(args.out_dir, os.path.basename(path))
        shutil.move(path, final)
        print(final)
    shutil.rmtree(staging, ignore_errors=True)
    return 0


def draw_all(args, entries, fits, kick_fits, timelines, out_dir):
    written = []
    strategies = unique([e["strategy"] for e in entries] + [f.get("strategy") for f in fits if f.get("dtype")])
    dtypes = unique(e["dtype"] for e in entries)
    measures = list(MEASURES) if args.measure == "all" else [args.measure]
    for s in {f.get("strategy") for f in fits} - {e["strategy"] for e in entries} - {"input", None}:
        print(f"plot.py: strategy '{s}' is in COEFFS but not in SWEEP: coefficients only", file=sys.stderr)
    if args.paper:
        draw_paper_laws(entries, fits, strategies, dtypes, out_dir, written)
        return written
    for dtype in dtypes:
        for measure in measures:
            for strategy in strategies:
                plot_law(entries, fits, strategy, dtype, measure, out_dir, written)
            plot_coefficients(fits, strategies, dtype, measure, out_dir, written)
        plot_kicks(entries, kick_fits, strategies, dtype, out_dir, written)
        plot_timing(entries, strategies, dtype, out_dir, written)
    for timeline in timelines:
        plot_timeline(timeline, out_dir, written)
    return written


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
