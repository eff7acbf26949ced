#!/usr/bin/python3
"""Property test: hostile input never crashes, never writes on error, never
exits 0 with NaN or a lost result.

    hostile_inputs.py SCTAPE EXAMPLES_DIR EXPECTED.txt SCRATCH_DIR [--jobs N] [--only SUBSTRING] [--sanitized]

Mutates small inputs of every subcommand that reads JSON (the example
configs of `sctape track`, a sweep and a point list for `sctape fit`, a
baseline and COEFFS for `sctape check`, COEFFS for `sctape plan`, a shard
for `sctape merge`): each key
deleted, given another type, NaN-ish, huge, negative, zero or tiny values,
renamed, nested deeply, duplicated in the raw text; the file truncated. Each
mutated input is run under a timeout, and each case must end in one of

  ok          exit 0 (or 1 where the command defines it: a `check` regression,
              a `plan` that fits no budget) with its output valid JSON whose
              numbers are finite and with no null where a number belongs
  rejected    exit 2 with an `error:` line, no file created, an existing
              output file unchanged, no temporary left behind

Anything else is a violation: a signal (crash, sanitizer abort), a timeout,
another exit code, exit 0 with NaN/Infinity/null in the output or an
unreadable output, a written output on error, or (where the input is
ambiguous or a typo: duplicated keys anywhere, renamed keys in strict readers)
an exit 0 at all.

EXPECTED.txt lists the mutation ids known to violate today, one per line as
`ID | reason`; those are reported as expected failures so that the suite is
green while the fixes land, and each that now passes is reported so that its
line can be removed. Exit 1 on any violation not in the list, else 0.
Debian's python3 only, no other packages.
"""
import argparse
import collections
import concurrent.futures
import copy
import json
import math
import os
import shutil
import signal
import subprocess
import sys

TIMEOUT_S = 20  # a small run takes well under a second; 20 s is a hang even on a loaded CI machine
DEEP = 100000   # nesting depth of the "nest" mutation: far past any recursive parser's stack
MUT = "@@MUTATED@@"
DUP = "@@DUPLICATE@@"

# ---------------------------------------------------------------- the base inputs


def small_element(element):
    """One slice per element, repeats twice (their nesting and every key kept, so each is mutated)."""
    if element.get("type") == "repeat":
        return dict(element, count=2, lattice=[small_element(e) for e in element["lattice"]])
    return dict(element, slices=1)


def small_config(example):
    """The example shrunk so that one run takes milliseconds: 200 particles, one slice per element (the first
    element only, or a repeat's cell twice), an 8^3 grid, one thread."""
    cfg = copy.deepcopy(example)
    cfg["n_particles"] = 200
    cfg["lattice"] = [small_element(cfg["lattice"][0])]
    if isinstance(cfg.get("space_charge"), dict) and "grid" in cfg["space_charge"]:
        cfg["space_charge"]["grid"] = [8, 8, 8]
    cfg["threads"] = 1
    return cfg


def law(n_part, n_cells):
    return 24 * n_part + 8 * n_cells


def small_sweep():
    """A Google Benchmark document like bench's kick_memory: 4 runs of one strategy, enough for a fit."""
    runs = []
    for n_part, grid in ((1000, 8), (4000, 8), (1000, 16), (4000, 16)):
        n_cells = grid ** 3
        runs.append({"name": f"kick_memory/fused/float32/N_part:{n_part}/grid:{grid}x{grid}x{grid}/N_kicks:1",
                     "run_type": "iteration", "N_part": n_part, "N_cells": n_cells, "N_kicks": 1,
                     "tape_bytes": law(n_part, n_cells), "alloc_delta_bytes": 2 * law(n_part, n_cells),
                     "tape_deposit_bytes": 8 * n_part, "forward_ms": 1.5})
    return {"context": {"backend": "cpu"}, "benchmarks": runs}


