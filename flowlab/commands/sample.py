"""``flowlab sample``: draw samples of a toy distribution with an exact (training-free) velocity model.

The model is the closed-form marginal velocity of a Gaussian mixture (flowlab.gmm): the exact one for
the GMM toys (eight_gaussians, cube_corners); for every other toy a 24-component mixture fitted by EM to
8000 ground-truth samples (flowlab.toys.reference_gmm; the printed model line says which, and the
metrics then include the fit error). Quality is reported against fresh ground-truth samples, next to the
same metric between two ground-truth sets (the seed-noise floor). Above 20,000 samples the sliced W2 uses a
seeded random subset of 20,000 (and the energy distance the first 2,000 rows), so their cost does not grow
with --n (timed in benchmarks/metrics_speed.py); --no-metrics skips them. --out is written before the metrics.

JSON keys: dist, dim, n, steps, method, convention, shift, churn, device, dtype, seed, model, model_calls,
sliced_w2, energy_distance, floor_sliced_w2, floor_energy_distance, seconds, out.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from typing import TYPE_CHECKING

from ..errors import FlowlabError

if TYPE_CHECKING:  # torch is imported when a command runs, not for --help
    import torch
    from torch import Tensor

from ._common import add_yes, check_out_file, check_work

NAME = "sample"
HELP = "sample a toy distribution with an exact Gaussian-mixture velocity, in either convention"
DESCRIPTION = __doc__

#: --dtype choices: names of torch dtypes (torch is imported only when sampling runs).
DTYPES = ("float32", "float64")
#: Names listed in the help text, written out so that ``--help`` needs no torch; tests/test_cli_help.py checks
#: them against flowlab.toys.TOYS, flowlab.sampling.METHODS and flowlab.conventions.CONVENTIONS.
TOY_NAMES = ("eight_gaussians", "two_moons", "checkerboard", "pinwheel", "spiral", "rings", "swiss_roll", "torus",
             "trefoil_knot", "helix", "sphere_shell", "cube_corners")
METHOD_NAMES = ("euler", "heun", "midpoint")
CONVENTION_NAMES = ("conventional", "reversed", "vp_cosine")
OUT_SUFFIXES = (".png", ".npz")
#: Sample sets larger than this are subsampled (first rows) for the O(N^2) energy distance.
ENERGY_MAX = 2000


def bytes_per_sample(n_components: int, dim: int) -> float:
    """Peak bytes per sample of sampling with the exact K-component GMM velocity: ``1.5 (100 + 20 K dim)``.

    Fitted to peak RSS at n = 1e6 on the CPU (eight_gaussians K = 8, dim 2: ~400 B; trefoil_knot K = 24,
    dim 3: ~1500 B; float64 noise and the (n, K, dim) posterior temporaries), with a 1.5x margin."""
    return 1.5 * (100 + 20 * n_components * dim)


def torch_dtype(name: str) -> "torch.dtype":
    """The torch dtype of a --dtype name (``float32`` / ``float64``)."""
    import torch

    return getattr(torch, name)


def check_fits(n: int, n_components: int, dim: int, device: torch.device) -> None:
    from ..limits import check_memory

    check_memory(n * bytes_per_sample(n_components, dim), f"--n {n} samples",
                 "use a smaller --n (run several seeds and concatenate if you need more)", device)


#: Rows of the probe call that measures this machine's rate.
PROBE_ROWS = 32768
#: Steps of the probe run.
PROBE_STEPS = 10


def check_time(model, x0: Tensor, schedule: Tensor, method: str, runs: int, yes: bool, conv=None) -> float:
    """Estimate the sampling time from a short timed run of the real sampler (its first steps, at most
    PROBE_ROWS rows); refuse beyond the work limit (flowlab.commands._common.WORK_LIMIT_SECONDS) without --yes.
    Returns the estimate (seconds)."""
    import torch

    from ..conventions import get_convention
    from ..sampling import sample

    conv = conv if conv is not None else get_convention("conventional")
    probe = x0[:PROBE_ROWS]
    k = min(schedule.shape[0] - 1, PROBE_STEPS)
    part = schedule[:k + 1]
    sample(model, probe, part, conv, method=method, check_finite=False, check_schedule=False)  # warm-up
    start = time.perf_counter()
    sample(model, probe, part, conv, method=method, check_finite=False, check_schedule=False)
    if probe.device.type == "cuda":
        torch.cuda.synchronize(probe.device)
    per_step = (time.perf_counter() - start) / k * x0.shape[0] / probe.shape[0]
    seconds = per_step * (schedule.shape[0] - 1) * runs
    check_work(seconds, f"{x0.shape[0]} samples x {schedule.shape[0] - 1} {method} steps"
               + (f" x {runs} runs" if runs > 1 else ""), "use a smaller --n or --steps", yes=yes)
    return seconds


def add_common(p: argparse.ArgumentParser) -> None:
    """Flags shared by ``sample`` and ``compare``."""
    p.add_argument("--dist", required=True, metavar="NAME", help=f"toy distribution: {', '.join(TOY_NAMES)}")
    p.add_argument("--n", type=int, default=2000, help="number of samples (default 2000)")
    p.add_argument("--steps", type=int, default=50, help="number of steps (default 50)")
    p.add_argument("--method", default="euler", metavar="M", help=f"integrator: {', '.join(METHOD_NAMES)} (default euler)")
    p.add_argument("--shift", type=float, default=1.0, help="SD3 time shift, > 1 moves steps toward noise (default 1)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: CUDA if present)")
    p.add_argument("--dtype", default="float32", choices=DTYPES, help="sampling dtype (default float32)")
    p.add_argument("--seed", type=int, default=0, help="seed for the noise and the reference samples, "
                   "0 .. 2**64 - 1 (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    add_yes(p)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common(p)
    p.add_argument("--convention", default="conventional", metavar="C",
                   help=f"time convention: {', '.join(CONVENTION_NAMES)} (default conventional)")
    p.add_argument("--churn", type=float, default=0.0, help="stochastic re-noising per step, >= 0 (default 0)")
    p.add_argument("--out", default=None, metavar="FILE", help="write the samples: FILE.npz (arrays) or FILE.png "
                   "(plot); written before the metrics; a symbolic link is written through to its target")
    p.add_argument("--no-metrics", action="store_true", help="skip the quality metrics (sliced W2, energy distance)")


def check_common(args: argparse.Namespace) -> None:
    """Validate the shared flags before any work (FlowlabError lists the valid choices)."""
    from ..device import resolve_device
    from ..limits import MAX_STEPS, check_count, check_seed
    from ..sampling import METHODS
    from ..toys import get_toy

    toy = get_toy(args.dist)
    check_count(args.n, "--n")
    check_count(args.steps, "--steps", maximum=MAX_STEPS,
                why="float32 time steps below 1e-5 are round-off; 50 to 1000 steps is the useful range")
    check_seed(args.seed)
    if args.method not in METHODS:
        raise FlowlabError(f"unknown method {args.method!r}; valid methods: {', '.join(METHODS)}")
    if not args.shift > 0 or args.shift == float("inf"):
        raise FlowlabError(f"--shift must be > 0 and finite (1 = no shift), got {args.shift}")
    check_fits(args.n, 1, toy.dim, resolve_device(args.device))  # a lower bound, before any fitting


def check_out(path: str | None) -> Path | None:
    """Reject a bad ``--out`` before sampling (see flowlab.commands._common.check_out_file)."""
    return check_out_file(path, OUT_SUFFIXES, example="samples.npz")


def noise(n: int, dim: int, seed: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``(n, dim)`` standard normal noise drawn on the CPU (float64) from ``seed``: the same on every device."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)


def quality(samples: Tensor, dist: str, seed: int) -> dict:
    """SW2 and energy distance of ``samples`` to fresh ground truth, with the ground-truth-vs-ground-truth floor.

    At most :data:`flowlab.metrics.SW2_MAX_SAMPLES` rows take part (a seeded random subset of larger sets, and
    as many fresh ground-truth samples), so the cost does not grow with ``samples``.
    """
    import torch

    from ..limits import derived_seed
    from ..metrics import SW2_MAX_SAMPLES, energy_distance, sliced_wasserstein, subsample
    from ..toys import sample_toy

    samples = subsample(samples, SW2_MAX_SAMPLES, seed)
    n = samples.shape[0]
    truth = sample_toy(dist, n, generator=torch.Generator().manual_seed(derived_seed(seed, 1)), device=samples.device,
                       dtype=torch.float32)
    other = sample_toy(dist, n, generator=torch.Generator().manual_seed(derived_seed(seed, 2)), device=samples.device,
                       dtype=torch.float32)
    s = samples.float()
    m = min(n, ENERGY_MAX)
    return {
        "sliced_w2": round(sliced_wasserstein(s, truth), 6),
        "energy_distance": round(energy_distance(s[:m], truth[:m]), 6),
        "floor_sliced_w2": round(sliced_wasserstein(other, truth), 6),
        "floor_energy_distance": round(energy_distance(other[:m], truth[:m]), 6),
    }


def save_png(path: Path, samples: Tensor, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import write_atomic

    pts = samples.detach().float().cpu().numpy()
    fig = plt.figure(figsize=(5, 5))
    if pts.shape[1] == 3:
        ax = fig.add_subplot(projection="3d")
        ax.scatter(pts[:, 0], pts[:, 1], pts[:, 2], s=1, alpha=0.5)
    else:
        ax = fig.add_subplot()
        ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.5)
        ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    try:
        write_atomic(path, lambda fh: fig.savefig(fh, format="png", dpi=100))
    finally:
        plt.close(fig)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..conventions import get_convention
    from ..device import resolve_device
    from ..io import write_atomic
    from ..limits import derived_seed
    from ..sampling import CallCounter, sample
    from ..schedules import shifted
    from ..toys import get_toy, reference_gmm

    check_common(args)
    conv = get_convention(args.convention)
    if not args.churn >= 0:
        raise FlowlabError(f"--churn must be >= 0, got {args.churn}")
    out = check_out(args.out)
    device = resolve_device(args.device)
    dtype = torch_dtype(args.dtype)
    toy = get_toy(args.dist)

    gmm, model_desc = reference_gmm(args.dist, seed=args.seed)
    check_fits(args.n, gmm.n_components, toy.dim, device)
    model = CallCounter(gmm.velocity_model(conv))
    schedule = shifted(args.steps, conv, args.shift, dtype=dtype, device=device)
    x0 = noise(args.n, toy.dim, args.seed, device, dtype)
    gen = torch.Generator(device=device).manual_seed(derived_seed(args.seed, 3))
    check_time(model.model, x0, schedule, args.method, 1, args.yes, conv)
    start = time.perf_counter()
    x = sample(model, x0, schedule, conv, method=args.method, churn=args.churn, generator=gen)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start

    if out is not None:  # before the metrics: a failure or Ctrl-C there must not lose the samples
        if out.suffix.lower() == ".npz":
            arrays = {"samples": x.detach().cpu().numpy(), "schedule": schedule.cpu().numpy(),
                      "convention": np.array(conv.name)}
            write_atomic(out, lambda fh: np.savez(fh, **arrays))
        else:
            save_png(out, x, f"{args.dist}: {args.method}, {args.steps} steps, {conv.name}")
    metrics = {k: None for k in ("sliced_w2", "energy_distance", "floor_sliced_w2", "floor_energy_distance")}
    if not args.no_metrics:
        metrics = quality(x, args.dist, args.seed)
    report = {"dist": args.dist, "dim": toy.dim, "n": args.n, "steps": args.steps, "method": args.method,
              "convention": conv.name, "shift": args.shift, "churn": args.churn, "device": str(device),
              "dtype": args.dtype, "seed": args.seed, "model": model_desc, "model_calls": model.calls,
              **metrics, "seconds": round(seconds, 4),
              "out": str(out) if out is not None else None}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.n} samples of {args.dist} ({toy.dim}-D), {args.method}, {args.steps} steps, {conv.name} "
              f"convention, {device}, {args.dtype}")
        print(f"model: {model_desc} ({model.calls} calls)")
        if not args.no_metrics:
            print(f"sliced W2 to ground truth {report['sliced_w2']:.4f} (floor {report['floor_sliced_w2']:.4f}), "
                  f"energy distance {report['energy_distance']:.4f} (floor {report['floor_energy_distance']:.4f})")
        if out is not None:
            print(f"wrote {out}")
    return 0
