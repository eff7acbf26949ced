#!/usr/bin/python3
"""The README's speed tables. From a kick_time JSON (sctape-bench
--benchmark_filter=kick_time): per-substep milliseconds of one forward kick,
the kick against one FFT pair of the doubled grid alone (the floor), the
Green function when it must be rebuilt, and the speed-up over one thread.
With --gradient-time, from a gradient_time JSON too: each strategy's forward
and backward against the plain forward tracking.

    /usr/bin/python3 fit/speed_table.py results/kick_time_cpu.json               # print the table
    /usr/bin/python3 fit/speed_table.py results/kick_time_cpu.json --write README.md
    /usr/bin/python3 fit/speed_table.py results/kick_time_cpu.json --check README.md
    /usr/bin/python3 fit/speed_table.py results/kick_time_cpu.json \
        --gradient-time results/gradient_time_cpu.json --write README.md

--write replaces the lines between the README's markers `<!-- speed-table -->`
and `<!-- /speed-table -->` (and `<!-- gradient-table -->`, `<!--
/gradient-table -->` with --gradient-time); --check exits 1 with a diff when
they differ from what the JSON gives. Bad input is `speed_table.py: error:
...`, exit 2, and no file changed.
"""
import argparse
import difflib
import json
import math
import os
import re
import sys
import tempfile

BEGIN, END = "<!-- speed-table -->", "<!-- /speed-table -->"
GRADIENT_BEGIN, GRADIENT_END = "<!-- gradient-table -->", "<!-- /gradient-table -->"
GRADIENT_NAME = re.compile(r"^gradient_time/(\w+)/N_part:(\d+)/grid:(\d+)/cell_quantum_permille:(\d+)")
GRADIENT_KEYS = ["plain_forward_ms", "forward_ms", "backward_ms", "gradient_over_plain", "gradient_over_own_forward",
                 "kicks", "repeats"]
SUBSTEPS = ["s_to_t", "deposit", "green", "convolve", "field", "gather", "push", "t_to_s"]
NAME = re.compile(r"^kick_time/(float32|float64)/N_part:(\d+)/grid:(\d+)/threads:(\d+)")


class InputError(Exception):
    pass


