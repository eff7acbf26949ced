#!/usr/bin/python3
"""torch_probe — the memory reverse mode keeps in any PyTorch code, as sctape measures its own.

    import torch_probe                                  # bench/torch_probe.py; needs only torch
    with torch_probe.Probe("cpu") as probe:
        for _ in range(n_kicks):
            with probe.kick():                          # one space-charge kick
                with probe.scope("deposit"):            # named scopes nest: "deposit.weights"
    torch_probe.wrap(fn, "green")            # fn's calls in a scope, whichever probe is active
                    rho = deposit(x)
                ...
        probe.backward(loss)
    probe.counters()                                    # sctape's kick_memory counters
    probe.timeline(strategy="autograd", dtype="float32")  # sctape's TIMELINE (schema 2)

    doc = torch_probe.sweep(run, torch_probe.cases([1000, 4000], [(16,) * 3, (32,) * 3], [2]),
                            code="mycode", strategy="autograd", dtype="float32")
    torch_probe.write_json(doc, "sweep.json")           # `sctape fit sweep.json -o coeffs.json`

What it counts:
  tape bytes   every tensor autograd saves for backward passes through
               torch.autograd.graph.saved_tensors_hooks; its storage is counted
               once (views and repeated saves of one storage are free), in the
               innermost scope active when the storage was first saved. A
               storage leaves the tape when the graph drops its last saved
               reference to it (after backward, or when the graph is freed).
  allocator    CUDA: torch.cuda.memory_allocated / max_memory_allocated (exact).
               CPU: glibc's mallinfo2 (bytes in use, heap and mmap), sampled at
               every scope boundary, kick mark and saved-tensor pack/unpack;
               its peak is the largest sample, a lower bound of the true peak.
               Elsewhere (no glibc) no allocator counters are written.
  kicks        probe.kick() marks one kick; the per-kick counters are what the
               last kick added, like sctape-bench's (the steady cost of one
               more kick).

The sweep is a Google Benchmark JSON shaped like sctape-bench's kick_memory
sweep (bench/kick_memory.cpp; docs/result-schema.md): entry names
kick_memory/<code>:<strategy>/<dtype>/N_part:<n>/grid:<nx>x<ny>x<nz>/N_kicks:<k>,
so `sctape fit`, `sctape check`, `sctape plan` and fit/plot.py read it as they
read sctape's own. Reference: docs/torch-probe.md.

Command line (merging sweeps for one figure):
    /usr/bin/python3 bench/torch_probe.py concat A.json B.json ... -o OUT.json
"""
import argparse
import contextlib
import ctypes
import functools
import gc
import itertools
import json
import math
import os
import re
import sys
import tempfile
import time
import weakref
from collections import namedtuple

TORCH_MISSING = ("PyTorch is not importable ({}); install Debian's python3-torch "
                 "(scripts/install-deps.sh) or run inside a virtual environment that has torch")
try:
    import torch
except ImportError as _error:  # the one dependency: say so, do not fail half way
    if __name__ == "__main__":
        print("torch_probe: error: " + TORCH_MISSING.format(_error), file=sys.stderr)
        sys.exit(2)
    raise ImportError(TORCH_MISSING.format(_error)) from _error

SCHEMA_VERSION = 1
TIMELINE_SCHEMA_VERSION = 2  # sctape's TIMELINE (docs/result-schema.md)
UNSCOPED = "unscoped"        # bytes saved inside a kick but outside every scope
SAFE_NAME = re.compile(r"^[A-Za-z0-9_+-]+$")  # scope names become counter and file names
UNITS = "bytes for *_bytes*, milliseconds for *_ms, per kick unless *_total"


class ProbeError(Exception):
    """Misuse or bad input: the command line reports it and exits with code 2."""


# ---------------------------------------------------------------- allocators

class _CudaAllocator:
    memory_space = "device"

    def __init__(self, device):
        self.device = device

    def start(self):
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        return torch.cuda.memory_allocated(self.device)

    def current(self):
        return torch.cuda.memory_allocated(self.device)

    def peak(self, sampled_peak):
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


