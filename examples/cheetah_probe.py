#!/usr/bin/env python3
"""Cheetah's SpaceChargeKick measured with sctape's torch probe (bench/torch_probe.py).

Run it with examples/cheetah_probe.sh, which makes the virtual environment
(Debian's torch 1.13 + cheetah-accelerator from PyPI) and fits and draws the
results; or by hand:

    build/cheetah-venv/bin/python examples/cheetah_probe.py [--quick] [--out-dir results/cheetah]

Each kick is one Cheetah Drift (0.01 m, like sctape-bench's kick_memory
sweep) followed by one SpaceChargeKick (effect length 0.01 m) on a Gaussian
10 MeV electron bunch of 1 nC; the objective is the final beam's sigma_x, the
gradient is taken with respect to every initial particle coordinate.
Strategies: `autograd` (Cheetah as it is) and `checkpoint`
(torch.utils.checkpoint around each kick, PyTorch 1.13's default reentrant
variant: the forward pass keeps each kick's input particles, the backward
pass re-runs the kick with the tape on). The phases of Cheetah's kick are
scopes named like sctape's substeps, each a method of Cheetah's, wrapped as a
phase (probe.wrap(..., nest=False): the innermost phase gets the bytes):

  s_to_t    ParticleBeam.to_xyz_pxpypz        deposit   SpaceChargeKick._array_rho
  green     ._integrated_green_function       convolve  ._solve_poisson_equation (the FFTs and product)
  field     ._E_plus_vB_field (differences)   gather    ._compute_forces (interpolation to particles)
  push      .track (the rest: the beam's sigmas for the grid, the momentum update)
  t_to_s    ParticleBeam.from_xyz_pxpypz      drift     Drift.track

Writes OUT_DIR/sweep_cpu.json (kick_memory sweep, strategies cheetah:autograd
and cheetah:checkpoint, float32 and float64) and
OUT_DIR/timeline_<strategy>_<dtype>.json (one mid-size case each).
Exit codes: 0 written, 2 bad input or a missing dependency (torch, cheetah).
"""
import argparse
import contextlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "bench"))

try:
    import torch
    import torch.utils.checkpoint
    import torch_probe
except ImportError as e:
    print(f"cheetah_probe: error: {e}", file=sys.stderr)
    sys.exit(2)
try:
    import cheetah
except ImportError as e:
    print(f"cheetah_probe: error: Cheetah is not importable ({e}); make its environment with "
          "examples/cheetah_venv.sh and run this with build/cheetah-venv/bin/python", file=sys.stderr)
    sys.exit(2)

KICK_LENGTH_M = 0.01


def torch_113_shim():
    """What Cheetah 0.8.4 needs from torch >= 2 that 1.13 lacks, added; nothing when torch is newer.

    Tensor.where(condition, other) with a Python number as `other` (SpaceChargeKick._compute_forces:
    `grad_x[force_indices].where(valid_mask, 0)`): 1.13 takes only a tensor there. The number
    becomes a 0-d tensor of the same dtype and device, which where() broadcasts: the same result.
    """
    if int(torch.__version__.split(".")[0]) >= 2 or getattr(torch.Tensor.where, "_sctape_shim", False):
        return
    tensor_where = torch.Tensor.where

    def where(self, condition, other):
        if not isinstance(other, torch.Tensor):
            other = torch.tensor(other, dtype=self.dtype, device=self.device)
        return tensor_where(self, condition, other)
    where._sctape_shim = True
    torch.Tensor.where = where


# (owner, attribute, scope); from_xyz_pxpypz is a classmethod
PHASES = [(cheetah.ParticleBeam, "to_xyz_pxpypz", "s_to_t"),
          (cheetah.ParticleBeam, "from_xyz_pxpypz", "t_to_s"),
          (cheetah.SpaceChargeKick, "track", "push"),
          (cheetah.SpaceChargeKick, "_compute_forces", "gather"),
          (cheetah.SpaceChargeKick, "_E_plus_vB_field", "field"),
          (cheetah.SpaceChargeKick, "_solve_poisson_equation", "convolve"),
          (cheetah.SpaceChargeKick, "_array_rho", "deposit"),
          (cheetah.SpaceChargeKick, "_integrated_green_function", "green"),
          (cheetah.Drift, "track", "drift")]


