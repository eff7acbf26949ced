#!/usr/bin/python3
"""The README's speed table, from a kick_time JSON (sctape-bench
--benchmark_filter=kick_time): per-substep milliseconds of one forward kick,
the kick against one FFT pair of the doubled grid alone (the floor), the
Green function when it must be rebuilt, and the speed-up over one thread.

    /usr/bin/python3 fit/speed_table.py results/kick_time_cpu.json               # print the table
    /usr/bin/python3 fit/speed_table.py results/kick_time_cpu.json --write README.md
    /usr/bin/python3 fit/speed_table.py results/kick_time_cpu.json --check README.md

--write replaces the lines between the README's markers `<!-- speed-table -->`
and `<!-- /speed-table -->`; --check exits 1 with a diff when they differ from
what the JSON gives. Bad input is `speed_table.py: error: ...`, exit 2, and
no file changed.
"""
import argparse
import difflib
import json
import os
import re
import sys
import tempfile

BEGIN, END = "<!-- speed-table -->", "<!-- /speed-table -->"
SUBSTEPS = ["s_to_t", "deposit", "green", "convolve", "field", "gather", "push", "t_to_s"]
NAME = re.compile(r"^kick_time/(float32|float64)/N_part:(\d+)/grid:(\d+)/threads:(\d+)")


class InputError(Exception):
    pass


def load_runs(path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise InputError(f"cannot read '{path}': {e.strerror}")
    except ValueError as e:
        raise InputError(f"'{path}' is not valid JSON: {e}")
    runs = []
    for b in doc.get("benchmarks", []) if isinstance(doc, dict) else []:
        m = NAME.match(str(b.get("name", "")))
        if not m or b.get("run_type", "iteration") != "iteration":
            continue
        keys = [s + "_ms" for s in SUBSTEPS] + ["kick_ms", "fft_floor_ms", "green_uncached_ms"]
        missing = [k for k in keys if not isinstance(b.get(k), (int, float))]
        if missing:
            raise InputError(f"'{path}': {b['name']} lacks {', '.join(missing)}")
        if not b["fft_floor_ms"] > 0 or not b["kick_ms"] > 0:
            raise InputError(f"'{path}': {b['name']} has a kick or FFT floor time that is not positive")
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


def readme_block(text, path):
    lines = text.split("\n")
    try:
        i, j = lines.index(BEGIN), lines.index(END)
    except ValueError:
        raise InputError(f"'{path}' lacks the markers {BEGIN} and {END}")
    if j < i:
        raise InputError(f"'{path}': {END} comes before {BEGIN}")
    return lines, i, j


def main():
    ap = argparse.ArgumentParser(description="The README's speed table from a kick_time JSON.")
    ap.add_argument("kick_time_json")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", metavar="README", help="replace the table between the README's markers")
    mode.add_argument("--check", metavar="README", help="exit 1 when the README's table differs")
    args = ap.parse_args()
    try:
        new = table(load_runs(args.kick_time_json))
        path = args.write or args.check
        if not path:
            print("\n".join(new))
            return 0
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise InputError(f"cannot read '{path}': {e.strerror}")
        lines, i, j = readme_block(text, path)
        old = lines[i + 1:j]
        if args.check:
            if old == new:
                return 0
            sys.stdout.writelines(l + "\n" for l in difflib.unified_diff(old, new, path, args.kick_time_json, lineterm=""))
            return 1
        out = "\n".join(lines[:i + 1] + new + lines[j:])
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".speed_table.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(out)
        os.replace(tmp, path)
        return 0
    except InputError as e:
        print(f"speed_table.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