class _GlibcHeap:
    """Bytes the C heap has handed out (mallinfo2: uordblks + hblkhd), where torch's CPU tensors live."""
    memory_space = "host_heap_sampled"

    def __init__(self, mallinfo2):
        self.mallinfo2 = mallinfo2

    def start(self):
        return self.current()

    def current(self):
        info = self.mallinfo2()
        return info.uordblks + info.hblkhd

    def peak(self, sampled_peak):
        return sampled_peak


def _allocator(device):
    if device.type == "cuda":
        return _CudaAllocator(device)
    if device.type == "cpu":
        try:
            libc = ctypes.CDLL(None)
            mallinfo2 = libc.mallinfo2  # glibc >= 2.33
        except (OSError, AttributeError):
            return None
        mallinfo2.restype = _Mallinfo2
        mallinfo2.argtypes = []
        return _GlibcHeap(mallinfo2)
    return None


# ---------------------------------------------------------------- the probe

def _check_scope_name(name):
    if not isinstance(name, str) or not SAFE_NAME.match(name):
        raise ProbeError(f"scope name must be letters, digits, _, + or -, got {name!r}")


class _Saved:
    """What the graph keeps instead of a saved tensor: its finalizer tells when the graph lets go."""
    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor):
        self.tensor = tensor


class _Storage:
    __slots__ = ("nbytes", "refs")

    def __init__(self, nbytes):
        self.nbytes, self.refs = nbytes, 0


def _storage_key_and_bytes(t):
    """(key, bytes) of the storage behind t; views of one storage share the key."""
    try:
        # untyped_storage: torch >= 2 (where storage() warns); storage(): 1.13
        storage = t.untyped_storage() if hasattr(t, "untyped_storage") else t.storage()
        return (t.device.type, t.device.index, storage.data_ptr()), storage.nbytes()
    except (RuntimeError, NotImplementedError):  # sparse and other tensors without one storage
        return ("tensor", id(t)), t.element_size() * t.nelement()


class _Kick:
    __slots__ = ("index", "start_s", "end_s", "backward", "tape_bytes_by_scope", "alloc_bytes_by_scope",
                 "alloc_start", "alloc_end")

    def __init__(self, index, start_s, backward, alloc_start):
        self.index, self.start_s, self.end_s, self.backward = index, start_s, None, backward
        self.tape_bytes_by_scope, self.alloc_bytes_by_scope = {}, {}
        self.alloc_start, self.alloc_end = alloc_start, None


