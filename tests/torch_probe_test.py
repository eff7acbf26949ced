#!/usr/bin/python3
"""Tests of bench/torch_probe.py, run by ctest with Debian's python3-torch (1.13) on the CPU.

    /usr/bin/python3 tests/torch_probe_test.py CASE [--sctape PATH] [--tmp DIR]

CASE: appendix_a, cic_fft, scopes, fit_round_trip, cli_errors, committed_cheetah, no_torch. Exit 0 passed,
1 failed, 77 skipped (torch not importable: the case was NOT tested).

Tape bytes are deterministic: every assertion on them is exact.

The CIC deposit + FFT convolution kick (toy_kick below) and its saved bytes,
derived by hand from what each op saves for backward in torch 1.13 (its
tools/autograd/derivatives.yaml), s = bytes per scalar (4 or 8), N particles,
an n^3 grid, indices int64 (8 bytes):

  deposit   g = stack([1-frac, frac])         (N,2,3): saved by the corner muls, 6N s
            8 corners: g_x*g_y (new, N), *g_z saves it          8N s
                       (the g_* are views of g: no new storage)
            index_add(0, idx, w) saves idx (int64, 8N: 64N bytes)
                       and the source w (N,8: 8N s, its backward
                       calls expand_as(source))                 64N + 8N s
            -> (22 s + 64) N
  convolve  pad saves nothing; rfftn (fft_r2c) saves its input,
            the padded grid (2n)^3 s = 8 n^3 s (its backward reads
            self.size(dim.back()), which 1.13's codegen keeps by
            saving self); * green_ft saves green_ft, a constant
            (2n)^2 (n+1) complex: 2 s each, saved again every kick
            but counted once (one storage); irfftn saves nothing  8 n^3 s (+ green once)
  gather    phi.flatten()[idx] saves idx (already counted: the
            same storage); w * e saves w (counted) and e (N,8)      8N s
            sum saves nothing
  push      x + force saves nothing                                  0

  per kick: (30 s + 64) N + 8 s n^3   (float32: 184 N + 32 n^3; float64: 304 N + 64 n^3)
  whole forward: N_kicks * per kick + green_ft once + the loss (x*x).sum(), x saved twice: 3N s.

The memory-scaling paper's Appendix A: f(x) = ||log(M x)||^2, x of N, M of
N x N: M x keeps M (N^2 scalars; x is not kept, M needs no gradient), log keeps
a (N; PyTorch keeps a, the paper 1/a: the same count), b*b keeps b twice, one
storage (N): (N^2 + 2N) s.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "bench"))

FAILURES = []


def check(condition, what):
    print(("ok    " if condition else "FAIL  ") + what)
    if not condition:
        FAILURES.append(what)


def check_equal(got, want, what):
    check(got == want, f"{what}: got {got}, want {want}")


def check_close(got, want, rel, what, origin):
    ok = got is not None and abs(got - want) <= rel * abs(want)
    check(ok, f"{what}: got {got}, want {want} within {rel:g} relative ({origin})")


# ---------------------------------------------------------------- the toy kick

CORNERS = [(cx, cy, cz) for cx in (0, 1) for cy in (0, 1) for cz in (0, 1)]


def toy_kick(probe, x, green_ft, n):
    """CIC deposit on an n^3 grid, FFT convolution on the doubled grid, CIC gather, push."""
    import torch
    with probe.scope("deposit"):
        cell = x.detach().floor()
        frac = x - cell
        g = torch.stack([1 - frac, frac], dim=1)  # (N, 2, 3): corner weights per axis
        w = torch.stack([g[:, cx, 0] * g[:, cy, 1] * g[:, cz, 2] for cx, cy, cz in CORNERS], dim=1)
        c = cell.long()
        idx = torch.stack([((c[:, 0] + cx) * n + c[:, 1] + cy) * n + c[:, 2] + cz for cx, cy, cz in CORNERS], dim=1)
        rho = torch.zeros(n ** 3, dtype=x.dtype).index_add(0, idx.flatten(), w.flatten()).view(n, n, n)
    with probe.scope("convolve"):
        rho2 = torch.nn.functional.pad(rho, (0, n, 0, n, 0, n))
        phi = torch.fft.irfftn(torch.fft.rfftn(rho2) * green_ft, s=rho2.shape)[:n, :n, :n]
    with probe.scope("gather"):
        force = (w * phi.flatten()[idx]).sum(dim=1)
    with probe.scope("push"):
        return x + force[:, None]


def toy_run(dtype):
    """run(probe, case) for torch_probe.sweep: N_kicks toy kicks and the loss ||x||^2."""
    import torch

    def run(probe, case):
        n = case.grid[0]
        gen = torch.Generator().manual_seed(case.n_part)
        # particles inside [1, n-2): every corner of every kick lands on the grid
        x = (1 + (n - 3) * torch.rand(case.n_part, 3, generator=gen, dtype=dtype)).requires_grad_()
        # a small constant Green function: the particles barely move
        green_ft = torch.fft.rfftn(1e-9 * torch.rand(2 * n, 2 * n, 2 * n, generator=gen, dtype=dtype))
        for _ in range(case.n_kicks):
            with probe.kick():
                x = toy_kick(probe, x, green_ft, n)
        return (x * x).sum()
    return run


def toy_per_kick(s, n_part, n):
    return {"deposit": (22 * s + 64) * n_part, "convolve": 8 * s * n ** 3, "gather": 8 * s * n_part, "push": 0}


# ---------------------------------------------------------------- cases

def appendix_a(args):
    import torch
    import torch_probe
    for dtype, s in ((torch.float32, 4), (torch.float64, 8)):
        for n in (10, 300):
            gen = torch.Generator().manual_seed(n)
            m = 0.1 + torch.rand(n, n, generator=gen, dtype=dtype)
            x = torch.rand(n, generator=gen, dtype=dtype).requires_grad_()
            with torch_probe.Probe() as probe:
                with probe.kick():
                    with probe.scope("matmul"):
                        a = m @ x
                    with probe.scope("log"):
                        b = torch.log(a)
                    with probe.scope("square_sum"):
                        f = (b * b).sum()
                probe.backward(f)
            label = f"appendix A, N={n}, {dtype}"
            check_equal(probe.tape_bytes_at_backward, (n * n + 2 * n) * s, f"{label}: tape bytes (N^2 + 2N) s")
            check_equal(probe.tape_bytes_by_scope, {"matmul": n * n * s, "log": n * s, "square_sum": n * s},
                        f"{label}: per scope")
            check_equal(probe.saved_tensors, 4, f"{label}: saves (M, a, b, b)")
            check_equal(probe.tape_bytes, 0, f"{label}: tape after backward")
            grad = 2 * torch.log(m @ x.detach()) / (m @ x.detach()) @ m
            check(torch.allclose(x.grad, grad), f"{label}: the gradient is untouched by the probe")


def cic_fft(args):
    import torch
    import torch_probe
    for dtype, s, complex_bytes in ((torch.float32, 4, 8), (torch.float64, 8, 16)):
        for n_part, n, kicks in ((1000, 8, 2), (3000, 16, 3)):
            case = torch_probe.Case(n_part, (n, n, n), kicks)
            probe = torch_probe.measure(toy_run(dtype), case)
            label = f"CIC+FFT, N={n_part}, {n}^3, {kicks} kicks, {dtype}"
            per_kick = toy_per_kick(s, n_part, n)
            c = probe.counters()
            check_equal(c["tape_bytes"], sum(per_kick.values()), f"{label}: tape per kick (30 s + 64) N + 8 s n^3")
            for scope, b in per_kick.items():
                check_equal(c.get(f"tape_{scope}_bytes", 0), b, f"{label}: {scope} per kick")
            green = (2 * n) ** 2 * (n + 1) * complex_bytes
            check_equal(c["tape_bytes_total"], kicks * sum(per_kick.values()) + green + 3 * n_part * s,
                        f"{label}: whole tape = kicks * per kick + green once + loss")
            check_equal(probe.tape_bytes, 0, f"{label}: tape after backward")
            for key in ("alloc_delta_bytes", "peak_bytes_total"):
                check(key in c, f"{label}: allocator counter {key} present (glibc mallinfo2)")
            # the allocator holds at least the tape: peak_bytes_total >= tape at the end of forward
            check(c["peak_bytes_total"] >= c["tape_bytes_total"], f"{label}: sampled peak >= tape")
            timeline = probe.timeline("autograd", str(dtype).split(".")[1], code="toy")
            check_equal(len([k for k in timeline["kicks"] if not k["backward"]]), kicks, f"{label}: kicks in timeline")
            check_equal(max(e["tape_bytes"] for e in timeline["events"]), c["tape_bytes_total"],
                        f"{label}: timeline's largest tape is the tape at the end of forward")


def scopes(args):
    import torch
    import torch_probe
    x = torch.rand(100, dtype=torch.float64).requires_grad_()
    with torch_probe.Probe() as probe:
        with probe.kick():
            with probe.scope("outer"):
                a = x.exp()                       # exp keeps its result: 800 B in outer
                with probe.scope("inner"):
                    b = a.sin()                   # sin keeps a, already kept: 0 B
                    c = b.cos()                   # cos keeps b: 800 B in outer.inner
                    with probe.scope("deepest"):
                        d = c.tanh()              # tanh keeps its result: 800 B
                e = d.sigmoid()                   # sigmoid keeps its result: 800 B in outer
            f = e.exp()                           # 800 B unscoped, in the kick
        probe.backward(f.sum())
    check_equal(probe.tape_bytes_by_scope, {"outer": 1600, "outer.inner": 800, "outer.inner.deepest": 800,
                                            "unscoped": 800}, "nested scopes get what their own ops kept")
    check_equal(probe.counters()["tape_outer.inner_bytes"], 800, "nested scope in the counters")
    scopes_seen = {e["scope"] for e in probe.events}
    check({"outer", "outer.inner", "outer.inner.deepest", "unscoped"} <= scopes_seen, "timeline events carry scopes")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.first = torch.nn.Linear(10, 20, bias=False).double()
            self.second = torch.nn.Linear(20, 5, bias=False).double()

        def forward(self, v):
            return self.second(torch.tanh(self.first(v)))

    net = Net()
    v = torch.rand(7, 10, dtype=torch.float64)
    with torch_probe.Probe() as probe:
        handles = probe.module_scopes(net)
        with probe.kick():
            out = net(v)
        probe.backward(out.sum())
    for h in handles:
        h.remove()
    # first: Linear keeps its input v (7x10) for its weight's gradient, not its weight (v needs
    # no gradient); second keeps its input tanh(...) (7x20), which tanh (between the two,
    # unscoped) kept first as its result, and its weight (5x20) for its input's gradient
    check_equal(probe.tape_bytes_by_scope, {"first": 7 * 10 * 8, "unscoped": 7 * 20 * 8, "second": 5 * 20 * 8},
                "module scopes: a storage belongs to its first saver")

    with torch_probe.Probe() as probe:
        with probe.kick():
            with probe.scope("field", nest=False):
                with probe.scope("deposit", nest=False):
                    g = x.exp()                   # 800 B in deposit, not field.deposit
                h = g.sin()                       # sin keeps g, already kept: 0 B
                k = h.cos()                       # cos keeps h: 800 B in field
        probe.backward(k.sum())
    check_equal(probe.tape_bytes_by_scope, {"deposit": 800, "field": 800}, "scopes with nest=False are phases")

    def double_log(t):
        return t.log().log()
    with torch_probe.Probe() as probe:
        scoped = torch_probe.wrap(double_log, "logs")
        with probe.kick():
            y = scoped(x + 2)
        probe.backward(y.sum())
    check_equal(probe.tape_bytes_by_scope, {"logs": 1600}, "wrap: a function's saves in its scope")
    try:
        with torch_probe.Probe() as probe:
            with probe.scope("no/slash"):
                pass
        check(False, "a scope name with '/' is refused")
    except torch_probe.ProbeError as e:
        check("scope name" in str(e), f"a scope name with '/' is refused: {e}")


def fit_round_trip(args):
    import torch
    import torch_probe
    if not args.sctape:
        print("fit_round_trip needs --sctape PATH")
        FAILURES.append("no --sctape")
        return
    tmp = tempfile.mkdtemp(dir=args.tmp)
    sweeps = []
    for dtype, s in ((torch.float32, 4), (torch.float64, 8)):
        name = str(dtype).split(".")[1]
        case_list = torch_probe.cases([500, 1000, 2000], [(4, 4, 4), (8, 8, 8), (12, 12, 12)], [2])
        doc = torch_probe.sweep(toy_run(dtype), case_list, code="toy", strategy="autograd", dtype=name)
        path = os.path.join(tmp, f"sweep_{name}.json")
        torch_probe.write_json(doc, path)
        sweeps.append(path)
    merged = os.path.join(tmp, "sweep.json")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "torch_probe.py"), "concat", *sweeps,
                        "-o", merged], capture_output=True, text=True)
    check_equal(r.returncode, 0, f"torch_probe.py concat exit code ({r.stderr.strip()})")
    coeffs_path = os.path.join(tmp, "coeffs.json")
    r = subprocess.run([args.sctape, "fit", merged, "-o", coeffs_path], capture_output=True, text=True)
    check_equal(r.returncode, 0, f"sctape fit exit code ({r.stderr.strip()})")
    if r.returncode != 0:
        return
    with open(coeffs_path, encoding="utf-8") as f:
        fits = json.load(f)["fits"]
    # Exact integer bytes fitted by double-precision least squares: the coefficients come
    # back to rounding, 1e-9 relative (the design's condition number is below 1e4).
    origin = "exact integer bytes, double-precision least squares"
    for dtype, s in (("float32", 4), ("float64", 8)):
        want = {"total": (30 * s + 64, 8 * s), "deposit": (22 * s + 64, 0), "convolve": (0, 8 * s),
                "gather": (8 * s, 0)}
        for scope, (a_part, a_cells) in want.items():
            row = [f for f in fits if (f["strategy"], f["dtype"], f["measure"], f["scope"]) ==
                   ("toy:autograd", dtype, "tape_bytes", scope)]
            check_equal(len(row), 1, f"fit row toy:autograd {dtype} tape_bytes {scope}")
            if not row:
                continue
            for key, value in (("alpha_part_bytes", a_part), ("alpha_cells_bytes", a_cells)):
                got = row[0][key]
                if value == 0:
                    check(got is not None and abs(got) <= 1e-9 * 100, f"{dtype} {scope} {key}: got {got}, want 0 "
                          f"within 1e-7 B ({origin})")
                else:
                    check_close(got, value, 1e-9, f"{dtype} {scope} {key}", origin)
    try:
        import matplotlib  # noqa: F401  (plot.py's one dependency)
        plots = os.path.join(tmp, "plots")
        r = subprocess.run([sys.executable, os.path.join(ROOT, "fit", "plot.py"), merged, coeffs_path, "-o", plots,
                            "--measure", "tape_bytes"], capture_output=True, text=True)
        check_equal(r.returncode, 0, f"fit/plot.py draws the sweep ({r.stderr.strip()[-300:]})")
        check(os.path.isfile(os.path.join(plots, "coefficients_float32_tape_bytes.png")),
              "fit/plot.py wrote coefficients_float32_tape_bytes.png")
    except ImportError:
        print("note: matplotlib missing: fit/plot.py not run here (its own tests report that as skipped)")
    baseline = os.path.join(tmp, "baseline.json")
    r = subprocess.run([args.sctape, "check", "--write-baseline", coeffs_path, baseline], capture_output=True,
                       text=True)
    check_equal(r.returncode, 0, f"sctape check --write-baseline reads the fit ({r.stderr.strip()})")
    r = subprocess.run([args.sctape, "check", baseline, coeffs_path], capture_output=True, text=True)
    check_equal(r.returncode, 0, f"sctape check passes the fit against itself ({r.stderr.strip()})")
    r = subprocess.run([args.sctape, "plan", coeffs_path, "--n-part", "1000", "--grid", "8", "8", "8",
                        "--kicks", "10", "--dtype", "float32", "--strategy", "toy:autograd"],
                       capture_output=True, text=True)
    check_equal(r.returncode, 0, f"sctape plan reads the fit ({r.stderr.strip()})")
    # its row: per kick 184*1000 + 32*512 B in MiB, as plan prints it (one decimal)
    row = [line.split() for line in r.stdout.splitlines() if line.startswith("toy:autograd")]
    per_kick_mib = f"{(184 * 1000 + 32 * 512) / 2 ** 20:.1f}"
    check(len(row) == 1 and row[0][1:3] == ["float32", per_kick_mib],
          f"sctape plan's row toy:autograd float32 {per_kick_mib} MiB per kick:\n{r.stdout}")


def cli_errors(args):
    """Bad input to `torch_probe.py concat`: exit 2 with an error line naming the cause, nothing written."""
    tmp = tempfile.mkdtemp(dir=args.tmp)
    not_a_sweep = os.path.join(tmp, "list.json")
    with open(not_a_sweep, "w", encoding="utf-8") as f:
        f.write("[1, 2]")
    shard = os.path.join(tmp, "shard.json")
    with open(shard, "w", encoding="utf-8") as f:
        json.dump({"context": {"shard_schema_version": 1}, "benchmarks": []}, f)
    cheetah = os.path.join(ROOT, "results", "cheetah", "sweep_cpu.json")
    out = os.path.join(tmp, "out.json")
    script = os.path.join(ROOT, "bench", "torch_probe.py")
    for argv, cause in (([not_a_sweep], "not a Google Benchmark JSON"),
                        ([shard], "join shards with `sctape merge`"),
                        ([cheetah, cheetah], "is also in"),
                        ([os.path.join(tmp, "missing.json")], "cannot read"),
                        ([not_a_sweep, "-o", not_a_sweep], "one of the inputs"),
                        ([os.path.join(ROOT, "results", "cheetah", "sweep_cpu.json"), "-o",
                          os.path.join(tmp, "no", "such", "folder.json")], "cannot write")):
        argv = argv if "-o" in argv else argv + ["-o", out]
        r = subprocess.run([sys.executable, script, "concat", *argv], capture_output=True, text=True)
        check(r.returncode == 2 and "torch_probe: error:" in r.stderr and cause in r.stderr,
              f"concat {' '.join(os.path.basename(a) for a in argv)}: exit 2, '{cause}' ({r.stderr.strip()!r})")
    check(not os.path.exists(out) and sorted(os.listdir(tmp)) == ["list.json", "shard.json"], "nothing written")


def same_json(a, b, where="coeffs"):
    """Equal structure and strings; numbers equal to 1e-9 relative (origin: the same points refitted by
    a build with other optimization flags may round the last bits differently)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k], f"{where}.{k}") for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, b)))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        if abs(a - b) <= 1e-9 * max(abs(a), abs(b)):
            return True
    elif a == b:
        return True
    print(f"      differs at {where}: {a!r} vs {b!r}")
    return False