def rank_sweep():
    """A rank sweep like bench/rank_sweep.py's: rank 0's runs (share ceil(N/P)) over 1 and 2 ranks."""
    runs = []
    for n_part, grid, ranks in ((1000, 8, 1), (4000, 8, 2), (1000, 16, 2), (4000, 16, 1)):
        n_cells, share = grid ** 3, -(-n_part // ranks)
        tape = 2 * law(share, n_cells) + 16 * share
        runs.append({"name": f"kick_memory/fused/float32/N_part:{n_part}/grid:{grid}x{grid}x{grid}/N_kicks:2/ranks:{ranks}",
                     "run_type": "iteration", "N_part": n_part, "ranks": ranks, "N_part_rank": share,
                     "N_cells": n_cells, "N_kicks": 2, "tape_bytes": law(share, n_cells),
                     "alloc_delta_bytes": law(share, n_cells), "tape_bytes_total": tape,
                     "peak_bytes_total": tape + 100 * share + 300 * n_cells + 5000,
                     "particles_per_rank": [share] * ranks})
    return {"context": {"backend": "cpu"}, "benchmarks": runs}


def shard():
    """small_sweep() as the only shard of its sweep (sctape-bench --shard 0/1), for `sctape merge`."""
    doc = small_sweep()
    names = [r["name"] for r in doc["benchmarks"]]
    digest = 0xcbf29ce484222325  # FNV-1a 64 of the names joined by newlines (fit/shard.hpp sweep_id)
    for byte in "\n".join(names).encode():
        digest = ((digest ^ byte) * 0x100000001b3) % 2 ** 64
    doc["context"].update({"shard_schema_version": "1", "shard": "0/1", "shard_case_indices": "0,1,2,3",
                           "sweep_cases": "4", "sweep_id": f"fnv1a64:{digest:016x}", "sweep_filter": "kick_memory"})
    return doc


def point_list():
    return [{"code": "other", "strategy": "fused", "dtype": "float32", "N_part": n_part, "N_cells": n_cells,
             "N_kicks": 2, "bytes": 2 * law(n_part, n_cells)}
            for n_part, n_cells in ((1000, 512), (4000, 512), (1000, 4096), (4000, 4096))]


def coeffs():
    return {"schema_version": 1, "kind": "sctape-coeffs", "with_constant": False,
            "fits": [{"strategy": "fused", "dtype": "float32", "backend": "cpu", "measure": "tape_bytes",
                      "scope": "total", "alpha_part_bytes": 24.0, "alpha_cells_bytes": 8.0, "alpha_0_bytes": None,
                      "max_relative_residual": 0.001, "n_points": 4}],
            "kick_fits": []}


def rank_coeffs():
    """coeffs() fitted over ranks: its per_rank section, which `plan --ranks` reads."""
    doc = coeffs()
    doc["per_rank"] = {"ranks": [1, 2], "N_part": "the particles on one rank",
                       "rank_dependence": [{"strategy": "fused", "dtype": "float32", "same_share_pairs": 0,
                                            "max_tape_difference_bytes": None, "max_peak_difference_bytes": None}]}
    return doc


def baseline():
    return {"schema_version": 1, "kind": "sctape-baseline", "measure": "tape_bytes",
            "fits": [{"strategy": "fused", "dtype": "float32", "scope": "total", "measure": "tape_bytes",
                      "alpha_part_bytes": 24.0, "alpha_cells_bytes": 8.0, "alpha_0_bytes": None,
                      "max_relative_residual": 0.001, "n_points": 4}]}


# ---------------------------------------------------------------- mutations

def paths(doc, prefix=()):
    """Every key path in doc (dict keys and list indices), parents before children; inside a
    list only the first element's (the others are alike: mutating them again adds time, not cases)."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        yield prefix + (key,)
        if not isinstance(doc, list) or key == 0:
            yield from paths(value, prefix + (key,))


def path_id(path):
    return ".".join(str(p) for p in path) or "<top>"


def with_value(doc, path, value):
    doc = copy.deepcopy(doc)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return doc


def raw(doc, path, text):
    """doc serialized with the value at path replaced by the raw JSON text (NaN, 1e999, deep nesting...)."""
    return json.dumps(with_value(doc, path, MUT), indent=1).replace(json.dumps(MUT), text, 1)


def deleted(doc, path):
    doc = copy.deepcopy(doc)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return json.dumps(doc, indent=1)


def renamed(doc, path, new_key):
    doc = copy.deepcopy(doc)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent_items = list(parent.items())
    parent.clear()
    for k, v in parent_items:
        parent[new_key if k == path[-1] else k] = v
    return json.dumps(doc, indent=1)


def duplicated(doc, path):
    """The key written twice in the raw text, the second time with another value where there is one."""
    doc = copy.deepcopy(doc)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    value = parent[path[-1]]
    other = (not value if isinstance(value, bool) else 2 * value + 1 if isinstance(value, (int, float)) else value)
    items = list(parent.items())
    parent.clear()
    for k, v in items:
        parent[k] = v
        if k == path[-1]:
            parent[DUP] = other
    return json.dumps(doc, indent=1).replace(json.dumps(DUP), json.dumps(path[-1]), 1)


NUMBER_VALUES = [("nan", "NaN"), ("inf", "Infinity"), ("neg_inf", "-Infinity"), ("overflow", "1e999"),
                 ("huge", "1e308"), ("huge_int", "9223372036854775807"), ("past_uint64", "18446744073709551616"),
                 ("negative", "-1"), ("negative_tiny", "-1e-300"), ("zero", "0"), ("neg_zero", "-0.0"),
                 ("denormal", "5e-324"), ("fraction", "0.5")]
TYPE_VALUES = [("string", '"text"'), ("empty_string", '""'), ("bool", "true"), ("null", "null"), ("array", "[]"),
               ("object", "{}"), ("number", "1")]


def json_type(v):
    return "bool" if isinstance(v, bool) else "number" if isinstance(v, (int, float)) else type(v).__name__


def value_mutations(doc, path):
    """(name, text) for every replacement of the value at path."""
    value = doc
    for key in path:
        value = value[key]
    out = []
    for name, text in TYPE_VALUES:
        if json_type(json.loads(text)) != json_type(value) or (name == "empty_string" and value != ""):
            out.append((f"type:{name}", raw(doc, path, text)))
    if json_type(value) == "number":
        out += [(f"value:{name}", raw(doc, path, text)) for name, text in NUMBER_VALUES]
    if isinstance(value, (dict, list)):
        out.append(("nest", raw(doc, path, "[" * DEEP + "]" * DEEP)))
    return out


def key_mutations(doc, path):
    """(name, text) for the key itself: deleted, renamed (typo, case), duplicated; list elements: deleted."""
    out = [("delete", deleted(doc, path))]
    if isinstance(path[-1], str):
        key = path[-1]
        out.append(("rename:typo", renamed(doc, path, key + "_")))
        if key.lower() != key:
            out.append(("rename:lower", renamed(doc, path, key.lower())))
        out.append(("dup", duplicated(doc, path)))
    return out


def file_mutations(text):
    """Whole-file damage: truncations, emptiness, deep nesting, garbage, another top-level type."""
    data = text.encode()
    out = [(f"truncate:{pct}%", data[:len(data) * pct // 100]) for pct in (0, 10, 50, 90, 99)]
    out += [("truncate:last_byte", data[:-1]),
            ("nest_top", ("[" * DEEP + "]" * DEEP).encode()),
            ("nest_top_object", ('{"a":' * DEEP + "1" + "}" * DEEP).encode()),
            ("not_utf8", b'{"\xff\xfe": 1}'),
            ("top_array", b"[]"), ("top_number", b"1"), ("top_null", b"null"), ("top_nan", b"NaN"),
            ("trailing_garbage", data + b" x")]
    return out


def mutations(doc):
    """(mutation id, bytes) for every mutation of doc; ids are stable as long as doc is."""
    for path in paths(doc):
        for name, text in key_mutations(doc, path) + value_mutations(doc, path):
            yield f"{path_id(path)}/{name}", text.encode() if isinstance(text, str) else text
    for name, data in file_mutations(json.dumps(doc, indent=1)):
        yield name, data


# ---------------------------------------------------------------- the subjects

# A subject: a command with one mutated input file. Strict readers reject
# unknown (renamed) keys; every reader must reject duplicated keys.
Subject = collections.namedtuple("Subject", "name base command output allowed_exit strict")


def subjects(examples_dir):
    out = []
    for file in sorted(os.listdir(examples_dir)):
        if file.endswith(".json"):
            with open(os.path.join(examples_dir, file), encoding="utf-8") as f:
                base = small_config(json.load(f))
            out.append(Subject(f"track/{file[:-5]}", base, ["track", "{input}", "--out", "{out}", "--quiet"],
                               "out", {0}, True))
    out += [
        Subject("fit/sweep", small_sweep(), ["fit", "{input}", "-o", "{out}"], "out", {0}, False),
        Subject("fit/points", point_list(), ["fit", "{input}", "-o", "{out}"], "out", {0}, True),
        Subject("fit/rank-sweep", rank_sweep(), ["fit", "{input}", "-o", "{out}"], "out", {0}, False),
        Subject("plan/rank-coeffs", rank_coeffs(), ["plan", "{input}", "--n-part", "1e6", "--grid", "64", "64", "64",
                                                    "--kicks", "100", "--ranks", "auto", "--memory-GiB", "3"],
                "stdout", {0, 1}, False),
        Subject("merge/shard", shard(), ["merge", "{input}", "-o", "{out}"], "out", {0}, False),
        Subject("check/baseline", baseline(), ["check", "{input}", "{coeffs}"], "stdout", {0, 1}, False),
        Subject("check/coeffs", coeffs(), ["check", "{baseline}", "{input}"], "stdout", {0, 1}, False),
        Subject("check/write-baseline", coeffs(), ["check", "--write-baseline", "{input}", "{out}"], "out", {0}, False),
        Subject("plan/coeffs", coeffs(), ["plan", "{input}", "--n-part", "1e6", "--grid", "64", "64", "64",
                                          "--kicks", "100", "--memory-GiB", "3"], "stdout", {0, 1}, False),
    ]
    return out


# ---------------------------------------------------------------- one case

def reject_constant(name):
    raise ValueError(f"{name} in the output")


def nulls(value, path=""):
    """Paths of null values, except the documented nulls of COEFFS/BASELINE rows that say why (a note)."""
    if isinstance(value, dict):
        explained = isinstance(value.get("note"), str)
        optional = {"alpha_0_bytes", "alpha_0_stderr_bytes", "linearity_p_value", "note", "dtype", "backend", "code",
                    "alpha_part_stderr_bytes", "alpha_cells_stderr_bytes", "slope_stderr_bytes_per_kick",
                    "intercept_stderr_bytes", "sctape_version"}
        return [p for k, v in value.items() if not (v is None and (k in optional or explained))
                for p in nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in nulls(v, f"{path}[{i}]")]
    return [path or "<top>"] if value is None else []


def non_finite(value, path=""):
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in non_finite(v, f"{path}[{i}]")]
    return [path] if isinstance(value, float) and not math.isfinite(value) else []


def output_problem(text, what):
    """Why `text` is not a valid, finite JSON result, or None."""
    try:
        doc = json.loads(text, parse_constant=reject_constant)  # Python would read NaN and Infinity
    except (ValueError, RecursionError) as e:
        return f"{what} is not valid JSON ({str(e)[:80]})"
    bad = non_finite(doc)  # 1e999 parses as inf
    if bad:
        return f"{what} has non-finite numbers at {bad[:3]}"
    bad = nulls(doc)
    if bad:
        return f"{what} has null (a NaN written by nlohmann::json) at {bad[:3]}"
    return None


def stdout_problem(text):
    words = text.replace("/", " ").split()
    bad = [w for w in words if w.lower().strip("+-%,") in ("nan", "inf", "-nan", "infinity")]
    return f"stdout shows {bad[:3]}" if bad else None


def run_case(sctape, subject, mutation_id, data, case_dir, fixtures, pre_existing):
    """The outcome ('ok', 'rejected' or 'VIOLATION') and why."""
    os.makedirs(case_dir, exist_ok=True)
    input_path, out_path = os.path.join(case_dir, "input.json"), os.path.join(case_dir, "out.json")
    with open(input_path, "wb") as f:
        f.write(data)
    sentinel = b"sentinel: must not change\n"
    if pre_existing:
        with open(out_path, "wb") as f:
            f.write(sentinel)
    args = [a.format(input=input_path, out=out_path, **fixtures) for a in subject.command]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    try:
        proc = subprocess.run([sctape] + args, capture_output=True, timeout=TIMEOUT_S, env=env, cwd=case_dir)
    except subprocess.TimeoutExpired:
        return "VIOLATION", f"timeout after {TIMEOUT_S} s (a hang)"
    code, out, err = proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    leftovers = sorted(set(os.listdir(case_dir)) - {"input.json", "out.json"})
    if code < 0:
        return "VIOLATION", f"killed by signal {signal.Signals(-code).name}: {err.strip()[-200:]}"
    if code == 2:
        return rejected_problem(err, out_path, pre_existing, sentinel, leftovers)
    if code not in subject.allowed_exit:
        return "VIOLATION", f"exit code {code}: {err.strip()[-200:]}"
    if (mutation_id.endswith("/dup")) or (subject.strict and "/rename:" in mutation_id):
        return "VIOLATION", f"exit {code}: an ambiguous or misspelt key was accepted ({mutation_id})"
    if leftovers:
        return "VIOLATION", f"exit {code} but left {leftovers}"
    if subject.output == "out":
        if not os.path.exists(out_path):
            return "VIOLATION", f"exit {code} but no output file (a lost result)"
        with open(out_path, "rb") as f:
            problem = output_problem(f.read().decode(errors="replace"), "the output file")
    else:
        problem = stdout_problem(out)
    return ("VIOLATION", f"exit {code}: {problem}") if problem else ("ok", f"exit {code}")


def rejected_problem(err, out_path, pre_existing, sentinel, leftovers):
    if not any("error:" in line for line in err.splitlines()):
        return "VIOLATION", f"exit 2 without an `error:` line (stderr: {err.strip()[-200:]!r})"
    if pre_existing:
        with open(out_path, "rb") as f:
            if f.read() != sentinel:
                return "VIOLATION", "exit 2 but the existing output file was changed"
    elif os.path.exists(out_path):
        return "VIOLATION", "exit 2 but an output file was created"
    if leftovers:
        return "VIOLATION", f"exit 2 but left {leftovers}"
    return "rejected", err.strip().splitlines()[-1][:160]


# ---------------------------------------------------------------- main

def read_expected(path, sanitized):
    """{case id: reason}; lines starting `asan:` only count for a sanitized build (whose larger
    stack frames overflow sooner)."""
    expected = collections.OrderedDict()
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("asan:"):
                if not sanitized:
                    continue
                line = line[len("asan:"):]
            case_id, sep, reason = (part.strip() for part in line.partition("|"))
            if not sep or not reason:
                sys.exit(f"{path}:{number}: expected `ID | reason`, got {line!r}")
            expected[case_id] = reason
    return expected


def write_fixtures(scratch):
    fixtures = {}
    for name, doc in (("coeffs", coeffs()), ("baseline", baseline())):
        fixtures[name] = os.path.join(scratch, f"fixture_{name}.json")
        with open(fixtures[name], "w", encoding="utf-8") as f:
            json.dump(doc, f)
    return fixtures


def all_cases(examples_dir, only):
    for subject in subjects(examples_dir):
        for mutation_id, data in mutations(subject.base):
            case_id = f"{subject.name}/{mutation_id}"
            if only in case_id:
                yield case_id, subject, mutation_id, data


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sctape")
    p.add_argument("examples_dir")
    p.add_argument("expected")
    p.add_argument("scratch")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--only", default="", help="run the cases whose id contains this")
    p.add_argument("--sanitized", action="store_true", help="SCTAPE is an ASan build: `asan:` lines apply")
    args = p.parse_args(argv)
    args.sctape = os.path.abspath(args.sctape)
    shutil.rmtree(args.scratch, ignore_errors=True)
    os.makedirs(args.scratch)
    fixtures, expected = write_fixtures(args.scratch), read_expected(args.expected, args.sanitized)
    cases = list(all_cases(args.examples_dir, args.only))
    results = {}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_case, args.sctape, subject, mutation_id, data,
                               os.path.join(args.scratch, f"case{i}"), fixtures, i % 2 == 1): case_id
                   for i, (case_id, subject, mutation_id, data) in enumerate(cases)}
        for future in concurrent.futures.as_completed(futures):
            results[futures[future]] = future.result()
    return report(results, expected, args.only)


def report(results, expected, only):
    def kind(case_id, outcome):
        return ("expected" if case_id in expected else "NEW") if outcome == "VIOLATION" else outcome
    counts = collections.Counter(kind(c, outcome) for c, (outcome, _) in results.items())
    new = {c: why for c, (outcome, why) in results.items() if outcome == "VIOLATION" and c not in expected}
    still = [c for c in expected if c in results and results[c][0] == "VIOLATION"]
    fixed = [c for c in expected if c in results and results[c][0] != "VIOLATION"]
    unknown = [c for c in expected if c not in results and not only]
    per_subject = collections.defaultdict(collections.Counter)
    for c, (outcome, _) in results.items():
        per_subject["/".join(c.split("/")[:2])][kind(c, outcome)] += 1
    print(f"hostile inputs: {len(results)} cases (ok: exit 0/1 with finite output; rejected: exit 2, nothing written)")
    for subject, c in sorted(per_subject.items()) + [("all", counts)]:
        print(f"  {subject:24s} ok {c['ok']:4d}  rejected {c['rejected']:4d}  "
              f"expected failure {c['expected']:4d}  NEW VIOLATION {c['NEW']:4d}")
    # a harness that cannot tell outcomes apart would pass everything: each subject must show both
    blind = [s for s, c in per_subject.items() if not only and (c["ok"] == 0 or c["rejected"] == 0)]
    print(f"\nexpected failures ({len(still)} still failing), each `ID | reason` in the list:")
    for c in still:
        print(f"  EXPECTED FAILURE {c}: {results[c][1]}\n      known because: {expected[c]}")
    print(f"\n{len(still)} expected failures still failing, {len(fixed)} now pass (remove them)")
    for c in fixed:
        print(f"  NOW PASSES (remove from the list): {c}: {results[c][0]}, {results[c][1]}")
    for c in unknown:
        print(f"  NOT A CASE (remove from the list): {c}")
    for c, why in sorted(new.items()):
        print(f"  NEW VIOLATION {c}: {why}")
    for subject in blind:
        print(f"  HARNESS PROBLEM: {subject} has no ok or no rejected case")
    failed = bool(new or unknown or blind or (not only and len(results) < 1000))
    print(f"\n{len(new)} new violations" + (" -> FAILED" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