class Probe:
    """Records the tape (unique storages saved for backward) and the allocator while active.

    Use as a context manager around the forward pass and `probe.backward(loss)`.
    """

    def __init__(self, device="cpu", log_saves=False):
        self.device = torch.device(device)
        self.log_saves = log_saves       # keep one line per saved tensor in self.saves
        self._allocator = _allocator(self.device)
        self._hooks = None
        self._reset()

    # ------------------------------------------------ recording

    def _reset(self):
        self._t0 = time.perf_counter()
        self._stack = []                 # active scopes (name, nest), outermost first
        self._live = {}                  # storage key -> _Storage
        self.tape_bytes = 0              # live tape now
        self.tape_bytes_by_scope = {}    # every storage ever saved, by scope path (forward and backward)
        self.saved_tensors = 0           # pack calls, a storage saved twice counts twice
        self.saves = []                  # with log_saves: (scope, shape, dtype, storage bytes, new storage)
        self.kicks = []
        self._kick = None
        self.backward_started = False
        self.tape_bytes_at_backward = None
        self.forward_s = self.backward_s = None
        self.events = []
        self._alloc_start = self._allocator.start() if self._allocator else None
        self._alloc_last = self._alloc_start
        self._alloc_peak = self._alloc_start

    def __enter__(self):
        global _active
        if _active is not None:
            raise ProbeError("a Probe is already active: one at a time")
        gc.collect()
        self._reset()
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._hooks.__enter__()
        _active = self
        self._sample()
        return self

    def __exit__(self, *exc):
        global _active
        _active = None
        hooks, self._hooks = self._hooks, None
        hooks.__exit__(*exc)
        if self.forward_s is None:
            self.forward_s = self._now()
        self._sample()
        return False

    def _now(self):
        return time.perf_counter() - self._t0

    def scope_path(self):
        """The active scopes joined by '.', from the innermost one that does not nest."""
        start = 0
        for i, (_, nest) in enumerate(self._stack):
            if not nest:
                start = i
        return ".".join(name for name, _ in self._stack[start:]) if self._stack else UNSCOPED

    def _sample(self):
        """One timeline event; allocator growth since the last event goes to the scope active now."""
        current = self._allocator.current() if self._allocator else None
        if current is not None:
            grown = current - self._alloc_last
            if self._kick is not None and grown:
                by_scope = self._kick.alloc_bytes_by_scope
                by_scope[self.scope_path()] = by_scope.get(self.scope_path(), 0) + grown
            self._alloc_last = current
            self._alloc_peak = max(self._alloc_peak, current)
        self.events.append({"time_s": round(self._now(), 7),
                            "current_bytes": None if current is None else current - self._alloc_start,
                            "tape_bytes": self.tape_bytes, "scope": self.scope_path(),
                            "backward": self.backward_started})

    def _pack(self, t):
        self._sample()  # what the op allocated before saving belongs to the scope active now
        key, nbytes = _storage_key_and_bytes(t)
        self.saved_tensors += 1
        entry = self._live.get(key)
        if entry is None:
            path = self.scope_path()
            entry = self._live[key] = _Storage(nbytes)
            self.tape_bytes += nbytes
            self.tape_bytes_by_scope[path] = self.tape_bytes_by_scope.get(path, 0) + nbytes
            if self._kick is not None:
                by_scope = self._kick.tape_bytes_by_scope
                by_scope[path] = by_scope.get(path, 0) + nbytes
            self._sample()
        if self.log_saves:
            self.saves.append((self.scope_path(), tuple(t.shape), str(t.dtype), nbytes, entry.refs == 0))
        entry.refs += 1
        saved = _Saved(t)
        weakref.finalize(saved, self._release, key, entry)
        return saved

    def _unpack(self, saved):
        if self._hooks is not None:
            self._sample()
        return saved.tensor

    def _release(self, key, entry):
        entry.refs -= 1
        if entry.refs == 0 and self._live.get(key) is entry:
            del self._live[key]
            self.tape_bytes -= entry.nbytes
            if self._hooks is not None:
                self._sample()

    # ------------------------------------------------ what the user marks

    @contextlib.contextmanager
    def scope(self, name, nest=True):
        """Bytes saved inside go to NAME: "outer.NAME" inside scope "outer", or plain NAME when
        nest is False (a phase: e.g. a library's deposit called from inside its field solver)."""
        _check_scope_name(name)
        self._sample()
        self._stack.append((name, nest))
        try:
            yield self
        finally:
            self._sample()
            self._stack.pop()

    @contextlib.contextmanager
    def kick(self):
        """One kick: per-kick counters are what the last kick of the forward pass added."""
        if self._hooks is None:
            raise ProbeError("probe.kick() outside `with Probe(...)`")
        if self._kick is not None:
            raise ProbeError("probe.kick() inside another kick")
        self._sample()
        index = sum(1 for k in self.kicks if k.backward == self.backward_started)
        self._kick = _Kick(index, self._now(), self.backward_started, self._alloc_last)
        try:
            yield self
        finally:
            self._sample()
            kick, self._kick = self._kick, None
            kick.end_s, kick.alloc_end = self._now(), self._alloc_last
            self.kicks.append(kick)

    def module_scopes(self, module, names=None):
        """A scope per call of each submodule named in NAMES ({qualified name: scope}), or of every
        direct child (scope: its attribute name). Returns the hook handles (call .remove())."""
        names = names or {child: child for child, _ in module.named_children()}
        modules = dict(module.named_modules())
        handles = []
        for qualified, scope_name in names.items():
            _check_scope_name(scope_name)
            if qualified not in modules:
                raise ProbeError(f"module_scopes: no submodule {qualified!r}")
            handles.append(modules[qualified].register_forward_pre_hook(
                lambda _m, _in, n=scope_name: self._push(n)))
            handles.append(modules[qualified].register_forward_hook(
                lambda _m, _in, _out, n=scope_name: self._pop(n)))
        return handles

    def _push(self, name):
        if self._hooks is not None:
            self._sample()
            self._stack.append((name, True))

    def _pop(self, name):
        # a forward that raised left its scope open: close it and what it left open inside
        names = [n for n, _ in self._stack]
        if self._hooks is not None and name in names:
            self._sample()
            del self._stack[len(names) - 1 - names[::-1].index(name):]

    def backward(self, loss):
        """loss.backward(), timed, with its saves and releases marked as the backward pass."""
        if self._hooks is None:
            raise ProbeError("probe.backward() outside `with Probe(...)`")
        if self._stack or self._kick is not None:
            raise ProbeError("probe.backward() inside a scope or kick")
        self._synchronize()
        self.forward_s = self._now()
        self._sample()
        self.tape_bytes_at_backward = self.tape_bytes
        self.backward_started = True
        self._sample()
        loss.backward()
        self._synchronize()
        self.backward_s = self._now() - self.forward_s
        self._sample()

    def _synchronize(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ------------------------------------------------ results

    def forward_kicks(self):
        return [k for k in self.kicks if not k.backward]

    def peak_bytes(self):
        """Allocator peak over the run above its level at the start; None without an allocator."""
        if self._allocator is None:
            return None
        return self._allocator.peak(self._alloc_peak) - self._alloc_start

    def counters(self):
        """sctape-bench's kick_memory counters (docs/result-schema.md, SWEEP) of this run."""
        kicks = self.forward_kicks()
        if not kicks:
            raise ProbeError("no kick marked in the forward pass: wrap each kick in `with probe.kick():`")
        if self.tape_bytes_at_backward is None:
            raise ProbeError("no backward pass recorded: call probe.backward(loss)")
        last = kicks[-1]
        c = {"tape_bytes": sum(last.tape_bytes_by_scope.values()),
             "tape_bytes_total": self.tape_bytes_at_backward,
             "forward_ms": 1e3 * self.forward_s, "backward_ms": 1e3 * self.backward_s}
        for path, b in last.tape_bytes_by_scope.items():
            c[f"tape_{path}_bytes"] = b
        if self._allocator is not None:
            c["alloc_delta_bytes"] = last.alloc_end - last.alloc_start
            c["peak_bytes_total"] = self.peak_bytes()
            for path, b in last.alloc_bytes_by_scope.items():
                c[f"alloc_{path}_bytes"] = b
        return c

    def memory_space(self):
        return self._allocator.memory_space if self._allocator else None

    def timeline(self, strategy, dtype, code=None):
        """sctape's TIMELINE (schema 2, `fit/plot.py --timeline`), plus tape_bytes per event."""
        events = self.events
        if self._allocator is None:
            raise ProbeError(f"no allocator to draw on {self.device}: a timeline needs current_bytes")
        return {"schema_version": TIMELINE_SCHEMA_VERSION, "kind": "sctape-torch-probe-timeline",
                "probe_schema_version": SCHEMA_VERSION, "mode": "reverse", "code": code,
                "strategy": strategy, "dtype": dtype, "memory_space": self.memory_space(),
                "device": device_description(self.device),
                "note": "current_bytes: allocator above its level before the run; tape_bytes: unique storages "
                        "saved for backward and still held; time_s, start_s, end_s from the start of the run",
                "events": events,
                "kicks": [{"index": k.index, "start_s": k.start_s, "end_s": k.end_s, "backward": k.backward}
                          for k in self.kicks]}


_active = None  # the Probe inside its `with`, for wrap()


def wrap(fn, name, nest=True):
    """fn, with every call made while a Probe is active inside probe.scope(NAME, nest): a way to
    scope a library's functions or methods without editing them (they run unchanged otherwise)."""
    _check_scope_name(name)

    @functools.wraps(fn)
    def scoped(*args, **kwargs):
        if _active is None:
            return fn(*args, **kwargs)
        with _active.scope(name, nest):
            return fn(*args, **kwargs)
    return scoped


# ---------------------------------------------------------------- sweeps

Case = namedtuple("Case", "n_part grid n_kicks")


def cases(n_parts, grids, n_kicks):
    """Every N_part x grid x N_kicks, grids as (nx, ny, nz)."""
    out = []
    for n_part, grid, kicks in itertools.product(n_parts, grids, n_kicks):
        grid = tuple(int(g) for g in grid)
        if int(n_part) < 1 or len(grid) != 3 or min(grid) < 1 or int(kicks) < 1:
            raise ProbeError(f"case N_part={n_part}, grid={grid}, N_kicks={kicks}: need positive numbers, "
                             "a grid of three")
        out.append(Case(int(n_part), grid, int(kicks)))
    return out


def device_description(device):
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"{device.type}: {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def entry_name(code, strategy, dtype, case):
    for label, value in (("code", code), ("strategy", strategy), ("dtype", dtype)):
        if not isinstance(value, str) or not SAFE_NAME.match(value):
            raise ProbeError(f"{label} must be letters, digits, _, + or -, got {value!r}")
    nx, ny, nz = case.grid
    return f"kick_memory/{code}:{strategy}/{dtype}/N_part:{case.n_part}/grid:{nx}x{ny}x{nz}/N_kicks:{case.n_kicks}"


def measure(run, case, device="cpu"):
    """Runs run(probe, case) -> scalar loss under a Probe, then its backward; returns the probe."""
    with Probe(device) as probe:
        loss = run(probe, case)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ProbeError(f"run(probe, case) must return a scalar tensor to differentiate, got {type(loss)}")
        probe.backward(loss)
        del loss
    marked = len(probe.forward_kicks())
    if marked != case.n_kicks:
        raise ProbeError(f"case with N_kicks = {case.n_kicks} marked {marked} kicks with probe.kick()")
    return probe


def _progress(done, total, started, name, out):
    elapsed = time.perf_counter() - started
    left = elapsed / done * (total - done) if done else float("nan")
    out.write(f"[{done}/{total}] {name}  elapsed {elapsed:.1f} s, ~{left:.0f} s left\n")
    out.flush()


def sweep(run, case_list, code, strategy, dtype, device="cpu", progress=sys.stderr, on_probe=None):
    """A kick_memory sweep (Google Benchmark JSON) of run(probe, case) over case_list.

    on_probe(case, probe), if given, sees every run's probe (e.g. to keep one timeline).
    Scopes found in some runs and not others get 0 bytes in the others, so that
    every entry has every counter `sctape fit` fits.
    """
    device = torch.device(device)
    described = device_description(device)
    entries, started = [], time.perf_counter()
    for i, case in enumerate(case_list):
        name = entry_name(code, strategy, dtype, case)
        probe = measure(run, case, device)
        if on_probe:
            on_probe(case, probe)
        entry = {"name": name, "run_name": name, "run_type": "iteration", "iterations": 1,
                 "real_time": probe.forward_s + probe.backward_s, "time_unit": "s", "code": code, "device": described,
                 "N_part": case.n_part, "N_cells": case.grid[0] * case.grid[1] * case.grid[2],
                 "N_kicks": case.n_kicks}
        entry.update(probe.counters())
        entries.append(entry)
        if progress:
            _progress(i + 1, len(case_list), started, name, progress)
    _fill_missing_scopes(entries)
    alloc = _allocator(device)
    return {"context": {"kind": "sctape-torch-probe-sweep", "probe_schema_version": SCHEMA_VERSION,
                        "code": code, "backend": device.type, "device": described,
                        "memory_space": alloc.memory_space if alloc else "none",
                        "torch_version": torch.__version__, "dtypes": dtype, "units": UNITS,
                        "tape": "unique storages saved for backward (torch.autograd.graph.saved_tensors_hooks)"},
            "benchmarks": entries}


def _fill_missing_scopes(entries):
    keys = set()
    for e in entries:
        keys.update(k for k in e if (k.startswith("tape_") or k.startswith("alloc_")) and k.endswith("_bytes"))
    for e in entries:
        for k in keys:
            e.setdefault(k, 0)


# ---------------------------------------------------------------- output

def _check_finite(value, where="document"):
    if isinstance(value, float) and not math.isfinite(value):
        raise ProbeError(f"{where} is {value}: refusing to write a non-finite number")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, f"{where}[{i}]")