@contextlib.contextmanager
def phases():
    """Cheetah's methods wrapped as phases of the active probe while inside; restored after."""
    saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in PHASES]
    try:
        for owner, name, scope in PHASES:
            original = owner.__dict__[name]
            if isinstance(original, classmethod):
                setattr(owner, name, staticmethod(torch_probe.wrap(getattr(owner, name), scope, nest=False)))
            else:
                setattr(owner, name, torch_probe.wrap(original, scope, nest=False))
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def make_run(dtype, strategy):
    def run(probe, case):
        def t(value):
            return torch.tensor(value, dtype=dtype)
        beam = cheetah.ParticleBeam.from_parameters(
            num_particles=case.n_part, sigma_x=t(1e-4), sigma_y=t(1e-4), sigma_tau=t(1e-4), energy=t(1e7),
            total_charge=t(1e-9), dtype=dtype)
        drift = cheetah.Drift(length=t(KICK_LENGTH_M), dtype=dtype)
        kick = cheetah.SpaceChargeKick(effect_length=t(KICK_LENGTH_M), grid_shape=case.grid, dtype=dtype)

        def one_kick(particles):
            b = cheetah.ParticleBeam(particles=particles, energy=beam.energy,
                                     particle_charges=beam.particle_charges, species=beam.species)
            return kick.track(drift.track(b)).particles

        def checkpointed_kick(particles):
            # the re-run in backward is a kick of the backward pass (timeline "kicks")
            with probe.kick() if probe.backward_started else contextlib.nullcontext():
                return one_kick(particles)

        x = beam.particles.clone().requires_grad_()
        for _ in range(case.n_kicks):
            with probe.kick():
                if strategy == "checkpoint":
                    x = torch.utils.checkpoint.checkpoint(checkpointed_kick, x)
                else:
                    x = one_kick(x)
        final = cheetah.ParticleBeam(particles=x, energy=beam.energy,
                                     particle_charges=beam.particle_charges, species=beam.species)
        return final.sigma_x
    return run


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Exit codes: 0 written, 2 bad input or missing torch/cheetah.")
    p.add_argument("--out-dir", default=os.path.join("results", "cheetah"), help="default results/cheetah")
    p.add_argument("--quick", action="store_true", help="a small sweep (a minute): N_part 500-2000, grids 8^3-16^3")
    p.add_argument("--dtype", nargs="+", choices=["float32", "float64"], default=["float32", "float64"])
    p.add_argument("--strategy", nargs="+", choices=["autograd", "checkpoint"], default=["autograd", "checkpoint"])
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    torch_113_shim()
    torch.manual_seed(0)
    if args.quick:
        law = torch_probe.cases([500, 1000, 2000], [(8, 8, 8), (16, 16, 16)], [2])
        kicks = torch_probe.cases([1000], [(8, 8, 8)], [1, 3])
        timeline_case = torch_probe.Case(1000, (8, 8, 8), 2)
    else:
        law = torch_probe.cases([1000, 4000, 16000], [(8, 8, 8), (16, 16, 16), (32, 32, 32)], [2])
        kicks = torch_probe.cases([4000], [(16, 16, 16)], [1, 3, 4])
        timeline_case = torch_probe.Case(4000, (16, 16, 16), 2)
    os.makedirs(args.out_dir, exist_ok=True)
    entries, context = [], None
    timelines = {}
    for dtype_name in args.dtype:
        dtype = getattr(torch, dtype_name)
        for strategy in args.strategy:
            run = make_run(dtype, strategy)

            def keep_timeline(case, probe, key=(strategy, dtype_name)):
                if case == timeline_case:
                    timelines[key] = probe.timeline(f"cheetah:{strategy}", dtype_name, code="cheetah")
            print(f"cheetah_probe: {strategy}, {dtype_name}", file=sys.stderr)
            with phases():  # on through backward: checkpoint re-runs the kicks there
                doc = torch_probe.sweep(run, law + kicks, code="cheetah", strategy=strategy, dtype=dtype_name,
                                        on_probe=keep_timeline)
            entries += doc["benchmarks"]
            context = context or doc["context"]
    context["dtypes"] = "float32 and float64 (in each run's name)"
    context["lattice"] = (f"a Cheetah Drift of {KICK_LENGTH_M} m and a SpaceChargeKick of {KICK_LENGTH_M} m per kick; "
                          f"cheetah-accelerator {getattr(cheetah, '__version__', 'unknown')}")
    sweep_path = os.path.join(args.out_dir, "sweep_cpu.json")
    torch_probe.write_json({"context": context, "benchmarks": entries}, sweep_path)
    print(sweep_path)
    for (strategy, dtype_name), timeline in timelines.items():
        path = os.path.join(args.out_dir, f"timeline_{strategy}_{dtype_name}.json")
        torch_probe.write_json(timeline, path, indent=None)
        print(path)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except torch_probe.ProbeError as e:
        print(f"cheetah_probe: error: {e}", file=sys.stderr)
        sys.exit(2)