def committed_cheetah(args):
    """results/cheetah/coeffs_cpu.json is `sctape fit` of the committed Cheetah sweep (needs no torch)."""
    results = os.path.join(ROOT, "results", "cheetah")
    out = os.path.join(tempfile.mkdtemp(dir=args.tmp), "coeffs.json")
    r = subprocess.run([args.sctape, "fit", os.path.join(results, "sweep_cpu.json"), "-o", out],
                       capture_output=True, text=True)
    check_equal(r.returncode, 0, f"sctape fit results/cheetah/sweep_cpu.json ({r.stderr.strip()[-200:]})")
    if r.returncode == 0:
        with open(out, encoding="utf-8") as f, open(os.path.join(results, "coeffs_cpu.json"), encoding="utf-8") as g:
            check(same_json(json.load(g), json.load(f)), "refitted coefficients equal results/cheetah/coeffs_cpu.json")


def no_torch(args):
    """With a `torch` that fails to import: a clear message and exit 2, nothing written."""
    shim = tempfile.mkdtemp(dir=args.tmp)
    with open(os.path.join(shim, "torch.py"), "w", encoding="utf-8") as f:
        f.write('raise ImportError("No module named \'torch\' (test shim)")\n')
    out = os.path.join(shim, "merged.json")
    env = dict(os.environ, PYTHONPATH=shim)
    script = os.path.join(ROOT, "bench", "torch_probe.py")
    r = subprocess.run([sys.executable, script, "concat", script, "-o", out], env=env, capture_output=True, text=True)
    check_equal(r.returncode, 2, "command line without torch: exit code")
    check("PyTorch is not importable" in r.stderr and "python3-torch" in r.stderr,
          f"command line without torch: the message says so: {r.stderr.strip()!r}")
    check(not os.path.exists(out), "command line without torch: nothing written")
    r = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {os.path.join(ROOT, 'bench')!r}); "
                        "import torch_probe"], env=env, capture_output=True, text=True)
    check(r.returncode != 0 and "PyTorch is not importable" in r.stderr,
          f"import torch_probe without torch: ImportError with the message: {r.stderr.strip()[-200:]!r}")