def write_json(doc, path, indent=1):
    """Writes doc atomically (a temporary file renamed into place); nothing is written on a NaN.
    indent=None writes one line (timelines: thousands of events)."""
    _check_finite(doc)
    text = json.dumps(doc, indent=indent, allow_nan=False, separators=None if indent else (",", ":")) + "\n"
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".torch_probe-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 is not what a result file should have
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def concat_sweeps(docs):
    """One sweep of several codes' (sctape-bench's and the probe's): benchmarks
    concatenated, first context kept. Shards of one sweep are joined by
    `sctape merge`, which checks that they fit together; this refuses them."""
    names = {}
    for path, doc in docs:
        if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
            raise ProbeError(f"'{path}' is not a Google Benchmark JSON (no \"benchmarks\" list)")
        if isinstance(doc.get("context"), dict) and "shard_schema_version" in doc["context"]:
            raise ProbeError(f"'{path}' is a shard of a sweep: join shards with `sctape merge`")
        for b in doc["benchmarks"]:
            name = b.get("name") if isinstance(b, dict) else None
            if name in names:
                raise ProbeError(f"'{path}': run '{name}' is also in '{names[name]}'")
            names[name] = path
    context = docs[0][1].get("context")
    merged = {"context": dict(context) if isinstance(context, dict) else {}, "benchmarks": []}
    merged["context"]["merged_from"] = ", ".join(path for path, _ in docs)
    for _, doc in docs:
        merged["benchmarks"].extend(doc["benchmarks"])
    return merged