def load_benchmarks(path):
    """The benchmark entries of a Google Benchmark JSON, each an object."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise InputError(f"cannot read '{path}': {e.strerror}")
    except ValueError as e:
        raise InputError(f"'{path}' is not valid JSON: {e}")
    benchmarks = doc.get("benchmarks") if isinstance(doc, dict) else None
    if not isinstance(benchmarks, list) or not all(isinstance(b, dict) for b in benchmarks):
        raise InputError(f"'{path}' has no list of benchmark objects under \"benchmarks\"")
    return benchmarks


def checked_numbers(b, keys, path, positive):
    """Checks that b[key] is a finite number (not a bool), above 0 when positive, else at least 0."""
    bad = [k for k in keys if isinstance(b.get(k), bool) or not isinstance(b.get(k), (int, float))]
    if bad:
        raise InputError(f"'{path}': {b['name']} lacks {', '.join(bad)}")
    bad = [k for k in keys if not (math.isfinite(b[k]) and (b[k] > 0 if positive else b[k] >= 0))]
    if bad:
        bound = "above 0" if positive else "at least 0"
        raise InputError(f"'{path}': {b['name']} has {', '.join(bad)} not a finite number {bound}")


def iteration_runs(path, pattern):
    """(entry, name match) of each iteration run whose name the pattern matches."""
    for b in load_benchmarks(path):
        m = pattern.match(str(b.get("name", "")))
        if m and b.get("run_type", "iteration") == "iteration":
            yield b, m


def load_runs(path):
    runs = []
    for b, m in iteration_runs(path, NAME):
        keys = [s + "_ms" for s in SUBSTEPS] + ["kick_ms", "fft_floor_ms", "green_uncached_ms"]
        checked_numbers(b, keys, path, positive=False)
        checked_numbers(b, ["kick_ms", "fft_floor_ms"], path, positive=True)
        runs.append({"dtype": m[1], "n_part": int(m[2]), "grid": int(m[3]), "threads": int(m[4]),
                     **{k: float(b[k]) for k in keys}})
    if not runs:
        raise InputError(f"'{path}' holds no kick_time/<dtype>/N_part/grid/threads runs")
    return runs


def table(runs):
    one_thread = {(r["dtype"], r["grid"], r["n_part"]): r["kick_ms"] for r in runs if r["threads"] == 1}
    head = ["grid", "dtype", "threads"] + SUBSTEPS + ["kick", "FFT floor", "kick / floor",
                                                      "green rebuilt", "speed-up"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in sorted(runs, key=lambda r: (r["grid"], r["dtype"], r["threads"])):
        base = one_thread.get((r["dtype"], r["grid"], r["n_part"]))
        speedup = f"{base / r['kick_ms']:.2f}×" if base else "–"
        cells = [f"{r['grid']}³", r["dtype"], str(r["threads"])]
        cells += [f"{r[s + '_ms']:.2f}" for s in SUBSTEPS]
        cells += [f"**{r['kick_ms']:.2f}**", f"{r['fft_floor_ms']:.2f}", f"{r['kick_ms'] / r['fft_floor_ms']:.2f}",
                  f"{r['green_uncached_ms']:.2f}", speedup]
        lines.append("| " + " | ".join(cells) + " |")
    n_part = sorted({r["n_part"] for r in runs})
    lines.append("")
    lines.append(f"*Milliseconds per forward kick, {', '.join(f'{n:,}' for n in n_part)} particles "
                 "(cold uniform ball), CPU; `green` is the Green function reused (the geometry "
                 "repeats), *green rebuilt* what it costs when the geometry changes; the FFT floor is "
                 "one forward and one inverse FFT of the doubled grid; speed-up is over one thread.*")
    return lines


def load_gradient_runs(path):
    runs = []
    for b, m in iteration_runs(path, GRADIENT_NAME):
        checked_numbers(b, GRADIENT_KEYS, path, positive=True)
        runs.append({"strategy": m[1], "n_part": int(m[2]), "grid": int(m[3]), "quantum": int(m[4]) / 1000,
                     **{k: float(b[k]) for k in GRADIENT_KEYS}})
    if not runs:
        raise InputError(f"'{path}' holds no gradient_time/<strategy>/N_part/grid/cell_quantum_permille runs")
    return runs


def gradient_table(runs):
    head = ["strategy", "cell_quantum", "plain forward", "forward", "backward", "(fwd + bwd) / plain",
            "(fwd + bwd) / fwd"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in runs:
        lines.append("| " + " | ".join([r["strategy"], f"{r['quantum']:g}", f"{r['plain_forward_ms']:.1f}",
                                        f"{r['forward_ms']:.1f}", f"{r['backward_ms']:.1f}",
                                        f"**{r['gradient_over_plain']:.2f}**",
                                        f"{r['gradient_over_own_forward']:.2f}"]) + " |")
    sizes = sorted({(r["n_part"], r["grid"]) for r in runs})
    kicks = sorted({int(r["kicks"]) for r in runs})
    repeats = sorted({int(r["repeats"]) for r in runs})
    lines.append("")
    lines.append(f"*Milliseconds for a 1 m drift in {'/'.join(map(str, kicks))} slices (one kick each), "
                 f"{', '.join(f'{n:,} particles on {g}³' for n, g in sizes)}, float64, CPU, one thread; "
                 f"the plain forward tracks without a tape; each time is the fastest of "
                 f"{'/'.join(map(str, repeats))} runs alternating with the plain tracking. With cell_quantum the "
                 "Green function is reused while the cells repeat, in the forward and in the adjoints.*")
    return lines


def readme_block(lines, path, begin, end):
    try:
        i, j = lines.index(begin), lines.index(end)
    except ValueError:
        raise InputError(f"'{path}' lacks the markers {begin} and {end}")
    if j < i:
        raise InputError(f"'{path}': {end} comes before {begin}")
    return i, j


def main():
    ap = argparse.ArgumentParser(description="The README's speed tables from kick_time (and gradient_time) JSON.")
    ap.add_argument("kick_time_json")
    ap.add_argument("--gradient-time", metavar="JSON", help="also the gradient table, from a gradient_time JSON")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", metavar="README", help="replace the tables between the README's markers")
    mode.add_argument("--check", metavar="README", help="exit 1 when the README's tables differ")
    args = ap.parse_args()
    try:
        blocks = [(BEGIN, END, table(load_runs(args.kick_time_json)))]
        if args.gradient_time:
            blocks.append((GRADIENT_BEGIN, GRADIENT_END, gradient_table(load_gradient_runs(args.gradient_time))))
        path = args.write or args.check
        if not path:
            print("\n\n".join("\n".join(new) for _, _, new in blocks))
            return 0
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().split("\n")
        except OSError as e:
            raise InputError(f"cannot read '{path}': {e.strerror}")
        differs = False
        for begin, end, new in blocks:
            i, j = readme_block(lines, path, begin, end)
            old = lines[i + 1:j]
            if args.check and old != new:
                differs = True
                sys.stdout.writelines(l + "\n" for l in difflib.unified_diff(old, new, path, begin, lineterm=""))
            lines = lines[:i + 1] + new + lines[j:]
        if args.check:
            return 1 if differs else 0
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".speed_table.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
        os.replace(tmp, path)
        return 0
    except InputError as e:
        print(f"speed_table.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