CASES = {"appendix_a": appendix_a, "cic_fft": cic_fft, "scopes": scopes, "fit_round_trip": fit_round_trip,
         "cli_errors": cli_errors, "committed_cheetah": committed_cheetah, "no_torch": no_torch}
NEEDS_TORCH_1_13 = {"cic_fft", "fit_round_trip"}  # the hand derivation is torch 1.13's (docstring)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("case", choices=sorted(CASES))
    p.add_argument("--sctape", help="the sctape binary (fit_round_trip)")
    p.add_argument("--tmp", default=None, help="scratch folder (default: the system's)")
    args = p.parse_args()
    if args.tmp:
        os.makedirs(args.tmp, exist_ok=True)
    if args.case not in ("no_torch", "committed_cheetah"):
        try:
            import torch
        except ImportError as e:
            print(f"SKIPPED: torch is not importable ({e}; apt-get install python3-torch): "
                  f"{args.case} was NOT tested (exit 77 = skipped)")
            return 77
        if args.case in NEEDS_TORCH_1_13 and not torch.__version__.startswith("1.13"):
            print(f"SKIPPED: {args.case}'s bytes are derived for torch 1.13 (Debian bookworm), this is "
                  f"torch {torch.__version__}: NOT tested (exit 77 = skipped)")
            return 77
    CASES[args.case](args)
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