def main(argv):
    p = argparse.ArgumentParser(prog="torch_probe.py", description=__doc__.split("\n\n")[0],
                                epilog="Exit codes: 0 written, 2 bad input or no torch. Library use: "
                                       "docs/torch-probe.md.")
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("concat", help="concatenate different codes' kick_memory sweeps into one "
                                      "(for one fit/plot.py figure; shards of one sweep: `sctape merge`)")
    m.add_argument("sweeps", metavar="SWEEP.json", nargs="+")
    m.add_argument("-o", "--out", required=True, metavar="OUT.json")
    args = p.parse_args(argv)
    try:
        docs = []
        for path in args.sweeps:
            try:
                with open(path, encoding="utf-8") as f:
                    docs.append((path, json.load(f)))
            except (OSError, ValueError) as e:
                raise ProbeError(f"cannot read '{path}': {e}")
        if os.path.abspath(args.out) in {os.path.abspath(s) for s in args.sweeps}:
            raise ProbeError(f"--out '{args.out}' is one of the inputs")
        try:
            write_json(concat_sweeps(docs), args.out)
        except OSError as e:
            raise ProbeError(f"cannot write '{args.out}': {e.strerror}")
    except ProbeError as e:
        print(f"torch_probe: error: {e}", file=sys.stderr)
        return 2
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
